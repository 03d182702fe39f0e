//! Shadow evaluation: for a sample of the requests a policy rule marks (`shadow:`), the
//! gateway also asks the other side — local ↔ frontier, or model A ↔ model B — after the
//! client has its answer, scores the two answers and stores the pair for calibration.
//!
//! Shadow work never touches the client's request: it starts only once the primary
//! answer is complete and accounted, runs on its own tasks under its own concurrency
//! limit, daily budget and timeout, and its failures are recorded, never returned.
//! What the shadow call sees is exactly what the primary target saw (the redacted form
//! when the policy redacted), and the engine plans no external shadow for privacy-
//! critical content; `select` checks that again against the live providers.

pub mod calibrate;
pub mod report;
pub mod score;
pub mod store;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use local_runtime::Embedder;
use policies::policy::ShadowPlan;
use prometheus::{CounterVec, IntCounterVec, Opts, Registry};
use serde::Deserialize;

use crate::accounting::PriceCatalog;
use crate::canonical::{ChatRequest, ChatResponse, GatewayError, Message, Role};
use crate::limits::Usd;
use crate::providers::attempts::call_target;
use crate::providers::resilience::Breakers;
use crate::providers::{Call, ForwardHeaders};
use crate::routing::{ModelMap, Route, RoutePlan};
use crate::store::time::{day_of, now_ms};
use crate::store::Db;
use crate::telemetry::metrics::Metrics;
use score::{PairScore, Preference, Verdict};
use store::{PairRecord, Side};

/// `shadow:` in the gateway config. Policies decide which requests are shadowed; this
/// bounds what shadowing may cost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Master switch: `false` ignores every policy's `shadow:` action.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Shadow calls in flight at once (per replica); more are skipped, never queued.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
    /// Spend on shadow and judge calls per UTC day (per replica), in USD.
    #[serde(default = "default_daily_budget")]
    pub daily_budget_usd: Usd,
    /// A shadow or judge call taking longer is abandoned and recorded as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Output tokens a shadow call may produce when the client set no `max_tokens`.
    #[serde(default = "default_max_output_tokens")]
    pub max_output_tokens: u32,
    /// A judge model that states which answer of a pair is better.
    #[serde(default)]
    pub judge: Option<JudgeConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeConfig {
    /// Any model the gateway serves (`gpt-4o`, `local/...`). An external judge never
    /// sees a privacy-critical pair.
    pub model: String,
    /// Fraction of scored pairs also judged.
    #[serde(default = "one")]
    pub sample: f64,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn default_max_concurrent() -> usize {
    4
}
fn default_daily_budget() -> Usd {
    Usd::from_micros(10_000_000).expect("constant within range")
}
fn default_timeout_ms() -> u64 {
    60_000
}
fn default_max_output_tokens() -> u32 {
    1024
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            enabled: true,
            max_concurrent: default_max_concurrent(),
            daily_budget_usd: default_daily_budget(),
            timeout_ms: default_timeout_ms(),
            max_output_tokens: default_max_output_tokens(),
            judge: None,
        }
    }
}

impl ShadowConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(j) = &self.judge {
            if !(0.0..=1.0).contains(&j.sample) {
                return Err(format!(
                    "shadow.judge.sample must be between 0 and 1, not {}",
                    j.sample
                ));
            }
            if j.model.trim().is_empty() {
                return Err("shadow.judge.model cannot be empty".into());
            }
        }
        if self.timeout_ms == 0 {
            return Err("shadow.timeout_ms must be above 0".into());
        }
        Ok(())
    }
}

/// A sampled request's comparison, planned before dispatch and started after the answer.
pub struct ShadowJob {
    request: ChatRequest,
    route: Route,
    plan: ShadowPlan,
    rule: String,
    difficulty: f64,
    privacy_critical: bool,
}

/// The primary answer's side of a pair, as the tracker accounted it.
pub struct PrimaryOutcome {
    pub request_id: String,
    pub team: String,
    pub key_id: String,
    pub side: Side,
    pub response: ChatResponse,
}

/// Prometheus series for shadow work, registered in the gateway's registry.
struct ShadowMetrics {
    outcomes: IntCounterVec,
    cost: CounterVec,
}

