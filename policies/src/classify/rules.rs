//! Org-configured rules: extra detectors, confidential term lists and an allow-list.
//! Deserialised from policy YAML (serde); compiled once by `Classifier::new`.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;

use super::entropy::is_placeholder;
use super::sensitivity::Raw;
use super::{validate, Category, ClassifierError, Detector};

/// Organisation rules. Every field is optional.
///
/// ```yaml
/// detectors:
///   - name: employee_id
///     category: pii
///     regex: '\bEMP-\d{6}\b'
///     confidence: 0.9
///   - name: gift_card
///     category: financial
///     regex: '\b\d{16}\b'
///     validator: luhn
/// confidential_terms: ["Project Bluebird", "Falcon"]
/// allow: ["support@acme.example", "regex:^TICKET-\\d+$"]
/// ```
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OrgRules {
    pub detectors: Vec<OrgDetector>,
    /// Case-insensitive whole-word terms (code names, customer names) => `confidential`.
    pub confidential_terms: Vec<String>,
    /// Literal strings, or `regex:` + pattern; a finding whose text matches is dropped.
    pub allow: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OrgDetector {
    pub name: String,
    pub category: Category,
    pub regex: String,
    /// One of `luhn`, `iban`, `aba`, `ssn`, `not_placeholder`.
    #[serde(default)]
    pub validator: Option<String>,
    #[serde(default)]
    pub confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy)]
enum OrgValidator {
    None,
    Luhn,
    Iban,
    Aba,
    Ssn,
    NotPlaceholder,
}

struct OrgCompiled {
    name: String,
    category: Category,
    re: Regex,
    validator: OrgValidator,
    confidence: f32,
}

pub struct CompiledOrgRules {
    detectors: Vec<OrgCompiled>,
    terms: Option<Regex>,
    allow_literal: Vec<String>,
    allow_regex: Vec<Regex>,
}

impl CompiledOrgRules {
    pub fn compile(rules: &OrgRules) -> Result<CompiledOrgRules, ClassifierError> {
        let mut detectors = Vec::new();
        for d in &rules.detectors {
            let re = Regex::new(&d.regex).map_err(|e| ClassifierError::Regex {
                name: d.name.clone(),
                message: e.to_string(),
            })?;
            let validator = match d.validator.as_deref() {
                None => OrgValidator::None,
                Some("luhn") => OrgValidator::Luhn,
                Some("iban") => OrgValidator::Iban,
                Some("aba") => OrgValidator::Aba,
                Some("ssn") => OrgValidator::Ssn,
                Some("not_placeholder") => OrgValidator::NotPlaceholder,
                Some(other) => {
                    return Err(ClassifierError::UnknownValidator {
                        name: d.name.clone(),
                        validator: other.to_string(),
                    })
                }
            };
            let confidence = d.confidence.unwrap_or(0.9);
            if !(0.0..=1.0).contains(&confidence) {
                return Err(ClassifierError::Confidence {
                    name: d.name.clone(),
                });
            }
            detectors.push(OrgCompiled {
                name: d.name.clone(),
                category: d.category,
                re,
                validator,
                confidence,
            });
        }
        let terms: Vec<String> = rules
            .confidential_terms
            .iter()
            .filter(|t| !t.trim().is_empty())
            .map(|t| regex::escape(t.trim()))
            .collect();
        let terms = if terms.is_empty() {
            None
        } else {
            let p = format!(r"(?i)\b(?:{})\b", terms.join("|"));
            Some(Regex::new(&p).map_err(|e| ClassifierError::Regex {
                name: "confidential_terms".into(),
                message: e.to_string(),
            })?)
        };
        let mut allow_literal = Vec::new();
        let mut allow_regex = Vec::new();
        for a in &rules.allow {
            if let Some(p) = a.strip_prefix("regex:") {
                allow_regex.push(Regex::new(p).map_err(|e| ClassifierError::Regex {
                    name: format!("allow {p}"),
                    message: e.to_string(),
                })?);
            } else {
                allow_literal.push(a.clone());
            }
        }
        Ok(CompiledOrgRules {
            detectors,
            terms,
            allow_literal,
            allow_regex,
        })
    }

    pub fn scan(&self, text: &str, out: &mut Vec<Raw>) {
        for d in &self.detectors {
            for m in d.re.find_iter(text) {
                if m.start() == m.end() {
                    continue;
                }
                let v = m.as_str();
                let ok = match d.validator {
                    OrgValidator::None => true,
                    OrgValidator::Luhn => validate::luhn(v),
                    OrgValidator::Iban => validate::iban(v),
                    OrgValidator::Aba => validate::aba_routing(v),
                    OrgValidator::Ssn => validate::ssn(v),
                    OrgValidator::NotPlaceholder => !is_placeholder(v),
                };
                if ok {
                    out.push(Raw {
                        category: d.category,
                        detector: Detector::Org,
                        kind: Cow::Owned(d.name.clone()),
                        start: m.start(),
                        end: m.end(),
                        confidence: d.confidence,
                    });
                }
            }
        }
        if let Some(t) = &self.terms {
            for m in t.find_iter(text) {
                out.push(Raw {
                    category: Category::Confidential,
                    detector: Detector::Org,
                    kind: Cow::Borrowed("confidential_term"),
                    start: m.start(),
                    end: m.end(),
                    confidence: 0.9,
                });
            }
        }
    }

    /// True when `value` (a finding's text) is allow-listed.
    pub fn allowed(&self, value: &str) -> bool {
        self.allow_literal.iter().any(|a| a == value)
            || self.allow_regex.iter().any(|r| r.is_match(value))
    }
}
