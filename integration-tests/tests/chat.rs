//! Both client dialects × both backends × stream / non-stream through the gateway, and
//! what the upstream received.

use serde_json::{json, Value};
use switchyard_it::client::{
    content_text, post_json, post_sse, request, Dialect, SseResponse, CLIENT_KEY, ECHO,
    INPUT_TOKENS, OUTPUT_TOKENS, SYSTEM, USER_TEXT,
};
use switchyard_it::harness::{Stack, ANTHROPIC_PROVIDER_KEY, OPENAI_PROVIDER_KEY};
use switchyard_it::mock::Recorded;

const GPT: &str = "gpt-4o-mini";
const CLAUDE: &str = "claude-echo";

fn assert_openai_completion(body: &Value, model: &str, text: &str, finish: &str) {
    assert_eq!(body["object"], "chat.completion", "{body}");
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert!(body["created"].is_u64(), "{body}");
    assert_eq!(body["model"], model, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0, "{body}");
    assert_eq!(choice["message"]["role"], "assistant", "{body}");
    assert_eq!(choice["message"]["content"], text, "{body}");
    assert_eq!(choice["finish_reason"], finish, "{body}");
}

fn assert_openai_usage(usage: &Value, input: u64, output: u64) {
    assert_eq!(usage["prompt_tokens"], input, "{usage}");
    assert_eq!(usage["completion_tokens"], output, "{usage}");
    assert_eq!(usage["total_tokens"], input + output, "{usage}");
}

fn assert_anthropic_message(body: &Value, model: &str, text: &str, stop: &str) {
    assert_eq!(body["type"], "message", "{body}");
    assert_eq!(body["role"], "assistant", "{body}");
    assert!(body["id"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert_eq!(body["model"], model, "{body}");
    assert_eq!(
        body["content"],
        json!([{"type": "text", "text": text}]),
        "{body}"
    );
    assert_eq!(body["stop_reason"], stop, "{body}");
    assert!(
        body.get("stop_sequence").is_some(),
        "stop_sequence must be present (null): {body}"
    );
}

/// Checks an OpenAI SSE stream is well formed and returns the final usage chunk's usage.
fn check_openai_stream(s: &SseResponse, model: &str, text: &str, finish: &str) -> Option<Value> {
    assert_eq!(s.status, 200);
    assert!(
        s.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        s.headers
    );
    assert!(
        s.transport_error.is_none(),
        "stream cut: {:?}",
        s.transport_error
    );
    assert_eq!(
        s.events.last().map(|e| e.data.as_str()),
        Some("[DONE]"),
        "{:#?}",
        s.events
    );
    let chunks = s.json_events();
    assert!(!chunks.is_empty());
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], id, "one id per stream: {c}");
        assert_eq!(c["model"], model, "{c}");
        assert!(c["choices"].is_array(), "{c}");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "first delta carries the role"
    );
    assert_eq!(s.openai_text(), text);
    let finishes: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!(finish)], "exactly one finish_reason");
    let last = chunks.last().unwrap();
    if last["choices"] == json!([]) {
        Some(last["usage"].clone())
    } else {
        None
    }
}

/// Checks an Anthropic SSE stream's event grammar; returns (text, stop_reason, input, output).
fn check_anthropic_stream(s: &SseResponse, model: &str) -> (String, String, u64, u64) {
    assert_eq!(s.status, 200);
    assert!(
        s.header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        s.headers
    );
    assert!(
        s.transport_error.is_none(),
        "stream cut: {:?}",
        s.transport_error
    );
    let events: Vec<(String, Value)> = s
        .events
        .iter()
        .map(|e| (e.event.clone().unwrap_or_default(), e.json()))
        .filter(|(name, _)| name != "ping")
        .collect();
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "event name and data.type agree"
        );
    }
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{names:?}");
    assert_eq!(names[names.len() - 2], "message_delta", "{names:?}");
    let start = &events[0].1["message"];
    assert_eq!(start["role"], "assistant");
    assert_eq!(start["model"], model);
    assert_eq!(start["content"], json!([]));
    // Blocks: start / deltas / stop, indexes in order.
    let mut open: Option<u64> = None;
    let mut next_index = 0;
    for (name, data) in &events[1..events.len() - 2] {
        match name.as_str() {
            "content_block_start" => {
                assert!(
                    open.is_none(),
                    "block started while another is open: {names:?}"
                );
                assert_eq!(data["index"], next_index, "{data}");
                open = data["index"].as_u64();
                next_index += 1;
            }
            "content_block_delta" => assert_eq!(data["index"].as_u64(), open, "{data}"),
            "content_block_stop" => {
                assert_eq!(data["index"].as_u64(), open, "{data}");
                open = None;
            }
            other => panic!("unexpected event {other} in {names:?}"),
        }
    }
    assert!(open.is_none());
    let delta = &events[events.len() - 2].1;
    let stop = delta["delta"]["stop_reason"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // Input tokens: message_start, possibly updated by message_delta (as the SDKs accumulate).
    let input = delta["usage"]["input_tokens"]
        .as_u64()
        .or(start["usage"]["input_tokens"].as_u64())
        .unwrap_or_default();
    let output = delta["usage"]["output_tokens"].as_u64().unwrap_or_default();
    (s.anthropic_text(), stop, input, output)
}

