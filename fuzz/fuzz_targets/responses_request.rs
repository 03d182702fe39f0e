//! OpenAI Responses API requests (`POST /v1/responses` bodies).
//!
//! Invariants: parsing never panics; a parsed request renders a Response object and a
//! complete event stream for any answer, and builds an upstream body in both chat
//! dialects (every backend serves it through translation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::{ChatResponse, ContentPart, StopReason, StreamEvent, Usage};
use switchyard::dialects::{anthropic, openai, responses};

fuzz_target!(|data: &[u8]| {
    let (req, turn) = match responses::parse_request(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = responses::render_error(&e);
            return;
        }
    };
    let _ = openai::build_request(&req, &req.model);
    let _ = anthropic::build_request(&req, &req.model);
    let _ = req.text_segments().count();
    let answer = ChatResponse {
        id: "x".into(),
        model: req.model.clone(),
        content: vec![
            ContentPart::text("ok"),
            ContentPart::ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: "{}".into(),
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: Usage::default(),
        created: 0,
    };
    let rendered = responses::render_response(&turn, &answer);
    assert_eq!(rendered["id"].as_str(), Some(turn.id.as_str()));
    let mut enc = responses::StreamEncoder::new(turn);
    let mut out = Vec::new();
    for ev in switchyard::cache::replay_events(&answer) {
        enc.encode(&ev, &mut out);
    }
    enc.encode(
        &StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            usage: None,
        },
        &mut out,
    );
    assert!(!out.is_empty());
});
