//! Google's Gemini API as a backend (`kind: gemini`), end to end against the mock's
//! Gemini routes: clients in the OpenAI and Anthropic dialects served by
//! `generateContent` and `streamGenerateContent?alt=sse`, the key in `x-goog-api-key`
//! and never the client's, function calls both ways (a result named after its call),
//! usage and cost in the ledger, Gemini's errors mapped to the client's dialect, and a
//! card number that never reaches Google.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::client::{
    assert_dialect_error, http_client, post_json, post_sse, request, Dialect, CLIENT_KEY,
};
use switchyard_it::harness::{start_gateway, temp_db_url};
use switchyard_it::mock::{MockConfig, MockUpstream};

async fn stack() -> (MockUpstream, switchyard::server::RunningServer) {
    let mock = MockUpstream::start().await;
    let yaml = format!(
        r#"listen: "127.0.0.1:0"
circuit_breaker: {{ failure_threshold: 1000000 }}
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
providers:
  - name: google
    kind: gemini
    base_url: "{base}"
    api_key: "{key}"
    max_retries: 0
    models: ["gemini-*"]
"#,
        db = temp_db_url(),
        base = mock.gemini_base_url(),
        key = MockConfig::default().gemini_key,
    );
    let gw = start_gateway(&yaml).await.expect("gateway");
    (mock, gw)
}

fn url(gw: &switchyard::server::RunningServer, dialect: Dialect) -> String {
    format!("http://{}{}", gw.addr, dialect.path())
}

#[tokio::test]
async fn openai_and_anthropic_clients_are_served_by_generate_content() {
    let (mock, gw) = stack().await;
    let client = http_client();
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "gemini-2.0-flash", "hello from the test"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Echo: hello from the test"
    );
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.json["usage"]["prompt_tokens"], 7);
    assert_eq!(r.json["usage"]["completion_tokens"], 5);

    let r = post_json(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &request(
            Dialect::Anthropic,
            "gemini-2.5-flash",
            "hello anthropic client",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["content"][0]["text"], "Echo: hello anthropic client");
    assert_eq!(r.json["stop_reason"], "end_turn");

    let sent = mock.requests();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[0].path,
        "/v1beta/models/gemini-2.0-flash:generateContent"
    );
    assert_eq!(
        sent[1].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    for s in &sent {
        assert_eq!(s.header("x-goog-api-key"), Some("gemini-test-key"));
        assert!(s.query.is_none(), "the key is never in the URL");
        assert!(
            s.headers.iter().all(|(_, v)| !v.contains(CLIENT_KEY)),
            "the client's key never reaches Google"
        );
        let body = s.json();
        assert_eq!(
            body["systemInstruction"],
            json!({"parts": [{"text": "You are terse."}]})
        );
        assert_eq!(body["contents"][0]["role"], "user");
    }
    assert_eq!(sent[1].json()["generationConfig"]["maxOutputTokens"], 256);
    gw.shutdown().await;
}

