//! Sensitivity detection: regex detectors with validators, context rules over word tokens
//! (data nouns followed by values, described values, personal health), person names, and
//! org-configured rules. Produces raw findings with spans relative to one segment.

pub mod confidential;
pub mod lexicon;
pub mod patterns;
pub mod secrets;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::Regex;

use super::decode::encoded_spans;
use super::entropy::{is_placeholder, shannon};
use super::normalize::normalize;
use super::rules::CompiledOrgRules;
use super::text::{despace, join_digit_groups, sentence_at, skeleton, tokens, Token};
use super::{validate, Category, ClassifierError, Detector};
use confidential::Confidential;
use lexicon::{
    Noun, HEALTH, HEALTH_STRICT, NAME_TRIGGERS, NOT_NAME, NOUNS, PERSONAL, STRONG_TRIGGERS,
};
use patterns::{Spec, Validator, SPECS};
use secrets::SecretTable;

/// FNV-1a: the word maps hash short strings, where SipHash dominates lookup cost.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<Fnv>>;

/// A finding inside one segment (byte offsets into the segment text).
#[derive(Debug, Clone)]
pub struct Raw {
    pub category: Category,
    pub detector: Detector,
    pub kind: Cow<'static, str>,
    pub start: usize,
    pub end: usize,
    pub confidence: f32,
}

struct Compiled {
    re: Regex,
    spec: &'static Spec,
    /// Every match of the pattern contains an ASCII digit.
    needs_digit: bool,
}

/// Vocabulary of phrase first words (exact and vowel-skeleton), shared by every phrase
/// table so each token is hashed once per view.
#[derive(Default)]
struct Lex {
    exact: FastMap<String, u32>,
    skel: FastMap<String, u32>,
}

const NO_ID: u32 = u32::MAX;

impl Lex {
    fn add<'a>(&mut self, phrases: impl Iterator<Item = &'a str>) {
        for ph in phrases {
            let w0 = ph.split(' ').next().unwrap_or("");
            let n = self.exact.len() as u32;
            self.exact.entry(w0.to_string()).or_insert(n);
            for k in first_word_skels(w0) {
                let n = self.skel.len() as u32;
                self.skel.entry(k).or_insert(n);
            }
        }
    }
}

/// Skeleton keys of a phrase's first word: the skeleton and, if it ends in `y`, the
/// skeleton without it (`policy` -> `plcy`, `plc`); keys shorter than 3 are not indexed.
fn first_word_skels(w0: &str) -> Vec<String> {
    let sk = skeleton(w0);
    let trimmed = sk.trim_end_matches('y');
    let mut out = Vec::new();
    if trimmed.len() >= 3 && trimmed.len() < sk.len() {
        out.push(trimmed.to_string());
    }
    if sk.len() >= 3 {
        out.push(sk);
    }
    out
}

/// Phrase index keyed by first word (exact and vowel-skeleton ids from [`Lex`]).
struct Phrases {
    words: Vec<Vec<String>>,
    /// Skeleton of each phrase word, for fuzzy matching of later words.
    skels: Vec<Vec<String>>,
    exact: Vec<Vec<usize>>,
    skel: Vec<Vec<usize>>,
}

impl Phrases {
    fn new<'a>(phrases: impl Iterator<Item = &'a str>, lex: &Lex) -> Phrases {
        let mut p = Phrases {
            words: Vec::new(),
            skels: Vec::new(),
            exact: vec![Vec::new(); lex.exact.len()],
            skel: vec![Vec::new(); lex.skel.len()],
        };
        for (i, ph) in phrases.enumerate() {
            let ws: Vec<String> = ph.split(' ').map(|w| w.to_string()).collect();
            p.exact[lex.exact[ws[0].as_str()] as usize].push(i);
            for k in first_word_skels(&ws[0]) {
                p.skel[lex.skel[k.as_str()] as usize].push(i);
            }
            p.skels.push(ws.iter().map(|w| skeleton(w)).collect());
            p.words.push(ws);
        }
        p
    }

    /// Longest phrase starting at token `i`; returns (phrase index, token index after it).
    fn longest(&self, toks: &[Tok], i: usize, fuzzy: bool) -> Option<(usize, usize)> {
        let t = &toks[i];
        if t.wid == NO_ID && (!fuzzy || t.sid == NO_ID) {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        let exact = self.exact.get(t.wid as usize).into_iter().flatten();
        let skel = if fuzzy {
            self.skel.get(t.sid as usize)
        } else {
            None
        };
        for &pi in exact.chain(skel.into_iter().flatten()) {
            let ws = &self.words[pi];
            if i + ws.len() > toks.len() {
                continue;
            }
            if ws
                .iter()
                .zip(&self.skels[pi])
                .enumerate()
                .all(|(k, (w, sw))| word_eq(&toks[i + k], w, sw, fuzzy, k == 0))
                && best.is_none_or(|(b, _)| self.words[b].len() < ws.len())
            {
                best = Some((pi, i + ws.len()));
            }
        }
        best
    }
}

fn word_eq(t: &Tok, w: &str, sw: &str, fuzzy: bool, first: bool) -> bool {
    if t.word == w {
        return true;
    }
    if !fuzzy || t.word.len() >= w.len() || !t.word.chars().all(|c| c.is_alphanumeric()) {
        return false;
    }

    let min = if first { 3 } else { 2 };
    t.skel.len() >= min && (t.skel == sw || t.skel == sw.trim_end_matches('y'))
}

/// Token with extra views used by the rules.
struct Tok {
    start: usize,
    end: usize,
    word: String,
    skel: String,
    /// Ids of `word` / `skel` in the phrase vocabulary, or `NO_ID`.
    wid: u32,
    sid: u32,
}

fn prep_tokens(text: &str, lex: &Lex) -> Vec<Tok> {
    tokens(text)
        .into_iter()
        .map(|Token { start, end, lower }| {
            let mut word = lower;
            let cut = word
                .strip_suffix("'s")
                .or_else(|| word.strip_suffix("’s"))
                .map(str::len);
            if let Some(n) = cut {
                word.truncate(n);
            }
            // Company suffixes written in capitals are abbreviations, not vowel-dropped
            // words (`Diaz PLC` is not "policy"; `my ins plc` is).
            let company = matches!(
                word.as_str(),
                "plc" | "llc" | "ltd" | "inc" | "corp" | "gmbh" | "bv" | "nv" | "srl" | "spa"
            ) && text[start..end].chars().all(|c| c.is_ascii_uppercase());
            let skel = if company {
                String::new()
            } else {
                skeleton(&word)
            };
            let wid = lex.exact.get(word.as_str()).copied().unwrap_or(NO_ID);
            let sid = lex.skel.get(skel.as_str()).copied().unwrap_or(NO_ID);
            Tok {
                start,
                end,
                word,
                skel,
                wid,
                sid,
            }
        })
        .collect()
}

/// Gate bits beyond the specs (one per non-spec rule).
const G_DESCRIBED: u32 = 0;
const G_KID: u32 = 1;
const G_URL: u32 = 2;
const G_STREET: u32 = 3;
const G_CONF: u32 = 4;
const G_WORD_PROBLEM: u32 = 5;
const G_CONF_CUE: u32 = 6;
const G_NAME_CONTEXT: u32 = 7;
const G_CONTEXT: u32 = 8; // one bit per context rule from here
const EXTRA_GATES: &[(u32, &[&str])] = &[
    (
        G_DESCRIBED,
        &[
            "start",
            "begin",
            "end",
            "digit",
            "letter",
            "character",
            " one",
            "last",
        ],
    ),
    (G_KID, &["kid", "child", "son", "daughter", "minor"]),
    (G_URL, &["/"]),
    (
        G_STREET,
        &["st", "ave", "rd", "road", "blvd", "lane", "ln", "drive"],
    ),
    (
        G_CONF,
        &[
            "role",
            "job",
            "position",
            "employee",
            "headcount",
            "people",
            "layoff",
            "reduction",
            "revenue",
            "earning",
            "ebitda",
            "arr",
            "margin",
            "booking",
            "acqui",
            "merger",
            "takeover",
            "exfiltrat",
            "breach",
            "unpatched",
            "exposure",
        ],
    ),
    (G_WORD_PROBLEM, &["how", "what is the"]),
    (G_CONF_CUE, confidential::TRIGGERS),
    (G_NAME_CONTEXT, &[",", "lives", "born", "works", "from"]),
    (G_CONTEXT, &[" i ", " we "]),
    (G_CONTEXT + 1, &[" i ", " we "]),
    (G_CONTEXT + 2, &[" i ", " we "]),
    (G_CONTEXT + 3, &["log", "history"]),
    (
        G_CONTEXT + 4,
        &["visit", "vstd", "vistd", "browsed", "frequent"],
    ),
    (G_CONTEXT + 5, &["under", "below", "age"]),
    (
        G_CONTEXT + 6,
        &[
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        ],
    ),
    (G_CONTEXT + 7, &["degree", "diploma", "graduat", "alumn"]),
];

/// Which rules can match a text: spec `i` is bit `i` of `specs`; extra rules are bits of
/// `extra`.
#[derive(Clone, Copy, Default)]
struct Gates {
    specs: u128,
    extra: u64,
    digits: usize,
    max_run: usize,
}

