//! Route access classes. Every route the gateway serves is declared once, in
//! `server::app`, through [`RouteTable::route`] with exactly one [`Access`] class, and the
//! class's guard runs before the handler. There is no other way to mount a route, so a
//! route added later cannot be reachable without a class; `tests/access.rs` walks
//! [`RouteTable::specs`] and checks every route with and without its credential.
//!
//! | class | credential | without it |
//! |---|---|---|
//! | `Public` | none (liveness, readiness, the dashboard's sign-in page) | — |
//! | `Client` | a virtual key when keys are required (an admin token is set, or `auth.require_key`) | 401 in the client's dialect |
//! | `Admin` | the admin token, or a scoped admin token whose role the route admits, as `Authorization: Bearer` | 401 JSON; 403 for a role the route does not admit; "disabled" when the gateway has no admin token |
//! | `Dashboard` | the admin token, a scoped admin token of a role the route admits, or the dashboard session cookie; open in open mode | 401 sign-in page |
//! | `Metrics` | none by default (Prometheus), or the metrics token when `auth.metrics_token_env` names one | 401 text |
//!
//! Admin and dashboard routes also declare the [`RoleSet`] that may call them
//! ([`RouteTable::route_roles`]; `route` admits only `admin` on admin routes and every
//! role on dashboards). The configured admin token has the `admin` role; a scoped token
//! has the role it was created with. The guard hands admin handlers a [`Principal`] (who,
//! with which role, from where) for the audit trail.

use std::sync::Arc;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::Actor;
use crate::auth::admin_tokens::{looks_like_token, AdminTokenStore, TokenCheck};
use crate::auth::roles::{Role, RoleSet};
use crate::auth::{KeyInfo, KeyStore};
use crate::canonical::{Dialect, GatewayError};

/// Who may call a route. See the module table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    Client,
    Admin,
    Dashboard,
    Metrics,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Client => "client",
            Access::Admin => "admin",
            Access::Dashboard => "dashboard",
            Access::Metrics => "metrics",
        }
    }
}

/// One declared route: its class, the roles it admits, method and path (as axum
/// matches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub access: Access,
    /// Who among the administrative roles may call it (admin and dashboard routes).
    pub roles: RoleSet,
    pub method: Method,
    pub path: &'static str,
}

/// Who is calling an admin or dashboard route: set by the guard, read by handlers that
/// write the audit trail. A handler that extracts it cannot run unguarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub actor: Actor,
    pub role: Role,
    pub source: Option<SocketAddr>,
}

/// The console session a dashboard-class request came with (`None`: a bearer token or
/// the dashboard cookie). Forms check its CSRF token.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSession(pub Option<Arc<crate::oidc::Session>>);

/// The peer address of the connection, when the server records it (it does; a router
/// driven without a socket, as in unit tests, has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(peer(&parts.extensions)))
    }
}

fn peer(ext: &http::Extensions) -> Option<SocketAddr> {
    ext.get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .or_else(|| {
            ext.get::<ConnectInfo<crate::tls::TlsPeer>>()
                .map(|c| c.0 .0)
        })
}

/// The virtual key a client route was called with (`None` in open mode without a key).
/// Set by the client guard; a handler that extracts it cannot run unguarded (axum
/// answers 500 when the extension is missing, which fails closed).
#[derive(Debug, Clone)]
pub struct Identity(pub Option<Arc<KeyInfo>>);

/// What the guards check credentials against.
pub struct Credentials {
    /// `None` only for routers without client routes (the admin API in tests).
    pub keys: Option<KeyStore>,
    /// Every client request needs a virtual key.
    pub require_key: bool,
    pub admin_token: Option<String>,
    /// The environment variable the admin token is read from (named in the "disabled"
    /// message so the fix is obvious).
    pub admin_token_env: String,
    /// Scoped admin tokens (`None` for routers without a database).
    pub admin_tokens: Option<AdminTokenStore>,
    /// Console single sign-on and its sessions (`None`: no `sso:` section).
    pub sso: Option<Arc<crate::oidc::Sso>>,
    pub metrics_token: Option<String>,
    /// Called with the error of a model request the client guard refused, so that the
    /// refusal is in the ledger like every other answered request (set once the state
    /// that owns the ledger exists).
    pub on_refused_model_call: std::sync::OnceLock<RefusalHook>,
}

