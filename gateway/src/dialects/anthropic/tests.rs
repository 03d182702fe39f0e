use serde_json::{json, Value};

use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, GatewayError, ImageSource, Message,
    ResponseFormat, Role, Sampling, StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::sse::SseEvent;

use super::client::*;
use super::upstream::*;
use crate::dialects::openai;
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

/// `created` comes from the clock on the Anthropic side; zero it for comparison.
fn normalize(mut events: Vec<StreamEvent>) -> Vec<StreamEvent> {
    for ev in &mut events {
        if let StreamEvent::Start { created, .. } = ev {
            *created = 0;
        }
    }
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
    normalize(out)
}

fn usage(input: u32, output: u32, read: u32, write: u32) -> Usage {
    Usage {
        input_tokens: input,
        output_tokens: output,
        cache_read_input_tokens: read,
        cache_creation_input_tokens: write,
    }
}

#[test]
fn parses_a_full_request() {
    let req = parse(json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Big cached context", "cache_control": {"type": "ephemeral"}}
        ],
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {"type": "text", "text": "Weather?"}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "is_error": true,
                 "content": [{"type": "text", "text": "timeout"}], "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "try again"}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather by city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.2, "top_p": 0.8, "top_k": 40,
        "stream": true,
        "metadata": {"user_id": "user-42"},
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "service_tier": "auto"
    }))
    .unwrap();
    let ephemeral = Some(json!({"type": "ephemeral"}));
    assert_eq!(
        req.messages[0],
        Message {
            role: Role::System,
            content: vec![
                ContentPart::text("You are terse."),
                ContentPart::Text {
                    text: "Big cached context".into(),
                    cache_control: ephemeral.clone()
                },
            ],
            name: None,
        }
    );
    assert_eq!(
        req.messages[1].content[0],
        ContentPart::Image {
            source: ImageSource::Base64 {
                media_type: "image/png".into(),
                data: "iVBOR".into()
            },
            cache_control: None
        }
    );
    assert_eq!(
        req.messages[2].content[1],
        ContentPart::ToolCall {
            id: "toolu_01".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into()
        }
    );
    assert_eq!(
        req.messages[3].content,
        vec![
            ContentPart::ToolResult {
                call_id: "toolu_01".into(),
                content: vec![ContentPart::text("timeout")],
                is_error: true,
                cache_control: ephemeral.clone()
            },
            ContentPart::text("try again"),
        ]
    );
    assert_eq!(req.tools[0].cache_control, ephemeral);
    assert_eq!(req.tool_choice, Some(ToolChoice::Required));
    assert_eq!(req.parallel_tool_calls, Some(false));
    assert_eq!(req.sampling.max_tokens, Some(1024));
    assert_eq!(req.sampling.stop, vec!["\n\nHuman:".to_owned()]);
    assert_eq!(req.sampling.top_k, Some(40));
    assert_eq!(req.sampling.temperature, Some(0.2));
    assert!(req.stream && req.include_usage);
    assert_eq!(req.user.as_deref(), Some("user-42"));
    assert_eq!(
        req.extra,
        *json!({"thinking": {"type": "enabled", "budget_tokens": 2048}, "service_tier": "auto"})
            .as_object()
            .unwrap()
    );
    assert_eq!(req.extra_dialect, Dialect::Anthropic);
}

