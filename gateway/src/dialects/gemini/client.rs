//! The client side: requests to canonical, answers and streams to Gemini's shapes.

use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::json::{
    as_obj, at, body_object, invalid_type, invalid_value, missing, opt_array, parse_json_body,
    req_str, Obj,
};
use crate::dialects::sse::write_event;

/// What the URL says: the model and whether to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub model: String,
    pub stream: bool,
}

impl Call {
    /// `gemini-2.0-flash:generateContent` or `…:streamGenerateContent` (the last path
    /// segment); anything else is not a Gemini model call.
    pub fn from_segment(segment: &str) -> Result<Call, GatewayError> {
        let (model, method) = segment.rsplit_once(':').ok_or_else(|| {
            GatewayError::NotFound(format!(
                "no route for models/{segment}: expected models/MODEL:generateContent or :streamGenerateContent"
            ))
        })?;
        let stream = match method {
            "generateContent" => false,
            "streamGenerateContent" => true,
            other => {
                return Err(GatewayError::NotFound(format!(
                    "method `{other}` is not served; use generateContent or streamGenerateContent"
                )))
            }
        };
        if model.is_empty() {
            return Err(invalid_value("model", "must be a non-empty model name"));
        }
        Ok(Call {
            model: model.to_owned(),
            stream,
        })
    }
}

/// A field in camelCase or snake_case.
fn get<'a>(o: &'a Obj, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel)
        .or_else(|| o.get(snake))
        .filter(|v| !v.is_null())
}

fn opt_num(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<Option<f64>, GatewayError> {
    match get(o, camel, snake) {
        None => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| invalid_type(&at(path, camel), "a number", v)),
    }
}

fn opt_count(o: &Obj, camel: &str, snake: &str, path: &str) -> Result<Option<u32>, GatewayError> {
    match get(o, camel, snake) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| invalid_type(&at(path, camel), "a non-negative integer", v)),
    }
}

