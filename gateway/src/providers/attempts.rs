//! The attempts of one request at one target (a provider and model): which endpoint
//! each goes to, whether to wait before the next, and what the circuits, the
//! endpoints' health and the metrics learn from each.
//!
//! - The first attempt goes where the balancer says, among endpoints whose circuit for
//!   this model admits calls, preferring those not cooling down after a 429.
//! - After a failure worth another try, the next attempt goes to an endpoint this
//!   request has not tried yet, at once: waiting is for giving the same backend time.
//!   Once all were tried, retries wait (backoff or a short `retry-after`) as before.
//!   Every attempt after the first counts against the provider's `max_retries`.
//! - A failure counts against an endpoint's circuit once per visit, when the request
//!   leaves that endpoint (for another, or gives up): retries on the same endpoint are
//!   one outcome, as for a provider with a single endpoint.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::canonical::GatewayError;
use crate::telemetry::metrics::Metrics;

use super::endpoints::{EndpointSet, Pool};
use super::health::UpstreamErrorKind;
use super::resilience::{is_retryable, Breakers, RetryPolicy};
use super::Provider;

/// Where one attempt goes.
#[derive(Debug, Clone)]
pub struct Pick {
    pub endpoint: usize,
    /// The endpoint's name (metric label, logs).
    pub name: Arc<str>,
    /// The single probe of a half-open circuit: never retried on the same endpoint.
    pub probe: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long (zero when moving to another endpoint).
    Retry(Duration),
    GiveUp,
}

/// An upstream refused the key of this endpoint: another endpoint (another key) may
/// well take the call, the same one never will.
fn endpoint_specific(e: &GatewayError) -> bool {
    matches!(e, GatewayError::Upstream { status: 401, .. })
}

pub struct Attempts<'a> {
    breakers: &'a Breakers,
    metrics: &'a Metrics,
    provider: &'a str,
    pool: Option<&'a Pool>,
    /// Circuit key: `provider/model`.
    target: String,
    retry: RetryPolicy,
    /// Endpoints that take calls at all (weight above 0).
    weighted: EndpointSet,
    count: usize,
    tried: EndpointSet,
    attempts: u32,
    /// Admitted and not yet resolved; released if the request goes away mid-call.
    in_flight: Option<Pick>,
    /// A failure not yet counted against its endpoint's circuit.
    pending: Option<(usize, Arc<str>, GatewayError)>,
}

impl<'a> Attempts<'a> {
    pub fn new(
        breakers: &'a Breakers,
        metrics: &'a Metrics,
        provider: &'a dyn Provider,
        upstream_model: &str,
    ) -> Self {
        let pool = provider.pool();
        let (weighted, count) = match pool {
            Some(p) => (p.weighted(), p.len()),
            None => (EndpointSet::first(1), 1),
        };
        Attempts {
            breakers,
            metrics,
            provider: provider.name(),
            pool,
            target: format!("{}/{}", provider.name(), upstream_model),
            retry: provider.retry_policy(),
            weighted,
            count,
            tried: EndpointSet::EMPTY,
            attempts: 0,
            in_flight: None,
            pending: None,
        }
    }

    /// Attempts made so far.
    pub fn made(&self) -> u32 {
        self.attempts
    }

    fn open(&self) -> EndpointSet {
        EndpointSet::from_bits(self.breakers.refused(&self.target, self.count))
    }

    fn pick(&self, eligible: EndpointSet) -> Option<usize> {
        match self.pool {
            Some(pool) => pool.pick(eligible),
            None => eligible.contains(0).then_some(0),
        }
    }

    fn name(&self, endpoint: usize) -> Arc<str> {
        self.pool
            .and_then(|p| p.name(endpoint).cloned())
            .unwrap_or_else(|| Arc::from("0"))
    }

