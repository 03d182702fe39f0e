//! The HTTP edge: routes, body limits, and rendering canonical results and errors in
//! the dialect the client spoke. The request path reads as one function: `handle_chat`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use local_runtime::{Embedder, LocalModel, RuntimeConfig};
use policies::policy::Facts;
use serde_json::json;
use tokio::sync::oneshot;

use crate::canonical::{ChatRequest, ChatResponse, Dialect, GatewayError, StreamEvent};
use crate::config::Config;
use crate::dialects::{anthropic, openai};
use crate::policy_runtime::PolicyHandle;
use crate::providers::resilience::{is_retryable, Breakers};
use crate::providers::{self, local::LocalProvider, Call, EventStream, ForwardHeaders};
use crate::routing::{LocalModelInfo, ModelMap, PolicyRouter, RoutePlan};
use crate::volume::VolumeMeter;

/// Everything a request needs, built once at start-up.
pub struct AppState {
    pub router: PolicyRouter,
    pub max_body_bytes: usize,
    pub body_read_timeout: Duration,
    /// Bounds the model requests in flight (load shedding).
    pub inflight: Arc<tokio::sync::Semaphore>,
    pub local_models: Vec<LocalModel>,
    pub embedder: Option<(String, Arc<Embedder>)>,
    pub volume: VolumeMeter,
    pub breakers: Breakers,
}

impl AppState {
    /// Builds providers, loads local models (seconds: ONNX sessions) and the policy.
    pub fn from_config(config: &Config) -> anyhow::Result<AppState> {
        let mut entries = Vec::with_capacity(config.providers.len() + config.local_models.len());
        let mut local_info = HashMap::new();
        let mut local_models = Vec::new();
        let runtime = RuntimeConfig {
            ort_library: config.onnxruntime_library.clone(),
        };
        for m in &config.local_models {
            let model = LocalModel::load(&runtime, m.clone())
                .with_context(|| format!("cannot load local model {:?}", m.name))?;
            tracing::info!(model = %m.name, execution_provider = model.execution_provider(), "local model loaded");
            let catalog = model.catalog().clone();
            local_info.insert(
                m.name.clone(),
                LocalModelInfo {
                    commercial_use: catalog.commercial_use,
                    license: catalog.license.clone(),
                    metadata: json!({
                        "family": catalog.family,
                        "parameters": catalog.parameters,
                        "license": catalog.license,
                        "commercial_use": catalog.commercial_use,
                        "use_limits": catalog.use_limits,
                        "execution_provider": model.execution_provider(),
                        "max_context": m.max_context,
                        "in_process": true,
                    }),
                },
            );
            entries.push((
                Arc::new(LocalProvider::new(model.clone())) as Arc<dyn providers::Provider>,
                vec![m.name.clone()],
            ));
            local_models.push(model);
        }
        for p in &config.providers {
            let provider = providers::build(p, config.max_sse_event_bytes)
                .with_context(|| format!("cannot set up provider {:?}", p.name))?;
            entries.push((provider, p.models.clone()));
        }
        let embedder = match &config.embedding_model {
            Some(e) => {
                let embedder = Embedder::load(&runtime, &e.dir)
                    .with_context(|| format!("cannot load embedding model {:?}", e.name))?;
                Some((e.name.clone(), Arc::new(embedder)))
            }
            None => None,
        };
        let models = Arc::new(ModelMap::new(entries, local_info));
        let policy = PolicyHandle::load(config.policy_dir.clone(), models.clone())
            .map_err(|e| anyhow::anyhow!("invalid policy:\n{e}"))?;
        Ok(AppState {
            router: PolicyRouter { models, policy },
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
            inflight: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests.max(1),
            )),
            local_models,
            embedder,
            volume: VolumeMeter::default(),
            breakers: Breakers::new(
                config.circuit_breaker.failure_threshold,
                Duration::from_millis(config.circuit_breaker.cooldown_ms),
            ),
        })
    }
}