pub struct Sensitivity {
    compiled: Vec<Compiled>,
    /// Provider token formats (one prefix automaton, byte-loop bodies).
    secrets: SecretTable,
    /// Confidential markers as adjectives / audience lines, and unmarked-content cues.
    conf: Confidential,
    /// One ASCII-case-insensitive automaton over every trigger literal.
    gate_ac: AhoCorasick,
    /// For each automaton pattern: (spec bits, extra bits) it enables.
    gate_bits: Vec<(u128, u64)>,
    /// Single-byte triggers: (byte, spec bits, extra bits).
    byte_bits: Vec<(u8, u128, u64)>,
    /// Specs without a literal trigger (always candidates).
    ungated: u128,
    test_markers: Regex,
    described: Regex,
    kid_age: Regex,
    personal_url: Regex,
    street_short: Regex,
    security_ctx: Regex,
    medical: Regex,
    confidential_content: Regex,
    negation: Regex,
    /// Context rules: (regex, category, kind, confidence); the span is group 1 or 0.
    context: Vec<(Regex, Category, &'static str, f32)>,
    /// A capitalised word used like a person: vocative ("Ann, can you"), subject of a
    /// personal verb ("X lives in", "X is from Acme LLC").
    name_context: Regex,
    /// Sentence opens with a quantity question: names are characters of a word problem.
    word_problem: Regex,
    /// Fiction, film and other works: names and addresses there are characters and
    /// settings, not personal data.
    fiction: Regex,
    /// A sentence about a public or historical person ("who was ...", "a biography of ...",
    /// "what did ... say about"), in the nine probe languages.
    public_context: Regex,
    /// Clinical-letter words and specialties in the other languages (a second, smaller
    /// automaton: one regex holding both lists was slower on long texts).
    medical_ml: Regex,
    /// Landmark addresses that identify a building, not a person.
    landmark: Regex,
    /// Statistics about incomes ("median household income", "das Durchschnittsgehalt").
    statistic: Regex,
    /// First-person anchors that keep a finding personal despite fiction / word problems.
    first_person: Regex,
    /// Requirements/specs ("at least 12 characters") describe formats, not a value.
    requirement: Regex,
    lex: Lex,
    nouns: Phrases,
    health: Phrases,
    triggers: Phrases,
    first_names: FastSet<&'static str>,
    famous: FastSet<&'static str>,
    personal: FastSet<&'static str>,
    not_name: FastSet<&'static str>,
    strong: FastSet<&'static str>,
}

/// A sentence about a public or historical person ("who was ...", "a biography of ...",
/// "what did ... say about"), in the nine probe languages.
const PUBLIC_CONTEXT: &str = concat!(
    r"(?i)(?:^|[.!?]\s+)\s*(?:who\s+(?:was|were)|wer\s+(?:war|waren)|qui\s+(?:était|étaient)|quién\s+(?:fue|era)|quem\s+(?:foi|era)|chi\s+(?:era|erano|fu)|kim\s+(?:był|była|byli)|wie\s+(?:was|waren))\b",
    r"|\bwhat\s+did\s+[^.?\n]{2,40}?\s+(?:say|write|think|argue|claim|mean|do)\b",
    r"|\b(?:biograph\w*|biografí?a\w*|biografie\w*|bio\s+of|life\s+and\s+work|career\s+of|carrière|karriere|carrera|carreira|carriera|kariera|works\s+of|werke\s+von|œuvres?\s+de|obras\s+de|opere\s+di|famous\s+for|famos[oa]|célèbre|berühmt\w*|beroemd\w*|słynn\w+|nobel\s+prize|prix\s+nobel)",
);

/// Whether `text` speaks about a public or historical person the way the rules' name check
/// understands it; the gateway's NER precision rules ask the same question.
pub fn mentions_public_person(text: &str) -> bool {
    static PUBLIC: std::sync::LazyLock<Option<Regex>> =
        std::sync::LazyLock::new(|| Regex::new(PUBLIC_CONTEXT).ok());
    PUBLIC.as_ref().is_some_and(|r| r.is_match(text))
}

const FIRST_NAMES: &str = include_str!("../../../data/first_names.txt");
const FAMOUS: &str = include_str!("../../../data/famous_surnames.txt");

/// A name inside a code example line (`f("Hi, my name is Ann") == [...]`, `>>> ...`).
/// `in_code`: the text contains code markers (computed once per text).
fn code_example(text: &str, pos: usize, in_code: bool) -> bool {
    if !in_code {
        return false;
    }
    let ls = text[..pos].rfind('\n').map_or(0, |i| i + 1);
    let le = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
    let line = &text[ls..le];
    line.contains("==") || line.trim_start().starts_with(">>>")
}

/// Medical context in the other languages: clinical-letter headers, care words, specialties,
/// conditions and drugs (a second, smaller automaton next to `medical`: one regex holding
/// both lists was slower on long texts).
const MEDICAL_ML: &str = r"(?i)\b(?:arztbrief|entlassbrief|befundbericht|compte\s+rendu|lettre\s+de\s+liaison|informe\s+cl[ií]nico|alta\s+hospitalaria|carta\s+de\s+alta|relat[óo]rio\s+m[ée]dico|lettera\s+di\s+dimissione|referto|ontslagbrief|verwijsbrief|karta\s+informacyjna|skierowanie|doente|utente|patiënte?|ziekenhuis|huisarts|opgenomen|longarts|internad[oa]|ricoverat[oa]|ingres[óo]|rozpoznanie|zalecono|stationär|dermatolog\w*|kardiolog\w*|neurolog\w*|neur[óo]log\w*|onkolog\w*|oncolog\w*|endocrin\w*|pneumolog\w*|gastroenterolog\w*|psychiatr\w*|ginecolog\w*|gyn[äaé]kolog\w*|gyn[ée]colog\w*|vorhofflimmern|herzinsuffizienz|embolie|longembolie|ictus|infarkt\w*|infarto|infarctus|pneumonia|pneumonie|bpco|epoc|nodulo|tiroid\w*|tarczyc\w*|niedoczynno\w*|hipotiroid\w*|levotiroxina|apixaban|amoxicilina|torasemid|spirom\w*)\b";

/// First person and family in de / fr / es / pt / it / pl, for conditions and lab terms.
const STRICT_ANCHORS: &[&str] = &[
    "ich", "mein", "meine", "meinen", "meiner", "mir", "mich", "habe", "j'ai", "mon", "ma", "mes",
    "moi", "yo", "mi", "mis", "tengo", "eu", "meu", "minha", "tenho", "io", "mio", "mia", "ho",
    "ja", "mój", "moja", "moje", "mam", "hija", "hijo", "tochter", "sohn", "fille", "fils",
    "figlia", "figlio", "filha", "filho", "córka", "syn", "ik", "mijn", "heb", "mij", "zoon",
    "dochter", "moeder", "vader", "mother", "father", "mutter", "vater", "mère", "père", "madre",
    "padre", "mãe", "pai", "matka", "ojciec", "mama", "tata", "mamma", "papà", "mamá", "papá",
];

/// Names that are also ordinary words; they count only mid-sentence.
const AMBIGUOUS_NAMES: &[&str] = &[
    "kim", // Polish "who" ("Kim był ...")
    "mark",
    "jack",
    "rose",
    "ruby",
    "iris",
    "jade",
    "ivy",
    "luna",
    "dawn",
    "violet",
    "amber",
    "angel",
    "bob",
    "christian",
    "don",
    "frank",
    "guy",
    "holly",
    "joy",
    "lily",
    "max",
    "nick",
    "rob",
    "ray",
    "ted",
    "bill",
    "pat",
    "sam",
    "will",
    "may",
    "june",
    "august",
    "april",
    "jean",
    "per",
    "eli",
    "ed",
    "jo",
    "kay",
    "lynn",
    "dean",
    "lin",
    "mei",
    "jun",
    "kai",
    "chase",
    "hunter",
    "austin",
    "jordan",
    "morgan",
    "casey",
    "paris",
    "florence",
    "victoria",
    "georgia",
    "chelsea",
    "virginia",
    "brooke",
    "summer",
    "carol",
    "gene",
    "faith",
    "hope",
];

fn rx(p: &str) -> Result<Regex, ClassifierError> {
    Regex::new(p).map_err(|e| ClassifierError::Regex {
        name: p.chars().take(40).collect(),
        message: e.to_string(),
    })
}

impl Sensitivity {
    pub fn new() -> Result<Sensitivity, ClassifierError> {
        let dob = patterns::dob_pattern();
        let clin = patterns::clinical_date_pattern();
        let mut compiled = Vec::with_capacity(SPECS.len());
        for spec in SPECS {
            // An empty pattern means "built from the shared DATE fragment".
            let p: String = match spec.kind {
                patterns::DOB_INDEX_KIND if spec.pattern.is_empty() => dob.clone(),
                patterns::CLINICAL_DATE_KIND if spec.pattern.is_empty() => clin.clone(),
                _ => spec.pattern.to_string(),
            };
            let needs_digit = matches!(
                spec.kind,
                "credit_card"
                    | "iban"
                    | "aba_routing"
                    | "bank_account"
                    | "card_security"
                    | "financial_reference"
                    | "income"
                    | "credit_score"
                    | "ssn"
                    | "phone"
                    | "ip_address"
                    | "imei"
                    | "passport"
                    | "visa_number"
                    | "postal_address"
                    | "geo_coordinates"
                    | "date_of_birth"
                    | "clinical_date"
                    | "medical_record_number"
                    | "health_insurance_id"
                    | "case_number"
                    | "otp_code"
                    | "telegram_token"
                    | "mailchimp_key"
                    | "license_key"
            );
            compiled.push(Compiled {
                re: rx(&p)?,
                spec,
                needs_digit,
            });
        }
        assert!(SPECS.len() <= 128, "gate mask holds 128 specs");
        let mut lits: Vec<String> = Vec::new();
        let mut gate_bits: Vec<(u128, u64)> = Vec::new();
        let mut add = |lit: &str, sb: u128, eb: u64| {
            let l = lit.to_ascii_lowercase();
            match lits.iter().position(|x| *x == l) {
                Some(p) => {
                    gate_bits[p].0 |= sb;
                    gate_bits[p].1 |= eb;
                }
                None => {
                    lits.push(l);
                    gate_bits.push((sb, eb));
                }
            }
        };
        let mut ungated = 0u128;
        for (i, spec) in SPECS.iter().enumerate() {
            if spec.triggers.is_empty() {
                ungated |= 1 << i;
            }
            for t in spec.triggers {
                add(t, 1 << i, 0);
            }
        }
        for (bit, ts) in EXTRA_GATES {
            for t in *ts {
                add(t, 0, 1 << bit);
            }
        }
        // Single-byte triggers are checked in the byte pass, not by the automaton.
        let mut byte_bits = Vec::new();
        let mut k = 0;
        while k < lits.len() {
            if lits[k].len() == 1 {
                byte_bits.push((lits[k].as_bytes()[0], gate_bits[k].0, gate_bits[k].1));
                lits.remove(k);
                gate_bits.remove(k);
            } else {
                k += 1;
            }
        }
        let gate_ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&lits)
            .map_err(|e| ClassifierError::Regex {
                name: "gate".into(),
                message: e.to_string(),
            })?;
        let trigger_phrases = || NAME_TRIGGERS.iter().map(|t| t.trim_end_matches([':', ',']));
        let mut lex = Lex::default();
        lex.add(NOUNS.iter().map(|n| n.phrase));
        lex.add(HEALTH.iter().chain(HEALTH_STRICT).copied());
        lex.add(trigger_phrases());
        let first_names = FIRST_NAMES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .collect();
        Ok(Sensitivity {
            compiled,
            secrets: SecretTable::new()?,
            conf: Confidential::new()?,
            gate_ac,
            gate_bits,
            byte_bits,
            ungated,
            test_markers: rx(lexicon::TEST_MARKERS)?,
            described: rx(
                r"(?i)\b(?:starting|beginning|starts|begins|ending|ends|ended)\s+(?:with|in)\s+(?:the\s+)?(?:letters?\s+|digits?\s+)?(?-i:[A-Z0-9]{1,6})\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|\d{1,2})[- ](?:digits?|letters?|characters?)\b|\bthe\s+\d{2,6}\s+one\b|\blast\s+(?:four|4)\s+(?:digits|are|is)\b",
            )?,
            kid_age: rx(
                r"(?i)\b(?:kid|child|son|daughter|minor)s?\b[^.\n]{0,12}?\b(?:age[ds]?|is|turns)\s+(\d{1,2})\b",
            )?,
            personal_url: rx(
                r"(?i)\b((?:[\w-]+\.)+[a-z]{2,}/(?:user|users|u|profile|people|in|~)[/=][\w.%-]+)",
            )?,
            street_short: rx(
                r"(?i)\b(?:at|on|to|live|lives|living)\s+(\d{1,5}\s?(?:st|street|ave|avenue|rd|road|blvd|lane|ln|drive)\b)",
            )?,
            security_ctx: rx(
                r"(?i)maiden|pet'?s?\s+name|security|first\s+(?:car|school|pet)|mother|\bmom\b|\bmum\b|childhood|grew\s+up|madn|mdn|mthr|scrty|qstn",
            )?,
            medical: rx(
                r"(?i)\b(?:patient|pt\s+(?:is|has|was|presents|reports|denies|states|with|c/o)|dx|diagnos\w*|mrn|medical|hospital|clinic|disease|disorder|syndrome|cancer|diabetes|hypertension|asthma|copd|chf|arthritis|hepatitis|sclerosis|fibrillation|stroke|migraines?|depressi(?:on|ve)|anxiety|schizophrenia|bipolar|alzheimer\w*|dementia|epilepsy|crohn\w*|meds|medications?|prescri\w*|treatment|therapy|surgery|insulin|chemotherapy|tumou?r|infection|hiv|covid|ptsd|adhd|autism|pregnan\w*|follow-up|symptoms?|health\s+plan|mg|chest\s+pain|icu|emergency\s+room|inpatient|outpatient|metformin|a1c|hba1c|ldl|hdl|cholesterol|lab\s+results|blood\s+(?:test|work)|glucose|biopsy|doctor|arzt|ärztin|krankenhaus|klinik|patientin|médecin|hôpital|médico|paciente|hospital|medico|ospedale|paziente|lekarz|szpital|pacjent\w*|diabetes|diabète|diabete|cukrzyc\w*|bluthochdruck|hypertonie|ipertensione|hipertensi[oó]n|hipertensão|asthma|asthme|asma|astma|insulina|insuline|tabletten|medikament\w*|médicament\w*|medicamento\w*|farmac\w*|leki)\b|\b\w{3,}(?:itis|osis|emia|pathy)\b|glyc[ée]mie|cholest[ée]rol|ordonnance|laborwerte|befund|an[áa]lisis|esami|wyniki|病院|患者|糖尿病|高血圧|診断|診療|通院|処方|喘息|入院|紹介状",
            )?,
            confidential_content: rx(
                r"(?i)\b(?:roles?|jobs?|positions?|employees|headcount|people)\b[^.\n]{0,40}\b(?:will\s+be|to\s+be|are\s+being|being)\s+(?:cut|eliminated|laid\s+off|reduced)\b|\b(?:layoffs?|reduction\s+in\s+force)\b[^.\n]{0,60}\b(?:planned|next\s+(?:week|month|quarter)|will|upcoming|unannounced)\b|\b(?:revenue|earnings|ebitda|arr|margin|bookings)\b[^.\n]{0,60}\b(?:below|above|miss(?:ed)?|beat)\s+(?:plan|guidance|forecast|consensus)\b|\b(?:our|we)\b[^.\n]{0,50}\b(?:acquisition|acquire|merger|takeover)\b[^.\n]{0,80}\$\d|\b(?:exfiltrat\w+|breach(?:ed)?)\b[^.\n]{0,80}\b(?:customer|records|employee)\b|\bstill\s+unpatched\b|\bexposure\b[^.\n]{0,60}\$\d[^.\n]{0,60}\bsettl",
            )?,
            negation: rx(r"(?i)\b(?:without|no|not|never|isn't|don't|doesn't|can't|cannot)\b")?,
            context: context_rules()?,
            name_context: rx(
                r"(?m)(?:^|[.!?]\s+|\n)(\p{Lu}\p{Ll}{2,}),\s+(?:can|could|would|will|please|i|we|you|do|did|are|is|have|let's|thanks|thank)\b|,\s+(\p{Lu}\p{Ll}{2,})\s*[!?]|(?:^|[.!?]\s+|\n)(\p{Lu}\p{Ll}{2,})\s+(?:lives\s+in|was\s+born\s+in|works\s+(?:at|for)|(?:is|was)\s+from\s+(?:\p{Lu}[\w&'.-]*\s+){1,4}(?:LLC|Inc|Ltd|Corp|GmbH|Co|Group|Company|Corporation)\b)",
            )?,
            requirement: rx(
                r"(?i)\b(?:at\s+least|at\s+most|minimum|maximum|must|should|up\s+to|no\s+more\s+than|between|requires?|allowed|followed\s+by|format(?:ted)?|pattern|regex|validate|consists?\s+of|looks\s+like)\b",
            )?,
            word_problem: rx(
                r"(?i)\bhow\s+(?:many|much|far|long|old|fast|tall)\b|\bwhat\s+is\s+the\s+(?:total|sum|probability|average|difference)\b",
            )?,
            fiction: rx(
                r"(?i)\b(?:novels?|story|stories|films?|movies?|characters?|fictional|fiction|series|episodes?|soap|sitcom|opera|poem|fairy\s+tale|anime|manga|comics?|video\s+game|protagonist|villain|heroine|screenplay|musical|franchise|blurb|plot|books?|chapters?|saga|painted|painting|portrait|sculpture|masterpiece|scenes?|sketch|fan\s?fiction|fanfic|detective|roman|romans|película|filme|serie|série|fumetto|powieść)\b",
            )?,
            public_context: rx(PUBLIC_CONTEXT)?,
            landmark: rx(
                r"(?i)\b(?:1600\s+pennsylvania\s+ave(?:nue)?|10\s+downing\s+st(?:reet)?|221b\s+baker\s+st(?:reet)?|350\s+fifth\s+ave(?:nue)?|1\s+infinite\s+loop|1\s+apple\s+park\s+way|1600\s+amphitheatre\s+p(?:ar)?kwa?y|4059\s+mt\.?\s+lee\s+dr(?:ive)?|11\s+wall\s+st(?:reet)?|55\s+rue\s+du\s+faubourg[- ]saint[- ]honor[ée]|champ\s+de\s+mars,?\s+5\s+av(?:enue)?\s+anatole)",
            )?,
            medical_ml: rx(MEDICAL_ML)?,
            statistic: rx(
                r"(?i)\b(?:median|average|mean|typical|national|minimum|starting|durchschnitt\w*|mindest\w*|moyen\w*|minimum|medio|media|promedio|mínimo|média|médio|minimo|gemiddeld\w*|modaal|minimum\w*|średni\w*|minimaln\w*|range)\b",
            )?,
            first_person: rx(r"(?i)\b(?:my|i|i'm|i've|me|our|we|us)\b")?,
            nouns: Phrases::new(NOUNS.iter().map(|n| n.phrase), &lex),
            health: Phrases::new(HEALTH.iter().chain(HEALTH_STRICT).copied(), &lex),
            triggers: Phrases::new(trigger_phrases(), &lex),
            lex,
            first_names,
            famous: FAMOUS
                .lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(|l| l.split_whitespace())
                .collect(),
            personal: PERSONAL.iter().copied().collect(),
            not_name: NOT_NAME.iter().copied().collect(),
            strong: STRONG_TRIGGERS.iter().copied().collect(),
        })
    }

