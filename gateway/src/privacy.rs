//! Where classification meets the canonical request: the texts a model reads (with
//! their place in the request, so redaction can rewrite them) and reversible redaction
//! (placeholders out, originals restored in the answer — streaming included).

use std::collections::HashMap;

use futures::StreamExt;
use policies::policy::{redact, RedactionMap, Restorer};
use policies::{Category, Finding, SegmentRole};

use crate::canonical::EventStream;
use crate::canonical::{ChatRequest, ChatResponse, ContentPart, Role, StreamEvent};

/// Where a text lives in a request: message, part, and for tool results the inner part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextLoc {
    pub message: usize,
    pub part: usize,
    pub inner: Option<usize>,
}

/// Every text a model would read, in order, with its role and place. The classifier's
/// segment indices are indices into this list.
pub fn text_segments(req: &ChatRequest) -> Vec<(SegmentRole, &str, TextLoc)> {
    let mut out = Vec::new();
    for (mi, m) in req.messages.iter().enumerate() {
        let role = match m.role {
            Role::System => SegmentRole::System,
            Role::User => SegmentRole::User,
            Role::Assistant => SegmentRole::Assistant,
        };
        for (pi, part) in m.content.iter().enumerate() {
            let loc = TextLoc {
                message: mi,
                part: pi,
                inner: None,
            };
            match part {
                ContentPart::Text { text, .. } => out.push((role, text.as_str(), loc)),
                ContentPart::ToolCall { arguments, .. } => {
                    out.push((SegmentRole::Assistant, arguments.as_str(), loc))
                }
                ContentPart::ToolResult { content, .. } => {
                    for (ii, inner) in content.iter().enumerate() {
                        if let ContentPart::Text { text, .. } = inner {
                            let loc = TextLoc {
                                inner: Some(ii),
                                ..loc
                            };
                            out.push((SegmentRole::Tool, text.as_str(), loc));
                        }
                    }
                }
                // Scanned like any text the backend reads; redaction cannot rewrite
                // it (see `redact_request`).
                ContentPart::Thinking { thinking, .. } => {
                    out.push((SegmentRole::Assistant, thinking.as_str(), loc))
                }
                ContentPart::Image { .. } | ContentPart::RedactedThinking { .. } => {}
            }
        }
    }
    out
}

fn text_at_mut(req: &mut ChatRequest, loc: TextLoc) -> Option<&mut String> {
    let part = req
        .messages
        .get_mut(loc.message)?
        .content
        .get_mut(loc.part)?;
    match (part, loc.inner) {
        (ContentPart::Text { text, .. }, None) => Some(text),
        (ContentPart::ToolCall { arguments, .. }, None) => Some(arguments),
        (ContentPart::ToolResult { content, .. }, Some(i)) => match content.get_mut(i)? {
            ContentPart::Text { text, .. } => Some(text),
            _ => None,
        },
        _ => None,
    }
}

fn is_thinking(req: &ChatRequest, loc: TextLoc) -> bool {
    matches!(
        req.messages
            .get(loc.message)
            .and_then(|m| m.content.get(loc.part)),
        Some(ContentPart::Thinking { .. })
    )
}

/// The redaction applied to one request; lives only as long as the request.
pub struct Redaction {
    pub map: RedactionMap,
}

impl Redaction {
    pub fn count(&self) -> usize {
        self.map.len()
    }

    /// Restores originals in a complete answer.
    pub fn restore_response(&self, response: &mut ChatResponse) {
        let restorer = Restorer::new(&self.map);
        for part in &mut response.content {
            match part {
                ContentPart::Text { text, .. } => *text = restorer.restore(text),
                ContentPart::ToolCall { arguments, .. } => *arguments = restorer.restore(arguments),
                _ => {}
            }
        }
    }

