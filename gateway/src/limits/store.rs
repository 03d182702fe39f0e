//! Counter stores. Both backends implement the same two atomic operations, so the
//! limiter's semantics do not depend on where the counters live:
//! - `reserve`: check every counter of a request, and add to all of them only if none
//!   would go over its limit (all-or-nothing);
//! - `adjust`: add signed deltas to counters that still exist (settling a reservation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use super::config::RedisBackend;
use super::LimitsError;

/// One counter touched by a request.
#[derive(Debug, Clone)]
pub struct CounterOp {
    pub key: String,
    /// Added on admission; never negative.
    pub amount: i64,
    /// Admitted only while `current + amount <= limit`; `None` counts without limiting.
    pub limit: Option<i64>,
    /// How long the counter outlives this moment (its window's end plus a grace period
    /// for late settlements).
    pub ttl_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Every counter was incremented; the values after the increment, in op order.
    Admitted(Vec<i64>),
    /// Nothing changed: op `index` would have gone over its limit from `current`.
    Rejected { index: usize, current: i64 },
}

#[derive(Debug, Clone)]
pub struct Adjust {
    pub key: String,
    pub delta: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0} ms")]
    Timeout(u64),
    #[error("redis answered with an unexpected shape: {0}")]
    Protocol(String),
}

pub enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Store {
    pub async fn reserve(
        &self,
        ops: &[CounterOp],
        now_ms: u64,
    ) -> Result<ReserveOutcome, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.reserve(ops, now_ms)),
            Store::Redis(r) => r.reserve(ops).await,
        }
    }

    pub async fn adjust(&self, adjusts: &[Adjust]) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.adjust(adjusts);
                Ok(())
            }
            Store::Redis(r) => r.adjust(adjusts).await,
        }
    }

    /// Raises a counter to at least `value` (creating it with `ttl_ms` if it is missing);
    /// a counter already above `value` is left alone.
    pub async fn raise_to(
        &self,
        key: &str,
        value: i64,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Memory(m) => {
                m.raise_to(key, value, ttl_ms, now_ms);
                Ok(())
            }
            Store::Redis(r) => r.raise_to(key, value, ttl_ms).await,
        }
    }

    pub async fn read(&self, keys: &[String], now_ms: u64) -> Result<Vec<i64>, StoreError> {
        match self {
            Store::Memory(m) => Ok(m.read(keys, now_ms)),
            Store::Redis(r) => r.read(keys).await,
        }
    }
}

struct Slot {
    value: i64,
    expires_ms: u64,
}

#[derive(Default)]
struct MemoryState {
    slots: HashMap<String, Slot>,
    next_sweep_ms: u64,
}

/// One mutex over every counter: a request's counters must change together, and the
/// critical section is a few hash lookups, far below the cost of a finer-grained scheme.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

const SWEEP_EVERY_MS: u64 = 60_000;

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic elsewhere while holding the lock cannot leave a half-applied request
        // (all writes happen after all checks), so the data is still consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reserve(&self, ops: &[CounterOp], now_ms: u64) -> ReserveOutcome {
        let mut st = self.lock();
        if now_ms >= st.next_sweep_ms {
            // Old periods' keys are never read again; dropping them bounds memory.
            st.slots.retain(|_, s| s.expires_ms > now_ms);
            st.next_sweep_ms = now_ms.saturating_add(SWEEP_EVERY_MS);
        }
        let current = |st: &MemoryState, key: &str| {
            st.slots
                .get(key)
                .filter(|s| s.expires_ms > now_ms)
                .map_or(0, |s| s.value)
        };
        for (index, op) in ops.iter().enumerate() {
            let cur = current(&st, &op.key);
            if let Some(limit) = op.limit {
                if cur.saturating_add(op.amount) > limit {
                    return ReserveOutcome::Rejected {
                        index,
                        current: cur,
                    };
                }
            }
        }
        let mut values = Vec::with_capacity(ops.len());
        for op in ops {
            let expires_ms = now_ms.saturating_add(op.ttl_ms);
            let slot = st.slots.entry(op.key.clone()).or_insert(Slot {
                value: 0,
                expires_ms,
            });
            if slot.expires_ms <= now_ms {
                slot.value = 0;
            }
            slot.value = slot.value.saturating_add(op.amount);
            slot.expires_ms = slot.expires_ms.max(expires_ms);
            values.push(slot.value);
        }
        ReserveOutcome::Admitted(values)
    }

    fn adjust(&self, adjusts: &[Adjust]) {
        let mut st = self.lock();
        for a in adjusts {
            // A counter swept after its window cannot be settled; recreating it would
            // resurrect an old period with a negative or partial value.
            if let Some(slot) = st.slots.get_mut(&a.key) {
                slot.value = slot.value.saturating_add(a.delta).max(0);
            }
        }
    }

    fn raise_to(&self, key: &str, value: i64, ttl_ms: u64, now_ms: u64) {
        let mut st = self.lock();
        let expires_ms = now_ms.saturating_add(ttl_ms);
        match st.slots.get_mut(key) {
            Some(slot) if slot.expires_ms > now_ms => {
                slot.value = slot.value.max(value);
                slot.expires_ms = slot.expires_ms.max(expires_ms);
            }
            _ => {
                st.slots.insert(key.to_string(), Slot { value, expires_ms });
            }
        }
    }

    fn read(&self, keys: &[String], now_ms: u64) -> Vec<i64> {
        let st = self.lock();
        keys.iter()
            .map(|k| {
                st.slots
                    .get(k)
                    .filter(|s| s.expires_ms > now_ms)
                    .map_or(0, |s| s.value)
            })
            .collect()
    }
}

