//! Anthropic client requests (`POST /v1/messages` and `/v1/messages/count_tokens` bodies).
//!
//! Invariants: parsing never panics, and parse → build → parse is a fixpoint after one
//! pass. The first pass may normalize (system messages gathered, same-role turns merged,
//! empty blocks dropped, tool results moved first, temperature clamped) and may even empty
//! a request (every block empty), which the parser then rejects; but a request that
//! survives one pass must survive the next unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::{ChatRequest, GatewayError};
use switchyard::dialects::{anthropic, openai};

fn rebuild(req: &ChatRequest) -> (Vec<u8>, Result<ChatRequest, GatewayError>) {
    let body = serde_json::to_vec(&anthropic::build_request(req, &req.model))
        .expect("a built request serializes");
    let parsed = anthropic::parse_request(&body);
    (body, parsed)
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = anthropic::parse_count_tokens_request(data) {
        let body = anthropic::build_count_tokens_request(&req, &req.model);
        let _ = anthropic::parse_count_tokens_request(body.to_string().as_bytes());
    }
    let req = match anthropic::parse_request(data) {
        Ok(req) => req,
        Err(e) => {
            let _ = anthropic::render_error(&e);
            return;
        }
    };
    let _ = openai::build_request(&req, &req.model);
    let Ok(once) = rebuild(&req).1 else {
        return;
    };
    let (body, twice) = rebuild(&once);
    let twice = twice.unwrap_or_else(|e| {
        panic!(
            "a normalized request no longer parses: {e}\n{}",
            String::from_utf8_lossy(&body)
        )
    });
    assert_eq!(once, twice, "parse/build is not a fixpoint after one pass");
});
