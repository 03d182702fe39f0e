//! Gateway configuration: a YAML file, or defaults from the standard provider
//! environment variables when there is none.
//!
//! Loaded once at start-up into immutable values; the request path never reads files
//! or the environment.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: {message}")]
    Parse {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serve HTTPS on `listen` with this certificate (PEM); plain HTTP without it.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Largest accepted request body; larger ones get 413 in the client's dialect.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest single SSE event accepted from an upstream (bounds per-stream memory).
    #[serde(default = "default_max_sse_event_bytes")]
    pub max_sse_event_bytes: usize,
    /// Model requests served at once; beyond it, 503 in the client's dialect (load
    /// shedding instead of unbounded queues).
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// A client must send its whole request body within this time (slow senders get 408).
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// On SIGTERM, in-flight requests and streams get this long to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    /// Open models served in-process (see docs/local-runtime.md).
    #[serde(default)]
    pub local_models: Vec<local_runtime::LocalModelConfig>,
    /// Sentence-embedding model directory (all-MiniLM-L6-v2 export) for `/v1/embeddings`.
    #[serde(default)]
    pub embedding_model: Option<EmbeddingModelConfig>,
    /// ONNX Runtime shared library; default `$SWITCHYARD_ORT_LIB` or the set-up cache.
    #[serde(default)]
    pub onnxruntime_library: Option<PathBuf>,
    /// Directory of policy YAML files. Without one, the built-in policy applies: the
    /// requested model, except that privacy-critical requests stay local.
    #[serde(default)]
    pub policy_dir: Option<PathBuf>,
    /// How often the policy directory is checked for changes (hot reload).
    #[serde(default = "default_policy_reload_ms")]
    pub policy_reload_ms: u64,
    #[serde(default)]
    pub circuit_breaker: CircuitBreakerConfig,
    /// Ledger, prices, local compute rates (docs/accounting.md).
    #[serde(default)]
    pub accounting: crate::accounting::AccountingConfig,
    /// Virtual keys and the admin token (docs/accounting.md).
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Budgets and rate limits (docs/limits.md).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
    /// Response cache (docs/cache.md).
    #[serde(default)]
    pub cache: crate::cache::CacheConfig,
    /// Shadow comparisons that policies request (docs/shadow.md).
    #[serde(default)]
    pub shadow: crate::shadow::ShadowConfig,
    /// Stored Responses API turns (docs/responses.md).
    #[serde(default)]
    pub responses: crate::conversations::ResponsesConfig,
    /// Console single sign-on through an OpenID Connect provider (docs/console.md).
    #[serde(default)]
    pub sso: Option<crate::oidc::SsoConfig>,
    /// The file this config was read from (absolute), `None` for the environment default.
    #[serde(skip)]
    pub source: Option<PathBuf>,
    /// In-process classifier settings (docs/classification.md).
    #[serde(default)]
    pub classifier: ClassifierConfig,
}

/// `classifier:`: the learned detectors beside the rules.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// The NER PII model (Rampart): when it runs, thresholds, model file.
    #[serde(default)]
    pub ner: crate::ner::NerSettings,
    /// The sentence head over MiniLM embeddings: difficulty, data referred to without a
    /// value, confidential content without a marker.
    #[serde(default)]
    pub sentence_head: crate::sentence_head::HeadSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingModelConfig {
    /// Name clients use in `/v1/embeddings`.
    pub name: String,
    pub dir: PathBuf,
}

impl EmbeddingModelConfig {
    pub fn default_minilm() -> Self {
        EmbeddingModelConfig {
            name: "local/all-minilm-l6-v2".into(),
            dir: local_runtime::default_model_dir("all-minilm-l6-v2"),
        }
    }
}

/// Certificate chain and private key for the HTTPS listener, both PEM files read once
/// at start-up (see `tls.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Leaf certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) private key.
    pub key_file: PathBuf,
}

/// A key from the config: its `Debug` never shows it, so a logged config cannot leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// At most this many endpoints per provider (attempts track them in a 64-bit set).
pub const MAX_ENDPOINTS: usize = 64;

/// One backend of a provider with several (`endpoints:`): another base URL, another
/// key, or both. What is absent is inherited from the provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Shown in `/readyz` and metric labels; defaults to the endpoint's index ("0", "1"…).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Share of the provider's calls (smooth weighted round-robin); 0 drains it.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// An endpoint with everything inherited filled in, as the providers use it.
#[derive(Debug, Clone)]
pub struct ResolvedEndpoint {
    pub label: String,
    /// Without a trailing `/`.
    pub base_url: String,
    pub api_key: Option<Secret>,
    pub weight: u32,
}

fn default_policy_reload_ms() -> u64 {
    1000
}

fn default_listen() -> String {
    DEFAULT_LISTEN.to_string()
}
fn default_max_body_bytes() -> usize {
    DEFAULT_MAX_BODY_BYTES
}
fn default_max_sse_event_bytes() -> usize {
    4 * 1024 * 1024
}
fn default_max_concurrent_requests() -> usize {
    4096
}
fn default_body_read_timeout_ms() -> u64 {
    60_000
}
fn default_shutdown_grace_ms() -> u64 {
    30_000
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// api.openai.com (or a proxy of it).
    Openai,
    /// api.anthropic.com (or a proxy of it).
    Anthropic,
    /// Anything that speaks OpenAI Chat Completions: vLLM, Ollama, Mistral…
    OpenaiCompatible,
    /// Azure OpenAI: deployments under a resource endpoint, `api-version`, `api-key` or an
    /// Entra ID bearer token (`azure:`).
    AzureOpenai,
    /// AWS Bedrock Runtime: Converse / ConverseStream, SigV4-signed (`bedrock:`).
    Bedrock,
    /// Google's Gemini API (`generateContent`, `x-goog-api-key`); `base_url` includes the
    /// API version, as in the SDKs (`https://generativelanguage.googleapis.com/v1beta`).
    Gemini,
    /// Gemini on Google Cloud Vertex AI: the same wire format under a project and location,
    /// authorized by a service account's OAuth token (`vertex:`).
    Vertex,
}

