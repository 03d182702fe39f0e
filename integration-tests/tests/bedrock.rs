//! AWS Bedrock as a backend, end to end: clients in the OpenAI and Anthropic dialects
//! served by Converse and ConverseStream (binary event stream), tool calls both ways, the
//! model-name → model-id mapping, usage and cost in the ledger, SigV4 signatures checked
//! by botocore (a wrong secret is refused with Bedrock's 403), throttling as 429 and
//! retried, and image URLs refused with a 400 in the client's dialect.
//!
//! Needs the botocore venv of `scripts/setup-botocore.sh` (scripts/test.sh runs it).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::bedrock_mock::{BedrockMock, BedrockMockConfig};
use switchyard_it::client::{
    assert_dialect_error, http_client, post_json, post_sse, request, Dialect,
};
use switchyard_it::harness::{start_gateway, temp_db_url};

const SONNET_ID: &str = "anthropic.claude-sonnet-4-5-20250929-v1:0";

fn yaml(mock: &BedrockMock, secret: &str, max_retries: u32) -> String {
    let cfg = BedrockMockConfig::default();
    format!(
        r#"listen: "127.0.0.1:0"
circuit_breaker: {{ failure_threshold: 1000000 }}
accounting: {{ database_url: "{db}", flush_interval_ms: 50 }}
providers:
  - name: bedrock
    kind: bedrock
    base_url: "{base}"
    max_retries: {max_retries}
    retry_base_ms: 10
    models: ["claude-sonnet-4-5", "claude-haiku-4-5", "mock-*"]
    bedrock:
      region: "{region}"
      access_key_id: "{ak}"
      secret_access_key: "{secret}"
      model_ids:
        claude-sonnet-4-5: "{SONNET_ID}"
        claude-haiku-4-5: "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
"#,
        db = temp_db_url(),
        base = mock.base_url(),
        region = cfg.region,
        ak = cfg.access_key_id,
    )
}

async fn stack(
    secret: Option<&str>,
    max_retries: u32,
) -> (BedrockMock, switchyard::server::RunningServer) {
    let mock = BedrockMock::start(BedrockMockConfig::default())
        .await
        .expect("start the Bedrock mock (run scripts/setup-botocore.sh)");
    let good = BedrockMockConfig::default().secret_access_key;
    let gw = start_gateway(&yaml(&mock, secret.unwrap_or(&good), max_retries))
        .await
        .expect("gateway");
    (mock, gw)
}

fn url(gw: &switchyard::server::RunningServer, dialect: Dialect) -> String {
    format!("http://{}{}", gw.addr, dialect.path())
}

