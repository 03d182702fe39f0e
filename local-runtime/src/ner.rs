//! Token-classification NER (Rampart, a 6-layer BERT with BIO labels) for PII spans.
//!
//! The text is tokenized once without special tokens; tokens are cut into overlapping
//! windows of at most `window_tokens` (each wrapped as `[CLS] … [SEP]`), all windows of a
//! text run as one padded batch, per-token softmax gives a label and its probability, and
//! consecutive tokens of one entity are merged into spans with byte offsets into the
//! original text (the tokenizer lower-cases, but its offsets index the input).

use std::path::PathBuf;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::config::{ExecutionProvider, RuntimeConfig};
use crate::error::RuntimeError;
use crate::files;

/// The entity types Rampart labels (its `id2label` without the B-/I- prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NerLabel {
    GivenName,
    Surname,
    Email,
    Phone,
    Url,
    TaxId,
    BankAccount,
    RoutingNumber,
    GovernmentId,
    Passport,
    DriversLicense,
    BuildingNumber,
    StreetName,
    SecondaryAddress,
    City,
    State,
    ZipCode,
}

impl NerLabel {
    pub const ALL: [NerLabel; 17] = [
        NerLabel::GivenName,
        NerLabel::Surname,
        NerLabel::Email,
        NerLabel::Phone,
        NerLabel::Url,
        NerLabel::TaxId,
        NerLabel::BankAccount,
        NerLabel::RoutingNumber,
        NerLabel::GovernmentId,
        NerLabel::Passport,
        NerLabel::DriversLicense,
        NerLabel::BuildingNumber,
        NerLabel::StreetName,
        NerLabel::SecondaryAddress,
        NerLabel::City,
        NerLabel::State,
        NerLabel::ZipCode,
    ];

    /// The label as the model's config names it (`GIVEN_NAME`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            NerLabel::GivenName => "GIVEN_NAME",
            NerLabel::Surname => "SURNAME",
            NerLabel::Email => "EMAIL",
            NerLabel::Phone => "PHONE",
            NerLabel::Url => "URL",
            NerLabel::TaxId => "TAX_ID",
            NerLabel::BankAccount => "BANK_ACCOUNT",
            NerLabel::RoutingNumber => "ROUTING_NUMBER",
            NerLabel::GovernmentId => "GOVERNMENT_ID",
            NerLabel::Passport => "PASSPORT",
            NerLabel::DriversLicense => "DRIVERS_LICENSE",
            NerLabel::BuildingNumber => "BUILDING_NUMBER",
            NerLabel::StreetName => "STREET_NAME",
            NerLabel::SecondaryAddress => "SECONDARY_ADDRESS",
            NerLabel::City => "CITY",
            NerLabel::State => "STATE",
            NerLabel::ZipCode => "ZIP_CODE",
        }
    }

    pub fn parse(s: &str) -> Option<NerLabel> {
        NerLabel::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// A BIO tag: `O`, or the beginning / inside of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Outside,
    Begin(NerLabel),
    Inside(NerLabel),
}

impl Tag {
    /// Parses `O`, `B-X`, `I-X`; an unknown entity type reads as `O` so a newer label map
    /// cannot make the detector fail.
    pub fn parse(s: &str) -> Tag {
        match s.split_once('-') {
            Some(("B", l)) => NerLabel::parse(l).map_or(Tag::Outside, Tag::Begin),
            Some(("I", l)) => NerLabel::parse(l).map_or(Tag::Outside, Tag::Inside),
            _ => Tag::Outside,
        }
    }
}

/// One classified token: its tag, softmax probability and byte span in the text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaggedToken {
    pub tag: Tag,
    pub score: f32,
    pub start: usize,
    pub end: usize,
}

/// A detected entity: byte offsets into the text passed to [`NerModel::detect`], and the
/// lowest token probability inside it (one unsure sub-word makes the span unsure).
#[derive(Debug, Clone, PartialEq)]
pub struct NerSpan {
    pub label: NerLabel,
    pub start: usize,
    pub end: usize,
    pub score: f32,
}

