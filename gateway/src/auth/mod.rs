//! Virtual keys: `sk-sy-` followed by 64 hex digits (256 random bits from the OS), owned by
//! a team and optionally a user, an app and tags.
//!
//! Only the SHA-256 of a key is stored. A slow password hash (bcrypt, argon2) exists to
//! make guessing low-entropy human passwords expensive; guessing a 256-bit random key is
//! infeasible at any hash speed, so a fast hash loses nothing and lets every request be
//! checked with one indexed lookup. The plain key is returned once, at creation/rotation.
//!
//! Lookups go through an in-memory cache (moka) with a short TTL in front of the database,
//! so the request path normally does no I/O; a miss waits on the database for at most
//! [`DB_TIMEOUT`]. A revocation or rotation is immediate on the replica that made it and
//! reaches other replicas when their cached entry expires, i.e. within `cache_ttl`.

pub mod admin_tokens;
pub mod roles;

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde::{Deserialize, Serialize, Serializer};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::store::time::{format_rfc3339, now_ms};
use crate::store::{with_pool, Db, StoreError};

pub const KEY_PREFIX: &str = "sk-sy-";
const KEY_HEX_LEN: usize = 64;
/// How long a cache miss may wait on the database before the request is refused.
pub const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// Bounds the cache, negative entries (unknown keys) included, against key-spraying.
const CACHE_CAPACITY: u64 = 100_000;
const MAX_FIELD: usize = 256;
const MAX_TAGS: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] Arc<StoreError>),
    #[error("no active key with id {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot read random bytes from the OS: {0}")]
    Random(String),
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        AuthError::Store(Arc::new(e))
    }
}

impl From<sqlx::Error> for AuthError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// The `auth:` section of the gateway config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Require a virtual key on `/v1/*`.
    pub require_key: bool,
    /// How long a key lookup (positive or negative) is cached; the bound on how long a
    /// revoked key keeps working on another replica.
    pub cache_ttl_ms: u64,
    /// Environment variable holding the admin bearer token; unset disables `/admin/*`.
    pub admin_token_env: Option<String>,
    /// Environment variable holding a bearer token for `GET /metrics`. Unset (the
    /// default), `/metrics` is open so that Prometheus can scrape it without a secret;
    /// see docs/observability.md for what the metrics reveal.
    pub metrics_token_env: Option<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            require_key: false,
            cache_ttl_ms: 5000,
            admin_token_env: Some("SWITCHYARD_ADMIN_TOKEN".into()),
            metrics_token_env: None,
        }
    }
}

impl AuthConfig {
    pub fn cache_ttl(&self) -> Duration {
        Duration::from_millis(self.cache_ttl_ms)
    }

    /// The admin token from the environment, if configured and non-empty.
    pub fn admin_token(&self) -> Option<String> {
        let var = self.admin_token_env.as_deref()?;
        std::env::var(var).ok().filter(|t| !t.trim().is_empty())
    }

    /// The metrics bearer token from the environment, if configured and non-empty.
    pub fn metrics_token(&self) -> Option<String> {
        let var = self.metrics_token_env.as_deref()?;
        std::env::var(var).ok().filter(|t| !t.trim().is_empty())
    }
}

fn ser_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

fn ser_opt_ms<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match ms {
        Some(m) => s.serialize_str(&format_rfc3339(*m)),
        None => s.serialize_none(),
    }
}

/// What is known about a key; safe to log and return (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// Public id, `key_` + 16 hex digits; stays the same across rotations.
    pub id: String,
    pub team: String,
    pub user: Option<String>,
    pub app: Option<String>,
    pub tags: Vec<String>,
    pub name: Option<String>,
    /// Unix milliseconds (RFC 3339 in JSON).
    #[serde(serialize_with = "ser_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser_opt_ms")]
    pub revoked_at: Option<i64>,
    /// The first characters of the current key (`sk-sy-1a2b3c`), to tell keys apart.
    pub prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub team: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub app: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
}

impl NewKey {
    fn validate(&self) -> Result<(), AuthError> {
        let field = |what: &str, v: &str| {
            if v.trim().is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
                Err(AuthError::Invalid(format!(
                    "{what} must be 1..={MAX_FIELD} bytes without control characters"
                )))
            } else {
                Ok(())
            }
        };
        field("team", &self.team)?;
        for (what, v) in [
            ("user", &self.user),
            ("app", &self.app),
            ("name", &self.name),
        ] {
            if let Some(v) = v {
                field(what, v)?;
            }
        }
        if self.tags.len() > MAX_TAGS {
            return Err(AuthError::Invalid(format!("at most {MAX_TAGS} tags")));
        }
        for t in &self.tags {
            field("tag", t)?;
            if t.contains(',') {
                return Err(AuthError::Invalid("tags cannot contain ','".into()));
            }
        }
        Ok(())
    }
}

