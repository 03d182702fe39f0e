//! Anthropic extended thinking through the gateway: signed `thinking` blocks reach the
//! client in responses and streams, come back in the next turn of a tool-use loop and
//! reach Anthropic unchanged (the mock checks each signature as the real API does); a
//! backend of another dialect never sees them.

use serde_json::{json, Value};
use switchyard_it::client::{post_json, post_sse, Dialect};
use switchyard_it::harness::Stack;
use switchyard_it::mock::thinking_signature;

const CLAUDE: &str = "claude-echo";

fn tools() -> Value {
    json!([{"name": "get_weather", "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}])
}

fn first_turn(stream: bool) -> Value {
    json!({"model": CLAUDE, "max_tokens": 2048, "stream": stream,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": tools(),
        "messages": [{"role": "user", "content": "TOOL_CALL weather in Paris"}]})
}

/// The next turn: the assistant's content as the client received it, then the result.
fn second_turn(assistant: Value) -> Value {
    let call_id = assistant
        .as_array()
        .and_then(|a| a.iter().find(|b| b["type"] == "tool_use"))
        .map(|b| b["id"].clone())
        .expect("a tool_use block");
    let mut body = first_turn(false);
    body["messages"] = json!([
        {"role": "user", "content": "TOOL_CALL weather in Paris"},
        {"role": "assistant", "content": assistant},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "18C and sunny"}]},
    ]);
    body
}

#[tokio::test]
async fn signed_thinking_round_trips_through_a_tool_use_loop() {
    let stack = Stack::start().await;
    let url = stack.chat_url(Dialect::Anthropic);
    let r = post_json(&stack.client, &url, Dialect::Anthropic, &first_turn(false)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let content = r.json["content"].clone();
    let thinking = "Considering: TOOL_CALL weather in Paris";
    assert_eq!(
        content[0],
        json!({"type": "thinking", "thinking": thinking, "signature": thinking_signature(thinking)})
    );
    assert_eq!(content[2]["type"], "tool_use", "{content}");

    let r = post_json(
        &stack.client,
        &url,
        Dialect::Anthropic,
        &second_turn(content.clone()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["content"][1]["text"], "Tool result: 18C and sunny");
    let sent = stack
        .requests()
        .last()
        .expect("upstream request")
        .json()
        .clone();
    assert_eq!(sent["messages"][1]["content"], content);
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn streamed_thinking_and_signature_reassemble_into_a_valid_next_turn() {
    let stack = Stack::start().await;
    let url = stack.chat_url(Dialect::Anthropic);
    let s = post_sse(&stack.client, &url, Dialect::Anthropic, &first_turn(true)).await;
    assert_eq!(s.status, 200);
    // Rebuild the assistant content the way the Anthropic SDK accumulates a stream.
    let mut blocks: Vec<Value> = Vec::new();
    let mut partial_json = String::new();
    for e in s.json_events() {
        match e["type"].as_str() {
            Some("content_block_start") => {
                assert_eq!(e["index"], json!(blocks.len()), "{e}");
                blocks.push(e["content_block"].clone());
                partial_json.clear();
            }
            Some("content_block_delta") => {
                let b = blocks.last_mut().expect("a started block");
                let d = &e["delta"];
                match d["type"].as_str() {
                    Some("thinking_delta") => {
                        let t = format!(
                            "{}{}",
                            b["thinking"].as_str().unwrap_or(""),
                            d["thinking"].as_str().unwrap_or("")
                        );
                        b["thinking"] = json!(t);
                    }
                    Some("signature_delta") => b["signature"] = d["signature"].clone(),
                    Some("text_delta") => {
                        let t = format!(
                            "{}{}",
                            b["text"].as_str().unwrap_or(""),
                            d["text"].as_str().unwrap_or("")
                        );
                        b["text"] = json!(t);
                    }
                    Some("input_json_delta") => {
                        partial_json.push_str(d["partial_json"].as_str().unwrap_or(""));
                        if let Ok(v) = serde_json::from_str::<Value>(&partial_json) {
                            b["input"] = v;
                        }
                    }
                    other => panic!("unexpected delta {other:?}"),
                }
            }
            _ => {}
        }
    }
    let thinking = "Considering: TOOL_CALL weather in Paris";
    assert_eq!(blocks[0]["type"], "thinking");
    assert_eq!(blocks[0]["thinking"], thinking);
    assert_eq!(blocks[0]["signature"], json!(thinking_signature(thinking)));
    let r = post_json(
        &stack.client,
        &url,
        Dialect::Anthropic,
        &second_turn(json!(blocks)),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    stack.shutdown().await;
}

#[tokio::test]
async fn an_altered_or_missing_thinking_block_is_refused_upstream_in_the_clients_dialect() {
    // The mock's checks are what make the round-trip tests above mean something.
    let stack = Stack::start().await;
    let url = stack.chat_url(Dialect::Anthropic);
    let r = post_json(&stack.client, &url, Dialect::Anthropic, &first_turn(false)).await;
    let content = r.json["content"].clone();

    let mut altered = content.clone();
    altered[0]["thinking"] = json!("Considering: something else");
    let r = post_json(
        &stack.client,
        &url,
        Dialect::Anthropic,
        &second_turn(altered),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["type"], "error");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Invalid `signature`"),
        "{}",
        r.text
    );

    let without: Vec<Value> = content
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] != "thinking")
        .cloned()
        .collect();
    let r = post_json(
        &stack.client,
        &url,
        Dialect::Anthropic,
        &second_turn(json!(without)),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    stack.shutdown().await;
}

#[tokio::test]
async fn thinking_never_reaches_an_openai_backend() {
    let stack = Stack::start().await;
    let url = stack.chat_url(Dialect::Anthropic);
    let thinking = "Plan: call the weather tool first.";
    let mut body = second_turn(json!([
        {"type": "thinking", "thinking": thinking, "signature": thinking_signature(thinking)},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
    ]));
    body["model"] = json!("gpt-4o-mini");
    let r = post_json(&stack.client, &url, Dialect::Anthropic, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["content"][0]["text"], "Tool result: 18C and sunny");
    let sent = stack.only_request();
    assert_eq!(sent.path, "/v1/chat/completions");
    let raw = sent.json().to_string();
    assert!(
        !raw.contains("weather tool first") && !raw.contains("EmwKAhgBEgy3va3p"),
        "{raw}"
    );
    assert_eq!(sent.json()["messages"][1]["tool_calls"][0]["id"], "toolu_1");
    stack.shutdown().await;
}
