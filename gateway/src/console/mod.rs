//! The admin console at `/console`: server-rendered HTML, no script and no external
//! resources. Server rendering keeps the single binary and its single-command start (no
//! front-end build, nothing to fetch at run time, works offline), lets the role check of
//! every page run in the same access guard as the API, and keeps the strict CSP of the
//! dashboard. Forms post back to the console; each is CSRF-checked against the session.
//!
//! Pages and the roles they admit: `/console` (every role: who you are and where to go),
//! `/console/keys` (admin: list, create, rotate, revoke virtual keys),
//! `/console/teams` (finance reads, admin edits: team budgets and rate limits with their
//! live counters),
//! `/console/audit` (security: the audit trail with filters and the chain check),
//! `/console/traffic` (finance, security: the ledger filtered, and as CSV),
//! `/console/policies` (security: the live policy as readable rules, its reload history
//! and the diff of its last change, reload, its test cases run on demand, and the
//! playground that explains a pasted request with the live engine).
//! Without a session a console page shows the sign-in page; with a role the page does not
//! admit, the forbidden page.

pub mod page;
pub mod playground;
mod policies;
pub mod teams;
pub mod traffic;

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};

use crate::access::{Access, ConsoleSession, Principal, RouteTable};
use crate::audit::{Action, AuditEvent, AuditLog, Order};
use crate::auth::roles::{Role, RoleSet};
use crate::auth::{KeyStore, NewKey};
use crate::dashboard::render::esc;
use crate::store::time::format_rfc3339;
use page::Viewer;

pub struct ConsoleState {
    /// The ledger's database (the traffic explorer reads it).
    pub db: crate::store::Db,
    pub keys: KeyStore,
    pub audit: AuditLog,
    /// The live policy (`None`: the policies page says there is none).
    pub policy: Option<crate::policy_runtime::PolicyHandle>,
    /// The playground's engine (`None`: the playground is not offered).
    pub explain: Option<playground::Explainer>,
    /// Team budgets and rate limits (`None`: the Teams page says they are unavailable).
    pub team_limits: Option<crate::team_limits::TeamLimitService>,
}

/// Adds the console pages (`Access::Dashboard`, each with its roles).
pub fn routes(table: RouteTable, state: Arc<ConsoleState>) -> RouteTable {
    let s = || state.clone();
    table
        .route_roles(
            Access::Dashboard,
            RoleSet::ANY,
            Method::GET,
            "/console",
            get(home),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::ADMIN,
            Method::GET,
            "/console/keys",
            get(keys_page).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::ADMIN,
            Method::POST,
            "/console/keys",
            post(create_key).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::ADMIN,
            Method::POST,
            "/console/keys/{id}/revoke",
            post(revoke_key).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::ADMIN,
            Method::POST,
            "/console/keys/{id}/rotate",
            post(rotate_key).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::FINANCE,
            Method::GET,
            "/console/teams",
            get(teams::page_handler).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::ADMIN,
            Method::POST,
            "/console/teams",
            post(teams::save_handler).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::SECURITY,
            Method::GET,
            "/console/audit",
            get(audit_page).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::of(&[Role::Finance, Role::Security]),
            Method::GET,
            "/console/traffic",
            get(traffic::page_handler).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::of(&[Role::Finance, Role::Security]),
            Method::GET,
            "/console/traffic.csv",
            get(traffic::csv_handler).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::SECURITY,
            Method::GET,
            "/console/policies",
            get(policies::policies_page).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::SECURITY,
            Method::POST,
            "/console/policies/reload",
            post(policies::reload_policy).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::SECURITY,
            Method::POST,
            "/console/policies/playground",
            post(policies::run_playground).with_state(s()),
        )
        .route_roles(
            Access::Dashboard,
            RoleSet::SECURITY,
            Method::POST,
            "/console/policies/test",
            post(policies::run_tests).with_state(s()),
        )
}

fn viewer<'a>(p: &'a Principal, s: &'a ConsoleSession) -> Viewer<'a> {
    Viewer {
        principal: p,
        csrf: s.0.as_ref().map(|s| s.csrf.as_str()),
    }
}

/// A form from a browser session must carry the session's CSRF token; a call with a
/// bearer token (no cookie, so not forgeable cross-site) needs none.
fn csrf_refused(session: &ConsoleSession, body: &[u8]) -> Option<Response> {
    let s = session.0.as_ref()?;
    let given = crate::dashboard::form_value(body, "csrf").unwrap_or_default();
    (!s.csrf_ok(&given)).then(|| {
        page::message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the form's CSRF token does not match this session: reload the page and try again",
        )
    })
}