pub(crate) fn random_hex(bytes: usize) -> Result<String, AuthError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex(&buf))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The stored form of a key: hex SHA-256 of the whole key text.
pub fn hash_key(plain: &str) -> String {
    hex(&Sha256::digest(plain.as_bytes()))
}

/// Whether `s` has the shape of a Switchyard key (no database needed to say no).
pub fn looks_like_key(s: &str) -> bool {
    s.strip_prefix(KEY_PREFIX).is_some_and(|h| {
        h.len() == KEY_HEX_LEN && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The client's key from `Authorization: Bearer ...` (OpenAI SDKs), `x-api-key`
/// (Anthropic SDKs) or `x-goog-api-key` (Google Gen AI SDKs).
pub fn key_from_headers(headers: &http::HeaderMap) -> Option<&str> {
    bearer_token(headers).or_else(|| {
        ["x-api-key", "x-goog-api-key"].iter().find_map(|name| {
            headers
                .get(*name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
    })
}

/// The token of `Authorization: Bearer <token>`, if present.
pub fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn new_plain_key() -> Result<String, AuthError> {
    Ok(format!("{KEY_PREFIX}{}", random_hex(32)?))
}

fn display_prefix(plain: &str) -> String {
    plain.chars().take(KEY_PREFIX.len() + 6).collect()
}

const SELECT_KEY: &str =
    "SELECT id, team, user_id, app, tags, name, created_ms, revoked_ms, prefix FROM api_keys";

fn key_from_row<R>(row: &R) -> Result<KeyInfo, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let tags: String = row.try_get("tags")?;
    Ok(KeyInfo {
        id: row.try_get("id")?,
        team: row.try_get("team")?,
        user: row.try_get("user_id")?,
        app: row.try_get("app")?,
        tags: tags
            .split(',')
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect(),
        name: row.try_get("name")?,
        created_at: row.try_get("created_ms")?,
        revoked_at: row.try_get("revoked_ms")?,
        prefix: row.try_get("prefix")?,
    })
}

/// Key management and authentication. Cheap to clone (shared pool and cache).
#[derive(Clone)]
pub struct KeyStore {
    db: Db,
    /// hash → the active key with that hash, or `None` (unknown or revoked).
    cache: Cache<String, Option<Arc<KeyInfo>>>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("engine", &self.db.engine())
            .finish()
    }
}

impl KeyStore {
    pub fn new(db: Db, cache_ttl: Duration) -> Self {
        KeyStore {
            db,
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(cache_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Creates a key; returns its info and the plain key, which is not kept anywhere.
    pub async fn create(&self, req: NewKey) -> Result<(KeyInfo, String), AuthError> {
        req.validate()?;
        let plain = new_plain_key()?;
        let info = KeyInfo {
            id: format!("key_{}", random_hex(8)?),
            team: req.team.trim().to_string(),
            user: req.user,
            app: req.app,
            tags: req.tags,
            name: req.name,
            created_at: now_ms(),
            revoked_at: None,
            prefix: display_prefix(&plain),
        };
        let hash = hash_key(&plain);
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO api_keys (id, hash, prefix, team, user_id, app, tags, name, created_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&info.id)
            .bind(&hash)
            .bind(&info.prefix)
            .bind(&info.team)
            .bind(&info.user)
            .bind(&info.app)
            .bind(info.tags.join(","))
            .bind(&info.name)
            .bind(info.created_at)
            .execute(pool)
            .await?;
        });
        // A lookup of this exact key cannot have been cached as unknown before, but one
        // replica's cache is all this sets; other replicas read it from the database.
        self.cache.insert(hash, Some(Arc::new(info.clone()))).await;
        Ok((info, plain))
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, AuthError> {
        let sql = format!("{SELECT_KEY} ORDER BY created_ms, id");
        let keys = with_pool!(&self.db, |pool| {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter()
                .map(key_from_row)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(keys)
    }

    pub async fn get(&self, id: &str) -> Result<Option<KeyInfo>, AuthError> {
        let sql = format!("{SELECT_KEY} WHERE id = $1");
        let key = with_pool!(&self.db, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(key_from_row(&row)?),
                None => None,
            }
        });
        Ok(key)
    }

    async fn hash_of_active(&self, id: &str) -> Result<String, AuthError> {
        let hash: Option<String> = with_pool!(&self.db, |pool| {
            sqlx::query_scalar("SELECT hash FROM api_keys WHERE id = $1 AND revoked_ms IS NULL")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        hash.ok_or_else(|| AuthError::NotFound(id.chars().take(64).collect()))
    }

    /// Revokes a key: refused at once by this process, by other replicas within the cache
    /// TTL. Revoking an unknown or already revoked key is `NotFound`.
    pub async fn revoke(&self, id: &str) -> Result<KeyInfo, AuthError> {
        let hash = self.hash_of_active(id).await?;
        let now = now_ms();
        let n = with_pool!(&self.db, |pool| {
            sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
                .bind(now)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.cache.invalidate(&hash).await;
        if n == 0 {
            return Err(AuthError::NotFound(id.chars().take(64).collect()));
        }
        self.get(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(id.chars().take(64).collect()))
    }

    /// Replaces the secret of an active key, keeping its id, team and attributes (budgets
    /// and reports follow the id). The old secret stops working like a revocation does.
    pub async fn rotate(&self, id: &str) -> Result<(KeyInfo, String), AuthError> {
        let old_hash = self.hash_of_active(id).await?;
        let plain = new_plain_key()?;
        let hash = hash_key(&plain);
        let prefix = display_prefix(&plain);
        let n = with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE api_keys SET hash = $1, prefix = $2, rotated_ms = $3 \
                 WHERE id = $4 AND hash = $5 AND revoked_ms IS NULL",
            )
            .bind(&hash)
            .bind(&prefix)
            .bind(now_ms())
            .bind(id)
            .bind(&old_hash)
            .execute(pool)
            .await?
            .rows_affected()
        });
        self.cache.invalidate(&old_hash).await;
        if n == 0 {
            // Revoked or rotated concurrently.
            return Err(AuthError::NotFound(id.chars().take(64).collect()));
        }
        let info = self
            .get(id)
            .await?
            .ok_or_else(|| AuthError::NotFound(id.chars().take(64).collect()))?;
        Ok((info, plain))
    }

    /// The active key matching `plain`, or `None`. Malformed keys are refused without a
    /// lookup; others are answered from the cache, or from the database (bounded by
    /// [`DB_TIMEOUT`]) on a miss. Database errors are not cached.
    pub async fn authenticate(&self, plain: &str) -> Result<Option<KeyInfo>, AuthError> {
        if !looks_like_key(plain) {
            return Ok(None);
        }
        let hash = hash_key(plain);
        let db = self.db.clone();
        let found = self
            .cache
            .try_get_with(hash.clone(), async move {
                match tokio::time::timeout(DB_TIMEOUT, lookup_hash(&db, &hash)).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Timeout(DB_TIMEOUT)),
                }
            })
            .await?;
        Ok(found.map(|k| (*k).clone()))
    }
}

async fn lookup_hash(db: &Db, hash: &str) -> Result<Option<Arc<KeyInfo>>, StoreError> {
    let sql = format!("{SELECT_KEY} WHERE hash = $1 AND revoked_ms IS NULL");
    let key = with_pool!(db, |pool| {
        match sqlx::query(&sql).bind(hash).fetch_optional(pool).await? {
            Some(row) => Some(Arc::new(key_from_row(&row)?)),
            None => None,
        }
    });
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shape_and_hash() {
        let k = new_plain_key().expect("random");
        assert!(looks_like_key(&k));
        assert_eq!(k.len(), KEY_PREFIX.len() + 64);
        assert_ne!(k, new_plain_key().expect("random"));
        assert!(!looks_like_key("sk-sy-XYZ"));
        assert!(!looks_like_key(&k.to_uppercase()));
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn headers() {
        let mut h = http::HeaderMap::new();
        assert_eq!(key_from_headers(&h), None);
        h.insert("x-goog-api-key", http::HeaderValue::from_static("sk-sy-g"));
        assert_eq!(key_from_headers(&h), Some("sk-sy-g"), "Google Gen AI SDKs");
        h.insert("x-api-key", http::HeaderValue::from_static("sk-sy-a"));
        assert_eq!(key_from_headers(&h), Some("sk-sy-a"));
        h.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer  sk-sy-b "),
        );
        assert_eq!(key_from_headers(&h), Some("sk-sy-b"));
    }

    #[test]
    fn validation() {
        let ok = NewKey {
            team: "t".into(),
            ..NewKey::default()
        };
        assert!(ok.validate().is_ok());
        assert!(NewKey::default().validate().is_err());
        let bad = NewKey {
            team: "t".into(),
            tags: vec!["a,b".into()],
            ..NewKey::default()
        };
        assert!(bad.validate().is_err());
    }
}