    /// Restores originals in a streamed answer. A placeholder may be split across
    /// chunks, so each content part has its own restorer that holds back a possible
    /// placeholder prefix and flushes it when the part ends.
    pub fn restore_stream(&self, events: EventStream) -> EventStream {
        let template = Restorer::new(&self.map);
        let mut restorers: HashMap<u32, Restorer> = HashMap::new();
        let flush_all = |restorers: &mut HashMap<u32, Restorer>,
                         out: &mut Vec<StreamEvent>,
                         kinds: &HashMap<u32, bool>| {
            let mut pending: Vec<(u32, Restorer)> = restorers.drain().collect();
            pending.sort_by_key(|(i, _)| *i);
            for (index, r) in pending {
                let rest = r.finish();
                if rest.is_empty() {
                    continue;
                }
                if kinds.get(&index).copied().unwrap_or(false) {
                    out.push(StreamEvent::ToolCallDelta {
                        index,
                        arguments: rest,
                    });
                } else {
                    out.push(StreamEvent::TextDelta { index, text: rest });
                }
            }
        };
        let mut is_tool: HashMap<u32, bool> = HashMap::new();
        let mut current: Option<u32> = None;
        let stream = events.flat_map(move |item| {
            let mut out: Vec<Result<StreamEvent, crate::canonical::GatewayError>> = Vec::new();
            let mut evs = Vec::new();
            match item {
                Err(e) => {
                    flush_all(&mut restorers, &mut evs, &is_tool);
                    out.extend(evs.into_iter().map(Ok));
                    out.push(Err(e));
                    return futures::stream::iter(out);
                }
                Ok(ev) => {
                    let index = match &ev {
                        StreamEvent::TextDelta { index, .. }
                        | StreamEvent::ToolCallStart { index, .. }
                        | StreamEvent::ToolCallDelta { index, .. }
                        | StreamEvent::ThinkingDelta { index, .. }
                        | StreamEvent::ThinkingSignature { index, .. }
                        | StreamEvent::RedactedThinking { index, .. } => Some(*index),
                        _ => None,
                    };
                    // A new part closes the previous one: flush what it held back first.
                    if index.is_some() && index != current {
                        flush_all(&mut restorers, &mut evs, &is_tool);
                        current = index;
                    }
                    match ev {
                        StreamEvent::TextDelta { index, text } => {
                            let r = restorers.entry(index).or_insert_with(|| template.clone());
                            let text = r.push(&text);
                            if !text.is_empty() {
                                evs.push(StreamEvent::TextDelta { index, text });
                            }
                        }
                        StreamEvent::ToolCallDelta { index, arguments } => {
                            is_tool.insert(index, true);
                            let r = restorers.entry(index).or_insert_with(|| template.clone());
                            let arguments = r.push(&arguments);
                            if !arguments.is_empty() {
                                evs.push(StreamEvent::ToolCallDelta { index, arguments });
                            }
                        }
                        StreamEvent::Finish { .. } => {
                            flush_all(&mut restorers, &mut evs, &is_tool);
                            evs.push(ev);
                        }
                        other => {
                            if let StreamEvent::ToolCallStart { index, .. } = &other {
                                is_tool.insert(*index, true);
                            }
                            evs.push(other);
                        }
                    }
                }
            }
            out.extend(evs.into_iter().map(Ok));
            futures::stream::iter(out)
        });
        Box::pin(stream)
    }
}

