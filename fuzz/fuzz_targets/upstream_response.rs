//! Non-streaming upstream response bodies, read with the OpenAI, Anthropic and Gemini parsers, and upstream
//! error bodies.
//!
//! Invariants: nothing panics, and parse → render → parse is a fixpoint after one pass in
//! each dialect (rendering is what a client of that dialect receives, and the format is
//! the same one the upstream speaks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::ChatResponse;
use switchyard::dialects::{anthropic, gemini, openai};

type Parse = fn(&[u8]) -> Result<ChatResponse, String>;
type Render = fn(&ChatResponse) -> serde_json::Value;

fn rerender(resp: &ChatResponse, parse: Parse, render: Render) -> ChatResponse {
    let body = render(resp).to_string();
    let mut again = parse(body.as_bytes())
        .unwrap_or_else(|e| panic!("a rendered response does not parse: {e}\n{body}"));
    // Anthropic bodies carry no timestamp: the parser stamps the current time.
    again.created = resp.created;
    again
}

fn check(data: &[u8], parse: Parse, render: Render) {
    let Ok(resp) = parse(data) else {
        return;
    };
    let _ = openai::render_response(&resp);
    let _ = anthropic::render_response(&resp);
    let once = rerender(&resp, parse, render);
    let twice = rerender(&once, parse, render);
    assert_eq!(once, twice, "parse/render is not a fixpoint after one pass");
}

fuzz_target!(|data: &[u8]| {
    check(data, openai::parse_response, openai::render_response);
    check(data, anthropic::parse_response, anthropic::render_response);
    check(
        data,
        |b| gemini::parse_response(b, "gemini-2.0-flash"),
        gemini::render_response,
    );
    let _ = gemini::parse_error(503, data, None, "fuzz");
    let _ = openai::parse_error(429, data, None, "fuzz");
    let _ = anthropic::parse_error(529, data, Some("1".into()), "fuzz");
});