    /// The endpoint for the next attempt; `None` when every circuit for this target is
    /// open. Checked before every attempt: another request may have opened a circuit.
    pub fn choose(&mut self) -> Option<Pick> {
        let cooling = self
            .pool
            .map_or(EndpointSet::EMPTY, |p| p.cooling(Instant::now()));
        let mut lost = EndpointSet::EMPTY;
        loop {
            let candidates = self.weighted.without(self.open()).without(lost);
            let untried = candidates.without(self.tried);
            let choice = [untried.without(cooling), untried, candidates]
                .into_iter()
                .find(|set| !set.is_empty())
                .and_then(|set| self.pick(set));
            let Some(endpoint) = choice else {
                self.flush();
                return None;
            };
            if self
                .pending
                .as_ref()
                .is_some_and(|(p, _, _)| *p != endpoint)
            {
                self.flush();
            }
            match self.breakers.admit(&self.target, endpoint) {
                Some(probe) => {
                    self.tried.insert(endpoint);
                    let pick = Pick {
                        endpoint,
                        name: self.name(endpoint),
                        probe,
                    };
                    self.in_flight = Some(pick.clone());
                    return Some(pick);
                }
                // Another request took the half-open probe in the meantime.
                None => lost.insert(endpoint),
            }
        }
    }

    /// Notes a failed attempt and says whether and when to try again.
    pub fn failed(&mut self, pick: &Pick, e: &GatewayError) -> Next {
        self.attempts += 1;
        self.in_flight = None;
        self.observe(pick, Err(e));
        self.pending = Some((pick.endpoint, pick.name.clone(), e.clone()));
        let worth_another = is_retryable(e) || endpoint_specific(e);
        if !worth_another || self.attempts > self.retry.max_retries {
            self.flush();
            return Next::GiveUp;
        }
        let fresh = self.weighted.without(self.open()).without(self.tried);
        if !fresh.is_empty() {
            return Next::Retry(Duration::ZERO);
        }
        if pick.probe || endpoint_specific(e) {
            self.flush();
            return Next::GiveUp;
        }
        match self.retry.delay(self.attempts, e) {
            Some(delay) => Next::Retry(delay),
            None => {
                self.flush();
                Next::GiveUp
            }
        }
    }

    /// Notes a successful attempt: its circuit closes, its health resets.
    pub fn succeeded(&mut self, pick: &Pick) {
        self.attempts += 1;
        self.in_flight = None;
        self.observe(pick, Ok(()));
        // A failure on this same endpoint earlier in the request is outweighed.
        if self
            .pending
            .as_ref()
            .is_some_and(|(p, _, _)| *p == pick.endpoint)
        {
            self.pending = None;
        }
        self.breakers
            .record(&self.target, pick.endpoint, &pick.name, Ok(()));
    }

    fn observe(&self, pick: &Pick, outcome: Result<(), &GatewayError>) {
        let Some(pool) = self.pool else {
            return;
        };
        let up = pool.record(pick.endpoint, outcome, self.breakers.threshold());
        let kind = outcome.err().map(UpstreamErrorKind::of);
        self.metrics
            .upstream_attempt(self.provider, &pick.name, kind, up);
    }

    fn flush(&mut self) {
        if let Some((endpoint, name, e)) = self.pending.take() {
            self.breakers.record(&self.target, endpoint, &name, Err(&e));
        }
    }
}

impl Drop for Attempts<'_> {
    fn drop(&mut self) {
        self.flush();
        // The request went away mid-call (client disconnect): a half-open circuit must
        // not wait forever for a probe that will never report.
        if let Some(pick) = self.in_flight.take() {
            if pick.probe {
                self.breakers.release(&self.target, pick.endpoint);
            }
        }
    }
}

