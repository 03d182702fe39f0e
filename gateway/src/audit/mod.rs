//! The audit trail: an append-only, hash-chained record of every administrative event
//! (keys and admin tokens created, rotated, revoked; policy reloaded or rejected, with the
//! hash of the files read; sign-in, failed sign-in and sign-out), with who did it, when,
//! from where, what, and the state before and after where that applies.
//!
//! It lives in the ledger's database (`audit_log`, SQLite or PostgreSQL). Entries never
//! hold secrets or prompt text: before/after are the public descriptions of what changed
//! (`KeyInfo`, `TokenInfo`, a policy version and file hash). Each entry is chained to the
//! previous one by hash (`chain.rs`), so `switchyard audit verify` detects an edited,
//! deleted or inserted row.
//!
//! Writes are serialized so the chain has no forks: one writer at a time in this process
//! (a process-wide mutex, however many `AuditLog` handles exist), across replicas a PostgreSQL advisory lock, and on SQLite the `seq` primary
//! key with a retry when another process appended first.

pub mod chain;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::Value;
use sqlx::Row;

use crate::store::time::{format_rfc3339, now_ms};
use crate::store::{with_pool, Db, StoreError};

pub use chain::{Break, VerifyReport};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The configured admin token (`SWITCHYARD_ADMIN_TOKEN`).
    AdminToken,
    /// A scoped admin token, by id.
    Token(String),
    /// A signed-in person, by their identity provider's subject or email.
    User(String),
    /// The command line, by the operating-system user running it.
    Cli(String),
    /// The gateway itself (the policy file watcher, SIGHUP).
    System(String),
    /// Nobody identified (a failed sign-in).
    Anonymous,
}

impl Actor {
    /// The CLI's actor: the OS user (`$USER`, `$LOGNAME`), or `unknown`.
    pub fn cli() -> Actor {
        let user = ["USER", "LOGNAME"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| "unknown".into());
        Actor::Cli(user)
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::AdminToken => f.write_str("admin-token"),
            Actor::Token(id) => write!(f, "token:{id}"),
            Actor::User(u) => write!(f, "user:{u}"),
            Actor::Cli(u) => write!(f, "cli:{u}"),
            Actor::System(s) => write!(f, "system:{s}"),
            Actor::Anonymous => f.write_str("anonymous"),
        }
    }
}

