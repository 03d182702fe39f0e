//! OpenAI and OpenAI-compatible backends (vLLM, Ollama, Mistral…) and Azure OpenAI,
//! which speaks the same wire format under per-deployment URLs with `api-version`.

use std::time::Duration;

use futures::future::BoxFuture;
use http::header::{HeaderMap, HeaderName, AUTHORIZATION};

use crate::canonical::{ChatResponse, GatewayError};
use crate::config::{AzureAuth, AzureConfig, ProviderConfig, ProviderKind};
use crate::dialects::openai as wire;

use super::endpoints::Pool;
use super::http::{event_stream, json_headers, read_body, send};
use super::oauth::TokenSource;
use super::{Call, Provider};
use crate::canonical::EventStream;

/// Where and with which key one endpoint is called (built once at start-up).
struct Endpoint {
    /// `…/chat/completions`, or for Azure the resource endpoint.
    base: String,
    headers: HeaderMap,
}

/// How a call's URL is formed.
enum Urls {
    /// `BASE/chat/completions`.
    Chat,
    /// `BASE/openai/deployments/DEPLOYMENT/chat/completions?api-version=V`.
    Azure(AzureConfig),
}

pub struct OpenAiProvider {
    name: String,
    /// Entra ID tokens the provider fetches itself (Azure with `azure.entra`).
    tokens: Option<Box<TokenSource>>,
    kind: &'static str,
    endpoints: Vec<Endpoint>,
    urls: Urls,
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
        let urls = match cfg.kind {
            ProviderKind::AzureOpenai => Urls::Azure(cfg.azure.clone().unwrap_or_default()),
            _ => Urls::Chat,
        };
        let api_key_header = matches!(&urls, Urls::Azure(a) if a.auth == AzureAuth::ApiKey);
        let endpoints = resolved
            .iter()
            .map(|e| {
                let key = e.api_key.as_ref().map(|key| {
                    if api_key_header {
                        (HeaderName::from_static("api-key"), key.expose().to_owned())
                    } else {
                        (AUTHORIZATION, format!("Bearer {}", key.expose()))
                    }
                });
                let headers = json_headers(cfg, key);
                Endpoint {
                    base: match &urls {
                        Urls::Chat => format!("{}/chat/completions", e.base_url),
                        Urls::Azure(_) => e.base_url.clone(),
                    },
                    headers,
                }
            })
            .collect();
        OpenAiProvider {
            name: cfg.name.clone(),
            tokens: None,
            kind: match cfg.kind {
                ProviderKind::Openai => "openai",
                ProviderKind::AzureOpenai => "azure_openai",
                _ => "openai_compatible",
            },
            endpoints,
            urls,
            pool: Pool::new(&resolved),
            client,
            timeout: Duration::from_millis(cfg.timeout_ms),
            max_sse_event_bytes,
            external: cfg.external,
            retry: cfg.retry_policy(),
        }
    }

    /// Azure with an Entra application: every call carries a token fetched and renewed
    /// from it, replacing any configured key.
    pub fn with_tokens(mut self, tokens: TokenSource) -> Self {
        self.tokens = Some(Box::new(tokens));
        self
    }

    async fn post(
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
        if let Some(tokens) = &self.tokens {
            let value = tokens
                .authorization(&self.name, &self.client, self.timeout)
                .await?;
            headers.remove("api-key");
            headers.insert(AUTHORIZATION, value);
        }
        crate::telemetry::inject_trace_headers(&mut headers);
        let url = match &self.urls {
            Urls::Chat => std::borrow::Cow::Borrowed(endpoint.base.as_str()),
            Urls::Azure(azure) => {
                let model = call.upstream_model;
                let deployment = azure.deployments.get(model).map_or(model, String::as_str);
                let mut url = reqwest::Url::parse(&endpoint.base)
                    .map_err(|e| GatewayError::Internal(format!("{}: base_url: {e}", self.name)))?;
                // Segments and the query are percent-encoded by `url`: deployment names
                // are chosen by whoever set up the resource.
                url.path_segments_mut()
                    .map_err(|()| {
                        GatewayError::Internal(format!(
                            "{}: base_url cannot have a path",
                            self.name
                        ))
                    })?
                    .pop_if_empty()
                    .extend(["openai", "deployments", deployment, "chat", "completions"]);
                url.query_pairs_mut()
                    .append_pair("api-version", &azure.api_version);
                std::borrow::Cow::Owned(url.to_string())
            }
        };
        Ok(self.client.post(url.as_ref()).headers(headers).body(body))
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
            let request = self.post(endpoint, &call, false).await?;
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
            let request = self.post(endpoint, &call, true).await?;
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
