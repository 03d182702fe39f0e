//! Console single sign-on: OpenID Connect authorization code flow with PKCE against any
//! standard provider (discovery from the issuer URL), ID-token validation by the
//! `openidconnect` crate (signature against the provider's JWKS, issuer, audience,
//! expiry, nonce), and the provider's group claim mapped to a [`Role`].
//!
//! `GET /console/login` sends the browser to the provider with a fresh `state`, nonce and
//! PKCE challenge; `state` is also set in a short-lived cookie, so a callback is accepted
//! only in the browser that started it (no login CSRF). `GET /console/callback` exchanges
//! the code, validates the ID token, maps the role and starts a session (`session.rs`).
//! `POST /console/logout` (CSRF-checked) ends it. Sign-ins, refused sign-ins (no mapped
//! role, a bad or replayed callback), role changes and sign-outs go to the audit trail.
//!
//! Cookies: the session cookie is `HttpOnly`, `SameSite=Lax` (Strict would drop it on the
//! redirect chain back from the provider, which starts on another site; Lax still keeps it
//! off cross-site POSTs), `Secure` when the gateway serves HTTPS, `Path=/`.

pub mod config;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::access::{Access, Peer, RouteTable};
use crate::audit::{Action, Actor, AuditEvent, AuditFilter, AuditLog, Order};
use crate::auth::roles::Role;

pub use config::SsoConfig;
pub use session::{Session, SessionStore};

/// The session cookie.
pub const SESSION_COOKIE: &str = "switchyard_session";
/// The cookie binding a sign-in in progress to the browser that started it.
const LOGIN_COOKIE: &str = "switchyard_login";

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("sso.issuer {0:?} is not a URL")]
    Issuer(String),
    #[error("sso.public_url does not make a valid callback URL: {0}")]
    Redirect(String),
    #[error("{0} (sso.client_secret_env) is not set")]
    NoSecret(String),
    #[error("cannot read the provider's discovery document at {issuer}: {message}")]
    Discovery { issuer: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The provider, the sessions, and where sign-ins are recorded. Built once at start-up.
pub struct Sso {
    client: Client,
    http: openidconnect::reqwest::Client,
    pub config: SsoConfig,
    pub sessions: Arc<SessionStore>,
    audit: Option<AuditLog>,
    secure_cookie: bool,
}

impl Sso {
    /// Reads the provider's discovery document and keys (a start-up error when the
    /// provider cannot be reached: a console nobody can sign in to should not start).
    pub async fn discover(
        config: &SsoConfig,
        audit: Option<AuditLog>,
        secure_cookie: bool,
    ) -> Result<Sso, SsoError> {
        let secret = std::env::var(&config.client_secret_env)
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| SsoError::NoSecret(config.client_secret_env.clone()))?;
        // No redirects: the discovery and token requests go where the issuer says (SSRF).
        let http = openidconnect::reqwest::ClientBuilder::new()
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SsoError::Http(e.to_string()))?;
        let issuer = IssuerUrl::new(config.issuer.clone())
            .map_err(|_| SsoError::Issuer(config.issuer.clone()))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &http)
            .await
            .map_err(|e| SsoError::Discovery {
                issuer: config.issuer.clone(),
                message: error_chain(&e),
            })?;
        let redirect = RedirectUrl::new(config.redirect_url())
            .map_err(|e| SsoError::Redirect(e.to_string()))?;
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(config.client_id.clone()),
            Some(ClientSecret::new(secret)),
        )
        .set_redirect_uri(redirect);
        Ok(Sso {
            client,
            http,
            config: config.clone(),
            sessions: Arc::new(SessionStore::new(
                Duration::from_secs(config.idle_timeout_s.max(1)),
                Duration::from_secs(config.absolute_timeout_s.max(1)),
            )),
            audit,
            secure_cookie,
        })
    }

    /// The live session of a request's cookie.
    pub fn session(&self, headers: &HeaderMap) -> Option<Arc<Session>> {
        cookie(headers, SESSION_COOKIE).and_then(|id| self.sessions.get(id))
    }

    async fn record(&self, event: AuditEvent) {
        if let Some(log) = &self.audit {
            if let Err(e) = log.record(event).await {
                tracing::error!(error = %e, "cannot write the audit trail");
            }
        }
    }

    fn cookie_header(&self, name: &str, value: &str, max_age_s: u64) -> Option<HeaderValue> {
        let secure = if self.secure_cookie { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{secure}"
        ))
        .ok()
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// A cookie's value from the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Adds `GET /console/login`, `GET /console/callback`, `POST /console/logout`
/// (`Access::Public`: they are how a session starts and ends).
pub fn routes(table: RouteTable, sso: Arc<Sso>) -> RouteTable {
    let s = || sso.clone();
    table
        .route(
            Access::Public,
            Method::GET,
            "/console/login",
            get(login).with_state(s()),
        )
        .route(
            Access::Public,
            Method::GET,
            "/console/callback",
            get(callback).with_state(s()),
        )
        .route(
            Access::Public,
            Method::POST,
            "/console/logout",
            post(logout).with_state(s()),
        )
}

