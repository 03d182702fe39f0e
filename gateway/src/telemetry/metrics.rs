//! Prometheus metrics behind `GET /metrics`.
//!
//! Built on the `prometheus` crate rather than `metrics` + `metrics-exporter-prometheus`:
//! the registry is a value (no global recorder), so several gateways in one process (the
//! tests) keep separate numbers, and a labelled series is one hash and a read lock away.
//!
//! Label cardinality is bounded by construction: models and teams are labels only when they
//! are configured (everything else is `other`), routes and statuses come from fixed lists,
//! rule and provider names are capped, and no key, user or prompt-derived value is ever a
//! label.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus::{
    CounterVec, Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec,
    Opts, Registry, TextEncoder,
};

use crate::canonical::Dialect;

/// The label for every value outside the bounded set.
pub const OTHER: &str = "other";

/// Where a finished request went: the `route` label of the request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// Served by the in-process model.
    Local,
    /// Served by an external provider.
    Frontier,
    /// Answered from the response cache.
    Cache,
    /// Refused by a policy rule.
    Blocked,
    /// No route was chosen (the request failed before).
    None,
}

impl RouteKind {
    pub const ALL: [RouteKind; 5] = [
        RouteKind::Local,
        RouteKind::Frontier,
        RouteKind::Cache,
        RouteKind::Blocked,
        RouteKind::None,
    ];

    /// The kind [`as_str`](Self::as_str) names (the ledger's `served` column, filters).
    pub fn parse(s: &str) -> Option<RouteKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Local => "local",
            RouteKind::Frontier => "frontier",
            RouteKind::Cache => "cache",
            RouteKind::Blocked => "blocked",
            RouteKind::None => "none",
        }
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// The NER model: skipped requests land in the first bucket, inference in 5-500 ms.
const NER_BUCKETS: &[f64] = &[
    0.0001, 0.001, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0,
];

const CLASSIFIER_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
];

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot register metric: {0}")]
    Register(#[from] prometheus::Error),
}

/// Which values may become labels.
#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// Model names served (client-facing and upstream); others are reported as `other`.
    pub models: Vec<String>,
    /// Team names (from the key store); others are reported as `other`.
    pub teams: Vec<String>,
    /// Provider names from the config (plus the local runtime's name).
    pub providers: Vec<String>,
    /// How many distinct policy rule names get their own label before the rest are `other`
    /// (rules come from the operator's policy, so this only guards against churn).
    pub max_rules: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            models: Vec::new(),
            teams: Vec::new(),
            providers: Vec::new(),
            max_rules: 64,
        }
    }
}

/// One finished chat request, as `/metrics` sees it. Strings are borrowed: recording does
/// not allocate.
#[derive(Clone, Debug)]
pub struct RequestObservation<'a> {
    pub dialect: Dialect,
    pub route: RouteKind,
    /// Provider that answered (configured name); empty when none did.
    pub provider: &'a str,
    /// Model that answered (or was requested, when none answered).
    pub model: &'a str,
    /// Policy rule that decided the route, if any.
    pub rule: Option<&'a str>,
    /// HTTP status sent to the client.
    pub status: u16,
    pub latency: Duration,
    /// Time to first token, for streamed answers.
    pub ttft: Option<Duration>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// What the request cost, in micro-dollars.
    pub cost_micros: i64,
    /// What it saved against the frontier baseline, in micro-dollars (may be negative).
    pub savings_micros: i64,
    pub team: Option<&'a str>,
    /// `None` when the cache was not consulted.
    pub cache_hit: Option<bool>,
}

/// A fixed set of allowed label values, replaceable at run time (keys and models change on
/// reload) without locking readers.
struct KnownLabels(ArcSwap<HashSet<String>>);

impl KnownLabels {
    fn new(values: &[String]) -> Self {
        KnownLabels(ArcSwap::from_pointee(values.iter().cloned().collect()))
    }
    fn set(&self, values: &[String]) {
        self.0.store(Arc::new(values.iter().cloned().collect()));
    }
    fn label<'a>(&self, value: &'a str) -> &'a str {
        if self.0.load().contains(value) {
            value
        } else {
            OTHER
        }
    }
}

/// Values admitted on first sight up to a cap (rule names).
struct CappedLabels {
    seen: ArcSwap<HashSet<String>>,
    admit: Mutex<()>,
    cap: usize,
}