/// Where the model lives and how it is cut into windows.
#[derive(Debug, Clone)]
pub struct NerConfig {
    /// Directory with the ONNX file, `tokenizer.json` and `config.json` (`id2label`).
    pub dir: PathBuf,
    /// ONNX file inside `dir` (`model_int8.onnx` by default; `model_q4.onnx` as shipped).
    pub model_file: String,
    /// Tokens per window, `[CLS]`/`[SEP]` excluded (the model allows 510).
    pub window_tokens: usize,
    /// Tokens shared by adjacent windows, so an entity on a boundary is seen whole once.
    pub overlap_tokens: usize,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    pub execution_providers: Vec<ExecutionProvider>,
}

impl NerConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NerConfig {
            dir: dir.into(),
            model_file: "model_int8.onnx".into(),
            window_tokens: 254,
            overlap_tokens: 32,
            threads: 1,
            execution_providers: vec![ExecutionProvider::Cpu],
        }
    }
}

#[derive(serde::Deserialize)]
struct LabelConfig {
    id2label: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    max_position_embeddings: Option<usize>,
}

/// A loaded NER model. `Send + Sync`; one inference at a time (the session is locked).
pub struct NerModel {
    session: Mutex<Session>,
    tokenizer: tokenizers::Tokenizer,
    tags: Vec<Tag>,
    cls: u32,
    sep: u32,
    window: usize,
    overlap: usize,
    token_type_ids: bool,
    provider: &'static str,
}

impl std::fmt::Debug for NerModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NerModel")
            .field("window", &self.window)
            .field("provider", &self.provider)
            .finish()
    }
}

impl NerModel {
    /// Loads the model; every problem (missing files, bad label map, a window larger than
    /// the model's positions) is an error here rather than a weaker detector later.
    pub fn load(rt: &RuntimeConfig, cfg: &NerConfig) -> Result<Self, RuntimeError> {
        let dir = &cfg.dir;
        files::require_files(dir, &[&cfg.model_file, "tokenizer.json", "config.json"])?;
        files::check_manifest(dir)?;
        let lc: LabelConfig = files::read_json(&dir.join("config.json"))?;
        let invalid = |reason: String| RuntimeError::InvalidModel {
            path: dir.to_path_buf(),
            reason,
        };
        let mut tags = vec![Tag::Outside; lc.id2label.len()];
        for (k, v) in &lc.id2label {
            let i: usize = k
                .parse()
                .map_err(|_| invalid(format!("id2label key {k:?} is not an index")))?;
            let slot = tags
                .get_mut(i)
                .ok_or_else(|| invalid(format!("id2label index {i} out of range")))?;
            *slot = Tag::parse(v);
        }
        let positions = lc.max_position_embeddings.unwrap_or(512);
        if cfg.window_tokens + 2 > positions || cfg.window_tokens == 0 {
            return Err(invalid(format!(
                "window of {} tokens does not fit the model's {positions} positions",
                cfg.window_tokens
            )));
        }
        if cfg.overlap_tokens >= cfg.window_tokens {
            return Err(invalid("overlap must be smaller than the window".into()));
        }
        let mut tokenizer = files::load_tokenizer(&dir.join("tokenizer.json"))?;
        // Windows are cut here, so the tokenizer must neither truncate nor pad.
        tokenizer
            .with_truncation(None)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        tokenizer.with_padding(None);
        let special = |t: &str| {
            tokenizer
                .token_to_id(t)
                .ok_or_else(|| invalid(format!("tokenizer has no {t} token")))
        };
        let (cls, sep) = (special("[CLS]")?, special("[SEP]")?);
        let env = crate::env::environment(rt)?;
        let (session, provider) = crate::env::create_session(
            &env,
            &dir.join(&cfg.model_file),
            &cfg.execution_providers,
            cfg.threads.max(1),
        )?;
        let token_type_ids = session
            .inputs()
            .iter()
            .any(|i| i.name() == "token_type_ids");
        Ok(NerModel {
            session: Mutex::new(session),
            tokenizer,
            tags,
            cls,
            sep,
            window: cfg.window_tokens,
            overlap: cfg.overlap_tokens,
            token_type_ids,
            provider,
        })
    }

