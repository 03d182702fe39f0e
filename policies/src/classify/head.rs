//! The learned sentence head: logistic read-outs over a sentence embedding (MiniLM, the
//! encoder the gateway already runs for the semantic cache) for difficulty and for
//! sensitive data that the text *refers to* without a literal value ("my income is a bit
//! over fifty thousand", "I log my mood every day", "our Q3 revenue came in under plan").
//!
//! Pure: the gateway computes the embedding and calls [`SentenceHead::apply`]; this module
//! only does the arithmetic and turns scores into [`Finding`]s. The weights are written by
//! `scripts/heads/train_heads.py` (trained on our own generated rows, never on the eval
//! set) into the model cache and loaded at start-up.

use serde::Deserialize;

use super::difficulty::{self, EmbeddingHead};
use super::{Category, Classification, Detector, Finding};

/// Which embedding the weights were trained on; the gateway checks it against the
/// encoder it loads, so a head is never applied to another model's vectors.
#[derive(Debug, Clone, Deserialize)]
pub struct HeadEmbedding {
    /// Model directory name, e.g. `all-minilm-l6-v2`.
    pub model: String,
    /// sha256 of the encoder's `model.onnx` (from its manifest).
    pub model_sha256: String,
    pub dim: usize,
    /// Tokens the encoder read at training time (its truncation).
    pub max_tokens: usize,
}

/// One category's read-out: calibrated `p = sigmoid(w . v + bias)`; a finding when
/// `p >= threshold` (chosen at training time for <= 0.5% false positives on our own
/// non-sensitive rows, never below 0.6 there; a file below 0.5 is rejected).
#[derive(Debug, Clone, Deserialize)]
pub struct CategoryHead {
    pub category: Category,
    pub w: Vec<f32>,
    pub bias: f32,
    pub threshold: f32,
}

/// `p = sigmoid(lexical * z_lexical + head * z_head + bias)`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct DifficultyCombine {
    pub lexical: f32,
    pub head: f32,
    pub bias: f32,
}

/// The weights file (`head.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct SentenceHead {
    pub version: u32,
    pub embedding: HeadEmbedding,
    /// Calibrated difficulty logit; combined with the lexical model like the older
    /// embedding head (logits averaged).
    pub difficulty: EmbeddingHead,
    /// How the two difficulty logits combine, fitted by the trainer on out-of-fold logits
    /// (absent: averaged, as the older embedding head does).
    #[serde(default)]
    pub difficulty_combine: Option<DifficultyCombine>,
    pub categories: Vec<CategoryHead>,
    /// Cross-validation figures written by the trainer (shown, not used).
    #[serde(default)]
    pub cv: serde_json::Value,
}

#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    #[error("sentence head: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("sentence head: {0}")]
    Invalid(String),
}

/// Where the head's findings point: the segment whose text was embedded.
#[derive(Debug, Clone, Copy)]
pub struct HeadTarget {
    pub segment: usize,
    /// Byte offset of the segment in the canonical text.
    pub offset: usize,
    /// Bytes of the segment (the finding covers all of it: the head reads the whole text,
    /// and a redacting rule then redacts the whole segment, which is the safe reading).
    pub len: usize,
}

/// What one application did (shown in traces).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HeadEffect {
    pub findings: usize,
    pub difficulty_before: f32,
    pub difficulty_after: f32,
}

const SUPPORTED_VERSION: u32 = 1;

impl SentenceHead {
    pub fn from_json(json: &str) -> Result<SentenceHead, HeadError> {
        let head: SentenceHead = serde_json::from_str(json)?;
        head.check()?;
        Ok(head)
    }

