//! The HTTP edge: routes, body limits, and rendering canonical results and errors in
//! the dialect the client spoke. The model request path itself is `crate::pipeline`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use local_runtime::{Embedder, LocalModel, RuntimeConfig};
use policies::policy::Facts;
use serde_json::json;
use tokio::sync::oneshot;

use crate::access::{Access, Credentials, Identity, RouteTable};
use crate::accounting::{Ledger, PriceCatalog, UnknownPrice};
use crate::auth::KeyStore;
use crate::cache::ResponseCache;
use crate::canonical::{ChatRequest, Dialect, GatewayError};
use crate::config::Config;
use crate::dialects::client::Endpoint;
use crate::dialects::{anthropic, openai};
use crate::limits::Limiter;
use crate::pipeline::{
    self, error_response, facts_for, forward_headers, json_response, read_body_timed,
    AccountServices, Tracker,
};
use crate::policy_runtime::PolicyHandle;
use crate::providers::resilience::Breakers;
use crate::providers::{self, local::LocalProvider, Call};
use crate::routing::{LocalModelInfo, ModelMap, PolicyRouter};
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
    pub breakers: Arc<Breakers>,
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
    /// Team budgets and rate limits set at run time (applied to `limiter`).
    pub team_limits: crate::team_limits::TeamLimitService,
    pub metrics: Arc<Metrics>,
    /// Compares a sample of answers with another model, after the fact.
    pub shadow: Arc<ShadowRunner>,
    /// What the tracker finishes each request with (shared with the fields above).
    pub accounting: Arc<AccountServices>,
    /// Stored Responses API turns (`store`, `previous_response_id`).
    pub conversations: Arc<crate::conversations::Conversations>,
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
            admin_tokens: Some(crate::auth::admin_tokens::AdminTokenStore::new(
                db.clone(),
                config.auth.cache_ttl(),
            )),
            sso: match &config.sso {
                Some(sso) => Some(Arc::new(
                    crate::oidc::Sso::discover(
                        sso,
                        Some(crate::audit::AuditLog::new(db.clone())),
                        config.tls.is_some(),
                    )
                    .await
                    .context("cannot set up single sign-on (sso)")?,
                )),
                None => None,
            },
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
                .flat_map(|p| p.served_models().into_iter().filter(|m| !m.contains('*'))),
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
        let breakers = Arc::new(Breakers::new(
            config.circuit_breaker.failure_threshold,
            Duration::from_millis(config.circuit_breaker.cooldown_ms),
        ));
        let shadow = Arc::new(ShadowRunner::new(
            config.shadow.clone(),
            Some(db.clone()),
            prices.clone(),
            core.router.models.clone(),
            core.embedder.as_ref().map(|(_, e)| e.clone()),
            breakers.clone(),
            metrics.clone(),
        ));
        let limiter = Arc::new(limiter);
        let team_limits = crate::team_limits::TeamLimitService::new(db.clone(), limiter.clone());
        team_limits
            .start()
            .await
            .context("cannot read the team limits (team_limits table)")?;
        let cache = Arc::new(cache);
        let accounting = Arc::new(AccountServices {
            prices: prices.clone(),
            cache: cache.clone(),
            limiter: limiter.clone(),
            metrics: metrics.clone(),
            shadow: shadow.clone(),
            ledger: Some(ledger.clone()),
        });
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
        core.router
            .policy
            .set_audit(crate::audit::AuditLog::new(db.clone()));
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
            breakers,
            ledger: Some(ledger),
            keys,
            credentials: Arc::new(credentials),
            prices,
            unknown_price: config.accounting.unknown_price,
            limiter,
            cache,
            semantic_cache: config.cache.semantic.enabled,
            background: std::sync::Mutex::new(vec![team_limits.spawn_refresh()]),
            team_limits,
            metrics,
            shadow,
            accounting,
            conversations: Arc::new(crate::conversations::Conversations::new(
                db.clone(),
                &config.responses,
            )),
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
            entries.push((provider, p.served_models()));
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
                Tracker::new(state.accounting.clone(), dialect).fail(err);
            }
        }));
    route_table(&state).into_router().fallback(not_found)
}