    /// "cuda" or "cpu".
    pub fn provider(&self) -> &'static str {
        self.provider
    }

    /// Tokens the model would read for `text` (without `[CLS]`/`[SEP]`).
    pub fn count_tokens(&self, text: &str) -> Result<usize, RuntimeError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().len())
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))
    }

    /// Entities in `text` whose every token has probability >= `min_score`; byte offsets
    /// into `text`, on char boundaries, sorted by start.
    pub fn detect(&self, text: &str, min_score: f32) -> Result<Vec<NerSpan>, RuntimeError> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| RuntimeError::Tokenizer(e.to_string()))?;
        let ids = enc.get_ids();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let offsets = enc.get_offsets();
        let words = enc.get_word_ids();
        let windows = plan_windows(words, self.window, self.overlap);
        let tokens = self.tag_windows(ids, offsets, &windows)?;
        let mut spans = Vec::new();
        for window_tokens in &tokens {
            spans.extend(aggregate(text, window_tokens, min_score));
        }
        let mut spans = merge_windowed(spans);
        for s in &mut spans {
            snap_to_char_boundaries(text, s);
        }
        Ok(spans)
    }

    /// Runs every window as one padded batch; returns the tagged tokens of each window.
    fn tag_windows(
        &self,
        ids: &[u32],
        offsets: &[(usize, usize)],
        windows: &[(usize, usize)],
    ) -> Result<Vec<Vec<TaggedToken>>, RuntimeError> {
        let b = windows.len();
        let s = windows.iter().map(|(a, z)| z - a).max().unwrap_or(0) + 2;
        let mut input = vec![0i64; b * s];
        let mut mask = vec![0i64; b * s];
        for (r, &(a, z)) in windows.iter().enumerate() {
            let row = &mut input[r * s..(r + 1) * s];
            row[0] = i64::from(self.cls);
            for (j, &id) in ids[a..z].iter().enumerate() {
                row[j + 1] = i64::from(id);
            }
            row[z - a + 1] = i64::from(self.sep);
            mask[r * s..r * s + (z - a + 2)].fill(1);
        }
        let shape = vec![b as i64, s as i64];
        let ids_t = Tensor::from_array((shape.clone(), input)).map_err(RuntimeError::ort)?;
        let mask_t = Tensor::from_array((shape.clone(), mask)).map_err(RuntimeError::ort)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = if self.token_type_ids {
            let types =
                Tensor::from_array((shape, vec![0i64; b * s])).map_err(RuntimeError::ort)?;
            session.run(ort::inputs! {
                "input_ids" => ids_t,
                "attention_mask" => mask_t,
                "token_type_ids" => types,
            })
        } else {
            session.run(ort::inputs! {
                "input_ids" => ids_t,
                "attention_mask" => mask_t,
            })
        }
        .map_err(RuntimeError::ort)?;
        let (oshape, logits) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(RuntimeError::ort)?;
        let n = self.tags.len();
        if oshape.len() != 3 || oshape[0] as usize != b || oshape[1] as usize != s {
            return Err(RuntimeError::Ort(format!(
                "unexpected NER output shape {oshape:?}"
            )));
        }
        if oshape[2] as usize != n {
            return Err(RuntimeError::Ort(format!(
                "NER output has {} labels, config.json {n}",
                oshape[2]
            )));
        }
        let mut out = Vec::with_capacity(b);
        for (r, &(a, z)) in windows.iter().enumerate() {
            let mut toks = Vec::with_capacity(z - a);
            for (j, &(start, end)) in offsets[a..z].iter().enumerate() {
                if end <= start {
                    continue; // zero-width tokens carry no text
                }
                let row = &logits[(r * s + j + 1) * n..(r * s + j + 2) * n];
                let (best, score) = softmax_argmax(row);
                toks.push(TaggedToken {
                    tag: self.tags[best],
                    score,
                    start,
                    end,
                });
            }
            out.push(toks);
        }
        Ok(out)
    }
}

/// Index and probability of the largest softmax entry (numerically stable).
pub fn softmax_argmax(logits: &[f32]) -> (usize, f32) {
    let (mut best, mut max) = (0, f32::NEG_INFINITY);
    for (i, &x) in logits.iter().enumerate() {
        if x > max {
            best = i;
            max = x;
        }
    }
    let sum: f32 = logits.iter().map(|&x| (x - max).exp()).sum();
    (best, if sum > 0.0 { 1.0 / sum } else { 0.0 })
}

