//! Request classification: sensitivity (PII, PHI, financial, secrets, confidential) and
//! difficulty, in process, with no I/O, clock or global state.
//!
//! Offsets: the *canonical text* of a request is its segments joined with `"\n"`
//! ([`joined_text`]). Every [`Finding`] carries byte offsets into that text (`start..end`)
//! and into its segment (`seg_start..seg_end`); both are on char boundaries.

pub mod decode;
pub mod difficulty;
pub mod entropy;
pub mod head;
pub mod normalize;
pub mod rules;
pub mod sensitivity;
pub mod text;
pub mod validate;

mod jsonl;

use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

pub use jsonl::{classify_jsonl, classify_jsonl_with, ClassifyJsonlError, JsonlSummary};
pub use rules::{OrgDetector, OrgRules};

use difficulty::{EmbeddingHead, LexicalModel};
use rules::CompiledOrgRules;
use sensitivity::{Raw, Sensitivity};

/// Who wrote a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentRole {
    System,
    User,
    Assistant,
    Tool,
}

/// One message (or a system prompt / tool result) of a request.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub role: SegmentRole,
    pub text: &'a str,
}

/// What the classifier looks at. `embedding` feeds an optional embedding difficulty head.
#[derive(Debug, Clone, Copy)]
pub struct ClassifyInput<'a> {
    pub segments: &'a [Segment<'a>],
    pub embedding: Option<&'a [f32]>,
}

/// Sensitivity category. Serialised lowercase: `pii`, `phi`, `financial`, `secret`,
/// `confidential`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Pii,
    Phi,
    Financial,
    Secret,
    Confidential,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pii => "pii",
            Category::Phi => "phi",
            Category::Financial => "financial",
            Category::Secret => "secret",
            Category::Confidential => "confidential",
        }
    }
}

/// Which detector produced a finding, so a security engineer can see why a request was
/// flagged. Serialised lowercase: `rule` (built-in validating detectors), `org` (the
/// organization's own detectors and terms), `model` (a learned detector).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    Rule,
    Org,
    Model,
    Head,
}

impl Detector {
    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Rule => "rule",
            Detector::Org => "org",
            Detector::Model => "model",
            Detector::Head => "head",
        }
    }
}

/// One detected span.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub category: Category,
    pub detector: Detector,
    /// Detector kind, e.g. `email`, `credit_card`, `aws_access_key`, or an org detector name.
    pub kind: Cow<'static, str>,
    /// Byte offsets into the canonical (joined) text.
    pub start: usize,
    pub end: usize,
    /// Index of the segment, and byte offsets into that segment's text.
    pub segment: usize,
    pub seg_start: usize,
    pub seg_end: usize,
    /// Detector confidence in [0, 1]; see docs/classification.md.
    pub confidence: f32,
}

/// Result of [`Classifier::classify`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    pub findings: Vec<Finding>,
    pub categories: BTreeSet<Category>,
    pub sensitive: bool,
    /// Calibrated probability that a small open model fails where a frontier model succeeds.
    pub difficulty: f32,
    /// `"lexical"` or `"lexical+embedding"`.
    pub difficulty_model: &'static str,
    /// Characters (Unicode scalar values) in the canonical text.
    pub prompt_chars: usize,
    /// `ceil(prompt_chars / 4)`: a tokenizer-free estimate for volume/budget signals.
    pub est_prompt_tokens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("detector {name}: invalid regex: {message}")]
    Regex { name: String, message: String },
    #[error("detector {name}: unknown validator {validator:?}")]
    UnknownValidator { name: String, validator: String },
    #[error("detector {name}: confidence must be within 0..=1")]
    Confidence { name: String },
    #[error("difficulty model: {0}")]
    Model(String),
}

/// Findings below this confidence are reported but do not make a request sensitive.
pub const SENSITIVE_MIN_CONFIDENCE: f32 = 0.5;

const LEXICAL_MODEL_JSON: &str = include_str!("../../models/difficulty_lexical.json");

/// Compiled classifier: build once, share (`&Classifier` is `Send + Sync`).
pub struct Classifier {
    sensitivity: Sensitivity,
    org: CompiledOrgRules,
    lexical: LexicalModel,
    embedding_head: Option<EmbeddingHead>,
}

impl Classifier {
    /// Compile built-in detectors, the org rules and the embedded difficulty model.
    pub fn new(rules: OrgRules) -> Result<Classifier, ClassifierError> {
        let lexical: LexicalModel = serde_json::from_str(LEXICAL_MODEL_JSON)
            .map_err(|e| ClassifierError::Model(e.to_string()))?;
        lexical.check().map_err(ClassifierError::Model)?;
        Ok(Classifier {
            sensitivity: Sensitivity::new()?,
            org: CompiledOrgRules::compile(&rules)?,
            lexical,
            embedding_head: None,
        })
    }

    /// Attach an embedding difficulty head (JSON: `{"dim": n, "w": [...], "bias": b}`).
    pub fn with_embedding_head(mut self, json: &str) -> Result<Classifier, ClassifierError> {
        let head: EmbeddingHead =
            serde_json::from_str(json).map_err(|e| ClassifierError::Model(e.to_string()))?;
        if head.w.len() != head.dim {
            return Err(ClassifierError::Model(
                "embedding head: w.len() != dim".into(),
            ));
        }
        self.embedding_head = Some(head);
        Ok(self)
    }

