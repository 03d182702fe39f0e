//! Rules and the default action, in evaluation order.

use super::super::ast::{ActionDef, RuleDef};
use super::super::engine::{Action, Cond, Route, Rule};
use super::super::error::ErrorCode;
use super::actions::compile_action;
use super::conds::compile_cond;
use super::context::{join_key, CompileCtx, Loc};
use std::collections::{BTreeMap, HashMap};

/// The `default:` action, which must exist (in some file) and route or block.
pub(super) fn compile_default(
    cx: &mut CompileCtx,
    def: Option<&(ActionDef, Loc)>,
    targets: &BTreeMap<String, Route>,
) -> Option<Action> {
    let unparsed = cx.errors.iter().any(|e| e.code == ErrorCode::Syntax);
    match def {
        // A file that did not parse may hold the default: no second error for it.
        None if unparsed => None,
        None => {
            let loc = Loc {
                file: 0,
                path: String::new(),
            };
            cx.err(&loc, false, ErrorCode::Missing, "no `default` action".to_string())
                .hint = Some("add `default: { route: <target> }` to one file; it serves requests no rule matches".to_string());
            None
        }
        Some((a, loc)) => {
            let loc = loc.clone();
            let action = compile_action(cx, a, &loc, targets, None);
            if a.route.is_none() && a.block.is_none() {
                cx.err(
                    &loc,
                    true,
                    ErrorCode::Missing,
                    "`default` must have `route` or `block`".to_string(),
                );
            }
            action
        }
    }
}

/// The rules in file order: ids unique, none after a catch-all, each condition and action
/// checked. A rule with an error is reported and left out.
pub(super) fn compile_rules(
    cx: &mut CompileCtx,
    defs: &[(Option<RuleDef>, Option<String>, Loc)],
    targets: &BTreeMap<String, Route>,
    default: Option<&Action>,
) -> Vec<Rule> {
    let mut rules = Vec::new();
    let mut ids: HashMap<String, Loc> = HashMap::new();
    let mut catch_all: Option<(String, Loc)> = None;
    for (def, raw_id, loc) in defs {
        let Some(def) = def else {
            if let Some((cid, cloc)) = &catch_all {
                let at = cx.at(cloc);
                let id = raw_id.as_deref().unwrap_or(&loc.path);
                cx.err(loc, false, ErrorCode::Unreachable, format!("rule `{id}` can never match"))
                    .hint = Some(format!(
                    "rule `{cid}` at {at} has no condition and matches every request; move it last or give it a `when`"
                ));
            }
            continue;
        };
        let id_loc = Loc {
            file: loc.file,
            path: join_key(&loc.path, "id"),
        };
        if let Some(first) = ids.get(&def.id) {
            let first_at = cx.at(first);
            cx.err(
                &id_loc,
                false,
                ErrorCode::Duplicate,
                format!("duplicate rule id `{}`", def.id),
            )
            .hint = Some(format!(
                "first used at {first_at}; rule ids must be unique across all files"
            ));
        } else if def.id == "default" {
            cx.err(
                &id_loc,
                false,
                ErrorCode::Invalid,
                "`default` is reserved for the default action".to_string(),
            );
        } else {
            ids.insert(def.id.clone(), id_loc.clone());
        }
        if let Some((cid, cloc)) = &catch_all {
            let at = cx.at(cloc);
            cx.err(loc, false, ErrorCode::Unreachable, format!("rule `{}` can never match", def.id))
                .hint = Some(format!(
                "rule `{cid}` at {at} has no condition and matches every request; move it last or give it a `when`"
            ));
        }
        let when_loc = Loc {
            file: loc.file,
            path: join_key(&loc.path, "when"),
        };
        let cond = match &def.when {
            None => Cond::True,
            Some(c) => compile_cond(cx, c, &when_loc),
        };
        if cond == Cond::True && catch_all.is_none() {
            catch_all = Some((def.id.clone(), loc.clone()));
        }
        let action = compile_action(cx, &def.action(), loc, targets, default);
        if let Some(action) = action {
            rules.push(Rule {
                id: def.id.clone(),
                cond,
                action,
            });
        }
    }
    rules
}
