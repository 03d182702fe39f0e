//! Anthropic Messages: the client side (`POST /v1/messages` and
//! `/v1/messages/count_tokens` requests, responses, errors and event streams) and the
//! backend side (calling an Anthropic upstream).
//!
//! Translation choices:
//! - `system` (string or text blocks) becomes one leading `Role::System` message; when
//!   building upstream requests, every system message, wherever it sits, is moved to
//!   the top-level `system` in order (a string for one plain block, else text blocks so
//!   `cache_control` survives).
//! - Anthropic requires alternating roles: consecutive same-role messages are merged,
//!   messages left without content (e.g. empty text, which Anthropic rejects) are
//!   dropped, and `tool_result` blocks are moved to the front of their user message as
//!   the API demands. OpenAI's message `name` has no equivalent and is dropped.
//! - `max_tokens` is required upstream: [`DEFAULT_MAX_TOKENS`] when the client gave
//!   none (OpenAI clients usually do not).
//! - `response_format` json_object / json_schema have no Anthropic field: an
//!   instruction (with the schema) is appended to the system prompt.
//! - `temperature` is clamped to Anthropic's 0..=1 (OpenAI allows up to 2); `top_p` of
//!   1 or more is a no-op and omitted, because newer Claude models reject requests
//!   that set both `temperature` and `top_p` and OpenAI clients often send `top_p: 1`.
//!   `seed` and the penalties are dropped.
//! - Tool arguments are JSON text canonically; Anthropic wants an object. Empty text
//!   becomes `{}`; text that is not a JSON object (models emit truncated JSON at
//!   `max_tokens`) becomes `{"_raw_arguments": "<text>"}` so nothing is silently lost
//!   and the tool executor reports a schema error the model can see. Streams pass the
//!   fragments through verbatim.
//! - Usage: Anthropic's `input_tokens` excludes cache reads and writes, canonical
//!   `input_tokens` includes them; converted both ways.
//! - Extended thinking (`thinking` with its `signature`, `redacted_thinking`) is kept in
//!   order as canonical thinking parts, responses and streams alike, and sent back to
//!   Anthropic backends untouched (the signature covers the text); other dialects and
//!   backends skip it.
//! - Blocks the canonical model has no place for (server tools, `document`, ...) are
//!   rejected in requests with a precise error and skipped in upstream responses and
//!   streams; `cache_control` on `tool_use` blocks is dropped.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::json::{
    as_obj, at, body_object, field, invalid_type, invalid_value, missing, now_unix, opt_array,
    opt_bool, opt_f32, opt_str, opt_u32, parse_json_body, req_str, string_list, u32_at,
    unknown_fields, upstream_error_message, Obj,
};
use super::sse::{write_event, SseEvent};
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};

/// `max_tokens` for upstream requests whose client did not set one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

// ---------------------------------------------------------------------------------
// Client side: requests.
// ---------------------------------------------------------------------------------

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "max_tokens",
    "system",
    "messages",
    "tools",
    "tool_choice",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "stream",
    "metadata",
];

pub fn parse_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    parse(body, true)
}

/// Like [`parse_request`], but `max_tokens` is not required (count_tokens has none).
pub fn parse_count_tokens_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    parse(body, false)
}

fn parse(body: &[u8], require_max_tokens: bool) -> Result<ChatRequest, GatewayError> {
    let value = parse_json_body(body)?;
    let obj = body_object(&value)?;

    let model = req_str(obj, "model", "")?;
    if model.is_empty() {
        return Err(invalid_value("model", "must be a non-empty string"));
    }
    let max_tokens = opt_u32(obj, "max_tokens", "")?;
    if require_max_tokens && max_tokens.is_none() {
        return Err(missing("max_tokens"));
    }

    let mut messages = Vec::new();
    if let Some(system) = field(obj, "system") {
        let content = parse_system(system)?;
        if !content.is_empty() {
            messages.push(Message {
                role: Role::System,
                content,
                name: None,
            });
        }
    }
    match field(obj, "messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(invalid_value(
                "messages",
                "must contain at least one message",
            ))
        }
        Some(Value::Array(a)) => {
            for (i, m) in a.iter().enumerate() {
                messages.push(parse_message(m, &format!("messages[{i}]"))?);
            }
        }
        Some(v) => return Err(invalid_type("messages", "an array of messages", v)),
    }

    let tools = match opt_array(obj, "tools", "")? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, t)| parse_tool(t, &format!("tools[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    let (tool_choice, parallel_tool_calls) = match field(obj, "tool_choice") {
        None => (None, None),
        Some(v) => parse_tool_choice(v)?,
    };
    let user = match field(obj, "metadata") {
        None => None,
        Some(v) => opt_str(as_obj(v, "metadata")?, "user_id", "metadata")?.map(str::to_owned),
    };

    Ok(ChatRequest {
        model: model.to_owned(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls,
        sampling: Sampling {
            temperature: opt_f32(obj, "temperature", "")?,
            top_p: opt_f32(obj, "top_p", "")?,
            top_k: opt_u32(obj, "top_k", "")?,
            max_tokens,
            stop: string_list(obj, "stop_sequences", "")?,
            seed: None,
            frequency_penalty: None,
            presence_penalty: None,
        },
        response_format: None,
        stream: opt_bool(obj, "stream", "")?.unwrap_or(false),
        // Anthropic streams always report usage.
        include_usage: true,
        user,
        metadata: None,
        extra: unknown_fields(obj, KNOWN_FIELDS),
        extra_dialect: Dialect::Anthropic,
    })
}

fn cache_control(obj: &Obj) -> Option<Value> {
    field(obj, "cache_control").cloned()
}

fn parse_system(v: &Value) -> Result<Vec<ContentPart>, GatewayError> {
    match v {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![ContentPart::text(s.as_str())]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let path = format!("system[{i}]");
                let o = as_obj(b, &path)?;
                match req_str(o, "type", &path)? {
                    "text" => Ok(ContentPart::Text {
                        text: req_str(o, "text", &path)?.to_owned(),
                        cache_control: cache_control(o),
                    }),
                    other => Err(invalid_value(
                        &at(&path, "type"),
                        format!("system blocks must be 'text', got '{other}'"),
                    )),
                }
            })
            .collect(),
        v => Err(invalid_type(
            "system",
            "a string or an array of text blocks",
            v,
        )),
    }
}

fn parse_message(v: &Value, path: &str) -> Result<Message, GatewayError> {
    let m = as_obj(v, path)?;
    let role = match req_str(m, "role", path)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(invalid_value(
                &at(path, "role"),
                format!("'{other}' is not one of user, assistant (system prompts go in 'system')"),
            ))
        }
    };
    let cpath = at(path, "content");
    let content = match field(m, "content") {
        None => return Err(missing(&cpath)),
        Some(Value::String(s)) => vec![ContentPart::text(s.as_str())],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| parse_block(b, &format!("{cpath}[{i}]"), role))
            .collect::<Result<_, _>>()?,
        Some(v) => {
            return Err(invalid_type(
                &cpath,
                "a string or an array of content blocks",
                v,
            ))
        }
    };
    Ok(Message {
        role,
        content,
        name: None,
    })
}

