//! OpenAI client requests (`POST /v1/chat/completions` bodies).
//!
//! Invariants: parsing never panics; a parsed request always builds an upstream body in
//! either dialect; and parse → build → parse is a fixpoint after one pass. The first pass
//! may normalize (empty content becomes `""`, `tool_choice` without tools is dropped,
//! streams always ask for usage), but a second pass must change nothing, or the gateway
//! would be rewriting requests it already wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::ChatRequest;
use switchyard::dialects::{anthropic, openai};

fn rebuild(req: &ChatRequest) -> ChatRequest {
    let body = serde_json::to_vec(&openai::build_request(req, &req.model))
        .expect("a built request serializes");
    openai::parse_request(&body).unwrap_or_else(|e| {
        panic!(
            "a body the gateway built is rejected: {e}\n{}",
            String::from_utf8_lossy(&body)
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let req = match openai::parse_request(data) {
        Ok(req) => req,
        Err(e) => {
            let _ = openai::render_error(&e);
            return;
        }
    };
    let _ = anthropic::build_request(&req, &req.model);
    let _ = anthropic::build_count_tokens_request(&req, &req.model);
    let _ = req.text_segments().count();
    let once = rebuild(&req);
    let twice = rebuild(&once);
    assert_eq!(once, twice, "parse/build is not a fixpoint after one pass");
});
