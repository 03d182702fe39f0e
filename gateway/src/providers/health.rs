//! How one endpoint of a provider is doing, from the calls made to it: counts, the kind
//! of the last error, when it last answered, and a cool-down after a 429.
//!
//! This is the endpoint-wide summary behind `/readyz` and `switchyard_backend_up`. Calls
//! are admitted per model by the circuits of `resilience.rs`; a model the endpoint does
//! not serve must not make the endpoint look down while it serves the others, so the
//! summary opens only when every call failed, whatever the model.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::canonical::GatewayError;

use super::resilience::{counts_against_circuit, parse_retry_after, CircuitState};

/// A 429 without `retry-after` cools the endpoint down this long.
const DEFAULT_COOLDOWN: Duration = Duration::from_secs(1);
/// A `retry-after` is honoured up to this; longer ones are clamped (the cool-down only
/// steers the balancer, so a huge value must not sideline an endpoint for hours).
const MAX_COOLDOWN: Duration = Duration::from_secs(600);

/// What went wrong with an upstream call: a fixed set, so it can be a metric label.
/// Built from the error's class and status, never from its text (which can quote
/// upstream bodies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamErrorKind {
    /// No connection could be made.
    Connect,
    /// No response head, or no chunk, within the provider's timeout.
    Timeout,
    /// 429 from the upstream.
    RateLimited,
    /// 503 or 529: the upstream says it is overloaded.
    Overloaded,
    /// Any other 5xx.
    ServerError,
    /// 401 or 403: the endpoint's key was refused.
    Auth,
    /// Any other 4xx.
    ClientError,
    /// Reached, but the answer broke off or could not be read.
    BadResponse,
    Other,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 9] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::RateLimited,
        UpstreamErrorKind::Overloaded,
        UpstreamErrorKind::ServerError,
        UpstreamErrorKind::Auth,
        UpstreamErrorKind::ClientError,
        UpstreamErrorKind::BadResponse,
        UpstreamErrorKind::Other,
    ];

    pub fn of(e: &GatewayError) -> Self {
        match e {
            GatewayError::Timeout { .. } => UpstreamErrorKind::Timeout,
            GatewayError::BadGateway { message, .. }
                if message.starts_with(super::http::CONNECT_FAILED) =>
            {
                UpstreamErrorKind::Connect
            }
            GatewayError::BadGateway { .. } => UpstreamErrorKind::BadResponse,
            GatewayError::Upstream { status, .. } => match status {
                429 => UpstreamErrorKind::RateLimited,
                503 | 529 => UpstreamErrorKind::Overloaded,
                401 | 403 => UpstreamErrorKind::Auth,
                s if *s >= 500 => UpstreamErrorKind::ServerError,
                s if *s >= 400 => UpstreamErrorKind::ClientError,
                _ => UpstreamErrorKind::Other,
            },
            GatewayError::RateLimited { .. } => UpstreamErrorKind::RateLimited,
            GatewayError::Overloaded(_) => UpstreamErrorKind::Overloaded,
            GatewayError::InvalidRequest(_)
            | GatewayError::NotFound(_)
            | GatewayError::PayloadTooLarge { .. }
            | GatewayError::RequestTimeout(_) => UpstreamErrorKind::ClientError,
            GatewayError::Authentication(_) | GatewayError::PermissionDenied(_) => {
                UpstreamErrorKind::Auth
            }
            GatewayError::Internal(_) => UpstreamErrorKind::Other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::RateLimited => "rate_limited",
            UpstreamErrorKind::Overloaded => "overloaded",
            UpstreamErrorKind::ServerError => "server_error",
            UpstreamErrorKind::Auth => "auth",
            UpstreamErrorKind::ClientError => "client_error",
            UpstreamErrorKind::BadResponse => "bad_response",
            UpstreamErrorKind::Other => "other",
        }
    }
}

/// The running record of one endpoint.
#[derive(Debug, Default)]
pub struct Health {
    requests: u64,
    errors: u64,
    /// Failed calls (the kinds that count against a circuit) since the last success.
    consecutive_failures: u32,
    last_error: Option<(UpstreamErrorKind, Instant)>,
    last_failure_at: Option<Instant>,
    last_success_at: Option<Instant>,
    cooling_until: Option<Instant>,
}

/// `/readyz` view of one endpoint. Ages are milliseconds; `None` means never.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    pub state: CircuitState,
    /// `false` once `failure_threshold` calls in a row failed, until one succeeds.
    pub up: bool,
    pub consecutive_failures: u32,
    pub last_error_kind: Option<UpstreamErrorKind>,
    pub last_error_age_ms: Option<u64>,
    pub last_success_age_ms: Option<u64>,
    /// Time left in a 429 cool-down (0 when none).
    pub cooling_down_ms: u64,
    pub requests: u64,
    pub errors: u64,
}