/// `vertex:` of a `vertex` provider. What is not set here comes from the standard Google
/// Cloud environment variables, read once at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VertexConfig {
    /// The Google Cloud project; default the service account's `project_id`, then
    /// `GOOGLE_CLOUD_PROJECT`.
    #[serde(default)]
    pub project: Option<String>,
    /// The region (`us-central1`, `europe-west4`) or `global`; default
    /// `GOOGLE_CLOUD_LOCATION`, then `us-central1`. The endpoint is
    /// `https://LOCATION-aiplatform.googleapis.com/v1` unless `base_url` overrides it.
    #[serde(default)]
    pub location: Option<String>,
    /// A service-account key file (JSON, as the console downloads it); default
    /// `GOOGLE_APPLICATION_CREDENTIALS`.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

/// A Vertex provider's project, location and service account, resolved at start-up.
#[derive(Debug, Clone)]
pub struct VertexAccess {
    pub project: String,
    pub location: String,
    pub account: crate::providers::oauth::ServiceAccount,
}

impl VertexConfig {
    /// Reads the service account (through `read`) and settles project and location.
    pub fn resolve(
        &self,
        var: &dyn Fn(&str) -> Option<String>,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
    ) -> Result<VertexAccess, String> {
        let var = |n: &str| var(n).filter(|v| !v.trim().is_empty());
        let path = self
            .credentials_file
            .clone()
            .or_else(|| var("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from))
            .ok_or("needs a service account: vertex.credentials_file or GOOGLE_APPLICATION_CREDENTIALS")?;
        let text = read(&path)
            .map_err(|e| format!("cannot read the service account {}: {e}", path.display()))?;
        let account = crate::providers::oauth::ServiceAccount::from_json(&text)
            .map_err(|e| format!("service account {}: {e}", path.display()))?;
        let project = self
            .project
            .clone()
            .or_else(|| account.project_id.clone())
            .or_else(|| var("GOOGLE_CLOUD_PROJECT"))
            .ok_or("needs a project: vertex.project, the service account's project_id or GOOGLE_CLOUD_PROJECT")?;
        let location = self
            .location
            .clone()
            .or_else(|| var("GOOGLE_CLOUD_LOCATION"))
            .unwrap_or_else(|| "us-central1".into());
        Ok(VertexAccess {
            project,
            location,
            account,
        })
    }
}

impl VertexAccess {
    /// The regional endpoint (`global` has none in its host name).
    pub fn default_base_url(&self) -> String {
        if self.location == "global" {
            "https://aiplatform.googleapis.com/v1".into()
        } else {
            format!("https://{}-aiplatform.googleapis.com/v1", self.location)
        }
    }
}

/// `bedrock:` of a `bedrock` provider. What is not set here comes from the standard AWS
/// environment variables, read once at start-up.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BedrockConfig {
    /// The AWS region (`us-east-1`); default `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    /// The endpoint is `https://bedrock-runtime.REGION.amazonaws.com` unless `base_url`
    /// overrides it (a VPC endpoint, a proxy, a test double).
    #[serde(default)]
    pub region: Option<String>,
    /// Default `AWS_ACCESS_KEY_ID`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Default `AWS_SECRET_ACCESS_KEY`. Prefer the environment over the file.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Default `AWS_SESSION_TOKEN` (temporary credentials only).
    #[serde(default)]
    pub session_token: Option<Secret>,
    /// Model name → Bedrock model id or inference profile id / ARN
    /// (`claude-sonnet-4-5: us.anthropic.claude-sonnet-4-5-20250929-v1:0`). A model without
    /// an entry is called by its own name. With no `models:` list the provider serves
    /// exactly these model names.
    #[serde(default)]
    pub model_ids: std::collections::BTreeMap<String, String>,
}

/// A Bedrock provider's region and credentials, resolved at start-up.
#[derive(Debug, Clone)]
pub struct BedrockAccess {
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
}

impl BedrockConfig {
    /// Region and credentials from this section, else from `var` (the environment).
    pub fn resolve(&self, var: &impl Fn(&str) -> Option<String>) -> Result<BedrockAccess, String> {
        let env = |names: &[&str]| {
            names
                .iter()
                .find_map(|n| var(n).filter(|v| !v.trim().is_empty()))
        };
        // A value in the file wins; one set there but empty is a mistake, not a fallback.
        fn pick(
            file: Option<&str>,
            field: &str,
            fallback: Option<String>,
            hint: &str,
        ) -> Result<String, String> {
            match file {
                Some(v) if v.trim().is_empty() => Err(format!("has an empty bedrock.{field}")),
                Some(v) => Ok(v.to_owned()),
                None => fallback.ok_or_else(|| hint.to_owned()),
            }
        }
        let region = pick(
            self.region.as_deref(),
            "region",
            env(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            "needs a region: set bedrock.region or AWS_REGION",
        )?;
        let access_key_id = pick(
            self.access_key_id.as_deref(),
            "access_key_id",
            env(&["AWS_ACCESS_KEY_ID"]),
            "needs credentials: bedrock.access_key_id or AWS_ACCESS_KEY_ID is not set",
        )?;
        let secret_access_key = Secret(pick(
            self.secret_access_key.as_ref().map(Secret::expose),
            "secret_access_key",
            env(&["AWS_SECRET_ACCESS_KEY"]),
            "needs credentials: bedrock.secret_access_key or AWS_SECRET_ACCESS_KEY is not set",
        )?);
        // A session token belongs to the environment's key pair only.
        let session_token = match (&self.session_token, &self.access_key_id) {
            (Some(t), _) => Some(t.clone()),
            (None, None) => env(&["AWS_SESSION_TOKEN"]).map(Secret),
            (None, Some(_)) => None,
        };
        Ok(BedrockAccess {
            region,
            access_key_id,
            secret_access_key,
            session_token,
        })
    }
}

/// `azure:` of an `azure_openai` provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureConfig {
    /// The `api-version` query parameter every call carries.
    #[serde(default = "default_azure_api_version")]
    pub api_version: String,
    /// Model name → deployment name. A model without an entry is called as the
    /// deployment of the same name (Azure's common convention). With no `models:` list
    /// the provider serves exactly these model names.
    #[serde(default)]
    pub deployments: std::collections::BTreeMap<String, String>,
    /// How the key is sent: `api_key` (the `api-key` header) or `entra` (an Entra ID
    /// access token as `Authorization: Bearer`).
    #[serde(default)]
    pub auth: AzureAuth,
    /// With `auth: entra`: an app registration whose tokens the gateway fetches and renews
    /// itself (client credentials). Without it, `api_key` is the token, as it is.
    #[serde(default)]
    pub entra: Option<EntraConfig>,
}

/// `azure.entra:`: an Entra ID application (service principal) with access to the
/// resource (the Cognitive Services OpenAI User role).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntraConfig {
    /// The directory (tenant) id; default `AZURE_TENANT_ID`.
    #[serde(default)]
    pub tenant_id: Option<String>,
    /// The application (client) id; default `AZURE_CLIENT_ID`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The variable holding the client secret; default `AZURE_CLIENT_SECRET`.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The login host, for sovereign clouds or a proxy.
    #[serde(default = "default_entra_authority")]
    pub authority: String,
    /// What the token is for.
    #[serde(default = "default_entra_scope")]
    pub scope: String,
}

