//! Google's Gemini models as a backend, two ways in:
//! - the Gemini API (`kind: gemini`): `BASE/models/MODEL:generateContent`,
//!   `:streamGenerateContent?alt=sse` and `:countTokens`, the key in `x-goog-api-key`
//!   (never in the URL, where access logs would keep it);
//! - Vertex AI (`kind: vertex`): the same methods under
//!   `BASE/projects/P/locations/L/publishers/google/models/MODEL`, with a service account's
//!   access token as `Authorization: Bearer` ([`super::oauth`]).

use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};

use crate::canonical::{ChatResponse, EventStream, GatewayError};
use crate::config::{ProviderConfig, VertexAccess};
use crate::dialects::gemini as wire;

use super::endpoints::Pool;
use super::http::{event_stream, json_headers, read_body, send};
use super::oauth::TokenSource;
use super::{Call, Provider};

/// One endpoint: its base (`…/v1beta`) and headers, built once at start-up.
struct Endpoint {
    base: String,
    headers: HeaderMap,
}

/// Which method of a model is called.
#[derive(Clone, Copy)]
enum Method {
    Generate,
    Stream,
    CountTokens,
}

impl Method {
    fn suffix(self) -> &'static str {
        match self {
            Method::Generate => ":generateContent",
            // Without `alt=sse` Gemini streams one JSON array, not events.
            Method::Stream => ":streamGenerateContent?alt=sse",
            Method::CountTokens => ":countTokens",
        }
    }
}

/// How calls are addressed and authorized.
enum Access {
    /// The key is in each endpoint's headers.
    ApiKey,
    Vertex {
        /// `projects/P/locations/L/publishers/google`.
        prefix: String,
        /// `None` only in the offline catalog (`policy check`), which never calls.
        tokens: Option<Box<TokenSource>>,
    },
}

pub struct GeminiProvider {
    name: String,
    access: Access,
    endpoints: Vec<Endpoint>,
    pool: Pool,
    client: reqwest::Client,
    timeout: Duration,
    max_sse_event_bytes: usize,
    external: bool,
    retry: super::resilience::RetryPolicy,
}

impl GeminiProvider {
    pub fn new(cfg: &ProviderConfig, client: reqwest::Client, max_sse_event_bytes: usize) -> Self {
        Self::build(cfg, Access::ApiKey, None, client, max_sse_event_bytes)
    }

    /// A Vertex AI provider; fails on a service-account key that does not parse.
    pub fn vertex(
        cfg: &ProviderConfig,
        access: VertexAccess,
        client: reqwest::Client,
        max_sse_event_bytes: usize,
    ) -> Result<Self, String> {
        let base = access.default_base_url();
        let prefix = format!(
            "projects/{}/locations/{}/publishers/google",
            access.project, access.location
        );
        let tokens = Some(Box::new(TokenSource::service_account(access.account)?));
        Ok(Self::build(
            cfg,
            Access::Vertex { prefix, tokens },
            Some(base),
            client,
            max_sse_event_bytes,
        ))
    }

    /// A Vertex provider for the offline catalog: named and listed, never called.
    pub fn vertex_offline(
        cfg: &ProviderConfig,
        client: reqwest::Client,
        max_sse_event_bytes: usize,
    ) -> Self {
        let access = Access::Vertex {
            prefix: String::new(),
            tokens: None,
        };
        Self::build(cfg, access, None, client, max_sse_event_bytes)
    }