pub fn parse_request(call: &Call, body: &[u8]) -> Result<ChatRequest, GatewayError> {
    let value = parse_json_body(body)?;
    let obj = body_object(&value)?;
    let mut messages = Vec::new();
    if let Some(sys) = get(obj, "systemInstruction", "system_instruction") {
        let text = match sys {
            Value::String(s) => s.clone(),
            Value::Object(o) => texts_of(o, "systemInstruction")?,
            v => return Err(invalid_type("systemInstruction", "a Content object", v)),
        };
        if !text.is_empty() {
            messages.push(Message::text(Role::System, text));
        }
    }
    let contents = match obj.get("contents") {
        None | Some(Value::Null) => return Err(missing("contents")),
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(invalid_value(
                "contents",
                "must contain at least one Content",
            ))
        }
        Some(Value::Array(a)) => a,
        Some(v) => return Err(invalid_type("contents", "an array of Content", v)),
    };
    let mut calls = CallIds::default();
    for (i, c) in contents.iter().enumerate() {
        let path = format!("contents[{i}]");
        messages.push(parse_content(as_obj(c, &path)?, &path, &mut calls)?);
    }

    let mut tools = Vec::new();
    if let Some(items) = opt_array(obj, "tools", "")? {
        for (i, t) in items.iter().enumerate() {
            let path = format!("tools[{i}]");
            let t = as_obj(t, &path)?;
            let Some(decls) = get(t, "functionDeclarations", "function_declarations") else {
                let kind = t.keys().next().map_or("(empty)", String::as_str);
                return Err(invalid_value(
                    &path,
                    format!("tool `{kind}` is not supported by this gateway; only functionDeclarations are"),
                ));
            };
            let decls = decls.as_array().ok_or_else(|| {
                invalid_type(&at(&path, "functionDeclarations"), "an array", decls)
            })?;
            for (j, d) in decls.iter().enumerate() {
                tools.push(parse_declaration(
                    d,
                    &format!("{path}.functionDeclarations[{j}]"),
                )?);
            }
        }
    }
    let tool_choice = match get(obj, "toolConfig", "tool_config") {
        None => None,
        Some(v) => parse_tool_config(as_obj(v, "toolConfig")?)?,
    };
    if get(obj, "cachedContent", "cached_content").is_some() {
        return Err(invalid_value(
            "cachedContent",
            "cached contents are not supported by this gateway",
        ));
    }

    let mut sampling = Sampling::default();
    let mut response_format = None;
    if let Some(v) = get(obj, "generationConfig", "generation_config") {
        const PATH: &str = "generationConfig";
        let g = as_obj(v, PATH)?;
        sampling.temperature = opt_num(g, "temperature", "temperature", PATH)?.map(|n| n as f32);
        sampling.top_p = opt_num(g, "topP", "top_p", PATH)?.map(|n| n as f32);
        sampling.top_k = opt_count(g, "topK", "top_k", PATH)?;
        sampling.max_tokens = opt_count(g, "maxOutputTokens", "max_output_tokens", PATH)?;
        sampling.seed = opt_count(g, "seed", "seed", PATH)?.map(u64::from);
        sampling.presence_penalty =
            opt_num(g, "presencePenalty", "presence_penalty", PATH)?.map(|n| n as f32);
        sampling.frequency_penalty =
            opt_num(g, "frequencyPenalty", "frequency_penalty", PATH)?.map(|n| n as f32);
        if let Some(stops) = get(g, "stopSequences", "stop_sequences") {
            let list = stops
                .as_array()
                .ok_or_else(|| invalid_type("generationConfig.stopSequences", "an array", stops))?;
            for s in list {
                let s = s.as_str().ok_or_else(|| {
                    invalid_type("generationConfig.stopSequences[]", "a string", s)
                })?;
                sampling.stop.push(s.to_owned());
            }
        }
        if let Some(n) = opt_count(g, "candidateCount", "candidate_count", PATH)? {
            if n != 1 {
                return Err(invalid_value(
                    "generationConfig.candidateCount",
                    "only one candidate is supported",
                ));
            }
        }
        response_format = parse_output_format(g)?;
    }

    Ok(ChatRequest {
        model: call.model.clone(),
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: None,
        sampling,
        response_format,
        stream: call.stream,
        include_usage: true,
        user: None,
        metadata: None,
        extra: Map::new(),
        extra_dialect: Dialect::Gemini,
    })
}

/// The text parts of a Content, joined (system instructions).
fn texts_of(o: &Obj, path: &str) -> Result<String, GatewayError> {
    let parts = match o.get("parts") {
        None => return Err(missing(&at(path, "parts"))),
        Some(Value::Array(p)) => p,
        Some(v) => return Err(invalid_type(&at(path, "parts"), "an array of Part", v)),
    };
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        let ppath = format!("{path}.parts[{i}]");
        let p = as_obj(p, &ppath)?;
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(req_str(p, "text", &ppath)?);
    }
    Ok(out)
}

/// Gemini's function calls may come without ids: calls get `call_<n>` ids in order,
/// and a response without an id answers the latest unanswered call of its name.
#[derive(Default)]
struct CallIds {
    next: usize,
    open: Vec<(String, String)>,
}

impl CallIds {
    fn call(&mut self, name: &str, id: Option<&str>) -> String {
        let id = id.map_or_else(
            || {
                self.next += 1;
                format!("call_{}", self.next)
            },
            str::to_owned,
        );
        self.open.push((name.to_owned(), id.clone()));
        id
    }

    fn response(&mut self, name: &str, id: Option<&str>) -> String {
        if let Some(id) = id {
            self.open.retain(|(_, open)| open != id);
            return id.to_owned();
        }
        match self.open.iter().rposition(|(n, _)| n == name) {
            Some(i) => self.open.remove(i).1,
            None => {
                self.next += 1;
                format!("call_{}", self.next)
            }
        }
    }
}

