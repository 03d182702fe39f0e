//! A mock of AWS Bedrock Runtime's Converse API, on its own port, in Bedrock's exact wire
//! format, that checks every request's SigV4 signature with botocore's signer.
//!
//! | Route                                  | Answer |
//! |----------------------------------------|--------|
//! | `POST /model/{modelId}/converse`        | Converse JSON (`output.message`, `stopReason`, `usage`, `metrics`) |
//! | `POST /model/{modelId}/converse-stream` | `application/vnd.amazon.eventstream` frames (prelude, headers, payload, CRC32s written by `aws-smithy-eventstream`): `messageStart`, `contentBlockDelta`… `contentBlockStop`, `messageStop`, `metadata` |
//!
//! # Signature
//! Each request is handed (method, raw path and query, headers, body) to
//! `integration-tests/python/sigv4_verify.py`, a long-running botocore process from the
//! `scripts/setup-botocore.sh` venv, which recomputes the signature with
//! `botocore.auth.SigV4Auth` for the configured key pair and region. A wrong or missing
//! signature gets Bedrock's 403 (`InvalidSignatureException`, `UnrecognizedClientException`,
//! `MissingAuthenticationTokenException`) with its `x-amzn-ErrorType` header, and is
//! recorded with `verified: false`.
//!
//! # Answers
//! `Echo: <text of the last user message>`, streamed one word per `contentBlockDelta`; a
//! last user message with `toolResult` blocks gets `Tool result: <their text>`; one with
//! `TOOL_CALL` in its text and a `toolConfig` gets a `toolUse` of the first tool with
//! input `{"location":"Paris","unit":"celsius"}` and `stopReason: tool_use`. Usage counts
//! words: `inputTokens` = system + message text, `outputTokens` = answer words (+1 per tool
//! call). Bedrock's `ValidationException`s: a conversation that does not start with a user
//! message or does not alternate roles, an image without inline `bytes`.
//!
//! # Triggers (in the model id)
//! | model id contains | behaviour |
//! |-------------------|-----------|
//! | `throttle-once`   | the first request for that model gets 429 `ThrottlingException`, later ones are answered |
//! | `throttle`        | 429 `ThrottlingException` |
//! | `stream-throttle` | streams: `messageStart`, one delta, then an in-stream `throttlingException` |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use aws_smithy_types::event_stream::{Header, HeaderValue as FrameHeaderValue, Message};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;

/// The key pair and region the mock accepts.
#[derive(Debug, Clone)]
pub struct BedrockMockConfig {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: String,
}

