//! The mock upstream itself speaks each provider's wire format (no gateway involved), so
//! the end-to-end tests that rely on it test the gateway and not a broken mock.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_it::client::{http_client, into_json, read_sse, SseStream};
use switchyard_it::mock::{MockUpstream, Outcome};

fn openai(mock: &MockUpstream, body: &Value) -> reqwest::RequestBuilder {
    http_client()
        .post(format!("{}/chat/completions", mock.openai_base_url()))
        .bearer_auth("sk-test")
        .json(body)
}

fn anthropic(mock: &MockUpstream, path: &str, body: &Value) -> reqwest::RequestBuilder {
    http_client()
        .post(format!("{}{path}", mock.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

#[tokio::test]
async fn mock_openai_json_echoes_with_word_usage() {
    let mock = MockUpstream::start().await;
    let body = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello there world"}]});
    let r = into_json(openai(&mock, &body).send().await.unwrap()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Echo: hello there world"
    );
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.json["usage"]["prompt_tokens"], 5);
    assert_eq!(r.json["usage"]["completion_tokens"], 4);
    assert_eq!(r.json["usage"]["total_tokens"], 9);
    let rec = mock.only_one();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(rec.json()["model"], "gpt-4o-mini");
    assert_eq!(rec.outcome, Some(Outcome::Completed));
}

trait OnlyOne {
    fn only_one(&self) -> switchyard_it::mock::Recorded;
}
impl OnlyOne for MockUpstream {
    fn only_one(&self) -> switchyard_it::mock::Recorded {
        let r = self.requests();
        assert_eq!(r.len(), 1);
        r.into_iter().next().unwrap()
    }
}

#[tokio::test]
async fn mock_openai_stream_has_chunks_usage_chunk_and_done() {
    let mock = MockUpstream::start().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "a b"}]});
    let resp = openai(&mock, &body).send().await.unwrap();
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let s = read_sse(resp, std::time::Instant::now()).await;
    assert!(s.transport_error.is_none());
    assert!(s.has_done());
    assert_eq!(s.events.last().unwrap().data, "[DONE]");
    assert_eq!(s.openai_text(), "Echo: a b");
    let chunks = s.json_events();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 2);
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    let fin = &chunks[chunks.len() - 2];
    assert_eq!(fin["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..chunks.len() - 1]
        .iter()
        .all(|c| c["usage"].is_null()));
}

#[tokio::test]
async fn mock_openai_stream_tool_call_deltas() {
    let mock = MockUpstream::start().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true,
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "please TOOL_CALL"}]});
    let s = read_sse(
        openai(&mock, &body).send().await.unwrap(),
        std::time::Instant::now(),
    )
    .await;
    let chunks = s.json_events();
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage without include_usage"
    );
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "Paris", "unit": "celsius"})
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn mock_anthropic_stream_event_sequence() {
    let mock = MockUpstream::start().await;
    let body = json!({"model": "claude-x", "max_tokens": 100, "stream": true, "system": "sys prompt",
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "go TOOL_CALL"}]}]});
    let s = read_sse(
        anthropic(&mock, "/v1/messages", &body)
            .send()
            .await
            .unwrap(),
        std::time::Instant::now(),
    )
    .await;
    assert_eq!(
        s.event_names(),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let ev = s.json_events();
    assert_eq!(ev[0]["message"]["usage"]["input_tokens"], 4);
    assert_eq!(s.anthropic_text(), "I will call get_weather.");
    assert_eq!(ev[8]["content_block"]["type"], "tool_use");
    assert_eq!(ev[14]["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[14]["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn mock_anthropic_requires_max_tokens_version_and_key() {
    let mock = MockUpstream::start().await;
    let body = json!({"model": "claude-x", "messages": [{"role": "user", "content": "hi"}]});
    let r = into_json(
        anthropic(&mock, "/v1/messages", &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["message"], "max_tokens: Field required");
    let r = into_json(
        http_client()
            .post(format!("{}/v1/messages", mock.anthropic_base_url()))
            .header("x-api-key", "wrong")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["type"], "error");
    assert_eq!(r.json["error"]["type"], "authentication_error");
    let r = into_json(
        http_client()
            .post(format!("{}/chat/completions", mock.openai_base_url()))
            .bearer_auth("nope")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json["error"]["code"], "invalid_api_key");
    let r = into_json(
        anthropic(&mock, "/v1/messages/count_tokens", &body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.json, json!({"input_tokens": 1}));
}

#[tokio::test]
async fn mock_failures_in_each_dialect() {
    let mock = MockUpstream::start().await;
    let msgs = json!([{"role": "user", "content": "hi"}]);
    let r = into_json(
        openai(&mock, &json!({"model": "mock-429", "messages": msgs}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("7"));
    assert_eq!(r.json["error"]["code"], "rate_limit_exceeded");
    let r = into_json(
        anthropic(
            &mock,
            "/v1/messages",
            &json!({"model": "claude-mock-500", "max_tokens": 5, "messages": msgs}),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json["error"]["type"], "api_error");
    // Truncated stream: the body errors out, no [DONE].
    let s = read_sse(
        openai(
            &mock,
            &json!({"model": "mock-truncate", "stream": true, "messages": msgs}),
        )
        .send()
        .await
        .unwrap(),
        std::time::Instant::now(),
    )
    .await;
    assert!(s.transport_error.is_some(), "{s:?}");
    assert!(!s.has_done());
    assert_eq!(s.events.len(), 2, "frames before the cut arrive");
    // Truncated JSON.
    let r = openai(&mock, &json!({"model": "mock-truncate", "messages": msgs}))
        .send()
        .await
        .unwrap();
    assert!(r.bytes().await.is_err());
    let outcomes: Vec<_> = mock.requests().iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes[2..],
        [Some(Outcome::Truncated), Some(Outcome::Truncated)]
    );
}

#[tokio::test]
async fn mock_sees_client_disconnect_mid_stream() {
    let mock = MockUpstream::start().await;
    let text = "w ".repeat(40);
    let body = json!({"model": "mock-slow-50", "stream": true, "messages": [{"role": "user", "content": text}]});
    let resp = openai(&mock, &body).send().await.unwrap();
    let mut s = SseStream::new(resp);
    assert!(s.next_event().await.is_some());
    drop(s);
    assert_eq!(
        mock.wait_for_outcome(0, Duration::from_secs(3)).await,
        Some(Outcome::Cancelled)
    );
}

#[tokio::test]
async fn mock_models_in_both_formats() {
    let mock = MockUpstream::start().await;
    let c = http_client();
    let r = into_json(
        c.get(format!("{}/models", mock.openai_base_url()))
            .bearer_auth("sk-test")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["object"], "list");
    let r = into_json(
        c.get(format!("{}/v1/models", mock.anthropic_base_url()))
            .header("x-api-key", "sk-ant-test")
            .header("anthropic-version", "2023-06-01")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.json["has_more"], false);
    assert_eq!(r.json["data"][0]["type"], "model");
}
