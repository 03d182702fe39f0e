//! The backend side: canonical requests as `GenerateContentRequest` bodies, and Gemini's
//! answers (`GenerateContentResponse`, whole or as `alt=sse` chunks) as canonical ones.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::client::call_part;
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, ImageSource, ResponseFormat, Role, StopReason,
    StreamEvent, ToolChoice, Usage,
};
use crate::dialects::json::{now_unix, u32_at};
use crate::dialects::sse::SseEvent;

/// The request body (the model goes in the URL). System messages, wherever they sit,
/// become `systemInstruction`; a tool result is a `functionResponse` named after the call
/// it answers (Gemini pairs them by name); thinking parts are skipped, as Gemini has no
/// place for another provider's reasoning.
pub fn build_request(req: &ChatRequest) -> Value {
    let names: HashMap<&str, &str> = req
        .messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|p| match p {
            ContentPart::ToolCall { id, name, .. } => Some((id.as_str(), name.as_str())),
            _ => None,
        })
        .collect();
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    for m in &req.messages {
        if m.role == Role::System {
            for p in &m.content {
                if let ContentPart::Text { text, .. } = p {
                    system.push(json!({"text": text}));
                }
            }
            continue;
        }
        let parts: Vec<Value> = m.content.iter().filter_map(|p| part(p, &names)).collect();
        if parts.is_empty() {
            continue;
        }
        let role = if m.role == Role::Assistant {
            "model"
        } else {
            "user"
        };
        // Consecutive turns of one role are one Content, as Gemini's own SDKs send them.
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["parts"].as_array_mut() {
                    a.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut d = json!({"name": t.name, "parametersJsonSchema": t.parameters});
                if let Some(desc) = &t.description {
                    d["description"] = json!(desc);
                }
                d
            })
            .collect();
        body.insert("tools".into(), json!([{ "functionDeclarations": decls }]));
    }
    if let Some(choice) = &req.tool_choice {
        let config = match choice {
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Tool { name } => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert(
            "toolConfig".into(),
            json!({ "functionCallingConfig": config }),
        );
    }
    let generation = generation_config(req);
    if !generation.is_empty() {
        body.insert("generationConfig".into(), Value::Object(generation));
    }
    Value::Object(body)
}

fn part(p: &ContentPart, names: &HashMap<&str, &str>) -> Option<Value> {
    match p {
        ContentPart::Text { text, .. } if text.is_empty() => None,
        ContentPart::Text { text, .. } => Some(json!({"text": text})),
        ContentPart::Image {
            source: ImageSource::Base64 { media_type, data },
            ..
        } => Some(json!({"inlineData": {"mimeType": media_type, "data": data}})),
        ContentPart::Image {
            source: ImageSource::Url { url },
            ..
        } => Some(json!({"fileData": {"fileUri": url}})),
        ContentPart::ToolCall {
            id,
            name,
            arguments,
        } => Some(call_part(id, name, arguments)),
        ContentPart::ToolResult {
            call_id,
            content,
            is_error,
            ..
        } => {
            let text = tool_result_text(content);
            let key = if *is_error { "error" } else { "output" };
            // A result whose call is not in the conversation keeps its id as the name:
            // Gemini needs some name, and the id is what the client gave.
            let name = names
                .get(call_id.as_str())
                .copied()
                .unwrap_or(call_id.as_str());
            let mut response = Map::new();
            response.insert(key.into(), Value::String(text));
            Some(json!({"functionResponse": {
                "id": call_id,
                "name": name,
                "response": response,
            }}))
        }
        ContentPart::Thinking { .. } | ContentPart::RedactedThinking { .. } => None,
    }
}

/// The text of a tool result's parts (Gemini's `functionResponse.response` is JSON; the
/// text goes under `output`, or `error` for a failed call, as Google's docs show).
fn tool_result_text(content: &[ContentPart]) -> String {
    content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn generation_config(req: &ChatRequest) -> Map<String, Value> {
    let s = &req.sampling;
    let mut g = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.into(), v);
        }
    };
    put("temperature", s.temperature.map(|t| json!(t)));
    put("topP", s.top_p.map(|t| json!(t)));
    put("topK", s.top_k.map(|t| json!(t)));
    put("maxOutputTokens", s.max_tokens.map(|t| json!(t)));
    put("seed", s.seed.map(|t| json!(t)));
    put("presencePenalty", s.presence_penalty.map(|t| json!(t)));
    put("frequencyPenalty", s.frequency_penalty.map(|t| json!(t)));
    put("stopSequences", (!s.stop.is_empty()).then(|| json!(s.stop)));
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            g.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema }) => {
            g.insert("responseMimeType".into(), json!("application/json"));
            // The canonical form is OpenAI's `{name, schema, strict}` wrapper.
            let inner = schema.get("schema").unwrap_or(schema);
            g.insert("responseJsonSchema".into(), inner.clone());
        }
    }
    g
}

/// `countTokens` body: the whole request, so system instruction and tools count too.
pub fn build_count_tokens_request(req: &ChatRequest, model: &str) -> Value {
    let mut inner = build_request(req);
    inner["model"] = json!(format!("models/{model}"));
    json!({ "generateContentRequest": inner })
}

