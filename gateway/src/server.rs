//! The HTTP edge: routes, body limits, and rendering canonical results and errors in
//! the dialect the client spoke. The request path reads as one function: `handle_chat`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use local_runtime::{Embedder, LocalModel, RuntimeConfig};
use policies::policy::Facts;
use serde_json::json;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::telemetry::spans;

use crate::access::{Access, Credentials, Identity, RouteTable};
use crate::accounting::{Ledger, PriceCatalog, UnknownPrice};
use crate::auth::KeyStore;
use crate::cache::ResponseCache;
use crate::canonical::{ChatRequest, ChatResponse, Dialect, GatewayError, StreamEvent};
use crate::config::Config;
use crate::dialects::{anthropic, openai};
use crate::limits::{Admission, Limiter, Subject};
use crate::outcome::{StreamTap, Tracker};
use crate::policy_runtime::PolicyHandle;
use crate::providers::attempts::{Attempts, Next};
use crate::providers::resilience::{is_retryable, Breakers};
use crate::providers::{self, local::LocalProvider, Call, EventStream, ForwardHeaders};
use crate::routing::{LocalModelInfo, ModelMap, PolicyRouter, RoutePlan};
use crate::shadow::ShadowRunner;
use crate::store::Db;
use crate::telemetry::metrics::{Metrics, MetricsConfig};
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
    /// Requests per minute per team and per key (separate tables: no key formatting).
    pub team_volume: VolumeMeter,
    pub key_volume: VolumeMeter,
    pub breakers: Breakers,
    /// Durable request records; `None` only when accounting is disabled in tests.
    pub ledger: Option<Ledger>,
    pub keys: KeyStore,
    /// What the route guards check: virtual keys, admin and metrics tokens.
    pub credentials: Arc<Credentials>,
    pub prices: Arc<PriceCatalog>,
    pub unknown_price: UnknownPrice,
    pub limiter: Arc<Limiter>,
    pub cache: Arc<ResponseCache>,
    /// The semantic cache tier is on (it also needs the embedding model).
    pub semantic_cache: bool,
    /// Team budget rules, for the dashboard's budget usage column.
    pub team_budgets: Vec<crate::limits::BudgetRule>,
    pub metrics: Arc<Metrics>,
    /// Compares a sample of answers with another model, after the fact.
    pub shadow: Arc<ShadowRunner>,
    /// Every model with price, licence, measured latency and shadow agreement.
    pub catalog: Arc<crate::catalog::Catalog>,
    /// Background tasks feeding gauges; stopped at shutdown.
    background: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// The parts built synchronously (local models load for seconds on a blocking thread).
struct Core {
    router: PolicyRouter,
    local_models: Vec<LocalModel>,
    embedder: Option<(String, Arc<Embedder>)>,
}

