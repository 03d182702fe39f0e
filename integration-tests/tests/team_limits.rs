//! Team budgets and rate limits set at run time through `/admin/teams`: a budget set by an
//! admin rejects the team's next request in the client's dialect, starts from what the
//! team already spent this period (the ledger), leaves other teams alone, and clearing it
//! restores service; finance reads but cannot change; bad input changes nothing; every
//! change is one audit entry with before and after; a second replica on the same database
//! applies the change within its refresh interval.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use switchyard_it::client::{assert_dialect_error, http_client, into_json, Dialect, JsonResponse};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

const ADMIN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_TEAM_LIMITS";
const ADMIN: &str = "team-limits-admin-token-61c";

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> JsonResponse {
        let mut rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        into_json(rb.send().await.expect("send")).await
    }

    async fn key(&self, team: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/admin/keys",
                ADMIN,
                Some(json!({"team": team})),
            )
            .await;
        assert_eq!(r.status.as_u16(), 201, "{}", r.text);
        r.json["key"].as_str().expect("key").to_string()
    }

    async fn chat(&self, key: &str, dialect: Dialect) -> JsonResponse {
        let mut rb = self.client.post(format!("{}{}", self.base, dialect.path()));
        rb = match dialect {
            Dialect::OpenAi => rb.bearer_auth(key).json(&json!({
                "model": "gpt-4o-mini", "max_tokens": 16,
                "messages": [{"role": "user", "content": "Say hi"}]})),
            Dialect::Anthropic => rb
                .header("x-api-key", key)
                .header("anthropic-version", "2023-06-01")
                .json(&json!({
                    "model": "gpt-4o-mini", "max_tokens": 16,
                    "messages": [{"role": "user", "content": "Say hi"}]})),
        };
        into_json(rb.send().await.expect("send")).await
    }
}

