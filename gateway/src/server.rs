//! The HTTP edge: routes, body limits, and rendering canonical results and errors in
//! the dialect the client spoke. The request path reads as one line in `handle_chat`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::json;
use tokio::sync::oneshot;

use crate::canonical::{ChatRequest, Dialect, GatewayError, StreamEvent};
use crate::config::Config;
use crate::dialects::{anthropic, openai};
use crate::providers::{self, Call, EventStream, ForwardHeaders};
use crate::routing::{ModelMap, Router};

/// Everything a request needs, built once at start-up.
pub struct AppState {
    pub router: Arc<dyn Router>,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn from_config(config: &Config) -> anyhow::Result<AppState> {
        let mut entries = Vec::with_capacity(config.providers.len());
        for p in &config.providers {
            let provider = providers::build(p, config.max_sse_event_bytes)
                .with_context(|| format!("cannot set up provider {:?}", p.name))?;
            entries.push((provider, p.models.clone()));
        }
        Ok(AppState {
            router: Arc::new(ModelMap::new(entries)),
            max_body_bytes: config.max_body_bytes,
        })
    }
}

pub fn app(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

/// A gateway serving in the background (tests, embedding).
pub struct RunningServer {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds `config.listen` and serves in a background task.
pub async fn spawn(config: Config) -> anyhow::Result<RunningServer> {
    let state = Arc::new(AppState::from_config(&config)?);
    let listener = bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        shutdown: Some(tx),
        task,
    })
}

pub async fn bind(listen: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))
}

pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Without it small responses can wait ~40 ms on a delayed ACK.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn chat_completions(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle_chat(&state, Dialect::OpenAi, &headers, body).await
}

async fn messages(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle_chat(&state, Dialect::Anthropic, &headers, body).await
}

/// decode dialect → route → dispatch → stream back in the client's dialect.
async fn handle_chat(state: &AppState, dialect: Dialect, headers: &HeaderMap, body: Body) -> Response {
    let result = async {
        let body = read_body(body, headers, state.max_body_bytes).await?;
        let request = parse_request(dialect, &body)?;
        let route = state.router.route(&request)?;
        let forward = forward_headers(headers);
        let call = Call {
            request: &request,
            upstream_model: &route.upstream_model,
            headers: &forward,
        };
        if request.stream {
            let events = route.provider.stream(call).await?;
            stream_response(dialect, &request, events).await
        } else {
            let response = route.provider.chat(call).await?;
            Ok(json_response(StatusCode::OK, render_response(dialect, &response)))
        }
    }
    .await;
    result.unwrap_or_else(|err| error_response(dialect, &err))
}

async fn count_tokens(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let body = read_body(body, &headers, state.max_body_bytes).await?;
        let request = anthropic::parse_count_tokens_request(&body)?;
        let route = state.router.route(&request)?;
        let forward = forward_headers(&headers);
        let call = Call {
            request: &request,
            upstream_model: &route.upstream_model,
            headers: &forward,
        };
        let tokens = route.provider.count_tokens(call).await?;
        Ok(json_response(StatusCode::OK, json!({ "input_tokens": tokens })))
    }
    .await;
    result.unwrap_or_else(|err: GatewayError| error_response(Dialect::Anthropic, &err))
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let models = state.router.models();
    // The Anthropic SDK always sends `anthropic-version`; answer it in its own shape.
    let body = if headers.contains_key("anthropic-version") {
        let data: Vec<_> = models
            .iter()
            .map(|m| {
                json!({
                    "type": "model",
                    "id": m.id,
                    "display_name": m.id,
                    "created_at": "1970-01-01T00:00:00Z",
                })
            })
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": models.first().map(|m| m.id.clone()),
            "last_id": models.last().map(|m| m.id.clone()),
        })
    } else {
        let data: Vec<_> = models
            .iter()
            .map(|m| json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}))
            .collect();
        json!({ "object": "list", "data": data })
    };
    json_response(StatusCode::OK, body)
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    json_response(
        StatusCode::OK,
        json!({"status": "ready", "models": state.router.models().len()}),
    )
}

