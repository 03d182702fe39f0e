//! The compiled policy: what the engine evaluates, and what the console and CLI read.

use super::super::engine::{
    build_decision, CatSet, Decision, EvalCtx, Facts, Privacy, ResolvedTarget, Route, Rule,
    RuleTrace,
};
use crate::classify::{Classification, Classifier, OrgRules};
use std::collections::BTreeMap;

/// A checked policy, ready to decide. Cheap to share behind an `Arc` and swap on reload.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    pub(super) files: Vec<String>,
    pub(super) targets: BTreeMap<String, Route>,
    pub(super) privacy: Privacy,
    pub(super) org_rules: OrgRules,
    pub(super) rules: Vec<Rule>,
    pub(super) default: Rule,
}

impl CompiledPolicy {
    /// Whether some rule's condition reads the difficulty score: when none does, a
    /// detector that would only move the difficulty cannot change a decision.
    pub fn reads_difficulty(&self) -> bool {
        self.rules
            .iter()
            .chain(std::iter::once(&self.default))
            .any(|r| r.cond.reads_difficulty())
    }

    /// Decides what to do with a request. With `explain`, the decision carries a trace of
    /// every rule considered and each of its conditions; the decision itself is the same.
    pub fn decide(&self, facts: &Facts, cls: &Classification, explain: bool) -> Decision {
        let ctx = EvalCtx::new(facts, cls, self.privacy);
        if !explain {
            let rule = self
                .rules
                .iter()
                .find(|r| r.cond.eval(&ctx, None))
                .unwrap_or(&self.default);
            return build_decision(rule, &ctx, None);
        }
        let mut traces = Vec::new();
        let mut chosen = &self.default;
        for r in &self.rules {
            let mut conditions = Vec::new();
            let matched = r.cond.eval(&ctx, Some(&mut conditions));
            traces.push(RuleTrace {
                rule: r.id.clone(),
                matched,
                conditions,
            });
            if matched {
                chosen = r;
                break;
            }
        }
        if std::ptr::eq(chosen, &self.default) {
            traces.push(RuleTrace {
                rule: "default".to_string(),
                matched: true,
                conditions: Vec::new(),
            });
        }
        build_decision(chosen, &ctx, Some(traces))
    }

    /// The organization rules of the `classifier:` section (empty when absent).
    pub fn org_rules(&self) -> &OrgRules {
        &self.org_rules
    }

    /// Builds the classifier this policy asks for (its `classifier:` section). The rules were
    /// already checked at compile time.
    pub fn classifier(&self) -> Result<Classifier, String> {
        Classifier::new(self.org_rules.clone()).map_err(|e| e.to_string())
    }

    /// Rule ids in evaluation order (without `default`).
    /// What is valid but probably not meant: a redacting rule whose chain has no local
    /// target refuses every request that also carries a privacy-critical category it
    /// does not redact (the engine removes external targets that would see it, and
    /// nothing is left). `policy check` prints these; they are not errors.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for rule in self.all_rules() {
            let action = &rule.action;
            let Some(route) = &action.route else { continue };
            if action.redact.is_empty() || route.chain.iter().any(|t| !t.external) {
                continue;
            }
            let unredacted = self.privacy.cats.difference(action.redact);
            if unredacted.is_empty() {
                continue;
            }
            let names = |c: CatSet| {
                c.to_vec()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            out.push(format!(
                "rule `{}` redacts {} but its chain ({}) has no local target: a request that also carries {} is refused; add a local model to the chain or redact those categories too",
                rule.id,
                names(action.redact),
                route
                    .chain
                    .iter()
                    .map(|t| t.model.as_str())
                    .collect::<Vec<_>>()
                    .join(" → "),
                names(unredacted),
            ));
        }
        out
    }

    /// The rules in evaluation order, `default` last.
    pub(crate) fn all_rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().chain(std::iter::once(&self.default))
    }

    pub(crate) fn privacy(&self) -> Privacy {
        self.privacy
    }

    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }

    /// Defined target names with their resolved model chains.
    pub fn targets(&self) -> BTreeMap<&str, &[ResolvedTarget]> {
        self.targets
            .iter()
            .map(|(k, v)| (k.as_str(), v.chain.as_slice()))
            .collect()
    }

    /// The files this policy was compiled from, in merge order.
    pub fn files(&self) -> &[String] {
        &self.files
    }
}
