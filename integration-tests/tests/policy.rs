//! The policy engine through the HTTP API: fail-closed privacy, reversible redaction,
//! fallback chains, blocks, explain and hot reload, against the recording mock upstream.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::client::{http_client, post_json, post_sse, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::MockUpstream;

const POLICY: &str = r#"version: 1
targets:
  local: { model: local/smollm2-135m-instruct }
  broken: { model: mock-500 }
  echo: { model: gpt-4o-mini }
  claude: { model: claude-echo }
  fallback: { chain: [broken, echo] }
privacy:
  categories: [pii, phi, financial, secret, confidential]
rules:
  - id: suspended
    when: { team: suspended }
    block: "this team is suspended"
  - id: redact-pii
    when:
      all:
        - tags: redact-ok
        - sensitivity: { categories: [pii] }
    redact: [pii]
    route: claude
    headers: { x-policy: redacted }
  - id: privacy-local
    when: { sensitivity: { privacy_critical: true } }
    route: local
    require_local: true
  - id: chain
    when: { model: 'fallback-*' }
    route: fallback
default:
  route: requested
"#;

struct Env {
    mock: MockUpstream,
    gateway: switchyard::server::RunningServer,
    dir: PathBuf,
    client: reqwest::Client,
}

impl Env {
    async fn start(policy: Option<&str>) -> Env {
        let mock = MockUpstream::start().await;
        let dir = std::env::temp_dir().join(format!("switchyard-policy-{}", uuid_like()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
        if let Some(policy) = policy {
            std::fs::write(dir.join("10-policy.yaml"), policy).unwrap();
            yaml.push_str(&format!(
                "policy_dir: {:?}\npolicy_reload_ms: 50\n",
                dir.display().to_string()
            ));
        }
        let gateway = start_gateway(&yaml).await.expect("gateway starts");
        Env {
            mock,
            gateway,
            dir,
            client: http_client(),
        }
    }

    fn url(&self, dialect: Dialect) -> String {
        format!("http://{}{}", self.gateway.addr, dialect.path())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

fn body(dialect: Dialect, model: &str, text: &str, stream: bool) -> Value {
    match dialect {
        Dialect::OpenAi => {
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]})
        }
        Dialect::Anthropic => {
            json!({"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]})
        }
    }
}

/// A small deterministic generator, so the property test is reproducible.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
}

fn luhn_card(rng: &mut Lcg) -> String {
    let mut digits: Vec<u32> = "4"
        .chars()
        .chain(rng.digits(14).chars())
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                *d
            }
        })
        .sum();
    digits.push((10 - sum % 10) % 10);
    digits.iter().map(|d| d.to_string()).collect()
}

/// Sensitive values of several kinds, freshly generated.
fn sensitive_value(rng: &mut Lcg) -> String {
    let first = rng.pick(&["maria", "jonas", "aiko", "pedro", "fatima", "liam"]);
    let last = rng.pick(&["lopez", "berg", "tanaka", "silva", "haddad", "walsh"]);
    match rng.next() % 4 {
        0 => format!(
            "{first}.{last}{}@{}.com",
            rng.digits(2),
            rng.pick(&["brightwave", "northmail", "kestrel"])
        ),
        1 => luhn_card(rng),
        2 => {
            let alphabet: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".chars().collect();
            let tail: String = (0..16)
                .map(|_| alphabet[(rng.next() as usize) % alphabet.len()])
                .collect();
            format!("AKIA{tail}")
        }
        _ => format!("+1 415 {} {}", rng.digits(3), rng.digits(4)),
    }
}

fn wrap(rng: &mut Lcg, value: &str) -> String {
    match rng.next() % 3 {
        0 => format!("Please check this for me: {value}. What do you think?"),
        1 => format!("My details are {value} — can you write a short confirmation note?"),
        _ => format!("Config question: why does login fail with {value} in the settings file?"),
    }
}

