//! The ledger: one durable record per request, written in batches by a background task so
//! the request path never waits on the database.
//!
//! `record()` is a synchronous push onto an in-memory channel. The writer task drains it
//! and writes a batch when `batch_size` records are waiting or every `flush_interval_ms`,
//! whichever comes first. Each batch is one transaction that inserts the raw rows and
//! adds the same rows to the daily rollup, so rollups and raw rows never disagree.
//! `flush()` and `shutdown()` travel through the same channel, after every record sent
//! before them, so they return only once those records are committed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::QueryBuilder;
use tokio::sync::{mpsc, oneshot};

use super::AccountingConfig;
use crate::canonical::{Dialect, ErrorKind};
use crate::store::time::{day_of, now_ms, DAY_MS};
use crate::store::{with_pool, Db, StoreError};
use crate::telemetry::metrics::RouteKind;

/// What one request did. Never holds prompt or response text: only counts, names and
/// outcomes. Build it with `LedgerRecord::default()` (fresh id, current time) and fill in.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRecord {
    pub id: String,
    /// Unix milliseconds when the request arrived.
    pub ts_ms: i64,
    /// Public key id (`key_...`), never the key itself.
    pub key_id: Option<String>,
    pub team: Option<String>,
    /// The policy rule (route) that decided where the request went.
    pub route: String,
    /// What served it: the local model, a frontier provider, the cache, a policy block,
    /// or nothing (it failed before a route was chosen).
    pub served: RouteKind,
    pub provider: String,
    /// The model that answered.
    pub model: String,
    /// The model the client asked for.
    pub requested_model: String,
    /// The dialect the client spoke.
    pub dialect: Dialect,
    pub stream: bool,
    /// All prompt tokens, cached included (see `canonical::Usage`).
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cached_tokens: u32,
    /// The token counts are an estimate (the backend reported no usage).
    pub tokens_estimated: bool,
    pub cost_micros: i64,
    /// What the request would have cost on the reference model.
    pub counterfactual_micros: i64,
    pub price_known: bool,
    pub latency_ms: u64,
    pub ttft_ms: Option<u64>,
    pub cache_hit: bool,
    pub status: u16,
    pub error_kind: Option<ErrorKind>,
    /// Sensitivity category names found (never the matched values).
    pub sensitivity: Vec<String>,
    pub redactions: u32,
}

impl Default for LedgerRecord {
    fn default() -> Self {
        LedgerRecord {
            id: uuid::Uuid::new_v4().simple().to_string(),
            ts_ms: now_ms(),
            key_id: None,
            team: None,
            route: String::new(),
            served: RouteKind::None,
            provider: String::new(),
            model: String::new(),
            requested_model: String::new(),
            dialect: Dialect::OpenAi,
            stream: false,
            input_tokens: 0,
            output_tokens: 0,
            cached_tokens: 0,
            tokens_estimated: false,
            cost_micros: 0,
            counterfactual_micros: 0,
            price_known: true,
            latency_ms: 0,
            ttft_ms: None,
            cache_hit: false,
            status: 200,
            error_kind: None,
            sensitivity: Vec::new(),
            redactions: 0,
        }
    }
}

enum Msg {
    Record(Box<LedgerRecord>),
    Flush(oneshot::Sender<Result<(), StoreError>>),
    Retention(oneshot::Sender<Result<u64, StoreError>>),
    Shutdown(oneshot::Sender<Result<(), StoreError>>),
}

struct Inner {
    tx: mpsc::UnboundedSender<Msg>,
    db: Db,
    pending: AtomicUsize,
    max_pending: usize,
    dropped: AtomicU64,
    warned: AtomicBool,
}

/// Handle to the ledger writer. Cheap to clone; every clone feeds the same writer.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("engine", &self.inner.db.engine())
            .field("pending", &self.pending())
            .finish()
    }
}

