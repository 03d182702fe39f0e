//! Retries with jittered backoff and a circuit breaker per provider, endpoint and model.
//!
//! Retries happen only before anything reached the client (the dispatcher calls them
//! only for errors returned before the first byte), so a retried request is never seen
//! twice by the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::canonical::GatewayError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `retry-after` longer than this is not waited for: the next target of the
    /// chain is tried instead (or the 429 goes back to the client).
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    pub const NONE: RetryPolicy = RetryPolicy {
        max_retries: 0,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        max_retry_after: Duration::ZERO,
    };

    /// How long to wait before retry number `attempt` (1-based), or `None` to give up.
    pub fn delay(&self, attempt: u32, err: &GatewayError) -> Option<Duration> {
        if attempt > self.max_retries || !is_retryable(err) {
            return None;
        }
        if let Some(after) = err.retry_after().and_then(parse_retry_after) {
            return (after <= self.max_retry_after).then_some(after);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        // Full jitter keeps replicas from retrying in lock-step.
        Some(exp.mul_f64(jitter()))
    }
}

/// Connect errors, timeouts, 429 and 5xx: worth another try or another target.
pub fn is_retryable(e: &GatewayError) -> bool {
    match e {
        GatewayError::Upstream { status, .. } => *status == 429 || *status >= 500,
        GatewayError::BadGateway { .. }
        | GatewayError::Timeout { .. }
        | GatewayError::Overloaded(_) => true,
        _ => false,
    }
}

/// Failures that say something about the backend: retryable ones, except a 429, which
/// says the backend is healthy but throttling us; and an upstream 401, which says the
/// endpoint's key is refused (clients never send their own credentials upstream).
pub fn counts_against_circuit(e: &GatewayError) -> bool {
    (is_retryable(e) && e.status() != 429)
        || matches!(e, GatewayError::Upstream { status: 401, .. })
}

/// Seconds (integer or fractional); HTTP dates are not honoured (treated as absent).
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn jitter() -> f64 {
    // A cheap per-call random fraction in [0.5, 1.0): no RNG dependency needed here.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let x = nanos.wrapping_mul(2_654_435_761) % 1000;
    0.5 + f64::from(x) / 2000.0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

#[derive(Debug)]
struct Circuit {
    state: CircuitState,
    failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    /// The endpoint's name, for reports.
    endpoint: Arc<str>,
}

/// Whether a circuit would let a call through now, without claiming anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Half-open with no probe in flight: the next call is the probe.
    Probe,
    Refused,
}

/// Consecutive failures open the circuit for `cooldown`; then one probe request is let
/// through (half-open): success closes it, failure opens it again. One circuit per
/// target (`provider/model`) and endpoint of the provider, so a model broken on one
/// endpoint neither blocks that model on the others nor the endpoint's other models.
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    /// target → endpoint index → circuit; only circuits with failures are kept.
    circuits: Mutex<HashMap<String, HashMap<usize, Circuit>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CircuitReport {
    pub target: String,
    pub endpoint: String,
    pub state: CircuitState,
    pub consecutive_failures: u32,
}