    /// One pass over the text: which rules can possibly match.
    fn gates(&self, text: &str) -> Gates {
        let mut g = Gates {
            specs: self.ungated,
            ..Gates::default()
        };
        let mut run = 0;
        let mut seen = [false; 128];
        for &b in text.as_bytes() {
            if b.is_ascii_digit() {
                g.digits += 1;
            }
            if b < 128 {
                seen[b as usize] = true;
            }
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                run += 1;
                g.max_run = g.max_run.max(run);
            } else {
                run = 0;
            }
        }
        for &(b, sb, eb) in &self.byte_bits {
            if seen[b as usize] {
                g.specs |= sb;
                g.extra |= eb;
            }
        }
        for m in self.gate_ac.find_overlapping_iter(text) {
            let (sb, eb) = self.gate_bits[m.pattern().as_usize()];
            g.specs |= sb;
            g.extra |= eb;
        }
        g
    }

    /// Scan one segment's text; findings are de-duplicated and test/demo context applied.
    /// Detectors run on the normalised view ([`normalize`]) and findings are mapped back
    /// to the original text's offsets.
    pub fn scan(&self, text: &str, org: &CompiledOrgRules, out: &mut Vec<Raw>) {
        let base = out.len();
        let view = normalize(text);
        match &view {
            None => self.scan_view(text, org, out, true),
            Some(v) => {
                let mut tmp = Vec::new();
                self.scan_view(&v.text, org, &mut tmp, true);
                for mut r in tmp {
                    (r.start, r.end) = v.to_original(text, r.start, r.end);
                    out.push(r);
                }
            }
        }
        let text_v = view.as_ref().map_or(text, |v| v.text.as_str());
        // Allow-list.
        // (`get`: spans are snapped to char boundaries later, in `resolve_overlaps`.)
        out.retain(|r| !text.get(r.start..r.end).is_some_and(|v| org.allowed(v)));
        self.post_process(text, text_v, out, base);
    }

    /// Every detector over one view of the text; `decode`: also scan obvious base64, hex
    /// and percent-encoded runs (one level deep) and report their findings on the run.
    fn scan_view(&self, text: &str, org: &CompiledOrgRules, out: &mut Vec<Raw>, decode: bool) {
        let g = self.gates(text);
        self.scan_regex(text, &g, out);
        let toks = prep_tokens(text, &self.lex);
        self.scan_tokens(text, &toks, &g, out);
        self.scan_names(text, &toks, &g, out);
        // Views that undo spacing obfuscation: single characters spaced out, digit groups
        // broken at random.
        let views = [despace(text), join_digit_groups(text)];
        for (norm, map) in views.into_iter().flatten() {
            // Only the neighbourhood of what was joined can hold a new finding: the windows
            // there go into one buffer (separated by blank lines) scanned once, so joins do
            // not double the cost of a long text.
            let windows = changed_windows(&norm, &map);
            let mut buf = String::new();
            let mut at: Vec<(usize, usize, usize)> = Vec::with_capacity(windows.len());
            for &(ws, we) in &windows {
                if !buf.is_empty() {
                    buf.push_str("\n\n");
                }
                at.push((buf.len(), ws, we - ws));
                buf.push_str(&norm[ws..we]);
            }
            if buf.is_empty() {
                continue;
            }
            let mut tmp = Vec::new();
            let ng = self.gates(&buf);
            self.scan_regex(&buf, &ng, &mut tmp);
            let ntoks = prep_tokens(&buf, &self.lex);
            self.scan_tokens(&buf, &ntoks, &ng, &mut tmp);
            for mut r in tmp {
                // The window holding the finding (a finding across windows is dropped).
                let k = at
                    .partition_point(|&(b0, _, _)| b0 <= r.start)
                    .saturating_sub(1);
                let Some(&(b0, ws, len)) = at.get(k) else {
                    continue;
                };
                if r.end > b0 + len || r.start < b0 {
                    continue;
                }
                let (rs, re) = (r.start - b0 + ws, r.end - b0 + ws);
                let s = map[rs.min(map.len() - 1)];
                // Each normalised byte maps to the same byte of the same char in `text`,
                // so the byte after the last mapped byte ends that char.
                let e = map[(re.max(rs + 1) - 1).min(map.len() - 1)] + 1;
                r.start = s;
                r.end = e.min(text.len()).max(s);
                out.push(r);
            }
        }
        if decode {
            for d in encoded_spans(text) {
                let mut tmp = Vec::new();
                self.scan_view(&d.text, org, &mut tmp, false);
                let mut seen: Vec<Category> = Vec::new();
                tmp.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
                for r in tmp {
                    if r.confidence < super::SENSITIVE_MIN_CONFIDENCE || seen.contains(&r.category)
                    {
                        continue;
                    }
                    seen.push(r.category);
                    out.push(Raw {
                        start: d.start,
                        end: d.end,
                        ..r
                    });
                }
            }
        }
        org.scan(text, out);
    }

    /// Medical context turns personal identifiers into PHI; clinical dates need it.
    /// `text`: the original (finding offsets); `view`: the normalised view (same text
    /// when nothing was normalised), for context regexes.
    fn post_process(&self, text: &str, view: &str, out: &mut Vec<Raw>, base: usize) {
        // Questions about confidentiality and fiction are not confidential content (the
        // org's own terms still count).
        let mut k = base;
        while k < out.len() {
            let r = &out[k];
            let about = r.category == Category::Confidential
                && r.detector == Detector::Rule
                && text.is_char_boundary(r.start)
                && {
                    let (ss, se) = sentence_at(text, r.start);
                    self.conf.is_about(&text[ss..se])
                };
            if about {
                out.swap_remove(k);
            } else {
                k += 1;
            }
        }
        // A "security code" next to a card number is the card's CVV, not a login code.
        if out[base..].iter().any(|r| r.kind == "credit_card") {
            for r in out[base..].iter_mut() {
                let digits = text
                    .get(r.start..r.end)
                    .map_or(0, |v| v.chars().filter(char::is_ascii_digit).count());
                if r.kind == "otp_code" && (3..=4).contains(&digits) {
                    r.category = Category::Financial;
                    r.kind = Cow::Borrowed("card_security");
                    r.confidence = r.confidence.max(0.8);
                }
            }
        }
        // Characters and settings of fiction; incomes inside word problems. Reported,
        // below the threshold, unless the sentence is the writer's own.
        // (Both regexes run only when there is a finding they could lower.)
        let lowerable = out[base..].iter().any(|r| {
            matches!(
                r.kind.as_ref(),
                "person_name" | "postal_address" | "income" | "income_described"
            )
        });
        let word_problem = lowerable && self.word_problem.is_match(view);
        let fiction_text = lowerable && view.len() < 300 && self.fiction.is_match(view);
        for r in out[base..].iter_mut() {
            let fiction_kind = matches!(r.kind.as_ref(), "person_name" | "postal_address");
            let problem_kind = matches!(r.kind.as_ref(), "income" | "income_described");
            if r.detector != Detector::Rule
                || !(fiction_kind || problem_kind)
                || !text.is_char_boundary(r.start)
            {
                continue;
            }
            let (ss, se) = sentence_at(text, r.start);
            let sentence = &text[ss..se];
            if self.first_person.is_match(sentence) {
                continue;
            }
            let fiction = fiction_kind && (fiction_text || self.fiction.is_match(sentence));
            let public = match r.kind.as_ref() {
                "person_name" => self.public_context.is_match(sentence),
                "postal_address" => text
                    .get(r.start..r.end)
                    .is_some_and(|a| self.landmark.is_match(a)),
                _ => false,
            };
            let statistic = problem_kind && self.statistic.is_match(sentence);
            if fiction || public || (problem_kind && (word_problem || statistic)) {
                r.confidence = r.confidence.min(0.45);
            }
        }
        let new = &mut out[base..];
        // The other-language words are looked for only within 400 bytes of a finding: a
        // clinical letter is short, and a long text then pays for small windows only.
        let medical_ml_near = |new: &[Raw]| {
            new.iter().any(|r| {
                let mut ws = r.start.saturating_sub(400).min(text.len());
                let mut we = r.end.saturating_add(400).min(text.len());
                while !text.is_char_boundary(ws) {
                    ws -= 1;
                }
                while !text.is_char_boundary(we) {
                    we += 1;
                }
                self.medical_ml.is_match(&text[ws..we])
            })
        };
        if new.iter().any(|r| r.category != Category::Confidential)
            && (self.medical.is_match(view) || medical_ml_near(new))
        {
            let has_identifier = new.iter().any(|r| {
                matches!(r.category, Category::Pii | Category::Phi)
                    && r.kind != "location"
                    && r.kind != "gender"
            });
            if has_identifier {
                for r in new.iter_mut() {
                    let to_phi = match r.category {
                        Category::Pii => true,
                        Category::Financial => matches!(
                            r.kind.as_ref(),
                            "financial_reference" | "bank_account" | "policy_number"
                        ),
                        _ => false,
                    };
                    if to_phi {
                        r.category = Category::Phi;
                    }
                }
            }
        } else {
            // Clinical dates only mean PHI next to medical context.
            let mut k = base;
            while k < out.len() {
                if out[k].kind == patterns::CLINICAL_DATE_KIND {
                    out.swap_remove(k);
                } else {
                    k += 1;
                }
            }
        }
    }

    /// Public figures: famous surnames, or a name next to a public role ("CEO Ann Lee",
    /// "Ann Lee, the CEO of X").
    fn public_figure(&self, text: &str, s: usize, e: usize, last: &str) -> bool {
        if self.famous.contains(last) {
            return true;
        }
        const ROLES: &[&str] = &[
            "ceo",
            "cfo",
            "cto",
            "coo",
            "president",
            "senator",
            "governor",
            "chairman",
            "chairwoman",
            "founder",
            "minister",
            "mayor",
            "king",
            "queen",
            "pope",
            "general",
            "author",
            "actor",
            "actress",
            "singer",
            "painter",
            "composer",
            "philosopher",
            "scientist",
            "chancellor",
            "emperor",
        ];
        let before = text[..s].trim_end();
        let prev = before
            .rsplit(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if ROLES.contains(&prev.as_str()) {
            return true;
        }
        // "Leonardo da Vinci", "Vincent van Gogh": particle + famous surname after the run.
        let mut rest = text[e..].split_whitespace();
        if let (Some(p), Some(n)) = (rest.next(), rest.next()) {
            let n = n
                .trim_end_matches(|c: char| !c.is_alphanumeric())
                .trim_end_matches("'s")
                .to_lowercase();
            if matches!(p, "da" | "van" | "von" | "de" | "del" | "di" | "la" | "le")
                && self.famous.contains(n.as_str())
            {
                return true;
            }
        }
        let after = text[e..].trim_start_matches([',', ' ']);
        let after = after
            .strip_prefix("the ")
            .or_else(|| after.strip_prefix("a "))
            .unwrap_or(after);
        let next: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        ROLES.contains(&next.as_str())
    }

    fn sentence_is_test(&self, text: &str, start: usize) -> bool {
        let (s, e) = sentence_at(text, start);
        self.test_markers.is_match(&text[s..e])
    }

    fn scan_regex(&self, text: &str, g: &Gates, out: &mut Vec<Raw>) {
        // Provider tokens: every format has 8+ body characters, so short texts skip it.
        if g.max_run >= 8 {
            let mut hits = Vec::new();
            self.secrets.scan(text, &mut hits);
            out.extend(hits.into_iter().map(|h| Raw {
                category: Category::Secret,
                detector: Detector::Rule,
                kind: Cow::Borrowed(h.kind),
                start: h.start,
                end: h.end,
                confidence: h.confidence,
            }));
        }
        let digits = g.digits;
        for (ci, c) in self.compiled.iter().enumerate() {
            let spec = c.spec;
            // Cheap gates: trigger literals, digit counts, token-run lengths.
            if g.specs & (1 << ci) == 0
                || (c.needs_digit && digits == 0)
                || digits < spec.min_digits as usize
                || g.max_run < spec.min_run as usize
            {
                continue;
            }
            for caps in c.re.captures_iter(text) {
                let Some(m) = caps.get(spec.group).or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.start() == m.end() {
                    continue;
                }
                let Some((s, e)) = self.validate(text, m.start(), m.end(), spec) else {
                    continue;
                };
                if spec.weak && self.sentence_is_test(text, s) {
                    continue;
                }
                // "customer/user/member account 123" is an account id, not a bank account.
                let (category, kind) = if spec.kind == "bank_account" && profile_account(text, s) {
                    (Category::Pii, "account_id")
                } else {
                    (spec.category, spec.kind)
                };
                out.push(Raw {
                    category,
                    detector: Detector::Rule,
                    kind: Cow::Borrowed(kind),
                    start: s,
                    end: e,
                    confidence: spec.confidence,
                });
            }
        }
    }

    /// Returns the (possibly narrowed) span when the match passes its validator.
    fn validate(&self, text: &str, s: usize, e: usize, spec: &Spec) -> Option<(usize, usize)> {
        let v = &text[s..e];
        let ok = match spec.validator {
            Validator::None => true,
            Validator::Card => {
                validate::card_number(v)
                    && !validate::public_test_card(v)
                    && !self.sentence_is_test(text, s)
                    && !inside_token(text, s, e)
                    && !device_number(text, s)
            }
            Validator::Iban => {
                // Try the full match, then drop trailing groups.
                let mut end = e;
                loop {
                    if validate::iban(&text[s..end]) {
                        return Some((s, end));
                    }
                    match text[s..end].rfind(' ') {
                        Some(p) if p > 4 => end = s + p,
                        _ => return None,
                    }
                }
            }
            Validator::Aba => validate::aba_routing(v),
            Validator::Ssn => validate::ssn(v) && !self.sentence_is_test(text, s),
            Validator::Luhn => validate::luhn(v) && !validate::all_same(v),
            Validator::Jwt => jwt_header_ok(v),
            Validator::Ipv4 => {
                let before_ok = !text[..s].ends_with('.');
                let after = &text[e..];
                let after_ok = !(after.starts_with('.')
                    && after[1..].starts_with(|c: char| c.is_ascii_digit()));
                before_ok && after_ok && validate::ipv4(v) && !v.starts_with("0.")
            }
            Validator::Mac => !validate::all_same(v) && !is_placeholder(v),
            Validator::Phone => {
                let digits = v.chars().filter(|c| c.is_ascii_digit()).count();
                let d: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
                (9..=15).contains(&digits)
                    && !phone_placeholder(&d)
                    && !self.sentence_is_test(text, s)
                    && !text[..s].ends_with(|c: char| c.is_ascii_digit() || c == '/')
                    && !text[e..].starts_with(|c: char| {
                        c == '/'
                            || c == '.' && text[e + 1..].starts_with(|d: char| d.is_ascii_digit())
                    })
            }
            Validator::NotPlaceholder => !is_placeholder(v),
            Validator::KeywordValue => keyword_value_ok(v),
            Validator::ProseValue => prose_value_ok(v),
            Validator::Entropy => v.len() >= 16 && shannon(v) >= 3.0,
            Validator::Email => email_ok(v),
        };
        ok.then_some((s, e))
    }

    fn scan_tokens(&self, text: &str, toks: &[Tok], g: &Gates, out: &mut Vec<Raw>) {
        let in_code = text.contains("```") || text.contains("def ") || text.contains("function ");
        const FILLER: &[&str] = &[
            "number",
            "no",
            "num",
            "id",
            "is",
            "was",
            "are",
            "were",
            "be",
            "of",
            "my",
            "the",
            "a",
            "an",
            "it's",
            "its",
            "to",
            "reads",
            "shows",
            "code",
            "equals",
            "called",
            "nr",
            "ends",
            "in",
            "with",
            "use",
            "at",
            "about",
            "around",
            "roughly",
            "approximately",
            "over",
            "nearly",
            // de / fr / es / pt / it / pl copulas, articles and number words.
            "beträgt",
            "ist",
            "lautet",
            "est",
            "es",
            "é",
            "è",
            "jest",
            "wynosi",
            "de",
            "du",
            "von",
            "der",
            "die",
            "das",
            "mein",
            "meine",
            "mon",
            "ma",
            "mi",
            "meu",
            "minha",
            "il",
            "la",
            "le",
            "el",
            "numer",
            "nummer",
            "numéro",
            "número",
            "numero",
            "son",
            "sont",
            "são",
            "sono",
            "r",
        ];
        let mut i = 0;
        while i < toks.len() {
            let Some((pi, j)) = self.nouns.longest(toks, i, true) else {
                i += 1;
                continue;
            };
            let noun: &Noun = &NOUNS[pi];
            // Look ahead for a value.
            let mut k = j;
            let mut found = None;
            while k < toks.len() && k < j + 5 {
                let t = &toks[k];
                let raw = &text[t.start..t.end];
                if value_like(raw, noun, text, t.start) {
                    found = Some(k);
                    break;
                }
                if !FILLER.contains(&t.word.as_str()) {
                    break;
                }
                k += 1;
            }
            if let Some(k) = found {
                // Extend over adjacent value tokens separated by a single space or dash.
                let mut end_k = k;
                while end_k + 1 < toks.len() {
                    let gap = &text[toks[end_k].end..toks[end_k + 1].start];
                    let nxt = &text[toks[end_k + 1].start..toks[end_k + 1].end];
                    if gap.len() <= 1
                        && gap.chars().all(|c| c == ' ' || c == '-')
                        && (nxt.chars().any(|c| c.is_ascii_digit())
                            || (noun.names_ok && nxt.starts_with(char::is_uppercase)))
                    {
                        end_k += 1;
                    } else {
                        break;
                    }
                }
                let (s, e) = (toks[k].start, toks[end_k].end);
                let value = &text[s..e];
                let (ss, se) = sentence_at(text, toks[i].start);
                let sentence = &text[ss..se];
                let possessive = toks[i.saturating_sub(3)..i].iter().any(|t| {
                    matches!(
                        t.word.as_str(),
                        "my" | "his" | "her" | "our" | "their" | "your"
                    )
                });
                let plain_cap = !value.chars().any(|c| c.is_ascii_digit())
                    && value
                        .split_whitespace()
                        .all(|w| !w.chars().skip(1).any(|c| c.is_uppercase()));
                let ok = !self.test_markers.is_match(sentence)
                    && !code_example(text, s, in_code)
                    && !is_placeholder_loose(value)
                    && (!plain_cap || possessive || noun.kind == "security_answer")
                    && (noun.kind != "security_answer" || self.security_ctx.is_match(sentence))
                    && !text[..s].trim_end().ends_with(['$', '{', '<', '%'])
                    && !(value.contains('_')
                        && value
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
                    && !text[e..].starts_with('%');
                if ok {
                    out.push(Raw {
                        category: noun.category,
                        detector: Detector::Rule,
                        kind: Cow::Borrowed(noun.kind),
                        start: s,
                        end: e,
                        confidence: if possessive { 0.8 } else { 0.65 },
                    });
                }
                i = end_k + 1;
                continue;
            }
            i = j;
        }
        // Described values: "starting with CLM and four digits", "the 555 one".
        let on = |bit: u32| g.extra & (1 << bit) != 0;
        let described = on(G_DESCRIBED).then(|| self.described.find_iter(text));
        for m in described.into_iter().flatten() {
            let (ss, se) = sentence_at(text, m.start());
            let sentence = &text[ss..se];
            if self.test_markers.is_match(sentence) || self.requirement.is_match(sentence) {
                continue;
            }
            let first = toks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.start >= ss && t.end <= se)
                .find_map(|(ti, _)| self.nouns.longest(toks, ti, true));
            if let Some((pi, _)) = first {
                let noun = &NOUNS[pi];
                out.push(Raw {
                    category: noun.category,
                    detector: Detector::Rule,
                    kind: Cow::Borrowed(noun.kind),
                    start: m.start(),
                    end: m.end(),
                    confidence: 0.55,
                });
            }
        }
        let kid = on(G_KID).then(|| self.kid_age.captures_iter(text));
        for caps in kid.into_iter().flatten() {
            if let Some(m) = caps.get(0) {
                if !self.sentence_is_test(text, m.start()) {
                    out.push(raw(Category::Pii, "minor_age", m.start(), m.end(), 0.6));
                }
            }
        }
        for re in [&self.personal_url, &self.street_short] {
            let bit = if std::ptr::eq(re, &self.personal_url) {
                G_URL
            } else {
                G_STREET
            };
            if !on(bit) || (bit == G_STREET && g.digits == 0) {
                continue;
            }
            for caps in re.captures_iter(text) {
                if let Some(m) = caps.get(1) {
                    // For URLs only the path (the person's handle) must not be a placeholder,
                    // and a demo domain inside the URL does not make the sentence a demo.
                    let v = m.as_str();
                    let checked = v.split_once('/').map_or(v, |(_, p)| p);
                    let (ss, se) = sentence_at(text, m.start());
                    let demo = self.test_markers.is_match(&text[ss..m.start()])
                        || self.test_markers.is_match(&text[m.end().min(se)..se]);
                    if !demo && !is_placeholder(checked) {
                        let kind = if std::ptr::eq(re, &self.personal_url) {
                            "personal_url"
                        } else {
                            "postal_address"
                        };
                        out.push(raw(Category::Pii, kind, m.start(), m.end(), 0.65));
                    }
                }
            }
        }
        // Personal health: a health term tied to "my", a device, an app or a profile.
        let mut i = 0;
        while i < toks.len() {
            if let Some((hi, j)) = self.health.longest(toks, i, true) {
                let strict = hi >= HEALTH.len();
                let (ss, se) = sentence_at(text, toks[i].start);
                let sentence = &text[ss..se];
                let personal = toks
                    .iter()
                    .filter(|t| t.start >= ss && t.end <= se)
                    .any(|t| {
                        if strict {
                            return matches!(
                                t.word.as_str(),
                                "my" | "mine"
                                    | "me"
                                    | "i"
                                    | "i'm"
                                    | "i've"
                                    | "son"
                                    | "daughter"
                                    | "wife"
                                    | "husband"
                                    | "mom"
                                    | "dad"
                            ) || STRICT_ANCHORS.contains(&t.word.as_str());
                        }
                        self.personal.contains(t.word.as_str())
                            || ["prfl", "shws", "pp", "dvc", "wllnss"].contains(&t.skel.as_str())
                                && t.word.len() <= t.skel.len() + 1
                    });
                let question = sentence.split_whitespace().next().is_some_and(|w| {
                    matches!(
                        w.to_ascii_lowercase().as_str(),
                        "what"
                            | "how"
                            | "can"
                            | "does"
                            | "do"
                            | "is"
                            | "are"
                            | "which"
                            | "why"
                            | "should"
                            | "could"
                            | "would"
                            | "when"
                    )
                });
                if personal
                    && !question
                    && !self.test_markers.is_match(sentence)
                    && !self.negation.is_match(&text[ss..toks[i].start])
                    && sentence.len() < 240
                {
                    out.push(raw(
                        Category::Phi,
                        "personal_health",
                        toks[i].start,
                        toks[j - 1].end,
                        0.6,
                    ));
                    i = j;
                    continue;
                }
                i = j;
                continue;
            }
            i += 1;
        }
        for (ri, (re, category, kind, conf)) in self.context.iter().enumerate() {
            if !on(G_CONTEXT + ri as u32) {
                continue;
            }
            for m in re.find_iter(text) {
                let (ss, se) = sentence_at(text, m.start());
                let sentence = &text[ss..se];
                let question = kind == &"education" && sentence.trim_end().ends_with('?');
                if !question && !self.test_markers.is_match(sentence) {
                    out.push(raw(*category, kind, m.start(), m.end(), *conf));
                }
            }
        }
        // Audience lines, adjective markers and not-yet-public cues.
        if on(G_CONF_CUE) {
            for (re, kind, c) in [
                (&self.conf.marker, "confidential_marker", 0.85),
                (&self.conf.cue, "confidential_content", 0.7),
            ] {
                for m in re.find_iter(text) {
                    if !self.sentence_is_test(text, m.start()) {
                        out.push(raw(Category::Confidential, kind, m.start(), m.end(), c));
                    }
                }
            }
        }
        // Unreleased business content.
        let conf = on(G_CONF).then(|| self.confidential_content.find_iter(text));
        for m in conf.into_iter().flatten() {
            if !self.sentence_is_test(text, m.start()) {
                out.push(raw(
                    Category::Confidential,
                    "confidential_content",
                    m.start(),
                    m.end(),
                    0.65,
                ));
            }
        }
    }

    fn scan_names(&self, text: &str, toks: &[Tok], g: &Gates, out: &mut Vec<Raw>) {
        let all_lower = !text.chars().any(|c| c.is_uppercase());
        let is_cap = |t: &Tok| {
            let s = &text[t.start..t.end];
            let mut cs = s.chars();
            let first_upper = cs.next().is_some_and(|c| c.is_uppercase());
            let letters = s.chars().filter(|c| c.is_alphabetic()).count();
            let uppers = s.chars().filter(|c| c.is_uppercase()).count();
            first_upper
                && s.chars()
                    .all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '’' | '.'))
                && (letters == 1 || uppers < letters || letters <= 2)
        };
        let is_initial = |t: &Tok| {
            let s = &text[t.start..t.end];
            s.chars().count() == 1 && s.starts_with(char::is_uppercase)
        };
        let in_code = text.contains("```") || text.contains("def ") || text.contains("function ");
        let word_problem = g.extra & (1 << G_WORD_PROBLEM) != 0 && self.word_problem.is_match(text);
        // Capitalised words used like a person (vocatives, subjects of personal verbs).
        let name_ctx =
            (g.extra & (1 << G_NAME_CONTEXT) != 0).then(|| self.name_context.captures_iter(text));
        for caps in name_ctx.into_iter().flatten() {
            let Some(m) = caps.get(1).or_else(|| caps.get(2)).or_else(|| caps.get(3)) else {
                continue;
            };
            let w = m.as_str().to_lowercase();
            let gaz = self.first_names.contains(w.as_str());
            if (gaz || !w.ends_with("ly"))
                && !self.not_name.contains(w.as_str())
                && !NOT_VOCATIVE.contains(&w.as_str())
                && !self.sentence_is_test(text, m.start())
            {
                let conf = if word_problem { 0.45 } else { 0.6 };
                out.push(raw(Category::Pii, "person_name", m.start(), m.end(), conf));
            }
        }
        let mut i = 0;
        let mut covered_until = 0;
        while i < toks.len() {
            // Trigger?
            let trig = self.triggers.longest(toks, i, true);
            let (start, strong) = match trig {
                Some((pi, j)) if j < toks.len() => {
                    let phrase = NAME_TRIGGERS[pi];
                    let needs = phrase.chars().last().filter(|c| matches!(c, ':' | ','));
                    let after = &text[toks[j - 1].end..];
                    let punct_ok = match needs {
                        Some(c) => after.starts_with(c),
                        None => true,
                    };
                    let j = if matches!(toks[j].word.as_str(), "him" | "her" | "them" | "me" | "us")
                        && j + 1 < toks.len()
                    {
                        j + 1
                    } else {
                        j
                    };
                    if punct_ok {
                        (j, self.strong.contains(phrase))
                    } else {
                        (i, false)
                    }
                }
                _ => (i, false),
            };
            if start >= toks.len() || toks[start].start < covered_until {
                i += 1;
                continue;
            }
            // Collect a run of capitalised words / initials.
            let mut k = start;
            while k < toks.len() && k < start + 4 {
                let t = &toks[k];
                let gap_ok = k == start || {
                    let gap = &text[toks[k - 1].end..t.start];
                    let prev_short = text[toks[k - 1].start..toks[k - 1].end].chars().count() <= 3;
                    (gap == " " || (prev_short && (gap == ". " || gap == "."))) && !gap.is_empty()
                };
                let ok = gap_ok
                    && (is_cap(t)
                        || (all_lower && k > start && t.word.chars().all(char::is_alphabetic)))
                    && !self.not_name.contains(t.word.trim_end_matches('.'));
                if !ok {
                    break;
                }
                k += 1;
            }
            // CJK names carry no case: after a strong trigger ("account holder", "patient:")
            // one or two short Han/kana tokens are the name.
            if k == start && strong {
                while k < toks.len()
                    && k < start + 2
                    && is_cjk_name(&text[toks[k].start..toks[k].end])
                {
                    k += 1;
                }
                if k > start {
                    let (s, e) = (toks[start].start, toks[k - 1].end);
                    out.push(raw(Category::Pii, "person_name", s, e, 0.8));
                    covered_until = e;
                    i = k;
                    continue;
                }
            }
            let run = &toks[start..k];
            let first_all_lower_name = all_lower
                && self.first_names.contains(toks[start].word.as_str())
                && start + 1 < toks.len()
                && toks[start + 1].word.chars().all(char::is_alphabetic)
                && !self.not_name.contains(toks[start + 1].word.as_str());
            if run.is_empty() && !first_all_lower_name {
                i += 1;
                continue;
            }
            let run_len = if first_all_lower_name && run.is_empty() {
                2
            } else {
                run.len()
            };
            let end_tok = start + run_len - 1;
            // Eponyms: "Parkinson's disease", "Chaddock reflex".
            let next_word = toks.get(end_tok + 1).map(|t| t.word.as_str()).unwrap_or("");
            if matches!(
                next_word,
                "disease"
                    | "syndrome"
                    | "reflex"
                    | "score"
                    | "criteria"
                    | "sign"
                    | "test"
                    | "trial"
                    | "law"
                    | "scale"
                    | "inc"
                    | "llc"
                    | "ltd"
                    | "plc"
                    | "gmbh"
                    | "corp"
                    | "group"
                    | "holdings"
                    | "partners"
                    | "associates"
            ) || firm_name(&text[toks[end_tok].end..])
                || text[..toks[start].start].trim_end().ends_with('&')
            {
                i = end_tok + 1;
                continue;
            }
            let first = toks[start].word.as_str();
            let gaz = self.first_names.contains(first);
            let long_words = run
                .iter()
                .filter(|t| !is_initial(t) && t.word.trim_end_matches('.').chars().count() >= 2)
                .count();
            let sentence_initial = {
                let before = text[..toks[start].start].trim_end();
                before.is_empty() || before.ends_with(['.', '!', '?', '\n', ':', '"'])
            };
            let ambiguous = AMBIGUOUS_NAMES.contains(&first);
            // Triggers that tie the name to a real record (self-introduction, card holder,
            // customer/patient labels); titles and prepositions do not.
            let self_named = trig.is_some_and(|(pi, _)| {
                let p = NAME_TRIGGERS[pi];
                matches!(p, "i'm" | "i am" | "this is" | "signed" | "sent from")
                    || (self.strong.contains(p)
                        && !matches!(
                            p,
                            "mr" | "mrs"
                                | "ms"
                                | "miss"
                                | "mx"
                                | "dr"
                                | "prof"
                                | "named"
                                | "bill"
                                | "dear"
                                | "regards,"
                                | "best,"
                                | "sincerely,"
                        ))
            });
            let surname = run_len >= 2
                && run
                    .iter()
                    .skip(1)
                    .any(|t| surname_like(&text[t.start..t.end]))
                && !self.not_name.contains(first);
            let (accept, conf) = if strong && long_words >= 1 {
                (true, 0.85)
            } else if self_named && run_len >= 1 && strong {
                // "my name is J. D." / obfuscated "J hn D oe".
                (true, 0.8)
            } else if gaz && run_len >= 2 && (!ambiguous || !sentence_initial || trig.is_some()) {
                (true, 0.8)
            } else if first_all_lower_name {
                (true, 0.6)
            } else if gaz && run_len == 1 && !(ambiguous && sentence_initial) {
                // A bare first name makes a short chat message personal; in longer or
                // numeric text (word problems, code) it is reported below threshold.
                let chat = text.len() < 160 && !text.chars().any(|c| c.is_ascii_digit());
                (true, if chat { 0.55 } else { 0.45 })
            } else if surname
                || run_len >= 3
                    && long_words >= 2
                    && run.iter().skip(1).take(run_len - 2).any(&is_initial)
            {
                (true, 0.75)
            } else {
                (false, 0.0)
            };
            if accept {
                let s = toks[start].start;
                let e = toks[end_tok].end;
                // Characters of a word problem ("Mr. Lee has 27 students. How many...")
                // are not real people unless they introduce themselves.
                let last = toks[end_tok].word.as_str();
                let public = self.public_figure(text, s, e, last);
                let conf =
                    if (word_problem || public) && !self_named || code_example(text, s, in_code) {
                        f32::min(conf, 0.45)
                    } else {
                        conf
                    };
                out.push(raw(Category::Pii, "person_name", s, e, conf));
                covered_until = e;
                i = end_tok + 1;
            } else {
                i += 1;
            }
        }
    }
}

