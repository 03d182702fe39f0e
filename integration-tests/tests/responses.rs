//! The OpenAI Responses API through the gateway: served by chat backends of both
//! dialects, streamed as typed events, stored per team for `previous_response_id` and
//! `GET /v1/responses/{id}`, classified like chat (a card number never reaches an
//! external backend), with errors in OpenAI's shape.

use serde_json::{json, Value};
use switchyard_it::client::{into_json, JsonResponse, CLIENT_KEY};
use switchyard_it::harness::Stack;

async fn create(stack: &Stack, team: &str, body: &Value) -> JsonResponse {
    let rb = stack
        .client
        .post(stack.url("/v1/responses"))
        .bearer_auth(CLIENT_KEY)
        .header("x-switchyard-team", team)
        .json(body);
    into_json(rb.send().await.expect("send")).await
}

async fn get(stack: &Stack, team: &str, id: &str) -> JsonResponse {
    let rb = stack
        .client
        .get(stack.url(&format!("/v1/responses/{id}")))
        .bearer_auth(CLIENT_KEY)
        .header("x-switchyard-team", team);
    into_json(rb.send().await.expect("send")).await
}

fn output_text(v: &Value) -> String {
    v["output"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["text"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn served_by_both_backend_dialects_with_usage() {
    let stack = Stack::start().await;
    for (model, path) in [
        ("gpt-4o-mini", "/v1/chat/completions"),
        ("claude-echo", "/v1/messages"),
    ] {
        let before = stack.requests().len();
        let r = create(
            &stack,
            "t",
            &json!({"model": model, "instructions": "Be terse.", "input": "hello there"}),
        )
        .await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(r.json["object"], "response");
        assert!(r.json["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("resp_")));
        assert_eq!(r.json["status"], "completed");
        assert_eq!(r.json["instructions"], "Be terse.");
        assert!(output_text(&r.json).contains("hello there"), "{}", r.text);
        assert!(r.json["usage"]["total_tokens"]
            .as_u64()
            .is_some_and(|n| n > 0));
        let reqs = stack.requests();
        assert_eq!(reqs.len(), before + 1);
        let upstream = &reqs[before];
        assert_eq!(upstream.path, path, "translated to chat for {model}");
        let sent = upstream.body.as_ref().expect("json").to_string();
        assert!(
            sent.contains("Be terse.") && sent.contains("hello there"),
            "{sent}"
        );
    }
}

#[tokio::test]
async fn stored_turns_continue_with_previous_response_id_and_stay_with_their_team() {
    let stack = Stack::start().await;
    let first = create(
        &stack,
        "team-a",
        &json!({"model": "gpt-4o-mini", "input": "my favourite colour is teal"}),
    )
    .await;
    assert_eq!(first.status.as_u16(), 200, "{}", first.text);
    let id = first.json["id"].as_str().expect("id").to_string();

    let before = stack.requests().len();
    let second = create(
        &stack,
        "team-a",
        &json!({"model": "gpt-4o-mini", "input": "what is my favourite colour?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(second.status.as_u16(), 200, "{}", second.text);
    assert_eq!(second.json["previous_response_id"], json!(id));
    // The backend saw the whole conversation: the first input, its answer, the new input.
    let sent = &stack.requests()[before];
    let messages = sent.body.as_ref().expect("json")["messages"]
        .as_array()
        .expect("messages")
        .clone();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["user", "assistant", "user"], "{messages:?}");
    assert!(
        messages[1]
            .to_string()
            .contains("my favourite colour is teal"),
        "the stored answer"
    );

    let fetched = get(&stack, "team-a", &id).await;
    assert_eq!(fetched.status.as_u16(), 200, "{}", fetched.text);
    assert_eq!(fetched.json["id"], json!(id));
    assert_eq!(output_text(&fetched.json), output_text(&first.json));

    // Another team never sees it, nor continues it.
    let other = get(&stack, "team-b", &id).await;
    assert_eq!(other.status.as_u16(), 404, "{}", other.text);
    let before = stack.requests().len();
    let stolen = create(
        &stack,
        "team-b",
        &json!({"model": "gpt-4o-mini", "input": "and?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(stolen.status.as_u16(), 400, "{}", stolen.text);
    assert!(stolen.text.contains("not found"), "{}", stolen.text);
    assert_eq!(stack.requests().len(), before, "nothing was sent upstream");

    // DELETE removes it.
    let deleted = stack
        .client
        .delete(stack.url(&format!("/v1/responses/{id}")))
        .bearer_auth(CLIENT_KEY)
        .header("x-switchyard-team", "team-a")
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status().as_u16(), 200);
    assert_eq!(get(&stack, "team-a", &id).await.status.as_u16(), 404);
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let stack = Stack::start().await;
    let r = create(
        &stack,
        "t",
        &json!({"model": "gpt-4o-mini", "input": "hi", "store": false}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    assert_eq!(r.json["store"], false);
    let id = r.json["id"].as_str().expect("id");
    assert_eq!(get(&stack, "t", id).await.status.as_u16(), 404);
    let next = create(
        &stack,
        "t",
        &json!({"model": "gpt-4o-mini", "input": "again", "previous_response_id": id}),
    )
    .await;
    assert_eq!(next.status.as_u16(), 400, "{}", next.text);
}

#[tokio::test]
async fn streams_typed_events_and_stores_the_streamed_turn() {
    let stack = Stack::start().await;
    let resp = stack
        .client
        .post(stack.url("/v1/responses"))
        .bearer_auth(CLIENT_KEY)
        .header("x-switchyard-team", "t")
        .json(&json!({"model": "gpt-4o-mini", "input": "stream me", "stream": true}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.expect("body");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"response.created"), "{text}");
    assert_eq!(names.last(), Some(&"response.completed"), "{text}");
    assert!(names.contains(&"response.output_text.delta"), "{text}");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("event json"))
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i), "numbered in order");
    }
    let done = &events[events.len() - 1]["response"];
    let streamed: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(output_text(done), streamed);
    let id = done["id"].as_str().expect("id");
    let stored = get(&stack, "t", id).await;
    assert_eq!(
        stored.status.as_u16(),
        200,
        "the streamed turn was stored before it ended"
    );
    assert_eq!(output_text(&stored.json), streamed);
}

#[tokio::test]
async fn function_calls_round_trip_as_items() {
    let stack = Stack::start().await;
    let tools = json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}]);
    let r = create(
        &stack,
        "t",
        &json!({"model": "gpt-4o-mini", "input": "weather? TOOL_CALL", "tools": tools}),
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    let call = r.json["output"]
        .as_array()
        .expect("output")
        .iter()
        .find(|i| i["type"] == "function_call")
        .expect("a function_call item")
        .clone();
    assert_eq!(call["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["arguments"].as_str().expect("arguments")).expect("json");
    assert_eq!(args["location"], "Paris");
    let call_id = call["call_id"].as_str().expect("call_id");
    let before = stack.requests().len();
    let r2 = create(
        &stack,
        "t",
        &json!({"model": "gpt-4o-mini", "tools": tools, "previous_response_id": r.json["id"], "input": [
            {"type": "function_call_output", "call_id": call_id, "output": "22 degrees"}
        ]}),
    )
    .await;
    assert_eq!(r2.status.as_u16(), 200, "{}", r2.text);
    assert_eq!(output_text(&r2.json), "Tool result: 22 degrees");
    let sent = stack.requests()[before].body.clone().expect("json");
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool"], "{sent}");
}

#[tokio::test]
async fn a_card_number_in_an_input_item_never_reaches_an_external_backend() {
    let stack = Stack::start().await;
    let r = create(
        &stack,
        "t",
        &json!({"model": "gpt-4o-mini", "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Charge my card 4539 5780 1234 5671 please"}]}
        ]}),
    )
    .await;
    assert_ne!(
        r.status.as_u16(),
        200,
        "the built-in policy keeps it local (no local model here): {}",
        r.text
    );
    assert!(
        r.json["error"]["message"].is_string(),
        "an OpenAI-shaped error: {}",
        r.text
    );
    for req in stack.requests() {
        assert!(
            !String::from_utf8_lossy(&req.raw_body).contains("4539"),
            "card sent to {}",
            req.path
        );
    }
}

#[tokio::test]
async fn bad_requests_are_openai_shaped_400s() {
    let stack = Stack::start().await;
    for body in [
        json!({"model": "gpt-4o-mini"}),
        json!({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "web_search"}]}),
        json!({"model": "gpt-4o-mini", "input": "x", "previous_response_id": "resp_nope"}),
    ] {
        let r = create(&stack, "t", &body).await;
        assert_eq!(r.status.as_u16(), 400, "{body}: {}", r.text);
        assert_eq!(
            r.json["error"]["type"], "invalid_request_error",
            "{}",
            r.text
        );
    }
    assert!(stack.requests().is_empty());
}