impl AppState {
    /// Releases what must not outlive the server: local model sessions are dropped on
    /// their own threads before the process exits (CUDA teardown otherwise races them).
    pub async fn shutdown(&self) {
        let models = self.local_models.clone();
        let _ = tokio::task::spawn_blocking(move || {
            for m in &models {
                m.shutdown();
            }
        })
        .await;
    }
}

pub fn app(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/chat/completions", post(chat_completions))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/route/explain", post(explain))
        .route("/v1/classify", post(classify))
        .route("/admin/policy/status", get(policy_status))
        .route("/admin/policy/reload", post(policy_reload))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .with_state(state)
}

/// A gateway serving in the background (tests, embedding).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    watcher: Option<tokio::task::JoinHandle<()>>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish, and waits for the server.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
        let _ = (&mut self.task).await;
        self.state.shutdown().await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// Binds `config.listen` and serves in a background task.
pub async fn spawn(config: Config) -> anyhow::Result<RunningServer> {
    let cfg = config.clone();
    let state = Arc::new(tokio::task::spawn_blocking(move || AppState::from_config(&cfg)).await??);
    let watcher = state
        .router
        .policy
        .spawn_watcher(Duration::from_millis(config.policy_reload_ms.max(50)));
    let listener = bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_on(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        state,
        shutdown: Some(tx),
        task,
        watcher,
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

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle_chat(&state, Dialect::OpenAi, &headers, body).await
}

async fn messages(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    handle_chat(&state, Dialect::Anthropic, &headers, body).await
}

/// The request path: decode dialect → classify → decide → (redact) → dispatch along the
/// fallback chain → (restore) → encode in the client's dialect.
async fn handle_chat(
    state: &AppState,
    dialect: Dialect,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let _permit = state.inflight.clone().try_acquire_owned().map_err(|_| {
            GatewayError::Overloaded(
                "the gateway is at its concurrency limit; retry shortly".into(),
            )
        })?;
        let body = read_body_timed(state, body, headers).await?;
        let mut request = parse_request(dialect, &body)?;
        let facts = facts_for(state, headers, &request, dialect);
        let plan = state.router.plan(&mut request, facts, false)?;
        let forward = forward_headers(headers, &plan);
        dispatch(state, dialect, &request, &plan, &forward).await
    }
    .await;
    result.unwrap_or_else(|err| error_response(dialect, &err))
}

