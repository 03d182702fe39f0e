//! What the dashboard shows, read from the ledger. Spend tables go through the ledger's
//! own `spend_report` (daily rollups for whole days); the time series, traffic split and
//! latency percentiles read raw `ledger` rows, which the ledger keeps for
//! `retention_days`. All SQL is the portable subset the store uses (`$N`, BIGINT casts),
//! so it runs on SQLite and PostgreSQL alike.

use std::collections::BTreeMap;

use sqlx::Row;

use crate::accounting::{spend_report, GroupBy, SpendQuery, SpendRow};
use crate::store::time::now_ms;
use crate::store::{with_pool, Db, StoreError};

/// Latency samples read per load at most (the newest ones): percentiles over the most
/// recent 50k requests of the range are exact enough and keep a load bounded.
const LATENCY_SAMPLE: i64 = 50_000;
/// Points on the cost-over-time chart.
const BUCKETS: i64 = 48;

/// The provider name of the in-process model: requests it served count as "local".
pub const LOCAL_PROVIDER: &str = "local";

/// A time range the selector offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
    Month,
}

impl Range {
    pub const ALL: [Range; 4] = [Range::Hour, Range::Day, Range::Week, Range::Month];

    /// `1h`, `24h`, `7d`, `30d`; anything else is the default, 24h.
    pub fn parse(s: Option<&str>) -> Range {
        match s {
            Some("1h") => Range::Hour,
            Some("7d") => Range::Week,
            Some("30d") => Range::Month,
            _ => Range::Day,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }

    pub fn millis(self) -> i64 {
        const H: i64 = 3_600_000;
        match self {
            Range::Hour => H,
            Range::Day => 24 * H,
            Range::Week => 7 * 24 * H,
            Range::Month => 30 * 24 * H,
        }
    }
}

/// One point of the cost-over-time series (bucket start, micro-dollars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CostPoint {
    pub ts_ms: i64,
    pub cost_micros: i64,
    pub counterfactual_micros: i64,
    pub requests: i64,
}

/// How a request ended, for the traffic split: served (locally or by a frontier
/// provider), refused by a policy rule, or an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Local,
    Frontier,
    Blocked,
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Local => "local",
            Outcome::Frontier => "frontier",
            Outcome::Blocked => "blocked",
            Outcome::Error => "error",
        }
    }

    fn from_code(code: i64) -> Outcome {
        match code {
            0 => Outcome::Local,
            1 => Outcome::Frontier,
            2 => Outcome::Blocked,
            _ => Outcome::Error,
        }
    }
}

/// The SQL expression giving a ledger row's [`Outcome`] code (`$3` is the local provider,
/// `$4` the refused-by-policy error kind).
const OUTCOME_SQL: &str = "CAST(CASE WHEN error_kind = $4 THEN 2 WHEN status >= 400 THEN 3 \
                           WHEN provider = $3 THEN 0 ELSE 1 END AS BIGINT)";

/// Requests of one outcome under one policy rule; errors are grouped by status class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficRow {
    pub outcome: Outcome,
    /// The policy rule that routed or refused them (the ledger's `route`); for errors,
    /// the status class (`4xx`, `5xx`).
    pub rule: String,
    pub requests: i64,
}

/// Latency and time-to-first-token percentiles of one rule and outcome, in milliseconds
/// (served requests only: a fast refusal is not a latency).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyRow {
    pub route: String,
    /// `Local` or `Frontier`: a rule that served both shows one row each.
    pub outcome: Outcome,
    pub samples: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub ttft_samples: usize,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p95_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
}

/// Everything one dashboard page shows.
#[derive(Debug, Clone, Default)]
pub struct DashboardData {
    pub from_ms: i64,
    pub to_ms: i64,
    pub requests: i64,
    pub cost_micros: i64,
    pub counterfactual_micros: i64,
    pub savings_micros: i64,
    pub cache_hits: i64,
    pub unknown_price_requests: i64,
    pub by_team: Vec<SpendRow>,
    pub by_model: Vec<SpendRow>,
    pub by_route: Vec<SpendRow>,
    pub series: Vec<CostPoint>,
    pub bucket_ms: i64,
    pub traffic: Vec<TrafficRow>,
    pub latency: Vec<LatencyRow>,
}

