//! The response cache: exact (in process, shared through Redis across replicas) and
//! semantic (opt-in, in process only), both scoped by tenant. See `docs/cache.md`.
//!
//! The caller owns the policy decisions this module cannot see: it passes the
//! already-redacted request (so entries only ever hold placeholders, never the
//! originals), fills the cache with the answer *before* restoring placeholders, and
//! restores every hit with the current request's own redaction map.

mod key;
mod redis_tier;
mod semantic;
mod stream;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;
use serde::Deserialize;

use crate::canonical::{ChatRequest, ChatResponse, ContentPart, StopReason};
pub use key::CacheKey;
use redis_tier::{RedisTier, TierError};
use semantic::SemanticTier;
pub use stream::{replay_events, StreamAccumulator, DEFAULT_ACCUMULATOR_LIMIT};

/// Per-entry bookkeeping on top of the serialized answer, so many tiny entries still
/// count against the byte budget.
const ENTRY_OVERHEAD: usize = 160;

/// The `cache:` section of the gateway config.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub enabled: bool,
    /// Memory budget of the in-process tiers, in bytes of serialized answers. With the
    /// semantic tier on, it gets a quarter of this and the exact tier the rest.
    pub max_bytes: u64,
    /// TTL when the policy gives none; `None` or 0: only policies turn caching on.
    pub default_ttl_s: Option<u64>,
    /// Cache requests whose temperature is not 0 (or absent) too.
    pub cache_nondeterministic: bool,
    /// One cache for all tenants. Off by default: one team's answer must not reach
    /// another team.
    pub share_across_tenants: bool,
    /// `redis://[user:password@]host:port/db`; TLS is not supported.
    pub redis_url: Option<String>,
    pub redis_key_prefix: String,
    /// Bound on every Redis call; past it the lookup is a miss.
    pub redis_timeout_ms: u64,
    pub semantic: SemanticConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            max_bytes: 256 * 1024 * 1024,
            default_ttl_s: None,
            cache_nondeterministic: false,
            share_across_tenants: false,
            redis_url: None,
            redis_key_prefix: "switchyard:cache:".into(),
            redis_timeout_ms: 50,
            semantic: SemanticConfig::default(),
        }
    }
}

// By hand: the Redis URL may carry a password.
impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("enabled", &self.enabled)
            .field("max_bytes", &self.max_bytes)
            .field("default_ttl_s", &self.default_ttl_s)
            .field("cache_nondeterministic", &self.cache_nondeterministic)
            .field("share_across_tenants", &self.share_across_tenants)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "<set>"))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("redis_timeout_ms", &self.redis_timeout_ms)
            .field("semantic", &self.semantic)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SemanticConfig {
    pub enabled: bool,
    /// Cosine similarity a stored question must reach to answer a new one.
    pub min_similarity: f32,
    /// Let requests with sensitive findings use the semantic tier.
    pub allow_sensitive: bool,
    /// Entries per tenant and model; lookups scan them all.
    pub max_entries_per_scope: usize,
}

impl Default for SemanticConfig {
    fn default() -> Self {
        SemanticConfig {
            enabled: false,
            min_similarity: 0.95,
            allow_sensitive: false,
            max_entries_per_scope: 1000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    #[error("cache config: {0}")]
    InvalidConfig(String),
    /// Carries the kind of problem only: the URL may hold a password.
    #[error("cache.redis_url is not usable: {0}")]
    RedisUrl(String),
}

/// Counters since start-up. `entries` and `bytes` are the exact tier's and settle
/// after the cache's background maintenance (see [`ResponseCache::run_pending_tasks`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Exact hits, in process or from Redis.
    pub hits: u64,
    pub misses: u64,
    /// Exact hits served from Redis (included in `hits`).
    pub redis_hits: u64,
    /// Failed or timed-out Redis calls and undecodable values; each was a miss or a
    /// skipped write.
    pub redis_errors: u64,
    pub entries: u64,
    pub bytes: u64,
    pub semantic_hits: u64,
    pub semantic_misses: u64,
    pub semantic_entries: u64,
    pub semantic_bytes: u64,
}

struct Entry {
    resp: ChatResponse,
    ttl: Duration,
    weight: u32,
}

struct EntryExpiry;

impl Expiry<CacheKey, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(&self, _: &CacheKey, v: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        v: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.ttl)
    }
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    redis_hits: AtomicU64,
    redis_errors: AtomicU64,
    semantic_hits: AtomicU64,
    semantic_misses: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct ResponseCache {
    enabled: bool,
    default_ttl_s: Option<u64>,
    cache_nondeterministic: bool,
    share_across_tenants: bool,
    allow_sensitive: bool,
    exact: Cache<CacheKey, Arc<Entry>>,
    redis: Option<RedisTier>,
    semantic: Option<SemanticTier>,
    counters: Counters,
}

