//! Anthropic Messages, backend side: requests built for an upstream, its responses, errors and
//! streams parsed.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::client::tool_input;
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, ImageSource, Message, ResponseFormat, Role,
    StopReason, StreamEvent, ToolChoice, Usage,
};
use crate::dialects::json::{now_unix, u32_at};
use crate::dialects::sse::SseEvent;

/// `max_tokens` for upstream requests whose client did not set one.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

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
pub(super) fn block_json(part: &ContentPart) -> Option<Value> {
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

/// An upstream error status: its status and message, as every JSON dialect reports them.
pub use crate::dialects::json::upstream_error as parse_error;

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
