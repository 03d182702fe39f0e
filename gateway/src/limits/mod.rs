//! Spend budgets and rate limits per virtual key and per team, enforced atomically in
//! one process (memory backend) or across replicas (Redis backend). See `docs/limits.md`.
//!
//! The request path calls [`Limiter::admit`] before dispatch and [`Limiter::settle`]
//! after it. `admit` touches every counter that applies to the request in one atomic
//! step: either all of them accept and are incremented, or nothing changes.

mod config;
mod glob;
mod overrides;
mod period;
mod store;

use std::fmt;
use std::sync::{Arc, RwLock};

pub use config::{
    format_usd, Backend, BudgetRule, LimitsConfig, OnRedisError, Period, RateRule, RedisBackend,
    Scope, Usd, MAX_MICROS,
};
pub use overrides::{
    validate_team, BudgetLimit, LimitKind, LimitValue, Overrides, RateLimit, TeamLimits,
    UnknownLimitKind,
};
pub use period::first_day as period_first_day;

use crate::canonical::GatewayError;
use store::{Adjust, CounterOp, MemoryStore, RedisStore, ReserveOutcome, Store};

/// Budget counters outlive their period by this much, so a call that started just before
/// midnight still settles against the day it was reserved in.
const BUDGET_GRACE_MS: u64 = 86_400_000;
/// Rate counters outlive their minute by this much, for long streaming calls that settle
/// their token count late.
const RATE_GRACE_MS: u64 = 3_600_000;

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("invalid limits config: {0}")]
    Config(String),
    #[error("limits store unavailable: {0}")]
    Store(String),
}

/// Why a request was not admitted. Rendered by the edge in the client's dialect; see
/// `From<LimitRejection> for GatewayError`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitRejection {
    #[error("{message}")]
    RateLimited {
        limit: String,
        retry_after_s: u64,
        message: String,
    },
    #[error("{message}")]
    BudgetExceeded {
        budget: String,
        message: String,
        resets_at_unix_s: u64,
    },
    #[error("{message}")]
    Unavailable { message: String },
}

impl LimitRejection {
    pub fn status(&self) -> u16 {
        match self {
            LimitRejection::RateLimited { .. } | LimitRejection::BudgetExceeded { .. } => 429,
            LimitRejection::Unavailable { .. } => 503,
        }
    }
}

impl From<LimitRejection> for GatewayError {
    fn from(r: LimitRejection) -> GatewayError {
        match r {
            LimitRejection::RateLimited {
                retry_after_s,
                message,
                ..
            } => GatewayError::RateLimited {
                message,
                retry_after: Some(retry_after_s.to_string()),
            },
            LimitRejection::BudgetExceeded {
                message,
                resets_at_unix_s,
                ..
            } => {
                let now_s = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                GatewayError::RateLimited {
                    message,
                    retry_after: Some(resets_at_unix_s.saturating_sub(now_s).max(1).to_string()),
                }
            }
            LimitRejection::Unavailable { message } => GatewayError::Overloaded(message),
        }
    }
}

/// Who a request is charged to. A rule with `scope: key` applies only when `key_id` is
/// set, one with `scope: team` only when `team` is set.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub key_id: Option<&'a str>,
    pub team: Option<&'a str>,
}

impl<'a> Subject<'a> {
    fn of(&self, scope: Scope) -> Option<&'a str> {
        match scope {
            Scope::Key => self.key_id,
            Scope::Team => self.team,
        }
    }
}

/// A budget's state for one subject in the current period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUsage {
    pub budget: String,
    /// Whether a team limit set at run time gives this budget its thresholds.
    pub source: LimitSource,
    pub scope: Scope,
    pub subject: String,
    pub period: Period,
    /// Settled spend plus reservations of calls still in flight.
    pub spent_micros: i64,
    pub soft_micros: Option<i64>,
    pub hard_micros: Option<i64>,
    pub resets_at_unix_s: u64,
}

