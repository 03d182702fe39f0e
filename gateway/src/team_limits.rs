//! Team budgets and rate limits set at run time: kept in the ledger's database
//! (`team_limits`), applied to the limiter at once on the replica that made the change and
//! within [`REFRESH`] on every other, and each change recorded in the audit trail with its
//! before and after. The admin API (`/admin/teams`) and the console's Teams page both
//! change limits through [`TeamLimitService::apply`], so they cannot drift apart.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use sqlx::Row;

use crate::access::Principal;
use crate::audit::{Action, AuditEvent, AuditLog};
use crate::limits::{
    period_first_day, validate_team, BudgetLimit, BudgetUsage, LimitKind, LimitValue, Limiter,
    Overrides, Period, RateLimit, RateUsage, Subject, TeamLimits, Usd,
};
use crate::store::time::now_ms;
use crate::store::{with_pool, Db, StoreError};

/// How often every replica re-reads the table: the bound on how long a change made on
/// another replica takes to apply here.
pub const REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TeamLimitError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("limits store: {0}")]
    Counters(String),
    #[error("key store: {0}")]
    Keys(#[from] crate::auth::AuthError),
}

impl From<sqlx::Error> for TeamLimitError {
    fn from(e: sqlx::Error) -> Self {
        TeamLimitError::Store(StoreError::Db(e))
    }
}

/// A change to a team's limits: each kind present is set, or cleared when `null`; an
/// absent kind stays as it is. `PUT /admin/teams/{team}/limits` takes this as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, deserialize_with = "present")]
    pub budget_day: Option<Option<BudgetLimit>>,
    #[serde(default, deserialize_with = "present")]
    pub budget_month: Option<Option<BudgetLimit>>,
    #[serde(default, deserialize_with = "present")]
    pub rate: Option<Option<RateLimit>>,
}

/// A field that is present is `Some`, also when it is `null` (which clears).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

impl LimitsPatch {
    /// The kinds this patch touches with their new values (`None`: clear).
    pub fn changes(&self) -> Vec<(LimitKind, Option<LimitValue>)> {
        let mut out = Vec::new();
        if let Some(v) = self.budget_day {
            out.push((LimitKind::BudgetDay, v.map(LimitValue::Budget)));
        }
        if let Some(v) = self.budget_month {
            out.push((LimitKind::BudgetMonth, v.map(LimitValue::Budget)));
        }
        if let Some(v) = self.rate {
            out.push((LimitKind::Rate, v.map(LimitValue::Rate)));
        }
        out
    }
}

/// One kind's change as recorded: the value before and after (`None`: not set).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitChange {
    pub kind: LimitKind,
    pub before: Option<LimitValue>,
    pub after: Option<LimitValue>,
}