impl Circuit {
    fn gate(&self, cooldown: Duration) -> Gate {
        match self.state {
            CircuitState::Closed => Gate::Closed,
            CircuitState::Open if self.opened_at.is_some_and(|t| t.elapsed() >= cooldown) => {
                Gate::Probe
            }
            CircuitState::Open => Gate::Refused,
            CircuitState::HalfOpen if self.probe_in_flight => Gate::Refused,
            CircuitState::HalfOpen => Gate::Probe,
        }
    }
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breakers {
            threshold: threshold.max(1),
            cooldown,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    pub fn threshold(&self) -> u32 {
        self.threshold
    }

    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Which of endpoints `0..n` of `target` would refuse a call now, as a bit set.
    pub fn refused(&self, target: &str, n: usize) -> u64 {
        let Ok(map) = self.circuits.lock() else {
            return 0;
        };
        let Some(circuits) = map.get(target) else {
            return 0;
        };
        circuits
            .iter()
            .filter(|(i, c)| **i < n.min(64) && c.gate(self.cooldown) == Gate::Refused)
            .fold(0, |acc, (i, _)| acc | 1 << i)
    }

    /// Whether a request may go to `endpoint` of `target` now: `None` when the circuit
    /// is open, `Some(true)` for the single probe of a half-open circuit (not to be
    /// retried on the same endpoint).
    pub fn admit(&self, target: &str, endpoint: usize) -> Option<bool> {
        let Ok(mut map) = self.circuits.lock() else {
            return Some(false);
        };
        let Some(c) = map.get_mut(target).and_then(|m| m.get_mut(&endpoint)) else {
            return Some(false);
        };
        match c.gate(self.cooldown) {
            Gate::Closed => Some(false),
            Gate::Refused => None,
            Gate::Probe => {
                c.state = CircuitState::HalfOpen;
                c.probe_in_flight = true;
                Some(true)
            }
        }
    }

    /// Records the outcome of a call that `admit` let through. Only failures that say
    /// something about the backend (`counts_against_circuit`) count; a 400 does not.
    pub fn record(
        &self,
        target: &str,
        endpoint: usize,
        endpoint_name: &Arc<str>,
        result: Result<(), &GatewayError>,
    ) {
        let Ok(mut map) = self.circuits.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                if let Some(m) = map.get_mut(target) {
                    m.remove(&endpoint);
                    if m.is_empty() {
                        map.remove(target);
                    }
                }
            }
            Err(e) if counts_against_circuit(e) => {
                let c = map
                    .entry(target.to_string())
                    .or_default()
                    .entry(endpoint)
                    .or_insert_with(|| Circuit {
                        state: CircuitState::Closed,
                        failures: 0,
                        opened_at: None,
                        probe_in_flight: false,
                        endpoint: endpoint_name.clone(),
                    });
                c.failures = c.failures.saturating_add(1);
                c.probe_in_flight = false;
                if c.state == CircuitState::HalfOpen || c.failures >= self.threshold {
                    if c.state != CircuitState::Open {
                        tracing::warn!(target, endpoint = %endpoint_name, failures = c.failures, "circuit opened");
                    }
                    c.state = CircuitState::Open;
                    c.opened_at = Some(Instant::now());
                }
            }
            Err(_) => {
                if let Some(c) = map.get_mut(target).and_then(|m| m.get_mut(&endpoint)) {
                    c.probe_in_flight = false;
                }
            }
        }
    }

    /// Frees the probe slot of a half-open circuit whose probe was abandoned (the
    /// request went away mid-call), so the next request can probe.
    pub fn release(&self, target: &str, endpoint: usize) {
        if let Ok(mut map) = self.circuits.lock() {
            if let Some(c) = map.get_mut(target).and_then(|m| m.get_mut(&endpoint)) {
                c.probe_in_flight = false;
            }
        }
    }

    pub fn report(&self) -> Vec<CircuitReport> {
        let Ok(map) = self.circuits.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = map
            .iter()
            .flat_map(|(t, circuits)| {
                circuits.values().map(move |c| CircuitReport {
                    target: t.clone(),
                    endpoint: c.endpoint.to_string(),
                    state: c.state,
                    consecutive_failures: c.failures,
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.target, &a.endpoint).cmp(&(&b.target, &b.endpoint)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err500() -> GatewayError {
        GatewayError::Upstream {
            provider: "p".into(),
            status: 500,
            message: "boom".into(),
            retry_after: None,
        }
    }

    #[test]
    fn retry_delays_grow_and_stop() {
        let p = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(150),
            max_retry_after: Duration::from_secs(2),
        };
        let d1 = p.delay(1, &err500()).unwrap();
        assert!(d1 >= Duration::from_millis(50) && d1 < Duration::from_millis(100));
        let d2 = p.delay(2, &err500()).unwrap();
        assert!(d2 <= Duration::from_millis(150));
        assert!(p.delay(3, &err500()).is_none());
        let bad = GatewayError::InvalidRequest("x".into());
        assert!(p.delay(1, &bad).is_none(), "client errors are not retried");
        let limited = GatewayError::Upstream {
            provider: "p".into(),
            status: 429,
            message: "slow down".into(),
            retry_after: Some("1".into()),
        };
        assert_eq!(p.delay(1, &limited), Some(Duration::from_secs(1)));
        let long = GatewayError::Upstream {
            provider: "p".into(),
            status: 429,
            message: "slow down".into(),
            retry_after: Some("30".into()),
        };
        assert_eq!(
            p.delay(1, &long),
            None,
            "too long a wait goes to the next target"
        );
    }

    fn name() -> Arc<str> {
        Arc::from("0")
    }

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let b = Breakers::new(3, Duration::from_millis(30));
        let allow = |b: &Breakers| b.admit("t", 0).is_some();
        for _ in 0..3 {
            assert!(allow(&b));
            b.record("t", 0, &name(), Err(&err500()));
        }
        assert!(!allow(&b), "open after 3 failures");
        assert_eq!(b.refused("t", 2), 0b01);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(b.refused("t", 2), 0, "the probe is allowed");
        assert_eq!(b.admit("t", 0), Some(true), "one probe after the cooldown");
        assert!(!allow(&b), "only one probe at a time");
        b.record("t", 0, &name(), Err(&err500()));
        assert!(!allow(&b), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(allow(&b));
        b.record("t", 0, &name(), Ok(()));
        assert!(allow(&b) && allow(&b), "closed after a good probe");
        assert!(b.report().is_empty());
    }

    #[test]
    fn endpoints_of_a_target_have_their_own_circuits() {
        let b = Breakers::new(1, Duration::from_secs(60));
        b.record("p/m", 1, &Arc::from("west"), Err(&err500()));
        assert_eq!(b.admit("p/m", 1), None);
        assert_eq!(
            b.admit("p/m", 0),
            Some(false),
            "another endpoint is unaffected"
        );
        assert_eq!(
            b.admit("p/other", 1),
            Some(false),
            "another model is unaffected"
        );
        assert_eq!(b.refused("p/m", 2), 0b10);
        let report = b.report();
        assert_eq!(report.len(), 1);
        assert_eq!(
            (report[0].target.as_str(), report[0].endpoint.as_str()),
            ("p/m", "west")
        );
    }

    #[test]
    fn client_errors_and_429s_do_not_open_the_circuit() {
        let b = Breakers::new(1, Duration::from_secs(60));
        b.record(
            "t",
            0,
            &name(),
            Err(&GatewayError::InvalidRequest("bad".into())),
        );
        let throttled = GatewayError::Upstream {
            provider: "p".into(),
            status: 429,
            message: "slow down".into(),
            retry_after: None,
        };
        b.record("t", 0, &name(), Err(&throttled));
        assert!(b.admit("t", 0).is_some());
    }
}