/// Where a limit's thresholds come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The `limits:` section of the config.
    Config,
    /// A team limit (`/admin/teams/{team}/limits`, the console).
    Team,
}

/// A rate limit's state for one subject in the current minute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateUsage {
    pub limit: String,
    pub source: LimitSource,
    pub scope: Scope,
    pub subject: String,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub requests: i64,
    pub tokens: i64,
    pub resets_at_unix_s: u64,
}

/// A budget rule as it applies to one subject: the configured rule, or its thresholds
/// replaced by a team limit, or a team limit's own rule.
#[derive(Debug, Clone, Copy)]
struct BudgetView<'a> {
    name: &'a str,
    scope: Scope,
    period: Period,
    soft: Option<i64>,
    hard: Option<i64>,
    source: LimitSource,
}

#[derive(Debug, Clone, Copy)]
struct RateView<'a> {
    name: &'a str,
    scope: Scope,
    rpm: Option<u32>,
    tpm: Option<u32>,
    source: LimitSource,
}

#[derive(Debug, Clone, Copy)]
enum HeldKind {
    Spend,
    Tokens,
}

#[derive(Debug, Clone)]
struct Held {
    key: String,
    reserved: i64,
    kind: HeldKind,
}

struct Reservation {
    store: Arc<Store>,
    held: Vec<Held>,
}

/// Proof that a request was admitted, holding its reservations until `settle`.
pub struct Admission {
    /// Soft-limit warnings (and the fail-open notice) for `x-switchyard-budget-warning`.
    /// Printable ASCII only, so each is a valid header value.
    pub warnings: Vec<String>,
    reservation: Option<Reservation>,
}

impl Admission {
    /// An admission that reserved nothing, for requests that skip the limiter.
    pub fn unlimited() -> Admission {
        Admission {
            warnings: Vec::new(),
            reservation: None,
        }
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("warnings", &self.warnings)
            .field("held", &self.reservation.as_ref().map(|r| r.held.clone()))
            .finish()
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // A request future dropped mid-call (client disconnect, panic) never reaches
        // `settle`; without this its reservation would block the budget until the period
        // ends.
        let Some(r) = self.reservation.take() else {
            return;
        };
        let adjusts: Vec<Adjust> = r
            .held
            .iter()
            .filter(|h| h.reserved != 0)
            .map(|h| Adjust {
                key: h.key.clone(),
                delta: -h.reserved,
            })
            .collect();
        if adjusts.is_empty() {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = r.store.adjust(&adjusts).await {
                        tracing::error!(error = %e, "cannot release an unsettled reservation; it stays held until its period ends");
                    }
                });
            }
            Err(_) => {
                tracing::error!("unsettled reservation dropped outside a runtime; it stays held until its period ends");
            }
        }
    }
}

enum Meta<'a> {
    Budget {
        rule: BudgetView<'a>,
        window_end_ms: u64,
    },
    Requests {
        rule: RateView<'a>,
        window_end_ms: u64,
    },
    Tokens {
        rule: RateView<'a>,
        window_end_ms: u64,
    },
}

struct Planned<'a> {
    op: CounterOp,
    meta: Meta<'a>,
    subject: &'a str,
}