impl ResponseCache {
    /// Validates the config and builds the tiers. A Redis that is down is not an
    /// error (it is connected lazily and its failures are misses); a malformed URL is.
    pub async fn new(cfg: &CacheConfig) -> Result<ResponseCache, CacheError> {
        validate(cfg)?;
        let semantic_budget = if cfg.semantic.enabled {
            cfg.max_bytes / 4
        } else {
            0
        };
        let exact = Cache::builder()
            .max_capacity(cfg.max_bytes - semantic_budget)
            .weigher(|_, v: &Arc<Entry>| v.weight)
            .expire_after(EntryExpiry)
            .build();
        let redis = match (&cfg.redis_url, cfg.enabled) {
            (Some(url), true) => Some(RedisTier::new(
                url,
                &cfg.redis_key_prefix,
                Duration::from_millis(cfg.redis_timeout_ms),
            )?),
            _ => None,
        };
        let semantic = (cfg.enabled && cfg.semantic.enabled).then(|| {
            SemanticTier::new(
                semantic_budget,
                cfg.semantic.min_similarity,
                cfg.semantic.max_entries_per_scope,
            )
        });
        Ok(ResponseCache {
            enabled: cfg.enabled,
            default_ttl_s: cfg.default_ttl_s,
            cache_nondeterministic: cfg.cache_nondeterministic,
            share_across_tenants: cfg.share_across_tenants,
            allow_sensitive: cfg.semantic.allow_sensitive,
            exact,
            redis,
            semantic,
            counters: Counters::default(),
        })
    }

    /// The key and TTL for this request, or `None` when it must not be cached:
    /// caching is off, no TTL applies (`ttl_s` is the policy's; `Some(0)` turns
    /// caching off even over a default), the request is not deterministic (temperature
    /// exactly 0; absent counts as not), or there is no tenant to scope it to.
    ///
    /// `req` must be the request as sent upstream (redacted), `served_model` the
    /// model that will actually answer, `tenant` the team, or the key id without one.
    pub fn key(
        &self,
        req: &ChatRequest,
        served_model: &str,
        tenant: &str,
        ttl_s: Option<u64>,
    ) -> Option<(CacheKey, Duration)> {
        if !self.enabled {
            return None;
        }
        let ttl_s = ttl_s.or(self.default_ttl_s).filter(|t| *t > 0)?;
        if !self.cache_nondeterministic && req.sampling.temperature != Some(0.0) {
            return None;
        }
        let tenant = if self.share_across_tenants {
            None
        } else {
            // Without a tenant every anonymous caller would share one scope.
            if tenant.is_empty() {
                return None;
            }
            Some(tenant)
        };
        let key = key::derive(req, served_model, tenant)?;
        Some((key, Duration::from_secs(ttl_s)))
    }

    /// The stored answer, usage included (what the provider reported when it was
    /// filled), so accounting can record the savings. Redis failures are misses.
    pub async fn get(&self, key: &CacheKey) -> Option<ChatResponse> {
        if !self.enabled {
            return None;
        }
        if let Some(e) = self.exact.get(key).await {
            bump(&self.counters.hits);
            return Some(e.resp.clone());
        }
        if let Some(redis) = &self.redis {
            match redis.get(key).await {
                Ok(Some((resp, left, len))) => {
                    bump(&self.counters.hits);
                    bump(&self.counters.redis_hits);
                    if !left.is_zero() {
                        // Keep it here for the rest of its shared lifetime, not longer.
                        self.exact
                            .insert(*key, entry(resp.clone(), left, len))
                            .await;
                    }
                    return Some(resp);
                }
                Ok(None) => {}
                Err(e) => self.redis_failed("get", &e),
            }
        }
        bump(&self.counters.misses);
        None
    }

    /// Stores a complete answer. Truncated (`max_tokens`) and filtered answers are
    /// refused, as are answers with parts a stream cannot replay; errors never reach
    /// here. A Redis failure is logged and counted, never returned.
    pub async fn put(&self, key: &CacheKey, resp: &ChatResponse, ttl: Duration) {
        if !self.enabled || ttl.is_zero() || !cacheable(resp) {
            return;
        }
        let Ok(json) = serde_json::to_vec(resp) else {
            return;
        };
        self.exact
            .insert(*key, entry(resp.clone(), ttl, json.len()))
            .await;
        if let Some(redis) = &self.redis {
            if let Err(e) = redis.put(key, &json, ttl).await {
                self.redis_failed("put", &e);
            }
        }
    }