impl ShadowMetrics {
    fn new(registry: &Registry) -> Result<ShadowMetrics, prometheus::Error> {
        let outcomes = IntCounterVec::new(
            Opts::new(
                "switchyard_shadow_total",
                "Shadow comparisons by outcome: scored, failed, skipped_concurrency, skipped_budget, skipped_price.",
            ),
            &["outcome"],
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "switchyard_shadow_cost_usd_total",
                "Spend on shadow and judge calls.",
            ),
            &["kind"],
        )?;
        registry.register(Box::new(outcomes.clone()))?;
        registry.register(Box::new(cost.clone()))?;
        Ok(ShadowMetrics { outcomes, cost })
    }

    fn outcome(&self, o: &str) {
        if let Ok(c) = self.outcomes.get_metric_with_label_values(&[o]) {
            c.inc();
        }
    }

    fn spent(&self, kind: &str, micros: i64) {
        if let Ok(c) = self.cost.get_metric_with_label_values(&[kind]) {
            c.inc_by(micros.max(0) as f64 / 1e6);
        }
    }
}

/// Daily spend with reservations: a call reserves its worst case before it starts and
/// settles the actual after, so concurrent calls cannot overrun the budget together.
#[derive(Debug, Default)]
struct DailySpend {
    day: i64,
    spent: i64,
    reserved: i64,
}

/// Starts and bounds shadow comparisons. Shared by every request (`Arc`).
pub struct ShadowRunner {
    cfg: ShadowConfig,
    permits: Arc<tokio::sync::Semaphore>,
    spend: Mutex<DailySpend>,
    db: Option<Db>,
    prices: Arc<PriceCatalog>,
    models: Arc<ModelMap>,
    embedder: Option<Arc<Embedder>>,
    metrics: Option<ShadowMetrics>,
    /// The circuits and call metrics every backend call goes through, shadow calls too.
    breakers: Arc<Breakers>,
    call_metrics: Arc<Metrics>,
    /// Comparisons started and not yet stored (tests and shutdown wait on it).
    in_flight: AtomicU64,
}

