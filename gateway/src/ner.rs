//! The learned PII detector (Rampart NER, `local_runtime::NerModel`) on the request path:
//! when it runs (mode + a cheap gate), how its raw spans become [`policies::Finding`]s
//! (precision rules: full names, street addresses, identifiers with enough digits), and
//! what happens when it fails (fail closed). Configured under `classifier.ner`.
//!
//! The model is CPU-heavy (tens of ms per 200 tokens), so `PolicyRouter::decide` runs it
//! only where it can change the outcome, and on a multi-threaded runtime inside
//! `block_in_place`, so the other tasks of that worker move to other threads meanwhile.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use local_runtime::{ExecutionProvider, NerConfig, NerLabel, NerModel, NerSpan, RuntimeConfig};
use policies::{Category, Classification, Detector, Finding, SegmentRole};
use serde::Deserialize;

use crate::telemetry::metrics::Metrics;

/// When the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NerMode {
    /// On every request that passes the text gate.
    Always,
    /// Only where it can change the outcome: not when the rules already made the request
    /// privacy-critical and the decision redacts nothing (the request stays local
    /// whatever the model finds). With a redacting decision it runs, so the redaction
    /// covers the names and addresses it finds too.
    #[default]
    Auto,
    /// Only when the rules found nothing sensitive.
    WhenRulesSilent,
    Off,
}

impl NerMode {
    pub fn as_str(self) -> &'static str {
        match self {
            NerMode::Always => "always",
            NerMode::Auto => "auto",
            NerMode::WhenRulesSilent => "when_rules_silent",
            NerMode::Off => "off",
        }
    }
}

/// `classifier.ner` in the gateway config (docs/configuration.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerSettings {
    #[serde(default)]
    pub mode: NerMode,
    /// Lowest token probability that counts; a span's confidence is its weakest token.
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    /// Names need a higher bar than identifiers: a false name is the common error.
    #[serde(default = "default_name_threshold")]
    pub name_threshold: f32,
    /// A full name counts only with a personal cue word (my, customer, dear, ship, ...)
    /// and no public/fiction cue (true, the default: precision first); false counts
    /// every full name unless a public/fiction cue is present (higher recall, more false
    /// positives; see docs/classification.md).
    #[serde(default = "default_true")]
    pub require_person_cue: bool,
    /// Tokens of one request the model reads, newest message first (bounds latency on
    /// long prompts; the rules still read everything).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
    /// Model directory; default `$SWITCHYARD_CACHE/models/rampart-ner`.
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// `model_int8.onnx` (default) or `model_q4.onnx` (the int4 file as shipped).
    #[serde(default = "default_model_file")]
    pub model_file: String,
    #[serde(default = "default_threads")]
    pub threads: usize,
    #[serde(default = "default_eps")]
    pub execution_providers: Vec<ExecutionProvider>,
}

fn default_threshold() -> f32 {
    0.5
}
fn default_name_threshold() -> f32 {
    0.6
}
fn default_true() -> bool {
    true
}
fn default_max_tokens() -> usize {
    2048
}
fn default_model_file() -> String {
    "model_int8.onnx".into()
}
fn default_threads() -> usize {
    1
}
fn default_eps() -> Vec<ExecutionProvider> {
    vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu]
}

impl Default for NerSettings {
    fn default() -> Self {
        NerSettings {
            mode: NerMode::default(),
            threshold: default_threshold(),
            name_threshold: default_name_threshold(),
            require_person_cue: true,
            max_tokens: default_max_tokens(),
            dir: None,
            model_file: default_model_file(),
            threads: default_threads(),
            execution_providers: default_eps(),
        }
    }
}

impl NerSettings {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("threshold", self.threshold),
            ("name_threshold", self.name_threshold),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("classifier.ner.{name} must be within 0..=1"));
            }
        }
        if self.max_tokens == 0 {
            return Err("classifier.ner.max_tokens must be greater than 0".into());
        }
        Ok(())
    }

    pub fn resolved_dir(&self) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(local_runtime::ner::default_ner_dir)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NerError {
    #[error("cannot load the NER model (classifier.ner, mode {mode}) from {dir}: {source}; run scripts/setup-models.sh, or set classifier.ner.mode: off to run without it")]
    Load {
        mode: &'static str,
        dir: String,
        #[source]
        source: local_runtime::RuntimeError,
    },
}