/// A team's limits and where it stands this period: every budget and rate limit that
/// applies to it (configured or its own), with the live counters.
#[derive(Debug, Clone, Serialize)]
pub struct TeamReport {
    pub team: String,
    /// Active virtual keys of the team.
    pub keys: usize,
    /// The limits set for this team at run time.
    pub limits: TeamLimits,
    pub budgets: Vec<BudgetReport>,
    pub rate_limits: Vec<RateReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BudgetReport {
    pub name: String,
    pub source: crate::limits::LimitSource,
    pub period: &'static str,
    pub spent_usd: String,
    pub soft_usd: Option<String>,
    pub hard_usd: Option<String>,
    pub resets_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RateReport {
    pub name: String,
    pub source: crate::limits::LimitSource,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
    pub requests_this_minute: i64,
    pub tokens_this_minute: i64,
}

fn usd_text(micros: i64) -> String {
    crate::limits::format_usd(micros)
        .trim_start_matches('$')
        .to_string()
}

impl BudgetReport {
    fn of(u: &BudgetUsage) -> Self {
        BudgetReport {
            name: u.budget.clone(),
            source: u.source,
            period: u.period.as_str(),
            spent_usd: usd_text(u.spent_micros),
            soft_usd: u.soft_micros.map(usd_text),
            hard_usd: u.hard_micros.map(usd_text),
            resets_at: crate::store::time::format_rfc3339(
                i64::try_from(u.resets_at_unix_s).unwrap_or(i64::MAX / 1000) * 1000,
            ),
        }
    }
}

impl RateReport {
    fn of(u: &RateUsage) -> Self {
        RateReport {
            name: u.limit.clone(),
            source: u.source,
            rpm: u.rpm,
            tpm: u.tpm,
            requests_this_minute: u.requests,
            tokens_this_minute: u.tokens,
        }
    }
}

/// The team limits' database table, the limiter they apply to, and the audit trail their
/// changes go to. Cheap to clone.
#[derive(Clone)]
pub struct TeamLimitService {
    db: Db,
    limiter: Arc<Limiter>,
    audit: AuditLog,
}

impl TeamLimitService {
    pub fn new(db: Db, limiter: Arc<Limiter>) -> Self {
        TeamLimitService {
            audit: AuditLog::new(db.clone()),
            db,
            limiter,
        }
    }

    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Every team's limits as stored.
    pub async fn load(&self) -> Result<Overrides, TeamLimitError> {
        load(&self.db).await
    }

    /// Reads the table into the limiter.
    pub async fn refresh(&self) -> Result<(), TeamLimitError> {
        let overrides = self.load().await?;
        self.limiter.set_overrides(overrides);
        Ok(())
    }

    /// Reads the table into the limiter and starts every team budget from the team's
    /// spend so far this period (the start-up step: memory counters begin empty).
    pub async fn start(&self) -> Result<(), TeamLimitError> {
        self.refresh().await?;
        let overrides = self.limiter.overrides();
        for (team, limits) in overrides.iter() {
            for period in [Period::Day, Period::Month] {
                if limits.budget(period).is_some() {
                    self.seed(team, period).await?;
                }
            }
        }
        Ok(())
    }

    /// Raises the team's budget counters of `period` to its spend in the ledger.
    async fn seed(&self, team: &str, period: Period) -> Result<(), TeamLimitError> {
        let now = u64::try_from(now_ms()).unwrap_or(0);
        let first_day = period_first_day(period, now);
        let spent: i64 = with_pool!(&self.db, |pool| {
            sqlx::query_scalar(
                "SELECT CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) FROM spend_daily WHERE team = $1 AND day >= $2",
            )
            .bind(team)
            .bind(first_day)
            .fetch_one(pool)
            .await?
        });
        self.limiter
            .seed_team_spend(team, period, spent, now)
            .await
            .map_err(|e| TeamLimitError::Counters(e.to_string()))
    }

    /// Applies `patch` to `team`: validates every value first (nothing changes if one is
    /// invalid), writes each kind that differs from what is stored, applies the result to
    /// the limiter, and records one `limit.changed` entry per kind changed.
    pub async fn apply(
        &self,
        team: &str,
        patch: &LimitsPatch,
        by: &Principal,
    ) -> Result<Vec<LimitChange>, TeamLimitError> {
        validate_team(team).map_err(TeamLimitError::Invalid)?;
        let changes = patch.changes();
        if changes.is_empty() {
            return Err(TeamLimitError::Invalid(
                "nothing to change: give budget_day, budget_month or rate (null clears)".into(),
            ));
        }
        for (kind, value) in &changes {
            let checked = match value {
                Some(LimitValue::Budget(b)) => b.validate(),
                Some(LimitValue::Rate(r)) => r.validate(),
                None => Ok(()),
            };
            checked.map_err(|e| TeamLimitError::Invalid(format!("{kind}: {e}")))?;
        }
        let current = self.load().await?.get(team).copied().unwrap_or_default();
        let actor = by.actor.to_string();
        let mut done = Vec::new();
        for (kind, after) in changes {
            let before = current.get(kind);
            if before == after {
                continue;
            }
            match after {
                Some(v) => upsert(&self.db, team, kind, v, &actor).await?,
                None => delete(&self.db, team, kind).await?,
            }
            done.push(LimitChange {
                kind,
                before,
                after,
            });
        }
        // Applied here at once; other replicas pick it up on their next refresh.
        self.refresh().await?;
        for c in &done {
            if let (Some(LimitValue::Budget(_)), Some(period)) = (c.after, c.kind.period()) {
                self.seed(team, period).await?;
            }
        }
        for c in &done {
            let event = AuditEvent::new(
                by.actor.clone(),
                Action::LimitChanged,
                format!("team:{team}/{}", c.kind),
            )
            .source(by.source)
            .before(c.before)
            .after(c.after);
            if let Err(e) = self.audit.record(event).await {
                tracing::error!(error = %e, "cannot write the audit trail");
            }
        }
        Ok(done)
    }

    /// A team's limits with its live counters.
    pub async fn report(
        &self,
        team: &str,
        keys: &crate::auth::KeyStore,
    ) -> Result<TeamReport, TeamLimitError> {
        let n = active_keys(keys).await?.get(team).copied().unwrap_or(0);
        self.report_with(team, n).await
    }

    async fn report_with(&self, team: &str, keys: usize) -> Result<TeamReport, TeamLimitError> {
        validate_team(team).map_err(TeamLimitError::Invalid)?;
        let subject = Subject {
            key_id: None,
            team: Some(team),
        };
        let now = u64::try_from(now_ms()).unwrap_or(0);
        let budgets = self
            .limiter
            .budget_usage(&subject, now)
            .await
            .map_err(|e| TeamLimitError::Counters(e.to_string()))?;
        let rates = self
            .limiter
            .rate_usage(&subject, now)
            .await
            .map_err(|e| TeamLimitError::Counters(e.to_string()))?;
        Ok(TeamReport {
            team: team.to_string(),
            keys,
            limits: self
                .limiter
                .overrides()
                .get(team)
                .copied()
                .unwrap_or_default(),
            budgets: budgets.iter().map(BudgetReport::of).collect(),
            rate_limits: rates.iter().map(RateReport::of).collect(),
        })
    }

    /// Every team that has a key or a limit of its own, with its report, by name.
    pub async fn reports(
        &self,
        keys: &crate::auth::KeyStore,
    ) -> Result<Vec<TeamReport>, TeamLimitError> {
        let mut teams = active_keys(keys).await?;
        for team in self.limiter.overrides().keys() {
            teams.entry(team.clone()).or_default();
        }
        let mut out = Vec::with_capacity(teams.len());
        for (team, n) in teams {
            out.push(self.report_with(&team, n).await?);
        }
        Ok(out)
    }

    /// Re-reads the table every [`REFRESH`] while the limiter lives; a failed read keeps
    /// the limits in force and is logged.
    pub fn spawn_refresh(&self) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        let limiter: Weak<Limiter> = Arc::downgrade(&self.limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(REFRESH);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = limiter.upgrade() else {
                    return;
                };
                match load(&db).await {
                    Ok(o) => limiter.set_overrides(o),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot re-read team limits; the ones in force stay")
                    }
                }
            }
        })
    }
}

