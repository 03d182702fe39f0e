//! Scoring one shadow pair: cheap signals that need no model (length, refusals, format
//! validity, lexical overlap), the local encoder's similarity when it is loaded, and an
//! optional judge's preference — folded into one number, the quality of the weaker
//! ("cheap") answer relative to the stronger one, which calibration averages.

use crate::canonical::{ChatResponse, ContentPart, ResponseFormat};

/// What one answer looks like, without reading it twice.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerSignals {
    pub chars: usize,
    pub refusal: bool,
    /// `None` when nothing in the request or the answer implies a format to check.
    pub format_ok: Option<bool>,
    pub tool_calls: usize,
}

/// The concatenated text of an answer (tool-call arguments included).
pub fn answer_text(r: &ChatResponse) -> String {
    let mut out = String::new();
    for part in &r.content {
        let t = match part {
            ContentPart::Text { text, .. } => text.as_str(),
            ContentPart::ToolCall { arguments, .. } => arguments.as_str(),
            _ => continue,
        };
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(t);
    }
    out
}

pub fn signals(r: &ChatResponse, format: Option<&ResponseFormat>) -> AnswerSignals {
    let text = answer_text(r);
    let tool_calls = r
        .content
        .iter()
        .filter(|p| matches!(p, ContentPart::ToolCall { .. }))
        .count();
    AnswerSignals {
        chars: text.chars().count(),
        refusal: tool_calls == 0 && is_refusal(&text),
        format_ok: if tool_calls > 0 {
            // Tool arguments must be JSON whatever the response format.
            Some(r.content.iter().all(|p| match p {
                ContentPart::ToolCall { arguments, .. } => {
                    serde_json::from_str::<serde_json::Value>(arguments).is_ok()
                }
                _ => true,
            }))
        } else {
            format_valid(&text, format)
        },
        tool_calls,
    }
}

/// Phrases models open a refusal with. Only the start of an answer is checked: a long
/// answer that later says "I cannot guarantee" is not a refusal.
const REFUSALS: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i can't comply",
    "i cannot comply",
    "i won't be able",
    "i'm not able to",
    "i am not able to",
    "i'm unable to",
    "i am unable to",
    "i must decline",
    "i'm sorry, but i can",
    "i am sorry, but i can",
    "sorry, i can't",
    "sorry, but i can't",
    "as an ai language model, i cannot",
    "i can't do that",
];

pub fn is_refusal(text: &str) -> bool {
    let head: String = text
        .chars()
        .take(160)
        .collect::<String>()
        .to_lowercase()
        .replace('\u{2019}', "'");
    REFUSALS.iter().any(|p| head.contains(p))
}

/// JSON when the client asked for JSON; balanced code fences when the answer has any.
pub fn format_valid(text: &str, format: Option<&ResponseFormat>) -> Option<bool> {
    match format {
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. }) => {
            let body = strip_fence(text.trim());
            Some(serde_json::from_str::<serde_json::Value>(body).is_ok())
        }
        _ if text.contains("```") => Some(text.matches("```").count() % 2 == 0),
        _ => None,
    }
}

/// Some models wrap JSON in a ```json fence even when asked for bare JSON.
fn strip_fence(t: &str) -> &str {
    t.strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.strip_suffix("```"))
        .map_or(t, str::trim)
}

/// Unigram F1 between the two texts' lower-cased word multisets: 1 for the same words,
/// 0 for none in common. A crude stand-in for the encoder when it is not loaded.
pub fn lexical_similarity(a: &str, b: &str) -> f64 {
    use std::collections::HashMap;
    fn bag(t: &str) -> HashMap<String, u32> {
        let mut m = HashMap::new();
        for w in t
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *m.entry(w.to_lowercase()).or_insert(0) += 1;
        }
        m
    }
    let (x, y) = (bag(a), bag(b));
    let (nx, ny): (u32, u32) = (x.values().sum(), y.values().sum());
    if nx == 0 && ny == 0 {
        return 1.0;
    }
    if nx == 0 || ny == 0 {
        return 0.0;
    }
    let common: u32 = x
        .iter()
        .map(|(w, c)| (*c).min(y.get(w).copied().unwrap_or(0)))
        .sum();
    2.0 * f64::from(common) / f64::from(nx + ny)
}

pub fn cosine(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    (na > 0.0 && nb > 0.0).then(|| (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0))
}

/// A judge's verdict, in terms of the pair's weak and strong side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    Weak,
    Strong,
    Tie,
}

impl Preference {
    pub fn as_str(self) -> &'static str {
        match self {
            Preference::Weak => "weak",
            Preference::Strong => "strong",
            Preference::Tie => "tie",
        }
    }

    pub fn parse(s: &str) -> Option<Preference> {
        match s {
            "weak" => Some(Preference::Weak),
            "strong" => Some(Preference::Strong),
            "tie" => Some(Preference::Tie),
            _ => None,
        }
    }
}