/// Windows of a de-spaced / joined view around the places where bytes were dropped
/// (`map` jumps): 80 bytes before (context words such as "card", "SSN"), 40 after,
/// merged and snapped to char boundaries.
fn changed_windows(norm: &str, map: &[usize]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for i in 1..norm.len().min(map.len()) {
        if map[i] > map[i - 1] + 1 {
            let mut s = i.saturating_sub(80);
            while !norm.is_char_boundary(s) {
                s -= 1;
            }
            let mut e = (i + 40).min(norm.len());
            while !norm.is_char_boundary(e) {
                e += 1;
            }
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
    }
    out
}

/// The digits are one piece of a longer token (`xoxb-2176...-4617...-Zk`): a dash or
/// underscore glued to letters or digits on the outside.
fn inside_token(text: &str, s: usize, e: usize) -> bool {
    let b = text.as_bytes();
    let before = s >= 2 && matches!(b[s - 1], b'-' | b'_') && b[s - 2].is_ascii_alphanumeric();
    let after = e + 1 < b.len() && matches!(b[e], b'-' | b'_') && b[e + 1].is_ascii_alphanumeric();
    before || after
}

/// A Luhn-valid 15-digit IMEI (or a serial) is a device identifier, not a card.
fn device_number(text: &str, s: usize) -> bool {
    let mut from = s.saturating_sub(30);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text[from..s].to_ascii_lowercase();
    ["imei", "imsi", "iccid", "serial", "meid", "tracking"]
        .iter()
        .any(|w| before.contains(w))
}

/// What follows a capitalised word makes it a firm's name ("Gregory, Graves and Gomez",
/// "Baker & Sons").
fn firm_name(after: &str) -> bool {
    let t = after.trim_start_matches([',', ' ']);
    let mut words = t.split_whitespace();
    let (a, b, c) = (words.next(), words.next(), words.next());
    let cap = |w: Option<&str>| w.is_some_and(|w| w.starts_with(char::is_uppercase));
    let amp = |w: Option<&str>| matches!(w, Some("and" | "&"));
    (after.starts_with(',') && cap(a) && amp(b) && cap(c))
        || (a == Some("&") && cap(b))
        || (amp(a) && matches!(b, Some("Sons" | "Co" | "Co." | "Partners" | "Associates")))
}

/// One to four Han / kana characters: the shape of a Japanese or Chinese name part.
fn is_cjk_name(w: &str) -> bool {
    let n = w.chars().count();
    (1..=4).contains(&n)
        && w.chars().all(|c| {
            matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF)
        })
}