    pub fn classify(&self, input: &ClassifyInput<'_>) -> Classification {
        let mut findings = Vec::new();
        let mut offset = 0;
        let mut raws: Vec<Raw> = Vec::new();
        let mut chars = 0;
        for (si, seg) in input.segments.iter().enumerate() {
            raws.clear();
            self.sensitivity.scan(seg.text, &self.org, &mut raws);
            for r in resolve_overlaps(&mut raws, seg.text) {
                findings.push(Finding {
                    category: r.category,
                    detector: r.detector,
                    kind: r.kind,
                    start: offset + r.start,
                    end: offset + r.end,
                    segment: si,
                    seg_start: r.start,
                    seg_end: r.end,
                    confidence: r.confidence,
                });
            }
            chars += seg.text.chars().count();
            offset += seg.text.len() + 1;
        }
        chars += input.segments.len().saturating_sub(1);
        let categories: BTreeSet<Category> = findings
            .iter()
            .filter(|f| f.confidence >= SENSITIVE_MIN_CONFIDENCE)
            .map(|f| f.category)
            .collect();
        let (difficulty, difficulty_model) = self.difficulty(input);
        Classification {
            sensitive: !categories.is_empty(),
            categories,
            findings,
            difficulty,
            difficulty_model,
            prompt_chars: chars,
            est_prompt_tokens: chars.div_ceil(4),
        }
    }

    fn difficulty(&self, input: &ClassifyInput<'_>) -> (f32, &'static str) {
        // Score the conversation as one text; conversation depth is a feature.
        let text = if input.segments.len() == 1 {
            Cow::Borrowed(input.segments[0].text)
        } else {
            Cow::Owned(joined_text(input.segments))
        };
        let (dense, hashed) = difficulty::features(&text, input.segments.len());
        let z = self
            .lexical
            .calibrated_logit(self.lexical.logit(&dense, &hashed));
        match (input.embedding, &self.embedding_head) {
            (Some(v), Some(head)) => match head.logit(v) {
                Some(ze) => (difficulty::combine(z, ze), difficulty::MODEL_WITH_EMBEDDING),
                None => (difficulty::sigmoid(z), difficulty::MODEL_LEXICAL),
            },
            _ => (difficulty::sigmoid(z), difficulty::MODEL_LEXICAL),
        }
    }
}

impl Classification {
    /// Adds findings from a detector that runs outside this crate (a learned model in the
    /// gateway), and recomputes the categories: one merge rule for every detector. A model
    /// finding that overlaps a rule finding of the same category adds nothing.
    pub fn merge_findings(&mut self, extra: impl IntoIterator<Item = Finding>) {
        for f in extra {
            let covered = self.findings.iter().any(|k| {
                k.category == f.category
                    && k.segment == f.segment
                    && k.start < f.end
                    && f.start < k.end
            });
            if !covered {
                self.findings.push(f);
            }
        }
        self.findings.sort_by_key(|f| (f.start, f.end));
        self.categories = self
            .findings
            .iter()
            .filter(|f| f.confidence >= SENSITIVE_MIN_CONFIDENCE)
            .map(|f| f.category)
            .collect();
        self.sensitive = !self.categories.is_empty();
    }
}

/// Convenience: `classifier.classify(input)`.
pub fn classify(classifier: &Classifier, input: &ClassifyInput<'_>) -> Classification {
    classifier.classify(input)
}

/// The canonical text: segment texts joined with `"\n"`.
pub fn joined_text(segments: &[Segment<'_>]) -> String {
    let mut s = String::with_capacity(segments.iter().map(|x| x.text.len() + 1).sum());
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(seg.text);
    }
    s
}

/// Sort, snap to char boundaries, drop duplicates and overlaps (higher confidence, then
/// longer span wins). A weaker finding of a *different* category that overlaps is kept
/// only when it is not fully covered.
fn resolve_overlaps(raws: &mut [Raw], text: &str) -> Vec<Raw> {
    for r in raws.iter_mut() {
        r.end = r.end.min(text.len());
        r.start = r.start.min(r.end);
        while !text.is_char_boundary(r.start) {
            r.start -= 1;
        }
        while !text.is_char_boundary(r.end) {
            r.end += 1;
        }
    }
    let mut order: Vec<usize> = (0..raws.len())
        .filter(|&i| raws[i].end > raws[i].start)
        .collect();
    order.sort_by(|&a, &b| {
        raws[b]
            .confidence
            .total_cmp(&raws[a].confidence)
            .then((raws[b].end - raws[b].start).cmp(&(raws[a].end - raws[a].start)))
            .then(raws[a].start.cmp(&raws[b].start))
    });
    let mut kept: Vec<Raw> = Vec::new();
    for i in order {
        let r = &raws[i];
        if kept.iter().any(|k| k.start < r.end && r.start < k.end) {
            continue;
        }
        kept.push(r.clone());
    }
    kept.sort_by_key(|r| (r.start, r.end));
    kept
}