/// A `team_limits` row: team, kind, soft, hard, rpm, tpm.
type StoredLimit = (
    String,
    String,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Active (unrevoked) keys per team; a team whose keys are all revoked counts 0.
async fn active_keys(
    keys: &crate::auth::KeyStore,
) -> Result<BTreeMap<String, usize>, TeamLimitError> {
    let mut teams: BTreeMap<String, usize> = BTreeMap::new();
    for k in keys.list().await? {
        let n = teams.entry(k.team).or_default();
        if k.revoked_at.is_none() {
            *n += 1;
        }
    }
    Ok(teams)
}

async fn load(db: &Db) -> Result<Overrides, TeamLimitError> {
    let sql = "SELECT team, kind, soft_micros, hard_micros, rpm, tpm FROM team_limits";
    let rows: Vec<StoredLimit> = with_pool!(db, |pool| {
        sqlx::query(sql)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.try_get("team")?,
                    r.try_get("kind")?,
                    r.try_get("soft_micros")?,
                    r.try_get("hard_micros")?,
                    r.try_get("rpm")?,
                    r.try_get("tpm")?,
                ))
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    });
    let mut out = Overrides::new();
    for (team, kind, soft, hard, rpm, tpm) in rows {
        let parsed = kind
            .parse::<LimitKind>()
            .map_err(|e| e.to_string())
            .and_then(|k| {
                let value = match k {
                    LimitKind::Rate => LimitValue::Rate(RateLimit {
                        rpm: rpm.and_then(|v| u32::try_from(v).ok()),
                        tpm: tpm.and_then(|v| u32::try_from(v).ok()),
                    }),
                    LimitKind::BudgetDay | LimitKind::BudgetMonth => {
                        LimitValue::Budget(BudgetLimit {
                            soft_usd: soft.map(Usd::from_micros).transpose()?,
                            hard_usd: hard.map(Usd::from_micros).transpose()?,
                        })
                    }
                };
                Ok((k, value))
            });
        // A row this version cannot read is skipped with a warning rather than failing
        // every refresh: the other teams' limits must keep applying.
        if let Err(e) =
            parsed.and_then(|(k, v)| out.entry(team.clone()).or_default().set(k, Some(v)))
        {
            tracing::warn!(team = %team, kind = %kind, error = %e, "unreadable team limit skipped");
        }
    }
    Ok(out)
}