    /// The closest stored answer for this tenant and served model if its similarity
    /// reaches `semantic.min_similarity`. Always `None` when the tier is off, and for
    /// requests with sensitive findings unless `semantic.allow_sensitive`.
    ///
    /// Call it only for requests [`key`](Self::key) accepted, so the same
    /// determinism and TTL rules apply.
    pub async fn get_semantic(
        &self,
        tenant: &str,
        model: &str,
        embedding: &[f32],
        sensitive: bool,
    ) -> Option<(ChatResponse, f32)> {
        let semantic = self.semantic_for(tenant, sensitive)?;
        let found = semantic.get(tenant, model, embedding).await;
        bump(if found.is_some() {
            &self.counters.semantic_hits
        } else {
            &self.counters.semantic_misses
        });
        found
    }

    /// Stores an answer for similarity lookups by this tenant and model; same refusals
    /// as [`put`](Self::put) and [`get_semantic`](Self::get_semantic).
    pub async fn put_semantic(
        &self,
        tenant: &str,
        model: &str,
        embedding: Vec<f32>,
        sensitive: bool,
        resp: &ChatResponse,
        ttl: Duration,
    ) {
        let Some(semantic) = self.semantic_for(tenant, sensitive) else {
            return;
        };
        if ttl.is_zero() || !cacheable(resp) {
            return;
        }
        let Ok(json) = serde_json::to_vec(resp) else {
            return;
        };
        semantic
            .put(
                tenant,
                model,
                &embedding,
                Arc::new(resp.clone()),
                json.len(),
                ttl,
            )
            .await;
    }

    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        CacheStats {
            hits: c.hits.load(Ordering::Relaxed),
            misses: c.misses.load(Ordering::Relaxed),
            redis_hits: c.redis_hits.load(Ordering::Relaxed),
            redis_errors: c.redis_errors.load(Ordering::Relaxed),
            entries: self.exact.entry_count(),
            bytes: self.exact.weighted_size(),
            semantic_hits: c.semantic_hits.load(Ordering::Relaxed),
            semantic_misses: c.semantic_misses.load(Ordering::Relaxed),
            semantic_entries: self.semantic.as_ref().map_or(0, |s| s.entries()),
            semantic_bytes: self.semantic.as_ref().map_or(0, |s| s.bytes()),
        }
    }

    /// Applies pending evictions now, so `stats` is exact. Maintenance otherwise runs
    /// in the background of ordinary calls; tests and metric scrapes may call this.
    pub async fn run_pending_tasks(&self) {
        self.exact.run_pending_tasks().await;
        if let Some(s) = &self.semantic {
            s.run_pending_tasks().await;
        }
    }

    fn semantic_for(&self, tenant: &str, sensitive: bool) -> Option<&SemanticTier> {
        if tenant.is_empty() || (sensitive && !self.allow_sensitive) {
            return None;
        }
        self.semantic.as_ref()
    }

    fn redis_failed(&self, op: &str, e: &TierError) {
        bump(&self.counters.redis_errors);
        tracing::warn!(op, error = %e, "redis cache tier failed; treating it as a miss");
    }
}

fn entry(resp: ChatResponse, ttl: Duration, json_len: usize) -> Arc<Entry> {
    let weight = u32::try_from(json_len.saturating_add(ENTRY_OVERHEAD)).unwrap_or(u32::MAX);
    Arc::new(Entry { resp, ttl, weight })
}

/// Only complete answers that a stream can replay exactly.
fn cacheable(resp: &ChatResponse) -> bool {
    !matches!(
        resp.stop_reason,
        StopReason::MaxTokens | StopReason::ContentFilter
    ) && resp
        .content
        .iter()
        .all(|p| matches!(p, ContentPart::Text { .. } | ContentPart::ToolCall { .. }))
}

