//! The request path emits one span per stage (auth, classify, policy, provider call,
//! accounting) under the request span, with GenAI attributes and no prompt text.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use switchyard_it::client::{http_client, post_json, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::MockUpstream;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_stage_has_its_span() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();
    let mock = MockUpstream::start().await;
    let gw = start_gateway(&gateway_yaml(mock.addr, &StackOptions::default()))
        .await
        .unwrap();
    let secret = "ocelot-tangerine-prompt";
    let r = post_json(
        &http_client(),
        &format!("http://{}/v1/chat/completions", gw.addr),
        Dialect::OpenAi,
        &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": secret}]}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200);
    gw.shutdown().await;
    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).into_owned();
    for stage in [
        "switchyard.auth",
        "switchyard.classify",
        "switchyard.policy",
        "gen_ai.provider.call",
        "switchyard.accounting",
    ] {
        assert!(logs.contains(stage), "no {stage} span in:\n{logs}");
    }
    assert!(logs.contains("gen_ai.request.model"), "{logs}");
    assert!(!logs.contains(secret), "prompt text in spans");
}
