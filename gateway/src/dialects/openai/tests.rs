use serde_json::{json, Map, Value};

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::sse::SseEvent;

use super::client::*;
use super::upstream::*;
use crate::dialects::sse::SseParser;
use proptest::prelude::*;

fn parse(v: Value) -> Result<ChatRequest, GatewayError> {
    parse_request(v.to_string().as_bytes())
}

fn invalid_message(result: Result<ChatRequest, GatewayError>) -> String {
    match result {
        Err(GatewayError::InvalidRequest(m)) => m,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

fn frames(bytes: &[u8]) -> Vec<SseEvent> {
    let mut p = SseParser::new(1 << 20);
    let events = p.push(bytes).unwrap();
    assert_eq!(
        p.finish().unwrap(),
        None,
        "stream must end on a frame boundary"
    );
    events
}

fn decode_all(bytes: &[u8]) -> Vec<StreamEvent> {
    let mut d = StreamDecoder::new();
    let mut out = Vec::new();
    for f in frames(bytes) {
        out.extend(d.decode(&f).unwrap());
    }
    assert!(d.is_done());
    out.extend(d.finish().unwrap());
    out
}

/// A call without `index` after one at index `u64::MAX` overflowed the next key (a
/// panic with overflow checks on); reproduced with `fuzz/fuzz_targets/upstream_stream.rs`.
#[test]
fn call_without_index_after_max_index_is_a_new_call() {
    let stream = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":18446744073709551615,\"id\":\"a\",\"function\":{\"name\":\"f\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let starts: Vec<(u32, String)> = decode_all(stream.as_bytes())
        .into_iter()
        .filter_map(|ev| match ev {
            StreamEvent::ToolCallStart { index, name, .. } => Some((index, name)),
            _ => None,
        })
        .collect();
    assert_eq!(starts, [(0, "f".to_string()), (1, "g".to_string())]);
}

/// Found by fuzzing (`fuzz/fuzz_targets/openai_request.rs`): with serde_json's default
/// (not correctly rounded) float parsing, a number in a forwarded field moved by one
/// ulp each time the gateway re-read a body it had written.
#[test]
fn forwarded_numbers_survive_rebuilds_exactly() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
        "x":[77777777777777777777777777777777777777777,7.777777777777779e40,0.1]}"#;
    let req = parse_request(body).unwrap();
    let rebuilt = build_request(&req, "m").to_string();
    let again = parse_request(rebuilt.as_bytes()).unwrap();
    assert_eq!(again.extra, req.extra);
    assert_eq!(again.extra["x"][1].as_f64(), Some(7.777777777777779e40));
}

fn usage(input: u32, output: u32, cached: u32) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: cached,
        cache_creation_input_tokens: 0,
    }
}

#[test]
fn parses_a_full_request() {
    let req = parse(json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "What is in this image?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
            {"role": "user", "content": "Thanks"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "response_format": {"type": "json_schema", "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": true}},
        "temperature": 0.5, "top_p": 0.9,
        "max_tokens": 10, "max_completion_tokens": 20,
        "stop": "END", "seed": 7, "frequency_penalty": 0.1, "presence_penalty": -0.1,
        "n": 1, "stream": true, "stream_options": {"include_usage": true},
        "user": "u-1", "metadata": {"k": "v"},
        "logit_bias": {"50256": -100}
    }))
    .unwrap();
    assert_eq!(req.model, "gpt-4o");
    assert_eq!(req.messages.len(), 5);
    assert_eq!(req.messages[0], Message::text(Role::System, "Be brief."));
    assert_eq!(req.messages[1].name.as_deref(), Some("ann"));
    assert_eq!(
        req.messages[1].content[1],
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            },
            cache_control: None
        }
    );
    assert_eq!(
        req.messages[1].content[2],
        ContentPart::Image {
            source: ImageSource::Url {
                url: "https://example.com/cat.jpg".into()
            },
            cache_control: None
        }
    );
    assert_eq!(
        req.messages[2].content[0],
        ContentPart::ToolCall {
            id: "call_1".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into()
        }
    );
    // Both tool messages merged into one user turn.
    assert_eq!(req.messages[3].role, Role::User);
    assert_eq!(
        req.messages[3].content,
        vec![
            ContentPart::ToolResult {
                call_id: "call_1".into(),
                content: vec![ContentPart::text("18C")],
                is_error: false,
                cache_control: None
            },
            ContentPart::ToolResult {
                call_id: "call_2".into(),
                content: vec![ContentPart::text("noon")],
                is_error: false,
                cache_control: None
            },
        ]
    );
    assert_eq!(req.messages[4], Message::text(Role::User, "Thanks"));
    assert_eq!(req.tools[0].name, "get_weather");
    assert_eq!(req.tools[0].description.as_deref(), Some("Weather by city"));
    assert_eq!(
        req.tool_choice,
        Some(ToolChoice::Tool {
            name: "get_weather".into()
        })
    );
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(
        req.response_format,
        Some(ResponseFormat::JsonSchema {
            schema: json!({"name": "w", "schema": {"type": "object"}, "strict": true})
        })
    );
    assert_eq!(
        req.sampling,
        Sampling {
            temperature: Some(0.5),
            top_p: Some(0.9),
            top_k: None,
            max_tokens: Some(20),
            stop: vec!["END".into()],
            seed: Some(7),
            frequency_penalty: Some(0.1),
            presence_penalty: Some(-0.1),
        }
    );
    assert!(req.stream && req.include_usage);
    assert_eq!(req.user.as_deref(), Some("u-1"));
    assert_eq!(
        req.metadata,
        Some(json!({"k": "v"}).as_object().unwrap().clone())
    );
    assert_eq!(
        req.extra,
        *json!({"logit_bias": {"50256": -100}}).as_object().unwrap()
    );
    assert_eq!(req.extra_dialect, Dialect::OpenAi);
}

