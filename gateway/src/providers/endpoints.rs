//! The endpoints of one provider (base URL and key pairs) and how calls are spread
//! over them.
//!
//! Smooth weighted round-robin, as nginx does it: every pick adds each eligible
//! endpoint's weight to its running score, takes the highest score and subtracts the
//! eligible total from it. Over any run of `sum(weights)` picks each endpoint gets
//! exactly its share, interleaved (3:1 gives a a b a, not a a a b), without a random
//! number generator, so a split can be asserted exactly. An endpoint that is not
//! eligible (open circuit, cooling down after a 429) is skipped and gains nothing while
//! skipped, so it does not come back with a burst.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::canonical::GatewayError;
use crate::config::ResolvedEndpoint;

use super::health::{Health, HealthReport, UpstreamErrorKind};
use super::resilience::CircuitState;

/// A set of endpoint indexes (a provider has at most `config::MAX_ENDPOINTS`, 64).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointSet(u64);

impl EndpointSet {
    pub const EMPTY: EndpointSet = EndpointSet(0);

    pub fn from_bits(bits: u64) -> Self {
        EndpointSet(bits)
    }

    /// Endpoints `0..n`.
    pub fn first(n: usize) -> Self {
        match n {
            0 => EndpointSet(0),
            n if n >= 64 => EndpointSet(u64::MAX),
            n => EndpointSet((1u64 << n) - 1),
        }
    }

    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1 << i) != 0
    }

    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.0 |= 1 << i;
        }
    }

    pub fn without(self, other: EndpointSet) -> Self {
        EndpointSet(self.0 & !other.0)
    }

    pub fn and(self, other: EndpointSet) -> Self {
        EndpointSet(self.0 & other.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

struct Member {
    name: Arc<str>,
    weight: u32,
    health: Mutex<Health>,
}

/// The endpoints of a provider: names, weights, the balancer and each one's health.
pub struct Pool {
    members: Vec<Member>,
    /// Smooth weighted round-robin scores, one per endpoint.
    scores: Mutex<Vec<i64>>,
}

/// `/readyz` view of one endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub endpoint: String,
    pub weight: u32,
    #[serde(flatten)]
    pub health: HealthReport,
}

/// `/readyz` view of a provider: a summary of its endpoints, then each of them.
#[derive(Debug, Clone, Serialize)]
pub struct BackendReport {
    pub provider: String,
    pub kind: &'static str,
    /// Closed while any endpoint is closed; open when all are open.
    pub state: CircuitState,
    /// Any endpoint up.
    pub up: bool,
    /// Of its healthiest endpoint: how far the provider is from having none up.
    pub consecutive_failures: u32,
    /// Of the most recent error on any endpoint.
    pub last_error_kind: Option<UpstreamErrorKind>,
    /// Of the most recent success on any endpoint.
    pub last_success_age_ms: Option<u64>,
    pub requests: u64,
    pub errors: u64,
    pub endpoints: Vec<EndpointReport>,
}

impl Pool {
    /// Endpoints named and weighted as configured (config validation guarantees at
    /// least one positive weight and at most 64 endpoints).
    pub fn new<'a>(endpoints: impl IntoIterator<Item = &'a ResolvedEndpoint>) -> Pool {
        let members: Vec<Member> = endpoints
            .into_iter()
            .take(64)
            .map(|e| Member {
                name: Arc::from(e.label.as_str()),
                weight: e.weight,
                health: Mutex::new(Health::default()),
            })
            .collect();
        Pool {
            scores: Mutex::new(vec![0; members.len()]),
            members,
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The endpoint's configured name, or its index.
    pub fn name(&self, i: usize) -> Option<&Arc<str>> {
        self.members.get(i).map(|m| &m.name)
    }

    pub fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.members.iter().map(|m| &m.name)
    }

    /// Endpoints that take calls at all (weight above 0).
    pub fn weighted(&self) -> EndpointSet {
        let mut set = EndpointSet::EMPTY;
        for (i, m) in self.members.iter().enumerate() {
            if m.weight > 0 {
                set.insert(i);
            }
        }
        set
    }

    /// Endpoints in a 429 cool-down now.
    pub fn cooling(&self, now: Instant) -> EndpointSet {
        let mut set = EndpointSet::EMPTY;
        for (i, m) in self.members.iter().enumerate() {
            if m.health.lock().is_ok_and(|h| h.cooling_down(now)) {
                set.insert(i);
            }
        }
        set
    }

    /// The next endpoint among `eligible` (those of weight 0 never), by smooth
    /// weighted round-robin; `None` when none is eligible.
    pub fn pick(&self, eligible: EndpointSet) -> Option<usize> {
        let Ok(mut scores) = self.scores.lock() else {
            return None;
        };
        let mut total: i64 = 0;
        let mut best: Option<usize> = None;
        for (i, m) in self.members.iter().enumerate() {
            if m.weight == 0 || !eligible.contains(i) {
                continue;
            }
            let w = i64::from(m.weight);
            scores[i] += w;
            total += w;
            // Ties go to the earlier endpoint, which makes the sequence reproducible.
            if best.is_none_or(|b| scores[i] > scores[b]) {
                best = Some(i);
            }
        }
        let chosen = best?;
        scores[chosen] -= total;
        Some(chosen)
    }

    /// For callers without a request's bookkeeping (token counting): the next endpoint
    /// whose last call did not fail and that is not cooling down, else the next one.
    pub fn pick_any(&self) -> usize {
        let now = Instant::now();
        let weighted = self.weighted();
        let mut healthy = EndpointSet::EMPTY;
        for (i, m) in self.members.iter().enumerate() {
            if m.health
                .lock()
                .is_ok_and(|h| h.up(1) && !h.cooling_down(now))
            {
                healthy.insert(i);
            }
        }
        self.pick(weighted.and(healthy))
            .or_else(|| self.pick(weighted))
            .unwrap_or(0)
    }

    /// Notes one call's outcome; returns whether the endpoint is up afterwards.
    pub fn record(&self, i: usize, outcome: Result<(), &GatewayError>, threshold: u32) -> bool {
        let Some(m) = self.members.get(i) else {
            return true;
        };
        let Ok(mut h) = m.health.lock() else {
            return true;
        };
        h.record(Instant::now(), outcome);
        h.up(threshold)
    }

    pub fn report(
        &self,
        provider: &str,
        kind: &'static str,
        threshold: u32,
        cooldown: Duration,
    ) -> BackendReport {
        let now = Instant::now();
        let endpoints: Vec<EndpointReport> = self
            .members
            .iter()
            .map(|m| EndpointReport {
                endpoint: m.name.to_string(),
                weight: m.weight,
                health: m
                    .health
                    .lock()
                    .map(|h| h.report(now, threshold, cooldown))
                    .unwrap_or_else(|p| p.into_inner().report(now, threshold, cooldown)),
            })
            .collect();
        let healths = || endpoints.iter().map(|e| &e.health);
        let state = if healths().any(|h| h.state == CircuitState::Closed) {
            CircuitState::Closed
        } else if healths().any(|h| h.state == CircuitState::HalfOpen) {
            CircuitState::HalfOpen
        } else {
            CircuitState::Open
        };
        let last_error = healths()
            .filter_map(|h| Some((h.last_error_age_ms?, h.last_error_kind?)))
            .min_by_key(|(age, _)| *age);
        BackendReport {
            provider: provider.to_string(),
            kind,
            state,
            up: healths().any(|h| h.up),
            consecutive_failures: healths().map(|h| h.consecutive_failures).min().unwrap_or(0),
            last_error_kind: last_error.map(|(_, k)| k),
            last_success_age_ms: healths().filter_map(|h| h.last_success_age_ms).min(),
            requests: healths().map(|h| h.requests).sum(),
            errors: healths().map(|h| h.errors).sum(),
            endpoints,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(weights: &[u32]) -> Pool {
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
        Pool::new(&endpoints)
    }

    fn picks(p: &Pool, eligible: EndpointSet, n: usize) -> Vec<usize> {
        (0..n).filter_map(|_| p.pick(eligible)).collect()
    }

    #[test]
    fn smooth_weighted_round_robin_is_exact_and_interleaved() {
        let p = pool(&[3, 1]);
        let all = EndpointSet::first(2);
        assert_eq!(picks(&p, all, 4), [0, 0, 1, 0]);
        let many = picks(&p, all, 400);
        assert_eq!(many.iter().filter(|i| **i == 0).count(), 300);
        let p = pool(&[5, 1, 1]);
        assert_eq!(picks(&p, EndpointSet::first(3), 7), [0, 0, 1, 0, 2, 0, 0]);
    }

    #[test]
    fn ineligible_and_zero_weight_endpoints_are_skipped() {
        let p = pool(&[1, 1, 0]);
        let only_second = EndpointSet::from_bits(0b010);
        assert_eq!(picks(&p, only_second, 3), [1, 1, 1]);
        assert_eq!(
            p.pick(EndpointSet::from_bits(0b100)),
            None,
            "weight 0 drains"
        );
        assert_eq!(p.pick(EndpointSet::EMPTY), None);
        // The skipped endpoint gained nothing meanwhile: strict alternation resumes.
        assert_eq!(picks(&p, EndpointSet::first(3), 4), [0, 1, 0, 1]);
    }

    #[test]
    fn pick_any_prefers_healthy_endpoints() {
        let p = pool(&[1, 1]);
        let e = GatewayError::Upstream {
            provider: "p".into(),
            status: 500,
            message: "m".into(),
            retry_after: None,
        };
        assert!(
            !p.record(0, Err(&e), 1),
            "down after one failure at threshold 1"
        );
        assert_eq!(
            (0..4).map(|_| p.pick_any()).collect::<Vec<_>>(),
            [1, 1, 1, 1]
        );
        assert!(!p.record(1, Err(&e), 1));
        let all_down: Vec<usize> = (0..2).map(|_| p.pick_any()).collect();
        assert!(
            all_down.contains(&0) && all_down.contains(&1),
            "{all_down:?}"
        );
    }

    #[test]
    fn report_summarises_endpoints() {
        let p = pool(&[1, 1]);
        let e = GatewayError::Timeout {
            provider: "p".into(),
            after_ms: 5,
        };
        p.record(0, Err(&e), 1);
        p.record(1, Ok(()), 1);
        let r = p.report("prov", "openai", 1, Duration::from_secs(30));
        assert_eq!(r.state, CircuitState::Closed);
        assert!(r.up);
        assert_eq!((r.requests, r.errors, r.consecutive_failures), (2, 1, 0));
        assert_eq!(r.last_error_kind, Some(UpstreamErrorKind::Timeout));
        assert_eq!(r.endpoints[0].health.state, CircuitState::Open);
        assert_eq!(r.endpoints[1].endpoint, "e1");
        p.record(1, Err(&e), 1);
        let r = p.report("prov", "openai", 1, Duration::from_secs(30));
        assert_eq!(r.state, CircuitState::Open);
        assert!(!r.up);
    }
}
