//! Small client-side helpers for end-to-end tests: JSON calls in either dialect and an
//! SSE reader that keeps arrival times and notices a stream cut without its terminator.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;

/// A key the test client sends; the gateway must never forward it upstream.
pub const CLIENT_KEY: &str = "sk-client-must-not-leak";
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which wire format a request is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Anthropic,
}

impl Dialect {
    /// Path of the chat endpoint of this dialect.
    pub fn path(self) -> &'static str {
        match self {
            Dialect::OpenAi => "/v1/chat/completions",
            Dialect::Anthropic => "/v1/messages",
        }
    }
}

/// A pooled keep-alive client (TCP_NODELAY is reqwest's default).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// Adds the headers a real SDK of `dialect` sends, with the client key.
pub fn with_sdk_headers(rb: reqwest::RequestBuilder, dialect: Dialect) -> reqwest::RequestBuilder {
    match dialect {
        Dialect::OpenAi => rb.bearer_auth(CLIENT_KEY),
        Dialect::Anthropic => rb
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", ANTHROPIC_VERSION),
    }
}

/// A complete response with its body parsed as JSON (`Value::Null` if it is not JSON).
#[derive(Debug)]
pub struct JsonResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl JsonResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// POSTs raw bytes with the dialect's SDK headers and `content-type: application/json`.
pub async fn post_raw(
    client: &reqwest::Client,
    url: &str,
    dialect: Dialect,
    body: impl Into<reqwest::Body>,
) -> JsonResponse {
    let rb = with_sdk_headers(client.post(url), dialect)
        .header("content-type", "application/json")
        .body(body);
    into_json(rb.send().await.expect("request failed")).await
}

pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    dialect: Dialect,
    body: &Value,
) -> JsonResponse {
    post_raw(client, url, dialect, serde_json::to_vec(body).unwrap()).await
}

pub async fn into_json(resp: reqwest::Response) -> JsonResponse {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    JsonResponse {
        status,
        headers,
        text,
        json,
    }
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    /// When the last byte of the event arrived.
    pub at: Instant,
}

impl SseEvent {
    /// `data` parsed as JSON (`Value::Null` for `[DONE]` or non-JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }
}

/// Incremental SSE parser (handles `\n`, `\r\n` line ends and multi-line data).
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
}

impl SseParser {
    pub fn push(&mut self, bytes: &[u8], at: Instant) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if line.is_empty() {
                if !self.data.is_empty() || self.event.is_some() {
                    out.push(SseEvent {
                        event: self.event.take(),
                        data: std::mem::take(&mut self.data).join("\n"),
                        at,
                    });
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()),
                None => (line.clone(), String::new()),
            };
            match field.as_str() {
                "event" => self.event = Some(value),
                "data" => self.data.push(value),
                _ => {}
            }
        }
        out
    }

    /// Bytes left that did not form a complete event.
    pub fn leftover(&self) -> usize {
        self.buf.len() + self.data.iter().map(String::len).sum::<usize>()
    }
}

/// A whole SSE response as the client saw it.
#[derive(Debug)]
pub struct SseResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub events: Vec<SseEvent>,
    /// The body ended with a transport error (connection cut) instead of a clean end.
    pub transport_error: Option<String>,
    pub started: Instant,
    pub ended: Instant,
}

