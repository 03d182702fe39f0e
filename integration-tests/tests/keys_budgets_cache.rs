//! Identity, limits, cache and the ledger through the HTTP API: keys from the admin API,
//! 401 without one, rate limits and budgets in the client's dialect, tenant-scoped cache
//! hits, and the spend report counting what was served.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_it::client::{http_client, into_json, Dialect, JsonResponse};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

const TOKEN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_KBC";
const TOKEN: &str = "test-admin-token";

async fn post(
    client: &reqwest::Client,
    url: &str,
    dialect: Dialect,
    key: Option<&str>,
    body: &Value,
) -> JsonResponse {
    // As an SDK sends it: OpenAI as a Bearer token, Anthropic as x-api-key.
    let mut rb = client.post(url).json(body);
    if dialect == Dialect::Anthropic {
        rb = rb.header("anthropic-version", "2023-06-01");
    }
    if let Some(k) = key {
        rb = match dialect {
            Dialect::OpenAi => rb.bearer_auth(k),
            Dialect::Anthropic => rb.header("x-api-key", k),
        };
    }
    into_json(rb.send().await.unwrap()).await
}

async fn create_key(client: &reqwest::Client, base: &str, team: &str) -> (String, String) {
    let r = client
        .post(format!("{base}/admin/keys"))
        .bearer_auth(TOKEN)
        .json(&json!({"team": team}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.unwrap();
    (
        v["key"].as_str().unwrap().to_string(),
        v["id"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_limits_cache_and_ledger_work_together() {
    std::env::set_var(TOKEN_VAR, TOKEN);
    switchyard_it::harness::clear_of_minute_boundary().await;
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {TOKEN_VAR}, cache_ttl_ms: 100 }}
cache: {{ default_ttl_s: 60 }}
limits:
  rate_limits:
    - {{ name: key-rpm, scope: key, subject: "*", rpm: 5 }}
  budgets:
    - {{ name: poor-team, scope: team, subject: "poor", period: day, hard_usd: 0.000001 }}
providers:
  - name: mock
    kind: openai
    base_url: "{base}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
"#,
        db = temp_db_url(),
        base = mock.openai_base_url()
    );
    let gw = start_gateway(&yaml).await.unwrap();
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let chat = format!("{base}/v1/chat/completions");
    let messages = format!("{base}/v1/messages");
    let body = json!({"model": "gpt-4o-mini", "temperature": 0, "messages": [{"role": "user", "content": "hello cache"}]});

    // No key: 401 in each dialect, nothing sent upstream.
    let r = post(&client, &chat, Dialect::OpenAi, None, &body).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.text);
    assert_eq!(r.json["error"]["type"], "authentication_error");
    let r = post(&client, &messages, Dialect::Anthropic, Some("sk-sy-not-a-real-key-0000000000000000000000"), &json!({"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status.as_u16(), 401);
    assert_eq!(r.json["type"], "error");
    assert!(mock.requests().is_empty());

    // A key for team "research": served, then answered from the cache for the same tenant.
    let (key_a, id_a) = create_key(&client, &base, "research").await;
    let r = post(&client, &chat, Dialect::OpenAi, Some(&key_a), &body).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r2 = post(&client, &chat, Dialect::OpenAi, Some(&key_a), &body).await;
    assert_eq!(r2.status.as_u16(), 200);
    assert_eq!(r2.header("x-switchyard-cache"), Some("hit"));
    assert_eq!(
        r2.json["choices"][0]["message"]["content"],
        r.json["choices"][0]["message"]["content"]
    );
    assert_eq!(
        mock.requests().len(),
        1,
        "the second answer came from the cache"
    );

    // Another team never sees research's cache entry.
    let (key_b, _) = create_key(&client, &base, "support").await;
    let r = post(&client, &chat, Dialect::OpenAi, Some(&key_b), &body).await;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("x-switchyard-cache").is_none());
    assert_eq!(mock.requests().len(), 2);

    // Rate limit: 5 requests a minute per key (one used above).
    let mut statuses = Vec::new();
    for i in 0..5 {
        let b = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": format!("n{i}")}]});
        let r = post(&client, &chat, Dialect::OpenAi, Some(&key_b), &b).await;
        statuses.push(r.status.as_u16());
        if r.status.as_u16() == 429 {
            assert!(r.header("retry-after").is_some());
            assert_eq!(r.json["error"]["type"], "rate_limit_error");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 200, 429], "{statuses:?}");

    // A budget of one micro-dollar refuses any priced request up front.
    let (key_poor, _) = create_key(&client, &base, "poor").await;
    let before = mock.requests().len();
    let r = post(&client, &messages, Dialect::Anthropic, Some(&key_poor), &json!({"model": "gpt-4o-mini", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]})).await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.text);
    assert_eq!(r.json["error"]["type"], "rate_limit_error");
    assert_eq!(mock.requests().len(), before);

    // The ledger has every request, with cost and savings for the served ones.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spend: Value = client
        .get(format!("{base}/admin/spend?group_by=team"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = spend["rows"].as_array().unwrap();
    let research = rows
        .iter()
        .find(|r| r["group"] == "research")
        .expect("research row");
    assert_eq!(research["requests"], 2);
    assert_eq!(research["cache_hits"], 1);
    assert!(research["cost_micros"].as_i64().unwrap() > 0);

    // The dashboard shows the team's budget next to its spend.
    let html = client
        .get(format!("{base}/dashboard"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let row_start = html.find("<tr data-team=\"poor\">").expect("poor team row");
    let row = &html[row_start..row_start + html[row_start..].find("</tr>").unwrap()];
    assert!(row.contains('%'), "budget usage shown: {row}");

    // Revocation takes effect within the key cache TTL.
    let r = client
        .delete(format!("{base}/admin/keys/{id_a}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let r = post(&client, &chat, Dialect::OpenAi, Some(&key_a), &body).await;
    assert_eq!(r.status.as_u16(), 401);
    gw.shutdown().await;
}