fn parse_content(o: &Obj, path: &str, calls: &mut CallIds) -> Result<Message, GatewayError> {
    let role = match o.get("role").and_then(Value::as_str) {
        None | Some("user") | Some("function") | Some("tool") => Role::User,
        Some("model") => Role::Assistant,
        Some(other) => {
            return Err(invalid_value(
                &at(path, "role"),
                format!("unknown role '{other}'; expected user or model"),
            ))
        }
    };
    let parts = match o.get("parts") {
        None => return Err(missing(&at(path, "parts"))),
        Some(Value::Array(p)) => p,
        Some(v) => return Err(invalid_type(&at(path, "parts"), "an array of Part", v)),
    };
    let mut content = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let ppath = format!("{path}.parts[{i}]");
        let p = as_obj(p, &ppath)?;
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            // A model's thought summary sent back: not an input any backend reads.
            continue;
        }
        if let Some(t) = p.get("text") {
            let t = t
                .as_str()
                .ok_or_else(|| invalid_type(&at(&ppath, "text"), "a string", t))?;
            content.push(ContentPart::text(t));
        } else if let Some(d) = get(p, "inlineData", "inline_data") {
            let dpath = at(&ppath, "inlineData");
            let d = as_obj(d, &dpath)?;
            let mime = get(d, "mimeType", "mime_type")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&at(&dpath, "mimeType")))?;
            if !mime.starts_with("image/") {
                return Err(invalid_value(
                    &at(&dpath, "mimeType"),
                    format!("only images are supported inline, got {mime}"),
                ));
            }
            content.push(ContentPart::Image {
                source: ImageSource::Base64 {
                    media_type: mime.to_owned(),
                    data: req_str(d, "data", &dpath)?.to_owned(),
                },
                cache_control: None,
            });
        } else if let Some(f) = get(p, "fileData", "file_data") {
            let fpath = at(&ppath, "fileData");
            let f = as_obj(f, &fpath)?;
            let uri = get(f, "fileUri", "file_uri")
                .and_then(Value::as_str)
                .ok_or_else(|| missing(&at(&fpath, "fileUri")))?;
            content.push(ContentPart::Image {
                source: ImageSource::Url {
                    url: uri.to_owned(),
                },
                cache_control: None,
            });
        } else if let Some(fc) = get(p, "functionCall", "function_call") {
            let cpath = at(&ppath, "functionCall");
            let fc = as_obj(fc, &cpath)?;
            let name = req_str(fc, "name", &cpath)?;
            let args = fc.get("args").cloned().unwrap_or_else(|| json!({}));
            let id = calls.call(name, fc.get("id").and_then(Value::as_str));
            content.push(ContentPart::ToolCall {
                id,
                name: name.to_owned(),
                arguments: args.to_string(),
            });
        } else if let Some(fr) = get(p, "functionResponse", "function_response") {
            let rpath = at(&ppath, "functionResponse");
            let fr = as_obj(fr, &rpath)?;
            let name = req_str(fr, "name", &rpath)?;
            let response = fr.get("response").cloned().unwrap_or(Value::Null);
            // `{"output": "..."}` / `{"result": "..."}` carry plain text; anything else
            // goes as its JSON.
            let text = ["output", "result", "content"]
                .iter()
                .find_map(|k| response.get(*k).and_then(Value::as_str))
                .map_or_else(|| response.to_string(), str::to_owned);
            content.push(ContentPart::ToolResult {
                call_id: calls.response(name, fr.get("id").and_then(Value::as_str)),
                content: vec![ContentPart::text(text)],
                is_error: false,
                cache_control: None,
            });
        } else {
            let kind = p.keys().next().map_or("(empty)", String::as_str);
            return Err(invalid_value(
                &ppath,
                format!("part `{kind}` is not supported; use text, inlineData, fileData, functionCall or functionResponse"),
            ));
        }
    }
    Ok(Message {
        role,
        content,
        name: None,
    })
}

fn parse_declaration(v: &Value, path: &str) -> Result<Tool, GatewayError> {
    let d = as_obj(v, path)?;
    let name = req_str(d, "name", path)?;
    if name.is_empty() {
        return Err(invalid_value(
            &at(path, "name"),
            "must be a non-empty string",
        ));
    }
    let parameters = if let Some(p) = get(d, "parametersJsonSchema", "parameters_json_schema") {
        p.clone()
    } else if let Some(p) = d.get("parameters").filter(|p| !p.is_null()) {
        openapi_to_json_schema(p)
    } else {
        json!({"type": "object", "properties": {}})
    };
    if !parameters.is_object() {
        return Err(invalid_type(
            &at(path, "parameters"),
            "an object",
            &parameters,
        ));
    }
    Ok(Tool {
        name: name.to_owned(),
        description: d
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        parameters,
        cache_control: None,
    })
}