impl AppState {
    /// Builds everything: providers, local models, policy, ledger, keys, limits, cache.
    pub async fn build(config: &Config) -> anyhow::Result<AppState> {
        let cfg = config.clone();
        let core = tokio::task::spawn_blocking(move || Self::core(&cfg)).await??;
        let db = Db::connect(&config.database_url())
            .await
            .with_context(|| "cannot open the ledger database (accounting.database_url)")?;
        let prices =
            PriceCatalog::load(&config.accounting).context("cannot load the price catalog")?;
        let ledger = Ledger::start(db.clone(), &config.accounting);
        let keys = KeyStore::new(db.clone(), config.auth.cache_ttl());
        if let (Some(var), None) = (&config.auth.metrics_token_env, config.auth.metrics_token()) {
            // Fail closed: a metrics token that was asked for but is missing must not
            // leave `/metrics` open.
            anyhow::bail!("auth.metrics_token_env names {var}, but {var} is not set or empty");
        }
        let admin_token = config.auth.admin_token();
        let require_key = config.auth.require_key || admin_token.is_some();
        let credentials = Credentials {
            keys: Some(keys.clone()),
            require_key,
            admin_token,
            admin_token_env: config
                .auth
                .admin_token_env
                .clone()
                .unwrap_or_else(|| "SWITCHYARD_ADMIN_TOKEN".into()),
            metrics_token: config.auth.metrics_token(),
            on_refused_model_call: std::sync::OnceLock::new(),
        };
        if !require_key {
            tracing::warn!("OPEN MODE: no admin token is configured (SWITCHYARD_ADMIN_TOKEN), so model requests need no virtual key; set one for production");
        }
        let limiter = Limiter::new(&config.limits)
            .await
            .context("cannot set up budgets and rate limits")?;
        let cache = ResponseCache::new(&config.cache)
            .await
            .context("cannot set up the response cache")?;
        let mut models: Vec<String> = core
            .router
            .models
            .models()
            .into_iter()
            .map(|m| m.id)
            .collect();
        models.extend(
            config
                .providers
                .iter()
                .flat_map(|p| p.models.iter().filter(|m| !m.contains('*')).cloned()),
        );
        let metrics = Arc::new(
            Metrics::new(MetricsConfig {
                models,
                providers: config
                    .providers
                    .iter()
                    .map(|p| p.name.clone())
                    .chain(["local".to_string()])
                    .collect(),
                ..MetricsConfig::default()
            })
            .context("cannot register metrics")?,
        );
        if let Some(head) = &core.router.head {
            head.attach_metrics(metrics.clone());
        }
        if let Some(ner) = &core.router.ner {
            ner.attach_metrics(metrics.clone());
        }
        if let Ok(list) = keys.list().await {
            let mut teams: Vec<String> = list.into_iter().map(|k| k.team).collect();
            teams.sort();
            teams.dedup();
            metrics.set_known_teams(&teams);
        }
        let prices = Arc::new(prices);
        let shadow = Arc::new(ShadowRunner::new(
            config.shadow.clone(),
            Some(db.clone()),
            prices.clone(),
            core.router.models.clone(),
            core.embedder.as_ref().map(|(_, e)| e.clone()),
            Some(metrics.registry()),
        ));
        let catalog = Arc::new(crate::catalog::Catalog::new(
            Some(db.clone()),
            prices.clone(),
        ));
        for provider in core.router.models.providers() {
            if let Some(pool) = provider.pool() {
                metrics.register_backend(provider.name(), pool.names().map(|n| &**n));
            }
        }
        let reload_metrics = metrics.clone();
        core.router
            .policy
            .set_reload_hook(move |ok| reload_metrics.policy_reloaded(ok));
        Ok(AppState {
            router: core.router,
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: Duration::from_millis(config.body_read_timeout_ms),
            inflight: Arc::new(tokio::sync::Semaphore::new(
                config.max_concurrent_requests.max(1),
            )),
            local_models: core.local_models,
            embedder: core.embedder,
            team_volume: VolumeMeter::default(),
            key_volume: VolumeMeter::default(),
            breakers: Breakers::new(
                config.circuit_breaker.failure_threshold,
                Duration::from_millis(config.circuit_breaker.cooldown_ms),
            ),
            ledger: Some(ledger),
            keys,
            credentials: Arc::new(credentials),
            prices,
            unknown_price: config.accounting.unknown_price,
            limiter: Arc::new(limiter),
            cache: Arc::new(cache),
            semantic_cache: config.cache.semantic.enabled,
            team_budgets: config
                .limits
                .budgets
                .iter()
                .filter(|b| b.scope == crate::limits::Scope::Team)
                .cloned()
                .collect(),
            background: std::sync::Mutex::new(Vec::new()),
            metrics,
            shadow,
            catalog,
        })
    }

    fn core(config: &Config) -> anyhow::Result<Core> {
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
                        "format": model.format(),
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
        let ner = crate::ner::load(&config.classifier.ner, &runtime)?;
        let head = crate::sentence_head::load(&config.classifier.sentence_head, &runtime)?;
        Ok(Core {
            router: PolicyRouter {
                models,
                policy,
                ner,
                head,
            },
            local_models,
            embedder,
        })
    }
}

