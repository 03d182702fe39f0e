//! The console's HTML: one layout, escaped text, no script, no external resources (the
//! dashboard's CSP applies: nothing loads from anywhere but the page itself).

use axum::http::StatusCode;
use axum::response::Response;

use crate::access::Principal;
use crate::auth::roles::{Role, RoleSet};
use crate::dashboard::render::esc;

const STYLE: &str = "body{font:15px/1.45 system-ui,sans-serif;margin:0;color:#1d2430;background:#f6f7f9}\
header{background:#1d2430;color:#fff;padding:.6rem 1.2rem;display:flex;gap:1.2rem;align-items:center}\
header a{color:#cfe3ff;text-decoration:none}header .who{margin-left:auto}\
main{padding:1.2rem;max-width:72rem}table{border-collapse:collapse;background:#fff;width:100%}\
th,td{border-bottom:1px solid #e3e6ea;padding:.35rem .5rem;text-align:left;font-size:13px;vertical-align:top}\
code{font-size:12px}.button,button{background:#2457d6;color:#fff;border:0;padding:.45rem .9rem;border-radius:4px;text-decoration:none;cursor:pointer}\
.notice{background:#fff4d6;border:1px solid #e8c96b;padding:.6rem .8rem;margin:.8rem 0}\
.bad{color:#b3261e;font-weight:600}.ok{color:#1e7b34;font-weight:600}form.inline{display:inline}mark{background:#ffe08a;padding:0 2px}pre{background:#fff;border:1px solid #e3e6ea;padding:.6rem;overflow:auto}\
#policy-diff .add{color:#1e7b34}#policy-diff .del{color:#b3261e}#policy-diff .file{font-weight:600}";

/// What the header shows about the signed-in user.
pub struct Viewer<'a> {
    pub principal: &'a Principal,
    /// The session's CSRF token (sign-out and every form); `None` without a session.
    pub csrf: Option<&'a str>,
}

fn layout(title: &str, viewer: Option<&Viewer<'_>>, body: &str) -> String {
    let nav = match viewer {
        Some(v) => {
            let role = v.principal.role;
            let mut links = vec![("/console", "Console"), ("/dashboard", "Dashboards")];
            if RoleSet::ADMIN.contains(role) {
                links.push(("/console/keys", "Keys"));
            }
            if RoleSet::FINANCE.contains(role) {
                links.push(("/console/teams", "Teams"));
            }
            if RoleSet::of(&[Role::Finance, Role::Security]).contains(role) {
                links.push(("/console/traffic", "Traffic"));
            }
            if RoleSet::SECURITY.contains(role) {
                links.push(("/console/policies", "Policies"));
                links.push(("/console/audit", "Audit trail"));
            }
            let links: String = links
                .iter()
                .map(|(href, text)| format!("<a href=\"{href}\">{text}</a>"))
                .collect();
            let signout = match v.csrf {
                Some(csrf) => format!(
                    "<form class=inline method=post action=\"/console/logout\"><input type=hidden name=csrf value=\"{}\"><button id=signout>Sign out</button></form>",
                    esc(csrf)
                ),
                None => String::new(),
            };
            format!(
                "{links}<span class=who id=who>{} · <b id=role>{}</b></span>{signout}",
                esc(&v.principal.actor.to_string()),
                role
            )
        }
        None => "<span>Switchyard console</span>".into(),
    };
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\"><title>{} · Switchyard</title><link rel=icon href=\"data:,\"><style>{STYLE}</style></head><body><header><b>Switchyard</b>{nav}</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// A page for a signed-in user.
pub fn page(status: StatusCode, title: &str, viewer: &Viewer<'_>, body: &str) -> Response {
    crate::dashboard::html(status, layout(title, Some(viewer), body))
}

/// A short message page (refused sign-ins, bad forms).
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<p class=notice id=message>{}</p><p><a class=button href=\"/console\">Back to the console</a></p>",
        esc(text)
    );
    crate::dashboard::html(status, layout(title, None, &body))
}

/// What a browser without a session gets on a console page: the way in, never data.
pub fn sign_in(sso: bool) -> Response {
    let body = if sso {
        "<p>Sign in with your organization's account.</p><p><a class=button id=sso href=\"/console/login\">Sign in with single sign-on</a></p>".to_string()
    } else {
        "<p class=notice>Single sign-on is not configured (the <code>sso:</code> section). Automation uses the admin API with a token; the dashboards have their own <a href=\"/dashboard/login\">sign-in</a>.</p>".to_string()
    };
    let mut r = crate::dashboard::html(StatusCode::UNAUTHORIZED, layout("Sign in", None, &body));
    r.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer realm=\"switchyard-console\""),
    );
    r
}

/// A signed-in user whose role may not see this page.
pub fn forbidden(role: Role, needs: RoleSet) -> Response {
    let body = format!(
        "<p class=notice id=forbidden>Your role, <b>{role}</b>, may not open this page: it needs one of {needs}. Ask an administrator if you need it.</p><p><a class=button href=\"/console\">Back to the console</a></p>"
    );
    crate::dashboard::html(StatusCode::FORBIDDEN, layout("Forbidden", None, &body))
}
