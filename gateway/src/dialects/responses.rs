//! The OpenAI Responses API (`POST /v1/responses`) as a client dialect: requests become
//! canonical chat requests (so every backend can serve them), answers become Response
//! objects and typed stream events. The conversation store behind `store` and
//! `previous_response_id` is `crate::conversations`; this file is pure.
//!
//! Supported: `input` as a string or items (messages with `input_text` / `output_text` /
//! `input_image` parts, `function_call`, `function_call_output`), `instructions`,
//! function tools, `tool_choice`, `text.format` (text, json_object, json_schema),
//! sampling, `max_output_tokens`, `metadata`, `user`, streaming. Built-in tools (web
//! search, file search, computer use…), `item_reference` items and file inputs are a
//! clear 400: no backend behind a translation to chat can run them. Reasoning items a
//! client sends back are dropped (they are opaque to every backend but OpenAI's own).

use serde_json::{json, Map, Value};

use super::json::{
    as_obj, at, body_object, field, invalid_type, invalid_value, missing, now_unix, opt_array,
    opt_bool, opt_f32, opt_str, opt_u32, parse_json_body, req_str, unknown_fields, Obj,
};
use super::sse::write_event;
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};

const KNOWN_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "temperature",
    "top_p",
    "max_output_tokens",
    "stream",
    "store",
    "previous_response_id",
    "metadata",
    "user",
    "truncation",
    "include",
    "reasoning",
    "service_tier",
    "background",
];

/// What rendering a Response needs besides the answer, decided when the request is read:
/// the id the client will see, the request's settings the object echoes, and the
/// conversation to store.
#[derive(Debug, Clone)]
pub struct Turn {
    /// `resp_…`, chosen by the gateway.
    pub id: String,
    pub created_at: u64,
    /// The model the client asked for.
    pub model: String,
    /// Keep this turn for `previous_response_id` and `GET /v1/responses/{id}`.
    pub store: bool,
    pub previous_response_id: Option<String>,
    /// The request fields a Response object echoes (`instructions`, `tools`,
    /// `tool_choice`, `text`, `temperature`, `top_p`, `max_output_tokens`, `metadata`,
    /// `parallel_tool_calls`, `user`, `truncation`), as the client sent them.
    pub echo: Map<String, Value>,
    /// How many leading messages of the canonical request are this turn's instructions
    /// (instructions are not carried into the next turn, as with OpenAI).
    pub instruction_messages: usize,
}

