//! Anthropic Messages, client side: requests parsed, responses, errors and streams rendered.

use serde_json::{json, Value};

use super::upstream::block_json;
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message, Role,
    Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::json::{
    as_obj, at, body_object, field, invalid_type, invalid_value, missing, opt_array, opt_bool,
    opt_f32, opt_str, opt_u32, parse_json_body, req_str, string_list, unknown_fields, Obj,
};
use crate::dialects::sse::write_event;

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
pub(super) fn tool_input(arguments: &str) -> Value {
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
