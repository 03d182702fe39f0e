//! Google Cloud service-account authorization (the OAuth 2.0 JWT bearer grant, RFC 7523,
//! as Google's client libraries do it): a JWT signed with the account's key (RS256,
//! `jsonwebtoken`) is exchanged at the account's `token_uri` for an access token, which is
//! cached and renewed five minutes before it expires. One exchange at a time: callers
//! that find the token stale wait for the renewal already under way.

use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::canonical::GatewayError;
use crate::dialects::json::{now_unix, upstream_error_message};

/// What an access token may do: Vertex AI accepts the Cloud Platform scope.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
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

/// Access tokens for one service account.
pub struct TokenSource {
    account: ServiceAccount,
    key: EncodingKey,
    cached: tokio::sync::Mutex<Option<Cached>>,
}

impl TokenSource {
    /// Fails at start-up on a key that does not parse, not at the first request.
    pub fn new(account: ServiceAccount) -> Result<TokenSource, String> {
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|e| {
            format!(
                "the private key of {} is not an RSA PEM key: {e}",
                account.client_email
            )
        })?;
        Ok(TokenSource {
            account,
            key,
            cached: tokio::sync::Mutex::new(None),
        })
    }

    fn assertion(&self) -> Result<String, GatewayError> {
        let iat = now_unix();
        let claims = Claims {
            iss: &self.account.client_email,
            scope: SCOPE,
            aud: &self.account.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME_S,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.account.private_key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| GatewayError::Internal(format!("cannot sign the token request: {e}")))
    }

    /// A valid access token, exchanged when the cached one is missing or stale.
    pub async fn token(
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
        let assertion = self.assertion()?;
        let response = client
            .post(&self.account.token_uri)
            .form(&[
                ("grant_type", GRANT_TYPE),
                ("assertion", assertion.as_str()),
            ])
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| GatewayError::BadGateway {
                provider: provider.to_owned(),
                message: format!("cannot reach the token endpoint: {e}"),
            })?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| GatewayError::BadGateway {
                provider: provider.to_owned(),
                message: format!("token endpoint: {e}"),
            })?;
        if status != 200 {
            // Not the client's fault whatever the status: a bad gateway, with Google's words.
            return Err(GatewayError::BadGateway {
                provider: provider.to_owned(),
                message: format!(
                    "Google refused the service account {} a token (HTTP {status}): {}",
                    self.account.client_email,
                    upstream_error_message(status, &body)
                ),
            });
        }
        let t: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| GatewayError::BadGateway {
                provider: provider.to_owned(),
                message: format!("unreadable token response: {e}"),
            })?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(ASSERTION_LIFETIME_S));
        *cached = Some(Cached {
            token: t.access_token.clone(),
            renew_at: started + lifetime.saturating_sub(REFRESH_MARGIN),
        });
        Ok(t.access_token)
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
        let err = TokenSource::new(account)
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