impl CappedLabels {
    fn new(cap: usize) -> Self {
        CappedLabels {
            seen: ArcSwap::from_pointee(HashSet::new()),
            admit: Mutex::new(()),
            cap,
        }
    }
    fn label<'a>(&self, value: &'a str) -> &'a str {
        let seen = self.seen.load();
        if seen.contains(value) {
            return value;
        }
        if seen.len() >= self.cap || value.len() > 128 {
            return OTHER;
        }
        drop(seen);
        // Rare path (a rule's first use): copy-on-write under a lock so readers never wait.
        let Ok(_g) = self.admit.lock() else {
            return OTHER;
        };
        let current = self.seen.load();
        if current.contains(value) {
            return value;
        }
        if current.len() >= self.cap {
            return OTHER;
        }
        let mut next = HashSet::clone(&current);
        next.insert(value.to_string());
        self.seen.store(Arc::new(next));
        value
    }
}

fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        408 => "408",
        413 => "413",
        422 => "422",
        429 => "429",
        499 => "499",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            5 => "5xx",
            _ => OTHER,
        },
    }
}

fn usd(micros: i64) -> f64 {
    micros.max(0) as f64 / 1_000_000.0
}

/// The gateway's Prometheus metrics. Build once at start-up and share (`Arc<Metrics>`).
pub struct Metrics {
    registry: Registry,
    models: KnownLabels,
    teams: KnownLabels,
    providers: KnownLabels,
    rules: CappedLabels,

    requests: IntCounterVec,
    duration: HistogramVec,
    ttft: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    counterfactual: CounterVec,
    savings: CounterVec,
    cache: IntCounterVec,
    decisions: IntCounterVec,
    classifier: Histogram,
    ner: HistogramVec,
    sentence_head: HistogramVec,
    local_queue: GaugeVec,
    local_batch: GaugeVec,
    local_tps: GaugeVec,
    policy_reloads: IntCounterVec,
    policy_ok: Gauge,
    policy_reload_time: Gauge,
    budget_rejections: IntCounterVec,
    backend_up: GaugeVec,
    upstream_calls: IntCounterVec,
    upstream_errors: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn reg<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    m: M,
) -> Result<M, MetricsError> {
    registry.register(Box::new(m.clone()))?;
    Ok(m)
}

