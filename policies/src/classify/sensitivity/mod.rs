//! Sensitivity detection: regex detectors with validators, context rules over word tokens
//! (data nouns followed by values, described values, personal health), person names, and
//! org-configured rules. Produces raw findings with spans relative to one segment.

pub mod lexicon;
pub mod patterns;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use regex::Regex;

use super::entropy::{is_placeholder, shannon};
use super::rules::CompiledOrgRules;
use super::text::{despace, sentence_at, skeleton, tokens, Token};
use super::{validate, Category, ClassifierError};
use lexicon::{Noun, HEALTH, NAME_TRIGGERS, NOT_NAME, NOUNS, PERSONAL, STRONG_TRIGGERS};
use patterns::{Spec, Validator, SPECS};

/// A finding inside one segment (byte offsets into the segment text).
#[derive(Debug, Clone)]
pub struct Raw {
    pub category: Category,
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

/// Phrase index keyed by first word (exact and vowel-skeleton).
struct Phrases {
    words: Vec<Vec<String>>,
    exact: HashMap<String, Vec<usize>>,
    skel: HashMap<String, Vec<usize>>,
}

impl Phrases {
    fn new<'a>(phrases: impl Iterator<Item = &'a str>) -> Phrases {
        let mut p = Phrases {
            words: Vec::new(),
            exact: HashMap::new(),
            skel: HashMap::new(),
        };
        for (i, ph) in phrases.enumerate() {
            let ws: Vec<String> = ph.split(' ').map(|w| w.to_string()).collect();
            p.exact.entry(ws[0].clone()).or_default().push(i);
            let sk = skeleton(&ws[0]);
            if sk.len() >= 3 {
                p.skel.entry(sk).or_default().push(i);
            }
            p.words.push(ws);
        }
        p
    }

    /// Longest phrase starting at token `i`; returns (phrase index, token index after it).
    fn longest(&self, toks: &[Tok], i: usize, fuzzy: bool) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        let cands = self
            .exact
            .get(toks[i].word.as_str())
            .into_iter()
            .flatten()
            .chain(
                if fuzzy {
                    self.skel.get(toks[i].skel.as_str())
                } else {
                    None
                }
                .into_iter()
                .flatten(),
            );
        for &pi in cands {
            let ws = &self.words[pi];
            if i + ws.len() > toks.len() {
                continue;
            }
            if ws
                .iter()
                .enumerate()
                .all(|(k, w)| word_eq(&toks[i + k], w, fuzzy, k == 0))
                && best.is_none_or(|(b, _)| self.words[b].len() < ws.len())
            {
                best = Some((pi, i + ws.len()));
            }
        }
        best
    }
}

fn word_eq(t: &Tok, w: &str, fuzzy: bool, first: bool) -> bool {
    if t.word == w {
        return true;
    }
    if !fuzzy || t.word.len() >= w.len() || !t.word.chars().all(|c| c.is_alphanumeric()) {
        return false;
    }
    let min = if first { 3 } else { 2 };
    let sw = skeleton(w);
    t.skel.len() >= min && (t.skel == sw || t.skel == sw.trim_end_matches('y'))
}

/// Token with extra views used by the rules.
struct Tok {
    start: usize,
    end: usize,
    word: String,
    skel: String,
}

fn prep_tokens(text: &str) -> Vec<Tok> {
    tokens(text)
        .into_iter()
        .map(|Token { start, end, lower }| {
            let word = lower
                .strip_suffix("'s")
                .or_else(|| lower.strip_suffix("’s"))
                .unwrap_or(&lower)
                .to_string();
            let skel = skeleton(&word);
            Tok {
                start,
                end,
                word,
                skel,
            }
        })
        .collect()
}

pub struct Sensitivity {
    compiled: Vec<Compiled>,
    test_markers: Regex,
    described: Regex,
    kid_age: Regex,
    personal_url: Regex,
    street_short: Regex,
    security_ctx: Regex,
    medical: Regex,
    confidential_content: Regex,
    negation: Regex,
    nouns: Phrases,
    health: Phrases,
    triggers: Phrases,
    first_names: HashSet<&'static str>,
    personal: HashSet<&'static str>,
    not_name: HashSet<&'static str>,
    strong: HashSet<&'static str>,
}

const FIRST_NAMES: &str = include_str!("../../../data/first_names.txt");

