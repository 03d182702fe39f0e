//! A deterministic mock of the OpenAI Chat Completions and Anthropic Messages APIs.
//!
//! One axum server on one port speaks both wire formats, as the real APIs do:
//!
//! | Route                          | Dialect   | Auth                                              |
//! |--------------------------------|-----------|---------------------------------------------------|
//! | `POST /v1/chat/completions`    | OpenAI    | `Authorization: Bearer <openai_key>`              |
//! | `POST /v1/messages`            | Anthropic | `x-api-key: <anthropic_key>` + `anthropic-version` |
//! | `POST /v1/messages/count_tokens` | Anthropic | same; answers `{"input_tokens": N}`             |
//! | `POST /openai/deployments/{d}/chat/completions?api-version=V` | Azure OpenAI | `api-key: <openai_key>` (or `Authorization: Bearer`); 404 without `api-version` |
//! | `POST /v1beta/models/{model}:generateContent` (`:streamGenerateContent?alt=sse`, `:countTokens`) | Gemini | `x-goog-api-key: <gemini_key>` (see `mock/gemini.rs`) |
//! | `POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent` (and the others) | Vertex AI | `Authorization: Bearer <a token from POST /token>` |
//! | `POST /{tenant}/oauth2/v2.0/token` | Entra ID | client credentials of [`MockConfig::entra_client`]; the token then works on the Azure routes |
//! | `POST /token`                  | Google OAuth | the JWT bearer grant, signed with the test service account's key |
//! | `GET /v1/models`               | either    | Anthropic list if `x-api-key`/`anthropic-version` is sent, OpenAI list otherwise |
//!
//! Base URLs as the SDKs expect them: [`MockUpstream::openai_base_url`] is `http://ADDR/v1`
//! (like `OPENAI_BASE_URL`), [`MockUpstream::anthropic_base_url`] is `http://ADDR` (like
//! `ANTHROPIC_BASE_URL`). Every accepted socket has `TCP_NODELAY` set.
//!
//! # Answers
//! The answer is `Echo: <text of the last user message>` (text parts joined by a space),
//! streamed one word per chunk/delta (`"Echo:"`, `" hello"`, `" world"`). If the last
//! message is a tool result (OpenAI `role: "tool"`, Anthropic `tool_result` blocks) the
//! answer is `Tool result: <result text>`.
//!
//! Usage is counted in whitespace-separated words: `input_tokens`/`prompt_tokens` = words of
//! all text in the system prompt (Anthropic `system`, OpenAI `system`/`developer` messages)
//! and in all messages (text parts, string contents and tool-result text; tool-call
//! arguments and tool definitions are not counted), so a request that a gateway translates
//! between dialects without losing text is counted the same on both sides.
//! `output_tokens`/`completion_tokens` = words of the answer text + 1 per tool call.
//!
//! `max_tokens` (OpenAI also `max_completion_tokens`) truncates the answer to that many words
//! and ends with `finish_reason: "length"` / `stop_reason: "max_tokens"`. A stop sequence
//! (`stop` / `stop_sequences`) found in the answer cuts it there (`"stop"` /
//! `"stop_sequence"` with `stop_sequence` set). Anthropic requests without `max_tokens` get
//! the real API's 400 (`max_tokens: Field required`).
//!
//! # Triggers
//! Behaviour is chosen by the request so that tests through a gateway can pick it.
//! Model-name triggers match anywhere in the model name, so `mock-429` and
//! `claude-mock-429` both trigger:
//!
//! | model contains        | behaviour |
//! |-----------------------|-----------|
//! | `mock-429`            | 429 in the dialect's error format with `retry-after: 7` (plus `x-ratelimit-*` / `anthropic-ratelimit-*` headers) |
//! | `mock-500`            | 500 (`server_error` / `api_error`) |
//! | `mock-overloaded`     | OpenAI 503 / Anthropic 529 `overloaded_error` |
//! | `mock-404`            | 404 model not found (`model_not_found` / `not_found_error`) |
//! | `mock-slow[-MS]`      | waits MS (default 100) ms before every stream frame; non-stream: before answering |
//! | `mock-truncate`       | streams: the first frames, then the connection is closed without `[DONE]`/`message_stop` (no final 0-length chunk). Non-stream: `content-length` announced, half the body sent, connection closed |
//! | `mock-stream-error`   | streams the first frames, then an in-stream error (OpenAI `data: {"error":..}`, Anthropic `event: error` `overloaded_error`) and ends |
//! | `mock-stall`          | streams the first frames (OpenAI 3, Anthropic 4), then sends nothing more but keeps the connection open (for stream idle timeouts); non-stream: like `mock-hang` |
//! | `mock-hang`           | never answers (for timeout tests); the handler notices when the caller gives up |
//! | `mock-say-WORD`       | answers exactly `WORD` instead of the echo (e.g. a judge's `TIE`) |
//! | `mock-once-500`       | the first request with a given model and messages gets a 500, the same request again is answered (a failure a retry cures) |
//! | `mock-once-429`       | likewise with a 429 carrying `retry-after: 0.05` |
//!
//! Extended thinking (Anthropic, `"thinking": {"type": "enabled", ...}` in the request):
//! the answer starts with a `thinking` block (`Considering: <last user text>`) signed with
//! [`thinking_signature`] (streams: `thinking_delta` pieces, then one `signature_delta`).
//! As the real API does, every `thinking` block a request sends back must carry the
//! signature of its text (else 400 `Invalid \`signature\` in \`thinking\` block`), and with
//! thinking enabled an assistant turn whose tool call is being answered must start with a
//! thinking block (else 400 `Expected \`thinking\` or \`redacted_thinking\`...`).
//!
//! [`MockConfig::always`] adds a trigger to every model name, e.g. `mock-500` for an
//! upstream that fails whatever it is asked (one of several endpoints going bad).
//!
//! Trigger words in the last user message (text):
//!
//! | text contains         | behaviour |
//! |-----------------------|-----------|
//! | `PARALLEL_TOOL_CALLS` | two tool calls (first two tools of the request, or the first one twice) |
//! | `TOOL_CALL`           | one call to the request's first tool (name from `tools[0]`, default `get_weather`) with arguments `{"location":"Paris","unit":"celsius"}`; `finish_reason: "tool_calls"` / `stop_reason: "tool_use"`. Anthropic also emits a leading text block `I will call <name>.` |
//!
//! # Recording
//! Every request is recorded (method, path, lower-cased headers, raw body, parsed JSON body)
//! in an `Arc<Mutex<Vec<Recorded>>>` before any check, together with its [`Outcome`]:
//! `Completed` when the whole response was handed to the connection, `Cancelled` when the
//! caller went away first (the body stream or handler was dropped: this is how tests see a
//! gateway cancel its upstream request after a client disconnect), `Truncated` when the mock
//! cut the stream on purpose. [`MockUpstream::wait_for_outcome`] waits for it.