/// Enforces the configured budgets and rate limits, and the team limits set at run time.
/// Cheap to share behind an `Arc`.
pub struct Limiter {
    budgets: Vec<BudgetRule>,
    rates: Vec<RateRule>,
    /// Team limits, replaced whole on every change and refresh (`set_overrides`); a
    /// request reads one snapshot.
    overrides: RwLock<Arc<Overrides>>,
    store: Arc<Store>,
    prefix: String,
    on_error: OnRedisError,
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("budgets", &self.budgets.len())
            .field("rate_limits", &self.rates.len())
            .field("team_limits", &self.overrides().len())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Limiter {
    /// Validates the rules and sets up the backend. The Redis backend does not connect
    /// here: an unreachable Redis is handled per request by `on_redis_error`.
    pub async fn new(cfg: &LimitsConfig) -> Result<Limiter, LimitsError> {
        config::validate(cfg)?;
        let (store, prefix, on_error) = match &cfg.backend {
            Backend::Memory => (
                Store::Memory(MemoryStore::default()),
                "mem".to_string(),
                OnRedisError::FailClosed,
            ),
            Backend::Redis(r) => (
                Store::Redis(RedisStore::new(r)?),
                r.key_prefix.clone(),
                r.on_redis_error,
            ),
        };
        Ok(Limiter {
            budgets: cfg.budgets.clone(),
            rates: cfg.rate_limits.clone(),
            overrides: RwLock::new(Arc::new(Overrides::new())),
            store: Arc::new(store),
            prefix,
            on_error,
        })
    }

    /// No rules and no team limits: the request path skips the limiter entirely.
    pub fn is_noop(&self) -> bool {
        self.budgets.is_empty() && self.rates.is_empty() && self.overrides().is_empty()
    }

    /// The team limits in force.
    pub fn overrides(&self) -> Arc<Overrides> {
        match self.overrides.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the team limits (teams with no limit set are dropped). Requests admitted
    /// from now on use them; reservations already made settle where they were made.
    pub fn set_overrides(&self, mut overrides: Overrides) {
        overrides.retain(|_, t| !t.is_empty());
        let next = Arc::new(overrides);
        match self.overrides.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// The hard limit of the first budget that applies to `team` (its own limits in
    /// place), for the dashboard's budget column.
    pub fn team_hard_limit(&self, team: &str) -> Option<i64> {
        let ov = self.overrides();
        let subject = Subject {
            key_id: None,
            team: Some(team),
        };
        self.budget_views(&subject, &ov)
            .into_iter()
            .find_map(|(b, _)| b.hard)
    }

    /// Raises `team`'s budget counters of `period` to at least `spent_micros` (what the
    /// ledger says the team has spent this period). A team limit set where no configured
    /// rule counted the team starts from the team's real spend, not from zero; a counter
    /// already higher (reservations in flight) is left alone.
    pub async fn seed_team_spend(
        &self,
        team: &str,
        period: Period,
        spent_micros: i64,
        now_ms: u64,
    ) -> Result<(), LimitsError> {
        let ov = self.overrides();
        let subject = Subject {
            key_id: None,
            team: Some(team),
        };
        let window = period::budget_window(period, now_ms);
        let ttl = window.end_ms - now_ms + BUDGET_GRACE_MS;
        for (rule, who) in self.budget_views(&subject, &ov) {
            if rule.scope != Scope::Team || rule.period != period {
                continue;
            }
            let key = self.budget_key(&rule, who, &window.label);
            self.store
                .raise_to(&key, spent_micros.clamp(0, MAX_MICROS), ttl, now_ms)
                .await
                .map_err(|e| LimitsError::Store(e.to_string()))?;
        }
        Ok(())
    }

    /// Before dispatch: rate limits count this request and its estimated tokens; budgets
    /// reserve `estimate_micros`. All-or-nothing: if any limit rejects, nothing stays
    /// reserved or counted. `estimate_micros` should be an upper bound of the cost
    /// (prompt plus `max_tokens` of output): the hard limit is a bound on reservations.
    pub async fn admit(
        &self,
        subject: &Subject<'_>,
        estimate_micros: i64,
        estimate_tokens: u64,
        now_ms: u64,
    ) -> Result<Admission, LimitRejection> {
        let estimate_micros = estimate_micros.clamp(0, MAX_MICROS);
        let estimate_tokens = estimate_tokens.min(MAX_MICROS as u64) as i64;
        let ov = self.overrides();
        let plan = self.plan(subject, &ov, estimate_micros, estimate_tokens, now_ms);
        if plan.is_empty() {
            return Ok(Admission::unlimited());
        }
        let ops: Vec<CounterOp> = plan.iter().map(|p| p.op.clone()).collect();
        match self.store.reserve(&ops, now_ms).await {
            Ok(ReserveOutcome::Admitted(values)) => Ok(self.admitted(&plan, &values)),
            Ok(ReserveOutcome::Rejected { index, current }) => match plan.get(index) {
                Some(p) => Err(rejection(p, current, now_ms)),
                None => Err(LimitRejection::Unavailable {
                    message: "limits store rejected an unknown counter".into(),
                }),
            },
            Err(e) => match self.on_error {
                OnRedisError::FailClosed => {
                    tracing::error!(error = %e, on_redis_error = "fail_closed", "limits store unavailable; rejecting the request");
                    Err(LimitRejection::Unavailable {
                        message: "budgets and rate limits cannot be checked right now (limits store unavailable); retry shortly".into(),
                    })
                }
                OnRedisError::FailOpen => {
                    tracing::error!(error = %e, on_redis_error = "fail_open", "limits store unavailable; admitting without enforcement");
                    Ok(Admission {
                        warnings: vec![
                            "limits not enforced: the limits store is unavailable".into()
                        ],
                        reservation: None,
                    })
                }
            },
        }
    }

    /// After the call: replaces the reservation by the actual cost and tokens. Called once
    /// per admission, also on failure with actual 0 (which releases everything).
    pub async fn settle(&self, mut admission: Admission, actual_micros: i64, actual_tokens: u64) {
        let Some(r) = admission.reservation.take() else {
            return;
        };
        let actual_micros = actual_micros.clamp(0, MAX_MICROS);
        let actual_tokens = actual_tokens.min(MAX_MICROS as u64) as i64;
        let adjusts: Vec<Adjust> = r
            .held
            .iter()
            .filter_map(|h| {
                let actual = match h.kind {
                    HeldKind::Spend => actual_micros,
                    HeldKind::Tokens => actual_tokens,
                };
                let delta = actual - h.reserved;
                (delta != 0).then(|| Adjust {
                    key: h.key.clone(),
                    delta,
                })
            })
            .collect();
        if adjusts.is_empty() {
            return;
        }
        // The admission's own store, so a reservation is always settled where it was made.
        if let Err(e) = r.store.adjust(&adjusts).await {
            tracing::error!(error = %e, "cannot settle a reservation; the reserved amount stays counted until its period ends");
        }
    }

    /// The current period's state of every budget that applies to `subject`, team limits
    /// included.
    pub async fn budget_usage(
        &self,
        subject: &Subject<'_>,
        now_ms: u64,
    ) -> Result<Vec<BudgetUsage>, LimitsError> {
        let ov = self.overrides();
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        for (rule, who) in self.budget_views(subject, &ov) {
            let window = period::budget_window(rule.period, now_ms);
            keys.push(self.budget_key(&rule, who, &window.label));
            rows.push(BudgetUsage {
                budget: rule.name.to_string(),
                source: rule.source,
                scope: rule.scope,
                subject: who.to_string(),
                period: rule.period,
                spent_micros: 0,
                soft_micros: rule.soft,
                hard_micros: rule.hard,
                resets_at_unix_s: window.end_ms / 1000,
            });
        }
        let values = self
            .store
            .read(&keys, now_ms)
            .await
            .map_err(|e| LimitsError::Store(e.to_string()))?;
        for (row, v) in rows.iter_mut().zip(values) {
            row.spent_micros = v;
        }
        Ok(rows)
    }

    /// The current minute's state of every rate limit that applies to `subject`.
    pub async fn rate_usage(
        &self,
        subject: &Subject<'_>,
        now_ms: u64,
    ) -> Result<Vec<RateUsage>, LimitsError> {
        let ov = self.overrides();
        let minute = period::minute_window(now_ms);
        let mut keys = Vec::new();
        let mut rows = Vec::new();
        for (rule, who) in self.rate_views(subject, &ov) {
            keys.push(self.rate_key(&rule, who, "req", &minute.label));
            keys.push(self.rate_key(&rule, who, "tok", &minute.label));
            rows.push(RateUsage {
                limit: rule.name.to_string(),
                source: rule.source,
                scope: rule.scope,
                subject: who.to_string(),
                rpm: rule.rpm,
                tpm: rule.tpm,
                requests: 0,
                tokens: 0,
                resets_at_unix_s: minute.end_ms / 1000,
            });
        }
        let values = self
            .store
            .read(&keys, now_ms)
            .await
            .map_err(|e| LimitsError::Store(e.to_string()))?;
        for (row, v) in rows.iter_mut().zip(values.chunks(2)) {
            row.requests = v.first().copied().unwrap_or(0);
            row.tokens = v.get(1).copied().unwrap_or(0);
        }
        Ok(rows)
    }

    /// Every budget that applies to `subject`, with who it counts: the configured rules
    /// (a team-scope rule with the team's own thresholds where the team has a limit of
    /// that period), then the team's limits that no configured rule carries.
    fn budget_views<'a>(
        &'a self,
        subject: &Subject<'a>,
        ov: &'a Overrides,
    ) -> Vec<(BudgetView<'a>, &'a str)> {
        let team_limits = subject.team.and_then(|t| ov.get(t));
        let mut carried = [false; 2];
        let mut out = Vec::new();
        for rule in &self.budgets {
            let Some(who) = subject
                .of(rule.scope)
                .filter(|w| glob::matches(&rule.subject, w))
            else {
                continue;
            };
            let mut view = BudgetView {
                name: &rule.name,
                scope: rule.scope,
                period: rule.period,
                soft: rule.soft_usd.map(Usd::micros),
                hard: rule.hard_usd.map(Usd::micros),
                source: LimitSource::Config,
            };
            if rule.scope == Scope::Team {
                if let Some(b) = team_limits.and_then(|t| t.budget(rule.period)) {
                    view.soft = b.soft_usd.map(Usd::micros);
                    view.hard = b.hard_usd.map(Usd::micros);
                    view.source = LimitSource::Team;
                    carried[period_index(rule.period)] = true;
                }
            }
            out.push((view, who));
        }
        if let (Some(team), Some(t)) = (subject.team, team_limits) {
            for period in [Period::Day, Period::Month] {
                if carried[period_index(period)] {
                    continue;
                }
                if let Some(b) = t.budget(period) {
                    out.push((
                        BudgetView {
                            name: LimitKind::of_period(period).rule_name(),
                            scope: Scope::Team,
                            period,
                            soft: b.soft_usd.map(Usd::micros),
                            hard: b.hard_usd.map(Usd::micros),
                            source: LimitSource::Team,
                        },
                        team,
                    ));
                }
            }
        }
        out
    }

    /// Every rate limit that applies to `subject`, the team's own in place as for budgets.
    fn rate_views<'a>(
        &'a self,
        subject: &Subject<'a>,
        ov: &'a Overrides,
    ) -> Vec<(RateView<'a>, &'a str)> {
        let team_rate = subject.team.and_then(|t| ov.get(t)).and_then(|t| t.rate);
        let mut carried = false;
        let mut out = Vec::new();
        for rule in &self.rates {
            let Some(who) = subject
                .of(rule.scope)
                .filter(|w| glob::matches(&rule.subject, w))
            else {
                continue;
            };
            let mut view = RateView {
                name: &rule.name,
                scope: rule.scope,
                rpm: rule.rpm,
                tpm: rule.tpm,
                source: LimitSource::Config,
            };
            if let (Scope::Team, Some(r)) = (rule.scope, team_rate) {
                view.rpm = r.rpm;
                view.tpm = r.tpm;
                view.source = LimitSource::Team;
                carried = true;
            }
            out.push((view, who));
        }
        if let (Some(team), Some(r), false) = (subject.team, team_rate, carried) {
            out.push((
                RateView {
                    name: LimitKind::Rate.rule_name(),
                    scope: Scope::Team,
                    rpm: r.rpm,
                    tpm: r.tpm,
                    source: LimitSource::Team,
                },
                team,
            ));
        }
        out
    }

    fn budget_key(&self, rule: &BudgetView<'_>, who: &str, label: &str) -> String {
        format!(
            "{}:b:{}:{}:{}:{}",
            self.prefix,
            key_part(rule.name),
            rule.scope.as_str(),
            key_part(who),
            label
        )
    }

    fn rate_key(&self, rule: &RateView<'_>, who: &str, what: &str, label: &str) -> String {
        format!(
            "{}:r:{}:{}:{}:{what}:{label}",
            self.prefix,
            key_part(rule.name),
            rule.scope.as_str(),
            key_part(who),
        )
    }

    /// One counter per (rule, subject, window): a request touches each at most once, so
    /// a key budget and a team budget that both apply are each charged exactly once.
    fn plan<'a>(
        &'a self,
        subject: &Subject<'a>,
        ov: &'a Overrides,
        estimate_micros: i64,
        estimate_tokens: i64,
        now_ms: u64,
    ) -> Vec<Planned<'a>> {
        let mut plan = Vec::new();
        let minute = period::minute_window(now_ms);
        let rate_ttl = minute.end_ms - now_ms + RATE_GRACE_MS;
        for (rule, who) in self.rate_views(subject, ov) {
            if let Some(rpm) = rule.rpm {
                plan.push(Planned {
                    op: CounterOp {
                        key: self.rate_key(&rule, who, "req", &minute.label),
                        amount: 1,
                        limit: Some(i64::from(rpm)),
                        ttl_ms: rate_ttl,
                    },
                    meta: Meta::Requests {
                        rule,
                        window_end_ms: minute.end_ms,
                    },
                    subject: who,
                });
            }
            if let Some(tpm) = rule.tpm {
                plan.push(Planned {
                    op: CounterOp {
                        key: self.rate_key(&rule, who, "tok", &minute.label),
                        amount: estimate_tokens,
                        limit: Some(i64::from(tpm)),
                        ttl_ms: rate_ttl,
                    },
                    meta: Meta::Tokens {
                        rule,
                        window_end_ms: minute.end_ms,
                    },
                    subject: who,
                });
            }
        }
        for (rule, who) in self.budget_views(subject, ov) {
            let window = period::budget_window(rule.period, now_ms);
            plan.push(Planned {
                op: CounterOp {
                    key: self.budget_key(&rule, who, &window.label),
                    amount: estimate_micros,
                    limit: rule.hard,
                    ttl_ms: window.end_ms - now_ms + BUDGET_GRACE_MS,
                },
                meta: Meta::Budget {
                    rule,
                    window_end_ms: window.end_ms,
                },
                subject: who,
            });
        }
        plan
    }

    fn admitted(&self, plan: &[Planned<'_>], values: &[i64]) -> Admission {
        let mut warnings = Vec::new();
        let mut held = Vec::new();
        for (p, &value) in plan.iter().zip(values) {
            match p.meta {
                Meta::Budget { rule, .. } => {
                    held.push(Held {
                        key: p.op.key.clone(),
                        reserved: p.op.amount,
                        kind: HeldKind::Spend,
                    });
                    // Same boundary as the hard limit: reaching the threshold exactly is
                    // still within it; only going above warns.
                    if let Some(soft) = rule.soft.filter(|s| value > *s) {
                        tracing::warn!(
                            budget = %rule.name,
                            scope = rule.scope.as_str(),
                            subject = %p.subject,
                            spent_micros = value,
                            soft_micros = soft,
                            "soft budget exceeded"
                        );
                        let hard = rule
                            .hard
                            .map(|h| format!(" (hard limit {})", format_usd(h)))
                            .unwrap_or_default();
                        warnings.push(printable(&format!(
                            "budget {}: {} {} has spent or reserved {} this {}, above the soft limit {}{hard}",
                            rule.name,
                            rule.scope.as_str(),
                            p.subject,
                            format_usd(value),
                            rule.period.as_str(),
                            format_usd(soft),
                        )));
                    }
                }
                Meta::Tokens { .. } => held.push(Held {
                    key: p.op.key.clone(),
                    reserved: p.op.amount,
                    kind: HeldKind::Tokens,
                }),
                Meta::Requests { .. } => {}
            }
        }
        Admission {
            warnings,
            reservation: Some(Reservation {
                store: self.store.clone(),
                held,
            }),
        }
    }
}