fn parse_block(v: &Value, path: &str, role: Role) -> Result<ContentPart, GatewayError> {
    let b = as_obj(v, path)?;
    match req_str(b, "type", path)? {
        "text" => Ok(ContentPart::Text {
            text: req_str(b, "text", path)?.to_owned(),
            cache_control: cache_control(b),
        }),
        "image" => parse_image(b, path),
        "tool_use" if role == Role::Assistant => Ok(ContentPart::ToolCall {
            id: req_str(b, "id", path)?.to_owned(),
            name: req_str(b, "name", path)?.to_owned(),
            arguments: match field(b, "input") {
                None => "{}".to_owned(),
                Some(input @ Value::Object(_)) => input.to_string(),
                Some(input) => return Err(invalid_type(&at(path, "input"), "an object", input)),
            },
        }),
        "tool_result" if role == Role::User => {
            let cpath = at(path, "content");
            let content = match field(b, "content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![ContentPart::text(s.as_str())],
                Some(Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| {
                        let ipath = format!("{cpath}[{i}]");
                        let o = as_obj(item, &ipath)?;
                        match req_str(o, "type", &ipath)? {
                            "text" => Ok(ContentPart::Text {
                                text: req_str(o, "text", &ipath)?.to_owned(),
                                cache_control: cache_control(o),
                            }),
                            "image" => parse_image(o, &ipath),
                            other => Err(invalid_value(
                                &at(&ipath, "type"),
                                format!(
                                    "tool_result content block type '{other}' is not supported"
                                ),
                            )),
                        }
                    })
                    .collect::<Result<_, _>>()?,
                Some(v) => {
                    return Err(invalid_type(
                        &cpath,
                        "a string or an array of content blocks",
                        v,
                    ))
                }
            };
            Ok(ContentPart::ToolResult {
                call_id: req_str(b, "tool_use_id", path)?.to_owned(),
                content,
                is_error: opt_bool(b, "is_error", path)?.unwrap_or(false),
                cache_control: cache_control(b),
            })
        }
        "thinking" if role == Role::Assistant => Ok(ContentPart::Thinking {
            thinking: req_str(b, "thinking", path)?.to_owned(),
            signature: opt_str(b, "signature", path)?
                .unwrap_or_default()
                .to_owned(),
        }),
        "redacted_thinking" if role == Role::Assistant => Ok(ContentPart::RedactedThinking {
            data: req_str(b, "data", path)?.to_owned(),
        }),
        kind @ ("tool_use" | "tool_result" | "thinking" | "redacted_thinking") => {
            Err(invalid_value(
                &at(path, "type"),
                format!(
                    "'{kind}' blocks are only allowed in {} messages",
                    if kind == "tool_result" {
                        "user"
                    } else {
                        "assistant"
                    }
                ),
            ))
        }
        other => Err(invalid_value(
            &at(path, "type"),
            format!("content block type '{other}' is not supported by this gateway"),
        )),
    }
}

fn parse_image(b: &Obj, path: &str) -> Result<ContentPart, GatewayError> {
    let spath = at(path, "source");
    let s = match field(b, "source") {
        None => return Err(missing(&spath)),
        Some(v) => as_obj(v, &spath)?,
    };
    let source = match req_str(s, "type", &spath)? {
        "base64" => ImageSource::Base64 {
            media_type: req_str(s, "media_type", &spath)?.to_owned(),
            data: req_str(s, "data", &spath)?.to_owned(),
        },
        "url" => ImageSource::Url {
            url: req_str(s, "url", &spath)?.to_owned(),
        },
        other => {
            return Err(invalid_value(
                &at(&spath, "type"),
                format!("image source type '{other}' is not supported; use base64 or url"),
            ))
        }
    };
    Ok(ContentPart::Image {
        source,
        cache_control: cache_control(b),
    })
}

fn parse_tool(v: &Value, path: &str) -> Result<Tool, GatewayError> {
    let t = as_obj(v, path)?;
    if let Some(kind) = opt_str(t, "type", path)? {
        if kind != "custom" {
            return Err(invalid_value(
                &at(path, "type"),
                format!("tool type '{kind}' is not supported; only client (custom) tools are"),
            ));
        }
    }
    let name = req_str(t, "name", path)?;
    if name.is_empty() {
        return Err(invalid_value(
            &at(path, "name"),
            "must be a non-empty string",
        ));
    }
    let parameters = match field(t, "input_schema") {
        None => return Err(missing(&at(path, "input_schema"))),
        Some(s @ Value::Object(_)) => s.clone(),
        Some(s) => return Err(invalid_type(&at(path, "input_schema"), "an object", s)),
    };
    Ok(Tool {
        name: name.to_owned(),
        description: opt_str(t, "description", path)?.map(str::to_owned),
        parameters,
        cache_control: cache_control(t),
    })
}

fn parse_tool_choice(v: &Value) -> Result<(Option<ToolChoice>, Option<bool>), GatewayError> {
    const PATH: &str = "tool_choice";
    let o = as_obj(v, PATH)?;
    let choice = match req_str(o, "type", PATH)? {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool {
            name: req_str(o, "name", PATH)?.to_owned(),
        },
        other => {
            return Err(invalid_value(
                "tool_choice.type",
                format!("'{other}' is not one of auto, any, tool, none"),
            ))
        }
    };
    let parallel = opt_bool(o, "disable_parallel_tool_use", PATH)?.map(|disable| !disable);
    Ok((Some(choice), parallel))
}

// ---------------------------------------------------------------------------------
// Client side: responses and errors.
// ---------------------------------------------------------------------------------

fn stop_reason_str(stop: &StopReason) -> (&'static str, Option<&str>) {
    match stop {
        StopReason::EndTurn => ("end_turn", None),
        StopReason::MaxTokens => ("max_tokens", None),
        StopReason::StopSequence { sequence } => ("stop_sequence", sequence.as_deref()),
        StopReason::ToolUse => ("tool_use", None),
        StopReason::ContentFilter => ("refusal", None),
    }
}

/// Anthropic's `input_tokens` does not include cache reads and writes.
fn uncached_input(u: &Usage) -> u32 {
    u.input_tokens
        .saturating_sub(u.cache_read_input_tokens)
        .saturating_sub(u.cache_creation_input_tokens)
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": uncached_input(u),
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_input_tokens,
        "cache_creation_input_tokens": u.cache_creation_input_tokens,
    })
}

/// Canonical arguments text as the object Anthropic requires (see the module notes).
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({"_raw_arguments": arguments}),
    }
}

pub fn render_response(resp: &ChatResponse) -> Value {
    let content: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(json!({"type": "text", "text": text})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(json!({
                "type": "tool_use",
                "id": id,
                "name": name,
                "input": tool_input(arguments),
            })),
            ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => block_json(p),
            ContentPart::Image { .. } | ContentPart::ToolResult { .. } => None,
        })
        .collect();
    let (stop_reason, stop_sequence) = stop_reason_str(&resp.stop_reason);
    json!({
        "id": resp.id,
        "type": "message",
        "role": "assistant",
        "model": resp.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage_json(&resp.usage),
    })
}

fn error_type(err: &GatewayError) -> &'static str {
    match err {
        GatewayError::InvalidRequest(_) => "invalid_request_error",
        GatewayError::Authentication(_) => "authentication_error",
        GatewayError::PermissionDenied(_) => "permission_error",
        GatewayError::NotFound(_) => "not_found_error",
        GatewayError::PayloadTooLarge { .. } => "request_too_large",
        GatewayError::RequestTimeout(_) => "timeout_error",
        GatewayError::RateLimited { .. } => "rate_limit_error",
        GatewayError::Upstream { status, .. } => match status {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        },
        GatewayError::BadGateway { .. } | GatewayError::Internal(_) => "api_error",
        GatewayError::Timeout { .. } => "timeout_error",
        GatewayError::Overloaded(_) => "overloaded_error",
    }
}

pub fn render_error(err: &GatewayError) -> Value {
    json!({
        "type": "error",
        "error": {"type": error_type(err), "message": err.to_string()},
    })
}

// ---------------------------------------------------------------------------------
// Client side: streaming.
// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    ToolUse,
    Thinking,
    /// `redacted_thinking`: whole at its start, takes no deltas.
    Opaque,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    canonical: u32,
    kind: BlockKind,
}

/// Canonical events to Anthropic's `message_start` ... `message_stop` event stream.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    started: bool,
    start_usage: Option<Usage>,
    open: Option<OpenBlock>,
    /// Anthropic block indices are dense from 0 whatever the canonical indices are.
    next_block: u32,
    finished: bool,
    errored: bool,
}

/// Writes a frame whose `event:` line is its data's `type`, as Anthropic does.
fn frame(out: &mut Vec<u8>, data: Value) {
    let name = data
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("message")
        .to_owned();
    write_event(out, Some(&name), &data.to_string());
}

