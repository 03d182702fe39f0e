//! The admin HTTP API (`/admin/keys`, `/admin/spend`) and the CLI helpers behind
//! `switchyard keys ...` and `switchyard report`.
//!
//! Every admin route is declared `Access::Admin` (`access.rs`): it requires
//! `Authorization: Bearer <admin token>`, compared in constant time. Without a configured
//! token every admin route answers 401 "admin API disabled": the API is off, not open.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::{Access::Admin, RouteTable};
use crate::accounting::{render_report, spend_report, Ledger, SpendQuery};
use crate::auth::{AuthError, KeyInfo, KeyStore, NewKey};
use crate::store::{Db, StoreError};

pub struct AdminState {
    pub keys: KeyStore,
    pub ledger: Ledger,
}

/// Adds the admin API's routes, each `Access::Admin`.
pub fn routes(table: RouteTable, state: Arc<AdminState>) -> RouteTable {
    let s = || state.clone();
    table
        .route(
            Admin,
            Method::POST,
            "/admin/keys",
            post(create_key).with_state(s()),
        )
        .route(
            Admin,
            Method::GET,
            "/admin/keys",
            get(list_keys).with_state(s()),
        )
        .route(
            Admin,
            Method::DELETE,
            "/admin/keys/{id}",
            delete(revoke_key).with_state(s()),
        )
        .route(
            Admin,
            Method::POST,
            "/admin/keys/{id}/rotate",
            post(rotate_key).with_state(s()),
        )
        .route(
            Admin,
            Method::GET,
            "/admin/spend",
            get(spend).with_state(s()),
        )
        .route(
            Admin,
            Method::GET,
            "/admin/calibration",
            get(calibration).with_state(s()),
        )
}

/// The admin API's error shape (the admin guard's refusals use it too).
pub(crate) fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message.into()}})),
    )
        .into_response()
}

fn auth_error(e: AuthError) -> Response {
    match e {
        AuthError::NotFound(_) => error(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        AuthError::Invalid(_) => error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
        other => {
            tracing::error!("admin key operation failed: {other}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "the key store is unavailable",
            )
        }
    }
}

fn with_key(info: &KeyInfo, plain: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("key".into(), json!(plain));
    }
    v
}