#[test]
fn request_errors_are_precise() {
    let ok_messages = json!([{"role": "user", "content": "hi"}]);
    let m = invalid_message(parse_request(b"{"));
    assert!(m.starts_with("request body is not valid JSON"), "{m}");
    let m = invalid_message(parse(json!({"model": "claude", "messages": ok_messages})));
    assert_eq!(m, "missing required parameter 'max_tokens'");
    let counted = parse_count_tokens_request(
        json!({"model": "claude", "messages": ok_messages})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(counted.sampling.max_tokens, None);
    let m = invalid_message(parse(json!({"max_tokens": 5, "messages": ok_messages})));
    assert_eq!(m, "missing required parameter 'model'");
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": "5", "messages": ok_messages}),
    ));
    assert_eq!(
        m,
        "invalid type for 'max_tokens': expected a non-negative integer, got a string"
    );
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}),
    ));
    assert!(m.starts_with("invalid value for 'messages[0].role'"), "{m}");
    let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": {}}]}]})));
    assert_eq!(
        m,
        "invalid value for 'messages[0].content[0].type': 'tool_use' blocks are only allowed in assistant messages"
    );
    let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"}]}]})));
    assert_eq!(
        m,
        "invalid value for 'messages[0].content[0].type': 'thinking' blocks are only allowed in assistant messages"
    );
    let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "redacted_thinking"}]}]})));
    assert_eq!(
        m,
        "missing required parameter 'messages[0].content[0].data'"
    );
    let m = invalid_message(parse(json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "a", "name": "b", "input": [1]}]}]})));
    assert_eq!(
        m,
        "invalid type for 'messages[0].content[0].input': expected an object, got an array"
    );
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": 5, "system": 3, "messages": ok_messages}),
    ));
    assert_eq!(
        m,
        "invalid type for 'system': expected a string or an array of text blocks, got an integer"
    );
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": 5, "messages": ok_messages,
        "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
    ));
    assert!(
        m.contains("tool type 'web_search_20250305' is not supported"),
        "{m}"
    );
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": 5, "messages": ok_messages,
        "tools": [{"name": "f"}]}),
    ));
    assert_eq!(m, "missing required parameter 'tools[0].input_schema'");
    let m = invalid_message(parse(
        json!({"model": "c", "max_tokens": 5, "messages": ok_messages, "tool_choice": {"type": "tool"}}),
    ));
    assert_eq!(m, "missing required parameter 'tool_choice.name'");
}

fn anthropic_request() -> ChatRequest {
    let cc = Some(json!({"type": "ephemeral"}));
    let mut req = ChatRequest::new(
        "claude-haiku-4-5",
        vec![
            Message {
                role: Role::System,
                content: vec![
                    ContentPart::text("sys"),
                    ContentPart::Text {
                        text: "cached".into(),
                        cache_control: cc.clone(),
                    },
                ],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::Image {
                        source: ImageSource::Url {
                            url: "https://example.com/x.png".into(),
                        },
                        cache_control: cc.clone(),
                    },
                    ContentPart::text("hi"),
                ],
                name: None,
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentPart::ToolCall {
                    id: "toolu_1".into(),
                    name: "f".into(),
                    arguments: "{\"a\":[1,2]}".into(),
                }],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::ToolResult {
                        call_id: "toolu_1".into(),
                        content: vec![
                            ContentPart::text("r"),
                            ContentPart::Image {
                                source: ImageSource::Base64 {
                                    media_type: "image/gif".into(),
                                    data: "R0lG".into(),
                                },
                                cache_control: None,
                            },
                        ],
                        is_error: true,
                        cache_control: cc.clone(),
                    },
                    ContentPart::text("more"),
                ],
                name: None,
            },
        ],
        Dialect::Anthropic,
    );
    req.tools = vec![Tool {
        name: "f".into(),
        description: None,
        parameters: json!({"type": "object"}),
        cache_control: cc,
    }];
    req.tool_choice = Some(ToolChoice::Tool { name: "f".into() });
    req.parallel_tool_calls = Some(false);
    req.sampling = Sampling {
        temperature: Some(0.5),
        top_p: Some(0.75),
        top_k: Some(10),
        max_tokens: Some(256),
        stop: vec!["STOP".into()],
        ..Sampling::default()
    };
    req.stream = true;
    req.include_usage = true;
    req.user = Some("u1".into());
    req.extra = json!({"thinking": {"type": "enabled", "budget_tokens": 1024}})
        .as_object()
        .unwrap()
        .clone();
    req
}