/// Everything measured about one pair; `quality()` folds it into a single estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct PairScore {
    pub weak: AnswerSignals,
    pub strong: AnswerSignals,
    /// Weak answer length / strong answer length (characters).
    pub length_ratio: f64,
    pub lexical: f64,
    /// Cosine similarity of the two answers' sentence embeddings.
    pub embedding: Option<f64>,
    pub judge: Option<Preference>,
}

impl PairScore {
    pub fn new(
        weak: AnswerSignals,
        strong: AnswerSignals,
        lexical: f64,
        embedding: Option<f64>,
        judge: Option<Preference>,
    ) -> PairScore {
        let length_ratio = if strong.chars == 0 {
            if weak.chars == 0 {
                1.0
            } else {
                // Capped: an answer where the reference said nothing is not "infinitely long".
                10.0
            }
        } else {
            (weak.chars as f64 / strong.chars as f64).min(10.0)
        };
        PairScore {
            weak,
            strong,
            length_ratio,
            lexical,
            embedding,
            judge,
        }
    }

    /// Estimated quality of the weak answer relative to the strong one, in [0, 1].
    ///
    /// A judge's verdict decides when there is one (weak better or tie: 1; strong
    /// better: 0). Without one: an answer that refuses, breaks the expected format or
    /// skips a tool call the reference made scores 0; otherwise similarity to the
    /// reference answer, rescaled so that unrelated text scores 0 and a paraphrase 1,
    /// and discounted when the weak answer is far shorter.
    pub fn quality(&self) -> f64 {
        match self.judge {
            Some(Preference::Weak | Preference::Tie) => return 1.0,
            Some(Preference::Strong) => return 0.0,
            None => {}
        }
        let (w, s) = (&self.weak, &self.strong);
        if w.refusal && !s.refusal {
            return 0.0;
        }
        if s.refusal && !w.refusal {
            // The reference declined and the weak side answered: not worse by this measure.
            return 1.0;
        }
        if s.format_ok == Some(true) && w.format_ok == Some(false) {
            return 0.0;
        }
        if s.tool_calls > 0 && w.tool_calls == 0 {
            return 0.0;
        }
        let similar = match self.embedding {
            // MiniLM: unrelated answers sit near 0.2, paraphrases above 0.8.
            Some(cos) => ((cos - EMBED_FLOOR) / (EMBED_CEIL - EMBED_FLOOR)).clamp(0.0, 1.0),
            // Word overlap: unrelated text ~0.1, a faithful rewording ~0.6.
            None => ((self.lexical - LEX_FLOOR) / (LEX_CEIL - LEX_FLOOR)).clamp(0.0, 1.0),
        };
        let length = (self.length_ratio / SHORT_ANSWER_RATIO).min(1.0);
        similar * length
    }
}

const EMBED_FLOOR: f64 = 0.3;
const EMBED_CEIL: f64 = 0.8;
const LEX_FLOOR: f64 = 0.1;
const LEX_CEIL: f64 = 0.6;
/// A weak answer under this share of the reference's length is discounted in proportion.
const SHORT_ANSWER_RATIO: f64 = 0.3;

/// The rubric a judge model answers with one word. Answers are shown as A and B in an
/// order the caller randomizes, so a judge's position bias averages out.
pub const JUDGE_SYSTEM: &str = "You compare two answers to the same request. Judge which answer better serves the user: correctness first, then completeness, then clarity. Length alone is not quality. Reply with exactly one word: A, B, or TIE.";

pub fn judge_prompt(request_text: &str, a: &str, b: &str) -> String {
    format!(
        "[Request]\n{request_text}\n\n[Answer A]\n{a}\n\n[Answer B]\n{b}\n\nWhich answer is better? Reply with exactly one word: A, B, or TIE."
    )
}

/// What the judge said, as A/B/TIE; anything else is no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    A,
    B,
    Tie,
}