fn period_index(p: Period) -> usize {
    match p {
        Period::Day => 0,
        Period::Month => 1,
    }
}

fn rejection(p: &Planned<'_>, current: i64, now_ms: u64) -> LimitRejection {
    let retry_after = |end_ms: u64| end_ms.saturating_sub(now_ms).div_ceil(1000).max(1);
    match p.meta {
        Meta::Budget {
            rule,
            window_end_ms,
        } => {
            let resets_at_unix_s = window_end_ms / 1000;
            LimitRejection::BudgetExceeded {
                message: printable(&format!(
                    "budget {} exceeded: {} {} has spent or reserved {} of its {} hard limit this {}, and this request may cost up to {}; it resets at {}",
                    rule.name,
                    rule.scope.as_str(),
                    p.subject,
                    format_usd(current),
                    format_usd(rule.hard.unwrap_or(0)),
                    rule.period.as_str(),
                    format_usd(p.op.amount),
                    period::rfc3339(resets_at_unix_s),
                )),
                budget: rule.name.to_string(),
                resets_at_unix_s,
            }
        }
        Meta::Requests {
            rule,
            window_end_ms,
        } => {
            let retry_after_s = retry_after(window_end_ms);
            LimitRejection::RateLimited {
                message: printable(&format!(
                    "rate limit {} exceeded: {} {} may send {} requests per minute; retry in {retry_after_s} s",
                    rule.name,
                    rule.scope.as_str(),
                    p.subject,
                    p.op.limit.unwrap_or(0),
                )),
                limit: rule.name.to_string(),
                retry_after_s,
            }
        }
        Meta::Tokens {
            rule,
            window_end_ms,
        } => {
            let limit = p.op.limit.unwrap_or(0);
            let retry_after_s = retry_after(window_end_ms);
            let detail = if p.op.amount > limit {
                format!(
                    "this request needs up to {} tokens, more than the whole limit",
                    p.op.amount
                )
            } else {
                format!(
                    "{current} used this minute and this request needs up to {}; retry in {retry_after_s} s",
                    p.op.amount
                )
            };
            LimitRejection::RateLimited {
                message: printable(&format!(
                    "rate limit {} exceeded: {} {} may use {limit} tokens per minute; {detail}",
                    rule.name,
                    rule.scope.as_str(),
                    p.subject,
                )),
                limit: rule.name.to_string(),
                retry_after_s,
            }
        }
    }
}

/// Rule names and subjects become one segment of a Redis key; escaping `:` (and `%`,
/// `{`, `}`, anything unusual) makes distinct (rule, subject) pairs distinct keys.
fn key_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Messages end up in HTTP headers; anything but printable ASCII would make the header
/// invalid and the warning silently disappear.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parts_do_not_collide() {
        assert_ne!(key_part("a:b"), key_part("a%3Ab"));
        assert_eq!(key_part("team-eng_1"), "team-eng_1");
        assert_eq!(key_part("x:{y}"), "x%3A%7By%7D");
    }

    #[test]
    fn rejections_map_to_gateway_errors() {
        let e: GatewayError = LimitRejection::RateLimited {
            limit: "r".into(),
            retry_after_s: 7,
            message: "slow down".into(),
        }
        .into();
        assert_eq!((e.status(), e.retry_after()), (429, Some("7")));
        let e: GatewayError = LimitRejection::Unavailable {
            message: "down".into(),
        }
        .into();
        assert_eq!(e.status(), 503);
    }

    #[test]
    fn printable_keeps_headers_valid() {
        assert_eq!(printable("café\n"), "caf??");
    }
}
