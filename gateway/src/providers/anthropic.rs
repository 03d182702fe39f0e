//! Anthropic Messages API backend.

use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::canonical::{ChatResponse, GatewayError};
use crate::config::ProviderConfig;
use crate::dialects::anthropic as wire;

use super::endpoints::Pool;
use super::http::{event_stream, json_headers, read_body, send};
use super::{Call, Provider};
use crate::canonical::EventStream;

/// The API version we speak when the client did not name one.
const DEFAULT_VERSION: &str = "2023-06-01";

/// Where and with which key one endpoint is called (built once at start-up).
struct Endpoint {
    messages_url: String,
    count_tokens_url: String,
    headers: HeaderMap,
}

pub struct AnthropicProvider {
    name: String,
    endpoints: Vec<Endpoint>,
    pool: Pool,
    client: reqwest::Client,
    timeout: Duration,
    max_sse_event_bytes: usize,
    external: bool,
    retry: super::resilience::RetryPolicy,
}

impl AnthropicProvider {
    pub fn new(cfg: &ProviderConfig, client: reqwest::Client, max_sse_event_bytes: usize) -> Self {
        let resolved = cfg.resolved_endpoints();
        let endpoints = resolved
            .iter()
            .map(|e| {
                let key = e
                    .api_key
                    .as_ref()
                    .map(|k| (HeaderName::from_static("x-api-key"), k.expose().to_owned()));
                let headers = json_headers(cfg, key);
                Endpoint {
                    messages_url: format!("{}/v1/messages", e.base_url),
                    count_tokens_url: format!("{}/v1/messages/count_tokens", e.base_url),
                    headers,
                }
            })
            .collect();
        AnthropicProvider {
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

    fn endpoint(&self, endpoint: usize) -> Result<&Endpoint, GatewayError> {
        self.endpoints.get(endpoint).ok_or_else(|| {
            GatewayError::Internal(format!("{}: no endpoint number {endpoint}", self.name))
        })
    }

    fn post(
        &self,
        endpoint: &Endpoint,
        url: &str,
        call: &Call<'_>,
        body: serde_json::Value,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::Internal(format!("cannot encode upstream request: {e}")))?;
        let mut headers = endpoint.headers.clone();
        let version = call
            .headers
            .anthropic_version
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
            .unwrap_or(HeaderValue::from_static(DEFAULT_VERSION));
        headers.insert("anthropic-version", version);
        if let Some(beta) = call
            .headers
            .anthropic_beta
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert("anthropic-beta", beta);
        }
        for (k, v) in &call.headers.extra {
            headers.insert(k.clone(), v.clone());
        }
        crate::telemetry::inject_trace_headers(&mut headers);
        Ok(self.client.post(url).headers(headers).body(body))
    }

    fn message_body(call: &Call<'_>, stream: bool) -> serde_json::Value {
        let mut body = wire::build_request(call.request, call.upstream_model);
        body["stream"] = serde_json::Value::Bool(stream);
        body
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "anthropic"
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
            let endpoint = self.endpoint(endpoint)?;
            let body = Self::message_body(&call, false);
            let request = self.post(endpoint, &endpoint.messages_url, &call, body)?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let body = read_body(&self.name, self.timeout, response).await?;
            wire::parse_response(&body).map_err(|message| GatewayError::BadGateway {
                provider: self.name.clone(),
                message: format!("unreadable upstream response: {message}"),
            })
        })
    }

    fn stream<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
        Box::pin(async move {
            let endpoint = self.endpoint(endpoint)?;
            let body = Self::message_body(&call, true);
            let request = self.post(endpoint, &endpoint.messages_url, &call, body)?;
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
            let endpoint = self.endpoint(self.pool.pick_any())?;
            let body = wire::build_count_tokens_request(call.request, call.upstream_model);
            let request = self.post(endpoint, &endpoint.count_tokens_url, &call, body)?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let body = read_body(&self.name, self.timeout, response).await?;
            #[derive(serde::Deserialize)]
            struct Count {
                input_tokens: u32,
            }
            serde_json::from_slice::<Count>(&body)
                .map(|c| c.input_tokens)
                .map_err(|e| GatewayError::BadGateway {
                    provider: self.name.clone(),
                    message: format!("unreadable count_tokens response: {e}"),
                })
        })
    }
}
