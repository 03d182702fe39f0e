//! The single-instance sections: `privacy:` and `classifier:`.

use super::super::ast::PrivacyDef;
use super::super::engine::{CatSet, Privacy};
use super::super::error::ErrorCode;
use super::context::{join_key, CompileCtx, Loc};
use crate::classify::rules::CompiledOrgRules;
use crate::classify::{ClassifierError, OrgRules, SENSITIVE_MIN_CONFIDENCE};

/// The privacy guarantee; every category at the default confidence when absent.
pub(super) fn privacy(cx: &mut CompileCtx, def: Option<&(PrivacyDef, Loc)>) -> Privacy {
    match def {
        None => Privacy {
            cats: CatSet::all(),
            min_confidence: SENSITIVE_MIN_CONFIDENCE,
        },
        Some((p, loc)) => {
            let min = p.min_confidence.unwrap_or(SENSITIVE_MIN_CONFIDENCE);
            if !(0.0..=1.0).contains(&min) {
                let l = Loc {
                    file: loc.file,
                    path: join_key(&loc.path, "min_confidence"),
                };
                cx.err(
                    &l,
                    false,
                    ErrorCode::Invalid,
                    "`min_confidence` must be between 0 and 1".to_string(),
                );
            }
            let cats = p
                .categories
                .as_deref()
                .map_or(CatSet::all(), CatSet::from_slice);
            Privacy {
                cats,
                min_confidence: min,
            }
        }
    }
}

/// The organization's classifier rules, checked; empty when the section is absent.
pub(super) fn org_rules(cx: &mut CompileCtx, def: Option<&(OrgRules, Loc)>) -> OrgRules {
    match def {
        None => OrgRules::default(),
        Some((r, loc)) => {
            // Only the organization's rules can be wrong: building a whole `Classifier`
            // here would also compile every built-in detector on each check and reload.
            if let Err(e) = CompiledOrgRules::compile(r) {
                classifier_error(cx, r, loc, &e);
            }
            r.clone()
        }
    }
}

/// Places a classifier error on the detector (and field) it is about.
fn classifier_error(cx: &mut CompileCtx, rules: &OrgRules, loc: &Loc, e: &ClassifierError) {
    let (name, field, code, hint) = match e {
        ClassifierError::Regex { name, .. } => (
            Some(name),
            "regex",
            ErrorCode::BadRegex,
            "regular expressions use Rust `regex` syntax (no look-around or back-references); quote them with single quotes in YAML",
        ),
        ClassifierError::UnknownValidator { name, .. } => (
            Some(name),
            "validator",
            ErrorCode::Invalid,
            "validators: luhn, iban, aba, ssn, not_placeholder",
        ),
        ClassifierError::Confidence { name } => (
            Some(name),
            "confidence",
            ErrorCode::Invalid,
            "confidence is between 0 and 1",
        ),
        _ => (None, "", ErrorCode::Invalid, "check the `classifier` section"),
    };
    let at = name
        .and_then(|n| rules.detectors.iter().position(|d| &d.name == n))
        .map_or_else(
            || loc.clone(),
            |i| Loc {
                file: loc.file,
                path: format!("{}.detectors[{i}].{field}", loc.path),
            },
        );
    cx.err(&at, false, code, format!("invalid `classifier` rules: {e}"))
        .hint = Some(hint.to_string());
}
