//! The compile context: file names, positions and the errors collected so far.

use super::super::catalog::TargetCatalog;
use super::super::error::{did_you_mean, ErrorCode, PolicyError, Pos};
use super::super::span::SpanIndex;
use super::PolicySource;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// Where a value sits: a file (index into the context's names) and its key path.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub file: usize,
    pub path: String,
}

/// What compiling and checking carry through every step: file names and span indexes
/// for positions, the errors found so far, and the catalog targets are checked against.
pub(crate) struct CompileCtx<'a> {
    pub names: Vec<String>,
    pub spans: Vec<SpanIndex>,
    pub errors: Vec<PolicyError>,
    pub catalog: Option<&'a dyn TargetCatalog>,
}

pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl CompileCtx<'_> {
    pub(crate) fn add_file(&mut self, src: &PolicySource) -> usize {
        self.names.push(src.name.clone());
        self.spans.push(SpanIndex::build(&src.text));
        self.names.len() - 1
    }

    pub(crate) fn key_pos(&self, loc: &Loc) -> Pos {
        self.spans[loc.file].key(&loc.path)
    }

    pub(crate) fn value_pos(&self, loc: &Loc) -> Pos {
        self.spans[loc.file].value(&loc.path)
    }

    pub(crate) fn at(&self, loc: &Loc) -> String {
        let p = self.value_pos(loc);
        format!("{}:{}:{}", self.names[loc.file], p.line, p.column)
    }

    pub(crate) fn err(
        &mut self,
        loc: &Loc,
        key: bool,
        code: ErrorCode,
        msg: String,
    ) -> &mut PolicyError {
        let pos = if key {
            self.key_pos(loc)
        } else {
            self.value_pos(loc)
        };
        self.errors
            .push(PolicyError::new(&self.names[loc.file], pos, code, msg));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Parses a file to a YAML value; a syntax error is reported with its position.
    pub(crate) fn parse_value(&mut self, file: usize, text: &str) -> Option<Value> {
        match serde_yaml_ng::from_str::<Value>(text) {
            Ok(mut v) => {
                if v.apply_merge().is_err() {
                    self.errors.push(PolicyError::new(
                        &self.names[file],
                        Pos::START,
                        ErrorCode::Syntax,
                        "invalid YAML merge key (`<<`)",
                    ));
                    return None;
                }
                Some(v)
            }
            Err(e) => {
                let pos = e.location().map_or(Pos::START, |l| Pos {
                    line: l.line(),
                    column: l.column(),
                });
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                self.errors.push(
                    PolicyError::new(&self.names[file], pos, ErrorCode::Syntax, msg)
                        .hint("check indentation and quoting around this position"),
                );
                None
            }
        }
    }

    /// Deserializes `value` (found at `loc`) into `T`, reporting a positioned error on failure.
    pub(crate) fn typed<T: DeserializeOwned>(&mut self, loc: &Loc, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut path = loc.path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.push_str(&format!("[{index}]"))
                        }
                        serde_path_to_error::Segment::Map { key } => path = join_key(&path, key),
                        serde_path_to_error::Segment::Enum { variant } => {
                            path = join_key(&path, variant)
                        }
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let msg = e.inner().to_string();
                let at = Loc {
                    file: loc.file,
                    path: path.clone(),
                };
                let expected: Vec<String> = msg
                    .split_once("expected")
                    .map(|(_, rest)| {
                        rest.split('`')
                            .skip(1)
                            .step_by(2)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let quoted = |m: &str, prefix: &str| {
                    m.strip_prefix(prefix)
                        .and_then(|r| r.split('`').next())
                        .map(str::to_string)
                };
                let shown = if path.is_empty() { "the file" } else { &path };
                let hint = |word: &str| {
                    did_you_mean(word, expected.iter().map(String::as_str)).or_else(|| {
                        (!expected.is_empty()).then(|| {
                            format!(
                                "expected one of: {}",
                                expected
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                };
                if let Some(field) = quoted(&msg, "unknown field `") {
                    let parent = path.rsplit_once('.').map_or("", |(p, _)| p).to_string();
                    let h = hint(&field);
                    let where_ = if parent.is_empty() {
                        "the file".to_string()
                    } else {
                        format!("`{parent}`")
                    };
                    self.err(
                        &at,
                        true,
                        ErrorCode::UnknownKey,
                        format!("unknown key `{field}` in {where_}"),
                    )
                    .hint = h;
                } else if let Some(variant) = quoted(&msg, "unknown variant `") {
                    let h = hint(&variant);
                    self.err(
                        &at,
                        false,
                        ErrorCode::Invalid,
                        format!("unknown value `{variant}` at `{shown}`"),
                    )
                    .hint = h;
                } else if let Some(field) = quoted(&msg, "missing field `") {
                    self.err(
                        &at,
                        false,
                        ErrorCode::Missing,
                        format!("`{shown}` is missing `{field}`"),
                    );
                } else {
                    self.err(&at, false, ErrorCode::Type, format!("`{shown}`: {msg}"));
                }
                None
            }
        }
    }
}
