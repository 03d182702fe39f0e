//! AWS Bedrock Converse API (backend side only): the wire types of `Converse` and
//! `ConverseStream` as serde structs, and pure conversions to and from the canonical model.
//! No I/O and no signing here (`providers/bedrock.rs` signs and sends).
//!
//! - Requests: system messages become `system` blocks, the rest alternate user/assistant
//!   (consecutive messages of one role are merged, as Converse requires), tool calls and
//!   results become `toolUse` / `toolResult` blocks, tools a `toolConfig`. Images go inline
//!   as base64 `bytes`; an image URL is refused (400): Bedrock does not fetch URLs.
//! - Streams: the `application/vnd.amazon.eventstream` binary framing (prelude, headers,
//!   CRCs) is decoded by `aws-smithy-eventstream` ([`FrameReader`]); [`StreamDecoder`] turns
//!   each event's JSON payload (`messageStart`, `contentBlockStart`, `contentBlockDelta`,
//!   `contentBlockStop`, `messageStop`, `metadata`) into canonical events.

use std::borrow::Cow;
use std::collections::HashMap;

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::{HeaderValue, Message as FrameMessage};
use bytes::{Buf, BytesMut};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, GatewayError, ImageSource, Role, StopReason,
    StreamEvent, ToolChoice, Usage,
};
use crate::dialects::json::{now_unix, upstream_error_message};

// ---- request ---------------------------------------------------------------------------

/// A `Converse` / `ConverseStream` request body (the model id is in the URL).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConverseRequest<'a> {
    pub messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub system: Vec<SystemBlock<'a>>,
    #[serde(skip_serializing_if = "InferenceConfig::is_empty")]
    pub inference_config: InferenceConfig<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<ToolConfig<'a>>,
    /// Model-specific fields Converse has no field for (`top_k` for Anthropic models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub additional_model_request_fields: Option<Value>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct WireMessage<'a> {
    pub role: WireRole,
    pub content: Vec<Block<'a>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireRole {
    User,
    Assistant,
}

