//! Helpers shared by the fuzz targets: splitting input into chunks the way a network
//! would, and driving a stream decoder the way `providers::http` does.

use switchyard::canonical::StreamEvent;
use switchyard::dialects::sse::{SseEvent, SseParser};
use switchyard::dialects::{anthropic, gemini, openai};

/// `body` cut into chunks of 1 to 16 bytes, the sizes drawn from `seed`, so one input
/// exercises splits inside `\r\n` pairs, UTF-8 sequences and field names.
pub fn chunks(seed: u8, body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut state = u32::from(seed) | 1;
    let mut rest = body;
    while !rest.is_empty() {
        // xorshift: cheap, deterministic, and covers every size.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 16 + 1) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The events of an upstream body fed in `chunks`, plus the unterminated final event the
/// gateway still hands to the decoder (a lenient `data: [DONE]` without its blank line).
/// `None` when the parser rejects the stream.
pub fn sse_events(seed: u8, body: &[u8], max_event_bytes: usize) -> Option<Vec<SseEvent>> {
    let mut parser = SseParser::new(max_event_bytes);
    let mut events = Vec::new();
    for chunk in chunks(seed, body) {
        events.extend(parser.push(chunk).ok()?);
    }
    events.extend(parser.finish().ok()?);
    Some(events)
}

/// Both dialects' upstream stream decoders behind one interface.
pub trait Decoder: Default {
    fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String>;
    fn finish(&mut self) -> Result<Vec<StreamEvent>, String>;
    fn is_done(&self) -> bool;
}

macro_rules! decoder {
    ($t:ty) => {
        impl Decoder for $t {
            fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
                <$t>::decode(self, ev)
            }
            fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
                <$t>::finish(self)
            }
            fn is_done(&self) -> bool {
                <$t>::is_done(self)
            }
        }
    };
}
decoder!(openai::StreamDecoder);
decoder!(anthropic::StreamDecoder);
decoder!(gemini::StreamDecoder);

/// Canonical events decoded from `events` until the decoder is done or fails, then its
/// end-of-body check, as `providers::http::StreamState` does. Returns the events that
/// reached the client and whether the stream ended cleanly.
pub fn decode_all<D: Decoder>(events: &[SseEvent]) -> (Vec<StreamEvent>, bool) {
    let mut decoder = D::default();
    let mut out = Vec::new();
    for ev in events {
        if decoder.is_done() {
            break;
        }
        match decoder.decode(ev) {
            Ok(evs) => out.extend(evs),
            Err(_) => return (out, false),
        }
    }
    match decoder.finish() {
        Ok(evs) => {
            out.extend(evs);
            (out, true)
        }
        Err(_) => (out, false),
    }
}

/// All streamed text, and all streamed tool-call arguments, each concatenated in order:
/// what a client accumulates from a stream.
pub fn transcript(events: &[StreamEvent]) -> (String, String) {
    let mut text = String::new();
    let mut args = String::new();
    for ev in events {
        match ev {
            StreamEvent::TextDelta { text: t, .. } => text.push_str(t),
            StreamEvent::ToolCallDelta { arguments, .. } => args.push_str(arguments),
            _ => {}
        }
    }
    (text, args)
}
