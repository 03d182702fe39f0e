//! Two replicas as separate OS processes: two real `switchyard serve` children with one
//! config, sharing Redis (rate limits, cache) and PostgreSQL (keys, ledger), under
//! concurrent mixed load from this test. A key made on one works on the other, a rate
//! limit is exhausted jointly, a cache fill on one is a hit on the other, both exit 0 on
//! SIGTERM, and the shared ledger then counts exactly the requests both served.
//!
//! `integration-tests/tests/replicas.rs` covers the same sharing with in-process
//! instances; this test adds what only separate processes show: no shared memory at all,
//! and the ledger flush of a real graceful shutdown.
//!
//! Isolation: a fresh PostgreSQL schema (dropped at the end) and Redis key prefixes unique
//! to the run. Skipped with a message when PostgreSQL or Redis is unreachable, unless
//! `SWITCHYARD_REQUIRE_POSTGRES=1`.

mod support;
use support::PgSchemaGuard;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use switchyard::accounting::{spend_report, SpendQuery, SpendRow};
use switchyard::store::Db;
use switchyard_it::mock::MockUpstream;

const TOKEN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_PROCESSES";
const TOKEN: &str = "processes-admin-token";
const REDIS: &str = "redis://127.0.0.1:6379";
/// Per UTC minute for the `limited` team, across both replicas.
const RPM: usize = 40;
/// Requests at the `limited` team: RPM are admitted, the rest rejected.
const BURST: usize = 60;
/// Requests of the mixed load.
const LOAD: usize = 300;
const CONCURRENCY: usize = 24;

fn pg_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// `url` with every connection's `search_path` set to `schema` (libpq's `options`), so
/// the child processes write into the test's schema with no config knob for it.
fn url_with_schema(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Creates the schema (and the gateway's tables in it); checks that Redis answers.
async fn services(url: &str, schema: &str) -> Result<Db, String> {
    let db = Db::connect_postgres_schema(url, schema)
        .await
        .map_err(|e| format!("PostgreSQL unreachable ({e})"))?;
    let redis = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect("127.0.0.1:6379"),
    )
    .await;
    match redis {
        Ok(Ok(_)) => Ok(db),
        _ => Err("Redis unreachable on 127.0.0.1:6379".into()),
    }
}

/// A `switchyard serve` child, SIGKILLed if the test fails before terminating it.
struct Replica {
    name: &'static str,
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Replica {
    fn start(name: &'static str, config: &Path, dir: &Path) -> Replica {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .env(TOKEN_VAR, TOKEN)
            .env_remove("SWITCHYARD_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn switchyard serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 0) {
                if let Some(a) = line.trim().strip_prefix("switchyard listening on http://") {
                    let _ = tx.send(a.to_string());
                    break;
                }
                line.clear();
            }
            // Keep draining so the child never blocks on a full pipe.
            let _ = r.read_to_end(&mut Vec::new());
        });
        let mut replica = Replica {
            name,
            child,
            addr: String::new(),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => replica.addr = addr,
            Err(_) => panic!(
                "replica {name} did not start:\n{}",
                std::fs::read_to_string(&replica.log).unwrap_or_default()
            ),
        }
        replica
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then waits (bounded) for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "replica {} ignored SIGTERM:\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn config_yaml(db_url: &str, mock: &MockUpstream, run: &str) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db_url}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {TOKEN_VAR}, cache_ttl_ms: 100 }}
cache: {{ default_ttl_s: 60, redis_url: "{REDIS}", redis_key_prefix: "sy-test-procs-cache-{run}:" }}
limits:
  backend: {{ redis: {{ url: "{REDIS}", key_prefix: "sy-test-procs-limits-{run}" }} }}
  rate_limits:
    - {{ name: limited-rpm, scope: team, subject: limited, rpm: {RPM} }}
providers:
  - name: mock-openai
    kind: openai
    base_url: "{openai}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
  - name: mock-anthropic
    kind: anthropic
    base_url: "{anthropic}"
    api_key: sk-ant-test
    max_retries: 0
    models: ["claude-echo"]
"#,
        openai = mock.openai_base_url(),
        anthropic = mock.anthropic_base_url(),
    )
}

async fn create_key(client: &reqwest::Client, on: &Replica, team: &str) -> String {
    let created: Value = client
        .post(on.url("/admin/keys"))
        .bearer_auth(TOKEN)
        .json(&json!({"team": team}))
        .send()
        .await
        .expect("POST /admin/keys")
        .json()
        .await
        .expect("key JSON");
    created["key"].as_str().expect("a key").to_string()
}

/// One chat request of the mix: OpenAI or Anthropic dialect, streamed or not.
struct Chat<'a> {
    key: &'a str,
    text: String,
    anthropic: bool,
    stream: bool,
}

/// Status, `x-switchyard-cache` header, and whether a 200's body is complete.
async fn send(client: &reqwest::Client, url_base: &str, c: &Chat<'_>) -> (u16, String, bool) {
    let model = if c.anthropic {
        "claude-echo"
    } else {
        "gpt-4o-mini"
    };
    let body = json!({"model": model, "max_tokens": 32, "temperature": 0, "stream": c.stream,
        "messages": [{"role": "user", "content": c.text}]});
    let rb = if c.anthropic {
        client
            .post(format!("{url_base}/v1/messages"))
            .header("x-api-key", c.key)
            .header("anthropic-version", "2023-06-01")
    } else {
        client
            .post(format!("{url_base}/v1/chat/completions"))
            .bearer_auth(c.key)
    };
    let resp = rb.json(&body).send().await.expect("request");
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-switchyard-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let text = resp.text().await.expect("body");
    let complete = match (c.stream, c.anthropic) {
        (true, false) => text.ends_with("data: [DONE]\n\n"),
        (true, true) => text.contains("event: message_stop"),
        (false, _) => text.contains("Echo: "),
    };
    (status, cache, complete)
}