impl AppState {
    /// Releases what must not outlive the server: local model sessions are dropped on
    /// their own threads before the process exits (CUDA teardown otherwise races them).
    /// Feeds the local runtime's queue depth, batch size and decode rate to `/metrics`
    /// once a second.
    pub fn start_gauges(&self) {
        for model in self.local_models.clone() {
            let metrics = self.metrics.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut last_tokens = model.stats().tokens_generated;
                loop {
                    tick.tick().await;
                    let s = model.stats();
                    let rate = s.tokens_generated.saturating_sub(last_tokens) as f64;
                    last_tokens = s.tokens_generated;
                    metrics.set_local_runtime(
                        model.name(),
                        s.queue_depth as u64,
                        s.active_sequences as u64,
                        rate,
                    );
                }
            });
            if let Ok(mut tasks) = self.background.lock() {
                tasks.push(task);
            }
        }
    }

    pub async fn shutdown(&self) {
        if let Ok(mut tasks) = self.background.lock() {
            for t in tasks.drain(..) {
                t.abort();
            }
        }
        if let Some(ledger) = &self.ledger {
            if let Err(e) = ledger.shutdown().await {
                tracing::error!(error = %e, "ledger flush at shutdown failed");
            }
        }
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
    // Refused model requests land in the ledger like every answered request.
    let weak = Arc::downgrade(&state);
    let _ = state
        .credentials
        .on_refused_model_call
        .set(Box::new(move |dialect, err| {
            if let Some(state) = weak.upgrade() {
                Tracker::new(state, dialect).fail(err);
            }
        }));
    route_table(&state).into_router().fallback(not_found)
}

