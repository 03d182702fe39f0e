//! Actions: what a rule (or the default) does once it matches.

use super::super::ast::{ActionDef, OneOrMany, RangeDef};
use super::super::engine::{Action, CatSet, Glob, Range, Route, ShadowAction};
use super::super::error::{did_you_mean, ErrorCode};
use super::context::{join_key, CompileCtx, Loc};
use std::collections::BTreeMap;

pub(super) fn compile_action(
    cx: &mut CompileCtx,
    a: &ActionDef,
    loc: &Loc,
    targets: &BTreeMap<String, Route>,
    default: Option<&Action>,
) -> Option<Action> {
    let sub = |k: &str| Loc {
        file: loc.file,
        path: join_key(&loc.path, k),
    };
    if a.route.is_some() && a.block.is_some() {
        cx.err(
            &sub("block"),
            true,
            ErrorCode::Invalid,
            "`block` and `route` exclude each other".to_string(),
        )
        .hint = Some("a blocked request is not routed; remove one of them".to_string());
    }
    if a.block.as_deref().is_some_and(|b| b.trim().is_empty()) {
        cx.err(
            &sub("block"),
            false,
            ErrorCode::Invalid,
            "`block` needs a message for the client".to_string(),
        );
    }
    let mut ok = true;
    let route = match &a.route {
        Some(t) => match targets.get(t) {
            Some(r) => Some(r.clone()),
            None => {
                ok = false;
                let all: Vec<&str> = targets.keys().map(String::as_str).collect();
                let h = did_you_mean(t, all.iter().copied());
                // A target that exists but failed to compile was already reported.
                if cx.errors.iter().all(|e| {
                    !e.message.contains(&format!("target `{t}`"))
                        && !e.message.contains(&format!("of `{t}`"))
                }) {
                    cx.err(
                        &sub("route"),
                        false,
                        ErrorCode::UnknownTarget,
                        format!("unknown target `{t}`"),
                    )
                    .hint = Some(h.unwrap_or_else(|| {
                        format!("define it under `targets:`, e.g. `{t}: {{ model: MODEL }}`")
                    }));
                }
                None
            }
        },
        None if a.block.is_none() => default.and_then(|d| d.route.clone()),
        None => None,
    };
    let mut headers = BTreeMap::new();
    for (k, v) in a.headers.iter().flatten() {
        if k.is_empty()
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            cx.err(
                &Loc {
                    file: loc.file,
                    path: format!("{}.headers.{k}", loc.path),
                },
                true,
                ErrorCode::Invalid,
                format!("invalid header name `{k}`"),
            )
            .hint = Some("header names use letters, digits, `-` and `_`".to_string());
        }
        if v.contains(['\r', '\n']) {
            cx.err(
                &Loc {
                    file: loc.file,
                    path: format!("{}.headers.{k}", loc.path),
                },
                false,
                ErrorCode::Invalid,
                format!("header `{k}` value contains a line break"),
            );
        }
        headers.insert(k.to_ascii_lowercase(), v.clone());
    }
    if a.budget.as_deref().is_some_and(|b| b.trim().is_empty()) {
        cx.err(
            &sub("budget"),
            false,
            ErrorCode::Invalid,
            "`budget` names a budget and cannot be empty".to_string(),
        );
    }
    let shadow = match &a.shadow {
        None => None,
        Some(sd) => {
            let sloc = sub("shadow");
            let sample = sd.sample.unwrap_or(DEFAULT_SHADOW_SAMPLE);
            if !(0.0..=1.0).contains(&sample) || sample.is_nan() {
                cx.err(
                    &Loc {
                        file: loc.file,
                        path: join_key(&sloc.path, "sample"),
                    },
                    false,
                    ErrorCode::Invalid,
                    format!("`sample` is a fraction between 0 and 1, not {sample}"),
                )
                .hint = Some("e.g. `sample: 0.05` shadows one request in twenty".to_string());
            }
            if a.block.is_some() {
                cx.err(
                    &sloc,
                    false,
                    ErrorCode::Invalid,
                    "`shadow` compares answers; a blocked request has none".to_string(),
                );
            }
            match targets.get(&sd.target) {
                Some(r) => Some(ShadowAction {
                    route: r.clone(),
                    sample: sample.clamp(0.0, 1.0),
                    retain_text: sd.retain_text.unwrap_or(false),
                }),
                None => {
                    ok = false;
                    let all: Vec<&str> = targets.keys().map(String::as_str).collect();
                    cx.err(
                        &Loc {
                            file: loc.file,
                            path: join_key(&sloc.path, "target"),
                        },
                        false,
                        ErrorCode::UnknownTarget,
                        format!("unknown shadow target `{}`", sd.target),
                    )
                    .hint = did_you_mean(&sd.target, all.iter().copied());
                    None
                }
            }
        }
    };
    if !ok {
        return None;
    }
    let inherit = a.route.is_none() && a.block.is_none();
    Some(Action {
        route,
        block: if inherit {
            default.and_then(|d| d.block.clone())
        } else {
            a.block.clone()
        },
        redact: a
            .redact
            .as_deref()
            .map_or(CatSet::default(), CatSet::from_slice),
        require_local: a.require_local.unwrap_or(false),
        require_commercial_license: a.require_commercial_license.unwrap_or(false),
        cache_ttl_s: a.cache_ttl_s,
        budget: a.budget.clone(),
        headers,
        shadow,
    })
}

/// Shadow sample when a rule names none: enough pairs for calibration within days of
/// ordinary traffic, little enough spend to leave on.
const DEFAULT_SHADOW_SAMPLE: f64 = 0.05;

pub(super) fn range(cx: &mut CompileCtx, r: &RangeDef, loc: &Loc, what: &str) -> Range {
    match (r.gte, r.lt) {
        (None, None) => {
            cx.err(
                loc,
                false,
                ErrorCode::Invalid,
                format!("`{what}` needs `gte` and/or `lt`"),
            );
        }
        (Some(g), Some(l)) if g >= l => {
            cx.err(
                loc,
                false,
                ErrorCode::Invalid,
                format!("`{what}` range is empty (gte {g} >= lt {l})"),
            );
        }
        _ => {}
    }
    Range {
        gte: r.gte,
        lt: r.lt,
    }
}

pub(super) fn glob_list(cx: &mut CompileCtx, v: &OneOrMany, loc: &Loc, what: &str) -> Vec<Glob> {
    if v.0.is_empty() {
        cx.err(
            loc,
            false,
            ErrorCode::Invalid,
            format!("empty `{what}` list never matches"),
        );
    }
    v.0.iter().map(|s| Glob::new(s)).collect()
}