fn upstream_text_of_system(d: Dialect, rec: &Recorded) -> String {
    match d {
        // OpenAI upstream: the first message is the system one.
        Dialect::OpenAi => {
            let m = &rec.json()["messages"][0];
            assert!(
                m["role"] == "system" || m["role"] == "developer",
                "{}",
                rec.json()
            );
            content_text(&m["content"])
        }
        Dialect::Anthropic => content_text(&rec.json()["system"]),
    }
}

// ---------------------------------------------------------------------------------------
// OpenAI client

#[tokio::test]
async fn openai_chat_through_openai_backend_returns_echo_and_usage() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, GPT, USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_openai_completion(&r.json, GPT, ECHO, "stop");
    assert_openai_usage(&r.json["usage"], INPUT_TOKENS, OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.json()["model"], GPT);
    assert_eq!(upstream_text_of_system(Dialect::OpenAi, &rec), SYSTEM);
}

#[tokio::test]
async fn openai_chat_through_anthropic_backend_maps_usage_and_stop_reason() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, CLAUDE, USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_openai_completion(&r.json, CLAUDE, ECHO, "stop");
    assert_openai_usage(&r.json["usage"], INPUT_TOKENS, OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.json()["model"], CLAUDE);
}

#[tokio::test]
async fn openai_stream_through_openai_backend_streams_chunks_and_usage() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::OpenAi, GPT, USER_TEXT);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    let usage =
        check_openai_stream(&s, GPT, ECHO, "stop").expect("usage chunk with choices: [] last");
    assert_openai_usage(&usage, INPUT_TOKENS, OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.json()["stream"], true);
}

#[tokio::test]
async fn openai_stream_through_anthropic_backend_maps_usage_and_stop_reason() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::OpenAi, CLAUDE, USER_TEXT);
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    let usage =
        check_openai_stream(&s, CLAUDE, ECHO, "stop").expect("usage chunk with choices: [] last");
    assert_openai_usage(&usage, INPUT_TOKENS, OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.json()["stream"], true);
}

#[tokio::test]
async fn openai_stream_without_include_usage_gets_no_usage_chunk() {
    let stack = Stack::start().await;
    for model in [GPT, CLAUDE] {
        let mut body = request(Dialect::OpenAi, model, USER_TEXT);
        body["stream"] = json!(true);
        let s = post_sse(
            &stack.client,
            &stack.chat_url(Dialect::OpenAi),
            Dialect::OpenAi,
            &body,
        )
        .await;
        assert!(
            check_openai_stream(&s, model, ECHO, "stop").is_none(),
            "{model}: usage chunk sent unasked"
        );
        assert!(
            s.json_events()
                .iter()
                .all(|c| c.get("usage").is_none_or(Value::is_null)),
            "{model}: usage in chunks although the client did not ask"
        );
    }
}

#[tokio::test]
async fn openai_max_tokens_through_anthropic_backend_maps_to_length() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::OpenAi, CLAUDE, USER_TEXT);
    body["max_tokens"] = json!(2);
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_openai_completion(&r.json, CLAUDE, "Echo: hello", "length");
    assert_eq!(stack.only_request().json()["max_tokens"], 2);
}

#[tokio::test]
async fn openai_stop_through_anthropic_backend_becomes_stop_sequences() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::OpenAi, CLAUDE, USER_TEXT);
    body["stop"] = json!(["the"]);
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_openai_completion(&r.json, CLAUDE, "Echo: hello from ", "stop");
    assert_eq!(
        stack.only_request().json()["stop_sequences"],
        json!(["the"])
    );
}

