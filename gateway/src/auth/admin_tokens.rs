//! Scoped admin tokens for automation: `sy-adm-` and 64 hex digits (256 random bits),
//! each with one [`Role`] and an expiry, stored as SHA-256 like virtual keys (see the
//! parent module for why a fast hash is right for random tokens). Created and revoked
//! through `/admin/tokens` (admin role) or `switchyard tokens`; the plain token is shown
//! once.
//!
//! Lookups are cached for the key cache's TTL; the expiry is checked on every use, and a
//! revocation is immediate on the replica that made it (the cache is cleared) and reaches
//! other replicas within the TTL, as for keys.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde::{Deserialize, Serialize, Serializer};
use sqlx::Row;

use super::roles::Role;
use super::{hash_key, random_hex, AuthError, DB_TIMEOUT};
use crate::store::time::{format_rfc3339, now_ms, parse_time, DAY_MS};
use crate::store::{with_pool, Db, StoreError};

pub const TOKEN_PREFIX: &str = "sy-adm-";
const TOKEN_HEX_LEN: usize = 64;
/// Automation tokens expire; a year is the longest a token may live.
pub const MAX_LIFETIME_MS: i64 = 366 * DAY_MS;
const CACHE_CAPACITY: u64 = 10_000;

/// Whether `s` has the shape of a scoped admin token.
pub fn looks_like_token(s: &str) -> bool {
    s.strip_prefix(TOKEN_PREFIX).is_some_and(|h| {
        h.len() == TOKEN_HEX_LEN && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
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

/// What is known about a token; no secret in it (safe to log, list and audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// `tok_` + 16 hex digits.
    pub id: String,
    pub role: Role,
    pub name: Option<String>,
    /// Who created it (an audit actor: `admin-token`, `cli:alice`, …).
    pub created_by: String,
    #[serde(serialize_with = "ser_ms")]
    pub created_at: i64,
    #[serde(serialize_with = "ser_ms")]
    pub expires_at: i64,
    #[serde(serialize_with = "ser_opt_ms")]
    pub revoked_at: Option<i64>,
    /// The first characters of the token, to tell tokens apart.
    pub prefix: String,
}

impl TokenInfo {
    pub fn active_at(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && now_ms < self.expires_at
    }
}

/// A token request: a role, an expiry (`expires_in` as `90m`, `12h`, `30d`, or
/// `expires_at` as RFC 3339), and an optional name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub role: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub expires_in: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// `90m`, `12h`, `30d` → milliseconds.
pub fn parse_lifetime(s: &str) -> Result<i64, AuthError> {
    let s = s.trim();
    let bad = || {
        AuthError::Invalid(format!(
            "expires_in {s:?}: use a number with m, h or d (90m, 12h, 30d)"
        ))
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    let per = match unit {
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => DAY_MS,
        _ => return Err(bad()),
    };
    n.checked_mul(per).filter(|ms| *ms > 0).ok_or_else(bad)
}

impl NewToken {
    /// The role and the expiry (unix ms) this request asks for, checked.
    fn resolve(&self, now: i64) -> Result<(Role, i64), AuthError> {
        let role: Role = self
            .role
            .parse()
            .map_err(|e: super::roles::UnknownRole| AuthError::Invalid(e.to_string()))?;
        if let Some(name) = &self.name {
            if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                return Err(AuthError::Invalid(
                    "name must be 1..=256 bytes without control characters".into(),
                ));
            }
        }
        let expires = match (&self.expires_in, &self.expires_at) {
            (Some(_), Some(_)) => {
                return Err(AuthError::Invalid(
                    "give expires_in or expires_at, not both".into(),
                ))
            }
            (Some(d), None) => now.saturating_add(parse_lifetime(d)?),
            (None, Some(t)) => {
                parse_time(t).map_err(|e| AuthError::Invalid(format!("expires_at: {e}")))?
            }
            (None, None) => {
                return Err(AuthError::Invalid(
                    "a token needs an expiry: expires_in (e.g. 30d) or expires_at (RFC 3339)"
                        .into(),
                ))
            }
        };
        if expires <= now {
            return Err(AuthError::Invalid("the expiry is in the past".into()));
        }
        if expires - now > MAX_LIFETIME_MS {
            return Err(AuthError::Invalid(
                "a token may live at most 366 days".into(),
            ));
        }
        Ok((role, expires))
    }
}

const SELECT_TOKEN: &str = "SELECT id, prefix, role, name, created_by, created_ms, expires_ms, revoked_ms FROM admin_tokens";

fn token_from_row<R>(row: &R) -> Result<TokenInfo, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let role: String = row.try_get("role")?;
    Ok(TokenInfo {
        id: row.try_get("id")?,
        role: role
            .parse()
            .map_err(|e: super::roles::UnknownRole| sqlx::Error::Decode(Box::new(e)))?,
        name: row.try_get("name")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_ms")?,
        expires_at: row.try_get("expires_ms")?,
        revoked_at: row.try_get("revoked_ms")?,
        prefix: row.try_get("prefix")?,
    })
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenCheck {
    Valid(Arc<TokenInfo>),
    Expired,
    /// Unknown or revoked.
    Unknown,
}

/// Token management and lookup. Cheap to clone.
#[derive(Clone)]
pub struct AdminTokenStore {
    db: Db,
    /// hash → the token with that hash (revoked ones included), or `None` if unknown.
    cache: Cache<String, Option<Arc<TokenInfo>>>,
}

impl std::fmt::Debug for AdminTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminTokenStore")
            .field("engine", &self.db.engine())
            .finish()
    }
}