impl DashboardData {
    pub fn cache_hit_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.cache_hits as f64 / self.requests as f64)
    }

    /// Requests of one outcome.
    pub fn count(&self, outcome: Outcome) -> i64 {
        self.traffic
            .iter()
            .filter(|t| t.outcome == outcome)
            .map(|t| t.requests)
            .sum()
    }

    /// Requests served locally and by frontier providers (refusals and errors apart).
    pub fn local_frontier(&self) -> (i64, i64) {
        (self.count(Outcome::Local), self.count(Outcome::Frontier))
    }
}

/// Loads the dashboard for the `range` ending now.
pub async fn load(db: &Db, range: Range) -> Result<DashboardData, StoreError> {
    let to = now_ms() + 1;
    load_between(db, to - range.millis(), to).await
}

/// Loads the dashboard for `[from_ms, to_ms)`.
pub async fn load_between(db: &Db, from_ms: i64, to_ms: i64) -> Result<DashboardData, StoreError> {
    let query = |group_by| SpendQuery {
        group_by,
        from_ms: Some(from_ms),
        to_ms: Some(to_ms),
    };
    let by_team = spend_report(db, &query(GroupBy::Team)).await?;
    let by_model = spend_report(db, &query(GroupBy::Model)).await?;
    let by_route = spend_report(db, &query(GroupBy::Route)).await?;
    let mut d = DashboardData {
        from_ms,
        to_ms,
        ..Default::default()
    };
    for r in &by_team {
        d.requests += r.requests;
        d.cost_micros += r.cost_micros;
        d.counterfactual_micros += r.counterfactual_micros;
        d.savings_micros += r.savings_micros;
        d.cache_hits += r.cache_hits;
        d.unknown_price_requests += r.unknown_price_requests;
    }
    d.by_team = by_team;
    d.by_model = by_model;
    d.by_route = by_route;
    d.bucket_ms = ((to_ms - from_ms) / BUCKETS).max(1);
    d.series = series(db, from_ms, to_ms, d.bucket_ms).await?;
    d.traffic = traffic(db, from_ms, to_ms).await?;
    d.latency = latency(db, from_ms, to_ms).await?;
    Ok(d)
}

async fn series(db: &Db, from: i64, to: i64, bucket: i64) -> Result<Vec<CostPoint>, StoreError> {
    let sql = "SELECT CAST((ts_ms - $1) / $3 AS BIGINT) AS b, COUNT(*) AS n, \
               CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
               CAST(COALESCE(SUM(counterfactual_micros), 0) AS BIGINT) AS cf \
               FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2 GROUP BY 1";
    let mut points: BTreeMap<i64, CostPoint> = BTreeMap::new();
    with_pool!(db, |pool| {
        let rows = sqlx::query(sql)
            .bind(from)
            .bind(to)
            .bind(bucket)
            .fetch_all(pool)
            .await?;
        for row in rows {
            let b: i64 = row.try_get("b")?;
            points.insert(
                b,
                CostPoint {
                    ts_ms: from + b * bucket,
                    requests: row.try_get("n")?,
                    cost_micros: row.try_get("cost")?,
                    counterfactual_micros: row.try_get("cf")?,
                },
            );
        }
        Ok::<(), StoreError>(())
    })?;
    // Every bucket gets a point, so quiet periods read as zero rather than as a line
    // interpolated across them.
    let n = (to - from + bucket - 1) / bucket;
    Ok((0..n)
        .map(|b| {
            points.get(&b).copied().unwrap_or(CostPoint {
                ts_ms: from + b * bucket,
                ..Default::default()
            })
        })
        .collect())
}

