//! Fault injection under load: 600 requests at once-ish, both dialects, streaming and
//! not, while the mock upstream fails in every way it knows (500s and 429s a retry
//! cures, persistent 500s, hangs past the provider timeout, streams cut or broken
//! mid-way) and some clients go away before or during the answer.
//!
//! Faults are deterministic per request (chosen by its number), so each request's
//! outcome class is asserted exactly: what the client saw, how many calls the upstream
//! got, and the one ledger row the request left, whose status matches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use switchyard_it::client::{assert_dialect_error, with_sdk_headers, Dialect};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::{MockUpstream, Outcome};

const REQUESTS: usize = 600;

/// Fallback chains for the `fb-*` models; everything else goes where it asked.
const POLICY: &str = r#"version: 1
targets:
  echo: { model: gpt-4o-mini }
  broken: { model: mock-500 }
  hanging: { model: short-mock-hang }
  broken-then-echo: { chain: [broken, echo] }
  hanging-then-echo: { chain: [hanging, echo] }
rules:
  - id: fallback-broken
    when: { model: fb-500 }
    route: broken-then-echo
  - id: fallback-hang
    when: { model: fb-hang }
    route: hanging-then-echo
default:
  route: requested
"#;

fn yaml(mock: &MockUpstream, policy_dir: &std::path::Path) -> String {
    let db = temp_db_url();
    let addr = mock.addr;
    // Breakers effectively off: they would turn later requests of a failing class into
    // 503s depending on timing, and these classes must stay exact.
    format!(
        r#"listen: "127.0.0.1:0"
circuit_breaker: {{ failure_threshold: 1000000 }}
accounting: {{ database_url: "{db}", flush_interval_ms: 100 }}
policy_dir: {policy_dir:?}
providers:
  - name: short-openai
    kind: openai
    base_url: "http://{addr}/v1"
    api_key: sk-test
    timeout_ms: 300
    max_retries: 0
    models: ["short-*"]
  - name: short-anthropic
    kind: anthropic
    base_url: "http://{addr}"
    api_key: sk-ant-test
    timeout_ms: 300
    max_retries: 0
    models: ["claude-short-*"]
  - name: mock-openai
    kind: openai
    base_url: "http://{addr}/v1"
    api_key: sk-test
    max_retries: 2
    retry_base_ms: 5
    retry_max_ms: 20
    max_retry_after_ms: 500
    models: ["gpt-*", "mock-*"]
  - name: mock-anthropic
    kind: anthropic
    base_url: "http://{addr}"
    api_key: sk-ant-test
    max_retries: 2
    retry_base_ms: 5
    retry_max_ms: 20
    max_retry_after_ms: 500
    models: ["claude-*"]
"#,
        policy_dir = policy_dir.display().to_string()
    )
}

/// What happens to one request, and so what everyone should see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Case {
    Ok,
    /// A 500 the first time, answered on the retry.
    RetryCures500,
    /// A 429 with `retry-after: 0.05` the first time, answered on the retry.
    RetryCures429,
    /// The first target always fails; the chain's next one answers.
    FallbackAfter500,
    /// The first target hangs past its timeout; the chain's next one answers.
    FallbackAfterHang,
    /// Hangs past the timeout, no fallback: 504 in the client's dialect.
    Timeout,
    /// 404 from upstream: not retried, passed on in the client's dialect.
    NotFound,
    /// 500 on every retry: passed on in the client's dialect.
    ServerError,
    /// The upstream connection drops mid-stream: 200, then an error frame.
    CutMidStream,
    /// The upstream sends an error event mid-stream: 200, then an error frame.
    ErrorMidStream,
    /// The client reads the first chunk and goes away.
    ClientGoneMidStream,
    /// The client gives up before the answer starts.
    ClientGoneBeforeHead,
}

const CASES: [Case; 12] = [
    Case::Ok,
    Case::RetryCures500,
    Case::RetryCures429,
    Case::FallbackAfter500,
    Case::FallbackAfterHang,
    Case::Timeout,
    Case::NotFound,
    Case::ServerError,
    Case::CutMidStream,
    Case::ErrorMidStream,
    Case::ClientGoneMidStream,
    Case::ClientGoneBeforeHead,
];

struct Plan {
    case: Case,
    dialect: Dialect,
    stream: bool,
    model: String,
}