/// The words before an account number name a customer/user profile, not a bank.
fn profile_account(text: &str, s: usize) -> bool {
    let mut from = s.saturating_sub(40);
    while !text.is_char_boundary(from) {
        from -= 1;
    }
    let before = text[from..s].to_ascii_lowercase();
    let Some(p) = before.rfind("account") else {
        return false;
    };
    let head = &before[..p];
    [
        "customer", "user", "member", "player", "loyalty", "login", "portal", "gaming", "app",
    ]
    .iter()
    .any(|w| head.trim_end().ends_with(w))
}

/// Context rules for data that is described rather than written out.
fn context_rules() -> Result<Vec<(Regex, Category, &'static str, f32)>, ClassifierError> {
    const ALLUDED: &str = r"\s+(?:that\s+|which\s+)?(?:i|we)\s+(?:gave|mentioned|shared|provided|sent|told\s+you|listed|entered|used|gave\s+you|sent\s+you)\b";
    Ok(vec![
        // Data the user refers back to: "the number I gave", "the place I mentioned".
        (
            rx(&format!(
                r"(?i)\b(?:the|my|that)\s+(?:(?:phone\s+)?number|address|place|email|e-mail|location|details|info|one|site|name|id|contact)(?:\s+(?:details|info))?{ALLUDED}"
            ))?,
            Category::Pii,
            "referenced_personal_data",
            0.6,
        ),
        (
            rx(&format!(
                r"(?i)\b(?:the|my|that)\s+(?:card|account\s+number|iban|bank\s+details|routing\s+number)(?:\s+number)?{ALLUDED}"
            ))?,
            Category::Financial,
            "referenced_financial_data",
            0.6,
        ),
        (
            rx(&format!(
                r"(?i)\b(?:the|my|that)\s+(?:password|pin|passcode|code|token|key)(?:\s+number)?{ALLUDED}"
            ))?,
            Category::Secret,
            "referenced_secret",
            0.6,
        ),
        // Activity logs of a person or their devices.
        (
            rx(
                r"(?i)\b(?:command|voice|search|browsing|browser|location|call|chat|activity|watch|purchase|viewing|listening|login|device)(?:\s+[a-z]+)?\s+(?:log|logs|history)\s+(?:shows|show|includes|include|contains|contain|says|lists|has)\b",
            )?,
            Category::Pii,
            "activity_log",
            0.6,
        ),
        (
            rx(
                r"(?i)\b(?:sites?|pages?|websites?|urls?|st)\s+(?:i|we|he|she|they)\s+(?:visited|vstd|vistd|visted|browsed|frequent)\b",
            )?,
            Category::Pii,
            "browsing_history",
            0.6,
        ),
        // Ages of one's own children / family.
        (
            rx(
                r"(?i)\b(?:family\s+members?|my\s+(?:kids?|children|sons?|daughters?|grandkids?)|our\s+(?:kids?|children))\b[^.\n]{0,20}?\b(?:under|below|aged?|ages)\s+(?:\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen)\b",
            )?,
            Category::Pii,
            "minor_age",
            0.6,
        ),
        // Digits spelled out as words ("four one five, five five five, ...").
        (
            rx(
                r"(?i)\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)[\s,.-]+){6,}(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b",
            )?,
            Category::Pii,
            "spelled_number",
            0.6,
        ),
        // Education history stated about someone.
        (
            rx(
                r"(?i)\b(?:degree|diploma|graduated|alumn(?:us|a|i))\b[^.?\n]{0,40}\bfrom\s+(?:the\s+)?[^.?\n]{0,30}\b(?:university|college|institute|academy)\b",
            )?,
            Category::Pii,
            "education",
            0.55,
        ),
    ])
}