impl SseResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Data of every event parsed as JSON (skipping `[DONE]`).
    pub fn json_events(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .map(SseEvent::json)
            .collect()
    }

    pub fn has_done(&self) -> bool {
        self.events.iter().any(|e| e.data == "[DONE]")
    }

    /// Names of the `event:` lines, in order.
    pub fn event_names(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|e| e.event.clone().unwrap_or_default())
            .collect()
    }

    /// Concatenated OpenAI `choices[0].delta.content`.
    pub fn openai_text(&self) -> String {
        self.json_events()
            .iter()
            .filter_map(|c| {
                c.pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect()
    }

    /// Concatenated Anthropic `text_delta`s.
    pub fn anthropic_text(&self) -> String {
        self.json_events()
            .iter()
            .filter(|e| e.pointer("/delta/type").and_then(Value::as_str) == Some("text_delta"))
            .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
            .collect()
    }
}

/// Sends a streaming request and reads the whole SSE body.
pub async fn post_sse(
    client: &reqwest::Client,
    url: &str,
    dialect: Dialect,
    body: &Value,
) -> SseResponse {
    let started = Instant::now();
    let resp = with_sdk_headers(client.post(url), dialect)
        .json(body)
        .send()
        .await
        .expect("request failed");
    read_sse(resp, started).await
}

pub async fn read_sse(resp: reqwest::Response, started: Instant) -> SseResponse {
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut transport_error = None;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(b) => events.extend(parser.push(&b, Instant::now())),
            Err(e) => {
                transport_error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    SseResponse {
        status,
        headers,
        events,
        transport_error,
        started,
        ended: Instant::now(),
    }
}

/// Reads SSE events from a live response one at a time.
pub struct SseStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
}

impl SseStream {
    pub fn new(resp: reqwest::Response) -> Self {
        SseStream {
            body: resp.bytes_stream().boxed(),
            parser: SseParser::default(),
            pending: Default::default(),
        }
    }

    /// The next event; `None` at the end of the body or on a transport error.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.body.next().await {
                Some(Ok(b)) => self.pending.extend(self.parser.push(&b, Instant::now())),
                _ => return None,
            }
        }
    }
}

/// The system prompt of the request builders (3 words in the mock's token count).
pub const SYSTEM: &str = "You are terse.";
/// The user text of the request builders (4 words).
pub const USER_TEXT: &str = "hello from the test";
/// What the mock answers to [`USER_TEXT`] (5 words).
pub const ECHO: &str = "Echo: hello from the test";
/// Mock usage for the request builders: system + user words.
pub const INPUT_TOKENS: u64 = 7;
pub const OUTPUT_TOKENS: u64 = 5;

/// An OpenAI Chat Completions request with a system message and [`USER_TEXT`].
pub fn openai_request(model: &str, text: &str) -> Value {
    serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": text},
        ],
    })
}

/// An Anthropic Messages request with `system` and [`USER_TEXT`].
pub fn anthropic_request(model: &str, text: &str) -> Value {
    serde_json::json!({
        "model": model,
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": text}],
    })
}

/// A request of either dialect.
pub fn request(dialect: Dialect, model: &str, text: &str) -> Value {
    match dialect {
        Dialect::OpenAi => openai_request(model, text),
        Dialect::Anthropic => anthropic_request(model, text),
    }
}

/// Text of an OpenAI or Anthropic `content` value (string, parts or blocks).
pub fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// Asserts `body` is an error in the dialect's format and returns its `error.type`.
#[track_caller]
pub fn assert_dialect_error(dialect: Dialect, body: &Value) -> String {
    match dialect {
        Dialect::OpenAi => {
            let e = body
                .get("error")
                .unwrap_or_else(|| panic!("not an OpenAI error body: {body}"));
            assert!(
                e.get("message").is_some_and(Value::is_string),
                "OpenAI error without message: {body}"
            );
            assert!(
                e.get("type").is_some_and(Value::is_string),
                "OpenAI error without type: {body}"
            );
            assert!(
                body.get("type").is_none(),
                "Anthropic-shaped body on the OpenAI route: {body}"
            );
            e["type"].as_str().unwrap().to_string()
        }
        Dialect::Anthropic => {
            assert_eq!(body["type"], "error", "not an Anthropic error body: {body}");
            let e = &body["error"];
            assert!(
                e["message"].is_string(),
                "Anthropic error without message: {body}"
            );
            assert!(
                e["type"].is_string(),
                "Anthropic error without type: {body}"
            );
            e["type"].as_str().unwrap().to_string()
        }
    }
}