/// Every route the gateway serves, each with its access class (`access.rs`): the one
/// place a route is added.
pub fn route_table(state: &Arc<AppState>) -> RouteTable {
    use Access::{Admin, Client, Metrics, Public};
    let s = || state.clone();
    let mut table = RouteTable::new(state.credentials.clone())
        .route(
            Client,
            Method::POST,
            "/v1/chat/completions",
            post(chat_completions).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/chat/completions",
            post(chat_completions).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1/messages",
            post(messages).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1/messages/count_tokens",
            post(count_tokens).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1/embeddings",
            post(embeddings).with_state(s()),
        )
        .route(
            Client,
            Method::GET,
            "/v1/models",
            get(models).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1/route/explain",
            post(explain).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1/classify",
            post(classify).with_state(s()),
        )
        .route(
            Admin,
            Method::GET,
            "/admin/policy/status",
            get(policy_status).with_state(s()),
        )
        .route(
            Admin,
            Method::POST,
            "/admin/policy/reload",
            post(policy_reload).with_state(s()),
        )
        .route(Public, Method::GET, "/healthz", get(healthz))
        .route(Public, Method::GET, "/readyz", get(readyz).with_state(s()))
        .route(
            Metrics,
            Method::GET,
            "/metrics",
            get(crate::telemetry::metrics::metrics_handler).with_state(state.metrics.clone()),
        );
    if let Some(ledger) = &state.ledger {
        table = crate::admin::routes(
            table,
            Arc::new(crate::admin::AdminState {
                keys: state.keys.clone(),
                ledger: ledger.clone(),
            }),
        );
        let mut dash = crate::dashboard::DashboardState::new(
            Some(ledger.db().clone()),
            state.credentials.admin_token.clone(),
        );
        let policy = state.router.policy.clone();
        dash.policy_status = Arc::new(move || json!(policy.status()));
        let catalog = state.catalog.clone();
        let models = state.router.models.clone();
        dash.catalog = Some(Arc::new(move || {
            let (catalog, models) = (catalog.clone(), models.clone());
            Box::pin(async move { catalog.entries(&models.models()).await })
        }));
        // The hard limit of the first team budget that applies to a team.
        let budgets = state.team_budgets.clone();
        dash.budget_for = Arc::new(move |team| {
            budgets
                .iter()
                .find(|b| crate::routing::glob_match(&b.subject, team))
                .and_then(|b| b.hard_usd.map(|u| u.micros()))
        });
        table = crate::dashboard::routes(table, dash);
    }
    table
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
    // Before anything slow, so a bad certificate fails the start at once.
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let state = Arc::new(AppState::build(&config).await?);
    state.start_gauges();
    let watcher = state
        .router
        .policy
        .spawn_watcher(Duration::from_millis(config.policy_reload_ms.max(50)));
    let listener = bind(&config.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(serve_with(listener, tls, state.clone(), async move {
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

/// `serve_on`, over TLS when an acceptor (`tls::acceptor`) is given.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => serve_on(listener, state, shutdown).await,
        Some(acceptor) => {
            let listener = crate::tls::TlsListener::new(listener, acceptor)?;
            axum::serve(listener, app(state))
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

async fn chat_completions(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle_chat(state, Dialect::OpenAi, identity, &headers, body).await
}

async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle_chat(state, Dialect::Anthropic, identity, &headers, body).await
}

/// The request path (the client guard authenticated the caller before the body was
/// read): decode dialect → classify → decide → (redact) → cache → budget → dispatch
/// along the fallback chain → (restore) → encode → account.
async fn handle_chat(
    state: Arc<AppState>,
    dialect: Dialect,
    identity: Identity,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let mut tracker = Some(Tracker::new(state.clone(), dialect));
    let result = chat(&state, dialect, identity, headers, body, &mut tracker).await;
    match result {
        Ok(response) => response,
        Err(err) => {
            let mut response = error_response(dialect, &err);
            if let Some(t) = tracker.take() {
                // A refusal by a policy rule names the rule, as every answer does.
                if !t.rec.route.is_empty() {
                    if let Ok(v) = HeaderValue::from_str(&t.rec.route) {
                        response.headers_mut().insert("x-switchyard-rule", v);
                    }
                }
                t.fail(&err);
            }
            response
        }
    }
}

async fn chat(
    state: &Arc<AppState>,
    dialect: Dialect,
    identity: Identity,
    headers: &HeaderMap,
    body: Body,
    tracker: &mut Option<Tracker>,
) -> Result<Response, GatewayError> {
    let _permit = state.inflight.clone().try_acquire_owned().map_err(|_| {
        GatewayError::Overloaded("the gateway is at its concurrency limit; retry shortly".into())
    })?;
    let body = read_body_timed(state, body, headers).await?;
    let request = parse_request(dialect, &body)?;
    let span = crate::telemetry::RequestSpan::start(
        headers,
        dialect.as_str(),
        &request.model,
        request.stream,
    );
    let result = chat_parsed(state, dialect, identity, headers, request, tracker, &span)
        .instrument(span.span().clone())
        .await;
    match &result {
        Ok(r) => span.record_status(r.status().as_u16()),
        Err(e) => span.record_error(e),
    }
    result
}

async fn chat_parsed(
    state: &Arc<AppState>,
    dialect: Dialect,
    Identity(identity): Identity,
    headers: &HeaderMap,
    mut request: ChatRequest,
    tracker: &mut Option<Tracker>,
    span: &crate::telemetry::RequestSpan,
) -> Result<Response, GatewayError> {
    let t = tracker
        .as_mut()
        .ok_or_else(|| GatewayError::Internal("tracker missing".into()))?;
    let started = t.started();
    t.rec.requested_model = request.model.clone();
    t.rec.stream = request.stream;
    if let Some(key) = &identity {
        t.rec.key_id = Some(key.id.clone());
        t.rec.team = Some(key.team.clone());
    }
    let facts = facts_for(state, headers, &request, dialect, identity.as_deref());
    if t.rec.team.is_none() {
        t.rec.team = facts.team.clone();
    }
    if let Some(team) = &t.rec.team {
        span.record_team(team);
    }
    let classify_started = std::time::Instant::now();
    let classify_span = spans::classify();
    let planned = classify_span.in_scope(|| state.router.plan(&mut request, facts, false));
    state.metrics.observe_classifier(classify_started.elapsed());
    let plan = planned.map_err(|refused| {
        t.refused(refused.rule, &refused.error);
        refused.error
    })?;
    t.note_plan(&plan);
    let categories: Vec<&str> = t.rec.sensitivity.iter().map(String::as_str).collect();
    spans::record_classification(
        &classify_span,
        &categories,
        f64::from(plan.classification.difficulty),
    );
    spans::record_decision(
        &spans::policy(),
        plan.routes.first().map_or("", |r| r.model.as_str()),
        &plan.decision.rule,
        &categories,
    );
    span.record_decision(
        plan.routes.first().map_or("", |r| r.model.as_str()),
        &plan.decision.rule,
        &categories,
    );
    let first = plan
        .routes
        .first()
        .ok_or_else(|| GatewayError::Internal("empty route plan".into()))?;
    if state.unknown_price == UnknownPrice::Error
        && first.provider.is_external()
        && state.prices.lookup(&first.upstream_model).is_none()
    {
        return Err(GatewayError::PermissionDenied(format!(
            "no price is known for `{}` and accounting.unknown_price is `error`",
            first.upstream_model
        )));
    }

    // Cache: scoped to the tenant, keyed on the (redacted) request and the served model.
    let tenant = t
        .rec
        .team
        .clone()
        .or_else(|| t.rec.key_id.clone())
        .unwrap_or_else(|| "open".to_string());
    let cache_key = state
        .cache
        .key(&request, &first.model, &tenant, plan.decision.cache_ttl_s);
    if let Some((key, _)) = &cache_key {
        let cache_span = spans::cache("exact");
        let hit = state.cache.get(key).instrument(cache_span.clone()).await;
        spans::record_cache_result(&cache_span, if hit.is_some() { "hit" } else { "miss" });
        if let Some(hit) = hit {
            let t = tracker
                .take()
                .ok_or_else(|| GatewayError::Internal("tracker missing".into()))?;
            t.cache_hit(first, &hit);
            let mut response = render_cached(dialect, &request, &plan, hit).await?;
            annotate(&mut response, &plan, &first.model);
            response
                .headers_mut()
                .insert("x-switchyard-cache", HeaderValue::from_static("hit"));
            set_overhead(&mut response, started.elapsed());
            return Ok(response);
        }
    }

    // Semantic tier (opt-in): a close enough earlier answer for this tenant and model.
    let mut semantic_fill = None;
    if let (Some((_, ttl)), true, Some((_, embedder))) =
        (&cache_key, state.semantic_cache, &state.embedder)
    {
        let text = prompt_text(&request);
        let embedder = embedder.clone();
        let embedding = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]))
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|mut v| v.pop());
        if let Some(embedding) = embedding {
            let sensitive = plan.classification.sensitive;
            if let Some((hit, similarity)) = state
                .cache
                .get_semantic(&tenant, &first.model, &embedding, sensitive)
                .await
            {
                let t = tracker
                    .take()
                    .ok_or_else(|| GatewayError::Internal("tracker missing".into()))?;
                t.cache_hit(first, &hit);
                let mut response = render_cached(dialect, &request, &plan, hit).await?;
                annotate(&mut response, &plan, &first.model);
                response.headers_mut().insert(
                    "x-switchyard-cache",
                    HeaderValue::from_static("semantic-hit"),
                );
                set_overhead(&mut response, started.elapsed());
                if let Ok(v) = HeaderValue::from_str(&format!("{similarity:.3}")) {
                    response
                        .headers_mut()
                        .insert("x-switchyard-cache-similarity", v);
                }
                return Ok(response);
            }
            semantic_fill = Some(crate::outcome::SemanticFill {
                tenant: tenant.clone(),
                model: first.model.clone(),
                embedding,
                sensitive,
                ttl: *ttl,
            });
        }
    }

    // Budgets and rate limits: reserve the worst case now, settle the actual later.
    let t = tracker
        .as_mut()
        .ok_or_else(|| GatewayError::Internal("tracker missing".into()))?;
    let mut warnings = Vec::new();
    if !state.limiter.is_noop() {
        let prompt_tokens =
            u32::try_from(plan.classification.est_prompt_tokens).unwrap_or(u32::MAX);
        let max_out = request
            .sampling
            .max_tokens
            .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
        let estimate = state
            .prices
            .estimate(&first.upstream_model, prompt_tokens, max_out)
            .micros;
        let subject = Subject {
            key_id: t.rec.key_id.as_deref(),
            team: t.rec.team.as_deref(),
        };
        let admission: Admission = state
            .limiter
            .admit(
                &subject,
                estimate,
                u64::from(prompt_tokens) + u64::from(max_out),
                now_ms(),
            )
            .await
            .map_err(|r| {
                state.metrics.budget_rejected(if t.rec.key_id.is_some() {
                    "key"
                } else {
                    "team"
                });
                GatewayError::from(r)
            })?;
        warnings = admission.warnings.clone();
        t.set_admission(admission);
    }
    t.set_cache_fill(cache_key);
    t.set_semantic_fill(semantic_fill);
    // Decided now (the request is in its dispatched form), started after the answer.
    t.set_shadow(state.shadow.select(&plan, &request));

    let forward = forward_headers(headers, &plan);
    let dispatched = std::time::Instant::now();
    let (served, route) = dispatch(state, &request, &plan, &forward).await?;
    // The backend's share: the whole call, or a stream's wait for its first event.
    let upstream = dispatched.elapsed();
    let t = tracker
        .take()
        .ok_or_else(|| GatewayError::Internal("tracker missing".into()))?;
    let mut response = match served {
        Served::Complete(mut response) => {
            t.complete(route, &response);
            if let Some(r) = &plan.redaction {
                r.restore_response(&mut response);
            }
            json_response(StatusCode::OK, render_response(dialect, &response))
        }
        Served::Stream(first_event, events) => {
            let events: EventStream =
                Box::pin(futures::stream::once(async move { Ok(first_event) }).chain(events));
            let events: EventStream = Box::pin(StreamTap::new(events, t, route.clone()));
            let events = match &plan.redaction {
                Some(r) => r.restore_stream(events),
                None => events,
            };
            stream_body(dialect, &request, events)
        }
    };
    annotate(&mut response, &plan, &route.model);
    set_overhead(&mut response, started.elapsed().saturating_sub(upstream));
    if let Some(v) = warnings.first().and_then(|w| HeaderValue::from_str(w).ok()) {
        response
            .headers_mut()
            .insert("x-switchyard-budget-warning", v);
    }
    Ok(response)
}

/// What the semantic tier compares: the user turns, in order (the redacted form).
fn prompt_text(request: &ChatRequest) -> String {
    let mut out = String::new();
    for (role, text) in request.text_segments() {
        if role == crate::canonical::Role::User {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    }
    out
}

/// Output tokens assumed for a budget reservation when the client sets no `max_tokens`.
const DEFAULT_OUTPUT_ESTIMATE: u32 = 1024;

/// A cached answer, replayed as a stream when the client asked for one.
async fn render_cached(
    dialect: Dialect,
    request: &ChatRequest,
    plan: &RoutePlan,
    mut hit: ChatResponse,
) -> Result<Response, GatewayError> {
    if request.stream {
        let events: EventStream = Box::pin(futures::stream::iter(
            crate::cache::replay_events(&hit).into_iter().map(Ok),
        ));
        let events = match &plan.redaction {
            Some(r) => r.restore_stream(events),
            None => events,
        };
        Ok(stream_body(dialect, request, events))
    } else {
        if let Some(r) = &plan.redaction {
            r.restore_response(&mut hit);
        }
        Ok(json_response(
            StatusCode::OK,
            render_response(dialect, &hit),
        ))
    }
}

/// What a target delivered before anything went to the client.
enum Served {
    Complete(ChatResponse),
    /// The first event already arrived (so the target is committed), then the rest.
    Stream(StreamEvent, EventStream),
}

/// Tries the plan's targets in order. A target that fails before anything reached the
/// client (connect errors, timeouts, 429, 5xx) is retried per its provider's policy —
/// first on the provider's other endpoints, then with backoff (`providers::attempts`) —
/// then hands over to the next target; open circuits are skipped.
async fn dispatch<'p>(
    state: &AppState,
    request: &ChatRequest,
    plan: &'p RoutePlan,
    forward: &ForwardHeaders,
) -> Result<(Served, &'p crate::routing::Route), GatewayError> {
    let mut last_error = None;
    for (i, route) in plan.routes.iter().enumerate() {
        let mut attempts = Attempts::new(
            &state.breakers,
            &state.metrics,
            route.provider.as_ref(),
            &route.upstream_model,
        );
        let mut failure = None;
        let result = loop {
            let Some(pick) = attempts.choose() else {
                // Every circuit for this target is open (perhaps by this very request).
                break Err(failure.take().unwrap_or_else(|| {
                    GatewayError::Overloaded(format!(
                        "{}: circuit open after repeated failures; retry later",
                        route.model
                    ))
                }));
            };
            let span = if route.provider.is_external() {
                spans::provider_call(route.provider.name(), &route.upstream_model, request.stream)
            } else {
                spans::local_generation(&route.model, request.stream)
            };
            let result = call_once(request, forward, route, pick.endpoint)
                .instrument(span)
                .await;
            match result {
                Err(e) => match attempts.failed(&pick, &e) {
                    Next::Retry(delay) => {
                        tracing::info!(model = %route.model, endpoint = %pick.name, attempt = attempts.made(), ?delay, error = %e, "retrying");
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        failure = Some(e);
                    }
                    Next::GiveUp => break Err(e),
                },
                ok => {
                    attempts.succeeded(&pick);
                    break ok;
                }
            }
        };
        match result {
            Ok(served) => return Ok((served, route)),
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
    request: &ChatRequest,
    forward: &ForwardHeaders,
    route: &crate::routing::Route,
    endpoint: usize,
) -> Result<Served, GatewayError> {
    let call = Call {
        request,
        upstream_model: &route.upstream_model,
        headers: forward,
    };
    if request.stream {
        let mut events = route.provider.stream_on(endpoint, call).await?;
        match events.next().await {
            Some(Ok(first)) => Ok(Served::Stream(first, events)),
            Some(Err(e)) => Err(e),
            None => Err(GatewayError::BadGateway {
                provider: route.provider.name().to_string(),
                message: "upstream closed the stream before sending anything".into(),
            }),
        }
    } else {
        route
            .provider
            .chat_on(endpoint, call)
            .await
            .map(Served::Complete)
    }
}

/// `x-switchyard-overhead-ms`: the gateway's own time for this request up to the response
/// head (milliseconds, three decimals), i.e. everything but the backend's: parsing,
/// classification, policy, cache, limits, and for a stream everything until its first
/// event except the wait for it. Users see overhead in production, not only in a bench.
fn set_overhead(response: &mut Response, own: Duration) {
    let ms = own.as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("{ms:.3}")) {
        response.headers_mut().insert("x-switchyard-overhead-ms", v);
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
    crate::store::time::now_ms().max(0) as u64
}

/// What the policy may look at besides the content. Team and tags come from headers
/// until virtual keys exist.
fn facts_for(
    state: &AppState,
    headers: &HeaderMap,
    request: &ChatRequest,
    dialect: Dialect,
    identity: Option<&crate::auth::KeyInfo>,
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
    // With a virtual key, team, app and tags come from the key: a client cannot pick
    // another team's policy or budget with a header. Headers serve open mode only.
    let (team, key, app, tags) = match identity {
        Some(k) => (
            Some(k.team.clone()),
            Some(k.id.clone()),
            k.app.clone(),
            k.tags.clone(),
        ),
        None => (
            header("x-switchyard-team"),
            None,
            header("x-switchyard-app"),
            header("x-switchyard-tags")
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        ),
    };
    let team_rpm = team.as_deref().map(|t| state.team_volume.hit(t, now));
    let key_rpm = key.as_deref().map(|k| state.key_volume.hit(k, now));
    Facts {
        team,
        key,
        app,
        tags,
        model: Some(request.model.clone()),
        dialect: Some(dialect.as_str().to_string()),
        stream: request.stream,
        now_unix_s: Some((now / 1000) as i64),
        team_rpm,
        key_rpm,
        requested_is_local: false,
    }
}

async fn count_tokens(
    State(state): State<Arc<AppState>>,
    Extension(Identity(identity)): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        let mut request = anthropic::parse_count_tokens_request(&body)?;
        let facts = facts_for(
            &state,
            &headers,
            &request,
            Dialect::Anthropic,
            identity.as_deref(),
        );
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
    Extension(Identity(identity)): Extension<Identity>,
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
        let facts = facts_for(&state, &headers, &request, dialect, identity.as_deref());
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
        Err(r) => {
            json!({ "error": r.error.to_string(), "status": r.error.status(), "rule": r.rule })
        }
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
            "category": f.category, "detector": f.detector, "type": f.kind, "start": f.start,
            "end": f.end, "segment": f.segment, "confidence": f.confidence,
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
        let c = state.router.classify(&request);
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
        // Catalog comparison: licence, price or compute cost, measured latency and
        // shadow agreement next to each model (OpenAI clients ignore unknown fields).
        let entries = state.catalog.entries(&models).await;
        let data: Vec<_> = models
            .iter()
            .zip(entries)
            .map(|(m, entry)| {
                let mut v =
                    json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by});
                let mut meta = m.metadata.clone().unwrap_or_else(|| json!({}));
                if let (Some(obj), Ok(serde_json::Value::Object(extra))) =
                    (meta.as_object_mut(), serde_json::to_value(&entry))
                {
                    for (k, x) in extra {
                        if k != "id" && k != "owned_by" {
                            obj.entry(k).or_insert(x);
                        }
                    }
                }
                v["switchyard"] = meta;
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

/// Readiness. A load balancer needs only the status; the details (models, backends,
/// circuits, policy source, shadow spend, ledger queue) go to the admin token, or to
/// anyone in open mode, where nothing is guarded.
async fn readyz(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let creds = &state.credentials;
    if !creds.open_mode() && crate::access::admin_check(creds, &headers).is_err() {
        return json_response(StatusCode::OK, json!({"status": "ready"}));
    }
    let local: Vec<_> = state
        .local_models
        .iter()
        .map(|m| {
            let s = m.stats();
            json!({"model": m.name(), "execution_provider": m.execution_provider(), "format": m.format(),
                   "queue_depth": s.queue_depth, "active_sequences": s.active_sequences,
                   "max_batch_seen": s.max_batch_seen})
        })
        .collect();
    let policy = state.router.policy.status();
    let backends: Vec<_> = state
        .router
        .models
        .providers()
        .filter_map(|p| {
            p.pool().map(|pool| {
                pool.report(
                    p.name(),
                    p.kind(),
                    state.breakers.threshold(),
                    state.breakers.cooldown(),
                )
            })
        })
        .collect();
    json_response(
        StatusCode::OK,
        json!({"status": "ready", "models": state.router.models.models().len(), "local_models": local, "circuits": state.breakers.report(), "backends": backends,
               "policy": {"source": policy.source, "version": policy.version, "last_error": policy.last_error},
               "shadow": state.shadow.status(),
               "ledger": state.ledger.as_ref().map(|l| json!({"pending": l.pending(), "dropped": l.dropped()}))}),
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

/// Streams canonical events back in the client's dialect. The caller has already seen
/// the first event (see `call_once`), so the upstream is committed and the head can go.
/// Bytes of already-arrived events written to the client in one chunk at most.
const COALESCE_MAX_BYTES: usize = 16 * 1024;

fn stream_body(dialect: Dialect, request: &ChatRequest, events: EventStream) -> Response {
    let encoder = match dialect {
        Dialect::OpenAi => Encoder::OpenAi(openai::StreamEncoder::new(request.include_usage)),
        Dialect::Anthropic => Encoder::Anthropic(anthropic::StreamEncoder::new()),
    };
    let body = futures::stream::unfold(
        (events, encoder, false),
        |(mut events, mut encoder, done)| async move {
            if done {
                return None;
            }
            let mut out = Vec::with_capacity(256);
            let mut finished = false;
            // Wait until something is encoded (no empty chunk is written), then take the
            // events that are already there without waiting: one upstream read that
            // carried several events becomes one write to the client, not one per event.
            let mut wait = true;
            while !finished && (wait || out.len() < COALESCE_MAX_BYTES) {
                let next = if wait {
                    Some(events.next().await)
                } else {
                    events.next().now_or_never()
                };
                let Some(next) = next else { break };
                match next {
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
                }
                wait = out.is_empty();
            }
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(out)),
                (events, encoder, finished),
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
    response
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(Dialect::OpenAi, &self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Message, Role, StopReason};
    use http_body_util::BodyExt;

    fn events(n: usize) -> Vec<Result<StreamEvent, GatewayError>> {
        let mut v = vec![Ok(StreamEvent::Start {
            id: "x".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        })];
        v.extend((0..n).map(|i| {
            Ok(StreamEvent::TextDelta {
                index: 0,
                text: format!("t{i} "),
            })
        }));
        v.push(Ok(StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            usage: None,
        }));
        v
    }

    async fn frames(body: Body) -> Vec<Bytes> {
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                out.push(data);
            }
        }
        out
    }

    #[tokio::test]
    async fn events_already_arrived_go_out_in_one_write() {
        let request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        let ready: EventStream = Box::pin(futures::stream::iter(events(20)));
        let body = stream_body(Dialect::OpenAi, &request, ready).into_body();
        let frames = frames(body).await;
        assert_eq!(frames.len(), 1, "{} frames", frames.len());
        let text = String::from_utf8_lossy(&frames[0]);
        assert!(
            text.contains("t19 ") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn events_that_arrive_apart_are_not_held_back() {
        let request = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        // Each event arrives after a pause: each is written as soon as it is there.
        let spaced: EventStream = Box::pin(futures::stream::iter(events(3)).then(|e| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            e
        }));
        let body = stream_body(Dialect::OpenAi, &request, spaced).into_body();
        assert!(frames(body).await.len() >= 4);
    }
}