/// Gemini's `Schema` (an OpenAPI 3 subset with upper-case type names such as `OBJECT`)
/// as JSON Schema, which every backend reads.
fn openapi_to_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("type", Value::String(t)) => Value::String(t.to_ascii_lowercase()),
                        ("nullable", b) => b.clone(),
                        _ => openapi_to_json_schema(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(openapi_to_json_schema).collect()),
        other => other.clone(),
    }
}

fn parse_tool_config(o: &Obj) -> Result<Option<ToolChoice>, GatewayError> {
    let Some(f) = get(o, "functionCallingConfig", "function_calling_config") else {
        return Ok(None);
    };
    let f = as_obj(f, "toolConfig.functionCallingConfig")?;
    let allowed: Vec<&str> = get(f, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match f.get("mode").and_then(Value::as_str).unwrap_or("AUTO") {
        "AUTO" | "MODE_UNSPECIFIED" | "VALIDATED" => Ok(Some(ToolChoice::Auto)),
        "NONE" => Ok(Some(ToolChoice::None)),
        "ANY" => Ok(Some(match allowed.as_slice() {
            [one] => ToolChoice::Tool {
                name: (*one).to_owned(),
            },
            _ => ToolChoice::Required,
        })),
        other => Err(invalid_value(
            "toolConfig.functionCallingConfig.mode",
            format!("'{other}' is not one of AUTO, ANY, NONE"),
        )),
    }
}

fn parse_output_format(g: &Obj) -> Result<Option<ResponseFormat>, GatewayError> {
    let mime = get(g, "responseMimeType", "response_mime_type").and_then(Value::as_str);
    let schema = get(g, "responseJsonSchema", "response_json_schema")
        .cloned()
        .or_else(|| get(g, "responseSchema", "response_schema").map(openapi_to_json_schema));
    match (mime, schema) {
        (_, Some(schema)) => Ok(Some(ResponseFormat::JsonSchema {
            schema: json!({"name": "response", "schema": schema}),
        })),
        (Some("application/json"), None) => Ok(Some(ResponseFormat::JsonObject)),
        (None | Some("text/plain"), None) => Ok(None),
        (Some(other), None) => Err(invalid_value(
            "generationConfig.responseMimeType",
            format!("'{other}' is not supported; use text/plain or application/json"),
        )),
    }
}

// ---------------------------------------------------------------------------------
// Answers.
// ---------------------------------------------------------------------------------

fn finish_reason(stop: &StopReason) -> &'static str {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence { .. } | StopReason::ToolUse => "STOP",
        StopReason::MaxTokens => "MAX_TOKENS",
        StopReason::ContentFilter => "SAFETY",
    }
}

fn usage_json(u: &Usage) -> Value {
    let mut m = json!({
        "promptTokenCount": u.input_tokens,
        "candidatesTokenCount": u.output_tokens,
        "totalTokenCount": u64::from(u.input_tokens) + u64::from(u.output_tokens),
    });
    if u.cache_read_input_tokens > 0 {
        m["cachedContentTokenCount"] = json!(u.cache_read_input_tokens);
    }
    m
}

/// A function call part; arguments that are not a JSON object (a model's malformed
/// output) are passed as `{"_raw": TEXT}` rather than dropped.
pub(super) fn call_part(id: &str, name: &str, arguments: &str) -> Value {
    let args = match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({"_raw": arguments}),
    };
    json!({"functionCall": {"id": id, "name": name, "args": args}})
}

