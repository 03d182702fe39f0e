//! Reading each file into its sections: a YAML value per file, each section, target and
//! rule deserialized on its own, so one mistake does not hide the next.

use super::super::ast::{ActionDef, PrivacyDef, RuleDef, TargetDef};
use super::super::error::{did_you_mean, ErrorCode};
use super::context::{join_key, CompileCtx, Loc};
use super::PolicySource;
use crate::classify::OrgRules;
use serde_yaml_ng::Value;

const TOP_KEYS: [&str; 6] = [
    "version",
    "targets",
    "privacy",
    "classifier",
    "rules",
    "default",
];

/// Every section of every file, parsed but not yet checked against each other.
#[derive(Default)]
pub(super) struct Acc {
    pub(super) targets: Vec<(String, TargetDef, Loc)>,
    pub(super) privacy: Option<(PrivacyDef, Loc)>,
    pub(super) classifier: Option<(OrgRules, Loc)>,
    /// Rules that failed to parse stay (as `None`) so later checks still see them.
    pub(super) rules: Vec<(Option<RuleDef>, Option<String>, Loc)>,
    pub(super) default: Option<(ActionDef, Loc)>,
}

/// Checks the top-level `version:` of a file.
pub(crate) fn check_version(cx: &mut CompileCtx, file: usize, m: &serde_yaml_ng::Mapping) {
    let loc = Loc {
        file,
        path: "version".to_string(),
    };
    match m.get("version") {
        None => {
            cx.err(
                &Loc {
                    file,
                    path: String::new(),
                },
                false,
                ErrorCode::Version,
                "missing `version`".to_string(),
            )
            .hint = Some("start the file with `version: 1`".to_string());
        }
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => {
            cx.err(
                &loc,
                false,
                ErrorCode::Version,
                "unsupported `version`".to_string(),
            )
            .hint = Some("this gateway reads policy files with `version: 1`".to_string());
        }
    }
}

pub(super) fn parse_file(cx: &mut CompileCtx, src: &PolicySource, acc: &mut Acc) {
    let file = cx.add_file(src);
    let Some(value) = cx.parse_value(file, &src.text) else {
        return;
    };
    let root = Loc {
        file,
        path: String::new(),
    };
    let Value::Mapping(m) = value else {
        cx.err(
            &root,
            false,
            ErrorCode::Type,
            "a policy file is a mapping".to_string(),
        )
        .hint = Some(
            "expected keys: version, targets, privacy, classifier, rules, default".to_string(),
        );
        return;
    };
    check_version(cx, file, &m);
    for (k, v) in m {
        let Some(key) = k.as_str().map(str::to_string) else {
            cx.err(
                &root,
                false,
                ErrorCode::Type,
                "top-level keys must be strings".to_string(),
            );
            continue;
        };
        let loc = Loc {
            file,
            path: key.clone(),
        };
        match key.as_str() {
            "version" => {}
            "targets" => {
                let v = if v.is_null() {
                    Value::Mapping(Default::default())
                } else {
                    v
                };
                let Value::Mapping(tm) = v else {
                    cx.err(
                        &loc,
                        false,
                        ErrorCode::Type,
                        "`targets` is a mapping of name to `model:` or `chain:`".to_string(),
                    );
                    continue;
                };
                for (name, def) in tm {
                    let Some(name) = name.as_str().map(str::to_string) else {
                        cx.err(
                            &loc,
                            false,
                            ErrorCode::Type,
                            "target names must be strings".to_string(),
                        );
                        continue;
                    };
                    let tloc = Loc {
                        file,
                        path: join_key("targets", &name),
                    };
                    if let Some(def) = cx.typed::<TargetDef>(&tloc, def) {
                        acc.targets.push((name, def, tloc));
                    }
                }
            }
            "privacy" => {
                if let Some(p) = cx.typed::<PrivacyDef>(&loc, v) {
                    once(cx, &mut acc.privacy, p, loc, "privacy");
                }
            }
            "classifier" => {
                if let Some(r) = cx.typed::<OrgRules>(&loc, v) {
                    once(cx, &mut acc.classifier, r, loc, "classifier");
                }
            }
            "default" => {
                if let Some(a) = cx.typed::<ActionDef>(&loc, v) {
                    once(cx, &mut acc.default, a, loc, "default");
                }
            }
            "rules" => {
                let v = if v.is_null() {
                    Value::Sequence(Vec::new())
                } else {
                    v
                };
                let Value::Sequence(rules) = v else {
                    cx.err(
                        &loc,
                        false,
                        ErrorCode::Type,
                        "`rules` is a list of rules".to_string(),
                    );
                    continue;
                };
                for (i, r) in rules.into_iter().enumerate() {
                    let rloc = Loc {
                        file,
                        path: format!("rules[{i}]"),
                    };
                    let id = r.get("id").and_then(Value::as_str).map(str::to_string);
                    let def = cx.typed::<RuleDef>(&rloc, r);
                    acc.rules.push((def, id, rloc));
                }
            }
            other => {
                let h = did_you_mean(other, TOP_KEYS);
                cx.err(
                    &loc,
                    true,
                    ErrorCode::UnknownKey,
                    format!("unknown top-level key `{other}`"),
                )
                .hint = h.or_else(|| Some(format!("expected one of: {}", TOP_KEYS.join(", "))));
            }
        }
    }
}

fn once<T>(cx: &mut CompileCtx, slot: &mut Option<(T, Loc)>, v: T, loc: Loc, what: &str) {
    if let Some((_, first)) = slot {
        let first_at = cx.at(first);
        cx.err(
            &loc,
            true,
            ErrorCode::Duplicate,
            format!("`{what}` is defined twice"),
        )
        .hint = Some(format!(
            "first defined at {first_at}; a later file may only add rules and targets"
        ));
    } else {
        *slot = Some((v, loc));
    }
}