/// What one request's model pass did (metrics label, trace field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NerOutcome {
    Ran,
    /// The rules' decision cannot change (mode) or the text has nothing to find (gate).
    SkippedMode,
    SkippedGate,
    /// Inference failed: the request is treated as sensitive (fail closed).
    Error,
}

impl NerOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            NerOutcome::Ran => "ran",
            NerOutcome::SkippedMode => "skipped_mode",
            NerOutcome::SkippedGate => "skipped_gate",
            NerOutcome::Error => "error",
        }
    }
}

/// The loaded model and its settings. Shared by every request (`Send + Sync`).
pub struct NerDetector {
    model: NerModel,
    settings: NerSettings,
    metrics: OnceLock<Arc<Metrics>>,
}

impl std::fmt::Debug for NerDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NerDetector")
            .field("mode", &self.settings.mode)
            .finish_non_exhaustive()
    }
}

/// Loads the detector unless the mode is `off`. A configured model that does not load is
/// an error: the gateway must not start with a silently weaker detector.
pub fn load(
    settings: &NerSettings,
    runtime: &RuntimeConfig,
) -> Result<Option<Arc<NerDetector>>, NerError> {
    if settings.mode == NerMode::Off {
        tracing::warn!(
            "classifier.ner.mode is off: names and addresses are found by the rules only"
        );
        return Ok(None);
    }
    let dir = settings.resolved_dir();
    let mut cfg = NerConfig::new(&dir);
    cfg.model_file = settings.model_file.clone();
    cfg.threads = settings.threads.max(1);
    cfg.execution_providers = settings.execution_providers.clone();
    let model = NerModel::load(runtime, &cfg).map_err(|source| NerError::Load {
        mode: settings.mode.as_str(),
        dir: dir.display().to_string(),
        source,
    })?;
    tracing::info!(mode = settings.mode.as_str(), file = %settings.model_file,
        execution_provider = model.provider(), "NER model loaded (Rampart, CC BY 4.0)");
    Ok(Some(Arc::new(NerDetector {
        model,
        settings: settings.clone(),
        metrics: OnceLock::new(),
    })))
}

/// The result of [`NerDetector::scan`].
#[derive(Debug)]
pub struct NerRun {
    pub findings: Vec<Finding>,
    pub outcome: NerOutcome,
    pub elapsed: Duration,
}

impl NerDetector {
    pub fn settings(&self) -> &NerSettings {
        &self.settings
    }

