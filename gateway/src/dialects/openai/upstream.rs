//! OpenAI Chat Completions, backend side: requests built for an upstream, its responses, errors and
//! streams parsed.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::client::{image_url, tool_call_json};
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, Message, ResponseFormat, Role, StopReason,
    StreamEvent, ToolChoice, Usage,
};
use crate::dialects::json::{now_unix, u32_at};
use crate::dialects::sse::SseEvent;

// ---------------------------------------------------------------------------------
// Backend side: requests to an OpenAI-compatible upstream.
// ---------------------------------------------------------------------------------

/// One text part as a plain string, several as an array of text parts (so a
/// parse/build round trip keeps the parts), none as `null`.
fn text_content(parts: &[&str]) -> Value {
    match parts {
        [] => Value::Null,
        [one] => json!(one),
        many => Value::Array(
            many.iter()
                .map(|t| json!({"type": "text", "text": t}))
                .collect(),
        ),
    }
}

fn texts(parts: &[ContentPart]) -> Vec<&str> {
    parts
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn with_name(mut msg: Map<String, Value>, name: &Option<String>) -> Value {
    if let Some(n) = name {
        msg.insert("name".into(), json!(n));
    }
    Value::Object(msg)
}

fn build_messages(messages: &[Message]) -> Vec<Value> {
    let mut out = Vec::with_capacity(messages.len());
    for m in messages {
        match m.role {
            Role::System => {
                let mut msg = Map::new();
                msg.insert("role".into(), json!("system"));
                let content = text_content(&texts(&m.content));
                msg.insert(
                    "content".into(),
                    if content.is_null() {
                        json!("")
                    } else {
                        content
                    },
                );
                out.push(with_name(msg, &m.name));
            }
            Role::User => {
                let mut rest = Vec::new();
                for part in &m.content {
                    match part {
                        ContentPart::ToolResult {
                            call_id, content, ..
                        } => {
                            let text = text_content(&texts(content));
                            out.push(json!({
                                "role": "tool",
                                "tool_call_id": call_id,
                                "content": if text.is_null() { json!("") } else { text },
                            }));
                        }
                        other => rest.push(other),
                    }
                }
                if rest.is_empty() && !m.content.is_empty() {
                    continue;
                }
                let content = match rest.as_slice() {
                    [ContentPart::Text { text, .. }] => json!(text),
                    [] => json!(""),
                    parts => Value::Array(
                        parts
                            .iter()
                            .filter_map(|p| match p {
                                ContentPart::Text { text, .. } => {
                                    Some(json!({"type": "text", "text": text}))
                                }
                                ContentPart::Image { source, .. } => Some(json!({
                                    "type": "image_url",
                                    "image_url": {"url": image_url(source)},
                                })),
                                _ => None,
                            })
                            .collect(),
                    ),
                };
                let mut msg = Map::new();
                msg.insert("role".into(), json!("user"));
                msg.insert("content".into(), content);
                out.push(with_name(msg, &m.name));
            }
            Role::Assistant => {
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|p| match p {
                        ContentPart::ToolCall {
                            id,
                            name,
                            arguments,
                        } => Some(tool_call_json(id, name, arguments)),
                        _ => None,
                    })
                    .collect();
                let content = text_content(&texts(&m.content));
                let mut msg = Map::new();
                msg.insert("role".into(), json!("assistant"));
                msg.insert(
                    "content".into(),
                    if content.is_null() && calls.is_empty() {
                        json!("")
                    } else {
                        content
                    },
                );
                if !calls.is_empty() {
                    msg.insert("tool_calls".into(), Value::Array(calls));
                }
                out.push(with_name(msg, &m.name));
            }
        }
    }
    out
}

fn tool_choice_json(choice: &ToolChoice) -> Value {
    match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::None => json!("none"),
        ToolChoice::Required => json!("required"),
        ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
    }
}

