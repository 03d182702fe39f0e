//! The SSE parser and frame writer.
//!
//! Invariants: nothing panics; the events do not depend on how the bytes were chunked;
//! once the size limit is exceeded every later call fails; and a frame written by
//! `write_event` parses back to its event name and data (line breaks normalized to `\n`).
//!
//! Input: one byte that picks the chunk sizes, then the stream. For the writer, the stream
//! read as text is `name<TAB>data`, or just `data` without a tab.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::dialects::sse::{write_comment, write_event, SseEvent, SseParser};
use switchyard_fuzz::chunks;

/// Dispatched events, then what `finish` reports.
fn parse(pieces: &[&[u8]]) -> (Vec<SseEvent>, Option<SseEvent>) {
    let mut parser = SseParser::new(usize::MAX);
    let mut events = Vec::new();
    for piece in pieces {
        events.extend(parser.push(piece).expect("no limit to exceed"));
    }
    let last = parser.finish().expect("no limit to exceed");
    (events, last)
}

fn limited(seed: u8, body: &[u8]) {
    let mut parser = SseParser::new(usize::from(seed) * 4);
    for piece in chunks(seed, body) {
        if parser.push(piece).is_err() {
            assert!(
                parser.push(b"data: x\n\n").is_err(),
                "a failed parser recovered"
            );
            assert!(parser.finish().is_err(), "a failed parser finished cleanly");
            return;
        }
    }
    let _ = parser.finish();
}

fn write_round_trip(body: &[u8]) {
    let text = String::from_utf8_lossy(body);
    let (name, data) = match text.split_once('\t') {
        Some((name, data)) => (Some(name), data),
        None => (None, &*text),
    };
    let mut out = Vec::new();
    write_event(&mut out, name, data);
    write_comment(&mut out, data);
    let expected = SseEvent {
        event: name
            .map(|n| n.replace(['\r', '\n'], ""))
            .filter(|n| !n.is_empty()),
        data: data.replace("\r\n", "\n").replace('\r', "\n"),
    };
    assert_eq!(parse(&[&out]), (vec![expected], None));
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    assert_eq!(
        parse(&[body]),
        parse(&chunks(seed, body)),
        "chunking changed the events"
    );
    limited(seed, body);
    write_round_trip(body);
});