fn stop_reason(reason: Option<&str>, called: bool) -> StopReason {
    match reason {
        Some("MAX_TOKENS") => StopReason::MaxTokens,
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => StopReason::ContentFilter,
        _ if called => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// Gemini counts thinking tokens apart from the answer's; both are billed as output.
fn usage(v: Option<&Value>) -> Usage {
    let Some(u) = v else {
        return Usage::default();
    };
    Usage {
        input_tokens: u32_at(u, "promptTokenCount"),
        output_tokens: u32_at(u, "candidatesTokenCount")
            .saturating_add(u32_at(u, "thoughtsTokenCount")),
        cache_read_input_tokens: u32_at(u, "cachedContentTokenCount"),
        cache_creation_input_tokens: 0,
    }
}

/// Function calls may come without ids: each gets `call_<response>_<n>`, unique within
/// the conversation because the response id is.
fn call_id(call: &Map<String, Value>, response_id: &str, n: usize) -> String {
    call.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(|| format!("call_{response_id}_{n}"), str::to_owned)
}

/// A `{"error": {...}}` body where an answer was expected (Gemini streams end this way).
fn error_in(v: &Value) -> Option<String> {
    v.get("error").map(|e| {
        e.get("message")
            .and_then(Value::as_str)
            .map_or_else(|| e.to_string(), str::to_owned)
    })
}

fn candidate_parts(v: &Value) -> (&[Value], Option<&str>) {
    let candidate = v.get("candidates").and_then(|c| c.get(0));
    let parts = candidate
        .and_then(|c| c.pointer("/content/parts"))
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let finish = candidate
        .and_then(|c| c.get("finishReason"))
        .and_then(Value::as_str);
    (parts, finish)
}

pub fn parse_response(body: &[u8], requested_model: &str) -> Result<ChatResponse, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if let Some(e) = error_in(&v) {
        return Err(e);
    }
    let id = v
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (parts, finish) = candidate_parts(&v);
    let mut content = Vec::new();
    let mut calls = 0;
    for p in parts {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            match content.last_mut() {
                Some(ContentPart::Text { text, .. }) => text.push_str(t),
                _ => content.push(ContentPart::text(t)),
            }
        } else if let Some(fc) = p.get("functionCall").and_then(Value::as_object) {
            calls += 1;
            content.push(ContentPart::ToolCall {
                id: call_id(fc, &id, calls),
                name: fc
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("functionCall without a name")?
                    .to_owned(),
                arguments: fc.get("args").map_or_else(|| "{}".into(), Value::to_string),
            });
        }
    }
    // A prompt Gemini refused outright has no candidate, only `promptFeedback`.
    let blocked = v.pointer("/promptFeedback/blockReason").is_some();
    let stop = if blocked && parts.is_empty() {
        StopReason::ContentFilter
    } else {
        stop_reason(finish, calls > 0)
    };
    Ok(ChatResponse {
        id,
        model: v
            .get("modelVersion")
            .and_then(Value::as_str)
            .unwrap_or(requested_model)
            .to_owned(),
        content,
        stop_reason: stop,
        usage: usage(v.get("usageMetadata")),
        created: now_unix(),
    })
}

/// An upstream error status: its status and message, as every JSON dialect reports them.
pub use crate::dialects::json::upstream_error as parse_error;

/// `alt=sse` chunks to canonical events. Every chunk is a whole
/// `GenerateContentResponse`: text parts continue the open text part, a function call
/// arrives complete and becomes a call start plus its whole arguments, and the stream has
/// no terminal event: the chunk with a `finishReason` ends the answer, usage rides on the
/// last chunks. A body that ends before a finish reason was truncated.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    started: bool,
    id: String,
    next_index: u32,
    /// The canonical index of the text part still open.
    open_text: Option<u32>,
    calls: usize,
    finish: Option<Option<String>>,
    usage: Usage,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Never before the body ends: usage may follow the finish reason.
    pub fn is_done(&self) -> bool {
        false
    }

    pub fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let v: Value =
            serde_json::from_str(data).map_err(|e| format!("unreadable stream chunk: {e}"))?;
        if let Some(e) = error_in(&v) {
            return Err(e);
        }
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            self.id = v
                .get("responseId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: v
                    .get("modelVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                created: now_unix(),
                usage: None,
            });
        }
        let (parts, finish) = candidate_parts(&v);
        for p in parts {
            if p.get("thought").and_then(Value::as_bool) == Some(true) {
                continue;
            }
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                if t.is_empty() {
                    continue;
                }
                let index = match self.open_text {
                    Some(i) => i,
                    None => {
                        let i = self.allocate();
                        self.open_text = Some(i);
                        i
                    }
                };
                out.push(StreamEvent::TextDelta {
                    index,
                    text: t.to_owned(),
                });
            } else if let Some(fc) = p.get("functionCall").and_then(Value::as_object) {
                self.open_text = None;
                self.calls += 1;
                let index = self.allocate();
                let name = fc
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("functionCall without a name")?;
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: call_id(fc, &self.id, self.calls),
                    name: name.to_owned(),
                });
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    arguments: fc.get("args").map_or_else(|| "{}".into(), Value::to_string),
                });
            }
        }
        if let Some(u) = v.get("usageMetadata") {
            self.usage = usage(Some(u));
        }
        if finish.is_some() {
            self.finish = Some(finish.map(str::to_owned));
        } else if v.pointer("/promptFeedback/blockReason").is_some() && parts.is_empty() {
            self.finish = Some(Some("SAFETY".into()));
        }
        Ok(out)
    }

    pub fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        match self.finish.take() {
            Some(reason) => Ok(vec![StreamEvent::Finish {
                stop_reason: stop_reason(reason.as_deref(), self.calls > 0),
                usage: Some(self.usage),
            }]),
            None => Err("the stream ended before a finish reason".into()),
        }
    }

    fn allocate(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        i
    }
}
