//! Tests that cross the two sides: what the backend side sends, read back by the client
//! side, is the request it started from; what Gemini answers, read by the backend side,
//! is what the client side would have rendered.

use serde_json::{json, Value};

use super::*;
use crate::canonical::{
    ChatRequest, ChatResponse, ContentPart, Dialect, ImageSource, Message, ResponseFormat, Role,
    StopReason, StreamEvent, Tool, ToolChoice, Usage,
};
use crate::dialects::sse::SseParser;

fn conversation() -> ChatRequest {
    let mut req = ChatRequest::new(
        "gemini-2.0-flash",
        vec![
            Message::text(Role::System, "Be brief."),
            Message {
                role: Role::User,
                content: vec![
                    ContentPart::text("What is in this picture, and the weather?"),
                    ContentPart::Image {
                        source: ImageSource::Base64 {
                            media_type: "image/png".into(),
                            data: "iVBORw0KGgo=".into(),
                        },
                        cache_control: None,
                    },
                ],
                name: None,
            },
            Message {
                role: Role::Assistant,
                content: vec![ContentPart::ToolCall {
                    id: "call_1".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Paris"}"#.into(),
                }],
                name: None,
            },
            Message {
                role: Role::User,
                content: vec![ContentPart::ToolResult {
                    call_id: "call_1".into(),
                    content: vec![ContentPart::text("18 C, sunny")],
                    is_error: false,
                    cache_control: None,
                }],
                name: None,
            },
        ],
        Dialect::OpenAi,
    );
    req.tools = vec![Tool {
        name: "get_weather".into(),
        description: Some("Weather for a city".into()),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
            "required": ["city"], "additionalProperties": false}),
        cache_control: None,
    }];
    req.tool_choice = Some(ToolChoice::Tool {
        name: "get_weather".into(),
    });
    req.sampling.temperature = Some(0.5);
    req.sampling.top_p = Some(0.9);
    req.sampling.top_k = Some(40);
    req.sampling.max_tokens = Some(256);
    req.sampling.seed = Some(7);
    req.sampling.stop = vec!["END".into()];
    req.response_format = Some(ResponseFormat::JsonSchema {
        schema: json!({"name": "response", "schema": {"type": "object"}}),
    });
    req
}

fn read_back(body: &Value, stream: bool) -> ChatRequest {
    let call = Call {
        model: "gemini-2.0-flash".into(),
        stream,
    };
    parse_request(&call, &serde_json::to_vec(body).expect("json")).expect("parses")
}

#[test]
fn a_request_sent_upstream_reads_back_as_itself() {
    let req = conversation();
    let body = build_request(&req);
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be brief."}]})
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"],
        json!({"id": "call_1", "name": "get_weather", "response": {"output": "18 C, sunny"}}),
        "a result is named after the call it answers"
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"]["additionalProperties"],
        json!(false),
        "JSON Schema goes as it is"
    );
    assert!(body.get("model").is_none(), "the model goes in the URL");
    let back = read_back(&body, false);
    assert_eq!(back.messages, req.messages);
    assert_eq!(back.tools, req.tools);
    assert_eq!(back.tool_choice, req.tool_choice);
    assert_eq!(back.sampling, req.sampling);
    assert_eq!(back.response_format, req.response_format);
}

#[test]
fn same_role_turns_merge_and_anthropic_only_parts_stay_home() {
    let req = ChatRequest::new(
        "gemini-2.0-flash",
        vec![
            Message::text(Role::User, "one"),
            Message::text(Role::User, "two"),
            Message {
                role: Role::Assistant,
                content: vec![
                    ContentPart::Thinking {
                        thinking: "secret reasoning".into(),
                        signature: "sig".into(),
                    },
                    ContentPart::text("three"),
                ],
                name: None,
            },
            Message::text(Role::System, "late system"),
        ],
        Dialect::Anthropic,
    );
    let body = build_request(&req);
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
            {"role": "model", "parts": [{"text": "three"}]},
        ])
    );
    assert_eq!(body["systemInstruction"]["parts"][0]["text"], "late system");
    assert!(!body.to_string().contains("secret reasoning"));
}

#[test]
fn json_mode_and_forced_calls() {
    let mut req = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
    req.response_format = Some(ResponseFormat::JsonObject);
    req.tool_choice = Some(ToolChoice::Required);
    let body = build_request(&req);
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(
        body["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY"})
    );
    let count = build_count_tokens_request(&req, "gemini-2.0-flash");
    assert_eq!(
        count["generateContentRequest"]["model"],
        "models/gemini-2.0-flash"
    );
}

