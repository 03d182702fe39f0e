//! Retries with jittered backoff and a circuit breaker per provider and model.
//!
//! Retries happen only before anything reached the client (the dispatcher calls them
//! only for errors returned before the first byte), so a retried request is never seen
//! twice by the client.

use std::collections::HashMap;
use std::sync::Mutex;
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

/// Seconds (integer or fractional); HTTP dates are not honoured (treated as absent).
fn parse_retry_after(v: &str) -> Option<Duration> {
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
}

/// Consecutive failures open the circuit for `cooldown`; then one probe request is let
/// through (half-open): success closes it, failure opens it again.
pub struct Breakers {
    threshold: u32,
    cooldown: Duration,
    circuits: Mutex<HashMap<String, Circuit>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CircuitReport {
    pub target: String,
    pub state: CircuitState,
    pub consecutive_failures: u32,
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breakers {
            threshold: threshold.max(1),
            cooldown,
            circuits: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a request may go to `target` now: `None` when the circuit is open,
    /// `Some(true)` for the single probe of a half-open circuit (not to be retried).
    pub fn admit(&self, target: &str) -> Option<bool> {
        let Ok(mut map) = self.circuits.lock() else {
            return Some(false);
        };
        let Some(c) = map.get_mut(target) else {
            return Some(false);
        };
        match c.state {
            CircuitState::Closed => Some(false),
            CircuitState::Open => {
                if c.opened_at.is_some_and(|t| t.elapsed() >= self.cooldown) {
                    c.state = CircuitState::HalfOpen;
                    c.probe_in_flight = true;
                    Some(true)
                } else {
                    None
                }
            }
            CircuitState::HalfOpen => {
                if c.probe_in_flight {
                    None
                } else {
                    c.probe_in_flight = true;
                    Some(true)
                }
            }
        }
    }

    pub fn allow(&self, target: &str) -> bool {
        self.admit(target).is_some()
    }

    /// Records the outcome of a call that `allow` let through. Only failures that say
    /// something about the backend (retryable ones) count; a 400 does not.
    pub fn record(&self, target: &str, result: Result<(), &GatewayError>) {
        let Ok(mut map) = self.circuits.lock() else {
            return;
        };
        match result {
            Ok(()) => {
                map.remove(target);
            }
            // A 429 says the backend is healthy but throttling us: not a reason to open.
            Err(e) if is_retryable(e) && e.status() != 429 => {
                let c = map.entry(target.to_string()).or_insert(Circuit {
                    state: CircuitState::Closed,
                    failures: 0,
                    opened_at: None,
                    probe_in_flight: false,
                });
                c.failures = c.failures.saturating_add(1);
                c.probe_in_flight = false;
                if c.state == CircuitState::HalfOpen || c.failures >= self.threshold {
                    if c.state != CircuitState::Open {
                        tracing::warn!(target, failures = c.failures, "circuit opened");
                    }
                    c.state = CircuitState::Open;
                    c.opened_at = Some(Instant::now());
                }
            }
            Err(_) => {
                if let Some(c) = map.get_mut(target) {
                    c.probe_in_flight = false;
                }
            }
        }
    }

    pub fn report(&self) -> Vec<CircuitReport> {
        let Ok(map) = self.circuits.lock() else {
            return Vec::new();
        };
        let mut out: Vec<_> = map
            .iter()
            .map(|(t, c)| CircuitReport {
                target: t.clone(),
                state: c.state,
                consecutive_failures: c.failures,
            })
            .collect();
        out.sort_by(|a, b| a.target.cmp(&b.target));
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

    #[test]
    fn breaker_opens_half_opens_and_closes() {
        let b = Breakers::new(3, Duration::from_millis(30));
        for _ in 0..3 {
            assert!(b.allow("t"));
            b.record("t", Err(&err500()));
        }
        assert!(!b.allow("t"), "open after 3 failures");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow("t"), "one probe after the cooldown");
        assert!(!b.allow("t"), "only one probe at a time");
        b.record("t", Err(&err500()));
        assert!(!b.allow("t"), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.allow("t"));
        b.record("t", Ok(()));
        assert!(b.allow("t") && b.allow("t"), "closed after a good probe");
        assert!(b.report().is_empty());
    }

    #[test]
    fn client_errors_do_not_open_the_circuit() {
        let b = Breakers::new(1, Duration::from_secs(60));
        b.record("t", Err(&GatewayError::InvalidRequest("bad".into())));
        assert!(b.allow("t"));
    }
}