/// Calls one target (a provider and model) until an attempt succeeds or the attempts
/// give up: the one loop every backend call goes through — the request path's chain and
/// shadow calls alike — so retries, circuits, health and metrics see every call.
/// `call` makes one attempt on the endpoint it is given; `model` names the target in
/// errors and logs.
pub async fn call_target<T, F, Fut>(
    breakers: &Breakers,
    metrics: &Metrics,
    provider: &dyn Provider,
    upstream_model: &str,
    model: &str,
    mut call: F,
) -> Result<T, GatewayError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
{
    let mut attempts = Attempts::new(breakers, metrics, provider, upstream_model);
    let mut failure = None;
    loop {
        let Some(pick) = attempts.choose() else {
            // Every circuit for this target is open (perhaps by this very request).
            return Err(failure.take().unwrap_or_else(|| {
                GatewayError::Overloaded(format!(
                    "{model}: circuit open after repeated failures; retry later"
                ))
            }));
        };
        match call(pick.endpoint).await {
            Err(e) => match attempts.failed(&pick, &e) {
                Next::Retry(delay) => {
                    tracing::info!(model = %model, endpoint = %pick.name, attempt = attempts.made(), ?delay, error = %e, "retrying");
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    failure = Some(e);
                }
                Next::GiveUp => return Err(e),
            },
            Ok(value) => {
                attempts.succeeded(&pick);
                return Ok(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::EventStream;
    use crate::canonical::{ChatResponse, GatewayError};
    use crate::config::ResolvedEndpoint;
    use crate::providers::Call;
    use crate::telemetry::metrics::MetricsConfig;
    use futures::future::BoxFuture;

    struct Fake {
        pool: Pool,
        retries: u32,
    }

    impl Provider for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn kind(&self) -> &'static str {
            "openai"
        }
        fn pool(&self) -> Option<&Pool> {
            Some(&self.pool)
        }
        fn retry_policy(&self) -> RetryPolicy {
            RetryPolicy {
                max_retries: self.retries,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(10),
                max_retry_after: Duration::from_secs(1),
            }
        }
        fn chat<'a>(
            &'a self,
            _: usize,
            _: Call<'a>,
        ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>> {
            Box::pin(async { Err(GatewayError::Internal("unused".into())) })
        }
        fn stream<'a>(
            &'a self,
            _: usize,
            _: Call<'a>,
        ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
            Box::pin(async { Err(GatewayError::Internal("unused".into())) })
        }
    }

    fn fake(weights: &[u32], retries: u32) -> Fake {
        let endpoints: Vec<ResolvedEndpoint> = weights
            .iter()
            .enumerate()
            .map(|(i, w)| ResolvedEndpoint {
                label: format!("e{i}"),
                base_url: "http://x".into(),
                api_key: None,
                weight: *w,
            })
            .collect();
        Fake {
            pool: Pool::new(&endpoints),
            retries,
        }
    }

    fn metrics() -> Metrics {
        Metrics::new(MetricsConfig::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn status(status: u16, retry_after: Option<&str>) -> GatewayError {
        GatewayError::Upstream {
            provider: "fake".into(),
            status,
            message: "m".into(),
            retry_after: retry_after.map(str::to_string),
        }
    }

    #[test]
    fn a_failure_moves_to_the_next_endpoint_at_once() {
        let (b, m, p) = (
            Breakers::new(5, Duration::from_secs(60)),
            metrics(),
            fake(&[1, 1, 1], 2),
        );
        let mut a = Attempts::new(&b, &m, &p, "m");
        let first = a.choose().unwrap();
        assert_eq!(
            a.failed(&first, &status(500, None)),
            Next::Retry(Duration::ZERO)
        );
        let second = a.choose().unwrap();
        assert_ne!(second.endpoint, first.endpoint);
        assert_eq!(
            a.failed(&second, &status(502, None)),
            Next::Retry(Duration::ZERO)
        );
        let third = a.choose().unwrap();
        assert!(third.endpoint != first.endpoint && third.endpoint != second.endpoint);
        assert_eq!(
            a.failed(&third, &status(503, None)),
            Next::GiveUp,
            "max_retries bounds the attempts"
        );
        drop(a);
        let failing: Vec<_> = b.report().into_iter().map(|r| r.endpoint).collect();
        assert_eq!(
            failing,
            ["e0", "e1", "e2"],
            "each endpoint's circuit counted it"
        );
    }

    #[test]
    fn retries_on_a_single_endpoint_wait_and_count_once() {
        let (b, m, p) = (
            Breakers::new(1, Duration::from_secs(60)),
            metrics(),
            fake(&[1], 2),
        );
        let mut a = Attempts::new(&b, &m, &p, "m");
        let pick = a.choose().unwrap();
        match a.failed(&pick, &status(500, None)) {
            Next::Retry(d) => assert!(d > Duration::ZERO),
            other => panic!("{other:?}"),
        }
        // Not yet counted: the circuit (threshold 1) still admits the retry.
        let again = a.choose().expect("the retry is admitted");
        assert_eq!(again.endpoint, 0);
        a.succeeded(&again);
        drop(a);
        assert!(
            b.report().is_empty(),
            "success on the same endpoint outweighs it"
        );
    }

    #[test]
    fn open_circuits_are_skipped_and_all_open_refuses() {
        let (b, m, p) = (
            Breakers::new(1, Duration::from_secs(60)),
            metrics(),
            fake(&[1, 1], 1),
        );
        b.record("fake/m", 0, &Arc::from("e0"), Err(&status(500, None)));
        let mut a = Attempts::new(&b, &m, &p, "m");
        for _ in 0..3 {
            let pick = a.choose().unwrap();
            assert_eq!(pick.endpoint, 1);
            a.succeeded(&pick);
        }
        b.record("fake/m", 1, &Arc::from("e1"), Err(&status(500, None)));
        assert!(a.choose().is_none());
    }

    #[test]
    fn a_429_cools_its_endpoint_and_the_others_take_over() {
        let (b, m, p) = (
            Breakers::new(5, Duration::from_secs(60)),
            metrics(),
            fake(&[1, 1], 1),
        );
        let mut a = Attempts::new(&b, &m, &p, "m");
        let first = a.choose().unwrap();
        assert_eq!(first.endpoint, 0);
        assert_eq!(
            a.failed(&first, &status(429, Some("30"))),
            Next::Retry(Duration::ZERO),
            "a long retry-after does not stop a move to another endpoint"
        );
        let second = a.choose().unwrap();
        assert_eq!(second.endpoint, 1);
        a.succeeded(&second);
        // Later requests avoid the cooling endpoint while another is available.
        for _ in 0..4 {
            let mut a = Attempts::new(&b, &m, &p, "m");
            let pick = a.choose().unwrap();
            assert_eq!(pick.endpoint, 1);
            a.succeeded(&pick);
        }
        assert!(b.report().is_empty(), "a 429 opens no circuit");
        let text = m.render();
        assert!(
            text.contains(r#"switchyard_upstream_errors_total{endpoint="e0",kind="rate_limited",provider="other"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn a_refused_key_moves_on_but_is_never_retried_on_its_endpoint() {
        let (b, m, p) = (
            Breakers::new(5, Duration::from_secs(60)),
            metrics(),
            fake(&[1, 1], 3),
        );
        let mut a = Attempts::new(&b, &m, &p, "m");
        let first = a.choose().unwrap();
        assert_eq!(
            a.failed(&first, &status(401, None)),
            Next::Retry(Duration::ZERO)
        );
        let second = a.choose().unwrap();
        assert_eq!(a.failed(&second, &status(401, None)), Next::GiveUp);
        let mut single = Attempts::new(&b, &m, &p, "other");
        let only = single.choose().unwrap();
        let _ = single.failed(&only, &status(400, None));
        assert_eq!(single.made(), 1);
    }

    #[test]
    fn a_probe_abandoned_mid_call_is_released() {
        let (b, m, p) = (
            Breakers::new(1, Duration::from_millis(1)),
            metrics(),
            fake(&[1], 0),
        );
        b.record("fake/m", 0, &Arc::from("e0"), Err(&status(500, None)));
        std::thread::sleep(Duration::from_millis(5));
        {
            let mut a = Attempts::new(&b, &m, &p, "m");
            assert!(a.choose().unwrap().probe);
            // Dropped here, as when the client disconnects during the call.
        }
        let mut a = Attempts::new(&b, &m, &p, "m");
        assert!(
            a.choose().is_some_and(|p| p.probe),
            "the probe slot is free again"
        );
    }
}