fn see_other(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn login(State(sso): State<Arc<Sso>>) -> Response {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = sso
        .client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge);
    for scope in &sso.config.scopes {
        request = request.add_scope(Scope::new(scope.clone()));
    }
    let (url, state, nonce) = request.url();
    sso.sessions
        .put_pending(state.secret().clone(), verifier, nonce);
    let mut r = see_other(url.as_str());
    if let Some(c) = sso.cookie_header(LOGIN_COOKIE, state.secret(), session::PENDING_TTL.as_secs())
    {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[derive(serde::Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// Why a callback did not sign anyone in.
#[derive(Debug, thiserror::Error)]
enum CallbackError {
    #[error("the identity provider refused the sign-in: {0}")]
    Provider(String),
    #[error("this sign-in was not started in this browser, or has expired: start again")]
    State,
    #[error("the identity provider's answer could not be verified: {0}")]
    Token(String),
    #[error("your account ({0}) has no role in this gateway: ask an administrator to map one of your groups")]
    NoRole(String),
    #[error("cannot start a session: {0}")]
    Session(String),
}

async fn callback(
    State(sso): State<Arc<Sso>>,
    peer: Peer,
    headers: HeaderMap,
    Query(q): Query<CallbackParams>,
) -> Response {
    match finish(&sso, &headers, q).await {
        Ok((cookie_value, session)) => {
            let previous = previous_role(&sso, &session.name).await;
            let actor = Actor::User(session.name.clone());
            sso.record(
                AuditEvent::new(actor.clone(), Action::SignIn, "console")
                    .source(peer.0)
                    .after(serde_json::json!({"role": session.role, "subject": session.subject})),
            )
            .await;
            if let Some(before) = previous.filter(|r| *r != session.role) {
                sso.record(
                    AuditEvent::new(actor, Action::RoleChanged, &session.name)
                        .source(peer.0)
                        .before(serde_json::json!({"role": before}))
                        .after(serde_json::json!({"role": session.role})),
                )
                .await;
            }
            let mut r = see_other("/console");
            let h = r.headers_mut();
            if let Some(c) =
                sso.cookie_header(SESSION_COOKIE, &cookie_value, sso.config.absolute_timeout_s)
            {
                h.append(header::SET_COOKIE, c);
            }
            if let Some(c) = sso.cookie_header(LOGIN_COOKIE, "", 0) {
                h.append(header::SET_COOKIE, c);
            }
            r
        }
        Err((who, e)) => {
            tracing::warn!(error = %e, "console sign-in refused");
            sso.record(
                AuditEvent::new(
                    who.map(Actor::User).unwrap_or(Actor::Anonymous),
                    Action::SignInFailed,
                    "console",
                )
                .source(peer.0)
                .after(serde_json::json!({"reason": e.to_string()})),
            )
            .await;
            let status = match e {
                CallbackError::NoRole(_) => StatusCode::FORBIDDEN,
                CallbackError::Session(_) => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            };
            crate::console::page::message(status, "Sign-in refused", &e.to_string())
        }
    }
}

/// The role this user had at their last sign-in, to record a change.
async fn previous_role(sso: &Sso, name: &str) -> Option<Role> {
    let log = sso.audit.as_ref()?;
    let filter = AuditFilter {
        actor: Some(Actor::User(name.to_string()).to_string()),
        action: Some(Action::SignIn.as_str().to_string()),
        limit: 2,
        ..AuditFilter::default()
    };
    // The newest is the sign-in just recorded; the one before it holds the old role.
    let entries = log.list(&filter, Order::NewestFirst).await.ok()?;
    let before = entries.get(1)?.after.as_ref()?.get("role")?.clone();
    serde_json::from_value(before).ok()
}

/// Checks the callback and starts the session; on failure, who it was (when known).
async fn finish(
    sso: &Sso,
    headers: &HeaderMap,
    q: CallbackParams,
) -> Result<(String, Arc<Session>), (Option<String>, CallbackError)> {
    if let Some(error) = q.error {
        let text = match q.error_description {
            Some(d) => format!("{error}: {d}"),
            None => error,
        };
        return Err((
            None,
            CallbackError::Provider(text.chars().take(300).collect()),
        ));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Err((None, CallbackError::State));
    };
    // The state must be the one this browser was given, and not used before.
    if !cookie(headers, LOGIN_COOKIE).is_some_and(|c| crate::access::ct_eq(c, &state)) {
        return Err((None, CallbackError::State));
    }
    let pending = sso
        .sessions
        .take_pending(&state)
        .ok_or((None, CallbackError::State))?;
    let token = |e: String| (None, CallbackError::Token(e));
    let response = sso
        .client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| token(e.to_string()))?
        .set_pkce_verifier(pending.verifier)
        .request_async(&sso.http)
        .await
        .map_err(|e| token(error_chain(&e)))?;
    let id_token = response
        .id_token()
        .ok_or_else(|| token("no ID token in the token response".into()))?;
    let claims = id_token
        .claims(&sso.client.id_token_verifier(), &pending.nonce)
        .map_err(|e| token(e.to_string()))?;
    let subject = claims.subject().as_str().to_string();
    let name = claims
        .email()
        .map(|e| e.as_str().to_string())
        .unwrap_or_else(|| subject.clone());
    // The signature, issuer, audience, expiry and nonce are verified above; the group
    // claim is read from the same, verified, token.
    let groups = claim_strings(&id_token.to_string(), &sso.config.role_claim);
    let Some(role) = sso.config.role_for(&groups) else {
        return Err((Some(name.clone()), CallbackError::NoRole(name)));
    };
    sso.sessions
        .create(subject, name.clone(), role)
        .map_err(|e| (Some(name), CallbackError::Session(e.to_string())))
}

/// A claim of a JWT's payload as strings (a string, or a list of strings).
fn claim_strings(jwt: &str, claim: &str) -> Vec<String> {
    let Some(payload) = jwt.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Vec::new();
    };
    match v.get(claim) {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

async fn logout(
    State(sso): State<Arc<Sso>>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(id) = cookie(&headers, SESSION_COOKIE) else {
        return see_other("/console");
    };
    let Some(session) = sso.sessions.get(id) else {
        return see_other("/console");
    };
    let given = crate::dashboard::form_value(&body, "csrf").unwrap_or_default();
    if !session.csrf_ok(&given) {
        return crate::console::page::message(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "the form's CSRF token does not match this session: reload the page and try again",
        );
    }
    sso.sessions.end(id);
    sso.record(
        AuditEvent::new(
            Actor::User(session.name.clone()),
            Action::SignOut,
            "console",
        )
        .source(peer.0),
    )
    .await;
    let mut r = see_other("/console");
    if let Some(c) = sso.cookie_header(SESSION_COOKIE, "", 0) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_claims_read_as_string_or_list() {
        let enc = |v: serde_json::Value| {
            format!(
                "h.{}.s",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            )
        };
        assert_eq!(
            claim_strings(&enc(serde_json::json!({"groups": ["a", "b", 3]})), "groups"),
            ["a", "b"]
        );
        assert_eq!(
            claim_strings(&enc(serde_json::json!({"role": "x"})), "role"),
            ["x"]
        );
        assert!(claim_strings(&enc(serde_json::json!({})), "groups").is_empty());
        assert!(claim_strings("garbage", "groups").is_empty());
    }
}
