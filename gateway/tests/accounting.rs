//! Persistence, cost accounting and virtual keys, against real databases: every
//! database test body runs on SQLite (a file in a temp dir) and on PostgreSQL (a schema
//! of its own in `SWITCHYARD_TEST_POSTGRES_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`). When PostgreSQL cannot be reached the
//! PostgreSQL variants are skipped with a message, unless `SWITCHYARD_REQUIRE_POSTGRES=1`.

mod support;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::PgSchemaGuard;

use proptest::prelude::*;
use sqlx::Row;
use switchyard::access::{Credentials, RouteTable};
use switchyard::accounting::{
    money, spend_report, spend_report_from, AccountingConfig, Cost, GroupBy, Ledger, LedgerRecord,
    PriceCatalog, SpendQuery, SpendRow, SpendSource,
};
use switchyard::admin::{cli_keys, cli_report, AdminState, KeysCommand};
use switchyard::auth::{AuthError, KeyStore, NewKey};
use switchyard::canonical::Usage;
use switchyard::store::time::{now_ms, DAY_MS};
use switchyard::store::{Db, MIGRATIONS};

// ---------------------------------------------------------------------------------------
// Harness

struct TestDb {
    db: Db,
    reconnect_url: String,
    sqlite_path: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgSchemaGuard>,
}

fn pg_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        // A missing parent directory must be created by `connect`.
        let path = dir.path().join("data").join("switchyard.db");
        let url = format!("sqlite:{}", path.display());
        let db = Db::connect(&url).await.expect("sqlite connect");
        TestDb {
            db,
            reconnect_url: url,
            sqlite_path: Some(path),
            _dir: Some(dir),
            pg: None,
        }
    }

    async fn postgres() -> Option<TestDb> {
        let url = pg_url();
        let schema = format!("sy_acct_{}", uuid::Uuid::new_v4().simple());
        let guard = PgSchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        match Db::connect_postgres_schema(&url, &schema).await {
            Ok(db) => Some(TestDb {
                db,
                reconnect_url: url,
                sqlite_path: None,
                _dir: None,
                pg: Some(guard),
            }),
            Err(e) => {
                if std::env::var("SWITCHYARD_REQUIRE_POSTGRES").as_deref() == Ok("1") {
                    panic!("PostgreSQL required but unreachable: {e}");
                }
                eprintln!("SKIPPED: PostgreSQL unreachable ({e}); set SWITCHYARD_REQUIRE_POSTGRES=1 to fail instead");
                None
            }
        }
    }

    async fn reconnect(&self) -> Db {
        match &self.pg {
            Some(g) => Db::connect_postgres_schema(&self.reconnect_url, &g.schema)
                .await
                .expect("pg reconnect"),
            None => Db::connect(&self.reconnect_url)
                .await
                .expect("sqlite reconnect"),
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        count(&self.db, sql).await
    }
}

async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        Db::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
    }
    .expect("count query")
}

/// Every text value of every row of `table`.
async fn all_text(db: &Db, table: &str) -> Vec<String> {
    let sql = format!("SELECT * FROM {table}");
    let mut out = Vec::new();
    match db {
        Db::Sqlite(p) => {
            for row in sqlx::query(&sql).fetch_all(p).await.expect("select") {
                for i in 0..row.len() {
                    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                        out.push(s);
                    }
                }
            }
        }
        Db::Postgres(p) => {
            for row in sqlx::query(&sql).fetch_all(p).await.expect("select") {
                for i in 0..row.len() {
                    if let Ok(Some(s)) = row.try_get::<Option<String>, _>(i) {
                        out.push(s);
                    }
                }
            }
        }
    }
    out
}

/// Runs each named `async fn(&TestDb)` once on SQLite and once on PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let t = super::TestDb::sqlite().await;
                super::$name(&t).await;
                t.db.close().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(t) = super::TestDb::postgres().await {
                    super::$name(&t).await;
                    t.db.close().await;
                }
            }
        }
    )*};
}

on_both!(
    migrations_are_idempotent,
    ledger_loses_nothing_under_concurrency,
    ledger_flushes_on_interval_without_being_asked,
    ledger_writes_full_batches_before_the_interval,
    keys_revocation_reaches_other_replicas_within_ttl,
    rotation_invalidates_the_old_key,
    plain_keys_are_never_stored,
    admin_api_over_http,
    spend_report_groups_and_sums_exactly,
    rollups_equal_raw_sums,
    retention_deletes_raw_rows_but_keeps_rollups,
    cli_helpers,
    shadow_pairs_round_trip_filter_and_expire,
    team_limits_persist_seed_and_audit,
);

fn fast_cfg(flush_ms: u64, batch: usize) -> AccountingConfig {
    AccountingConfig {
        flush_interval_ms: flush_ms,
        batch_size: batch,
        ..AccountingConfig::default()
    }
}