/// Parses a Responses request. The canonical request carries the instructions (as a
/// leading system message) and this turn's input; `conversations::recall` inserts the
/// earlier turns after the instructions when `previous_response_id` is set.
pub fn parse_request(body: &[u8]) -> Result<(ChatRequest, Turn), GatewayError> {
    let value = parse_json_body(body)?;
    let obj = body_object(&value)?;
    let model = req_str(obj, "model", "")?;
    if model.is_empty() {
        return Err(invalid_value("model", "must be a non-empty string"));
    }
    let mut messages = Vec::new();
    let instructions = opt_str(obj, "instructions", "")?;
    if let Some(text) = instructions.filter(|t| !t.is_empty()) {
        messages.push(Message::text(Role::System, text));
    }
    let instruction_messages = messages.len();
    match field(obj, "input") {
        None => return Err(missing("input")),
        Some(Value::String(s)) => messages.push(Message::text(Role::User, s.as_str())),
        Some(Value::Array(items)) => parse_items(items, &mut messages)?,
        Some(v) => return Err(invalid_type("input", "a string or an array of items", v)),
    }
    if messages.len() == instruction_messages {
        return Err(invalid_value("input", "must contain at least one item"));
    }

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
    let response_format = match field(obj, "text") {
        None => None,
        Some(v) => {
            let t = as_obj(v, "text")?;
            field(t, "format").map(parse_format).transpose()?
        }
    };
    if let Some(true) = opt_bool(obj, "background", "")? {
        return Err(invalid_value(
            "background",
            "background responses are not supported by this gateway",
        ));
    }
    let metadata = match field(obj, "metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(v) => return Err(invalid_type("metadata", "an object", v)),
    };
    let request = ChatRequest {
        model: model.to_owned(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: opt_bool(obj, "parallel_tool_calls", "")?,
        sampling: Sampling {
            temperature: opt_f32(obj, "temperature", "")?,
            top_p: opt_f32(obj, "top_p", "")?,
            max_tokens: opt_u32(obj, "max_output_tokens", "")?,
            ..Sampling::default()
        },
        response_format,
        stream: opt_bool(obj, "stream", "")?.unwrap_or(false),
        // A Response always reports usage, streamed or not.
        include_usage: true,
        user: opt_str(obj, "user", "")?.map(str::to_owned),
        metadata,
        extra: unknown_fields(obj, KNOWN_FIELDS),
        extra_dialect: Dialect::Responses,
    };
    let echo_keys = [
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "temperature",
        "top_p",
        "max_output_tokens",
        "metadata",
        "parallel_tool_calls",
        "user",
        "truncation",
    ];
    let echo = echo_keys
        .iter()
        .filter_map(|k| Some((k.to_string(), obj.get(*k)?.clone())))
        .collect();
    let previous_response_id = match opt_str(obj, "previous_response_id", "")? {
        Some("") => return Err(invalid_value("previous_response_id", "must not be empty")),
        other => other.map(str::to_owned),
    };
    let turn = Turn {
        id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
        created_at: now_unix(),
        model: model.to_owned(),
        store: opt_bool(obj, "store", "")?.unwrap_or(true),
        previous_response_id,
        echo,
        instruction_messages,
    };
    Ok((request, turn))
}

/// Input items, in order. Consecutive function calls form one assistant turn and
/// consecutive call outputs one user turn, as in chat.
fn parse_items(items: &[Value], out: &mut Vec<Message>) -> Result<(), GatewayError> {
    #[derive(PartialEq)]
    enum Last {
        Other,
        Call,
        Output,
    }
    let mut last = Last::Other;
    for (i, item) in items.iter().enumerate() {
        let path = format!("input[{i}]");
        let o = as_obj(item, &path)?;
        let kind = match opt_str(o, "type", &path)? {
            Some(k) => k,
            None if o.contains_key("role") => "message",
            None => return Err(missing(&at(&path, "type"))),
        };
        match kind {
            "message" => {
                out.push(parse_message(o, &path)?);
                last = Last::Other;
            }
            "function_call" => {
                let part = ContentPart::ToolCall {
                    id: req_str(o, "call_id", &path)?.to_owned(),
                    name: req_str(o, "name", &path)?.to_owned(),
                    arguments: req_str(o, "arguments", &path)?.to_owned(),
                };
                match out.last_mut() {
                    Some(m) if last == Last::Call || m.role == Role::Assistant => {
                        m.content.push(part)
                    }
                    _ => out.push(Message {
                        role: Role::Assistant,
                        content: vec![part],
                        name: None,
                    }),
                }
                last = Last::Call;
            }
            "function_call_output" => {
                let opath = at(&path, "output");
                let content = match field(o, "output") {
                    None => return Err(missing(&opath)),
                    Some(Value::String(s)) => vec![ContentPart::text(s.as_str())],
                    Some(Value::Array(parts)) => parse_parts(parts, &opath, Role::User)?,
                    Some(v) => return Err(invalid_type(&opath, "a string or an array", v)),
                };
                let part = ContentPart::ToolResult {
                    call_id: req_str(o, "call_id", &path)?.to_owned(),
                    content,
                    is_error: false,
                    cache_control: None,
                };
                match out.last_mut() {
                    Some(m) if last == Last::Output => m.content.push(part),
                    _ => out.push(Message {
                        role: Role::User,
                        content: vec![part],
                        name: None,
                    }),
                }
                last = Last::Output;
            }
            // Opaque chain-of-thought a client hands back; no translated backend reads it.
            "reasoning" => {}
            other => {
                return Err(invalid_value(
                    &at(&path, "type"),
                    format!(
                        "input item type '{other}' is not supported; use message, function_call or function_call_output"
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn parse_message(o: &Obj, path: &str) -> Result<Message, GatewayError> {
    let role = match req_str(o, "role", path)? {
        "user" => Role::User,
        "assistant" => Role::Assistant,
        "system" | "developer" => Role::System,
        other => {
            return Err(invalid_value(
                &at(path, "role"),
                format!("unknown role '{other}'; expected user, assistant, system or developer"),
            ))
        }
    };
    let cpath = at(path, "content");
    let content = match field(o, "content") {
        None => return Err(missing(&cpath)),
        Some(Value::String(s)) => vec![ContentPart::text(s.as_str())],
        Some(Value::Array(parts)) => parse_parts(parts, &cpath, role)?,
        Some(v) => return Err(invalid_type(&cpath, "a string or an array of parts", v)),
    };
    Ok(Message {
        role,
        content,
        name: None,
    })
}

fn parse_parts(parts: &[Value], path: &str, role: Role) -> Result<Vec<ContentPart>, GatewayError> {
    let mut out = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let ppath = format!("{path}[{i}]");
        let o = as_obj(p, &ppath)?;
        match req_str(o, "type", &ppath)? {
            "input_text" | "output_text" | "text" => {
                out.push(ContentPart::text(req_str(o, "text", &ppath)?))
            }
            "refusal" if role == Role::Assistant => {
                out.push(ContentPart::text(req_str(o, "refusal", &ppath)?))
            }
            "input_image" if role == Role::User => {
                if field(o, "file_id").is_some() {
                    return Err(invalid_value(
                        &at(&ppath, "file_id"),
                        "file inputs are not supported by this gateway; send image_url",
                    ));
                }
                let url = req_str(o, "image_url", &ppath)?;
                out.push(ContentPart::Image {
                    source: ImageSource::from_url(url),
                    cache_control: None,
                });
            }
            other => {
                return Err(invalid_value(
                    &at(&ppath, "type"),
                    format!("content part type '{other}' is not supported here"),
                ))
            }
        }
    }
    Ok(out)
}

fn parse_tool(v: &Value, path: &str) -> Result<Tool, GatewayError> {
    let t = as_obj(v, path)?;
    let kind = req_str(t, "type", path)?;
    if kind != "function" {
        return Err(invalid_value(
            &at(path, "type"),
            format!(
                "tool type '{kind}' is not supported by this gateway; only 'function' tools are"
            ),
        ));
    }
    let name = req_str(t, "name", path)?;
    if name.is_empty() {
        return Err(invalid_value(
            &at(path, "name"),
            "must be a non-empty string",
        ));
    }
    let parameters = match field(t, "parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(p) => return Err(invalid_type(&at(path, "parameters"), "an object", p)),
    };
    Ok(Tool {
        name: name.to_owned(),
        description: opt_str(t, "description", path)?.map(str::to_owned),
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
        Value::Object(o) => match req_str(o, "type", PATH)? {
            "function" => Ok(ToolChoice::Tool {
                name: req_str(o, "name", PATH)?.to_owned(),
            }),
            other => Err(invalid_value(
                &at(PATH, "type"),
                format!("tool_choice type '{other}' is not supported; expected 'function'"),
            )),
        },
        v => Err(invalid_type(PATH, "a string or an object", v)),
    }
}

/// `text.format` → the canonical response format. A JSON schema keeps chat's shape
/// (`{name, schema, strict}`), so every backend reads it the same way.
fn parse_format(v: &Value) -> Result<ResponseFormat, GatewayError> {
    const PATH: &str = "text.format";
    let o = as_obj(v, PATH)?;
    match req_str(o, "type", PATH)? {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let schema = match field(o, "schema") {
                None => return Err(missing(&at(PATH, "schema"))),
                Some(s @ Value::Object(_)) => s.clone(),
                Some(s) => return Err(invalid_type(&at(PATH, "schema"), "an object", s)),
            };
            let mut out = Map::new();
            out.insert(
                "name".into(),
                json!(opt_str(o, "name", PATH)?.unwrap_or("response")),
            );
            out.insert("schema".into(), schema);
            if let Some(strict) = opt_bool(o, "strict", PATH)? {
                out.insert("strict".into(), json!(strict));
            }
            Ok(ResponseFormat::JsonSchema {
                schema: Value::Object(out),
            })
        }
        other => Err(invalid_value(
            &at(PATH, "type"),
            format!("'{other}' is not one of text, json_object, json_schema"),
        )),
    }
}

// ---------------------------------------------------------------------------------
// Answers.
// ---------------------------------------------------------------------------------

/// Output item ids derive from the response id and the part's position, so a stored
/// Response and its stream name items alike.
fn item_id(turn: &Turn, prefix: &str, index: usize) -> String {
    let tail = turn.id.strip_prefix("resp_").unwrap_or(&turn.id);
    format!("{prefix}_{tail}_{index}")
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": u64::from(u.input_tokens) + u64::from(u.output_tokens),
    })
}

fn text_item(turn: &Turn, index: usize, text: &str, status: &str) -> Value {
    json!({
        "id": item_id(turn, "msg", index),
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    })
}

fn call_item(
    turn: &Turn,
    index: usize,
    call_id: &str,
    name: &str,
    arguments: &str,
    status: &str,
) -> Value {
    json!({
        "id": item_id(turn, "fc", index),
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// `status` and `incomplete_details` for a finished answer.
fn completion(stop: &StopReason) -> (&'static str, Value) {
    match stop {
        StopReason::MaxTokens => ("incomplete", json!({"reason": "max_output_tokens"})),
        StopReason::ContentFilter => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// The Response object around `output`, echoing the request's settings.
fn envelope(
    turn: &Turn,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Option<&Usage>,
    incomplete: Value,
) -> Value {
    let echo = |k: &str, default: Value| turn.echo.get(k).cloned().unwrap_or(default);
    json!({
        "id": turn.id,
        "object": "response",
        "created_at": turn.created_at,
        "status": status,
        "error": null,
        "incomplete_details": incomplete,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "model": model,
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", json!(true)),
        "previous_response_id": turn.previous_response_id,
        "reasoning": {"effort": null, "summary": null},
        "store": turn.store,
        "temperature": echo("temperature", json!(1.0)),
        "text": echo("text", json!({"format": {"type": "text"}})),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_p": echo("top_p", json!(1.0)),
        "truncation": echo("truncation", json!("disabled")),
        "usage": usage.map(usage_json),
        "user": echo("user", Value::Null),
        "metadata": echo("metadata", json!({})),
    })
}

/// The output items of a complete answer.
fn output_items(turn: &Turn, resp: &ChatResponse) -> Vec<Value> {
    resp.content
        .iter()
        .enumerate()
        .filter_map(|(i, part)| match part {
            ContentPart::Text { text, .. } => Some(text_item(turn, i, text, "completed")),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(call_item(turn, i, id, name, arguments, "completed")),
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Thinking { .. }
            | ContentPart::RedactedThinking { .. } => None,
        })
        .collect()
}

pub fn render_response(turn: &Turn, resp: &ChatResponse) -> Value {
    let (status, incomplete) = completion(&resp.stop_reason);
    envelope(
        turn,
        &resp.model,
        status,
        output_items(turn, resp),
        Some(&resp.usage),
        incomplete,
    )
}

/// Errors have chat's shape (`{"error": {message, type, param, code}}`).
pub fn render_error(err: &GatewayError) -> Value {
    super::openai::render_error(err)
}

/// `GET`/`DELETE /v1/responses/{id}` for an id this caller has not stored.
pub fn not_found_body(id: &str) -> Value {
    json!({"error": {
        "message": format!("No response found with id '{id}'."),
        "type": "invalid_request_error",
        "param": null,
        "code": null,
    }})
}

/// The part being streamed, as the events that close it need it.
enum Open {
    Text {
        index: usize,
        text: String,
    },
    Call {
        index: usize,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Canonical stream events → Responses server-sent events (`event: response.…`), each
/// with its `sequence_number`.
pub struct StreamEncoder {
    turn: Turn,
    model: String,
    seq: u64,
    open: Option<Open>,
    /// Finished output items, for `response.completed`.
    done: Vec<Value>,
    usage: Usage,
    finished: bool,
    /// Canonical indices of (Anthropic) thinking parts, which have no Responses item:
    /// output indices skip them so they stay dense, as clients index by them.
    thinking: Vec<u32>,
}

impl StreamEncoder {
    pub fn new(turn: Turn) -> Self {
        StreamEncoder {
            model: turn.model.clone(),
            turn,
            seq: 0,
            open: None,
            done: Vec::new(),
            usage: Usage::default(),
            finished: false,
            thinking: Vec::new(),
        }
    }

    fn output_index(&self, canonical: u32) -> usize {
        let skipped = self.thinking.iter().filter(|&&t| t < canonical).count();
        canonical as usize - skipped
    }

    fn skip_thinking(&mut self, canonical: u32) {
        if !self.thinking.contains(&canonical) {
            self.thinking.push(canonical);
        }
    }

    fn emit(&mut self, name: &str, mut data: Value, out: &mut Vec<u8>) {
        if let Some(o) = data.as_object_mut() {
            o.insert("type".into(), json!(name));
            o.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        let body = serde_json::to_string(&data).unwrap_or_default();
        write_event(out, Some(name), &body);
    }

    fn close_open(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            None => {}
            Some(Open::Text { index, text }) => {
                let item_id = item_id(&self.turn, "msg", index);
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "text": text}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": part}),
                    out,
                );
                let item = text_item(&self.turn, index, &text, "completed");
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.done.push(item);
            }
            Some(Open::Call {
                index,
                call_id,
                name,
                arguments,
            }) => {
                let item_id = item_id(&self.turn, "fc", index);
                self.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "arguments": arguments}),
                    out,
                );
                let item = call_item(&self.turn, index, &call_id, &name, &arguments, "completed");
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.done.push(item);
            }
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start { model, usage, .. } => {
                self.model = model.clone();
                if let Some(u) = usage {
                    self.usage = *u;
                }
                let r = envelope(
                    &self.turn,
                    &self.model,
                    "in_progress",
                    vec![],
                    None,
                    Value::Null,
                );
                self.emit("response.created", json!({"response": r.clone()}), out);
                self.emit("response.in_progress", json!({"response": r}), out);
            }
            StreamEvent::TextDelta { index, text } => {
                let index = self.output_index(*index);
                if !matches!(&self.open, Some(Open::Text { index: i, .. }) if *i == index) {
                    self.close_open(out);
                    let item_id = item_id(&self.turn, "msg", index);
                    self.emit(
                        "response.output_item.added",
                        json!({"output_index": index, "item": {"id": item_id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}}),
                        out,
                    );
                    self.emit(
                        "response.content_part.added",
                        json!({"item_id": item_id, "output_index": index, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}),
                        out,
                    );
                    self.open = Some(Open::Text {
                        index,
                        text: String::new(),
                    });
                }
                if let Some(Open::Text { text: acc, .. }) = &mut self.open {
                    acc.push_str(text);
                }
                let item_id = item_id(&self.turn, "msg", index);
                self.emit(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": index, "content_index": 0, "delta": text}),
                    out,
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.close_open(out);
                let index = self.output_index(*index);
                let item = call_item(&self.turn, index, id, name, "", "in_progress");
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                    out,
                );
                self.open = Some(Open::Call {
                    index,
                    call_id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                });
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let index = self.output_index(*index);
                if let Some(Open::Call {
                    index: i,
                    arguments: acc,
                    ..
                }) = &mut self.open
                {
                    if *i == index {
                        acc.push_str(arguments);
                    }
                }
                let item_id = item_id(&self.turn, "fc", index);
                self.emit(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": index, "delta": arguments}),
                    out,
                );
            }
            StreamEvent::ThinkingDelta { index, .. }
            | StreamEvent::ThinkingSignature { index, .. }
            | StreamEvent::RedactedThinking { index, .. } => self.skip_thinking(*index),
            StreamEvent::Ping => {}
            StreamEvent::Finish { stop_reason, usage } => {
                self.close_open(out);
                if let Some(u) = usage {
                    self.usage = *u;
                }
                let (status, incomplete) = completion(stop_reason);
                let output = std::mem::take(&mut self.done);
                let r = envelope(
                    &self.turn,
                    &self.model,
                    status,
                    output,
                    Some(&self.usage),
                    incomplete,
                );
                let name = if status == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                self.emit(name, json!({"response": r}), out);
                self.finished = true;
            }
        }
    }

    /// A failure after the stream started: `response.failed` with the error, as the
    /// SDKs expect (they raise on it).
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        let body = render_error(err);
        let e = body.get("error").cloned().unwrap_or(Value::Null);
        let code = e
            .get("code")
            .and_then(Value::as_str)
            .or_else(|| e.get("type").and_then(Value::as_str))
            .unwrap_or("server_error")
            .to_string();
        let message = err.to_string();
        let mut r = envelope(
            &self.turn,
            &self.model,
            "failed",
            std::mem::take(&mut self.done),
            None,
            Value::Null,
        );
        if let Some(o) = r.as_object_mut() {
            o.insert("error".into(), json!({"code": code, "message": message}));
        }
        self.emit("response.failed", json!({"response": r}), out);
        self.finished = true;
    }

    /// End of stream; a stream that ended without `Finish` was already reported.
    pub fn finish(&mut self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<(ChatRequest, Turn), GatewayError> {
        parse_request(&serde_json::to_vec(&v).expect("json"))
    }

    #[test]
    fn string_input_and_instructions() {
        let (req, turn) =
            parse(json!({"model": "gpt-4o", "input": "hi", "instructions": "Be terse."}))
                .expect("parses");
        assert_eq!(req.messages.len(), 2);
        assert_eq!(req.messages[0].role, Role::System);
        assert_eq!(req.messages[1], Message::text(Role::User, "hi"));
        assert_eq!(turn.instruction_messages, 1);
        assert!(turn.store, "store defaults to true");
        assert!(turn.id.starts_with("resp_"));
    }

    #[test]
    fn items_with_calls_and_outputs_become_chat_turns() {
        let (req, _) = parse(json!({"model": "m", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "22"},
            {"type": "function_call_output", "call_id": "c2", "output": "23"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ]}))
        .expect("parses");
        assert_eq!(req.messages.len(), 3);
        assert_eq!(req.messages[1].role, Role::Assistant);
        assert_eq!(req.messages[1].content.len(), 2);
        assert_eq!(req.messages[2].role, Role::User);
        assert_eq!(req.messages[2].content.len(), 2);
    }

    #[test]
    fn json_schema_format_keeps_chats_shape() {
        let (req, _) = parse(json!({"model": "m", "input": "x", "text": {"format": {
            "type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": true}}}))
        .expect("parses");
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                schema: json!({"name": "w", "schema": {"type": "object"}, "strict": true})
            })
        );
    }

    #[test]
    fn unsupported_inputs_are_clear_400s() {
        for (body, needle) in [
            (json!({"model": "m"}), "input"),
            (json!({"model": "m", "input": []}), "at least one"),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "web_search",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}),
                "item_reference",
            ),
            (json!({"model": "m", "input": 3}), "input"),
            (
                json!({"model": "m", "input": "x", "previous_response_id": ""}),
                "previous_response_id",
            ),
        ] {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(err.status(), 400);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    fn turn() -> Turn {
        parse(json!({"model": "gpt-4o", "input": "x", "temperature": 0.2}))
            .expect("parses")
            .1
    }

    #[test]
    fn response_object_has_text_and_calls_and_usage() {
        let t = turn();
        let resp = ChatResponse {
            id: "chatcmpl-1".into(),
            model: "gpt-4o-2024".into(),
            content: vec![
                ContentPart::text("Hello"),
                ContentPart::ToolCall {
                    id: "call_1".into(),
                    name: "w".into(),
                    arguments: "{\"a\":1}".into(),
                },
            ],
            stop_reason: StopReason::ToolUse,
            usage: Usage {
                input_tokens: 5,
                output_tokens: 7,
                ..Usage::default()
            },
            created: 0,
        };
        let v = render_response(&t, &resp);
        assert_eq!(v["id"], json!(t.id));
        assert_eq!(v["object"], "response");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["temperature"], json!(0.2), "echoed as sent");
        assert_eq!(v["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(v["output"][1]["type"], "function_call");
        assert_eq!(v["output"][1]["call_id"], "call_1");
        assert_eq!(v["usage"]["total_tokens"], 12);
    }

    #[test]
    fn anthropic_thinking_leaves_no_gap_in_output_indices() {
        let mut enc = StreamEncoder::new(turn());
        let mut out = Vec::new();
        for ev in [
            StreamEvent::Start {
                id: "x".into(),
                model: "claude-sonnet-4-5".into(),
                created: 0,
                usage: None,
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                thinking: "hmm".into(),
            },
            StreamEvent::ThinkingSignature {
                index: 0,
                signature: "sig".into(),
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "Hi".into(),
            },
            StreamEvent::RedactedThinking {
                index: 2,
                data: "opaque".into(),
            },
            StreamEvent::ToolCallStart {
                index: 3,
                id: "call_1".into(),
                name: "w".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: None,
            },
        ] {
            enc.encode(&ev, &mut out);
        }
        let text = String::from_utf8(out).expect("utf8");
        assert!(!text.contains("hmm") && !text.contains("sig") && !text.contains("opaque"));
        let indices: Vec<u64> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v.get("output_index").and_then(Value::as_u64))
            .collect();
        assert!(indices.contains(&0) && indices.contains(&1), "{indices:?}");
        assert!(indices.iter().all(|&i| i <= 1), "{indices:?}");
    }

    #[test]
    fn stream_events_are_typed_and_numbered() {
        let mut enc = StreamEncoder::new(turn());
        let mut out = Vec::new();
        for ev in [
            StreamEvent::Start {
                id: "x".into(),
                model: "gpt-4o".into(),
                created: 0,
                usage: None,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hel".into(),
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "lo".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_1".into(),
                name: "w".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{}".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(Usage {
                    input_tokens: 1,
                    output_tokens: 2,
                    ..Usage::default()
                }),
            },
        ] {
            enc.encode(&ev, &mut out);
        }
        let text = String::from_utf8(out).expect("utf8");
        let names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let last: Value = serde_json::from_str(
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .next_back()
                .expect("data"),
        )
        .expect("json");
        assert_eq!(last["sequence_number"], 13);
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(last["response"]["usage"]["output_tokens"], 2);
    }
}
