//! OAuth 2.0 access tokens for backends that take a bearer token rather than a key, from
//! one of two grants:
//! - a Google Cloud service account (Vertex AI): the JWT bearer grant (RFC 7523) as
//!   Google's client libraries do it, a JWT signed with the account's key (RS256,
//!   `jsonwebtoken`) exchanged at the account's `token_uri`;
//! - an Entra ID application (Azure OpenAI): the client credentials grant (RFC 6749
//!   §4.4) at the tenant's token endpoint.
//!
//! Either way the token is cached and renewed five minutes before it expires, one
//! exchange at a time: callers that find the token stale wait for the renewal already
//! under way. A refused exchange is the gateway's problem, not the client's: a 502 that
//! names the identity and the identity provider's reason.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::canonical::GatewayError;
use crate::config::Secret;
use crate::dialects::json::{now_unix, upstream_error_message};

/// What a Google access token may do: Vertex AI accepts the Cloud Platform scope.
const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google caps an assertion's lifetime at one hour.
const ASSERTION_LIFETIME_S: u64 = 3600;
/// A token this close to expiry is renewed before use.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A service-account key file, as the Cloud console downloads it.
#[derive(Clone, Deserialize)]
pub struct ServiceAccount {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub client_email: String,
    private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    #[serde(default = "default_token_uri")]
    pub token_uri: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

fn default_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

// The key never reaches logs, `check-config` or a panic message.
impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("token_uri", &self.token_uri)
            .field("project_id", &self.project_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccount {
    pub fn from_json(text: &str) -> Result<ServiceAccount, String> {
        let account: ServiceAccount = serde_json::from_str(text)
            .map_err(|e| format!("not a service-account key file: {e}"))?;
        match account.kind.as_deref() {
            None | Some("service_account") => Ok(account),
            Some(other) => Err(format!(
                "credentials of type `{other}` are not supported; use a service-account key (type service_account)"
            )),
        }
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

struct Cached {
    token: String,
    renew_at: Instant,
}

/// How a token is obtained.
enum Grant {
    ServiceAccount {
        account: ServiceAccount,
        key: EncodingKey,
    },
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    },
}

/// Access tokens for one identity.
pub struct TokenSource {
    grant: Grant,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    /// Fails at start-up on a key that does not parse, not at the first request.
    pub fn service_account(account: ServiceAccount) -> Result<TokenSource, String> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|e| {
            format!(
                "the private key of {} is not an RSA PEM key: {e}",
                account.client_email
            )
        })?;
        Ok(Self::with(Grant::ServiceAccount { account, key }))
    }

    /// An Entra ID application's client credentials, for `scope` (`…/.default`).
    pub fn client_credentials(
        token_url: String,
        client_id: String,
        client_secret: Secret,
        scope: String,
    ) -> TokenSource {
        Self::with(Grant::ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scope,
        })
    }

    fn with(grant: Grant) -> TokenSource {
        TokenSource {
            grant,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Who asks, for error messages.
    fn identity(&self) -> String {
        match &self.grant {
            Grant::ServiceAccount { account, .. } => {
                format!("the service account {}", account.client_email)
            }
            Grant::ClientCredentials { client_id, .. } => {
                format!("the Entra application {client_id}")
            }
        }
    }

    fn token_url(&self) -> &str {
        match &self.grant {
            Grant::ServiceAccount { account, .. } => &account.token_uri,
            Grant::ClientCredentials { token_url, .. } => token_url,
        }
    }

    /// The token request's form fields.
    fn form(&self) -> Result<Vec<(&'static str, String)>, GatewayError> {
        Ok(match &self.grant {
            Grant::ServiceAccount { account, key } => {
                let iat = now_unix();
                let claims = Claims {
                    iss: &account.client_email,
                    scope: GOOGLE_SCOPE,
                    aud: &account.token_uri,
                    iat,
                    exp: iat + ASSERTION_LIFETIME_S,
                };
                let mut header = Header::new(Algorithm::RS256);
                header.kid = account.private_key_id.clone();
                let assertion = jsonwebtoken::encode(&header, &claims, key).map_err(|e| {
                    GatewayError::Internal(format!("cannot sign the token request: {e}"))
                })?;
                vec![("grant_type", JWT_BEARER.into()), ("assertion", assertion)]
            }
            Grant::ClientCredentials {
                client_id,
                client_secret,
                scope,
                ..
            } => vec![
                ("grant_type", "client_credentials".into()),
                ("client_id", client_id.clone()),
                ("client_secret", client_secret.expose().to_owned()),
                ("scope", scope.clone()),
            ],
        })
    }

    /// `Authorization: Bearer TOKEN`, marked sensitive, with a valid token.
    pub async fn authorization(
        &self,
        provider: &str,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<http::HeaderValue, GatewayError> {
        let token = self.token(provider, client, timeout).await?;
        let mut value = http::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            GatewayError::BadGateway {
                provider: provider.to_owned(),
                message: "the token endpoint returned an unusable token".into(),
            }
        })?;
        value.set_sensitive(true);
        Ok(value)
    }

    /// A valid access token, exchanged when the cached one is missing or stale.
    async fn token(
        &self,
        provider: &str,
        client: &reqwest::Client,
        timeout: Duration,
    ) -> Result<String, GatewayError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if Instant::now() < c.renew_at {
                return Ok(c.token.clone());
            }
        }
        let started = Instant::now();
        let form = self.form()?;
        let bad_gateway = |message: String| GatewayError::BadGateway {
            provider: provider.to_owned(),
            message,
        };
        let response = client
            .post(self.token_url())
            .form(&form)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| bad_gateway(format!("cannot reach the token endpoint: {e}")))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| bad_gateway(format!("token endpoint: {e}")))?;
        if status != 200 {
            return Err(bad_gateway(format!(
                "the identity provider refused {} a token (HTTP {status}): {}",
                self.identity(),
                token_error(status, &body)
            )));
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| bad_gateway(format!("unreadable token response: {e}")))?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(ASSERTION_LIFETIME_S));
        *cached = Some(Cached {
            token: t.access_token.clone(),
            renew_at: started + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(t.access_token)
    }
}

/// OAuth errors are `{"error": CODE, "error_description": TEXT}` (RFC 6749 §5.2).
fn token_error(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct OAuthError {
        error: String,
        #[serde(default)]
        error_description: Option<String>,
    }
    match serde_json::from_slice::<OAuthError>(body) {
        Ok(e) => match e.error_description {
            Some(d) => format!("{}: {d}", e.error),
            None => e.error,
        },
        Err(_) => upstream_error_message(status, body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files_are_checked_and_never_shown() {
        let json = r#"{"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
            "project_id": "p"}"#;
        let account = ServiceAccount::from_json(json).expect("parses");
        assert_eq!(account.token_uri, "https://oauth2.googleapis.com/token");
        assert!(!format!("{account:?}").contains("not a key"));
        let err = TokenSource::service_account(account)
            .err()
            .expect("a bad key is refused");
        assert!(err.contains("not an RSA PEM key"), "{err}");
        let user = r#"{"type": "authorized_user", "client_email": "x", "private_key": "y"}"#;
        assert!(ServiceAccount::from_json(user)
            .unwrap_err()
            .contains("authorized_user"));
        assert!(ServiceAccount::from_json("{}").is_err());
    }
}