// Handlers return early with a finished `Response` as the error; its size does not matter here.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod gemini;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

/// Keys and options of a mock upstream.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Accepted `Authorization: Bearer` key on the OpenAI routes.
    pub openai_key: String,
    /// Accepted `x-api-key` on the Anthropic routes.
    pub anthropic_key: String,
    /// Accepted `x-goog-api-key` on the Gemini routes.
    pub gemini_key: String,
    /// The Entra application the mock's token endpoint knows, and its secret.
    pub entra_client: (String, String),
    /// Record requests (disable for load tests to keep memory flat).
    pub record: bool,
    /// A model-name trigger applied to every request, as if every model name contained
    /// it (`mock-500`, `mock-429`, `mock-hang`…).
    pub always: Option<String>,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            openai_key: "sk-test".into(),
            anthropic_key: "sk-ant-test".into(),
            gemini_key: "gemini-test-key".into(),
            entra_client: ("switchyard-test-app".into(), "entra-test-secret".into()),
            record: true,
            always: None,
        }
    }
}

/// How the mock's handling of one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole response (every stream frame) was handed to the connection.
    Completed,
    /// The caller went away before the response was complete.
    Cancelled,
    /// The mock closed the connection mid-response on purpose (`mock-truncate`).
    Truncated,
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path only, e.g. `/v1/messages`.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub raw_body: Bytes,
    /// The body parsed as JSON (`None` when empty or not JSON).
    pub body: Option<Value>,
    /// When the request arrived.
    pub at: Instant,
    /// `None` while the response is still in progress.
    pub outcome: Option<Outcome>,
}

impl Recorded {
    /// First value of a header (name is case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The JSON body, or `Value::Null`.
    pub fn json(&self) -> &Value {
        static NULL: Value = Value::Null;
        self.body.as_ref().unwrap_or(&NULL)
    }
}

struct Shared {
    cfg: MockConfig,
    requests: Arc<Mutex<Vec<Recorded>>>,
    changed: Notify,
    seq: AtomicU64,
    /// Requests a `mock-once-*` trigger already failed.
    failed_once: Mutex<std::collections::HashSet<String>>,
    /// Access tokens the Google and Entra token endpoints issued (Vertex routes accept
    /// only these; Azure routes accept these as bearer tokens too).
    issued_tokens: Mutex<Vec<String>>,
}

impl Shared {
    fn record(&self, r: Recorded) -> Option<usize> {
        if !self.cfg.record {
            return None;
        }
        let mut g = self.requests.lock().unwrap();
        g.push(r);
        let idx = g.len() - 1;
        drop(g);
        self.changed.notify_waiters();
        Some(idx)
    }

    fn set_outcome(&self, idx: Option<usize>, outcome: Outcome) {
        let Some(idx) = idx else { return };
        let mut g = self.requests.lock().unwrap();
        if let Some(r) = g.get_mut(idx) {
            if r.outcome.is_none() {
                r.outcome = Some(outcome);
            }
        }
        drop(g);
        self.changed.notify_waiters();
    }
}

/// Sets an outcome when dropped, unless disarmed: `Cancelled` for a handler or body stream
/// that is dropped before it finished.
struct OutcomeGuard {
    shared: Arc<Shared>,
    idx: Option<usize>,
    armed: bool,
}

impl OutcomeGuard {
    fn finish(mut self, outcome: Outcome) {
        self.armed = false;
        self.shared.set_outcome(self.idx, outcome);
    }
}

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        if self.armed {
            self.shared.set_outcome(self.idx, Outcome::Cancelled);
        }
    }
}

/// A running mock upstream. The server stops when this is dropped.
pub struct MockUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockUpstream {
    /// Starts on `127.0.0.1:0` with the default keys (`sk-test`, `sk-ant-test`).
    pub async fn start() -> Self {
        Self::start_with(MockConfig::default()).await
    }

    pub async fn start_with(cfg: MockConfig) -> Self {
        Self::bind("127.0.0.1:0".parse().unwrap(), cfg)
            .await
            .expect("bind mock upstream")
    }

