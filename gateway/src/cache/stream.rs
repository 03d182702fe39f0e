//! Streams and complete answers, both ways: a cached answer replayed as a stream, and a
//! live stream folded back into a complete answer (to fill the cache, and so that
//! accounting can read the usage).

use crate::canonical::{ChatResponse, ContentPart, StopReason, StreamEvent, Usage};

/// Replayed deltas break after whitespace once they reach this many bytes, so a client
/// sees word-sized pieces as from a live model...
const CHUNK_SOFT_BYTES: usize = 24;
/// ...and never more than this in one delta, even in text without spaces.
const CHUNK_HARD_BYTES: usize = 64;

/// A cached answer as a well-formed stream: `Start` (prompt usage, as Anthropic's
/// `message_start` carries it), text deltas in word-sized chunks, tool-call starts
/// with their argument deltas, thinking deltas with their signature, then `Finish`
/// with the full usage.
///
/// An empty text part still yields one (empty) delta, so the part and its index
/// survive a round trip through [`StreamAccumulator`]. Image and tool-result parts
/// never occur in answers and have no stream form; they are skipped.
pub fn replay_events(resp: &ChatResponse) -> Vec<StreamEvent> {
    let mut out = Vec::with_capacity(resp.content.len() * 4 + 2);
    out.push(StreamEvent::Start {
        id: resp.id.clone(),
        model: resp.model.clone(),
        created: resp.created,
        usage: Some(Usage {
            output_tokens: 0,
            ..resp.usage
        }),
    });
    for (i, part) in resp.content.iter().enumerate() {
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        match part {
            ContentPart::Text { text, .. } => {
                let chunks = chunks(text);
                if chunks.is_empty() {
                    out.push(StreamEvent::TextDelta {
                        index,
                        text: String::new(),
                    });
                }
                out.extend(chunks.into_iter().map(|c| StreamEvent::TextDelta {
                    index,
                    text: c.to_owned(),
                }));
            }
            ContentPart::ToolCall {
                id,
                name,
                arguments,
            } => {
                out.push(StreamEvent::ToolCallStart {
                    index,
                    id: id.clone(),
                    name: name.clone(),
                });
                out.extend(
                    chunks(arguments)
                        .into_iter()
                        .map(|c| StreamEvent::ToolCallDelta {
                            index,
                            arguments: c.to_owned(),
                        }),
                );
            }
            ContentPart::Thinking {
                thinking,
                signature,
            } => {
                out.extend(
                    chunks(thinking)
                        .into_iter()
                        .map(|c| StreamEvent::ThinkingDelta {
                            index,
                            thinking: c.to_owned(),
                        }),
                );
                out.push(StreamEvent::ThinkingSignature {
                    index,
                    signature: signature.clone(),
                });
            }
            ContentPart::RedactedThinking { data } => out.push(StreamEvent::RedactedThinking {
                index,
                data: data.clone(),
            }),
            ContentPart::Image { .. } | ContentPart::ToolResult { .. } => {}
        }
    }
    out.push(StreamEvent::Finish {
        stop_reason: resp.stop_reason.clone(),
        usage: Some(resp.usage),
    });
    out
}