fn default_entra_authority() -> String {
    "https://login.microsoftonline.com".into()
}

fn default_entra_scope() -> String {
    "https://cognitiveservices.azure.com/.default".into()
}

/// An Entra application resolved at start-up: where to ask, and with what.
#[derive(Debug, Clone)]
pub struct EntraAccess {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scope: String,
}

impl EntraConfig {
    pub fn resolve(&self, var: &dyn Fn(&str) -> Option<String>) -> Result<EntraAccess, String> {
        let var = |n: &str| var(n).filter(|v| !v.trim().is_empty());
        let tenant = self
            .tenant_id
            .clone()
            .or_else(|| var("AZURE_TENANT_ID"))
            .ok_or("needs azure.entra.tenant_id or AZURE_TENANT_ID")?;
        let client_id = self
            .client_id
            .clone()
            .or_else(|| var("AZURE_CLIENT_ID"))
            .ok_or("needs azure.entra.client_id or AZURE_CLIENT_ID")?;
        let secret_var = self
            .client_secret_env
            .clone()
            .unwrap_or_else(|| "AZURE_CLIENT_SECRET".into());
        let client_secret = var(&secret_var)
            .map(Secret::new)
            .ok_or_else(|| format!("needs the client secret in ${secret_var}"))?;
        Ok(EntraAccess {
            token_url: format!(
                "{}/{tenant}/oauth2/v2.0/token",
                self.authority.trim_end_matches('/')
            ),
            client_id,
            client_secret,
            scope: self.scope.clone(),
        })
    }
}

