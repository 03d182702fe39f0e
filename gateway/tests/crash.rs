//! Crash safety: after `kill -9`, a restart recovers, and the ledger holds every request
//! acknowledged more than one flush interval before the crash.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::routing::post;

async fn upstream() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            axum::Json(serde_json::json!({
                "id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn start(config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    (child, addr)
}

async fn ledger_requests(db_url: &str, team: &str) -> i64 {
    let db = switchyard::store::Db::connect(db_url).await.unwrap();
    let q = switchyard::accounting::SpendQuery::parse("team", None, None).unwrap();
    let rows = switchyard::accounting::spend_report(&db, &q).await.unwrap();
    rows.iter()
        .find(|r| r.group == team)
        .map_or(0, |r| r.requests)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_older_than_a_flush_interval() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{db_url}\", flush_interval_ms: 200 }}\nproviders:\n  - name: up\n    kind: openai\n    base_url: \"http://{up}/v1\"\n    models: [\"gpt-*\"]\n"
        ),
    )
    .unwrap();
    let (mut child, addr) = start(&config);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    for _ in 0..40 {
        let r = client
            .post(format!("http://{addr}/v1/chat/completions"))
            .header("x-switchyard-team", "crash-team")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }
    // Every acknowledged request is now older than two flush intervals.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let status = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();

    // A restart on the same database recovers and serves.
    let (mut child, addr) = start(&config);
    let r = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    assert_eq!(ledger_requests(&db_url, "crash-team").await, 40);
}