/// Tries the plan's targets in order. A target that fails before anything reached the
/// client (connect errors, timeouts, 429, 5xx) is retried with backoff per its provider's
/// policy, then hands over to the next target; open circuits are skipped.
async fn dispatch(
    state: &AppState,
    dialect: Dialect,
    request: &ChatRequest,
    plan: &RoutePlan,
    forward: &ForwardHeaders,
) -> Result<Response, GatewayError> {
    let mut last_error = None;
    for (i, route) in plan.routes.iter().enumerate() {
        let circuit = format!("{}/{}", route.provider.name(), route.upstream_model);
        let retry = route.provider.retry_policy();
        let mut attempt = 0;
        let result = loop {
            // Checked before every attempt: another request may have opened the circuit.
            let probe = match state.breakers.admit(&circuit) {
                Some(probe) => probe,
                None => {
                    break Err(GatewayError::Overloaded(format!(
                        "{}: circuit open after repeated failures; retry later",
                        route.model
                    )))
                }
            };
            let result = call_once(dialect, request, plan, forward, route).await;
            match result {
                Err(e) => {
                    attempt += 1;
                    // A half-open circuit's probe is one call, not a burst of retries.
                    let delay = if probe {
                        None
                    } else {
                        retry.delay(attempt, &e)
                    };
                    match delay {
                        Some(delay) => {
                            tracing::info!(model = %route.model, attempt, ?delay, error = %e, "retrying");
                            tokio::time::sleep(delay).await;
                        }
                        None => {
                            // One request's outcome counts once, however often it was retried.
                            state.breakers.record(&circuit, Err(&e));
                            break Err(e);
                        }
                    }
                }
                ok => {
                    state.breakers.record(&circuit, Ok(()));
                    break ok;
                }
            }
        };
        match result {
            Ok(mut response) => {
                annotate(&mut response, plan, &route.model);
                return Ok(response);
            }
            Err(e) if is_retryable(&e) && i + 1 < plan.routes.len() => {
                tracing::warn!(model = %route.model, error = %e, "target failed; trying the next one of the chain");
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| GatewayError::Internal("empty route plan".into())))
}

/// One call to one target; a stream is committed (and no longer retryable) only once
/// its first event arrived.
async fn call_once(
    dialect: Dialect,
    request: &ChatRequest,
    plan: &RoutePlan,
    forward: &ForwardHeaders,
    route: &crate::routing::Route,
) -> Result<Response, GatewayError> {
    let call = Call {
        request,
        upstream_model: &route.upstream_model,
        headers: forward,
    };
    if request.stream {
        let events = route.provider.stream(call).await?;
        let events = match &plan.redaction {
            Some(r) => r.restore_stream(events),
            None => events,
        };
        stream_response(dialect, request, events).await
    } else {
        let mut response = route.provider.chat(call).await?;
        if let Some(r) = &plan.redaction {
            r.restore_response(&mut response);
        }
        Ok(json_response(
            StatusCode::OK,
            render_response(dialect, &response),
        ))
    }
}

/// Tells the client where its request went and why (never any sensitive value).
fn annotate(response: &mut Response, plan: &RoutePlan, model: &str) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-switchyard-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&plan.decision.rule) {
        h.insert("x-switchyard-rule", v);
    }
    if let Some(r) = &plan.redaction {
        h.insert("x-switchyard-redactions", HeaderValue::from(r.count()));
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the policy may look at besides the content. Team and tags come from headers
/// until virtual keys exist.
fn facts_for(
    state: &AppState,
    headers: &HeaderMap,
    request: &ChatRequest,
    dialect: Dialect,
) -> Facts {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let now = now_ms();
    let team = header("x-switchyard-team");
    let team_rpm = team.as_deref().map(|t| state.volume.hit(t, now));
    Facts {
        team,
        key: None,
        app: header("x-switchyard-app"),
        tags: header("x-switchyard-tags")
            .map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        model: Some(request.model.clone()),
        dialect: Some(dialect.as_str().to_string()),
        stream: request.stream,
        now_unix_s: Some((now / 1000) as i64),
        team_rpm,
        key_rpm: None,
        requested_is_local: false,
    }
}

async fn count_tokens(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        let mut request = anthropic::parse_count_tokens_request(&body)?;
        let facts = facts_for(&state, &headers, &request, Dialect::Anthropic);
        // Counting sends the prompt upstream too, so it obeys the same policy.
        let plan = state.router.plan(&mut request, facts, false)?;
        let forward = forward_headers(&headers, &plan);
        let route = plan
            .routes
            .first()
            .ok_or_else(|| GatewayError::Internal("empty route plan".into()))?;
        let call = Call {
            request: &request,
            upstream_model: &route.upstream_model,
            headers: &forward,
        };
        let tokens = route.provider.count_tokens(call).await?;
        Ok(json_response(
            StatusCode::OK,
            json!({ "input_tokens": tokens }),
        ))
    }
    .await;
    result.unwrap_or_else(|err: GatewayError| error_response(Dialect::Anthropic, &err))
}

#[derive(serde::Deserialize)]
struct ExplainQuery {
    dialect: Option<String>,
}

/// The routing decision for a request, with every rule's trace, without calling any model.
async fn explain(
    State(state): State<Arc<AppState>>,
    Query(q): Query<ExplainQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dialect = match q.dialect.as_deref() {
        Some("anthropic") => Dialect::Anthropic,
        _ if headers.contains_key("anthropic-version") => Dialect::Anthropic,
        _ => Dialect::OpenAi,
    };
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        let request = match dialect {
            Dialect::OpenAi => openai::parse_request(&body)?,
            Dialect::Anthropic => anthropic::parse_count_tokens_request(&body)?,
        };
        let facts = facts_for(&state, &headers, &request, dialect);
        Ok(json_response(
            StatusCode::OK,
            explain_json(&state.router, request, facts),
        ))
    }
    .await;
    result.unwrap_or_else(|err: GatewayError| error_response(dialect, &err))
}