#[test]
fn request_errors_are_precise() {
    let m = invalid_message(parse_request(b"{\"model\": "));
    assert!(m.starts_with("request body is not valid JSON"), "{m}");
    let m = invalid_message(parse(json!([1])));
    assert_eq!(m, "request body must be a JSON object, got an array");
    let m = invalid_message(parse(
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    ));
    assert_eq!(m, "missing required parameter 'model'");
    let m = invalid_message(parse(json!({"model": "", "messages": []})));
    assert_eq!(m, "invalid value for 'model': must be a non-empty string");
    let m = invalid_message(parse(json!({"model": 5, "messages": []})));
    assert_eq!(
        m,
        "invalid type for 'model': expected a string, got an integer"
    );
    let m = invalid_message(parse(json!({"model": "m"})));
    assert_eq!(m, "missing required parameter 'messages'");
    let m = invalid_message(parse(json!({"model": "m", "messages": []})));
    assert_eq!(
        m,
        "invalid value for 'messages': must contain at least one message"
    );
    let m = invalid_message(parse(json!({"model": "m", "messages": {"role": "user"}})));
    assert_eq!(
        m,
        "invalid type for 'messages': expected an array of messages, got an object"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 3}]}),
    ));
    assert_eq!(
        m,
        "invalid type for 'messages[1].content': expected a string or an array of content parts, got an integer"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "messages": [{"role": "robot", "content": "a"}]}),
    ));
    assert!(
        m.starts_with("invalid value for 'messages[0].role': unknown role 'robot'"),
        "{m}"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
    ));
    assert_eq!(
        m,
        "invalid value for 'messages[0].content[0].type': content part type 'input_audio' is not supported here"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]}),
    ));
    assert_eq!(m, "missing required parameter 'messages[0].tool_call_id'");
    let m = invalid_message(parse(
        json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "a"}]}),
    ));
    assert_eq!(m, "invalid value for 'n': only n=1 is supported");
    let m = invalid_message(parse(
        json!({"model": "m", "temperature": "hot", "messages": [{"role": "user", "content": "a"}]}),
    ));
    assert_eq!(
        m,
        "invalid type for 'temperature': expected a number, got a string"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "max_tokens": -1, "messages": [{"role": "user", "content": "a"}]}),
    ));
    assert_eq!(
        m,
        "invalid type for 'max_tokens': expected a non-negative integer, got an integer"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "stop": ["a", 1], "messages": [{"role": "user", "content": "a"}]}),
    ));
    assert_eq!(
        m,
        "invalid type for 'stop[1]': expected a string, got an integer"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "tool_choice": "sometimes", "messages": [{"role": "user", "content": "a"}]}),
    ));
    assert_eq!(
        m,
        "invalid value for 'tool_choice': 'sometimes' is not one of auto, none, required"
    );
    let m = invalid_message(parse(
        json!({"model": "m", "messages": [{"role": "user", "content": "a"}],
        "tools": [{"type": "function", "function": {"description": "x"}}]}),
    ));
    assert_eq!(m, "missing required parameter 'tools[0].function.name'");
}