impl AdminTokenStore {
    pub fn new(db: Db, cache_ttl: Duration) -> Self {
        AdminTokenStore {
            db,
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(cache_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    /// Creates a token; returns its info and the plain token, which is not kept.
    pub async fn create(
        &self,
        req: &NewToken,
        created_by: &str,
    ) -> Result<(TokenInfo, String), AuthError> {
        let now = now_ms();
        let (role, expires_at) = req.resolve(now)?;
        let plain = format!("{TOKEN_PREFIX}{}", random_hex(32)?);
        let info = TokenInfo {
            id: format!("tok_{}", random_hex(8)?),
            role,
            name: req.name.as_ref().map(|n| n.trim().to_string()),
            created_by: created_by.to_string(),
            created_at: now,
            expires_at,
            revoked_at: None,
            prefix: plain.chars().take(TOKEN_PREFIX.len() + 6).collect(),
        };
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO admin_tokens (id, hash, prefix, role, name, created_by, created_ms, expires_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&info.id)
            .bind(hash_key(&plain))
            .bind(&info.prefix)
            .bind(info.role.as_str())
            .bind(&info.name)
            .bind(&info.created_by)
            .bind(info.created_at)
            .bind(info.expires_at)
            .execute(pool)
            .await?;
        });
        Ok((info, plain))
    }

    /// Every token, revoked and expired ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let sql = format!("{SELECT_TOKEN} ORDER BY created_ms, id");
        Ok(with_pool!(&self.db, |pool| {
            let rows = sqlx::query(&sql).fetch_all(pool).await?;
            rows.iter()
                .map(token_from_row)
                .collect::<Result<Vec<_>, _>>()?
        }))
    }

    pub async fn get(&self, id: &str) -> Result<Option<TokenInfo>, AuthError> {
        let sql = format!("{SELECT_TOKEN} WHERE id = $1");
        Ok(with_pool!(&self.db, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(row) => Some(token_from_row(&row)?),
                None => None,
            }
        }))
    }

    /// Revokes a token; an unknown or already revoked one is `NotFound`.
    pub async fn revoke(&self, id: &str) -> Result<TokenInfo, AuthError> {
        let n = with_pool!(&self.db, |pool| {
            sqlx::query(
                "UPDATE admin_tokens SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected()
        });
        // The cache is keyed by hash, which a revocation does not know: clear it all
        // (tokens are few and a miss is one indexed lookup).
        self.cache.invalidate_all();
        let not_found = || AuthError::NotFound(id.chars().take(64).collect());
        if n == 0 {
            return Err(not_found());
        }
        self.get(id).await?.ok_or_else(not_found)
    }

    /// What `plain` is: a valid token (with its role), an expired one, or nothing.
    pub async fn check(&self, plain: &str) -> Result<TokenCheck, AuthError> {
        if !looks_like_token(plain) {
            return Ok(TokenCheck::Unknown);
        }
        let hash = hash_key(plain);
        let db = self.db.clone();
        let found = self
            .cache
            .try_get_with(hash.clone(), async move {
                match tokio::time::timeout(DB_TIMEOUT, lookup(&db, &hash)).await {
                    Ok(r) => r,
                    Err(_) => Err(StoreError::Timeout(DB_TIMEOUT)),
                }
            })
            .await?;
        Ok(match found {
            Some(t) if t.revoked_at.is_some() => TokenCheck::Unknown,
            Some(t) if t.active_at(now_ms()) => TokenCheck::Valid(t),
            Some(_) => TokenCheck::Expired,
            None => TokenCheck::Unknown,
        })
    }
}

async fn lookup(db: &Db, hash: &str) -> Result<Option<Arc<TokenInfo>>, StoreError> {
    let sql = format!("{SELECT_TOKEN} WHERE hash = $1");
    Ok(with_pool!(db, |pool| {
        match sqlx::query(&sql).bind(hash).fetch_optional(pool).await? {
            Some(row) => Some(Arc::new(token_from_row(&row)?)),
            None => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_with_their_unit() {
        assert_eq!(parse_lifetime("90m").ok(), Some(90 * 60_000));
        assert_eq!(parse_lifetime("12h").ok(), Some(12 * 3_600_000));
        assert_eq!(parse_lifetime("30d").ok(), Some(30 * DAY_MS));
        for bad in [
            "",
            "d",
            "30",
            "30w",
            "-1d",
            "0h",
            "1.5d",
            "99999999999999999d",
        ] {
            assert!(parse_lifetime(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_needs_a_known_role_and_a_bounded_future_expiry() {
        let now = 1_800_000_000_000;
        let req = |role: &str, inn: Option<&str>, at: Option<&str>| NewToken {
            role: role.into(),
            name: None,
            expires_in: inn.map(String::from),
            expires_at: at.map(String::from),
        };
        assert_eq!(
            req("finance", Some("1d"), None).resolve(now).ok(),
            Some((Role::Finance, now + DAY_MS))
        );
        assert!(req("root", Some("1d"), None).resolve(now).is_err());
        assert!(req("viewer", None, None).resolve(now).is_err());
        assert!(req("viewer", Some("367d"), None).resolve(now).is_err());
        assert!(req("viewer", Some("1d"), Some("2030-01-01T00:00:00Z"))
            .resolve(now)
            .is_err());
        assert!(req("viewer", None, Some("2020-01-01T00:00:00Z"))
            .resolve(now)
            .is_err());
    }

    #[test]
    fn token_shape() {
        assert!(looks_like_token(&format!(
            "{TOKEN_PREFIX}{}",
            "a".repeat(64)
        )));
        assert!(!looks_like_token(&format!(
            "{TOKEN_PREFIX}{}",
            "A".repeat(64)
        )));
        assert!(!looks_like_token("sk-sy-abc"));
    }
}