fn csrf_field(session: &ConsoleSession) -> String {
    session
        .0
        .as_ref()
        .map(|s| format!("<input type=hidden name=csrf value=\"{}\">", esc(&s.csrf)))
        .unwrap_or_default()
}

async fn home(
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
) -> Response {
    let role = p.role;
    let mut items = vec![(
        "/dashboard",
        "Dashboards",
        "cost, latency, savings, traffic by outcome, calibration",
    )];
    if RoleSet::ADMIN.contains(role) {
        items.push((
            "/console/keys",
            "Keys",
            "create, rotate and revoke virtual keys",
        ));
    }
    if RoleSet::FINANCE.contains(role) {
        items.push((
            "/console/teams",
            "Teams",
            "budgets and rate limits per team, with this period's spend",
        ));
    }
    if RoleSet::of(&[Role::Finance, Role::Security]).contains(role) {
        items.push((
            "/console/traffic",
            "Traffic",
            "every request with route, model, status, cost; CSV export",
        ));
    }
    if RoleSet::SECURITY.contains(role) {
        items.push((
            "/console/policies",
            "Policies",
            "the live policy, reloads, and a playground for requests",
        ));
        items.push((
            "/console/audit",
            "Audit trail",
            "every administrative change, tamper-evident",
        ));
    }
    let list: String = items
        .iter()
        .map(|(href, title, what)| format!("<li><a href=\"{href}\">{title}</a> — {what}</li>"))
        .collect();
    let body = format!(
        "<p>Signed in as <b id=name>{}</b> with the <b>{role}</b> role.</p><ul>{list}</ul>",
        esc(&p.actor.to_string())
    );
    page::page(StatusCode::OK, "Console", &viewer(&p, &s), &body)
}

async fn keys_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
) -> Response {
    keys_view(&state, &p, &s, StatusCode::OK, "").await
}

async fn keys_view(
    state: &ConsoleState,
    p: &Principal,
    s: &ConsoleSession,
    status: StatusCode,
    notice: &str,
) -> Response {
    let keys = match state.keys.list().await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "console cannot list keys");
            return page::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Keys",
                "the key store is unavailable",
            );
        }
    };
    let csrf = csrf_field(s);
    // Last use comes from the ledger; without it the column is empty, not an error.
    let last_used = crate::accounting::explore::last_used(&state.db)
        .await
        .map_err(|e| tracing::warn!(error = %e, "console cannot read key usage"))
        .unwrap_or_default();
    let rows: String = keys
        .iter()
        .map(|k| {
            let id = esc(&k.id);
            let action = match k.revoked_at {
                Some(r) => format!("revoked {}", format_rfc3339(r)),
                None => format!(
                    "<form class=inline method=post action=\"/console/keys/{id}/rotate\">{csrf}<button>Rotate</button></form> \
                     <form class=inline method=post action=\"/console/keys/{id}/revoke\">{csrf}<button>Revoke</button></form>"
                ),
            };
            format!(
                "<tr data-key=\"{id}\"><td><code>{id}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=last-used>{}</td><td>{action}</td></tr>",
                esc(&k.prefix),
                esc(&k.team),
                esc(k.app.as_deref().unwrap_or("")),
                esc(&k.tags.join(", ")),
                format_rfc3339(k.created_at),
                last_used.get(&k.id).map(|t| format_rfc3339(*t)).unwrap_or_default(),
            )
        })
        .collect();
    let body = format!(
        "{notice}<form method=post action=\"/console/keys\">{csrf}<label>Team <input name=team required></label> <label>App <input name=app></label> <label>Name <input name=name></label> <button id=create>Create key</button></form>\
         <h2>Keys</h2><table id=keys><tr><th>id</th><th>prefix</th><th>team</th><th>app</th><th>tags</th><th>created</th><th>last used</th><th></th></tr>{rows}</table>"
    );
    page::page(status, "Keys", &viewer(p, s), &body)
}

fn audit_event(p: &Principal, action: Action, target: &str) -> AuditEvent {
    AuditEvent::new(p.actor.clone(), action, target).source(p.source)
}