/// Words that open a sentence like a name but are not names (vocatives, interjections).
const NOT_VOCATIVE: &[&str] = &[
    "yes",
    "no",
    "well",
    "okay",
    "so",
    "now",
    "then",
    "also",
    "however",
    "sorry",
    "please",
    "thanks",
    "hello",
    "hey",
    "alright",
    "sure",
    "look",
    "listen",
    "friends",
    "guys",
    "everyone",
    "everybody",
    "folks",
    "team",
    "boss",
    "mom",
    "dad",
    "mum",
    "doctor",
    "again",
    "today",
    "tomorrow",
    "yesterday",
    "first",
    "second",
    "finally",
    "besides",
    "meanwhile",
    "otherwise",
    "therefore",
    "instead",
    "still",
    "yet",
    "anyway",
    "anyways",
    "wow",
    "great",
    "good",
    "fine",
    "right",
    "wait",
    "man",
    "dude",
    "buddy",
    "kids",
    "honey",
    "darling",
    "baby",
    "sweetie",
    "next",
    "plus",
    "world",
    "sir",
    "madam",
    "ladies",
    "gentlemen",
    "here",
    "there",
    "oops",
    "yeah",
    "nope",
    "indeed",
    "otherwise",
    "afterwards",
    "later",
    "sometimes",
    "people",
    "someone",
    "somebody",
    "nobody",
    "anyone",
    "anybody",
    "sister",
    "brother",
    "grandma",
    "grandpa",
    "son",
    "daughter",
    "officer",
    "teacher",
    "class",
    "students",
    "mister",
    "ma'am",
    "bro",
    "sis",
    "cheers",
    "congratulations",
    "goodbye",
    "bye",
    "amen",
];