    pub async fn bind(addr: SocketAddr, cfg: MockConfig) -> std::io::Result<Self> {
        use axum::serve::ListenerExt;
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            requests: Arc::new(Mutex::new(Vec::new())),
            changed: Notify::new(),
            seq: AtomicU64::new(0),
            failed_once: Mutex::new(std::collections::HashSet::new()),
            issued_tokens: Mutex::new(Vec::new()),
        });
        let app = router(shared.clone());
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(MockUpstream { addr, shared, task })
    }

    /// `http://ADDR/v1`, what `OPENAI_BASE_URL` would be.
    pub fn openai_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://ADDR`, what `ANTHROPIC_BASE_URL` would be.
    pub fn anthropic_base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Like the Gemini SDKs' base URL with its API version: `http://ADDR/v1beta`.
    pub fn gemini_base_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// Like `https://LOCATION-aiplatform.googleapis.com/v1`: `http://ADDR/v1`.
    pub fn vertex_base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// A service-account key file whose `token_uri` is this mock's token endpoint, signed
    /// with the test key the endpoint verifies ([`gemini::TEST_SERVICE_ACCOUNT`]).
    pub fn vertex_service_account_json(&self) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "switchyard-test",
            "private_key_id": "test-key-1",
            "private_key": gemini::TEST_PRIVATE_KEY,
            "client_email": gemini::TEST_SERVICE_ACCOUNT,
            "client_id": "100000000000000000001",
            "token_uri": format!("http://{}/token", self.addr),
        })
        .to_string()
    }

    /// The shared recorder itself.
    pub fn recorder(&self) -> Arc<Mutex<Vec<Recorded>>> {
        self.shared.requests.clone()
    }

    /// A snapshot of every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Requests to one path (e.g. `/v1/messages`).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    pub fn last_request(&self) -> Option<Recorded> {
        self.shared.requests.lock().unwrap().last().cloned()
    }

    pub fn clear(&self) {
        self.shared.requests.lock().unwrap().clear();
    }

    /// Waits until at least `n` requests were recorded; returns them.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Option<Vec<Recorded>> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            let reqs = self.requests();
            if reqs.len() >= n {
                return Some(reqs);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return None;
            }
        }
    }

    /// Waits until request number `index` has an outcome.
    pub async fn wait_for_outcome(&self, index: usize, timeout: Duration) -> Option<Outcome> {
        let deadline = Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            if let Some(o) = self
                .shared
                .requests
                .lock()
                .unwrap()
                .get(index)
                .and_then(|r| r.outcome)
            {
                return Some(o);
            }
            if tokio::time::timeout_at(deadline.into(), notified)
                .await
                .is_err()
            {
                return None;
            }
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(openai_chat),
        )
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1/messages/count_tokens", post(anthropic_count_tokens))
        .route("/v1beta/models/{target}", post(gemini::gemini_call))
        .route(
            "/v1/projects/{project}/locations/{location}/publishers/google/models/{target}",
            post(gemini::vertex_call),
        )
        .route("/token", post(gemini::google_token))
        .route("/{tenant}/oauth2/v2.0/token", post(gemini::entra_token))
        .route("/v1/models", get(models))
        .fallback(fallback)
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------
// Request plumbing

struct Req {
    idx: Option<usize>,
    seq: u64,
    /// Azure OpenAI's deployment route (`api-key`, `api-version`).
    azure: Option<AzureCall>,
    headers: HeaderMap,
    body: Option<Value>,
    raw_len: usize,
}

struct AzureCall {
    api_version: Option<String>,
}

fn record(
    shared: &Arc<Shared>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    raw: Bytes,
) -> Req {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let body: Option<Value> = serde_json::from_slice(&raw).ok();
    let raw_len = raw.len();
    let idx = shared.record(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        raw_body: raw,
        body: body.clone(),
        at: Instant::now(),
        outcome: None,
    });
    let azure = uri
        .path()
        .starts_with("/openai/deployments/")
        .then(|| AzureCall {
            api_version: uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("api-version="))
                    .map(str::to_string)
            }),
        });
    Req {
        idx,
        seq,
        azure,
        headers: headers.clone(),
        body,
        raw_len,
    }
}

fn json_response(status: StatusCode, body: &Value, extra: &[(&str, String)]) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in extra {
        h.insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    resp
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dialect {
    OpenAi,
    Anthropic,
}

fn error_body(
    d: Dialect,
    typ: &str,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Value {
    match d {
        Dialect::OpenAi => json!({
            "error": {"message": message, "type": typ, "param": param, "code": code}
        }),
        Dialect::Anthropic => json!({
            "type": "error",
            "error": {"type": typ, "message": message},
            "request_id": "req_mock",
        }),
    }
}

fn finish(shared: &Arc<Shared>, req: &Req, resp: Response) -> Response {
    shared.set_outcome(req.idx, Outcome::Completed);
    resp
}

fn request_id_header(d: Dialect, seq: u64) -> (&'static str, String) {
    match d {
        Dialect::OpenAi => ("x-request-id", format!("req_mock{seq}")),
        Dialect::Anthropic => ("request-id", format!("req_mock{seq}")),
    }
}

/// Auth and JSON checks shared by every POST route. `Err` is the finished error response.
fn check(d: Dialect, shared: &Arc<Shared>, req: &Req) -> Result<Value, Response> {
    let rid = request_id_header(d, req.seq);
    match d {
        Dialect::OpenAi if req.azure.is_some() => {
            // Azure's own wording for both failures.
            if req
                .azure
                .as_ref()
                .and_then(|a| a.api_version.as_ref())
                .is_none()
            {
                let b = json!({"error": {"code": "404", "message": "Resource not found"}});
                return Err(json_response(StatusCode::NOT_FOUND, &b, &[rid]));
            }
            let key = req
                .headers
                .get("api-key")
                .and_then(|v| v.to_str().ok())
                .or_else(|| {
                    req.headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|a| a.strip_prefix("Bearer "))
                });
            let issued =
                key.is_some_and(|k| shared.issued_tokens.lock().unwrap().iter().any(|t| t == k));
            if key != Some(shared.cfg.openai_key.as_str()) && !issued {
                let b = json!({"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}});
                return Err(json_response(StatusCode::UNAUTHORIZED, &b, &[rid]));
            }
        }
        Dialect::OpenAi => {
            let auth = req
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match auth.and_then(|a| a.strip_prefix("Bearer ")) {
                None => {
                    let b = error_body(d, "invalid_request_error", "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username.", None, None);
                    return Err(json_response(StatusCode::UNAUTHORIZED, &b, &[rid]));
                }
                Some(k) if k != shared.cfg.openai_key => {
                    let shown: String = k.chars().take(6).collect();
                    let b = error_body(d, "invalid_request_error", &format!("Incorrect API key provided: {shown}***. You can find your API key at https://platform.openai.com/account/api-keys."), None, Some("invalid_api_key"));
                    return Err(json_response(StatusCode::UNAUTHORIZED, &b, &[rid]));
                }
                Some(_) => {}
            }
        }
        Dialect::Anthropic => {
            let key = req.headers.get("x-api-key").and_then(|v| v.to_str().ok());
            match key {
                None => {
                    let b = error_body(
                        d,
                        "authentication_error",
                        "x-api-key header is required",
                        None,
                        None,
                    );
                    return Err(json_response(StatusCode::UNAUTHORIZED, &b, &[rid]));
                }
                Some(k) if k != shared.cfg.anthropic_key => {
                    let b = error_body(d, "authentication_error", "invalid x-api-key", None, None);
                    return Err(json_response(StatusCode::UNAUTHORIZED, &b, &[rid]));
                }
                Some(_) => {}
            }
            if req.headers.get("anthropic-version").is_none() {
                let b = error_body(
                    d,
                    "invalid_request_error",
                    "anthropic-version: header is required",
                    None,
                    None,
                );
                return Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]));
            }
        }
    }
    match &req.body {
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        _ => {
            let msg = match d {
                Dialect::OpenAi => "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)".to_string(),
                Dialect::Anthropic => if req.raw_len == 0 { "There was an issue with your request body: empty body".into() } else { "There was an issue with the JSON body of your request".into() },
            };
            let b = error_body(d, "invalid_request_error", &msg, None, None);
            Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]))
        }
    }
}

