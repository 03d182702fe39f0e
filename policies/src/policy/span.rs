//! A span index: key paths (`rules[2].route`) to positions, built from a YAML event parser.
//!
//! Typed parsing goes through `serde_yaml_ng::Value`, which forgets positions; this index gives
//! them back so that every error (type errors found by serde and semantic errors found later,
//! such as unknown targets or cycles) can point at a line and column.

use super::error::Pos;
use saphyr_parser::{Event, Parser};
use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: Option<Pos>,
    value: Pos,
}

/// Positions of every node of one YAML document, by path.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    map: HashMap<String, Entry>,
}

enum Frame {
    Map {
        path: String,
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SpanIndex {
    /// Builds the index. A document the event parser rejects yields an empty (or partial) index;
    /// positions then fall back to the nearest known ancestor or the start of the file.
    pub(crate) fn build(text: &str) -> SpanIndex {
        let mut idx = SpanIndex::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut root_done = false;
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let pos = Pos {
                line: span.start.line(),
                column: span.start.col() + 1,
            };
            match event {
                Event::Scalar(value, ..) => {
                    // A scalar is either a mapping key or a value.
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        if key.is_none() {
                            *key = Some((value.to_string(), pos));
                            continue;
                        }
                    }
                    if let Some(path) = idx.value_path(&mut stack, &mut root_done) {
                        idx.insert(path, pos, &stack);
                    }
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = None;
                    }
                }
                Event::Alias(_) => {
                    if let Some(path) = idx.value_path(&mut stack, &mut root_done) {
                        idx.insert(path, pos, &stack);
                    }
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = None;
                    }
                }
                Event::MappingStart(..) | Event::SequenceStart(..) => {
                    let is_map = matches!(event, Event::MappingStart(..));
                    // A collection used as a mapping key: give it a placeholder name.
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        if key.is_none() {
                            *key = Some(("?".to_string(), pos));
                        }
                    }
                    let path = idx
                        .value_path(&mut stack, &mut root_done)
                        .unwrap_or_default();
                    idx.insert(path.clone(), pos, &stack);
                    stack.push(if is_map {
                        Frame::Map { path, key: None }
                    } else {
                        Frame::Seq { path, next: 0 }
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if let Some(Frame::Map { key, .. }) = stack.last_mut() {
                        *key = None;
                    }
                }
                Event::DocumentEnd => break,
                _ => {}
            }
        }
        idx
    }

    /// The path of the value that starts now; advances the parent frame.
    fn value_path(&self, stack: &mut [Frame], root_done: &mut bool) -> Option<String> {
        match stack.last_mut() {
            None => {
                if *root_done {
                    return None;
                }
                *root_done = true;
                Some(String::new())
            }
            Some(Frame::Seq { path, next }) => {
                let p = format!("{path}[{next}]");
                *next += 1;
                Some(p)
            }
            Some(Frame::Map { path, key }) => key.as_ref().map(|(k, _)| join_key(path, k)),
        }
    }

    fn insert(&mut self, path: String, value: Pos, stack: &[Frame]) {
        let key = match stack.last() {
            Some(Frame::Map {
                key: Some((_, kp)), ..
            }) => Some(*kp),
            _ => None,
        };
        self.map.entry(path).or_insert(Entry { key, value });
    }

    /// Position of the key of `path` (falls back to its value, then to ancestors).
    pub(crate) fn key(&self, path: &str) -> Pos {
        match self.map.get(path) {
            Some(e) => e.key.unwrap_or(e.value),
            None => self.ancestor(path),
        }
    }

    /// Position of the value at `path` (falls back to ancestors).
    pub(crate) fn value(&self, path: &str) -> Pos {
        match self.map.get(path) {
            Some(e) => e.value,
            None => self.ancestor(path),
        }
    }

    fn ancestor(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            let cut = p.rfind(['.', '[']);
            match cut {
                Some(i) => {
                    p = &p[..i];
                    if let Some(e) = self.map.get(p) {
                        return e.value;
                    }
                }
                None => return self.map.get("").map(|e| e.value).unwrap_or(Pos::START),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_keys_and_values() {
        let text = "version: 1\nrules:\n  - id: a\n    route: local\n  - id: b\n    when: {team: [x, y]}\n";
        let idx = SpanIndex::build(text);
        assert_eq!(idx.key("version"), Pos { line: 1, column: 1 });
        assert_eq!(
            idx.value("version"),
            Pos {
                line: 1,
                column: 10
            }
        );
        assert_eq!(idx.key("rules[0].route"), Pos { line: 4, column: 5 });
        assert_eq!(
            idx.value("rules[0].route"),
            Pos {
                line: 4,
                column: 12
            }
        );
        assert_eq!(idx.value("rules[1]"), Pos { line: 5, column: 5 });
        assert_eq!(
            idx.value("rules[1].when.team[1]"),
            Pos {
                line: 6,
                column: 22
            }
        );
        // Unknown paths fall back to the nearest ancestor.
        assert_eq!(
            idx.value("rules[1].when.nope"),
            Pos {
                line: 6,
                column: 11
            }
        );
        assert_eq!(idx.value("zzz"), Pos { line: 1, column: 1 });
    }
}