pub fn build_request(req: &ChatRequest, upstream_model: &str) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(upstream_model));
    body.insert(
        "messages".into(),
        Value::Array(build_messages(&req.messages)),
    );
    if !req.tools.is_empty() {
        let tools = req
            .tools
            .iter()
            .map(|t| {
                let mut f = Map::new();
                f.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    f.insert("description".into(), json!(d));
                }
                f.insert("parameters".into(), t.parameters.clone());
                json!({"type": "function", "function": f})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
        // OpenAI rejects tool_choice and parallel_tool_calls without tools.
        if let Some(choice) = &req.tool_choice {
            body.insert("tool_choice".into(), tool_choice_json(choice));
        }
        if let Some(p) = req.parallel_tool_calls {
            body.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some(format) = &req.response_format {
        let v = match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema { schema } => {
                json!({"type": "json_schema", "json_schema": schema})
            }
        };
        body.insert("response_format".into(), v);
    }
    let s = &req.sampling;
    let mut put = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            body.insert(key.into(), v);
        }
    };
    put("temperature", s.temperature.map(|v| json!(v)));
    put("top_p", s.top_p.map(|v| json!(v)));
    put("max_tokens", s.max_tokens.map(|v| json!(v)));
    put("seed", s.seed.map(|v| json!(v)));
    put("frequency_penalty", s.frequency_penalty.map(|v| json!(v)));
    put("presence_penalty", s.presence_penalty.map(|v| json!(v)));
    put("stop", (!s.stop.is_empty()).then(|| json!(s.stop)));
    put("user", req.user.as_ref().map(|u| json!(u)));
    put("metadata", req.metadata.clone().map(Value::Object));
    body.insert("stream".into(), json!(req.stream));
    if req.stream {
        // Accounting needs usage even when the client did not ask for it.
        body.insert("stream_options".into(), json!({"include_usage": true}));
    }
    if req.extra_dialect == Dialect::OpenAi {
        for (k, v) in &req.extra {
            body.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(body)
}

// ---------------------------------------------------------------------------------
// Backend side: responses, errors and streams from the upstream.
// ---------------------------------------------------------------------------------

fn stop_reason_from(reason: Option<&str>) -> StopReason {
    match reason {
        Some("length") => StopReason::MaxTokens,
        Some("tool_calls") | Some("function_call") => StopReason::ToolUse,
        Some("content_filter") => StopReason::ContentFilter,
        _ => StopReason::EndTurn,
    }
}

fn usage_from(v: &Value) -> Usage {
    Usage {
        input_tokens: u32_at(v, "prompt_tokens"),
        output_tokens: u32_at(v, "completion_tokens"),
        cache_read_input_tokens: v
            .get("prompt_tokens_details")
            .map(|d| u32_at(d, "cached_tokens"))
            .unwrap_or(0),
        cache_creation_input_tokens: 0,
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Text of a response message's `content`: a string, or (some compatible servers) an
/// array of text parts.
fn response_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts.iter().filter_map(|p| str_at(p, "text")).collect(),
        _ => String::new(),
    }
}

fn arguments_text(args: Option<&Value>) -> String {
    match args {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

pub fn parse_response(body: &[u8]) -> Result<ChatResponse, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid JSON from upstream: {e}"))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(error_frame_message(err));
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("upstream response has no choices")?;
    let message = choice
        .get("message")
        .ok_or("upstream response choice has no message")?;
    let mut content = Vec::new();
    let text = response_text(message.get("content"));
    if !text.is_empty() {
        content.push(ContentPart::text(text));
    }
    let refusal = str_at(message, "refusal").filter(|r| !r.is_empty());
    if let Some(r) = refusal {
        content.push(ContentPart::text(r));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for call in calls {
            let f = call.get("function").unwrap_or(&Value::Null);
            content.push(ContentPart::ToolCall {
                id: str_at(call, "id").unwrap_or_default().to_owned(),
                name: str_at(f, "name").unwrap_or_default().to_owned(),
                arguments: arguments_text(f.get("arguments")),
            });
        }
    }
    let mut stop_reason = stop_reason_from(str_at(choice, "finish_reason"));
    if refusal.is_some() && stop_reason == StopReason::EndTurn {
        stop_reason = StopReason::ContentFilter;
    }
    Ok(ChatResponse {
        id: str_at(&v, "id").unwrap_or_default().to_owned(),
        model: str_at(&v, "model").unwrap_or_default().to_owned(),
        content,
        stop_reason,
        usage: v.get("usage").map(usage_from).unwrap_or_default(),
        created: v
            .get("created")
            .and_then(Value::as_u64)
            .unwrap_or_else(now_unix),
    })
}

fn error_frame_message(err: &Value) -> String {
    match err {
        Value::String(s) => s.clone(),
        other => str_at(other, "message")
            .map(str::to_owned)
            .unwrap_or_else(|| other.to_string()),
    }
}

/// An upstream error status: its status and message, as every JSON dialect reports them.
pub use crate::dialects::json::upstream_error as parse_error;

#[derive(Debug, Clone, Copy, PartialEq, Default)]
enum OpenPart {
    #[default]
    None,
    Text(u32),
    Tool,
}

/// Upstream `chat.completion.chunk` frames to canonical events.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    /// Next canonical content index to hand out.
    next_index: u32,
    open: OpenPart,
    /// OpenAI `tool_calls[].index` -> canonical index.
    tools: HashMap<u64, u32>,
    last_tool: Option<u64>,
    stop: Option<StopReason>,
    refusal: bool,
    usage: Option<Usage>,
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

    fn text_index(&mut self) -> u32 {
        match self.open {
            OpenPart::Text(i) => i,
            _ => {
                let i = self.next_index;
                self.next_index = self.next_index.saturating_add(1);
                self.open = OpenPart::Text(i);
                i
            }
        }
    }

    pub fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        if self.done {
            return Ok(Vec::new());
        }
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return self.finish();
        }
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| format!("invalid JSON in upstream stream: {e}"))?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(error_frame_message(err));
        }
        if ev.event.as_deref() == Some("error") {
            return Err(error_frame_message(&v));
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: str_at(&v, "id").unwrap_or_default().to_owned(),
                model: str_at(&v, "model").unwrap_or_default().to_owned(),
                created: v
                    .get("created")
                    .and_then(Value::as_u64)
                    .unwrap_or_else(now_unix),
                usage: None,
            });
        }
        if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage_from(u));
        }
        // n=1 always: only the first choice matters.
        let choice = v.get("choices").and_then(Value::as_array).and_then(|c| {
            c.iter()
                .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        });
        let Some(choice) = choice else {
            return Ok(out);
        };
        if let Some(delta) = choice.get("delta") {
            for key in ["content", "refusal"] {
                if let Some(text) = str_at(delta, key).filter(|t| !t.is_empty()) {
                    self.refusal |= key == "refusal";
                    let index = self.text_index();
                    out.push(StreamEvent::TextDelta {
                        index,
                        text: text.to_owned(),
                    });
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    self.decode_tool_call(call, &mut out);
                }
            }
        }
        if let Some(reason) = str_at(choice, "finish_reason") {
            self.stop = Some(stop_reason_from(Some(reason)));
        }
        Ok(out)
    }

    /// A key no call has used yet, for a new call that came without `index`.
    fn unused_tool_key(&self) -> u64 {
        match self.tools.keys().max() {
            None => 0,
            // The upstream chooses indices, `u64::MAX` included; then take the first gap
            // (there is one: the map is far smaller than the key space).
            Some(max) => max.checked_add(1).unwrap_or_else(|| {
                (0..u64::MAX)
                    .find(|k| !self.tools.contains_key(k))
                    .unwrap_or(0)
            }),
        }
    }

    fn decode_tool_call(&mut self, call: &Value, out: &mut Vec<StreamEvent>) {
        let id = str_at(call, "id").filter(|s| !s.is_empty());
        let f = call.get("function").unwrap_or(&Value::Null);
        // Some compatible servers omit `index`: a call with an id is a new one, one
        // without continues the last.
        let key = match call.get("index").and_then(Value::as_u64) {
            Some(k) => k,
            None => match (id, self.last_tool) {
                (None, Some(last)) => last,
                _ => self.unused_tool_key(),
            },
        };
        self.last_tool = Some(key);
        let index = match self.tools.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.next_index;
                self.next_index = self.next_index.saturating_add(1);
                self.tools.insert(key, i);
                out.push(StreamEvent::ToolCallStart {
                    index: i,
                    id: id.unwrap_or_default().to_owned(),
                    name: str_at(f, "name").unwrap_or_default().to_owned(),
                });
                i
            }
        };
        self.open = OpenPart::Tool;
        let args = arguments_text(f.get("arguments"));
        if !args.is_empty() {
            out.push(StreamEvent::ToolCallDelta {
                index,
                arguments: args,
            });
        }
    }

    /// Emits `Finish` once, at `[DONE]` or at the end of the body (some compatible
    /// servers never send `[DONE]`). Errors when no `finish_reason` arrived: the
    /// stream was cut short.
    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        if self.finished {
            return Ok(Vec::new());
        }
        let Some(mut stop_reason) = self.stop.clone() else {
            return Err("upstream stream ended without a finish_reason".to_owned());
        };
        if self.refusal && stop_reason == StopReason::EndTurn {
            stop_reason = StopReason::ContentFilter;
        }
        self.finished = true;
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: String::new(),
                model: String::new(),
                created: now_unix(),
                usage: None,
            });
        }
        out.push(StreamEvent::Finish {
            stop_reason,
            usage: self.usage,
        });
        Ok(out)
    }
}
