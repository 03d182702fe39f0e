//! Spend reports. Whole days inside the range are read from the daily rollup (one row per
//! day × team × key × model × route, however many requests), partial days at the edges
//! from the raw ledger, so a report over a year costs about as much as one over a day.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::money::format_usd;
use crate::store::time::{format_day, now_ms, parse_time, DAY_MS};
use crate::store::{with_pool, Db, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Team,
    Key,
    Model,
    Route,
    Day,
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "team" => Ok(GroupBy::Team),
            "key" => Ok(GroupBy::Key),
            "model" => Ok(GroupBy::Model),
            "route" => Ok(GroupBy::Route),
            "day" => Ok(GroupBy::Day),
            _ => Err(StoreError::Invalid(format!(
                "group_by must be team, key, model, route or day, not {:?}",
                s.chars().take(32).collect::<String>()
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Key => "key",
            GroupBy::Model => "model",
            GroupBy::Route => "route",
            GroupBy::Day => "day",
        }
    }

    /// The column, identical in `ledger` and `spend_daily`. A fixed string per variant:
    /// nothing from the caller reaches the SQL text.
    fn column(self) -> &'static str {
        match self {
            GroupBy::Team => "team",
            GroupBy::Key => "key_id",
            GroupBy::Model => "model",
            GroupBy::Route => "route",
            GroupBy::Day => "CAST(day AS TEXT)",
        }
    }
}

/// A half-open range `[from_ms, to_ms)` in unix milliseconds; `None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpendQuery {
    pub group_by: GroupBy,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
}

