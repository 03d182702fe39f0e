//! Stage 7, account: what happens after an answer — cost, budget settlement, cache
//! fill, the ledger record, metrics and the shadow comparison. One `Tracker` follows each model request and is finished exactly once —
//! when a complete answer is rendered, when a stream ends (or breaks, or the client
//! goes away: the stream tap finishes it on drop), when the request fails, or when the
//! client goes away before an answer started (the request's future is dropped, and the
//! tracker with it).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;

use crate::accounting::{Ledger, LedgerRecord, PriceCatalog};
use crate::cache::{CacheKey, ResponseCache, StreamAccumulator};
use crate::canonical::{
    ChatResponse, Dialect, ErrorKind, EventStream, GatewayError, StreamEvent, Usage,
};
use crate::limits::{Admission, Limiter};
use crate::routing::{Route, RoutePlan};
use crate::shadow::{PrimaryOutcome, ShadowJob, ShadowRunner};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::metrics::RequestObservation;
use crate::telemetry::metrics::RouteKind;

/// Status recorded when the client disconnected before the answer was complete
/// (nginx's convention; never sent to anyone).
pub const CLIENT_CLOSED: u16 = 499;

/// What the semantic tier needs to store a finished answer.
pub struct SemanticFill {
    pub tenant: String,
    pub model: String,
    pub embedding: Vec<f32>,
    pub sensitive: bool,
    pub ttl: Duration,
}

/// The services a tracker finishes a request with (and nothing else of the gateway's).
pub struct AccountServices {
    pub prices: Arc<PriceCatalog>,
    pub cache: Arc<ResponseCache>,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<Metrics>,
    pub shadow: Arc<ShadowRunner>,
    /// `None` only when accounting is disabled in tests.
    pub ledger: Option<Ledger>,
}

/// Follows one model request and is finished exactly once. Move-only: the stages that
/// end a request (`complete`, `cache_hit`, `fail`, a stream's tap) consume it, and one
/// dropped unfinished records the client's departure. Its ledger row is private and
/// written through its methods.
pub struct Tracker {
    services: Arc<AccountServices>,
    dialect: Dialect,
    started: Instant,
    rec: LedgerRecord,
    admission: Option<Admission>,
    cache_fill: Option<(CacheKey, Duration)>,
    semantic_fill: Option<SemanticFill>,
    est_prompt_tokens: u32,
    shadow: Option<ShadowJob>,
    /// The complete answer (redacted form), kept only when a shadow job waits for it.
    shadow_primary: Option<ChatResponse>,
    /// Recorded already; a tracker is recorded exactly once.
    finished: bool,
}

impl Tracker {
    pub fn new(services: Arc<AccountServices>, dialect: Dialect) -> Tracker {
        Tracker {
            services,
            dialect,
            started: Instant::now(),
            rec: LedgerRecord {
                dialect,
                ..LedgerRecord::default()
            },
            admission: None,
            cache_fill: None,
            semantic_fill: None,
            est_prompt_tokens: 0,
            shadow: None,
            shadow_primary: None,
            finished: false,
        }
    }

    /// When the request arrived at the handler.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// What the client asked for (the model name as sent, streaming or not).
    pub fn note_request(&mut self, requested_model: &str, stream: bool) {
        self.rec.requested_model = requested_model.to_string();
        self.rec.stream = stream;
    }

    /// Who asked: the virtual key and its team, or (open mode) the team the facts name.
    pub fn note_caller(&mut self, key_id: Option<&str>, team: Option<&str>) {
        self.rec.key_id = key_id.map(str::to_string);
        self.rec.team = team.map(str::to_string);
    }

    pub fn team(&self) -> Option<&str> {
        self.rec.team.as_deref()
    }

    pub fn key_id(&self) -> Option<&str> {
        self.rec.key_id.as_deref()
    }

    /// Sensitivity category names the classifier found (never values).
    pub fn sensitivity(&self) -> &[String] {
        &self.rec.sensitivity
    }

    /// The policy rule that decided (or refused) the request, once known.
    pub fn rule(&self) -> Option<&str> {
        (!self.rec.route.is_empty()).then_some(self.rec.route.as_str())
    }