/// Every route the gateway serves, each with its access class (`access.rs`): the one
/// place a route is added.
pub fn route_table(state: &Arc<AppState>) -> RouteTable {
    use Access::{Client, Metrics, Public};
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
            "/v1/responses",
            post(responses_create).with_state(s()),
        )
        .route(
            Client,
            Method::POST,
            "/v1beta/models/{target}",
            post(gemini_generate).with_state(s()),
        )
        // Google's stable API version; the Gen AI SDKs use it with a custom base URL.
        .route(
            Client,
            Method::POST,
            "/v1/models/{target}",
            post(gemini_generate).with_state(s()),
        )
        .route(
            Client,
            Method::GET,
            "/v1/responses/{id}",
            get(responses_get).with_state(s()),
        )
        .route(
            Client,
            Method::DELETE,
            "/v1/responses/{id}",
            axum::routing::delete(responses_delete).with_state(s()),
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
                // The guard's store: a revocation clears the cache the guard reads.
                tokens: state.credentials.admin_tokens.clone().unwrap_or_else(|| {
                    crate::auth::admin_tokens::AdminTokenStore::new(
                        ledger.db().clone(),
                        Duration::from_secs(5),
                    )
                }),
                ledger: ledger.clone(),
                audit: crate::audit::AuditLog::new(ledger.db().clone()),
                policy: Some(state.router.policy.clone()),
                team_limits: Some(state.team_limits.clone()),
            }),
        );
        let mut dash = crate::dashboard::DashboardState::new(
            Some(ledger.db().clone()),
            state.credentials.admin_token.clone(),
        );
        dash.audit = Some(crate::audit::AuditLog::new(ledger.db().clone()));
        let policy = state.router.policy.clone();
        dash.policy_status = Arc::new(move || json!(policy.status()));
        let catalog = state.catalog.clone();
        let models = state.router.models.clone();
        dash.catalog = Some(Arc::new(move || {
            let (catalog, models) = (catalog.clone(), models.clone());
            Box::pin(async move { catalog.entries(&models.models()).await })
        }));
        // The hard limit of the first budget that applies to a team, its own included.
        let limiter = state.limiter.clone();
        dash.budget_for = Arc::new(move |team| limiter.team_hard_limit(team));
        table = crate::dashboard::routes(table, dash);
        table = crate::console::routes(
            table,
            Arc::new(crate::console::ConsoleState {
                db: ledger.db().clone(),
                keys: state.keys.clone(),
                audit: crate::audit::AuditLog::new(ledger.db().clone()),
                policy: Some(state.router.policy.clone()),
                explain: Some(crate::console::playground::explainer(state.clone())),
                team_limits: Some(state.team_limits.clone()),
            }),
        );
    }
    if let Some(sso) = &state.credentials.sso {
        table = crate::oidc::routes(table, sso.clone());
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
    // The peer address goes into the audit trail's `source`.
    axum::serve(
        listener,
        app(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
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
            axum::serve(
                listener,
                app(state).into_make_service_with_connect_info::<crate::tls::TlsPeer>(),
            )
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
    pipeline::handle(state, Endpoint::OpenAiChat, identity, &headers, body).await
}

async fn messages(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::handle(state, Endpoint::AnthropicMessages, identity, &headers, body).await
}

async fn responses_create(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    pipeline::handle(state, Endpoint::Responses, identity, &headers, body).await
}

/// `models/{model}:generateContent` and `:streamGenerateContent` (Gemini's API).
async fn gemini_generate(
    State(state): State<Arc<AppState>>,
    Extension(identity): Extension<Identity>,
    axum::extract::Path(target): axum::extract::Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match crate::dialects::gemini::Call::from_segment(&target) {
        Ok(call) => pipeline::handle(state, Endpoint::Gemini(call), identity, &headers, body).await,
        Err(e) => error_response(Dialect::Gemini, &e),
    }
}

/// A stored Response of the caller's team (another team's id reads as not found).
async fn responses_get(
    State(state): State<Arc<AppState>>,
    Extension(Identity(identity)): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = pipeline::tenant_of(identity.as_deref(), &headers);
    match state.conversations.load(&tenant, &id).await {
        Ok(Some(stored)) => json_response(StatusCode::OK, stored.response),
        Ok(None) => json_response(
            StatusCode::NOT_FOUND,
            crate::dialects::responses::not_found_body(&id),
        ),
        Err(e) => error_response(Dialect::Responses, &e),
    }
}

async fn responses_delete(
    State(state): State<Arc<AppState>>,
    Extension(Identity(identity)): Extension<Identity>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let tenant = pipeline::tenant_of(identity.as_deref(), &headers);
    match state.conversations.delete(&tenant, &id).await {
        Ok(true) => json_response(
            StatusCode::OK,
            json!({"id": id, "object": "response", "deleted": true}),
        ),
        Ok(false) => json_response(
            StatusCode::NOT_FOUND,
            crate::dialects::responses::not_found_body(&id),
        ),
        Err(e) => error_response(Dialect::Responses, &e),
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
        Some("responses") => Dialect::Responses,
        _ if headers.contains_key("anthropic-version") => Dialect::Anthropic,
        _ => Dialect::OpenAi,
    };
    let result = async {
        let body = read_body_timed(&state, body, &headers).await?;
        let request = match dialect {
            Dialect::OpenAi => openai::parse_request(&body)?,
            Dialect::Anthropic => anthropic::parse_count_tokens_request(&body)?,
            // Explains this turn's input (not the stored turns it may continue).
            Dialect::Responses => crate::dialects::responses::parse_request(&body)?.0,
            Dialect::Gemini => {
                return Err(GatewayError::InvalidRequest(
                    "explain reads openai, anthropic or responses bodies (?dialect=)".into(),
                ))
            }
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

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        error_response(Dialect::OpenAi, &self)
    }
}