/// Surname endings common across languages (Slavic, Nordic, Greek, Turkish, Armenian,
/// Georgian, Romanian, Spanish, Germanic patronymics).
fn surname_like(w: &str) -> bool {
    let l = w
        .trim_end_matches("'s")
        .trim_end_matches("’s")
        .to_lowercase();
    let n = l.chars().count();
    if n < 5 {
        return false;
    }
    const ENDS: &[&str] = &[
        "ska", "ski", "cki", "cka", "wicz", "ová", "ova", "ovic", "ović", "evic", "ević", "enko",
        "escu", "sson", "sen", "poulos", "opoulou", "akis", "idis", "oglu", "oğlu", "yan",
        "shvili", "dze", "ovna", "ovich", "evich", "eva", "ev", "ov", "son", "stein", "mann",
        "ińska", "ński", "ńska", "dóttir", "sdottir", "nen", "inen", "ič", "ez",
    ];
    ENDS.iter().any(|e| l.ends_with(e))
}

fn raw(category: Category, kind: &'static str, start: usize, end: usize, confidence: f32) -> Raw {
    Raw {
        category,
        detector: Detector::Rule,
        kind: Cow::Borrowed(kind),
        start,
        end,
        confidence,
    }
}

fn value_like(raw: &str, noun: &Noun, text: &str, pos: usize) -> bool {
    let digits = raw.chars().filter(|c| c.is_ascii_digit()).count();
    let alnum = raw.chars().filter(|c| c.is_alphanumeric()).count();
    let letters = alnum - digits;
    if text[..pos].ends_with('$') {
        return noun.kind == "income";
    }
    if noun.kind == "income"
        && digits >= 2
        && raw
            .trim_end_matches(['k', 'K', 'm', 'M'])
            .chars()
            .all(|c| c.is_ascii_digit() || c == ',' || c == '.')
        && raw.ends_with(['k', 'K', 'm', 'M'])
    {
        return true; // "85k"
    }
    if digits > 0 {
        let min = match noun.kind {
            "otp_code" | "pin" | "income" | "credit_score" => 3,
            _ => 5,
        };
        return if letters == 0 {
            digits >= min
        } else {
            alnum >= 4
        };
    }
    let mixed =
        raw.chars().skip(1).any(|c| c.is_uppercase()) && raw.chars().any(|c| c.is_lowercase());
    if mixed && alnum >= 4 {
        return true;
    }
    if noun.kind == "gender" {
        return matches!(
            raw.to_lowercase().as_str(),
            "male" | "female" | "nonbinary" | "non-binary"
        );
    }
    noun.names_ok
        && raw.starts_with(char::is_uppercase)
        && (alnum >= 2 || noun.kind == "person_name")
}