/// One content block. Converse blocks are unions: exactly one member is set.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub enum Block<'a> {
    Text(Cow<'a, str>),
    Image(WireImage<'a>),
    ToolUse(ToolUse<'a>),
    ToolResult(ToolResult<'a>),
    /// Prompt-cache checkpoint after the blocks before it (from `cache_control`).
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct WireImage<'a> {
    pub format: Cow<'a, str>,
    pub source: ImageBytes<'a>,
}

/// Blobs are base64 strings in Bedrock's JSON protocol, so the client's base64 is passed
/// through as it is.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct ImageBytes<'a> {
    pub bytes: Cow<'a, str>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolUse<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub input: Value,
}

#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ToolResult<'a> {
    pub tool_use_id: Cow<'a, str>,
    pub content: Vec<Block<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Cow<'a, str>>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct CachePoint {
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
}

impl CachePoint {
    fn default_point() -> Self {
        CachePoint {
            kind: Cow::Borrowed("default"),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SystemBlock<'a> {
    Text(Cow<'a, str>),
    CachePoint(CachePoint),
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<&'a str>,
}

impl InferenceConfig<'_> {
    fn is_empty(&self) -> bool {
        self.max_tokens.is_none()
            && self.temperature.is_none()
            && self.top_p.is_none()
            && self.stop_sequences.is_empty()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolConfig<'a> {
    pub tools: Vec<WireTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<WireToolChoice<'a>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WireTool<'a> {
    ToolSpec(ToolSpec<'a>),
    CachePoint(CachePoint),
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec<'a> {
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<&'a str>,
    pub input_schema: InputSchema<'a>,
}

#[derive(Debug, Serialize)]
pub struct InputSchema<'a> {
    pub json: &'a Value,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum WireToolChoice<'a> {
    Auto(Empty),
    Any(Empty),
    Tool { name: &'a str },
}

#[derive(Debug, Serialize)]
pub struct Empty {}

fn invalid(message: impl Into<String>) -> GatewayError {
    GatewayError::InvalidRequest(message.into())
}

/// `image/png` → `png`: the formats Converse accepts.
fn image_format(media_type: &str) -> Result<&'static str, GatewayError> {
    match media_type.to_ascii_lowercase().as_str() {
        "image/png" => Ok("png"),
        "image/jpeg" | "image/jpg" => Ok("jpeg"),
        "image/gif" => Ok("gif"),
        "image/webp" => Ok("webp"),
        other => Err(invalid(format!(
            "Bedrock accepts png, jpeg, gif and webp images, not {other:?}"
        ))),
    }
}

fn image_block(source: &ImageSource) -> Result<Block<'_>, GatewayError> {
    match source {
        ImageSource::Base64 { media_type, data } => Ok(Block::Image(WireImage {
            format: Cow::Borrowed(image_format(media_type)?),
            source: ImageBytes {
                bytes: Cow::Borrowed(data),
            },
        })),
        ImageSource::Url { .. } => Err(invalid(
            "image URLs are not supported by this model's backend (AWS Bedrock does not fetch URLs): send the image inline as base64 (a data: URL)",
        )),
    }
}

fn tool_input(arguments: &str) -> Result<Value, GatewayError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(arguments)
        .map_err(|e| invalid(format!("tool call arguments are not valid JSON: {e}")))
}

fn blocks<'a>(parts: &'a [ContentPart], out: &mut Vec<Block<'a>>) -> Result<(), GatewayError> {
    for part in parts {
        let cached = match part {
            ContentPart::Text {
                text,
                cache_control,
            } => {
                // Converse refuses blank text blocks.
                if !text.is_empty() {
                    out.push(Block::Text(Cow::Borrowed(text)));
                }
                cache_control.is_some()
            }
            ContentPart::Image {
                source,
                cache_control,
            } => {
                out.push(image_block(source)?);
                cache_control.is_some()
            }
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => {
                out.push(Block::ToolUse(ToolUse {
                    tool_use_id: Cow::Borrowed(id),
                    name: Cow::Borrowed(name),
                    input: tool_input(arguments)?,
                }));
                false
            }
            ContentPart::ToolResult {
                call_id,
                content,
                is_error,
                cache_control,
            } => {
                let mut inner = Vec::new();
                blocks(content, &mut inner)?;
                inner.retain(|b| !matches!(b, Block::CachePoint(_)));
                if inner.is_empty() {
                    inner.push(Block::Text(Cow::Borrowed(" ")));
                }
                out.push(Block::ToolResult(ToolResult {
                    tool_use_id: Cow::Borrowed(call_id),
                    content: inner,
                    status: is_error.then_some(Cow::Borrowed("error")),
                }));
                cache_control.is_some()
            }
            // Converse has `reasoningContent` for this, but the gateway reads no reasoning
            // back from Bedrock either (docs/bedrock.md): an Anthropic conversation
            // continued here goes on without its earlier thinking, as on other backends.
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => false,
        };
        if cached {
            out.push(Block::CachePoint(CachePoint::default_point()));
        }
    }
    Ok(())
}

fn has_tool_blocks(req: &ChatRequest) -> bool {
    req.messages.iter().any(|m| {
        m.content.iter().any(|p| {
            matches!(
                p,
                ContentPart::ToolCall { .. } | ContentPart::ToolResult { .. }
            )
        })
    })
}

/// The canonical request as a Converse body. Errors are the client's (400): an image URL,
/// an image format Bedrock does not take, tool arguments that are not JSON.
pub fn build_request(req: &ChatRequest) -> Result<ConverseRequest<'_>, GatewayError> {
    let mut system = Vec::new();
    let mut messages: Vec<WireMessage<'_>> = Vec::new();
    for m in &req.messages {
        let role = match m.role {
            Role::System => {
                for part in &m.content {
                    if let ContentPart::Text {
                        text,
                        cache_control,
                    } = part
                    {
                        if !text.is_empty() {
                            system.push(SystemBlock::Text(Cow::Borrowed(text)));
                        }
                        if cache_control.is_some() {
                            system.push(SystemBlock::CachePoint(CachePoint::default_point()));
                        }
                    }
                }
                continue;
            }
            Role::User => WireRole::User,
            Role::Assistant => WireRole::Assistant,
        };
        let mut content = Vec::new();
        blocks(&m.content, &mut content)?;
        if content.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => messages.push(WireMessage { role, content }),
        }
    }
    if messages.first().map(|m| m.role) != Some(WireRole::User) {
        return Err(invalid(
            "AWS Bedrock needs the conversation to start with a user message",
        ));
    }

    let s = &req.sampling;
    let inference_config = InferenceConfig {
        max_tokens: s.max_tokens,
        temperature: s.temperature,
        top_p: s.top_p,
        stop_sequences: s.stop.iter().map(String::as_str).collect(),
    };
    let additional_model_request_fields = s.top_k.map(|k| serde_json::json!({ "top_k": k }));

    // Converse has no "none" choice: the tools are left out instead, unless the history
    // holds tool blocks (then Converse requires the tool definitions).
    let none = req.tool_choice == Some(ToolChoice::None);
    let tool_config = if req.tools.is_empty() || (none && !has_tool_blocks(req)) {
        None
    } else {
        let mut tools = Vec::with_capacity(req.tools.len());
        for t in &req.tools {
            tools.push(WireTool::ToolSpec(ToolSpec {
                name: &t.name,
                description: t.description.as_deref(),
                input_schema: InputSchema {
                    json: &t.parameters,
                },
            }));
            if t.cache_control.is_some() {
                tools.push(WireTool::CachePoint(CachePoint::default_point()));
            }
        }
        let tool_choice = match &req.tool_choice {
            None | Some(ToolChoice::None) => None,
            Some(ToolChoice::Auto) => Some(WireToolChoice::Auto(Empty {})),
            Some(ToolChoice::Required) => Some(WireToolChoice::Any(Empty {})),
            Some(ToolChoice::Tool { name }) => Some(WireToolChoice::Tool { name }),
        };
        Some(ToolConfig { tools, tool_choice })
    };

    Ok(ConverseRequest {
        messages,
        system,
        inference_config,
        tool_config,
        additional_model_request_fields,
    })
}

// ---- response --------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConverseResponse<'a> {
    #[serde(borrow)]
    output: Output<'a>,
    #[serde(default)]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    additional_model_response_fields: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Output<'a> {
    #[serde(borrow)]
    message: OutputMessage<'a>,
}