    /// Where time spent shows (`switchyard_ner_duration_seconds`).
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.metrics.set(metrics);
    }

    /// Whether the mode lets the model run, given what the rules found and decided.
    pub fn mode_allows(&self, rules: &Classification, critical_without_redaction: bool) -> bool {
        match self.settings.mode {
            NerMode::Off => false,
            NerMode::Always => true,
            NerMode::Auto => !critical_without_redaction,
            NerMode::WhenRulesSilent => !rules.sensitive,
        }
    }

    /// Runs the model over `segments` (gate, budget, precision rules) and returns the
    /// model findings with offsets into the canonical text. Never fails: an inference
    /// error is logged, counted and turned into a finding over every scanned segment, so
    /// the request is handled as sensitive (fail closed).
    pub fn scan(
        &self,
        segments: &[(SegmentRole, &str)],
        rules: &Classification,
        mode_allows: bool,
    ) -> NerRun {
        let started = Instant::now();
        let span = crate::telemetry::spans::ner();
        let _enter = span.enter();
        let run = if !mode_allows {
            NerRun {
                findings: Vec::new(),
                outcome: NerOutcome::SkippedMode,
                elapsed: Duration::ZERO,
            }
        } else if !segments.iter().any(|(_, t)| gate(t)) {
            NerRun {
                findings: Vec::new(),
                outcome: NerOutcome::SkippedGate,
                elapsed: Duration::ZERO,
            }
        } else {
            self.run_model(segments, rules)
        };
        let elapsed = started.elapsed();
        crate::telemetry::spans::record_ner(
            &span,
            run.outcome.as_str(),
            elapsed.as_secs_f64() * 1e3,
            run.findings.len(),
        );
        if let Some(m) = self.metrics.get() {
            m.observe_ner(run.outcome.as_str(), elapsed);
        }
        NerRun { elapsed, ..run }
    }

    fn run_model(&self, segments: &[(SegmentRole, &str)], rules: &Classification) -> NerRun {
        let offsets = segment_offsets(segments);
        let mut findings = Vec::new();
        let mut budget_bytes = self.settings.max_tokens.saturating_mul(4);
        let mut failed: Vec<usize> = Vec::new();
        // Newest message first: that is the text this request adds.
        for si in (0..segments.len()).rev() {
            let text = segments[si].1;
            if budget_bytes == 0 {
                break;
            }
            if !gate(text) {
                continue;
            }
            let cut = floor_char_boundary(text, budget_bytes.min(text.len()));
            budget_bytes -= cut;
            let scanned = &text[..cut];
            match with_blocking(|| self.model.detect(scanned, self.settings.threshold)) {
                Ok(spans) => {
                    let ctx = Context::of(scanned, si, rules);
                    for d in interpret(scanned, &spans, &ctx, &self.settings) {
                        findings.push(Finding {
                            category: d.category,
                            detector: Detector::Model,
                            kind: d.kind.into(),
                            start: offsets[si] + d.start,
                            end: offsets[si] + d.end,
                            segment: si,
                            seg_start: d.start,
                            seg_end: d.end,
                            confidence: d.confidence,
                        });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "NER inference failed; treating the request as sensitive (fail closed)");
                    failed.push(si);
                }
            }
        }
        if failed.is_empty() {
            return NerRun {
                findings,
                outcome: NerOutcome::Ran,
                elapsed: Duration::ZERO,
            };
        }
        for si in failed {
            let len = segments[si].1.len();
            findings.push(Finding {
                category: Category::Pii,
                detector: Detector::Model,
                kind: "ner_unavailable".into(),
                start: offsets[si],
                end: offsets[si] + len,
                segment: si,
                seg_start: 0,
                seg_end: len,
                confidence: 0.5,
            });
        }
        NerRun {
            findings,
            outcome: NerOutcome::Error,
            elapsed: Duration::ZERO,
        }
    }
}

/// Runs CPU-heavy work off the async scheduler's hot path: on a multi-threaded runtime
/// `block_in_place` hands this worker's other tasks to other threads; elsewhere (a
/// current-thread runtime in tests, the CLI) it simply runs.
pub(crate) fn with_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn segment_offsets(segments: &[(SegmentRole, &str)]) -> Vec<usize> {
    let mut out = Vec::with_capacity(segments.len());
    let mut o = 0;
    for (_, t) in segments {
        out.push(o);
        o += t.len() + 1;
    }
    out
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The cheap gate: the model only adds full names, street addresses and identifiers, so
/// a text needs two adjacent capitalised words, a number followed by a capitalised word,
/// a run of 5+ digits or an `@`. One byte pass, no allocation. Its cost in recall (lower-case names,
/// "Name:"-less single names) is measured in docs/classification.md.
pub fn gate(text: &str) -> bool {
    let b = text.as_bytes();
    let mut prev_cap_word = false; // the previous word started with a capital letter
    let mut prev_number = false; // the previous word was a number
    let mut digits = 0usize;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'@' {
            return true;
        }
        // Digit runs may be grouped by spaces or dashes ("4417 1234", "555-0199").
        if !is_word_byte(c) && c != b' ' && c != b'-' {
            digits = 0;
        }
        // Word start?
        let at_word_start = i == 0 || !is_word_byte(b[i - 1]);
        if at_word_start && is_word_byte(c) {
            let mut j = i;
            while j < b.len() && is_word_byte(b[j]) {
                j += 1;
            }
            let word = &text[i..j];
            let cap = starts_upper(word);
            let number = word.bytes().all(|x| x.is_ascii_digit());
            if cap && word.len() > 1 && (prev_cap_word || prev_number) {
                return true;
            }
            // Only a space (or ", ") between words keeps the pair adjacent.
            let next_adjacent = j < b.len() && (b[j] == b' ' || b[j] == b'\t');
            prev_cap_word = cap && next_adjacent && word.len() > 1;
            prev_number = number && next_adjacent;
            if number {
                digits += word.len();
                if digits >= 5 {
                    return true;
                }
            } else {
                digits = 0;
            }
            i = j;
            continue;
        }
        i += 1;
    }
    false
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c >= 0x80 || c == b'\''
}

