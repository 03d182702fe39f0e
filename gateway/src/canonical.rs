//! The one request/response/stream model every later stage sees.
//!
//! Each client dialect (`dialects::openai`, `dialects::anthropic`) converts its wire
//! types to and from these. Classification, policy, cache, accounting and providers
//! work only on these types, so a new dialect or provider never touches them.
//!
//! Shape choices:
//! - Content is a list of typed parts in order (the Anthropic shape), because it is the
//!   more general one: OpenAI `tool_calls` become `ContentPart::ToolCall` parts of an
//!   assistant message and OpenAI `role: tool` messages become `ContentPart::ToolResult`
//!   parts of a user message.
//! - Fields that only one dialect knows and that we must pass through untouched
//!   (`cache_control`, unknown top-level fields) are kept as raw JSON, tagged with the
//!   dialect they came from, and only forwarded to a backend of that same dialect.

use std::pin::Pin;

use futures::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A canonical answer arriving piece by piece. Dropping it cancels the upstream call.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, GatewayError>> + Send>>;

/// The wire dialect a client spoke: one type, shared with the policy language.
pub use policies::Dialect;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System / developer instructions. Anthropic's top-level `system` becomes leading
    /// messages with this role; OpenAI `system` and `developer` messages keep their place.
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
    /// OpenAI's optional participant name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Message {
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message {
            role,
            content: vec![ContentPart::text(text)],
            name: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
        /// Anthropic prompt-caching marker, passed through verbatim.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    Image {
        source: ImageSource,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
    /// A tool invocation produced by the assistant.
    ToolCall {
        id: String,
        name: String,
        /// The arguments as JSON text, exactly as the model produced them (OpenAI keeps
        /// them as a string; Anthropic as an object, which we serialize).
        arguments: String,
    },
    /// Anthropic extended thinking: the model's reasoning and the signature with which
    /// Anthropic checks it when a client sends it back (it must, in a tool-use loop).
    /// Only the Anthropic dialect has a place for it, on both sides; every other
    /// dialect and backend skips it. Never rewritten: an edited block fails Anthropic's
    /// signature check, so redaction drops a block it would have to change.
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    /// Thinking Anthropic returned encrypted (`redacted_thinking`): opaque, passed
    /// through to Anthropic backends only.
    RedactedThinking { data: String },
    /// The result of a tool invocation, supplied by the client.
    ToolResult {
        call_id: String,
        content: Vec<ContentPart>,
        #[serde(default)]
        is_error: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cache_control: Option<Value>,
    },
}

