//! Bedrock ConverseStream bodies: arbitrary bytes, cut into arbitrary chunks, through the
//! event-stream frame reader (prelude, headers, CRCs by `aws-smithy-eventstream`) and the
//! Converse stream decoder.
//!
//! Invariants: nothing panics; the frames do not depend on how the body was chunked; a
//! frame over the size limit is an error, never a buffer that grows; and the canonical
//! events are well formed (one `Start` first, at most one `Finish`, last).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::canonical::StreamEvent;
use switchyard::dialects::bedrock::{FrameReader, StreamDecoder};
use switchyard_fuzz::chunks;

const MAX_FRAME_BYTES: usize = 64 * 1024;

fn frames(seed: u8, body: &[u8]) -> Result<Vec<switchyard::dialects::bedrock::Frame>, String> {
    let mut reader = FrameReader::new(MAX_FRAME_BYTES);
    let mut out = Vec::new();
    for chunk in chunks(seed, body) {
        out.extend(reader.push(chunk)?);
    }
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut reader = FrameReader::new(MAX_FRAME_BYTES);
        reader.push(body)
    };
    let chunked = frames(seed, body);
    match (&whole, &chunked) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "frames depend on chunking"),
        (Err(_), Err(_)) => {}
        // A body that fails whole may still yield frames before the bad one when chunked,
        // and the reverse cannot happen: both readers see the same bytes in order.
        (Err(_), Ok(_)) | (Ok(_), Err(_)) => panic!("whole {whole:?} vs chunked {chunked:?}"),
    }
    let Ok(frames) = chunked else {
        return;
    };
    let mut decoder = StreamDecoder::new("id".into(), "model");
    let mut events = Vec::new();
    for f in &frames {
        if decoder.is_done() {
            break;
        }
        match decoder.decode(f) {
            Ok(ev) => events.extend(ev),
            Err(_) => return,
        }
    }
    if let Ok(ev) = decoder.finish() {
        events.extend(ev);
    }
    let starts = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Start { .. }))
        .count();
    let finishes = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Finish { .. }))
        .count();
    if !events.is_empty() {
        assert!(matches!(events[0], StreamEvent::Start { .. }), "{events:?}");
        assert_eq!(starts, 1, "{events:?}");
    }
    assert!(finishes <= 1, "{events:?}");
    if finishes == 1 {
        assert!(
            matches!(events.last(), Some(StreamEvent::Finish { .. })),
            "{events:?}"
        );
    }
});