#[tokio::test]
async fn pii_request_never_reaches_external_upstream() {
    // Built-in policy, no local model loaded: privacy-critical requests must be refused,
    // never sent to the requested external model, in either dialect, streaming or not.
    let env = Env::start(None).await;
    let mut rng = Lcg(0x5eed);
    let mut values = Vec::new();
    for i in 0..48 {
        let value = sensitive_value(&mut rng);
        let text = wrap(&mut rng, &value);
        let dialect = if i % 2 == 0 {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        };
        let model = if i % 3 == 0 {
            "claude-echo"
        } else {
            "gpt-4o-mini"
        };
        let stream = i % 4 < 2;
        let resp = post_json(
            &env.client,
            &env.url(dialect),
            dialect,
            &body(dialect, model, &text, stream),
        )
        .await;
        assert_eq!(resp.status.as_u16(), 503, "{text}: {}", resp.text);
        assert!(resp.text.contains("privacy-critical"), "{}", resp.text);
        assert!(
            !resp.text.contains(&value),
            "the error must not echo the value"
        );
        values.push(value);
    }
    for r in env.mock.requests() {
        let raw = String::from_utf8_lossy(&r.raw_body);
        for v in &values {
            assert!(!raw.contains(v.as_str()), "upstream received {v}");
        }
    }
    assert!(env.mock.requests().is_empty(), "nothing may leave");

    // A plain request still goes where the client asked.
    let resp = post_json(
        &env.client,
        &env.url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body(Dialect::OpenAi, "gpt-4o-mini", "Say hello", false),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    assert_eq!(resp.header("x-switchyard-rule"), Some("default"));
    assert_eq!(env.mock.requests().len(), 1);
}

#[tokio::test]
async fn redacted_request_leaves_with_placeholders_and_the_answer_is_restored() {
    let env = Env::start(Some(POLICY)).await;
    let email = "maria.lopez77@brightwave.com";
    let text = format!("Write to {email} today");
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        for stream in [false, true] {
            env.mock.clear();
            let req = body(dialect, "gpt-4o-mini", &text, stream);
            let answer = if stream {
                let sse = switchyard_it::client::with_sdk_headers(
                    env.client.post(env.url(dialect)),
                    dialect,
                )
                .header("x-switchyard-tags", "redact-ok")
                .json(&req)
                .send()
                .await
                .unwrap();
                let sse = switchyard_it::client::read_sse(sse, Instant::now()).await;
                assert_eq!(sse.status.as_u16(), 200);
                assert_eq!(sse.header("x-switchyard-rule"), Some("redact-pii"));
                match dialect {
                    Dialect::OpenAi => sse.openai_text(),
                    Dialect::Anthropic => sse.anthropic_text(),
                }
            } else {
                let resp = switchyard_it::client::with_sdk_headers(
                    env.client.post(env.url(dialect)),
                    dialect,
                )
                .header("x-switchyard-tags", "redact-ok")
                .json(&req)
                .send()
                .await
                .unwrap();
                let resp = switchyard_it::client::into_json(resp).await;
                assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
                assert_eq!(resp.header("x-switchyard-redactions"), Some("1"));
                match dialect {
                    Dialect::OpenAi => resp.json["choices"][0]["message"]["content"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    Dialect::Anthropic => resp.json["content"][0]["text"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                }
            };
            // The mock echoes what it received; the client sees the original again.
            assert!(
                answer.contains(email),
                "{dialect:?} stream={stream}: {answer}"
            );
            let sent = env.mock.only_request_body();
            let raw = sent.to_string();
            assert!(!raw.contains(email), "upstream saw the email: {raw}");
            assert!(raw.contains("<EMAIL_1>"), "{raw}");
            assert_eq!(env.mock.requests()[0].header("x-policy"), Some("redacted"));
            assert_eq!(
                sent["model"], "claude-echo",
                "routed by the rule, not the request"
            );
        }
    }
}

trait OnlyBody {
    fn only_request_body(&self) -> Value;
}
impl OnlyBody for MockUpstream {
    fn only_request_body(&self) -> Value {
        let reqs = self.requests();
        assert_eq!(reqs.len(), 1, "expected exactly one upstream request");
        reqs[0].json().clone()
    }
}

#[tokio::test]
async fn fallback_chain_skips_a_failing_target_and_blocks_answer_in_dialect() {
    let env = Env::start(Some(POLICY)).await;
    let resp = post_json(
        &env.client,
        &env.url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body(Dialect::OpenAi, "fallback-any", "Say hello", false),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    assert_eq!(resp.header("x-switchyard-model"), Some("gpt-4o-mini"));
    let models: Vec<String> = env
        .mock
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(models, ["mock-500", "gpt-4o-mini"]);

    // Streaming falls back too, since nothing reached the client yet.
    env.mock.clear();
    let sse = post_sse(
        &env.client,
        &env.url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body(Dialect::Anthropic, "fallback-any", "Say hello", true),
    )
    .await;
    assert_eq!(sse.status.as_u16(), 200);
    assert!(
        sse.anthropic_text().contains("hello"),
        "{}",
        sse.anthropic_text()
    );

    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let resp =
            switchyard_it::client::with_sdk_headers(env.client.post(env.url(dialect)), dialect)
                .header("x-switchyard-team", "suspended")
                .json(&body(dialect, "gpt-4o-mini", "hello", false))
                .send()
                .await
                .unwrap();
        let resp = switchyard_it::client::into_json(resp).await;
        assert_eq!(resp.status.as_u16(), 403);
        assert!(resp.text.contains("this team is suspended"));
        switchyard_it::client::assert_dialect_error(dialect, &resp.json);
        // A block names its rule like every other answer.
        assert_eq!(resp.header("x-switchyard-rule"), Some("suspended"));
    }
}

#[tokio::test]
async fn explain_shows_every_rule_and_calls_no_model() {
    let env = Env::start(Some(POLICY)).await;
    let resp = post_json(
        &env.client,
        &format!("http://{}/v1/route/explain", env.gateway.addr),
        Dialect::OpenAi,
        &body(
            Dialect::OpenAi,
            "gpt-4o-mini",
            "My card is 4539 5780 1234 5671",
            false,
        ),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    let d = &resp.json["decision"];
    assert_eq!(d["rule"], "privacy-local");
    let trace: Vec<&str> = d["trace"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rule"].as_str().unwrap())
        .collect();
    assert_eq!(trace, ["suspended", "redact-pii", "privacy-local"]);
    assert_eq!(
        resp.json["classification"]["categories"],
        json!(["financial"])
    );
    assert!(
        !resp.text.contains("4539 5780"),
        "explain never echoes sensitive values"
    );
    assert!(env.mock.requests().is_empty());
}

#[tokio::test]
async fn hot_reload_swaps_policy_keeps_last_good_and_finishes_in_flight_streams() {
    let env = Env::start(Some(POLICY)).await;
    let url = env.url(Dialect::OpenAi);
    // A slow stream in flight across the reloads.
    let client = env.client.clone();
    let slow_url = url.clone();
    let in_flight = tokio::spawn(async move {
        post_sse(
            &client,
            &slow_url,
            Dialect::OpenAi,
            &body(
                Dialect::OpenAi,
                "mock-slow-150",
                "one two three four five six",
                true,
            ),
        )
        .await
    });

    let new_policy = POLICY.replace("route: requested", "route: claude");
    std::fs::write(env.dir.join("10-policy.yaml"), new_policy).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = post_json(
            &env.client,
            &url,
            Dialect::OpenAi,
            &body(Dialect::OpenAi, "gpt-4o-mini", "Say hi", false),
        )
        .await;
        assert_eq!(resp.status.as_u16(), 200);
        if resp.header("x-switchyard-model") == Some("claude-echo") {
            break;
        }
        assert!(Instant::now() < deadline, "policy change not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken file is rejected: the last good policy keeps serving and the error is exposed.
    std::fs::write(env.dir.join("20-broken.yaml"), "version: 1\nrules:\n  - id: x\n    when: { dificulty: { gte: 0.5 } }\n    route: nowhere\n").unwrap();
    // Open mode: the policy status is in the readiness details (`/admin/policy/status`
    // needs the admin token, tests/access.rs).
    let status_url = format!("http://{}/readyz", env.gateway.addr);
    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        let s: Value = env
            .client
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !s["policy"]["last_error"].is_null() {
            break s["policy"].clone();
        }
        assert!(Instant::now() < deadline, "broken policy not reported");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let err = status["last_error"].as_str().unwrap();
    assert!(err.contains("20-broken.yaml:4:"), "{err}");
    assert!(err.contains("did you mean `difficulty`"), "{err}");
    let resp = post_json(
        &env.client,
        &url,
        Dialect::OpenAi,
        &body(Dialect::OpenAi, "gpt-4o-mini", "Say hi", false),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200);
    assert_eq!(resp.header("x-switchyard-model"), Some("claude-echo"));

    // The reloads are visible in /metrics, as are the requests served meanwhile.
    let metrics = env
        .client
        .get(format!("http://{}/metrics", env.gateway.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("switchyard_policy_reloads_total"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("switchyard_policy_reloads_total") && l.contains("error")),
        "a rejected reload is counted"
    );
    assert!(metrics.contains("switchyard_requests_total{"));
    assert!(metrics.contains("switchyard_classifier_duration_seconds_count"));

    let sse = in_flight.await.unwrap();
    assert_eq!(sse.status.as_u16(), 200);
    assert!(sse.has_done(), "the in-flight stream finished normally");
    assert!(sse.openai_text().contains("six"));
}
