//! Google's Gemini API (`generateContent`, `streamGenerateContent?alt=sse`) through the
//! gateway: served by chat backends of both dialects, function calls both ways, errors
//! in Google's shape, and classified like chat (a card number in a part never reaches an
//! external backend).

use serde_json::{json, Value};
use switchyard_it::client::{into_json, JsonResponse, CLIENT_KEY};
use switchyard_it::harness::Stack;

async fn generate(stack: &Stack, model: &str, method: &str, body: &Value) -> JsonResponse {
    let rb = stack
        .client
        .post(stack.url(&format!("/v1beta/models/{model}:{method}")))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(body);
    into_json(rb.send().await.expect("send")).await
}

fn text_of(v: &Value) -> String {
    v["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_content_is_served_by_both_backend_dialects() {
    let stack = Stack::start().await;
    for (model, path) in [
        ("gpt-4o-mini", "/v1/chat/completions"),
        ("claude-echo", "/v1/messages"),
    ] {
        let before = stack.requests().len();
        let r = generate(
            &stack,
            model,
            "generateContent",
            &json!({
                "systemInstruction": {"parts": [{"text": "Be terse."}]},
                "contents": [{"role": "user", "parts": [{"text": "hello there"}]}],
                "generationConfig": {"maxOutputTokens": 50, "temperature": 0.2}
            }),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(text_of(&r.json), "Echo: hello there", "{}", r.text);
        assert_eq!(r.json["candidates"][0]["finishReason"], "STOP");
        assert!(r.json["usageMetadata"]["totalTokenCount"]
            .as_u64()
            .is_some_and(|n| n > 0));
        let reqs = stack.requests();
        assert_eq!(reqs.len(), before + 1);
        assert_eq!(reqs[before].path, path);
        let sent = reqs[before].body.as_ref().expect("json").to_string();
        assert!(
            sent.contains("Be terse.") && sent.contains("hello there"),
            "{sent}"
        );
        for (k, v) in &reqs[before].headers {
            assert!(!v.contains(CLIENT_KEY), "client key forwarded in {k}");
        }
    }
}

#[tokio::test]
async fn stream_generate_content_sends_chunks_then_finish_and_usage() {
    let stack = Stack::start().await;
    let resp = stack
        .client
        .post(stack.url("/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse"))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(&json!({"contents": [{"role": "user", "parts": [{"text": "stream me"}]}]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let text = resp.text().await.expect("body");
    let chunks: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect();
    assert!(chunks.len() >= 2, "{text}");
    let joined: String = chunks.iter().map(text_of).collect();
    assert_eq!(joined, "Echo: stream me");
    let last = chunks.last().expect("a chunk");
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert!(last["usageMetadata"]["candidatesTokenCount"]
        .as_u64()
        .is_some());
}

#[tokio::test]
async fn function_calls_round_trip() {
    let stack = Stack::start().await;
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "OBJECT", "properties": {"location": {"type": "STRING"}}}}]}]);
    let user = json!({"role": "user", "parts": [{"text": "weather? TOOL_CALL"}]});
    let r = generate(
        &stack,
        "gpt-4o-mini",
        "generateContent",
        &json!({"contents": [user], "tools": tools}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let call = r.json["candidates"][0]["content"]["parts"]
        .as_array()
        .expect("parts")
        .iter()
        .find_map(|p| p.get("functionCall"))
        .expect("a functionCall part")
        .clone();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["args"]["location"], "Paris");
    // The declaration's OpenAPI types reach the backend as JSON Schema.
    let sent = stack.requests()[0].body.clone().expect("json");
    assert_eq!(
        sent["tools"][0]["function"]["parameters"]["type"], "object",
        "{sent}"
    );

    let model_turn = json!({"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": call["args"]}}]});
    let answer = json!({"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "22 degrees"}}}]});
    let r2 = generate(
        &stack,
        "gpt-4o-mini",
        "generateContent",
        &json!({"contents": [user, model_turn, answer], "tools": tools}),
    )
    .await;
    assert_eq!(r2.status.as_u16(), 200, "{}", r2.text);
    assert_eq!(text_of(&r2.json), "Tool result: 22 degrees");
    let sent = stack.requests()[1].body.clone().expect("json");
    let msgs = sent["messages"].as_array().expect("messages");
    assert_eq!(
        msgs[1]["tool_calls"][0]["id"], msgs[2]["tool_call_id"],
        "the call and its result are paired: {sent}"
    );
}

#[tokio::test]
async fn a_card_number_in_a_part_never_reaches_an_external_backend() {
    let stack = Stack::start().await;
    let r = generate(
        &stack,
        "gpt-4o-mini",
        "generateContent",
        &json!({"contents": [{"role": "user", "parts": [{"text": "Charge card 4539 5780 1234 5671"}]}]}),
    )
    .await;
    assert_ne!(r.status.as_u16(), 200, "{}", r.text);
    assert!(
        r.json["error"]["status"].is_string(),
        "Google's error shape: {}",
        r.text
    );
    assert!(stack.requests().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn errors_are_google_shaped() {
    let stack = Stack::start().await;
    let bad = generate(
        &stack,
        "gpt-4o-mini",
        "generateContent",
        &json!({"contents": []}),
    )
    .await;
    assert_eq!(bad.status.as_u16(), 400, "{}", bad.text);
    assert_eq!(bad.json["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(bad.json["error"]["code"], 400);
    let method = generate(&stack, "gpt-4o-mini", "embedContent", &json!({})).await;
    assert_eq!(method.status.as_u16(), 404, "{}", method.text);
    assert_eq!(method.json["error"]["status"], "NOT_FOUND");
    let limited = generate(
        &stack,
        "mock-429",
        "generateContent",
        &json!({"contents": [{"parts": [{"text": "x"}]}]}),
    )
    .await;
    assert_eq!(limited.status.as_u16(), 429, "{}", limited.text);
    assert_eq!(limited.json["error"]["status"], "RESOURCE_EXHAUSTED");
}