fn starts_upper(word: &str) -> bool {
    word.chars().next().is_some_and(char::is_uppercase)
}

/// Text-level facts the precision rules use.
#[derive(Debug, Default)]
pub struct Context {
    /// First/second person or a data-handling word (my, customer, ship, dear, ...).
    personal: bool,
    /// The text is about public figures, fiction, history or media.
    public: bool,
    /// The rules found an identifier (pii/financial/phi, >= 0.5) in this segment.
    rule_identifier: bool,
    /// The rules put the request in phi (names in a health record are phi).
    phi: bool,
    /// Byte spans (in this segment) of the rules' confident findings: a validated rule
    /// knows better what a value is (a Luhn card is financial, not a phone number).
    rule_spans: Vec<(usize, usize)>,
}

const PERSONAL_CUES: &[&str] = &[
    "my",
    "me",
    "i",
    "i'm",
    "im",
    "our",
    "we",
    "us",
    "your",
    "customer",
    "client",
    "patient",
    "employee",
    "applicant",
    "tenant",
    "contact",
    "dear",
    "hi",
    "hello",
    "regards",
    "sincerely",
    "thank",
    "thanks",
    "invoice",
    "order",
    "account",
    "ship",
    "shipping",
    "deliver",
    "delivery",
    "send",
    "mail",
    "call",
    "phone",
    "email",
    "address",
    "dob",
    "born",
    "signed",
    "attached",
    "resume",
    "cv",
    "form",
    "record",
    "profile",
    "booking",
    "reservation",
    "ticket",
    "member",
    "user",
    "staff",
    "colleague",
    "manager",
    "lives",
    "resident",
    "name",
    "named",
    "contract",
    "lease",
    "claim",
    "reach",
    "visit",
    "meet",
    "appointment",
];

const PUBLIC_CUES: &[&str] = &[
    "novel",
    "novels",
    "book",
    "books",
    "film",
    "films",
    "movie",
    "movies",
    "character",
    "characters",
    "fictional",
    "fiction",
    "story",
    "stories",
    "series",
    "episode",
    "season",
    "sitcom",
    "soap",
    "poem",
    "poet",
    "author",
    "wrote",
    "written",
    "actor",
    "actress",
    "singer",
    "band",
    "album",
    "song",
    "president",
    "senator",
    "minister",
    "king",
    "queen",
    "prince",
    "princess",
    "emperor",
    "pope",
    "celebrity",
    "famous",
    "historical",
    "history",
    "biography",
    "century",
    "philosopher",
    "scientist",
    "physicist",
    "painter",
    "composer",
    "novelist",
    "protagonist",
    "villain",
    "hero",
    "detective",
    "wikipedia",
    "chapter",
    "play",
    "opera",
    "painting",
    "museum",
    "inventor",
    "invented",
    "discovered",
    "theorem",
    "nobel",
    "olympic",
    "championship",
    "league",
    "brand",
    "company",
    "founded",
    "founder",
    "ceo",
    "quote",
    "essay",
    "summarize",
    "summarise",
    "plot",
    "game",
    "anime",
    "comic",
    "quotes",
    "quoted",
    "attributed",
    "inc",
    "ltd",
    "llc",
    "gmbh",
    "corp",
    "plc",
];

impl Context {
    pub fn of(text: &str, segment: usize, rules: &Classification) -> Context {
        let mut personal = false;
        let mut public = false;
        for w in text
            .split(|c: char| !(c.is_alphanumeric() || c == '\''))
            // A quote mark opening or closing a word is not part of it ('Thank you).
            .map(|w| w.trim_matches('\''))
            .filter(|w| !w.is_empty() && w.len() <= 14)
        {
            // ASCII-lowercase into a small stack buffer: no allocation per word.
            let mut buf = [0u8; 14];
            let lw = &mut buf[..w.len()];
            lw.copy_from_slice(w.as_bytes());
            lw.make_ascii_lowercase();
            let Ok(lw) = std::str::from_utf8(lw) else {
                continue;
            };
            personal |= PERSONAL_CUES.contains(&lw);
            public |= PUBLIC_CUES.contains(&lw);
        }
        // The rules' multilingual public-person check ("Kim był …", "Wer war …", a
        // biography) besides the English cue words.
        public = public || policies::classify::sensitivity::mentions_public_person(text);
        Context {
            personal,
            public,
            rule_identifier: rules.findings.iter().any(|f| {
                f.segment == segment
                    && f.confidence >= policies::classify::SENSITIVE_MIN_CONFIDENCE
                    && f.category != Category::Confidential
                    && f.category != Category::Secret
            }),
            phi: rules.categories.contains(&Category::Phi),
            rule_spans: rules
                .findings
                .iter()
                .filter(|f| {
                    f.segment == segment
                        && f.confidence >= policies::classify::SENSITIVE_MIN_CONFIDENCE
                })
                .map(|f| (f.seg_start, f.seg_end))
                .collect(),
        }
    }
}