impl Metrics {
    pub fn new(config: MetricsConfig) -> Result<Metrics, MetricsError> {
        let r = Registry::new();
        let hist = |name: &str, help: &str, buckets: &[f64]| {
            HistogramOpts::new(name, help).buckets(buckets.to_vec())
        };
        Ok(Metrics {
            models: KnownLabels::new(&config.models),
            teams: KnownLabels::new(&config.teams),
            providers: KnownLabels::new(&config.providers),
            rules: CappedLabels::new(config.max_rules),
            requests: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_requests_total", "Chat requests answered."),
                    &["dialect", "route", "provider", "model", "status"],
                )?,
            )?,
            duration: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "switchyard_request_duration_seconds",
                        "Time from request received to response complete.",
                        LATENCY_BUCKETS,
                    ),
                    &["route", "provider", "model", "status"],
                )?,
            )?,
            ttft: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "switchyard_time_to_first_token_seconds",
                        "Time from request received to the first streamed token.",
                        LATENCY_BUCKETS,
                    ),
                    &["route", "provider", "model"],
                )?,
            )?,
            tokens: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_tokens_total", "Tokens processed."),
                    &["direction", "route", "provider", "model"],
                )?,
            )?,
            cost: reg(
                &r,
                CounterVec::new(
                    Opts::new("switchyard_cost_usd_total", "Actual cost in USD."),
                    &["team", "model", "route"],
                )?,
            )?,
            counterfactual: reg(
                &r,
                CounterVec::new(
                    Opts::new(
                        "switchyard_counterfactual_cost_usd_total",
                        "What the same requests would have cost on the frontier baseline, in USD.",
                    ),
                    &["team", "model", "route"],
                )?,
            )?,
            savings: reg(
                &r,
                CounterVec::new(
                    Opts::new(
                        "switchyard_savings_usd_total",
                        "Savings against the frontier baseline in USD (requests that cost more than the baseline add 0; use counterfactual - cost for the net).",
                    ),
                    &["team", "model", "route"],
                )?,
            )?,
            cache: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_cache_requests_total", "Cache look-ups by result."),
                    &["result"],
                )?,
            )?,
            decisions: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_routing_decisions_total", "Requests by route and the policy rule that chose it."),
                    &["route", "rule"],
                )?,
            )?,
            classifier: reg(
                &r,
                Histogram::with_opts(hist(
                    "switchyard_classifier_duration_seconds",
                    "Time to classify one request (sensitivity + difficulty).",
                    CLASSIFIER_BUCKETS,
                ))?,
            )?,
            ner: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "switchyard_ner_duration_seconds",
                        "Time the NER PII model added to one request, by outcome (ran, skipped_mode, skipped_gate, error).",
                        NER_BUCKETS,
                    ),
                    &["outcome"],
                )?,
            )?,
            sentence_head: reg(
                &r,
                HistogramVec::new(
                    hist(
                        "switchyard_sentence_head_duration_seconds",
                        "Time the sentence head (MiniLM embedding + read-outs) added to one request, by outcome (ran, skipped_mode, skipped_gate, skipped_empty, error).",
                        NER_BUCKETS,
                    ),
                    &["outcome"],
                )?,
            )?,
            local_queue: reg(
                &r,
                GaugeVec::new(
                    Opts::new("switchyard_local_queue_depth", "Requests waiting for the local runtime."),
                    &["model"],
                )?,
            )?,
            local_batch: reg(
                &r,
                GaugeVec::new(
                    Opts::new("switchyard_local_batch_size", "Sequences in the local runtime's current batch."),
                    &["model"],
                )?,
            )?,
            local_tps: reg(
                &r,
                GaugeVec::new(
                    Opts::new("switchyard_local_tokens_per_second", "Aggregate decode speed of the local runtime."),
                    &["model"],
                )?,
            )?,
            policy_reloads: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_policy_reloads_total", "Policy reloads by result."),
                    &["result"],
                )?,
            )?,
            policy_ok: reg(
                &r,
                Gauge::with_opts(Opts::new(
                    "switchyard_policy_last_reload_success",
                    "1 when the last policy reload succeeded, 0 when it was rejected.",
                ))?,
            )?,
            policy_reload_time: reg(
                &r,
                Gauge::with_opts(Opts::new(
                    "switchyard_policy_last_reload_timestamp_seconds",
                    "Unix time of the last policy reload attempt.",
                ))?,
            )?,
            budget_rejections: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_budget_rejections_total", "Requests refused by a budget or rate limit."),
                    &["scope"],
                )?,
            )?,
            backend_up: reg(
                &r,
                GaugeVec::new(
                    Opts::new("switchyard_backend_up", "1 unless the endpoint's last failure_threshold calls all failed (until one succeeds)."),
                    &["provider", "endpoint"],
                )?,
            )?,
            upstream_calls: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_upstream_calls_total", "Calls made to provider endpoints (every attempt, retries included)."),
                    &["provider", "endpoint"],
                )?,
            )?,
            upstream_errors: reg(
                &r,
                IntCounterVec::new(
                    Opts::new("switchyard_upstream_errors_total", "Failed calls to provider endpoints by kind of failure."),
                    &["provider", "endpoint", "kind"],
                )?,
            )?,
            registry: r,
        })
    }

    /// Makes a provider's endpoints visible (up, no calls yet) before their first call.
    /// Endpoint names come from the config only, which bounds that label.
    pub fn register_backend<'a>(&self, provider: &str, endpoints: impl Iterator<Item = &'a str>) {
        let provider = self.providers.label(provider);
        for endpoint in endpoints {
            if let Ok(g) = self
                .backend_up
                .get_metric_with_label_values(&[provider, endpoint])
            {
                g.set(1.0);
            }
            if let Ok(c) = self
                .upstream_calls
                .get_metric_with_label_values(&[provider, endpoint])
            {
                c.inc_by(0);
            }
        }
    }

    /// One call to a provider endpoint finished (`error` is `None` on success); `up` is
    /// the endpoint's state afterwards.
    pub fn upstream_attempt(
        &self,
        provider: &str,
        endpoint: &str,
        error: Option<crate::providers::health::UpstreamErrorKind>,
        up: bool,
    ) {
        let provider = self.providers.label(provider);
        let labels = [provider, endpoint];
        if let Ok(c) = self.upstream_calls.get_metric_with_label_values(&labels) {
            c.inc();
        }
        if let Some(kind) = error {
            if let Ok(c) = self.upstream_errors.get_metric_with_label_values(&[
                provider,
                endpoint,
                kind.as_str(),
            ]) {
                c.inc();
            }
        }
        if let Ok(g) = self.backend_up.get_metric_with_label_values(&labels) {
            g.set(if up { 1.0 } else { 0.0 });
        }
    }

    /// Replaces the models that may be labels (after a config or catalog change).
    pub fn set_known_models(&self, models: &[String]) {
        self.models.set(models);
    }

    /// Replaces the teams that may be labels (after keys or teams change).
    pub fn set_known_teams(&self, teams: &[String]) {
        self.teams.set(teams);
    }

    /// Records one finished request (success or error).
    pub fn observe_request(&self, o: &RequestObservation<'_>) {
        let route = o.route.as_str();
        let provider = if o.provider.is_empty() {
            "none"
        } else {
            self.providers.label(o.provider)
        };
        let model = self.models.label(o.model);
        let status = status_label(o.status);
        let team = o.team.map_or("none", |t| self.teams.label(t));

        if let Ok(c) = self.requests.get_metric_with_label_values(&[
            o.dialect.as_str(),
            route,
            provider,
            model,
            status,
        ]) {
            c.inc();
        }
        if let Ok(h) = self
            .duration
            .get_metric_with_label_values(&[route, provider, model, status])
        {
            h.observe(o.latency.as_secs_f64());
        }
        if let Some(ttft) = o.ttft {
            if let Ok(h) = self
                .ttft
                .get_metric_with_label_values(&[route, provider, model])
            {
                h.observe(ttft.as_secs_f64());
            }
        }
        if o.input_tokens > 0 {
            if let Ok(c) = self
                .tokens
                .get_metric_with_label_values(&["input", route, provider, model])
            {
                c.inc_by(o.input_tokens);
            }
        }
        if o.output_tokens > 0 {
            if let Ok(c) = self
                .tokens
                .get_metric_with_label_values(&["output", route, provider, model])
            {
                c.inc_by(o.output_tokens);
            }
        }
        if o.cost_micros != 0 || o.savings_micros != 0 {
            let labels = [team, model, route];
            if let Ok(c) = self.cost.get_metric_with_label_values(&labels) {
                c.inc_by(usd(o.cost_micros));
            }
            if let Ok(c) = self.counterfactual.get_metric_with_label_values(&labels) {
                c.inc_by(usd(o.cost_micros.saturating_add(o.savings_micros)));
            }
            if o.savings_micros > 0 {
                if let Ok(c) = self.savings.get_metric_with_label_values(&labels) {
                    c.inc_by(usd(o.savings_micros));
                }
            }
        }
        if let Some(hit) = o.cache_hit {
            if let Ok(c) =
                self.cache
                    .get_metric_with_label_values(&[if hit { "hit" } else { "miss" }])
            {
                c.inc();
            }
        }
        if let Some(rule) = o.rule {
            if let Ok(c) = self
                .decisions
                .get_metric_with_label_values(&[route, self.rules.label(rule)])
            {
                c.inc();
            }
        }
    }

    /// One classification (sensitivity + difficulty) took `d`.
    pub fn observe_classifier(&self, d: Duration) {
        self.classifier.observe(d.as_secs_f64());
    }

    /// The NER model's part of one classification (`outcome`: see `ner::NerOutcome`).
    pub fn observe_ner(&self, outcome: &str, d: Duration) {
        if let Ok(h) = self.ner.get_metric_with_label_values(&[outcome]) {
            h.observe(d.as_secs_f64());
        }
    }

    /// The sentence head's part of one classification (`sentence_head::HeadOutcome`).
    pub fn observe_sentence_head(&self, outcome: &str, d: Duration) {
        if let Ok(h) = self.sentence_head.get_metric_with_label_values(&[outcome]) {
            h.observe(d.as_secs_f64());
        }
    }

    /// The local runtime's current state for `model` (poll it, e.g. every second or on
    /// each `/metrics` scrape, from `LocalModel::stats`).
    pub fn set_local_runtime(&self, model: &str, queue_depth: u64, batch: u64, tokens_per_s: f64) {
        let model = self.models.label(model);
        if let Ok(g) = self.local_queue.get_metric_with_label_values(&[model]) {
            g.set(queue_depth as f64);
        }
        if let Ok(g) = self.local_batch.get_metric_with_label_values(&[model]) {
            g.set(batch as f64);
        }
        if let Ok(g) = self.local_tps.get_metric_with_label_values(&[model]) {
            g.set(tokens_per_s);
        }
    }

    /// A request refused by a budget or rate limit; `scope` is `key`, `team` or `global`.
    pub fn budget_rejected(&self, scope: &str) {
        let scope = match scope {
            "key" | "team" | "global" | "rate_limit" => scope,
            _ => OTHER,
        };
        if let Ok(c) = self
            .budget_rejections
            .get_metric_with_label_values(&[scope])
        {
            c.inc();
        }
    }

    /// A policy reload attempt finished; `ok == false` when the file was rejected.
    pub fn policy_reloaded(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        if let Ok(c) = self.policy_reloads.get_metric_with_label_values(&[result]) {
            c.inc();
        }
        self.policy_ok.set(if ok { 1.0 } else { 0.0 });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        self.policy_reload_time.set(now);
    }

    /// The Prometheus text exposition (content type [`Metrics::CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }

    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// The registry, to add process or custom collectors.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// `GET /metrics` for `Router::route("/metrics", get(metrics_handler)).with_state(metrics)`.