// ---------------------------------------------------------------------------------------
// Anthropic client

#[tokio::test]
async fn anthropic_messages_through_anthropic_backend_returns_echo_and_usage() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &request(Dialect::Anthropic, CLAUDE, USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_anthropic_message(&r.json, CLAUDE, ECHO, "end_turn");
    assert_eq!(r.json["usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(r.json["usage"]["output_tokens"], OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(upstream_text_of_system(Dialect::Anthropic, &rec), SYSTEM);
    assert_eq!(rec.json()["max_tokens"], 256);
}

#[tokio::test]
async fn anthropic_messages_through_openai_backend_maps_usage_and_stop_reason() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &request(Dialect::Anthropic, GPT, USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_anthropic_message(&r.json, GPT, ECHO, "end_turn");
    assert_eq!(r.json["usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(r.json["usage"]["output_tokens"], OUTPUT_TOKENS);
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/chat/completions");
    assert_eq!(rec.json()["model"], GPT);
    assert_eq!(
        upstream_text_of_system(Dialect::OpenAi, &rec),
        SYSTEM,
        "system → first system message"
    );
    let msgs = rec.json()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[1]["role"], "user");
    assert_eq!(content_text(&msgs[1]["content"]), USER_TEXT);
    let max = rec
        .json()
        .get("max_completion_tokens")
        .or(rec.json().get("max_tokens"));
    assert_eq!(
        max,
        Some(&json!(256)),
        "max_tokens forwarded: {}",
        rec.json()
    );
}

#[tokio::test]
async fn anthropic_stream_through_anthropic_backend_keeps_event_grammar() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::Anthropic, CLAUDE, USER_TEXT);
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    let (text, stop, input, output) = check_anthropic_stream(&s, CLAUDE);
    assert_eq!(text, ECHO);
    assert_eq!(stop, "end_turn");
    assert_eq!((input, output), (INPUT_TOKENS, OUTPUT_TOKENS));
}

#[tokio::test]
async fn anthropic_stream_through_openai_backend_maps_usage_and_stop_reason() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::Anthropic, GPT, USER_TEXT);
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    let (text, stop, input, output) = check_anthropic_stream(&s, GPT);
    assert_eq!(text, ECHO);
    assert_eq!(stop, "end_turn");
    assert_eq!((input, output), (INPUT_TOKENS, OUTPUT_TOKENS));
    let rec = stack.only_request();
    assert_eq!(rec.json()["stream"], true);
    assert_eq!(
        rec.json()["stream_options"]["include_usage"],
        true,
        "usage must be requested from an OpenAI upstream to report it"
    );
}

#[tokio::test]
async fn anthropic_max_tokens_through_openai_backend_maps_to_max_tokens_stop() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::Anthropic, GPT, USER_TEXT);
    body["max_tokens"] = json!(2);
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_anthropic_message(&r.json, GPT, "Echo: hello", "max_tokens");
}

// ---------------------------------------------------------------------------------------
// What left the gateway

#[tokio::test]
async fn openai_client_to_anthropic_backend_moves_system_and_defaults_max_tokens() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, CLAUDE, USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = stack.only_request();
    let b = rec.json();
    assert_eq!(upstream_text_of_system(Dialect::Anthropic, &rec), SYSTEM);
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(
        msgs.len(),
        1,
        "system message must not stay in messages: {b}"
    );
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(content_text(&msgs[0]["content"]), USER_TEXT);
    assert!(
        b["max_tokens"].as_u64().is_some_and(|n| n > 0),
        "max_tokens default required by Anthropic: {b}"
    );
    assert!(rec.header("anthropic-version").is_some());
}

#[tokio::test]
async fn openai_stream_to_openai_backend_requests_usage_upstream() {
    let stack = Stack::start().await;
    let mut body = request(Dialect::OpenAi, GPT, USER_TEXT);
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    assert_eq!(s.status, 200);
    let rec = stack.only_request();
    assert_eq!(rec.json()["stream"], true);
    assert_eq!(
        rec.json()["stream_options"]["include_usage"],
        true,
        "{}",
        rec.json()
    );
}

#[tokio::test]
async fn provider_prefixed_model_routes_and_is_rewritten_for_upstream() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &request(Dialect::OpenAi, "mock-anthropic/claude-custom", USER_TEXT),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r2 = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &request(Dialect::Anthropic, "mock-openai/custom-model", USER_TEXT),
    )
    .await;
    assert_eq!(r2.status, 200, "{}", r2.text);
    let reqs = stack.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].path, "/v1/messages");
    assert_eq!(reqs[0].json()["model"], "claude-custom");
    assert_eq!(reqs[1].path, "/v1/chat/completions");
    assert_eq!(reqs[1].json()["model"], "custom-model");
}

