//! OpenAI Chat Completions: the client side (`POST /v1/chat/completions` requests,
//! responses, errors and `chat.completion.chunk` streams) and the backend side (calling
//! an OpenAI-compatible upstream).
//!
//! Translation choices:
//! - `developer` messages become `Role::System` and are sent upstream as `system`
//!   (OpenAI maps `system` to `developer` itself for models that want it).
//! - `max_completion_tokens` wins over `max_tokens` when a client sends both. Upstream
//!   requests carry `max_tokens` for breadth: every OpenAI-compatible server (vLLM,
//!   Ollama, llama.cpp, Groq, ...) knows it, while only OpenAI itself knows
//!   `max_completion_tokens` (its reasoning models reject `max_tokens`: a known gap).
//! - `top_k` has no OpenAI field and is dropped upstream; `seed` and the penalties have
//!   no Anthropic field and are dropped there.
//! - Tool `strict` flags are not kept (the canonical tool has no such field).
//! - A tool result's `is_error` and images have no OpenAI equivalent: the flag is
//!   dropped, images inside tool results are dropped.
//! - Tool results mixed with other user content are sent as `tool` messages first, then
//!   a `user` message with the rest, because OpenAI wants tool messages right after
//!   the assistant message that called them.
//! - An upstream `refusal` becomes text and turns a `stop` finish into `ContentFilter`.
//! - Text parts of a response are concatenated without separator, exactly as a
//!   streaming client would concatenate the deltas.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::json::{
    as_obj, at, body_object, field, invalid_type, invalid_value, missing, now_unix, opt_array,
    opt_bool, opt_f32, opt_str, opt_u32, opt_u64, parse_json_body, req_str, string_list, u32_at,
    unknown_fields, upstream_error_message, Obj,
};
use super::sse::{write_comment, write_event, SseEvent};
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};

// ---------------------------------------------------------------------------------
// Client side: requests.
// ---------------------------------------------------------------------------------

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "response_format",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "frequency_penalty",
    "presence_penalty",
    "n",
    "stream",
    "stream_options",
    "user",
    "metadata",
];

