//! OpenAI Chat Completions, client side: requests parsed, responses, errors and streams rendered.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::json::{
    as_obj, at, body_object, field, invalid_type, invalid_value, missing, now_unix, opt_array,
    opt_bool, opt_f32, opt_str, opt_u32, opt_u64, parse_json_body, req_str, string_list,
    unknown_fields, Obj,
};
use crate::dialects::sse::{write_comment, write_event};

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

pub(super) fn image_url(source: &ImageSource) -> String {
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

pub(super) fn tool_call_json(id: &str, name: &str, arguments: &str) -> Value {
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