#[tokio::test]
async fn provider_key_is_sent_and_client_key_is_not_forwarded() {
    let stack = Stack::start().await;
    for d in [Dialect::OpenAi, Dialect::Anthropic] {
        for model in [GPT, CLAUDE] {
            let r = post_json(
                &stack.client,
                &stack.chat_url(d),
                d,
                &request(d, model, USER_TEXT),
            )
            .await;
            assert_eq!(r.status, 200, "{d:?} {model}: {}", r.text);
        }
    }
    let reqs = stack.requests();
    assert_eq!(reqs.len(), 4);
    for rec in &reqs {
        for (k, v) in &rec.headers {
            assert!(
                !v.contains(CLIENT_KEY),
                "client key forwarded upstream in {k}: {v}"
            );
        }
        match rec.path.as_str() {
            "/v1/chat/completions" => {
                assert_eq!(
                    rec.header("authorization"),
                    Some(format!("Bearer {OPENAI_PROVIDER_KEY}").as_str())
                );
                assert!(rec.header("x-api-key").is_none());
            }
            "/v1/messages" => {
                assert_eq!(rec.header("x-api-key"), Some(ANTHROPIC_PROVIDER_KEY));
                assert!(rec.header("anthropic-version").is_some());
                assert!(rec.header("authorization").is_none());
            }
            p => panic!("unexpected upstream path {p}"),
        }
    }
}

#[tokio::test]
async fn anthropic_to_anthropic_keeps_cache_control_and_native_fields() {
    let stack = Stack::start().await;
    let body = json!({
        "model": CLAUDE, "max_tokens": 100, "top_k": 5,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": USER_TEXT, "cache_control": {"type": "ephemeral"}}]}],
    });
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rec = stack.only_request();
    let b = rec.json();
    assert_eq!(b["top_k"], 5, "{b}");
    assert_eq!(
        b["system"][0]["cache_control"],
        json!({"type": "ephemeral"}),
        "{b}"
    );
    assert_eq!(
        b["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"}),
        "{b}"
    );
}

#[tokio::test]
async fn count_tokens_served_by_both_backends() {
    let stack = Stack::start().await;
    let url = stack.url("/v1/messages/count_tokens");
    let mut body = request(Dialect::Anthropic, CLAUDE, USER_TEXT);
    body.as_object_mut().unwrap().remove("max_tokens");
    let r = post_json(&stack.client, &url, Dialect::Anthropic, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"input_tokens": INPUT_TOKENS}));
    let rec = stack.only_request();
    assert_eq!(rec.path, "/v1/messages/count_tokens");
    assert_eq!(rec.json()["model"], CLAUDE);
    // An OpenAI backend has no count endpoint: the gateway must still answer (estimate).
    body["model"] = json!(GPT);
    let r = post_json(&stack.client, &url, Dialect::Anthropic, &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{}",
        r.text
    );
}

#[tokio::test]
async fn every_answer_says_the_gateways_own_time_apart_from_the_backends() {
    let stack = Stack::start().await;
    // The backend takes 300 ms; the gateway's own share is reported without it.
    for (dialect, stream) in [
        (Dialect::OpenAi, false),
        (Dialect::Anthropic, false),
        (Dialect::OpenAi, true),
        (Dialect::Anthropic, true),
    ] {
        let mut body = request(dialect, "gpt-mock-slow-300", USER_TEXT);
        body["stream"] = json!(stream);
        let overhead = if stream {
            let s = post_sse(&stack.client, &stack.chat_url(dialect), dialect, &body).await;
            assert_eq!(s.status, 200);
            s.header("x-switchyard-overhead-ms").map(str::to_string)
        } else {
            let r = post_json(&stack.client, &stack.chat_url(dialect), dialect, &body).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.header("x-switchyard-overhead-ms").map(str::to_string)
        };
        let ms: f64 = overhead
            .as_deref()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{dialect:?} stream={stream}: overhead header {overhead:?}"));
        assert!(
            (0.0..250.0).contains(&ms),
            "{dialect:?} stream={stream}: the backend's 300 ms counted as overhead ({ms} ms)"
        );
    }
}