/// Rows per INSERT statement: 24 binds each stays far below both engines' bind limits.
const ROWS_PER_STATEMENT: usize = 400;
/// Raw rows deleted per retention statement, so one pass never holds a long write lock.
const RETENTION_CHUNK: i64 = 5000;
const RETENTION_EVERY: Duration = Duration::from_secs(3600);
/// Attempts at the final write on shutdown before the remaining records are reported lost.
const SHUTDOWN_ATTEMPTS: u32 = 5;

impl Ledger {
    /// Spawns the writer task on the current tokio runtime.
    pub fn start(db: Db, cfg: &AccountingConfig) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            tx,
            db: db.clone(),
            pending: AtomicUsize::new(0),
            max_pending: cfg.max_pending.max(1),
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        });
        let writer = Writer {
            db,
            rx,
            inner: Arc::downgrade(&inner),
            batch_size: cfg.batch_size.max(1),
            flush_interval: Duration::from_millis(cfg.flush_interval_ms.max(1)),
            retention_days: cfg.retention_days,
            buf: Vec::new(),
        };
        tokio::spawn(writer.run());
        Ledger { inner }
    }

    /// Queues a record; never blocks and never touches the database. Past `max_pending`
    /// queued records (the database is down or far too slow) new records are dropped and
    /// counted in [`dropped`](Self::dropped) rather than growing memory without bound.
    pub fn record(&self, r: LedgerRecord) {
        let inner = &self.inner;
        if inner.pending.fetch_add(1, Ordering::AcqRel) >= inner.max_pending {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            self.count_drop("the ledger queue is full");
            return;
        }
        if inner.tx.send(Msg::Record(Box::new(r))).is_err() {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            self.count_drop("the ledger has shut down");
        }
    }

    fn count_drop(&self, why: &str) {
        let n = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        // One warning per burst: logging each drop would make an outage worse.
        if !self.inner.warned.swap(true, Ordering::Relaxed) {
            tracing::error!(dropped = n, "ledger record dropped: {why}");
        }
    }

    /// Records queued and not yet committed.
    pub fn pending(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Records refused since start (queue full or after shutdown).
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// Returns once every record queued before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Flush(tx))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Deletes raw rows older than `retention_days` now (the writer also does it hourly);
    /// returns how many were deleted.
    pub async fn run_retention(&self) -> Result<u64, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Retention(tx))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Stops the writer after committing everything queued before this call. Records
    /// sent afterwards are refused (counted as dropped).
    pub async fn shutdown(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .tx
            .send(Msg::Shutdown(tx))
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }
}

struct Writer {
    db: Db,
    rx: mpsc::UnboundedReceiver<Msg>,
    // Weak, so that dropping every `Ledger` closes the channel and ends the task.
    inner: std::sync::Weak<Inner>,
    batch_size: usize,
    flush_interval: Duration,
    retention_days: u32,
    buf: Vec<LedgerRecord>,
}