    fn build(
        cfg: &ProviderConfig,
        access: Access,
        default_base: Option<String>,
        client: reqwest::Client,
        max_sse_event_bytes: usize,
    ) -> Self {
        let resolved = cfg.resolved_endpoints();
        let endpoints = resolved
            .iter()
            .map(|e| {
                let key = e.api_key.as_ref().map(|k| {
                    (
                        HeaderName::from_static("x-goog-api-key"),
                        k.expose().to_owned(),
                    )
                });
                let headers = json_headers(cfg, key);
                Endpoint {
                    base: match &default_base {
                        Some(d) if e.base_url.is_empty() => d.clone(),
                        _ => e.base_url.clone(),
                    },
                    headers,
                }
            })
            .collect();
        GeminiProvider {
            name: cfg.name.clone(),
            access,
            endpoints,
            pool: Pool::new(&resolved),
            client,
            timeout: Duration::from_millis(cfg.timeout_ms),
            max_sse_event_bytes,
            external: cfg.external,
            retry: cfg.retry_policy(),
        }
    }

    async fn post(
        &self,
        endpoint: usize,
        call: &Call<'_>,
        method: Method,
        body: serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let endpoint = self.endpoints.get(endpoint).ok_or_else(|| {
            GatewayError::Internal(format!("{}: no endpoint number {endpoint}", self.name))
        })?;
        // Catalogs and SDKs write the model as `models/NAME` or `NAME`; the URL has one.
        let model = call
            .upstream_model
            .strip_prefix("models/")
            .unwrap_or(call.upstream_model);
        let url = match &self.access {
            Access::ApiKey => format!("{}/models/{model}{}", endpoint.base, method.suffix()),
            Access::Vertex { prefix, .. } => {
                format!(
                    "{}/{prefix}/models/{model}{}",
                    endpoint.base,
                    method.suffix()
                )
            }
        };
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::Internal(format!("cannot encode upstream request: {e}")))?;
        let mut headers = endpoint.headers.clone();
        if let Access::Vertex { tokens, .. } = &self.access {
            let tokens = tokens.as_ref().ok_or_else(|| {
                GatewayError::Internal(format!("{}: built without credentials", self.name))
            })?;
            let value = tokens
                .authorization(&self.name, &self.client, self.timeout)
                .await?;
            headers.insert(AUTHORIZATION, value);
        }
        for (k, v) in &call.headers.extra {
            headers.insert(k.clone(), v.clone());
        }
        crate::telemetry::inject_trace_headers(&mut headers);
        Ok(self.client.post(url).headers(headers).body(body))
    }
}

impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        match self.access {
            Access::ApiKey => "gemini",
            Access::Vertex { .. } => "vertex",
        }
    }

    fn is_external(&self) -> bool {
        self.external
    }

    fn retry_policy(&self) -> super::resilience::RetryPolicy {
        self.retry
    }

    fn pool(&self) -> Option<&Pool> {
        Some(&self.pool)
    }

    fn chat<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>> {
        Box::pin(async move {
            let body = wire::build_request(call.request);
            let request = self.post(endpoint, &call, Method::Generate, body).await?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let body = read_body(&self.name, self.timeout, response).await?;
            wire::parse_response(&body, call.upstream_model).map_err(|message| {
                GatewayError::BadGateway {
                    provider: self.name.clone(),
                    message: format!("unreadable upstream response: {message}"),
                }
            })
        })
    }

    fn stream<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
        Box::pin(async move {
            let body = wire::build_request(call.request);
            let request = self.post(endpoint, &call, Method::Stream, body).await?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            Ok(event_stream(
                &self.name,
                self.timeout,
                self.max_sse_event_bytes,
                response,
                wire::StreamDecoder::new(),
            ))
        })
    }

    fn count_tokens<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<u32, GatewayError>> {
        Box::pin(async move {
            let body = wire::build_count_tokens_request(call.request, call.upstream_model);
            let request = self
                .post(self.pool.pick_any(), &call, Method::CountTokens, body)
                .await?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let body = read_body(&self.name, self.timeout, response).await?;
            #[derive(serde::Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct Count {
                total_tokens: u32,
            }
            serde_json::from_slice::<Count>(&body)
                .map(|c| c.total_tokens)
                .map_err(|e| GatewayError::BadGateway {
                    provider: self.name.clone(),
                    message: format!("unreadable countTokens response: {e}"),
                })
        })
    }
}