async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    let dialect = if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else {
        Dialect::OpenAi
    };
    error_response(
        dialect,
        &GatewayError::NotFound(format!("no route for {}", uri.path())),
    )
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::PayloadTooLarge { limit })
        }
        Err(e) => Err(GatewayError::InvalidRequest(format!(
            "cannot read request body: {e}"
        ))),
    }
}

fn forward_headers(headers: &HeaderMap) -> ForwardHeaders {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ForwardHeaders {
        anthropic_version: get("anthropic-version"),
        anthropic_beta: get("anthropic-beta"),
    }
}

fn parse_request(dialect: Dialect, body: &[u8]) -> Result<ChatRequest, GatewayError> {
    match dialect {
        Dialect::OpenAi => openai::parse_request(body),
        Dialect::Anthropic => anthropic::parse_request(body),
    }
}

fn render_response(dialect: Dialect, response: &crate::canonical::ChatResponse) -> serde_json::Value {
    match dialect {
        Dialect::OpenAi => openai::render_response(response),
        Dialect::Anthropic => anthropic::render_response(response),
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub fn error_response(dialect: Dialect, err: &GatewayError) -> Response {
    let body = match dialect {
        Dialect::OpenAi => openai::render_error(err),
        Dialect::Anthropic => anthropic::render_error(err),
    };
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = json_response(status, body);
    if let Some(value) = err.retry_after().and_then(|v| HeaderValue::from_str(v).ok()) {
        response.headers_mut().insert(http::header::RETRY_AFTER, value);
    }
    response
}

enum Encoder {
    OpenAi(openai::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
}

impl Encoder {
    fn encode(&mut self, ev: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.encode(ev, out),
            Encoder::Anthropic(e) => e.encode(ev, out),
        }
    }
    fn encode_error(&mut self, err: &GatewayError, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.encode_error(err, out),
            Encoder::Anthropic(e) => e.encode_error(err, out),
        }
    }
    fn finish(&mut self, out: &mut Vec<u8>) {
        match self {
            Encoder::OpenAi(e) => e.finish(out),
            Encoder::Anthropic(e) => e.finish(out),
        }
    }
}

/// Streams canonical events back in the client's dialect. The first event is awaited
/// before the response head is sent, so an upstream that fails at once still gets a
/// proper error status instead of a 200 with an error frame.
async fn stream_response(
    dialect: Dialect,
    request: &ChatRequest,
    mut events: EventStream,
) -> Result<Response, GatewayError> {
    let first = match events.next().await {
        Some(Ok(ev)) => ev,
        Some(Err(e)) => return Err(e),
        None => {
            return Err(GatewayError::BadGateway {
                provider: request.model.clone(),
                message: "upstream closed the stream before sending anything".into(),
            })
        }
    };
    let encoder = match dialect {
        Dialect::OpenAi => Encoder::OpenAi(openai::StreamEncoder::new(request.include_usage)),
        Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new()),
    };
    let state = (Some(first), events, encoder, false);
    let body = futures::stream::unfold(state, |(mut first, mut events, mut encoder, done)| async move {
        if done {
            return None;
        }
        let mut out = Vec::with_capacity(256);
        let mut finished = false;
        // Loop until something is encoded, so no empty chunk is written.
        while out.is_empty() && !finished {
            match first.take() {
                Some(ev) => encoder.encode(&ev, &mut out),
                None => match events.next().await {
                    Some(Ok(ev)) => encoder.encode(&ev, &mut out),
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "upstream stream failed");
                        encoder.encode_error(&err, &mut out);
                        finished = true;
                    }
                    None => {
                        encoder.finish(&mut out);
                        finished = true;
                    }
                },
            }
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), (first, events, encoder, finished)))
    });
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(Dialect::OpenAi, &self)
    }
}
