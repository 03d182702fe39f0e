//! The request-path spans and their attributes.
//!
//! Attribute names follow the OpenTelemetry GenAI semantic conventions (`gen_ai.*`) plus
//! `switchyard.*` for what only this gateway knows. Spans carry names, counts and
//! categories, never prompt or completion text, header values or finding values: nothing
//! here takes a `ChatRequest`, so no caller can hand one over by accident.
//!
//! Span tree of one request (the lead wires these in `server.rs`):
//!
//! ```text
//! chat {model}                 RequestSpan::start      (kind server, parent = client's traceparent)
//! ├── switchyard.auth          spans::auth()
//! ├── switchyard.classify      spans::classify()       + record_classification
//! ├── switchyard.policy        spans::policy()         + record_decision
//! ├── switchyard.cache         spans::cache("exact")   + record_cache_result
//! ├── chat {upstream_model}    spans::provider_call()  (kind client; inject_trace_headers inside)
//! │   └── switchyard.stream    spans::stream()         + record_stream_end
//! └── switchyard.accounting    spans::accounting()     + record_cost
//! ```

use tracing::field::Empty;
use tracing::Span;

use crate::canonical::GatewayError;

/// The `tracing` target of every span here; `RUST_LOG=switchyard::otel=info` shows them on
/// stderr too.
pub const SPAN_TARGET: &str = "switchyard::otel";

/// The short, bounded error class recorded as `error.type` (never the message, which may
/// quote upstream text).
pub fn error_type(e: &GatewayError) -> &'static str {
    e.kind().as_str()
}

/// The root span of one chat request (`gen_ai.operation.name = chat`, kind server).
#[derive(Clone, Debug)]
pub struct RequestSpan {
    span: Span,
}

impl RequestSpan {
    /// Opens the request span as a child of the client's W3C trace context when the
    /// request carries `traceparent`. `dialect` is `openai` or `anthropic`; `model` is the
    /// model the client asked for.
    pub fn start(headers: &http::HeaderMap, dialect: &str, model: &str, stream: bool) -> Self {
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "chat",
            otel.name = Empty,
            otel.kind = "server",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.request.model = model,
            gen_ai.provider.name = Empty,
            gen_ai.response.model = Empty,
            gen_ai.usage.input_tokens = Empty,
            gen_ai.usage.output_tokens = Empty,
            switchyard.dialect = dialect,
            switchyard.stream = stream,
            switchyard.team = Empty,
            switchyard.route = Empty,
            switchyard.rule = Empty,
            switchyard.sensitivity.categories = Empty,
            switchyard.cache = Empty,
            switchyard.cost_micros = Empty,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        if !span.is_disabled() {
            span.record("otel.name", format!("chat {model}"));
            super::propagation::set_parent_from_headers(&span, headers);
        }
        RequestSpan { span }
    }

    /// The `tracing` span, for `.instrument(req.span().clone())` or `span().enter()`.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The team the request was authenticated as (a configured team name, not a key).
    pub fn record_team(&self, team: &str) {
        self.span.record("switchyard.team", team);
    }

    /// Where the policy sent the request and why. `route` is `local` or `frontier`
    /// (or `cache` / `blocked`); categories are the sensitivity category names only.
    pub fn record_decision(&self, route: &str, rule: &str, categories: &[impl AsRef<str>]) {
        record_decision(&self.span, route, rule, categories);
    }

    /// The target that answered: its provider name and the model it reported.
    pub fn record_provider(&self, provider: &str, response_model: &str) {
        self.span.record("gen_ai.provider.name", provider);
        self.span.record("gen_ai.response.model", response_model);
    }

    pub fn record_usage(&self, input_tokens: u64, output_tokens: u64) {
        record_usage(&self.span, input_tokens, output_tokens);
    }

    /// `hit` or `miss` (or `bypass`).
    pub fn record_cache(&self, result: &'static str) {
        self.span.record("switchyard.cache", result);
    }

    pub fn record_cost_micros(&self, cost_micros: i64) {
        self.span.record("switchyard.cost_micros", cost_micros);
    }

    /// The HTTP status sent to the client; 5xx marks the span as an error.
    pub fn record_status(&self, status: u16) {
        self.span.record("http.response.status_code", status);
        if status >= 500 {
            self.span.record("otel.status_code", "ERROR");
        }
    }

    /// Records the error class and status (not the message).
    pub fn record_error(&self, e: &GatewayError) {
        record_error(&self.span, e);
        self.record_status(e.status());
    }
}

/// Authenticating the virtual key.
pub fn auth() -> Span {
    tracing::info_span!(target: SPAN_TARGET, "switchyard.auth", switchyard.team = Empty, error.type = Empty)
}

/// Sensitivity and difficulty classification.
pub fn classify() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.classify",
        switchyard.sensitivity.categories = Empty,
        switchyard.difficulty = Empty,
    )
}

/// What classification found: category names and the difficulty score, no values.
pub fn record_classification(span: &Span, categories: &[impl AsRef<str>], difficulty: f64) {
    if span.is_disabled() {
        return;
    }
    span.record(
        "switchyard.sensitivity.categories",
        join(categories).as_str(),
    );
    span.record("switchyard.difficulty", difficulty);
}