    fn check(&self) -> Result<(), HeadError> {
        let bad = |m: String| Err(HeadError::Invalid(m));
        if self.version != SUPPORTED_VERSION {
            return bad(format!(
                "version {} (this gateway reads version {SUPPORTED_VERSION}; re-run scripts/train-heads.sh)",
                self.version
            ));
        }
        let d = self.embedding.dim;
        if d == 0 {
            return bad("embedding.dim is 0".into());
        }
        if self.difficulty.dim != d || self.difficulty.w.len() != d {
            return bad(format!("difficulty weights are not {d}-dimensional"));
        }
        let finite = |w: &[f32], b: f32| w.iter().all(|x| x.is_finite()) && b.is_finite();
        if !finite(&self.difficulty.w, self.difficulty.bias) {
            return bad("difficulty weights are not finite".into());
        }
        if let Some(k) = self.difficulty_combine {
            if !finite(&[k.lexical, k.head], k.bias) {
                return bad("difficulty_combine is not finite".into());
            }
        }
        for (i, h) in self.categories.iter().enumerate() {
            if h.w.len() != d || !finite(&h.w, h.bias) {
                return bad(format!(
                    "{} weights are not {d} finite numbers",
                    h.category.as_str()
                ));
            }
            if !(0.5..=1.0).contains(&h.threshold) {
                return bad(format!(
                    "{} threshold {} is outside 0.5..=1",
                    h.category.as_str(),
                    h.threshold
                ));
            }
            if self.categories[..i]
                .iter()
                .any(|o| o.category == h.category)
            {
                return bad(format!("{} appears twice", h.category.as_str()));
            }
        }
        Ok(())
    }

    pub fn dim(&self) -> usize {
        self.embedding.dim
    }

    /// Calibrated probability per category.
    pub fn category_scores(&self, v: &[f32]) -> Option<Vec<(Category, f32, f32)>> {
        (v.len() == self.dim()).then(|| {
            self.categories
                .iter()
                .map(|h| {
                    let z = h.bias + dot(&h.w, v);
                    (h.category, difficulty::sigmoid(z), h.threshold)
                })
                .collect()
        })
    }

    /// Merges the head's reading of `v` (the embedding of `text`, the segment `target`
    /// points at) into `c`: a finding per category at or above its threshold, if the text
    /// speaks in the first person (see [`first_person`]; a category the rules already
    /// found adds nothing: `merge_findings` keeps the rule's finding), and the difficulty
    /// recombined from the lexical logit and the head's. A vector of the wrong size
    /// changes nothing.
    pub fn apply(
        &self,
        c: &mut Classification,
        v: &[f32],
        text: &str,
        target: HeadTarget,
    ) -> HeadEffect {
        let before = c.difficulty;
        let Some(scores) = self.category_scores(v) else {
            return HeadEffect {
                findings: 0,
                difficulty_before: before,
                difficulty_after: before,
            };
        };
        // Data *referred to* is the writer's own (my income, our Q3 numbers): without a
        // first-person word the text is about the topic (a vignette, a question, a
        // template), which the head reads much like the real thing.
        let anchored = first_person(text);
        // A literal credential-shaped value (code block, `key = value`) is the rules'
        // to judge: their validators know a placeholder from a key; the head, reading the
        // topic, would call every config question a secret.
        let literal = has_code_or_assignment(text);
        let found: Vec<Finding> = scores
            .into_iter()
            .filter(|(cat, p, t)| anchored && p >= t && !(*cat == Category::Secret && literal))
            .map(|(category, p, _)| Finding {
                category,
                detector: Detector::Head,
                kind: kind_of(category).into(),
                start: target.offset,
                end: target.offset + target.len,
                segment: target.segment,
                seg_start: 0,
                seg_end: target.len,
                confidence: p,
            })
            .collect();
        let n = found.len();
        if n > 0 {
            c.merge_findings(found);
        }
        // Only the lexical reading is recombined (never twice).
        if c.difficulty_model == difficulty::MODEL_LEXICAL {
            if let Some(ze) = self.difficulty.logit(v) {
                let zl = difficulty::logit_of(c.difficulty);
                c.difficulty = match self.difficulty_combine {
                    Some(k) => difficulty::sigmoid(k.lexical * zl + k.head * ze + k.bias),
                    None => difficulty::combine(zl, ze),
                };
                c.difficulty_model = difficulty::MODEL_WITH_EMBEDDING;
            }
        }
        HeadEffect {
            findings: n,
            difficulty_before: before,
            difficulty_after: c.difficulty,
        }
    }
}

/// Finding kinds of the head: data alluded to, or business content without a marker.
pub fn kind_of(category: Category) -> &'static str {
    match category {
        Category::Confidential => "confidential_content",
        Category::Pii | Category::Phi | Category::Financial | Category::Secret => {
            "referred_without_value"
        }
    }
}

