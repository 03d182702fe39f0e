//! Upstream resilience: retries with backoff before anything reached the client,
//! `retry-after` honoured only when short, a circuit breaker per provider, endpoint and
//! model; and providers with several endpoints (two mock upstreams): exact weighted
//! split, a key per endpoint, failover, 429 cool-down, health in `/readyz` and metrics.

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

// ---------------------------------------------------------------------------------------
// Several endpoints behind one provider: weights, per-endpoint keys, health, failover.

use futures::StreamExt;
use switchyard_it::mock::MockConfig;

async fn mock_with(openai_key: &str, anthropic_key: &str, always: Option<&str>) -> MockUpstream {
    MockUpstream::start_with(MockConfig {
        openai_key: openai_key.into(),
        anthropic_key: anthropic_key.into(),
        always: always.map(str::to_string),
        ..MockConfig::default()
    })
    .await
}

/// A request no other in the test repeats.
fn unique(model: &str, i: usize) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": format!("hello {i}")}]})
}

async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

async fn get_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

/// The `/readyz` entry of one endpoint of one provider.
fn endpoint<'a>(ready: &'a Value, provider: &str, name: &str) -> &'a Value {
    ready["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["provider"] == provider))
        .and_then(|b| b["endpoints"].as_array())
        .and_then(|e| e.iter().find(|e| e["endpoint"] == name))
        .unwrap_or_else(|| panic!("no endpoint {provider}/{name} in {ready:#}"))
}

/// A pool of two endpoints (`good`, then `bad`), each a mock of its own.
fn pool_yaml(good: &MockUpstream, bad: &MockUpstream, bad_key: &str, threshold: u32) -> String {
    let db = switchyard_it::harness::temp_db_url();
    format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}" }}
circuit_breaker: {{ failure_threshold: {threshold}, cooldown_ms: 60000 }}
providers:
  - name: pool
    kind: openai
    api_key: sk-test
    max_retries: 1
    retry_base_ms: 10
    models: ["gpt-*", "mock-*"]
    endpoints:
      - {{ name: good, base_url: "{}" }}
      - {{ name: bad, base_url: "{}", api_key: "{bad_key}" }}
"#,
        good.openai_base_url(),
        bad.openai_base_url()
    )
}

#[tokio::test]
async fn weighted_endpoints_split_calls_exactly_and_each_gets_its_own_key() {
    let east = mock_with("sk-east-1111", "sk-ant-east-1111", None).await;
    let west = mock_with("sk-west-2222", "sk-ant-west-2222", None).await;
    let db = switchyard_it::harness::temp_db_url();
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}" }}
providers:
  - name: pool
    kind: openai
    models: ["gpt-*"]
    endpoints:
      - {{ name: east, base_url: "{}", api_key: sk-east-1111, weight: 3 }}
      - {{ name: west, base_url: "{}", api_key_env: SWITCHYARD_IT_WEST_KEY }}
  - name: apool
    kind: anthropic
    api_key: sk-ant-east-1111
    models: ["claude-*"]
    endpoints:
      - {{ base_url: "{}" }}
      - {{ base_url: "{}", api_key: sk-ant-west-2222 }}