fn plan(i: usize) -> Plan {
    let case = CASES[i % CASES.len()];
    let round = i / CASES.len();
    let dialect = if round % 2 == 0 {
        Dialect::OpenAi
    } else {
        Dialect::Anthropic
    };
    // The upstream's dialect varies independently of the client's.
    let anthropic_upstream = (round / 2) % 2 == 1;
    let upstream = |trigger: &str| {
        if anthropic_upstream {
            format!("claude-{trigger}")
        } else {
            trigger.to_string()
        }
    };
    let either = round % 3 == 0;
    let (model, stream) = match case {
        Case::Ok => (upstream("echo-ok"), either),
        Case::RetryCures500 => (upstream("mock-once-500"), either),
        Case::RetryCures429 => (upstream("mock-once-429"), either),
        Case::FallbackAfter500 => ("fb-500".into(), either),
        Case::FallbackAfterHang => ("fb-hang".into(), either),
        Case::Timeout => (upstream("short-mock-hang"), either),
        Case::NotFound => (upstream("mock-404"), either),
        Case::ServerError => (upstream("mock-500"), either),
        Case::CutMidStream => (upstream("mock-truncate"), true),
        Case::ErrorMidStream => (upstream("mock-stream-error"), true),
        Case::ClientGoneMidStream => (upstream("mock-slow-100"), true),
        Case::ClientGoneBeforeHead => (upstream("mock-slow-3000"), either),
    };
    // `echo-ok` is no trigger: it routes by the `gpt-*`/`mock-*`/`claude-*` globs.
    let model = match model.as_str() {
        "echo-ok" => "gpt-4o-mini".to_string(),
        "claude-echo-ok" => "claude-echo".to_string(),
        _ => model,
    };
    Plan {
        case,
        dialect,
        stream,
        model,
    }
}

/// The text that makes each request unique (upstream calls are matched on it).
fn marker(i: usize) -> String {
    format!("fault test {i}.")
}

/// What the client saw.
#[derive(Debug)]
struct Seen {
    status: Option<u16>,
    body: String,
    served_by: Option<String>,
}

async fn send(client: &reqwest::Client, addr: std::net::SocketAddr, i: usize) -> Seen {
    let p = plan(i);
    let mut body = json!({"model": p.model, "stream": p.stream,
        "messages": [{"role": "user", "content": marker(i)}]});
    if p.dialect == Dialect::Anthropic {
        body["max_tokens"] = json!(64);
    }
    let mut rb = with_sdk_headers(
        client.post(format!("http://{addr}{}", p.dialect.path())),
        p.dialect,
    )
    .header("x-switchyard-team", format!("ft-{i}"))
    .json(&body);
    if p.case == Case::ClientGoneBeforeHead {
        rb = rb.timeout(Duration::from_millis(200));
    }
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => {
            assert!(
                p.case == Case::ClientGoneBeforeHead && e.is_timeout(),
                "request {i} ({:?}) failed: {e}",
                p.case
            );
            return Seen {
                status: None,
                body: String::new(),
                served_by: None,
            };
        }
    };
    let status = Some(resp.status().as_u16());
    let served_by = resp
        .headers()
        .get("x-switchyard-model")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if p.case == Case::ClientGoneMidStream {
        let mut chunks = resp.bytes_stream();
        let first = chunks.next().await;
        assert!(matches!(first, Some(Ok(_))), "request {i}: no first chunk");
        // Dropping the body here closes the connection mid-stream.
        return Seen {
            status,
            body: String::new(),
            served_by,
        };
    }
    Seen {
        status,
        body: resp.text().await.unwrap_or_default(),
        served_by,
    }
}