pub fn parse_verdict(text: &str) -> Option<Verdict> {
    let word: String = text
        .trim()
        .trim_start_matches(['*', '"', '\'', '[', '('])
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<String>()
        .to_ascii_uppercase();
    match word.as_str() {
        "A" => Some(Verdict::A),
        "B" => Some(Verdict::B),
        "TIE" => Some(Verdict::Tie),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{StopReason, Usage};

    fn resp(parts: Vec<ContentPart>) -> ChatResponse {
        ChatResponse {
            id: "r".into(),
            model: "m".into(),
            content: parts,
            stop_reason: StopReason::EndTurn,
            usage: Usage::default(),
            created: 0,
        }
    }

    fn text(t: &str) -> ChatResponse {
        resp(vec![ContentPart::text(t)])
    }

    #[test]
    fn refusals_are_found_at_the_start_only() {
        assert!(is_refusal("I'm sorry, but I can't help with that."));
        assert!(is_refusal("I\u{2019}m unable to share that."));
        assert!(!is_refusal("Paris is the capital of France."));
        let long = format!(
            "{} I cannot help it if the data is wrong.",
            "x ".repeat(100)
        );
        assert!(!is_refusal(&long));
    }

    #[test]
    fn format_validity_follows_the_request() {
        let json = Some(ResponseFormat::JsonObject);
        assert_eq!(format_valid("{\"a\": 1}", json.as_ref()), Some(true));
        assert_eq!(
            format_valid("```json\n{\"a\": 1}\n```", json.as_ref()),
            Some(true)
        );
        assert_eq!(format_valid("Sure! {\"a\": 1}", json.as_ref()), Some(false));
        assert_eq!(format_valid("```rust\nfn main() {}\n```", None), Some(true));
        assert_eq!(format_valid("```rust\nfn main() {}", None), Some(false));
        assert_eq!(format_valid("plain words", None), None);
    }

    #[test]
    fn tool_call_arguments_must_be_json() {
        let call = |args: &str| {
            resp(vec![ContentPart::ToolCall {
                id: "c".into(),
                name: "f".into(),
                arguments: args.into(),
            }])
        };
        let s = signals(&call("{\"x\":1}"), None);
        assert_eq!(
            (s.tool_calls, s.format_ok, s.refusal),
            (1, Some(true), false)
        );
        assert_eq!(signals(&call("{x:1"), None).format_ok, Some(false));
    }

    #[test]
    fn lexical_similarity_bounds() {
        assert_eq!(lexical_similarity("the cat sat", "The cat sat"), 1.0);
        assert_eq!(lexical_similarity("alpha beta", "gamma delta"), 0.0);
        let s = lexical_similarity("Paris is the capital", "The capital is Paris, of course");
        assert!(s > 0.7 && s < 1.0, "{s}");
        assert_eq!(lexical_similarity("", ""), 1.0);
        assert_eq!(lexical_similarity("", "x"), 0.0);
    }

    #[test]
    fn cosine_basics() {
        assert_eq!(cosine(&[1.0, 0.0], &[1.0, 0.0]), Some(1.0));
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 1.0]), Some(0.0));
        assert_eq!(cosine(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), None);
    }

    fn score(weak: &str, strong: &str, embedding: Option<f64>) -> PairScore {
        PairScore::new(
            signals(&text(weak), None),
            signals(&text(strong), None),
            lexical_similarity(weak, strong),
            embedding,
            None,
        )
    }

    #[test]
    fn quality_rules() {
        // The judge decides when present.
        let mut s = score("no", "a long and careful answer", None);
        s.judge = Some(Preference::Tie);
        assert_eq!(s.quality(), 1.0);
        s.judge = Some(Preference::Strong);
        assert_eq!(s.quality(), 0.0);
        // Refusing where the reference answered is worthless.
        assert_eq!(
            score("I can't help with that.", "Paris.", Some(0.9)).quality(),
            0.0
        );
        assert_eq!(
            score("Paris.", "I can't help with that.", Some(0.1)).quality(),
            1.0
        );
        // Similarity, rescaled.
        assert_eq!(
            score("Paris is the capital.", "The capital is Paris.", Some(0.95)).quality(),
            1.0
        );
        assert_eq!(
            score("Bananas are yellow.", "The capital is Paris.", Some(0.2)).quality(),
            0.0
        );
        let mid = score("The capital is Lyon.", "The capital is Paris.", Some(0.55)).quality();
        assert!((mid - 0.5).abs() < 1e-9, "{mid}");
        // A far shorter answer is discounted.
        let short = score(
            "Paris",
            &"Paris is the capital of France. ".repeat(10),
            Some(0.9),
        );
        assert!(
            short.length_ratio < 0.1 && short.quality() < 0.5,
            "{short:?}"
        );
        // Broken format where the reference's was fine.
        let q = PairScore::new(
            signals(&text("```py\nprint(1)"), None),
            signals(&text("```py\nprint(1)\n```"), None),
            0.9,
            Some(0.95),
            None,
        )
        .quality();
        assert_eq!(q, 0.0);
    }

    #[test]
    fn verdicts_parse_leniently_but_not_loosely() {
        assert_eq!(parse_verdict("A"), Some(Verdict::A));
        assert_eq!(parse_verdict(" b.\n"), Some(Verdict::B));
        assert_eq!(parse_verdict("**TIE**"), Some(Verdict::Tie));
        assert_eq!(parse_verdict("Answer A is better"), None);
        assert_eq!(parse_verdict(""), None);
    }
}