/// Records a refused model request.
pub type RefusalHook = Box<dyn Fn(Dialect, &GatewayError) + Send + Sync>;

impl Credentials {
    /// Credentials with only an admin token (and no key store): the admin API and the
    /// dashboard served on their own, as tests do.
    pub fn admin_only(admin_token: Option<String>) -> Self {
        Credentials {
            keys: None,
            require_key: admin_token.is_some(),
            admin_token: admin_token.filter(|t| !t.is_empty()),
            admin_token_env: "SWITCHYARD_ADMIN_TOKEN".into(),
            admin_tokens: None,
            sso: None,
            metrics_token: None,
            on_refused_model_call: std::sync::OnceLock::new(),
        }
    }

    /// Open mode: no admin token, no required key (announced at start-up).
    pub fn open_mode(&self) -> bool {
        !self.require_key && self.admin_token.is_none()
    }
}

/// Builds the router one declared route at a time.
pub struct RouteTable {
    creds: Arc<Credentials>,
    router: axum::Router,
    specs: Vec<RouteSpec>,
}

impl RouteTable {
    pub fn new(creds: Arc<Credentials>) -> Self {
        RouteTable {
            creds,
            router: axum::Router::new(),
            specs: Vec::new(),
        }
    }

    /// Mounts `handler` (a `MethodRouter` for exactly `method`, its state already given)
    /// at `path` behind the guard of `access`: on admin routes for the `admin` role only,
    /// on dashboards for every role.
    pub fn route(
        self,
        access: Access,
        method: Method,
        path: &'static str,
        handler: MethodRouter,
    ) -> Self {
        let roles = match access {
            Access::Admin => RoleSet::ADMIN,
            _ => RoleSet::ANY,
        };
        self.route_roles(access, roles, method, path, handler)
    }

    /// [`route`](Self::route) admitting the administrative `roles` (admin and dashboard
    /// routes; other classes ignore roles).
    pub fn route_roles(
        mut self,
        access: Access,
        roles: RoleSet,
        method: Method,
        path: &'static str,
        handler: MethodRouter,
    ) -> Self {
        let guarded = handler.route_layer(middleware::from_fn_with_state(
            (self.creds.clone(), access, roles),
            guard,
        ));
        self.router = self.router.route(path, guarded);
        self.specs.push(RouteSpec {
            access,
            roles,
            method,
            path,
        });
        self
    }

    /// Every declared route, in declaration order.
    pub fn specs(&self) -> &[RouteSpec] {
        &self.specs
    }

    pub fn into_router(self) -> axum::Router {
        self.router
    }
}