/// KEYS: the counters. ARGV: per counter (amount, limit or -1, ttl_ms).
/// Returns {1, value...} when admitted, {0, index (1-based), current} when rejected.
/// Lua numbers are doubles; amounts and limits stay below 2^52 so the arithmetic is exact.
const RESERVE_LUA: &str = r#"
local n = #KEYS
for i = 1, n do
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  local amount = tonumber(ARGV[3 * i - 2])
  local limit = tonumber(ARGV[3 * i - 1])
  if limit >= 0 and cur + amount > limit then
    return {0, i, cur}
  end
end
local out = {1}
for i = 1, n do
  out[i + 1] = redis.call('INCRBY', KEYS[i], ARGV[3 * i - 2])
  local ttl = tonumber(ARGV[3 * i])
  if redis.call('PTTL', KEYS[i]) < ttl then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return out
"#;

/// KEYS: the counters. ARGV: per counter the signed delta. A counter that expired is
/// left alone (recreating it would start an old period at a negative value); a value is
/// never left below zero.
const ADJUST_LUA: &str = r#"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local v = redis.call('INCRBY', KEYS[i], ARGV[i])
    if v < 0 then
      redis.call('INCRBY', KEYS[i], -v)
    end
  end
end
return 1
"#;

/// KEYS[1]: the counter. ARGV: value, ttl_ms. Raises the counter to at least the value.
const RAISE_LUA: &str = r#"
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > c then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return 1
"#;

pub struct RedisStore {
    conn: ConnectionManager,
    timeout: Duration,
    timeout_ms: u64,
    reserve: Script,
    adjust: Script,
    raise: Script,
}

impl RedisStore {
    /// Does not connect: a gateway whose Redis is down at start-up still starts and
    /// applies `on_redis_error`, and the manager connects (and reconnects) on demand.
    pub fn new(cfg: &RedisBackend) -> Result<RedisStore, LimitsError> {
        let client = redis::Client::open(cfg.url.as_str()).map_err(|e| {
            LimitsError::Config(format!(
                "invalid redis url `{}`: {e}",
                super::config::redact_url(&cfg.url)
            ))
        })?;
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let manager_cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // The caller's own timeout bounds each call; retrying inside it only delays
            // the decision `on_redis_error` exists to make.
            .set_number_of_retries(1)
            .set_max_delay(timeout);
        let conn = ConnectionManager::new_lazy_with_config(client, manager_cfg)
            .map_err(|e| LimitsError::Store(format!("cannot set up redis connection: {e}")))?;
        Ok(RedisStore {
            conn,
            timeout,
            timeout_ms: cfg.timeout_ms,
            reserve: Script::new(RESERVE_LUA),
            adjust: Script::new(ADJUST_LUA),
            raise: Script::new(RAISE_LUA),
        })
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(StoreError::from),
            Err(_) => Err(StoreError::Timeout(self.timeout_ms)),
        }
    }

    async fn reserve(&self, ops: &[CounterOp]) -> Result<ReserveOutcome, StoreError> {
        let mut inv = self.reserve.prepare_invoke();
        for op in ops {
            inv.key(&op.key)
                .arg(op.amount)
                .arg(op.limit.unwrap_or(-1))
                .arg(op.ttl_ms.max(1));
        }
        let mut conn = self.conn.clone();
        let reply: Vec<i64> = self.bounded(inv.invoke_async(&mut conn)).await?;
        match reply.as_slice() {
            [1, values @ ..] if values.len() == ops.len() => {
                Ok(ReserveOutcome::Admitted(values.to_vec()))
            }
            [0, index, current] if *index >= 1 && (*index as usize) <= ops.len() => {
                Ok(ReserveOutcome::Rejected {
                    index: *index as usize - 1,
                    current: *current,
                })
            }
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    async fn adjust(&self, adjusts: &[Adjust]) -> Result<(), StoreError> {
        let mut inv = self.adjust.prepare_invoke();
        for a in adjusts {
            inv.key(&a.key).arg(a.delta);
        }
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn raise_to(&self, key: &str, value: i64, ttl_ms: u64) -> Result<(), StoreError> {
        let mut inv = self.raise.prepare_invoke();
        inv.key(key).arg(value).arg(ttl_ms.max(1));
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(inv.invoke_async(&mut conn)).await?;
        Ok(())
    }

    async fn read(&self, keys: &[String]) -> Result<Vec<i64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("MGET");
        for k in keys {
            cmd.arg(k);
        }
        let values: Vec<Option<i64>> = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(values.into_iter().map(|v| v.unwrap_or(0)).collect())
    }
}