#[test]
fn build_then_parse_round_trips() {
    let req = anthropic_request();
    let body = build_request(&req, "claude-haiku-4-5");
    assert_eq!(
        body["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    let back = parse_request(body.to_string().as_bytes()).unwrap();
    assert_eq!(back, req);

    let count = build_count_tokens_request(&req, "claude-haiku-4-5");
    assert!(count.get("max_tokens").is_none() && count.get("stream").is_none());
    let back = parse_count_tokens_request(count.to_string().as_bytes()).unwrap();
    assert_eq!(back.messages, req.messages);
    assert_eq!(back.tools, req.tools);
    assert_eq!(back.extra, req.extra);
}

#[test]
fn openai_request_to_anthropic_upstream() {
    let req = openai::parse_request(
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Rule one."},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGR"}}
                ]},
                {"role": "user", "content": "Also, weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
                {"role": "tool", "tool_call_id": "call_2", "content": ""},
                {"role": "developer", "content": "Rule two."},
                {"role": "user", "content": "Summarize."}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "response_format": {"type": "json_object"},
            "temperature": 1.6, "top_p": 1, "seed": 1, "presence_penalty": 0.5,
            "stop": ["END"], "user": "u-9", "logit_bias": {"1": 2}
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let body = build_request(&req, "claude-sonnet-4-5");
    assert_eq!(
        body,
        json!({
            "model": "claude-sonnet-4-5",
            "system": [
                {"type": "text", "text": "Rule one."},
                {"type": "text", "text": "Rule two."},
                {"type": "text", "text": "Respond only with a single valid JSON object, without any other text."}
            ],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklGR"}},
                    {"type": "text", "text": "Also, weather?"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Oslo"}},
                    {"type": "tool_use", "id": "call_2", "name": "get_weather",
                     "input": {"_raw_arguments": "{\"city\""}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "-3C"}]},
                    {"type": "tool_result", "tool_use_id": "call_2"},
                    {"type": "text", "text": "Summarize."}
                ]}
            ],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object",
                "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "max_tokens": DEFAULT_MAX_TOKENS,
            "stop_sequences": ["END"],
            "temperature": 1.0,
            "metadata": {"user_id": "u-9"},
            "stream": false
        })
    );
}

#[test]
fn json_schema_goes_to_the_system_prompt() {
    let mut req = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
    req.response_format = Some(ResponseFormat::JsonSchema {
        schema: json!({"name": "x", "schema": {"type": "object"}}),
    });
    let body = build_request(&req, "claude");
    assert_eq!(
        body["system"],
        json!("Respond only with a single valid JSON value, without any other text, that conforms to this JSON Schema: {\"type\":\"object\"}")
    );
}

fn sample_response() -> ChatResponse {
    ChatResponse {
        id: "msg_01".into(),
        model: "claude-sonnet-4-5".into(),
        content: vec![
            ContentPart::text("I'll check."),
            ContentPart::ToolCall {
                id: "toolu_01A".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"San Francisco, CA\"}".into(),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: usage(2095 + 300 + 50, 503, 300, 50),
        created: 0,
    }
}

#[test]
fn render_response_wire_shape_and_round_trip() {
    let resp = sample_response();
    let v = render_response(&resp);
    assert_eq!(
        v,
        json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "text", "text": "I'll check."},
                {"type": "tool_use", "id": "toolu_01A", "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 2095, "output_tokens": 503,
                "cache_read_input_tokens": 300, "cache_creation_input_tokens": 50}
        })
    );
    let mut back = parse_response(v.to_string().as_bytes()).unwrap();
    back.created = 0;
    assert_eq!(back, resp);
}

#[test]
fn stop_reasons_map_both_ways() {
    for stop in [
        StopReason::EndTurn,
        StopReason::MaxTokens,
        StopReason::StopSequence {
            sequence: Some("###".into()),
        },
        StopReason::ToolUse,
        StopReason::ContentFilter,
    ] {
        let mut resp = sample_response();
        resp.stop_reason = stop.clone();
        let v = render_response(&resp);
        assert_eq!(
            parse_response(v.to_string().as_bytes())
                .unwrap()
                .stop_reason,
            stop
        );
    }
    let v = render_response(&ChatResponse {
        stop_reason: StopReason::ContentFilter,
        ..sample_response()
    });
    assert_eq!(v["stop_reason"], json!("refusal"));
}