impl SpendQuery {
    /// From the text forms of the admin API and CLI: times are RFC 3339, `YYYY-MM-DD` or
    /// unix seconds.
    pub fn parse(group_by: &str, from: Option<&str>, to: Option<&str>) -> Result<Self, StoreError> {
        let t = |s: Option<&str>| {
            s.filter(|s| !s.trim().is_empty())
                .map(|s| parse_time(s).map_err(|e| StoreError::Invalid(e.to_string())))
                .transpose()
        };
        let q = SpendQuery {
            group_by: GroupBy::parse(group_by)?,
            from_ms: t(from)?,
            to_ms: t(to)?,
        };
        if let (Some(f), Some(t)) = (q.from_ms, q.to_ms) {
            if f > t {
                return Err(StoreError::Invalid("from is after to".into()));
            }
        }
        Ok(q)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpendRow {
    pub group: String,
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: String,
    pub counterfactual_usd: String,
    /// Counterfactual minus actual, over requests whose price is known.
    pub savings_usd: String,
    pub unknown_price_requests: i64,
    pub cache_hits: i64,
    pub cost_micros: i64,
    pub counterfactual_micros: i64,
    pub savings_micros: i64,
}

/// Which tables a report reads. `Auto` is what callers want; the others exist so tests
/// can check that both give the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendSource {
    Auto,
    /// Raw ledger rows only (exact ranges; limited to `retention_days`).
    Raw,
    /// Rollups only, for every day the range touches (day granularity).
    Rollup,
}

#[derive(Default, Clone, Copy)]
struct Acc {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost: i64,
    counterfactual: i64,
    savings: i64,
    unknown: i64,
    cache_hits: i64,
}

impl Acc {
    fn add(&mut self, o: &Acc) {
        self.requests += o.requests;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost = self.cost.saturating_add(o.cost);
        self.counterfactual = self.counterfactual.saturating_add(o.counterfactual);
        self.savings = self.savings.saturating_add(o.savings);
        self.unknown += o.unknown;
        self.cache_hits += o.cache_hits;
    }
}

pub async fn spend_report(db: &Db, q: &SpendQuery) -> Result<Vec<SpendRow>, StoreError> {
    spend_report_from(db, q, SpendSource::Auto).await
}

pub async fn spend_report_from(
    db: &Db,
    q: &SpendQuery,
    source: SpendSource,
) -> Result<Vec<SpendRow>, StoreError> {
    // Far enough in either direction to mean "unbounded" without overflowing day maths.
    let from = q.from_ms.unwrap_or(0);
    let to = q.to_ms.unwrap_or_else(|| now_ms() + 366 * DAY_MS);
    let mut acc: HashMap<String, Acc> = HashMap::new();
    if to <= from {
        return Ok(Vec::new());
    }
    match source {
        SpendSource::Raw => raw(db, q.group_by, from, to, &mut acc).await?,
        SpendSource::Rollup => {
            let first = from.div_euclid(DAY_MS);
            let end = (to + DAY_MS - 1).div_euclid(DAY_MS);
            rollup(db, q.group_by, first, end, &mut acc).await?;
        }
        SpendSource::Auto => {
            let first_full = (from + DAY_MS - 1).div_euclid(DAY_MS);
            let end_full = to.div_euclid(DAY_MS);
            if first_full < end_full {
                rollup(db, q.group_by, first_full, end_full, &mut acc).await?;
                if from < first_full * DAY_MS {
                    raw(db, q.group_by, from, first_full * DAY_MS, &mut acc).await?;
                }
                if end_full * DAY_MS < to {
                    raw(db, q.group_by, end_full * DAY_MS, to, &mut acc).await?;
                }
            } else {
                raw(db, q.group_by, from, to, &mut acc).await?;
            }
        }
    }
    let mut rows: Vec<SpendRow> = acc
        .into_iter()
        .map(|(g, a)| SpendRow {
            group: label(q.group_by, g),
            requests: a.requests,
            input_tokens: a.input_tokens,
            output_tokens: a.output_tokens,
            cost_usd: format_usd(a.cost),
            counterfactual_usd: format_usd(a.counterfactual),
            savings_usd: format_usd(a.savings),
            unknown_price_requests: a.unknown,
            cache_hits: a.cache_hits,
            cost_micros: a.cost,
            counterfactual_micros: a.counterfactual,
            savings_micros: a.savings,
        })
        .collect();
    if q.group_by == GroupBy::Day {
        rows.sort_by(|a, b| a.group.cmp(&b.group));
    } else {
        rows.sort_by(|a, b| {
            b.cost_micros
                .cmp(&a.cost_micros)
                .then_with(|| a.group.cmp(&b.group))
        });
    }
    Ok(rows)
}

fn label(g: GroupBy, raw: String) -> String {
    match g {
        GroupBy::Day => raw.parse::<i64>().map(format_day).unwrap_or(raw),
        _ if raw.is_empty() => "(none)".into(),
        _ => raw,
    }
}

const SUMS_RAW: &str = "COUNT(*) AS requests, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
    CAST(COALESCE(SUM(counterfactual_micros), 0) AS BIGINT) AS counterfactual, \
    CAST(COALESCE(SUM(CASE WHEN price_known = 1 THEN counterfactual_micros - cost_micros ELSE 0 END), 0) AS BIGINT) AS savings, \
    CAST(COALESCE(SUM(1 - price_known), 0) AS BIGINT) AS unknown, \
    CAST(COALESCE(SUM(cache_hit), 0) AS BIGINT) AS cache_hits";

const SUMS_ROLLUP: &str = "CAST(COALESCE(SUM(requests), 0) AS BIGINT) AS requests, \
    CAST(COALESCE(SUM(input_tokens), 0) AS BIGINT) AS input_tokens, \
    CAST(COALESCE(SUM(output_tokens), 0) AS BIGINT) AS output_tokens, \
    CAST(COALESCE(SUM(cost_micros), 0) AS BIGINT) AS cost, \
    CAST(COALESCE(SUM(counterfactual_micros), 0) AS BIGINT) AS counterfactual, \
    CAST(COALESCE(SUM(savings_micros), 0) AS BIGINT) AS savings, \
    CAST(COALESCE(SUM(unknown_price_requests), 0) AS BIGINT) AS unknown, \
    CAST(COALESCE(SUM(cache_hits), 0) AS BIGINT) AS cache_hits";

async fn raw(
    db: &Db,
    g: GroupBy,
    from: i64,
    to: i64,
    acc: &mut HashMap<String, Acc>,
) -> Result<(), StoreError> {
    let col = g.column();
    let sql = format!(
        "SELECT {col} AS grp, {SUMS_RAW} FROM ledger WHERE ts_ms >= $1 AND ts_ms < $2 GROUP BY {col}"
    );
    run(db, &sql, from, to, acc).await
}

async fn rollup(
    db: &Db,
    g: GroupBy,
    first_day: i64,
    end_day: i64,
    acc: &mut HashMap<String, Acc>,
) -> Result<(), StoreError> {
    let col = g.column();
    let sql = format!(
        "SELECT {col} AS grp, {SUMS_ROLLUP} FROM spend_daily WHERE day >= $1 AND day < $2 GROUP BY {col}"
    );
    run(db, &sql, first_day, end_day, acc).await
}

async fn run(
    db: &Db,
    sql: &str,
    a: i64,
    b: i64,
    acc: &mut HashMap<String, Acc>,
) -> Result<(), StoreError> {
    with_pool!(db, |pool| {
        let rows = sqlx::query(sql).bind(a).bind(b).fetch_all(pool).await?;
        for row in rows {
            let group: String = row.try_get("grp")?;
            let part = Acc {
                requests: row.try_get("requests")?,
                input_tokens: row.try_get("input_tokens")?,
                output_tokens: row.try_get("output_tokens")?,
                cost: row.try_get("cost")?,
                counterfactual: row.try_get("counterfactual")?,
                savings: row.try_get("savings")?,
                unknown: row.try_get("unknown")?,
                cache_hits: row.try_get("cache_hits")?,
            };
            acc.entry(group).or_default().add(&part);
        }
        Ok(())
    })
}

/// Renders rows as an aligned text table or as CSV (RFC 4180 quoting).
/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub fn render(rows: &[SpendRow], group_by: GroupBy, csv: bool) -> String {
    let header = [
        group_by.as_str(),
        "requests",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "counterfactual_usd",
        "savings_usd",
        "unknown_price_requests",
        "cache_hits",
    ];
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.clone(),
                r.requests.to_string(),
                r.input_tokens.to_string(),
                r.output_tokens.to_string(),
                r.cost_usd.clone(),
                r.counterfactual_usd.clone(),
                r.savings_usd.clone(),
                r.unknown_price_requests.to_string(),
                r.cache_hits.to_string(),
            ]
        })
        .collect();
    let mut out = String::new();
    if csv {
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &cells {
            out.push_str(
                &row.iter()
                    .map(|c| csv_field(c))
                    .collect::<Vec<_>>()
                    .join(","),
            );
            out.push('\n');
        }
        return out;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i == 0 {
                l.push_str(c);
                l.push_str(&" ".repeat(pad));
            } else {
                l.push_str("  ");
                l.push_str(&" ".repeat(pad));
                l.push_str(c);
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(header.to_vec()));
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
