//! The console over HTTP with scoped tokens: the traffic explorer (the ledger filtered by
//! team and status, as a page and as CSV, never with prompt text, and only for the roles
//! that read traffic: finance, security, admin), and the policies page (the live policy
//! as readable rules, its test cases run against it, the diff of its last change).

use serde_json::{json, Value};
use switchyard_it::client::http_client;
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::MockUpstream;

const ADMIN_VAR: &str = "SWITCHYARD_TEST_ADMIN_TOKEN_CONSOLE_IT";
const ADMIN: &str = "console-it-admin-token-5a9";
const PROMPT: &str = "zebra-violet-prompt-text-4417";

async fn token(client: &reqwest::Client, base: &str, role: &str) -> String {
    let v: Value = client
        .post(format!("{base}/admin/tokens"))
        .bearer_auth(ADMIN)
        .json(&json!({"role": role, "expires_in": "1h"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("token").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_explorer_filters_the_ledger_and_exports_csv_without_prompts() {
    std::env::set_var(ADMIN_VAR, ADMIN);
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {ADMIN_VAR} }}
providers:
  - name: mock-openai
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
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let mut keys = Vec::new();
    let mut ids = Vec::new();
    for team in ["web", "batch"] {
        let v: Value = client
            .post(format!("{base}/admin/keys"))
            .bearer_auth(ADMIN)
            .json(&json!({"team": team}))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        keys.push(v["key"].as_str().expect("key").to_string());
        ids.push(v["id"].as_str().expect("id").to_string());
    }
    for (key, n) in [(&keys[0], 2), (&keys[1], 1)] {
        for _ in 0..n {
            let resp = client
                .post(format!("{base}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}))
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200);
        }
    }
    // A refused request is in the ledger too (status 401).
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    let finance = token(&client, &base, "finance").await;
    let csv = |query: &'static str| {
        let (client, base, finance) = (client.clone(), base.clone(), finance.clone());
        async move {
            let resp = client
                .get(format!("{base}/console/traffic.csv?{query}"))
                .bearer_auth(&finance)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200, "{query}");
            assert!(resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/csv")));
            resp.text().await.expect("text")
        }
    };
    let all = csv("").await;
    assert!(all.starts_with("id,time,team,key_id,route,"), "{all}");
    assert_eq!(all.lines().count(), 1 + 4, "{all}");
    assert!(!all.contains(PROMPT), "the export holds prompt text");
    let web = csv("team=web").await;
    assert_eq!(web.lines().count(), 1 + 2, "{web}");
    assert!(web
        .lines()
        .skip(1)
        .all(|l| l.contains(",web,") && l.contains("gpt-4o-mini")));
    let refused = csv("status=401").await;
    assert_eq!(refused.lines().count(), 1 + 1, "{refused}");
    // What served each record: the refused one had no route; the others came from the
    // frontier mock or, for a repeat, the response cache.
    assert!(
        all.starts_with("id,time,team,key_id,route,served,"),
        "{all}"
    );
    let none = csv("served=none").await;
    assert_eq!(none.lines().count(), 1 + 1, "{none}");
    assert!(
        none.lines().nth(1).is_some_and(|l| l.contains(",401,")),
        "{none}"
    );
    let frontier = csv("served=frontier").await.lines().count() - 1;
    let cached = csv("served=cache").await.lines().count() - 1;
    assert!(frontier >= 2, "{all}");
    assert_eq!(frontier + cached, 3, "{all}");
    assert_eq!(
        csv("served=local").await.lines().count(),
        1,
        "no local record"
    );

    // The page: the same records, with the filter kept in the CSV link.
    let page = client
        .get(format!("{base}/console/traffic?team=batch"))
        .bearer_auth(&finance)
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("text");
    assert_eq!(html.matches("<tr data-status=200>").count(), 1, "{html}");
    assert!(html.contains("/console/traffic.csv?team=batch"));
    assert!(!html.contains(PROMPT));
    for query in ["status=ok", "served=mars"] {
        let bad = client
            .get(format!("{base}/console/traffic?{query}"))
            .bearer_auth(&finance)
            .send()
            .await
            .expect("send");
        assert_eq!(bad.status(), 400, "{query}");
    }

    // The key list shows when each key was last used, from the same ledger.
    let html = client
        .get(format!("{base}/console/keys"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    let row = html
        .split("<tr data-key=")
        .find(|r| r.starts_with(&format!("\"{}\"", ids[0])))
        .expect("the web key's row");
    let last = row
        .split("<td class=last-used>")
        .nth(1)
        .and_then(|r| r.split("</td>").next())
        .unwrap_or_default();
    assert!(last.starts_with("20"), "last used: {last:?}");

    // Viewers do not read traffic.
    let viewer = token(&client, &base, "viewer").await;
    let resp = client
        .get(format!("{base}/console/traffic.csv"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 403);
    gw.shutdown().await;
}

const POLICY: &str = "version: 1
targets:
  mini: { model: gpt-4o-mini }
rules:
  - id: ops-blocked
    when:
      any:
        - team: ops
        - not: { model: gpt-4o-mini }
    block: ops may not call models from here
default:
  route: mini
";

const POLICY_TESTS: &str = "version: 1
cases:
  - name: ops is blocked
    request: { prompt: hello, model: gpt-4o-mini, team: ops }
    expect: { rule: ops-blocked, blocked: true }
  - name: web goes to mini
    request: { prompt: hello, model: gpt-4o-mini, team: web }
    expect: { rule: default, model: gpt-4o-mini }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_page_reads_as_rules_runs_its_tests_and_shows_the_last_change() {
    std::env::set_var(ADMIN_VAR, ADMIN);
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let policy_file = dir.path().join("policy.yaml");
    std::fs::write(&policy_file, POLICY).expect("write");
    std::fs::write(dir.path().join("policy.test.yaml"), POLICY_TESTS).expect("write");
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
auth: {{ admin_token_env: {ADMIN_VAR} }}
policy_dir: "{dir}"
providers:
  - name: mock-openai
    kind: openai
    base_url: "{openai}"
    api_key: sk-test
    max_retries: 0
    models: ["gpt-4o-mini"]
"#,
        db = temp_db_url(),
        dir = dir.path().display(),
        openai = mock.openai_base_url(),
    );
    let gw = start_gateway(&yaml).await.expect("gateway");
    let base = format!("http://{}", gw.addr);
    let client = http_client();
    let security = token(&client, &base, "security").await;
    let page = |t: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let resp = client
                .get(format!("{base}/console/policies"))
                .bearer_auth(t)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), 200);
            resp.text().await.expect("text")
        }
    };
    let post = |path: &'static str, t: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let resp = client
                .post(format!("{base}{path}"))
                .bearer_auth(t)
                .send()
                .await
                .expect("send");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("text"))
        }
    };

    // The rules in words, as the engine evaluates them: the condition tree indented,
    // each action spelled out, targets resolved to their chain.
    let html = page(security.clone()).await;
    for expected in [
        "id=rules",
        "<code>ops-blocked</code>",
        "any of",
        "<div style=\"padding-left:1rem\">team is ops</div>",
        "<div style=\"padding-left:1rem\">not</div>",
        "<div style=\"padding-left:2rem\">requested model is gpt-4o-mini</div>",
        "block: ops may not call models from here",
        "route to `mini`: gpt-4o-mini (external)",
        "No reload has changed a policy file",
        "id=run-tests",
    ] {
        assert!(html.contains(expected), "{expected:?} missing from {html}");
    }

    // A request the rule refuses is in the ledger as served by nothing but the block.
    let key: Value = client
        .post(format!("{base}/admin/keys"))
        .bearer_auth(ADMIN)
        .json(&json!({"team": "ops"}))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let resp = client
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(key["key"].as_str().expect("key"))
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let blocked = client
        .get(format!("{base}/console/traffic.csv?served=blocked"))
        .bearer_auth(&security)
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert_eq!(blocked.lines().count(), 1 + 1, "{blocked}");
    assert!(blocked.contains(",ops-blocked,blocked,"), "{blocked}");

    // Its test cases, run on demand against the live policy.
    let (status, html) = post("/console/policies/test", security.clone()).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("2 passed, 0 failed"), "{html}");
    assert!(html.contains("ops is blocked"), "{html}");
    for role in ["viewer", "finance"] {
        let t = token(&client, &base, role).await;
        let (status, _) = post("/console/policies/test", t).await;
        assert_eq!(status, 403, "{role} ran the policy tests");
    }

    // An edited file, reloaded: the page shows what changed, line by line; the cases
    // run against the new policy, and one now fails with the reason.
    std::fs::write(&policy_file, POLICY.replace("team: ops", "team: nobody")).expect("write");
    let (status, html) = post("/console/policies/reload", security.clone()).await;
    assert_eq!(status, 200, "{html}");
    let html = page(security.clone()).await;
    assert!(html.contains("Version 1 → 2"), "{html}");
    assert!(html.contains("1 line(s) added, 1 removed"), "{html}");
    assert!(
        html.contains("<span class=del>-        - team: ops</span>"),
        "{html}"
    );
    assert!(
        html.contains("<span class=add>+        - team: nobody</span>"),
        "{html}"
    );
    let (status, html) = post("/console/policies/test", security.clone()).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("1 passed, 1 failed"), "{html}");
    assert!(
        html.contains("expected `ops-blocked`, got `default`"),
        "{html}"
    );

    // The same through the admin API, for automation.
    let (status, text) = post("/admin/policy/test", security.clone()).await;
    assert_eq!(status, 200, "{text}");
    let report: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(report["ok"], false);
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let rules: Value = client
        .get(format!("{base}/admin/policy/rules"))
        .bearer_auth(&security)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(rules["rules"][0]["id"], "ops-blocked");
    assert_eq!(rules["rules"][0]["when"][1]["text"], "team is nobody");
    let status: Value = client
        .get(format!("{base}/admin/policy/status"))
        .bearer_auth(&security)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(status["last_change"]["to_version"], 2, "{status}");

    // A test file that does not parse is an error on the page, not a crash.
    std::fs::write(
        dir.path().join("policy.test.yaml"),
        "version: 1\ncases: 7\n",
    )
    .expect("write");
    let (status, _) = post("/console/policies/reload", security.clone()).await;
    assert_eq!(status, 200);
    let (status, html) = post("/console/policies/test", security.clone()).await;
    assert_eq!(status, 422, "{html}");
    assert!(html.contains("id=tests-error"), "{html}");
    assert!(html.contains("policy.test.yaml"), "{html}");
}