pub fn parse_request(body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value = parse_json_body(body)?;
    let obj = body_object(&value)?;

    let model = req_str(obj, "model", "")?;
    if model.is_empty() {
        return Err(invalid_value("model", "must be a non-empty string"));
    }
    let messages = match field(obj, "messages") {
        None => return Err(missing("messages")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(invalid_value(
                "messages",
                "must contain at least one message",
            ))
        }
        Some(Value::Array(a)) => parse_messages(a)?,
        Some(v) => return Err(invalid_type("messages", "an array of messages", v)),
    };

    let tools = match opt_array(obj, "tools", "")? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, t)| parse_tool(t, &format!("tools[{i}]")))
            .collect::<Result<_, _>>()?,
    };
    let tool_choice = field(obj, "tool_choice")
        .map(parse_tool_choice)
        .transpose()?;
    let response_format = field(obj, "response_format")
        .map(parse_response_format)
        .transpose()?;

    if let Some(n) = field(obj, "n") {
        if n.as_u64() != Some(1) {
            return Err(invalid_value("n", "only n=1 is supported"));
        }
    }
    let max_tokens = match opt_u32(obj, "max_completion_tokens", "")? {
        Some(n) => Some(n),
        None => opt_u32(obj, "max_tokens", "")?,
    };
    let sampling = Sampling {
        temperature: opt_f32(obj, "temperature", "")?,
        top_p: opt_f32(obj, "top_p", "")?,
        top_k: None,
        max_tokens,
        stop: string_list(obj, "stop", "")?,
        seed: opt_u64(obj, "seed", "")?,
        frequency_penalty: opt_f32(obj, "frequency_penalty", "")?,
        presence_penalty: opt_f32(obj, "presence_penalty", "")?,
    };
    let include_usage = match field(obj, "stream_options") {
        None => false,
        Some(v) => opt_bool(
            as_obj(v, "stream_options")?,
            "include_usage",
            "stream_options",
        )?
        .unwrap_or(false),
    };
    let metadata = match field(obj, "metadata") {
        None => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(v) => return Err(invalid_type("metadata", "an object", v)),
    };

    Ok(ChatRequest {
        model: model.to_owned(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: opt_bool(obj, "parallel_tool_calls", "")?,
        sampling,
        response_format,
        stream: opt_bool(obj, "stream", "")?.unwrap_or(false),
        include_usage,
        user: opt_str(obj, "user", "")?.map(str::to_owned),
        metadata,
        extra: unknown_fields(obj, KNOWN_FIELDS),
        extra_dialect: Dialect::OpenAi,
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Allowed {
    /// system, developer and tool messages.
    TextOnly,
    /// user messages: text and images.
    User,
    /// assistant messages: text and refusals.
    Assistant,
}

fn parse_messages(items: &[Value]) -> Result<Vec<Message>, GatewayError> {
    let mut out: Vec<Message> = Vec::with_capacity(items.len());
    let mut previous_was_tool = false;
    for (i, item) in items.iter().enumerate() {
        let path = format!("messages[{i}]");
        let m = as_obj(item, &path)?;
        let role = req_str(m, "role", &path)?;
        let name = opt_str(m, "name", &path)?.map(str::to_owned);
        let content_path = at(&path, "content");
        let is_tool = role == "tool";
        match role {
            "system" | "developer" => {
                let content = parse_content(field(m, "content"), &content_path, Allowed::TextOnly)?;
                out.push(Message {
                    role: Role::System,
                    content,
                    name,
                });
            }
            "user" => {
                let content = parse_content(field(m, "content"), &content_path, Allowed::User)?;
                out.push(Message {
                    role: Role::User,
                    content,
                    name,
                });
            }
            "assistant" => out.push(parse_assistant(m, &path, name)?),
            "tool" => {
                let call_id = req_str(m, "tool_call_id", &path)?.to_owned();
                let content = parse_content(field(m, "content"), &content_path, Allowed::TextOnly)?;
                let part = ContentPart::ToolResult {
                    call_id,
                    content,
                    is_error: false,
                    cache_control: None,
                };
                // Consecutive tool messages answer one assistant turn: one user turn.
                match out.last_mut() {
                    Some(last) if previous_was_tool => last.content.push(part),
                    _ => out.push(Message {
                        role: Role::User,
                        content: vec![part],
                        name: None,
                    }),
                }
            }
            "function" => {
                return Err(invalid_value(
                    &at(&path, "role"),
                    "the legacy 'function' role is not supported; use 'tool'",
                ))
            }
            other => {
                return Err(invalid_value(
                    &at(&path, "role"),
                    format!(
                        "unknown role '{other}'; expected one of system, developer, user, assistant, tool"
                    ),
                ))
            }
        }
        previous_was_tool = is_tool;
    }
    Ok(out)
}

fn parse_assistant(m: &Obj, path: &str, name: Option<String>) -> Result<Message, GatewayError> {
    if field(m, "function_call").is_some() {
        return Err(invalid_value(
            &at(path, "function_call"),
            "the legacy function_call is not supported; use tool_calls",
        ));
    }
    // Content is optional for assistant messages (null when only tool calls).
    let mut content = match field(m, "content") {
        None => Vec::new(),
        Some(v) => parse_content(Some(v), &at(path, "content"), Allowed::Assistant)?,
    };
    if let Some(refusal) = opt_str(m, "refusal", path)? {
        if !refusal.is_empty() {
            content.push(ContentPart::text(refusal));
        }
    }
    if let Some(calls) = opt_array(m, "tool_calls", path)? {
        for (j, call) in calls.iter().enumerate() {
            let cpath = format!("{path}.tool_calls[{j}]");
            let c = as_obj(call, &cpath)?;
            if let Some(t) = opt_str(c, "type", &cpath)? {
                if t != "function" {
                    return Err(invalid_value(
                        &at(&cpath, "type"),
                        format!("unsupported tool call type '{t}'; only 'function' is supported"),
                    ));
                }
            }
            let id = req_str(c, "id", &cpath)?.to_owned();
            let fpath = at(&cpath, "function");
            let f = match field(c, "function") {
                None => return Err(missing(&fpath)),
                Some(v) => as_obj(v, &fpath)?,
            };
            let name = req_str(f, "name", &fpath)?.to_owned();
            let arguments = match field(f, "arguments") {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                // Some clients send the arguments as an object; keep them as JSON text.
                Some(v @ Value::Object(_)) => v.to_string(),
                Some(v) => return Err(invalid_type(&at(&fpath, "arguments"), "a string", v)),
            };
            content.push(ContentPart::ToolCall {
                id,
                name,
                arguments,
            });
        }
    }
    Ok(Message {
        role: Role::Assistant,
        content,
        name,
    })
}

fn parse_content(
    v: Option<&Value>,
    path: &str,
    allowed: Allowed,
) -> Result<Vec<ContentPart>, GatewayError> {
    let items = match v {
        None => return Err(missing(path)),
        Some(Value::String(s)) => {
            if allowed == Allowed::Assistant && s.is_empty() {
                return Ok(Vec::new());
            }
            return Ok(vec![ContentPart::text(s.as_str())]);
        }
        Some(Value::Array(items)) => items,
        Some(v) => {
            return Err(invalid_type(
                path,
                "a string or an array of content parts",
                v,
            ))
        }
    };
    let mut parts = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        let p = as_obj(item, &ppath)?;
        let kind = req_str(p, "type", &ppath)?;
        match (kind, allowed) {
            ("text", _) => parts.push(ContentPart::text(req_str(p, "text", &ppath)?)),
            ("refusal", Allowed::Assistant) => {
                parts.push(ContentPart::text(req_str(p, "refusal", &ppath)?))
            }
            ("image_url", Allowed::User) => {
                let ipath = at(&ppath, "image_url");
                let url = match field(p, "image_url") {
                    None => return Err(missing(&ipath)),
                    Some(Value::String(s)) => s.as_str(),
                    Some(Value::Object(o)) => req_str(o, "url", &ipath)?,
                    Some(v) => return Err(invalid_type(&ipath, "an object with a url", v)),
                };
                parts.push(ContentPart::Image {
                    source: ImageSource::from_url(url),
                    cache_control: None,
                });
            }
            (other, _) => {
                return Err(invalid_value(
                    &at(&ppath, "type"),
                    format!("content part type '{other}' is not supported here"),
                ))
            }
        }
    }
    Ok(parts)
}

fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Url { url } => url.clone(),
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
    }
}

fn parse_tool(v: &Value, path: &str) -> Result<Tool, GatewayError> {
    let t = as_obj(v, path)?;
    let kind = opt_str(t, "type", path)?.unwrap_or("function");
    if kind != "function" {
        return Err(invalid_value(
            &at(path, "type"),
            format!("unsupported tool type '{kind}'; only 'function' is supported"),
        ));
    }
    let fpath = at(path, "function");
    let f = match field(t, "function") {
        None => return Err(missing(&fpath)),
        Some(v) => as_obj(v, &fpath)?,
    };
    let name = req_str(f, "name", &fpath)?;
    if name.is_empty() {
        return Err(invalid_value(
            &at(&fpath, "name"),
            "must be a non-empty string",
        ));
    }
    let parameters = match field(f, "parameters") {
        None => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(p) => return Err(invalid_type(&at(&fpath, "parameters"), "an object", p)),
    };
    Ok(Tool {
        name: name.to_owned(),
        description: opt_str(f, "description", &fpath)?.map(str::to_owned),
        parameters,
        cache_control: None,
    })
}