impl ShadowRunner {
    pub fn new(
        cfg: ShadowConfig,
        db: Option<Db>,
        prices: Arc<PriceCatalog>,
        models: Arc<ModelMap>,
        embedder: Option<Arc<Embedder>>,
        breakers: Arc<Breakers>,
        call_metrics: Arc<Metrics>,
    ) -> ShadowRunner {
        let metrics = match ShadowMetrics::new(call_metrics.registry()) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("shadow metrics unavailable: {e}");
                None
            }
        };
        ShadowRunner {
            permits: Arc::new(tokio::sync::Semaphore::new(cfg.max_concurrent.max(1))),
            cfg,
            spend: Mutex::new(DailySpend::default()),
            db,
            prices,
            models,
            embedder,
            metrics,
            breakers,
            call_metrics,
            in_flight: AtomicU64::new(0),
        }
    }

    /// Comparisons started and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Decides, before dispatch, whether this request is shadowed: the policy planned
    /// it, the sample draw says yes, the target is served here, and (again) no
    /// privacy-critical content would go out. Clones the request only when it is.
    pub fn select(&self, plan: &RoutePlan, request: &ChatRequest) -> Option<ShadowJob> {
        let sp = plan.decision.shadow.as_ref()?;
        if !self.cfg.enabled || !draw(sp.sample) {
            return None;
        }
        let route = self.models.resolve(&sp.model).ok()?;
        let primary_external = plan.routes.iter().any(|r| r.provider.is_external());
        if plan.decision.privacy_critical && (route.provider.is_external() || primary_external) {
            return None;
        }
        let mut request = request.clone();
        request.stream = false;
        request.include_usage = false;
        // An API call's output is capped so its reservation bounds its cost; the local
        // model keeps the client's setting (its default fits the context window, and its
        // cost is measured compute, not tokens).
        if route.provider.is_external() {
            let cap = self.cfg.max_output_tokens;
            request.sampling.max_tokens =
                Some(request.sampling.max_tokens.map_or(cap, |m| m.min(cap)));
        }
        Some(ShadowJob {
            request,
            route,
            plan: sp.clone(),
            rule: plan.decision.rule.clone(),
            difficulty: f64::from(plan.classification.difficulty),
            privacy_critical: plan.decision.privacy_critical,
        })
    }

    /// Starts the comparison in the background once the primary answer is accounted.
    pub fn launch(self: &Arc<Self>, job: ShadowJob, primary: PrimaryOutcome) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.count("skipped_concurrency");
            return;
        };
        let estimate = self.estimate(&job.route, &job.request);
        let Some(estimate) = estimate else {
            // An external model without a price: the spend could not be bounded.
            self.count("skipped_price");
            return;
        };
        if !self.reserve(estimate) {
            self.count("skipped_budget");
            return;
        }
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let runner = self.clone();
        handle.spawn(async move {
            let _permit = permit;
            runner.run(job, primary, estimate).await;
            runner.in_flight.fetch_sub(1, Ordering::AcqRel);
        });
    }

    fn count(&self, outcome: &str) {
        if let Some(m) = &self.metrics {
            m.outcome(outcome);
        }
    }

    /// Worst-case cost of a shadow call: priced tokens for an API model, nothing up
    /// front for the local model (its compute is charged after, from measured time).
    fn estimate(&self, route: &Route, request: &ChatRequest) -> Option<i64> {
        if !route.provider.is_external() {
            return Some(0);
        }
        let prompt = crate::providers::estimate_prompt_tokens(request);
        let out = request
            .sampling
            .max_tokens
            .unwrap_or(self.cfg.max_output_tokens);
        let c = self.prices.estimate(self.priced_name(route), prompt, out);
        c.price_known.then_some(c.micros)
    }

    /// The name the price catalog knows the route's model by: the upstream name
    /// (`gpt-4o` for `openai/gpt-4o`), else the name the policy used.
    fn priced_name<'r>(&self, route: &'r Route) -> &'r str {
        if self.prices.lookup(&route.upstream_model).is_some() {
            &route.upstream_model
        } else {
            &route.model
        }
    }

    fn reserve(&self, micros: i64) -> bool {
        let limit = self.cfg.daily_budget_usd.micros();
        let Ok(mut s) = self.spend.lock() else {
            return false;
        };
        let today = day_of(now_ms());
        if s.day != today {
            s.day = today;
            s.spent = 0;
        }
        if s.spent + s.reserved + micros > limit || s.spent >= limit {
            return false;
        }
        s.reserved += micros;
        true
    }

    fn settle(&self, reserved: i64, actual: i64) {
        if let Ok(mut s) = self.spend.lock() {
            s.reserved = (s.reserved - reserved).max(0);
            s.spent += actual.max(0);
        }
    }

    /// What `/readyz` shows: whether shadowing is on, work in flight, today's spend.
    pub fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "enabled": self.cfg.enabled,
            "in_flight": self.in_flight(),
            "max_concurrent": self.cfg.max_concurrent,
            "spent_today_usd": crate::limits::format_usd(self.spent_today()),
            "daily_budget_usd": crate::limits::format_usd(self.cfg.daily_budget_usd.micros()),
            "judge": self.cfg.judge.as_ref().map(|j| j.model.clone()),
        })
    }

    /// Spend today so far (µ$), for `/readyz` and tests.
    pub fn spent_today(&self) -> i64 {
        self.spend.lock().map_or(0, |s| {
            if s.day == day_of(now_ms()) {
                s.spent
            } else {
                0
            }
        })
    }

    async fn run(self: &Arc<Self>, job: ShadowJob, primary: PrimaryOutcome, reserved: i64) {
        let started = Instant::now();
        let result = self.call(&job.route, &job.request).await;
        let latency_ms = started.elapsed().as_millis() as u64;
        let mut rec = PairRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            request_id: primary.request_id.clone(),
            ts_ms: now_ms(),
            team: primary.team.clone(),
            key_id: primary.key_id.clone(),
            rule: job.rule.clone(),
            difficulty: job.difficulty,
            primary: primary.side.clone(),
            shadow: Side {
                model: job.route.model.clone(),
                external: job.route.provider.is_external(),
                latency_ms,
                ..Side::default()
            },
            ..PairRecord::default()
        };
        let mut spent = 0;
        match result {
            Ok(resp) => {
                rec.shadow.output_tokens = resp.usage.output_tokens;
                rec.shadow.cost_micros = self.cost_of(&job.route, &resp);
                spent += rec.shadow.cost_micros;
                rec.shadow_status = 200;
                spent += self.score(&job, &primary.response, &resp, &mut rec).await;
                self.count("scored");
            }
            Err(e) => {
                rec.shadow_status = e.status();
                rec.shadow_error = Some(crate::telemetry::spans::error_type(&e).to_string());
                rec.primary_is_strong = primary.side.external || !rec.shadow.external;
                tracing::info!(model = %job.route.model, error = %e, "shadow call failed");
                self.count("failed");
            }
        }
        self.settle(reserved, spent);
        if let Some(m) = &self.metrics {
            m.spent("shadow", rec.shadow.cost_micros);
            m.spent("judge", rec.judge_cost_micros);
        }
        if let Some(db) = &self.db {
            if let Err(e) = store::insert(db, &rec).await {
                tracing::warn!("shadow pair not stored: {e}");
            }
        }
    }

    /// One non-streaming call (shadow or judge) under the shadow timeout.
    async fn call(
        &self,
        route: &Route,
        request: &ChatRequest,
    ) -> Result<ChatResponse, GatewayError> {
        let headers = ForwardHeaders::default();
        let timeout = Duration::from_millis(self.cfg.timeout_ms);
        let attempts = call_target(
            &self.breakers,
            &self.call_metrics,
            route.provider.as_ref(),
            &route.upstream_model,
            &route.model,
            |endpoint| {
                let call = Call {
                    request,
                    upstream_model: &route.upstream_model,
                    headers: &headers,
                };
                route.provider.chat(endpoint, call)
            },
        );
        tokio::time::timeout(timeout, attempts)
            .await
            .unwrap_or_else(|_| {
                Err(GatewayError::Timeout {
                    provider: route.provider.name().to_string(),
                    after_ms: self.cfg.timeout_ms,
                })
            })
    }

    fn cost_of(&self, route: &Route, resp: &ChatResponse) -> i64 {
        if route.provider.is_external() {
            return self
                .prices
                .cost(self.priced_name(route), &resp.usage)
                .micros;
        }
        match route.provider.take_compute(&resp.id) {
            Some((busy_ms, gpu)) => self.prices.local_cost(busy_ms, gpu),
            // A complete local answer reports its compute; if it ever does not, charge a
            // conservative estimate from its output tokens rather than nothing.
            None => self.prices.local_cost(estimated_local_ms(resp), false),
        }
    }

    /// Scores the pair into `rec`; returns what the judge cost.
    async fn score(
        self: &Arc<Self>,
        job: &ShadowJob,
        primary: &ChatResponse,
        shadow: &ChatResponse,
        rec: &mut PairRecord,
    ) -> i64 {
        // The stronger side is the one that leaves the organization (the frontier), or,
        // between two of a kind, the dearer answer.
        rec.primary_is_strong = if rec.primary.external != rec.shadow.external {
            rec.primary.external
        } else {
            rec.primary.cost_micros >= rec.shadow.cost_micros
        };
        let format = job.request.response_format.as_ref();
        let (p_sig, s_sig) = (
            score::signals(primary, format),
            score::signals(shadow, format),
        );
        let (p_text, s_text) = (score::answer_text(primary), score::answer_text(shadow));
        let lexical = score::lexical_similarity(&p_text, &s_text);
        let embedding = match &self.embedder {
            Some(e) => {
                let e = e.clone();
                let (a, b) = (p_text.clone(), s_text.clone());
                tokio::task::spawn_blocking(move || e.embed(&[a.as_str(), b.as_str()]))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .and_then(|v| score::cosine(v.first()?, v.get(1)?))
            }
            None => None,
        };
        let (strong_text, weak_text) = if rec.primary_is_strong {
            (&p_text, &s_text)
        } else {
            (&s_text, &p_text)
        };
        let (judge, judge_cost) = self.judge(job, strong_text, weak_text, rec).await;
        let (weak_sig, strong_sig) = if rec.primary_is_strong {
            (s_sig.clone(), p_sig.clone())
        } else {
            (p_sig.clone(), s_sig.clone())
        };
        let pair = PairScore::new(weak_sig, strong_sig, lexical, embedding, judge);
        rec.length_ratio = Some(pair.length_ratio);
        rec.refusal_primary = Some(p_sig.refusal);
        rec.refusal_shadow = Some(s_sig.refusal);
        rec.format_primary = p_sig.format_ok;
        rec.format_shadow = s_sig.format_ok;
        rec.lexical = Some(lexical);
        rec.embedding = embedding;
        rec.judge = judge.map(|j| j.as_str().to_string());
        rec.judge_cost_micros = judge_cost;
        rec.quality = Some(pair.quality());
        if job.plan.retain_text {
            rec.prompt_text = Some(request_text(&job.request));
            rec.primary_text = Some(p_text);
            rec.shadow_text = Some(s_text);
        }
        judge_cost
    }

    /// Asks the configured judge which answer is better, in a random order. Skipped when
    /// the judge is external and the content privacy-critical, or the budget is spent.
    async fn judge(
        &self,
        job: &ShadowJob,
        strong: &str,
        weak: &str,
        rec: &mut PairRecord,
    ) -> (Option<Preference>, i64) {
        let Some(cfg) = &self.cfg.judge else {
            return (None, 0);
        };
        if !draw(cfg.sample) {
            return (None, 0);
        }
        let Ok(route) = self.models.resolve(&cfg.model) else {
            return (None, 0);
        };
        if job.privacy_critical && route.provider.is_external() {
            return (None, 0);
        }
        let weak_first = draw(0.5);
        let (a, b) = if weak_first {
            (weak, strong)
        } else {
            (strong, weak)
        };
        let mut request = ChatRequest::new(
            cfg.model.clone(),
            vec![
                Message::text(Role::System, score::JUDGE_SYSTEM),
                Message::text(
                    Role::User,
                    score::judge_prompt(&request_text(&job.request), a, b),
                ),
            ],
            job.request.extra_dialect,
        );
        request.sampling.max_tokens = Some(8);
        request.sampling.temperature = Some(0.0);
        let Some(estimate) = self.estimate(&route, &request) else {
            return (None, 0);
        };
        if !self.reserve(estimate) {
            return (None, 0);
        }
        let (verdict, cost) = match self.call(&route, &request).await {
            Ok(resp) => (
                score::parse_verdict(&score::answer_text(&resp)),
                self.cost_of(&route, &resp),
            ),
            Err(_) => (None, 0),
        };
        self.settle(estimate, cost);
        rec.judge_model = Some(route.model.clone());
        let pref = verdict.map(|v| match (v, weak_first) {
            (Verdict::Tie, _) => Preference::Tie,
            (Verdict::A, true) | (Verdict::B, false) => Preference::Weak,
            (Verdict::A, false) | (Verdict::B, true) => Preference::Strong,
        });
        (pref, cost)
    }
}