async fn guard(
    State((creds, access, roles)): State<(Arc<Credentials>, Access, RoleSet)>,
    mut request: Request,
    next: Next,
) -> Response {
    match access {
        Access::Public => next.run(request).await,
        Access::Client => {
            let dialect = client_dialect(request.uri().path(), request.headers());
            let auth = authenticate(&creds, request.headers());
            match tracing::Instrument::instrument(auth, crate::telemetry::spans::auth()).await {
                Ok(identity) => {
                    request.extensions_mut().insert(Identity(identity));
                    next.run(request).await
                }
                Err(err) => {
                    if is_model_call(request.uri().path()) {
                        if let Some(record) = creds.on_refused_model_call.get() {
                            record(dialect, &err);
                        }
                    }
                    crate::pipeline::error_response(dialect, &err)
                }
            }
        }
        Access::Admin => match admin_principal(&creds, request.headers(), roles).await {
            Ok((actor, role)) => {
                let source = peer(request.extensions());
                request.extensions_mut().insert(Principal {
                    actor,
                    role,
                    source,
                });
                next.run(request).await
            }
            Err(refusal) => {
                tracing::warn!(
                    path = request.uri().path(),
                    reason = refusal.kind(),
                    "admin request refused"
                );
                refusal.into_response()
            }
        },
        Access::Dashboard => {
            let session = creds
                .sso
                .as_ref()
                .and_then(|sso| sso.session(request.headers()));
            let who = match &session {
                Some(s) => Some((Actor::User(s.name.clone()), s.role)),
                None => dashboard_principal(&creds, request.headers()).await,
            };
            match who {
                None if request.uri().path().starts_with("/console") => {
                    crate::console::page::sign_in(creds.sso.is_some())
                }
                None => crate::dashboard::sign_in_required(request.uri().query()),
                Some((_, role)) if !roles.contains(role) => {
                    crate::console::page::forbidden(role, roles)
                }
                Some((actor, role)) => {
                    let source = peer(request.extensions());
                    let ext = request.extensions_mut();
                    ext.insert(Principal {
                        actor,
                        role,
                        source,
                    });
                    ext.insert(ConsoleSession(session));
                    next.run(request).await
                }
            }
        }
        Access::Metrics => match &creds.metrics_token {
            None => next.run(request).await,
            Some(token) => {
                if crate::auth::bearer_token(request.headers()).is_some_and(|t| ct_eq(t, token)) {
                    next.run(request).await
                } else {
                    let mut r = (
                        StatusCode::UNAUTHORIZED,
                        "metrics require the metrics bearer token\n",
                    )
                        .into_response();
                    r.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer realm=\"switchyard-metrics\""),
                    );
                    r
                }
            }
        },
    }
}

/// Who a dashboard-class request without a console session comes from: the admin token
/// (bearer or the dashboard cookie) is `admin`; a scoped token has its role; in open mode
/// (no admin token) anyone is a `viewer`.
async fn dashboard_principal(creds: &Credentials, headers: &HeaderMap) -> Option<(Actor, Role)> {
    if crate::dashboard::authorized(creds.admin_token.as_deref(), headers) {
        return Some(match creds.admin_token {
            Some(_) => (Actor::AdminToken, Role::Admin),
            None => (Actor::Anonymous, Role::Viewer),
        });
    }
    admin_principal(creds, headers, RoleSet::ANY).await.ok()
}

/// Anthropic's routes answer in Anthropic's error shape; the rest in OpenAI's unless the
/// client announced itself as an Anthropic SDK.
pub fn client_dialect(path: &str, headers: &HeaderMap) -> Dialect {
    if path.starts_with("/v1/messages") || headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else if path.starts_with("/v1/responses") {
        Dialect::Responses
    } else if path.starts_with("/v1beta/") || path.starts_with("/v1/models/") {
        Dialect::Gemini
    } else {
        Dialect::OpenAi
    }
}

fn is_model_call(path: &str) -> bool {
    matches!(
        path,
        "/v1/chat/completions" | "/chat/completions" | "/v1/messages" | "/v1/responses"
    ) || ((path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/"))
        && (path.ends_with(":generateContent") || path.ends_with(":streamGenerateContent")))
}

/// The virtual key of a client request: required unless the gateway is in open mode; a
/// presented key is always checked (a revoked key is refused even in open mode).
pub async fn authenticate(
    creds: &Credentials,
    headers: &HeaderMap,
) -> Result<Option<Arc<KeyInfo>>, GatewayError> {
    match crate::auth::key_from_headers(headers) {
        Some(plain) if crate::auth::looks_like_key(plain) => {
            let Some(keys) = &creds.keys else {
                return Err(GatewayError::Overloaded("no key store is configured".into()));
            };
            match keys.authenticate(plain).await {
                Ok(Some(info)) => Ok(Some(Arc::new(info))),
                Ok(None) => Err(GatewayError::Authentication(
                    "invalid or revoked virtual key".into(),
                )),
                Err(e) => {
                    tracing::error!(error = %e, "key store unavailable");
                    Err(GatewayError::Overloaded(
                        "cannot verify the virtual key right now".into(),
                    ))
                }
            }
        }
        _ if creds.require_key => Err(GatewayError::Authentication(
            "a virtual key (sk-sy-...) is required: send it as `Authorization: Bearer`, `x-api-key` or `x-goog-api-key`"
                .into(),
        )),
        _ => Ok(None),
    }
}

/// Why an admin request was refused; each says what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRefusal {
    /// The gateway started without an admin token: the admin API is off, not open.
    Disabled {
        env: String,
    },
    Missing,
    Wrong,
    /// A scoped token past its expiry.
    Expired,
    /// A valid token whose role the route does not admit.
    Forbidden {
        role: Role,
        needs: RoleSet,
    },
    /// The token store could not be read (fail closed, but say it is not the caller's
    /// fault).
    Unavailable,
}