fn parse_tool_choice(v: &Value) -> Result<ToolChoice, GatewayError> {
    const PATH: &str = "tool_choice";
    match v {
        Value::String(s) => ToolChoice::from_mode(s).ok_or_else(|| {
            invalid_value(PATH, format!("'{s}' is not one of auto, none, required"))
        }),
        Value::Object(o) => {
            let kind = req_str(o, "type", PATH)?;
            if kind != "function" {
                return Err(invalid_value(
                    &at(PATH, "type"),
                    format!("unsupported tool_choice type '{kind}'; expected 'function'"),
                ));
            }
            let fpath = at(PATH, "function");
            let f = match field(o, "function") {
                None => return Err(missing(&fpath)),
                Some(v) => as_obj(v, &fpath)?,
            };
            Ok(ToolChoice::Tool {
                name: req_str(f, "name", &fpath)?.to_owned(),
            })
        }
        v => Err(invalid_type(PATH, "a string or an object", v)),
    }
}

fn parse_response_format(v: &Value) -> Result<ResponseFormat, GatewayError> {
    const PATH: &str = "response_format";
    let o = as_obj(v, PATH)?;
    match req_str(o, "type", PATH)? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => match field(o, "json_schema") {
            None => Err(missing("response_format.json_schema")),
            Some(s @ Value::Object(_)) => Ok(ResponseFormat::JsonSchema { schema: s.clone() }),
            Some(s) => Err(invalid_type("response_format.json_schema", "an object", s)),
        },
        other => Err(invalid_value(
            "response_format.type",
            format!("'{other}' is not one of text, json_object, json_schema"),
        )),
    }
}

// ---------------------------------------------------------------------------------
// Client side: responses and errors.
// ---------------------------------------------------------------------------------

fn finish_reason(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence { .. } => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::ContentFilter => "content_filter",
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input_tokens,
        "completion_tokens": u.output_tokens,
        "total_tokens": u64::from(u.input_tokens) + u64::from(u.output_tokens),
        "prompt_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
    })
}