/// The request as text for a judge or for retention (already in redacted form).
fn request_text(request: &ChatRequest) -> String {
    let mut out = String::new();
    for (role, text) in request.text_segments() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(match role {
            Role::System => "[system] ",
            Role::User => "[user] ",
            Role::Assistant => "[assistant] ",
        });
        out.push_str(text);
    }
    out
}

/// Busy time for a local answer that reported none: the measured single-stream CPU decode
/// rate (~5 tokens/s, docs/local-runtime.md) is the conservative basis.
fn estimated_local_ms(resp: &ChatResponse) -> f64 {
    f64::from(resp.usage.output_tokens.max(1)) * 200.0
}

/// True with probability `p` (0 and 1 exact).
fn draw(p: f64) -> bool {
    if p >= 1.0 {
        return true;
    }
    if p <= 0.0 || p.is_nan() {
        return false;
    }
    let r = getrandom::u64().unwrap_or(0);
    ((r >> 11) as f64 / (1u64 << 53) as f64) < p
}

/// The primary side of a pair from a finished ledger record.
pub fn primary_side(rec: &crate::accounting::LedgerRecord, external: bool) -> Side {
    Side {
        model: rec.model.clone(),
        external,
        cost_micros: rec.cost_micros,
        latency_ms: rec.latency_ms,
        output_tokens: rec.output_tokens,
    }
}