impl ContentPart {
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text {
            text: text.into(),
            cache_control: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageSource {
    Url { url: String },
    Base64 { media_type: String, data: String },
}

impl ImageSource {
    /// An image as OpenAI-style clients give it: `data:<media type>;base64,<data>`
    /// becomes inline base64 (what Anthropic and Gemini need); anything else stays a URL.
    pub fn from_url(url: &str) -> ImageSource {
        if let Some((meta, data)) = url.strip_prefix("data:").and_then(|r| r.split_once(',')) {
            if let Some(media_type) = meta.strip_suffix(";base64") {
                let media_type = media_type.split(';').next().unwrap_or_default();
                if !media_type.is_empty() {
                    return ImageSource::Base64 {
                        media_type: media_type.to_owned(),
                        data: data.to_owned(),
                    };
                }
            }
        }
        ImageSource::Url {
            url: url.to_owned(),
        }
    }
}

impl ToolChoice {
    /// The string forms every OpenAI-style dialect accepts: `auto`, `none`, `required`.
    pub fn from_mode(mode: &str) -> Option<ToolChoice> {
        match mode {
            "auto" => Some(ToolChoice::Auto),
            "none" => Some(ToolChoice::None),
            "required" => Some(ToolChoice::Required),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool (OpenAI `required`, Anthropic `any`).
    Required,
    /// The model must call this tool.
    Tool {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema { schema: Value },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<u32>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<u64>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model name the client asked for (before routing).
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// OpenAI `parallel_tool_calls` / Anthropic `disable_parallel_tool_use` (inverted).
    pub parallel_tool_calls: Option<bool>,
    pub sampling: Sampling,
    pub response_format: Option<ResponseFormat>,
    pub stream: bool,
    /// The client wants usage in the stream (OpenAI `stream_options.include_usage`).
    /// Anthropic streams always carry usage.
    pub include_usage: bool,
    /// End-user id (OpenAI `user`, Anthropic `metadata.user_id`).
    pub user: Option<String>,
    /// OpenAI `metadata` (string map).
    pub metadata: Option<Map<String, Value>>,
    /// Unknown top-level fields, forwarded only to a backend of `extra_dialect`.
    pub extra: Map<String, Value>,
    pub extra_dialect: Dialect,
}

impl ChatRequest {
    /// A minimal request, handy for tests and internal callers.
    pub fn new(model: impl Into<String>, messages: Vec<Message>, dialect: Dialect) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            tools: Vec::new(),
            tool_choice: None,
            parallel_tool_calls: None,
            sampling: Sampling::default(),
            response_format: None,
            stream: false,
            include_usage: false,
            user: None,
            metadata: None,
            extra: Map::new(),
            extra_dialect: dialect,
        }
    }

    /// Every piece of text a model would read, in order (system, messages, tool
    /// results, tool definitions' descriptions are excluded). This is the "canonical
    /// text" that classifiers scan.
    pub fn text_segments(&self) -> impl Iterator<Item = (Role, &str)> {
        self.messages.iter().flat_map(|m| {
            m.content
                .iter()
                .flat_map(move |p| part_texts(p).into_iter().map(move |t| (m.role, t)))
        })
    }
}

fn part_texts(part: &ContentPart) -> Vec<&str> {
    match part {
        ContentPart::Text { text, .. } => vec![text.as_str()],
        ContentPart::ToolCall { arguments, .. } => vec![arguments.as_str()],
        ContentPart::ToolResult { content, .. } => content.iter().flat_map(part_texts).collect(),
        ContentPart::Thinking { thinking, .. } => vec![thinking.as_str()],
        ContentPart::Image { .. } | ContentPart::RedactedThinking { .. } => Vec::new(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StopReason {
    /// Natural end of turn (OpenAI `stop`, Anthropic `end_turn`).
    EndTurn,
    /// Hit max tokens (OpenAI `length`, Anthropic `max_tokens`).
    MaxTokens,
    /// Hit a client stop sequence (OpenAI `stop`, Anthropic `stop_sequence`).
    StopSequence { sequence: Option<String> },
    /// The model wants tool results (OpenAI `tool_calls`, Anthropic `tool_use`).
    ToolUse,
    /// OpenAI `content_filter`, Anthropic `refusal`.
    ContentFilter,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, cached ones included (OpenAI `prompt_tokens`). For Anthropic
    /// backends this is input + cache_read + cache_creation.
    pub input_tokens: u32,
    pub output_tokens: u32,
    /// Prompt tokens served from the provider's prompt cache.
    pub cache_read_input_tokens: u32,
    /// Prompt tokens written to the provider's prompt cache (Anthropic).
    pub cache_creation_input_tokens: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    pub id: String,
    /// The model that actually answered.
    pub model: String,
    /// Text, tool-call and (Anthropic) thinking parts, in order.
    pub content: Vec<ContentPart>,
    pub stop_reason: StopReason,
    pub usage: Usage,
    /// Unix seconds.
    pub created: u64,
}

/// One event of a streamed answer, independent of wire format.
///
/// `index` is the position of the content part in the final `ChatResponse::content`;
/// parts arrive in order and never interleave, so a new index closes the previous part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First event of every stream.
    Start {
        id: String,
        model: String,
        created: u64,
        /// Prompt usage if the backend knows it up front (Anthropic `message_start`).
        usage: Option<Usage>,
    },
    TextDelta {
        index: u32,
        text: String,
    },
    ToolCallStart {
        index: u32,
        id: String,
        name: String,
    },
    ToolCallDelta {
        index: u32,
        arguments: String,
    },
    /// A piece of a thinking part (Anthropic `thinking_delta`); opens the part.
    ThinkingDelta {
        index: u32,
        thinking: String,
    },
    /// The signature of the thinking part at `index` (Anthropic `signature_delta`).
    ThinkingSignature {
        index: u32,
        signature: String,
    },
    /// A whole `redacted_thinking` part.
    RedactedThinking {
        index: u32,
        data: String,
    },
    /// Keep-alive; carries nothing.
    Ping,
    /// Last event of every successful stream. `usage` is the final total when known.
    Finish {
        stop_reason: StopReason,
        usage: Option<Usage>,
    },
}

/// Errors every stage can produce, rendered once at the HTTP edge in the client's
/// dialect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Authentication(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: Option<String>,
    },
    /// The upstream answered with an error status; keep its status and message.
    #[error("{provider}: {message}")]
    Upstream {
        provider: String,
        status: u16,
        message: String,
        retry_after: Option<String>,
    },
    /// The upstream could not be reached, or its answer could not be understood.
    #[error("{provider}: {message}")]
    BadGateway { provider: String, message: String },
    #[error("{provider}: upstream timed out after {after_ms} ms")]
    Timeout { provider: String, after_ms: u64 },
    #[error("{0}")]
    Overloaded(String),
    #[error("{0}")]
    Internal(String),
}

/// Why a request did not end in a complete answer: the ledger's `error_kind`, the
/// metrics' and traces' `error.type`. A type everywhere; a string only where it is
/// stored or exported (`as_str`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    PermissionDenied,
    NotFound,
    RequestTimeout,
    PayloadTooLarge,
    RateLimited,
    UpstreamError,
    BadGateway,
    Timeout,
    Overloaded,
    Internal,
    /// A policy rule refused the request (a block, or no allowed target).
    PolicyBlocked,
    /// The client went away before its answer was complete.
    ClientClosed,
    /// The upstream's stream ended without its final event.
    IncompleteStream,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 15] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::RequestTimeout,
        ErrorKind::PayloadTooLarge,
        ErrorKind::RateLimited,
        ErrorKind::UpstreamError,
        ErrorKind::BadGateway,
        ErrorKind::Timeout,
        ErrorKind::Overloaded,
        ErrorKind::Internal,
        ErrorKind::PolicyBlocked,
        ErrorKind::ClientClosed,
        ErrorKind::IncompleteStream,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::UpstreamError => "upstream_error",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Internal => "internal",
            ErrorKind::PolicyBlocked => "policy_blocked",
            ErrorKind::ClientClosed => "client_closed",
            ErrorKind::IncompleteStream => "incomplete_stream",
        }
    }

    /// The kind a stored string names (`None` for a string no version wrote).
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl GatewayError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            GatewayError::InvalidRequest(_) => ErrorKind::InvalidRequest,
            GatewayError::Authentication(_) => ErrorKind::Authentication,
            GatewayError::PermissionDenied(_) => ErrorKind::PermissionDenied,
            GatewayError::NotFound(_) => ErrorKind::NotFound,
            GatewayError::RequestTimeout(_) => ErrorKind::RequestTimeout,
            GatewayError::PayloadTooLarge { .. } => ErrorKind::PayloadTooLarge,
            GatewayError::RateLimited { .. } => ErrorKind::RateLimited,
            GatewayError::Upstream { .. } => ErrorKind::UpstreamError,
            GatewayError::BadGateway { .. } => ErrorKind::BadGateway,
            GatewayError::Timeout { .. } => ErrorKind::Timeout,
            GatewayError::Overloaded(_) => ErrorKind::Overloaded,
            GatewayError::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            GatewayError::InvalidRequest(_) => 400,
            GatewayError::Authentication(_) => 401,
            GatewayError::PermissionDenied(_) => 403,
            GatewayError::NotFound(_) => 404,
            GatewayError::RequestTimeout(_) => 408,
            GatewayError::PayloadTooLarge { .. } => 413,
            GatewayError::RateLimited { .. } => 429,
            GatewayError::Upstream { status, .. } => *status,
            GatewayError::BadGateway { .. } => 502,
            GatewayError::Timeout { .. } => 504,
            GatewayError::Overloaded(_) => 503,
            GatewayError::Internal(_) => 500,
        }
    }

    pub fn retry_after(&self) -> Option<&str> {
        match self {
            GatewayError::RateLimited { retry_after, .. }
            | GatewayError::Upstream { retry_after, .. } => retry_after.as_deref(),
            _ => None,
        }
    }
}