fn tool_call_json(id: &str, name: &str, arguments: &str) -> Value {
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

pub fn render_response(resp: &ChatResponse) -> Value {
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for part in &resp.content {
        match part {
            ContentPart::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => tool_calls.push(tool_call_json(id, name, arguments)),
            // Chat completions has no place for Anthropic's signed thinking.
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Thinking { .. }
            | ContentPart::RedactedThinking { .. } => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    message.insert("content".into(), json!(text));
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    message.insert("refusal".into(), Value::Null);
    json!({
        "id": resp.id,
        "object": "chat.completion",
        "created": resp.created,
        "model": resp.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(&resp.stop_reason),
        }],
        "usage": usage_json(&resp.usage),
    })
}

/// OpenAI's `type` and `code` for an error.
fn error_kind(err: &GatewayError) -> (&'static str, Option<&'static str>) {
    match err {
        GatewayError::InvalidRequest(_) => ("invalid_request_error", None),
        GatewayError::Authentication(_) => ("authentication_error", Some("invalid_api_key")),
        GatewayError::PermissionDenied(_) => ("permission_error", None),
        GatewayError::NotFound(_) => ("not_found_error", Some("model_not_found")),
        GatewayError::PayloadTooLarge { .. } => {
            ("invalid_request_error", Some("request_too_large"))
        }
        GatewayError::RateLimited { .. } => ("rate_limit_error", Some("rate_limit_exceeded")),
        GatewayError::RequestTimeout(_) => ("invalid_request_error", Some("request_timeout")),
        GatewayError::Upstream { status, .. } => match status {
            401 => ("authentication_error", None),
            403 => ("permission_error", None),
            404 => ("not_found_error", None),
            413 => ("invalid_request_error", Some("request_too_large")),
            429 => ("rate_limit_error", Some("rate_limit_exceeded")),
            400..=499 => ("invalid_request_error", None),
            _ => ("server_error", Some("upstream_error")),
        },
        GatewayError::BadGateway { .. } => ("server_error", Some("bad_gateway")),
        GatewayError::Timeout { .. } => ("server_error", Some("timeout")),
        GatewayError::Overloaded(_) => ("server_error", Some("overloaded")),
        GatewayError::Internal(_) => ("server_error", None),
    }
}

pub fn render_error(err: &GatewayError) -> Value {
    let (kind, code) = error_kind(err);
    json!({
        "error": {
            "message": err.to_string(),
            "type": kind,
            "param": null,
            "code": code,
        }
    })
}

// ---------------------------------------------------------------------------------
// Client side: streaming.
// ---------------------------------------------------------------------------------

/// Canonical events to `chat.completion.chunk` SSE frames.
#[derive(Debug)]
pub struct StreamEncoder {
    include_usage: bool,
    id: String,
    model: String,
    created: u64,
    role_sent: bool,
    /// Canonical content index -> OpenAI `tool_calls[].index`.
    tool_index: HashMap<u32, u32>,
    usage: Option<Usage>,
    errored: bool,
    done: bool,
}

impl StreamEncoder {
    pub fn new(include_usage: bool) -> Self {
        StreamEncoder {
            include_usage,
            id: String::new(),
            model: String::new(),
            created: now_unix(),
            role_sent: false,
            tool_index: HashMap::new(),
            usage: None,
            errored: false,
            done: false,
        }
    }

    fn frame(&self, choices: Value, usage: Value, out: &mut Vec<u8>) {
        let mut chunk = Map::new();
        chunk.insert("id".into(), json!(self.id));
        chunk.insert("object".into(), json!("chat.completion.chunk"));
        chunk.insert("created".into(), json!(self.created));
        chunk.insert("model".into(), json!(self.model));
        chunk.insert("choices".into(), choices);
        // OpenAI sends `"usage": null` on every chunk once usage was asked for.
        if self.include_usage {
            chunk.insert("usage".into(), usage);
        }
        write_event(out, None, &Value::Object(chunk).to_string());
    }

    fn choice(&mut self, mut delta: Map<String, Value>, finish: Option<&str>, out: &mut Vec<u8>) {
        if !self.role_sent {
            self.role_sent = true;
            delta.insert("role".into(), json!("assistant"));
        }
        let choices = json!([{
            "index": 0,
            "delta": delta,
            "logprobs": null,
            "finish_reason": finish,
        }]);
        self.frame(choices, Value::Null, out);
    }

    fn tool_index_for(&mut self, index: u32) -> u32 {
        let next = self.tool_index.len() as u32;
        *self.tool_index.entry(index).or_insert(next)
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        if self.done || self.errored {
            return;
        }
        let mut delta = Map::new();
        match ev {
            StreamEvent::Start {
                id,
                model,
                created,
                usage,
            } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.created = *created;
                self.usage = *usage;
                delta.insert("content".into(), json!(""));
                self.choice(delta, None, out);
            }
            StreamEvent::TextDelta { text, .. } => {
                if text.is_empty() && self.role_sent {
                    return;
                }
                delta.insert("content".into(), json!(text));
                self.choice(delta, None, out);
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                let k = self.tool_index_for(*index);
                let call = json!([{
                    "index": k,
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]);
                delta.insert("tool_calls".into(), call);
                self.choice(delta, None, out);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if arguments.is_empty() {
                    return;
                }
                let k = self.tool_index_for(*index);
                let call = json!([{"index": k, "function": {"arguments": arguments}}]);
                delta.insert("tool_calls".into(), call);
                self.choice(delta, None, out);
            }
            // OpenAI has no keep-alive event; a comment keeps proxies from timing out
            // and every client ignores it.
            StreamEvent::Ping => write_comment(out, "ping"),
            StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. }
            | StreamEvent::RedactedThinking { .. } => {}
            StreamEvent::Finish { stop_reason, usage } => {
                if usage.is_some() {
                    self.usage = *usage;
                }
                self.choice(delta, Some(finish_reason(stop_reason)), out);
            }
        }
    }

    /// A failure after the stream started: OpenAI sends an `{"error": ...}` data frame
    /// and ends the stream; `finish` then only adds `[DONE]`.
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        if self.done || self.errored {
            return;
        }
        self.errored = true;
        write_event(out, None, &render_error(err).to_string());
    }

    /// The usage chunk (`choices: []`) when the client asked for usage and it is known,
    /// then `data: [DONE]`. Idempotent.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        self.done = true;
        if self.include_usage && !self.errored {
            if let Some(u) = self.usage {
                self.frame(json!([]), usage_json(&u), out);
            }
        }
        write_event(out, None, "[DONE]");
    }
}

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
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

    fn decode_all(bytes: &[u8]) -> Vec<StreamEvent> {
        let mut d = StreamDecoder::new();
        let mut out = Vec::new();
        for f in frames(bytes) {
            out.extend(d.decode(&f).unwrap());
        }
        assert!(d.is_done());
        out.extend(d.finish().unwrap());
        out
    }

    /// A call without `index` after one at index `u64::MAX` overflowed the next key (a
    /// panic with overflow checks on); reproduced with `fuzz/fuzz_targets/upstream_stream.rs`.
    #[test]
    fn call_without_index_after_max_index_is_a_new_call() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":18446744073709551615,\"id\":\"a\",\"function\":{\"name\":\"f\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let starts: Vec<(u32, String)> = decode_all(stream.as_bytes())
            .into_iter()
            .filter_map(|ev| match ev {
                StreamEvent::ToolCallStart { index, name, .. } => Some((index, name)),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [(0, "f".to_string()), (1, "g".to_string())]);
    }

    /// Found by fuzzing (`fuzz/fuzz_targets/openai_request.rs`): with serde_json's default
    /// (not correctly rounded) float parsing, a number in a forwarded field moved by one
    /// ulp each time the gateway re-read a body it had written.
    #[test]
    fn forwarded_numbers_survive_rebuilds_exactly() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
            "x":[77777777777777777777777777777777777777777,7.777777777777779e40,0.1]}"#;
        let req = parse_request(body).unwrap();
        let rebuilt = build_request(&req, "m").to_string();
        let again = parse_request(rebuilt.as_bytes()).unwrap();
        assert_eq!(again.extra, req.extra);
        assert_eq!(again.extra["x"][1].as_f64(), Some(7.777777777777779e40));
    }

    fn usage(input: u32, output: u32, cached: u32) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: cached,
            cache_creation_input_tokens: 0,
        }
    }

    #[test]
    fn parses_a_full_request() {
        let req = parse(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": "Thanks"}
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "parallel_tool_calls": false,
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
            "temperature": 0.5, "top_p": 0.9,
            "max_tokens": 10, "max_completion_tokens": 20,
            "stop": "END", "seed": 7, "frequency_penalty": 0.1, "presence_penalty": -0.1,
            "n": 1, "stream": true, "stream_options": {"include_usage": true},
            "user": "u-1", "metadata": {"k": "v"},
            "logit_bias": {"50256": -100}
        }))
        .unwrap();
        assert_eq!(req.model, "gpt-4o");
        assert_eq!(req.messages.len(), 5);
        assert_eq!(req.messages[0], Message::text(Role::System, "Be brief."));
        assert_eq!(req.messages[1].name.as_deref(), Some("ann"));
        assert_eq!(
            req.messages[1].content[1],
            ContentPart::Image {
                source: ImageSource::Base64 {
                    media_type: "image/png".into(),
                    data: "iVBORw0KGgo=".into()
                },
                cache_control: None
            }
        );
        assert_eq!(
            req.messages[1].content[2],
            ContentPart::Image {
                source: ImageSource::Url {
                    url: "https://example.com/cat.jpg".into()
                },
                cache_control: None
            }
        );
        assert_eq!(
            req.messages[2].content[0],
            ContentPart::ToolCall {
                id: "call_1".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into()
            }
        );
        // Both tool messages merged into one user turn.
        assert_eq!(req.messages[3].role, Role::User);
        assert_eq!(
            req.messages[3].content,
            vec![
                ContentPart::ToolResult {
                    call_id: "call_1".into(),
                    content: vec![ContentPart::text("18C")],
                    is_error: false,
                    cache_control: None
                },
                ContentPart::ToolResult {
                    call_id: "call_2".into(),
                    content: vec![ContentPart::text("noon")],
                    is_error: false,
                    cache_control: None
                },
            ]
        );
        assert_eq!(req.messages[4], Message::text(Role::User, "Thanks"));
        assert_eq!(req.tools[0].name, "get_weather");
        assert_eq!(req.tools[0].description.as_deref(), Some("Weather by city"));
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Tool {
                name: "get_weather".into()
            })
        );
        assert_eq!(req.parallel_tool_calls, Some(false));
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                schema: json!({"name": "w", "schema": {"type": "object"}, "strict": true})
            })
        );
        assert_eq!(
            req.sampling,
            Sampling {
                temperature: Some(0.5),
                top_p: Some(0.9),
                top_k: None,
                max_tokens: Some(20),
                stop: vec!["END".into()],
                seed: Some(7),
                frequency_penalty: Some(0.1),
                presence_penalty: Some(-0.1),
            }
        );
        assert!(req.stream && req.include_usage);
        assert_eq!(req.user.as_deref(), Some("u-1"));
        assert_eq!(
            req.metadata,
            Some(json!({"k": "v"}).as_object().unwrap().clone())
        );
        assert_eq!(
            req.extra,
            *json!({"logit_bias": {"50256": -100}}).as_object().unwrap()
        );
        assert_eq!(req.extra_dialect, Dialect::OpenAi);
    }

    #[test]
    fn request_errors_are_precise() {
        let m = invalid_message(parse_request(b"{\"model\": "));
        assert!(m.starts_with("request body is not valid JSON"), "{m}");
        let m = invalid_message(parse(json!([1])));
        assert_eq!(m, "request body must be a JSON object, got an array");
        let m = invalid_message(parse(
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        ));
        assert_eq!(m, "missing required parameter 'model'");
        let m = invalid_message(parse(json!({"model": "", "messages": []})));
        assert_eq!(m, "invalid value for 'model': must be a non-empty string");
        let m = invalid_message(parse(json!({"model": 5, "messages": []})));
        assert_eq!(
            m,
            "invalid type for 'model': expected a string, got an integer"
        );
        let m = invalid_message(parse(json!({"model": "m"})));
        assert_eq!(m, "missing required parameter 'messages'");
        let m = invalid_message(parse(json!({"model": "m", "messages": []})));
        assert_eq!(
            m,
            "invalid value for 'messages': must contain at least one message"
        );
        let m = invalid_message(parse(json!({"model": "m", "messages": {"role": "user"}})));
        assert_eq!(
            m,
            "invalid type for 'messages': expected an array of messages, got an object"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 3}]}),
        ));
        assert_eq!(
            m,
            "invalid type for 'messages[1].content': expected a string or an array of content parts, got an integer"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "messages": [{"role": "robot", "content": "a"}]}),
        ));
        assert!(
            m.starts_with("invalid value for 'messages[0].role': unknown role 'robot'"),
            "{m}"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
        ));
        assert_eq!(
            m,
            "invalid value for 'messages[0].content[0].type': content part type 'input_audio' is not supported here"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
        ));
        assert_eq!(m, "missing required parameter 'messages[0].tool_call_id'");
        let m = invalid_message(parse(
            json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "a"}]}),
        ));
        assert_eq!(m, "invalid value for 'n': only n=1 is supported");
        let m = invalid_message(parse(
            json!({"model": "m", "temperature": "hot", "messages": [{"role": "user", "content": "a"}]}),
        ));
        assert_eq!(
            m,
            "invalid type for 'temperature': expected a number, got a string"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "a"}]}),
        ));
        assert_eq!(
            m,
            "invalid type for 'max_tokens': expected a non-negative integer, got an integer"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "stop": ["a", 1], "messages": [{"role": "user", "content": "a"}]}),
        ));
        assert_eq!(
            m,
            "invalid type for 'stop[1]': expected a string, got an integer"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "tool_choice": "sometimes", "messages": [{"role": "user", "content": "a"}]}),
        ));
        assert_eq!(
            m,
            "invalid value for 'tool_choice': 'sometimes' is not one of auto, none, required"
        );
        let m = invalid_message(parse(
            json!({"model": "m", "messages": [{"role": "user", "content": "a"}],
            "tools": [{"type": "function", "function": {"description": "x"}}]}),
        ));
        assert_eq!(m, "missing required parameter 'tools[0].function.name'");
    }

    fn sample_request() -> ChatRequest {
        let mut req = ChatRequest::new(
            "gpt-4o-mini",
            vec![
                Message::text(Role::System, "sys"),
                Message {
                    role: Role::User,
                    content: vec![
                        ContentPart::text("look"),
                        ContentPart::Image {
                            source: ImageSource::Base64 {
                                media_type: "image/jpeg".into(),
                                data: "/9j/4AAQ".into(),
                            },
                            cache_control: None,
                        },
                    ],
                    name: Some("ann".into()),
                },
                Message {
                    role: Role::Assistant,
                    content: vec![
                        ContentPart::text("calling"),
                        ContentPart::ToolCall {
                            id: "call_1".into(),
                            name: "f".into(),
                            arguments: "{\"x\":1}".into(),
                        },
                    ],
                    name: None,
                },
                Message {
                    role: Role::User,
                    content: vec![ContentPart::ToolResult {
                        call_id: "call_1".into(),
                        content: vec![ContentPart::text("42")],
                        is_error: false,
                        cache_control: None,
                    }],
                    name: None,
                },
            ],
            Dialect::OpenAi,
        );
        req.tools = vec![Tool {
            name: "f".into(),
            description: Some("does f".into()),
            parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
            cache_control: None,
        }];
        req.tool_choice = Some(ToolChoice::Required);
        req.parallel_tool_calls = Some(true);
        req.response_format = Some(ResponseFormat::JsonObject);
        req.sampling = Sampling {
            temperature: Some(0.25),
            top_p: Some(0.5),
            top_k: None,
            max_tokens: Some(100),
            stop: vec!["a".into(), "b".into()],
            seed: Some(3),
            frequency_penalty: Some(0.5),
            presence_penalty: Some(1.5),
        };
        req.stream = true;
        req.include_usage = true;
        req.user = Some("u".into());
        req.metadata = json!({"team": "x"}).as_object().cloned();
        req.extra = json!({"logprobs": true}).as_object().unwrap().clone();
        req
    }

    #[test]
    fn build_then_parse_round_trips() {
        let req = sample_request();
        let body = build_request(&req, "gpt-4o-mini");
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(body["logprobs"], json!(true));
        let back = parse_request(body.to_string().as_bytes()).unwrap();
        assert_eq!(back, req);
    }

    #[test]
    fn build_request_wire_shape() {
        let mut req = sample_request();
        req.stream = false;
        req.include_usage = false;
        req.sampling.top_k = Some(5);
        req.extra_dialect = Dialect::Anthropic;
        // Anthropic-style turn: tool results plus text in one user message.
        req.messages[3].content.push(ContentPart::text("and now?"));
        let body = build_request(&req, "upstream-model");
        assert_eq!(
            body,
            json!({
                "model": "upstream-model",
                "messages": [
                    {"role": "system", "content": "sys"},
                    {"role": "user", "name": "ann", "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
                    ]},
                    {"role": "assistant", "content": "calling", "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                    {"role": "user", "content": "and now?"}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "description": "does f",
                    "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}],
                "tool_choice": "required",
                "parallel_tool_calls": true,
                "response_format": {"type": "json_object"},
                "temperature": 0.25, "top_p": 0.5, "max_tokens": 100, "seed": 3,
                "frequency_penalty": 0.5, "presence_penalty": 1.5,
                "stop": ["a", "b"], "user": "u", "metadata": {"team": "x"},
                "stream": false
            })
        );
    }

    fn sample_response() -> ChatResponse {
        ChatResponse {
            id: "chatcmpl-1".into(),
            model: "gpt-4o".into(),
            content: vec![
                ContentPart::text("Let me check."),
                ContentPart::ToolCall {
                    id: "call_9".into(),
                    name: "get_weather".into(),
                    arguments: "{\"city\":\"Paris\"}".into(),
                },
            ],
            stop_reason: StopReason::ToolUse,
            usage: usage(100, 20, 64),
            created: 1_700_000_000,
        }
    }

    #[test]
    fn render_response_wire_shape_and_round_trip() {
        let resp = sample_response();
        let v = render_response(&resp);
        assert_eq!(
            v,
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000u64,
                "model": "gpt-4o",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Let me check.",
                        "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                        "refusal": null
                    },
                    "logprobs": null,
                    "finish_reason": "tool_calls"
                }],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                    "prompt_tokens_details": {"cached_tokens": 64}}
            })
        );
        assert_eq!(parse_response(v.to_string().as_bytes()).unwrap(), resp);
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        for (stop, wire, back) in [
            (StopReason::EndTurn, "stop", StopReason::EndTurn),
            (
                StopReason::StopSequence {
                    sequence: Some("x".into()),
                },
                "stop",
                StopReason::EndTurn,
            ),
            (StopReason::MaxTokens, "length", StopReason::MaxTokens),
            (StopReason::ToolUse, "tool_calls", StopReason::ToolUse),
            (
                StopReason::ContentFilter,
                "content_filter",
                StopReason::ContentFilter,
            ),
        ] {
            let mut resp = sample_response();
            resp.stop_reason = stop;
            let v = render_response(&resp);
            assert_eq!(v["choices"][0]["finish_reason"], json!(wire));
            assert_eq!(
                parse_response(v.to_string().as_bytes())
                    .unwrap()
                    .stop_reason,
                back
            );
        }
    }

    #[test]
    fn parses_documented_upstream_response() {
        // Shape from the Chat Completions API reference.
        let body = br#"{
          "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
          "object": "chat.completion",
          "created": 1741570283,
          "model": "gpt-4o-2024-08-06",
          "choices": [{
              "index": 0,
              "message": {"role": "assistant", "content": null, "refusal": null,
                "tool_calls": [{"id": "call_abc", "type": "function",
                  "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}}],
                "annotations": []},
              "logprobs": null,
              "finish_reason": "tool_calls"
          }],
          "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0}},
          "service_tier": "default",
          "system_fingerprint": "fp_fc9f1d7035"
        }"#;
        let resp = parse_response(body).unwrap();
        assert_eq!(resp.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
        assert_eq!(resp.created, 1741570283);
        assert_eq!(
            resp.content,
            vec![ContentPart::ToolCall {
                id: "call_abc".into(),
                name: "get_current_weather".into(),
                arguments: "{\"location\": \"Boston, MA\"}".into()
            }]
        );
        assert_eq!(resp.stop_reason, StopReason::ToolUse);
        assert_eq!(resp.usage, usage(1117, 46, 1024));
        assert!(parse_response(b"{\"error\": {\"message\": \"boom\"}}")
            .unwrap_err()
            .contains("boom"));
        assert!(parse_response(b"nope").is_err());
        assert!(parse_response(b"{\"choices\": []}").is_err());
    }

    #[test]
    fn errors_render_with_openai_types() {
        let cases = [
            (
                GatewayError::InvalidRequest("bad".into()),
                "invalid_request_error",
                Value::Null,
            ),
            (
                GatewayError::Authentication("key".into()),
                "authentication_error",
                json!("invalid_api_key"),
            ),
            (
                GatewayError::PermissionDenied("no".into()),
                "permission_error",
                Value::Null,
            ),
            (
                GatewayError::NotFound("model x".into()),
                "not_found_error",
                json!("model_not_found"),
            ),
            (
                GatewayError::PayloadTooLarge { limit: 10 },
                "invalid_request_error",
                json!("request_too_large"),
            ),
            (
                GatewayError::RateLimited {
                    message: "slow".into(),
                    retry_after: Some("3".into()),
                },
                "rate_limit_error",
                json!("rate_limit_exceeded"),
            ),
            (
                GatewayError::Upstream {
                    provider: "p".into(),
                    status: 429,
                    message: "m".into(),
                    retry_after: None,
                },
                "rate_limit_error",
                json!("rate_limit_exceeded"),
            ),
            (
                GatewayError::Upstream {
                    provider: "p".into(),
                    status: 500,
                    message: "m".into(),
                    retry_after: None,
                },
                "server_error",
                json!("upstream_error"),
            ),
            (
                GatewayError::Timeout {
                    provider: "p".into(),
                    after_ms: 5,
                },
                "server_error",
                json!("timeout"),
            ),
            (
                GatewayError::Internal("x".into()),
                "server_error",
                Value::Null,
            ),
        ];
        for (err, kind, code) in cases {
            let v = render_error(&err);
            assert_eq!(
                v,
                json!({"error": {"message": err.to_string(), "type": kind, "param": null, "code": code}}),
                "{err:?}"
            );
        }
    }

    #[test]
    fn parse_error_keeps_upstream_message_and_status() {
        let body = br#"{"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}"#;
        match parse_error(429, body, Some("20".into()), "openai") {
            GatewayError::Upstream {
                provider,
                status,
                message,
                retry_after,
            } => {
                assert_eq!(provider, "openai");
                assert_eq!(status, 429);
                assert_eq!(message, "Rate limit reached for gpt-4o");
                assert_eq!(retry_after.as_deref(), Some("20"));
            }
            other => panic!("{other:?}"),
        }
        let msg = |body: &[u8]| match parse_error(502, body, None, "p") {
            GatewayError::Upstream { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(msg(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
        assert_eq!(msg(b"{\"detail\": \"Not Found\"}"), "Not Found");
        assert_eq!(msg(b""), "upstream returned HTTP 502");
        assert!(msg("é".repeat(2000).as_bytes()).ends_with("..."));
    }

    fn sample_events() -> Vec<StreamEvent> {
        vec![
            StreamEvent::Start {
                id: "chatcmpl-7".into(),
                model: "gpt-4o".into(),
                created: 1_700_000_000,
                usage: None,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Checking".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: " both.".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_a".into(),
                name: "get_weather".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"city\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "\"Paris\"}".into(),
            },
            StreamEvent::ToolCallStart {
                index: 2,
                id: "call_b".into(),
                name: "get_time".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 2,
                arguments: "{}".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(usage(50, 30, 10)),
            },
        ]
    }

    #[test]
    fn stream_encoder_wire_format() {
        let mut enc = StreamEncoder::new(true);
        let mut out = Vec::new();
        for ev in sample_events().iter().take(5) {
            enc.encode(ev, &mut out);
        }
        enc.encode(&StreamEvent::Ping, &mut out);
        enc.encode(
            &StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(usage(50, 30, 10)),
            },
            &mut out,
        );
        enc.finish(&mut out);
        enc.finish(&mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("\n\n: ping\n\n"), "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"));
        let data: Vec<Value> = frames(&out)
            .iter()
            .filter(|f| f.data != "[DONE]")
            .map(|f| serde_json::from_str(&f.data).unwrap())
            .collect();
        let head = |choices: Value, usage: Value| {
            json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
                "model": "gpt-4o", "choices": choices, "usage": usage})
        };
        let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        assert_eq!(
            data,
            vec![
                head(
                    choice(json!({"role": "assistant", "content": ""}), Value::Null),
                    Value::Null
                ),
                head(
                    choice(json!({"content": "Checking"}), Value::Null),
                    Value::Null
                ),
                head(
                    choice(json!({"content": " both."}), Value::Null),
                    Value::Null
                ),
                head(
                    choice(
                        json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                            "function": {"name": "get_weather", "arguments": ""}}]}),
                        Value::Null
                    ),
                    Value::Null
                ),
                head(
                    choice(
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                        Value::Null
                    ),
                    Value::Null
                ),
                head(choice(json!({}), json!("tool_calls")), Value::Null),
                head(
                    json!([]),
                    json!({"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80,
                        "prompt_tokens_details": {"cached_tokens": 10}})
                ),
            ]
        );
    }

    #[test]
    fn stream_round_trips_through_the_wire() {
        let mut enc = StreamEncoder::new(true);
        let mut out = Vec::new();
        for ev in sample_events() {
            enc.encode(&ev, &mut out);
        }
        enc.finish(&mut out);
        assert_eq!(decode_all(&out), sample_events());

        // Without include_usage the client sees no usage chunk.
        let mut enc = StreamEncoder::new(false);
        let mut out = Vec::new();
        for ev in sample_events() {
            enc.encode(&ev, &mut out);
        }
        enc.finish(&mut out);
        assert!(!String::from_utf8_lossy(&out).contains("usage"));
    }

    #[test]
    fn decodes_documented_tool_call_stream() {
        // The chunk sequence OpenAI documents for streamed function calls, with the
        // usage chunk that stream_options.include_usage adds.
        let body = concat!(
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"location\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
            "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":70,\"completion_tokens\":17,\"total_tokens\":87,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n",
            "data: [DONE]\n\n",
        );
        assert_eq!(
            decode_all(body.as_bytes()),
            vec![
                StreamEvent::Start {
                    id: "chatcmpl-1".into(),
                    model: "gpt-4o".into(),
                    created: 1,
                    usage: None
                },
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "call_DdmO9pD3xa9XTPNJ32zg2hcA".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    arguments: "{\"".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    arguments: "location\":\"Paris\"}".into()
                },
                StreamEvent::Finish {
                    stop_reason: StopReason::ToolUse,
                    usage: Some(usage(70, 17, 0))
                },
            ]
        );
    }

    #[test]
    fn decoder_errors_and_truncation() {
        let ev = |data: &str| SseEvent {
            event: None,
            data: data.into(),
        };
        let mut d = StreamDecoder::new();
        let first = "{\"id\":\"x\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}";
        assert_eq!(d.decode(&ev(first)).unwrap().len(), 2);
        let err = d
            .decode(&ev(
                "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}",
            ))
            .unwrap_err();
        assert_eq!(err, "The server had an error");
        // Stream cut before any finish_reason.
        let mut d = StreamDecoder::new();
        d.decode(&ev(first)).unwrap();
        assert!(d.finish().unwrap_err().contains("finish_reason"));
        let mut d = StreamDecoder::new();
        d.decode(&ev(first)).unwrap();
        assert!(d.decode(&ev("[DONE]")).is_err());
        // finish_reason without [DONE] (some servers) still finishes, once.
        let mut d = StreamDecoder::new();
        let out = d
            .decode(&ev(
                "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}",
            ))
            .unwrap();
        assert!(matches!(out[..], [StreamEvent::Start { .. }]));
        assert!(!d.is_done());
        assert_eq!(
            d.finish().unwrap(),
            vec![StreamEvent::Finish {
                stop_reason: StopReason::MaxTokens,
                usage: None
            }]
        );
        assert!(d.finish().unwrap().is_empty());
        assert!(StreamDecoder::new().decode(&ev("not json")).is_err());
    }

    #[test]
    fn encode_error_frame() {
        let mut enc = StreamEncoder::new(true);
        let mut out = Vec::new();
        enc.encode(&sample_events()[0], &mut out);
        out.clear();
        enc.encode_error(&GatewayError::Overloaded("busy".into()), &mut out);
        enc.finish(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            // Keys in OpenAI's own order (serde_json keeps insertion order workspace-wide).
            "data: {\"error\":{\"message\":\"busy\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\ndata: [DONE]\n\n"
        );
    }

    pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|n| json!(n)),
            "[a-z_]{0,12}".prop_map(Value::String),
            prop_oneof![
                Just("user"),
                Just("assistant"),
                Just("system"),
                Just("tool"),
                Just("developer"),
                Just("text"),
                Just("image_url"),
                Just("function"),
                Just("auto"),
                Just("required"),
                Just("json_schema"),
                Just("data:image/png;base64,AAAA"),
            ]
            .prop_map(|s| json!(s)),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("role"),
                            Just("content"),
                            Just("type"),
                            Just("text"),
                            Just("name"),
                            Just("tool_calls"),
                            Just("tool_call_id"),
                            Just("function"),
                            Just("arguments"),
                            Just("image_url"),
                            Just("url"),
                            Just("id"),
                            Just("parameters"),
                            Just("json_schema"),
                            Just("include_usage"),
                        ]
                        .prop_map(str::to_owned),
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    pub(crate) fn arb_request_like(
        messages: impl Strategy<Value = Value>,
    ) -> impl Strategy<Value = Value> {
        (
            proptest::option::of(prop_oneof![
                "[a-z]{0,5}".prop_map(Value::String),
                arb_json()
            ]),
            messages,
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("tools"),
                        Just("tool_choice"),
                        Just("stop"),
                        Just("n"),
                        Just("max_tokens"),
                        Just("temperature"),
                        Just("stream_options"),
                        Just("response_format"),
                        Just("metadata"),
                        Just("system"),
                        Just("stop_sequences"),
                        Just("top_k"),
                        Just("seed"),
                    ]
                    .prop_map(str::to_owned),
                    arb_json(),
                ),
                0..4,
            ),
        )
            .prop_map(|(model, messages, rest)| {
                let mut o: Map<String, Value> = rest.into_iter().collect();
                if let Some(m) = model {
                    o.insert("model".into(), m);
                }
                o.insert("messages".into(), messages);
                Value::Object(o)
            })
    }

    proptest! {
        #[test]
        fn parse_request_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_request(&bytes);
        }

        #[test]
        fn parse_request_never_panics_on_json(v in arb_json()) {
            let _ = parse_request(v.to_string().as_bytes());
        }

        #[test]
        fn parse_request_never_panics_on_request_like_json(
            v in arb_request_like(proptest::collection::vec(arb_json(), 0..4).prop_map(Value::Array))
        ) {
            if let Ok(req) = parse_request(v.to_string().as_bytes()) {
                // Whatever parses must also build and survive the trip upstream.
                let body = build_request(&req, "m");
                let _ = parse_request(body.to_string().as_bytes());
                let _ = crate::dialects::anthropic::build_request(&req, "m");
            }
        }
    }
}
