//! The shared second tier: complete answers in Redis, so replicas answer each other's
//! repeats. Every failure here is a miss for the caller, never a failed request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{CacheError, CacheKey};
use crate::canonical::ChatResponse;

/// Stored values start with this, so a replica never decodes an entry written in a
/// format it does not know (rolling upgrades): an unknown prefix is a plain miss.
const VALUE_PREFIX: &[u8] = b"sy1:";

/// After a failure Redis is skipped for this long, so an unreachable Redis costs one
/// timeout per window rather than one per request.
const BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub(crate) enum TierError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("cached value is not valid: {0}")]
    Decode(String),
}

pub(crate) struct RedisTier {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    epoch: Instant,
    /// Milliseconds since `epoch` before which Redis is not tried.
    skip_until_ms: AtomicU64,
}

impl RedisTier {
    /// Connects lazily: a Redis that is down at start-up must not keep the gateway
    /// from serving, only from sharing.
    pub(crate) fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisTier, CacheError> {
        // The URL may hold a password: the error never repeats it.
        let client = redis::Client::open(url)
            .map_err(|e| CacheError::RedisUrl(format!("{:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout.max(Duration::from_millis(250))))
            .set_number_of_retries(2)
            .set_max_delay(BACKOFF);
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CacheError::RedisUrl(format!("{:?}", e.kind())))?;
        Ok(RedisTier {
            conn,
            prefix: prefix.to_owned(),
            timeout,
            epoch: Instant::now(),
            skip_until_ms: AtomicU64::new(0),
        })
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}{}", self.prefix, key.to_hex())
    }

    fn skipping(&self) -> bool {
        self.now_ms() < self.skip_until_ms.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn trip(&self) {
        let until = self.now_ms().saturating_add(BACKOFF.as_millis() as u64);
        self.skip_until_ms.store(until, Ordering::Relaxed);
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, TierError> {
        let res = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(TierError::Redis(e)),
            Err(_) => Err(TierError::Timeout(self.timeout)),
        };
        if res.is_err() {
            self.trip();
        }
        res
    }

    /// The answer, how long it has left to live, and its serialized size. `Ok(None)`
    /// on a miss, and also while Redis is being skipped after a failure.
    pub(crate) async fn get(
        &self,
        key: &CacheKey,
    ) -> Result<Option<(ChatResponse, Duration, usize)>, TierError> {
        if self.skipping() {
            return Ok(None);
        }
        let k = self.redis_key(key);
        let mut conn = self.conn.clone();
        let (value, pttl): (Option<Vec<u8>>, i64) = self
            .bounded(redis::pipe().get(&k).pttl(&k).query_async(&mut conn))
            .await?;
        let Some(value) = value else {
            return Ok(None);
        };
        // -1: no expiry (someone else wrote the key), -2: expired in between. We only
        // ever write with PX, so treat both as gone.
        let Ok(ms) = u64::try_from(pttl) else {
            return Ok(None);
        };
        let Some(body) = value.strip_prefix(VALUE_PREFIX) else {
            tracing::debug!("cache entry in Redis has an unknown format version; ignoring it");
            return Ok(None);
        };
        let resp = serde_json::from_slice(body).map_err(|e| TierError::Decode(e.to_string()))?;
        Ok(Some((resp, Duration::from_millis(ms), body.len())))
    }

    /// `json` is the serialized answer.
    pub(crate) async fn put(
        &self,
        key: &CacheKey,
        json: &[u8],
        ttl: Duration,
    ) -> Result<(), TierError> {
        if self.skipping() {
            return Ok(());
        }
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut value = Vec::with_capacity(VALUE_PREFIX.len() + json.len());
        value.extend_from_slice(VALUE_PREFIX);
        value.extend_from_slice(json);
        let mut conn = self.conn.clone();
        let k = self.redis_key(key);
        self.bounded(
            redis::cmd("SET")
                .arg(&k)
                .arg(value)
                .arg("PX")
                .arg(ms)
                .query_async::<()>(&mut conn),
        )
        .await
    }
}