    /// Copies what the policy decided (names and counts only, never values).
    pub fn note_plan(&mut self, plan: &RoutePlan) {
        self.rec.route = plan.decision.rule.clone();
        self.rec.sensitivity = plan
            .classification
            .categories
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            })
            .collect();
        self.rec.redactions = plan.redaction.as_ref().map_or(0, |r| r.count() as u32);
        self.est_prompt_tokens =
            u32::try_from(plan.classification.est_prompt_tokens).unwrap_or(u32::MAX);
    }

    pub fn set_admission(&mut self, admission: Admission) {
        self.admission = Some(admission);
    }

    pub fn set_cache_fill(&mut self, fill: Option<(CacheKey, Duration)>) {
        self.cache_fill = fill;
    }

    pub fn set_semantic_fill(&mut self, fill: Option<SemanticFill>) {
        self.semantic_fill = fill;
    }

    pub fn set_shadow(&mut self, job: Option<ShadowJob>) {
        self.shadow = job;
    }

    /// Stores a complete (redacted-form) answer in the exact and semantic tiers, and
    /// keeps it for the shadow comparison when one is planned.
    fn fill_caches(&mut self, response: &ChatResponse) {
        if self.shadow.is_some() {
            self.shadow_primary = Some(response.clone());
        }
        if let Some((key, ttl)) = self.cache_fill.take() {
            let cache = self.services.cache.clone();
            let response = response.clone();
            spawn_bg(async move { cache.put(&key, &response, ttl).await });
        }
        if let Some(f) = self.semantic_fill.take() {
            let cache = self.services.cache.clone();
            let response = response.clone();
            spawn_bg(async move {
                cache
                    .put_semantic(
                        &f.tenant,
                        &f.model,
                        f.embedding,
                        f.sensitive,
                        &response,
                        f.ttl,
                    )
                    .await
            });
        }
    }

    fn note_route(&mut self, route: &Route) {
        self.rec.provider = route.provider.name().to_string();
        self.rec.model = route.model.clone();
        self.rec.served = if route.provider.is_external() {
            RouteKind::Frontier
        } else {
            RouteKind::Local
        };
    }

    /// A complete answer from `route` (the redacted form: that is what may be cached).
    pub fn complete(mut self, route: &Route, response: &ChatResponse) {
        self.note_route(route);
        let compute = route.provider.take_compute(&response.id);
        self.account(&response.usage, false, compute);
        self.fill_caches(response);
        self.finish(200, None);
    }

    /// Served from the response cache: no provider cost, all of it saved.
    pub fn cache_hit(mut self, route: &Route, response: &ChatResponse) {
        self.note_route(route);
        self.rec.served = RouteKind::Cache;
        self.rec.cache_hit = true;
        self.account(&response.usage, false, None);
        self.rec.cost_micros = 0;
        self.rec.price_known = true;
        self.finish(200, None);
    }

    /// The policy did not let the request through under `rule`: a block, or no allowed
    /// target (privacy-critical content and no local model). A requested model nobody
    /// serves is an error of the client's, not a block.
    pub fn refused(&mut self, rule: String, error: &GatewayError) {
        self.rec.route = rule;
        if !matches!(error, GatewayError::NotFound(_)) {
            self.rec.served = RouteKind::Blocked;
        }
    }

    /// Errors before a route was chosen keep the route kind `none`; a policy refusal is
    /// `blocked` (see `refused`) and its ledger row's error kind is `policy_blocked`, so
    /// the dashboard counts blocks per rule apart from errors.
    pub fn fail(self, err: &GatewayError) {
        let status = err.status();
        let kind = if self.rec.served == RouteKind::Blocked {
            ErrorKind::PolicyBlocked
        } else {
            err.kind()
        };
        self.finish(status, Some(kind));
    }

    /// Tokens, cost and counterfactual; estimated when the backend reported no usage.
    fn account(&mut self, usage: &Usage, estimated: bool, compute: Option<(f64, bool)>) {
        let prices = &self.services.prices;
        match compute {
            Some((busy_ms, gpu)) => {
                prices.apply_local(&mut self.rec, usage, estimated, busy_ms, gpu)
            }
            None if self.rec.served == RouteKind::Local => {
                // The local model reported no busy time (a cancelled stream): charge the
                // wall time, an upper bound of its share of the batch.
                let busy = self.started.elapsed().as_secs_f64() * 1000.0;
                prices.apply_local(&mut self.rec, usage, estimated, busy, false)
            }
            None => prices.apply(&mut self.rec, usage, estimated),
        }
    }

    fn estimated_usage(&self, output_chars: usize) -> Usage {
        Usage {
            input_tokens: self.est_prompt_tokens,
            output_tokens: u32::try_from(output_chars.div_ceil(4)).unwrap_or(u32::MAX),
            ..Usage::default()
        }
    }

    fn finish(mut self, status: u16, error_kind: Option<ErrorKind>) {
        self.record(status, error_kind);
    }

    fn record(&mut self, status: u16, error_kind: Option<ErrorKind>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let _span = crate::telemetry::spans::accounting().entered();
        let latency = self.started.elapsed();
        self.rec.status = status;
        self.rec.error_kind = error_kind;
        self.rec.latency_ms = latency.as_millis() as u64;
        let cost = self.rec.cost_micros;
        let tokens = u64::from(self.rec.input_tokens) + u64::from(self.rec.output_tokens);
        if let Some(admission) = self.admission.take() {
            let limiter = self.services.limiter.clone();
            spawn_bg(async move { limiter.settle(admission, cost, tokens).await });
        }
        let savings = if self.rec.price_known {
            self.rec.counterfactual_micros - cost
        } else {
            0
        };
        self.services.metrics.observe_request(&RequestObservation {
            dialect: self.dialect,
            route: self.rec.served,
            provider: &self.rec.provider,
            model: if self.rec.model.is_empty() {
                &self.rec.requested_model
            } else {
                &self.rec.model
            },
            rule: (!self.rec.route.is_empty()).then_some(self.rec.route.as_str()),
            status,
            latency,
            ttft: self.rec.ttft_ms.map(Duration::from_millis),
            input_tokens: u64::from(self.rec.input_tokens),
            output_tokens: u64::from(self.rec.output_tokens),
            cost_micros: cost,
            savings_micros: savings,
            team: self.rec.team.as_deref(),
            cache_hit: Some(self.rec.cache_hit),
        });
        // The comparison starts only now: the client has its answer and it is accounted.
        if let (Some(job), Some(response), 200) =
            (self.shadow.take(), self.shadow_primary.take(), status)
        {
            let primary = PrimaryOutcome {
                request_id: self.rec.id.clone(),
                team: self.rec.team.clone().unwrap_or_default(),
                key_id: self.rec.key_id.clone().unwrap_or_default(),
                side: crate::shadow::primary_side(
                    &self.rec,
                    self.rec.served == RouteKind::Frontier,
                ),
                response,
            };
            self.services.shadow.launch(job, primary);
        }
        if let Some(ledger) = &self.services.ledger {
            ledger.record(std::mem::take(&mut self.rec));
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        // Dropped unfinished: the client went away before an answer started (hyper drops
        // the request's future), e.g. while the upstream was still thinking.
        self.record(CLIENT_CLOSED, Some(ErrorKind::ClientClosed));
    }
}