/// Shared by `POST /v1/route/explain` and `switchyard policy explain`.
pub fn explain_json(
    router: &PolicyRouter,
    mut request: ChatRequest,
    facts: Facts,
) -> serde_json::Value {
    let (classification, decision, active) = router.decide(&request, facts.clone(), true);
    let outcome = match router.plan(&mut request, facts, false) {
        Ok(plan) => json!({
            "served_by": plan.routes.iter().map(|r| json!({
                "model": r.model, "provider": r.provider.name(), "external": r.provider.is_external(),
            })).collect::<Vec<_>>(),
            "unavailable": plan.unavailable,
            "redactions": plan.redaction.as_ref().map(|r| r.map.placeholders().map(str::to_string).collect::<Vec<_>>()).unwrap_or_default(),
        }),
        Err(e) => json!({ "error": e.to_string(), "status": e.status() }),
    };
    json!({
        "policy": { "source": active.source, "version": active.version },
        "classification": classification_json(&classification),
        "decision": decision,
        "outcome": outcome,
    })
}

/// Findings without their values: categories, types, spans and confidence only.
pub fn classification_json(c: &policies::Classification) -> serde_json::Value {
    json!({
        "sensitive": c.sensitive,
        "categories": c.categories,
        "findings": c.findings.iter().map(|f| json!({
            "category": f.category, "type": f.kind, "start": f.start, "end": f.end,
            "segment": f.segment, "confidence": f.confidence,
        })).collect::<Vec<_>>(),
        "difficulty": c.difficulty,
        "difficulty_model": c.difficulty_model,
        "est_prompt_tokens": c.est_prompt_tokens,
    })
}

/// `{"prompt": "..."}` or an OpenAI-style `{"messages": [...]}`.
async fn classify(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            GatewayError::InvalidRequest(format!("request body is not valid JSON: {e}"))
        })?;
        let mut obj = value
            .as_object()
            .cloned()
            .ok_or_else(|| GatewayError::InvalidRequest("expected a JSON object".into()))?;
        if let Some(prompt) = obj.remove("prompt") {
            let prompt = prompt
                .as_str()
                .ok_or_else(|| GatewayError::InvalidRequest("`prompt` must be a string".into()))?
                .to_string();
            obj.insert(
                "messages".into(),
                json!([{"role": "user", "content": prompt}]),
            );
        }
        obj.entry("model").or_insert_with(|| json!("classify"));
        let request = openai::parse_request(&serde_json::to_vec(&obj).unwrap_or_default())?;
        let active = state.router.policy.current();
        let c = crate::routing::classify(&active.classifier, &request);
        Ok(json_response(StatusCode::OK, classification_json(&c)))
    }
    .await;
    result.unwrap_or_else(|err: GatewayError| error_response(Dialect::OpenAi, &err))
}

/// OpenAI `POST /v1/embeddings` served by the in-process encoder.
async fn embeddings(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Input {
            One(String),
            Many(Vec<String>),
        }
        #[derive(serde::Deserialize)]
        struct Req {
            model: String,
            input: Input,
        }
        let req: Req = serde_json::from_slice(&body)
            .map_err(|e| GatewayError::InvalidRequest(format!("invalid embeddings request: {e}")))?;
        let (name, embedder) = state
            .embedder
            .as_ref()
            .filter(|(name, _)| *name == req.model || req.model.is_empty())
            .ok_or_else(|| {
                GatewayError::NotFound(format!(
                    "The model `{}` does not exist or is not an embedding model served by this gateway",
                    req.model
                ))
            })?;
        let inputs = match req.input {
            Input::One(s) => vec![s],
            Input::Many(v) => v,
        };
        if inputs.is_empty() || inputs.len() > 2048 {
            return Err(GatewayError::InvalidRequest("`input` must hold 1 to 2048 strings".into()));
        }
        let tokens: usize = inputs.iter().map(|s| s.len().div_ceil(4)).sum();
        let embedder = embedder.clone();
        let vectors = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
            embedder.embed(&refs)
        })
        .await
        .map_err(|e| GatewayError::Internal(format!("embedding task failed: {e}")))?
        .map_err(|e| GatewayError::Internal(format!("embedding failed: {e}")))?;
        let data: Vec<_> = vectors
            .into_iter()
            .enumerate()
            .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"object": "list", "data": data, "model": name,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
        ))
    }
    .await;
    result.unwrap_or_else(|err: GatewayError| error_response(Dialect::OpenAi, &err))
}

