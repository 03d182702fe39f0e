//! The traffic explorer: ledger records filtered by time, team, key, model, rule (the
//! ledger's route), what served them and status, as a table and as CSV. Never prompt text: the ledger has none.

use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{page, viewer, ConsoleState};
use crate::access::{ConsoleSession, Principal};
use crate::accounting::explore::{to_csv, traffic, TrafficFilter};
use crate::accounting::money::format_usd;
use crate::dashboard::render::esc;
use crate::store::time::{format_rfc3339, parse_time};
use crate::telemetry::metrics::RouteKind;

/// Rows the page shows; the CSV export takes up to 10 000.
const PAGE_ROWS: u32 = 200;

#[derive(Debug, Default, serde::Deserialize)]
pub struct TrafficQuery {
    from: Option<String>,
    to: Option<String>,
    team: Option<String>,
    key: Option<String>,
    model: Option<String>,
    route: Option<String>,
    served: Option<String>,
    status: Option<String>,
}

impl TrafficQuery {
    fn filter(&self, limit: u32) -> Result<TrafficFilter, String> {
        let time = |s: &Option<String>| {
            s.as_deref()
                .filter(|s| !s.is_empty())
                .map(parse_time)
                .transpose()
                .map_err(|e| e.to_string())
        };
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(
                s.parse::<i64>()
                    .map_err(|_| format!("status {s:?} is not an HTTP status code"))?,
            ),
            None => None,
        };
        let served = match self.served.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => Some(RouteKind::parse(s).ok_or_else(|| {
                format!("served {s:?} is not one of local, frontier, cache, blocked, none")
            })?),
            None => None,
        };
        let text = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Ok(TrafficFilter {
            from_ms: time(&self.from)?,
            to_ms: time(&self.to)?,
            team: text(&self.team),
            key: text(&self.key),
            model: text(&self.model),
            route: text(&self.route),
            served,
            status,
            limit,
        })
    }

    /// The same filter as a query string (for the CSV link).
    fn query_string(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("team", &self.team),
            ("key", &self.key),
            ("model", &self.model),
            ("route", &self.route),
            ("served", &self.served),
            ("status", &self.status),
        ];
        pairs
            .iter()
            .filter_map(|(k, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (k, v)))
            .map(|(k, v)| format!("{k}={}", percent(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub async fn page_handler(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    Query(q): Query<TrafficQuery>,
) -> Response {
    let filter = match q.filter(PAGE_ROWS) {
        Ok(f) => f,
        Err(m) => return page::message(StatusCode::BAD_REQUEST, "Traffic", &m),
    };
    let rows = match traffic(&state.db, &filter).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "console cannot read the ledger");
            return page::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Traffic",
                "the ledger is unavailable",
            );
        }
    };
    let cells: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr data-status={}><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                r.status,
                format_rfc3339(r.ts_ms),
                esc(&r.team),
                esc(&r.key_id),
                esc(&r.route),
                esc(&r.served),
                esc(&r.provider),
                esc(&r.model),
                r.status,
                esc(r.error_kind.as_deref().unwrap_or("")),
                r.latency_ms,
                r.input_tokens,
                r.output_tokens,
                format_usd(r.cost_micros),
                esc(&r.sensitivity),
                if r.cache_hit { "hit" } else { "" },
            )
        })
        .collect();
    let input = |name: &str, v: &Option<String>| {
        format!(
            "<label>{name} <input name={name} value=\"{}\" size=12></label> ",
            esc(v.as_deref().unwrap_or(""))
        )
    };
    let options: String = std::iter::once("")
        .chain(RouteKind::ALL.iter().map(|k| k.as_str()))
        .map(|k| {
            let selected = if q.served.as_deref().unwrap_or("") == k {
                " selected"
            } else {
                ""
            };
            let label = if k.is_empty() { "any" } else { k };
            format!("<option value=\"{k}\"{selected}>{label}</option>")
        })
        .collect();
    let form: String = [
        input("from", &q.from),
        input("to", &q.to),
        input("team", &q.team),
        input("key", &q.key),
        input("model", &q.model),
        input("route", &q.route),
        format!("<label>served <select name=served>{options}</select></label> "),
        input("status", &q.status),
    ]
    .concat();
    let body = format!(
        "<form method=get action=\"/console/traffic\">{form}<button>Filter</button></form>\
         <p><a id=csv href=\"/console/traffic.csv?{}\">Export CSV</a> (up to 10 000 records; the page shows the newest {PAGE_ROWS})</p>\
         <table id=traffic><tr><th>time</th><th>team</th><th>key</th><th>route (rule)</th><th>served</th><th>provider</th><th>model</th><th>status</th><th>error</th><th>latency ms</th><th>tokens in / out</th><th>cost</th><th>sensitivity</th><th>cache</th></tr>{cells}</table>",
        esc(&q.query_string())
    );
    page::page(StatusCode::OK, "Traffic", &viewer(&p, &s), &body)
}

pub async fn csv_handler(
    State(state): State<Arc<ConsoleState>>,
    Query(q): Query<TrafficQuery>,
) -> Response {
    let filter = match q.filter(0) {
        Ok(f) => f,
        Err(m) => return (StatusCode::BAD_REQUEST, m).into_response(),
    };
    match traffic(&state.db, &filter).await {
        Ok(rows) => {
            let mut r = to_csv(&rows).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"switchyard-traffic.csv\""),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "traffic export cannot read the ledger");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the ledger is unavailable\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_and_round_trip_to_the_csv_link() {
        let q = TrafficQuery {
            team: Some("web & co".into()),
            status: Some("401".into()),
            from: Some("2026-12-01".into()),
            served: Some("local".into()),
            ..Default::default()
        };
        let f = q.filter(10).expect("filter");
        assert_eq!(f.status, Some(401));
        assert_eq!(f.served, Some(RouteKind::Local));
        assert_eq!(f.team.as_deref(), Some("web & co"));
        assert!(f.from_ms.is_some());
        assert_eq!(
            q.query_string(),
            "from=2026-12-01&team=web%20%26%20co&served=local&status=401"
        );
        let bad = TrafficQuery {
            status: Some("ok".into()),
            ..Default::default()
        };
        assert!(bad.filter(10).is_err());
        let bad = TrafficQuery {
            served: Some("mars".into()),
            ..Default::default()
        };
        assert!(bad.filter(10).unwrap_err().contains("local, frontier"));
    }
}