/// One model finding before it gets segment/canonical offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub category: Category,
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
}

/// Confidence given to a name or address the model found without person context: it is
/// reported (explain shows it) but does not make the request sensitive.
pub const UNSUPPORTED_CONFIDENCE: f32 = 0.45;

/// Precision rules over the raw spans of one text:
/// - a name counts only as given name + surname (middle initials allowed), and only with
///   person context (personal cue words and no public/fiction cue) or an identifier
///   found next to it (by the model or the rules); otherwise it is reported at 0.45;
/// - an address counts only as building number + street (either order), extended over
///   adjacent secondary address, city, state and zip spans; a place alone is not PII;
/// - identifiers need enough digits (phone 7, ids 5, accounts 6) and must not be
///   placeholders (one repeated digit, 123456…); e-mails need an `@`; URLs are left to
///   the rules (a URL is not personal by itself).
///
/// Government and tax ids, passports and licences are pii; bank accounts and routing
/// numbers financial; in a request the rules put in phi, names and ids are phi.
pub fn interpret(text: &str, spans: &[NerSpan], ctx: &Context, s: &NerSettings) -> Vec<Detection> {
    let mut out = Vec::new();
    let mut used = vec![false; spans.len()];
    let person_cat = if ctx.phi {
        Category::Phi
    } else {
        Category::Pii
    };
    // Identifiers first: they also count as context for names.
    let mut identifier = false;
    for (i, sp) in spans.iter().enumerate() {
        let v = &text[sp.start..sp.end];
        let digits = v.bytes().filter(u8::is_ascii_digit).count();
        let (cat, kind, ok) = match sp.label {
            NerLabel::Email => (Category::Pii, "email", v.contains('@') && v.contains('.')),
            NerLabel::Phone => (Category::Pii, "phone", digits >= 7),
            NerLabel::TaxId => (person_cat, "tax_id", digits >= 5),
            NerLabel::GovernmentId => (person_cat, "government_id", digits >= 5),
            NerLabel::Passport => (person_cat, "passport", digits >= 5),
            NerLabel::DriversLicense => (person_cat, "drivers_license", digits >= 5),
            NerLabel::BankAccount => (Category::Financial, "bank_account", digits >= 6),
            NerLabel::RoutingNumber => (Category::Financial, "routing_number", digits >= 6),
            _ => continue,
        };
        used[i] = true;
        if ok
            && !placeholder_digits(v)
            // A card number payment providers publish for testing, whatever the model
            // calls it: the rules drop it too.
            && !policies::classify::validate::public_test_card(v)
            && !inside_structured_token(text, sp)
            && sp.score >= s.threshold
        {
            identifier = true;
            out.push(Detection {
                category: cat,
                kind,
                start: sp.start,
                end: sp.end,
                confidence: sp.score,
            });
        }
    }
    // Addresses: building number + street name, adjacent, either order.
    let mut addresses = Vec::new();
    for i in 0..spans.len() {
        if used[i] {
            continue;
        }
        let a = &spans[i];
        let Some(j) = (i + 1..spans.len()).find(|&j| !used[j]) else {
            break;
        };
        let b = &spans[j];
        // The model sometimes tags a house number before the street as a zip code.
        let pair = matches!(
            (a.label, b.label),
            (NerLabel::BuildingNumber, NerLabel::StreetName)
                | (NerLabel::StreetName, NerLabel::BuildingNumber)
        ) || (a.label == NerLabel::ZipCode
            && b.label == NerLabel::StreetName
            && a.end - a.start <= 6);
        if !pair || !small_gap(text, a.end, b.start) {
            continue;
        }
        let (start, mut end) = (a.start, b.end);
        let mut conf = a.score.min(b.score);
        used[i] = true;
        used[j] = true;
        let mut k = j + 1;
        while k < spans.len()
            && matches!(
                spans[k].label,
                NerLabel::SecondaryAddress
                    | NerLabel::City
                    | NerLabel::State
                    | NerLabel::ZipCode
                    | NerLabel::BuildingNumber
            )
            && small_gap(text, end, spans[k].start)
        {
            end = spans[k].end;
            conf = conf.min(spans[k].score.max(s.threshold));
            used[k] = true;
            k += 1;
        }
        addresses.push((start, end, conf));
    }
    let has_address = !addresses.is_empty();
    let supported = identifier || has_address || ctx.rule_identifier;
    for (start, end, conf) in addresses {
        let counts = !ctx.public || ctx.personal || identifier || ctx.rule_identifier;
        out.push(Detection {
            category: person_cat,
            kind: "street_address",
            start,
            end,
            confidence: if counts { conf } else { UNSUPPORTED_CONFIDENCE },
        });
    }
    // Names: a run of name spans with small gaps holding a given name and a surname.
    let mut i = 0;
    while i < spans.len() {
        if used[i] || !is_name(spans[i].label) {
            i += 1;
            continue;
        }
        let (start, mut end) = (spans[i].start, spans[i].end);
        // Every token already passed `threshold`; the name's confidence is its surest
        // part (a rare surname scores lower than the given name before it).
        let mut conf = spans[i].score;
        let (mut given, mut surname) = (
            spans[i].label == NerLabel::GivenName,
            spans[i].label == NerLabel::Surname,
        );
        let mut k = i + 1;
        while k < spans.len() && is_name(spans[k].label) && name_gap(text, end, spans[k].start) {
            end = spans[k].end;
            conf = conf.max(spans[k].score);
            given |= spans[k].label == NerLabel::GivenName;
            surname |= spans[k].label == NerLabel::Surname;
            k += 1;
        }
        i = k;
        // The model often tags "Gorm Toft" as one GIVEN_NAME entity: two capitalised
        // words in one name span are a full name too.
        let full = (given && surname) || capitalised_words(&text[start..end]) >= 2;
        if !full || conf < s.name_threshold {
            continue;
        }
        let counts = supported
            || if s.require_person_cue {
                ctx.personal && !ctx.public
            } else {
                !ctx.public || ctx.personal
            };
        out.push(Detection {
            category: person_cat,
            kind: "person_name",
            start,
            end,
            confidence: if counts { conf } else { UNSUPPORTED_CONFIDENCE },
        });
    }
    // Where a confident rule finding covers the same text, the rule's reading stands.
    out.retain(|d| {
        !ctx.rule_spans
            .iter()
            .any(|&(a, b)| a < d.end && d.start < b)
    });
    out.sort_by_key(|d| (d.start, d.end));
    out
}