#[tokio::test]
async fn openai_and_anthropic_clients_are_served_by_converse_with_verified_signatures() {
    let (mock, gw) = stack(None, 0).await;
    let client = http_client();

    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "claude-sonnet-4-5", "hello from the test"),
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
            "claude-haiku-4-5",
            "hello anthropic client",
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["content"][0]["text"], "Echo: hello anthropic client");
    assert_eq!(r.json["stop_reason"], "end_turn");
    assert_eq!(r.json["usage"]["input_tokens"], 6);

    let calls = mock.calls();
    assert_eq!(calls.len(), 2);
    for c in &calls {
        assert!(
            c.verified,
            "botocore refused the signature: {:?}",
            c.refusal
        );
        assert!(c
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 Credential=AKIDSWITCHYARDTEST/")));
        assert!(c.header("x-amz-date").is_some());
        assert!(!c.stream);
        assert_eq!(c.body["system"], json!([{"text": "You are terse."}]));
        assert!(
            c.headers.iter().all(|(_, v)| !v.contains("sk-client")),
            "the client's key never reaches Bedrock"
        );
    }
    // Model names map to model ids and inference profiles, percent-encoded in the path.
    assert_eq!(calls[0].model_id, SONNET_ID);
    assert_eq!(
        calls[0].raw_path,
        "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    );
    assert!(calls[1].raw_path.starts_with(
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic"
    ));
    assert_eq!(calls[1].body["inferenceConfig"]["maxTokens"], 256);
    gw.shutdown().await;
}

#[tokio::test]
async fn streams_in_both_dialects_come_from_the_event_stream() {
    let (mock, gw) = stack(None, 0).await;
    let client = http_client();

    let mut body = request(Dialect::OpenAi, "claude-sonnet-4-5", "stream this please");
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
    assert_eq!(usage["usage"]["completion_tokens"], 4);

    let mut body = request(
        Dialect::Anthropic,
        "claude-sonnet-4-5",
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

    let calls = mock.calls();
    assert!(calls.iter().all(|c| c.stream && c.verified), "{calls:?}");
    assert!(calls[0].raw_path.ends_with("/converse-stream"));
    assert_eq!(
        calls[0].header("accept"),
        Some("application/vnd.amazon.eventstream")
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn tool_calls_round_trip_through_tool_use_and_tool_result() {
    let (mock, gw) = stack(None, 0).await;
    let client = http_client();
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]);
    let first = json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "TOOL_CALL what is the weather?"}],
        "tools": tools,
        "tool_choice": "auto",
    });
    let r = post_json(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &first).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let message = &r.json["choices"][0]["message"];
    assert_eq!(r.json["choices"][0]["finish_reason"], "tool_calls");
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().expect("arguments"))
            .expect("json");
    assert_eq!(args, json!({"location": "Paris", "unit": "celsius"}));
    let sent = &mock.calls()[0].body;
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["name"],
        "get_weather"
    );
    assert_eq!(
        sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["required"],
        json!(["location"])
    );
    assert_eq!(sent["toolConfig"]["toolChoice"], json!({"auto": {}}));

    // The result goes back as a toolResult block and the model answers from it.
    let second = json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "user", "content": "TOOL_CALL what is the weather?"},
            message,
            {"role": "tool", "tool_call_id": call["id"], "content": "sunny and 21 degrees"},
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
        "Tool result: sunny and 21 degrees"
    );
    let sent = &mock.calls()[1].body;
    let messages = sent["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1]["content"][1]["toolUse"]["toolUseId"],
        call["id"]
    );
    assert_eq!(
        messages[2]["content"][0]["toolResult"]["toolUseId"],
        call["id"]
    );

    // Streamed, an Anthropic client sees the tool_use block with its input.
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "TOOL_CALL now"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    });
    let r = post_sse(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    let events = r.json_events();
    let start = events
        .iter()
        .find(|e| e["type"] == "content_block_start" && e["content_block"]["type"] == "tool_use")
        .expect("a tool_use block");
    assert_eq!(start["content_block"]["name"], "get_weather");
    let input: String = events
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .filter_map(|e| e["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&input).expect("input"),
        json!({"location": "Paris", "unit": "celsius"})
    );
    let stop = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(stop["delta"]["stop_reason"], "tool_use");
    gw.shutdown().await;
}

#[tokio::test]
async fn usage_and_cost_land_in_the_ledger() {
    let (_mock, gw) = stack(None, 0).await;
    let client = http_client();
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "claude-sonnet-4-5", "hello from the test"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut body = request(
        Dialect::Anthropic,
        "claude-sonnet-4-5",
        "hello from the test",
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

    let ledger = gw.state.ledger.clone().expect("ledger");
    let switchyard::store::Db::Sqlite(pool) = ledger.db().clone() else {
        panic!("the test ledger is SQLite");
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let rows: Vec<(String, String, i64, i64, i64, i64)> = loop {
        ledger.flush().await.expect("flush");
        let rows = sqlx::query_as(
            "SELECT provider, model, status, input_tokens, output_tokens, cost_micros FROM ledger ORDER BY ts_ms",
        )
        .fetch_all(&pool)
        .await
        .expect("ledger rows");
        if rows.len() >= 2 || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (provider, model, status, input, output, cost) in rows {
        assert_eq!(provider, "bedrock");
        assert_eq!(model, "claude-sonnet-4-5");
        assert_eq!(status, 200);
        assert_eq!((input, output), (7, 5));
        // claude-sonnet-4-5 at $3 / $15 per million: 7 × 3 + 5 × 15 = 96 micro-dollars.
        assert_eq!(cost, 96);
    }
    gw.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_botocore_and_mapped_to_the_clients_dialect() {
    let (mock, gw) = stack(Some("not-the-right-secret"), 2).await;
    let client = http_client();
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let r = post_json(
            &client,
            &url(&gw, dialect),
            dialect,
            &request(dialect, "claude-sonnet-4-5", "hello"),
        )
        .await;
        assert_eq!(r.status, 403, "{}", r.text);
        assert_dialect_error(dialect, &r.json);
        assert!(r.text.contains("InvalidSignatureException"), "{}", r.text);
        assert!(
            !r.text.contains("not-the-right-secret") && !r.text.contains("AKID"),
            "{}",
            r.text
        );
    }
    let calls = mock.calls();
    assert_eq!(calls.len(), 2, "a 403 is not retried");
    assert!(calls.iter().all(|c| !c.verified));
    assert!(calls[0]
        .refusal
        .as_deref()
        .is_some_and(|r| r.contains("signature mismatch")));
    gw.shutdown().await;
}

#[tokio::test]
async fn throttling_is_a_429_and_is_retried_like_other_providers() {
    let (mock, gw) = stack(None, 2).await;
    let client = http_client();
    // Once throttled, then answered: the retry cures it and the client sees a 200.
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "mock-throttle-once", "hello"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(mock.calls().len(), 2);

    // Always throttled: 429 in the client's dialect after the retries.
    for dialect in [Dialect::OpenAi, Dialect::Anthropic] {
        let before = mock.calls().len();
        let r = post_json(
            &client,
            &url(&gw, dialect),
            dialect,
            &request(dialect, "mock-throttle", "hello"),
        )
        .await;
        assert_eq!(r.status, 429, "{}", r.text);
        let kind = assert_dialect_error(dialect, &r.json);
        assert!(kind.contains("rate_limit"), "{kind}");
        assert!(r.text.contains("Too many requests"), "{}", r.text);
        assert_eq!(mock.calls().len() - before, 3, "one call and two retries");
    }

    // Throttled inside a stream, after the first delta: the stream ends with an error.
    let mut body = request(Dialect::Anthropic, "mock-stream-throttle", "hello there");
    body["stream"] = json!(true);
    let r = post_sse(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    let names = r.event_names();
    assert!(names.iter().any(|n| n == "error"), "{names:?}");
    gw.shutdown().await;
}

#[tokio::test]
async fn image_urls_are_a_400_and_base64_images_go_inline() {
    let (mock, gw) = stack(None, 0).await;
    let client = http_client();
    let body = json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]}],
    });
    let r = post_json(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &body).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        assert_dialect_error(Dialect::OpenAi, &r.json),
        "invalid_request_error"
    );
    assert!(r.text.contains("base64"), "{}", r.text);
    let body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 50,
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        ]}],
    });
    let r = post_json(
        &client,
        &url(&gw, Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        assert_dialect_error(Dialect::Anthropic, &r.json),
        "invalid_request_error"
    );
    assert!(mock.calls().is_empty(), "nothing was sent");

    let body = json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]}],
    });
    let r = post_json(&client, &url(&gw, Dialect::OpenAi), Dialect::OpenAi, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        mock.calls()[0].body["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}})
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn a_bedrock_provider_without_region_or_credentials_does_not_start() {
    let yaml = |bedrock: &str| {
        format!(
            "listen: \"127.0.0.1:0\"\naccounting: {{ database_url: \"{}\" }}\nproviders:\n  - name: br\n    kind: bedrock\n    models: [\"x\"]\n    bedrock: {bedrock}\n",
            temp_db_url()
        )
    };
    // Explicit empty values never fall back to the environment of the test process.
    let err = start_gateway(&yaml(
        "{ region: \"\", access_key_id: \"A\", secret_access_key: \"S\" }",
    ))
    .await
    .err()
    .expect("no region");
    assert!(format!("{err:#}").contains("region"), "{err:#}");
    let err = start_gateway(&yaml(
        "{ region: eu-west-1, access_key_id: \"\", secret_access_key: \"S\" }",
    ))
    .await
    .err()
    .expect("no key");
    assert!(format!("{err:#}").contains("access_key_id"), "{err:#}");
}

#[tokio::test]
async fn responses_and_gemini_clients_are_served_by_bedrock_too() {
    let (mock, gw) = stack(None, 0).await;
    let client = http_client();
    let r = switchyard_it::client::into_json(
        client
            .post(format!("http://{}/v1/responses", gw.addr))
            .bearer_auth(switchyard_it::client::CLIENT_KEY)
            .json(&json!({"model": "claude-sonnet-4-5", "instructions": "Be brief.", "input": "hello responses", "store": false}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("Echo: hello responses"), "{}", r.text);

    let r = switchyard_it::client::into_json(
        client
            .post(format!(
                "http://{}/v1beta/models/claude-sonnet-4-5:generateContent",
                gw.addr
            ))
            .header("x-goog-api-key", switchyard_it::client::CLIENT_KEY)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hello gemini"}]}]}))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["candidates"][0]["content"]["parts"][0]["text"],
        "Echo: hello gemini"
    );
    assert_eq!(r.json["candidates"][0]["finishReason"], "STOP");

    let calls = mock.calls();
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.verified));
    assert_eq!(calls[0].body["system"], json!([{"text": "Be brief."}]));
    gw.shutdown().await;
}

/// The official OpenAI and Anthropic Python SDKs (`.venv` of scripts/setup-python.sh)
/// against Bedrock: integration-tests/python_bedrock/test_bedrock_sdk.py.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdks_are_served_by_bedrock() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf();
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-python.sh first",
        python.display()
    );
    let (mock, gw) = stack(None, 0).await;
    let child = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "integration-tests/python_bedrock",
        ])
        .current_dir(&root)
        .env("SWITCHYARD_BASE_URL", format!("http://{}", gw.addr))
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start .venv/bin/python");
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("pytest took more than 120 s")
        .expect("pytest failed to run");
    assert!(
        out.status.success(),
        "pytest failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let calls = mock.calls();
    assert!(calls.len() >= 6, "{}", calls.len());
    assert!(
        calls.iter().all(|c| c.verified),
        "every SDK call was signed correctly"
    );
    assert!(calls.iter().all(|c| c
        .headers
        .iter()
        .all(|(_, v)| !v.contains("sk-client-python"))));
    gw.shutdown().await;
}

