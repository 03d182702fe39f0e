//! Server-sent events (`text/event-stream`): an incremental, bounded parser for
//! upstream streams and a frame writer for client streams.
//!
//! The parser follows the WHATWG "event stream interpretation" rules closely enough for
//! LLM APIs: `data` lines are joined with `\n`, `event` sets the type, `id` and `retry`
//! are accepted but ignored (no reconnection happens through this gateway), comments
//! and unknown fields are dropped, and a blank line dispatches.

/// One dispatched event. `event` is `None` when the stream gave no (or an empty)
/// `event:` field, which the spec calls type "message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// The event being assembled (its unfinished line plus the fields gathered so far)
    /// grew past the limit. The parser stays in this state: an upstream that sends an
    /// unbounded event must not make us buffer it, and resuming mid-event would yield
    /// garbage.
    #[error("server-sent event exceeds the limit of {limit} bytes")]
    EventTooLarge { limit: usize },
}

/// Incremental `text/event-stream` parser.
///
/// Bytes may be split anywhere, including inside a `\r\n` pair or a UTF-8 sequence:
/// lines are only cut at `\r`/`\n` bytes, which never occur inside multi-byte UTF-8,
/// and are decoded once complete (invalid UTF-8 becomes U+FFFD, as the spec requires).
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    line: Vec<u8>,
    event_type: String,
    data: String,
    has_data: bool,
    /// The previous chunk ended with `\r`; a leading `\n` in the next chunk belongs to
    /// the same line ending.
    after_cr: bool,
    /// Still before the first line, where a UTF-8 BOM is to be skipped.
    at_stream_start: bool,
    poisoned: bool,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            event_type: String::new(),
            data: String::new(),
            has_data: false,
            after_cr: false,
            at_stream_start: true,
            poisoned: false,
        }
    }

    /// Feeds bytes and returns the events they completed, in order.
    ///
    /// On `Err` the stream must be abandoned: events completed earlier in the same chunk
    /// are not returned, and every later call fails the same way.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        if self.poisoned {
            return Err(self.too_large());
        }
        let mut events = Vec::new();
        let mut rest = chunk;
        if self.after_cr {
            if let Some((&b'\n', tail)) = rest.split_first() {
                rest = tail;
            }
            if !chunk.is_empty() {
                self.after_cr = false;
            }
        }
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.extend_line(&rest[..pos])?;
                    let ending = rest[pos];
                    rest = &rest[pos + 1..];
                    if ending == b'\r' {
                        match rest.first() {
                            Some(b'\n') => rest = &rest[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    let line = std::mem::take(&mut self.line);
                    if let Some(ev) = self.process_line(&line) {
                        events.push(ev);
                    }
                    self.check_size()?;
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(events)
    }

    /// Ends the stream.
    ///
    /// - `Ok(None)`: the stream ended on an event boundary (or only comments / ignored
    ///   fields were pending): a clean end.
    /// - `Ok(Some(ev))`: the stream ended in the middle of an event that had data (an
    ///   unterminated final line counts as a line). Per the spec this event is *not*
    ///   dispatched; it is returned only so callers can detect the truncation and, if
    ///   they choose to be lenient (e.g. a final `data: [DONE]` without its blank
    ///   line), inspect it. Spec-strict callers treat `Some` as "truncated" and drop it.
    /// - `Err`: the parser had already failed (see [`SseParser::push`]).
    ///
    /// The parser is reset afterwards and may be reused for a new stream.
    pub fn finish(&mut self) -> Result<Option<SseEvent>, SseError> {
        if self.poisoned {
            return Err(self.too_large());
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            // A blank line cannot be pending here, so this never dispatches.
            let _ = self.process_line(&line);
        }
        let pending = if self.has_data {
            Some(SseEvent {
                event: non_empty(&self.event_type),
                data: std::mem::take(&mut self.data),
            })
        } else {
            None
        };
        *self = SseParser::new(self.max_event_bytes);
        Ok(pending)
    }

    fn too_large(&self) -> SseError {
        SseError::EventTooLarge {
            limit: self.max_event_bytes,
        }
    }

    fn pending_bytes(&self) -> usize {
        self.line.len() + self.data.len() + self.event_type.len()
    }

    fn check_size(&mut self) -> Result<(), SseError> {
        if self.pending_bytes() > self.max_event_bytes {
            self.poisoned = true;
            self.line = Vec::new();
            self.data = String::new();
            self.event_type = String::new();
            return Err(self.too_large());
        }
        Ok(())
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        // Check before copying so one huge chunk cannot make us allocate past the limit.
        if self.pending_bytes().saturating_add(bytes.len()) > self.max_event_bytes {
            self.poisoned = true;
            self.line = Vec::new();
            self.data = String::new();
            self.event_type = String::new();
            return Err(self.too_large());
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn process_line(&mut self, raw: &[u8]) -> Option<SseEvent> {
        let mut line: &[u8] = raw;
        if self.at_stream_start {
            self.at_stream_start = false;
            if let Some(tail) = line.strip_prefix(b"\xEF\xBB\xBF") {
                line = tail;
            }
        }
        if line.is_empty() {
            return self.dispatch();
        }
        if line[0] == b':' {
            return None;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(pos) => {
                let value = &line[pos + 1..];
                (&line[..pos], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => self.event_type = String::from_utf8_lossy(value).into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            // `id`, `retry` and unknown fields only matter for reconnection, which we
            // never do.
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event_type = std::mem::take(&mut self.event_type);
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(SseEvent {
            event: non_empty(&event_type),
            data: std::mem::take(&mut self.data),
        })
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Appends one SSE frame: an optional `event:` line, one `data:` line per line of
/// `data` (split on `\r\n`, `\r` or `\n`, so a parser joins them back with `\n`), and
/// the blank line that dispatches it.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        // A line break in the name would end the field and inject a new one.
        for piece in name.split(['\r', '\n']) {
            out.extend_from_slice(piece.as_bytes());
        }
        out.push(b'\n');
    }
    let normalized;
    let data = if data.contains('\r') {
        normalized = data.replace("\r\n", "\n").replace('\r', "\n");
        normalized.as_str()
    } else {
        data
    };
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

/// Appends an SSE comment frame, which clients ignore; used as a keep-alive.
pub fn write_comment(out: &mut Vec<u8>, text: &str) {
    for line in text.split(['\r', '\n']) {
        out.extend_from_slice(b": ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_all(chunks: &[&[u8]]) -> (Vec<SseEvent>, Option<SseEvent>) {
        let mut p = SseParser::new(1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.push(c).unwrap());
        }
        (out, p.finish().unwrap())
    }

    #[test]
    fn basic_fields_comments_and_line_endings() {
        let input = b": comment\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
id: 7\nretry: 100\ndata:x\ndata\ndata:  two spaces\n\n\rdata: cr\r\r";
        let (events, rest) = parse_all(&[input]);
        assert_eq!(
            events,
            vec![
                ev(Some("message_start"), "{\"a\":1}"),
                ev(None, "x\n\n two spaces"),
                ev(None, "cr"),
            ]
        );
        assert_eq!(rest, None);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_type_resets() {
        let (events, _) = parse_all(&[b"event: ping\n\ndata: d\n\n"]);
        assert_eq!(events, vec![ev(None, "d")]);
    }

    #[test]
    fn empty_data_field_dispatches_empty_string() {
        let (events, _) = parse_all(&[b"data:\n\n"]);
        assert_eq!(events, vec![ev(None, "")]);
    }

    #[test]
    fn crlf_and_utf8_split_across_chunks() {
        let text = "data: h\u{e9}llo \u{1F600}\r\n\r\n".as_bytes();
        for split in 0..text.len() {
            let (events, rest) = parse_all(&[&text[..split], &text[split..]]);
            assert_eq!(
                events,
                vec![ev(None, "h\u{e9}llo \u{1F600}")],
                "split {split}"
            );
            assert_eq!(rest, None);
        }
        // `\r` at the end of one chunk and `\n` at the start of the next is one line end.
        let (events, _) = parse_all(&[b"data: a\r", b"\ndata: b\n\n"]);
        assert_eq!(events, vec![ev(None, "a\nb")]);
    }

    #[test]
    fn bom_is_skipped_once() {
        let (events, _) = parse_all(&[b"\xEF\xBB", b"\xBFdata: a\n\n"]);
        assert_eq!(events, vec![ev(None, "a")]);
    }

    #[test]
    fn finish_reports_unterminated_event() {
        let (events, rest) = parse_all(&[b"data: a\n\ndata: [DONE]"]);
        assert_eq!(events, vec![ev(None, "a")]);
        assert_eq!(rest, Some(ev(None, "[DONE]")));
        let (_, rest) = parse_all(&[b"event: x\ndata: y\n"]);
        assert_eq!(rest, Some(ev(Some("x"), "y")));
        let (_, rest) = parse_all(&[b"data: a\n\n: trailing comment"]);
        assert_eq!(rest, None);
    }

    #[test]
    fn oversized_event_is_an_error_and_sticks() {
        let mut p = SseParser::new(16);
        assert_eq!(p.push(b"data: 0123456789\n\n").unwrap().len(), 1);
        let err = p.push(b"data: 0123456789abcdef").unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { limit: 16 });
        assert!(p.push(b"\n\n").is_err());
        assert!(p.finish().is_err());
        // Many small lines add up, too.
        let mut p = SseParser::new(16);
        assert!(p.push(b"data: 12345\ndata: 12345\ndata: 12345\n").is_err());
    }

    #[test]
    fn write_event_frames_multiline_data() {
        let mut out = Vec::new();
        write_event(&mut out, Some("ping"), "{\"type\":\"ping\"}");
        write_event(&mut out, None, "a\nb\r\nc");
        write_comment(&mut out, "keep-alive");
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "event: ping\ndata: {\"type\":\"ping\"}\n\ndata: a\ndata: b\ndata: c\n\n: keep-alive\n\n"
        );
        let (events, _) = parse_all(&[&out]);
        assert_eq!(
            events,
            vec![ev(Some("ping"), "{\"type\":\"ping\"}"), ev(None, "a\nb\nc")]
        );
    }

    fn chunked(
        input: &[u8],
        cuts: &[usize],
    ) -> Result<(Vec<SseEvent>, Option<SseEvent>), SseError> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut p = SseParser::new(64);
        let mut out = Vec::new();
        let mut start = 0;
        for cut in cuts.into_iter().chain(std::iter::once(input.len())) {
            out.extend(p.push(&input[start..cut])?);
            start = cut;
        }
        Ok((out, p.finish()?))
    }

    fn sse_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"event: ".to_vec()),
            Just(b":".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just("\u{e9}\u{1F600}".as_bytes().to_vec()),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn parser_is_chunking_independent(
            input in prop_oneof![sse_like_bytes(), proptest::collection::vec(any::<u8>(), 0..300)],
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let whole = chunked(&input, &[]);
            let split = chunked(&input, &cuts);
            match (whole, split) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
                (Err(a), Err(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "whole {:?} vs split {:?}", a, b),
            }
        }

        #[test]
        fn written_events_parse_back(
            frames in proptest::collection::vec(
                (proptest::option::of("[a-z_]{1,12}"), "[^\r]{0,40}"), 0..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let mut out = Vec::new();
            for (name, data) in &frames {
                write_event(&mut out, name.as_deref(), data);
            }
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (out.len() + 1)).collect();
            cuts.sort_unstable();
            let mut p = SseParser::new(1 << 16);
            let mut got = Vec::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain(std::iter::once(out.len())) {
                got.extend(p.push(&out[start..cut]).unwrap());
                start = cut;
            }
            prop_assert_eq!(p.finish().unwrap(), None);
            let want: Vec<SseEvent> = frames
                .iter()
                .map(|(n, d)| SseEvent { event: n.clone(), data: d.clone() })
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
