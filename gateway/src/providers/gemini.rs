//! Google's Gemini API backend: `BASE/models/MODEL:generateContent`,
//! `:streamGenerateContent?alt=sse` and `:countTokens`, the key in `x-goog-api-key`
//! (never in the URL, where access logs would keep it).

use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::canonical::{ChatResponse, EventStream, GatewayError};
use crate::config::ProviderConfig;
use crate::dialects::gemini as wire;

use super::endpoints::Pool;
use super::http::{event_stream, read_body, send};
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

pub struct GeminiProvider {
    name: String,
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
        let resolved = cfg.resolved_endpoints();
        let endpoints = resolved
            .iter()
            .map(|e| {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Some(key) = &e.api_key {
                    if let Ok(mut value) = HeaderValue::from_str(key.expose()) {
                        value.set_sensitive(true);
                        headers.insert("x-goog-api-key", value);
                    }
                }
                for (k, v) in &cfg.headers {
                    if let (Ok(k), Ok(v)) =
                        (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
                    {
                        headers.insert(k, v);
                    }
                }
                Endpoint {
                    base: e.base_url.clone(),
                    headers,
                }
            })
            .collect();
        GeminiProvider {
            name: cfg.name.clone(),
            endpoints,
            pool: Pool::new(&resolved),
            client,
            timeout: Duration::from_millis(cfg.timeout_ms),
            max_sse_event_bytes,
            external: cfg.external,
            retry: cfg.retry_policy(),
        }
    }

    fn post(
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
        let url = format!("{}/models/{model}{}", endpoint.base, method.suffix());
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::Internal(format!("cannot encode upstream request: {e}")))?;
        let mut headers = endpoint.headers.clone();
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
        "gemini"
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
            let request = self.post(endpoint, &call, Method::Generate, body)?;
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
            let request = self.post(endpoint, &call, Method::Stream, body)?;
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
            let request = self.post(self.pool.pick_any(), &call, Method::CountTokens, body)?;
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