impl Default for AzureConfig {
    fn default() -> Self {
        AzureConfig {
            api_version: default_azure_api_version(),
            deployments: Default::default(),
            auth: AzureAuth::default(),
            entra: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AzureAuth {
    #[default]
    ApiKey,
    Entra,
}

fn default_azure_api_version() -> String {
    "2024-10-21".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name; `NAME/model` in a request routes to this provider.
    pub name: String,
    pub kind: ProviderKind,
    /// OpenAI style includes `/v1` (`https://api.openai.com/v1`); Anthropic style does
    /// not (`https://api.anthropic.com`), as in each SDK's `*_BASE_URL`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The key itself. Prefer `api_key_env` so secrets stay out of files.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// Name of the environment variable holding the key (read once at start-up).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Several backends (base URLs and/or keys) sharing this provider's calls by weight;
    /// without it the provider is one endpoint made of `base_url` and the key above.
    #[serde(default)]
    pub endpoints: Vec<EndpointConfig>,
    /// Whole-request deadline for non-streaming calls; for streams, the deadline for the
    /// response head and for each gap between chunks.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Model names this provider serves: exact names or `*` globs. The first provider
    /// (in file order) whose list matches a requested model serves it.
    #[serde(default)]
    pub models: Vec<String>,
    /// Extra headers sent on every upstream request (e.g. `OpenAI-Organization`).
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    /// Whether requests to this provider leave the organization. Default true; set it
    /// to false only for an endpoint you run inside your own network (e.g. a vLLM box),
    /// since policies then treat it like the in-process model for privacy.
    #[serde(default = "default_external")]
    pub external: bool,
    /// Retries of a failed call (connect error, timeout, 429, 5xx) before anything
    /// reached the client, with jittered exponential backoff; then the next target.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    #[serde(default = "default_retry_base_ms")]
    pub retry_base_ms: u64,
    #[serde(default = "default_retry_max_ms")]
    pub retry_max_ms: u64,
    /// A `retry-after` longer than this is not waited for.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
    /// Azure OpenAI settings (`kind: azure_openai` only).
    #[serde(default)]
    pub azure: Option<AzureConfig>,
    /// AWS Bedrock settings (`kind: bedrock` only).
    #[serde(default)]
    pub bedrock: Option<BedrockConfig>,
    /// Vertex AI settings (`kind: vertex` only).
    #[serde(default)]
    pub vertex: Option<VertexConfig>,
}

fn default_max_retries() -> u32 {
    2
}
fn default_retry_base_ms() -> u64 {
    100
}
fn default_retry_max_ms() -> u64 {
    2_000
}
fn default_max_retry_after_ms() -> u64 {
    2_000
}

/// Per provider and model: consecutive retryable failures open the circuit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CircuitBreakerConfig {
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    #[serde(default = "default_cooldown_ms")]
    pub cooldown_ms: u64,
}

impl Default for CircuitBreakerConfig {
    fn default() -> Self {
        CircuitBreakerConfig {
            failure_threshold: default_failure_threshold(),
            cooldown_ms: default_cooldown_ms(),
        }
    }
}

fn default_failure_threshold() -> u32 {
    5
}
fn default_cooldown_ms() -> u64 {
    30_000
}

fn default_external() -> bool {
    true
}

fn default_timeout_ms() -> u64 {
    600_000
}
fn default_connect_timeout_ms() -> u64 {
    10_000
}

impl ProviderConfig {
    pub fn retry_policy(&self) -> crate::providers::resilience::RetryPolicy {
        use std::time::Duration;
        crate::providers::resilience::RetryPolicy {
            max_retries: self.max_retries,
            base_delay: Duration::from_millis(self.retry_base_ms),
            max_delay: Duration::from_millis(self.retry_max_ms),
            max_retry_after: Duration::from_millis(self.max_retry_after_ms),
        }
    }

    pub fn default_base_url(&self) -> &'static str {
        match self.kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com",
            ProviderKind::Gemini => "https://generativelanguage.googleapis.com/v1beta",
            // The regional endpoint, formed from the location at start-up.
            ProviderKind::Vertex => "",
            // Validation requires a base URL (the resource endpoint) for Azure.
            ProviderKind::AzureOpenai => "",
            // The regional endpoint, formed from the region at start-up.
            ProviderKind::Bedrock => "",
        }
    }

    pub fn base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or_else(|| self.default_base_url())
            .trim_end_matches('/')
    }

    /// The base URL as start-up lines and `check-config` show it: for Bedrock without an
    /// override, the regional endpoint (the region from the file, else `$AWS_REGION`).
    pub fn shown_base_url(&self) -> String {
        match (self.kind, &self.base_url) {
            (ProviderKind::Bedrock, None) => {
                let region = self
                    .bedrock
                    .as_ref()
                    .and_then(|b| b.region.clone())
                    .unwrap_or_else(|| "$AWS_REGION".into());
                format!("https://bedrock-runtime.{region}.amazonaws.com")
            }
            (ProviderKind::Vertex, None) => {
                let location = self
                    .vertex
                    .as_ref()
                    .and_then(|v| v.location.clone())
                    .unwrap_or_else(|| "$GOOGLE_CLOUD_LOCATION".into());
                format!("https://{location}-aiplatform.googleapis.com/v1")
            }
            _ => self.base_url().to_string(),
        }
    }

    /// The model names this provider serves: `models:`, or for Azure without it, the
    /// deployments' model names.
    pub fn served_models(&self) -> Vec<String> {
        match (&self.azure, &self.bedrock, self.models.is_empty()) {
            (Some(azure), _, true) => azure.deployments.keys().cloned().collect(),
            (_, Some(bedrock), true) => bedrock.model_ids.keys().cloned().collect(),
            _ => self.models.clone(),
        }
    }

    /// The key, resolved from `api_key` or `api_key_env`. `None` is allowed: some
    /// OpenAI-compatible servers (Ollama, vLLM) need no key.
    pub fn resolve_api_key(&self) -> Option<Secret> {
        resolve_key(self.api_key.as_ref(), self.api_key_env.as_ref())
    }

    /// The endpoints calls are spread over, in config order: the `endpoints:` list with
    /// the provider's base URL and key filled in where an entry has none, or the
    /// provider itself as endpoint "0". Reads key variables: call it at start-up only.
    pub fn resolved_endpoints(&self) -> Vec<ResolvedEndpoint> {
        if self.endpoints.is_empty() {
            return vec![ResolvedEndpoint {
                label: "0".into(),
                base_url: self.base_url().to_string(),
                api_key: self.resolve_api_key(),
                weight: 1,
            }];
        }
        self.endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| ResolvedEndpoint {
                label: endpoint_label(i, e),
                base_url: e
                    .base_url
                    .as_deref()
                    .map_or_else(|| self.base_url(), |u| u.trim_end_matches('/'))
                    .to_string(),
                api_key: if e.api_key.is_some() || e.api_key_env.is_some() {
                    resolve_key(e.api_key.as_ref(), e.api_key_env.as_ref())
                } else {
                    self.resolve_api_key()
                },
                weight: e.weight,
            })
            .collect()
    }

    fn validate_endpoints(&self) -> Result<(), String> {
        if self.endpoints.is_empty() {
            return Ok(());
        }
        let name = &self.name;
        if self.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!(
                "provider {name:?}: at most {MAX_ENDPOINTS} endpoints are supported"
            ));
        }
        let mut labels = std::collections::HashSet::new();
        let mut total: u64 = 0;
        for (i, e) in self.endpoints.iter().enumerate() {
            let label = endpoint_label(i, e);
            if let Some(n) = &e.name {
                let ok_chars = n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if n.is_empty() || n.len() > 64 || !ok_chars {
                    return Err(format!(
                        "provider {name:?}: endpoint name {n:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
                    ));
                }
            }
            if !labels.insert(label.clone()) {
                return Err(format!(
                    "provider {name:?}: endpoint name {label:?} is used twice (unnamed endpoints are named by their index)"
                ));
            }
            if let Some(url) = &e.base_url {
                check_url(url).map_err(|m| {
                    format!("provider {name:?}: endpoint {label:?}: base_url {url:?} {m}")
                })?;
            }
            if e.api_key.is_some() && e.api_key_env.is_some() {
                return Err(format!(
                    "provider {name:?}: endpoint {label:?}: set api_key or api_key_env, not both"
                ));
            }
            total += u64::from(e.weight);
        }
        if total == 0 {
            return Err(format!(
                "provider {name:?}: the weights of its endpoints add up to 0; give at least one a weight above 0"
            ));
        }
        Ok(())
    }
}