impl StreamEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, id: &str, model: &str, usage: Option<Usage>, out: &mut Vec<u8>) {
        self.started = true;
        self.start_usage = usage;
        frame(
            out,
            json!({
                "type": "message_start",
                "message": {
                    "id": id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": null,
                    "stop_sequence": null,
                    "usage": usage_json(&usage.unwrap_or_default()),
                },
            }),
        );
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", "", None, out);
        }
    }

    fn close_block(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let index = self.next_block.saturating_sub(1);
            frame(out, json!({"type": "content_block_stop", "index": index}));
        }
    }

    fn open_block(&mut self, canonical: u32, block: Value, out: &mut Vec<u8>) -> u32 {
        self.close_block(out);
        let index = self.next_block;
        self.next_block = self.next_block.saturating_add(1);
        let kind = match block.get("type").and_then(Value::as_str) {
            Some("text") => BlockKind::Text,
            Some("thinking") => BlockKind::Thinking,
            Some("redacted_thinking") => BlockKind::Opaque,
            _ => BlockKind::ToolUse,
        };
        self.open = Some(OpenBlock { canonical, kind });
        frame(
            out,
            json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        index
    }

    /// The Anthropic index of the open block if it is canonical part `canonical` of
    /// the wanted kind.
    fn current(&self, canonical: u32, kind: BlockKind) -> Option<u32> {
        self.open
            .filter(|b| b.canonical == canonical && b.kind == kind)
            .map(|_| self.next_block.saturating_sub(1))
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished || self.errored {
            return;
        }
        match ev {
            StreamEvent::Start {
                id, model, usage, ..
            } => {
                if !self.started {
                    self.start(id, model, *usage, out);
                }
            }
            StreamEvent::TextDelta { index, text } => {
                if text.is_empty() {
                    return;
                }
                self.ensure_started(out);
                let block = match self.current(*index, BlockKind::Text) {
                    Some(b) => b,
                    None => self.open_block(*index, json!({"type": "text", "text": ""}), out),
                };
                frame(
                    out,
                    json!({
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "text_delta", "text": text},
                    }),
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.ensure_started(out);
                self.open_block(
                    *index,
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if arguments.is_empty() {
                    return;
                }
                self.ensure_started(out);
                let block = match self.current(*index, BlockKind::ToolUse) {
                    Some(b) => b,
                    // A delta without its start: still a well-formed block for clients.
                    None => self.open_block(
                        *index,
                        json!({"type": "tool_use", "id": "", "name": "", "input": {}}),
                        out,
                    ),
                };
                frame(
                    out,
                    json!({
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "input_json_delta", "partial_json": arguments},
                    }),
                );
            }
            StreamEvent::ThinkingDelta { index, thinking } => {
                if thinking.is_empty() {
                    return;
                }
                let block = self.thinking_block(*index, out);
                frame(
                    out,
                    json!({
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "thinking_delta", "thinking": thinking},
                    }),
                );
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                let block = self.thinking_block(*index, out);
                frame(
                    out,
                    json!({
                        "type": "content_block_delta",
                        "index": block,
                        "delta": {"type": "signature_delta", "signature": signature},
                    }),
                );
            }
            StreamEvent::RedactedThinking { index, data } => {
                self.ensure_started(out);
                self.open_block(
                    *index,
                    json!({"type": "redacted_thinking", "data": data}),
                    out,
                );
            }
            StreamEvent::Ping => frame(out, json!({"type": "ping"})),
            StreamEvent::Finish { stop_reason, usage } => self.end(stop_reason, *usage, out),
        }
    }

    /// The open thinking block of canonical part `index`, opened if need be.
    fn thinking_block(&mut self, index: u32, out: &mut Vec<u8>) -> u32 {
        self.ensure_started(out);
        match self.current(index, BlockKind::Thinking) {
            Some(b) => b,
            None => self.open_block(
                index,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            ),
        }
    }

    fn end(&mut self, stop: &StopReason, usage: Option<Usage>, out: &mut Vec<u8>) {
        self.ensure_started(out);
        self.close_block(out);
        let (stop_reason, stop_sequence) = stop_reason_str(stop);
        // The final totals go here too (Anthropic does the same since 2025): an
        // OpenAI-backed stream only learns its prompt tokens at the end.
        let usage_value = match usage {
            Some(u) => usage_json(&u),
            None => json!({
                "output_tokens": self.start_usage.map_or(0, |u| u.output_tokens),
            }),
        };
        frame(
            out,
            json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                "usage": usage_value,
            }),
        );
        frame(out, json!({"type": "message_stop"}));
        self.finished = true;
    }

    /// A failure after the stream started: an `error` event, after which nothing else
    /// is written (that is how Anthropic ends a failed stream).
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        if self.finished || self.errored {
            return;
        }
        self.errored = true;
        frame(out, render_error(err));
    }

    /// Closes a stream whose `Finish` never came with `message_delta` (end_turn) and
    /// `message_stop`, so clients always see a complete message. No-op after `Finish`
    /// or an error. Idempotent.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished || self.errored {
            return;
        }
        self.end(&StopReason::EndTurn, None, out);
    }
}

// ---------------------------------------------------------------------------------
// Backend side: requests to an Anthropic upstream.
// ---------------------------------------------------------------------------------

fn with_cache_control(mut block: Value, cc: &Option<Value>) -> Value {
    if let (Some(cc), Value::Object(o)) = (cc, &mut block) {
        o.insert("cache_control".into(), cc.clone());
    }
    block
}

fn image_block(source: &ImageSource, cc: &Option<Value>) -> Value {
    let source = match source {
        ImageSource::Url { url } => json!({"type": "url", "url": url}),
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
    };
    with_cache_control(json!({"type": "image", "source": source}), cc)
}

/// One canonical part as an Anthropic block; `None` for parts Anthropic would reject
/// (empty text).
fn block_json(part: &ContentPart) -> Option<Value> {
    match part {
        ContentPart::Text {
            text,
            cache_control,
        } => (!text.is_empty())
            .then(|| with_cache_control(json!({"type": "text", "text": text}), cache_control)),
        ContentPart::Image {
            source,
            cache_control,
        } => Some(image_block(source, cache_control)),
        ContentPart::ToolCall {
            id,
            name,
            arguments,
        } => Some(json!({
            "type": "tool_use",
            "id": id,
            "name": name,
            "input": tool_input(arguments),
        })),
        ContentPart::ToolResult {
            call_id,
            content,
            is_error,
            cache_control,
        } => {
            let mut o = Map::new();
            o.insert("type".into(), json!("tool_result"));
            o.insert("tool_use_id".into(), json!(call_id));
            let inner: Vec<Value> = content.iter().filter_map(block_json).collect();
            if !inner.is_empty() {
                o.insert("content".into(), Value::Array(inner));
            }
            if *is_error {
                o.insert("is_error".into(), json!(true));
            }
            Some(with_cache_control(Value::Object(o), cache_control))
        }
        ContentPart::Thinking {
            thinking,
            signature,
        } => Some(json!({"type": "thinking", "thinking": thinking, "signature": signature})),
        ContentPart::RedactedThinking { data } => {
            Some(json!({"type": "redacted_thinking", "data": data}))
        }
    }
}

fn system_json(req: &ChatRequest) -> Option<Value> {
    let mut blocks: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .flat_map(|m| m.content.iter())
        .filter_map(|p| match p {
            ContentPart::Text { .. } => block_json(p),
            _ => None,
        })
        .collect();
    let instruction = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            Some("Respond only with a single valid JSON object, without any other text.".to_owned())
        }
        Some(ResponseFormat::JsonSchema { schema }) => {
            let schema = schema.get("schema").unwrap_or(schema);
            Some(format!(
                "Respond only with a single valid JSON value, without any other text, that \
                 conforms to this JSON Schema: {schema}"
            ))
        }
    };
    if let Some(text) = instruction {
        blocks.push(json!({"type": "text", "text": text}));
    }
    match blocks.as_slice() {
        [] => None,
        [only] if only.get("cache_control").is_none() => only.get("text").cloned(),
        _ => Some(Value::Array(blocks)),
    }
}