#[derive(Debug, Deserialize)]
struct OutputMessage<'a> {
    #[serde(borrow, default)]
    content: Vec<OutputBlock<'a>>,
}

/// An answer's block: a union, of which this gateway reads text and tool use (reasoning,
/// citations and other members are skipped).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutputBlock<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_use: Option<ToolUse<'a>>,
}

/// Converse `usage`; `inputTokens` excludes the prompt-cache reads and writes.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WireUsage {
    #[serde(default)]
    pub input_tokens: u32,
    #[serde(default)]
    pub output_tokens: u32,
    #[serde(default)]
    pub cache_read_input_tokens: u32,
    #[serde(default)]
    pub cache_write_input_tokens: u32,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Usage {
        Usage {
            input_tokens: u
                .input_tokens
                .saturating_add(u.cache_read_input_tokens)
                .saturating_add(u.cache_write_input_tokens),
            output_tokens: u.output_tokens,
            cache_read_input_tokens: u.cache_read_input_tokens,
            cache_creation_input_tokens: u.cache_write_input_tokens,
        }
    }
}

/// Converse `stopReason` (plus, for `stop_sequence`, the Anthropic model's
/// `stop_sequence` field when the response carries it).
pub fn stop_reason(reason: Option<&str>, additional: Option<&Value>) -> StopReason {
    match reason.unwrap_or("end_turn") {
        "tool_use" => StopReason::ToolUse,
        "max_tokens" | "model_context_window_exceeded" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence {
            sequence: additional
                .and_then(|a| a.get("stop_sequence"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
        "guardrail_intervened" | "content_filtered" => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

fn arguments_text(input: &Value) -> String {
    serde_json::to_string(input).unwrap_or_else(|_| "{}".into())
}

/// A Converse response as a canonical answer. Converse carries no id: `id` is the request
/// id Bedrock sent in `x-amzn-requestid` (or one the caller made up).
pub fn parse_response(body: &[u8], id: String, model: &str) -> Result<ChatResponse, String> {
    let r: ConverseResponse<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut content = Vec::new();
    for block in r.output.message.content {
        if let Some(text) = block.text {
            content.push(ContentPart::text(text.into_owned()));
        } else if let Some(t) = block.tool_use {
            content.push(ContentPart::ToolCall {
                id: t.tool_use_id.into_owned(),
                name: t.name.into_owned(),
                arguments: arguments_text(&t.input),
            });
        }
    }
    Ok(ChatResponse {
        id,
        model: model.to_owned(),
        content,
        stop_reason: stop_reason(
            r.stop_reason.as_deref(),
            r.additional_model_response_fields.as_ref(),
        ),
        usage: r.usage.unwrap_or_default().into(),
        created: now_unix(),
    })
}

/// A Bedrock error answer in canonical form. Bedrock names the error in the
/// `x-amzn-ErrorType` header and `__type`, its text in `message`; the status tells the kind
/// (400 ValidationException, 403 AccessDenied / signature, 404 ResourceNotFound,
/// 429 Throttling, 500 InternalServer, 503 ServiceUnavailable, 408 ModelTimeout,
/// 424 ModelError). A 403 is about the gateway's own credentials: its text (which can
/// quote the access key id and the string signed) is replaced.
pub fn parse_error(
    status: u16,
    body: &[u8],
    retry_after: Option<String>,
    provider: &str,
) -> GatewayError {
    let kind = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("__type").and_then(Value::as_str).map(short_type));
    match status {
        403 => GatewayError::Upstream {
            provider: provider.to_owned(),
            status: 403,
            message: format!(
                "the upstream refused the credentials configured for this provider{}",
                kind.map(|k| format!(" ({k})")).unwrap_or_default()
            ),
            retry_after: None,
        },
        // ModelTimeoutException: the model took too long; a gateway timeout to the client.
        408 => GatewayError::Upstream {
            provider: provider.to_owned(),
            status: 504,
            message: upstream_error_message(status, body),
            retry_after,
        },
        424 => GatewayError::BadGateway {
            provider: provider.to_owned(),
            message: upstream_error_message(status, body),
        },
        _ => GatewayError::Upstream {
            provider: provider.to_owned(),
            status,
            message: upstream_error_message(status, body),
            retry_after,
        },
    }
}

/// `com.amazon.coral.service#ThrottlingException` or `ThrottlingException:http://…` →
/// `ThrottlingException`.
fn short_type(t: &str) -> String {
    let t = t.rsplit('#').next().unwrap_or(t);
    t.split(':').next().unwrap_or(t).to_owned()
}

// ---- event stream ----------------------------------------------------------------------

/// One event-stream message, as far as the decoder needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// `:message-type`: `event`, `exception` or `error`.
    pub message_type: String,
    /// `:event-type` (events), `:exception-type` (exceptions) or `:error-code` (errors).
    pub kind: String,
    pub payload: bytes::Bytes,
}

fn header_str<'m>(m: &'m FrameMessage, name: &str) -> Option<&'m str> {
    m.headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| match h.value() {
            HeaderValue::String(s) => Some(s.as_str()),
            _ => None,
        })
}