async fn upsert(
    db: &Db,
    team: &str,
    kind: LimitKind,
    value: LimitValue,
    by: &str,
) -> Result<(), TeamLimitError> {
    let (soft, hard, rpm, tpm) = match value {
        LimitValue::Budget(b) => (
            b.soft_usd.map(Usd::micros),
            b.hard_usd.map(Usd::micros),
            None,
            None,
        ),
        LimitValue::Rate(r) => (None, None, r.rpm.map(i64::from), r.tpm.map(i64::from)),
    };
    with_pool!(db, |pool| {
        sqlx::query(
            "INSERT INTO team_limits (team, kind, soft_micros, hard_micros, rpm, tpm, updated_ms, updated_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (team, kind) DO UPDATE SET soft_micros = excluded.soft_micros, \
             hard_micros = excluded.hard_micros, rpm = excluded.rpm, tpm = excluded.tpm, \
             updated_ms = excluded.updated_ms, updated_by = excluded.updated_by",
        )
        .bind(team)
        .bind(kind.as_str())
        .bind(soft)
        .bind(hard)
        .bind(rpm)
        .bind(tpm)
        .bind(now_ms())
        .bind(by)
        .execute(pool)
        .await?;
    });
    Ok(())
}

async fn delete(db: &Db, team: &str, kind: LimitKind) -> Result<(), TeamLimitError> {
    with_pool!(db, |pool| {
        sqlx::query("DELETE FROM team_limits WHERE team = $1 AND kind = $2")
            .bind(team)
            .bind(kind.as_str())
            .execute(pool)
            .await?;
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patch_tells_clearing_from_leaving_alone() {
        let p: LimitsPatch =
            serde_json::from_str(r#"{"budget_month": {"hard_usd": "10"}, "rate": null}"#)
                .expect("patch");
        let changes = p.changes();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].0, LimitKind::BudgetMonth);
        assert!(matches!(changes[0].1, Some(LimitValue::Budget(_))));
        assert_eq!(changes[1], (LimitKind::Rate, None));
        assert!(serde_json::from_str::<LimitsPatch>(r#"{"budget_week": {}}"#).is_err());
        assert!(serde_json::from_str::<LimitsPatch>(r#"{"rate": {"rpm": -1}}"#).is_err());
    }
}