fn messages_json(messages: &[Message]) -> Vec<Value> {
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        let blocks: Vec<Value> = m.content.iter().filter_map(block_json).collect();
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((role, existing)) if *role == m.role => existing.extend(blocks),
            _ => turns.push((m.role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, mut blocks)| {
            let role = match role {
                Role::Assistant => "assistant",
                _ => "user",
            };
            // Anthropic wants tool results before any other block of the turn.
            blocks.sort_by_key(|b| b.get("type").and_then(Value::as_str) != Some("tool_result"));
            json!({"role": role, "content": blocks})
        })
        .collect()
}

/// model, system, messages, tools and tool_choice: what both endpoints take.
fn base_body(req: &ChatRequest, upstream_model: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("model".into(), json!(upstream_model));
    if let Some(system) = system_json(req) {
        body.insert("system".into(), system);
    }
    body.insert(
        "messages".into(),
        Value::Array(messages_json(&req.messages)),
    );
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    o.insert("description".into(), json!(d));
                }
                o.insert("input_schema".into(), t.parameters.clone());
                with_cache_control(Value::Object(o), &t.cache_control)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        // Anthropic rejects tool_choice without tools.
        let choice = match (&req.tool_choice, req.parallel_tool_calls) {
            (None, Some(false)) => Some(json!({"type": "auto"})),
            (None, _) => None,
            (Some(ToolChoice::Auto), _) => Some(json!({"type": "auto"})),
            (Some(ToolChoice::None), _) => Some(json!({"type": "none"})),
            (Some(ToolChoice::Required), _) => Some(json!({"type": "any"})),
            (Some(ToolChoice::Tool { name }), _) => Some(json!({"type": "tool", "name": name})),
        };
        if let Some(mut choice) = choice {
            if let (Some(parallel), Value::Object(o)) = (req.parallel_tool_calls, &mut choice) {
                // `none` takes no such flag.
                if req.tool_choice != Some(ToolChoice::None) {
                    o.insert("disable_parallel_tool_use".into(), json!(!parallel));
                }
            }
            body.insert("tool_choice".into(), choice);
        }
    }
    body
}

pub fn build_request(req: &ChatRequest, upstream_model: &str) -> Value {
    let mut body = base_body(req, upstream_model);
    let s = &req.sampling;
    body.insert(
        "max_tokens".into(),
        json!(s.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !s.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(s.stop));
    }
    if let Some(t) = s.temperature {
        body.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
    }
    if let Some(p) = s.top_p.filter(|p| *p < 1.0) {
        body.insert("top_p".into(), json!(p));
    }
    if let Some(k) = s.top_k {
        body.insert("top_k".into(), json!(k));
    }
    if let Some(user) = &req.user {
        body.insert("metadata".into(), json!({"user_id": user}));
    }
    body.insert("stream".into(), json!(req.stream));
    if req.extra_dialect == Dialect::Anthropic {
        for (k, v) in &req.extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(body)
}

/// Only the fields `/v1/messages/count_tokens` accepts: it rejects generation
/// settings, so of the client's unknown fields only `thinking` and `mcp_servers`
/// (which change the count) are forwarded.
pub fn build_count_tokens_request(req: &ChatRequest, upstream_model: &str) -> Value {
    let mut body = base_body(req, upstream_model);
    if req.extra_dialect == Dialect::Anthropic {
        for key in ["thinking", "mcp_servers"] {
            if let Some(v) = req.extra.get(key) {
                body.insert(key.into(), v.clone());
            }
        }
    }
    Value::Object(body)
}

// ---------------------------------------------------------------------------------
// Backend side: responses, errors and streams from the upstream.
// ---------------------------------------------------------------------------------

fn stop_reason_from(reason: Option<&str>, sequence: Option<&str>) -> StopReason {
    match reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence {
            sequence: sequence.map(str::to_owned),
        },
        Some("tool_use") => StopReason::ToolUse,
        Some("refusal") => StopReason::ContentFilter,
        // end_turn, pause_turn and anything newer.
        _ => StopReason::EndTurn,
    }
}

/// Anthropic usage as reported, before folding cache tokens into the input.
#[derive(Debug, Clone, Copy, Default)]
struct RawUsage {
    input: u32,
    output: u32,
    cache_read: u32,
    cache_creation: u32,
}

impl RawUsage {
    fn from_json(v: &Value) -> Self {
        RawUsage {
            input: u32_at(v, "input_tokens"),
            output: u32_at(v, "output_tokens"),
            cache_read: u32_at(v, "cache_read_input_tokens"),
            cache_creation: u32_at(v, "cache_creation_input_tokens"),
        }
    }

    /// `message_delta` usage is cumulative and may carry only some fields.
    fn update(&mut self, v: &Value) {
        let set = |slot: &mut u32, key: &str| {
            if v.get(key).and_then(Value::as_u64).is_some() {
                *slot = u32_at(v, key);
            }
        };
        set(&mut self.input, "input_tokens");
        set(&mut self.output, "output_tokens");
        set(&mut self.cache_read, "cache_read_input_tokens");
        set(&mut self.cache_creation, "cache_creation_input_tokens");
    }