/// Splits on char boundaries: after whitespace once past the soft size, or at the
/// hard size.
fn chunks(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        let len = end - start;
        if (len >= CHUNK_SOFT_BYTES && c.is_whitespace()) || len >= CHUNK_HARD_BYTES {
            out.push(&s[start..end]);
            start = end;
        }
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

/// The most answer text an accumulator holds by default. Past it the answer is not
/// cacheable (and `finish` says so), but usage is still tracked.
pub const DEFAULT_ACCUMULATOR_LIMIT: usize = 8 * 1024 * 1024;

/// Folds a live stream back into the complete answer.
///
/// Push every event as it passes through; `finish` gives the answer only if the stream
/// ended with `Finish` and was well formed, so a truncated or broken stream can never
/// fill the cache. `usage` is readable at any point (for accounting of streams that
/// end early).
#[derive(Debug)]
pub struct StreamAccumulator {
    id: String,
    model: String,
    created: u64,
    started: bool,
    /// Parts in order of first appearance, each with its stream index. Indices are
    /// normally 0, 1, 2…, but a backend may skip some (dropped thinking blocks).
    parts: Vec<(u32, ContentPart)>,
    start_usage: Option<Usage>,
    finish_usage: Option<Usage>,
    stop_reason: Option<StopReason>,
    bytes: usize,
    limit: usize,
    /// Set on anything that would make the rebuilt answer differ from what the client
    /// saw: events after `Finish`, deltas for a part of another kind, or the size limit.
    broken: bool,
}

impl Default for StreamAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamAccumulator {
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_ACCUMULATOR_LIMIT)
    }

    /// `limit` bounds the text and arguments held, in bytes.
    pub fn with_limit(limit: usize) -> Self {
        StreamAccumulator {
            id: String::new(),
            model: String::new(),
            created: 0,
            started: false,
            parts: Vec::new(),
            start_usage: None,
            finish_usage: None,
            stop_reason: None,
            bytes: 0,
            limit,
            broken: false,
        }
    }

    pub fn push(&mut self, ev: &StreamEvent) {
        if self.stop_reason.is_some() && !matches!(ev, StreamEvent::Ping) {
            self.broken = true;
            return;
        }
        match ev {
            StreamEvent::Start {
                id,
                model,
                created,
                usage,
            } => {
                if self.started {
                    self.broken = true;
                    return;
                }
                self.started = true;
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.created = *created;
                self.start_usage = *usage;
            }
            StreamEvent::TextDelta { index, text } => {
                if !self.grow(text.len()) {
                    return;
                }
                match self.part_mut(*index) {
                    Some(ContentPart::Text { text: t, .. }) => t.push_str(text),
                    Some(_) => self.broken = true,
                    None => self.parts.push((*index, ContentPart::text(text.as_str()))),
                }
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                if !self.grow(id.len() + name.len()) {
                    return;
                }
                if self.part_mut(*index).is_some() {
                    self.broken = true;
                    return;
                }
                self.parts.push((
                    *index,
                    ContentPart::ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    },
                ));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if !self.grow(arguments.len()) {
                    return;
                }
                match self.part_mut(*index) {
                    Some(ContentPart::ToolCall { arguments: a, .. }) => a.push_str(arguments),
                    // Arguments for a call that never started: we would have to invent
                    // its id and name.
                    _ => self.broken = true,
                }
            }
            StreamEvent::ThinkingDelta { index, thinking } => {
                if !self.grow(thinking.len()) {
                    return;
                }
                match self.part_mut(*index) {
                    Some(ContentPart::Thinking { thinking: t, .. }) => t.push_str(thinking),
                    Some(_) => self.broken = true,
                    None => self.parts.push((
                        *index,
                        ContentPart::Thinking {
                            thinking: thinking.clone(),
                            signature: String::new(),
                        },
                    )),
                }
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                if !self.grow(signature.len()) {
                    return;
                }
                match self.part_mut(*index) {
                    Some(ContentPart::Thinking { signature: s, .. }) => s.push_str(signature),
                    Some(_) => self.broken = true,
                    // Thinking may be empty (only its signature streams).
                    None => self.parts.push((
                        *index,
                        ContentPart::Thinking {
                            thinking: String::new(),
                            signature: signature.clone(),
                        },
                    )),
                }
            }
            StreamEvent::RedactedThinking { index, data } => {
                if !self.grow(data.len()) {
                    return;
                }
                if self.part_mut(*index).is_some() {
                    self.broken = true;
                    return;
                }
                self.parts
                    .push((*index, ContentPart::RedactedThinking { data: data.clone() }));
            }
            StreamEvent::Ping => {}
            StreamEvent::Finish { stop_reason, usage } => {
                self.stop_reason = Some(stop_reason.clone());
                self.finish_usage = *usage;
            }
        }
    }

    /// The best usage known so far: the final totals once `Finish` carried them, else
    /// the prompt usage from `Start`.
    pub fn usage(&self) -> Option<Usage> {
        self.finish_usage.or(self.start_usage)
    }

    /// Whether the stream has ended with `Finish`.
    pub fn is_finished(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// The complete answer, or `None` if the stream did not end with `Finish`, was
    /// malformed, or outgrew the limit. Usage is zero only if no event carried any.
    pub fn finish(self) -> Option<ChatResponse> {
        let usage = self.usage().unwrap_or_default();
        let stop_reason = self.stop_reason?;
        if self.broken || !self.started {
            return None;
        }
        Some(ChatResponse {
            id: self.id,
            model: self.model,
            content: self.parts.into_iter().map(|(_, p)| p).collect(),
            stop_reason,
            usage,
            created: self.created,
        })
    }

    fn part_mut(&mut self, index: u32) -> Option<&mut ContentPart> {
        // Parts never interleave, so the one being extended is almost always the last.
        self.parts
            .iter_mut()
            .rev()
            .find(|(i, _)| *i == index)
            .map(|(_, p)| p)
    }

    fn grow(&mut self, n: usize) -> bool {
        if self.broken {
            return false;
        }
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limit {
            self.broken = true;
            self.parts = Vec::new();
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(content: Vec<ContentPart>) -> ChatResponse {
        ChatResponse {
            id: "r1".into(),
            model: "m".into(),
            content,
            stop_reason: StopReason::EndTurn,
            usage: Usage {
                input_tokens: 10,
                output_tokens: 5,
                cache_read_input_tokens: 2,
                cache_creation_input_tokens: 0,
            },
            created: 42,
        }
    }

    fn fold(events: &[StreamEvent]) -> StreamAccumulator {
        let mut acc = StreamAccumulator::new();
        for e in events {
            acc.push(e);
        }
        acc
    }

    #[test]
    fn chunks_cover_the_text_on_char_boundaries() {
        let text = "héllo wörld, ".repeat(20) + &"ü".repeat(100);
        let parts = chunks(&text);
        assert!(parts.len() > 5);
        assert_eq!(parts.concat(), text);
        assert!(parts.iter().all(|p| p.len() <= CHUNK_HARD_BYTES));
        assert!(chunks("").is_empty());
    }

    #[test]
    fn thinking_survives_replay_and_folding() {
        let r = resp(vec![
            ContentPart::Thinking {
                thinking: "Let me work this out step by step before answering.".into(),
                signature: "EqQBCgIYAhIM".into(),
            },
            // only a signature streamed (thinking omitted by the API)
            ContentPart::Thinking {
                thinking: String::new(),
                signature: "sig2".into(),
            },
            ContentPart::RedactedThinking {
                data: "opaque".into(),
            },
            ContentPart::text("Paris."),
        ]);
        let events = replay_events(&r);
        assert!(events.iter().any(|e| matches!(e, StreamEvent::ThinkingSignature { index: 1, signature } if signature == "sig2")));
        assert_eq!(fold(&events).finish().expect("complete"), r);
    }

    #[test]
    fn replay_is_a_proper_stream() {
        let r = resp(vec![
            ContentPart::text("The weather in Paris is sunny and warm today, enjoy it."),
            ContentPart::ToolCall {
                id: "c1".into(),
                name: "get_weather".into(),
                arguments: "{\"location\":\"Paris\"}".into(),
            },
        ]);
        let evs = replay_events(&r);
        assert!(
            matches!(&evs[0], StreamEvent::Start { usage: Some(u), .. } if u.output_tokens == 0 && u.input_tokens == 10)
        );
        assert!(
            evs.iter()
                .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
                .count()
                > 1
        );
        assert!(
            matches!(evs.last(), Some(StreamEvent::Finish { usage: Some(u), .. }) if *u == r.usage)
        );
        assert_eq!(fold(&evs).finish(), Some(r));
    }

    #[test]
    fn unfinished_or_broken_streams_give_nothing_but_usage() {
        let r = resp(vec![ContentPart::text("hello there")]);
        let mut evs = replay_events(&r);
        evs.pop();
        let acc = fold(&evs);
        assert_eq!(acc.usage().map(|u| u.input_tokens), Some(10));
        assert_eq!(acc.finish(), None);

        // Arguments for a call that never started.
        let acc = fold(&[
            replay_events(&r)[0].clone(),
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::ToolUse,
                usage: None,
            },
        ]);
        assert_eq!(acc.finish(), None);

        // Over the limit.
        let mut acc = StreamAccumulator::with_limit(4);
        for e in replay_events(&r) {
            acc.push(&e);
        }
        assert_eq!(acc.usage(), Some(r.usage));
        assert_eq!(acc.finish(), None);
    }

    #[test]
    fn skipped_indices_and_pings_are_tolerated() {
        let acc = fold(&[
            StreamEvent::Start {
                id: "x".into(),
                model: "m".into(),
                created: 1,
                usage: None,
            },
            StreamEvent::Ping,
            StreamEvent::TextDelta {
                index: 1,
                text: "a".into(),
            },
            StreamEvent::TextDelta {
                index: 1,
                text: "b".into(),
            },
            StreamEvent::TextDelta {
                index: 3,
                text: "c".into(),
            },
            StreamEvent::Finish {
                stop_reason: StopReason::EndTurn,
                usage: None,
            },
            StreamEvent::Ping,
        ]);
        let r = acc.finish().expect("finished stream");
        assert_eq!(
            r.content,
            vec![ContentPart::text("ab"), ContentPart::text("c")]
        );
        assert_eq!(r.usage, Usage::default());
    }
}