/// Watches a streamed answer on its way to the client: accumulates it (usage, cache
/// fill), notes the time to first token, and finishes the tracker when the stream ends,
/// fails, or is dropped because the client went away.
pub struct StreamTap {
    inner: EventStream,
    acc: Option<StreamAccumulator>,
    tracker: Option<Tracker>,
    route: Route,
    output_chars: usize,
}

impl StreamTap {
    pub fn new(inner: EventStream, mut tracker: Tracker, route: Route) -> StreamTap {
        tracker.note_route(&route);
        StreamTap {
            inner,
            acc: Some(StreamAccumulator::new()),
            tracker: Some(tracker),
            route,
            output_chars: 0,
        }
    }

    fn end(&mut self, outcome: Result<(), &GatewayError>, client_gone: bool) {
        let Some(mut tracker) = self.tracker.take() else {
            return;
        };
        let acc = self.acc.take();
        let usage = acc.as_ref().and_then(|a| a.usage());
        let complete = acc.and_then(|a| {
            if outcome.is_ok() && !client_gone {
                a.finish()
            } else {
                None
            }
        });
        let compute = complete
            .as_ref()
            .and_then(|r| self.route.provider.take_compute(&r.id));
        match usage {
            Some(u) => tracker.account(&u, false, compute),
            None => {
                let u = tracker.estimated_usage(self.output_chars);
                tracker.account(&u, true, compute)
            }
        }
        match (outcome, complete) {
            (Ok(()), Some(response)) if !client_gone => {
                tracker.fill_caches(&response);
                tracker.finish(200, None);
            }
            (Err(e), _) => tracker.finish(e.status(), Some(e.kind())),
            _ if client_gone => tracker.finish(CLIENT_CLOSED, Some(ErrorKind::ClientClosed)),
            _ => tracker.finish(502, Some(ErrorKind::IncompleteStream)),
        }
    }
}

impl Stream for StreamTap {
    type Item = Result<StreamEvent, GatewayError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(ev))) => {
                if let Some(tracker) = this.tracker.as_mut() {
                    let content = match &ev {
                        StreamEvent::TextDelta { text, .. } => Some(text.len()),
                        StreamEvent::ToolCallDelta { arguments, .. } => Some(arguments.len()),
                        StreamEvent::ToolCallStart { .. } => Some(0),
                        _ => None,
                    };
                    if let Some(n) = content {
                        this.output_chars += n;
                        if tracker.rec.ttft_ms.is_none() {
                            tracker.rec.ttft_ms =
                                Some(tracker.started.elapsed().as_millis() as u64);
                        }
                    }
                }
                if let Some(acc) = this.acc.as_mut() {
                    acc.push(&ev);
                }
                Poll::Ready(Some(Ok(ev)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.end(Err(&e), false);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.end(Ok(()), false);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for StreamTap {
    fn drop(&mut self) {
        if self.tracker.is_some() {
            self.end(Ok(()), true);
        }
    }
}

/// Background work that must not panic when no runtime is left (a drop at shutdown).
fn spawn_bg(fut: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(handle) = tokio::runtime::Handle::try_current() {
        handle.spawn(fut);
    }
}