/// Names that are also ordinary words; they count only mid-sentence.
const AMBIGUOUS_NAMES: &[&str] = &[
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
            let p: String = match spec.kind {
                patterns::DOB_INDEX_KIND => dob.clone(),
                patterns::CLINICAL_DATE_KIND => clin.clone(),
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
        let first_names = FIRST_NAMES
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| l.split_whitespace())
            .collect();
        Ok(Sensitivity {
            compiled,
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
                r"(?i:\b(?:at|on|to|live|lives|living)\s+)(\d{1,5}\s?(?:st|street|ave|avenue|rd|road|blvd|lane|ln|drive)\b)",
            )?,
            security_ctx: rx(
                r"(?i)maiden|pet'?s?\s+name|security|first\s+(?:car|school|pet)|mother|\bmom\b|\bmum\b|childhood|grew\s+up|madn|scrty",
            )?,
            medical: rx(
                r"(?i)\b(?:patient|pt|dx|diagnos\w*|mrn|medical|hospital|clinic|disease|disorder|syndrome|cancer|diabetes|hypertension|asthma|copd|chf|arthritis|hepatitis|sclerosis|fibrillation|stroke|migraines?|depressi\w*|anxiety|schizophrenia|bipolar|alzheimer\w*|dementia|epilepsy|crohn\w*|meds|medications?|prescri\w*|treatment|therapy|surgery|insulin|chemotherapy|tumou?r|infection|hiv|covid|ptsd|adhd|autism|pregnan\w*|follow-up|symptoms?|health\s+plan|mg)\b|\b\w{3,}(?:itis|osis|emia|pathy)\b",
            )?,
            confidential_content: rx(
                r"(?i)\b(?:roles?|jobs?|positions?|employees|headcount|people)\b[^.\n]{0,40}\b(?:will\s+be|to\s+be|are\s+being|being)\s+(?:cut|eliminated|laid\s+off|reduced)\b|\b(?:layoffs?|reduction\s+in\s+force)\b[^.\n]{0,60}\b(?:planned|next\s+(?:week|month|quarter)|will|upcoming|unannounced)\b|\b(?:revenue|earnings|ebitda|arr|margin|bookings)\b[^.\n]{0,60}\b(?:below|above|miss(?:ed)?|beat)\s+(?:plan|guidance|forecast|consensus)\b|\b(?:our|we)\b[^.\n]{0,50}\b(?:acquisition|acquire|merger|takeover)\b[^.\n]{0,80}\$\d|\b(?:exfiltrat\w+|breach(?:ed)?)\b[^.\n]{0,80}\b(?:customer|records|employee)\b|\bstill\s+unpatched\b|\bexposure\b[^.\n]{0,60}\$\d[^.\n]{0,60}\bsettl",
            )?,
            negation: rx(r"(?i)\b(?:without|no|not|never|isn't|don't|doesn't|can't|cannot)\b")?,
            nouns: Phrases::new(NOUNS.iter().map(|n| n.phrase)),
            health: Phrases::new(HEALTH.iter().copied()),
            triggers: Phrases::new(NAME_TRIGGERS.iter().map(|t| t.trim_end_matches([':', ',']))),
            first_names,
            personal: PERSONAL.iter().copied().collect(),
            not_name: NOT_NAME.iter().copied().collect(),
            strong: STRONG_TRIGGERS.iter().copied().collect(),
        })
    }

    /// Scan one segment's text; findings are de-duplicated and test/demo context applied.
    pub fn scan(&self, text: &str, org: &CompiledOrgRules, out: &mut Vec<Raw>) {
        let base = out.len();
        self.scan_regex(text, None, out);
        let toks = prep_tokens(text);
        self.scan_tokens(text, &toks, out);
        self.scan_names(text, &toks, out);
        if let Some((norm, map)) = despace(text) {
            let mut tmp = Vec::new();
            self.scan_regex(&norm, Some(text), &mut tmp);
            let ntoks = prep_tokens(&norm);
            self.scan_tokens(&norm, &ntoks, &mut tmp);
            for mut r in tmp {
                let s = map[r.start.min(map.len() - 1)];
                // Each normalised byte maps to the same byte of the same char in `text`,
                // so the byte after the last mapped byte ends that char.
                let e = map[(r.end.max(r.start + 1) - 1).min(map.len() - 1)] + 1;
                r.start = s;
                r.end = e.min(text.len()).max(s);
                out.push(r);
            }
        }
        org.scan(text, out);
        // Allow-list.
        out.retain(|r| !org.allowed(&text[r.start..r.end]));
        // Medical context turns personal identifiers into PHI.
        let new = &mut out[base..];
        if new.iter().any(|r| r.category != Category::Confidential) && self.medical.is_match(text) {
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

    fn sentence_is_test(&self, text: &str, start: usize) -> bool {
        let (s, e) = sentence_at(text, start);
        self.test_markers.is_match(&text[s..e])
    }

    fn scan_regex(&self, text: &str, _orig: Option<&str>, out: &mut Vec<Raw>) {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        for c in &self.compiled {
            let spec = c.spec;
            // Cheap gates: most detectors need digits; phones need at least 9.
            if (c.needs_digit && digits == 0) || (spec.kind == "phone" && digits < 9) {
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
                out.push(Raw {
                    category: spec.category,
                    kind: Cow::Borrowed(spec.kind),
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
            Validator::Card => validate::card_number(v) && !self.sentence_is_test(text, s),
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
                    && !validate::all_same(&d)
                    && !is_placeholder(&d)
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

    fn scan_tokens(&self, text: &str, toks: &[Tok], out: &mut Vec<Raw>) {
        const FILLER: &[&str] = &[
            "number", "no", "num", "id", "is", "was", "are", "were", "be", "of", "my", "the", "a",
            "an", "it's", "its", "to", "reads", "shows", "code", "equals", "called", "nr", "ends",
            "in", "with", "use", "at",
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
                    && !is_placeholder_loose(value)
                    && (!plain_cap || possessive || noun.kind == "security_answer")
                    && (noun.kind != "security_answer" || self.security_ctx.is_match(sentence))
                    && !text[..s].ends_with(['$', '{', '<', '%'])
                    && !(value.contains('_')
                        && value
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
                    && !text[e..].starts_with('%');
                if ok {
                    out.push(Raw {
                        category: noun.category,
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
        for m in self.described.find_iter(text) {
            let (ss, se) = sentence_at(text, m.start());
            let sentence = &text[ss..se];
            if self.test_markers.is_match(sentence) {
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
                    kind: Cow::Borrowed(noun.kind),
                    start: m.start(),
                    end: m.end(),
                    confidence: 0.55,
                });
            }
        }
        for caps in self.kid_age.captures_iter(text) {
            if let Some(m) = caps.get(0) {
                if !self.sentence_is_test(text, m.start()) {
                    out.push(raw(Category::Pii, "minor_age", m.start(), m.end(), 0.6));
                }
            }
        }
        for re in [&self.personal_url, &self.street_short] {
            for caps in re.captures_iter(text) {
                if let Some(m) = caps.get(1) {
                    if !self.sentence_is_test(text, m.start()) && !is_placeholder(m.as_str()) {
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
            if let Some((_, j)) = self.health.longest(toks, i, true) {
                let (ss, se) = sentence_at(text, toks[i].start);
                let sentence = &text[ss..se];
                let personal = toks
                    .iter()
                    .filter(|t| t.start >= ss && t.end <= se)
                    .any(|t| {
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
                    && !self.negation.is_match(sentence)
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
        // Unreleased business content.
        for m in self.confidential_content.find_iter(text) {
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

    fn scan_names(&self, text: &str, toks: &[Tok], out: &mut Vec<Raw>) {
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
        let mut i = 0;
        let mut covered_until = 0;
        while i < toks.len() {
            // Trigger?
            let trig = self.triggers.longest(toks, i, false);
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
            ) {
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
            let (accept, conf) = if strong && long_words >= 1 {
                (true, 0.85)
            } else if gaz && run_len >= 2 && (!ambiguous || !sentence_initial || trig.is_some()) {
                (true, 0.8)
            } else if first_all_lower_name {
                (true, 0.6)
            } else if gaz && run_len == 1 && !(ambiguous && sentence_initial) {
                // A bare first name makes a short chat message personal; in longer or
                // numeric text (word problems, code) it is reported below threshold.
                let chat = text.len() < 160 && !text.chars().any(|c| c.is_ascii_digit());
                (true, if chat { 0.55 } else { 0.45 })
            } else if run_len >= 3
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
                out.push(raw(Category::Pii, "person_name", s, e, conf));
                covered_until = e;
                i = end_tok + 1;
            } else {
                i += 1;
            }
        }
    }
}

fn raw(category: Category, kind: &'static str, start: usize, end: usize, confidence: f32) -> Raw {
    Raw {
        category,
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

fn is_placeholder_loose(v: &str) -> bool {
    let d: String = v.chars().filter(|c| c.is_alphanumeric()).collect();
    if d.chars().filter(|c| c.is_ascii_digit()).count() >= 4 {
        let digits: String = d.chars().filter(|c| c.is_ascii_digit()).collect();
        if validate::all_same(&digits) {
            return true;
        }
    }
    let l = v.to_lowercase();
    ["xxx", "example", "fake", "dummy", "sample", "test"]
        .iter()
        .any(|w| l.contains(w))
}

fn prose_value_ok(v: &str) -> bool {
    let t = v.trim_matches(|c: char| c == '"' || c == '\'');
    if is_placeholder_loose(t) || t.len() < 4 {
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