fn endpoint_label(index: usize, e: &EndpointConfig) -> String {
    e.name.clone().unwrap_or_else(|| index.to_string())
}

fn resolve_key(key: Option<&Secret>, env: Option<&String>) -> Option<Secret> {
    if let Some(key) = key {
        return Some(key.clone());
    }
    env.and_then(|var| std::env::var(var).ok())
        .filter(|k| !k.is_empty())
        .map(Secret)
}

/// An absolute http(s) URL with a host; the error completes "base_url X …".
fn check_url(url: &str) -> Result<(), &'static str> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("must start with http:// or https://");
    }
    match reqwest::Url::parse(url) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err("is not a valid URL"),
    }
}

/// A provider the gateway configures from the standard environment variables.
pub struct EnvProvider {
    pub name: &'static str,
    /// How the provider is named in messages.
    pub label: &'static str,
    pub kind: ProviderKind,
    pub key_var: &'static str,
    pub base_url_var: &'static str,
    /// The model names it serves.
    pub models: &'static [&'static str],
}

/// The providers the environment variables configure: one list for the default config,
/// the start-up summary and the "model not found" hint.
pub const ENV_PROVIDERS: &[EnvProvider] = &[
    EnvProvider {
        name: "openai",
        label: "OpenAI",
        kind: ProviderKind::Openai,
        key_var: "OPENAI_API_KEY",
        base_url_var: "OPENAI_BASE_URL",
        models: &["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "ft:*"],
    },
    EnvProvider {
        name: "anthropic",
        label: "Anthropic",
        kind: ProviderKind::Anthropic,
        key_var: "ANTHROPIC_API_KEY",
        base_url_var: "ANTHROPIC_BASE_URL",
        models: &["claude-*"],
    },
];

/// The environment provider whose model names include `model`.
pub fn env_provider_for(model: &str) -> Option<&'static EnvProvider> {
    ENV_PROVIDERS.iter().find(|p| {
        p.models
            .iter()
            .any(|pattern| crate::routing::glob_match(pattern, model))
    })
}

/// The providers configured by the environment: each whose key or base URL is set.
pub fn env_providers(var: &impl Fn(&str) -> Option<String>) -> Vec<ProviderConfig> {
    ENV_PROVIDERS
        .iter()
        .filter_map(|p| {
            let base_url = var(p.base_url_var);
            (var(p.key_var).is_some() || base_url.is_some()).then(|| ProviderConfig {
                name: p.name.into(),
                kind: p.kind,
                base_url,
                api_key: None,
                api_key_env: Some(p.key_var.into()),
                endpoints: Vec::new(),
                timeout_ms: default_timeout_ms(),
                connect_timeout_ms: default_connect_timeout_ms(),
                models: p.models.iter().map(|m| m.to_string()).collect(),
                headers: Default::default(),
                external: true,
                max_retries: default_max_retries(),
                retry_base_ms: default_retry_base_ms(),
                retry_max_ms: default_retry_max_ms(),
                max_retry_after_ms: default_max_retry_after_ms(),
                azure: None,
                bedrock: None,
                vertex: None,
            })
        })
        .collect()
}

