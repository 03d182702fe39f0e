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
//! | `Admin` | the admin token as `Authorization: Bearer` | 401 JSON; "disabled" when the gateway has no admin token |
//! | `Dashboard` | the admin token, or the dashboard session cookie derived from it; open in open mode | 401 sign-in page |
//! | `Metrics` | none by default (Prometheus), or the metrics token when `auth.metrics_token_env` names one | 401 text |

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

/// One declared route: its class, method and path (as axum matches it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub access: Access,
    pub method: Method,
    pub path: &'static str,
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
    /// at `path` behind the guard of `access`.
    pub fn route(
        mut self,
        access: Access,
        method: Method,
        path: &'static str,
        handler: MethodRouter,
    ) -> Self {
        let guarded = handler.route_layer(middleware::from_fn_with_state(
            (self.creds.clone(), access),
            guard,
        ));
        self.router = self.router.route(path, guarded);
        self.specs.push(RouteSpec {
            access,
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
    State((creds, access)): State<(Arc<Credentials>, Access)>,
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
        Access::Admin => match admin_check(&creds, request.headers()) {
            Ok(()) => next.run(request).await,
            Err(refusal) => refusal.into_response(),
        },
        Access::Dashboard => {
            if crate::dashboard::authorized(creds.admin_token.as_deref(), request.headers()) {
                next.run(request).await
            } else {
                crate::dashboard::sign_in_required(request.uri().query())
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
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminRefusal::Disabled { .. } => "admin_disabled",
            AdminRefusal::Missing | AdminRefusal::Wrong => "unauthorized",
        }
    }
}

impl IntoResponse for AdminRefusal {
    fn into_response(self) -> Response {
        let mut r = crate::admin::error(StatusCode::UNAUTHORIZED, self.kind(), self.message());
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
        );
        r
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