pub async fn metrics_handler(
    axum::extract::State(metrics): axum::extract::State<Arc<Metrics>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        [(http::header::CONTENT_TYPE, Metrics::CONTENT_TYPE)],
        metrics.render(),
    )
        .into_response()
}

/// A router serving only `GET /metrics`, to `.merge(...)` into the app.
pub fn metrics_router(metrics: Arc<Metrics>) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(metrics_handler))
        .with_state(metrics)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs<'a>(model: &'a str, team: &'a str, route: RouteKind) -> RequestObservation<'a> {
        RequestObservation {
            dialect: Dialect::OpenAi,
            route,
            provider: "openai",
            model,
            rule: Some("default"),
            status: 200,
            latency: Duration::from_millis(120),
            ttft: Some(Duration::from_millis(30)),
            input_tokens: 10,
            output_tokens: 5,
            cost_micros: 1_500,
            savings_micros: 500,
            team: Some(team),
            cache_hit: Some(false),
        }
    }

    fn metrics() -> Metrics {
        match Metrics::new(MetricsConfig {
            models: vec!["gpt-4o".into()],
            teams: vec!["search".into()],
            providers: vec!["openai".into()],
            max_rules: 2,
        }) {
            Ok(m) => m,
            Err(e) => panic!("metrics: {e}"),
        }
    }

    #[test]
    fn unconfigured_models_and_teams_are_other() {
        let m = metrics();
        for i in 0..50 {
            let model = format!("model-{i}");
            let team = format!("team-{i}");
            m.observe_request(&obs(&model, &team, RouteKind::None));
        }
        m.observe_request(&obs("gpt-4o", "search", RouteKind::Frontier));
        let text = m.render();
        assert!(!text.contains("model-1"), "{text}");
        assert!(!text.contains("team-1"), "{text}");
        assert!(text.contains(
            r#"switchyard_requests_total{dialect="openai",model="other",provider="openai",route="none",status="200"} 50"#
        ), "{text}");
        assert!(
            text.contains(
                r#"switchyard_cost_usd_total{model="gpt-4o",route="frontier",team="search"} 0.0015"#
            ),
            "{text}"
        );
    }

    #[test]
    fn rule_labels_are_capped() {
        let m = metrics();
        for rule in ["a", "b", "c", "d"] {
            let mut o = obs("gpt-4o", "search", RouteKind::Local);
            o.rule = Some(rule);
            m.observe_request(&o);
        }
        let text = m.render();
        assert!(text.contains(r#"switchyard_routing_decisions_total{route="local",rule="a"} 1"#));
        assert!(text.contains(r#"switchyard_routing_decisions_total{route="local",rule="b"} 1"#));
        assert!(
            text.contains(r#"switchyard_routing_decisions_total{route="local",rule="other"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn known_labels_can_change_at_run_time() {
        let m = metrics();
        m.set_known_teams(&["ads".to_string()]);
        m.observe_request(&obs("gpt-4o", "ads", RouteKind::Frontier));
        assert!(m.render().contains(r#"team="ads""#));
    }

    #[test]
    fn negative_savings_never_decrease_a_counter() {
        let m = metrics();
        let mut o = obs("gpt-4o", "search", RouteKind::Local);
        o.savings_micros = -2_000;
        m.observe_request(&o);
        let text = m.render();
        assert!(!text.contains("switchyard_savings_usd_total{"), "{text}");
        assert!(text.contains(
            r#"switchyard_counterfactual_cost_usd_total{model="gpt-4o",route="local",team="search"} 0"#
        ), "{text}");
    }

    #[test]
    fn status_labels_are_a_fixed_set() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(418), "4xx");
        assert_eq!(status_label(999), OTHER);
    }
}
