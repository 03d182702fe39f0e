//! The admin HTTP API (`/admin/keys`, `/admin/tokens`, `/admin/policy/*` (status, reload,
//! rules, test), `/admin/spend`, `/admin/calibration`, `/admin/audit`) and the CLI helpers
//! behind `switchyard keys`, `tokens`, `audit` and `report`.
//!
//! Every admin route is declared `Access::Admin` (`access.rs`) with the roles it admits:
//! it requires `Authorization: Bearer` with the admin token (compared in constant time)
//! or a scoped admin token of one of those roles. Without a configured admin token every
//! admin route answers 401 "admin API disabled": the API is off, not open.
//!
//! Every change made here is recorded in the audit trail (`audit/`) with the caller's
//! [`Principal`], after the change succeeds; an audit write that fails is logged as an
//! error and the change stands (it has already happened).

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::access::{Access::Admin, Principal, RouteTable};
use crate::accounting::{render_report, spend_report, Ledger, SpendQuery};
use crate::audit::{Action, Actor, AuditEvent, AuditFilter, AuditLog, Order};
use crate::auth::admin_tokens::{AdminTokenStore, NewToken, TokenInfo};
use crate::auth::roles::RoleSet;
use crate::auth::{AuthError, KeyInfo, KeyStore, NewKey};
use crate::limits::LimitKind;
use crate::policy_runtime::PolicyHandle;
use crate::store::{Db, StoreError};
use crate::team_limits::{LimitsPatch, TeamLimitError, TeamLimitService};

pub struct AdminState {
    pub keys: KeyStore,
    pub tokens: AdminTokenStore,
    pub ledger: Ledger,
    pub audit: AuditLog,
    /// The live policy (`None`: the policy routes are not mounted, as in tests of the
    /// key API alone).
    pub policy: Option<PolicyHandle>,
    /// Team budgets and rate limits (`None`: the `/admin/teams` routes are not mounted).
    pub team_limits: Option<TeamLimitService>,
}

impl AdminState {
    /// The admin API over one database: keys, tokens and the audit trail all in the
    /// ledger's database.
    pub fn new(keys: KeyStore, ledger: Ledger, policy: Option<PolicyHandle>) -> Self {
        let db = ledger.db().clone();
        AdminState {
            tokens: AdminTokenStore::new(db.clone(), std::time::Duration::from_secs(5)),
            audit: AuditLog::new(db),
            keys,
            ledger,
            policy,
            team_limits: None,
        }
    }
}

/// Adds the admin API's routes, each `Access::Admin` with the roles it admits.
pub fn routes(table: RouteTable, state: Arc<AdminState>) -> RouteTable {
    let s = || state.clone();
    let mut table = table
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::POST,
            "/admin/keys",
            post(create_key).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::GET,
            "/admin/keys",
            get(list_keys).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::DELETE,
            "/admin/keys/{id}",
            delete(revoke_key).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::POST,
            "/admin/keys/{id}/rotate",
            post(rotate_key).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::POST,
            "/admin/tokens",
            post(create_token).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::GET,
            "/admin/tokens",
            get(list_tokens).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ADMIN,
            Method::DELETE,
            "/admin/tokens/{id}",
            delete(revoke_token).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::ANY,
            Method::GET,
            "/admin/whoami",
            get(whoami),
        )
        .route_roles(
            Admin,
            RoleSet::FINANCE,
            Method::GET,
            "/admin/spend",
            get(spend).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::FINANCE,
            Method::GET,
            "/admin/calibration",
            get(calibration).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::SECURITY,
            Method::GET,
            "/admin/audit",
            get(list_audit).with_state(s()),
        )
        .route_roles(
            Admin,
            RoleSet::SECURITY,
            Method::GET,
            "/admin/audit/verify",
            get(verify_audit).with_state(s()),
        );
    if state.team_limits.is_some() {
        // Finance reads budgets and their counters; only an admin changes them.
        table = table
            .route_roles(
                Admin,
                RoleSet::FINANCE,
                Method::GET,
                "/admin/teams",
                get(list_teams).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::FINANCE,
                Method::GET,
                "/admin/teams/{team}/limits",
                get(team_limits).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::ADMIN,
                Method::PUT,
                "/admin/teams/{team}/limits",
                put(set_team_limits).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::ADMIN,
                Method::DELETE,
                "/admin/teams/{team}/limits/{kind}",
                delete(clear_team_limit).with_state(s()),
            );
    }
    if state.policy.is_some() {
        table = table
            .route_roles(
                Admin,
                RoleSet::SECURITY,
                Method::GET,
                "/admin/policy/status",
                get(policy_status).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::SECURITY,
                Method::POST,
                "/admin/policy/reload",
                post(policy_reload).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::SECURITY,
                Method::GET,
                "/admin/policy/rules",
                get(policy_rules).with_state(s()),
            )
            .route_roles(
                Admin,
                RoleSet::SECURITY,
                Method::POST,
                "/admin/policy/test",
                post(policy_test).with_state(s()),
            );
    }
    table
}