fn capitalised_words(s: &str) -> usize {
    s.split_whitespace()
        .filter(|w| w.chars().count() > 1 && starts_upper(w))
        .count()
}

fn is_name(l: NerLabel) -> bool {
    matches!(l, NerLabel::GivenName | NerLabel::Surname)
}

/// Between parts of an address: at most a few spaces, commas or `#`.
fn small_gap(text: &str, a: usize, b: usize) -> bool {
    b >= a
        && b - a <= 3
        && text
            .get(a..b)
            .is_some_and(|g| g.chars().all(|c| c.is_whitespace() || c == ',' || c == '#'))
}

/// Between parts of a name: whitespace, a hyphen, or a middle initial ("J.").
fn name_gap(text: &str, a: usize, b: usize) -> bool {
    if b < a || b - a > 4 {
        return false;
    }
    let Some(g) = text.get(a..b) else {
        return false;
    };
    let letters = g.chars().filter(|c| c.is_alphabetic()).count();
    letters <= 1
        && g.chars()
            .all(|c| c.is_whitespace() || c == '-' || c == '.' || c.is_uppercase())
}

/// A number inside an ARN, URN, URL or path (`arn:aws:sns:…:111122223333:…`) is a
/// resource id, not a person's identifier.
fn inside_structured_token(text: &str, sp: &NerSpan) -> bool {
    let start = text[..sp.start]
        .rfind(char::is_whitespace)
        .map_or(0, |i| i + 1);
    let end = text[sp.end..]
        .find(char::is_whitespace)
        .map_or(text.len(), |i| sp.end + i);
    let token = &text[start..end];
    !token.contains('@') && (token.matches(':').count() >= 2 || token.contains('/'))
}

