//! Shadow evaluation end to end: policies mark requests for comparison, the gateway asks
//! the other side after answering, scores the pair and stores it without prompt text —
//! and none of it delays or fails the client, leaks privacy-critical content, or
//! overspends its budget.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard::shadow::store::{load, PairFilter, PairRecord};
use switchyard::store::Db;
use switchyard_it::client::{http_client, with_sdk_headers, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::MockUpstream;

const TARGETS: &str = "version: 1
targets:
  cheap: { model: gpt-4o-mini }
  frontier: { model: claude-sonnet-4-5 }
  slow: { model: mock-slow-3000 }
  broken: { model: mock-500 }
  echo: { model: mock-echo }
  onprem: { model: onprem-a }
  onprem-b: { model: onprem-b }
privacy:
  categories: [pii, phi, financial, secret, confidential]
";

struct Env {
    mock: MockUpstream,
    gateway: switchyard::server::RunningServer,
    db_url: String,
    dir: PathBuf,
    client: reqwest::Client,
}

impl Env {
    /// A gateway with `rules` (after the shared targets) and `shadow_cfg` as its
    /// `shadow:` section. `onprem-*` is an OpenAI-compatible server inside the
    /// organization (`external: false`), served by the same recording mock.
    async fn start(rules: &str, shadow_cfg: &str) -> Env {
        let mock = MockUpstream::start().await;
        let dir = std::env::temp_dir().join(format!(
            "switchyard-shadow-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let policy_dir = dir.join("policy");
        std::fs::create_dir_all(&policy_dir).expect("temp dir");
        std::fs::write(policy_dir.join("policy.yaml"), format!("{TARGETS}{rules}"))
            .expect("policy");
        std::fs::write(
            dir.join("prices.yaml"),
            "version: 1\nmodels:\n  - { model: 'mock-*', effective: 2024-01-01, input: 1.00, output: 2.00 }\n  - { model: 'onprem-*', effective: 2024-01-01, input: 0.10, output: 0.20 }\n",
        )
        .expect("prices");
        let prices_dir = dir.join("prices.yaml");
        let mut yaml = gateway_yaml(mock.addr, &StackOptions::default()).replace(
            "flush_interval_ms: 100 }",
            &format!(
                "flush_interval_ms: 100, prices_file: {:?} }}",
                prices_dir.display().to_string()
            ),
        );
        let db_url = yaml
            .split("database_url: \"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("database url in config")
            .to_string();
        yaml.push_str(&format!(
            "  - name: onprem\n    kind: openai_compatible\n    base_url: \"http://{}/v1\"\n    api_key: \"{}\"\n    external: false\n    max_retries: 0\n    models: [\"onprem-*\"]\n",
            mock.addr,
            switchyard_it::harness::OPENAI_PROVIDER_KEY
        ));
        yaml.push_str(&format!(
            "policy_dir: {:?}\n",
            policy_dir.display().to_string()
        ));
        yaml.push_str(shadow_cfg);
        let gateway = start_gateway(&yaml)
            .await
            .unwrap_or_else(|e| panic!("gateway starts: {e:#}\n{yaml}"));
        Env {
            mock,
            gateway,
            db_url,
            dir,
            client: http_client(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gateway.addr)
    }

    async fn chat(&self, dialect: Dialect, model: &str, text: &str, stream: bool) -> (u16, String) {
        let body = match dialect {
            Dialect::OpenAi => {
                json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
            }
            Dialect::Anthropic => {
                json!({"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]})
            }
        };
        self.post(dialect, &body, None).await
    }

    /// Posts a chat body; streams are read to the end. `team` goes in the open-mode header.
    async fn post(&self, dialect: Dialect, body: &Value, team: Option<&str>) -> (u16, String) {
        let mut rb =
            with_sdk_headers(self.client.post(self.url(dialect.path())), dialect).json(body);
        if let Some(team) = team {
            rb = rb.header("x-switchyard-team", team);
        }
        let resp = rb.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn pairs(&self) -> Vec<PairRecord> {
        let db = Db::connect(&self.db_url).await.expect("ledger db");
        let pairs = load(&db, &PairFilter::default()).await.expect("pairs");
        db.close().await;
        pairs
    }

    /// Waits until `n` pairs are stored (shadow work is asynchronous by design).
    async fn wait_pairs(&self, n: usize, within: Duration) -> Vec<PairRecord> {
        let deadline = Instant::now() + within;
        loop {
            let pairs = self.pairs().await;
            if pairs.len() >= n || Instant::now() > deadline {
                return pairs;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Model names of the upstream requests the mock received.
    fn upstream_models(&self) -> Vec<String> {
        self.mock
            .requests()
            .iter()
            .filter_map(|r| {
                r.json()
                    .get("model")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    async fn metric(&self, needle: &str) -> f64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        text.lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn pairs_are_scored_and_stored_without_text_after_the_answer() {
    let env = Env::start(
        "rules:\n  - id: cheap-first\n    route: cheap\n    shadow: { target: frontier, sample: 1.0 }\ndefault: { route: cheap }\n",
        "",
    )
    .await;
    let prompts = [
        (Dialect::OpenAi, false, "What is the capital of France?"),
        (Dialect::Anthropic, false, "Name three prime numbers."),
        (Dialect::OpenAi, true, "Summarize the plot of Hamlet."),
    ];
    for (dialect, stream, text) in prompts {
        let (status, body) = env.chat(dialect, "anything", text, stream).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("Echo"), "{body}");
    }
    let pairs = env.wait_pairs(3, Duration::from_secs(10)).await;
    assert_eq!(pairs.len(), 3, "{pairs:#?}");
    for p in &pairs {
        assert_eq!(p.rule, "cheap-first");
        assert_eq!(p.primary.model, "gpt-4o-mini");
        assert_eq!(p.shadow.model, "claude-sonnet-4-5");
        assert_eq!(p.shadow_status, 200);
        // The mock echoes the prompt on both sides: the answers agree.
        let q = p.quality.expect("scored");
        assert!(q > 0.9, "{p:#?}");
        assert!(p.lexical.is_some_and(|l| l > 0.9));
        assert_eq!(p.refusal_shadow, Some(false));
        // Sonnet is dearer than mini: it is the reference side.
        assert!(!p.primary_is_strong, "{p:#?}");
        assert!(p.shadow.cost_micros > p.primary.cost_micros, "{p:#?}");
        // No retention unless the rule allows it.
        assert!(p.prompt_text.is_none() && p.primary_text.is_none() && p.shadow_text.is_none());
        assert!(!p.request_id.is_empty());
    }
    // The shadow call is the same conversation, not streamed, to the other model.
    let shadow_calls: Vec<_> = env
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.json().get("model").and_then(Value::as_str) == Some("claude-sonnet-4-5"))
        .collect();
    assert_eq!(shadow_calls.len(), 3);
    assert!(shadow_calls
        .iter()
        .all(|r| r.json().get("stream").and_then(Value::as_bool) != Some(true)));
    let texts: Vec<String> = shadow_calls
        .iter()
        .map(|r| r.json()["messages"].to_string())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("capital of France")),
        "{texts:?}"
    );
    assert_eq!(
        env.metric("switchyard_shadow_total{outcome=\"scored\"}")
            .await,
        3.0
    );

    // Ledger rows are written in batches every 100 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The catalog comparison lists both models with prices, measured latency and agreement.
    let v: Value = env
        .client
        .get(env.url("/v1/models"))
        .send()
        .await
        .expect("models")
        .json()
        .await
        .expect("json");
    let entry = |id: &str| {
        v["data"]
            .as_array()
            .and_then(|d| d.iter().find(|m| m["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mini = entry("gpt-4o-mini");
    assert_eq!(mini["switchyard"]["pricing"]["basis"], "tokens", "{mini}");
    assert_eq!(mini["switchyard"]["measured"]["requests"], 3, "{mini}");
    assert!(
        mini["switchyard"]["measured"]["p50_ms"].is_number(),
        "{mini}"
    );
    assert_eq!(
        mini["switchyard"]["agreement"]["pairs_as_candidate"], 3,
        "{mini}"
    );
    assert!(mini["switchyard"]["agreement"]["quality_vs_reference"]
        .as_f64()
        .is_some_and(|q| q > 0.9));
    let sonnet = entry("claude-echo");
    assert_eq!(
        sonnet["switchyard"]["pricing"]["basis"], "unknown",
        "{sonnet}"
    );
}

#[tokio::test]
async fn slow_or_failing_shadow_never_delays_or_fails_the_primary() {
    let env = Env::start(
        "rules:\n  - id: slow\n    when: { team: slow }\n    route: cheap\n    shadow: { target: slow, sample: 1 }\n  - id: broken\n    when: { team: broken }\n    route: cheap\n    shadow: { target: broken, sample: 1 }\ndefault: { route: cheap }\n",
        "",
    )
    .await;
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hello there"}]});
    let started = Instant::now();
    let (status, v) = env.post(Dialect::OpenAi, &body, Some("slow")).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{v}");
    // The shadow target takes 3 s; the client's answer does not wait for it.
    assert!(took < Duration::from_millis(1500), "primary took {took:?}");
    let (status, v) = env.post(Dialect::OpenAi, &body, Some("broken")).await;
    assert_eq!(status, 200, "{v}");
    let pairs = env.wait_pairs(2, Duration::from_secs(10)).await;
    assert_eq!(pairs.len(), 2, "{pairs:#?}");
    let broken = pairs
        .iter()
        .find(|p| p.rule == "broken")
        .expect("broken pair");
    assert_eq!(broken.shadow_status, 500);
    assert!(
        broken.quality.is_none(),
        "a failed shadow is not a quality signal"
    );
    let slow = pairs.iter().find(|p| p.rule == "slow").expect("slow pair");
    assert_eq!(slow.shadow_status, 200);
    assert!(slow.shadow.latency_ms >= 2900, "{slow:#?}");
    assert_eq!(
        env.metric("switchyard_shadow_total{outcome=\"failed\"}")
            .await,
        1.0
    );
}

#[tokio::test]
async fn privacy_critical_content_is_never_shadowed_outside() {
    let env = Env::start(
        "rules:\n  - id: private-inside\n    when: { all: [ { sensitivity: { privacy_critical: true } }, { team: inside } ] }\n    route: onprem\n    shadow: { target: onprem-b, sample: 1 }\n  - id: private\n    when: { sensitivity: { privacy_critical: true } }\n    route: onprem\n    shadow: { target: frontier, sample: 1 }\n  - id: public\n    route: onprem\n    shadow: { target: frontier, sample: 1 }\ndefault: { route: onprem }\n",
        "",
    )
    .await;
    let secrets = [
        "My social security number is 078-05-1120, can you check my tax form?",
        "Card 4539 5780 1234 5671 exp 12/29, why was it declined?",
        "Patient John Smith, DOB 1980-02-03, diagnosed with type 2 diabetes: adjust metformin?",
    ];
    for (i, text) in secrets.iter().enumerate() {
        let dialect = if i % 2 == 0 {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        };
        let (status, body) = env.chat(dialect, "x", text, i == 2).await;
        assert_eq!(status, 200, "{body}");
    }
    // Positive controls: public content is shadowed on the frontier, and private content
    // between two inside models is compared.
    let (status, _) = env
        .chat(Dialect::OpenAi, "x", "What is a prime number?", false)
        .await;
    assert_eq!(status, 200);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": secrets[0]}]});
    let (status, _) = env.post(Dialect::OpenAi, &body, Some("inside")).await;
    assert_eq!(status, 200);
    env.wait_pairs(2, Duration::from_secs(10)).await;
    // Anything else would have been stored by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pairs = env.pairs().await;
    let rules: Vec<&str> = pairs.iter().map(|p| p.rule.as_str()).collect();
    assert_eq!(pairs.len(), 2, "{rules:?}");
    assert!(
        rules.contains(&"public") && rules.contains(&"private-inside"),
        "{rules:?}"
    );
    let models = env.upstream_models();
    let frontier_calls: Vec<_> = env
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.json().get("model").and_then(Value::as_str) == Some("claude-sonnet-4-5"))
        .collect();
    assert_eq!(frontier_calls.len(), 1, "{models:?}");
    let sent = String::from_utf8_lossy(&frontier_calls[0].raw_body).to_string();
    assert!(sent.contains("prime number"), "{sent}");
    for r in env.mock.requests() {
        if r.json().get("model").and_then(Value::as_str) != Some("claude-sonnet-4-5") {
            continue;
        }
        let raw = String::from_utf8_lossy(&r.raw_body);
        for needle in ["078-05-1120", "4539", "metformin"] {
            assert!(!raw.contains(needle), "privacy-critical text left: {raw}");
        }
    }
}

#[tokio::test]
async fn shadow_spend_and_concurrency_are_bounded() {
    // Budget: $0.0002 a day. A shadow call reserves its worst case first (the prompt plus
    // 64 output tokens at $2/M: ~140 µ$) and settles what the mock's usage says (~30 µ$).
    let env = Env::start(
        "rules:\n  - id: slow\n    when: { team: slow }\n    route: cheap\n    shadow: { target: slow, sample: 1 }\n  - id: all\n    route: cheap\n    shadow: { target: echo, sample: 1 }\ndefault: { route: cheap }\n",
        "shadow: { daily_budget_usd: \"0.0002\", max_output_tokens: 64, max_concurrent: 1 }\n",
    )
    .await;
    for i in 0..8 {
        let body = json!({"model": "x", "messages": [{"role": "user", "content": format!("question number {i}")}]});
        let (status, v) = env.post(Dialect::OpenAi, &body, Some("slow")).await;
        assert_eq!(status, 200, "{v}");
    }
    // One shadow call in flight at a time (the target takes 3 s): the rest are skipped,
    // not queued.
    let count = |env: &Env, model: &str| {
        env.upstream_models()
            .iter()
            .filter(|m| m.as_str() == model)
            .count()
    };
    assert_eq!(
        count(&env, "mock-slow-3000"),
        1,
        "{:?}",
        env.upstream_models()
    );
    assert_eq!(
        env.metric("switchyard_shadow_total{outcome=\"skipped_concurrency\"}")
            .await,
        7.0
    );
    assert_eq!(env.wait_pairs(1, Duration::from_secs(10)).await.len(), 1);
    // With the slot free again, the budget decides: spend stops short of $0.0002.
    let mut sent = 0;
    while env
        .metric("switchyard_shadow_total{outcome=\"skipped_budget\"}")
        .await
        == 0.0
    {
        assert!(sent < 20, "the budget never stopped a shadow call");
        let before = env.pairs().await.len();
        let body = json!({"model": "x", "messages": [{"role": "user", "content": format!("another question {sent}")}]});
        let (status, _) = env.post(Dialect::OpenAi, &body, None).await;
        assert_eq!(status, 200);
        sent += 1;
        env.wait_pairs(before + 1, Duration::from_millis(500)).await;
    }
    let pairs = env.pairs().await;
    let spent: i64 = pairs
        .iter()
        .map(|p| p.shadow.cost_micros + p.judge_cost_micros)
        .sum();
    assert!(
        spent <= 200,
        "shadow spend {spent} µ$ passed the $0.0002 budget"
    );
    // `/readyz` reports the same spend against the budget.
    let ready: Value = env
        .client
        .get(env.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["shadow"]["daily_budget_usd"], "$0.0002", "{ready}");
    assert_eq!(
        ready["shadow"]["spent_today_usd"],
        switchyard::limits::format_usd(spent),
        "{ready}"
    );
    assert!(
        count(&env, "mock-echo") >= 2,
        "the budget allowed more than one call"
    );
    assert!(
        count(&env, "mock-echo") < sent,
        "the budget stopped at least one call"
    );
}

#[tokio::test]
async fn judge_verdict_decides_quality_and_retention_is_opt_in() {
    let env = Env::start(
        "rules:\n  - id: judged\n    route: cheap\n    shadow: { target: frontier, sample: 1, retain_text: true }\ndefault: { route: cheap }\n",
        "shadow: { judge: { model: mock-say-TIE } }\n",
    )
    .await;
    let (status, _) = env
        .chat(Dialect::OpenAi, "x", "Explain recursion briefly.", false)
        .await;
    assert_eq!(status, 200);
    let pairs = env.wait_pairs(1, Duration::from_secs(10)).await;
    assert_eq!(pairs.len(), 1);
    let p = &pairs[0];
    assert_eq!(p.judge.as_deref(), Some("tie"), "{p:#?}");
    assert_eq!(p.judge_model.as_deref(), Some("mock-say-TIE"));
    assert_eq!(p.quality, Some(1.0));
    assert!(p.judge_cost_micros > 0);
    assert!(p
        .prompt_text
        .as_deref()
        .is_some_and(|t| t.contains("recursion")));
    assert!(p
        .primary_text
        .as_deref()
        .is_some_and(|t| t.contains("Echo")));
    // The judge saw the rubric and both answers.
    let judge = env
        .mock
        .requests()
        .into_iter()
        .find(|r| r.json().get("model").and_then(Value::as_str) == Some("mock-say-TIE"))
        .expect("judge call");
    let sent = judge.json().to_string();
    assert!(sent.contains("Reply with exactly one word"), "{sent}");
    assert!(
        sent.contains("[Answer A]") && sent.contains("[Answer B]"),
        "{sent}"
    );
}