"#,
        east.openai_base_url(),
        west.openai_base_url(),
        east.anthropic_base_url(),
        west.anthropic_base_url()
    );
    std::env::set_var("SWITCHYARD_IT_WEST_KEY", "sk-west-2222");
    let gw = start_gateway(&yaml).await.unwrap();
    let client = http_client();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let statuses: Vec<u16> = futures::stream::iter(0..400)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("split {i}")}]});
                post_json(&client, &url, Dialect::OpenAi, &body).await.status.as_u16()
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Smooth weighted round-robin: exactly 3:1 over any multiple of the weight sum.
    assert_eq!(east.requests().len(), 300);
    assert_eq!(west.requests().len(), 100);
    // A wrong key would have been a 401 from the mock; check the headers all the same.
    assert!(east
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer sk-east-1111")));
    assert!(west
        .requests()
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer sk-west-2222")));

    // Anthropic endpoints: unnamed ones are named by index; the first inherits the key.
    let messages = format!("http://{}/v1/messages", gw.addr);
    for i in 0..4 {
        let body = json!({"model": "claude-echo", "max_tokens": 16, "messages": [{"role": "user", "content": format!("hi {i}")}]});
        let r = post_json(&client, &messages, Dialect::Anthropic, &body).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    let sent = |m: &MockUpstream| -> Vec<String> {
        m.requests_to("/v1/messages")
            .iter()
            .map(|r| r.header("x-api-key").unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(sent(&east), ["sk-ant-east-1111", "sk-ant-east-1111"]);
    assert_eq!(sent(&west), ["sk-ant-west-2222", "sk-ant-west-2222"]);

    let ready = get_json(&client, format!("http://{}/readyz", gw.addr)).await;
    assert_eq!(endpoint(&ready, "pool", "east")["requests"], 300);
    assert_eq!(endpoint(&ready, "pool", "east")["weight"], 3);
    assert_eq!(endpoint(&ready, "pool", "west")["requests"], 100);
    assert_eq!(endpoint(&ready, "apool", "1")["requests"], 2);
    let metrics = get_text(&client, format!("http://{}/metrics", gw.addr)).await;
    assert!(
        metrics.contains(r#"switchyard_upstream_calls_total{endpoint="east",provider="pool"} 300"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"switchyard_backend_up{endpoint="west",provider="pool"} 1"#));
    for secret in ["east-1111", "west-2222"] {
        assert!(!ready.to_string().contains(secret), "key in /readyz");
        assert!(!metrics.contains(secret), "key in /metrics");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_failing_endpoint_is_routed_around_and_its_circuit_opens() {
    let good = mock_with("sk-test", "sk-ant-test", None).await;
    let bad = mock_with("sk-test", "sk-ant-test", Some("mock-500")).await;
    let gw = start_gateway(&pool_yaml(&good, &bad, "sk-test", 3))
        .await
        .unwrap();
    let client = http_client();
    for i in 0..20 {
        // Both client dialects, streaming and not: the pool serves them all the same.
        let dialect = if i % 2 == 0 {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        };
        let url = format!("http://{}{}", gw.addr, dialect.path());
        let body = json!({"model": "gpt-4o-mini", "max_tokens": 16, "stream": i % 3 == 0,
            "messages": [{"role": "user", "content": format!("req {i}")}]});
        let r = post_json(&client, &url, dialect, &body).await;
        assert_eq!(r.status.as_u16(), 200, "request {i}: {}", r.text);
    }
    // Every other request went to `bad` first (1:1), failed over at once to `good`, until
    // the third failure opened bad's circuit for this model: nothing more went there.
    assert_eq!(bad.requests().len(), 3);
    assert_eq!(good.requests().len(), 20);

    let ready = get_json(&client, format!("http://{}/readyz", gw.addr)).await;
    let circuits = ready["circuits"].as_array().unwrap();
    assert_eq!(circuits.len(), 1, "{ready:#}");
    assert_eq!(circuits[0]["target"], "pool/gpt-4o-mini");
    assert_eq!(circuits[0]["endpoint"], "bad");
    assert_eq!(circuits[0]["state"], "open");
    let b = endpoint(&ready, "pool", "bad");
    assert_eq!(b["state"], "open");
    assert_eq!(b["up"], false);
    assert_eq!(b["consecutive_failures"], 3);
    assert_eq!(b["last_error_kind"], "server_error");
    assert_eq!(
        (b["requests"].as_u64(), b["errors"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(b["last_success_age_ms"].is_null());
    let g = endpoint(&ready, "pool", "good");
    assert_eq!(g["state"], "closed");
    assert_eq!(g["up"], true);
    assert_eq!(
        (g["requests"].as_u64(), g["errors"].as_u64()),
        (Some(20), Some(0))
    );
    assert!(g["last_success_age_ms"]
        .as_u64()
        .is_some_and(|a| a < 10_000));
    let pool = ready["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["provider"] == "pool"))
        .unwrap();
    assert_eq!(
        (pool["state"].as_str(), pool["up"].as_bool()),
        (Some("closed"), Some(true))
    );
    assert_eq!(pool["errors"], 3);

    let metrics = get_text(&client, format!("http://{}/metrics", gw.addr)).await;
    for line in [
        r#"switchyard_backend_up{endpoint="bad",provider="pool"} 0"#,
        r#"switchyard_backend_up{endpoint="good",provider="pool"} 1"#,
        r#"switchyard_upstream_errors_total{endpoint="bad",kind="server_error",provider="pool"} 3"#,
        r#"switchyard_upstream_calls_total{endpoint="good",provider="pool"} 20"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_throttled_endpoint_cools_down_alone() {
    let good = mock_with("sk-test", "sk-ant-test", None).await;
    let bad = mock_with("sk-test", "sk-ant-test", Some("mock-429")).await;
    let gw = start_gateway(&pool_yaml(&good, &bad, "sk-test", 3))
        .await
        .unwrap();
    let client = http_client();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let started = std::time::Instant::now();
    for i in 0..10 {
        let r = post_json(&client, &url, Dialect::OpenAi, &unique("gpt-4o-mini", i)).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "nobody waited for retry-after: 7"
    );
    // One 429 (retry-after: 7) and the endpoint is skipped while the other can serve.
    assert_eq!(bad.requests().len(), 1);
    assert_eq!(good.requests().len(), 10);
    let ready = get_json(&client, format!("http://{}/readyz", gw.addr)).await;
    let b = endpoint(&ready, "pool", "bad");
    assert_eq!(b["last_error_kind"], "rate_limited");
    assert!(
        b["cooling_down_ms"].as_u64().is_some_and(|ms| ms > 4000),
        "{b}"
    );
    assert_eq!(b["up"], true, "throttled is not down");
    assert_eq!(endpoint(&ready, "pool", "good")["cooling_down_ms"], 0);
    assert!(
        ready["circuits"].as_array().unwrap().is_empty(),
        "a 429 opens no circuit"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_refused_key_moves_to_another_endpoint_and_is_never_quoted() {
    let good = mock_with("sk-test", "sk-ant-test", None).await;
    let gw = start_gateway(&pool_yaml(&good, &good, "sk-revoked-abcdef", 2))
        .await
        .unwrap();
    let client = http_client();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    for i in 0..6 {
        let r = post_json(&client, &url, Dialect::OpenAi, &unique("gpt-4o-mini", i)).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    }
    let refused = good
        .requests()
        .iter()
        .filter(|r| r.header("authorization") == Some("Bearer sk-revoked-abcdef"))
        .count();
    assert_eq!(
        refused, 2,
        "the refused key's circuit opened after two 401s"
    );
    let ready = get_json(&client, format!("http://{}/readyz", gw.addr)).await;
    assert_eq!(endpoint(&ready, "pool", "bad")["last_error_kind"], "auth");

    // With nowhere else to go, the 401 reaches the client without the upstream's text,
    // which quotes the start of the key.
    let db = switchyard_it::harness::temp_db_url();
    let yaml = format!(
        "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{db}\" }}\nproviders:\n  - {{name: lone, kind: openai, base_url: \"{}\", api_key: sk-revoked-abcdef, models: [\"gpt-*\"]}}\n",
        good.openai_base_url()
    );
    let lone = start_gateway(&yaml).await.unwrap();
    let r = post_json(
        &client,
        &format!("http://{}/v1/chat/completions", lone.addr),
        Dialect::OpenAi,
        &body("gpt-4o-mini"),
    )
    .await;
    assert_eq!(r.status.as_u16(), 401);
    assert!(!r.text.contains("sk-rev"), "{}", r.text);
    lone.shutdown().await;
    gw.shutdown().await;
}
