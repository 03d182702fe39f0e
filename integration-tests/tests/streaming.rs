//! Streams are relayed as they arrive (no buffering), and a client that goes away
//! cancels the upstream request. Plus the health and model-list routes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::client::{into_json, request, with_sdk_headers, Dialect, SseStream};
use switchyard_it::harness::Stack;
use switchyard_it::mock::Outcome;

fn stream_body(d: Dialect, model: &str, text: &str) -> Value {
    let mut b = request(d, model, text);
    b["stream"] = json!(true);
    b
}

fn is_text_event(d: Dialect, data: &Value) -> bool {
    match d {
        Dialect::OpenAi => data
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty()),
        Dialect::Anthropic => {
            data.pointer("/delta/type").and_then(Value::as_str) == Some("text_delta")
        }
    }
}

#[tokio::test]
async fn first_token_arrives_before_slow_stream_ends() {
    let stack = Stack::start().await;
    // 150 ms before every upstream frame; ≥ 8 frames, so the stream lasts ≥ 1.2 s.
    for (d, m) in [
        (Dialect::OpenAi, "claude-mock-slow-150"),
        (Dialect::Anthropic, "mock-slow-150"),
    ] {
        let t0 = Instant::now();
        let resp = with_sdk_headers(stack.client.post(stack.chat_url(d)), d)
            .json(&stream_body(d, m, "a b c d"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut s = SseStream::new(resp);
        let mut first_text: Option<Duration> = None;
        let mut last = Duration::ZERO;
        let mut text_events = 0;
        while let Some(e) = s.next_event().await {
            last = t0.elapsed();
            if is_text_event(d, &e.json()) {
                text_events += 1;
                first_text.get_or_insert(last);
            }
        }
        let first = first_text.unwrap_or_else(|| panic!("{d:?} {m}: no text"));
        assert_eq!(text_events, 5, "{d:?}: one event per upstream delta");
        assert!(
            last >= Duration::from_millis(1000),
            "{d:?}: stream too fast ({last:?}) for the test to mean anything"
        );
        assert!(
            first + Duration::from_millis(600) < last,
            "{d:?} {m}: first text at {first:?}, end at {last:?}: the stream is buffered"
        );
    }
}

#[tokio::test]
async fn client_disconnect_mid_stream_cancels_upstream() {
    let stack = Stack::start().await;
    let long = "w ".repeat(60); // 60+ frames at 50 ms: ~3 s if not cancelled
    for (i, (d, m)) in [
        (Dialect::OpenAi, "mock-slow-50"),
        (Dialect::OpenAi, "claude-mock-slow-50"),
        (Dialect::Anthropic, "mock-slow-50"),
        (Dialect::Anthropic, "claude-mock-slow-50"),
    ]
    .into_iter()
    .enumerate()
    {
        // A fresh client per case, so dropping it closes the connection for sure.
        let client = switchyard_it::client::http_client();
        let resp = with_sdk_headers(client.post(stack.chat_url(d)), d)
            .json(&stream_body(d, m, &long))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut s = SseStream::new(resp);
        let mut got_text = false;
        while let Some(e) = s.next_event().await {
            if is_text_event(d, &e.json()) {
                got_text = true;
                break;
            }
        }
        assert!(got_text, "{d:?} {m}");
        let t0 = Instant::now();
        drop(s);
        drop(client);
        let outcome = stack.mock.wait_for_outcome(i, Duration::from_secs(2)).await;
        assert_eq!(
            outcome,
            Some(Outcome::Cancelled),
            "{d:?} {m}: upstream still streaming after the client left"
        );
        assert!(t0.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let stack = Stack::start().await;
    for p in ["/healthz", "/readyz"] {
        let r = stack.client.get(stack.url(p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
    }
}

#[tokio::test]
async fn models_list_is_openai_shaped() {
    let stack = Stack::start().await;
    let r = into_json(
        with_sdk_headers(stack.client.get(stack.url("/v1/models")), Dialect::OpenAi)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "list", "{}", r.text);
    let data = r.json["data"].as_array().expect("data");
    let ids: Vec<&str> = data.iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(
        ids.contains(&"gpt-4o-mini") && ids.contains(&"claude-echo"),
        "configured exact names listed: {ids:?}"
    );
    for m in data {
        assert!(m["id"].is_string(), "{m}");
        assert_eq!(m["object"], "model", "{m}");
    }
    assert!(
        stack.requests().is_empty(),
        "listing models needs no upstream call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_are_not_mixed() {
    let stack = Stack::start().await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let d = if i % 2 == 0 {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        };
        let model = if i % 4 < 2 {
            "gpt-4o-mini"
        } else {
            "claude-echo"
        };
        let (client, url) = (stack.client.clone(), stack.chat_url(d));
        tasks.push(tokio::spawn(async move {
            let text = format!("request number {i} says hi");
            let s =
                switchyard_it::client::post_sse(&client, &url, d, &stream_body(d, model, &text))
                    .await;
            let got = match d {
                Dialect::OpenAi => s.openai_text(),
                Dialect::Anthropic => s.anthropic_text(),
            };
            assert_eq!(got, format!("Echo: {text}"), "{d:?} {model}");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stack.requests().len(), 32);
}
