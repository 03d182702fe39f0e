//! JSONL batch classification for `switchyard classify < in.jsonl > out.jsonl`.

use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use super::{Category, Classification, Classifier, ClassifyInput, Detector, Segment, SegmentRole};

#[derive(Debug, thiserror::Error)]
pub enum ClassifyJsonlError {
    #[error("line {line}: {message}")]
    Parse { line: usize, message: String },
    #[error("line {line}: read failed: {source}")]
    Read {
        line: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("write failed: {0}")]
    Write(#[from] std::io::Error),
}

#[derive(Deserialize)]
struct InLine {
    id: serde_json::Value,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<InMessage>>,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    content: String,
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

fn role(s: &str) -> Option<SegmentRole> {
    Some(match s {
        "system" | "developer" => SegmentRole::System,
        "user" | "human" => SegmentRole::User,
        "assistant" | "model" => SegmentRole::Assistant,
        "tool" | "function" => SegmentRole::Tool,
        _ => return None,
    })
}

/// Classify one JSON object per line; blank lines are skipped. Returns lines classified.
pub fn classify_jsonl(
    classifier: &Classifier,
    input: impl BufRead,
    output: impl Write,
) -> Result<usize, ClassifyJsonlError> {
    classify_jsonl_with(classifier, input, output, |_, _| {})
}

/// [`classify_jsonl`] with a second detector that runs outside this crate (the gateway's
/// learned model): `extra` sees each line's segments and adds its findings to the
/// classification (`Classification::merge_findings`) before the line is written.
pub fn classify_jsonl_with(
    classifier: &Classifier,
    input: impl BufRead,
    mut output: impl Write,
    mut extra: impl FnMut(&[Segment<'_>], &mut Classification),
) -> Result<usize, ClassifyJsonlError> {
    let mut n = 0;
    for (idx, line) in input.lines().enumerate() {
        let lineno = idx + 1;
        let line = line.map_err(|source| ClassifyJsonlError::Read {
            line: lineno,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed: InLine =
            serde_json::from_str(&line).map_err(|e| ClassifyJsonlError::Parse {
                line: lineno,
                message: e.to_string(),
            })?;
        let mut segs: Vec<Segment<'_>> = Vec::new();
        match (&parsed.prompt, &parsed.messages) {
            (Some(p), None) => segs.push(Segment {
                role: SegmentRole::User,
                text: p,
            }),
            (None, Some(ms)) => {
                for m in ms {
                    let r = role(&m.role).ok_or_else(|| ClassifyJsonlError::Parse {
                        line: lineno,
                        message: format!("unknown role {:?}", m.role),
                    })?;
                    segs.push(Segment {
                        role: r,
                        text: &m.content,
                    });
                }
            }
            _ => {
                return Err(ClassifyJsonlError::Parse {
                    line: lineno,
                    message: "expected exactly one of \"prompt\" or \"messages\"".into(),
                })
            }
        }
        let mut c = classifier.classify(&ClassifyInput {
            segments: &segs,
            embedding: None,
        });
        extra(&segs, &mut c);
        let out = OutLine {
            id: &parsed.id,
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
        n += 1;
    }
    output.flush()?;
    Ok(n)
}
