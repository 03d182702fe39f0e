//! Tool calls round trip across dialects: OpenAI `tools`/`tool_calls`/`role: tool` ⇄
//! Anthropic `tools`/`tool_use`/`tool_result`, streaming included.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use switchyard_it::client::{content_text, post_json, post_sse, Dialect};
use switchyard_it::harness::Stack;

const GPT: &str = "gpt-4o-mini";
const CLAUDE: &str = "claude-echo";

fn schema() -> Value {
    json!({"type": "object", "properties": {"location": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]})
}

fn paris() -> Value {
    json!({"location": "Paris", "unit": "celsius"})
}

fn openai_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city", "parameters": schema()}},
        {"type": "function", "function": {"name": "get_time", "description": "Local time", "parameters": schema()}},
    ])
}

fn anthropic_tools() -> Value {
    json!([
        {"name": "get_weather", "description": "Weather for a city", "input_schema": schema()},
        {"name": "get_time", "description": "Local time", "input_schema": schema()},
    ])
}

fn openai_tool_request(model: &str, text: &str) -> Value {
    json!({"model": model, "tools": openai_tools(), "tool_choice": "auto",
        "messages": [{"role": "user", "content": text}]})
}

fn anthropic_tool_request(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 200, "tools": anthropic_tools(), "tool_choice": {"type": "auto"},
        "messages": [{"role": "user", "content": text}]})
}

/// (id, name, arguments) of OpenAI stream tool-call deltas, accumulated by index.
fn accumulate_openai_tool_calls(chunks: &[Value]) -> BTreeMap<u64, (String, String, String)> {
    let mut calls: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for c in chunks {
        let Some(tcs) = c
            .pointer("/choices/0/delta/tool_calls")
            .and_then(Value::as_array)
        else {
            continue;
        };
        for tc in tcs {
            let idx = tc["index"]
                .as_u64()
                .unwrap_or_else(|| panic!("tool_call delta without index: {tc}"));
            let e = calls.entry(idx).or_default();
            if let Some(id) = tc["id"].as_str() {
                e.0.push_str(id);
            }
            if let Some(n) = tc.pointer("/function/name").and_then(Value::as_str) {
                e.1.push_str(n);
            }
            if let Some(a) = tc.pointer("/function/arguments").and_then(Value::as_str) {
                e.2.push_str(a);
            }
        }
    }
    calls
}

#[tokio::test]
async fn openai_tools_through_anthropic_backend_become_tool_use_and_back() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &openai_tool_request(CLAUDE, "weather? TOOL_CALL"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let choice = &r.json["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{}", r.json);
    let tcs = choice["message"]["tool_calls"]
        .as_array()
        .expect("tool_calls");
    assert_eq!(tcs.len(), 1);
    assert_eq!(tcs[0]["type"], "function");
    assert_eq!(tcs[0]["function"]["name"], "get_weather");
    assert!(tcs[0]["id"].as_str().is_some_and(|s| !s.is_empty()));
    let args: Value = serde_json::from_str(
        tcs[0]["function"]["arguments"]
            .as_str()
            .expect("arguments is a JSON string"),
    )
    .unwrap();
    assert_eq!(args, paris());

    let up = stack.only_request();
    let b = up.json();
    assert_eq!(up.path, "/v1/messages");
    assert_eq!(b["tools"][0]["name"], "get_weather");
    assert_eq!(b["tools"][0]["description"], "Weather for a city");
    assert_eq!(b["tools"][0]["input_schema"], schema());
    assert_eq!(b["tools"][1]["name"], "get_time");
    assert_eq!(b["tool_choice"]["type"], "auto", "{b}");
}