/// Model-name triggered failures, in the dialect's format.
fn model_failure(d: Dialect, model: &str, seq: u64) -> Option<Response> {
    let rid = request_id_header(d, seq);
    if model.contains("mock-429") {
        let (b, extra) = match d {
            Dialect::OpenAi => (
                error_body(d, "requests", &format!("Rate limit reached for {model} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 7s."), None, Some("rate_limit_exceeded")),
                vec![
                    ("retry-after", "7".to_string()),
                    ("x-ratelimit-limit-requests", "3".into()),
                    ("x-ratelimit-remaining-requests", "0".into()),
                    ("x-ratelimit-reset-requests", "7s".into()),
                    rid,
                ],
            ),
            Dialect::Anthropic => (
                error_body(d, "rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit", None, None),
                vec![
                    ("retry-after", "7".to_string()),
                    ("anthropic-ratelimit-requests-limit", "3".into()),
                    ("anthropic-ratelimit-requests-remaining", "0".into()),
                    rid,
                ],
            ),
        };
        return Some(json_response(StatusCode::TOO_MANY_REQUESTS, &b, &extra));
    }
    if model.contains("mock-500") {
        let b = match d {
            Dialect::OpenAi => error_body(
                d,
                "server_error",
                "The server had an error while processing your request. Sorry about that!",
                None,
                None,
            ),
            Dialect::Anthropic => error_body(d, "api_error", "Internal server error", None, None),
        };
        return Some(json_response(StatusCode::INTERNAL_SERVER_ERROR, &b, &[rid]));
    }
    if model.contains("mock-overloaded") {
        return Some(match d {
            Dialect::OpenAi => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &error_body(
                    d,
                    "server_error",
                    "The engine is currently overloaded, please try again later.",
                    None,
                    None,
                ),
                &[rid],
            ),
            Dialect::Anthropic => json_response(
                StatusCode::from_u16(529).unwrap(),
                &error_body(d, "overloaded_error", "Overloaded", None, None),
                &[rid],
            ),
        });
    }
    if model.contains("mock-404") {
        return Some(match d {
            Dialect::OpenAi => json_response(
                StatusCode::NOT_FOUND,
                &error_body(
                    d,
                    "invalid_request_error",
                    &format!("The model `{model}` does not exist or you do not have access to it."),
                    None,
                    Some("model_not_found"),
                ),
                &[rid],
            ),
            Dialect::Anthropic => json_response(
                StatusCode::NOT_FOUND,
                &error_body(d, "not_found_error", &format!("model: {model}"), None, None),
                &[rid],
            ),
        });
    }
    None
}

/// What triggers are matched against: the model name plus [`MockConfig::always`].
fn trigger_name(shared: &Shared, model: &str) -> String {
    match &shared.cfg.always {
        Some(t) => format!("{model} {t}"),
        None => model.to_string(),
    }
}

/// `mock-once-500` / `mock-once-429`: fail the first time this model and these messages
/// are seen, answer from then on.
fn once_failure(
    shared: &Shared,
    d: Dialect,
    trigger: &str,
    body: &Value,
    seq: u64,
) -> Option<Response> {
    let status = if trigger.contains("mock-once-500") {
        "mock-500"
    } else if trigger.contains("mock-once-429") {
        "mock-429"
    } else {
        return None;
    };
    let key = format!(
        "{}|{}",
        body.get("model").unwrap_or(&Value::Null),
        body.get("messages").unwrap_or(&Value::Null)
    );
    if !shared.failed_once.lock().unwrap().insert(key) {
        return None;
    }
    let mut resp = model_failure(d, status, seq)?;
    if status == "mock-429" {
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("0.05"));
    }
    Some(resp)
}

fn slow_delay(model: &str) -> Option<Duration> {
    let pos = model.find("mock-slow")?;
    let rest = &model[pos + "mock-slow".len()..];
    let ms = rest
        .strip_prefix('-')
        .and_then(|r| {
            let digits: String = r.chars().take_while(|c| c.is_ascii_digit()).collect();
            digits.parse::<u64>().ok()
        })
        .unwrap_or(100);
    Some(Duration::from_millis(ms))
}

// ---------------------------------------------------------------------------------------
// The deterministic "model"

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Text of an OpenAI or Anthropic `content` value (string or list of parts/blocks),
/// including nested tool-result content.
fn content_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_string),
                Some("tool_result") => p.get("content").map(content_text),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

struct ToolCall {
    name: String,
    arguments: String,
}

