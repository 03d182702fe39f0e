//! Policy errors: every error carries a file, a line, a column and, where one helps, a hint.

use serde::Serialize;
use std::fmt;

/// What kind of mistake a [`PolicyError`] reports. Serialized in kebab-case (`unknown-key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The file could not be read.
    Io,
    /// The YAML itself is malformed.
    Syntax,
    /// `version:` missing or not 1.
    Version,
    /// A key the language does not know.
    UnknownKey,
    /// A value of the wrong type or shape.
    Type,
    /// A required key is missing.
    Missing,
    /// A value that is well typed but not allowed (empty chain, `route` and `block` together...).
    Invalid,
    /// A route or chain names a target that is not defined.
    UnknownTarget,
    /// A target names a model the catalog does not know.
    UnknownModel,
    /// A rule that can never match because an earlier rule matches every request.
    Unreachable,
    /// A fallback chain that contains itself.
    Cycle,
    /// Two rules, targets or sections with the same name.
    Duplicate,
    /// An organization detector whose regular expression does not compile.
    BadRegex,
}

impl ErrorCode {
    /// The kebab-case name shown in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Io => "io",
            ErrorCode::Syntax => "syntax",
            ErrorCode::Version => "version",
            ErrorCode::UnknownKey => "unknown-key",
            ErrorCode::Type => "type",
            ErrorCode::Missing => "missing",
            ErrorCode::Invalid => "invalid",
            ErrorCode::UnknownTarget => "unknown-target",
            ErrorCode::UnknownModel => "unknown-model",
            ErrorCode::Unreachable => "unreachable",
            ErrorCode::Cycle => "cycle",
            ErrorCode::Duplicate => "duplicate",
            ErrorCode::BadRegex => "bad-regex",
        }
    }
}

/// One problem in a policy or policy-test file. `line` and `column` are 1-based.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: ErrorCode,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl PolicyError {
    pub(crate) fn new(file: &str, pos: Pos, code: ErrorCode, message: impl Into<String>) -> Self {
        PolicyError {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            code,
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// `FILE:LINE:COLUMN: error[CODE]: MESSAGE` and, on the next line, `  hint: HINT`.
impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error[{}]: {}",
            self.file,
            self.line,
            self.column,
            self.code.as_str(),
            self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Formats a list of errors, one after the other, with a closing count.
pub fn format_errors(errors: &[PolicyError]) -> String {
    let mut out = String::new();
    for e in errors {
        out.push_str(&e.to_string());
        out.push('\n');
    }
    out.push_str(&format!(
        "{} error{}\n",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" }
    ));
    out
}

/// A 1-based position in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= limit || c.starts_with(word) || word.starts_with(*c))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_suggestion() {
        assert_eq!(edit_distance("rout", "route"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(
            did_you_mean("rout", ["route", "redact", "block"]).as_deref(),
            Some("did you mean `route`?")
        );
        assert_eq!(did_you_mean("zzzzzz", ["route", "redact"]), None);
    }

    #[test]
    fn display_has_file_line_column_and_hint() {
        let e = PolicyError::new(
            "p.yaml",
            Pos { line: 3, column: 5 },
            ErrorCode::UnknownKey,
            "unknown key `rout`",
        )
        .hint("did you mean `route`?");
        assert_eq!(
            e.to_string(),
            "p.yaml:3:5: error[unknown-key]: unknown key `rout`\n  hint: did you mean `route`?"
        );
    }
}