/// Splits `word_ids.len()` tokens into `[start, end)` windows of at most `budget` tokens
/// covering every token. Each window after the first starts `overlap` tokens before the
/// previous one ended, moved back to the start of its word (a window should not open on a
/// sub-word continuation), but always after the previous window's start so planning makes
/// progress even on one very long word.
pub fn plan_windows(
    word_ids: &[Option<u32>],
    budget: usize,
    overlap: usize,
) -> Vec<(usize, usize)> {
    let budget = budget.max(1);
    let overlap = overlap.min(budget - 1);
    let count = word_ids.len();
    let mut windows = Vec::new();
    let mut start = 0;
    while start < count {
        let end = (start + budget).min(count);
        windows.push((start, end));
        if end == count {
            break;
        }
        let mut next = end - overlap;
        while next > start + 1 && word_ids[next].is_some() && word_ids[next] == word_ids[next - 1] {
            next -= 1;
        }
        start = next.max(start + 1);
    }
    windows
}

/// Merges tagged tokens into entity spans. A token continues the current span when it has
/// the same entity type, is not a `B-` of a new entity and only whitespace separates them
/// (sub-words and the words of one street name collapse into one span). Tokens below
/// `min_score` and `O` tokens end the current span.
pub fn aggregate(text: &str, tokens: &[TaggedToken], min_score: f32) -> Vec<NerSpan> {
    let mut spans = Vec::new();
    let mut current: Option<NerSpan> = None;
    for t in tokens {
        let (label, begin) = match t.tag {
            Tag::Outside => (None, false),
            Tag::Begin(l) => (Some(l), true),
            Tag::Inside(l) => (Some(l), false),
        };
        let Some(label) = label.filter(|_| t.score >= min_score) else {
            spans.extend(current.take());
            continue;
        };
        if let Some(c) = current.as_mut() {
            let gap = text.get(c.end..t.start).unwrap_or("x");
            // A sub-word continuation (no gap) joins even when tagged B-: the model
            // sometimes re-begins inside a word, and a word is never two entities.
            let joins = c.label == label
                && gap.chars().all(char::is_whitespace)
                && (!begin || gap.is_empty());
            if joins {
                c.end = t.end;
                c.score = c.score.min(t.score);
                continue;
            }
        }
        spans.extend(current.take());
        current = Some(NerSpan {
            label,
            start: t.start,
            end: t.end,
            score: t.score,
        });
    }
    spans.extend(current);
    spans
}

/// Unions overlapping spans of one type that overlapping windows produced (an entity cut
/// by one window's edge is whole in the next); distinct entities stay apart.
pub fn merge_windowed(mut spans: Vec<NerSpan>) -> Vec<NerSpan> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut merged: Vec<NerSpan> = Vec::with_capacity(spans.len());
    let mut running: std::collections::HashMap<NerLabel, usize> = Default::default();
    for s in spans {
        if let Some(&i) = running.get(&s.label) {
            let m = &mut merged[i];
            if s.start < m.end {
                m.end = m.end.max(s.end);
                m.score = m.score.max(s.score);
                continue;
            }
        }
        running.insert(s.label, merged.len());
        merged.push(s);
    }
    merged
}

fn snap_to_char_boundaries(text: &str, s: &mut NerSpan) {
    s.end = s.end.min(text.len());
    s.start = s.start.min(s.end);
    while !text.is_char_boundary(s.start) {
        s.start -= 1;
    }
    while !text.is_char_boundary(s.end) {
        s.end += 1;
    }
}