struct Answer {
    text: String,
    tool_calls: Vec<ToolCall>,
    input_tokens: u64,
    output_tokens: u64,
    /// `stop`/`length`/`tool_calls` style reason, mapped per dialect.
    reason: Reason,
    stop_sequence: Option<String>,
}

#[derive(Clone, Copy)]
enum Reason {
    End,
    MaxTokens,
    StopSequence,
    ToolUse,
}

fn input_tokens(d: Dialect, body: &Value) -> u64 {
    let mut n = 0;
    if d == Dialect::Anthropic {
        if let Some(s) = body.get("system") {
            n += words(&content_text(s));
        }
    }
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        for m in msgs {
            if let Some(c) = m.get("content") {
                n += words(&content_text(c));
            }
        }
    }
    n
}

fn tool_names(d: Dialect, body: &Value) -> Vec<String> {
    body.get("tools")
        .and_then(Value::as_array)
        .map(|tools| {
            tools
                .iter()
                .filter_map(|t| match d {
                    Dialect::OpenAi => t.pointer("/function/name"),
                    Dialect::Anthropic => t.get("name"),
                })
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn answer(d: Dialect, body: &Value) -> Answer {
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let last = msgs.last().cloned().unwrap_or(Value::Null);
    let last_role = last.get("role").and_then(Value::as_str).unwrap_or("");
    let last_content = last.get("content").cloned().unwrap_or(Value::Null);
    let is_tool_result = match d {
        Dialect::OpenAi => last_role == "tool",
        Dialect::Anthropic => last_content.as_array().is_some_and(|a| {
            a.iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        }),
    };
    let last_user_text = msgs
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .map(content_text)
        .unwrap_or_default();

    let mut tool_calls = Vec::new();
    let mut text;
    if is_tool_result {
        text = format!("Tool result: {}", content_text(&last_content));
    } else {
        text = format!("Echo: {last_user_text}");
        let n_calls = if last_user_text.contains("PARALLEL_TOOL_CALLS") {
            2
        } else if last_user_text.contains("TOOL_CALL") {
            1
        } else {
            0
        };
        if n_calls > 0 {
            let names = tool_names(d, body);
            for i in 0..n_calls {
                let name = names
                    .get(i)
                    .or(names.first())
                    .cloned()
                    .unwrap_or_else(|| "get_weather".into());
                tool_calls.push(ToolCall {
                    name,
                    arguments: r#"{"location":"Paris","unit":"celsius"}"#.into(),
                });
            }
            text = match d {
                Dialect::OpenAi => String::new(),
                Dialect::Anthropic => format!("I will call {}.", tool_calls[0].name),
            };
        }
    }

    // `mock-say-WORD` answers exactly WORD (a judge's verdict, a fixed reply).
    if let Some(word) = body
        .get("model")
        .and_then(Value::as_str)
        .and_then(|m| m.split("mock-say-").nth(1))
    {
        text = word.to_string();
        tool_calls.clear();
    }

    let mut reason = if tool_calls.is_empty() {
        Reason::End
    } else {
        Reason::ToolUse
    };
    let mut stop_sequence = None;
    let stops: Vec<String> = match d {
        Dialect::OpenAi => match body.get("stop") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => vec![],
        },
        Dialect::Anthropic => body
            .get("stop_sequences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
    };
    if tool_calls.is_empty() {
        if let Some((pos, s)) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s.as_str()).map(|p| (p, s.clone())))
            .min_by_key(|(p, _)| *p)
        {
            text.truncate(pos);
            reason = Reason::StopSequence;
            stop_sequence = Some(s);
        }
    }
    let max = body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
        .and_then(Value::as_u64);
    if let Some(max) = max {
        if tool_calls.is_empty() && words(&text) > max {
            text = text
                .split_whitespace()
                .take(max as usize)
                .collect::<Vec<_>>()
                .join(" ");
            reason = Reason::MaxTokens;
            stop_sequence = None;
        }
    }
    Answer {
        output_tokens: words(&text) + tool_calls.len() as u64,
        input_tokens: input_tokens(d, body),
        text,
        tool_calls,
        reason,
        stop_sequence,
    }
}

/// Splits text into word pieces that concatenate back to it: "Echo:", " hello", " world".
fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for (i, part) in text.split(' ').enumerate() {
        if i > 0 {
            cur.push(' ');
        }
        cur.push_str(part);
        if !part.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits tool arguments into 3 roughly equal pieces (on char boundaries).
fn arg_pieces(args: &str) -> Vec<String> {
    let chars: Vec<char> = args.chars().collect();
    let n = chars.len().div_ceil(3).max(1);
    chars.chunks(n).map(|c| c.iter().collect()).collect()
}

fn is_stream(body: &Value) -> bool {
    body.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// Pause before a deliberate cut so the bytes before it are flushed.
const CUT_GRACE: Duration = Duration::from_millis(20);

const CREATED: u64 = 1_700_000_000;

// ---------------------------------------------------------------------------------------
// Streaming plumbing

/// Frames of an SSE response plus what to do at the end.
struct StreamPlan {
    frames: Vec<String>,
    delay: Option<Duration>,
    /// Cut the connection after this many frames.
    truncate_after: Option<usize>,
    /// Stop sending (but keep the connection open) after this many frames.
    stall_after: Option<usize>,
}

fn sse_response(
    guard: OutcomeGuard,
    plan: StreamPlan,
    extra: Vec<(&'static str, String)>,
) -> Response {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        let total = plan.frames.len();
        for (i, frame) in plan.frames.into_iter().enumerate() {
            if plan.truncate_after == Some(i) {
                // Let the frames sent so far reach the socket before the cut.
                tokio::time::sleep(CUT_GRACE).await;
                let _ = tx
                    .send(Err(std::io::Error::other("mock-truncate: connection cut")))
                    .await;
                guard.finish(Outcome::Truncated);
                return;
            }
            if plan.stall_after == Some(i) {
                tx.closed().await;
                return; // Cancelled
            }
            if let Some(d) = plan.delay {
                tokio::select! {
                    _ = tokio::time::sleep(d) => {}
                    _ = tx.closed() => { return; } // guard records Cancelled
                }
            }
            if tx.send(Ok(Bytes::from(frame))).await.is_err() {
                return; // Cancelled
            }
            if i + 1 == total {
                guard.finish(Outcome::Completed);
                return;
            }
        }
        guard.finish(Outcome::Completed);
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    for (k, v) in extra {
        h.insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

/// Non-stream `mock-truncate`: announce the full length, send half, cut.
fn truncated_json(body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap();
    let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
    let len = bytes.len();
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let _ = tx.send(Ok(half)).await;
        // Let the head and the partial body reach the socket before the cut.
        tokio::time::sleep(CUT_GRACE).await;
        let _ = tx
            .send(Err(std::io::Error::other("mock-truncate: connection cut")))
            .await;
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    h.insert("content-length", HeaderValue::from(len));
    resp
}

// ---------------------------------------------------------------------------------------
// OpenAI

fn openai_usage(a: &Answer) -> Value {
    json!({
        "prompt_tokens": a.input_tokens,
        "completion_tokens": a.output_tokens,
        "total_tokens": a.input_tokens + a.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
        }
    })
}

fn openai_finish(r: Reason) -> &'static str {
    match r {
        Reason::End | Reason::StopSequence => "stop",
        Reason::MaxTokens => "length",
        Reason::ToolUse => "tool_calls",
    }
}

async fn openai_chat(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let d = Dialect::OpenAi;
    let req = record(&shared, &method, &uri, &headers, raw);
    let body = match check(d, &shared, &req) {
        Ok(b) => b,
        Err(r) => return finish(&shared, &req, r),
    };
    let rid = request_id_header(d, req.seq);
    let Some(model) = body
        .get("model")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        let b = error_body(
            d,
            "invalid_request_error",
            "you must provide a model parameter",
            None,
            None,
        );
        return finish(
            &shared,
            &req,
            json_response(StatusCode::BAD_REQUEST, &b, &[rid]),
        );
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        let b = error_body(
            d,
            "invalid_request_error",
            "Missing required parameter: 'messages'.",
            Some("messages"),
            Some("missing_required_parameter"),
        );
        return finish(
            &shared,
            &req,
            json_response(StatusCode::BAD_REQUEST, &b, &[rid]),
        );
    }
    let trigger = trigger_name(&shared, &model);
    if let Some(r) = model_failure(d, &trigger, req.seq) {
        return finish(&shared, &req, r);
    }
    if let Some(r) = once_failure(&shared, d, &trigger, &body, req.seq) {
        return finish(&shared, &req, r);
    }
    let guard = OutcomeGuard {
        shared: shared.clone(),
        idx: req.idx,
        armed: true,
    };
    if trigger.contains("mock-hang") || (trigger.contains("mock-stall") && !is_stream(&body)) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let stream = is_stream(&body);
    let delay = slow_delay(&trigger);
    let a = answer(d, &body);
    let id = format!("chatcmpl-mock{}", req.seq);
    let fingerprint = "fp_mock";

    if !stream {
        if let Some(dl) = delay {
            tokio::time::sleep(dl).await;
        }
        let mut message = json!({"role": "assistant", "content": if a.tool_calls.is_empty() { json!(a.text) } else { Value::Null }, "refusal": null, "annotations": []});
        if !a.tool_calls.is_empty() {
            message["tool_calls"] = Value::Array(
                a.tool_calls
                    .iter()
                    .enumerate()
                    .map(|(i, tc)| json!({"id": format!("call_mock{}_{i}", req.seq), "type": "function", "function": {"name": tc.name, "arguments": tc.arguments}}))
                    .collect(),
            );
        }
        let b = json!({
            "id": id, "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": openai_finish(a.reason)}],
            "usage": openai_usage(&a),
            "service_tier": "default",
            "system_fingerprint": fingerprint,
        });
        if trigger.contains("mock-truncate") {
            guard.finish(Outcome::Truncated);
            return truncated_json(&b);
        }
        guard.finish(Outcome::Completed);
        return json_response(StatusCode::OK, &b, &[rid]);
    }

    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunk = |choices: Value, usage: Option<Value>| -> String {
        let mut c = json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "service_tier": "default", "system_fingerprint": fingerprint, "choices": choices});
        if include_usage {
            c["usage"] = usage.unwrap_or(Value::Null);
        }
        format!("data: {}\n\n", serde_json::to_string(&c).unwrap())
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let mut frames = Vec::new();
    if a.tool_calls.is_empty() {
        frames.push(chunk(
            choice(
                json!({"role": "assistant", "content": "", "refusal": null}),
                None,
            ),
            None,
        ));
        for p in pieces(&a.text) {
            frames.push(chunk(choice(json!({"content": p}), None), None));
        }
    } else {
        for (i, tc) in a.tool_calls.iter().enumerate() {
            let mut delta = json!({"tool_calls": [{"index": i, "id": format!("call_mock{}_{i}", req.seq), "type": "function", "function": {"name": tc.name, "arguments": ""}}]});
            if i == 0 {
                delta["role"] = json!("assistant");
                delta["content"] = Value::Null;
                delta["refusal"] = Value::Null;
            }
            frames.push(chunk(choice(delta, None), None));
            for p in arg_pieces(&tc.arguments) {
                frames.push(chunk(
                    choice(
                        json!({"tool_calls": [{"index": i, "function": {"arguments": p}}]}),
                        None,
                    ),
                    None,
                ));
            }
        }
    }
    frames.push(chunk(
        choice(json!({}), Some(openai_finish(a.reason))),
        None,
    ));
    if include_usage {
        frames.push(chunk(json!([]), Some(openai_usage(&a))));
    }
    frames.push("data: [DONE]\n\n".to_string());
    let mut truncate_after = None;
    if trigger.contains("mock-truncate") {
        truncate_after = Some(2.min(frames.len() - 1));
    }
    let stall_after = trigger.contains("mock-stall").then_some(3);
    if trigger.contains("mock-stream-error") {
        frames.truncate(2);
        let e = error_body(
            d,
            "server_error",
            "The server had an error while processing your request. Sorry about that!",
            None,
            None,
        );
        frames.push(format!("data: {}\n\n", e));
    }
    sse_response(
        guard,
        StreamPlan {
            frames,
            delay,
            truncate_after,
            stall_after,
        },
        vec![rid],
    )
}

