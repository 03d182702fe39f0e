//! The learned PII detector (Rampart NER, `classifier.ner`) through the HTTP API, against
//! the recording mock upstream. Needs scripts/setup-models.sh (which runs setup-ner.sh).

use serde_json::{json, Value};
use switchyard_it::client::{http_client, post_json, Dialect};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::MockUpstream;

/// A full name the rules' name lists do not hold (Samoan) and a street address in a format
/// the rules do not know ("Rise"), and nothing else sensitive: only the model can see it.
/// (The rules learned European names in the second wave of #15, so the name here must come
/// from further afield; `switchyard classify --ner off` shows what the rules alone find.)
const NAME_AND_ADDRESS: &str =
    "Draft a note to Tavita Faleolo at 14 Kestrel Rise about the delayed refund.";

async fn start(ner_yaml: &str) -> (MockUpstream, switchyard::server::RunningServer) {
    let mock = MockUpstream::start().await;
    let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
    yaml.push_str(ner_yaml);
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

#[tokio::test]
async fn name_and_address_the_rules_miss_never_reaches_the_external_upstream() {
    // Built-in policy, no local model: privacy-critical requests are refused (503) rather
    // than sent out. Without the model this request would go to the external mock.
    let (mock, gw) = start("").await;
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let resp = post_json(
        &http_client(),
        &url,
        Dialect::OpenAi,
        &chat(NAME_AND_ADDRESS),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 503, "{}", resp.text);
    assert!(resp.text.contains("privacy-critical"), "{}", resp.text);
    assert!(mock.requests().is_empty(), "nothing may leave");

    // The model's time shows in /metrics, by outcome.
    let metrics = http_client()
        .get(format!("http://{}/metrics", gw.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"switchyard_ner_duration_seconds_count{outcome="ran"} 1"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("ner"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // /v1/classify shows which detector found what.
    let c = classify(&gw, NAME_AND_ADDRESS).await;
    assert_eq!(c["sensitive"], true, "{c}");
    let findings = c["findings"].as_array().unwrap();
    let model: Vec<&str> = findings
        .iter()
        .filter(|f| f["detector"] == "model")
        .filter_map(|f| f["type"].as_str())
        .collect();
    assert!(model.contains(&"person_name"), "{c}");
    assert!(model.contains(&"street_address"), "{c}");

    // Plain prose and a public figure still go where the client asked.
    for text in ["Say hello", "Write a short biography of Marie Curie."] {
        mock.clear();
        let resp = post_json(&http_client(), &url, Dialect::OpenAi, &chat(text)).await;
        assert_eq!(resp.status.as_u16(), 200, "{text}: {}", resp.text);
        assert_eq!(mock.requests().len(), 1, "{text}");
    }
}

#[tokio::test]
async fn with_the_model_off_the_same_request_leaves() {
    let (mock, gw) = start("classifier: { ner: { mode: off } }\n").await;
    let url = format!("http://{}{}", gw.addr, Dialect::OpenAi.path());
    let resp = post_json(
        &http_client(),
        &url,
        Dialect::OpenAi,
        &chat(NAME_AND_ADDRESS),
    )
    .await;
    assert_eq!(resp.status.as_u16(), 200, "{}", resp.text);
    assert_eq!(mock.requests().len(), 1, "the rules alone miss it");
    let c = classify(&gw, NAME_AND_ADDRESS).await;
    assert!(
        c["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["detector"] != "model"),
        "{c}"
    );
}

#[tokio::test]
async fn a_configured_model_that_cannot_load_stops_start_up() {
    let mock = MockUpstream::start().await;
    let mut yaml = gateway_yaml(mock.addr, &StackOptions::default());
    yaml.push_str("classifier: { ner: { mode: auto, dir: /nonexistent/rampart } }\n");
    let err = match start_gateway(&yaml).await {
        Ok(_) => panic!("the gateway must not start with a weaker detector"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("NER model"), "{err}");
    assert!(err.contains("mode: off"), "names the way out: {err}");
}
