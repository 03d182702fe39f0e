//! JSON helpers every dialect shares. Requests are walked as `serde_json::Value` rather
//! than derived structs so every error names the exact path and the expected type, and
//! "string or array" fields need no untagged enums (whose errors say nothing useful).

use serde_json::{Map, Value};

use crate::canonical::GatewayError;

pub(crate) type Obj = Map<String, Value>;

pub(crate) fn parse_json_body(body: &[u8]) -> Result<Value, GatewayError> {
    serde_json::from_slice(body)
        .map_err(|e| GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}")))
}

pub(crate) fn body_object(value: &Value) -> Result<&Obj, GatewayError> {
    value.as_object().ok_or_else(|| {
        GatewayError::InvalidRequest(format!(
            "request body must be a JSON object, got {}",
            describe(value)
        ))
    })
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(crate) fn at(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn invalid_type(path: &str, expected: &str, got: &Value) -> GatewayError {
    GatewayError::InvalidRequest(format!(
        "invalid type for '{path}': expected {expected}, got {}",
        describe(got)
    ))
}

pub(crate) fn invalid_value(path: &str, why: impl std::fmt::Display) -> GatewayError {
    GatewayError::InvalidRequest(format!("invalid value for '{path}': {why}"))
}

pub(crate) fn missing(path: &str) -> GatewayError {
    GatewayError::InvalidRequest(format!("missing required parameter '{path}'"))
}

/// A field, with JSON `null` treated as absent (both APIs accept `null` for optional
/// fields).
pub(crate) fn field<'a>(obj: &'a Obj, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

pub(crate) fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Obj, GatewayError> {
    v.as_object()
        .ok_or_else(|| invalid_type(path, "an object", v))
}

pub(crate) fn opt_str<'a>(
    obj: &'a Obj,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, GatewayError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid_type(&at(path, key), "a string", v)),
    }
}

pub(crate) fn req_str<'a>(obj: &'a Obj, key: &str, path: &str) -> Result<&'a str, GatewayError> {
    opt_str(obj, key, path)?.ok_or_else(|| missing(&at(path, key)))
}

pub(crate) fn opt_bool(obj: &Obj, key: &str, path: &str) -> Result<Option<bool>, GatewayError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid_type(&at(path, key), "a boolean", v)),
    }
}

pub(crate) fn opt_f32(obj: &Obj, key: &str, path: &str) -> Result<Option<f32>, GatewayError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            Some(n) if (f32::MIN as f64..=f32::MAX as f64).contains(&n) => Ok(Some(n as f32)),
            Some(n) => Err(invalid_value(
                &at(path, key),
                format!("{n} is out of range"),
            )),
            None => Err(invalid_type(&at(path, key), "a number", v)),
        },
    }
}

pub(crate) fn opt_u64(obj: &Obj, key: &str, path: &str) -> Result<Option<u64>, GatewayError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid_type(&at(path, key), "a non-negative integer", v)),
    }
}

pub(crate) fn opt_u32(obj: &Obj, key: &str, path: &str) -> Result<Option<u32>, GatewayError> {
    match opt_u64(obj, key, path)? {
        None => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| invalid_value(&at(path, key), format!("{n} is too large"))),
    }
}

pub(crate) fn opt_array<'a>(
    obj: &'a Obj,
    key: &str,
    path: &str,
) -> Result<Option<&'a Vec<Value>>, GatewayError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(invalid_type(&at(path, key), "an array", v)),
    }
}

/// `stop` / `stop_sequences`: a string or an array of strings.
pub(crate) fn string_list(obj: &Obj, key: &str, path: &str) -> Result<Vec<String>, GatewayError> {
    let p = at(path, key);
    match field(obj, key) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid_type(&format!("{p}[{i}]"), "a string", v))
            })
            .collect(),
        Some(v) => Err(invalid_type(&p, "a string or an array of strings", v)),
    }
}

/// Top-level fields the parser does not know, kept for same-dialect backends.
pub(crate) fn unknown_fields(obj: &Obj, known: &[&str]) -> Map<String, Value> {
    obj.iter()
        .filter(|(k, _)| !known.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Lenient unsigned read for upstream bodies: missing or odd values count as 0.
pub(crate) fn u32_at(v: &Value, key: &str) -> u32 {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// An upstream's error status as a [`GatewayError::Upstream`], keeping its status, its
/// message and `retry-after`: the `parse_error` of the OpenAI, Anthropic and Gemini
/// backends, which nest the message alike.
pub fn upstream_error(
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

/// The most useful message from an upstream error body. Both dialects nest it as
/// `error.message`; other compatible servers use `message`, `error` or `detail`
/// strings, or plain text.
pub(crate) fn upstream_error_message(status: u16, body: &[u8]) -> String {
    const MAX: usize = 1000;
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        let candidates = [
            v.get("error").and_then(|e| e.get("message")),
            v.get("message"),
            v.get("error"),
            v.get("detail"),
        ];
        for c in candidates.into_iter().flatten() {
            if let Some(s) = c.as_str().filter(|s| !s.is_empty()) {
                return truncate(s, MAX);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned HTTP {status}")
    } else {
        truncate(text, MAX)
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