impl Default for BedrockMockConfig {
    fn default() -> Self {
        BedrockMockConfig {
            access_key_id: "AKIDSWITCHYARDTEST".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSWITCHYARD".into(),
            session_token: None,
            region: "us-east-1".into(),
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct BedrockCall {
    /// The path as sent, still percent-encoded (`/model/anthropic.x-v1%3A0/converse`).
    pub raw_path: String,
    /// The model id, decoded.
    pub model_id: String,
    pub stream: bool,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    /// Whether botocore accepted the signature.
    pub verified: bool,
    /// botocore's reason when it did not.
    pub refusal: Option<String>,
}

impl BedrockCall {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The botocore venv's Python (`scripts/setup-botocore.sh`).
pub fn botocore_python() -> PathBuf {
    let cache = std::env::var_os("SWITCHYARD_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/switchyard"),
        PathBuf::from,
    );
    cache.join("venv-botocore/bin/python")
}

struct Verifier {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl Verifier {
    fn spawn() -> anyhow::Result<Verifier> {
        let python = botocore_python();
        anyhow::ensure!(
            python.exists(),
            "{} is missing: run scripts/setup-botocore.sh first",
            python.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/sigv4_verify.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| anyhow::anyhow!("stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow::anyhow!("stdout"))?;
        Ok(Verifier {
            _child: child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    async fn check(&mut self, request: &Value) -> anyhow::Result<Value> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.stdin.write_all(&line).await?;
        self.stdin.flush().await?;
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).await?;
        Ok(serde_json::from_str(&answer)?)
    }
}

struct Shared {
    cfg: BedrockMockConfig,
    verifier: tokio::sync::Mutex<Verifier>,
    calls: Mutex<Vec<BedrockCall>>,
    throttled_once: Mutex<HashSet<String>>,
}

/// A running Bedrock mock; stops when dropped.
pub struct BedrockMock {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for BedrockMock {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BedrockMock {
    pub async fn start(cfg: BedrockMockConfig) -> anyhow::Result<BedrockMock> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            cfg,
            verifier: tokio::sync::Mutex::new(Verifier::spawn()?),
            calls: Mutex::new(Vec::new()),
            throttled_once: Mutex::new(HashSet::new()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(BedrockMock { addr, shared, task })
    }

    /// `http://ADDR`, the provider's `base_url` (endpoint override).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn calls(&self) -> Vec<BedrockCall> {
        self.shared.calls.lock().unwrap().clone()
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn aws_error(status: u16, kind: &str, message: &str) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header(
            "x-amzn-errortype",
            format!("{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        )
        .header("x-amzn-requestid", uuid_like())
        .body(Body::from(
            json!({"message": message, "__type": format!("com.amazon.coral.service#{kind}")})
                .to_string(),
        ))
        .unwrap()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "00000000-0000-4000-8000-{:012x}",
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn signature_refusal(kind: &str) -> Response {
    let message = match kind {
        "UnrecognizedClientException" => "The security token included in the request is invalid.",
        "MissingAuthenticationTokenException" => "Missing Authentication Token",
        "IncompleteSignatureException" => "The request signature does not conform to AWS standards.",
        _ => "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    };
    aws_error(403, kind, message)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw_path = uri.path().to_string();
    let route = raw_path
        .strip_prefix("/model/")
        .and_then(|rest| rest.rsplit_once('/'));
    let Some((encoded_id, action)) =
        route.filter(|(_, a)| *a == "converse" || *a == "converse-stream")
    else {
        return aws_error(404, "UnknownOperationException", "unknown operation");
    };
    let model_id = percent_decode(encoded_id);
    let stream = action == "converse-stream";
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let url = format!(
        "http://{host}{}",
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let check = json!({
        "method": method.as_str(),
        "url": url,
        "headers": header_list,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(&body),
        "access_key_id": shared.cfg.access_key_id,
        "secret_access_key": shared.cfg.secret_access_key,
        "session_token": shared.cfg.session_token,
        "region": shared.cfg.region,
    });
    let verdict = shared
        .verifier
        .lock()
        .await
        .check(&check)
        .await
        .unwrap_or_else(
            |e| json!({"ok": false, "error": "InternalFailure", "reason": e.to_string()}),
        );
    let verified = verdict["ok"] == true;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.calls.lock().unwrap().push(BedrockCall {
        raw_path,
        model_id: model_id.clone(),
        stream,
        headers: header_list,
        body: parsed.clone(),
        verified,
        refusal: verdict["reason"].as_str().map(str::to_owned),
    });
    if !verified {
        return signature_refusal(
            verdict["error"]
                .as_str()
                .unwrap_or("InvalidSignatureException"),
        );
    }
    if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json") {
        return aws_error(
            400,
            "ValidationException",
            "Content-Type must be application/json",
        );
    }

    if model_id.contains("throttle-once") {
        let first = shared
            .throttled_once
            .lock()
            .unwrap()
            .insert(model_id.clone());
        if first {
            return aws_error(
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            );
        }
    } else if model_id.contains("throttle") && !model_id.contains("stream-throttle") {
        return aws_error(
            429,
            "ThrottlingException",
            "Too many requests, please wait before trying again.",
        );
    }

    let answer = match Answer::of(&parsed) {
        Ok(a) => a,
        Err(message) => return aws_error(400, "ValidationException", &message),
    };
    if stream {
        stream_response(&answer, model_id.contains("stream-throttle"))
    } else {
        Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("x-amzn-requestid", uuid_like())
            .body(Body::from(answer.json().to_string()))
            .unwrap()
    }
}

struct Answer {
    text: String,
    tool: Option<(String, Value)>,
    input_tokens: u64,
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn block_text(blocks: &[Value]) -> String {
    blocks
        .iter()
        .filter_map(|b| b["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Answer {
    /// Checks the request as Bedrock does and picks the answer.
    fn of(req: &Value) -> Result<Answer, String> {
        let messages = req["messages"]
            .as_array()
            .ok_or("1 validation error detected: Value null at 'messages' failed to satisfy constraint: Member must not be null")?;
        let mut input_tokens = req["system"]
            .as_array()
            .map_or(0, |s| words(&block_text(s)));
        let mut last_role = "";
        for (i, m) in messages.iter().enumerate() {
            let role = m["role"].as_str().unwrap_or_default();
            if i == 0 && role != "user" {
                return Err("A conversation must start with a user message. Try again with a conversation that starts with a user message.".into());
            }
            if role == last_role {
                return Err("A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.".into());
            }
            last_role = role;
            for b in m["content"].as_array().into_iter().flatten() {
                if let Some(t) = b["text"].as_str() {
                    if t.trim().is_empty() {
                        return Err("The text field in the ContentBlock object is blank. Add text to the text field, and try again.".into());
                    }
                    input_tokens += words(t);
                }
                if let Some(img) = b.get("image") {
                    if img["source"]["bytes"].as_str().is_none() {
                        return Err("The image source must contain bytes.".into());
                    }
                }
                if let Some(r) = b.get("toolResult") {
                    input_tokens += words(&block_text(
                        r["content"].as_array().map_or(&[][..], Vec::as_slice),
                    ));
                }
            }
        }
        let last = messages.last().ok_or("messages must not be empty")?;
        let blocks = last["content"].as_array().map_or(&[][..], Vec::as_slice);
        let results: Vec<&Value> = blocks.iter().filter_map(|b| b.get("toolResult")).collect();
        let text = block_text(blocks);
        let tools = req["toolConfig"]["tools"].as_array();
        if !results.is_empty() {
            let result_text = results
                .iter()
                .map(|r| block_text(r["content"].as_array().map_or(&[][..], Vec::as_slice)))
                .collect::<Vec<_>>()
                .join(" ");
            return Ok(Answer {
                text: format!("Tool result: {result_text}"),
                tool: None,
                input_tokens,
            });
        }
        if text.contains("TOOL_CALL") {
            if let Some(name) = tools
                .and_then(|t| t.first())
                .and_then(|t| t["toolSpec"]["name"].as_str())
            {
                return Ok(Answer {
                    text: format!("I will call {name}."),
                    tool: Some((
                        name.to_owned(),
                        json!({"location": "Paris", "unit": "celsius"}),
                    )),
                    input_tokens,
                });
            }
        }
        Ok(Answer {
            text: format!("Echo: {text}"),
            tool: None,
            input_tokens,
        })
    }

    fn output_tokens(&self) -> u64 {
        words(&self.text) + u64::from(self.tool.is_some())
    }

    fn stop_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_use"
        } else {
            "end_turn"
        }
    }

    fn usage(&self) -> Value {
        json!({
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens(),
            "totalTokens": self.input_tokens + self.output_tokens(),
        })
    }

    fn json(&self) -> Value {
        let mut content = vec![json!({"text": self.text})];
        if let Some((name, input)) = &self.tool {
            content.push(
                json!({"toolUse": {"toolUseId": "tooluse_mock0001", "name": name, "input": input}}),
            );
        }
        json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason(),
            "usage": self.usage(),
            "metrics": {"latencyMs": 7},
        })
    }
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame("event", ":event-type", kind, payload)
}

fn frame(message_type: &str, kind_header: &'static str, kind: &str, payload: Value) -> Vec<u8> {
    let m = Message::new(payload.to_string().into_bytes())
        .add_header(Header::new(
            ":message-type",
            FrameHeaderValue::String(message_type.to_owned().into()),
        ))
        .add_header(Header::new(
            kind_header,
            FrameHeaderValue::String(kind.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            FrameHeaderValue::String("application/json".into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&m, &mut out).expect("encode frame");
    out
}

fn stream_response(answer: &Answer, throttle: bool) -> Response {
    let mut frames = vec![event("messageStart", json!({"role": "assistant"}))];
    let mut first = true;
    for w in answer.text.split(' ') {
        let piece = if first { w.to_owned() } else { format!(" {w}") };
        first = false;
        frames.push(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": piece}}),
        ));
        if throttle {
            frames.push(frame(
                "exception",
                ":exception-type",
                "throttlingException",
                json!({"message": "Too many requests, please wait before trying again."}),
            ));
            break;
        }
    }
    if !throttle {
        frames.push(event("contentBlockStop", json!({"contentBlockIndex": 0})));
        if let Some((name, input)) = &answer.tool {
            frames.push(event("contentBlockStart", json!({"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tooluse_mock0001", "name": name}}})));
            let args = input.to_string();
            let (a, b) = args.split_at(args.len() / 2);
            for part in [a, b] {
                frames.push(event(
                    "contentBlockDelta",
                    json!({"contentBlockIndex": 1, "delta": {"toolUse": {"input": part}}}),
                ));
            }
            frames.push(event("contentBlockStop", json!({"contentBlockIndex": 1})));
        }
        frames.push(event(
            "messageStop",
            json!({"stopReason": answer.stop_reason()}),
        ));
        frames.push(event(
            "metadata",
            json!({"usage": answer.usage(), "metrics": {"latencyMs": 7}}),
        ));
    }
    let chunks = frames
        .into_iter()
        .map(|f| Ok::<_, std::convert::Infallible>(Bytes::from(f)));
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/vnd.amazon.eventstream")
        .header("x-amzn-requestid", uuid_like())
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap()
}
