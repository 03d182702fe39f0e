//! The traffic explorer's query: ledger records filtered by time, team, key, model,
//! route (policy rule), what served them (local, frontier, cache, blocked) and status, newest first. The ledger holds no prompt or answer
//! text, so neither can a page or an export built on this.

use serde::Serialize;
use sqlx::Row;

use crate::store::{with_pool, Db, StoreError};
use crate::telemetry::metrics::RouteKind;

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub team: Option<String>,
    pub key: Option<String>,
    pub model: Option<String>,
    pub route: Option<String>,
    pub served: Option<RouteKind>,
    pub status: Option<i64>,
    pub limit: u32,
}

/// One request as the ledger recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficRow {
    pub id: String,
    pub ts_ms: i64,
    pub team: String,
    pub key_id: String,
    pub route: String,
    /// `local`, `frontier`, `cache`, `blocked`, `none`; '' for rows older than the column.
    pub served: String,
    pub provider: String,
    pub model: String,
    pub requested_model: String,
    pub dialect: String,
    pub stream: bool,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_micros: i64,
    pub counterfactual_micros: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub cache_hit: bool,
    pub status: i64,
    pub error_kind: Option<String>,
    pub sensitivity: String,
    pub redactions: i64,
}

const COLUMNS: &str = "id, ts_ms, team, key_id, route, served, provider, model, requested_model, dialect, stream, \
    input_tokens, output_tokens, cost_micros, counterfactual_micros, latency_ms, ttft_ms, cache_hit, \
    status, error_kind, sensitivity, redactions";

fn row_from<R>(row: &R) -> Result<TrafficRow, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(TrafficRow {
        id: row.try_get("id")?,
        ts_ms: row.try_get("ts_ms")?,
        team: row.try_get("team")?,
        key_id: row.try_get("key_id")?,
        route: row.try_get("route")?,
        served: row.try_get("served")?,
        provider: row.try_get("provider")?,
        model: row.try_get("model")?,
        requested_model: row.try_get("requested_model")?,
        dialect: row.try_get("dialect")?,
        stream: row.try_get::<i64, _>("stream")? != 0,
        input_tokens: row.try_get("input_tokens")?,
        output_tokens: row.try_get("output_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
        counterfactual_micros: row.try_get("counterfactual_micros")?,
        latency_ms: row.try_get("latency_ms")?,
        ttft_ms: row.try_get("ttft_ms")?,
        cache_hit: row.try_get::<i64, _>("cache_hit")? != 0,
        status: row.try_get("status")?,
        error_kind: row.try_get("error_kind")?,
        sensitivity: row.try_get("sensitivity")?,
        redactions: row.try_get("redactions")?,
    })
}

/// The records matching `f`, newest first, at most `f.limit` (0: 10 000).
pub async fn traffic(db: &Db, f: &TrafficFilter) -> Result<Vec<TrafficRow>, StoreError> {
    let mut sql = format!("SELECT {COLUMNS} FROM ledger WHERE 1 = 1");
    let mut ints: Vec<i64> = Vec::new();
    for (value, clause) in [
        (f.from_ms, "ts_ms >="),
        (f.to_ms, "ts_ms <"),
        (f.status, "status ="),
    ] {
        if let Some(v) = value {
            ints.push(v);
            sql.push_str(&format!(" AND {clause} ${}", ints.len()));
        }
    }
    let mut texts: Vec<&str> = Vec::new();
    for (value, column) in [
        (f.team.as_deref(), "team"),
        (f.key.as_deref(), "key_id"),
        (f.model.as_deref(), "model"),
        (f.route.as_deref(), "route"),
        (f.served.map(RouteKind::as_str), "served"),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            texts.push(v);
            sql.push_str(&format!(" AND {column} = ${}", ints.len() + texts.len()));
        }
    }
    let limit = if f.limit == 0 {
        10_000
    } else {
        f.limit.min(10_000)
    };
    sql.push_str(&format!(" ORDER BY ts_ms DESC, id LIMIT {limit}"));
    Ok(with_pool!(db, |pool| {
        let mut q = sqlx::query(&sql);
        for i in &ints {
            q = q.bind(*i);
        }
        for t in &texts {
            q = q.bind(*t);
        }
        let rows = q.fetch_all(pool).await?;
        rows.iter().map(row_from).collect::<Result<Vec<_>, _>>()?
    }))
}

/// When each key was last used (unix ms), from the ledger (refused requests carry no key).
pub async fn last_used(db: &Db) -> Result<std::collections::HashMap<String, i64>, StoreError> {
    let sql = "SELECT key_id, MAX(ts_ms) FROM ledger WHERE key_id <> '' GROUP BY key_id";
    let rows: Vec<(String, Option<i64>)> =
        with_pool!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
    Ok(rows
        .into_iter()
        .filter_map(|(k, t)| t.map(|t| (k, t)))
        .collect())
}

/// The rows as CSV, money in dollars (the columns of [`TrafficRow`]).
pub fn to_csv(rows: &[TrafficRow]) -> String {
    use super::{csv_field, money::format_usd};
    let mut out = String::from(
        "id,time,team,key_id,route,served,provider,model,requested_model,dialect,stream,input_tokens,output_tokens,cost_usd,counterfactual_usd,latency_ms,ttft_ms,cache_hit,status,error_kind,sensitivity,redactions\n",
    );
    for r in rows {
        let cells = [
            r.id.clone(),
            crate::store::time::format_rfc3339(r.ts_ms),
            r.team.clone(),
            r.key_id.clone(),
            r.route.clone(),
            r.served.clone(),
            r.provider.clone(),
            r.model.clone(),
            r.requested_model.clone(),
            r.dialect.clone(),
            r.stream.to_string(),
            r.input_tokens.to_string(),
            r.output_tokens.to_string(),
            format_usd(r.cost_micros),
            format_usd(r.counterfactual_micros),
            r.latency_ms.to_string(),
            r.ttft_ms.map(|t| t.to_string()).unwrap_or_default(),
            r.cache_hit.to_string(),
            r.status.to_string(),
            r.error_kind.clone().unwrap_or_default(),
            r.sensitivity.clone(),
            r.redactions.to_string(),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}