impl Config {
    pub fn from_yaml_str(yaml: &str) -> Result<Config, ConfigError> {
        Self::parse(yaml, "<config>")
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text, &path.display().to_string())?;
        config.source = Some(std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()));
        Ok(config)
    }

    /// The ledger database: `accounting.database_url`, or the default SQLite file of this
    /// config (`Db::default_sqlite_url_for`).
    pub fn database_url(&self) -> String {
        self.accounting
            .database_url
            .clone()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| crate::store::Db::default_sqlite_url_for(self.source.as_deref()))
    }

    fn parse(yaml: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml_ng::from_str(yaml).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError::Parse {
                origin: origin.to_string(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            message,
        };
        self.shadow.validate().map_err(invalid)?;
        self.classifier.ner.validate().map_err(invalid)?;
        let mut seen = std::collections::HashSet::new();
        for p in &self.providers {
            if p.name.is_empty() || p.name.contains('/') {
                return Err(invalid(format!(
                    "provider name {:?} must be non-empty and contain no '/'",
                    p.name
                )));
            }
            if !seen.insert(p.name.as_str()) {
                return Err(invalid(format!("provider name {:?} is used twice", p.name)));
            }
            if let Some(url) = &p.base_url {
                check_url(url)
                    .map_err(|m| invalid(format!("provider {:?}: base_url {url:?} {m}", p.name)))?;
            }
            p.validate_endpoints().map_err(invalid)?;
            let azure = p.kind == ProviderKind::AzureOpenai;
            let every_endpoint_has_url = p.base_url.is_some()
                || (!p.endpoints.is_empty() && p.endpoints.iter().all(|e| e.base_url.is_some()));
            if azure && !every_endpoint_has_url {
                return Err(invalid(format!(
                    "provider {:?}: kind azure_openai needs base_url, the resource endpoint (https://RESOURCE.openai.azure.com)",
                    p.name
                )));
            }
            if let Some(a) = p.azure.as_ref().filter(|a| a.entra.is_some()) {
                if a.auth != AzureAuth::Entra {
                    return Err(invalid(format!(
                        "provider {:?}: azure.entra needs azure.auth: entra",
                        p.name
                    )));
                }
                if p.api_key.is_some() || p.api_key_env.is_some() {
                    return Err(invalid(format!(
                        "provider {:?}: with azure.entra the gateway fetches its own tokens; remove api_key",
                        p.name
                    )));
                }
            }
            if !azure && p.azure.is_some() {
                return Err(invalid(format!(
                    "provider {:?}: `azure:` applies to kind azure_openai only",
                    p.name
                )));
            }
            let bedrock = p.kind == ProviderKind::Bedrock;
            if !bedrock && p.bedrock.is_some() {
                return Err(invalid(format!(
                    "provider {:?}: `bedrock:` applies to kind bedrock only",
                    p.name
                )));
            }
            if bedrock && (p.api_key.is_some() || p.api_key_env.is_some()) {
                return Err(invalid(format!(
                    "provider {:?}: kind bedrock signs with AWS credentials (bedrock.access_key_id / AWS_ACCESS_KEY_ID…), not api_key",
                    p.name
                )));
            }
            let vertex = p.kind == ProviderKind::Vertex;
            if !vertex && p.vertex.is_some() {
                return Err(invalid(format!(
                    "provider {:?}: `vertex:` applies to kind vertex only",
                    p.name
                )));
            }
            if vertex && (p.api_key.is_some() || p.api_key_env.is_some()) {
                return Err(invalid(format!(
                    "provider {:?}: kind vertex authorizes with a service account (vertex.credentials_file / GOOGLE_APPLICATION_CREDENTIALS), not api_key",
                    p.name
                )));
            }
            if p.timeout_ms == 0 || p.connect_timeout_ms == 0 {
                return Err(invalid(format!(
                    "provider {:?}: timeouts must be greater than 0",
                    p.name
                )));
            }
        }
        for m in &self.local_models {
            if !m.name.starts_with("local/") {
                return Err(invalid(format!(
                    "local model {:?}: names of local models start with `local/`",
                    m.name
                )));
            }
        }
        if self.max_body_bytes == 0 {
            return Err(invalid("max_body_bytes must be greater than 0".into()));
        }
        Ok(())
    }

    /// The configuration used when no file is given: providers from the standard
    /// environment variables (`OPENAI_API_KEY`/`OPENAI_BASE_URL`,
    /// `ANTHROPIC_API_KEY`/`ANTHROPIC_BASE_URL`). A provider is configured when its key
    /// or its base URL is set.
    pub fn from_env() -> Config {
        Self::from_env_vars(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    pub fn from_env_vars(var: impl Fn(&str) -> Option<String>) -> Config {
        let providers = env_providers(&var);
        // The set-up cache's models, when `scripts/setup-models.sh` has prepared them.
        let smollm2 = local_runtime::LocalModelConfig::default_smollm2();
        let local_models = if smollm2.dir.join("model.onnx").exists() {
            vec![smollm2]
        } else {
            tracing::warn!(
                dir = %smollm2.dir.display(),
                "default local model not found; run scripts/setup-models.sh to prepare it"
            );
            Vec::new()
        };
        let minilm = EmbeddingModelConfig::default_minilm();
        let embedding_model = minilm.dir.join("model.onnx").exists().then_some(minilm);
        Config {
            listen: default_listen(),
            tls: None,
            max_body_bytes: default_max_body_bytes(),
            max_sse_event_bytes: default_max_sse_event_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
            body_read_timeout_ms: default_body_read_timeout_ms(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            providers,
            local_models,
            embedding_model,
            onnxruntime_library: None,
            policy_dir: var("SWITCHYARD_POLICY_DIR").map(PathBuf::from),
            policy_reload_ms: default_policy_reload_ms(),
            circuit_breaker: CircuitBreakerConfig::default(),
            accounting: Default::default(),
            auth: Default::default(),
            limits: Default::default(),
            cache: Default::default(),
            shadow: Default::default(),
            responses: Default::default(),
            sso: None,
            source: None,
            classifier: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_identities_are_checked_where_they_are_configured() {
        let azure = |auth: &str, key: &str| {
            format!(
                "providers:\n  - name: az\n    kind: azure_openai\n    base_url: https://r.openai.azure.com\n{key}    azure: {{ auth: {auth}, entra: {{ tenant_id: t, client_id: c }} }}\n"
            )
        };
        let err = Config::from_yaml_str(&azure("api_key", "")).unwrap_err();
        assert!(
            err.to_string()
                .contains("azure.entra needs azure.auth: entra"),
            "{err}"
        );
        let err = Config::from_yaml_str(&azure("entra", "    api_key: k\n")).unwrap_err();
        assert!(err.to_string().contains("remove api_key"), "{err}");
        assert!(Config::from_yaml_str(&azure("entra", "")).is_ok());
        let env = |name: &str| (name == "S").then(|| "secret".to_string());
        let entra = EntraConfig {
            tenant_id: Some("t".into()),
            client_id: None,
            client_secret_env: Some("S".into()),
            authority: "https://login.example/".into(),
            scope: default_entra_scope(),
        };
        assert!(entra.resolve(&env).unwrap_err().contains("AZURE_CLIENT_ID"));
        let e = EntraConfig {
            client_id: Some("c".into()),
            ..entra
        }
        .resolve(&env)
        .expect("resolves");
        assert_eq!(e.token_url, "https://login.example/t/oauth2/v2.0/token");

        let vertex = "providers:\n  - name: v\n    kind: vertex\n    api_key: k\n";
        let err = Config::from_yaml_str(vertex).unwrap_err();
        assert!(err.to_string().contains("service account"), "{err}");
        let wrong = "providers:\n  - name: g\n    kind: gemini\n    vertex: { project: p }\n";
        let err = Config::from_yaml_str(wrong).unwrap_err();
        assert!(
            err.to_string().contains("applies to kind vertex only"),
            "{err}"
        );
        let read = |_: &Path| {
            Ok(r#"{"client_email": "a@b", "private_key": "k", "project_id": "p1"}"#.to_string())
        };
        let access = VertexConfig::default()
            .resolve(
                &|n: &str| (n == "GOOGLE_APPLICATION_CREDENTIALS").then(|| "/sa.json".into()),
                &read,
            )
            .expect("resolves");
        assert_eq!(
            (access.project.as_str(), access.location.as_str()),
            ("p1", "us-central1")
        );
        assert_eq!(
            access.default_base_url(),
            "https://us-central1-aiplatform.googleapis.com/v1"
        );
        let global = VertexAccess {
            location: "global".into(),
            ..access
        };
        assert_eq!(
            global.default_base_url(),
            "https://aiplatform.googleapis.com/v1"
        );
    }

    #[test]
    fn bedrock_credentials_come_from_the_file_or_the_standard_aws_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let aws = env(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
            ("AWS_SESSION_TOKEN", "env-token"),
        ]);
        let a = BedrockConfig::default()
            .resolve(&aws)
            .expect("from the environment");
        assert_eq!(
            (a.region.as_str(), a.access_key_id.as_str()),
            ("eu-west-1", "AKIAENV")
        );
        assert_eq!(a.secret_access_key.expose(), "env-secret");
        assert_eq!(
            a.session_token.as_ref().map(Secret::expose),
            Some("env-token")
        );
        // A key pair from the file never borrows the environment's session token.
        let file = BedrockConfig {
            region: Some("us-west-2".into()),
            access_key_id: Some("AKIAFILE".into()),
            secret_access_key: Some(Secret::new("file-secret")),
            ..BedrockConfig::default()
        };
        let a = file.resolve(&aws).expect("from the file");
        assert_eq!(
            (a.region.as_str(), a.access_key_id.as_str()),
            ("us-west-2", "AKIAFILE")
        );
        assert!(a.session_token.is_none());
        let none = env(&[]);
        let e = BedrockConfig::default()
            .resolve(&none)
            .expect_err("nothing set");
        assert!(e.contains("AWS_REGION"), "{e}");
        let e = BedrockConfig {
            region: Some("us-east-1".into()),
            ..BedrockConfig::default()
        }
        .resolve(&none)
        .expect_err("no key");
        assert!(e.contains("AWS_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn each_config_file_has_its_own_default_ledger() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        std::fs::write(&a, "listen: 127.0.0.1:0\n").expect("write");
        std::fs::write(&b, "listen: 127.0.0.1:0\n").expect("write");
        let (ca, cb) = (Config::load(&a).expect("a"), Config::load(&b).expect("b"));
        assert_ne!(ca.database_url(), cb.database_url());
        // The CLI loading the same file (by another spelling of its path) finds the same one.
        let again = Config::load(&dir.path().join(".").join("a.yaml")).expect("a again");
        assert_eq!(ca.database_url(), again.database_url());
        assert!(
            ca.database_url().contains("switchyard-a-"),
            "{}",
            ca.database_url()
        );
        // An explicit database wins; no config file keeps the historical default.
        let explicit = Config::from_yaml_str("accounting: { database_url: 'sqlite::memory:' }")
            .expect("explicit");
        assert_eq!(explicit.database_url(), "sqlite::memory:");
        assert!(Config::from_env_vars(|_| None)
            .database_url()
            .ends_with("/switchyard.db"));
    }

    #[test]
    fn parses_full_config() {
        let cfg = Config::from_yaml_str(
            r#"
listen: "127.0.0.1:0"
providers:
  - name: oai
    kind: openai
    base_url: "http://127.0.0.1:9/v1/"
    api_key: sk-test
    models: ["gpt-*"]
  - name: claude
    kind: anthropic
    api_key_env: SOME_VAR
    models: ["claude-*"]
"#,
        )
        .unwrap();
        assert_eq!(cfg.providers.len(), 2);
        assert_eq!(cfg.providers[0].base_url(), "http://127.0.0.1:9/v1");
        assert_eq!(cfg.providers[1].base_url(), "https://api.anthropic.com");
        assert_eq!(cfg.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn unknown_key_reports_line_and_column() {
        let err = Config::from_yaml_str("listen: x\nprovders: []\n").unwrap_err();
        match err {
            ConfigError::Parse { line, message, .. } => {
                assert_eq!(line, 2);
                assert!(message.contains("provders"), "{message}");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn rejects_duplicate_provider_names_and_bad_urls() {
        let dup = "providers:\n  - {name: a, kind: openai}\n  - {name: a, kind: anthropic}\n";
        assert!(matches!(
            Config::from_yaml_str(dup),
            Err(ConfigError::Invalid { .. })
        ));
        let url = "providers:\n  - {name: a, kind: openai, base_url: 'ftp://x'}\n";
        assert!(matches!(
            Config::from_yaml_str(url),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn endpoints_inherit_url_and_key_from_their_provider() {
        let cfg = Config::from_yaml_str(
            r#"
providers:
  - name: pool
    kind: openai
    base_url: "http://10.0.0.1/v1/"
    api_key: sk-provider
    endpoints:
      - { name: east, weight: 3 }
      - { base_url: "http://10.0.0.2/v1", api_key: sk-second }
"#,
        )
        .unwrap();
        let e = cfg.providers[0].resolved_endpoints();
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].label.as_str(), e[0].base_url.as_str(), e[0].weight),
            ("east", "http://10.0.0.1/v1", 3)
        );
        assert_eq!(e[0].api_key, Some(Secret::new("sk-provider")));
        assert_eq!(
            (e[1].label.as_str(), e[1].base_url.as_str(), e[1].weight),
            ("1", "http://10.0.0.2/v1", 1)
        );
        assert_eq!(e[1].api_key, Some(Secret::new("sk-second")));
        let shown = format!("{cfg:?} {e:?}");
        assert!(
            !shown.contains("sk-second") && !shown.contains("sk-provider"),
            "{shown}"
        );
        // Without `endpoints:` the provider itself is endpoint "0".
        let single = Config::from_yaml_str("providers:\n  - {name: a, kind: anthropic}\n")
            .unwrap()
            .providers[0]
            .resolved_endpoints();
        assert_eq!(single.len(), 1);
        assert_eq!(single[0].label, "0");
        assert_eq!(single[0].base_url, "https://api.anthropic.com");
    }

    #[test]
    fn bad_endpoints_are_rejected_with_the_reason() {
        let err = |yaml: &str| match Config::from_yaml_str(yaml) {
            Err(ConfigError::Invalid { message, .. }) => message,
            other => panic!("expected Invalid, got {other:?}"),
        };
        let zero =
            err("providers:\n  - {name: p, kind: openai, endpoints: [{weight: 0}, {weight: 0}]}\n");
        assert!(zero.contains("add up to 0"), "{zero}");
        let url =
            err("providers:\n  - {name: p, kind: openai, endpoints: [{base_url: 'http://'}]}\n");
        assert!(
            url.contains("endpoint \"0\"") && url.contains("not a valid URL"),
            "{url}"
        );
        let scheme =
            err("providers:\n  - {name: p, kind: openai, endpoints: [{base_url: 'ftp://x'}]}\n");
        assert!(scheme.contains("http://"), "{scheme}");
        let dup = err("providers:\n  - {name: p, kind: openai, endpoints: [{name: '1'}, {}]}\n");
        assert!(dup.contains("used twice"), "{dup}");
        let name = err("providers:\n  - {name: p, kind: openai, endpoints: [{name: 'a b'}]}\n");
        assert!(name.contains("letters, digits"), "{name}");
        let both = err(
            "providers:\n  - {name: p, kind: openai, endpoints: [{api_key: k, api_key_env: K}]}\n",
        );
        assert!(both.contains("not both"), "{both}");
        assert!(
            !both.contains(": k"),
            "the key itself is never quoted: {both}"
        );
        // One drained endpoint is fine as long as another takes calls.
        Config::from_yaml_str(
            "providers:\n  - {name: p, kind: openai, endpoints: [{weight: 0}, {weight: 2}]}\n",
        )
        .unwrap();
    }

    #[test]
    fn tls_section_parses() {
        let cfg =
            Config::from_yaml_str("tls: {cert_file: /a/cert.pem, key_file: /a/key.pem}\n").unwrap();
        let tls = cfg.tls.unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("/a/cert.pem"));
        assert!(Config::from_yaml_str("tls: {cert_file: /a/cert.pem}\n").is_err());
    }

    #[test]
    fn env_defaults_configure_only_what_is_set() {
        let cfg = Config::from_env_vars(|name| {
            (name == "OPENAI_BASE_URL").then(|| "http://127.0.0.1:9000/v1".to_string())
        });
        assert_eq!(cfg.providers.len(), 1);
        assert_eq!(cfg.providers[0].kind, ProviderKind::Openai);
        assert_eq!(cfg.providers[0].base_url(), "http://127.0.0.1:9000/v1");
        assert!(Config::from_env_vars(|_| None).providers.is_empty());
    }
}
