//! Upstream event streams: arbitrary bytes, cut into arbitrary chunks, through the SSE
//! parser and the three upstream dialects' stream decoders (OpenAI, Anthropic, Gemini), then back out through both client encoders.
//!
//! Invariants: nothing panics; every frame an encoder writes is JSON (or OpenAI's
//! `[DONE]`), and an Anthropic frame's `event:` is its data's `type`; and re-decoding an
//! encoder's output with the same dialect's decoder yields the same text and tool
//! arguments, so a client sees exactly what the upstream sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchyard::canonical::StreamEvent;
use switchyard::dialects::sse::SseParser;
use switchyard::dialects::{anthropic, gemini, openai};
use switchyard_fuzz::{decode_all, sse_events, transcript, Decoder};

const MAX_EVENT_BYTES: usize = 1 << 20;

fn frames(bytes: &[u8]) -> Vec<switchyard::dialects::sse::SseEvent> {
    let mut parser = SseParser::new(usize::MAX);
    let mut events = parser.push(bytes).expect("no limit to exceed");
    let rest = parser.finish().expect("no limit to exceed");
    assert!(rest.is_none(), "an encoder left a frame unterminated");
    for ev in &mut events {
        if ev.data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&ev.data)
            .unwrap_or_else(|e| panic!("an encoder wrote a non-JSON frame ({e}): {}", ev.data));
        if let Some(name) = &ev.event {
            assert_eq!(v.get("type").and_then(Value::as_str), Some(name.as_str()));
        }
    }
    events
}

fn encode_openai(events: &[StreamEvent], include_usage: bool) -> Vec<u8> {
    let mut enc = openai::StreamEncoder::new(include_usage);
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    out
}

fn encode_anthropic(events: &[StreamEvent]) -> Vec<u8> {
    let mut enc = anthropic::StreamEncoder::new();
    let mut out = Vec::new();
    for ev in events {
        enc.encode(ev, &mut out);
    }
    enc.finish(&mut out);
    out
}

fn check<D: Decoder>(events: &[switchyard::dialects::sse::SseEvent], include_usage: bool) {
    let (canonical, _clean) = decode_all::<D>(events);
    let expected = transcript(&canonical);

    let out = frames(&encode_openai(&canonical, include_usage));
    let (again, _) = decode_all::<openai::StreamDecoder>(&out);
    assert_eq!(
        transcript(&again),
        expected,
        "OpenAI encode/decode lost content"
    );

    let out = frames(&encode_anthropic(&canonical));
    let (again, _) = decode_all::<anthropic::StreamDecoder>(&out);
    assert_eq!(
        transcript(&again),
        expected,
        "Anthropic encode/decode lost content"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let Some(events) = sse_events(seed, body, MAX_EVENT_BYTES) else {
        return;
    };
    check::<openai::StreamDecoder>(&events, seed & 1 == 1);
    check::<anthropic::StreamDecoder>(&events, seed & 1 == 1);
    check::<gemini::StreamDecoder>(&events, seed & 1 == 1);
});