/// Upstream calls the mock received per request number.
fn upstream_calls(mock: &MockUpstream) -> HashMap<usize, usize> {
    let mut calls = HashMap::new();
    for r in mock.requests() {
        let raw = String::from_utf8_lossy(&r.raw_body);
        let Some(at) = raw.find("fault test ") else {
            continue;
        };
        let digits: String = raw[at + "fault test ".len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(i) = digits.parse::<usize>() {
            *calls.entry(i).or_default() += 1;
        }
    }
    calls
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_load_keep_every_request_in_its_class_and_the_ledger_exact() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let started = Instant::now();
    let mock = MockUpstream::start().await;
    let dir = tempfile_dir();
    std::fs::write(dir.join("10-policy.yaml"), POLICY).unwrap();
    let gw = start_gateway(&yaml(&mock, &dir)).await.unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let addr = gw.addr;
    let seen: Vec<(usize, Seen)> = futures::stream::iter(0..REQUESTS)
        .map(|i| {
            let client = client.clone();
            async move { (i, send(&client, addr, i).await) }
        })
        .buffer_unordered(48)
        .collect()
        .await;

    // What each client saw.
    for (i, s) in &seen {
        let p = plan(*i);
        let what = format!(
            "request {i} {:?} {:?} stream={}: {s:?}",
            p.case, p.dialect, p.stream
        );
        let json: Value = serde_json::from_str(&s.body).unwrap_or(Value::Null);
        match p.case {
            Case::Ok | Case::RetryCures500 | Case::RetryCures429 => {
                assert_eq!(s.status, Some(200), "{what}");
                // Streamed or not, the echo's last word comes back (` 12.`).
                assert!(
                    s.body.contains(&format!(" {i}.")),
                    "the echo came back: {what}"
                );
            }
            Case::FallbackAfter500 | Case::FallbackAfterHang => {
                assert_eq!(s.status, Some(200), "{what}");
                assert_eq!(s.served_by.as_deref(), Some("gpt-4o-mini"), "{what}");
                assert!(s.body.contains(&format!(" {i}.")), "{what}");
            }
            Case::Timeout | Case::NotFound | Case::ServerError => {
                let status = match p.case {
                    Case::Timeout => 504,
                    Case::NotFound => 404,
                    _ => 500,
                };
                assert_eq!(s.status, Some(status), "{what}");
                assert_dialect_error(p.dialect, &json);
            }
            Case::CutMidStream | Case::ErrorMidStream => {
                assert_eq!(s.status, Some(200), "the head went out first: {what}");
                let frame = match p.dialect {
                    Dialect::OpenAi => "data: {\"error\"",
                    Dialect::Anthropic => "event: error",
                };
                assert!(s.body.contains(frame), "an error frame ends it: {what}");
            }
            Case::ClientGoneMidStream => assert_eq!(s.status, Some(200), "{what}"),
            Case::ClientGoneBeforeHead => assert_eq!(s.status, None, "{what}"),
        }
    }

    // What the upstream got: exactly the calls each class implies.
    let calls = upstream_calls(&mock);
    for i in 0..REQUESTS {
        let case = plan(i).case;
        let expected = match case {
            Case::RetryCures500 | Case::RetryCures429 | Case::FallbackAfterHang => 2,
            // Three calls to the broken target (two retries), one to the fallback.
            Case::FallbackAfter500 => 4,
            Case::ServerError => 3,
            _ => 1,
        };
        assert_eq!(
            calls.get(&i).copied(),
            Some(expected),
            "upstream calls of request {i} {case:?}"
        );
    }
    // Clients that left made the gateway drop its upstream calls too.
    let gone: Vec<usize> = (0..REQUESTS)
        .filter(|i| {
            matches!(
                plan(*i).case,
                Case::ClientGoneMidStream | Case::ClientGoneBeforeHead
            )
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let cancelled = mock
            .requests()
            .iter()
            .filter(|r| {
                let raw = String::from_utf8_lossy(&r.raw_body);
                r.outcome == Some(Outcome::Cancelled) && raw.contains("mock-slow-")
            })
            .count();
        if cancelled == gone.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{cancelled} of {} upstream calls were cancelled after their clients left",
            gone.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ledger: exactly one row per request, its status what the client saw.
    let ledger = gw.state.ledger.clone().expect("ledger");
    let switchyard::store::Db::Sqlite(pool) = ledger.db().clone() else {
        panic!("the test ledger is SQLite");
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows: Vec<(String, i64, Option<String>, String)> = loop {
        ledger.flush().await.unwrap();
        let rows: Vec<(String, i64, Option<String>, String)> =
            sqlx::query_as("SELECT team, status, error_kind, model FROM ledger")
                .fetch_all(&pool)
                .await
                .unwrap();
        if rows.len() >= REQUESTS || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut by_request: HashMap<usize, Vec<(i64, Option<String>, String)>> = HashMap::new();
    for (team, status, kind, model) in rows {
        let i: usize = team
            .strip_prefix("ft-")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a ledger row of no request: team {team:?}"));
        by_request.entry(i).or_default().push((status, kind, model));
    }
    let mut classes: HashMap<Case, usize> = HashMap::new();
    for i in 0..REQUESTS {
        let case = plan(i).case;
        *classes.entry(case).or_default() += 1;
        let rows = by_request.get(&i).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            rows.len(),
            1,
            "ledger rows of request {i} {case:?}: {rows:?}"
        );
        let (status, kind, model) = &rows[0];
        let (want_status, want_kind) = match case {
            Case::Ok
            | Case::RetryCures500
            | Case::RetryCures429
            | Case::FallbackAfter500
            | Case::FallbackAfterHang => (200, None),
            Case::Timeout => (504, Some("timeout")),
            Case::NotFound => (404, Some("upstream_error")),
            Case::ServerError => (500, Some("upstream_error")),
            Case::CutMidStream | Case::ErrorMidStream => (502, Some("bad_gateway")),
            Case::ClientGoneMidStream | Case::ClientGoneBeforeHead => (499, Some("client_closed")),
        };
        assert_eq!(
            (*status, kind.as_deref()),
            (want_status, want_kind),
            "ledger row of request {i} {case:?}"
        );
        if matches!(case, Case::FallbackAfter500 | Case::FallbackAfterHang) {
            assert_eq!(
                model, "gpt-4o-mini",
                "the fallback is what was served and billed"
            );
        }
    }
    assert!(
        classes.values().all(|n| *n == REQUESTS / CASES.len()),
        "{classes:?}"
    );

    // Still healthy, still serving.
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let after = send(&client, addr, 0).await;
    assert_eq!(after.status, Some(200));
    assert_eq!(PANICS.load(Ordering::SeqCst), 0, "something panicked");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    gw.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "switchyard-faults-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
