//! Conditions: a rule's `when:` tree.

use super::super::ast::{CondDef, RangeDef, VolumeScope};
use super::super::engine::{CatSet, Cond, Scope};
use super::super::error::{did_you_mean, ErrorCode};
use super::actions::{glob_list, range};
use super::context::{join_key, CompileCtx, Loc};
use crate::Dialect;

const DIALECTS: [&str; 4] = [
    Dialect::OpenAi.as_str(),
    Dialect::Anthropic.as_str(),
    Dialect::Responses.as_str(),
    Dialect::Gemini.as_str(),
];

/// Lowers a `when:` tree to a condition, checking every leaf.
pub(super) fn compile_cond(cx: &mut CompileCtx, c: &CondDef, loc: &Loc) -> Cond {
    let sub = |k: &str| Loc {
        file: loc.file,
        path: join_key(&loc.path, k),
    };
    let mut parts = Vec::new();
    for (key, list) in [("all", &c.all), ("any", &c.any)] {
        if let Some(list) = list {
            let l = sub(key);
            if list.is_empty() {
                cx.err(&l, false, ErrorCode::Invalid, format!("empty `{key}` list"));
            }
            let cs: Vec<Cond> = list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    compile_cond(
                        cx,
                        c,
                        &Loc {
                            file: l.file,
                            path: format!("{}[{i}]", l.path),
                        },
                    )
                })
                .collect();
            parts.push(if key == "all" {
                Cond::All(cs)
            } else {
                Cond::Any(cs)
            });
        }
    }
    if let Some(n) = &c.not {
        parts.push(Cond::Not(Box::new(compile_cond(cx, n, &sub("not")))));
    }
    if let Some(s) = &c.sensitivity {
        let l = sub("sensitivity");
        if s.min_confidence.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            cx.err(
                &sub("sensitivity.min_confidence"),
                false,
                ErrorCode::Invalid,
                "`min_confidence` must be between 0 and 1".to_string(),
            );
        }
        if s.categories.as_ref().is_some_and(|c| c.is_empty()) {
            cx.err(
                &l,
                false,
                ErrorCode::Invalid,
                "empty `categories` list never matches".to_string(),
            );
        }
        parts.push(Cond::Sensitivity {
            cats: s.categories.as_deref().map(CatSet::from_slice),
            kinds: s
                .kinds
                .as_ref()
                .map(|k| glob_list(cx, k, &l, "kinds"))
                .unwrap_or_default(),
            min_confidence: s.min_confidence,
            privacy_critical: s.privacy_critical,
        });
    }
    if let Some(r) = &c.difficulty {
        parts.push(Cond::Difficulty(range(
            cx,
            r,
            &sub("difficulty"),
            "difficulty",
        )));
    }
    if let Some(v) = &c.team {
        parts.push(Cond::Team(glob_list(cx, v, &sub("team"), "team")));
    }
    if let Some(v) = &c.key {
        parts.push(Cond::Key(glob_list(cx, v, &sub("key"), "key")));
    }
    if let Some(v) = &c.app {
        parts.push(Cond::App(glob_list(cx, v, &sub("app"), "app")));
    }
    if let Some(v) = &c.tags {
        if v.0.is_empty() {
            cx.err(
                &sub("tags"),
                false,
                ErrorCode::Invalid,
                "empty `tags` list".to_string(),
            );
        }
        parts.push(Cond::Tags(v.0.clone()));
    }
    if let Some(v) = &c.model {
        parts.push(Cond::Model(glob_list(cx, v, &sub("model"), "model")));
    }
    if let Some(v) = &c.dialect {
        let mut dialects = Vec::new();
        for (i, d) in v.0.iter().enumerate() {
            if let Some(d) = Dialect::parse(d) {
                dialects.push(d);
            } else {
                let l = Loc {
                    file: loc.file,
                    path: format!("{}.dialect[{i}]", loc.path),
                };
                let l = if v.0.len() == 1 { sub("dialect") } else { l };
                cx.err(
                    &l,
                    false,
                    ErrorCode::Invalid,
                    format!("unknown dialect `{d}`"),
                )
                .hint = Some(did_you_mean(d, DIALECTS).unwrap_or_else(|| {
                    "dialects are `openai`, `anthropic`, `responses` and `gemini`".to_string()
                }));
            }
        }
        parts.push(Cond::Dialect(dialects));
    }
    if let Some(r) = &c.tokens {
        parts.push(Cond::Tokens(range(cx, r, &sub("tokens"), "tokens")));
    }
    if let Some(s) = c.stream {
        parts.push(Cond::Stream(s));
    }
    if let Some(t) = &c.time {
        let l = sub("time");
        let from = t.from.unwrap_or(0);
        let to = t.to.unwrap_or(24);
        if t.from.is_none() && t.to.is_none() && t.days.is_none() {
            cx.err(
                &l,
                false,
                ErrorCode::Invalid,
                "`time` needs `from`, `to` and/or `days`".to_string(),
            );
        }
        if from > 23 || to > 24 || from == to {
            cx.err(&l, false, ErrorCode::Invalid, format!("invalid UTC hour window [{from}, {to})"))
                .hint = Some("`from` is 0..=23, `to` is 1..=24 and differs from `from`; from > to wraps past midnight".to_string());
        }
        let days = match &t.days {
            None => 0x7f,
            Some(ds) => {
                if ds.is_empty() {
                    cx.err(
                        &l,
                        false,
                        ErrorCode::Invalid,
                        "empty `days` list never matches".to_string(),
                    );
                }
                ds.iter().fold(0u8, |acc, d| acc | (1 << (*d as u8)))
            }
        };
        parts.push(Cond::Time { from, to, days });
    }
    if let Some(v) = &c.volume {
        let r = range(
            cx,
            &RangeDef {
                gte: v.gte,
                lt: v.lt,
            },
            &sub("volume"),
            "volume",
        );
        let scope = match v.scope {
            VolumeScope::Team => Scope::Team,
            VolumeScope::Key => Scope::Key,
        };
        parts.push(Cond::Volume(scope, r));
    }
    match parts.len() {
        0 => Cond::True,
        1 => parts.pop().unwrap_or(Cond::True),
        _ => Cond::All(parts),
    }
}