/// First-person words of the languages the head is trained on (en, de, fr, es, pt, it,
/// pl; Japanese by substring): singular and plural, subject and possessive.
const FIRST_PERSON: &[&str] = &[
    "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ich", "mich", "mir", "mein",
    "meine", "meinen", "meinem", "meiner", "meines", "wir", "uns", "unser", "unsere", "unseren",
    "unserem", "unserer", "je", "j", "moi", "mon", "ma", "mes", "nous", "notre", "nos", "yo", "mi",
    "mis", "nuestro", "nuestra", "nuestros", "nuestras", "eu", "meu", "minha", "meus", "minhas",
    "nosso", "nossa", "nossos", "nossas", "io", "mio", "mia", "miei", "mie", "noi", "nostro",
    "nostra", "nostri", "nostre", "ja", "mój", "moja", "moje", "mojego", "mojej", "mnie", "nasz",
    "nasza", "nasze", "naszego", "naszej", "mam", "gano", "tengo", "tenho", "ho",
];
const FIRST_PERSON_JA: &[&str] = &[
    "私",
    "僕",
    "俺",
    "わたし",
    "自分",
    "弊社",
    "当社",
    "我々",
    "うち",
];

/// Whether `text` speaks in the first person (one word pass, lower-cased per word).
pub fn first_person(text: &str) -> bool {
    if FIRST_PERSON_JA.iter().any(|w| text.contains(w)) {
        return true;
    }
    text.split(|ch: char| !ch.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() <= 8)
        .any(|w| {
            let lower = w.to_lowercase();
            FIRST_PERSON.contains(&lower.as_str())
        })
}

/// A code fence, or `name = value` / `"name": value` on a line.
pub fn has_code_or_assignment(text: &str) -> bool {
    if text.contains("```") {
        return true;
    }
    text.lines().any(|line| {
        let b = line.as_bytes();
        b.iter().enumerate().any(|(i, &ch)| {
            let assign = ch == b'=' && b.get(i + 1) != Some(&b'=');
            let json_key = ch == b':' && i > 0 && b[i - 1] == b'"';
            (assign || json_key)
                && i > 0
                && b[..i]
                    .iter()
                    .rev()
                    .find(|c| **c != b' ')
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'"')
        })
    })
}