async fn create_key(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    let field = |name| crate::dashboard::form_value(&body, name).filter(|v| !v.trim().is_empty());
    let req = NewKey {
        team: field("team").unwrap_or_default(),
        app: field("app"),
        name: field("name"),
        ..NewKey::default()
    };
    match state.keys.create(req).await {
        Ok((info, plain)) => {
            if let Err(e) = state
                .audit
                .record(audit_event(&p, Action::KeyCreated, &info.id).after(&info))
                .await
            {
                tracing::error!(error = %e, "cannot write the audit trail");
            }
            let notice = format!(
                "<p class=notice>Created <code>{}</code> for team {}. The key is shown once: <code id=new-key>{}</code></p>",
                esc(&info.id),
                esc(&info.team),
                esc(&plain)
            );
            keys_view(&state, &p, &s, StatusCode::CREATED, &notice).await
        }
        Err(e) => {
            let notice = format!(
                "<p class=notice><span class=bad>{}</span></p>",
                esc(&e.to_string())
            );
            keys_view(&state, &p, &s, StatusCode::BAD_REQUEST, &notice).await
        }
    }
}

async fn revoke_key(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    match crate::admin::revoke_key_audited(&state.keys, &state.audit, &p, &id).await {
        Ok(info) => {
            let notice = format!(
                "<p class=notice id=revoked>Revoked <code>{}</code>.</p>",
                esc(&info.id)
            );
            keys_view(&state, &p, &s, StatusCode::OK, &notice).await
        }
        Err(e) => {
            let notice = format!(
                "<p class=notice><span class=bad>{}</span></p>",
                esc(&e.to_string())
            );
            keys_view(&state, &p, &s, StatusCode::NOT_FOUND, &notice).await
        }
    }
}

#[derive(serde::Deserialize)]
struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn audit_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    Query(q): Query<AuditQuery>,
) -> Response {
    let filter = match crate::admin::audit_filter(
        q.from.as_deref(),
        q.to.as_deref(),
        q.actor.clone(),
        q.action.clone(),
        None,
        200,
    ) {
        Ok(f) => f,
        Err(m) => return page::message(StatusCode::BAD_REQUEST, "Audit trail", &m),
    };
    let (entries, report) = match (
        state.audit.list(&filter, Order::NewestFirst).await,
        state.audit.verify().await,
    ) {
        (Ok(e), Ok(r)) => (e, r),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "console cannot read the audit trail");
            return page::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Audit trail",
                "the audit trail is unavailable",
            );
        }
    };
    let chain = match &report.broken {
        None => format!(
            "<p class=ok id=chain>Chain intact: {} entries, head {} <code>{}</code></p>",
            report.entries, report.head_seq, report.head_hash
        ),
        Some(b) => format!(
            "<p class=bad id=chain>Chain broken: {}</p>",
            esc(&b.to_string())
        ),
    };
    let json = |v: &Option<serde_json::Value>| {
        v.as_ref()
            .map(|v| format!("<code>{}</code>", esc(&v.to_string())))
            .unwrap_or_default()
    };
    let rows: String = entries
        .iter()
        .map(|e| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.seq,
                format_rfc3339(e.ts_ms),
                esc(&e.actor),
                esc(e.source.as_deref().unwrap_or("")),
                esc(&e.action),
                esc(&e.target),
                json(&e.before),
                json(&e.after),
            )
        })
        .collect();
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    let body = format!(
        "{chain}<form method=get action=\"/console/audit\"><label>Actor <input name=actor value=\"{}\"></label> <label>Action <input name=action value=\"{}\" placeholder=\"key, policy.reloaded\"></label> <label>From <input name=from value=\"{}\"></label> <label>To <input name=to value=\"{}\"></label> <button>Filter</button></form>\
         <table id=audit><tr><th>seq</th><th>time</th><th>actor</th><th>from</th><th>action</th><th>target</th><th>before</th><th>after</th></tr>{rows}</table>",
        value(&q.actor),
        value(&q.action),
        value(&q.from),
        value(&q.to),
    );
    page::page(StatusCode::OK, "Audit trail", &viewer(&p, &s), &body)
}

async fn rotate_key(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    match crate::admin::rotate_key_audited(&state.keys, &state.audit, &p, &id).await {
        Ok((info, plain)) => {
            let notice = format!(
                "<p class=notice>Rotated <code>{}</code>: the old key no longer works. The new key is shown once: <code id=rotated-key>{}</code></p>",
                esc(&info.id),
                esc(&plain)
            );
            keys_view(&state, &p, &s, StatusCode::OK, &notice).await
        }
        Err(e) => {
            let notice = format!(
                "<p class=notice><span class=bad>{}</span></p>",
                esc(&e.to_string())
            );
            keys_view(&state, &p, &s, StatusCode::NOT_FOUND, &notice).await
        }
    }
}