// ---------------------------------------------------------------------------------------
// Anthropic

fn anthropic_stop(r: Reason) -> &'static str {
    match r {
        Reason::End => "end_turn",
        Reason::StopSequence => "stop_sequence",
        Reason::MaxTokens => "max_tokens",
        Reason::ToolUse => "tool_use",
    }
}

fn anthropic_validate(
    d: Dialect,
    body: &Value,
    seq: u64,
    need_max_tokens: bool,
) -> Result<String, Response> {
    let rid = request_id_header(d, seq);
    let Some(model) = body.get("model").and_then(Value::as_str) else {
        let b = error_body(
            d,
            "invalid_request_error",
            "model: Field required",
            None,
            None,
        );
        return Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]));
    };
    if !body.get("messages").is_some_and(Value::is_array) {
        let b = error_body(
            d,
            "invalid_request_error",
            "messages: Field required",
            None,
            None,
        );
        return Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]));
    }
    if need_max_tokens && !body.get("max_tokens").is_some_and(Value::is_u64) {
        let b = error_body(
            d,
            "invalid_request_error",
            "max_tokens: Field required",
            None,
            None,
        );
        return Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]));
    }
    if let Some(msgs) = body.get("messages").and_then(Value::as_array) {
        if msgs.iter().any(|m| {
            !matches!(
                m.get("role").and_then(Value::as_str),
                Some("user" | "assistant")
            )
        }) {
            let b = error_body(d, "invalid_request_error", "messages: roles must be \"user\" or \"assistant\" (use the top-level `system` parameter for system prompts)", None, None);
            return Err(json_response(StatusCode::BAD_REQUEST, &b, &[rid]));
        }
    }
    Ok(model.to_string())
}