/// Replaces findings of `categories` with typed placeholders in the request itself.
/// Returns `None` when nothing was replaced.
pub fn redact_request(
    req: &mut ChatRequest,
    findings: &[Finding],
    categories: &[Category],
) -> Option<Redaction> {
    let (texts, locs): (Vec<String>, Vec<TextLoc>) = text_segments(req)
        .into_iter()
        .map(|(_, t, loc)| (t.to_string(), loc))
        .unzip();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let redacted = redact(&refs, findings, categories);
    if redacted.map.is_empty() {
        return None;
    }
    // A thinking block is signed: rewritten, Anthropic would reject it, so one that holds
    // a finding is dropped instead (fail closed: the data never leaves; Anthropic only
    // insists on the latest turn's thinking inside a tool-use loop, and says so if so).
    let mut dropped: Vec<TextLoc> = Vec::new();
    for ((new_text, loc), old) in redacted.segments.into_iter().zip(locs).zip(&texts) {
        if new_text == *old {
            continue;
        }
        if let Some(slot) = text_at_mut(req, loc) {
            *slot = new_text;
        } else if is_thinking(req, loc) {
            dropped.push(loc);
        }
    }
    for loc in dropped.iter().rev() {
        if let Some(m) = req.messages.get_mut(loc.message) {
            m.content.remove(loc.part);
        }
    }
    Some(Redaction { map: redacted.map })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Dialect, Message, StopReason};
    use policies::{Classifier, ClassifyInput, OrgRules, Segment};

    fn request(texts: &[&str]) -> ChatRequest {
        ChatRequest::new(
            "gpt-4o",
            texts
                .iter()
                .map(|t| Message::text(Role::User, *t))
                .collect(),
            Dialect::OpenAi,
        )
    }

    fn findings(req: &ChatRequest) -> Vec<Finding> {
        let texts = text_segments(req);
        let segs: Vec<Segment<'_>> = texts
            .iter()
            .map(|(role, text, _)| Segment { role: *role, text })
            .collect();
        let classifier = Classifier::new(OrgRules::default()).unwrap();
        classifier
            .classify(&ClassifyInput {
                segments: &segs,
                embedding: None,
            })
            .findings
    }

    #[test]
    fn redaction_rewrites_the_request_and_restores_the_answer() {
        let email = "maria.lopez@brightwave.io";
        let mut req = request(&["hello", &format!("Please email {email} today")]);
        let f = findings(&req);
        let r = redact_request(&mut req, &f, &[Category::Pii]).expect("an email is redacted");
        let sent: Vec<&str> = text_segments(&req).iter().map(|(_, t, _)| *t).collect();
        assert!(!sent.iter().any(|t| t.contains(email)), "{sent:?}");
        let placeholder = r.map.placeholders().next().unwrap().to_string();
        assert!(sent[1].contains(&placeholder));

        let mut response = ChatResponse {
            id: "x".into(),
            model: "m".into(),
            content: vec![ContentPart::text(format!("I wrote to {placeholder}."))],
            stop_reason: StopReason::EndTurn,
            usage: Default::default(),
            created: 0,
        };
        r.restore_response(&mut response);
        assert_eq!(
            response.content[0],
            ContentPart::text(format!("I wrote to {email}."))
        );
    }

    #[test]
    fn signed_thinking_with_a_finding_is_dropped_not_rewritten() {
        let email = "maria.lopez@brightwave.io";
        let mut req = request(&[&format!("Please email {email}")]);
        let thinking = |t: &str| ContentPart::Thinking {
            thinking: t.into(),
            signature: "sig".into(),
        };
        req.messages.push(Message {
            role: Role::Assistant,
            content: vec![
                thinking(&format!("The user wants {email} contacted.")),
                thinking("Plan the reply."),
                ContentPart::text("On it."),
            ],
            name: None,
        });
        let f = findings(&req);
        redact_request(&mut req, &f, &[Category::Pii]).expect("redacted");
        let sent = serde_json::to_string(&req).unwrap();
        assert!(!sent.contains(email), "{sent}");
        // The clean thinking block stays, untouched with its signature.
        assert_eq!(
            req.messages[1].content,
            vec![thinking("Plan the reply."), ContentPart::text("On it.")]
        );
    }

    #[tokio::test]
    async fn streamed_placeholders_split_across_chunks_are_restored() {
        let email = "jonas.berg@example-mail.net";
        let mut req = request(&[&format!("mail {email} now")]);
        let f = findings(&req);
        let r = redact_request(&mut req, &f, &[Category::Pii]).unwrap();
        let placeholder = r.map.placeholders().next().unwrap().to_string();
        let answer = format!("Sent to {placeholder}, done.");
        // Split the answer at every character boundary into 3-byte chunks.
        let chunks: Vec<String> = answer
            .as_bytes()
            .chunks(3)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let mut events = vec![Ok(StreamEvent::Start {
            id: "s".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        })];
        events.extend(
            chunks
                .into_iter()
                .map(|text| Ok(StreamEvent::TextDelta { index: 0, text })),
        );
        events.push(Ok(StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            usage: None,
        }));
        let stream: EventStream = Box::pin(futures::stream::iter(events));
        let out: Vec<_> = r.restore_stream(stream).collect().await;
        let text: String = out
            .iter()
            .filter_map(|e| match e {
                Ok(StreamEvent::TextDelta { text, .. }) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(text, format!("Sent to {email}, done."));
        assert!(matches!(out.last(), Some(Ok(StreamEvent::Finish { .. }))));
    }
}
