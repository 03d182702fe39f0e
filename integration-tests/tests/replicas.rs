//! Two gateway replicas (separate in-process instances: separate state, caches and
//! limiters) behind no load balancer but the test itself, sharing Redis (rate limits,
//! cache) and PostgreSQL (keys, ledger): a key made on one works on the other, the rate
//! limit holds across both, a cache fill on one is a hit on the other, and the shared
//! ledger counts every request of both.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_it::client::{http_client, into_json};
use switchyard_it::harness::start_gateway;
use switchyard_it::mock::MockUpstream;

const TOKEN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_REPLICAS";
const TOKEN: &str = "replica-admin-token";

fn postgres_url() -> String {
    std::env::var("SWITCHYARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_keys_limits_cache_and_ledger() {
    std::env::set_var(TOKEN_VAR, TOKEN);
    switchyard_it::harness::clear_of_minute_boundary().await;
    let run = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let team = format!("replica-team-{run}");
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{pg}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {TOKEN_VAR}, cache_ttl_ms: 100 }}
cache: {{ default_ttl_s: 60, redis_url: "redis://127.0.0.1:6379", redis_key_prefix: "sy-test-cache-{run}:" }}
limits:
  backend: {{ redis: {{ url: "redis://127.0.0.1:6379", key_prefix: "sy-test-limits-{run}" }} }}
  rate_limits:
    - {{ name: team-rpm, scope: team, subject: "{team}", rpm: 6 }}
providers:
  - name: mock
    kind: openai
    base_url: "{base}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
"#,
        pg = postgres_url(),
        base = mock.openai_base_url()
    );
    let a = start_gateway(&yaml)
        .await
        .expect("replica A (is PostgreSQL up? scripts/ensure-services.sh)");
    let b = start_gateway(&yaml).await.expect("replica B");
    let client = http_client();
    let url = |addr: std::net::SocketAddr, path: &str| format!("http://{addr}{path}");

    // A key created through replica A authenticates on replica B.
    let created: Value = client
        .post(url(a.addr, "/admin/keys"))
        .bearer_auth(TOKEN)
        .json(&json!({"team": team}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().expect("a key").to_string();

    let chat = |addr, text: &str| {
        let client = client.clone();
        let key = key.clone();
        let body = json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": text}]});
        let u = url(addr, "/v1/chat/completions");
        async move {
            into_json(
                client
                    .post(u)
                    .bearer_auth(key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };

    // Cache: filled through A, hit through B (the Redis tier).
    let r = chat(a.addr, "shared cache please").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = chat(b.addr, "shared cache please").await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(
        r.header("x-switchyard-cache"),
        Some("hit"),
        "replica B served replica A's cache fill"
    );
    assert_eq!(mock.requests().len(), 1);

    // Rate limit of 6 a minute for the team, across both replicas. The fill above used
    // one; cache hits cost nothing and are not counted.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        statuses.push(chat(addr, &format!("request {i}")).await.status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 200, 429],
        "shared counter: {statuses:?}"
    );

    // Both ledgers write into the one database: the team's 8 requests are all there.
    a.shutdown().await;
    b.shutdown().await;
    let c = start_gateway(&yaml)
        .await
        .expect("a third replica reads the shared ledger");
    let spend: Value = client
        .get(url(c.addr, "/admin/spend?group_by=team"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = spend["rows"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["group"] == team.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("no ledger row for {team}: {spend}"));
    assert_eq!(row["requests"], 8, "{row}");
    assert_eq!(row["cache_hits"], 1, "{row}");
    c.shutdown().await;
}