#[tokio::test]
async fn openai_tool_result_through_anthropic_backend_becomes_tool_result_block() {
    let stack = Stack::start().await;
    let body = json!({"model": CLAUDE, "tools": openai_tools(), "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"Paris\",\"unit\":\"celsius\"}"}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": "22 degrees"},
    ]});
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Tool result: 22 degrees"
    );
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");

    let b = stack.only_request().json().clone();
    let msgs = b["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{b}");
    assert_eq!(msgs[1]["role"], "assistant");
    let tool_use = msgs[1]["content"]
        .as_array()
        .and_then(|c| c.iter().find(|b| b["type"] == "tool_use"))
        .unwrap_or_else(|| panic!("no tool_use block: {b}"));
    assert_eq!(tool_use["id"], "call_abc");
    assert_eq!(tool_use["name"], "get_weather");
    assert_eq!(
        tool_use["input"],
        paris(),
        "arguments string → input object"
    );
    assert_eq!(msgs[2]["role"], "user");
    let result = &msgs[2]["content"][0];
    assert_eq!(result["type"], "tool_result", "{b}");
    assert_eq!(result["tool_use_id"], "call_abc");
    assert_eq!(content_text(&result["content"]), "22 degrees");
}

#[tokio::test]
async fn openai_stream_tool_calls_through_anthropic_backend_keep_indexes() {
    let stack = Stack::start().await;
    let mut body = openai_tool_request(CLAUDE, "both please PARALLEL_TOOL_CALLS");
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    assert_eq!(s.status, 200);
    assert!(s.has_done(), "{:#?}", s.events);
    let chunks = s.json_events();
    let calls = accumulate_openai_tool_calls(&chunks);
    assert_eq!(
        calls.keys().copied().collect::<Vec<_>>(),
        [0, 1],
        "tool_call indexes start at 0: {chunks:#?}"
    );
    assert_eq!(calls[&0].1, "get_weather");
    assert_eq!(calls[&1].1, "get_time");
    assert_ne!(calls[&0].0, calls[&1].0, "distinct ids");
    assert!(!calls[&0].0.is_empty());
    for (_, (_, _, args)) in calls {
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), paris());
    }
    let finish: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c.pointer("/choices/0/finish_reason"))
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
}

#[tokio::test]
async fn openai_stream_tool_call_through_openai_backend_passes_deltas() {
    let stack = Stack::start().await;
    let mut body = openai_tool_request(GPT, "TOOL_CALL");
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::OpenAi),
        Dialect::OpenAi,
        &body,
    )
    .await;
    let calls = accumulate_openai_tool_calls(&s.json_events());
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[&0].1, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[&0].2).unwrap(),
        paris()
    );
    assert_eq!(stack.only_request().json()["tools"], openai_tools());
}

#[tokio::test]
async fn anthropic_tools_through_openai_backend_become_function_calls_and_back() {
    let stack = Stack::start().await;
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &anthropic_tool_request(GPT, "weather? TOOL_CALL"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["stop_reason"], "tool_use", "{}", r.json);
    let content = r.json["content"].as_array().unwrap();
    let tu: Vec<&Value> = content.iter().filter(|b| b["type"] == "tool_use").collect();
    assert_eq!(tu.len(), 1, "{}", r.json);
    assert!(
        content
            .iter()
            .all(|b| b["type"] != "text" || !b["text"].as_str().unwrap_or("").is_empty()),
        "no empty text blocks: {}",
        r.json
    );
    assert_eq!(tu[0]["name"], "get_weather");
    assert_eq!(tu[0]["input"], paris());
    assert!(tu[0]["id"].as_str().is_some_and(|s| !s.is_empty()));

    let up = stack.only_request();
    let b = up.json();
    assert_eq!(up.path, "/v1/chat/completions");
    assert_eq!(b["tools"][0]["type"], "function");
    assert_eq!(b["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        b["tools"][0]["function"]["description"],
        "Weather for a city"
    );
    assert_eq!(b["tools"][0]["function"]["parameters"], schema());
    assert_eq!(b["tool_choice"], "auto", "{b}");
}

#[tokio::test]
async fn anthropic_tool_result_through_openai_backend_becomes_role_tool() {
    let stack = Stack::start().await;
    let body = json!({"model": GPT, "max_tokens": 100, "tools": anthropic_tools(), "messages": [
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": "toolu_xyz", "name": "get_weather", "input": paris()}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_xyz", "content": "22 degrees"}]},
    ]});
    let r = post_json(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["content"][0]["text"], "Tool result: 22 degrees",
        "{}",
        r.json
    );
    assert_eq!(r.json["stop_reason"], "end_turn");

    let b = stack.only_request().json().clone();
    let msgs = b["messages"].as_array().unwrap();
    let assistant = msgs
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap_or_else(|| panic!("{b}"));
    assert_eq!(content_text(&assistant["content"]), "Let me check.");
    let tc = &assistant["tool_calls"][0];
    assert_eq!(tc["id"], "toolu_xyz");
    assert_eq!(tc["type"], "function");
    assert_eq!(tc["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(
        tc["function"]["arguments"]
            .as_str()
            .expect("arguments must be a string"),
    )
    .unwrap();
    assert_eq!(args, paris());
    let last = msgs.last().unwrap();
    assert_eq!(last["role"], "tool", "{b}");
    assert_eq!(last["tool_call_id"], "toolu_xyz");
    assert_eq!(content_text(&last["content"]), "22 degrees");
}