impl Writer {
    async fn run(mut self) {
        // The first tick one interval from now: an immediate tick would write a tiny
        // batch of whatever arrived during start-up.
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.flush_interval,
            self.flush_interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retention = tokio::time::interval(RETENTION_EVERY);
        retention.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(Msg::Record(r)) => {
                        self.take(*r);
                        if self.buf.len() >= self.batch_size {
                            let _ = self.write().await;
                        }
                    }
                    Some(Msg::Flush(reply)) => {
                        let _ = reply.send(self.write().await);
                    }
                    Some(Msg::Retention(reply)) => {
                        let _ = reply.send(self.retention().await);
                    }
                    Some(Msg::Shutdown(reply)) => {
                        let result = self.drain_and_stop().await;
                        let _ = reply.send(result);
                        return;
                    }
                    None => {
                        let _ = self.drain_and_stop().await;
                        return;
                    }
                },
                _ = tick.tick() => {
                    if !self.buf.is_empty() {
                        let _ = self.write().await;
                    }
                }
                _ = retention.tick() => {
                    if let Err(e) = self.retention().await {
                        tracing::warn!("ledger retention failed: {e}");
                    }
                }
            }
        }
    }

    fn take(&mut self, r: LedgerRecord) {
        self.buf.push(r);
        if let Some(inner) = self.inner.upgrade() {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Writes everything buffered. On failure the batch stays buffered and is retried on
    /// the next tick or flush, so a database outage loses nothing that is still queued.
    async fn write(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match write_batch(&self.db, &self.buf).await {
            Ok(()) => {
                self.buf.clear();
                if let Some(inner) = self.inner.upgrade() {
                    inner.warned.store(false, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    records = self.buf.len(),
                    "ledger write failed, will retry: {e}"
                );
                Err(StoreError::Write(e.to_string()))
            }
        }
    }

    async fn drain_and_stop(&mut self) -> Result<(), StoreError> {
        self.rx.close();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Record(r) => self.take(*r),
                Msg::Flush(reply) => {
                    let _ = reply.send(Ok(()));
                }
                Msg::Retention(reply) => {
                    let _ = reply.send(Ok(0));
                }
                Msg::Shutdown(reply) => {
                    let _ = reply.send(Ok(()));
                }
            }
        }
        let mut result = Ok(());
        for attempt in 0..SHUTDOWN_ATTEMPTS {
            result = self.write().await;
            if result.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
        }
        if result.is_err() {
            tracing::error!(lost = self.buf.len(), "ledger records lost at shutdown");
        }
        result
    }

    async fn retention(&mut self) -> Result<u64, StoreError> {
        if self.retention_days == 0 {
            return Ok(0);
        }
        // Whole days only: a day's raw rows go together, so a report's partial-day edges
        // are either fully present or (past retention) fully gone.
        let cutoff = (day_of(now_ms()) - i64::from(self.retention_days)) * DAY_MS;
        // Shadow pairs follow the ledger rows they compare.
        crate::shadow::store::delete_before(&self.db, cutoff).await?;
        delete_before(&self.db, cutoff).await
    }
}

#[derive(Default)]
struct Sums {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cached_tokens: i64,
    cost: i64,
    counterfactual: i64,
    savings: i64,
    unknown: i64,
    cache_hits: i64,
    errors: i64,
}

fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn clean_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| s.replace(',', "_"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn write_batch(db: &Db, recs: &[LedgerRecord]) -> Result<(), sqlx::Error> {
    with_pool!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut inserted: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in recs.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO ledger (id, ts_ms, day, key_id, team, route, provider, model, \
                 requested_model, dialect, stream, input_tokens, output_tokens, cached_tokens, \
                 tokens_estimated, cost_micros, counterfactual_micros, price_known, latency_ms, \
                 ttft_ms, cache_hit, status, error_kind, sensitivity, redactions, served) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.id.clone())
                    .push_bind(r.ts_ms)
                    .push_bind(day_of(r.ts_ms))
                    .push_bind(r.key_id.clone().unwrap_or_default())
                    .push_bind(r.team.clone().unwrap_or_default())
                    .push_bind(r.route.clone())
                    .push_bind(r.provider.clone())
                    .push_bind(r.model.clone())
                    .push_bind(r.requested_model.clone())
                    .push_bind(r.dialect.as_str())
                    .push_bind(flag(r.stream))
                    .push_bind(i64::from(r.input_tokens))
                    .push_bind(i64::from(r.output_tokens))
                    .push_bind(i64::from(r.cached_tokens))
                    .push_bind(flag(r.tokens_estimated))
                    .push_bind(r.cost_micros)
                    .push_bind(r.counterfactual_micros)
                    .push_bind(flag(r.price_known))
                    .push_bind(i64::try_from(r.latency_ms).unwrap_or(i64::MAX))
                    .push_bind(r.ttft_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)))
                    .push_bind(flag(r.cache_hit))
                    .push_bind(i64::from(r.status))
                    .push_bind(r.error_kind.map(ErrorKind::as_str))
                    .push_bind(clean_list(&r.sensitivity))
                    .push_bind(i64::from(r.redactions))
                    .push_bind(r.served.as_str());
            });
            // A record replayed with the same id (a retried batch) is inserted once, and
            // only rows actually inserted feed the rollup, keeping the two equal.
            qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
            // Not kept in the connection's statement cache: the text differs with the row
            // count, and a cached 400-row statement holds hundreds of KB, so caching them
            // grew the process by tens of MB under load for no reuse.
            let ids: Vec<String> = qb
                .build_query_scalar()
                .persistent(false)
                .fetch_all(&mut *tx)
                .await?;
            inserted.extend(ids);
        }
        let mut groups: BTreeMap<(i64, &str, &str, &str, &str), Sums> = BTreeMap::new();
        for r in recs.iter().filter(|r| inserted.remove(&r.id)) {
            let key = (
                day_of(r.ts_ms),
                r.team.as_deref().unwrap_or(""),
                r.key_id.as_deref().unwrap_or(""),
                r.model.as_str(),
                r.route.as_str(),
            );
            let s = groups.entry(key).or_default();
            s.requests += 1;
            s.input_tokens += i64::from(r.input_tokens);
            s.output_tokens += i64::from(r.output_tokens);
            s.cached_tokens += i64::from(r.cached_tokens);
            s.cost = s.cost.saturating_add(r.cost_micros);
            s.counterfactual = s.counterfactual.saturating_add(r.counterfactual_micros);
            if r.price_known {
                s.savings = s
                    .savings
                    .saturating_add(r.counterfactual_micros.saturating_sub(r.cost_micros));
            }
            s.unknown += flag(!r.price_known);
            s.cache_hits += flag(r.cache_hit);
            s.errors += flag(r.status >= 400);
        }
        let groups: Vec<_> = groups.into_iter().collect();
        for chunk in groups.chunks(ROWS_PER_STATEMENT) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO spend_daily (day, team, key_id, model, route, requests, \
                 input_tokens, output_tokens, cached_tokens, cost_micros, counterfactual_micros, \
                 savings_micros, unknown_price_requests, cache_hits, errors) ",
            );
            qb.push_values(chunk, |mut b, ((day, team, key, model, route), s)| {
                b.push_bind(*day)
                    .push_bind(team.to_string())
                    .push_bind(key.to_string())
                    .push_bind(model.to_string())
                    .push_bind(route.to_string())
                    .push_bind(s.requests)
                    .push_bind(s.input_tokens)
                    .push_bind(s.output_tokens)
                    .push_bind(s.cached_tokens)
                    .push_bind(s.cost)
                    .push_bind(s.counterfactual)
                    .push_bind(s.savings)
                    .push_bind(s.unknown)
                    .push_bind(s.cache_hits)
                    .push_bind(s.errors);
            });
            qb.push(
                " ON CONFLICT (day, team, key_id, model, route) DO UPDATE SET \
                 requests = spend_daily.requests + excluded.requests, \
                 input_tokens = spend_daily.input_tokens + excluded.input_tokens, \
                 output_tokens = spend_daily.output_tokens + excluded.output_tokens, \
                 cached_tokens = spend_daily.cached_tokens + excluded.cached_tokens, \
                 cost_micros = spend_daily.cost_micros + excluded.cost_micros, \
                 counterfactual_micros = spend_daily.counterfactual_micros + excluded.counterfactual_micros, \
                 savings_micros = spend_daily.savings_micros + excluded.savings_micros, \
                 unknown_price_requests = spend_daily.unknown_price_requests + excluded.unknown_price_requests, \
                 cache_hits = spend_daily.cache_hits + excluded.cache_hits, \
                 errors = spend_daily.errors + excluded.errors",
            );
            qb.build().persistent(false).execute(&mut *tx).await?;
        }
        tx.commit().await
    })
}

async fn delete_before(db: &Db, cutoff_ms: i64) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let n = with_pool!(db, |pool| {
            sqlx::query(
                "DELETE FROM ledger WHERE id IN \
                 (SELECT id FROM ledger WHERE ts_ms < $1 LIMIT $2)",
            )
            .bind(cutoff_ms)
            .bind(RETENTION_CHUNK)
            .execute(pool)
            .await?
            .rows_affected()
        });
        total += n;
        if n < RETENTION_CHUNK.unsigned_abs() {
            return Ok(total);
        }
        // Lets queued flushes and readers in between chunks.
        tokio::task::yield_now().await;
    }
}