impl AdminRefusal {
    pub fn message(&self) -> String {
        match self {
            AdminRefusal::Disabled { env } => format!(
                "admin API disabled: start the gateway with {env} set (the token is read at start-up)"
            ),
            AdminRefusal::Missing => {
                "admin token required: send it as `Authorization: Bearer <token>`".into()
            }
            AdminRefusal::Wrong => "wrong admin token".into(),
            AdminRefusal::Expired => {
                "admin token expired: create a new one (switchyard tokens create)".into()
            }
            AdminRefusal::Forbidden { role, needs } => {
                format!("the {role} role may not do this: it needs one of {needs}")
            }
            AdminRefusal::Unavailable => "cannot verify the admin token right now".into(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AdminRefusal::Disabled { .. } => "admin_disabled",
            AdminRefusal::Missing | AdminRefusal::Wrong | AdminRefusal::Expired => "unauthorized",
            AdminRefusal::Forbidden { .. } => "forbidden",
            AdminRefusal::Unavailable => "store_error",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            AdminRefusal::Forbidden { .. } => StatusCode::FORBIDDEN,
            AdminRefusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

impl IntoResponse for AdminRefusal {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut r = crate::admin::error(status, self.kind(), self.message());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
            );
        }
        r
    }
}

/// Who an admin request comes from and with which role, if that role is in `roles`: the
/// configured admin token (role `admin`) or a scoped admin token. The API is off without
/// a configured admin token, scoped tokens included, so that it is never open by accident.
pub async fn admin_principal(
    creds: &Credentials,
    headers: &HeaderMap,
    roles: RoleSet,
) -> Result<(Actor, Role), AdminRefusal> {
    let Some(token) = creds.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(AdminRefusal::Disabled {
            env: creds.admin_token_env.clone(),
        });
    };
    let given = crate::auth::bearer_token(headers).ok_or(AdminRefusal::Missing)?;
    let (actor, role) = if ct_eq(given, token) {
        (Actor::AdminToken, Role::Admin)
    } else {
        match (&creds.admin_tokens, looks_like_token(given)) {
            (Some(store), true) => match store.check(given).await {
                Ok(TokenCheck::Valid(t)) => (Actor::Token(t.id.clone()), t.role),
                Ok(TokenCheck::Expired) => return Err(AdminRefusal::Expired),
                Ok(TokenCheck::Unknown) => return Err(AdminRefusal::Wrong),
                Err(e) => {
                    tracing::error!(error = %e, "admin token store unavailable");
                    return Err(AdminRefusal::Unavailable);
                }
            },
            _ => return Err(AdminRefusal::Wrong),
        }
    };
    if roles.contains(role) {
        Ok((actor, role))
    } else {
        Err(AdminRefusal::Forbidden { role, needs: roles })
    }
}

/// Whether `headers` carry the admin token (constant time over SHA-256 digests, so
/// neither the token's content nor its length leaks through timing).
pub fn admin_check(creds: &Credentials, headers: &HeaderMap) -> Result<(), AdminRefusal> {
    let Some(token) = creds.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(AdminRefusal::Disabled {
            env: creds.admin_token_env.clone(),
        });
    };
    let given = crate::auth::bearer_token(headers).ok_or(AdminRefusal::Missing)?;
    if ct_eq(given, token) {
        Ok(())
    } else {
        Err(AdminRefusal::Wrong)
    }
}

/// Constant-time equality of two secrets, whatever their lengths.
pub fn ct_eq(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}