fn sample_request() -> ChatRequest {
    let mut req = ChatRequest::new(
        "gpt-4o-mini",
        vec![
            Message::text(Role::System, "sys"),
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::text("look"),
                    ContentPart::Image {
                        source: ImageSource::Base64 {
                            media_type: "image/jpeg".into(),
                            data: "/9j/4AAQ".into(),
                        },
                        cache_control: None,
                    },
                ],
                name: Some("ann".into()),
            },
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::text("calling"),
                    ContentPart::ToolCall {
                        id: "call_1".into(),
                        name: "f".into(),
                        arguments: "{\"x\":1}".into(),
                    },
                ],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![ContentPart::ToolResult {
                    call_id: "call_1".into(),
                    content: vec![ContentPart::text("42")],
                    is_error: false,
                    cache_control: None,
                }],
                name: None,
            },
        ],
        Dialect::OpenAi,
    );
    req.tools = vec![Tool {
        name: "f".into(),
        description: Some("does f".into()),
        parameters: json!({"type": "object", "properties": {"x": {"type": "integer"}}}),
        cache_control: None,
    }];
    req.tool_choice = Some(ToolChoice::Required);
    req.parallel_tool_calls = Some(true);
    req.response_format = Some(ResponseFormat::JsonObject);
    req.sampling = Sampling {
        temperature: Some(0.25),
        top_p: Some(0.5),
        top_k: None,
        max_tokens: Some(100),
        stop: vec!["a".into(), "b".into()],
        seed: Some(3),
        frequency_penalty: Some(0.5),
        presence_penalty: Some(1.5),
    };
    req.stream = true;
    req.include_usage = true;
    req.user = Some("u".into());
    req.metadata = json!({"team": "x"}).as_object().cloned();
    req.extra = json!({"logprobs": true}).as_object().unwrap().clone();
    req
}

#[test]
fn build_then_parse_round_trips() {
    let req = sample_request();
    let body = build_request(&req, "gpt-4o-mini");
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["logprobs"], json!(true));
    let back = parse_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(back, req);
}

#[test]
fn build_request_wire_shape() {
    let mut req = sample_request();
    req.stream = false;
    req.include_usage = false;
    req.sampling.top_k = Some(5);
    req.extra_dialect = Dialect::Anthropic;
    // Anthropic-style turn: tool results plus text in one user message.
    req.messages[3].content.push(ContentPart::text("and now?"));
    let body = build_request(&req, "upstream-model");
    assert_eq!(
        body,
        json!({
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
                ]},
                {"role": "assistant", "content": "calling", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
                {"role": "user", "content": "and now?"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "does f",
                "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": true,
            "response_format": {"type": "json_object"},
            "temperature": 0.25, "top_p": 0.5, "max_tokens": 100, "seed": 3,
            "frequency_penalty": 0.5, "presence_penalty": 1.5,
            "stop": ["a", "b"], "user": "u", "metadata": {"team": "x"},
            "stream": false
        })
    );
}

fn sample_response() -> ChatResponse {
    ChatResponse {
        id: "chatcmpl-1".into(),
        model: "gpt-4o".into(),
        content: vec![
            ContentPart::text("Let me check."),
            ContentPart::ToolCall {
                id: "call_9".into(),
                name: "get_weather".into(),
                arguments: "{\"city\":\"Paris\"}".into(),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: usage(100, 20, 64),
        created: 1_700_000_000,
    }
}

#[test]
fn render_response_wire_shape_and_round_trip() {
    let resp = sample_response();
    let v = render_response(&resp);
    assert_eq!(
        v,
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": "gpt-4o",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Let me check.",
                    "tool_calls": [{"id": "call_9", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}],
                    "refusal": null
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                "prompt_tokens_details": {"cached_tokens": 64}}
        })
    );
    assert_eq!(parse_response(v.to_string().as_bytes()).unwrap(), resp);
}

#[test]
fn stop_reasons_map_both_ways() {
    for (stop, wire, back) in [
        (StopReason::EndTurn, "stop", StopReason::EndTurn),
        (
            StopReason::StopSequence {
                sequence: Some("x".into()),
            },
            "stop",
            StopReason::EndTurn,
        ),
        (StopReason::MaxTokens, "length", StopReason::MaxTokens),
        (StopReason::ToolUse, "tool_calls", StopReason::ToolUse),
        (
            StopReason::ContentFilter,
            "content_filter",
            StopReason::ContentFilter,
        ),
    ] {
        let mut resp = sample_response();
        resp.stop_reason = stop;
        let v = render_response(&resp);
        assert_eq!(v["choices"][0]["finish_reason"], json!(wire));
        assert_eq!(
            parse_response(v.to_string().as_bytes())
                .unwrap()
                .stop_reason,
            back
        );
    }
}