#[test]
fn anthropic_upstream_response_to_openai_client() {
    // Response shape from the Messages API reference, with a thinking block an
    // OpenAI client has no place for.
    let body = br#"{
      "id": "msg_01Aq9w938a90dw8q", "type": "message", "role": "assistant",
      "model": "claude-sonnet-4-5-20250929",
      "content": [
        {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
        {"type": "text", "text": "I'll look that up."},
        {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
         "input": {"location": "San Francisco, CA", "unit": "celsius"}}
      ],
      "stop_reason": "tool_use", "stop_sequence": null,
      "usage": {"input_tokens": 2095, "output_tokens": 503,
        "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1000}
    }"#;
    let mut resp = parse_response(body).unwrap();
    assert_eq!(resp.usage, usage(3195, 503, 1000, 100));
    resp.created = 1_700_000_000;
    assert_eq!(
        openai::render_response(&resp),
        json!({
            "id": "msg_01Aq9w938a90dw8q",
            "object": "chat.completion",
            "created": 1_700_000_000u64,
            "model": "claude-sonnet-4-5-20250929",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "I'll look that up.",
                    "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                        "function": {"name": "get_weather",
                            "arguments": "{\"location\":\"San Francisco, CA\",\"unit\":\"celsius\"}"}}],
                    "refusal": null
                },
                "logprobs": null,
                "finish_reason": "tool_calls"
            }],
            "usage": {"prompt_tokens": 3195, "completion_tokens": 503, "total_tokens": 3698,
                "prompt_tokens_details": {"cached_tokens": 1000}}
        })
    );
    // And the OpenAI upstream answer rendered for an Anthropic client.
    let oa = openai::parse_response(
        br#"{"id":"chatcmpl-1","created":5,"model":"gpt-4o","choices":[{"index":0,
          "message":{"role":"assistant","content":"Hi!"},"finish_reason":"length"}],
          "usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}"#,
    )
    .unwrap();
    assert_eq!(
        render_response(&oa),
        json!({"id": "chatcmpl-1", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [{"type": "text", "text": "Hi!"}], "stop_reason": "max_tokens",
            "stop_sequence": null, "usage": {"input_tokens": 6, "output_tokens": 2,
            "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}})
    );
    assert!(parse_response(
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
    )
    .unwrap_err()
    .contains("Overloaded"));
}

#[test]
fn tool_input_rules() {
    assert_eq!(tool_input(""), json!({}));
    assert_eq!(tool_input(" {\"a\": 1} "), json!({"a": 1}));
    assert_eq!(tool_input("[1]"), json!({"_raw_arguments": "[1]"}));
    assert_eq!(tool_input("{\"a\""), json!({"_raw_arguments": "{\"a\""}));
}

#[test]
fn errors_render_with_anthropic_types() {
    let up = |status| GatewayError::Upstream {
        provider: "p".into(),
        status,
        message: "m".into(),
        retry_after: None,
    };
    for (err, kind) in [
        (
            GatewayError::InvalidRequest("x".into()),
            "invalid_request_error",
        ),
        (
            GatewayError::Authentication("x".into()),
            "authentication_error",
        ),
        (
            GatewayError::PermissionDenied("x".into()),
            "permission_error",
        ),
        (GatewayError::NotFound("x".into()), "not_found_error"),
        (
            GatewayError::PayloadTooLarge { limit: 1 },
            "request_too_large",
        ),
        (
            GatewayError::RateLimited {
                message: "x".into(),
                retry_after: None,
            },
            "rate_limit_error",
        ),
        (up(400), "invalid_request_error"),
        (up(429), "rate_limit_error"),
        (up(529), "overloaded_error"),
        (up(500), "api_error"),
        (
            GatewayError::BadGateway {
                provider: "p".into(),
                message: "x".into(),
            },
            "api_error",
        ),
        (
            GatewayError::Timeout {
                provider: "p".into(),
                after_ms: 1,
            },
            "timeout_error",
        ),
        (GatewayError::Overloaded("x".into()), "overloaded_error"),
        (GatewayError::Internal("x".into()), "api_error"),
    ] {
        assert_eq!(
            render_error(&err),
            json!({"type": "error", "error": {"type": kind, "message": err.to_string()}})
        );
    }
    match parse_error(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#,
        None,
        "anthropic",
    ) {
        GatewayError::Upstream {
            status, message, ..
        } => {
            assert_eq!(status, 529);
            assert_eq!(message, "Overloaded");
        }
        other => panic!("{other:?}"),
    }
}

fn sample_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::Start {
            id: "msg_1".into(),
            model: "claude-sonnet-4-5".into(),
            created: 0,
            usage: Some(usage(472 + 100, 1, 100, 0)),
        },
        StreamEvent::Ping,
        StreamEvent::TextDelta {
            index: 0,
            text: "Okay".into(),
        },
        StreamEvent::TextDelta {
            index: 0,
            text: ", checking.".into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: "toolu_1".into(),
            name: "get_weather".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: "{\"location\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: " \"Paris\"}".into(),
        },
        StreamEvent::ToolCallStart {
            index: 2,
            id: "toolu_2".into(),
            name: "noop".into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::ToolUse,
            usage: Some(usage(572, 89, 100, 0)),
        },
    ]
}

