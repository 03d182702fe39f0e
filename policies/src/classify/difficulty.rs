//! Difficulty: a logistic regression over cheap lexical features (dense + hashed words).
//! The same `features` function is used at training time (examples/train_difficulty.rs)
//! and at inference, so the two cannot drift apart.

use serde::{Deserialize, Serialize};

/// Names of the dense features, in order.
pub const DENSE_NAMES: &[&str] = &[
    "ln_chars",
    "ln_words",
    "digit_frac",
    "math_sym_density",
    "code_markers",
    "ln_questions",
    "multiple_choice",
    "hard_verbs",
    "easy_verbs",
    "ln_numbers",
    "latex",
    "constraints",
    "ln_segments",
    "ln_newlines",
    "avg_word_len",
    "answer_slot",
    "quantity_question",
    "upper_frac",
];

pub const HASH_BITS: u32 = 11;

pub const HARD_VERBS: &[&str] = &[
    "prove",
    "derive",
    "implement",
    "debug",
    "calculate",
    "compute",
    "solve",
    "find",
    "algorithm",
    "complexity",
    "optimize",
    "function",
    "program",
    "determine",
    "evaluate",
    "integral",
    "probability",
    "equation",
    "theorem",
    "estimate",
    "explain",
    "step-by-step",
    "reasoning",
    "remainder",
    "def",
    "return",
    "python",
    "code",
];
pub const EASY_VERBS: &[&str] = &[
    "rewrite",
    "summarize",
    "classify",
    "translate",
    "paraphrase",
    "list",
    "describe",
    "tell",
    "suggest",
    "poem",
    "story",
    "email",
    "proofread",
    "compose",
    "draft",
    "imagine",
    "pretend",
    "roleplay",
    "recommend",
    "name",
    "give",
    "generate",
    "sentence",
    "tweet",
    "opinion",
    "feel",
    "favorite",
    "best",
    "tips",
];
pub const CONSTRAINTS: &[&str] = &[
    "must",
    "exactly",
    "least",
    "most",
    "only",
    "each",
    "every",
    "without",
    "ensure",
    "constraint",
    "constraints",
    "given",
    "such",
];

fn fnv(s: &str) -> u32 {
    fnv_from(0x811c9dc5, s)
}

/// FNV-1a continued from state `h` (so `fnv_from(fnv(a), b) == fnv(a + b)`).
fn fnv_from(mut h: u32, s: &str) -> u32 {
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// Bit 1: in `HARD_VERBS`, bit 2: `EASY_VERBS`, bit 4: `CONSTRAINTS` (one match instead
/// of three linear list scans per word; a test keeps it in sync with the lists).
fn word_class(w: &str) -> u8 {
    match w {
        "algorithm" | "calculate" | "code" | "complexity" | "compute" | "debug" | "def"
        | "derive" | "determine" | "equation" | "estimate" | "evaluate" | "explain" | "find"
        | "function" | "implement" | "integral" | "optimize" | "probability" | "program"
        | "prove" | "python" | "reasoning" | "remainder" | "return" | "solve" | "step-by-step"
        | "theorem" => 1,
        "best" | "classify" | "compose" | "describe" | "draft" | "email" | "favorite" | "feel"
        | "generate" | "give" | "imagine" | "list" | "name" | "opinion" | "paraphrase" | "poem"
        | "pretend" | "proofread" | "recommend" | "rewrite" | "roleplay" | "sentence" | "story"
        | "suggest" | "summarize" | "tell" | "tips" | "translate" | "tweet" => 2,
        "constraint" | "constraints" | "each" | "ensure" | "every" | "exactly" | "given"
        | "least" | "most" | "must" | "only" | "such" | "without" => 4,
        _ => 0,
    }
}

/// Dense features and hashed word/bigram bucket indices for a prompt.
pub fn features(text: &str, n_segments: usize) -> (Vec<f32>, Vec<u32>) {
    let chars = text.chars().count() as f32;
    let mut digits = 0f32;
    let mut math = 0f32;
    let mut upper = 0f32;
    let mut letters = 0f32;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits += 1.0;
        }
        if matches!(
            c,
            '=' | '+' | '*' | '/' | '^' | '<' | '>' | '%' | '√' | '∑' | '∫' | '≤' | '≥'
        ) {
            math += 1.0;
        }
        if c.is_alphabetic() {
            letters += 1.0;
            if c.is_uppercase() {
                upper += 1.0;
            }
        }
    }
    let is_sep = |c: char| !c.is_alphanumeric() && c != '-' && c != '_';
    // ASCII text: lowercase once and slice words out of it (same result as lowercasing
    // each word); otherwise lowercase per word as at training time.
    let ascii = text.is_ascii();
    let lower = if ascii {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    };
    let owned: Vec<String> = if ascii {
        Vec::new()
    } else {
        text.split(is_sep)
            .filter(|w| !w.is_empty())
            .map(|w| w.to_lowercase())
            .collect()
    };
    let words: Vec<&str> = if ascii {
        lower.split(is_sep).filter(|w| !w.is_empty()).collect()
    } else {
        owned.iter().map(String::as_str).collect()
    };
    let nw = words.len() as f32;
    let (mut n_hard, mut n_easy, mut n_constraints) = (0f32, 0f32, 0f32);
    for w in &words {
        let c = word_class(w);
        n_hard += (c & 1) as f32;
        n_easy += ((c >> 1) & 1) as f32;
        n_constraints += ((c >> 2) & 1) as f32;
    }
    let numbers = text
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .filter(|s| s.chars().any(|c| c.is_ascii_digit()))
        .count() as f32;
    let code = [
        "```", "def ", "return ", "{", "}", ";", "()", "=>", "import ", "class ",
    ]
    .iter()
    .map(|m| text.matches(m).count())
    .sum::<usize>() as f32;
    let mc = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            let b = t.as_bytes();
            b.len() >= 2 && matches!(b[0], b'A'..=b'E') && matches!(b[1], b'.' | b')')
        })
        .count() as f32;
    let latex = (text.matches('$').count()
        + text.matches("\\frac").count()
        + text.matches("\\sqrt").count()) as f32;
    let qty = [
        "how many",
        "how much",
        "what is the",
        "probability",
        "remainder",
        "total",
        "percent",
    ]
    .iter()
    .filter(|p| lower.contains(*p))
    .count() as f32;
    let dense = vec![
        (1.0 + chars).ln(),
        (1.0 + nw).ln(),
        if chars > 0.0 { digits / chars } else { 0.0 },
        if chars > 0.0 {
            100.0 * math / chars
        } else {
            0.0
        },
        (1.0 + code).ln(),
        (1.0 + text.matches('?').count() as f32).ln(),
        mc.min(5.0),
        (1.0 + n_hard).ln(),
        (1.0 + n_easy).ln(),
        (1.0 + numbers).ln(),
        (1.0 + latex).ln(),
        (1.0 + n_constraints).ln(),
        (n_segments.max(1) as f32).ln(),
        (1.0 + text.matches('\n').count() as f32).ln(),
        if nw > 0.0 {
            (letters / nw).min(15.0)
        } else {
            0.0
        },
        if text.contains("Answer:") { 1.0 } else { 0.0 },
        qty,
        if letters > 0.0 { upper / letters } else { 0.0 },
    ];
    let mask = (1u32 << HASH_BITS) - 1;
    let mut hashed: Vec<u32> = Vec::with_capacity(words.len() * 2);
    for (i, &w) in words.iter().enumerate() {
        let w = if w.chars().all(|c| c.is_ascii_digit()) {
            "<num>"
        } else {
            w
        };
        hashed.push(fnv(w) & mask);
        if let Some(n) = words.get(i + 1) {
            let n = if n.chars().all(|c| c.is_ascii_digit()) {
                "<num>"
            } else {
                n
            };
            hashed.push(fnv_from(fnv_from(fnv(w), " "), n) & mask);
        }
    }
    hashed.sort_unstable();
    hashed.dedup();
    (dense, hashed)
}

