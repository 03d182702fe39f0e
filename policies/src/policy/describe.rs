//! A compiled policy in words, for people reading it in the console: each rule's
//! condition as an indented tree and its action as short sentences. Built from the
//! compiled form (not the YAML), so what a reader sees is what the engine evaluates:
//! targets resolved to their chains, categories and ranges normalised.

use serde::Serialize;

use super::compile::CompiledPolicy;
use super::engine::{cat_name, Action, CatSet, Cond, ResolvedTarget, Route, Rule, REQUESTED_MODEL};

/// One line of a condition tree: `depth` 0 is the rule's top condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CondLine {
    pub depth: usize,
    pub text: String,
}

/// One rule in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleText {
    pub id: String,
    /// The condition, one node per line in evaluation order.
    pub when: Vec<CondLine>,
    /// What happens when it matches, one clause per line.
    pub then: Vec<String>,
}

/// The whole policy in words, rules in evaluation order, `default` last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyText {
    /// The fail-closed guarantee: which categories never leave unredacted.
    pub privacy: String,
    /// Each target name with its resolved chain (`model (local)`, `model (external)`).
    pub targets: Vec<(String, String)>,
    pub rules: Vec<RuleText>,
}

impl CompiledPolicy {
    /// The policy in words (the console's rules view).
    pub fn describe(&self) -> PolicyText {
        let privacy = self.privacy();
        PolicyText {
            privacy: format!(
                "{} never reach an external model unredacted (findings with confidence >= {})",
                cats(privacy.cats),
                privacy.min_confidence
            ),
            targets: self
                .targets()
                .into_iter()
                .map(|(name, chain)| (name.to_string(), chain_text(chain)))
                .collect(),
            rules: self.all_rules().map(rule_text).collect(),
        }
    }
}

fn rule_text(rule: &Rule) -> RuleText {
    let mut when = Vec::new();
    cond_lines(&rule.cond, 0, &mut when);
    RuleText {
        id: rule.id.clone(),
        when,
        then: action_lines(&rule.action),
    }
}

fn cond_lines(cond: &Cond, depth: usize, out: &mut Vec<CondLine>) {
    out.push(CondLine {
        depth,
        text: cond.to_string(),
    });
    match cond {
        Cond::All(children) | Cond::Any(children) => {
            for c in children {
                cond_lines(c, depth + 1, out);
            }
        }
        Cond::Not(inner) => cond_lines(inner, depth + 1, out),
        _ => {}
    }
}

fn cats(c: CatSet) -> String {
    let names: Vec<String> = c.to_vec().iter().map(|c| cat_name(*c)).collect();
    if names.is_empty() {
        "no category".into()
    } else {
        names.join(", ")
    }
}

fn chain_text(chain: &[ResolvedTarget]) -> String {
    chain
        .iter()
        .map(|t| {
            if t.model == REQUESTED_MODEL {
                "the requested model".to_string()
            } else {
                format!(
                    "{} ({})",
                    t.model,
                    if t.external { "external" } else { "local" }
                )
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

fn route_text(verb: &str, route: &Route) -> String {
    format!("{verb} `{}`: {}", route.target, chain_text(&route.chain))
}

fn action_lines(a: &Action) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(message) = &a.block {
        out.push(format!("block: {message}"));
    }
    if let Some(route) = &a.route {
        out.push(route_text("route to", route));
    }
    if !a.redact.is_empty() {
        out.push(format!("redact {} before it leaves", cats(a.redact)));
    }
    if a.require_local {
        out.push("only local models".into());
    }
    if a.require_commercial_license {
        out.push("only models licensed for commercial use".into());
    }
    if let Some(ttl) = a.cache_ttl_s {
        out.push(format!("cache answers for {ttl} s"));
    }
    if let Some(budget) = &a.budget {
        out.push(format!("charge budget `{budget}`"));
    }
    for (k, v) in &a.headers {
        out.push(format!("set header {k}: {v}"));
    }
    if let Some(s) = &a.shadow {
        out.push(format!(
            "{} ({}% of requests{})",
            route_text("shadow to", &s.route),
            s.sample * 100.0,
            if s.retain_text { ", texts kept" } else { "" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::policy::{compile_str, StaticCatalog, DEFAULT_POLICY_YAML};

    #[test]
    fn the_default_policy_reads_as_rules_in_order() {
        let policy = compile_str("default", DEFAULT_POLICY_YAML, &StaticCatalog::builtin())
            .expect("default policy compiles");
        let text = policy.describe();
        let ids: Vec<&str> = text.rules.iter().map(|r| r.id.as_str()).collect();
        let mut expected = policy.rule_ids();
        expected.push("default");
        assert_eq!(ids, expected);
        assert!(text.privacy.contains("pii"), "{}", text.privacy);
        // Every rule says when and what; nested conditions are indented under their node.
        for r in &text.rules {
            assert!(!r.when.is_empty() && !r.then.is_empty(), "{r:?}");
            assert_eq!(r.when[0].depth, 0);
            for pair in r.when.windows(2) {
                assert!(pair[1].depth <= pair[0].depth + 1, "{r:?}");
            }
        }
        let all: Vec<&str> = text
            .rules
            .iter()
            .flat_map(|r| r.when.iter().map(|l| l.text.as_str()))
            .collect();
        assert!(all.iter().any(|t| t.starts_with("sensitivity:")), "{all:?}");
        assert!(
            all.iter().any(|t| t.starts_with("difficulty >=")),
            "{all:?}"
        );
        let routes: Vec<&str> = text
            .rules
            .iter()
            .flat_map(|r| r.then.iter().map(|l| l.as_str()))
            .filter(|l| l.starts_with("route to"))
            .collect();
        assert!(routes.iter().any(|l| l.contains("(local)")), "{routes:?}");
        assert!(
            routes.iter().any(|l| l.contains("(external)")),
            "{routes:?}"
        );
    }

    #[test]
    fn nested_conditions_and_every_action_clause_are_spelled_out() {
        let yaml = r#"
version: 1
targets:
  local: { model: local/smollm2-135m-instruct }
rules:
  - id: nested
    when:
      any:
        - team: [ops, "data-*"]
        - not: { stream: true }
    route: local
    cache_ttl_s: 60
    headers: { x-why: nested }
default:
  route: requested
"#;
        let policy = compile_str("t", yaml, &StaticCatalog::builtin()).expect("compiles");
        let text = policy.describe();
        let nested = &text.rules[0];
        let lines: Vec<(usize, &str)> = nested
            .when
            .iter()
            .map(|l| (l.depth, l.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                (0, "any of"),
                (1, "team is [ops, data-*]"),
                (1, "not"),
                (2, "stream == true"),
            ]
        );
        assert_eq!(
            nested.then,
            vec![
                "route to `local`: local/smollm2-135m-instruct (local)".to_string(),
                "cache answers for 60 s".into(),
                "set header x-why: nested".into(),
            ]
        );
        assert_eq!(
            text.rules[1].then,
            vec!["route to `requested`: the requested model"]
        );
    }
}