#[test]
fn parses_documented_upstream_response() {
    // Shape from the Chat Completions API reference.
    let body = br#"{
      "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
      "object": "chat.completion",
      "created": 1741570283,
      "model": "gpt-4o-2024-08-06",
      "choices": [{
          "index": 0,
          "message": {"role": "assistant", "content": null, "refusal": null,
            "tool_calls": [{"id": "call_abc", "type": "function",
              "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Boston, MA\"}"}}],
            "annotations": []},
          "logprobs": null,
          "finish_reason": "tool_calls"
      }],
      "usage": {"prompt_tokens": 1117, "completion_tokens": 46, "total_tokens": 1163,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0}},
      "service_tier": "default",
      "system_fingerprint": "fp_fc9f1d7035"
    }"#;
    let resp = parse_response(body).unwrap();
    assert_eq!(resp.id, "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG");
    assert_eq!(resp.created, 1741570283);
    assert_eq!(
        resp.content,
        vec![ContentPart::ToolCall {
            id: "call_abc".into(),
            name: "get_current_weather".into(),
            arguments: "{\"location\": \"Boston, MA\"}".into()
        }]
    );
    assert_eq!(resp.stop_reason, StopReason::ToolUse);
    assert_eq!(resp.usage, usage(1117, 46, 1024));
    assert!(parse_response(b"{\"error\": {\"message\": \"boom\"}}")
        .unwrap_err()
        .contains("boom"));
    assert!(parse_response(b"nope").is_err());
    assert!(parse_response(b"{\"choices\": []}").is_err());
}

#[test]
fn errors_render_with_openai_types() {
    let cases = [
        (
            GatewayError::InvalidRequest("bad".into()),
            "invalid_request_error",
            Value::Null,
        ),
        (
            GatewayError::Authentication("key".into()),
            "authentication_error",
            json!("invalid_api_key"),
        ),
        (
            GatewayError::PermissionDenied("no".into()),
            "permission_error",
            Value::Null,
        ),
        (
            GatewayError::NotFound("model x".into()),
            "not_found_error",
            json!("model_not_found"),
        ),
        (
            GatewayError::PayloadTooLarge { limit: 10 },
            "invalid_request_error",
            json!("request_too_large"),
        ),
        (
            GatewayError::RateLimited {
                message: "slow".into(),
                retry_after: Some("3".into()),
            },
            "rate_limit_error",
            json!("rate_limit_exceeded"),
        ),
        (
            GatewayError::Upstream {
                provider: "p".into(),
                status: 429,
                message: "m".into(),
                retry_after: None,
            },
            "rate_limit_error",
            json!("rate_limit_exceeded"),
        ),
        (
            GatewayError::Upstream {
                provider: "p".into(),
                status: 500,
                message: "m".into(),
                retry_after: None,
            },
            "server_error",
            json!("upstream_error"),
        ),
        (
            GatewayError::Timeout {
                provider: "p".into(),
                after_ms: 5,
            },
            "server_error",
            json!("timeout"),
        ),
        (
            GatewayError::Internal("x".into()),
            "server_error",
            Value::Null,
        ),
    ];
    for (err, kind, code) in cases {
        let v = render_error(&err);
        assert_eq!(
            v,
            json!({"error": {"message": err.to_string(), "type": kind, "param": null, "code": code}}),
            "{err:?}"
        );
    }
}

#[test]
fn parse_error_keeps_upstream_message_and_status() {
    let body = br#"{"error": {"message": "Rate limit reached for gpt-4o", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}"#;
    match parse_error(429, body, Some("20".into()), "openai") {
        GatewayError::Upstream {
            provider,
            status,
            message,
            retry_after,
        } => {
            assert_eq!(provider, "openai");
            assert_eq!(status, 429);
            assert_eq!(message, "Rate limit reached for gpt-4o");
            assert_eq!(retry_after.as_deref(), Some("20"));
        }
        other => panic!("{other:?}"),
    }
    let msg = |body: &[u8]| match parse_error(502, body, None, "p") {
        GatewayError::Upstream { message, .. } => message,
        other => panic!("{other:?}"),
    };
    assert_eq!(msg(b"<html>bad gateway</html>"), "<html>bad gateway</html>");
    assert_eq!(msg(b"{\"detail\": \"Not Found\"}"), "Not Found");
    assert_eq!(msg(b""), "upstream returned HTTP 502");
    assert!(msg("é".repeat(2000).as_bytes()).ends_with("..."));
}