impl Serialize for Actor {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What happened. Stored as the dotted name of [`Action::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    KeyCreated,
    KeyRotated,
    KeyRevoked,
    TokenCreated,
    TokenRevoked,
    PolicyReloaded,
    PolicyRejected,
    SignIn,
    SignInFailed,
    SignOut,
    /// A person's role differs from their previous sign-in (their groups changed at the
    /// identity provider, or the mapping did).
    RoleChanged,
    /// A team's budget or rate limit was set or cleared (`/admin/teams`, the console).
    LimitChanged,
}

impl Action {
    pub const ALL: [Action; 12] = [
        Action::KeyCreated,
        Action::KeyRotated,
        Action::KeyRevoked,
        Action::TokenCreated,
        Action::TokenRevoked,
        Action::PolicyReloaded,
        Action::PolicyRejected,
        Action::SignIn,
        Action::SignInFailed,
        Action::SignOut,
        Action::RoleChanged,
        Action::LimitChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::KeyCreated => "key.created",
            Action::KeyRotated => "key.rotated",
            Action::KeyRevoked => "key.revoked",
            Action::TokenCreated => "token.created",
            Action::TokenRevoked => "token.revoked",
            Action::PolicyReloaded => "policy.reloaded",
            Action::PolicyRejected => "policy.rejected",
            Action::SignIn => "session.signed_in",
            Action::SignInFailed => "session.sign_in_failed",
            Action::SignOut => "session.signed_out",
            Action::RoleChanged => "role.changed",
            Action::LimitChanged => "limit.changed",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| StoreError::Invalid(format!("unknown audit action {s:?}")))
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor: Actor,
    /// The peer address the request came from; `None` for the CLI and the gateway itself.
    pub source: Option<String>,
    pub action: Action,
    /// What it was done to: a key or token id, the policy source, `dashboard`.
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl AuditEvent {
    pub fn new(actor: Actor, action: Action, target: impl Into<String>) -> Self {
        AuditEvent {
            actor,
            source: None,
            action,
            target: target.into(),
            before: None,
            after: None,
        }
    }

    pub fn source(mut self, source: Option<std::net::SocketAddr>) -> Self {
        self.source = source.map(|a| a.to_string());
        self
    }

    /// The state before (a public description: never a secret).
    pub fn before(mut self, v: impl Serialize) -> Self {
        self.before = serde_json::to_value(v).ok();
        self
    }

    pub fn after(mut self, v: impl Serialize) -> Self {
        self.after = serde_json::to_value(v).ok();
        self
    }
}

fn ser_ms<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_rfc3339(*ms))
}

/// A recorded entry, as read back (and exported, one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    #[serde(rename = "time", serialize_with = "ser_ms")]
    pub ts_ms: i64,
    pub actor: String,
    pub source: Option<String>,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub prev_hash: String,
    pub hash: String,
}

/// Which entries to list or export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Exact actor (`admin-token`, `token:tok_…`, `user:…`).
    pub actor: Option<String>,
    /// An action (`key.created`) or a family (`key`).
    pub action: Option<String>,
    pub target: Option<String>,
    /// Most entries to return; 0 is no limit (export).
    pub limit: u32,
}

/// The newest entries first when listing; export walks oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

const COLUMNS: &str =
    "seq, ts_ms, actor, source, action, target, before_json, after_json, prev_hash, hash";
/// Arbitrary constant shared by every replica: PostgreSQL serializes appends on it.
const PG_AUDIT_LOCK: i64 = 0x0053_5941_5544_4954;
const APPEND_ATTEMPTS: u32 = 5;
const VERIFY_PAGE: i64 = 1000;

/// A row as stored: the exact text the hash covers.
struct Stored {
    seq: i64,
    ts_ms: i64,
    actor: String,
    source: Option<String>,
    action: String,
    target: String,
    before: Option<String>,
    after: Option<String>,
    prev_hash: String,
    hash: String,
}

impl Stored {
    fn link(&self) -> chain::Link<'_> {
        chain::Link {
            seq: self.seq,
            ts_ms: self.ts_ms,
            actor: &self.actor,
            source: self.source.as_deref(),
            action: &self.action,
            target: &self.target,
            before: self.before.as_deref(),
            after: self.after.as_deref(),
            prev_hash: &self.prev_hash,
        }
    }

    fn into_entry(self) -> AuditEntry {
        // A column that is not valid JSON (edited by hand) is shown as the raw text: the
        // chain check is what reports the edit.
        let json =
            |s: Option<String>| s.map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)));
        AuditEntry {
            seq: self.seq,
            ts_ms: self.ts_ms,
            actor: self.actor,
            source: self.source,
            action: self.action,
            target: self.target,
            before: json(self.before),
            after: json(self.after),
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

fn stored_from_row<R>(row: &R) -> Result<Stored, sqlx::Error>
where
    R: Row,
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Stored {
        seq: row.try_get("seq")?,
        ts_ms: row.try_get("ts_ms")?,
        actor: row.try_get("actor")?,
        source: row.try_get("source")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        before: row.try_get("before_json")?,
        after: row.try_get("after_json")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// One appender at a time in this process: every handle (admin API, policy reloads,
/// sign-in) shares it, so entries written here never race for the same `seq`.
static APPEND: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Appends to and reads the audit trail. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    db: Db,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("engine", &self.db.engine())
            .finish()
    }
}

impl AuditLog {
    pub fn new(db: Db) -> Self {
        AuditLog { db }
    }

    /// Appends one entry, chained to the last, and returns it.
    pub async fn record(&self, event: AuditEvent) -> Result<AuditEntry, StoreError> {
        let _one_writer = APPEND.lock().await;
        let before = event.before.as_ref().map(Value::to_string);
        let after = event.after.as_ref().map(Value::to_string);
        let actor = event.actor.to_string();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .append_once(&event, &actor, before.as_deref(), after.as_deref())
                .await
            {
                Ok(stored) => {
                    tracing::info!(
                        target: "switchyard::audit",
                        seq = stored.seq,
                        actor = %stored.actor,
                        action = %stored.action,
                        target_id = %stored.target,
                        "audit"
                    );
                    return Ok(stored.into_entry());
                }
                // Another process appended between our read and our insert (SQLite has
                // no advisory lock; the `seq` key refuses the duplicate): read again.
                Err(e) if attempt < APPEND_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "audit append retried");
                    tokio::time::sleep(Duration::from_millis(10 * u64::from(attempt))).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn append_once(
        &self,
        event: &AuditEvent,
        actor: &str,
        before: Option<&str>,
        after: Option<&str>,
    ) -> Result<Stored, StoreError> {
        let is_pg = matches!(self.db, Db::Postgres(_));
        let ts_ms = now_ms();
        let stored = with_pool!(&self.db, |pool| {
            let mut tx = pool.begin().await?;
            if is_pg {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(PG_AUDIT_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (seq, prev_hash) = match last {
                Some((seq, hash)) => (seq + 1, hash),
                None => (1, chain::GENESIS.to_string()),
            };
            let mut stored = Stored {
                seq,
                ts_ms,
                actor: actor.to_string(),
                source: event.source.clone(),
                action: event.action.as_str().to_string(),
                target: event.target.clone(),
                before: before.map(str::to_string),
                after: after.map(str::to_string),
                prev_hash,
                hash: String::new(),
            };
            stored.hash = chain::entry_hash(&stored.link());
            sqlx::query(&format!(
                "INSERT INTO audit_log ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(stored.seq)
            .bind(stored.ts_ms)
            .bind(&stored.actor)
            .bind(&stored.source)
            .bind(&stored.action)
            .bind(&stored.target)
            .bind(&stored.before)
            .bind(&stored.after)
            .bind(&stored.prev_hash)
            .bind(&stored.hash)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            stored
        });
        Ok(stored)
    }

    /// Entries matching `filter`, in `order`.
    pub async fn list(
        &self,
        filter: &AuditFilter,
        order: Order,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE 1 = 1");
        let mut ints: Vec<i64> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        // Integers bind first ($1..), texts after: the placeholders are numbered so.
        if let Some(from) = filter.from_ms {
            ints.push(from);
            sql.push_str(&format!(" AND ts_ms >= ${}", ints.len()));
        }
        if let Some(to) = filter.to_ms {
            ints.push(to);
            sql.push_str(&format!(" AND ts_ms < ${}", ints.len()));
        }
        let mut text = |sql: &mut String, v: &str, clause: &dyn Fn(usize) -> String| {
            texts.push(v.to_string());
            sql.push_str(&clause(ints.len() + texts.len()));
        };
        if let Some(actor) = filter.actor.as_deref().filter(|s| !s.is_empty()) {
            text(&mut sql, actor, &|n| format!(" AND actor = ${n}"));
        }
        if let Some(action) = filter.action.as_deref().filter(|s| !s.is_empty()) {
            text(&mut sql, action, &|n| {
                format!(" AND (action = ${n} OR action LIKE ${n} || '.%')")
            });
        }
        if let Some(target) = filter.target.as_deref().filter(|s| !s.is_empty()) {
            text(&mut sql, target, &|n| format!(" AND target = ${n}"));
        }
        sql.push_str(match order {
            Order::NewestFirst => " ORDER BY seq DESC",
            Order::OldestFirst => " ORDER BY seq",
        });
        if filter.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", filter.limit));
        }
        let rows = with_pool!(&self.db, |pool| {
            let mut q = sqlx::query(&sql);
            for i in &ints {
                q = q.bind(*i);
            }
            for t in &texts {
                q = q.bind(t.as_str());
            }
            let rows = q.fetch_all(pool).await?;
            rows.iter()
                .map(stored_from_row)
                .collect::<Result<Vec<_>, _>>()?
        });
        Ok(rows.into_iter().map(Stored::into_entry).collect())
    }

    /// Walks the whole chain, a page at a time, and says where it first breaks.
    pub async fn verify(&self) -> Result<VerifyReport, StoreError> {
        let mut v = chain::Verifier::default();
        let mut after_seq = 0i64;
        let sql = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2");
        loop {
            let page = with_pool!(&self.db, |pool| {
                let rows = sqlx::query(&sql)
                    .bind(after_seq)
                    .bind(VERIFY_PAGE)
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(stored_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            });
            let Some(last) = page.last() else { break };
            after_seq = last.seq;
            for s in &page {
                if !v.check(&s.link(), &s.hash) {
                    return Ok(v.finish());
                }
            }
            if (page.len() as i64) < VERIFY_PAGE {
                break;
            }
        }
        Ok(v.finish())
    }

    /// Writes the matching entries as JSON Lines, oldest first; returns how many.
    pub async fn export(
        &self,
        filter: &AuditFilter,
        out: &mut dyn std::io::Write,
    ) -> Result<usize, StoreError> {
        let entries = self.list(filter, Order::OldestFirst).await?;
        for e in &entries {
            let line = serde_json::to_string(e).map_err(|e| StoreError::Write(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| StoreError::Write(e.to_string()))?;
        }
        Ok(entries.len())
    }
}

/// The hash of a policy directory's files as a reload reads them: SHA-256 over each
/// `*.yaml`/`*.yml` file's name and content, in name order. `None` for the built-in policy.
pub fn policy_files_hash(dir: Option<&std::path::Path>) -> Option<String> {
    use sha2::{Digest, Sha256};
    let dir = dir?;
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        let body = std::fs::read(&f).unwrap_or_default();
        h.update((name.as_deref().unwrap_or_default().len() as u64).to_be_bytes());
        h.update(name.as_deref().unwrap_or_default().as_bytes());
        h.update((body.len() as u64).to_be_bytes());
        h.update(&body);
    }
    Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip_through_their_stored_names() {
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().ok(), Some(a));
        }
        assert!("key.eaten".parse::<Action>().is_err());
    }

    #[test]
    fn actors_name_their_kind() {
        assert_eq!(Actor::AdminToken.to_string(), "admin-token");
        assert_eq!(Actor::Token("tok_1".into()).to_string(), "token:tok_1");
        assert_eq!(Actor::User("a@b".into()).to_string(), "user:a@b");
        assert_eq!(Actor::System("sighup".into()).to_string(), "system:sighup");
    }

    #[test]
    fn policy_hash_follows_the_files() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("a.yaml"), "x: 1\n").expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let one = policy_files_hash(Some(dir.path()));
        assert!(one.is_some());
        std::fs::write(dir.path().join("notes.txt"), "still ignored").expect("write");
        assert_eq!(policy_files_hash(Some(dir.path())), one);
        std::fs::write(dir.path().join("a.yaml"), "x: 2\n").expect("write");
        assert_ne!(policy_files_hash(Some(dir.path())), one);
        assert_eq!(policy_files_hash(None), None);
    }
}