#[test]
fn a_rendered_answer_parses_back() {
    for (content, stop) in [
        (vec![ContentPart::text("Hello there")], StopReason::EndTurn),
        (vec![ContentPart::text("Hello")], StopReason::MaxTokens),
        (
            vec![
                ContentPart::text("Calling."),
                ContentPart::ToolCall {
                    id: "call_9".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city":"Oslo"}"#.into(),
                },
            ],
            StopReason::ToolUse,
        ),
    ] {
        let resp = ChatResponse {
            id: "resp_1".into(),
            model: "gemini-2.0-flash-001".into(),
            content,
            stop_reason: stop,
            usage: Usage {
                input_tokens: 12,
                output_tokens: 5,
                cache_read_input_tokens: 4,
                cache_creation_input_tokens: 0,
            },
            created: 0,
        };
        let body = serde_json::to_vec(&render_response(&resp)).expect("json");
        let mut back = parse_response(&body, "gemini-2.0-flash").expect("parses");
        back.created = 0;
        assert_eq!(back, resp);
    }
}

#[test]
fn answers_as_gemini_writes_them() {
    // No call ids, thoughts beside the answer, thinking tokens counted apart.
    let body = json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "pondering", "thought": true},
            {"functionCall": {"name": "a", "args": {"x": 1}}},
            {"functionCall": {"name": "b"}},
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 3,
            "thoughtsTokenCount": 7, "totalTokenCount": 20},
        "responseId": "abc",
    });
    let r = parse_response(&serde_json::to_vec(&body).expect("json"), "gemini-x").expect("ok");
    assert_eq!(r.model, "gemini-x");
    assert_eq!(r.stop_reason, StopReason::ToolUse);
    assert_eq!(r.usage.output_tokens, 10);
    assert_eq!(
        r.content,
        vec![
            ContentPart::ToolCall {
                id: "call_abc_1".into(),
                name: "a".into(),
                arguments: r#"{"x":1}"#.into()
            },
            ContentPart::ToolCall {
                id: "call_abc_2".into(),
                name: "b".into(),
                arguments: "{}".into()
            },
        ]
    );
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 4}});
    let r = parse_response(&serde_json::to_vec(&blocked).expect("json"), "m").expect("ok");
    assert_eq!(r.stop_reason, StopReason::ContentFilter);
    assert!(r.content.is_empty());
    let error = json!({"error": {"code": 400, "message": "API key not valid.", "status": "INVALID_ARGUMENT"}});
    assert_eq!(
        parse_response(&serde_json::to_vec(&error).expect("json"), "m").unwrap_err(),
        "API key not valid."
    );
    assert!(parse_response(b"{\"candidates\": [", "m").is_err());
}

fn decode_all(bytes: &[u8]) -> Result<Vec<StreamEvent>, String> {
    let mut parser = SseParser::new(1 << 20);
    let mut dec = StreamDecoder::new();
    let mut out = Vec::new();
    for ev in parser.push(bytes).map_err(|e| e.to_string())? {
        out.extend(dec.decode(&ev)?);
    }
    out.extend(dec.finish()?);
    Ok(out)
}

#[test]
fn an_encoded_stream_decodes_back() {
    let events = vec![
        StreamEvent::Start {
            id: "r1".into(),
            model: "gemini-2.0-flash".into(),
            created: 0,
            usage: None,
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "Hel".into(),
        },
        StreamEvent::TextDelta {
            index: 0,
            text: "lo".into(),
        },
        StreamEvent::ToolCallStart {
            index: 1,
            id: "call_7".into(),
            name: "get_weather".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: r#"{"city":"#.into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            arguments: r#""Rome"}"#.into(),
        },
        StreamEvent::Finish {
            stop_reason: StopReason::ToolUse,
            usage: Some(Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            }),
        },
    ];
    let mut enc = StreamEncoder::new();
    let mut bytes = Vec::new();
    for ev in &events {
        enc.encode(ev, &mut bytes);
    }
    let mut back = decode_all(&bytes).expect("decodes");
    if let Some(StreamEvent::Start { created, .. }) = back.first_mut() {
        *created = 0;
    }
    // Gemini sends a call whole: one start and one delta with all of its arguments.
    let mut expected = events.clone();
    expected.splice(
        4..6,
        [StreamEvent::ToolCallDelta {
            index: 1,
            arguments: r#"{"city":"Rome"}"#.into(),
        }],
    );
    assert_eq!(back, expected);
}

#[test]
fn a_stream_without_a_finish_reason_was_cut() {
    let chunk = json!({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]});
    let bytes = format!("data: {chunk}\r\n\r\n");
    assert!(decode_all(bytes.as_bytes())
        .unwrap_err()
        .contains("before a finish reason"));
    let error = json!({"error": {"code": 503, "message": "The model is overloaded."}});
    let bytes = format!("data: {chunk}\r\n\r\ndata: {error}\r\n\r\n");
    assert_eq!(
        decode_all(bytes.as_bytes()).unwrap_err(),
        "The model is overloaded."
    );
}
