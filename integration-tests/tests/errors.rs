//! Errors come back in the client's dialect with the right status: bad requests, unknown
//! models, oversized bodies, and upstream 429 / 500 / timeouts / cut or failing streams.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::client::{
    assert_dialect_error, post_json, post_raw, post_sse, request, Dialect, SseResponse, USER_TEXT,
};
use switchyard_it::harness::Stack;
use switchyard_it::mock::Outcome;

const BOTH: [Dialect; 2] = [Dialect::OpenAi, Dialect::Anthropic];

/// The model name that reaches the OpenAI (`false`) or Anthropic (`true`) mock with a trigger.
fn model(anthropic_backend: bool, trigger: &str) -> String {
    if anthropic_backend {
        format!("claude-{trigger}")
    } else {
        trigger.to_string()
    }
}

fn stream_request(d: Dialect, model: &str) -> Value {
    let mut b = request(d, model, USER_TEXT);
    b["stream"] = json!(true);
    if d == Dialect::OpenAi {
        b["stream_options"] = json!({"include_usage": true});
    }
    b
}

/// The in-stream error event in the client's dialect: OpenAI `data: {"error": {...}}`,
/// Anthropic `event: error` + `{"type":"error","error":{...}}`. Asserts the stream did not
/// also claim a clean end.
fn assert_stream_error_event(d: Dialect, s: &SseResponse) {
    assert_eq!(s.status, 200, "the stream had started: {s:?}");
    match d {
        Dialect::OpenAi => {
            let err = s
                .json_events()
                .into_iter()
                .find(|e| e.get("error").is_some())
                .unwrap_or_else(|| {
                    panic!(
                        "no error frame in OpenAI stream: {:#?} (transport: {:?})",
                        s.events, s.transport_error
                    )
                });
            assert_dialect_error(d, &err);
            assert!(
                !s.has_done(),
                "[DONE] after an error claims a clean end: {:#?}",
                s.events
            );
            assert!(
                s.json_events().iter().all(|c| c
                    .pointer("/choices/0/finish_reason")
                    .is_none_or(Value::is_null)),
                "finish_reason sent for a failed stream: {:#?}",
                s.events
            );
        }
        Dialect::Anthropic => {
            let err = s
                .events
                .iter()
                .find(|e| e.event.as_deref() == Some("error"))
                .unwrap_or_else(|| {
                    panic!(
                        "no `event: error` in Anthropic stream: {:#?} (transport: {:?})",
                        s.events, s.transport_error
                    )
                });
            assert_dialect_error(d, &err.json());
            assert!(
                !s.event_names().iter().any(|n| n == "message_stop"),
                "message_stop after an error claims a clean end: {:#?}",
                s.events
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Requests the gateway rejects itself

#[tokio::test]
async fn malformed_json_is_400_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        let r = post_raw(
            &stack.client,
            &stack.chat_url(d),
            d,
            "{\"model\": \"gpt-4o-mini\", \"messages\": [",
        )
        .await;
        assert_eq!(r.status, 400, "{d:?}: {}", r.text);
        let t = assert_dialect_error(d, &r.json);
        assert_eq!(t, "invalid_request_error", "{d:?}");
    }
    assert!(
        stack.requests().is_empty(),
        "nothing may reach the upstream"
    );
}

#[tokio::test]
async fn missing_model_is_400_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        let mut body = request(d, "x", USER_TEXT);
        body.as_object_mut().unwrap().remove("model");
        let r = post_json(&stack.client, &stack.chat_url(d), d, &body).await;
        assert_eq!(r.status, 400, "{d:?}: {}", r.text);
        assert_eq!(assert_dialect_error(d, &r.json), "invalid_request_error");
    }
    assert!(stack.requests().is_empty());
}

#[tokio::test]
async fn unknown_model_is_404_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        let r = post_json(
            &stack.client,
            &stack.chat_url(d),
            d,
            &request(d, "no-such-model", USER_TEXT),
        )
        .await;
        assert_eq!(r.status, 404, "{d:?}: {}", r.text);
        let t = assert_dialect_error(d, &r.json);
        if d == Dialect::Anthropic {
            assert_eq!(t, "not_found_error");
        }
        assert!(
            r.text.contains("no-such-model"),
            "the message names the model: {}",
            r.text
        );
    }
    assert!(stack.requests().is_empty());
}

#[tokio::test]
async fn body_over_limit_is_413_in_each_dialect() {
    let stack = Stack::start().await; // max_body_bytes: 1 MiB
    let big = "x ".repeat(1024 * 1024); // 2 MiB of text
    for d in BOTH {
        let r = post_json(
            &stack.client,
            &stack.chat_url(d),
            d,
            &request(d, "gpt-4o-mini", &big),
        )
        .await;
        assert_eq!(r.status, 413, "{d:?}: {}", &r.text[..r.text.len().min(300)]);
        let t = assert_dialect_error(d, &r.json);
        if d == Dialect::Anthropic {
            assert_eq!(t, "request_too_large");
        }
    }
    assert!(stack.requests().is_empty());
}

// ---------------------------------------------------------------------------------------
// Upstream failures

