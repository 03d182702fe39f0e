//! Backends behind one trait: one file per provider. The local model (a later stage)
//! is just another implementation.

pub mod anthropic;
pub mod attempts;
pub mod bedrock;
pub mod endpoints;
pub mod gemini;
pub mod health;
mod http;
pub mod local;
pub mod oauth;
pub mod openai;
pub mod resilience;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::canonical::{ChatRequest, ChatResponse, EventStream, GatewayError};
use crate::config::{ProviderConfig, ProviderKind};

/// Client headers that some providers need passed along (never credentials).
#[derive(Debug, Clone, Default)]
pub struct ForwardHeaders {
    pub anthropic_version: Option<String>,
    pub anthropic_beta: Option<String>,
    /// Headers a policy rule adds to the upstream request.
    pub extra: Vec<(::http::HeaderName, ::http::HeaderValue)>,
}

/// One call to a backend: the canonical request plus what routing decided.
pub struct Call<'a> {
    pub request: &'a ChatRequest,
    /// The model name the backend knows (routing may have rewritten the client's).
    pub upstream_model: &'a str,
    pub headers: &'a ForwardHeaders,
}

pub trait Provider: Send + Sync {
    /// The configured name, as in `NAME/model`.
    fn name(&self) -> &str;

    /// The dialect family of the backend, for reporting.
    fn kind(&self) -> &'static str;

    /// Whether requests leave the organization (everything but the local model).
    fn is_external(&self) -> bool {
        true
    }

    /// How failed calls to this backend are retried (before anything reached the client).
    fn retry_policy(&self) -> resilience::RetryPolicy {
        resilience::RetryPolicy::NONE
    }

    /// Compute time a finished in-process answer used (its share of the batch), and
    /// whether it ran on a GPU: the basis of the local cost. Taken once per response id.
    fn take_compute(&self, _response_id: &str) -> Option<(f64, bool)> {
        None
    }

    /// The endpoints (base URL and key pairs) calls are spread over, with their health;
    /// `None` for a backend that is one thing (the in-process model).
    fn pool(&self) -> Option<&endpoints::Pool> {
        None
    }

    /// One call on endpoint `endpoint` of `pool()`, as `attempts::Attempts` chose it
    /// (every call goes through attempts: retries, circuits and health see them all).
    /// Backends without a pool have one endpoint and ignore the index.
    fn chat<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>>;

    fn stream<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>>;

    /// Prompt tokens as the backend would count them. The default is an estimate for
    /// backends without a counting endpoint.
    fn count_tokens<'a>(&'a self, call: Call<'a>) -> BoxFuture<'a, Result<u32, GatewayError>> {
        let estimate = estimate_prompt_tokens(call.request);
        Box::pin(async move { Ok(estimate) })
    }
}

/// About four characters per token for English text, plus a few tokens of framing per
/// message; good enough for budgets and reports, and marked as an estimate there.
pub fn estimate_prompt_tokens(req: &ChatRequest) -> u32 {
    let chars: usize = req.text_segments().map(|(_, t)| t.chars().count()).sum();
    let framing = 4 * req.messages.len();
    u32::try_from(chars.div_ceil(4) + framing).unwrap_or(u32::MAX)
}

/// Builds the provider for a config entry (one shared HTTP client per provider).
pub fn build(
    cfg: &ProviderConfig,
    max_sse_event_bytes: usize,
) -> anyhow::Result<Arc<dyn Provider>> {
    build_with_env(
        cfg,
        max_sse_event_bytes,
        &|name| std::env::var(name).ok(),
        false,
    )
}

/// A provider for the offline catalog (`policy check` and friends): never called, so a
/// Bedrock or Vertex provider whose credentials live only in the serving environment
/// still builds.
pub fn build_offline(
    cfg: &ProviderConfig,
    max_sse_event_bytes: usize,
) -> anyhow::Result<Arc<dyn Provider>> {
    build_with_env(
        cfg,
        max_sse_event_bytes,
        &|name| {
            Some(std::env::var(name).unwrap_or_else(|_| match name {
                "AWS_REGION" => "us-east-1".into(),
                _ => "offline-placeholder".into(),
            }))
        },
        true,
    )
}

fn build_with_env(
    cfg: &ProviderConfig,
    max_sse_event_bytes: usize,
    env: &dyn Fn(&str) -> Option<String>,
    offline: bool,
) -> anyhow::Result<Arc<dyn Provider>> {
    let client = http::client(cfg)?;
    Ok(match cfg.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::AzureOpenai => {
            let provider = openai::OpenAiProvider::new(cfg, client, max_sse_event_bytes);
            match cfg.azure.as_ref().and_then(|a| a.entra.as_ref()) {
                None => Arc::new(provider),
                Some(entra) => {
                    let e = entra
                        .resolve(env)
                        .map_err(|m| anyhow::anyhow!("azure.entra {m}"))?;
                    Arc::new(provider.with_tokens(oauth::TokenSource::client_credentials(
                        e.token_url,
                        e.client_id,
                        e.client_secret,
                        e.scope,
                    )))
                }
            }
        }
        ProviderKind::Anthropic => Arc::new(anthropic::AnthropicProvider::new(
            cfg,
            client,
            max_sse_event_bytes,
        )),
        ProviderKind::Gemini => Arc::new(gemini::GeminiProvider::new(
            cfg,
            client,
            max_sse_event_bytes,
        )),
        ProviderKind::Vertex if offline => Arc::new(gemini::GeminiProvider::vertex_offline(
            cfg,
            client,
            max_sse_event_bytes,
        )),
        ProviderKind::Vertex => {
            let access = cfg
                .vertex
                .clone()
                .unwrap_or_default()
                .resolve(env, &|path| std::fs::read_to_string(path))
                .map_err(|m| anyhow::anyhow!("kind vertex {m}"))?;
            Arc::new(
                gemini::GeminiProvider::vertex(cfg, access, client, max_sse_event_bytes)
                    .map_err(|m| anyhow::anyhow!("kind vertex: {m}"))?,
            )
        }
        ProviderKind::Bedrock => {
            let access = cfg
                .bedrock
                .clone()
                .unwrap_or_default()
                .resolve(&env)
                .map_err(|m| anyhow::anyhow!("kind bedrock {m}"))?;
            Arc::new(bedrock::BedrockProvider::new(
                cfg,
                access,
                client,
                max_sse_event_bytes,
            ))
        }
    })
}
