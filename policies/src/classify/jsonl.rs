//! JSONL batch classification for `switchyard classify < in.jsonl > out.jsonl`.
//!
//! One request per line: `{"id", "prompt"}` or `{"id", "messages": [...]}` (OpenAI or
//! Anthropic shape; `content` is a string or an array of content parts, as the SDKs send
//! it), optionally with an Anthropic top-level `"system"`. A line that cannot be classified
//! becomes an error row (`{"id", "line", "error"}`) and the batch goes on, so one bad line
//! does not hide the results of the others; the caller decides the exit status from
//! [`JsonlSummary::errors`].

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::{Category, Classification, Classifier, ClassifyInput, Detector, Segment, SegmentRole};

#[derive(Debug, thiserror::Error)]
pub enum ClassifyJsonlError {
    #[error("line {line}: read failed: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}

/// What a batch did: lines classified and lines reported as error rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JsonlSummary {
    pub classified: usize,
    pub errors: usize,
}

#[derive(Deserialize)]
struct InLine {
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<InMessage>>,
    /// Anthropic's top-level system prompt (string or text blocks).
    #[serde(default)]
    system: Option<Content>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// A message body: a string, or content parts / blocks.
#[derive(Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

/// One content part. Text parts are `{"type":"text","text":...}` in both dialects
/// (`input_text`/`output_text` in the Responses API); an Anthropic `tool_result` nests its
/// own content. Other parts (images, audio) carry no text to classify and are skipped.
#[derive(Deserialize)]
struct Part {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    content: Option<Box<Content>>,
}

impl Content {
    /// The text of the content: parts joined with `"\n"`.
    fn text(&self) -> Result<String, String> {
        match self {
            Content::Text(s) => Ok(s.clone()),
            Content::Parts(parts) => {
                let mut out = String::new();
                for p in parts {
                    let piece = match (p.kind.as_deref(), &p.text, &p.content) {
                        (Some("text" | "input_text" | "output_text") | None, Some(t), _) => {
                            t.clone()
                        }
                        (Some("tool_result"), _, Some(c)) => c.text()?,
                        (Some("text" | "input_text" | "output_text"), None, _) => {
                            return Err("a text content part has no \"text\" string".into())
                        }
                        _ => continue,
                    };
                    if !out.is_empty() {
                        out.push('\n');
                    }
                    out.push_str(&piece);
                }
                Ok(out)
            }
        }
    }
}

#[derive(Serialize)]
struct OutFinding<'a> {
    category: Category,
    detector: Detector,
    #[serde(rename = "type")]
    kind: &'a str,
    start: usize,
    end: usize,
    confidence: f32,
}

#[derive(Serialize)]
struct OutLine<'a> {
    id: &'a serde_json::Value,
    sensitive: bool,
    categories: Vec<Category>,
    findings: Vec<OutFinding<'a>>,
    difficulty: f32,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a serde_json::Value>,
    line: usize,
    error: &'a str,
}

fn role(s: &str) -> Option<SegmentRole> {
    Some(match s {
        "system" | "developer" => SegmentRole::System,
        "user" | "human" => SegmentRole::User,
        "assistant" | "model" => SegmentRole::Assistant,
        "tool" | "function" => SegmentRole::Tool,
        _ => return None,
    })
}

/// The segments of one parsed line, or why it has none.
fn segments(parsed: &InLine) -> Result<Vec<(SegmentRole, String)>, String> {
    let mut segs = Vec::new();
    if let Some(system) = &parsed.system {
        segs.push((SegmentRole::System, system.text()?));
    }
    match (&parsed.prompt, &parsed.messages) {
        (Some(p), None) => segs.push((SegmentRole::User, p.clone())),
        (None, Some(ms)) => {
            for (i, m) in ms.iter().enumerate() {
                let r = role(&m.role)
                    .ok_or_else(|| format!("messages[{i}]: unknown role {:?}", m.role))?;
                let text = match &m.content {
                    Some(c) => c.text().map_err(|e| format!("messages[{i}]: {e}"))?,
                    None => String::new(),
                };
                segs.push((r, text));
            }
        }
        _ => return Err("expected exactly one of \"prompt\" or \"messages\"".into()),
    }
    Ok(segs)
}

/// Classify one JSON object per line; blank lines are skipped, bad lines become error rows.
pub fn classify_jsonl(
    classifier: &Classifier,
    input: impl BufRead,
    output: impl Write,
) -> Result<JsonlSummary, ClassifyJsonlError> {
    classify_jsonl_with(classifier, |_, _| {}, input, output)
}

/// [`classify_jsonl`] with a hook that may add findings to each classification before it is
/// written (a learned detector outside this crate, through [`Classification::merge_findings`]).
pub fn classify_jsonl_with(
    classifier: &Classifier,
    mut extra: impl FnMut(&ClassifyInput<'_>, &mut Classification),
    input: impl BufRead,
    mut output: impl Write,
) -> Result<JsonlSummary, ClassifyJsonlError> {
    let mut summary = JsonlSummary::default();
    for (idx, line) in input.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.map_err(|source| ClassifyJsonlError::Read {
            line: lineno,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<InLine>(&line).map_err(|e| e.to_string());
        let segs = parsed.as_ref().map_err(String::clone).and_then(segments);
        let (parsed, segs) = match (parsed.as_ref(), segs) {
            (Ok(p), Ok(s)) if p.id.is_some() => (p, s),
            (_, s) => {
                // The id, when the line is JSON with one, so the row joins back to its input.
                let id = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|v| v.get("id").cloned());
                let message = match s {
                    Err(e) => e,
                    Ok(_) => "missing \"id\"".to_string(),
                };
                let row = ErrorLine {
                    id: id.as_ref(),
                    line: lineno,
                    error: &message,
                };
                serde_json::to_writer(&mut output, &row)
                    .map_err(|e| ClassifyJsonlError::Write(e.into()))?;
                output.write_all(b"\n")?;
                summary.errors += 1;
                continue;
            }
        };
        let seg_refs: Vec<Segment<'_>> = segs
            .iter()
            .map(|(role, text)| Segment {
                role: *role,
                text: text.as_str(),
            })
            .collect();
        let input = ClassifyInput {
            segments: &seg_refs,
            embedding: None,
        };
        let mut c = classifier.classify(&input);
        extra(&input, &mut c);
        let null = serde_json::Value::Null;
        let out = OutLine {
            id: parsed.id.as_ref().unwrap_or(&null),
            sensitive: c.sensitive,
            categories: c.categories.iter().copied().collect(),
            findings: c
                .findings
                .iter()
                .map(|f| OutFinding {
                    category: f.category,
                    detector: f.detector,
                    kind: &f.kind,
                    start: f.start,
                    end: f.end,
                    confidence: f.confidence,
                })
                .collect(),
            difficulty: c.difficulty,
        };
        serde_json::to_writer(&mut output, &out)
            .map_err(|e| ClassifyJsonlError::Write(e.into()))?;
        output.write_all(b"\n")?;
        summary.classified += 1;
    }
    output.flush()?;
    Ok(summary)
}