fn sample_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start {
            id: "chatcmpl-7".into(),
            model: "gpt-4o".into(),
            created: 1_700_000_000,
            usage: None,
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "Checking".into(),
        },
        StreamEvent::TextDelta {
            index: 0,
            text: " both.".into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: "call_a".into(),
            name: "get_weather".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: "{\"city\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: "\"Paris\"}".into(),
        },
        StreamEvent::ToolCallStart {
            index: 2,
            id: "call_b".into(),
            name: "get_time".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 2,
            arguments: "{}".into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::ToolUse,
            usage: Some(usage(50, 30, 10)),
        },
    ]
}

#[test]
fn stream_encoder_wire_format() {
    let mut enc = StreamEncoder::new(true);
    let mut out = Vec::new();
    for ev in sample_events().iter().take(5) {
        enc.encode(ev, &mut out);
    }
    enc.encode(&StreamEvent::Ping, &mut out);
    enc.encode(
        &StreamEvent::Finish {
            stop_reason: StopReason::ToolUse,
            usage: Some(usage(50, 30, 10)),
        },
        &mut out,
    );
    enc.finish(&mut out);
    enc.finish(&mut out);
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("\n\n: ping\n\n"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    let data: Vec<Value> = frames(&out)
        .iter()
        .filter(|f| f.data != "[DONE]")
        .map(|f| serde_json::from_str(&f.data).unwrap())
        .collect();
    let head = |choices: Value, usage: Value| {
        json!({"id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1_700_000_000u64,
            "model": "gpt-4o", "choices": choices, "usage": usage})
    };
    let choice = |delta: Value, finish: Value| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    assert_eq!(
        data,
        vec![
            head(
                choice(json!({"role": "assistant", "content": ""}), Value::Null),
                Value::Null
            ),
            head(
                choice(json!({"content": "Checking"}), Value::Null),
                Value::Null
            ),
            head(
                choice(json!({"content": " both."}), Value::Null),
                Value::Null
            ),
            head(
                choice(
                    json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}]}),
                    Value::Null
                ),
                Value::Null
            ),
            head(
                choice(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
                    Value::Null
                ),
                Value::Null
            ),
            head(choice(json!({}), json!("tool_calls")), Value::Null),
            head(
                json!([]),
                json!({"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80,
                    "prompt_tokens_details": {"cached_tokens": 10}})
            ),
        ]
    );
}

#[test]
fn stream_round_trips_through_the_wire() {
    let mut enc = StreamEncoder::new(true);
    let mut out = Vec::new();
    for ev in sample_events() {
        enc.encode(&ev, &mut out);
    }
    enc.finish(&mut out);
    assert_eq!(decode_all(&out), sample_events());

    // Without include_usage the client sees no usage chunk.
    let mut enc = StreamEncoder::new(false);
    let mut out = Vec::new();
    for ev in sample_events() {
        enc.encode(&ev, &mut out);
    }
    enc.finish(&mut out);
    assert!(!String::from_utf8_lossy(&out).contains("usage"));
}

#[test]
fn decodes_documented_tool_call_stream() {
    // The chunk sequence OpenAI documents for streamed function calls, with the
    // usage chunk that stream_options.include_usage adds.
    let body = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"location\\\":\\\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":70,\"completion_tokens\":17,\"total_tokens\":87,\"prompt_tokens_details\":{\"cached_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );
    assert_eq!(
        decode_all(body.as_bytes()),
        vec![
            StreamEvent::Start {
                id: "chatcmpl-1".into(),
                model: "gpt-4o".into(),
                created: 1,
                usage: None
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_DdmO9pD3xa9XTPNJ32zg2hcA".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"".into()
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "location\":\"Paris\"}".into()
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(usage(70, 17, 0))
            },
        ]
    );
}