async fn wait_for(db: &Db, sql: &str, want: i64, within: Duration) -> i64 {
    let start = Instant::now();
    loop {
        let n = count(db, sql).await;
        if n >= want || start.elapsed() > within {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Store

async fn migrations_are_idempotent(t: &TestDb) {
    let latest = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    assert_eq!(t.db.schema_version().await.expect("version"), latest);
    t.db.migrate().await.expect("second migrate");
    t.db.migrate().await.expect("third migrate");
    let again = t.reconnect().await;
    again.migrate().await.expect("migrate after reconnect");
    assert_eq!(again.schema_version().await.expect("version"), latest);
    assert_eq!(
        t.count("SELECT COUNT(*) FROM switchyard_migrations").await,
        MIGRATIONS.len() as i64
    );
    // The tables the rest of the system relies on exist and are empty.
    for table in ["ledger", "spend_daily", "api_keys"] {
        assert_eq!(t.count(&format!("SELECT COUNT(*) FROM {table}")).await, 0);
    }
    if let Db::Sqlite(p) = &t.db {
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(p)
            .await
            .expect("pragma");
        assert_eq!(mode.to_lowercase(), "wal");
    }
    again.close().await;
}

// ---------------------------------------------------------------------------------------
// Ledger

fn rec(team: &str, model: &str, cost: i64) -> LedgerRecord {
    LedgerRecord {
        team: Some(team.into()),
        key_id: Some(format!("key_{team}")),
        model: model.into(),
        requested_model: model.into(),
        route: "default".into(),
        provider: "mock".into(),
        dialect: switchyard::canonical::Dialect::OpenAi,
        input_tokens: 10,
        output_tokens: 5,
        cost_micros: cost,
        counterfactual_micros: cost * 3,
        ..LedgerRecord::default()
    }
}

async fn ledger_loses_nothing_under_concurrency(t: &TestDb) {
    let ledger = Ledger::start(t.db.clone(), &fast_cfg(1000, 500));
    let mut tasks = Vec::new();
    for task in 0..40 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..250 {
                l.record(rec(&format!("team{}", task % 7), "gpt-4o", i));
                if i % 50 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    ledger.shutdown().await.expect("shutdown");
    assert_eq!(t.count("SELECT COUNT(*) FROM ledger").await, 10_000);
    assert_eq!(
        t.count("SELECT CAST(SUM(requests) AS BIGINT) FROM spend_daily")
            .await,
        10_000
    );
    assert_eq!(ledger.dropped(), 0);
    assert_eq!(ledger.pending(), 0);
    // After shutdown nothing is accepted silently: it is counted as dropped.
    ledger.record(rec("late", "gpt-4o", 1));
    assert_eq!(ledger.dropped(), 1);
    assert!(ledger.flush().await.is_err());
}

async fn ledger_flushes_on_interval_without_being_asked(t: &TestDb) {
    let ledger = Ledger::start(t.db.clone(), &fast_cfg(100, 100_000));
    for i in 0..37 {
        ledger.record(rec("a", "gpt-4o", i));
    }
    let n = wait_for(
        &t.db,
        "SELECT COUNT(*) FROM ledger",
        37,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(n, 37, "records were not written by the interval flush");
    ledger.shutdown().await.expect("shutdown");
}

async fn ledger_writes_full_batches_before_the_interval(t: &TestDb) {
    let ledger = Ledger::start(t.db.clone(), &fast_cfg(3_600_000, 100));
    for i in 0..250 {
        ledger.record(rec("a", "gpt-4o", i));
    }
    let n = wait_for(
        &t.db,
        "SELECT COUNT(*) FROM ledger",
        200,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        n, 200,
        "two full batches are written, the partial one waits"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(t.count("SELECT COUNT(*) FROM ledger").await, 200);
    ledger.flush().await.expect("flush");
    assert_eq!(t.count("SELECT COUNT(*) FROM ledger").await, 250);
    ledger.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------
// Keys

fn new_key(team: &str) -> NewKey {
    NewKey {
        team: team.into(),
        user: Some("alice".into()),
        app: Some("notebook".into()),
        tags: vec!["prod".into(), "eu".into()],
        name: Some("alice's notebook".into()),
    }
}

async fn keys_revocation_reaches_other_replicas_within_ttl(t: &TestDb) {
    let ttl = Duration::from_millis(300);
    // Two replicas sharing one database, each with its own cache.
    let a = KeyStore::new(t.db.clone(), ttl);
    let b = KeyStore::new(t.db.clone(), ttl);
    let (info, plain) = a.create(new_key("red")).await.expect("create");
    assert!(plain.starts_with("sk-sy-") && plain.len() == 70);
    assert!(info.id.starts_with("key_"));
    assert!(plain.starts_with(&info.prefix));
    let got = a
        .authenticate(&plain)
        .await
        .expect("auth")
        .expect("known key");
    assert_eq!(got, info);
    assert_eq!(got.tags, vec!["prod".to_string(), "eu".to_string()]);
    assert!(b.authenticate(&plain).await.expect("auth").is_some());
    // Unknown, malformed and empty keys are rejected.
    let other = format!("sk-sy-{}", "0".repeat(64));
    assert!(a.authenticate(&other).await.expect("auth").is_none());
    assert!(a.authenticate("sk-sy-short").await.expect("auth").is_none());
    assert!(a.authenticate("").await.expect("auth").is_none());

    let revoked = b.revoke(&info.id).await.expect("revoke");
    assert!(revoked.revoked_at.is_some());
    // The replica that revoked refuses at once; the other one serves its cache...
    assert!(b.authenticate(&plain).await.expect("auth").is_none());
    assert!(a.authenticate(&plain).await.expect("auth").is_some());
    // ...and refuses once the TTL has passed.
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(a.authenticate(&plain).await.expect("auth").is_none());
    assert!(matches!(
        b.revoke(&info.id).await,
        Err(AuthError::NotFound(_))
    ));
    let listed = a.list().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());
}

async fn rotation_invalidates_the_old_key(t: &TestDb) {
    let ttl = Duration::from_millis(200);
    let a = KeyStore::new(t.db.clone(), ttl);
    let b = KeyStore::new(t.db.clone(), ttl);
    let (info, old) = a.create(new_key("blue")).await.expect("create");
    assert!(b.authenticate(&old).await.expect("auth").is_some());
    let (rotated, new) = a.rotate(&info.id).await.expect("rotate");
    assert_ne!(old, new);
    assert_eq!(rotated.id, info.id, "the id survives rotation");
    assert_eq!(rotated.team, "blue");
    assert!(a.authenticate(&old).await.expect("auth").is_none());
    assert_eq!(
        a.authenticate(&new).await.expect("auth").map(|k| k.id),
        Some(info.id.clone())
    );
    tokio::time::sleep(ttl + Duration::from_millis(150)).await;
    assert!(b.authenticate(&old).await.expect("auth").is_none());
    assert!(b.authenticate(&new).await.expect("auth").is_some());
    a.revoke(&info.id).await.expect("revoke");
    assert!(matches!(
        a.rotate(&info.id).await,
        Err(AuthError::NotFound(_))
    ));
    assert!(matches!(
        a.rotate("key_doesnotexist").await,
        Err(AuthError::NotFound(_))
    ));
}

async fn plain_keys_are_never_stored(t: &TestDb) {
    let ks = KeyStore::new(t.db.clone(), Duration::from_secs(5));
    let mut secrets = Vec::new();
    for team in ["a", "b", "c"] {
        let (info, plain) = ks.create(new_key(team)).await.expect("create");
        secrets.push(plain);
        let (_, rotated) = ks.rotate(&info.id).await.expect("rotate");
        secrets.push(rotated);
    }
    let mut stored = Vec::new();
    for table in ["api_keys", "ledger", "spend_daily", "switchyard_migrations"] {
        stored.extend(all_text(&t.db, table).await);
    }
    assert!(!stored.is_empty());
    for s in &secrets {
        let body = &s["sk-sy-".len()..];
        for v in &stored {
            assert!(
                !v.contains(body),
                "a plain key (or its random part) is stored in the database"
            );
        }
    }
    // What is stored is the hash of each current key (rotation replaced the first ones).
    for s in secrets.iter().skip(1).step_by(2) {
        assert!(stored.contains(&switchyard::auth::hash_key(s)));
    }
    if let Some(path) = &t.sqlite_path {
        // Also the raw bytes on disk: the database file and its WAL.
        let mut bytes = std::fs::read(path).unwrap_or_default();
        bytes.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        assert!(bytes.len() > 1000);
        for s in &secrets {
            let body = &s.as_bytes()["sk-sy-".len()..];
            assert!(!bytes.windows(body.len()).any(|w| w == body));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Admin HTTP

const ADMIN_TOKEN: &str = "test-admin-token-5f2e";

async fn serve(
    state: Arc<AdminState>,
    token: Option<&str>,
) -> (String, tokio::task::JoinHandle<()>) {
    let creds = Arc::new(Credentials::admin_only(token.map(str::to_string)));
    let router = switchyard::admin::routes(RouteTable::new(creds), state).into_router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), task)
}

async fn admin_api_over_http(t: &TestDb) {
    let keys = KeyStore::new(t.db.clone(), Duration::from_secs(60));
    let ledger = Ledger::start(t.db.clone(), &AccountingConfig::default());
    let state = Arc::new(AdminState::new(keys.clone(), ledger.clone(), None));
    let (base, server) = serve(state, Some(ADMIN_TOKEN)).await;
    let http = reqwest::Client::new();

    // 401 JSON without the token, with a wrong one, with the right one in the wrong place.
    for auth in [
        None,
        Some("Bearer wrong".to_string()),
        Some(format!("Bearer {ADMIN_TOKEN}x")),
        Some(format!("Basic {ADMIN_TOKEN}")),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, "/admin/keys"),
            (reqwest::Method::POST, "/admin/keys"),
            (reqwest::Method::DELETE, "/admin/keys/key_x"),
            (reqwest::Method::POST, "/admin/keys/key_x/rotate"),
            (reqwest::Method::GET, "/admin/spend"),
        ] {
            let mut req = http
                .request(method.clone(), format!("{base}{path}"))
                .json(&serde_json::json!({"team": "x"}));
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status(), 401, "{method} {path} with {auth:?}");
            let body: serde_json::Value = resp.json().await.expect("json error body");
            assert_eq!(body["error"]["type"], "unauthorized");
        }
    }
    assert!(keys.list().await.expect("list").is_empty());

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let created: serde_json::Value = {
        let resp = http
            .post(format!("{base}/admin/keys"))
            .header("authorization", &bearer)
            .json(&serde_json::json!({"team": "platform", "tags": ["ci"], "name": "ci bot"}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 201);
        resp.json().await.expect("json")
    };
    let plain = created["key"]
        .as_str()
        .expect("key in response")
        .to_string();
    let id = created["id"].as_str().expect("id").to_string();
    assert_eq!(created["team"], "platform");
    assert_eq!(
        keys.authenticate(&plain).await.expect("auth").map(|k| k.id),
        Some(id.clone())
    );

    let bad = http
        .post(format!("{base}/admin/keys"))
        .header("authorization", &bearer)
        .json(&serde_json::json!({"team": ""}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);
    let bad = http
        .post(format!("{base}/admin/keys"))
        .header("authorization", &bearer)
        .json(&serde_json::json!({"team": "x", "admin": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400, "unknown fields are refused");

    let list: serde_json::Value = http
        .get(format!("{base}/admin/keys"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let listed = list["keys"].as_array().expect("keys array");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(listed[0].get("key").is_none(), "list never shows a key");
    assert!(!list.to_string().contains(&plain[6..]));

    let rotated: serde_json::Value = http
        .post(format!("{base}/admin/keys/{id}/rotate"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let new_plain = rotated["key"].as_str().expect("rotated key").to_string();
    assert!(keys.authenticate(&plain).await.expect("auth").is_none());
    assert!(keys.authenticate(&new_plain).await.expect("auth").is_some());

    let revoked = http
        .delete(format!("{base}/admin/keys/{id}"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("send");
    assert_eq!(revoked.status(), 200);
    let revoked: serde_json::Value = revoked.json().await.expect("json");
    assert!(revoked["revoked_at"].is_string());
    assert!(keys.authenticate(&new_plain).await.expect("auth").is_none());
    let again = http
        .delete(format!("{base}/admin/keys/{id}"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("send");
    assert_eq!(again.status(), 404);

    ledger.record(rec("platform", "gpt-4o", 1234));
    ledger.flush().await.expect("flush");
    let spend: serde_json::Value = http
        .get(format!(
            "{base}/admin/spend?group_by=team&from=2020-01-01T00:00:00Z&to={}",
            now_ms() / 1000 + 60
        ))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let rows = spend["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["group"], "platform");
    assert_eq!(rows[0]["cost_usd"], "0.001234");
    assert_eq!(rows[0]["counterfactual_usd"], "0.003702");
    assert_eq!(rows[0]["savings_usd"], "0.002468");
    for q in [
        "group_by=colour",
        "from=yesterday",
        "from=2025-01-02&to=2025-01-01",
    ] {
        let resp = http
            .get(format!("{base}/admin/spend?{q}"))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 400, "{q}");
    }
    server.abort();

    // No configured token: the admin API is closed, not open.
    let closed = Arc::new(AdminState::new(keys, ledger.clone(), None));
    let (base, server) = serve(closed, None).await;
    let resp = http
        .get(format!("{base}/admin/keys"))
        .header("authorization", "Bearer ")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    // It says why, and what to do: the token is read when the gateway starts.
    let body: serde_json::Value = resp.json().await.expect("json error body");
    assert_eq!(body["error"]["type"], "admin_disabled");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("admin API disabled") && message.contains("SWITCHYARD_ADMIN_TOKEN"),
        "{message}"
    );
    server.abort();
    ledger.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------
// Reports and rollups

/// Deterministic pseudo-random numbers (xorshift), so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_records(seed: u64, n: usize, first_day: i64, days: i64) -> Vec<LedgerRecord> {
    let mut rng = Rng(seed);
    let teams = ["red", "blue", "green"];
    let models = ["gpt-4o", "claude-sonnet-4-5", "local-qwen", "mystery"];
    let routes = ["default", "private", "cheap"];
    (0..n)
        .map(|_| {
            let model = models[rng.below(4) as usize];
            let known = model != "mystery";
            let cost = if known { rng.below(50_000) as i64 } else { 0 };
            let team = teams[rng.below(3) as usize];
            LedgerRecord {
                ts_ms: (first_day + rng.below(days as u64) as i64) * DAY_MS
                    + rng.below(DAY_MS as u64) as i64,
                team: (rng.below(10) != 0).then(|| team.to_string()),
                key_id: Some(format!("key_{}{}", team, rng.below(2))),
                route: routes[rng.below(3) as usize].into(),
                provider: "p".into(),
                model: model.into(),
                requested_model: model.into(),
                dialect: switchyard::canonical::Dialect::Anthropic,
                input_tokens: rng.below(5000) as u32,
                output_tokens: rng.below(2000) as u32,
                cached_tokens: rng.below(100) as u32,
                cost_micros: cost,
                counterfactual_micros: rng.below(80_000) as i64,
                price_known: known,
                cache_hit: rng.below(5) == 0,
                status: if rng.below(20) == 0 { 502 } else { 200 },
                ..LedgerRecord::default()
            }
        })
        .collect()
}

fn group_of(g: GroupBy, r: &LedgerRecord) -> String {
    let or_none = |s: Option<&str>| s.unwrap_or("(none)").to_string();
    match g {
        GroupBy::Team => or_none(r.team.as_deref()),
        GroupBy::Key => or_none(r.key_id.as_deref()),
        GroupBy::Model => r.model.clone(),
        GroupBy::Route => r.route.clone(),
        GroupBy::Day => switchyard::store::time::format_day(r.ts_ms.div_euclid(DAY_MS)),
    }
}

fn expected(g: GroupBy, recs: &[LedgerRecord], from: i64, to: i64) -> Vec<SpendRow> {
    use std::collections::BTreeMap;
    let mut m: BTreeMap<String, [i64; 8]> = BTreeMap::new();
    for r in recs.iter().filter(|r| r.ts_ms >= from && r.ts_ms < to) {
        let e = m.entry(group_of(g, r)).or_default();
        e[0] += 1;
        e[1] += i64::from(r.input_tokens);
        e[2] += i64::from(r.output_tokens);
        e[3] += r.cost_micros;
        e[4] += r.counterfactual_micros;
        if r.price_known {
            e[5] += r.counterfactual_micros - r.cost_micros;
        }
        e[6] += i64::from(!r.price_known);
        e[7] += i64::from(r.cache_hit);
    }
    let mut rows: Vec<SpendRow> = m
        .into_iter()
        .map(|(group, e)| SpendRow {
            group,
            requests: e[0],
            input_tokens: e[1],
            output_tokens: e[2],
            cost_usd: money::format_usd(e[3]),
            counterfactual_usd: money::format_usd(e[4]),
            savings_usd: money::format_usd(e[5]),
            unknown_price_requests: e[6],
            cache_hits: e[7],
            cost_micros: e[3],
            counterfactual_micros: e[4],
            savings_micros: e[5],
        })
        .collect();
    sort_rows(&mut rows);
    rows
}

fn sort_rows(rows: &mut [SpendRow]) {
    rows.sort_by(|a, b| a.group.cmp(&b.group));
}

async fn report(db: &Db, g: GroupBy, from: i64, to: i64, src: SpendSource) -> Vec<SpendRow> {
    let q = SpendQuery {
        group_by: g,
        from_ms: Some(from),
        to_ms: Some(to),
    };
    let mut rows = spend_report_from(db, &q, src).await.expect("report");
    sort_rows(&mut rows);
    rows
}

const ALL_GROUPS: [GroupBy; 5] = [
    GroupBy::Team,
    GroupBy::Key,
    GroupBy::Model,
    GroupBy::Route,
    GroupBy::Day,
];

async fn spend_report_groups_and_sums_exactly(t: &TestDb) {
    let today = now_ms().div_euclid(DAY_MS);
    let recs = random_records(7, 3000, today - 6, 6);
    let ledger = Ledger::start(t.db.clone(), &fast_cfg(50, 256));
    for r in &recs {
        ledger.record(r.clone());
    }
    ledger.flush().await.expect("flush");
    let (lo, hi) = ((today - 6) * DAY_MS, today * DAY_MS);
    // Whole range, a range with partial days at both edges, and one inside a single day.
    let ranges = [
        (lo, hi),
        (lo + 5 * 3_600_000 + 17, hi - 7 * 3_600_000 - 3),
        (lo + 2 * DAY_MS + 1000, lo + 2 * DAY_MS + 20 * 3_600_000),
    ];
    for g in ALL_GROUPS {
        for (from, to) in ranges {
            let got = report(&t.db, g, from, to, SpendSource::Auto).await;
            assert_eq!(
                got,
                expected(g, &recs, from, to),
                "group_by {g:?} {from}..{to}"
            );
        }
    }
    // The public entry point with its default ordering: most expensive first.
    let q = SpendQuery::parse("team", None, None).expect("query");
    let rows = spend_report(&t.db, &q).await.expect("report");
    assert!(rows
        .windows(2)
        .all(|w| w[0].cost_micros >= w[1].cost_micros));
    assert_eq!(rows.iter().map(|r| r.requests).sum::<i64>(), 3000);
    assert!(rows.iter().any(|r| r.group == "(none)"));
    ledger.shutdown().await.expect("shutdown");
}

async fn rollups_equal_raw_sums(t: &TestDb) {
    let today = now_ms().div_euclid(DAY_MS);
    let recs = random_records(99, 2500, today - 10, 11);
    let ledger = Ledger::start(t.db.clone(), &fast_cfg(1000, 300));
    for chunk in recs.chunks(700) {
        for r in chunk {
            ledger.record(r.clone());
        }
        ledger.flush().await.expect("flush");
    }
    // Replaying records with ids already stored must not inflate the rollups.
    for r in recs.iter().take(100) {
        ledger.record(r.clone());
    }
    ledger.flush().await.expect("flush");
    assert_eq!(t.count("SELECT COUNT(*) FROM ledger").await, 2500);
    let (from, to) = ((today - 10) * DAY_MS, (today + 1) * DAY_MS);
    for g in ALL_GROUPS {
        let raw = report(&t.db, g, from, to, SpendSource::Raw).await;
        let rollup = report(&t.db, g, from, to, SpendSource::Rollup).await;
        assert_eq!(raw, rollup, "group_by {g:?}");
        assert_eq!(raw, expected(g, &recs, from, to));
    }
    assert_eq!(
        t.count("SELECT CAST(SUM(errors) AS BIGINT) FROM spend_daily")
            .await,
        recs.iter().filter(|r| r.status >= 400).count() as i64
    );
    ledger.shutdown().await.expect("shutdown");
}

async fn retention_deletes_raw_rows_but_keeps_rollups(t: &TestDb) {
    let today = now_ms().div_euclid(DAY_MS);
    let cfg = AccountingConfig {
        retention_days: 3,
        ..fast_cfg(1000, 500)
    };
    let old = random_records(5, 400, today - 20, 10);
    let recent = random_records(6, 300, today - 2, 2);
    let ledger = Ledger::start(t.db.clone(), &cfg);
    for r in old.iter().chain(&recent) {
        ledger.record(r.clone());
    }
    ledger.flush().await.expect("flush");
    // The writer also runs retention at start-up, possibly after some of these records
    // were written, so the explicit pass may find fewer than all 400 old rows.
    let deleted = ledger.run_retention().await.expect("retention");
    assert!(deleted <= 400);
    assert_eq!(t.count("SELECT COUNT(*) FROM ledger").await, 300);
    assert_eq!(ledger.run_retention().await.expect("retention"), 0);
    let all: Vec<LedgerRecord> = old.iter().chain(&recent).cloned().collect();
    let (from, to) = ((today - 20) * DAY_MS, (today + 1) * DAY_MS);
    for g in ALL_GROUPS {
        let got = report(&t.db, g, from, to, SpendSource::Auto).await;
        assert_eq!(got, expected(g, &all, from, to), "group_by {g:?}");
    }
    ledger.shutdown().await.expect("shutdown");
}

async fn cli_helpers(t: &TestDb) {
    let out = cli_keys(
        t.db.clone(),
        KeysCommand::Create(NewKey {
            team: "ops".into(),
            ..NewKey::default()
        }),
    )
    .await
    .expect("create");
    assert!(out.contains("team=ops") && out.contains("sk-sy-") && out.contains("not shown again"));
    let list = cli_keys(t.db.clone(), KeysCommand::List)
        .await
        .expect("list");
    let id = list
        .split_whitespace()
        .next()
        .expect("id column")
        .to_string();
    assert!(id.starts_with("key_"));
    let rotated = cli_keys(t.db.clone(), KeysCommand::Rotate { id: id.clone() })
        .await
        .expect("rotate");
    assert!(rotated.contains("sk-sy-"));
    let revoked = cli_keys(t.db.clone(), KeysCommand::Revoke { id: id.clone() })
        .await
        .expect("revoke");
    assert!(revoked.contains("REVOKED"));
    assert!(cli_keys(t.db.clone(), KeysCommand::Revoke { id })
        .await
        .is_err());

    let ledger = Ledger::start(t.db.clone(), &AccountingConfig::default());
    ledger.record(rec("ops", "gpt-4o", 2_500_000));
    ledger.record(rec("dev, \"qa\"", "gpt-4o", 1));
    ledger.flush().await.expect("flush");
    let q = SpendQuery::parse("team", None, None).expect("query");
    let table = cli_report(t.db.clone(), q.clone(), false)
        .await
        .expect("table");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("team") && lines[0].contains("cost_usd"));
    assert!(lines[1].starts_with("ops") && lines[1].contains("2.500000"));
    let csv = cli_report(t.db.clone(), q, true).await.expect("csv");
    assert!(csv.starts_with("team,requests,input_tokens,output_tokens,cost_usd,"));
    assert!(csv.contains("ops,1,10,5,2.500000,7.500000,5.000000,0,0\n"));
    assert!(csv.contains("\"dev, \"\"qa\"\"\",1,"));
    ledger.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------
// Prices and cost arithmetic (no database)

#[test]
fn prices_file_merges_over_the_builtin() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("prices.yaml");
    std::fs::write(
        &path,
        "models:\n  - model: gpt-4o\n    effective: 2024-01-01\n    input: 1.00\n    output: \"4\"\n  - model: acme-*\n    effective: 2024-01-01\n    input: 0.5\n    output: 0.75\n",
    )
    .expect("write");
    let cfg = AccountingConfig {
        prices_file: Some(path.clone()),
        ..AccountingConfig::default()
    };
    let c = PriceCatalog::load(&cfg).expect("load");
    let p = c.lookup("gpt-4o").expect("gpt-4o");
    assert_eq!(
        (p.input_per_mtok, p.output_per_mtok),
        (1_000_000, 4_000_000)
    );
    // Unset cached/cache-write prices default to the input price.
    assert_eq!(p.cached_input_per_mtok, 1_000_000);
    assert_eq!(
        c.lookup("acme-7b").map(|p| p.output_per_mtok),
        Some(750_000)
    );
    // Untouched builtin entries remain.
    assert_eq!(
        c.lookup("gpt-4o-mini").map(|p| p.input_per_mtok),
        Some(150_000)
    );

    let bad_ref = AccountingConfig {
        reference_model: "nobody-knows".into(),
        ..AccountingConfig::default()
    };
    assert!(PriceCatalog::load(&bad_ref).is_err());
    for bad in [
        "models:\n  - model: x\n    effective: 2024-01-01\n    input: 1\n    output: 1\n    inptu: 2\n",
        "models:\n  - model: x\n    effective: 2024-02-30\n    input: 1\n    output: 1\n",
        "models:\n  - model: x\n    effective: 2024-01-01\n    input: 0.0000001\n    output: 1\n",
        "models:\n  - model: x\n    effective: 2024-01-01\n    input: -1\n    output: 1\n",
    ] {
        std::fs::write(&path, bad).expect("write");
        assert!(PriceCatalog::load(&cfg).is_err(), "accepted: {bad}");
    }
    let missing = AccountingConfig {
        prices_file: Some(dir.path().join("absent.yaml")),
        ..AccountingConfig::default()
    };
    assert!(PriceCatalog::load(&missing).is_err());
}

#[test]
fn apply_fills_cost_counterfactual_and_flags() {
    let c = PriceCatalog::builtin();
    let usage = Usage {
        input_tokens: 1_000_000,
        output_tokens: 1_000_000,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: 0,
    };
    let mut r = LedgerRecord {
        model: "gpt-4o-mini".into(),
        ..LedgerRecord::default()
    };
    c.apply(&mut r, &usage, true);
    assert_eq!(r.cost_micros, 750_000);
    assert_eq!(r.counterfactual_micros, 12_500_000);
    assert!(r.price_known && r.tokens_estimated);
    let mut r = LedgerRecord {
        model: "mystery-model".into(),
        ..LedgerRecord::default()
    };
    c.apply(&mut r, &usage, false);
    assert!(!r.price_known);
    assert_eq!(r.cost_micros, 0);
    assert_eq!(r.counterfactual_micros, 12_500_000);
    let mut r = LedgerRecord::default();
    c.apply_local(&mut r, &usage, false, 1_800_000.0, true);
    assert_eq!(r.cost_micros, 1_250_000);
    assert!(r.price_known);
}

const PRICED: [&str; 6] = [
    "gpt-4o",
    "gpt-4o-mini",
    "o3",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5",
    "claude-opus-4-1-20250805",
];

fn usage_strategy() -> impl Strategy<Value = Usage> {
    (
        0u32..5_000_000,
        0u32..2_000_000,
        0u32..5_000_000,
        0u32..1_000_000,
    )
        .prop_map(|(input, output, cached, written)| Usage {
            input_tokens: input,
            output_tokens: output,
            cache_read_input_tokens: cached,
            cache_creation_input_tokens: written,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cost_is_monotone_in_tokens(
        m in 0usize..PRICED.len(),
        u in usage_strategy(),
        more_in in 0u32..1_000_000,
        more_out in 0u32..1_000_000,
    ) {
        let c = PriceCatalog::builtin();
        let base = c.cost(PRICED[m], &u);
        let bigger = Usage {
            input_tokens: u.input_tokens + more_in,
            output_tokens: u.output_tokens + more_out,
            ..u
        };
        let grown = c.cost(PRICED[m], &bigger);
        prop_assert!(base.price_known && grown.price_known);
        prop_assert!(grown.micros >= base.micros);
        prop_assert!(base.micros >= 0);
    }

    #[test]
    fn cost_rounds_up_once_to_whole_micros(m in 0usize..PRICED.len(), u in usage_strategy()) {
        let c = PriceCatalog::builtin();
        let p = c.lookup(PRICED[m]).expect("priced").clone();
        let input = u128::from(u.input_tokens);
        let cached = u128::from(u.cache_read_input_tokens).min(input);
        let written = u128::from(u.cache_creation_input_tokens).min(input - cached);
        let exact = (input - cached - written) * p.input_per_mtok as u128
            + cached * p.cached_input_per_mtok as u128
            + written * p.cache_write_per_mtok as u128
            + u128::from(u.output_tokens) * p.output_per_mtok as u128;
        let got = c.cost(PRICED[m], &u).micros as u128;
        // `exact` is in millionths of a micro-dollar: the result is its ceiling.
        prop_assert!(got * 1_000_000 >= exact);
        prop_assert!(got == 0 || (got - 1) * 1_000_000 < exact);
        // The pre-dispatch estimate (all input uncached) never undershoots the real cost.
        let est = c.estimate(PRICED[m], u.input_tokens, u.output_tokens);
        prop_assert!(est.price_known && est.micros as u128 >= got);
    }

    #[test]
    fn unknown_prices_are_flagged_never_zero_silently(
        name in "[a-z]{3,12}-unknown-[0-9]{1,4}",
        u in usage_strategy(),
    ) {
        let c = PriceCatalog::builtin();
        prop_assert!(c.lookup(&name).is_none());
        prop_assert_eq!(c.cost(&name, &u), Cost { micros: 0, price_known: false });
        prop_assert!(!c.estimate(&name, 10, 10).price_known);
    }

    #[test]
    fn local_cost_is_monotone_and_non_negative(a in -10.0f64..1e9, b in 0.0f64..1e9, gpu in any::<bool>()) {
        let c = PriceCatalog::builtin();
        let x = c.local_cost(a, gpu);
        let y = c.local_cost(a.max(0.0) + b, gpu);
        prop_assert!(x >= 0 && y >= x);
    }
}

/// The shadow side-table on both engines: every field survives, filters apply, newest
/// first, and retention removes old pairs with the ledger rows they compared.
async fn shadow_pairs_round_trip_filter_and_expire(t: &TestDb) {
    use switchyard::shadow::store::{insert, load, PairFilter, PairRecord, Side};
    let today = now_ms().div_euclid(DAY_MS);
    let pair = |i: i64, team: &str, day: i64| PairRecord {
        id: format!("pair-{i}"),
        request_id: format!("req-{i}"),
        ts_ms: day * DAY_MS + 1000 + i,
        team: team.into(),
        key_id: "key_1".into(),
        rule: if i % 2 == 0 { "easy" } else { "hard" }.into(),
        difficulty: 0.123456,
        primary: Side {
            model: "local/smollm2-135m-instruct".into(),
            external: false,
            cost_micros: 3,
            latency_ms: 250,
            output_tokens: 12,
        },
        shadow: Side {
            model: "gpt-4o".into(),
            external: true,
            cost_micros: 420,
            latency_ms: 900,
            output_tokens: 40,
        },
        shadow_status: 200,
        shadow_error: None,
        primary_is_strong: false,
        length_ratio: Some(0.3),
        refusal_primary: Some(false),
        refusal_shadow: Some(false),
        format_primary: None,
        format_shadow: Some(true),
        lexical: Some(0.5),
        embedding: Some(0.875),
        judge: Some("tie".into()),
        judge_model: Some("gpt-4o".into()),
        judge_cost_micros: 7,
        quality: Some(1.0),
        prompt_text: None,
        primary_text: None,
        shadow_text: None,
    };
    let first = pair(0, "search", today);
    insert(&t.db, &first).await.expect("insert");
    // The same pair again (a retried write) is stored once.
    insert(&t.db, &first).await.expect("insert again");
    for i in 1..6 {
        insert(&t.db, &pair(i, if i < 3 { "search" } else { "ads" }, today))
            .await
            .expect("insert");
    }
    insert(&t.db, &pair(9, "search", today - 30))
        .await
        .expect("old");
    let all = load(&t.db, &PairFilter::default()).await.expect("load");
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].id, "pair-5", "newest first");
    let got = all.iter().find(|p| p.id == "pair-0").expect("pair-0");
    assert_eq!(*got, first, "every field survives the round trip");
    let search = PairFilter {
        team: Some("search".into()),
        rule: Some("easy".into()),
        from_ms: Some(today * DAY_MS),
        ..PairFilter::default()
    };
    let ids: Vec<String> = load(&t.db, &search)
        .await
        .expect("load")
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["pair-2", "pair-0"]);
    let cfg = AccountingConfig {
        retention_days: 3,
        ..fast_cfg(1000, 500)
    };
    let ledger = Ledger::start(t.db.clone(), &cfg);
    ledger.run_retention().await.expect("retention");
    assert_eq!(t.count("SELECT COUNT(*) FROM shadow_pairs").await, 6);
    ledger.shutdown().await.expect("shutdown");
}

/// Batches of every size must not pile up in the connection's prepared-statement cache:
/// a cached multi-row INSERT holds hundreds of KB, and the ledger writes batches of any
/// size, so caching them grew a busy gateway by tens of MB (found with massif).
#[tokio::test]
async fn ledger_batches_are_not_kept_as_prepared_statements() {
    use sqlx::Connection;
    // In memory: one connection, so the writer's statement cache is the one inspected.
    let db = Db::connect("sqlite::memory:").await.expect("connect");
    let ledger = Ledger::start(db.clone(), &fast_cfg(60_000, 10_000));
    let Db::Sqlite(pool) = &db else {
        panic!("sqlite")
    };
    let cached = || async {
        let conn = pool.acquire().await.expect("connection");
        conn.cached_statements_size()
    };
    let records = random_records(11, 40 * 41 / 2, now_ms().div_euclid(DAY_MS), 1);
    let mut it = records.into_iter();
    let mut before = 0;
    for size in 1..=40 {
        for r in it.by_ref().take(size) {
            ledger.record(r);
        }
        ledger.flush().await.expect("flush");
        if size == 1 {
            before = cached().await;
        }
    }
    let after = cached().await;
    assert!(
        after <= before + 2,
        "{after} statements cached after 40 batch sizes ({before} after the first)"
    );
    assert_eq!(count(&db, "SELECT COUNT(*) FROM ledger").await, 820);
    ledger.shutdown().await.expect("shutdown");
}

// ---------------------------------------------------------------------------------------
// Team limits

async fn team_limits_persist_seed_and_audit(t: &TestDb) {
    use switchyard::access::Principal;
    use switchyard::audit::{Actor, AuditFilter, AuditLog, Order};
    use switchyard::auth::roles::Role;
    use switchyard::limits::{Limiter, LimitsConfig, Period, Subject};
    use switchyard::team_limits::{LimitsPatch, TeamLimitService};

    // web spent 500 micro-dollars today, before any limit existed.
    let today = now_ms().div_euclid(DAY_MS);
    let insert = "INSERT INTO spend_daily (day, team, key_id, model, route, cost_micros) VALUES ($1, 'web', 'k', 'm', 'r', 500)";
    match &t.db {
        Db::Sqlite(p) => sqlx::query(insert).bind(today).execute(p).await.map(|_| ()),
        Db::Postgres(p) => sqlx::query(insert).bind(today).execute(p).await.map(|_| ()),
    }
    .expect("spend row");
    let limiter = Arc::new(
        Limiter::new(&LimitsConfig::default())
            .await
            .expect("limiter"),
    );
    let service = TeamLimitService::new(t.db.clone(), limiter.clone());
    service.start().await.expect("start");
    assert!(limiter.is_noop());
    let admin = Principal {
        actor: Actor::User("ana@example.com".into()),
        role: Role::Admin,
        source: None,
    };
    let patch: LimitsPatch = serde_json::from_str(
        r#"{"budget_day": {"soft_usd": "0.0004", "hard_usd": "0.001"}, "rate": {"tpm": 1000}}"#,
    )
    .expect("patch");
    let changed = service.apply("web", &patch, &admin).await.expect("applied");
    assert_eq!(changed.len(), 2);
    let web = Subject {
        key_id: None,
        team: Some("web"),
    };
    let now = u64::try_from(now_ms()).expect("now");
    let usage = limiter.budget_usage(&web, now).await.expect("usage");
    assert_eq!(
        (
            usage[0].budget.as_str(),
            usage[0].period,
            usage[0].spent_micros
        ),
        ("team-limit-day", Period::Day, 500),
        "the new counter starts from the ledger's spend"
    );
    assert!(
        limiter.admit(&web, 501, 0, now).await.is_err(),
        "500 + 501 > 1000"
    );
    // The same values again: nothing written, nothing audited.
    assert!(service
        .apply("web", &patch, &admin)
        .await
        .expect("noop")
        .is_empty());
    // Another replica reads what this one wrote.
    let other_limiter = Arc::new(
        Limiter::new(&LimitsConfig::default())
            .await
            .expect("limiter"),
    );
    let other = TeamLimitService::new(t.reconnect().await, other_limiter.clone());
    other.start().await.expect("start");
    assert_eq!(
        other_limiter.overrides().get("web"),
        limiter.overrides().get("web")
    );
    assert_eq!(
        other_limiter.budget_usage(&web, now).await.expect("usage")[0].spent_micros,
        500,
        "seeded at start-up too"
    );
    let clear: LimitsPatch =
        serde_json::from_str(r#"{"budget_day": null, "rate": null}"#).expect("patch");
    assert_eq!(
        service
            .apply("web", &clear, &admin)
            .await
            .expect("cleared")
            .len(),
        2
    );
    assert!(service.load().await.expect("load").is_empty());
    assert!(limiter.is_noop());
    let entries = AuditLog::new(t.db.clone())
        .list(
            &AuditFilter {
                action: Some("limit".into()),
                ..AuditFilter::default()
            },
            Order::OldestFirst,
        )
        .await
        .expect("audit");
    let targets: Vec<&str> = entries.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "team:web/budget_day",
            "team:web/rate",
            "team:web/budget_day",
            "team:web/rate"
        ]
    );
    assert!(entries.iter().all(|e| e.actor == "user:ana@example.com"));
    assert_eq!(entries[0].before, Some(serde_json::Value::Null));
    assert_eq!(
        entries[2].before,
        Some(serde_json::json!({"soft_usd": "0.0004", "hard_usd": "0.001"}))
    );
    // Bad values change nothing.
    let bad: LimitsPatch =
        serde_json::from_str(r#"{"budget_month": {"soft_usd": 2, "hard_usd": 1}}"#)
            .expect("parses; invalid");
    assert!(service.apply("web", &bad, &admin).await.is_err());
    assert!(service.apply("", &patch, &admin).await.is_err());
    assert!(service.load().await.expect("load").is_empty());
}
