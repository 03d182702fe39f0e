//! Upstream resilience: retries with backoff before anything reached the client,
//! `retry-after` honoured only when short, and a circuit breaker per provider and model.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_it::client::{http_client, post_json, Dialect};
use switchyard_it::harness::start_gateway;
use switchyard_it::mock::MockUpstream;

fn yaml(mock: &MockUpstream, threshold: u32) -> String {
    let db = switchyard_it::harness::temp_db_url();
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}" }}
circuit_breaker: {{ failure_threshold: {threshold}, cooldown_ms: 300 }}
providers:
  - name: flaky
    kind: openai
    base_url: "{}"
    api_key: sk-test
    max_retries: 2
    retry_base_ms: 10
    retry_max_ms: 20
    models: ["mock-*", "gpt-*"]
"#,
        mock.openai_base_url()
    )
}

fn body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

#[tokio::test]
async fn failed_calls_are_retried_then_reported_in_dialect() {
    let mock = MockUpstream::start().await;
    let gw = start_gateway(&yaml(&mock, 100)).await.unwrap();
    let client = http_client();
    let url = format!("http://{}/v1/messages", gw.addr);
    let r = post_json(&client, &url, Dialect::Anthropic, &json!({"model": "mock-500", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status.as_u16(), 500, "{}", r.text);
    assert_eq!(r.json["type"], "error");
    assert_eq!(mock.requests().len(), 3, "one call and two retries");

    // A long retry-after is not waited for: the 429 goes back at once, header intact.
    mock.clear();
    let started = std::time::Instant::now();
    let r = post_json(
        &client,
        &format!("http://{}/v1/chat/completions", gw.addr),
        Dialect::OpenAi,
        &body("mock-429"),
    )
    .await;
    assert_eq!(r.status.as_u16(), 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(mock.requests().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn circuit_opens_after_repeated_failures_and_probes_after_cooldown() {
    let mock = MockUpstream::start().await;
    let gw = start_gateway(&yaml(&mock, 2)).await.unwrap();
    let client = http_client();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    for _ in 0..2 {
        let r = post_json(&client, &url, Dialect::OpenAi, &body("mock-500")).await;
        assert_eq!(r.status.as_u16(), 500);
    }
    let before = mock.requests().len();
    assert_eq!(before, 6, "two requests, each with two retries");
    let r = post_json(&client, &url, Dialect::OpenAi, &body("mock-500")).await;
    assert_eq!(r.status.as_u16(), 503, "{}", r.text);
    assert!(r.text.contains("circuit open"), "{}", r.text);
    assert_eq!(
        mock.requests().len(),
        before,
        "an open circuit sends nothing upstream"
    );
    let ready: Value = client
        .get(format!("http://{}/readyz", gw.addr))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["circuits"][0]["target"], "flaky/mock-500");
    assert_eq!(ready["circuits"][0]["state"], "open");

    // Other models of the same provider are unaffected.
    let ok = post_json(&client, &url, Dialect::OpenAi, &body("gpt-4o-mini")).await;
    assert_eq!(ok.status.as_u16(), 200);

    // After the cooldown one probe goes through (and fails again here).
    tokio::time::sleep(Duration::from_millis(350)).await;
    mock.clear();
    let r = post_json(&client, &url, Dialect::OpenAi, &body("mock-500")).await;
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(
        mock.requests().len(),
        1,
        "a half-open circuit lets exactly one probe through, unretried"
    );
}
