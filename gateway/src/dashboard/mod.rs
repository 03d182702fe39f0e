//! The built-in cost and latency dashboard: `GET /dashboard`, server-rendered HTML with
//! SVG charts, read from the ledger.
//!
//! Access: when an admin token is configured, a request needs it as `Authorization: Bearer`
//! or the HttpOnly cookie set by the login form at `/dashboard/login`. The cookie holds a
//! hash of the token, not the token, so a leaked cookie does not open the admin API. With
//! no admin token configured the dashboard is open (the embedded single-user default).

pub mod data;
pub mod render;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::Method;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use sha2::{Digest, Sha256};

use crate::access::{ct_eq, Access, Peer, RouteTable};

pub use data::{load, load_between, DashboardData, Range};

use crate::store::Db;

/// The session cookie's name.
pub const COOKIE: &str = "switchyard_dashboard";

/// A team's budget limit in micro-dollars, when it has one.
pub type BudgetLookup = Arc<dyn Fn(&str) -> Option<i64> + Send + Sync>;
/// The live policy status as JSON (`PolicyHandle::status()` serialized).
pub type PolicyStatus = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the dashboard needs; built once and cloned into the router.
#[derive(Clone)]
pub struct DashboardState {
    /// The ledger's database; `None` shows an empty dashboard with a notice.
    pub db: Option<Db>,
    /// The admin token; `None` leaves the dashboard open.
    pub admin_token: Option<String>,
    pub policy_status: PolicyStatus,
    pub budget_for: BudgetLookup,
    /// Seconds between automatic reloads of the page.
    pub refresh_s: u32,
    /// Mark the cookie `Secure` (set when the gateway is served over HTTPS).
    pub secure_cookie: bool,
    /// The model catalog comparison (`None`: the section is left out).
    pub catalog: Option<CatalogSource>,
    /// Where sign-ins, failed sign-ins and sign-outs are recorded.
    pub audit: Option<crate::audit::AuditLog>,
}

/// Produces the catalog entries when the page is drawn.
pub type CatalogSource = Arc<
    dyn Fn() -> futures::future::BoxFuture<'static, Vec<crate::catalog::CatalogEntry>>
        + Send
        + Sync,
>;

/// Quality target the dashboard's calibration section recommends a threshold for.
const DASHBOARD_TARGET_QUALITY: f64 = 0.95;

impl DashboardState {
    /// A state with no budgets, an empty policy status, 30 s refresh.
    pub fn new(db: Option<Db>, admin_token: Option<String>) -> Self {
        DashboardState {
            db,
            admin_token: admin_token.filter(|t| !t.is_empty()),
            policy_status: Arc::new(|| serde_json::Value::Null),
            budget_for: Arc::new(|_| None),
            refresh_s: 30,
            secure_cookie: false,
            catalog: None,
            audit: None,
        }
    }
}

/// Errors of the dashboard handlers, rendered as short HTML pages.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot read the ledger: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("authentication required")]
    Unauthorized,
}

/// Adds `GET /dashboard` (`Access::Dashboard`) and the sign-in pages `GET|POST
/// /dashboard/login`, `GET /dashboard/logout` (`Access::Public`).
pub fn routes(table: RouteTable, state: DashboardState) -> RouteTable {
    let state = Arc::new(state);
    let s = || state.clone();
    table
        .route(
            Access::Dashboard,
            Method::GET,
            "/dashboard",
            get(dashboard).with_state(s()),
        )
        .route(
            Access::Dashboard,
            Method::GET,
            "/dashboard/",
            get(dashboard).with_state(s()),
        )
        .route(
            Access::Public,
            Method::GET,
            "/dashboard/login",
            get(login_form).with_state(s()),
        )
        .route(
            Access::Public,
            Method::POST,
            "/dashboard/login",
            post(login).with_state(s()),
        )
        .route(
            Access::Public,
            Method::GET,
            "/dashboard/logout",
            get(logout).with_state(s()),
        )
}

/// The dashboard served on its own (tests): its routes behind their guards.
pub fn dashboard_router(state: DashboardState) -> axum::Router {
    let creds = Arc::new(crate::access::Credentials::admin_only(
        state.admin_token.clone(),
    ));
    routes(RouteTable::new(creds), state).into_router()
}

fn session_value(token: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"switchyard-dashboard-session\0")
        .chain_update(token.as_bytes())
        .finalize();
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the request may see the dashboard: the admin token as a bearer token or the
/// session cookie derived from it; anyone in open mode (no admin token).
pub fn authorized(admin_token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = admin_token.filter(|t| !t.is_empty()) else {
        return true;
    };
    if crate::auth::bearer_token(headers).is_some_and(|b| ct_eq(b, token)) {
        return true;
    }
    cookie(headers, COOKIE).is_some_and(|c| ct_eq(c, &session_value(token)))
}

/// The 401 a browser gets for a dashboard page without a session: the sign-in form.
pub fn sign_in_required(query: Option<&str>) -> Response {
    let range = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("range="));
    let range = Range::parse(range);
    let mut r = html(
        StatusCode::UNAUTHORIZED,
        render::login_page(None, range.as_str()),
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"switchyard-dashboard\""),
    );
    r
}

pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(render::CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

#[derive(serde::Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

async fn dashboard(
    State(state): State<Arc<DashboardState>>,
    Query(q): Query<RangeQuery>,
) -> Response {
    let range = Range::parse(q.range.as_deref());
    let data = match &state.db {
        Some(db) => match load(db, range).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "dashboard cannot read the ledger");
                return html(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "<!doctype html><title>Switchyard dashboard</title><p>{}</p>",
                        render::esc(&DashboardError::from(e).to_string())
                    ),
                );
            }
        },
        None => DashboardData::default(),
    };
    let policy = (state.policy_status)();
    let budget_for = |team: &str| (state.budget_for)(team);
    let calibration = match &state.db {
        Some(db) => {
            let q = crate::shadow::report::CalibrationQuery {
                target_quality: DASHBOARD_TARGET_QUALITY,
                filter: crate::shadow::store::PairFilter {
                    from_ms: Some(data.from_ms),
                    to_ms: Some(data.to_ms),
                    ..Default::default()
                },
            };
            crate::shadow::report::calibration(db, &q)
                .await
                .map_err(|e| tracing::warn!(error = %e, "dashboard cannot read shadow pairs"))
                .ok()
        }
        None => None,
    };
    let catalog = match &state.catalog {
        Some(source) => source().await,
        None => Vec::new(),
    };
    let page = render::dashboard_page(
        &data,
        &render::PageExtras {
            range,
            refresh_s: state.refresh_s.max(5),
            signed_in: state.admin_token.is_some(),
            policy: &policy,
            budget_for: &budget_for,
            calibration: calibration.as_ref(),
            catalog: &catalog,
        },
    );
    html(StatusCode::OK, page)
}

async fn login_form(Query(q): Query<RangeQuery>) -> Response {
    let range = Range::parse(q.range.as_deref());
    html(StatusCode::OK, render::login_page(None, range.as_str()))
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space, `%XX` a byte).
pub(crate) fn form_value(body: &[u8], name: &str) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let raw = body
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Records a sign-in event; a failure to write is logged (the page still answers).
async fn audit_session(
    state: &DashboardState,
    actor: crate::audit::Actor,
    action: crate::audit::Action,
    peer: Peer,
) {
    if let Some(log) = &state.audit {
        let event = crate::audit::AuditEvent::new(actor, action, "dashboard").source(peer.0);
        if let Err(e) = log.record(event).await {
            tracing::error!(error = %e, "cannot write the audit trail");
        }
    }
}

async fn login(State(state): State<Arc<DashboardState>>, peer: Peer, body: Bytes) -> Response {
    // The form is tiny; anything larger is not ours.
    if body.len() > 8 * 1024 {
        return html(
            StatusCode::PAYLOAD_TOO_LARGE,
            render::login_page(Some("request too large"), "24h"),
        );
    }
    let range = Range::parse(form_value(&body, "range").as_deref());
    let Some(expected) = &state.admin_token else {
        return redirect(range, None, state.secure_cookie);
    };
    let given = form_value(&body, "token").unwrap_or_default();
    if !ct_eq(given.trim(), expected) {
        audit_session(
            &state,
            crate::audit::Actor::Anonymous,
            crate::audit::Action::SignInFailed,
            peer,
        )
        .await;
        return html(
            StatusCode::UNAUTHORIZED,
            render::login_page(
                Some(&DashboardError::Unauthorized.to_string()),
                range.as_str(),
            ),
        );
    }
    audit_session(
        &state,
        crate::audit::Actor::AdminToken,
        crate::audit::Action::SignIn,
        peer,
    )
    .await;
    redirect(range, Some(session_value(expected)), state.secure_cookie)
}

fn redirect(range: Range, session: Option<String>, secure: bool) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let location = format!("/dashboard?range={}", range.as_str());
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(s) = session {
        let secure = if secure { "; Secure" } else { "" };
        let cookie = format!(
            "{COOKIE}={s}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=43200{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    r
}

async fn logout(
    State(state): State<Arc<DashboardState>>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    // Only a real session's end is an event; a stray visit to the page is not.
    if let Some(token) = &state.admin_token {
        if cookie(&headers, COOKIE).is_some_and(|c| ct_eq(c, &session_value(token))) {
            audit_session(
                &state,
                crate::audit::Actor::AdminToken,
                crate::audit::Action::SignOut,
                peer,
            )
            .await;
        }
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_static("/dashboard/login"),
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "switchyard_dashboard=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append(*k, v);
            }
        }
        h
    }

    #[test]
    fn open_without_a_token_closed_with_one() {
        assert!(authorized(None, &HeaderMap::new()));
        let s = Some("s3cret");
        assert!(!authorized(s, &HeaderMap::new()));
        assert!(!authorized(
            s,
            &headers(&[("authorization", "Bearer nope")])
        ));
        assert!(authorized(
            s,
            &headers(&[("authorization", "Bearer s3cret")])
        ));
        // The cookie carries the session hash; the raw token there is not accepted.
        assert!(!authorized(
            s,
            &headers(&[("cookie", "switchyard_dashboard=s3cret")])
        ));
        let c = format!("a=b; switchyard_dashboard={}", session_value("s3cret"));
        assert!(authorized(s, &headers(&[("cookie", &c)])));
    }

    #[test]
    fn form_values_are_url_decoded() {
        assert_eq!(
            form_value(b"token=a%2Bb+c%3D&range=7d", "token").as_deref(),
            Some("a+b c=")
        );
        assert_eq!(form_value(b"range=7d", "token"), None);
        assert_eq!(form_value(b"token=%zz", "token"), None);
        assert_eq!(form_value(b"token=%4", "token"), None);
    }
}