fn encode(events: &[StreamEvent]) -> Vec<u8> {
    let mut enc = StreamEncoder::new();
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    out
}

#[test]
fn stream_encoder_wire_format() {
    let out = encode(&sample_events()[..6]);
    let frames = frames(&out);
    // Every frame's event name is its data's type.
    for f in &frames {
        let v: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(f.event.as_deref(), v["type"].as_str());
    }
    let data: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(&f.data).unwrap())
        .collect();
    assert_eq!(
        data,
        vec![
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
                "role": "assistant", "model": "claude-sonnet-4-5", "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 472, "output_tokens": 1,
                    "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}}}),
            json!({"type": "ping"}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay"}}),
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ", checking."}}),
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "content_block_start", "index": 1, "content_block":
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}}),
            json!({"type": "content_block_delta", "index": 1, "delta":
                {"type": "input_json_delta", "partial_json": "{\"location\":"}}),
            json!({"type": "content_block_stop", "index": 1}),
            // finish() closes a stream that never got its Finish.
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 1}}),
            json!({"type": "message_stop"}),
        ]
    );
}

#[test]
fn stream_round_trips_through_the_wire() {
    assert_eq!(decode_all(&encode(&sample_events())), sample_events());
    let mut stop_seq = sample_events();
    stop_seq.truncate(4);
    stop_seq.push(StreamEvent::Finish {
        stop_reason: StopReason::StopSequence {
            sequence: Some("###".into()),
        },
        usage: Some(usage(572, 3, 100, 0)),
    });
    assert_eq!(decode_all(&encode(&stop_seq)), stop_seq);
}

#[test]
fn decodes_documented_stream() {
    // The event sequence from Anthropic's streaming docs (tool use example), after a
    // thinking block with its signature (the extended-thinking example's deltas).
    let body = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2,\"cache_read_input_tokens\":8},\"content\":[],\"stop_reason\":null}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCgIYAhIM\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"San Francisco, CA\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );
    assert_eq!(
        decode_all(body.as_bytes()),
        vec![
            StreamEvent::Start {
                id: "msg_014p7gG3wDgGV9EUtLvnow3U".into(),
                model: "claude-sonnet-4-5".into(),
                created: 0,
                usage: Some(usage(480, 2, 8, 0))
            },
            StreamEvent::ThinkingDelta {
                index: 0,
                thinking: "hmm".into()
            },
            StreamEvent::ThinkingSignature {
                index: 0,
                signature: "EqQBCgIYAhIM".into()
            },
            StreamEvent::Ping,
            StreamEvent::TextDelta {
                index: 1,
                text: "Okay".into()
            },
            StreamEvent::ToolCallStart {
                index: 2,
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                name: "get_weather".into()
            },
            StreamEvent::ToolCallDelta {
                index: 2,
                arguments: "{\"location\":".into()
            },
            StreamEvent::ToolCallDelta {
                index: 2,
                arguments: " \"San Francisco, CA\"}".into()
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: Some(usage(480, 89, 8, 0))
            },
        ]
    );
}