#[tokio::test]
async fn upstream_429_keeps_status_and_retry_after_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-429");
            let r = post_json(
                &stack.client,
                &stack.chat_url(d),
                d,
                &request(d, &m, USER_TEXT),
            )
            .await;
            assert_eq!(r.status, 429, "{d:?} {m}: {}", r.text);
            assert_eq!(
                r.header("retry-after"),
                Some("7"),
                "{d:?} {m}: retry-after lost: {:?}",
                r.headers
            );
            let t = assert_dialect_error(d, &r.json);
            if d == Dialect::Anthropic {
                assert_eq!(t, "rate_limit_error", "{m}");
            }
        }
    }
}

#[tokio::test]
async fn upstream_429_on_stream_request_is_429_before_stream_starts() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-429");
            let s = post_sse(&stack.client, &stack.chat_url(d), d, &stream_request(d, &m)).await;
            assert_eq!(s.status, 429, "{d:?} {m}: {:?}", s.events);
            assert_eq!(s.header("retry-after"), Some("7"), "{d:?} {m}");
            assert!(
                !s.header("content-type")
                    .unwrap_or("")
                    .starts_with("text/event-stream"),
                "{d:?} {m}: JSON error, not SSE"
            );
        }
    }
}

#[tokio::test]
async fn upstream_500_is_server_error_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-500");
            let r = post_json(
                &stack.client,
                &stack.chat_url(d),
                d,
                &request(d, &m, USER_TEXT),
            )
            .await;
            assert!(
                r.status == 500 || r.status == 502,
                "{d:?} {m}: {} {}",
                r.status,
                r.text
            );
            let t = assert_dialect_error(d, &r.json);
            if d == Dialect::Anthropic {
                assert_eq!(t, "api_error", "{m}");
            }
        }
    }
}

#[tokio::test]
async fn upstream_timeout_is_504_in_each_dialect_and_cancels_upstream() {
    let stack = Stack::start().await; // short-* providers: 500 ms
    for (i, (d, m)) in [
        (Dialect::OpenAi, "claude-short-mock-hang"),
        (Dialect::Anthropic, "short-mock-hang"),
    ]
    .into_iter()
    .enumerate()
    {
        let t0 = Instant::now();
        let r = post_json(
            &stack.client,
            &stack.chat_url(d),
            d,
            &request(d, m, USER_TEXT),
        )
        .await;
        let took = t0.elapsed();
        assert_eq!(r.status, 504, "{d:?} {m}: {}", r.text);
        assert_dialect_error(d, &r.json);
        assert!(
            took >= Duration::from_millis(400) && took < Duration::from_secs(5),
            "{d:?}: took {took:?} for a 500 ms timeout"
        );
        assert_eq!(
            stack.mock.wait_for_outcome(i, Duration::from_secs(3)).await,
            Some(Outcome::Cancelled),
            "{d:?}: the upstream request must be dropped on timeout"
        );
    }
}

#[tokio::test]
async fn upstream_timeout_before_stream_head_is_504() {
    let stack = Stack::start().await;
    for (d, m) in [
        (Dialect::OpenAi, "short-mock-hang"),
        (Dialect::Anthropic, "claude-short-mock-hang"),
    ] {
        let s = post_sse(&stack.client, &stack.chat_url(d), d, &stream_request(d, m)).await;
        assert_eq!(s.status, 504, "{d:?} {m}: {:?}", s.events);
    }
}

#[tokio::test]
async fn upstream_stall_mid_stream_ends_with_error_event() {
    let stack = Stack::start().await;
    for (d, m) in [
        (Dialect::OpenAi, "short-mock-stall"),
        (Dialect::OpenAi, "claude-short-mock-stall"),
        (Dialect::Anthropic, "short-mock-stall"),
        (Dialect::Anthropic, "claude-short-mock-stall"),
    ] {
        let t0 = Instant::now();
        let s = post_sse(&stack.client, &stack.chat_url(d), d, &stream_request(d, m)).await;
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "{d:?} {m}: idle timeout not applied"
        );
        assert_stream_error_event(d, &s);
    }
}

#[tokio::test]
async fn truncated_upstream_stream_ends_with_error_event() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-truncate");
            let s = post_sse(&stack.client, &stack.chat_url(d), d, &stream_request(d, &m)).await;
            assert_stream_error_event(d, &s);
        }
    }
}

#[tokio::test]
async fn truncated_upstream_json_is_502_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-truncate");
            let r = post_json(
                &stack.client,
                &stack.chat_url(d),
                d,
                &request(d, &m, USER_TEXT),
            )
            .await;
            assert_eq!(r.status, 502, "{d:?} {m}: {}", r.text);
            assert_dialect_error(d, &r.json);
        }
    }
}

#[tokio::test]
async fn upstream_error_event_mid_stream_is_relayed_in_client_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-stream-error");
            let s = post_sse(&stack.client, &stack.chat_url(d), d, &stream_request(d, &m)).await;
            assert_stream_error_event(d, &s);
        }
    }
}

#[tokio::test]
async fn upstream_404_model_is_404_in_each_dialect() {
    let stack = Stack::start().await;
    for d in BOTH {
        for anthropic_backend in [false, true] {
            let m = model(anthropic_backend, "mock-404");
            let r = post_json(
                &stack.client,
                &stack.chat_url(d),
                d,
                &request(d, &m, USER_TEXT),
            )
            .await;
            assert_eq!(r.status, 404, "{d:?} {m}: {}", r.text);
            assert_dialect_error(d, &r.json);
        }
    }
}