async fn models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let mut models = state.router.models.models();
    if let Some((name, embedder)) = &state.embedder {
        models.push(crate::routing::ModelInfo {
            id: name.clone(),
            owned_by: "local".into(),
            metadata: Some(json!({"family": "bert", "parameters": "22M", "license": "Apache-2.0",
                                  "commercial_use": true, "embedding_dims": embedder.dims(), "in_process": true})),
        });
    }
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
            .map(|m| {
                let mut v =
                    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by});
                if let Some(meta) = &m.metadata {
                    v["switchyard"] = meta.clone();
                }
                v
            })
            .collect();
        json!({ "object": "list", "data": data })
    };
    json_response(StatusCode::OK, body)
}

async fn policy_status(State(state): State<Arc<AppState>>) -> Response {
    json_response(StatusCode::OK, json!(state.router.policy.status()))
}

async fn policy_reload(State(state): State<Arc<AppState>>) -> Response {
    match state.router.policy.reload() {
        Ok(version) => json_response(
            StatusCode::OK,
            json!({"reloaded": true, "version": version}),
        ),
        Err(e) => json_response(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"reloaded": false, "error": e, "status": state.router.policy.status()}),
        ),
    }
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, json!({"status": "ok"}))
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let local: Vec<_> = state
        .local_models
        .iter()
        .map(|m| {
            let s = m.stats();
            json!({"model": m.name(), "execution_provider": m.execution_provider(),
                   "queue_depth": s.queue_depth, "active_sequences": s.active_sequences,
                   "max_batch_seen": s.max_batch_seen})
        })
        .collect();
    let policy = state.router.policy.status();
    json_response(
        StatusCode::OK,
        json!({"status": "ready", "models": state.router.models.models().len(), "local_models": local, "circuits": state.breakers.report(),
               "policy": {"source": policy.source, "version": policy.version, "last_error": policy.last_error}}),
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

async fn read_body_timed(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
) -> Result<Bytes, GatewayError> {
    tokio::time::timeout(
        state.body_read_timeout,
        read_body(body, headers, state.max_body_bytes),
    )
    .await
    .map_err(|_| GatewayError::RequestTimeout("the request body did not arrive in time".into()))?
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

fn forward_headers(headers: &HeaderMap, plan: &RoutePlan) -> ForwardHeaders {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ForwardHeaders {
        anthropic_version: get("anthropic-version"),
        anthropic_beta: get("anthropic-beta"),
        extra: plan
            .decision
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    http::HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
    }
}

fn parse_request(dialect: Dialect, body: &[u8]) -> Result<ChatRequest, GatewayError> {
    match dialect {
        Dialect::OpenAi => openai::parse_request(body),
        Dialect::Anthropic => anthropic::parse_request(body),
    }
}

fn render_response(dialect: Dialect, response: &ChatResponse) -> serde_json::Value {
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
    if let Some(value) = err
        .retry_after()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
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
/// proper error status (and the next target of the chain) instead of a 200 with an
/// error frame.
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
    let body = futures::stream::unfold(
        state,
        |(mut first, mut events, mut encoder, done)| async move {
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
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(out)),
                (first, events, encoder, finished),
            ))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(Dialect::OpenAi, &self)
    }
}