#[test]
fn thinking_round_trips_to_anthropic_and_is_skipped_elsewhere() {
    // A tool-use loop with extended thinking: the client sends back the assistant
    // turn with its signed thinking, which must reach Anthropic byte for byte.
    let req = parse(json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCgIYAhIM+sig=="},
                {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"}]}]}))
    .unwrap();
    assert_eq!(
        req.messages[1].content[0],
        ContentPart::Thinking {
            thinking: "Use the tool.".into(),
            signature: "EqQBCgIYAhIM+sig==".into()
        }
    );
    let up = build_request(&req, "claude-sonnet-4-5-20250929");
    assert_eq!(
        up["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "Use the tool.", "signature": "EqQBCgIYAhIM+sig=="},
            {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3p"},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}])
    );
    assert_eq!(
        up["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
    // An OpenAI backend gets the tool call and no trace of the thinking.
    let oa = openai::build_request(&req, "gpt-4o");
    let assistant = &oa["messages"][1];
    assert_eq!(assistant["role"], json!("assistant"));
    assert!(!oa.to_string().contains("EqQBCgIYAhIM"), "{oa}");
    assert!(!oa.to_string().contains("Use the tool."), "{oa}");
    assert_eq!(assistant["tool_calls"][0]["id"], json!("toolu_1"));
    // The classifier reads the thinking text (it reaches the backend).
    assert!(req.text_segments().any(|(_, t)| t == "Use the tool."));
}

#[test]
fn thinking_in_responses_and_streams_for_anthropic_clients() {
    let body =
        br#"{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
      "content": [
        {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
        {"type": "redacted_thinking", "data": "opaque"},
        {"type": "text", "text": "Paris."}],
      "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 7}}"#;
    let resp = parse_response(body).unwrap();
    let v = render_response(&resp);
    assert_eq!(
        v["content"],
        json!([
            {"type": "thinking", "thinking": "Let me think", "signature": "abc"},
            {"type": "redacted_thinking", "data": "opaque"},
            {"type": "text", "text": "Paris."}])
    );
    let mut enc = StreamEncoder::new();
    let mut out = Vec::new();
    for ev in [
        StreamEvent::Start {
            id: "msg_1".into(),
            model: "claude-sonnet-4-5".into(),
            created: 0,
            usage: None,
        },
        StreamEvent::ThinkingDelta {
            index: 0,
            thinking: "Let me ".into(),
        },
        StreamEvent::ThinkingDelta {
            index: 0,
            thinking: "think".into(),
        },
        StreamEvent::ThinkingSignature {
            index: 0,
            signature: "abc".into(),
        },
        StreamEvent::RedactedThinking {
            index: 1,
            data: "opaque".into(),
        },
        StreamEvent::TextDelta {
            index: 2,
            text: "Paris.".into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            usage: None,
        },
    ] {
        enc.encode(&ev, &mut out);
    }
    // What the stream carries, decoded again by our own upstream decoder (which the
    // documented-stream test pins to Anthropic's format): the same parts.
    let events = decode_all(&out);
    let mut acc = crate::cache::StreamAccumulator::new();
    for ev in &events {
        acc.push(ev);
    }
    let folded = acc.finish().expect("complete stream");
    assert_eq!(folded.content, resp.content);
    let text = String::from_utf8(out).unwrap();
    for needle in ["thinking_delta", "signature_delta", "redacted_thinking"] {
        assert!(text.contains(needle), "{needle} missing from {text}");
    }
}

#[test]
fn decoder_errors_and_truncation() {
    let ev = |data: &str| SseEvent {
        event: None,
        data: data.into(),
    };
    let mut d = StreamDecoder::new();
    d.decode(&ev(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}"#))
        .unwrap();
    let err = d
        .decode(&ev(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ))
        .unwrap_err();
    assert_eq!(err, "Overloaded");
    let mut d = StreamDecoder::new();
    d.decode(&ev(r#"{"type":"message_start","message":{"id":"m","model":"c","usage":{"input_tokens":1,"output_tokens":0}}}"#))
        .unwrap();
    assert!(d.finish().unwrap_err().contains("stop_reason"));
    assert!(d
        .decode(&ev(
            r#"{"type":"content_block_delta","index":7,"delta":{"type":"text_delta","text":"x"}}"#
        ))
        .is_err());
    // Unknown event types are ignored, as the docs ask.
    assert!(d
        .decode(&ev(r#"{"type":"future_event"}"#))
        .unwrap()
        .is_empty());
    assert!(StreamDecoder::new().decode(&ev("{")).is_err());
}

#[test]
fn encoder_error_and_finish_semantics() {
    let mut enc = StreamEncoder::new();
    let mut out = Vec::new();
    enc.encode(&sample_events()[0], &mut out);
    out.clear();
    enc.encode_error(&GatewayError::Overloaded("busy".into()), &mut out);
    enc.finish(&mut out);
    enc.encode(&StreamEvent::Ping, &mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        // Keys in Anthropic's own order (serde_json keeps insertion order workspace-wide).
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
    );
    // After Finish, finish() adds nothing.
    let full = encode(&sample_events());
    let tail = String::from_utf8(full).unwrap();
    assert_eq!(tail.matches("message_stop").count(), 2); // event line + data
}

/// Anthropic upstream -> canonical -> OpenAI client -> (an OpenAI backend's view)
/// gives back the same events; OpenAI streams carry usage only at the end.
#[test]
fn anthropic_stream_through_openai_client_encoder() {
    let decoded = decode_all(&encode(&sample_events()));
    let mut enc = openai::StreamEncoder::new(true);
    let mut out = Vec::new();
    for ev in &decoded {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    let mut d = openai::StreamDecoder::new();
    let mut back = Vec::new();
    for f in frames(&out) {
        back.extend(d.decode(&f).unwrap());
    }
    let want: Vec<StreamEvent> = decoded
        .into_iter()
        .filter(|e| *e != StreamEvent::Ping)
        .map(|e| match e {
            StreamEvent::Start {
                id, model, created, ..
            } => StreamEvent::Start {
                id,
                model,
                created,
                usage: None,
            },
            other => other,
        })
        .collect();
    assert_eq!(back, want);

    // And the reverse: an OpenAI upstream stream rendered for an Anthropic client.
    let mut enc = StreamEncoder::new();
    let mut out = Vec::new();
    for ev in &back {
        enc.encode(ev, &mut out);
    }
    let again = decode_all(&out);
    assert_eq!(again.len(), back.len());
    assert_eq!(again.last(), back.last());
}

proptest! {
    #[test]
    fn parse_request_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = parse_request(&bytes);
        let _ = parse_count_tokens_request(&bytes);
    }

    #[test]
    fn parse_request_never_panics_on_request_like_json(
        v in openai::tests::arb_request_like(
            proptest::collection::vec(openai::tests::arb_json(), 0..4).prop_map(Value::Array))
    ) {
        let mut v = v;
        if let Value::Object(o) = &mut v {
            o.entry("max_tokens").or_insert(json!(16));
        }
        let _ = parse_request(v.to_string().as_bytes());
        if let Ok(req) = parse_count_tokens_request(v.to_string().as_bytes()) {
            let body = build_request(&req, "m");
            let _ = parse_request(body.to_string().as_bytes());
            let _ = openai::build_request(&req, "m");
        }
    }

    #[test]
    fn parse_request_never_panics_on_json(v in openai::tests::arb_json()) {
        let _ = parse_request(v.to_string().as_bytes());
    }
}
