//! The Gemini API routes of the mock upstream, on the same port as the others:
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent?alt=sse` and
//! `:countTokens`, the key in `x-goog-api-key` ([`MockConfig::gemini_key`]).
//!
//! Answers follow the same rules as the other dialects (the body is read as the
//! equivalent chat request: `Echo: …`, `Tool result: …`, `TOOL_CALL`, `maxOutputTokens`,
//! `stopSequences`, `mock-say-WORD`), written as Gemini writes them: function calls without
//! ids, the finish reason and full usage on the last stream chunk, chunks ended by CRLF.
//! What Gemini rejects, the mock rejects with Google's error shape: a wrong or missing key,
//! unknown fields at the top level and in `generationConfig`, empty `contents` or
//! `parts`, a role other than `user` or `model`, a `functionResponse` without a name, and a
//! stream request without `alt=sse` (Gemini would answer one JSON array, not events).
//! Model-name triggers: `mock-429`, `mock-500`, `mock-503`, `mock-truncate`, `mock-slow-MS`.

use axum::extract::Path;

use super::*;

const TOP_FIELDS: &[&str] = &[
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
    "labels",
    "model",
];

const GENERATION_FIELDS: &[&str] = &[
    "temperature",
    "topP",
    "topK",
    "candidateCount",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "thinkingConfig",
    "responseLogprobs",
    "logprobs",
];

fn google_error(status: StatusCode, message: &str) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": message, "status": name}});
    json_response(status, &body, &[])
}

fn bad(message: impl AsRef<str>) -> Response {
    google_error(StatusCode::BAD_REQUEST, message.as_ref())
}

fn unknown_field(obj: &serde_json::Map<String, Value>, known: &[&str], at: &str) -> Option<String> {
    obj.keys().find(|k| !known.contains(&k.as_str())).map(|k| {
        format!("Invalid JSON payload received. Unknown name \"{k}\" at '{at}': Cannot find field.")
    })
}

/// The text of a Content's text parts.
fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the request as Gemini would and reads it as the equivalent chat request, so
/// the shared answer rules apply.
fn as_chat(body: &Value, model: &str) -> Result<Value, Response> {
    let Some(obj) = body.as_object() else {
        return Err(bad("Invalid JSON payload received."));
    };
    if let Some(m) = unknown_field(obj, TOP_FIELDS, "") {
        return Err(bad(m));
    }
    let contents = match obj.get("contents").and_then(Value::as_array) {
        Some(c) if !c.is_empty() => c,
        _ => {
            return Err(bad(
                "* GenerateContentRequest.contents: contents is not specified",
            ))
        }
    };
    let mut messages = Vec::new();
    if let Some(sys) = obj.get("systemInstruction") {
        let parts = sys
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        messages.push(json!({"role": "system", "content": parts_text(&parts)}));
    }
    for (i, c) in contents.iter().enumerate() {
        let role = match c.get("role").and_then(Value::as_str) {
            None | Some("user") => "user",
            Some("model") => "assistant",
            Some(other) => {
                return Err(bad(format!(
                    "Please use a valid role: user, model. Got '{other}' at contents[{i}]."
                )))
            }
        };
        let parts = match c.get("parts").and_then(Value::as_array) {
            Some(p) if !p.is_empty() => p,
            _ => {
                return Err(bad(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            )))
            }
        };
        for p in parts {
            if let Some(fr) = p.get("functionResponse") {
                if fr
                    .get("name")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    return Err(bad(format!(
                        "* GenerateContentRequest.contents[{i}].parts.function_response.name: Name cannot be empty."
                    )));
                }
                let response = fr.get("response").cloned().unwrap_or(Value::Null);
                let text = ["output", "error", "result"]
                    .iter()
                    .find_map(|k| response.get(*k).and_then(Value::as_str))
                    .map_or_else(|| response.to_string(), str::to_string);
                messages.push(json!({"role": "tool", "content": text}));
            }
        }
        let text = parts_text(parts);
        if !text.is_empty() || role == "assistant" {
            messages.push(json!({"role": role, "content": text}));
        }
    }
    let mut chat = json!({"model": model, "messages": messages});
    if let Some(g) = obj.get("generationConfig") {
        let Some(g) = g.as_object() else {
            return Err(bad(
                "Invalid JSON payload received. generationConfig is not an object.",
            ));
        };
        if let Some(m) = unknown_field(g, GENERATION_FIELDS, "generation_config") {
            return Err(bad(m));
        }
        if let Some(n) = g.get("maxOutputTokens") {
            chat["max_tokens"] = n.clone();
        }
        if let Some(s) = g.get("stopSequences") {
            chat["stop"] = s.clone();
        }
    }
    let names: Vec<Value> = obj
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .filter_map(|d| d.get("name").cloned())
        .map(|name| json!({"type": "function", "function": {"name": name}}))
        .collect();
    if !names.is_empty() {
        chat["tools"] = Value::Array(names);
    }
    Ok(chat)
}

fn usage(a: &Answer) -> Value {
    json!({
        "promptTokenCount": a.input_tokens,
        "candidatesTokenCount": a.output_tokens,
        "totalTokenCount": a.input_tokens + a.output_tokens,
    })
}

fn finish_reason(r: Reason) -> &'static str {
    match r {
        Reason::MaxTokens => "MAX_TOKENS",
        Reason::End | Reason::StopSequence | Reason::ToolUse => "STOP",
    }
}

fn call_parts(a: &Answer) -> Vec<Value> {
    a.tool_calls
        .iter()
        .map(|c| {
            let args: Value = serde_json::from_str(&c.arguments).unwrap_or(json!({}));
            json!({"functionCall": {"name": c.name, "args": args}})
        })
        .collect()
}

fn chunk(parts: Vec<Value>, finish: Option<&str>, usage: Value, model: &str, id: &str) -> String {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(f) = finish {
        candidate["finishReason"] = json!(f);
    }
    let body = json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": id,
    });
    format!("data: {body}\r\n\r\n")
}

pub(super) async fn gemini_call(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, raw);
    let done = |r: Response| finish(&shared, &req, r);
    match headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()) {
        None => {
            return done(google_error(
                StatusCode::FORBIDDEN,
                "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
            ))
        }
        Some(k) if k != shared.cfg.gemini_key => {
            return done(bad("API key not valid. Please pass a valid API key."))
        }
        Some(_) => {}
    }
    let Some((model, call)) = target.rsplit_once(':') else {
        return done(google_error(
            StatusCode::NOT_FOUND,
            "Requested entity was not found.",
        ));
    };
    let model = model.to_string();
    let Some(body) = req.body.clone() else {
        return done(bad("Invalid JSON payload received."));
    };
    if call == "countTokens" {
        let inner = body.get("generateContentRequest").unwrap_or(&body);
        return done(match as_chat(inner, &model) {
            Ok(chat) => {
                let n = input_tokens(Dialect::OpenAi, &chat);
                json_response(StatusCode::OK, &json!({"totalTokens": n}), &[])
            }
            Err(r) => r,
        });
    }
    let stream = match call {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => {
            return done(google_error(
                StatusCode::NOT_FOUND,
                &format!("Method {call} is not found for models/{model}."),
            ))
        }
    };
    let sse = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "alt=sse"));
    if stream && !sse {
        return done(bad(
            "mock-strict: streamGenerateContent without alt=sse answers one JSON array, not server-sent events",
        ));
    }
    let chat = match as_chat(&body, &model) {
        Ok(c) => c,
        Err(r) => return done(r),
    };
    let trigger = trigger_name(&shared, &model);
    for (code, status, message) in [
        ("mock-429", StatusCode::TOO_MANY_REQUESTS, "Resource has been exhausted (e.g. check quota)."),
        ("mock-500", StatusCode::INTERNAL_SERVER_ERROR, "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"),
        ("mock-503", StatusCode::SERVICE_UNAVAILABLE, "The model is overloaded. Please try again later."),
    ] {
        if trigger.contains(code) {
            return done(google_error(status, message));
        }
    }
    let guard = OutcomeGuard {
        shared: shared.clone(),
        idx: req.idx,
        armed: true,
    };
    let a = answer(Dialect::OpenAi, &chat);
    let id = format!("gresp_mock{}", req.seq);
    let delay = slow_delay(&trigger);
    if !stream {
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        let mut parts = Vec::new();
        if !a.text.is_empty() {
            parts.push(json!({"text": a.text}));
        }
        parts.extend(call_parts(&a));
        let body = json!({
            "candidates": [{
                "content": {"role": "model", "parts": parts},
                "finishReason": finish_reason(a.reason),
                "index": 0,
            }],
            "usageMetadata": usage(&a),
            "modelVersion": model,
            "responseId": id,
        });
        guard.finish(Outcome::Completed);
        return json_response(StatusCode::OK, &body, &[]);
    }
    let prompt_only =
        json!({"promptTokenCount": a.input_tokens, "totalTokenCount": a.input_tokens});
    let mut frames: Vec<String> = pieces(&a.text)
        .into_iter()
        .map(|p| {
            chunk(
                vec![json!({"text": p})],
                None,
                prompt_only.clone(),
                &model,
                &id,
            )
        })
        .collect();
    for c in call_parts(&a) {
        frames.push(chunk(vec![c], None, prompt_only.clone(), &model, &id));
    }
    frames.push(chunk(
        vec![json!({"text": ""})],
        Some(finish_reason(a.reason)),
        usage(&a),
        &model,
        &id,
    ));
    let truncate_after = trigger
        .contains("mock-truncate")
        .then(|| 2.min(frames.len() - 1));
    sse_response(
        guard,
        StreamPlan {
            frames,
            delay,
            truncate_after,
            stall_after: None,
        },
        Vec::new(),
    )
}