impl Health {
    /// Notes the outcome of one call. A 429 cools the endpoint down for its
    /// `retry-after`; it does not count as a failure (the backend is up, it throttles).
    pub fn record(&mut self, now: Instant, outcome: Result<(), &GatewayError>) {
        self.requests += 1;
        match outcome {
            Ok(()) => {
                self.consecutive_failures = 0;
                self.last_success_at = Some(now);
                self.cooling_until = None;
            }
            Err(e) => {
                self.errors += 1;
                self.last_error = Some((UpstreamErrorKind::of(e), now));
                if e.status() == 429 {
                    let wait = e
                        .retry_after()
                        .and_then(parse_retry_after)
                        .unwrap_or(DEFAULT_COOLDOWN)
                        .min(MAX_COOLDOWN);
                    self.cooling_until = Some(now + wait);
                }
                if counts_against_circuit(e) {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                    self.last_failure_at = Some(now);
                }
            }
        }
    }

    pub fn cooling_down(&self, now: Instant) -> bool {
        self.cooling_until.is_some_and(|t| t > now)
    }

    pub fn up(&self, threshold: u32) -> bool {
        self.consecutive_failures < threshold.max(1)
    }

    pub fn report(&self, now: Instant, threshold: u32, cooldown: Duration) -> HealthReport {
        let age =
            |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t).as_millis() as u64);
        let state = if self.up(threshold) {
            CircuitState::Closed
        } else if self
            .last_failure_at
            .is_some_and(|t| now.saturating_duration_since(t) < cooldown)
        {
            CircuitState::Open
        } else {
            // The cool-down passed: the next call tells whether it is back.
            CircuitState::HalfOpen
        };
        HealthReport {
            state,
            up: self.up(threshold),
            consecutive_failures: self.consecutive_failures,
            last_error_kind: self.last_error.map(|(k, _)| k),
            last_error_age_ms: age(self.last_error.map(|(_, t)| t)),
            last_success_age_ms: age(self.last_success_at),
            cooling_down_ms: self
                .cooling_until
                .map_or(0, |t| t.saturating_duration_since(now).as_millis() as u64),
            requests: self.requests,
            errors: self.errors,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(status: u16, retry_after: Option<&str>) -> GatewayError {
        GatewayError::Upstream {
            provider: "p".into(),
            status,
            message: "m".into(),
            retry_after: retry_after.map(str::to_string),
        }
    }

    #[test]
    fn kinds_come_from_class_and_status() {
        assert_eq!(
            UpstreamErrorKind::of(&upstream(429, None)),
            UpstreamErrorKind::RateLimited
        );
        assert_eq!(
            UpstreamErrorKind::of(&upstream(529, None)),
            UpstreamErrorKind::Overloaded
        );
        assert_eq!(
            UpstreamErrorKind::of(&upstream(502, None)),
            UpstreamErrorKind::ServerError
        );
        assert_eq!(
            UpstreamErrorKind::of(&upstream(401, None)),
            UpstreamErrorKind::Auth
        );
        let connect = GatewayError::BadGateway {
            provider: "p".into(),
            message: super::super::http::CONNECT_FAILED.into(),
        };
        assert_eq!(UpstreamErrorKind::of(&connect), UpstreamErrorKind::Connect);
        let cut = GatewayError::BadGateway {
            provider: "p".into(),
            message: "upstream transport error: reset".into(),
        };
        assert_eq!(UpstreamErrorKind::of(&cut), UpstreamErrorKind::BadResponse);
    }

    #[test]
    fn failures_in_a_row_take_it_down_and_one_success_brings_it_back() {
        let mut h = Health::default();
        let now = Instant::now();
        let cooldown = Duration::from_secs(30);
        for _ in 0..3 {
            h.record(now, Err(&upstream(500, None)));
        }
        let r = h.report(now, 3, cooldown);
        assert!(!r.up);
        assert_eq!(r.state, CircuitState::Open);
        assert_eq!(r.last_error_kind, Some(UpstreamErrorKind::ServerError));
        assert_eq!((r.requests, r.errors, r.consecutive_failures), (3, 3, 3));
        let later = now + cooldown;
        assert_eq!(h.report(later, 3, cooldown).state, CircuitState::HalfOpen);
        h.record(later, Ok(()));
        let r = h.report(later, 3, cooldown);
        assert!(r.up);
        assert_eq!(r.state, CircuitState::Closed);
        assert_eq!(r.last_success_age_ms, Some(0));
        assert_eq!((r.requests, r.errors, r.consecutive_failures), (4, 3, 0));
    }

    #[test]
    fn a_429_cools_down_for_its_retry_after_without_counting_as_down() {
        let mut h = Health::default();
        let now = Instant::now();
        h.record(now, Err(&upstream(429, Some("7"))));
        assert!(h.cooling_down(now + Duration::from_secs(6)));
        assert!(!h.cooling_down(now + Duration::from_secs(7)));
        let r = h.report(now, 1, Duration::from_secs(30));
        assert!(r.up, "throttling is not down");
        assert_eq!(r.cooling_down_ms, 7000);
        assert_eq!(r.last_error_kind, Some(UpstreamErrorKind::RateLimited));
        // A client error neither takes it down nor cools it.
        h.record(now, Err(&upstream(400, None)));
        assert!(h.up(1));
        // Without retry-after: a short default; absurd values are clamped.
        let mut h = Health::default();
        h.record(now, Err(&upstream(429, None)));
        assert!(h.cooling_down(now) && !h.cooling_down(now + DEFAULT_COOLDOWN));
        h.record(now, Err(&upstream(429, Some("999999"))));
        assert!(!h.cooling_down(now + MAX_COOLDOWN));
    }
}