/// Records an admin event; a failure is logged (the change it describes has happened).
async fn audit(state: &AdminState, event: AuditEvent) {
    if let Err(e) = state.audit.record(event).await {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
}

fn event(p: &Principal, action: Action, target: &str) -> AuditEvent {
    AuditEvent::new(p.actor.clone(), action, target).source(p.source)
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

async fn create_key(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    let req: NewKey = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match state.keys.create(req).await {
        Ok((info, plain)) => {
            audit(&state, event(&p, Action::KeyCreated, &info.id).after(&info)).await;
            (StatusCode::CREATED, Json(with_key(&info, &plain))).into_response()
        }
        Err(e) => auth_error(e),
    }
}

async fn list_keys(State(state): State<Arc<AdminState>>) -> Response {
    match state.keys.list().await {
        Ok(keys) => Json(json!({ "keys": keys })).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn revoke_key(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match revoke_key_audited(&state.keys, &state.audit, &p, &id).await {
        Ok(info) => Json(info).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn rotate_key(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    match rotate_key_audited(&state.keys, &state.audit, &p, &id).await {
        Ok((info, plain)) => Json(with_key(&info, &plain)).into_response(),
        Err(e) => auth_error(e),
    }
}

/// Revokes a key and records it (API, console and CLI share this).
pub(crate) async fn revoke_key_audited(
    keys: &KeyStore,
    log: &AuditLog,
    p: &Principal,
    id: &str,
) -> Result<KeyInfo, AuthError> {
    let before = keys.get(id).await?;
    let info = keys.revoke(id).await?;
    let e = event(p, Action::KeyRevoked, &info.id)
        .before(before)
        .after(&info);
    if let Err(e) = log.record(e).await {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
    Ok(info)
}

/// Rotates a key and records it: the prefix before and after (never a secret).
pub(crate) async fn rotate_key_audited(
    keys: &KeyStore,
    log: &AuditLog,
    p: &Principal,
    id: &str,
) -> Result<(KeyInfo, String), AuthError> {
    let before = keys.get(id).await?;
    let (info, plain) = keys.rotate(id).await?;
    let e = event(p, Action::KeyRotated, &info.id)
        .before(before)
        .after(&info);
    if let Err(e) = log.record(e).await {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
    Ok((info, plain))
}

fn with_token(info: &TokenInfo, plain: &str) -> serde_json::Value {
    let mut v = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.insert("token".into(), json!(plain));
    }
    v
}

async fn create_token(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    body: axum::body::Bytes,
) -> Response {
    let req: NewToken = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    match state.tokens.create(&req, &p.actor.to_string()).await {
        Ok((info, plain)) => {
            audit(
                &state,
                event(&p, Action::TokenCreated, &info.id).after(&info),
            )
            .await;
            (StatusCode::CREATED, Json(with_token(&info, &plain))).into_response()
        }
        Err(e) => auth_error(e),
    }
}

async fn list_tokens(State(state): State<Arc<AdminState>>) -> Response {
    match state.tokens.list().await {
        Ok(tokens) => Json(json!({ "tokens": tokens })).into_response(),
        Err(e) => auth_error(e),
    }
}

async fn revoke_token(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    Path(id): Path<String>,
) -> Response {
    let before = match state.tokens.get(&id).await {
        Ok(b) => b,
        Err(e) => return auth_error(e),
    };
    match state.tokens.revoke(&id).await {
        Ok(info) => {
            let e = event(&p, Action::TokenRevoked, &info.id)
                .before(before)
                .after(&info);
            audit(&state, e).await;
            Json(info).into_response()
        }
        Err(e) => auth_error(e),
    }
}

/// Who the caller is and with which role (automation checks its token with this).
fn team_limit_error(e: TeamLimitError) -> Response {
    match e {
        TeamLimitError::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid_request", m),
        other => {
            tracing::error!(error = %other, "team limits operation failed");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_error",
                "the team limits are unavailable",
            )
        }
    }
}

/// Only reached if the routes were mounted without the service (they are not).
fn no_team_limits() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        "team limits are not available",
    )
}

async fn list_teams(State(state): State<Arc<AdminState>>) -> Response {
    let Some(service) = state.team_limits.as_ref() else {
        return no_team_limits();
    };
    match service.reports(&state.keys).await {
        Ok(teams) => Json(json!({ "teams": teams })).into_response(),
        Err(e) => team_limit_error(e),
    }
}

async fn team_limits(State(state): State<Arc<AdminState>>, Path(team): Path<String>) -> Response {
    let Some(service) = state.team_limits.as_ref() else {
        return no_team_limits();
    };
    match service.report(&team, &state.keys).await {
        Ok(report) => Json(report).into_response(),
        Err(e) => team_limit_error(e),
    }
}

async fn set_team_limits(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    Path(team): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Some(service) = state.team_limits.as_ref() else {
        return no_team_limits();
    };
    let patch: LimitsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()),
    };
    changed_report(
        service,
        &state.keys,
        &team,
        service.apply(&team, &patch, &p).await,
    )
    .await
}

async fn clear_team_limit(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
    Path((team, kind)): Path<(String, String)>,
) -> Response {
    let Some(service) = state.team_limits.as_ref() else {
        return no_team_limits();
    };
    let kind: LimitKind = match kind.parse() {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_request", format!("{e}")),
    };
    let mut patch = LimitsPatch::default();
    match kind {
        LimitKind::BudgetDay => patch.budget_day = Some(None),
        LimitKind::BudgetMonth => patch.budget_month = Some(None),
        LimitKind::Rate => patch.rate = Some(None),
    }
    changed_report(
        service,
        &state.keys,
        &team,
        service.apply(&team, &patch, &p).await,
    )
    .await
}

/// What changed and the team's report after it.
async fn changed_report(
    service: &TeamLimitService,
    keys: &KeyStore,
    team: &str,
    applied: Result<Vec<crate::team_limits::LimitChange>, TeamLimitError>,
) -> Response {
    let changes = match applied {
        Ok(c) => c,
        Err(e) => return team_limit_error(e),
    };
    match service.report(team, keys).await {
        Ok(report) => Json(json!({"changed": changes, "team": report})).into_response(),
        Err(e) => team_limit_error(e),
    }
}

async fn whoami(Extension(p): Extension<Principal>) -> Response {
    Json(json!({"actor": p.actor.to_string(), "role": p.role})).into_response()
}

async fn policy_status(State(state): State<Arc<AdminState>>) -> Response {
    match &state.policy {
        Some(policy) => Json(json!(policy.status())).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no policy is loaded"),
    }
}

/// The live policy in words (what the console's rules view shows).
async fn policy_rules(State(state): State<Arc<AdminState>>) -> Response {
    match &state.policy {
        Some(policy) => Json(json!(policy.current().policy.describe())).into_response(),
        None => error(StatusCode::NOT_FOUND, "not_found", "no policy is loaded"),
    }
}

/// Runs the live policy's test cases: 200 with the report (`ok` false when a case
/// failed), 422 when a test file does not parse.
async fn policy_test(State(state): State<Arc<AdminState>>) -> Response {
    let Some(policy) = &state.policy else {
        return error(StatusCode::NOT_FOUND, "not_found", "no policy is loaded");
    };
    match policy.run_tests() {
        Ok(report) => {
            let mut body = json!(report);
            body["ok"] = json!(report.ok());
            Json(body).into_response()
        }
        Err(e) => error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", &e),
    }
}

async fn policy_reload(
    State(state): State<Arc<AdminState>>,
    Extension(p): Extension<Principal>,
) -> Response {
    let Some(policy) = &state.policy else {
        return error(StatusCode::NOT_FOUND, "not_found", "no policy is loaded");
    };
    let report = policy.reload_report();
    audit(&state, report.audit_event(p.actor.clone()).source(p.source)).await;
    match report.result {
        Ok(version) => Json(json!({"reloaded": true, "version": version})).into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"reloaded": false, "error": e, "status": policy.status()})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct AuditParams {
    from: Option<String>,
    to: Option<String>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    limit: Option<u32>,
}

/// The most entries one `/admin/audit` page returns.
const AUDIT_PAGE_MAX: u32 = 1000;

/// Audit entries, newest first, filtered by time, actor, action (or family) and target.
async fn list_audit(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<AuditParams>,
) -> Response {
    let filter = match audit_filter(
        q.from.as_deref(),
        q.to.as_deref(),
        q.actor,
        q.action,
        q.target,
        q.limit.unwrap_or(100).clamp(1, AUDIT_PAGE_MAX),
    ) {
        Ok(f) => f,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request", m),
    };
    match state.audit.list(&filter, Order::NewestFirst).await {
        Ok(entries) => Json(json!({ "entries": entries })).into_response(),
        Err(e) => store_error(e),
    }
}

/// Walks the chain: `ok`, the head to keep elsewhere, or where it first breaks.
async fn verify_audit(State(state): State<Arc<AdminState>>) -> Response {
    match state.audit.verify().await {
        Ok(report) => {
            let mut v = json!(report);
            if let Some(obj) = v.as_object_mut() {
                obj.insert("ok".into(), json!(report.ok()));
                if let Some(b) = &report.broken {
                    obj.insert("message".into(), json!(b.to_string()));
                }
            }
            Json(v).into_response()
        }
        Err(e) => store_error(e),
    }
}

/// Checks and assembles an audit filter (shared by the API and the CLI).
pub fn audit_filter(
    from: Option<&str>,
    to: Option<&str>,
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    limit: u32,
) -> Result<AuditFilter, String> {
    let time = |s: Option<&str>| {
        s.filter(|s| !s.is_empty())
            .map(crate::store::time::parse_time)
            .transpose()
            .map_err(|e| e.to_string())
    };
    Ok(AuditFilter {
        from_ms: time(from)?,
        to_ms: time(to)?,
        actor: actor.filter(|s| !s.is_empty()),
        action: action.filter(|s| !s.is_empty()),
        target: target.filter(|s| !s.is_empty()),
        limit,
    })
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

/// The CLI's principal: the OS user, no network source.
fn cli_principal() -> Principal {
    Principal {
        actor: Actor::cli(),
        role: crate::auth::roles::Role::Admin,
        source: None,
    }
}

/// Runs a key command against the database and returns what to print. Changes are
/// recorded in the audit trail as the OS user's (`cli:<user>`).
pub async fn cli_keys(db: Db, cmd: KeysCommand) -> anyhow::Result<String> {
    let log = AuditLog::new(db.clone());
    let keys = KeyStore::new(db, std::time::Duration::from_millis(1));
    let p = cli_principal();
    Ok(match cmd {
        KeysCommand::Create(req) => {
            let (info, plain) = keys.create(req).await?;
            log.record(event(&p, Action::KeyCreated, &info.id).after(&info))
                .await?;
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
        KeysCommand::Revoke { id } => format!(
            "revoked {}\n",
            key_line(&revoke_key_audited(&keys, &log, &p, &id).await?)
        ),
        KeysCommand::Rotate { id } => {
            let (info, plain) = rotate_key_audited(&keys, &log, &p, &id).await?;
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

/// `switchyard tokens ...`, independent of any CLI parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokensCommand {
    Create(NewToken),
    List,
    Revoke { id: String },
}

fn token_line(t: &TokenInfo) -> String {
    let now = crate::store::time::now_ms();
    format!(
        "{}  {}  role={}{}  created={} by {}  expires={}{}",
        t.id,
        t.prefix,
        t.role,
        t.name
            .as_deref()
            .map(|n| format!(" name={n:?}"))
            .unwrap_or_default(),
        crate::store::time::format_rfc3339(t.created_at),
        t.created_by,
        crate::store::time::format_rfc3339(t.expires_at),
        match t.revoked_at {
            Some(r) => format!("  REVOKED {}", crate::store::time::format_rfc3339(r)),
            None if !t.active_at(now) => "  EXPIRED".into(),
            None => String::new(),
        },
    )
}

/// Runs a token command against the database, recorded as the OS user's.
pub async fn cli_tokens(db: Db, cmd: TokensCommand) -> anyhow::Result<String> {
    let log = AuditLog::new(db.clone());
    let tokens = AdminTokenStore::new(db, std::time::Duration::from_millis(1));
    let p = cli_principal();
    Ok(match cmd {
        TokensCommand::Create(req) => {
            let (info, plain) = tokens.create(&req, &p.actor.to_string()).await?;
            log.record(event(&p, Action::TokenCreated, &info.id).after(&info))
                .await?;
            format!(
                "{}\n\n{plain}\n\nStore this token now: it is not shown again.\n",
                token_line(&info)
            )
        }
        TokensCommand::List => {
            let list = tokens.list().await?;
            if list.is_empty() {
                "no admin tokens\n".into()
            } else {
                list.iter().map(|t| token_line(t) + "\n").collect()
            }
        }
        TokensCommand::Revoke { id } => {
            let before = tokens.get(&id).await?;
            let info = tokens.revoke(&id).await?;
            log.record(
                event(&p, Action::TokenRevoked, &info.id)
                    .before(before)
                    .after(&info),
            )
            .await?;
            format!("revoked {}\n", token_line(&info))
        }
    })
}

/// `switchyard audit verify`: what to print, and whether the chain holds.
pub async fn cli_audit_verify(db: Db) -> anyhow::Result<(String, bool)> {
    let report = AuditLog::new(db).verify().await?;
    let text = match &report.broken {
        None => format!(
            "audit trail intact: {} entries; head seq {} hash {}\n",
            report.entries, report.head_seq, report.head_hash
        ),
        Some(b) => format!(
            "AUDIT TRAIL BROKEN: {b}\n(checked {} entries; the chain holds up to seq {})\n",
            report.entries, report.head_seq
        ),
    };
    Ok((text, report.ok()))
}

/// `switchyard audit export`: JSON Lines to `out`, oldest first; returns the count.
pub async fn cli_audit_export(
    db: Db,
    filter: AuditFilter,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<usize> {
    Ok(AuditLog::new(db).export(&filter, out).await?)
}
