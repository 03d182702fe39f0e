//! Console sessions and sign-ins in progress, in memory.
//!
//! The cookie holds a random 256-bit session id; the table is keyed by its SHA-256, so
//! the table itself holds nothing a browser could present. A session ends at sign-out,
//! after `idle_timeout_s` without a request, or `absolute_timeout_s` after sign-in. Each
//! has its own CSRF token, which every state-changing form or call must echo.
//!
//! Sessions live in the process: behind several replicas, route a browser to one replica
//! (sticky sessions), or it signs in again on another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::{Nonce, PkceCodeVerifier};

use crate::access::ct_eq;
use crate::auth::roles::Role;
use crate::auth::{hash_key, random_hex, AuthError};

/// How long a browser has to finish signing in at the provider.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// Bounds memory against sign-in floods: the oldest pending sign-ins are dropped.
const MAX_PENDING: usize = 10_000;

/// A signed-in person.
#[derive(Debug)]
pub struct Session {
    /// The provider's subject (stable id).
    pub subject: String,
    /// Email when the provider gives one, else the subject: what the audit trail names.
    pub name: String,
    pub role: Role,
    pub csrf: String,
    created: Instant,
    last_seen: Mutex<Instant>,
}

impl Session {
    /// Whether `given` is this session's CSRF token (constant time).
    pub fn csrf_ok(&self, given: &str) -> bool {
        ct_eq(given, &self.csrf)
    }
}

/// A sign-in sent to the provider and not back yet.
pub struct Pending {
    pub verifier: PkceCodeVerifier,
    pub nonce: Nonce,
    created: Instant,
}

pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    pending: Mutex<HashMap<String, Pending>>,
    idle: Duration,
    absolute: Duration,
}

impl SessionStore {
    pub fn new(idle: Duration, absolute: Duration) -> Self {
        SessionStore {
            sessions: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            idle,
            absolute,
        }
    }

    /// Starts a session; returns the cookie value and the session.
    pub fn create(
        &self,
        subject: String,
        name: String,
        role: Role,
    ) -> Result<(String, Arc<Session>), AuthError> {
        let id = random_hex(32)?;
        let now = Instant::now();
        let session = Arc::new(Session {
            subject,
            name,
            role,
            csrf: random_hex(32)?,
            created: now,
            last_seen: Mutex::new(now),
        });
        if let Ok(mut map) = self.sessions.lock() {
            map.retain(|_, s| self.live(s, now));
            map.insert(hash_key(&id), session.clone());
        }
        Ok((id, session))
    }

    fn live(&self, s: &Session, now: Instant) -> bool {
        let last = s.last_seen.lock().map(|l| *l).unwrap_or(s.created);
        now.duration_since(s.created) < self.absolute && now.duration_since(last) < self.idle
    }

    /// The live session of cookie value `id`, marked as used now; an expired one is
    /// removed and `None`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let now = Instant::now();
        let mut map = self.sessions.lock().ok()?;
        let key = hash_key(id);
        let s = map.get(&key)?.clone();
        if !self.live(&s, now) {
            map.remove(&key);
            return None;
        }
        if let Ok(mut last) = s.last_seen.lock() {
            *last = now;
        }
        Some(s)
    }

    /// Ends a session; returns it if it was live.
    pub fn end(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().ok()?.remove(&hash_key(id))
    }

    /// Remembers a sign-in in progress under its `state`.
    pub fn put_pending(&self, state: String, verifier: PkceCodeVerifier, nonce: Nonce) {
        if let Ok(mut map) = self.pending.lock() {
            let now = Instant::now();
            map.retain(|_, p| now.duration_since(p.created) < PENDING_TTL);
            if map.len() >= MAX_PENDING {
                if let Some(oldest) = map
                    .iter()
                    .min_by_key(|(_, p)| p.created)
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&oldest);
                }
            }
            map.insert(
                state,
                Pending {
                    verifier,
                    nonce,
                    created: now,
                },
            );
        }
    }

    /// Takes the sign-in of `state` (once: a replayed callback finds nothing).
    pub fn take_pending(&self, state: &str) -> Option<Pending> {
        let p = self.pending.lock().ok()?.remove(state)?;
        (p.created.elapsed() < PENDING_TTL).then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_or_old_or_signed_out() {
        let store = SessionStore::new(Duration::from_millis(80), Duration::from_millis(200));
        let (id, s) = store
            .create("sub".into(), "a@x".into(), Role::Viewer)
            .expect("create");
        assert!(store.get(&id).is_some());
        assert!(store.get("not-a-session").is_none());
        assert!(s.csrf_ok(&s.csrf) && !s.csrf_ok("forged"));
        // Used within the idle timeout it lives on, until the absolute timeout.
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(40));
            assert!(store.get(&id).is_some());
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(store.get(&id).is_none(), "past the absolute timeout");

        let (id, _) = store
            .create("sub".into(), "a@x".into(), Role::Viewer)
            .expect("create");
        std::thread::sleep(Duration::from_millis(100));
        assert!(store.get(&id).is_none(), "past the idle timeout");

        let (id, _) = store
            .create("sub".into(), "a@x".into(), Role::Viewer)
            .expect("create");
        assert!(store.end(&id).is_some());
        assert!(store.get(&id).is_none());
    }

    #[test]
    fn a_pending_sign_in_is_taken_once() {
        let store = SessionStore::new(Duration::from_secs(60), Duration::from_secs(60));
        let (_, verifier) = openidconnect::PkceCodeChallenge::new_random_sha256();
        store.put_pending("st".into(), verifier, Nonce::new("n".into()));
        assert!(store.take_pending("st").is_some());
        assert!(store.take_pending("st").is_none());
    }
}