impl Frame {
    fn of(m: FrameMessage) -> Frame {
        let message_type = header_str(&m, ":message-type")
            .unwrap_or("event")
            .to_owned();
        let kind = match message_type.as_str() {
            "exception" => header_str(&m, ":exception-type"),
            "error" => header_str(&m, ":error-code"),
            _ => header_str(&m, ":event-type"),
        }
        .unwrap_or_default()
        .to_owned();
        Frame {
            message_type,
            kind,
            payload: m.payload().clone(),
        }
    }
}

/// Incremental reader of the binary event-stream framing over arbitrary chunks. Bounded:
/// a frame announcing more than `max_frame_bytes` is an error before it is buffered.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    max_frame_bytes: usize,
    /// The length of the frame being read, once its prelude has been handed to `decoder`.
    pending: Option<usize>,
}

impl FrameReader {
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameReader {
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            max_frame_bytes,
            pending: None,
        }
    }

    /// Feeds a chunk; returns the frames it completed (CRCs checked).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, String> {
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        loop {
            if self.pending.is_none() {
                if self.buf.len() < 4 {
                    break;
                }
                let total = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]])
                    as usize;
                if total > self.max_frame_bytes {
                    return Err(format!(
                        "event-stream frame of {total} bytes is larger than the limit of {} bytes",
                        self.max_frame_bytes
                    ));
                }
                if self.buf.len() < 12 {
                    break;
                }
                self.pending = Some(total);
            }
            let before = self.buf.remaining();
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Complete(m)) => {
                    self.pending = None;
                    out.push(Frame::of(m));
                }
                Ok(DecodedFrame::Incomplete) => {
                    if self.buf.remaining() == before {
                        break;
                    }
                }
                Err(e) => return Err(format!("invalid event-stream frame: {e}")),
            }
        }
        Ok(out)
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn has_partial(&self) -> bool {
        self.pending.is_some() || !self.buf.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockStart {
    #[serde(default)]
    content_block_index: u32,
    #[serde(default)]
    start: Option<StartUnion>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StartUnion {
    #[serde(default)]
    tool_use: Option<ToolUseStart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToolUseStart {
    tool_use_id: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BlockDelta {
    #[serde(default)]
    content_block_index: u32,
    delta: DeltaUnion,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeltaUnion {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    tool_use: Option<ToolUseDelta>,
}

#[derive(Deserialize)]
struct ToolUseDelta {
    #[serde(default)]
    input: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageStop {
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    additional_model_response_fields: Option<Value>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<WireUsage>,
}

/// What a stream failed with: an exception Bedrock sent in the stream (its name and
/// status, so throttling stays a 429), or a malformed stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamFailure {
    Exception {
        kind: String,
        status: u16,
        message: String,
    },
    Malformed(String),
}

impl StreamFailure {
    pub fn into_error(self, provider: &str) -> GatewayError {
        match self {
            StreamFailure::Exception {
                kind,
                status,
                message,
            } => GatewayError::Upstream {
                provider: provider.to_owned(),
                status,
                message: format!("{kind}: {message}"),
                retry_after: None,
            },
            StreamFailure::Malformed(message) => GatewayError::BadGateway {
                provider: provider.to_owned(),
                message,
            },
        }
    }
}

/// The status of an in-stream exception (`throttlingException` …), as its HTTP twin.
fn exception_status(kind: &str) -> u16 {
    match kind {
        "throttlingException" => 429,
        "validationException" => 400,
        "serviceUnavailableException" => 503,
        "modelStreamErrorException" => 502,
        _ => 500,
    }
}

/// ConverseStream events to canonical events.
#[derive(Debug)]
pub struct StreamDecoder {
    id: String,
    model: String,
    started: bool,
    /// Bedrock `contentBlockIndex` → canonical index (reasoning blocks are skipped, so
    /// canonical indexes stay dense).
    indexes: HashMap<u32, u32>,
    next_index: u32,
    stop: Option<StopReason>,
    done: bool,
}

impl StreamDecoder {
    pub fn new(id: String, model: &str) -> Self {
        StreamDecoder {
            id,
            model: model.to_owned(),
            started: false,
            indexes: HashMap::new(),
            next_index: 0,
            stop: None,
            done: false,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: self.model.clone(),
                created: now_unix(),
                usage: None,
            });
        }
    }

    fn index(&mut self, bedrock: u32) -> (u32, bool) {
        if let Some(i) = self.indexes.get(&bedrock) {
            return (*i, false);
        }
        let i = self.next_index;
        self.next_index += 1;
        self.indexes.insert(bedrock, i);
        (i, true)
    }

    fn json<'p, T: Deserialize<'p>>(kind: &str, payload: &'p [u8]) -> Result<T, StreamFailure> {
        serde_json::from_slice(payload)
            .map_err(|e| StreamFailure::Malformed(format!("unreadable {kind} event: {e}")))
    }

    pub fn decode(&mut self, frame: &Frame) -> Result<Vec<StreamEvent>, StreamFailure> {
        let mut out = Vec::new();
        if frame.message_type != "event" {
            let message = serde_json::from_slice::<Value>(&frame.payload)
                .ok()
                .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&frame.payload).into_owned());
            return Err(StreamFailure::Exception {
                status: exception_status(&frame.kind),
                kind: frame.kind.clone(),
                message,
            });
        }
        match frame.kind.as_str() {
            "messageStart" => self.start(&mut out),
            "contentBlockStart" => {
                self.start(&mut out);
                let s: BlockStart = Self::json("contentBlockStart", &frame.payload)?;
                if let Some(t) = s.start.and_then(|s| s.tool_use) {
                    let (index, _) = self.index(s.content_block_index);
                    out.push(StreamEvent::ToolCallStart {
                        index,
                        id: t.tool_use_id,
                        name: t.name,
                    });
                }
            }
            "contentBlockDelta" => {
                self.start(&mut out);
                let d: BlockDelta = Self::json("contentBlockDelta", &frame.payload)?;
                if let Some(text) = d.delta.text {
                    let (index, _) = self.index(d.content_block_index);
                    out.push(StreamEvent::TextDelta { index, text });
                } else if let Some(t) = d.delta.tool_use {
                    match self.indexes.get(&d.content_block_index) {
                        Some(&index) => out.push(StreamEvent::ToolCallDelta {
                            index,
                            arguments: t.input,
                        }),
                        None => {
                            return Err(StreamFailure::Malformed(
                                "toolUse delta before its contentBlockStart".into(),
                            ))
                        }
                    }
                }
            }
            "contentBlockStop" => {}
            "messageStop" => {
                self.start(&mut out);
                let s: MessageStop = Self::json("messageStop", &frame.payload)?;
                self.stop = Some(stop_reason(
                    s.stop_reason.as_deref(),
                    s.additional_model_response_fields.as_ref(),
                ));
            }
            "metadata" => {
                let m: Metadata = Self::json("metadata", &frame.payload)?;
                let Some(stop_reason) = self.stop.take() else {
                    return Err(StreamFailure::Malformed(
                        "metadata event before messageStop".into(),
                    ));
                };
                self.start(&mut out);
                out.push(StreamEvent::Finish {
                    stop_reason,
                    usage: m.usage.map(Usage::from),
                });
                self.done = true;
            }
            // Events added later are skipped, as SDKs do.
            _ => {}
        }
        Ok(out)
    }

    /// At the end of the body: a stream that stopped without usage still finishes; one
    /// that never reached `messageStop` was cut.
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, StreamFailure> {
        if self.done {
            return Ok(Vec::new());
        }
        match self.stop.take() {
            Some(stop_reason) => {
                self.done = true;
                let mut out = Vec::new();
                self.start(&mut out);
                out.push(StreamEvent::Finish {
                    stop_reason,
                    usage: None,
                });
                Ok(out)
            }
            None => Err(StreamFailure::Malformed(
                "upstream stream ended before messageStop".into(),
            )),
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Decodes a whole event-stream body, for the fuzzer and tests: frames, then events.
pub fn decode_stream_body(
    body: &[u8],
    max_frame_bytes: usize,
) -> Result<Vec<StreamEvent>, StreamFailure> {
    let mut reader = FrameReader::new(max_frame_bytes);
    let mut decoder = StreamDecoder::new("id".into(), "model");
    let mut events = Vec::new();
    for frame in reader.push(body).map_err(StreamFailure::Malformed)? {
        if decoder.is_done() {
            break;
        }
        events.extend(decoder.decode(&frame)?);
    }
    if reader.has_partial() && !decoder.is_done() {
        return Err(StreamFailure::Malformed(
            "truncated event-stream frame".into(),
        ));
    }
    events.extend(decoder.finish()?);
    Ok(events)
}

/// Percent-encodes a model id for its URL path segment (`:` and `/` of model ids and
/// inference-profile ARNs included), as the AWS SDKs do.
pub fn encode_model_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len() + 8);
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Dialect, Message, Tool};
    use aws_smithy_types::event_stream::Header;
    use serde_json::json;

    fn frame(event: &str, payload: Value) -> Vec<u8> {
        let m = FrameMessage::new(serde_json::to_vec(&payload).expect("json"))
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("event".into()),
            ))
            .add_header(Header::new(
                ":event-type",
                HeaderValue::String(event.to_owned().into()),
            ))
            .add_header(Header::new(
                ":content-type",
                HeaderValue::String("application/json".into()),
            ));
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("write");
        out
    }

    fn request() -> ChatRequest {
        let mut r = ChatRequest::new(
            "claude",
            vec![
                Message::text(Role::System, "be brief"),
                Message::text(Role::User, "hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![ContentPart::ToolCall {
                        id: "t1".into(),
                        name: "get_weather".into(),
                        arguments: r#"{"location":"Paris"}"#.into(),
                    }],
                    name: None,
                },
                Message {
                    role: Role::User,
                    content: vec![ContentPart::ToolResult {
                        call_id: "t1".into(),
                        content: vec![ContentPart::text("sunny")],
                        is_error: false,
                        cache_control: None,
                    }],
                    name: None,
                },
                Message::text(Role::User, "and tomorrow?"),
            ],
            Dialect::OpenAi,
        );
        r.tools.push(Tool {
            name: "get_weather".into(),
            description: Some("weather".into()),
            parameters: json!({"type": "object"}),
            cache_control: None,
        });
        r.tool_choice = Some(ToolChoice::Required);
        r.sampling.max_tokens = Some(100);
        r.sampling.top_k = Some(5);
        r.sampling.stop = vec!["END".into()];
        r
    }

    #[test]
    fn requests_become_converse_bodies() {
        let req = request();
        let body = serde_json::to_value(build_request(&req).expect("build")).expect("json");
        assert_eq!(
            body,
            json!({
                "messages": [
                    {"role": "user", "content": [{"text": "hi"}]},
                    {"role": "assistant", "content": [{"toolUse": {"toolUseId": "t1", "name": "get_weather", "input": {"location": "Paris"}}}]},
                    {"role": "user", "content": [
                        {"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                        {"text": "and tomorrow?"}
                    ]}
                ],
                "system": [{"text": "be brief"}],
                "inferenceConfig": {"maxTokens": 100, "stopSequences": ["END"]},
                "toolConfig": {
                    "tools": [{"toolSpec": {"name": "get_weather", "description": "weather", "inputSchema": {"json": {"type": "object"}}}}],
                    "toolChoice": {"any": {}}
                },
                "additionalModelRequestFields": {"top_k": 5}
            })
        );
    }

    #[test]
    fn images_go_inline_and_urls_are_refused() {
        let mut req = ChatRequest::new(
            "m",
            vec![Message {
                role: Role::User,
                content: vec![ContentPart::Image {
                    source: ImageSource::from_url("data:image/png;base64,iVBORw0KGgo="),
                    cache_control: None,
                }],
                name: None,
            }],
            Dialect::OpenAi,
        );
        let body = serde_json::to_value(build_request(&req).expect("build")).expect("json");
        assert_eq!(
            body["messages"][0]["content"][0],
            json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
        );
        req.messages[0].content[0] = ContentPart::Image {
            source: ImageSource::from_url("https://example.com/cat.png"),
            cache_control: None,
        };
        let err = build_request(&req).expect_err("url");
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("base64"), "{err}");
    }

    #[test]
    fn tool_choice_none_without_history_drops_the_tools() {
        let mut req = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        req.tools = request().tools;
        req.tool_choice = Some(ToolChoice::None);
        assert!(build_request(&req).expect("build").tool_config.is_none());
    }

    #[test]
    fn responses_become_canonical() {
        let body = json!({
            "output": {"message": {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "hmm"}}},
                {"text": "Let me check."},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"location": "Paris"}}}
            ]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 19, "cacheReadInputTokens": 4},
            "metrics": {"latencyMs": 12}
        });
        let r = parse_response(
            &serde_json::to_vec(&body).expect("json"),
            "req-1".into(),
            "claude",
        )
        .expect("parse");
        assert_eq!(r.id, "req-1");
        assert_eq!(r.stop_reason, StopReason::ToolUse);
        assert_eq!(
            r.content,
            vec![
                ContentPart::text("Let me check."),
                ContentPart::ToolCall {
                    id: "tooluse_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"location":"Paris"}"#.into()
                }
            ]
        );
        assert_eq!(r.usage.input_tokens, 14);
        assert_eq!(r.usage.cache_read_input_tokens, 4);
        assert_eq!(r.usage.output_tokens, 5);
    }

    #[test]
    fn errors_keep_their_status_and_hide_credential_text() {
        let e = parse_error(
            429,
            br#"{"message":"Too many requests, please wait before trying again."}"#,
            None,
            "bedrock",
        );
        assert_eq!(e.status(), 429);
        assert!(e.to_string().contains("Too many requests"));
        let e = parse_error(
            403,
            br#"{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"The request signature we calculated does not match. Credential=AKIDEXAMPLE/..."}"#,
            None,
            "bedrock",
        );
        assert_eq!(e.status(), 403);
        let text = e.to_string();
        assert!(
            text.contains("InvalidSignatureException") && !text.contains("AKID"),
            "{text}"
        );
    }

    #[test]
    fn event_streams_decode_in_any_chunking() {
        let mut body = Vec::new();
        body.extend(frame("messageStart", json!({"role": "assistant"})));
        body.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ));
        body.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        ));
        body.extend(frame("contentBlockStop", json!({"contentBlockIndex": 0})));
        body.extend(frame(
            "contentBlockStart",
            json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "f"}}}),
        ));
        body.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"a\":"}}}),
        ));
        body.extend(frame(
            "contentBlockDelta",
            json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": "1}"}}}),
        ));
        body.extend(frame("contentBlockStop", json!({"contentBlockIndex": 1})));
        body.extend(frame("messageStop", json!({"stopReason": "tool_use"})));
        body.extend(frame("metadata", json!({"usage": {"inputTokens": 3, "outputTokens": 2, "totalTokens": 5}, "metrics": {"latencyMs": 1}})));
        let whole = decode_stream_body(&body, 1 << 20).expect("decode");
        assert_eq!(whole.len(), 7, "{whole:?}");
        assert!(matches!(&whole[1], StreamEvent::TextDelta { index: 0, text } if text == "Hel"));
        assert!(matches!(&whole[3], StreamEvent::ToolCallStart { index: 1, id, .. } if id == "t1"));
        assert_eq!(
            whole[6],
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(Usage {
                    input_tokens: 3,
                    output_tokens: 2,
                    ..Usage::default()
                })
            }
        );
        for size in [1, 3, 7, 64] {
            let mut reader = FrameReader::new(1 << 20);
            let mut decoder = StreamDecoder::new("id".into(), "model");
            let mut events = Vec::new();
            for chunk in body.chunks(size) {
                for f in reader.push(chunk).expect("frames") {
                    events.extend(decoder.decode(&f).expect("events"));
                }
            }
            assert!(!reader.has_partial());
            assert_eq!(events.len(), whole.len(), "chunk size {size}");
        }
    }

    #[test]
    fn corrupt_truncated_and_oversized_streams_are_errors() {
        let mut body = frame("messageStart", json!({"role": "assistant"}));
        let last = body.len() - 1;
        body[last] ^= 0xff;
        assert!(decode_stream_body(&body, 1 << 20).is_err(), "bad CRC");
        let body = frame("messageStart", json!({"role": "assistant"}));
        assert!(
            decode_stream_body(&body[..body.len() - 2], 1 << 20).is_err(),
            "truncated"
        );
        assert!(decode_stream_body(&body, 16).is_err(), "over the limit");
        let mut exc = Vec::new();
        let m = FrameMessage::new(&br#"{"message":"slow down"}"#[..])
            .add_header(Header::new(
                ":message-type",
                HeaderValue::String("exception".into()),
            ))
            .add_header(Header::new(
                ":exception-type",
                HeaderValue::String("throttlingException".into()),
            ));
        aws_smithy_eventstream::frame::write_message_to(&m, &mut exc).expect("write");
        match decode_stream_body(&exc, 1 << 20) {
            Err(StreamFailure::Exception { status, .. }) => assert_eq!(status, 429),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn model_ids_are_encoded_for_the_path() {
        assert_eq!(
            encode_model_id("anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "anthropic.claude-sonnet-4-5-20250929-v1%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1:1:inference-profile/us.x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x"
        );
    }

    /// The fuzz seeds are written by an independent encoder (Python's zlib CRC32, see
    /// docs/fuzzing.md): they decode to the events they were written with.
    #[test]
    fn fuzz_seeds_written_elsewhere_decode() {
        let text = include_bytes!("../../../fuzz/corpus/bedrock_stream/text");
        let events = decode_stream_body(&text[1..], 1 << 20).expect("text seed");
        assert!(matches!(&events[2], StreamEvent::TextDelta { text, .. } if text == " world"));
        let tool = include_bytes!("../../../fuzz/corpus/bedrock_stream/tool_use");
        let events = decode_stream_body(&tool[1..], 1 << 20).expect("tool seed");
        assert!(
            matches!(&events[1], StreamEvent::ToolCallStart { name, .. } if name == "get_weather")
        );
        let exc = include_bytes!("../../../fuzz/corpus/bedrock_stream/exception");
        assert!(matches!(
            decode_stream_body(&exc[1..], 1 << 20),
            Err(StreamFailure::Exception { status: 429, .. })
        ));
    }

    proptest::proptest! {
        /// Arbitrary bytes in arbitrary chunks: no panic, and the frames do not depend on
        /// the chunking (the fuzz target's invariant, run on every `cargo test`).
        #[test]
        fn frame_reader_is_total_and_chunking_free(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            cut in 1usize..17,
            seed in 0usize..2,
        ) {
            let tool = include_bytes!("../../../fuzz/corpus/bedrock_stream/tool_use");
            let mut input = if seed == 1 { tool[1..].to_vec() } else { Vec::new() };
            input.extend(&body);
            let whole = FrameReader::new(4096).push(&input);
            let mut reader = FrameReader::new(4096);
            let mut chunked = Ok(Vec::new());
            for c in input.chunks(cut) {
                match reader.push(c) {
                    Ok(f) => {
                        if let Ok(all) = &mut chunked {
                            all.extend(f);
                        }
                    }
                    Err(e) => {
                        chunked = Err(e);
                        break;
                    }
                }
            }
            proptest::prop_assert_eq!(whole.is_ok(), chunked.is_ok());
            if let (Ok(a), Ok(b)) = (whole, chunked) {
                proptest::prop_assert_eq!(a, b);
            }
            let _ = decode_stream_body(&input, 4096);
        }
    }
}