pub fn render_response(resp: &ChatResponse) -> Value {
    let parts: Vec<Value> = resp
        .content
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(json!({"text": text})),
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => Some(call_part(id, name, arguments)),
            // Gemini's own thoughts carry no Anthropic signature: nothing to map to.
            ContentPart::Image { .. }
            | ContentPart::ToolResult { .. }
            | ContentPart::Thinking { .. }
            | ContentPart::RedactedThinking { .. } => None,
        })
        .collect();
    json!({
        "candidates": [{
            "content": {"role": "model", "parts": parts},
            "finishReason": finish_reason(&resp.stop_reason),
            "index": 0,
        }],
        "usageMetadata": usage_json(&resp.usage),
        "modelVersion": resp.model,
        "responseId": resp.id,
    })
}

/// Google's error shape: `{"error": {"code", "message", "status"}}`.
pub fn render_error(err: &GatewayError) -> Value {
    let code = err.status();
    let status = match code {
        400 | 413 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        502 | 503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    json!({"error": {"code": code, "message": err.to_string(), "status": status}})
}

/// Canonical stream events → `data: <GenerateContentResponse>` chunks. Text goes out
/// as it arrives; a function call goes out whole once its arguments are complete (Gemini
/// sends calls as complete objects); the last chunk carries the finish reason and usage.
pub struct StreamEncoder {
    id: String,
    model: String,
    call: Option<(String, String, String)>,
    usage: Option<Usage>,
}

impl Default for StreamEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamEncoder {
    pub fn new() -> Self {
        StreamEncoder {
            id: String::new(),
            model: String::new(),
            call: None,
            usage: None,
        }
    }

    fn chunk(&self, parts: Vec<Value>, finish: Option<&StopReason>, out: &mut Vec<u8>) {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(stop) = finish {
            candidate["finishReason"] = json!(finish_reason(stop));
        }
        let mut body = json!({
            "candidates": [candidate],
            "modelVersion": self.model,
            "responseId": self.id,
        });
        if finish.is_some() {
            if let Some(u) = &self.usage {
                body["usageMetadata"] = usage_json(u);
            }
        }
        write_event(out, None, &body.to_string());
    }

    fn flush_call(&mut self, out: &mut Vec<u8>) {
        if let Some((id, name, args)) = self.call.take() {
            self.chunk(vec![call_part(&id, &name, &args)], None, out);
        }
    }

    pub fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match ev {
            StreamEvent::Start {
                id, model, usage, ..
            } => {
                self.id = id.clone();
                self.model = model.clone();
                self.usage = *usage;
            }
            StreamEvent::TextDelta { text, .. } => {
                self.flush_call(out);
                if !text.is_empty() {
                    self.chunk(vec![json!({"text": text})], None, out);
                }
            }
            StreamEvent::ToolCallStart { id, name, .. } => {
                self.flush_call(out);
                self.call = Some((id.clone(), name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta { arguments, .. } => {
                if let Some((_, _, args)) = &mut self.call {
                    args.push_str(arguments);
                }
            }
            StreamEvent::Ping
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::ThinkingSignature { .. }
            | StreamEvent::RedactedThinking { .. } => {}
            StreamEvent::Finish { stop_reason, usage } => {
                self.flush_call(out);
                if let Some(u) = usage {
                    self.usage = Some(*u);
                }
                self.chunk(Vec::new(), Some(stop_reason), out);
            }
        }
    }

    /// A failure after the stream started: one chunk with Google's error object (the
    /// SDKs raise on it).
    pub fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        write_event(out, None, &render_error(err).to_string());
    }

    pub fn finish(&mut self, _out: &mut Vec<u8>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(stream: bool) -> Call {
        Call {
            model: "gemini-2.0-flash".into(),
            stream,
        }
    }

    fn parse(v: Value) -> Result<ChatRequest, GatewayError> {
        parse_request(&call(false), &serde_json::to_vec(&v).expect("json"))
    }

    #[test]
    fn path_segments() {
        assert_eq!(
            Call::from_segment("gemini-2.0-flash:streamGenerateContent").expect("ok"),
            call(true)
        );
        assert_eq!(
            Call::from_segment("m:countTokens")
                .expect_err("no")
                .status(),
            404
        );
        assert_eq!(Call::from_segment("m").expect_err("no").status(), 404);
    }

    #[test]
    fn contents_system_and_config() {
        let req = parse(json!({
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"temperature": 0.5, "maxOutputTokens": 20, "stopSequences": ["END"],
                "responseMimeType": "application/json",
                "responseSchema": {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}}}
        }))
        .expect("parses");
        assert_eq!(req.messages[0], Message::text(Role::System, "Be terse."));
        assert_eq!(req.messages[1], Message::text(Role::User, "hi"));
        assert_eq!(req.sampling.max_tokens, Some(20));
        assert_eq!(req.sampling.stop, ["END"]);
        assert_eq!(
            req.response_format,
            Some(ResponseFormat::JsonSchema {
                schema: json!({"name": "response", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}})
            })
        );
    }

    #[test]
    fn function_calls_without_ids_are_paired_by_name() {
        let req = parse(json!({"contents": [
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "w", "args": {"city": "Paris"}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "w", "response": {"output": "22"}}}]},
        ], "tools": [{"functionDeclarations": [{"name": "w", "parameters": {"type": "OBJECT"}}]}],
           "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["w"]}}}))
        .expect("parses");
        let ContentPart::ToolCall { id, arguments, .. } = &req.messages[1].content[0] else {
            panic!("a call")
        };
        let ContentPart::ToolResult {
            call_id, content, ..
        } = &req.messages[2].content[0]
        else {
            panic!("a result")
        };
        assert_eq!(id, call_id);
        assert_eq!(arguments, r#"{"city":"Paris"}"#);
        assert_eq!(content, &vec![ContentPart::text("22")]);
        assert_eq!(req.tools[0].parameters, json!({"type": "object"}));
        assert_eq!(req.tool_choice, Some(ToolChoice::Tool { name: "w".into() }));
    }

    #[test]
    fn unsupported_inputs_are_clear_400s() {
        for (body, needle) in [
            (json!({}), "contents"),
            (json!({"contents": []}), "at least one"),
            (
                json!({"contents": [{"parts": [{"executableCode": {}}]}]}),
                "executableCode",
            ),
            (
                json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"googleSearch": {}}]}),
                "googleSearch",
            ),
            (
                json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}),
                "candidate",
            ),
        ] {
            let err = parse(body.clone()).expect_err(&body.to_string());
            assert_eq!(err.status(), 400, "{body}");
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }

    #[test]
    fn response_and_error_shapes() {
        let resp = ChatResponse {
            id: "r1".into(),
            model: "gpt-4o".into(),
            content: vec![
                ContentPart::text("Hi"),
                ContentPart::ToolCall {
                    id: "c1".into(),
                    name: "w".into(),
                    arguments: r#"{"a":1}"#.into(),
                },
            ],
            stop_reason: StopReason::ToolUse,
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            },
            created: 0,
        };
        let v = render_response(&resp);
        assert_eq!(v["candidates"][0]["content"]["parts"][0]["text"], "Hi");
        assert_eq!(
            v["candidates"][0]["content"]["parts"][1]["functionCall"]["args"],
            json!({"a": 1})
        );
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(v["usageMetadata"]["totalTokenCount"], 7);
        let e = render_error(&GatewayError::RateLimited {
            message: "slow down".into(),
            retry_after: None,
        });
        assert_eq!(
            e,
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
        );
    }

    #[test]
    fn stream_sends_text_then_whole_calls_then_finish() {
        let mut enc = StreamEncoder::new();
        let mut out = Vec::new();
        for ev in [
            StreamEvent::Start {
                id: "r".into(),
                model: "m".into(),
                created: 0,
                usage: None,
            },
            StreamEvent::TextDelta {
                index: 0,
                text: "Hi".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "c".into(),
                name: "w".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{\"a\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "1}".into(),
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
        let chunks: Vec<Value> = String::from_utf8(out)
            .expect("utf8")
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("json"))
            .collect();
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[0]["candidates"][0]["content"]["parts"][0]["text"],
            "Hi"
        );
        assert_eq!(
            chunks[1]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
            json!({"a": 1})
        );
        assert_eq!(chunks[2]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[2]["usageMetadata"]["candidatesTokenCount"], 2);
    }
}
