//! Reversible redaction: findings become typed placeholders (`<EMAIL_1>`), and a [`Restorer`]
//! puts the originals back into the answer, streamed or whole.

use crate::classify::{Category, Finding};
use std::collections::HashMap;
use std::fmt;

/// Placeholder ↔ original, for one request only. Its `Debug` never shows the originals.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedactionMap {
    /// `(placeholder, original, category)` in order of first appearance.
    entries: Vec<(String, String, Category)>,
}

impl fmt::Debug for RedactionMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|(p, _, _)| p))
            .finish()
    }
}

impl RedactionMap {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Placeholders, in order of first appearance.
    pub fn placeholders(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(p, _, _)| p.as_str())
    }
    /// Categories that were redacted (sorted, unique).
    pub fn categories(&self) -> Vec<Category> {
        let mut c: Vec<Category> = self.entries.iter().map(|(_, _, c)| *c).collect();
        c.sort();
        c.dedup();
        c
    }
    /// The original text behind a placeholder.
    pub fn original(&self, placeholder: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _, _)| p == placeholder)
            .map(|(_, o, _)| o.as_str())
    }
}

/// Redacted segments and the map to undo it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redacted {
    pub segments: Vec<String>,
    pub map: RedactionMap,
}

/// Placeholder type from a finding kind: `email` → `EMAIL`, `credit-card` → `CREDIT_CARD`.
fn type_name(kind: &str) -> String {
    let mut s: String = kind
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    s = s.trim_matches('_').to_string();
    if s.is_empty() {
        "REDACTED".to_string()
    } else {
        s
    }
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// Replaces every finding whose category is in `categories` by a typed placeholder. Uses the
/// findings' segment offsets (`segment`, `seg_start`, `seg_end`); offsets inside a character
/// widen to cover it (never narrow), overlapping findings merge into one placeholder, the same
/// original gets the same placeholder, and a placeholder that already occurs in the input is
/// skipped so that restoring cannot invent text.
pub fn redact(segments: &[&str], findings: &[Finding], categories: &[Category]) -> Redacted {
    // Spans per segment: (start, end, kind, category).
    let mut spans: Vec<Vec<(usize, usize, &str, Category)>> = vec![Vec::new(); segments.len()];
    for f in findings {
        if !categories.contains(&f.category) {
            continue;
        }
        let Some(seg) = segments.get(f.segment) else {
            continue;
        };
        let start = floor_boundary(seg, f.seg_start.min(f.seg_end));
        let end = ceil_boundary(seg, f.seg_end.max(f.seg_start));
        if start < end {
            spans[f.segment].push((start, end, &f.kind, f.category));
        }
    }
    let mut map = RedactionMap::default();
    let mut by_original: HashMap<String, usize> = HashMap::new();
    let mut counters: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(segments.len());
    for (si, seg) in segments.iter().enumerate() {
        let list = &mut spans[si];
        // Longest first at equal start, so a merged span is named after its widest finding.
        list.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        let mut merged: Vec<(usize, usize, &str, Category)> = Vec::new();
        for s in list.iter() {
            match merged.last_mut() {
                Some(m) if s.0 < m.1 => m.1 = m.1.max(s.1),
                _ => merged.push(*s),
            }
        }
        let mut text = String::with_capacity(seg.len());
        let mut pos = 0;
        for (start, end, kind, cat) in merged {
            text.push_str(&seg[pos..start]);
            let original = &seg[start..end];
            let idx = match by_original.get(original) {
                Some(i) => *i,
                None => {
                    let ty = type_name(kind);
                    let n = counters.entry(ty.clone()).or_insert(0);
                    let placeholder = loop {
                        *n += 1;
                        let p = format!("<{ty}_{n}>");
                        if !segments.iter().any(|s| s.contains(&p)) {
                            break p;
                        }
                    };
                    map.entries.push((placeholder, original.to_string(), cat));
                    by_original.insert(original.to_string(), map.entries.len() - 1);
                    map.entries.len() - 1
                }
            };
            text.push_str(&map.entries[idx].0);
            pos = end;
        }
        text.push_str(&seg[pos..]);
        out.push(text);
    }
    Redacted { segments: out, map }
}

/// Restores originals in an answer that arrives in chunks. It holds back only a tail that could
/// still become a placeholder (at most the longest placeholder's length), so output is delayed
/// by a few bytes at most and the buffer stays bounded.
#[derive(Debug, Clone)]
pub struct Restorer {
    /// `(placeholder, original)`, sorted by placeholder.
    pairs: Vec<(String, String)>,
    pending: String,
}

impl Restorer {
    pub fn new(map: &RedactionMap) -> Self {
        let mut pairs: Vec<(String, String)> = map
            .entries
            .iter()
            .map(|(p, o, _)| (p.clone(), o.clone()))
            .collect();
        pairs.sort();
        Restorer {
            pairs,
            pending: String::new(),
        }
    }

    /// Feeds a chunk; returns the text that is safe to send now.
    pub fn push(&mut self, chunk: &str) -> String {
        if self.pairs.is_empty() {
            return chunk.to_string();
        }
        self.pending.push_str(chunk);
        let buf = std::mem::take(&mut self.pending);
        let (out, rest) = self.scan(&buf, false);
        self.pending = buf[rest..].to_string();
        out
    }

    /// Flushes what is held back at the end of the answer.
    pub fn finish(mut self) -> String {
        let buf = std::mem::take(&mut self.pending);
        self.scan(&buf, true).0
    }

    /// Restores a whole text (same result as any chunking through `push` + `finish`).
    pub fn restore(&self, text: &str) -> String {
        if self.pairs.is_empty() {
            return text.to_string();
        }
        self.scan(text, true).0
    }

    /// Returns the restored text and the offset where the held-back tail starts.
    fn scan(&self, buf: &str, at_end: bool) -> (String, usize) {
        let mut out = String::with_capacity(buf.len());
        let mut pos = 0;
        while let Some(off) = buf[pos..].find('<') {
            let i = pos + off;
            out.push_str(&buf[pos..i]);
            let rest = &buf[i..];
            if let Some((p, o)) = self
                .pairs
                .iter()
                .find(|(p, _)| rest.starts_with(p.as_str()))
            {
                out.push_str(o);
                pos = i + p.len();
            } else if !at_end && self.pairs.iter().any(|(p, _)| p.starts_with(rest)) {
                return (out, i);
            } else {
                out.push('<');
                pos = i + 1;
            }
        }
        out.push_str(&buf[pos..]);
        (out, buf.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn finding(cat: Category, kind: &str, seg: usize, s: usize, e: usize) -> Finding {
        Finding {
            category: cat,
            detector: crate::classify::Detector::Rule,
            kind: kind.to_string().into(),
            start: s,
            end: e,
            segment: seg,
            seg_start: s,
            seg_end: e,
            confidence: 0.9,
        }
    }

    #[test]
    fn typed_numbered_placeholders_reuse_same_value() {
        let seg = "mail a@x.io and b@y.io, again a@x.io; card 4111111111111111";
        let f = vec![
            finding(Category::Pii, "email", 0, 5, 11),
            finding(Category::Pii, "email", 0, 16, 22),
            finding(Category::Pii, "email", 0, 30, 36),
            finding(Category::Financial, "credit_card", 0, 43, 59),
        ];
        let r = redact(&[seg], &f, &[Category::Pii, Category::Financial]);
        assert_eq!(
            r.segments[0],
            "mail <EMAIL_1> and <EMAIL_2>, again <EMAIL_1>; card <CREDIT_CARD_1>"
        );
        assert_eq!(r.map.original("<EMAIL_2>"), Some("b@y.io"));
        assert_eq!(Restorer::new(&r.map).restore(&r.segments[0]), seg);
        // Debug never shows the originals.
        assert!(!format!("{:?}", r.map).contains("a@x.io"));
    }

    #[test]
    fn only_chosen_categories_and_overlaps_merge() {
        let seg = "John Smith lives at 1 Main St";
        let f = vec![
            finding(Category::Pii, "person", 0, 0, 10),
            finding(Category::Pii, "name", 0, 5, 10),
            finding(Category::Confidential, "address", 0, 20, 29),
        ];
        let r = redact(&[seg], &f, &[Category::Pii]);
        assert_eq!(r.segments[0], "<PERSON_1> lives at 1 Main St");
        assert_eq!(r.map.categories(), vec![Category::Pii]);
    }

    #[test]
    fn placeholder_already_in_input_is_skipped_and_offsets_widen() {
        let seg = "<EMAIL_1> é@x.io";
        // seg_start points inside 'é' (2 bytes at 10..12): widens to 10.
        let f = vec![finding(Category::Pii, "email", 0, 11, 17)];
        let r = redact(&[seg], &f, &[Category::Pii]);
        assert_eq!(r.segments[0], "<EMAIL_1> <EMAIL_2>");
        assert_eq!(
            Restorer::new(&r.map).restore(&r.segments[0]),
            "<EMAIL_1> é@x.io"
        );
    }

    #[test]
    fn split_placeholder_across_chunks() {
        let seg = "to a@x.io";
        let r = redact(
            &[seg],
            &[finding(Category::Pii, "email", 0, 3, 9)],
            &[Category::Pii],
        );
        let mut s = Restorer::new(&r.map);
        let mut out = s.push("Hi <EM");
        assert_eq!(out, "Hi ");
        out.push_str(&s.push("AIL_1> and <b>x</b> <EMAIL_"));
        out.push_str(&s.finish());
        assert_eq!(out, "Hi a@x.io and <b>x</b> <EMAIL_");
    }

    proptest! {
        #[test]
        fn streaming_restore_equals_whole_restore(
            parts in prop::collection::vec(prop_oneof![
                Just("<EMAIL_1>".to_string()),
                Just("<EMAIL_12>".to_string()),
                Just("<PERSON_1>".to_string()),
                Just("<".to_string()),
                Just("<EMA".to_string()),
                Just("é".to_string()),
                "[a-z <>_0-9]{0,6}",
            ], 0..12),
            cuts in prop::collection::vec(0usize..64, 0..8),
        ) {
            let text: String = parts.concat();
            let mut map = RedactionMap::default();
            map.entries.push(("<EMAIL_1>".into(), "a@x.io".into(), Category::Pii));
            map.entries.push(("<EMAIL_12>".into(), "b<@y.io".into(), Category::Pii));
            map.entries.push(("<PERSON_1>".into(), "Ann".into(), Category::Pii));
            let whole = Restorer::new(&map).restore(&text);
            let mut cuts: Vec<usize> = cuts.into_iter()
                .map(|c| floor_boundary(&text, c.min(text.len())))
                .collect();
            cuts.push(text.len());
            cuts.sort();
            let mut s = Restorer::new(&map);
            let mut streamed = String::new();
            let mut prev = 0;
            for c in cuts {
                streamed.push_str(&s.push(&text[prev..c]));
                prop_assert!(s.pending.len() <= "<EMAIL_12>".len());
                prev = c;
            }
            streamed.push_str(&s.finish());
            prop_assert_eq!(streamed, whole);
        }
    }
}