/// A made-up phone number (digits only). Not the secrets' placeholder test: the groups of
/// a real number can join into a long run ("415 203 3333" reads "4152033333").
fn phone_placeholder(d: &str) -> bool {
    let national = &d[d.len().saturating_sub(10)..];
    let longest_run = d
        .as_bytes()
        .chunk_by(|a, b| a == b)
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0);
    validate::all_same(d)
        || validate::all_same(national)
        || longest_run >= 7
        || ["1234567890", "0123456789", "9876543210", "123456789"]
            .iter()
            .any(|seq| national.ends_with(seq))
}

fn is_placeholder_loose(v: &str) -> bool {
    let d: String = v.chars().filter(|c| c.is_alphanumeric()).collect();
    if d.chars().filter(|c| c.is_ascii_digit()).count() >= 4 {
        let digits: String = d.chars().filter(|c| c.is_ascii_digit()).collect();
        if validate::all_same(&digits) {
            return true;
        }
    }
    let l = v.to_lowercase();
    [
        "xxx",
        "example",
        "fake",
        "dummy",
        "sample",
        "test",
        "***",
        "•••",
        "redacted",
    ]
    .iter()
    .any(|w| l.contains(w))
}

fn prose_value_ok(v: &str) -> bool {
    let t = v.trim_matches(|c: char| c == '"' || c == '\'');
    if is_placeholder_loose(t) || t.len() < 4 {
        return false;
    }
    // Templates and variable references (`${DB_PASSWORD}`, `{{ secret }}`, `<token>`,
    // `$API_KEY`), and a type annotation in code (`password: str)`).
    let core = t.trim_end_matches([')', ',', ';', '.', ':', '}', ']']);
    if t.starts_with("${")
        || t.starts_with("{{")
        || t.starts_with("%(")
        || (t.starts_with('<') && t.ends_with('>'))
        || (t.starts_with('$')
            && t[1..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
        || (!core.is_empty() && core.chars().all(|c| c.is_ascii_lowercase()))
    {
        return false;
    }
    t.chars().any(|c| c.is_ascii_digit())
        || (t.chars().skip(1).any(|c| c.is_uppercase()) && t.chars().any(|c| c.is_lowercase()))
        || t.chars().any(|c| !c.is_alphanumeric())
}

fn keyword_value_ok(v: &str) -> bool {
    let (inner, quoted) = match v.chars().next() {
        Some(q @ ('"' | '\'')) => {
            if v.len() < 2 || !v.ends_with(q) {
                return false; // unterminated or mismatched quotes
            }
            (&v[1..v.len() - 1], true)
        }
        _ => (v, false),
    };
    if inner.chars().count() < 6 || is_placeholder(inner) {
        return false;
    }
    // Variable references and function calls.
    if inner.contains('(')
        || inner.contains('[')
        || inner.starts_with("os.")
        || inner.starts_with("process.")
        || inner.starts_with("env")
    {
        return false;
    }
    if !quoted
        && inner
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        && inner.contains('_')
    {
        return false;
    }
    let has_digit = inner.chars().any(|c| c.is_ascii_digit());
    let has_upper = inner.chars().any(|c| c.is_uppercase());
    let has_lower = inner.chars().any(|c| c.is_lowercase());
    let has_special = inner
        .chars()
        .any(|c| !c.is_alphanumeric() && !matches!(c, '-' | '_' | '.'));
    // Lowercase words with separators ("shorter-version", "notapassword") are not secrets.
    if !has_digit && !has_upper && !has_special {
        return false;
    }
    if inner.chars().all(|c| c.is_ascii_digit()) && inner.len() < 8 {
        return false;
    }
    has_special
        || (has_digit && (has_upper || has_lower))
        || (has_upper && has_lower)
        || shannon(inner) >= 3.0
}

fn email_ok(v: &str) -> bool {
    let Some((local, domain)) = v.rsplit_once('@') else {
        return false;
    };
    let l = local.to_ascii_lowercase();
    let d = domain.to_ascii_lowercase();
    let generic_domain = matches!(
        d.as_str(),
        "domain.com"
            | "example.com"
            | "example.org"
            | "example.net"
            | "test.com"
            | "email.com"
            | "company.com"
            | "yourdomain.com"
            | "mail.com"
    );
    let generic_local = matches!(
        l.as_str(),
        "user"
            | "username"
            | "name"
            | "department"
            | "email"
            | "test"
            | "someone"
            | "you"
            | "yourname"
            | "your.name"
            | "foo"
            | "bar"
            | "admin"
            | "info"
            | "first.last"
            | "firstname.lastname"
            | "john.doe"
            | "jane.doe"
            | "noreply"
            | "no-reply"
    );
    let image = d.ends_with(".png") || d.ends_with(".jpg");
    !(image || (generic_domain && generic_local))
}

/// JWT: the header segment decodes (base64url) to a JSON object naming "alg" or "typ".
fn jwt_header_ok(v: &str) -> bool {
    let header = v.split('.').next().unwrap_or("");
    match b64url_decode(header) {
        Some(bytes) => {
            let s = String::from_utf8_lossy(&bytes);
            s.trim_start().starts_with('{') && (s.contains("\"alg\"") || s.contains("\"typ\""))
        }
        None => false,
    }
}

fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            b'=' => break,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwt_header() {
        // {"alg":"HS256"} base64url
        assert!(jwt_header_ok("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"));
        assert!(!jwt_header_ok("eyJBBB.eyJCCC"));
    }

    #[test]
    fn keyword_values() {
        assert!(keyword_value_ok("\"Qw9!zr#Lm2\""));
        assert!(!keyword_value_ok("\"unterminated"));
        assert!(!keyword_value_ok("${DB_PASS}"));
        assert!(!keyword_value_ok("lower-words-only"));
        assert!(!keyword_value_ok("MY_ENV_VAR"));
        assert!(!keyword_value_ok("\"\""));
    }

    #[test]
    fn emails() {
        assert!(email_ok("k.lindqvist88@mailbox.org"));
        assert!(!email_ok("department@domain.com"));
    }
}