#[test]
fn decoder_errors_and_truncation() {
    let ev = |data: &str| SseEvent {
        event: None,
        data: data.into(),
    };
    let mut d = StreamDecoder::new();
    let first = "{\"id\":\"x\",\"model\":\"m\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}";
    assert_eq!(d.decode(&ev(first)).unwrap().len(), 2);
    let err = d
        .decode(&ev(
            "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\"}}",
        ))
        .unwrap_err();
    assert_eq!(err, "The server had an error");
    // Stream cut before any finish_reason.
    let mut d = StreamDecoder::new();
    d.decode(&ev(first)).unwrap();
    assert!(d.finish().unwrap_err().contains("finish_reason"));
    let mut d = StreamDecoder::new();
    d.decode(&ev(first)).unwrap();
    assert!(d.decode(&ev("[DONE]")).is_err());
    // finish_reason without [DONE] (some servers) still finishes, once.
    let mut d = StreamDecoder::new();
    let out = d
        .decode(&ev(
            "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}",
        ))
        .unwrap();
    assert!(matches!(out[..], [StreamEvent::Start { .. }]));
    assert!(!d.is_done());
    assert_eq!(
        d.finish().unwrap(),
        vec![StreamEvent::Finish {
            stop_reason: StopReason::MaxTokens,
            usage: None
        }]
    );
    assert!(d.finish().unwrap().is_empty());
    assert!(StreamDecoder::new().decode(&ev("not json")).is_err());
}

#[test]
fn encode_error_frame() {
    let mut enc = StreamEncoder::new(true);
    let mut out = Vec::new();
    enc.encode(&sample_events()[0], &mut out);
    out.clear();
    enc.encode_error(&GatewayError::Overloaded("busy".into()), &mut out);
    enc.finish(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        // Keys in OpenAI's own order (serde_json keeps insertion order workspace-wide).
        "data: {\"error\":{\"message\":\"busy\",\"type\":\"server_error\",\"param\":null,\"code\":\"overloaded\"}}\n\ndata: [DONE]\n\n"
    );
}

pub(crate) fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        "[a-z_]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("system"),
            Just("tool"),
            Just("developer"),
            Just("text"),
            Just("image_url"),
            Just("function"),
            Just("auto"),
            Just("required"),
            Just("json_schema"),
            Just("data:image/png;base64,AAAA"),
        ]
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(
                (
                    prop_oneof![
                        Just("role"),
                        Just("content"),
                        Just("type"),
                        Just("text"),
                        Just("name"),
                        Just("tool_calls"),
                        Just("tool_call_id"),
                        Just("function"),
                        Just("arguments"),
                        Just("image_url"),
                        Just("url"),
                        Just("id"),
                        Just("parameters"),
                        Just("json_schema"),
                        Just("include_usage"),
                    ]
                    .prop_map(str::to_owned),
                    inner
                ),
                0..5
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

pub(crate) fn arb_request_like(
    messages: impl Strategy<Value = Value>,
) -> impl Strategy<Value = Value> {
    (
        proptest::option::of(prop_oneof![
            "[a-z]{0,5}".prop_map(Value::String),
            arb_json()
        ]),
        messages,
        proptest::collection::vec(
            (
                prop_oneof![
                    Just("tools"),
                    Just("tool_choice"),
                    Just("stop"),
                    Just("n"),
                    Just("max_tokens"),
                    Just("temperature"),
                    Just("stream_options"),
                    Just("response_format"),
                    Just("metadata"),
                    Just("system"),
                    Just("stop_sequences"),
                    Just("top_k"),
                    Just("seed"),
                ]
                .prop_map(str::to_owned),
                arb_json(),
            ),
            0..4,
        ),
    )
        .prop_map(|(model, messages, rest)| {
            let mut o: Map<String, Value> = rest.into_iter().collect();
            if let Some(m) = model {
                o.insert("model".into(), m);
            }
            o.insert("messages".into(), messages);
            Value::Object(o)
        })
}

proptest! {
    #[test]
    fn parse_request_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn parse_request_never_panics_on_json(v in arb_json()) {
        let _ = parse_request(v.to_string().as_bytes());
    }

    #[test]
    fn parse_request_never_panics_on_request_like_json(
        v in arb_request_like(proptest::collection::vec(arb_json(), 0..4).prop_map(Value::Array))
    ) {
        if let Ok(req) = parse_request(v.to_string().as_bytes()) {
            // Whatever parses must also build and survive the trip upstream.
            let body = build_request(&req, "m");
            let _ = parse_request(body.to_string().as_bytes());
            let _ = crate::dialects::anthropic::build_request(&req, "m");
        }
    }
}