/// Sends `chats` alternately to each replica, `CONCURRENCY` at a time.
async fn drive(
    client: &reqwest::Client,
    replicas: [&Replica; 2],
    chats: Vec<Chat<'_>>,
) -> Vec<(u16, bool)> {
    let bases = replicas.map(|r| r.url(""));
    futures::stream::iter(chats.into_iter().enumerate())
        .map(|(i, c)| {
            let base = bases[i % 2].clone();
            async move {
                let (status, _, complete) = send(client, &base, &c).await;
                (status, complete)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await
}

fn team_row<'a>(rows: &'a [SpendRow], team: &str) -> &'a SpendRow {
    rows.iter()
        .find(|r| r.group == team)
        .unwrap_or_else(|| panic!("no ledger row for team {team}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_share_limits_cache_and_ledger() {
    let started = Instant::now();
    let url = pg_url();
    let schema = format!("sy_procs_{}", uuid::Uuid::new_v4().simple());
    let _guard = PgSchemaGuard {
        url: url.clone(),
        schema: schema.clone(),
    };
    let db = match services(&url, &schema).await {
        Ok(db) => db,
        Err(e) if std::env::var("SWITCHYARD_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("PostgreSQL and Redis required: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: {e}; set SWITCHYARD_REQUIRE_POSTGRES=1 to fail instead");
            return;
        }
    };
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchyard.yaml");
    let run = schema.trim_start_matches("sy_procs_");
    std::fs::write(
        &config,
        config_yaml(&url_with_schema(&url, &schema), &mock, run),
    )
    .expect("write config");
    let mut a = Replica::start("a", &config, dir.path());
    let mut b = Replica::start("b", &config, dir.path());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");

    // Keys live in PostgreSQL: made on one replica, used on the other.
    let cache_key = create_key(&client, &a, "cache").await;
    let limited_key = create_key(&client, &b, "limited").await;
    let load_key = create_key(&client, &a, "load").await;

    // Cache: filled through A, a hit through B (the Redis tier).
    let chat = |text: &str| Chat {
        key: &cache_key,
        text: text.to_string(),
        anthropic: false,
        stream: false,
    };
    let (status, cache, _) = send(&client, &a.url(""), &chat("shared cache please")).await;
    assert_eq!(status, 200);
    assert_ne!(cache, "hit", "a fresh run starts with an empty cache");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, cache, _) = send(&client, &b.url(""), &chat("shared cache please")).await;
    assert_eq!(
        (status, cache.as_str()),
        (200, "hit"),
        "replica B serves replica A's cache fill"
    );

    // Rate limit: one counter for both processes, however the burst is spread.
    switchyard_it::harness::clear_of_minute_boundary().await;
    let burst = (0..BURST)
        .map(|i| Chat {
            key: &limited_key,
            text: format!("limited {i}"),
            anthropic: i % 3 == 0,
            stream: i % 2 == 0,
        })
        .collect();
    let statuses = drive(&client, [&a, &b], burst).await;
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let limited = statuses.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!((ok, limited), (RPM, BURST - RPM), "{statuses:?}");

    // Mixed load: both dialects, streamed and not, all distinct (no cache hits).
    let load = (0..LOAD)
        .map(|i| Chat {
            key: &load_key,
            text: format!("load request {i}"),
            anthropic: i % 3 == 1,
            stream: i % 2 == 1,
        })
        .collect();
    let results = drive(&client, [&a, &b], load).await;
    let bad: Vec<_> = results.iter().filter(|r| **r != (200, true)).collect();
    assert!(bad.is_empty(), "{} of {LOAD} failed: {bad:?}", bad.len());

    // Graceful stop: both flush their ledger and exit 0.
    for r in [&mut a, &mut b] {
        let status = r.terminate();
        assert!(
            status.success(),
            "replica {} exited with {status}:\n{}",
            r.name,
            std::fs::read_to_string(&r.log).unwrap_or_default()
        );
    }

    // The ledger holds exactly what both served; the upstream saw only what was admitted
    // and not cached.
    let q = SpendQuery::parse("team", None, None).expect("spend query");
    let rows = spend_report(&db, &q).await.expect("spend report");
    let cache_row = team_row(&rows, "cache");
    assert_eq!((cache_row.requests, cache_row.cache_hits), (2, 1));
    assert_eq!(team_row(&rows, "limited").requests, BURST as i64);
    assert_eq!(team_row(&rows, "load").requests, LOAD as i64);
    let total: i64 = rows.iter().map(|r| r.requests).sum();
    assert_eq!(total, (2 + BURST + LOAD) as i64, "{rows:?}");
    assert_eq!(mock.requests().len(), 1 + RPM + LOAD);
    eprintln!(
        "two serve processes: {} requests in {:.1} s",
        2 + BURST + LOAD,
        started.elapsed().as_secs_f64()
    );
}
