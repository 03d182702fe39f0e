//! Targets: each name resolved against the catalog to a flat chain of models.

use super::super::ast::TargetDef;
use super::super::engine::{ResolvedTarget, Route, REQUESTED_TARGET};
use super::super::error::{did_you_mean, ErrorCode};
use super::context::{join_key, CompileCtx, Loc};
use std::collections::{BTreeMap, HashSet};

/// Resolves every target to its flat model chain: unknown models and targets, empty
/// chains and cycles are errors; a target with an error is left out.
pub(super) fn compile_targets(
    cx: &mut CompileCtx,
    defs: &[(String, TargetDef, Loc)],
) -> BTreeMap<String, Route> {
    let mut by_name: BTreeMap<String, (&TargetDef, &Loc)> = BTreeMap::new();
    for (name, def, loc) in defs {
        if let Some((_, first)) = by_name.get(name) {
            let first_at = cx.at(first);
            cx.err(
                loc,
                true,
                ErrorCode::Duplicate,
                format!("target `{name}` is defined twice"),
            )
            .hint = Some(format!("first defined at {first_at}"));
            continue;
        }
        by_name.insert(name.clone(), (def, loc));
    }
    let mut names: Vec<String> = by_name.keys().cloned().collect();
    let catalog_models = cx.catalog.map(|c| c.models()).unwrap_or_default();
    let mut models: BTreeMap<String, ResolvedTarget> = BTreeMap::new();
    let mut ok: HashSet<String> = HashSet::new();
    // The built-in `requested` target: the model the client asked for. Resolved per
    // request in `decide`; a policy may shadow the name with its own target.
    let builtin_requested = !by_name.contains_key(REQUESTED_TARGET);
    if builtin_requested {
        models.insert(
            REQUESTED_TARGET.to_string(),
            ResolvedTarget::requested_placeholder(),
        );
        ok.insert(REQUESTED_TARGET.to_string());
        names.push(REQUESTED_TARGET.to_string());
    }
    for (name, (def, loc)) in &by_name {
        match (&def.model, &def.chain) {
            (Some(_), Some(_)) | (None, None) => {
                cx.err(loc, true, ErrorCode::Invalid, format!("target `{name}` needs exactly one of `model` or `chain`"))
                    .hint = Some("`model: gpt-4o` for one model, `chain: [a, b]` for a fallback chain of targets".to_string());
            }
            (Some(model), None) => {
                let mloc = Loc {
                    file: loc.file,
                    path: join_key(&loc.path, "model"),
                };
                match cx.catalog.and_then(|c| c.lookup(model)) {
                    Some(info) => {
                        models.insert(name.clone(), ResolvedTarget::new(model, info));
                        ok.insert(name.clone());
                    }
                    None => {
                        let h = did_you_mean(model, catalog_models.iter().map(String::as_str));
                        cx.err(&mloc, false, ErrorCode::UnknownModel, format!("unknown model `{model}` in target `{name}`"))
                            .hint = Some(h.unwrap_or_else(|| {
                            "add the model to the gateway's model catalog (local models are named `local/NAME`)".to_string()
                        }));
                    }
                }
            }
            (None, Some(chain)) => {
                let cloc = Loc {
                    file: loc.file,
                    path: join_key(&loc.path, "chain"),
                };
                if chain.is_empty() {
                    cx.err(
                        &cloc,
                        false,
                        ErrorCode::Invalid,
                        format!("chain of target `{name}` is empty"),
                    );
                    continue;
                }
                let mut good = true;
                for (i, t) in chain.iter().enumerate() {
                    if !(by_name.contains_key(t) || (builtin_requested && t == REQUESTED_TARGET)) {
                        good = false;
                        let l = Loc {
                            file: loc.file,
                            path: format!("{}[{i}]", cloc.path),
                        };
                        let h = did_you_mean(t, names.iter().map(String::as_str));
                        cx.err(
                            &l,
                            false,
                            ErrorCode::UnknownTarget,
                            format!("unknown target `{t}` in chain of `{name}`"),
                        )
                        .hint = Some(h.unwrap_or_else(|| {
                            format!("define it under `targets:`, e.g. `{t}: {{ model: MODEL }}`")
                        }));
                    }
                }
                if good {
                    ok.insert(name.clone());
                }
            }
        }
    }
    // Cycles: depth-first search over chains, each cycle reported once.
    let mut reported: HashSet<Vec<String>> = HashSet::new();
    let mut cyclic: HashSet<String> = HashSet::new();
    for start in &names {
        let mut stack = vec![start.clone()];
        find_cycles(
            &by_name,
            &mut stack,
            &mut |cycle: &[String]| {
                for c in cycle {
                    cyclic.insert(c.clone());
                }
                let mut key = cycle.to_vec();
                key.sort();
                if reported.insert(key) {
                    Some(cycle.to_vec())
                } else {
                    None
                }
            },
            cx,
        );
    }
    // Resolve chains to flat model lists (first occurrence wins).
    let mut out = BTreeMap::new();
    for name in &names {
        let mut chain = Vec::new();
        let mut seen = HashSet::new();
        if flatten(
            name, &by_name, &models, &ok, &cyclic, &mut chain, &mut seen, 0,
        ) {
            out.insert(
                name.clone(),
                Route {
                    target: name.clone(),
                    chain,
                },
            );
        }
    }
    out
}

fn find_cycles(
    defs: &BTreeMap<String, (&TargetDef, &Loc)>,
    stack: &mut Vec<String>,
    report: &mut dyn FnMut(&[String]) -> Option<Vec<String>>,
    cx: &mut CompileCtx,
) {
    let Some(cur) = stack.last().cloned() else {
        return;
    };
    let Some((def, loc)) = defs.get(&cur) else {
        return;
    };
    let Some(chain) = &def.chain else { return };
    for next in chain {
        if let Some(pos) = stack.iter().position(|s| s == next) {
            if pos == 0 {
                if let Some(cycle) = report(&stack[pos..]) {
                    let mut shown = cycle.clone();
                    shown.push(next.clone());
                    let l = Loc {
                        file: loc.file,
                        path: join_key(&loc.path, "chain"),
                    };
                    cx.err(
                        &l,
                        false,
                        ErrorCode::Cycle,
                        format!("fallback chains form a cycle: {}", shown.join(" -> ")),
                    )
                    .hint = Some(
                        "a chain may only name targets that do not lead back to it".to_string(),
                    );
                }
            }
            continue;
        }
        if stack.len() < 64 {
            stack.push(next.clone());
            find_cycles(defs, stack, report, cx);
            stack.pop();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn flatten(
    name: &str,
    defs: &BTreeMap<String, (&TargetDef, &Loc)>,
    models: &BTreeMap<String, ResolvedTarget>,
    ok: &HashSet<String>,
    cyclic: &HashSet<String>,
    out: &mut Vec<ResolvedTarget>,
    seen: &mut HashSet<String>,
    depth: usize,
) -> bool {
    if !ok.contains(name) || cyclic.contains(name) || depth > 64 {
        return false;
    }
    if let Some(m) = models.get(name) {
        if seen.insert(m.model.clone()) {
            out.push(m.clone());
        }
        return true;
    }
    let Some((def, _)) = defs.get(name) else {
        return false;
    };
    let Some(chain) = &def.chain else {
        return false;
    };
    chain
        .iter()
        .all(|t| flatten(t, defs, models, ok, cyclic, out, seen, depth + 1))
}
