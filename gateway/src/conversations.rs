//! Stored Responses API conversations: what `store: true` keeps so that a later request
//! can continue with `previous_response_id`, and `GET /v1/responses/{id}` can return the
//! Response. Kept in the ledger's database, scoped to the tenant (the key's team), for
//! `responses.retention_days`; `store: false` keeps nothing.
//!
//! This is the one place the gateway keeps prompt and answer text, because the client
//! asked for it. What is kept is what the client sent and saw (placeholders restored);
//! a continued conversation is classified again as a whole, so the privacy policy
//! applies to the earlier turns on every request that carries them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::canonical::{GatewayError, Message};
use crate::store::time::now_ms;
use crate::store::{with_pool, Db};

/// `responses:` in the gateway config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// How long a stored Response is kept (OpenAI keeps them 30 days).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            retention_days: default_retention_days(),
        }
    }
}

fn default_retention_days() -> u32 {
    30
}

/// One stored turn: the conversation up to and including its answer, and the Response.
#[derive(Debug, Clone)]
pub struct Stored {
    pub messages: Vec<Message>,
    pub response: Value,
}

pub struct Conversations {
    db: Db,
    retention: Duration,
    /// When expired rows were last deleted (at most once a minute, on a write).
    last_purge_ms: AtomicI64,
}

/// How often a write also deletes expired rows.
const PURGE_EVERY_MS: i64 = 60_000;

impl Conversations {
    pub fn new(db: Db, config: &ResponsesConfig) -> Conversations {
        Conversations {
            db,
            retention: Duration::from_secs(u64::from(config.retention_days) * 86_400),
            last_purge_ms: AtomicI64::new(0),
        }
    }

    /// Keeps one turn. Awaited before the answer's last event goes out, so a client
    /// that continues at once finds it.
    pub async fn save(
        &self,
        tenant: &str,
        id: &str,
        messages: &[Message],
        response: &Value,
    ) -> Result<(), GatewayError> {
        let now = now_ms();
        let expires =
            now.saturating_add(i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX));
        let messages = serde_json::to_string(messages).map_err(internal)?;
        let response = response.to_string();
        with_pool!(&self.db, |pool| {
            sqlx::query(
                "INSERT INTO responses (id, tenant, created_ms, expires_ms, messages, response) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(tenant)
            .bind(now)
            .bind(expires)
            .bind(&messages)
            .bind(&response)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .map_err(store_error)?;
        let last = self.last_purge_ms.load(Ordering::Relaxed);
        if now - last >= PURGE_EVERY_MS
            && self
                .last_purge_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let purged = with_pool!(&self.db, |pool| {
                sqlx::query("DELETE FROM responses WHERE expires_ms < $1")
                    .bind(now)
                    .execute(pool)
                    .await
                    .map(|r| r.rows_affected())
            });
            if let Err(e) = purged {
                tracing::warn!("expired stored responses not deleted: {e}");
            }
        }
        Ok(())
    }

    /// The turn `id` of this tenant, if it is there and not expired. Another tenant's
    /// id reads as absent: ids are never confirmed across teams.
    pub async fn load(&self, tenant: &str, id: &str) -> Result<Option<Stored>, GatewayError> {
        let row: Option<(String, String)> = with_pool!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT messages, response FROM responses \
                 WHERE id = $1 AND tenant = $2 AND expires_ms >= $3",
            )
            .bind(id)
            .bind(tenant)
            .bind(now_ms())
            .fetch_optional(pool)
            .await
        })
        .map_err(store_error)?;
        let Some((messages, response)) = row else {
            return Ok(None);
        };
        Ok(Some(Stored {
            messages: serde_json::from_str(&messages).map_err(internal)?,
            response: serde_json::from_str(&response).map_err(internal)?,
        }))
    }

    /// Deletes the turn `id` of this tenant; `false` when there was none.
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<bool, GatewayError> {
        let n = with_pool!(&self.db, |pool| {
            sqlx::query("DELETE FROM responses WHERE id = $1 AND tenant = $2")
                .bind(id)
                .bind(tenant)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(store_error)?;
        Ok(n > 0)
    }
}

fn store_error(e: sqlx::Error) -> GatewayError {
    tracing::error!("stored responses: {e}");
    GatewayError::Overloaded("the response store is unavailable; retry shortly".into())
}

fn internal(e: serde_json::Error) -> GatewayError {
    GatewayError::Internal(format!("stored response unreadable: {e}"))
}

/// The message `previous_response_id` names was not found (absent, expired, deleted or
/// another team's), as OpenAI words it.
pub fn not_found(id: &str) -> GatewayError {
    GatewayError::InvalidRequest(format!("Previous response with id '{id}' not found."))
}