#[tokio::test]
async fn anthropic_stream_tool_use_through_openai_backend_streams_input_json() {
    let stack = Stack::start().await;
    let mut body = anthropic_tool_request(GPT, "both PARALLEL_TOOL_CALLS");
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    assert_eq!(s.status, 200);
    assert!(s.transport_error.is_none());
    let ev = s.json_events();
    // Collect tool_use blocks by index.
    let mut blocks: BTreeMap<u64, (String, String, String)> = BTreeMap::new();
    for e in &ev {
        match e["type"].as_str() {
            Some("content_block_start") if e["content_block"]["type"] == "tool_use" => {
                let cb = &e["content_block"];
                blocks.insert(
                    e["index"].as_u64().unwrap(),
                    (
                        cb["id"].as_str().unwrap_or("").into(),
                        cb["name"].as_str().unwrap_or("").into(),
                        String::new(),
                    ),
                );
            }
            Some("content_block_delta") if e["delta"]["type"] == "input_json_delta" => {
                let b = blocks
                    .get_mut(&e["index"].as_u64().unwrap())
                    .expect("input_json_delta for an open tool_use block");
                b.2.push_str(e["delta"]["partial_json"].as_str().unwrap());
            }
            _ => {}
        }
    }
    let blocks: Vec<_> = blocks.into_values().collect();
    assert_eq!(blocks.len(), 2, "{ev:#?}");
    assert_eq!(blocks[0].1, "get_weather");
    assert_eq!(blocks[1].1, "get_time");
    assert_ne!(blocks[0].0, blocks[1].0);
    for b in &blocks {
        assert_eq!(serde_json::from_str::<Value>(&b.2).unwrap(), paris());
    }
    let delta = ev
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev.last().unwrap()["type"], "message_stop");
}

#[tokio::test]
async fn anthropic_stream_tool_use_through_anthropic_backend_passes_blocks() {
    let stack = Stack::start().await;
    let mut body = anthropic_tool_request(CLAUDE, "TOOL_CALL");
    body["stream"] = json!(true);
    let s = post_sse(
        &stack.client,
        &stack.chat_url(Dialect::Anthropic),
        Dialect::Anthropic,
        &body,
    )
    .await;
    let ev = s.json_events();
    let start = ev
        .iter()
        .find(|e| e["type"] == "content_block_start" && e["content_block"]["type"] == "tool_use")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert_eq!(start["content_block"]["name"], "get_weather");
    let json_str: String = ev
        .iter()
        .filter(|e| e["delta"]["type"] == "input_json_delta")
        .filter_map(|e| e["delta"]["partial_json"].as_str())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&json_str).unwrap(), paris());
    assert_eq!(stack.only_request().json()["tools"], anthropic_tools());
}