/// The NER PII model's part of classification (a child of `switchyard.classify`).
pub fn ner() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.classify.ner",
        switchyard.ner.outcome = Empty,
        switchyard.ner.duration_ms = Empty,
        switchyard.ner.findings = Empty,
    )
}

/// What the NER pass did: outcome, time, number of findings (no values).
pub fn record_ner(span: &Span, outcome: &str, duration_ms: f64, findings: usize) {
    if span.is_disabled() {
        return;
    }
    span.record("switchyard.ner.outcome", outcome);
    span.record("switchyard.ner.duration_ms", duration_ms);
    span.record("switchyard.ner.findings", findings as u64);
}

/// The sentence head's part of classification (a child of `switchyard.classify`).
pub fn sentence_head() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.classify.sentence_head",
        switchyard.head.outcome = Empty,
        switchyard.head.duration_ms = Empty,
        switchyard.head.findings = Empty,
        switchyard.head.difficulty = Empty,
    )
}

/// What the head pass did: outcome, time, number of findings, resulting difficulty.
pub fn record_sentence_head(
    span: &Span,
    outcome: &str,
    duration_ms: f64,
    findings: usize,
    difficulty: f32,
) {
    if span.is_disabled() {
        return;
    }
    span.record("switchyard.head.outcome", outcome);
    span.record("switchyard.head.duration_ms", duration_ms);
    span.record("switchyard.head.findings", findings as u64);
    span.record("switchyard.head.difficulty", difficulty as f64);
}

/// The policy decision.
pub fn policy() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.policy",
        switchyard.route = Empty,
        switchyard.rule = Empty,
        switchyard.sensitivity.categories = Empty,
        switchyard.redactions = Empty,
        error.type = Empty,
    )
}

/// Records route, rule and categories on a request or policy span.
pub fn record_decision(span: &Span, route: &str, rule: &str, categories: &[impl AsRef<str>]) {
    if span.is_disabled() {
        return;
    }
    span.record("switchyard.route", route);
    span.record("switchyard.rule", rule);
    span.record(
        "switchyard.sensitivity.categories",
        join(categories).as_str(),
    );
}

/// A cache look-up; `kind` is `exact` or `semantic`.
pub fn cache(kind: &'static str) -> Span {
    tracing::info_span!(target: SPAN_TARGET, "switchyard.cache", switchyard.cache.kind = kind, switchyard.cache = Empty)
}

/// `hit`, `miss` or `bypass`.
pub fn record_cache_result(span: &Span, result: &'static str) {
    span.record("switchyard.cache", result);
}

/// One call to a target of the chain (kind client). `provider` is the configured provider
/// name (`switchyard.local` style names for the in-process model are fine). Call
/// `inject_trace_headers` while this span is current so the upstream joins the trace.
pub fn provider_call(provider: &str, upstream_model: &str, stream: bool) -> Span {
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "gen_ai.provider.call",
        otel.name = Empty,
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = provider,
        gen_ai.request.model = upstream_model,
        gen_ai.response.model = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        switchyard.stream = stream,
        switchyard.local = Empty,
        error.type = Empty,
    );
    if !span.is_disabled() {
        span.record("otel.name", format!("chat {upstream_model}"));
    }
    span
}

/// In-process generation by the local runtime (kind internal, no network).
pub fn local_generation(model: &str, stream: bool) -> Span {
    let span = provider_call("switchyard.local", model, stream);
    span.record("otel.kind", "internal");
    span.record("switchyard.local", true);
    span
}

/// Streaming the answer back to the client.
pub fn stream() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.stream",
        switchyard.ttft_ms = Empty,
        switchyard.chunks = Empty,
        error.type = Empty,
    )
}

/// Time to first token and how many chunks went out.
pub fn record_stream_end(span: &Span, ttft: std::time::Duration, chunks: u64) {
    span.record("switchyard.ttft_ms", ttft.as_secs_f64() * 1000.0);
    span.record("switchyard.chunks", chunks);
}

/// Writing the ledger record and charging budgets.
pub fn accounting() -> Span {
    tracing::info_span!(
        target: SPAN_TARGET,
        "switchyard.accounting",
        switchyard.cost_micros = Empty,
        switchyard.savings_micros = Empty,
        error.type = Empty,
    )
}

pub fn record_cost(span: &Span, cost_micros: i64, savings_micros: i64) {
    span.record("switchyard.cost_micros", cost_micros);
    span.record("switchyard.savings_micros", savings_micros);
}

/// Token usage on a request or provider span.
pub fn record_usage(span: &Span, input_tokens: u64, output_tokens: u64) {
    span.record("gen_ai.usage.input_tokens", input_tokens);
    span.record("gen_ai.usage.output_tokens", output_tokens);
}

/// Marks any of these spans failed with the error's class.
pub fn record_error(span: &Span, e: &GatewayError) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_type(e));
}

fn join(items: &[impl AsRef<str>]) -> String {
    let mut out = String::new();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(s.as_ref());
    }
    out
}