async fn traffic(db: &Db, from: i64, to: i64) -> Result<Vec<TrafficRow>, StoreError> {
    let sql = format!(
        "SELECT {OUTCOME_SQL} AS outcome, route, CAST(status / 100 AS BIGINT) AS class, \
         COUNT(*) AS n FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2 GROUP BY 1, 2, 3"
    );
    let mut grouped: BTreeMap<(Outcome, String), i64> = BTreeMap::new();
    with_pool!(db, |pool| {
        let rows = sqlx::query(&sql)
            .bind(from)
            .bind(to)
            .bind(LOCAL_PROVIDER)
            .bind(crate::canonical::ErrorKind::PolicyBlocked.as_str())
            .fetch_all(pool)
            .await?;
        for row in rows {
            let outcome = Outcome::from_code(row.try_get("outcome")?);
            let rule: String = row.try_get("route")?;
            let class: i64 = row.try_get("class")?;
            let label = match outcome {
                Outcome::Error => format!("{class}xx"),
                _ if rule.is_empty() => "(none)".into(),
                _ => rule,
            };
            *grouped.entry((outcome, label)).or_default() += row.try_get::<i64, _>("n")?;
        }
        Ok::<(), StoreError>(())
    })?;
    let mut out: Vec<TrafficRow> = grouped
        .into_iter()
        .map(|((outcome, rule), requests)| TrafficRow {
            outcome,
            rule,
            requests,
        })
        .collect();
    out.sort_by(|a, b| {
        a.outcome
            .cmp(&b.outcome)
            .then(b.requests.cmp(&a.requests))
            .then_with(|| a.rule.cmp(&b.rule))
    });
    Ok(out)
}

async fn latency(db: &Db, from: i64, to: i64) -> Result<Vec<LatencyRow>, StoreError> {
    let sql =
        "SELECT route, CAST(CASE WHEN provider = $4 THEN 0 ELSE 1 END AS BIGINT) AS outcome, \
               latency_ms, ttft_ms FROM ledger \
               WHERE ts_ms >= $1 AND ts_ms < $2 AND status < 400 ORDER BY ts_ms DESC LIMIT $3";
    let mut by_route: BTreeMap<(String, Outcome), (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    with_pool!(db, |pool| {
        let rows = sqlx::query(sql)
            .bind(from)
            .bind(to)
            .bind(LATENCY_SAMPLE)
            .bind(LOCAL_PROVIDER)
            .fetch_all(pool)
            .await?;
        for row in rows {
            let route: String = row.try_get("route")?;
            let outcome = Outcome::from_code(row.try_get("outcome")?);
            let lat: i64 = row.try_get("latency_ms")?;
            let ttft: Option<i64> = row.try_get("ttft_ms")?;
            let e = by_route.entry((route, outcome)).or_default();
            e.0.push(lat as f64);
            if let Some(t) = ttft {
                e.1.push(t as f64);
            }
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(by_route
        .into_iter()
        .map(|((route, outcome), (mut lat, mut ttft))| {
            lat.sort_by(f64::total_cmp);
            ttft.sort_by(f64::total_cmp);
            LatencyRow {
                route: if route.is_empty() {
                    "(none)".into()
                } else {
                    route
                },
                outcome,
                samples: lat.len(),
                p50_ms: percentile(&lat, 0.50).unwrap_or(0.0),
                p95_ms: percentile(&lat, 0.95).unwrap_or(0.0),
                p99_ms: percentile(&lat, 0.99).unwrap_or(0.0),
                ttft_samples: ttft.len(),
                ttft_p50_ms: percentile(&ttft, 0.50),
                ttft_p95_ms: percentile(&ttft, 0.95),
                ttft_p99_ms: percentile(&ttft, 0.99),
            }
        })
        .collect())
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.95), Some(95.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn unknown_ranges_fall_back_to_a_day() {
        assert_eq!(Range::parse(Some("7d")), Range::Week);
        assert_eq!(Range::parse(Some("<script>")), Range::Day);
        assert_eq!(Range::parse(None).as_str(), "24h");
    }
}
