//! Graceful shutdown: on SIGTERM the gateway stops accepting, lets an in-flight stream
//! finish, and exits 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::routing::post;

/// An OpenAI-style upstream that streams five chunks, 150 ms apart.
async fn slow_upstream() -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(|| async {
            let chunks = futures::stream::unfold(0u32, |i| async move {
                if i > 6 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                let frame = match i {
                    0..=4 => format!(
                        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{i} \"}},\"finish_reason\":null}}]}}\n\n"
                    ),
                    5 => "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_string(),
                    _ => "data: [DONE]\n\n".to_string(),
                };
                Some((Ok::<_, std::convert::Infallible>(frame), i + 1))
            });
            axum::response::Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(chunks))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_streams_then_exits_zero() {
    let upstream = slow_upstream().await;
    let dir = std::env::temp_dir().join(format!("sy-shutdown-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:0\"\nshutdown_grace_ms: 10000\nproviders:\n  - name: up\n    kind: openai\n    base_url: \"http://{upstream}/v1\"\n    models: [\"gpt-*\"]\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();

    let body = r#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let stream_addr = addr.clone();
    let reader = std::thread::spawn(move || {
        let mut s = TcpStream::connect(&stream_addr).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    // Let the stream start, then ask the gateway to stop.
    std::thread::sleep(Duration::from_millis(400));
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        TcpStream::connect(&addr).is_err(),
        "no new connections are accepted after SIGTERM"
    );
    let out = reader.join().unwrap();
    assert!(out.contains("w4 "), "the in-flight stream finished: {out}");
    assert!(out.contains("data: [DONE]"), "{out}");
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    assert!(started.elapsed() < Duration::from_secs(8));
    let _ = std::fs::remove_dir_all(&dir);
}