/// 000000, 111111, 123456789: test values, not someone's number.
fn placeholder_digits(v: &str) -> bool {
    let d: Vec<u8> = v.bytes().filter(u8::is_ascii_digit).collect();
    if d.len() < 2 {
        return false;
    }
    d.iter().all(|&x| x == d[0]) || d.windows(2).all(|w| w[1] == w[0] + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(text: &str, needle: &str, label: NerLabel, score: f32) -> NerSpan {
        let start = text.find(needle).expect("needle in text");
        NerSpan {
            label,
            start,
            end: start + needle.len(),
            score,
        }
    }

    fn empty_rules() -> Classification {
        Classification {
            findings: vec![],
            categories: Default::default(),
            sensitive: false,
            difficulty: 0.0,
            difficulty_model: "lexical",
            prompt_chars: 0,
            est_prompt_tokens: 0,
        }
    }

    fn kinds(text: &str, spans: &[NerSpan]) -> Vec<(&'static str, String, bool)> {
        let ctx = Context::of(text, 0, &empty_rules());
        interpret(text, spans, &ctx, &NerSettings::default())
            .into_iter()
            .map(|d| {
                (
                    d.kind,
                    text[d.start..d.end].to_string(),
                    d.confidence >= 0.5,
                )
            })
            .collect()
    }

    #[test]
    fn gate_passes_names_addresses_and_ids_and_skips_plain_prose_and_code() {
        assert!(gate("please ship it to Maria Gonzalez today"));
        assert!(gate("deliver to 42 Elm street"));
        assert!(!gate("she has 3 apples and 4 pears"));
        assert!(gate("my account is 4417 1234"));
        assert!(gate("write to x@y.org"));
        assert!(!gate("Explain how a hash map handles collisions."));
        assert!(!gate("def add(a, b):\n    return a + b"));
        assert!(!gate("What is 2 + 2?"));
        // a capitalised word after a full stop is a new sentence, not a name pair
        assert!(!gate("It works. Then it stops."));
    }

    #[test]
    fn full_name_with_person_context_counts_and_a_lone_given_name_does_not() {
        let t = "Hi, please send the contract to Maria J. Gonzalez.";
        let spans = [
            sp(t, "Maria", NerLabel::GivenName, 0.9),
            sp(t, "Gonzalez", NerLabel::Surname, 0.8),
        ];
        assert_eq!(
            kinds(t, &spans),
            vec![("person_name", "Maria J. Gonzalez".into(), true)]
        );
        let t = "Hi, please send the contract to Maria.";
        assert!(kinds(t, &[sp(t, "Maria", NerLabel::GivenName, 0.9)]).is_empty());
    }

    #[test]
    fn a_two_word_given_name_span_is_a_full_name() {
        let t = "Please proofread: Thank you Gorm Toft for attending.";
        let spans = [sp(t, "Gorm Toft", NerLabel::GivenName, 0.7)];
        assert_eq!(
            kinds(t, &spans),
            vec![("person_name", "Gorm Toft".into(), true)]
        );
    }

    #[test]
    fn public_figures_and_fiction_are_reported_below_the_threshold() {
        let t = "Summarize the novel where Elizabeth Bennet meets Fitzwilliam Darcy.";
        let spans = [
            sp(t, "Elizabeth", NerLabel::GivenName, 0.9),
            sp(t, "Bennet", NerLabel::Surname, 0.9),
        ];
        assert_eq!(
            kinds(t, &spans),
            vec![("person_name", "Elizabeth Bennet".into(), false)]
        );
        // ...unless an identifier sits next to the name.
        let t = "The novel's fan club: write to Elizabeth Bennet, phone 415 555 0199.";
        let spans = [
            sp(t, "Elizabeth", NerLabel::GivenName, 0.9),
            sp(t, "Bennet", NerLabel::Surname, 0.9),
            sp(t, "415 555 0199", NerLabel::Phone, 0.9),
        ];
        assert!(
            kinds(t, &spans).iter().all(|k| k.2),
            "{:?}",
            kinds(t, &spans)
        );
    }

    #[test]
    fn addresses_need_number_and_street_and_a_city_alone_is_nothing() {
        let t = "Move my desk to 42 Elm Street, Apt 5, Springfield";
        let spans = [
            sp(t, "42", NerLabel::BuildingNumber, 0.9),
            sp(t, "Elm Street", NerLabel::StreetName, 0.9),
            sp(t, "Apt 5", NerLabel::SecondaryAddress, 0.8),
            sp(t, "Springfield", NerLabel::City, 0.7),
        ];
        assert_eq!(
            kinds(t, &spans),
            vec![(
                "street_address",
                "42 Elm Street, Apt 5, Springfield".into(),
                true
            )]
        );
        let t = "What is the weather in Springfield?";
        assert!(kinds(t, &[sp(t, "Springfield", NerLabel::City, 0.9)]).is_empty());
        // European order
        let t = "Ich wohne in der Hauptstraße 12";
        let spans = [
            sp(t, "Hauptstraße", NerLabel::StreetName, 0.9),
            sp(t, "12", NerLabel::BuildingNumber, 0.9),
        ];
        assert_eq!(kinds(t, &spans).len(), 1);
    }

    #[test]
    fn identifiers_need_digits_and_placeholders_do_not_count() {
        let t = "account 12345678 or 111111111 or 42";
        let spans = [
            sp(t, "12345678", NerLabel::BankAccount, 0.9),
            sp(t, "111111111", NerLabel::BankAccount, 0.9),
            sp(t, "42", NerLabel::BankAccount, 0.9),
        ];
        // 12345678 is sequential: a placeholder too.
        assert!(kinds(t, &spans).is_empty());
        let t = "account 40918327";
        let d = interpret(
            t,
            &[sp(t, "40918327", NerLabel::BankAccount, 0.9)],
            &Context::default(),
            &NerSettings::default(),
        );
        assert_eq!(d[0].category, Category::Financial);
    }

    #[test]
    fn a_value_the_rules_already_read_keeps_the_rules_category() {
        let t = "My card number is 4242 4242 4242 4242";
        let mut rules = empty_rules();
        rules.findings.push(Finding {
            category: Category::Financial,
            detector: Detector::Rule,
            kind: "credit_card".into(),
            start: 18,
            end: t.len(),
            segment: 0,
            seg_start: 18,
            seg_end: t.len(),
            confidence: 0.97,
        });
        let ctx = Context::of(t, 0, &rules);
        let d = interpret(
            t,
            &[sp(t, "4242 4242 4242 4242", NerLabel::Phone, 0.8)],
            &ctx,
            &NerSettings::default(),
        );
        assert!(d.is_empty(), "not also a phone number: {d:?}");
    }

    #[test]
    fn numbers_inside_resource_names_are_not_identifiers() {
        let t = "arn:aws:sns:us-east-1:409183270011:alerts";
        assert!(kinds(t, &[sp(t, "409183270011", NerLabel::GovernmentId, 0.9)]).is_empty());
        let t = "my id is 409183270011";
        assert_eq!(
            kinds(t, &[sp(t, "409183270011", NerLabel::GovernmentId, 0.9)]).len(),
            1
        );
    }

    #[test]
    fn names_in_a_health_record_are_phi() {
        let t = "Patient Maria Gonzalez";
        let mut rules = empty_rules();
        rules.categories.insert(Category::Phi);
        let ctx = Context::of(t, 0, &rules);
        let d = interpret(
            t,
            &[
                sp(t, "Maria", NerLabel::GivenName, 0.9),
                sp(t, "Gonzalez", NerLabel::Surname, 0.9),
            ],
            &ctx,
            &NerSettings::default(),
        );
        assert_eq!(d[0].category, Category::Phi);
    }

    #[test]
    fn settings_parse_with_defaults_and_reject_bad_values() {
        let s: NerSettings = serde_yaml_ng::from_str("mode: when_rules_silent\n").unwrap();
        assert_eq!(s.mode, NerMode::WhenRulesSilent);
        assert_eq!(s.model_file, "model_int8.onnx");
        assert_eq!(
            NerSettings::default().mode,
            NerMode::Auto,
            "the safe default"
        );
        let bad = NerSettings {
            threshold: 1.5,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert!(serde_yaml_ng::from_str::<NerSettings>("mode: sometimes\n").is_err());
    }
}