async fn create_key(State(state): State<Arc<AdminState>>, body: axum::body::Bytes) -> Response {
    let req: NewKey = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match state.keys.create(req).await {
        Ok((info, plain)) => (StatusCode::CREATED, Json(with_key(&info, &plain))).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn list_keys(State(state): State<Arc<AdminState>>) -> Response {
    match state.keys.list().await {
        Ok(keys) => Json(json!({ "keys": keys })).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn revoke_key(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    match state.keys.revoke(&id).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn rotate_key(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    match state.keys.rotate(&id).await {
        Ok((info, plain)) => Json(with_key(&info, &plain)).into_response(),
        Err(e) => auth_error(e),
    }
}

#[derive(Deserialize)]
struct SpendParams {
    group_by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn spend(State(state): State<Arc<AdminState>>, Query(p): Query<SpendParams>) -> Response {
    let q = match SpendQuery::parse(
        p.group_by.as_deref().unwrap_or("team"),
        p.from.as_deref(),
        p.to.as_deref(),
    ) {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match spend_report(state.ledger.db(), &q).await {
        Ok(rows) => Json(json!({
            "group_by": q.group_by,
            "from": q.from_ms.map(crate::store::time::format_rfc3339),
            "to": q.to_ms.map(crate::store::time::format_rfc3339),
            "rows": rows,
        }))
        .into_response(),
        Err(e) => store_error(e),
    }
}

#[derive(Deserialize)]
struct CalibrationParams {
    target_quality: Option<f64>,
    team: Option<String>,
    rule: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The difficulty-threshold curve from shadow pairs, and the recommended threshold.
async fn calibration(
    State(state): State<Arc<AdminState>>,
    Query(p): Query<CalibrationParams>,
) -> Response {
    let q = match calibration_query(
        p.target_quality,
        p.team,
        p.rule,
        p.from.as_deref(),
        p.to.as_deref(),
    ) {
        Ok(q) => q,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    match crate::shadow::report::calibration(state.ledger.db(), &q).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => store_error(e),
    }
}

/// Checks and assembles a calibration query (shared by the API and the CLI).
pub fn calibration_query(
    target_quality: Option<f64>,
    team: Option<String>,
    rule: Option<String>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<crate::shadow::report::CalibrationQuery, String> {
    let target = target_quality.unwrap_or(0.95);
    if !(0.0..=1.0).contains(&target) {
        return Err(format!(
            "target quality is a fraction between 0 and 1, not {target}"
        ));
    }
    let time = |s: Option<&str>| {
        s.map(crate::store::time::parse_time)
            .transpose()
            .map_err(|e| e.to_string())
    };
    Ok(crate::shadow::report::CalibrationQuery {
        target_quality: target,
        filter: crate::shadow::store::PairFilter {
            from_ms: time(from)?,
            to_ms: time(to)?,
            team: team.filter(|t| !t.is_empty()),
            rule: rule.filter(|r| !r.is_empty()),
            limit: 0,
        },
    })
}

/// `switchyard calibrate`: the curve, the recommendation and the policy lines to edit.
pub async fn cli_calibrate(
    db: Db,
    q: crate::shadow::report::CalibrationQuery,
    policy_dir: Option<&std::path::Path>,
    json_out: bool,
) -> anyhow::Result<String> {
    let report = crate::shadow::report::calibration(&db, &q).await?;
    if json_out {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    let lines = policy_dir
        .map(crate::shadow::report::difficulty_lines)
        .unwrap_or_default();
    Ok(crate::shadow::report::render(&report, &lines))
}

fn store_error(e: StoreError) -> Response {
    match e {
        StoreError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        other => {
            tracing::error!("spend report failed: {other}");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "the ledger database is unavailable",
            )
        }
    }
}

/// `switchyard keys ...`, independent of any CLI parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeysCommand {
    Create(NewKey),
    List,
    Revoke { id: String },
    Rotate { id: String },
}

fn key_line(k: &KeyInfo) -> String {
    format!(
        "{}  {}  team={}{}{}{}{}  created={}{}",
        k.id,
        k.prefix,
        k.team,
        k.user
            .as_deref()
            .map(|u| format!(" user={u}"))
            .unwrap_or_default(),
        k.app
            .as_deref()
            .map(|a| format!(" app={a}"))
            .unwrap_or_default(),
        if k.tags.is_empty() {
            String::new()
        } else {
            format!(" tags={}", k.tags.join(","))
        },
        k.name
            .as_deref()
            .map(|n| format!(" name={n:?}"))
            .unwrap_or_default(),
        crate::store::time::format_rfc3339(k.created_at),
        k.revoked_at
            .map(|r| format!("  REVOKED {}", crate::store::time::format_rfc3339(r)))
            .unwrap_or_default(),
    )
}

/// Runs a key command against the database and returns what to print.
pub async fn cli_keys(db: Db, cmd: KeysCommand) -> anyhow::Result<String> {
    let keys = KeyStore::new(db, std::time::Duration::from_millis(1));
    Ok(match cmd {
        KeysCommand::Create(req) => {
            let (info, plain) = keys.create(req).await?;
            format!(
                "{}\n\n{plain}\n\nStore this key now: it is not shown again.\n",
                key_line(&info)
            )
        }
        KeysCommand::List => {
            let list = keys.list().await?;
            if list.is_empty() {
                "no keys\n".into()
            } else {
                list.iter().map(|k| key_line(k) + "\n").collect()
            }
        }
        KeysCommand::Revoke { id } => format!("revoked {}\n", key_line(&keys.revoke(&id).await?)),
        KeysCommand::Rotate { id } => {
            let (info, plain) = keys.rotate(&id).await?;
            format!(
                "{}\n\n{plain}\n\nThe previous key no longer works. Store this one now: it is not shown again.\n",
                key_line(&info)
            )
        }
    })
}

/// Runs a spend report and renders it as a table or CSV.
pub async fn cli_report(db: Db, q: SpendQuery, csv: bool) -> anyhow::Result<String> {
    let rows = spend_report(&db, &q).await?;
    Ok(render_report(&rows, q.group_by, csv))
}