/// Serialized lexical model (policies/models/difficulty_lexical.json).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LexicalModel {
    pub version: u32,
    pub dense_names: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub dense_w: Vec<f32>,
    pub hash_bits: u32,
    pub hash_w: Vec<f32>,
    pub bias: f32,
    /// Platt scaling applied to the raw logit: p = sigmoid(a * z + b).
    pub platt_a: f32,
    pub platt_b: f32,
    #[serde(default)]
    pub cv: serde_json::Value,
}

/// Optional embedding head (a second weights file): p = sigmoid(w . v + b), combined with
/// the lexical logit by averaging logits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingHead {
    pub dim: usize,
    pub w: Vec<f32>,
    pub bias: f32,
}

pub fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// `Classification::difficulty_model` values.
pub const MODEL_LEXICAL: &str = "lexical";
pub const MODEL_WITH_EMBEDDING: &str = "lexical+embedding";

/// Inverse of [`sigmoid`] (clamped away from 0 and 1), to recombine a score later.
pub fn logit_of(p: f32) -> f32 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// The one way a lexical and an embedding difficulty logit are combined: both are
/// calibrated, so their average is a calibrated-enough logit without a second fit.
pub fn combine(lexical_logit: f32, embedding_logit: f32) -> f32 {
    sigmoid((lexical_logit + embedding_logit) / 2.0)
}

impl LexicalModel {
    pub fn check(&self) -> Result<(), String> {
        let d = DENSE_NAMES.len();
        if self.mean.len() != d || self.std.len() != d || self.dense_w.len() != d {
            return Err(format!("dense feature count mismatch (want {d})"));
        }
        if self.hash_bits != HASH_BITS || self.hash_w.len() != 1usize << HASH_BITS {
            return Err(format!("hashed feature mismatch (want 2^{HASH_BITS})"));
        }
        Ok(())
    }

    /// Raw logit before Platt scaling.
    pub fn logit(&self, dense: &[f32], hashed: &[u32]) -> f32 {
        let mut z = self.bias;
        for (((x, w), m), sd) in dense
            .iter()
            .zip(&self.dense_w)
            .zip(&self.mean)
            .zip(&self.std)
        {
            let sd = if *sd > 1e-6 { *sd } else { 1.0 };
            z += w * (x - m) / sd;
        }
        for &h in hashed {
            if let Some(w) = self.hash_w.get(h as usize) {
                z += w;
            }
        }
        z
    }

    pub fn calibrated_logit(&self, z: f32) -> f32 {
        self.platt_a * z + self.platt_b
    }
}

impl EmbeddingHead {
    pub fn logit(&self, v: &[f32]) -> Option<f32> {
        (v.len() == self.dim)
            .then(|| self.bias + self.w.iter().zip(v).map(|(a, b)| a * b).sum::<f32>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_class_matches_lists() {
        for (list, bit) in [(HARD_VERBS, 1u8), (EASY_VERBS, 2), (CONSTRAINTS, 4)] {
            for w in list {
                assert!(word_class(w) & bit != 0, "{w}");
            }
        }
        for w in ["the", "prover", "lists", ""] {
            let expect = u8::from(HARD_VERBS.contains(&w))
                | (u8::from(EASY_VERBS.contains(&w)) << 1)
                | (u8::from(CONSTRAINTS.contains(&w)) << 2);
            assert_eq!(word_class(w), expect, "{w}");
        }
    }
}