#[tokio::test]
async fn streams_in_both_dialects_come_from_server_sent_chunks() {
    let (mock, gw) = stack().await;
    let client = http_client();
    let mut body = request(Dialect::OpenAi, "gemini-2.0-flash", "stream this please");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post_sse(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &body).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.openai_text(), "Echo: stream this please");
    assert!(r.has_done());
    let usage = r
        .json_events()
        .into_iter()
        .find(|e| e["usage"].is_object())
        .expect("a usage chunk");
    assert_eq!(usage["usage"]["prompt_tokens"], 6);
    assert_eq!(usage["usage"]["completion_tokens"], 4);

    let mut body = request(
        Dialect::Anthropic,
        "gemini-2.0-flash",
        "stream for anthropic",
    );
    body["stream"] = json!(true);
    let r = post_sse(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.anthropic_text(), "Echo: stream for anthropic");
    let names = r.event_names();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));

    for s in mock.requests() {
        assert_eq!(
            s.path,
            "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
        );
        assert_eq!(s.query.as_deref(), Some("alt=sse"));
    }

    // A stream Gemini cuts before its finish reason is an error, never a clean end.
    let mut body = request(Dialect::OpenAi, "gemini-mock-truncate", "cut me off please");
    body["stream"] = json!(true);
    let r = post_sse(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &body).await;
    assert!(!r.has_done(), "a cut stream ended cleanly");
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_calls_round_trip_through_function_call_and_function_response() {
    let (mock, gw) = stack().await;
    let client = http_client();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"], "additionalProperties": false}}}]);
    let first = json!({
        "model": "gemini-2.5-flash",
        "messages": [{"role": "user", "content": "TOOL_CALL what is the weather?"}],
        "tools": tools,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    });
    let r = post_json(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "tool_calls");
    let message = r.json["choices"][0]["message"].clone();
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("JSON arguments");
    assert_eq!(args["location"], "Paris");
    let call_id = call["id"]
        .as_str()
        .expect("an id for a call Gemini sent without one");
    assert!(!call_id.is_empty());
    let sent = mock.requests()[0].json().clone();
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["required"],
        json!(["location"])
    );
    assert_eq!(
        sent["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["get_weather"]})
    );

    let second = json!({
        "model": "gemini-2.5-flash",
        "messages": [
            {"role": "user", "content": "TOOL_CALL what is the weather?"},
            message,
            {"role": "tool", "tool_call_id": call_id, "content": "18 degrees"},
        ],
        "tools": tools,
    });
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &second,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Tool result: 18 degrees"
    );
    let sent = mock.requests()[1].json().clone();
    let contents = sent["contents"].as_array().expect("contents");
    assert_eq!(contents[1]["role"], "model");
    assert_eq!(
        contents[1]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );
    assert_eq!(
        contents[2]["parts"][0]["functionResponse"],
        json!({"id": call_id, "name": "get_weather", "response": {"output": "18 degrees"}}),
        "the result is named after the call it answers"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_and_cost_land_in_the_ledger() {
    let (_mock, gw) = stack().await;
    let client = http_client();
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "gemini-2.5-pro", "hi"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ledger = gw.state.ledger.clone().expect("ledger");
    let switchyard::store::Db::Sqlite(pool) = ledger.db().clone() else {
        panic!("the test ledger is SQLite");
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows: Vec<(String, String, i64, i64, i64)> = loop {
        ledger.flush().await.expect("flush");
        let rows = sqlx::query_as(
            "SELECT provider, model, input_tokens, output_tokens, cost_micros FROM ledger",
        )
        .fetch_all(&pool)
        .await
        .expect("ledger rows");
        if !rows.is_empty() || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // gemini-2.5-pro at $1.25 / $10 per million: 4 × 1.25 + 2 × 10 = 25 micro-dollars.
    assert_eq!(
        rows,
        vec![("google".into(), "gemini-2.5-pro".into(), 4, 2, 25)]
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn gemini_errors_reach_the_client_in_its_dialect() {
    let (_mock, gw) = stack().await;
    let client = http_client();
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let r = post_json(
            &client,
            &url(&gw, dialect),
            dialect,
            &request(dialect, "gemini-mock-429", "hello"),
        )
        .await;
        assert_eq!(r.status, 429, "{}", r.text);
        assert_eq!(assert_dialect_error(dialect, &r.json), "rate_limit_error");
        assert!(r.text.contains("Resource has been exhausted"), "{}", r.text);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_card_number_never_reaches_google() {
    let (mock, gw) = stack().await;
    let client = http_client();
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(
            Dialect::OpenAi,
            "gemini-2.0-flash",
            "Charge card 4539 5780 1234 5671 for the order",
        ),
    )
    .await;
    assert_ne!(r.status, 200, "{}", r.text);
    assert!(mock.requests().is_empty(), "the card went to Google");
    gw.shutdown().await;
}

fn vertex_yaml(mock: &MockUpstream, credentials: &std::path::Path) -> String {
    format!(
        r#"listen: "127.0.0.1:0"
circuit_breaker: {{ failure_threshold: 1000000 }}
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
providers:
  - name: vertex
    kind: vertex
    base_url: "{base}"
    max_retries: 0
    models: ["gemini-*"]
    vertex:
      project: proj-1
      location: europe-west4
      credentials_file: "{file}"
"#,
        db = temp_db_url(),
        base = mock.vertex_base_url(),
        file = credentials.display(),
    )
}

#[tokio::test]
async fn vertex_ai_is_served_with_a_service_account_token() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sa.json");
    std::fs::write(&file, mock.vertex_service_account_json()).expect("write");
    let gw = start_gateway(&vertex_yaml(&mock, &file))
        .await
        .expect("gateway");
    let client = http_client();
    for text in ["first call", "second call"] {
        let r = post_json(
            &client,
            &url(&gw, Dialect::OpenAi),
            Dialect::OpenAi,
            &request(Dialect::OpenAi, "gemini-2.5-flash", text),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(
            r.json["choices"][0]["message"]["content"],
            format!("Echo: {text}")
        );
    }
    let mut body = request(Dialect::Anthropic, "gemini-2.5-flash", "a vertex stream");
    body["stream"] = json!(true);
    let r = post_sse(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.anthropic_text(), "Echo: a vertex stream");

    let sent = mock.requests();
    // One token exchange, then the cached token for every call.
    let tokens = mock.requests_to("/token");
    assert_eq!(
        tokens.len(),
        1,
        "{:?}",
        sent.iter().map(|r| &r.path).collect::<Vec<_>>()
    );
    let form = String::from_utf8_lossy(&tokens[0].raw_body).into_owned();
    assert!(
        form.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        "{form}"
    );
    let calls: Vec<_> = sent.iter().filter(|r| r.path != "/token").collect();
    assert_eq!(calls.len(), 3);
    let prefix =
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-flash";
    assert_eq!(calls[0].path, format!("{prefix}:generateContent"));
    assert_eq!(calls[2].path, format!("{prefix}:streamGenerateContent"));
    let bearer = calls[0].header("authorization").expect("authorization");
    assert!(bearer.starts_with("Bearer ya29.mock-"), "{bearer}");
    assert!(calls
        .iter()
        .all(|c| c.header("authorization") == Some(bearer)));
    assert!(calls.iter().all(|c| c.header("x-goog-api-key").is_none()));
    gw.shutdown().await;
}

#[tokio::test]
async fn vertex_credentials_are_checked_at_start_and_a_refused_token_is_a_bad_gateway() {
    let mock = MockUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.json");
    let err = start_gateway(&vertex_yaml(&mock, &missing))
        .await
        .err()
        .expect("a missing key file stops start-up");
    assert!(
        format!("{err:#}").contains("cannot read the service account"),
        "{err:#}"
    );
    let mut account: Value =
        serde_json::from_str(&mock.vertex_service_account_json()).expect("json");
    account["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let bad_key = dir.path().join("bad-key.json");
    std::fs::write(&bad_key, account.to_string()).expect("write");
    let err = start_gateway(&vertex_yaml(&mock, &bad_key))
        .await
        .err()
        .expect("a key that does not parse stops start-up");
    assert!(format!("{err:#}").contains("not an RSA PEM key"), "{err:#}");

    // A service account Google does not know: its token request is refused, and the
    // client gets a 502 naming it, never the upstream's 400 as its own fault.
    let mut account: Value =
        serde_json::from_str(&mock.vertex_service_account_json()).expect("json");
    account["client_email"] = json!("stranger@elsewhere.iam.gserviceaccount.com");
    let stranger = dir.path().join("stranger.json");
    std::fs::write(&stranger, account.to_string()).expect("write");
    let gw = start_gateway(&vertex_yaml(&mock, &stranger))
        .await
        .expect("gateway");
    let r = post_json(
        &http_client(),
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "gemini-2.5-flash", "hello"),
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(
        r.text
            .contains("stranger@elsewhere.iam.gserviceaccount.com")
            && r.text.contains("refused"),
        "{}",
        r.text
    );
    assert!(
        mock.requests().iter().all(|s| s.path == "/token"),
        "a model call went out without a token"
    );
    gw.shutdown().await;
}
