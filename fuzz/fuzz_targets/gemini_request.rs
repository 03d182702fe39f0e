//! Gemini API requests (`POST /v1beta/models/{model}:generateContent` bodies).
//!
//! Invariants: parsing never panics; a parsed request builds an upstream body in both
//! chat dialects, and any answer renders as a GenerateContentResponse and a stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::{ChatResponse, ContentPart, StopReason, Usage};
use switchyard::dialects::{anthropic, gemini, openai};

fuzz_target!(|data: &[u8]| {
    let call = gemini::Call {
        model: "gemini-2.0-flash".into(),
        stream: data.first().is_some_and(|b| b & 1 == 1),
    };
    let req = match gemini::parse_request(&call, data) {
        Ok(req) => req,
        Err(e) => {
            let _ = gemini::render_error(&e);
            return;
        }
    };
    let _ = openai::build_request(&req, &req.model);
    let _ = anthropic::build_request(&req, &req.model);
    let _ = req.text_segments().count();
    // Arguments a model produced are not always JSON: they must still render.
    let arguments = String::from_utf8_lossy(data).into_owned();
    let answer = ChatResponse {
        id: "x".into(),
        model: req.model.clone(),
        content: vec![
            ContentPart::text("ok"),
            ContentPart::ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments,
            },
        ],
        stop_reason: StopReason::ToolUse,
        usage: Usage::default(),
        created: 0,
    };
    let rendered = gemini::render_response(&answer);
    assert!(rendered["candidates"][0]["content"]["parts"][1]["functionCall"]["args"].is_object());
    let mut enc = gemini::StreamEncoder::new();
    let mut out = Vec::new();
    for ev in switchyard::cache::replay_events(&answer) {
        enc.encode(&ev, &mut out);
    }
    assert!(!out.is_empty());
});