fn budget<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["budgets"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no budget {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn team_limits_set_at_run_time_apply_at_once_and_are_audited() {
    std::env::set_var(ADMIN_VAR, ADMIN);
    switchyard_it::harness::clear_of_minute_boundary().await;
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {ADMIN_VAR}, cache_ttl_ms: 100 }}
providers:
  - name: mock
    kind: openai
    base_url: "{openai}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
"#,
        db = temp_db_url(),
        openai = mock.openai_base_url(),
    );
    let gw = start_gateway(&yaml).await.expect("gateway");
    let api = Api {
        client: http_client(),
        base: format!("http://{}", gw.addr),
    };
    let web = api.key("web").await;
    let batch = api.key("batch").await;
    let finance = {
        let r = api
            .call(
                Method::POST,
                "/admin/tokens",
                ADMIN,
                Some(json!({"role": "finance", "expires_in": "1h"})),
            )
            .await;
        r.json["token"].as_str().expect("token").to_string()
    };

    // No limits configured: web spends a little, and the ledger records it.
    let r = api.chat(&web, Dialect::OpenAi).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = api
            .call(Method::GET, "/admin/spend?group_by=team", ADMIN, None)
            .await;
        if s.text.contains("\"web\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ledger never showed web: {}",
            s.text
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Finance may read but not change.
    let r = api
        .call(
            Method::PUT,
            "/admin/teams/web/limits",
            &finance,
            Some(json!({"budget_month": {"hard_usd": "0.000001"}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);

    // Bad input is refused and changes nothing.
    for body in [
        json!({"budget_month": {"soft_usd": "2", "hard_usd": "1"}}),
        json!({"budget_month": {"hard": 1}}),
        json!({"budget_week": {"hard_usd": 1}}),
        json!({"rate": {}}),
        json!({"budget_day": {"hard_usd": "0.0000001"}}),
        json!({}),
    ] {
        let r = api
            .call(
                Method::PUT,
                "/admin/teams/web/limits",
                ADMIN,
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(r.json["error"]["type"], "invalid_request", "{}", r.text);
    }
    let r = api
        .call(
            Method::DELETE,
            "/admin/teams/web/limits/budget_week",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);

    // An admin sets web's monthly budget below what it already spent: the counter starts
    // from the ledger's spend, and the next request is refused in the client's dialect.
    let r = api
        .call(
            Method::PUT,
            "/admin/teams/web/limits",
            ADMIN,
            Some(json!({"budget_month": {"hard_usd": "0.000001"}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let v = r.json.clone();
    assert_eq!(v["changed"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["changed"][0]["kind"], "budget_month");
    let month = budget(&v["team"], "team-limit-month");
    assert_eq!(month["source"], "team");
    assert_eq!(month["hard_usd"], "0.000001");
    assert_ne!(
        month["spent_usd"], "0.00",
        "the spend so far is counted: {month}"
    );
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let r = api.chat(&web, dialect).await;
        assert_eq!(r.status.as_u16(), 429, "{dialect:?}: {}", r.text);
        assert!(r.header("retry-after").is_some());
        let kind = assert_dialect_error(dialect, &r.json);
        assert_eq!(kind, "rate_limit_error", "{}", r.text);
        assert!(r.text.contains("team-limit-month"), "{}", r.text);
    }
    // Another team is not affected.
    assert_eq!(api.chat(&batch, Dialect::OpenAi).await.status.as_u16(), 200);

    // A rate limit for batch: one request per minute.
    let r = api
        .call(
            Method::PUT,
            "/admin/teams/batch/limits",
            ADMIN,
            Some(json!({"rate": {"rpm": 1}})),
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(api.chat(&batch, Dialect::OpenAi).await.status.as_u16(), 200);
    let r = api.chat(&batch, Dialect::OpenAi).await;
    assert_eq!(r.status.as_u16(), 429, "{}", r.text);
    assert!(r.text.contains("team-limit-rate"), "{}", r.text);

    // Setting the same value again changes nothing and records nothing.
    let r = api
        .call(
            Method::PUT,
            "/admin/teams/batch/limits",
            ADMIN,
            Some(json!({"rate": {"rpm": 1}})),
        )
        .await;
    assert_eq!(r.json["changed"], json!([]), "{}", r.text);

    // Finance reads every team with its limits and live counters.
    let r = api.call(Method::GET, "/admin/teams", &finance, None).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let teams = r.json.clone();
    let team = |name: &str| {
        teams["teams"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["team"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {teams}"))
    };
    assert_eq!(team("web")["keys"], 1);
    assert_eq!(
        team("web")["limits"]["budget_month"]["hard_usd"],
        "0.000001"
    );
    let rate = &team("batch")["rate_limits"][0];
    assert_eq!(
        (rate["rpm"].clone(), rate["requests_this_minute"].clone()),
        (json!(1), json!(1)),
        "{rate}"
    );
    let r = api
        .call(Method::GET, "/admin/teams/web/limits", &finance, None)
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);

    // A second replica on the same database applies a change made on the first within
    // its refresh interval.
    let gw2 = start_gateway(&yaml).await.expect("second replica");
    let api2 = Api {
        client: http_client(),
        base: format!("http://{}", gw2.addr),
    };
    assert_eq!(
        api2.chat(&web, Dialect::OpenAi).await.status.as_u16(),
        429,
        "read at start-up"
    );
    let r = api
        .call(
            Method::DELETE,
            "/admin/teams/web/limits/budget_month",
            ADMIN,
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["changed"][0]["after"], Value::Null);
    // Cleared: web is served again here at once...
    let r = api.chat(&web, Dialect::OpenAi).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    // ...and on the other replica within its refresh interval (5 s).
    let t0 = Instant::now();
    loop {
        if api2.chat(&web, Dialect::OpenAi).await.status.as_u16() == 200 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(12),
            "the second replica still applies the cleared budget"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // One audit entry per change, with who, before and after; nothing for refusals.
    let r = api
        .call(
            Method::GET,
            "/admin/audit?action=limit&limit=50",
            ADMIN,
            None,
        )
        .await;
    let entries = r.json["entries"].as_array().cloned().unwrap_or_default();
    let summary: Vec<(String, String, Value, Value)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default().to_string(),
                e["target"].as_str().unwrap_or_default().to_string(),
                e["before"].clone(),
                e["after"].clone(),
            )
        })
        .collect();
    let month = json!({"soft_usd": null, "hard_usd": "0.000001"});
    assert_eq!(
        summary,
        vec![
            (
                "limit.changed".to_string(),
                "team:web/budget_month".to_string(),
                Value::Null,
                month.clone()
            ),
            (
                "limit.changed".to_string(),
                "team:batch/rate".to_string(),
                Value::Null,
                json!({"rpm": 1, "tpm": null})
            ),
            (
                "limit.changed".to_string(),
                "team:web/budget_month".to_string(),
                month,
                Value::Null
            ),
        ],
        "{}",
        r.text
    );
    assert!(entries.iter().all(|e| e["actor"] == "admin-token"));
    gw2.shutdown().await;
    gw.shutdown().await;
}