#[tokio::test]
async fn temporary_credentials_sign_their_session_token() {
    let cfg = BedrockMockConfig {
        session_token: Some("FwoGZXIvYXdzEXAMPLE//token+with/odd=chars".into()),
        ..BedrockMockConfig::default()
    };
    let mock = BedrockMock::start(cfg.clone()).await.expect("mock");
    let with_token = |token: &str| {
        yaml(&mock, &cfg.secret_access_key, 0).replace(
            "      model_ids:",
            &format!("      session_token: \"{token}\"\n      model_ids:"),
        )
    };
    let gw = start_gateway(&with_token(
        cfg.session_token.as_deref().unwrap_or_default(),
    ))
    .await
    .expect("gateway");
    let client = http_client();
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "claude-sonnet-4-5", "hello"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let call = &mock.calls()[0];
    assert!(call.verified, "{:?}", call.refusal);
    let auth = call.header("authorization").unwrap_or_default();
    assert!(
        auth.contains("x-amz-security-token"),
        "the token is signed: {auth}"
    );
    gw.shutdown().await;

    // A stale token is refused like Bedrock refuses it.
    let gw = start_gateway(&with_token("an-expired-token"))
        .await
        .expect("gateway");
    let r = post_json(
        &client,
        &url(&gw, Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "claude-sonnet-4-5", "hello"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("UnrecognizedClientException"), "{}", r.text);
    gw.shutdown().await;
}
