//! OpenAI and OpenAI-compatible backends (vLLM, Ollama, Azure OpenAI, Mistral…).

use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};

use crate::canonical::{ChatResponse, GatewayError};
use crate::config::{ProviderConfig, ProviderKind};
use crate::dialects::openai as wire;

use super::endpoints::Pool;
use super::http::{event_stream, read_body, send};
use super::{Call, Provider};
use crate::canonical::EventStream;

/// Where and with which key one endpoint is called (built once at start-up).
struct Endpoint {
    chat_url: String,
    headers: HeaderMap,
}

pub struct OpenAiProvider {
    name: String,
    kind: &'static str,
    endpoints: Vec<Endpoint>,
    pool: Pool,
    client: reqwest::Client,
    timeout: Duration,
    max_sse_event_bytes: usize,
    external: bool,
    retry: super::resilience::RetryPolicy,
}

impl OpenAiProvider {
    pub fn new(cfg: &ProviderConfig, client: reqwest::Client, max_sse_event_bytes: usize) -> Self {
        let resolved = cfg.resolved_endpoints();
        let endpoints = resolved
            .iter()
            .map(|e| {
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                if let Some(key) = &e.api_key {
                    if let Ok(mut value) =
                        HeaderValue::from_str(&format!("Bearer {}", key.expose()))
                    {
                        value.set_sensitive(true);
                        headers.insert(AUTHORIZATION, value);
                    }
                }
                // After the key, so a configured header (Azure's `api-key`…) can replace it.
                for (k, v) in &cfg.headers {
                    if let (Ok(k), Ok(v)) =
                        (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v))
                    {
                        headers.insert(k, v);
                    }
                }
                Endpoint {
                    chat_url: format!("{}/chat/completions", e.base_url),
                    headers,
                }
            })
            .collect();
        OpenAiProvider {
            name: cfg.name.clone(),
            kind: match cfg.kind {
                ProviderKind::Openai => "openai",
                _ => "openai_compatible",
            },
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
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let endpoint = self.endpoints.get(endpoint).ok_or_else(|| {
            GatewayError::Internal(format!("{}: no endpoint number {endpoint}", self.name))
        })?;
        let mut body = wire::build_request(call.request, call.upstream_model);
        body["stream"] = serde_json::Value::Bool(stream);
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::Internal(format!("cannot encode upstream request: {e}")))?;
        let mut headers = endpoint.headers.clone();
        for (k, v) in &call.headers.extra {
            headers.insert(k.clone(), v.clone());
        }
        crate::telemetry::inject_trace_headers(&mut headers);
        Ok(self
            .client
            .post(&endpoint.chat_url)
            .headers(headers)
            .body(body))
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        self.kind
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
            let request = self.post(endpoint, &call, false)?;
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
            let request = self.post(endpoint, &call, true)?;
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
}
