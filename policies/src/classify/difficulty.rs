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

const HARD_VERBS: &[&str] = &[
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
const EASY_VERBS: &[&str] = &[
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
const CONSTRAINTS: &[&str] = &[
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
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
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
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    let nw = words.len() as f32;
    let count = |list: &[&str]| words.iter().filter(|w| list.contains(&w.as_str())).count() as f32;
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
    let lower = text.to_lowercase();
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
        (1.0 + count(HARD_VERBS)).ln(),
        (1.0 + count(EASY_VERBS)).ln(),
        (1.0 + numbers).ln(),
        (1.0 + latex).ln(),
        (1.0 + count(CONSTRAINTS)).ln(),
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
    for (i, w) in words.iter().enumerate() {
        let w = if w.chars().all(|c| c.is_ascii_digit()) {
            "<num>"
        } else {
            w.as_str()
        };
        hashed.push(fnv(w) & mask);
        if let Some(n) = words.get(i + 1) {
            let n = if n.chars().all(|c| c.is_ascii_digit()) {
                "<num>"
            } else {
                n.as_str()
            };
            hashed.push(fnv(&format!("{w} {n}")) & mask);
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
