//! The learned sentence head (`classifier.sentence_head`: MiniLM embedding + logistic
//! read-outs) through the HTTP API, against the recording mock upstream. Needs
//! scripts/setup-models.sh (which trains the head with scripts/train-heads.sh).

use serde_json::{json, Value};
use switchyard_it::client::{http_client, post_json, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::MockUpstream;

/// Health data referred to without a literal value: a calendar entry with a specialist,
/// no condition named, nothing the rules anchor on. Only the head can read it.
const DESCRIBED: &str =
    "Could you block out my Thursday afternoon, I'm seeing the oncologist about my scan.";

async fn start(extra_yaml: &str) -> (MockUpstream, switchyard::server::RunningServer) {
    let mock = MockUpstream::start().await;
    let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
    yaml.push_str(extra_yaml);
    let gateway = start_gateway(&yaml)
        .await
        .unwrap_or_else(|e| panic!("gateway failed to start: {e:#}"));
    (mock, gateway)
}

fn chat(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]})
}

async fn classify(gw: &switchyard::server::RunningServer, text: &str) -> Value {
    let resp = http_client()
        .post(format!("http://{}/v1/classify", gw.addr))
        .json(&json!({ "prompt": text }))
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

async fn metrics(gw: &switchyard::server::RunningServer) -> String {
    http_client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn data_referred_to_without_a_value_never_reaches_the_external_upstream() {
    // Built-in policy, no local model: privacy-critical requests are refused (503).
    let (mock, gw) = start("").await;
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let resp = post_json(&http_client(), &url, Dialect::OpenAi, &chat(DESCRIBED)).await;
    assert_eq!(resp.status.as_u16(), 503, "{}", resp.text);
    assert!(resp.text.contains("privacy-critical"), "{}", resp.text);
    assert!(mock.requests().is_empty(), "nothing may leave");

    // Its time shows in /metrics, by outcome.
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"switchyard_sentence_head_duration_seconds_count{outcome="ran"} 1"#),
        "{}",
        m.lines()
            .filter(|l| l.contains("sentence_head"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // /v1/classify names the head as the detector, over the whole message, and the
    // difficulty is the combined reading.
    let c = classify(&gw, DESCRIBED).await;
    assert_eq!(c["sensitive"], true, "{c}");
    let head: Vec<&Value> = c["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["detector"] == "head")
        .collect();
    assert_eq!(head.len(), 1, "{c}");
    assert_eq!(head[0]["category"], "phi", "{c}");
    assert_eq!(head[0]["type"], "referred_without_value", "{c}");
    assert_eq!(head[0]["start"], 0, "{c}");
    assert_eq!(head[0]["end"], DESCRIBED.len(), "{c}");
    assert_eq!(c["difficulty_model"], "lexical+embedding", "{c}");

    // A question about the topic, and plain prose, still go where the client asked.
    for text in [
        "Say hello",
        "Explain how salaries are negotiated in tech.",
        "What is a good way to log moods in a journal app?",
    ] {
        mock.clear();
        let resp = post_json(&http_client(), &url, Dialect::OpenAi, &chat(text)).await;
        assert_eq!(resp.status.as_u16(), 200, "{text}: {}", resp.text);
        assert_eq!(mock.requests().len(), 1, "{text}");
    }
    // The built-in policy reads no difficulty and none of them speaks in the first
    // person, so no head finding could count: mode auto skips the encoder.
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"switchyard_sentence_head_duration_seconds_count{outcome="skipped_gate"} 3"#),
        "{}",
        m.lines()
            .filter(|l| l.contains("sentence_head"))
            .collect::<Vec<_>>()
            .join(
                "
"
            )
    );
}

#[tokio::test]
async fn with_the_head_off_the_same_request_leaves() {
    let (mock, gw) = start("classifier: { sentence_head: { mode: off } }\n").await;
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let resp = post_json(&http_client(), &url, Dialect::OpenAi, &chat(DESCRIBED)).await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    assert_eq!(mock.requests().len(), 1, "the rules alone miss it");
    let c = classify(&gw, DESCRIBED).await;
    assert_eq!(c["sensitive"], false, "{c}");
    assert_eq!(c["difficulty_model"], "lexical", "{c}");
}

#[tokio::test]
async fn when_the_rules_already_decided_the_head_does_not_run() {
    // An SSN keeps the request local under the built-in policy whatever the head says:
    // mode auto skips it, and the metric says so.
    let (_mock, gw) = start("").await;
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let resp = post_json(
        &http_client(),
        &url,
        Dialect::OpenAi,
        &chat("My SSN is 219-09-9999, is it on file?"),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 503, "{}", resp.text);
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"switchyard_sentence_head_duration_seconds_count{outcome="skipped_mode"} 1"#),
        "{}",
        m.lines()
            .filter(|l| l.contains("sentence_head"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn a_configured_head_that_cannot_load_stops_start_up() {
    let mock = MockUpstream::start().await;
    let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
    yaml.push_str("classifier: { sentence_head: { mode: auto, dir: /nonexistent/head } }\n");
    let err = match start_gateway(&yaml).await {
        Ok(_) => panic!("the gateway must not start with a weaker classifier"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("sentence head"), "{err}");
    assert!(err.contains("mode: off"), "names the way out: {err}");
}