/// The mock's signature of a thinking text (FNV-1a, hex): stands in for Anthropic's
/// opaque signature, so a test sees whether a gateway passed the text through unchanged.
pub fn thinking_signature(thinking: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in thinking.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("mocksig{h:016x}")
}

fn thinking_enabled(body: &Value) -> bool {
    body.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled")
}

/// The real API's checks on thinking blocks sent back (see the module docs).
fn thinking_check(d: Dialect, body: &Value, seq: u64) -> Result<(), Response> {
    let bad = |msg: String| {
        let b = error_body(d, "invalid_request_error", &msg, None, None);
        Err(json_response(
            StatusCode::BAD_REQUEST,
            &b,
            &[request_id_header(d, seq)],
        ))
    };
    let msgs = body
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (mi, m) in msgs.iter().enumerate() {
        let Some(blocks) = m.get("content").and_then(Value::as_array) else {
            continue;
        };
        for (bi, b) in blocks.iter().enumerate() {
            if b.get("type").and_then(Value::as_str) == Some("thinking") {
                let text = b
                    .get("thinking")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let sig = b
                    .get("signature")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if sig != thinking_signature(text) {
                    return bad(format!(
                        "messages.{mi}.content.{bi}: Invalid `signature` in `thinking` block"
                    ));
                }
            }
        }
    }
    let answering_tool = msgs.last().is_some_and(|m| {
        m.get("content").and_then(Value::as_array).is_some_and(|a| {
            a.iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        })
    });
    if thinking_enabled(body) && answering_tool && msgs.len() >= 2 {
        let mi = msgs.len() - 2;
        let first = msgs[mi]
            .pointer("/content/0/type")
            .and_then(Value::as_str)
            .unwrap_or("text");
        if !matches!(first, "thinking" | "redacted_thinking") {
            return bad(format!("messages.{mi}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."));
        }
    }
    Ok(())
}

async fn anthropic_count_tokens(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let d = Dialect::Anthropic;
    let req = record(&shared, &method, &uri, &headers, raw);
    let body = match check(d, &shared, &req) {
        Ok(b) => b,
        Err(r) => return finish(&shared, &req, r),
    };
    if let Err(r) = anthropic_validate(d, &body, req.seq, false) {
        return finish(&shared, &req, r);
    }
    let n = input_tokens(d, &body);
    let r = json_response(
        StatusCode::OK,
        &json!({"input_tokens": n}),
        &[request_id_header(d, req.seq)],
    );
    finish(&shared, &req, r)
}