fn validate(cfg: &CacheConfig) -> Result<(), CacheError> {
    let bad = |m: &str| Err(CacheError::InvalidConfig(m.to_owned()));
    if cfg.enabled && cfg.max_bytes == 0 {
        return bad("max_bytes must be positive (set enabled: false to turn the cache off)");
    }
    if cfg.redis_timeout_ms == 0 || cfg.redis_timeout_ms > 10_000 {
        return bad("redis_timeout_ms must be between 1 and 10000");
    }
    if cfg.redis_url.is_some() && cfg.redis_key_prefix.is_empty() {
        return bad("redis_key_prefix must not be empty: entries would mix with other keys");
    }
    let s = &cfg.semantic;
    if !(s.min_similarity > 0.0 && s.min_similarity <= 1.0) {
        return bad("semantic.min_similarity must be in (0, 1]");
    }
    if s.enabled && s.max_entries_per_scope == 0 {
        return bad("semantic.max_entries_per_scope must be positive");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Dialect, Message, Role, Usage};

    fn req() -> ChatRequest {
        let mut r = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        r.sampling.temperature = Some(0.0);
        r
    }

    fn resp(stop_reason: StopReason) -> ChatResponse {
        ChatResponse {
            id: "r".into(),
            model: "m".into(),
            content: vec![ContentPart::text("hello")],
            stop_reason,
            usage: Usage::default(),
            created: 0,
        }
    }

    async fn cache(cfg: CacheConfig) -> ResponseCache {
        ResponseCache::new(&cfg).await.expect("valid config")
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let cfg: CacheConfig = serde_yaml_ng::from_str("{}").expect("empty config");
        assert_eq!(cfg, CacheConfig::default());
        assert!(cfg.enabled && !cfg.share_across_tenants && !cfg.cache_nondeterministic);
        assert_eq!(cfg.max_bytes, 256 * 1024 * 1024);
        assert_eq!(cfg.semantic.min_similarity, 0.95);
        assert!(serde_yaml_ng::from_str::<CacheConfig>("ttl: 5").is_err());
        assert!(
            serde_yaml_ng::from_str::<CacheConfig>("semantic: {enabled: true, floor: 1}").is_err()
        );
    }

    #[test]
    fn debug_hides_the_redis_password() {
        let cfg = CacheConfig {
            redis_url: Some("redis://:hunter2@127.0.0.1:6379".into()),
            ..CacheConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }

    #[tokio::test]
    async fn invalid_configs_are_refused() {
        for cfg in [
            CacheConfig {
                max_bytes: 0,
                ..CacheConfig::default()
            },
            CacheConfig {
                redis_timeout_ms: 0,
                ..CacheConfig::default()
            },
            CacheConfig {
                redis_url: Some("not a url".into()),
                ..CacheConfig::default()
            },
            CacheConfig {
                semantic: SemanticConfig {
                    min_similarity: 0.0,
                    ..SemanticConfig::default()
                },
                ..CacheConfig::default()
            },
        ] {
            assert!(ResponseCache::new(&cfg).await.is_err(), "{cfg:?}");
        }
        let err = ResponseCache::new(&CacheConfig {
            redis_url: Some("nope://:hunter2@x".into()),
            ..CacheConfig::default()
        })
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(!err.is_empty() && !err.contains("hunter2"), "{err}");
    }

    #[tokio::test]
    async fn ttl_rules() {
        let c = cache(CacheConfig::default()).await;
        assert!(
            c.key(&req(), "m", "t", None).is_none(),
            "no TTL, no caching"
        );
        assert_eq!(
            c.key(&req(), "m", "t", Some(7)).map(|k| k.1),
            Some(Duration::from_secs(7))
        );
        let c = cache(CacheConfig {
            default_ttl_s: Some(60),
            ..CacheConfig::default()
        })
        .await;
        assert_eq!(
            c.key(&req(), "m", "t", None).map(|k| k.1),
            Some(Duration::from_secs(60))
        );
        assert!(
            c.key(&req(), "m", "t", Some(0)).is_none(),
            "policy 0 overrides the default"
        );
        let off = cache(CacheConfig {
            enabled: false,
            default_ttl_s: Some(60),
            ..CacheConfig::default()
        })
        .await;
        assert!(off.key(&req(), "m", "t", Some(5)).is_none());
    }

    #[tokio::test]
    async fn empty_tenant_is_not_cached_unless_shared() {
        let c = cache(CacheConfig::default()).await;
        assert!(c.key(&req(), "m", "", Some(5)).is_none());
        let shared = cache(CacheConfig {
            share_across_tenants: true,
            ..CacheConfig::default()
        })
        .await;
        assert_eq!(
            shared.key(&req(), "m", "a", Some(5)).map(|k| k.0),
            shared.key(&req(), "m", "b", Some(5)).map(|k| k.0)
        );
    }

    #[tokio::test]
    async fn truncated_and_filtered_answers_are_not_stored() {
        let c = cache(CacheConfig::default()).await;
        let (k, ttl) = c.key(&req(), "m", "t", Some(60)).expect("cacheable");
        for stop in [StopReason::MaxTokens, StopReason::ContentFilter] {
            c.put(&k, &resp(stop), ttl).await;
            assert_eq!(c.get(&k).await, None);
        }
        let ok = resp(StopReason::EndTurn);
        c.put(&k, &ok, ttl).await;
        assert_eq!(c.get(&k).await, Some(ok));
    }
}