    fn canonical(self) -> Usage {
        Usage {
            input_tokens: self
                .input
                .saturating_add(self.cache_read)
                .saturating_add(self.cache_creation),
            output_tokens: self.output,
            cache_read_input_tokens: self.cache_read,
            cache_creation_input_tokens: self.cache_creation,
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn error_message(v: &Value) -> String {
    v.get("error")
        .and_then(|e| str_at(e, "message"))
        .map(str::to_owned)
        .unwrap_or_else(|| v.to_string())
}

fn input_text(input: Option<&Value>) -> String {
    match input {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(v) => v.to_string(),
    }
}

pub fn parse_response(body: &[u8]) -> Result<ChatResponse, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON from upstream: {e}"))?;
    if str_at(&v, "type") == Some("error") {
        return Err(error_message(&v));
    }
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("upstream response has no content array")?;
    let content = blocks
        .iter()
        .filter_map(|b| match str_at(b, "type") {
            Some("text") => Some(ContentPart::text(str_at(b, "text").unwrap_or_default())),
            Some("tool_use") => Some(ContentPart::ToolCall {
                id: str_at(b, "id").unwrap_or_default().to_owned(),
                name: str_at(b, "name").unwrap_or_default().to_owned(),
                arguments: input_text(b.get("input")),
            }),
            Some("thinking") => Some(ContentPart::Thinking {
                thinking: str_at(b, "thinking").unwrap_or_default().to_owned(),
                signature: str_at(b, "signature").unwrap_or_default().to_owned(),
            }),
            Some("redacted_thinking") => Some(ContentPart::RedactedThinking {
                data: str_at(b, "data").unwrap_or_default().to_owned(),
            }),
            // server tool blocks, ...: no canonical place.
            _ => None,
        })
        .collect();
    Ok(ChatResponse {
        id: str_at(&v, "id").unwrap_or_default().to_owned(),
        model: str_at(&v, "model").unwrap_or_default().to_owned(),
        content,
        stop_reason: stop_reason_from(str_at(&v, "stop_reason"), str_at(&v, "stop_sequence")),
        usage: v
            .get("usage")
            .map(|u| RawUsage::from_json(u).canonical())
            .unwrap_or_default(),
        created: now_unix(),
    })
}

pub fn parse_error(
    status: u16,
    body: &[u8],
    retry_after: Option<String>,
    provider: &str,
) -> GatewayError {
    GatewayError::Upstream {
        provider: provider.to_owned(),
        status,
        message: upstream_error_message(status, body),
        retry_after,
    }
}

/// The `content_block_delta` kinds with a canonical event.
#[derive(Debug, Clone, Copy)]
enum DeltaKind {
    Text,
    Json,
    Thinking,
    Signature,
}

/// Upstream Anthropic events to canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    usage: RawUsage,
    /// Anthropic block index -> canonical index; `None` for skipped blocks (server tools).
    blocks: HashMap<u64, Option<u32>>,
    next_index: u32,
    stop: Option<StopReason>,
    finished: bool,
    done: bool,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                created: now_unix(),
                usage: None,
            });
        }
    }

    fn allocate(&mut self, block: u64) -> u32 {
        let i = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        self.blocks.insert(block, Some(i));
        i
    }

    pub fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        if self.done {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(&ev.data)
            .map_err(|e| format!("invalid JSON in upstream stream: {e}"))?;
        let kind = str_at(&v, "type")
            .or(ev.event.as_deref())
            .unwrap_or_default();
        let mut out = Vec::new();
        match kind {
            "message_start" => {
                if self.started {
                    return Ok(out);
                }
                self.started = true;
                let msg = v.get("message").unwrap_or(&Value::Null);
                self.usage = msg
                    .get("usage")
                    .map(RawUsage::from_json)
                    .unwrap_or_default();
                out.push(StreamEvent::Start {
                    id: str_at(msg, "id").unwrap_or_default().to_owned(),
                    model: str_at(msg, "model").unwrap_or_default().to_owned(),
                    created: now_unix(),
                    usage: Some(self.usage.canonical()),
                });
            }
            "content_block_start" => {
                self.ensure_started(&mut out);
                let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let block = v.get("content_block").unwrap_or(&Value::Null);
                match str_at(block, "type") {
                    Some("text") => {
                        let index = self.allocate(block_index);
                        if let Some(text) = str_at(block, "text").filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta {
                                index,
                                text: text.to_owned(),
                            });
                        }
                    }
                    Some("tool_use") => {
                        let index = self.allocate(block_index);
                        out.push(StreamEvent::ToolCallStart {
                            index,
                            id: str_at(block, "id").unwrap_or_default().to_owned(),
                            name: str_at(block, "name").unwrap_or_default().to_owned(),
                        });
                        // Streams start tool input as `{}` and send it as deltas; a
                        // non-empty one would otherwise be lost.
                        if let Some(input) = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            out.push(StreamEvent::ToolCallDelta {
                                index,
                                arguments: input.to_string(),
                            });
                        }
                    }
                    Some("thinking") => {
                        let index = self.allocate(block_index);
                        if let Some(t) = str_at(block, "thinking").filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::ThinkingDelta {
                                index,
                                thinking: t.to_owned(),
                            });
                        }
                    }
                    Some("redacted_thinking") => {
                        let index = self.allocate(block_index);
                        out.push(StreamEvent::RedactedThinking {
                            index,
                            data: str_at(block, "data").unwrap_or_default().to_owned(),
                        });
                    }
                    _ => {
                        self.blocks.insert(block_index, None);
                    }
                }
            }
            "content_block_delta" => {
                self.ensure_started(&mut out);
                let block_index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                let (kind, piece) = match str_at(delta, "type") {
                    Some("text_delta") => (DeltaKind::Text, str_at(delta, "text")),
                    Some("input_json_delta") => (DeltaKind::Json, str_at(delta, "partial_json")),
                    Some("thinking_delta") => (DeltaKind::Thinking, str_at(delta, "thinking")),
                    Some("signature_delta") => (DeltaKind::Signature, str_at(delta, "signature")),
                    // citations_delta, ...
                    _ => return Ok(out),
                };
                let index = match self.blocks.get(&block_index) {
                    Some(Some(i)) => *i,
                    Some(None) => return Ok(out),
                    None => return Err(format!("delta for unknown content block {block_index}")),
                };
                if let Some(piece) = piece.filter(|p| !p.is_empty()) {
                    let piece = piece.to_owned();
                    out.push(match kind {
                        DeltaKind::Text => StreamEvent::TextDelta { index, text: piece },
                        DeltaKind::Json => StreamEvent::ToolCallDelta {
                            index,
                            arguments: piece,
                        },
                        DeltaKind::Thinking => StreamEvent::ThinkingDelta {
                            index,
                            thinking: piece,
                        },
                        DeltaKind::Signature => StreamEvent::ThinkingSignature {
                            index,
                            signature: piece,
                        },
                    });
                }
            }
            "message_delta" => {
                self.ensure_started(&mut out);
                let delta = v.get("delta").unwrap_or(&Value::Null);
                if let Some(reason) = str_at(delta, "stop_reason") {
                    self.stop = Some(stop_reason_from(
                        Some(reason),
                        str_at(delta, "stop_sequence"),
                    ));
                }
                if let Some(u) = v.get("usage") {
                    self.usage.update(u);
                }
            }
            "message_stop" => {
                self.done = true;
                out.extend(self.finish()?);
            }
            "ping" => out.push(StreamEvent::Ping),
            "error" => return Err(error_message(&v)),
            // content_block_stop carries nothing; unknown events are to be ignored.
            _ => {}
        }
        Ok(out)
    }

    /// Emits `Finish` once: at `message_stop`, or at the end of a body that had a
    /// `message_delta` with a stop reason. Errors when the stream ended before that.
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        if self.finished {
            return Ok(Vec::new());
        }
        let Some(stop_reason) = self.stop.clone() else {
            return Err("upstream stream ended without a stop_reason".to_owned());
        };
        self.finished = true;
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        out.push(StreamEvent::Finish {
            stop_reason,
            usage: Some(self.usage.canonical()),
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialects::openai;
    use crate::dialects::sse::SseParser;
    use proptest::prelude::*;

    fn parse(v: Value) -> Result<ChatRequest, GatewayError> {
        parse_request(v.to_string().as_bytes())
    }

    fn invalid_message(result: Result<ChatRequest, GatewayError>) -> String {
        match result {
            Err(GatewayError::InvalidRequest(m)) => m,
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    fn frames(bytes: &[u8]) -> Vec<SseEvent> {
        let mut p = SseParser::new(1 << 20);
        let events = p.push(bytes).unwrap();
        assert_eq!(
            p.finish().unwrap(),
            None,
            "stream must end on a frame boundary"
        );
        events
    }

    /// `created` comes from the clock on the Anthropic side; zero it for comparison.
    fn normalize(mut events: Vec<StreamEvent>) -> Vec<StreamEvent> {
        for ev in &mut events {
            if let StreamEvent::Start { created, .. } = ev {
                *created = 0;
            }
        }
        events
    }

    fn decode_all(bytes: &[u8]) -> Vec<StreamEvent> {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        for f in frames(bytes) {
            out.extend(d.decode(&f).unwrap());
        }
        assert!(d.is_done());
        out.extend(d.finish().unwrap());
        normalize(out)
    }

    fn usage(input: u32, output: u32, read: u32, write: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: read,
            cache_creation_input_tokens: write,
        }
    }

    #[test]
    fn parses_a_full_request() {
        let req = parse(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "system": [
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Big cached context", "cache_control": {"type": "ephemeral"}}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                    {"type": "text", "text": "Weather?"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "is_error": true,
                     "content": [{"type": "text", "text": "timeout"}], "cache_control": {"type": "ephemeral"}},
                    {"type": "text", "text": "try again"}
                ]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather by city",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "cache_control": {"type": "ephemeral"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "stop_sequences": ["\n\nHuman:"],
            "temperature": 0.2, "top_p": 0.8, "top_k": 40,
            "stream": true,
            "metadata": {"user_id": "user-42"},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "service_tier": "auto"
        }))
        .unwrap();
        let ephemeral = Some(json!({"type": "ephemeral"}));
        assert_eq!(
            req.messages[0],
            Message {
                role: Role::System,
                content: vec![
                    ContentPart::text("You are terse."),
                    ContentPart::Text {
                        text: "Big cached context".into(),
                        cache_control: ephemeral.clone()
                    },
                ],
                name: None,
            }
        );
        assert_eq!(
            req.messages[1].content[0],
            ContentPart::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBOR".into()
                },
                cache_control: None
            }
        );
        assert_eq!(
            req.messages[2].content[1],
            ContentPart::ToolCall {
                id: "toolu_01".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into()
            }
        );
        assert_eq!(
            req.messages[3].content,
            vec![
                ContentPart::ToolResult {
                    call_id: "toolu_01".into(),
                    content: vec![ContentPart::text("timeout")],
                    is_error: true,
                    cache_control: ephemeral.clone()
                },
                ContentPart::text("try again"),
            ]
        );
        assert_eq!(req.tools[0].cache_control, ephemeral);
        assert_eq!(req.tool_choice, Some(ToolChoice::Required));
        assert_eq!(req.parallel_tool_calls, Some(false));
        assert_eq!(req.sampling.max_tokens, Some(1024));
        assert_eq!(req.sampling.stop, vec!["\n\nHuman:".to_owned()]);
        assert_eq!(req.sampling.top_k, Some(40));
        assert_eq!(req.sampling.temperature, Some(0.2));
        assert!(req.stream && req.include_usage);
        assert_eq!(req.user.as_deref(), Some("user-42"));
        assert_eq!(
            req.extra,
            *json!({"thinking": {"type": "enabled", "budget_tokens": 2048}, "service_tier": "auto"})
                .as_object()
                .unwrap()
        );
        assert_eq!(req.extra_dialect, Dialect::Anthropic);
    }

    #[test]
    fn request_errors_are_precise() {
        let ok_messages = json!([{"role": "user", "content": "hi"}]);
        let m = invalid_message(parse_request(b"{"));
        assert!(m.starts_with("request body is not valid JSON"), "{m}");
        let m = invalid_message(parse(json!({"model": "claude", "messages": ok_messages})));
        assert_eq!(m, "missing required parameter 'max_tokens'");
        let counted = parse_count_tokens_request(
            json!({"model": "claude", "messages": ok_messages})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(counted.sampling.max_tokens, None);
        let m = invalid_message(parse(json!({"max_tokens": 5, "messages": ok_messages})));
        assert_eq!(m, "missing required parameter 'model'");
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": "5", "messages": ok_messages}),
        ));
        assert_eq!(
            m,
            "invalid type for 'max_tokens': expected a non-negative integer, got a string"
        );
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
        ));
        assert!(m.starts_with("invalid value for 'messages[0].role'"), "{m}");
        let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]})));
        assert_eq!(
            m,
            "invalid value for 'messages[0].content[0].type': 'tool_use' blocks are only allowed in assistant messages"
        );
        let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]}]})));
        assert_eq!(
            m,
            "invalid value for 'messages[0].content[0].type': 'thinking' blocks are only allowed in assistant messages"
        );
        let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "assistant", "content": [{"type": "redacted_thinking"}]}]})));
        assert_eq!(
            m,
            "missing required parameter 'messages[0].content[0].data'"
        );
        let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": [1]}]}]})));
        assert_eq!(
            m,
            "invalid type for 'messages[0].content[0].input': expected an object, got an array"
        );
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": 5, "system": 3, "messages": ok_messages}),
        ));
        assert_eq!(m, "invalid type for 'system': expected a string or an array of text blocks, got an integer");
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": 5, "messages": ok_messages,
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
        ));
        assert!(
            m.contains("tool type 'web_search_20250305' is not supported"),
            "{m}"
        );
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": 5, "messages": ok_messages,
            "tools": [{"name": "f"}]}),
        ));
        assert_eq!(m, "missing required parameter 'tools[0].input_schema'");
        let m = invalid_message(parse(
            json!({"model": "c", "max_tokens": 5, "messages": ok_messages, "tool_choice": {"type": "tool"}}),
        ));
        assert_eq!(m, "missing required parameter 'tool_choice.name'");
    }

    fn anthropic_request() -> ChatRequest {
        let cc = Some(json!({"type": "ephemeral"}));
        let mut req = ChatRequest::new(
            "claude-haiku-4-5",
            vec![
                Message {
                    role: Role::System,
                    content: vec![
                        ContentPart::text("sys"),
                        ContentPart::Text {
                            text: "cached".into(),
                            cache_control: cc.clone(),
                        },
                    ],
                    name: None,
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentPart::Image {
                            source: ImageSource::Url {
                                url: "https://example.com/x.png".into(),
                            },
                            cache_control: cc.clone(),
                        },
                        ContentPart::text("hi"),
                    ],
                    name: None,
                },
                Message {
                    role: Role::Assistant,
                    content: vec![ContentPart::ToolCall {
                        id: "toolu_1".into(),
                        name: "f".into(),
                        arguments: "{\"a\":[1,2]}".into(),
                    }],
                    name: None,
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentPart::ToolResult {
                            call_id: "toolu_1".into(),
                            content: vec![
                                ContentPart::text("r"),
                                ContentPart::Image {
                                    source: ImageSource::Base64 {
                                        media_type: "image/gif".into(),
                                        data: "R0lG".into(),
                                    },
                                    cache_control: None,
                                },
                            ],
                            is_error: true,
                            cache_control: cc.clone(),
                        },
                        ContentPart::text("more"),
                    ],
                    name: None,
                },
            ],
            Dialect::Anthropic,
        );
        req.tools = vec![Tool {
            name: "f".into(),
            description: None,
            parameters: json!({"type": "object"}),
            cache_control: cc,
        }];
        req.tool_choice = Some(ToolChoice::Tool { name: "f".into() });
        req.parallel_tool_calls = Some(false);
        req.sampling = Sampling {
            temperature: Some(0.5),
            top_p: Some(0.75),
            top_k: Some(10),
            max_tokens: Some(256),
            stop: vec!["STOP".into()],
            ..Sampling::default()
        };
        req.stream = true;
        req.include_usage = true;
        req.user = Some("u1".into());
        req.extra = json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
            .as_object()
            .unwrap()
            .clone();
        req
    }

    #[test]
    fn build_then_parse_round_trips() {
        let req = anthropic_request();
        let body = build_request(&req, "claude-haiku-4-5");
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        let back = parse_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(back, req);

        let count = build_count_tokens_request(&req, "claude-haiku-4-5");
        assert!(count.get("max_tokens").is_none() && count.get("stream").is_none());
        let back = parse_count_tokens_request(count.to_string().as_bytes()).unwrap();
        assert_eq!(back.messages, req.messages);
        assert_eq!(back.tools, req.tools);
        assert_eq!(back.extra, req.extra);
    }

    #[test]
    fn openai_request_to_anthropic_upstream() {
        let req = openai::parse_request(
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Rule one."},
                    {"role": "user", "name": "ann", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}}
                    ]},
                    {"role": "user", "content": "Also, weather?"},
                    {"role": "assistant", "content": "", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                        {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\""}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
                    {"role": "tool", "tool_call_id": "call_2", "content": ""},
                    {"role": "developer", "content": "Rule two."},
                    {"role": "user", "content": "Summarize."}
                ],
                "tools": [{"type": "function", "function": {"name": "get_weather",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "response_format": {"type": "json_object"},
                "temperature": 1.6, "top_p": 1, "seed": 1, "presence_penalty": 0.5,
                "stop": ["END"], "user": "u-9", "logit_bias": {"1": 2}
            })
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        let body = build_request(&req, "claude-sonnet-4-5");
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "system": [
                    {"type": "text", "text": "Rule one."},
                    {"type": "text", "text": "Rule two."},
                    {"type": "text", "text": "Respond only with a single valid JSON object, without any other text."}
                ],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGR"}},
                        {"type": "text", "text": "Also, weather?"}
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
                        {"type": "tool_use", "id": "call_2", "name": "get_weather",
                         "input": {"_raw_arguments": "{\"city\""}}
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "-3C"}]},
                        {"type": "tool_result", "tool_use_id": "call_2"},
                        {"type": "text", "text": "Summarize."}
                    ]}
                ],
                "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                    "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
                "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
                "max_tokens": DEFAULT_MAX_TOKENS,
                "stop_sequences": ["END"],
                "temperature": 1.0,
                "metadata": {"user_id": "u-9"},
                "stream": false
            })
        );
    }

    #[test]
    fn json_schema_goes_to_the_system_prompt() {
        let mut req = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        req.response_format = Some(ResponseFormat::JsonSchema {
            schema: json!({"name": "x", "schema": {"type": "object"}}),
        });
        let body = build_request(&req, "claude");
        assert_eq!(
            body["system"],
            json!("Respond only with a single valid JSON value, without any other text, that conforms to this JSON Schema: {\"type\":\"object\"}")
        );
    }

    fn sample_response() -> ChatResponse {
        ChatResponse {
            id: "msg_01".into(),
            model: "claude-sonnet-4-5".into(),
            content: vec![
                ContentPart::text("I'll check."),
                ContentPart::ToolCall {
                    id: "toolu_01A".into(),
                    name: "get_weather".into(),
                    arguments: "{\"location\":\"San Francisco, CA\"}".into(),
                },
            ],
            stop_reason: StopReason::ToolUse,
            usage: usage(2095 + 300 + 50, 503, 300, 50),
            created: 0,
        }
    }

    #[test]
    fn render_response_wire_shape_and_round_trip() {
        let resp = sample_response();
        let v = render_response(&resp);
        assert_eq!(
            v,
            json!({
                "id": "msg_01",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [
                    {"type": "text", "text": "I'll check."},
                    {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
                     "input": {"location": "San Francisco, CA"}}
                ],
                "stop_reason": "tool_use",
                "stop_sequence": null,
                "usage": {"input_tokens": 2095, "output_tokens": 503,
                    "cache_read_input_tokens": 300, "cache_creation_input_tokens": 50}
            })
        );
        let mut back = parse_response(v.to_string().as_bytes()).unwrap();
        back.created = 0;
        assert_eq!(back, resp);
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        for stop in [
            StopReason::EndTurn,
            StopReason::MaxTokens,
            StopReason::StopSequence {
                sequence: Some("###".into()),
            },
            StopReason::ToolUse,
            StopReason::ContentFilter,
        ] {
            let mut resp = sample_response();
            resp.stop_reason = stop.clone();
            let v = render_response(&resp);
            assert_eq!(
                parse_response(v.to_string().as_bytes())
                    .unwrap()
                    .stop_reason,
                stop
            );
        }
        let v = render_response(&ChatResponse {
            stop_reason: StopReason::ContentFilter,
            ..sample_response()
        });
        assert_eq!(v["stop_reason"], json!("refusal"));
    }

    #[test]
    fn anthropic_upstream_response_to_openai_client() {
        // Response shape from the Messages API reference, with a thinking block an
        // OpenAI client has no place for.
        let body = br#"{
          "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
          "model": "claude-sonnet-4-5-20250929",
          "content": [
            {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
            {"type": "text", "text": "I'll look that up."},
            {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
             "input": {"location": "San Francisco, CA", "unit": "celsius"}}
          ],
          "stop_reason": "tool_use", "stop_sequence": null,
          "usage": {"input_tokens": 2095, "output_tokens": 503,
            "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
        }"#;
        let mut resp = parse_response(body).unwrap();
        assert_eq!(resp.usage, usage(3195, 503, 1000, 100));
        resp.created = 1_700_000_000;
        assert_eq!(
            openai::render_response(&resp),
            json!({
                "id": "msg_01Aq9w938a90dw8q",
                "object": "chat.completion",
                "created": 1_700_000_000u64,
                "model": "claude-sonnet-4-5-20250929",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "I'll look that up.",
                        "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                            "function": {"name": "get_weather",
                                "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}}],
                        "refusal": null
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {"prompt_tokens": 3195, "completion_tokens": 503, "total_tokens": 3698,
                    "prompt_tokens_details": {"cached_tokens": 1000}}
            })
        );
        // And the OpenAI upstream answer rendered for an Anthropic client.
        let oa = openai::parse_response(
            br#"{"id":"chatcmpl-1","created":5,"model":"gpt-4o","choices":[{"index":0,
              "message":{"role":"assistant","content":"Hi!"},"finish_reason":"length"}],
              "usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#,
        )
        .unwrap();
        assert_eq!(
            render_response(&oa),
            json!({"id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
                "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "max_tokens",
                "stop_sequence": null, "usage": {"input_tokens": 6, "output_tokens": 2,
                "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}})
        );
        assert!(parse_response(
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
        )
        .unwrap_err()
        .contains("Overloaded"));
    }

    #[test]
    fn tool_input_rules() {
        assert_eq!(tool_input(""), json!({}));
        assert_eq!(tool_input(" {\"a\": 1} "), json!({"a": 1}));
        assert_eq!(tool_input("[1]"), json!({"_raw_arguments": "[1]"}));
        assert_eq!(tool_input("{\"a\""), json!({"_raw_arguments": "{\"a\""}));
    }

    #[test]
    fn errors_render_with_anthropic_types() {
        let up = |status| GatewayError::Upstream {
            provider: "p".into(),
            status,
            message: "m".into(),
            retry_after: None,
        };
        for (err, kind) in [
            (
                GatewayError::InvalidRequest("x".into()),
                "invalid_request_error",
            ),
            (
                GatewayError::Authentication("x".into()),
                "authentication_error",
            ),
            (
                GatewayError::PermissionDenied("x".into()),
                "permission_error",
            ),
            (GatewayError::NotFound("x".into()), "not_found_error"),
            (
                GatewayError::PayloadTooLarge { limit: 1 },
                "request_too_large",
            ),
            (
                GatewayError::RateLimited {
                    message: "x".into(),
                    retry_after: None,
                },
                "rate_limit_error",
            ),
            (up(400), "invalid_request_error"),
            (up(429), "rate_limit_error"),
            (up(529), "overloaded_error"),
            (up(500), "api_error"),
            (
                GatewayError::BadGateway {
                    provider: "p".into(),
                    message: "x".into(),
                },
                "api_error",
            ),
            (
                GatewayError::Timeout {
                    provider: "p".into(),
                    after_ms: 1,
                },
                "timeout_error",
            ),
            (GatewayError::Overloaded("x".into()), "overloaded_error"),
            (GatewayError::Internal("x".into()), "api_error"),
        ] {
            assert_eq!(
                render_error(&err),
                json!({"type": "error", "error": {"type": kind, "message": err.to_string()}})
            );
        }
        match parse_error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
            None,
            "anthropic",
        ) {
            GatewayError::Upstream {
                status, message, ..
            } => {
                assert_eq!(status, 529);
                assert_eq!(message, "Overloaded");
            }
            other => panic!("{other:?}"),
        }
    }

    fn sample_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "claude-sonnet-4-5".into(),
                created: 0,
                usage: Some(usage(472 + 100, 1, 100, 0)),
            },
            StreamEvent::Ping,
            StreamEvent::TextDelta {
                index: 0,
                text: "Okay".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: ", checking.".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "toolu_1".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"location\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: " \"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 2,
                id: "toolu_2".into(),
                name: "noop".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(usage(572, 89, 100, 0)),
            },
        ]
    }

    fn encode(events: &[StreamEvent]) -> Vec<u8> {
        let mut enc = StreamEncoder::new();
        let mut out = Vec::new();
        for ev in events {
            enc.encode(ev, &mut out);
        }
        enc.finish(&mut out);
        out
    }

    #[test]
    fn stream_encoder_wire_format() {
        let out = encode(&sample_events()[..6]);
        let frames = frames(&out);
        // Every frame's event name is its data's type.
        for f in &frames {
            let v: Value = serde_json::from_str(&f.data).unwrap();
            assert_eq!(f.event.as_deref(), v["type"].as_str());
        }
        let data: Vec<Value> = frames
            .iter()
            .map(|f| serde_json::from_str(&f.data).unwrap())
            .collect();
        assert_eq!(
            data,
            vec![
                json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                    "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                    "stop_reason": null, "stop_sequence": null,
                    "usage": {"input_tokens": 472, "output_tokens": 1,
                        "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}}}),
                json!({"type": "ping"}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", checking."}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "content_block_start", "index": 1, "content_block":
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
                json!({"type": "content_block_delta", "index": 1, "delta":
                    {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
                json!({"type": "content_block_stop", "index": 1}),
                // finish() closes a stream that never got its Finish.
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                    "usage": {"output_tokens": 1}}),
                json!({"type": "message_stop"}),
            ]
        );
    }

    #[test]
    fn stream_round_trips_through_the_wire() {
        assert_eq!(decode_all(&encode(&sample_events())), sample_events());
        let mut stop_seq = sample_events();
        stop_seq.truncate(4);
        stop_seq.push(StreamEvent::Finish {
            stop_reason: StopReason::StopSequence {
                sequence: Some("###".into()),
            },
            usage: Some(usage(572, 3, 100, 0)),
        });
        assert_eq!(decode_all(&encode(&stop_seq)), stop_seq);
    }

    #[test]
    fn decodes_documented_stream() {
        // The event sequence from Anthropic's streaming docs (tool use example), after a
        // thinking block with its signature (the extended-thinking example's deltas).
        let body = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2,\"cache_read_input_tokens\":8},\"content\":[],\"stop_reason\":null}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\n",
            "data: {\"type\": \"ping\"}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        assert_eq!(
            decode_all(body.as_bytes()),
            vec![
                StreamEvent::Start {
                    id: "msg_014p7gG3wDgGV9EUtLvnow3U".into(),
                    model: "claude-sonnet-4-5".into(),
                    created: 0,
                    usage: Some(usage(480, 2, 8, 0))
                },
                StreamEvent::ThinkingDelta {
                    index: 0,
                    thinking: "hmm".into()
                },
                StreamEvent::ThinkingSignature {
                    index: 0,
                    signature: "EqQBCgIYAhIM".into()
                },
                StreamEvent::Ping,
                StreamEvent::TextDelta {
                    index: 1,
                    text: "Okay".into()
                },
                StreamEvent::ToolCallStart {
                    index: 2,
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 2,
                    arguments: "{\"location\":".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 2,
                    arguments: " \"San Francisco, CA\"}".into()
                },
                StreamEvent::Finish {
                    stop_reason: StopReason::ToolUse,
                    usage: Some(usage(480, 89, 8, 0))
                },
            ]
        );
    }

    #[test]
    fn thinking_round_trips_to_anthropic_and_is_skipped_elsewhere() {
        // A tool-use loop with extended thinking: the client sends back the assistant
        // turn with its signed thinking, which must reach Anthropic byte for byte.
        let req = parse(json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCgIYAhIM+sig=="},
                    {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}]}))
        .unwrap();
        assert_eq!(
            req.messages[1].content[0],
            ContentPart::Thinking {
                thinking: "Use the tool.".into(),
                signature: "EqQBCgIYAhIM+sig==".into()
            }
        );
        let up = build_request(&req, "claude-sonnet-4-5-20250929");
        assert_eq!(
            up["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCgIYAhIM+sig=="},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}])
        );
        assert_eq!(
            up["thinking"],
            json!({"type": "enabled", "budget_tokens": 1024})
        );
        // An OpenAI backend gets the tool call and no trace of the thinking.
        let oa = openai::build_request(&req, "gpt-4o");
        let assistant = &oa["messages"][1];
        assert_eq!(assistant["role"], json!("assistant"));
        assert!(!oa.to_string().contains("EqQBCgIYAhIM"), "{oa}");
        assert!(!oa.to_string().contains("Use the tool."), "{oa}");
        assert_eq!(assistant["tool_calls"][0]["id"], json!("toolu_1"));
        // The classifier reads the thinking text (it reaches the backend).
        assert!(req.text_segments().any(|(_, t)| t == "Use the tool."));
    }

    #[test]
    fn thinking_in_responses_and_streams_for_anthropic_clients() {
        let body = br#"{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
          "content": [
            {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Paris."}],
          "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 7}}"#;
        let resp = parse_response(body).unwrap();
        let v = render_response(&resp);
        assert_eq!(
            v["content"],
            json!([
                {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Paris."}])
        );
        let mut enc = StreamEncoder::new();
        let mut out = Vec::new();
        for ev in [
            StreamEvent::Start {
                id: "msg_1".into(),
                model: "claude-sonnet-4-5".into(),
                created: 0,
                usage: None,
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                thinking: "Let me ".into(),
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                thinking: "think".into(),
            },
            StreamEvent::ThinkingSignature {
                index: 0,
                signature: "abc".into(),
            },
            StreamEvent::RedactedThinking {
                index: 1,
                data: "opaque".into(),
            },
            StreamEvent::TextDelta {
                index: 2,
                text: "Paris.".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::EndTurn,
                usage: None,
            },
        ] {
            enc.encode(&ev, &mut out);
        }
        // What the stream carries, decoded again by our own upstream decoder (which the
        // documented-stream test pins to Anthropic's format): the same parts.
        let events = decode_all(&out);
        let mut acc = crate::cache::StreamAccumulator::new();
        for ev in &events {
            acc.push(ev);
        }
        let folded = acc.finish().expect("complete stream");
        assert_eq!(folded.content, resp.content);
        let text = String::from_utf8(out).unwrap();
        for needle in ["thinking_delta", "signature_delta", "redacted_thinking"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn decoder_errors_and_truncation() {
        let ev = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        let mut d = StreamDecoder::new();
        d.decode(&ev(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}"#))
            .unwrap();
        let err = d
            .decode(&ev(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ))
            .unwrap_err();
        assert_eq!(err, "Overloaded");
        let mut d = StreamDecoder::new();
        d.decode(&ev(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}"#))
            .unwrap();
        assert!(d.finish().unwrap_err().contains("stop_reason"));
        assert!(d
            .decode(&ev(r#"{"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"x"}}"#))
            .is_err());
        // Unknown event types are ignored, as the docs ask.
        assert!(d
            .decode(&ev(r#"{"type":"future_event"}"#))
            .unwrap()
            .is_empty());
        assert!(StreamDecoder::new().decode(&ev("{")).is_err());
    }

    #[test]
    fn encoder_error_and_finish_semantics() {
        let mut enc = StreamEncoder::new();
        let mut out = Vec::new();
        enc.encode(&sample_events()[0], &mut out);
        out.clear();
        enc.encode_error(&GatewayError::Overloaded("busy".into()), &mut out);
        enc.finish(&mut out);
        enc.encode(&StreamEvent::Ping, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            // Keys in Anthropic's own order (serde_json keeps insertion order workspace-wide).
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
        );
        // After Finish, finish() adds nothing.
        let full = encode(&sample_events());
        let tail = String::from_utf8(full).unwrap();
        assert_eq!(tail.matches("message_stop").count(), 2); // event line + data
    }

    /// Anthropic upstream -> canonical -> OpenAI client -> (an OpenAI backend's view)
    /// gives back the same events; OpenAI streams carry usage only at the end.
    #[test]
    fn anthropic_stream_through_openai_client_encoder() {
        let decoded = decode_all(&encode(&sample_events()));
        let mut enc = openai::StreamEncoder::new(true);
        let mut out = Vec::new();
        for ev in &decoded {
            enc.encode(ev, &mut out);
        }
        enc.finish(&mut out);
        let mut d = openai::StreamDecoder::new();
        let mut back = Vec::new();
        for f in frames(&out) {
            back.extend(d.decode(&f).unwrap());
        }
        let want: Vec<StreamEvent> = decoded
            .into_iter()
            .filter(|e| *e != StreamEvent::Ping)
            .map(|e| match e {
                StreamEvent::Start {
                    id, model, created, ..
                } => StreamEvent::Start {
                    id,
                    model,
                    created,
                    usage: None,
                },
                other => other,
            })
            .collect();
        assert_eq!(back, want);

        // And the reverse: an OpenAI upstream stream rendered for an Anthropic client.
        let mut enc = StreamEncoder::new();
        let mut out = Vec::new();
        for ev in &back {
            enc.encode(ev, &mut out);
        }
        let again = decode_all(&out);
        assert_eq!(again.len(), back.len());
        assert_eq!(again.last(), back.last());
    }

    proptest! {
        #[test]
        fn parse_request_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&bytes);
            let _ = parse_count_tokens_request(&bytes);
        }

        #[test]
        fn parse_request_never_panics_on_request_like_json(
            v in openai::tests::arb_request_like(
                proptest::collection::vec(openai::tests::arb_json(), 0..4).prop_map(Value::Array))
        ) {
            let mut v = v;
            if let Value::Object(o) = &mut v {
                o.entry("max_tokens").or_insert(json!(16));
            }
            let _ = parse_request(v.to_string().as_bytes());
            if let Ok(req) = parse_count_tokens_request(v.to_string().as_bytes()) {
                let body = build_request(&req, "m");
                let _ = parse_request(body.to_string().as_bytes());
                let _ = openai::build_request(&req, "m");
            }
        }

        #[test]
        fn parse_request_never_panics_on_json(v in openai::tests::arb_json()) {
            let _ = parse_request(v.to_string().as_bytes());
        }
    }
}