async fn anthropic_messages(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let d = Dialect::Anthropic;
    let req = record(&shared, &method, &uri, &headers, raw);
    let body = match check(d, &shared, &req) {
        Ok(b) => b,
        Err(r) => return finish(&shared, &req, r),
    };
    let rid = request_id_header(d, req.seq);
    let model = match anthropic_validate(d, &body, req.seq, true) {
        Ok(m) => m,
        Err(r) => return finish(&shared, &req, r),
    };
    if let Err(r) = thinking_check(d, &body, req.seq) {
        return finish(&shared, &req, r);
    }
    let trigger = trigger_name(&shared, &model);
    if let Some(r) = model_failure(d, &trigger, req.seq) {
        return finish(&shared, &req, r);
    }
    if let Some(r) = once_failure(&shared, d, &trigger, &body, req.seq) {
        return finish(&shared, &req, r);
    }
    let guard = OutcomeGuard {
        shared: shared.clone(),
        idx: req.idx,
        armed: true,
    };
    if trigger.contains("mock-hang") || (trigger.contains("mock-stall") && !is_stream(&body)) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let stream = is_stream(&body);
    let delay = slow_delay(&trigger);
    let a = answer(d, &body);
    let id = format!("msg_mock{}", req.seq);
    let usage = json!({"input_tokens": a.input_tokens, "output_tokens": a.output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"});
    let tool_id = |i: usize| format!("toolu_mock{}_{i}", req.seq);
    let thinking = thinking_enabled(&body).then(|| {
        let last_user = body
            .get("messages")
            .and_then(Value::as_array)
            .and_then(|m| m.iter().rev().find(|m| m["role"] == "user"))
            .map(|m| content_text(&m["content"]))
            .unwrap_or_default();
        format!("Considering: {last_user}")
    });

    if !stream {
        if let Some(dl) = delay {
            tokio::time::sleep(dl).await;
        }
        let mut content = Vec::new();
        if let Some(t) = &thinking {
            content.push(
                json!({"type": "thinking", "thinking": t, "signature": thinking_signature(t)}),
            );
        }
        if !a.text.is_empty() {
            content.push(json!({"type": "text", "text": a.text}));
        }
        for (i, tc) in a.tool_calls.iter().enumerate() {
            let input: Value = serde_json::from_str(&tc.arguments).unwrap();
            content.push(
                json!({"type": "tool_use", "id": tool_id(i), "name": tc.name, "input": input}),
            );
        }
        let b = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": anthropic_stop(a.reason), "stop_sequence": a.stop_sequence,
            "usage": usage,
        });
        if trigger.contains("mock-truncate") {
            guard.finish(Outcome::Truncated);
            return truncated_json(&b);
        }
        guard.finish(Outcome::Completed);
        return json_response(StatusCode::OK, &b, &[rid]);
    }

    let ev = |name: &str, data: Value| {
        format!(
            "event: {name}\ndata: {}\n\n",
            serde_json::to_string(&data).unwrap()
        )
    };
    let mut frames = Vec::new();
    frames.push(ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": a.input_tokens, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}}}),
    ));
    let mut index = 0;
    let mut pinged = false;
    if let Some(t) = &thinking {
        frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
        for p in pieces(t) {
            frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": p}})));
        }
        frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": thinking_signature(t)}})));
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    if !a.text.is_empty() || a.tool_calls.is_empty() {
        frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
        frames.push(ev("ping", json!({"type": "ping"})));
        pinged = true;
        for p in pieces(&a.text) {
            frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": p}})));
        }
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (i, tc) in a.tool_calls.iter().enumerate() {
        frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_id(i), "name": tc.name, "input": {}}})));
        if !pinged {
            frames.push(ev("ping", json!({"type": "ping"})));
            pinged = true;
        }
        frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})));
        for p in arg_pieces(&tc.arguments) {
            frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}})));
        }
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    frames.push(ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": anthropic_stop(a.reason), "stop_sequence": a.stop_sequence},
            "usage": {"output_tokens": a.output_tokens}}),
    ));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    let mut truncate_after = None;
    if trigger.contains("mock-truncate") {
        truncate_after = Some(3.min(frames.len() - 1));
    }
    let stall_after = trigger.contains("mock-stall").then_some(4);
    if trigger.contains("mock-stream-error") {
        frames.truncate(3);
        frames.push(ev(
            "error",
            error_body(d, "overloaded_error", "Overloaded", None, None),
        ));
    }
    sse_response(
        guard,
        StreamPlan {
            frames,
            delay,
            truncate_after,
            stall_after,
        },
        vec![rid],
    )
}

// ---------------------------------------------------------------------------------------
// Models and fallback

const MODEL_IDS: &[&str] = &[
    "gpt-4o-mini",
    "gpt-4o",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
];

async fn models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let req = record(&shared, &method, &uri, &headers, Bytes::new());
    let anthropic = headers.contains_key("x-api-key") || headers.contains_key("anthropic-version");
    let d = if anthropic {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    // Auth only (no body on GET).
    let auth_ok = match d {
        Dialect::OpenAi => {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|a| a.strip_prefix("Bearer "))
                == Some(shared.cfg.openai_key.as_str())
        }
        Dialect::Anthropic => {
            headers.get("x-api-key").and_then(|v| v.to_str().ok())
                == Some(shared.cfg.anthropic_key.as_str())
        }
    };
    let rid = request_id_header(d, req.seq);
    let resp = if !auth_ok {
        let b = match d {
            Dialect::OpenAi => error_body(
                d,
                "invalid_request_error",
                "Incorrect API key provided.",
                None,
                Some("invalid_api_key"),
            ),
            Dialect::Anthropic => {
                error_body(d, "authentication_error", "invalid x-api-key", None, None)
            }
        };
        json_response(StatusCode::UNAUTHORIZED, &b, &[rid])
    } else if anthropic {
        let data: Vec<Value> = MODEL_IDS
            .iter()
            .filter(|m| m.starts_with("claude"))
            .map(|m| json!({"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({"data": data, "has_more": false, "first_id": data.first().map(|m| m["id"].clone()), "last_id": data.last().map(|m| m["id"].clone())}),
            &[rid],
        )
    } else {
        let data: Vec<Value> = MODEL_IDS
            .iter()
            .filter(|m| m.starts_with("gpt"))
            .map(|m| json!({"id": m, "object": "model", "created": CREATED, "owned_by": "system"}))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({"object": "list", "data": data}),
            &[rid],
        )
    };
    finish(&shared, &req, resp)
}

async fn fallback(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, Infallible> {
    let req = record(&shared, &method, &uri, &headers, raw);
    let d = if headers.contains_key("x-api-key") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    let b = match d {
        Dialect::OpenAi => error_body(
            d,
            "invalid_request_error",
            &format!("Invalid URL ({} {})", method, uri.path()),
            None,
            None,
        ),
        Dialect::Anthropic => error_body(d, "not_found_error", "Not found", None, None),
    };
    Ok(finish(
        &shared,
        &req,
        json_response(StatusCode::NOT_FOUND, &b, &[]),
    ))
}