fn dot(w: &[f32], v: &[f32]) -> f32 {
    w.iter().zip(v).map(|(a, b)| a * b).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn head_json(threshold: f32) -> String {
        // 4-dim toy head: axis 0 -> phi, axis 1 -> confidential, axis 2 -> hard.
        serde_json::json!({
            "version": 1,
            "embedding": {"model": "toy", "model_sha256": "00", "dim": 4, "max_tokens": 256},
            "difficulty": {"dim": 4, "w": [0.0, 0.0, 8.0, 0.0], "bias": -4.0},
            "categories": [
                {"category": "phi", "w": [10.0, 0.0, 0.0, 0.0], "bias": -5.0, "threshold": threshold},
                {"category": "confidential", "w": [0.0, 10.0, 0.0, 0.0], "bias": -5.0, "threshold": threshold}
            ]
        })
        .to_string()
    }

    fn lexical(difficulty: f32) -> Classification {
        Classification {
            findings: Vec::new(),
            categories: BTreeSet::new(),
            sensitive: false,
            difficulty,
            difficulty_model: difficulty::MODEL_LEXICAL,
            prompt_chars: 10,
            est_prompt_tokens: 3,
        }
    }

    const T: HeadTarget = HeadTarget {
        segment: 1,
        offset: 7,
        len: 10,
    };

    #[test]
    fn a_score_over_the_threshold_is_a_head_finding_over_the_segment() {
        let h = SentenceHead::from_json(&head_json(0.6)).unwrap();
        let mut c = lexical(0.5);
        let e = h.apply(&mut c, &[1.0, 0.0, 0.5, 0.0], "my mood log", T);
        assert_eq!(e.findings, 1);
        assert!(c.sensitive);
        assert_eq!(c.categories, BTreeSet::from([Category::Phi]));
        let f = &c.findings[0];
        assert_eq!(
            (f.detector, f.start, f.end, f.segment),
            (Detector::Head, 7, 17, 1)
        );
        assert_eq!((f.seg_start, f.seg_end), (0, 10));
        assert_eq!(f.kind, "referred_without_value");
        assert!(f.confidence > 0.99);
    }

    #[test]
    fn without_a_first_person_word_the_text_is_about_the_topic() {
        let h = SentenceHead::from_json(&head_json(0.6)).unwrap();
        let mut c = lexical(0.5);
        let v = [1.0, 1.0, 0.0, 0.0];
        assert_eq!(
            h.apply(&mut c, &v, "A 55-year-old man logs his mood.", T)
                .findings,
            0
        );
        assert!(!c.sensitive);
        for text in [
            "Mein Stimmungstagebuch",
            "j'ai noté mon humeur",
            "毎日私の気分を記録",
            "Our Q3 plan",
        ] {
            let mut c = lexical(0.5);
            assert_eq!(h.apply(&mut c, &v, text, T).findings, 2, "{text}");
        }
        assert!(!first_person("Summarize the public merger news."));
        // A config question is the rules' to judge, for secrets only.
        let secret_json = head_json(0.6).replace("\"phi\"", "\"secret\"");
        let hs = SentenceHead::from_json(&secret_json).unwrap();
        let mut c = lexical(0.5);
        let cfg = "my settings file fails:\n```\napi_key = <yours>\n```";
        assert_eq!(
            hs.apply(&mut c, &v, cfg, T).findings,
            1,
            "confidential still counts"
        );
        assert_eq!(c.categories, BTreeSet::from([Category::Confidential]));
        assert!(has_code_or_assignment("token = abc"));
        assert!(has_code_or_assignment("{\"password\": 1}"));
        assert!(!has_code_or_assignment("Note: my pet is a cat"));
        assert!(first_person("I'm worried"));
    }

    #[test]
    fn below_the_threshold_nothing_is_found() {
        let h = SentenceHead::from_json(&head_json(0.9)).unwrap();
        let mut c = lexical(0.5);
        // phi logit 10*0.7-5 = 2 -> p 0.88 < 0.9
        assert_eq!(
            h.apply(&mut c, &[0.7, 0.0, 0.0, 0.0], "my mood log", T)
                .findings,
            0
        );
        assert!(!c.sensitive && c.findings.is_empty());
    }

    #[test]
    fn difficulty_averages_logits_once() {
        let h = SentenceHead::from_json(&head_json(0.6)).unwrap();
        let mut c = lexical(0.5); // lexical logit 0
        h.apply(&mut c, &[0.0, 0.0, 1.0, 0.0], "prove it", T); // head logit 4
        assert!((c.difficulty - difficulty::sigmoid(2.0)).abs() < 1e-4);
        assert_eq!(c.difficulty_model, difficulty::MODEL_WITH_EMBEDDING);
        let again = c.difficulty;
        h.apply(&mut c, &[0.0, 0.0, 1.0, 0.0], "prove it", T);
        assert_eq!(c.difficulty, again);
    }

    #[test]
    fn a_fitted_combination_replaces_the_average() {
        let mut v: serde_json::Value = serde_json::from_str(&head_json(0.6)).unwrap();
        v["difficulty_combine"] = serde_json::json!({"lexical": 0.5, "head": 1.0, "bias": 0.25});
        let h = SentenceHead::from_json(&v.to_string()).unwrap();
        let mut c = lexical(difficulty::sigmoid(-2.0));
        h.apply(&mut c, &[0.0, 0.0, 1.0, 0.0], "prove it", T); // head logit 4
        assert!((c.difficulty - difficulty::sigmoid(0.5 * -2.0 + 4.0 + 0.25)).abs() < 1e-4);
    }

    #[test]
    fn a_vector_of_the_wrong_size_changes_nothing() {
        let h = SentenceHead::from_json(&head_json(0.6)).unwrap();
        let mut c = lexical(0.3);
        let before = c.clone();
        assert_eq!(h.apply(&mut c, &[1.0, 1.0], "my mood log", T).findings, 0);
        assert_eq!(c, before);
    }

    #[test]
    fn bad_files_are_rejected_with_a_reason() {
        let mut v: serde_json::Value = serde_json::from_str(&head_json(0.6)).unwrap();
        v["categories"][0]["w"] = serde_json::json!([1.0]);
        let e = SentenceHead::from_json(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("phi weights"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&head_json(0.3)).unwrap();
        v["version"] = 1.into();
        let e = SentenceHead::from_json(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("threshold"), "{e}");
        let mut v: serde_json::Value = serde_json::from_str(&head_json(0.6)).unwrap();
        v["version"] = 2.into();
        assert!(SentenceHead::from_json(&v.to_string()).is_err());
        v["version"] = 1.into();
        v["categories"][1]["category"] = "phi".into();
        let e = SentenceHead::from_json(&v.to_string()).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(SentenceHead::from_json("{").is_err());
    }
}
