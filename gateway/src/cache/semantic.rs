//! The semantic tier: answers found by embedding similarity, in process only.
//!
//! Entries live in scopes of one tenant and one served model; a lookup scans its
//! scope linearly (at most `max_entries_per_scope` vectors, 384 floats each: a few
//! hundred microseconds at the default of 1,000). Scopes live in a size-bounded
//! `moka` cache, so the tier as a whole stays within its byte budget and idle scopes
//! are evicted first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::future::Cache;
use moka::Expiry;

use crate::canonical::ChatResponse;

/// Embeddings longer than this are refused: it bounds memory per entry, and no
/// sentence encoder we ship comes near it.
const MAX_DIMS: usize = 4096;

/// Per-entry bookkeeping on top of the vector and the answer.
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    /// Unit length, so similarity is a dot product.
    embedding: Box<[f32]>,
    resp: Arc<ChatResponse>,
    expires_at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Scope {
    /// Oldest first: a full scope drops its oldest entry.
    entries: VecDeque<Entry>,
    bytes: usize,
}

impl Scope {
    fn drop_expired(&mut self, now: Instant) {
        let before = self.entries.len();
        self.entries.retain(|e| e.expires_at > now);
        if self.entries.len() != before {
            self.bytes = self.entries.iter().map(|e| e.bytes).sum();
        }
    }

    fn best(&self, query: &[f32], now: Instant) -> Option<(usize, f32)> {
        let mut best: Option<(usize, f32)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.expires_at <= now || e.embedding.len() != query.len() {
                continue;
            }
            let sim = dot(&e.embedding, query);
            if best.is_none_or(|(_, b)| sim > b) {
                best = Some((i, sim));
            }
        }
        best
    }
}

/// What the moka cache holds per scope: the shared scope plus a snapshot of its size
/// and lifetime, taken when it was (re)inserted, for the weigher and the expiry.
#[derive(Clone)]
struct ScopeHandle {
    scope: Arc<Mutex<Scope>>,
    weight: u32,
    expires_at: Instant,
}

struct ScopeExpiry;

impl Expiry<Arc<(String, String)>, ScopeHandle> for ScopeExpiry {
    fn expire_after_create(
        &self,
        _: &Arc<(String, String)>,
        v: &ScopeHandle,
        now: Instant,
    ) -> Option<Duration> {
        Some(v.expires_at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &Arc<(String, String)>,
        v: &ScopeHandle,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(v.expires_at.saturating_duration_since(now))
    }
}

pub(crate) struct SemanticTier {
    scopes: Cache<Arc<(String, String)>, ScopeHandle>,
    min_similarity: f32,
    max_entries: usize,
}

impl SemanticTier {
    pub(crate) fn new(max_bytes: u64, min_similarity: f32, max_entries: usize) -> SemanticTier {
        SemanticTier {
            scopes: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_, v: &ScopeHandle| v.weight)
                .expire_after(ScopeExpiry)
                .build(),
            min_similarity,
            max_entries,
        }
    }

    pub(crate) async fn get(
        &self,
        tenant: &str,
        model: &str,
        embedding: &[f32],
    ) -> Option<(ChatResponse, f32)> {
        let query = normalized(embedding)?;
        let handle = self.scopes.get(&scope_key(tenant, model)).await?;
        let now = Instant::now();
        let scope = handle.scope.lock().ok()?;
        let (i, sim) = scope.best(&query, now)?;
        if sim < self.min_similarity {
            return None;
        }
        let resp = scope.entries.get(i)?.resp.clone();
        drop(scope);
        Some(((*resp).clone(), sim))
    }

    pub(crate) async fn put(
        &self,
        tenant: &str,
        model: &str,
        embedding: &[f32],
        resp: Arc<ChatResponse>,
        json_len: usize,
        ttl: Duration,
    ) {
        let Some(embedding) = normalized(embedding) else {
            return;
        };
        let key = scope_key(tenant, model);
        let handle = self
            .scopes
            .get_with(key.clone(), async {
                ScopeHandle {
                    scope: Arc::new(Mutex::new(Scope::default())),
                    weight: 0,
                    // Lives at least as long as the entry about to go in, so a racing
                    // put cannot see it expire and start a second scope.
                    expires_at: Instant::now() + ttl,
                }
            })
            .await;
        let now = Instant::now();
        let bytes = json_len + embedding.len() * std::mem::size_of::<f32>() + ENTRY_OVERHEAD;
        let snapshot = {
            let Ok(mut scope) = handle.scope.lock() else {
                return;
            };
            scope.drop_expired(now);
            // A near-identical question already stored would shadow or be shadowed by
            // the new one; keep only the fresher answer.
            if let Some((i, sim)) = scope.best(&embedding, now) {
                if sim >= self.min_similarity {
                    if let Some(old) = scope.entries.remove(i) {
                        scope.bytes -= old.bytes;
                    }
                }
            }
            while scope.entries.len() >= self.max_entries {
                match scope.entries.pop_front() {
                    Some(old) => scope.bytes -= old.bytes,
                    None => break,
                }
            }
            if self.max_entries > 0 {
                scope.entries.push_back(Entry {
                    embedding,
                    resp,
                    expires_at: now + ttl,
                    bytes,
                });
                scope.bytes += bytes;
            }
            let expires_at = scope
                .entries
                .iter()
                .map(|e| e.expires_at)
                .max()
                .unwrap_or(now);
            ScopeHandle {
                scope: handle.scope.clone(),
                weight: u32::try_from(scope.bytes + key.0.len() + key.1.len()).unwrap_or(u32::MAX),
                expires_at,
            }
        };
        // Re-inserting the same scope refreshes its weight and lifetime. Two racing
        // puts may leave the snapshot one entry stale; the budget is approximate by
        // that much.
        self.scopes.insert(key, snapshot).await;
    }

    pub(crate) fn entries(&self) -> u64 {
        self.scopes
            .iter()
            .map(|(_, h)| h.scope.lock().map(|s| s.entries.len() as u64).unwrap_or(0))
            .sum()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.scopes.weighted_size()
    }

    pub(crate) async fn run_pending_tasks(&self) {
        self.scopes.run_pending_tasks().await;
    }
}

fn scope_key(tenant: &str, model: &str) -> Arc<(String, String)> {
    Arc::new((tenant.to_owned(), model.to_owned()))
}

/// A unit-length copy, or `None` for vectors that cannot be compared (empty, too
/// long, zero, or not finite).
fn normalized(v: &[f32]) -> Option<Box<[f32]>> {
    if v.is_empty() || v.len() > MAX_DIMS || !v.iter().all(|x| x.is_finite()) {
        return None;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_normal() {
        return None;
    }
    Some(v.iter().map(|x| x / norm).collect())
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_rejects_unusable_vectors() {
        assert!(normalized(&[]).is_none());
        assert!(normalized(&[0.0, 0.0]).is_none());
        assert!(normalized(&[f32::NAN, 1.0]).is_none());
        assert!(normalized(&vec![1.0; MAX_DIMS + 1]).is_none());
        let n = normalized(&[3.0, 4.0]).expect("valid");
        assert!((dot(&n, &n) - 1.0).abs() < 1e-6);
    }
}