/// The model directory under the cache (`$CACHE/models/rampart-ner`).
pub fn default_ner_dir() -> PathBuf {
    crate::config::default_model_dir(crate::model_names::RAMPART_NER)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(tag: Tag, score: f32, start: usize, end: usize) -> TaggedToken {
        TaggedToken {
            tag,
            score,
            start,
            end,
        }
    }

    #[test]
    fn tags_parse_and_unknown_labels_are_outside() {
        assert_eq!(Tag::parse("B-GIVEN_NAME"), Tag::Begin(NerLabel::GivenName));
        assert_eq!(Tag::parse("I-ZIP_CODE"), Tag::Inside(NerLabel::ZipCode));
        assert_eq!(Tag::parse("O"), Tag::Outside);
        assert_eq!(Tag::parse("B-SHOE_SIZE"), Tag::Outside);
        for l in NerLabel::ALL {
            assert_eq!(NerLabel::parse(l.as_str()), Some(l));
        }
    }

    #[test]
    fn windows_cover_every_token_with_overlap_on_word_starts() {
        // 10 words of 3 sub-word tokens each.
        let words: Vec<Option<u32>> = (0..30).map(|i| Some(i / 3)).collect();
        let w = plan_windows(&words, 8, 3);
        assert_eq!(w.first().map(|x| x.0), Some(0));
        assert_eq!(w.last().map(|x| x.1), Some(30));
        for pair in w.windows(2) {
            let ((a0, z0), (a1, _)) = (pair[0], pair[1]);
            assert!(a1 > a0 && a1 < z0, "windows overlap and progress: {w:?}");
            assert_ne!(words[a1], words[a1 - 1], "window opens on a word start");
        }
        assert!(w.iter().all(|(a, z)| z - a <= 8));
        // short input: one window
        assert_eq!(plan_windows(&words[..5], 8, 3), vec![(0, 5)]);
        assert!(plan_windows(&[], 8, 3).is_empty());
    }

    #[test]
    fn windows_progress_on_one_huge_word() {
        let words = vec![Some(0u32); 50];
        let w = plan_windows(&words, 8, 3);
        assert_eq!(w.last().map(|x| x.1), Some(50));
        assert!(w.windows(2).all(|p| p[1].0 > p[0].0));
    }

    #[test]
    fn bio_tokens_merge_into_spans_with_min_score() {
        let text = "call Maria Gonzalez at 12 Elm Street";
        use NerLabel::*;
        let toks = [
            tok(Tag::Outside, 0.99, 0, 4),
            tok(Tag::Begin(GivenName), 0.9, 5, 8),   // "Mar"
            tok(Tag::Inside(GivenName), 0.8, 8, 10), // "ia"
            tok(Tag::Begin(Surname), 0.95, 11, 19),
            tok(Tag::Outside, 0.99, 20, 22),
            tok(Tag::Begin(BuildingNumber), 0.7, 23, 25),
            tok(Tag::Begin(StreetName), 0.9, 26, 29),
            tok(Tag::Inside(StreetName), 0.6, 30, 36),
        ];
        let spans = aggregate(text, &toks, 0.5);
        let got: Vec<(NerLabel, &str)> = spans
            .iter()
            .map(|s| (s.label, &text[s.start..s.end]))
            .collect();
        assert_eq!(
            got,
            vec![
                (GivenName, "Maria"),
                (Surname, "Gonzalez"),
                (BuildingNumber, "12"),
                (StreetName, "Elm Street")
            ]
        );
        assert!(
            (spans[0].score - 0.8).abs() < 1e-6,
            "span score is its weakest token"
        );
        // a token under the threshold splits the street name
        let spans = aggregate(text, &toks, 0.65);
        assert_eq!(
            spans.last().map(|s| &text[s.start..s.end]),
            Some("Elm"),
            "{spans:?}"
        );
    }

    #[test]
    fn begin_tag_after_whitespace_starts_a_new_entity() {
        let text = "Ann Bob";
        let toks = [
            tok(Tag::Begin(NerLabel::GivenName), 0.9, 0, 3),
            tok(Tag::Begin(NerLabel::GivenName), 0.9, 4, 7),
        ];
        assert_eq!(aggregate(text, &toks, 0.5).len(), 2);
    }

    #[test]
    fn windowed_partials_union_and_distinct_entities_stay_apart() {
        let s = |label, start, end| NerSpan {
            label,
            start,
            end,
            score: 0.9,
        };
        use NerLabel::*;
        let merged = merge_windowed(vec![
            s(StreetName, 10, 20),
            s(StreetName, 15, 28), // same entity seen by the next window
            s(GivenName, 12, 14),
            s(StreetName, 40, 50),
            s(StreetName, 10, 20), // exact duplicate from the overlap
        ]);
        let got: Vec<(NerLabel, usize, usize)> =
            merged.iter().map(|m| (m.label, m.start, m.end)).collect();
        assert_eq!(
            got,
            vec![
                (StreetName, 10, 28),
                (GivenName, 12, 14),
                (StreetName, 40, 50)
            ]
        );
    }

    #[test]
    fn softmax_argmax_is_stable() {
        let (i, p) = softmax_argmax(&[1000.0, 1001.0, 999.0]);
        assert_eq!(i, 1);
        assert!((p - 0.665).abs() < 0.01, "{p}");
    }

    #[test]
    fn spans_snap_to_char_boundaries() {
        let text = "Zoë";
        let mut s = NerSpan {
            label: NerLabel::GivenName,
            start: 0,
            end: 3, // inside 'ë' (2 bytes at 2..4)
            score: 1.0,
        };
        snap_to_char_boundaries(text, &mut s);
        assert_eq!(&text[s.start..s.end], "Zoë");
    }
}
