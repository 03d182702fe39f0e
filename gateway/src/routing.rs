//! The routing seam: canonical request in, route plan out. The policy engine
//! (`policies::policy`) decides; this module turns its decision into providers to call.

use std::collections::HashMap;
use std::sync::Arc;

use policies::policy::{Decision, Facts, TargetCatalog, TargetInfo};
use policies::{Classification, Classifier};

use crate::canonical::{ChatRequest, GatewayError};
use crate::ner::NerDetector;
use crate::policy_runtime::{ActivePolicy, PolicyHandle};
use crate::privacy::{self, Redaction};
use crate::providers::Provider;
use crate::sentence_head::HeadDetector;

/// Where one request may go: a provider and the model name it knows.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<dyn Provider>,
    /// The model name sent to the backend.
    pub upstream_model: String,
    /// The model name as the policy named it.
    pub model: String,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("provider", &self.provider.name())
            .field("upstream_model", &self.upstream_model)
            .finish()
    }
}

/// A model a client can ask for, as listed by `GET /v1/models`.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub id: String,
    pub owned_by: String,
    /// Catalog metadata (licence, family, size…) for local models.
    pub metadata: Option<serde_json::Value>,
}

/// Facts about a local model that policies need.
#[derive(Debug, Clone)]
pub struct LocalModelInfo {
    pub commercial_use: bool,
    pub license: String,
    pub metadata: serde_json::Value,
}

/// Model name → provider: `provider/model` picks that provider; otherwise the first
/// provider (in config order) whose model list (exact names or `*` globs) matches.
/// Also the policy engine's catalog of what is local or external.
pub struct ModelMap {
    entries: Vec<(Arc<dyn Provider>, Vec<String>)>,
    local: HashMap<String, LocalModelInfo>,
}

/// The default local model is always known to policies, loaded or not: a policy that
/// names it compiles, and routing to it while it is not loaded fails closed.
pub const DEFAULT_LOCAL_MODEL: &str = "local/smollm2-135m-instruct";

impl ModelMap {
    pub fn new(
        entries: Vec<(Arc<dyn Provider>, Vec<String>)>,
        local: HashMap<String, LocalModelInfo>,
    ) -> Self {
        ModelMap { entries, local }
    }

    /// The map a config describes, without loading local models (offline tools).
    pub fn offline(config: &crate::config::Config) -> anyhow::Result<ModelMap> {
        let mut entries: Vec<(Arc<dyn Provider>, Vec<String>)> = Vec::new();
        let mut local = HashMap::new();
        let mut names: Vec<String> = config.local_models.iter().map(|m| m.name.clone()).collect();
        if !names.iter().any(|n| n == DEFAULT_LOCAL_MODEL) {
            names.push(DEFAULT_LOCAL_MODEL.to_string());
        }
        for name in names {
            let cfg = config.local_models.iter().find(|m| m.name == name);
            local.insert(
                name.clone(),
                LocalModelInfo {
                    commercial_use: cfg.is_none_or(|m| m.catalog.commercial_use),
                    license: cfg
                        .map_or_else(|| "Apache-2.0".to_string(), |m| m.catalog.license.clone()),
                    metadata: serde_json::json!({"in_process": true, "loaded": false}),
                },
            );
            entries.push((
                Arc::new(crate::providers::local::UnloadedLocal {
                    model: name.clone(),
                }),
                vec![name],
            ));
        }
        for p in &config.providers {
            entries.push((
                crate::providers::build_offline(p, config.max_sse_event_bytes)?,
                p.served_models(),
            ));
        }
        Ok(ModelMap::new(entries, local))
    }

    pub fn resolve(&self, model: &str) -> Result<Route, GatewayError> {
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some((provider, _)) = self.entries.iter().find(|(p, _)| p.name() == prefix) {
                if !rest.is_empty() && !provider.name().eq("local") {
                    return Ok(Route {
                        provider: provider.clone(),
                        upstream_model: rest.to_string(),
                        model: model.to_string(),
                    });
                }
            }
        }
        self.entries
            .iter()
            .find(|(_, patterns)| patterns.iter().any(|p| glob_match(p, model)))
            .map(|(provider, _)| Route {
                provider: provider.clone(),
                upstream_model: model.to_string(),
                model: model.to_string(),
            })
            .ok_or_else(|| {
                GatewayError::NotFound(format!(
                    "The model `{model}` does not exist or is not served by this gateway (see GET /v1/models)"
                ))
            })
    }

    /// Every provider, in config order (local models first).
    pub fn providers(&self) -> impl Iterator<Item = &Arc<dyn Provider>> {
        self.entries.iter().map(|(p, _)| p)
    }

    pub fn is_local(&self, model: &str) -> bool {
        self.resolve(model)
            .map(|r| !r.provider.is_external())
            .unwrap_or(self.local.contains_key(model))
    }

    pub fn models(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .flat_map(|(provider, patterns)| {
                patterns
                    .iter()
                    .filter(|p| !p.contains('*') && !p.contains('?'))
                    .map(|p| ModelInfo {
                        id: p.clone(),
                        owned_by: provider.name().to_string(),
                        metadata: self.local.get(p).map(|l| l.metadata.clone()),
                    })
            })
            .collect()
    }
}

impl TargetCatalog for ModelMap {
    fn lookup(&self, model: &str) -> Option<TargetInfo> {
        if let Some(local) = self.local.get(model) {
            return Some(TargetInfo {
                external: false,
                commercial_use: local.commercial_use,
                license: local.license.clone(),
            });
        }
        if model == DEFAULT_LOCAL_MODEL {
            return Some(TargetInfo {
                external: false,
                commercial_use: true,
                license: "Apache-2.0".into(),
            });
        }
        let route = self.resolve(model).ok()?;
        Some(TargetInfo {
            external: route.provider.is_external(),
            commercial_use: true,
            license: if route.provider.is_external() {
                "proprietary-api".into()
            } else {
                "self-hosted".into()
            },
        })
    }

    fn models(&self) -> Vec<String> {
        let mut names: Vec<String> = self.models().into_iter().map(|m| m.id).collect();
        names.push(DEFAULT_LOCAL_MODEL.to_string());
        names
    }
}

/// What routing decided for one request.
pub struct RoutePlan {
    pub decision: Decision,
    pub classification: Classification,
    /// Targets to try in order (fallback chain), resolved to providers.
    pub routes: Vec<Route>,
    /// Targets of the chain that no provider serves (reported when nothing is left).
    pub unavailable: Vec<String>,
    /// Present when the policy redacted the request before dispatch.
    pub redaction: Option<Redaction>,
}

/// A request the policy did not let through, with the rule that decided so (the client
/// sees it in `x-switchyard-rule`, the ledger and dashboard count blocks per rule).
#[derive(Debug)]
pub struct Refused {
    pub rule: String,
    pub error: GatewayError,
}

impl From<Refused> for GatewayError {
    fn from(r: Refused) -> GatewayError {
        r.error
    }
}

/// The policy engine behind the routing seam.
pub struct PolicyRouter {
    pub models: Arc<ModelMap>,
    pub policy: PolicyHandle,
    /// The learned PII detector (`classifier.ner`); `None` when its mode is `off`.
    pub ner: Option<Arc<NerDetector>>,
    /// The sentence head (`classifier.sentence_head`); `None` when its mode is `off`.
    pub head: Option<Arc<HeadDetector>>,
}

impl PolicyRouter {
    /// Classify → decide → (redact). Rewrites `request` in place when the policy redacts,
    /// so nothing downstream (providers, cache) ever sees the original values.
    pub fn plan(
        &self,
        request: &mut ChatRequest,
        facts: Facts,
        explain: bool,
    ) -> Result<RoutePlan, Refused> {
        let (classification, decision, _) = self.decide(request, facts, explain);
        let refuse = |error| Refused {
            rule: decision.rule.clone(),
            error,
        };
        if let Some(message) = &decision.blocked {
            return Err(refuse(GatewayError::PermissionDenied(format!(
                "blocked by policy rule `{}`: {message}",
                decision.rule
            ))));
        }
        let redaction = if decision.redact.is_empty() {
            None
        } else {
            privacy::redact_request(request, &classification.findings, &decision.redact)
        };
        // Defence in depth: the engine already removed external targets that would see
        // unredacted privacy-critical content; check again against the live providers.
        let covered = decision
            .critical_categories
            .iter()
            .all(|c| decision.redact.contains(c));
        let mut routes = Vec::with_capacity(decision.chain.len());
        let mut unavailable = Vec::new();
        for target in &decision.chain {
            match self.models.resolve(&target.model) {
                Ok(route)
                    if route.provider.is_external() && decision.privacy_critical && !covered =>
                {
                    unavailable.push(format!(
                        "{} (external; privacy-critical content)",
                        target.model
                    ));
                }
                Ok(route) => routes.push(route),
                Err(_) => {
                    unavailable.push(format!("{} (not served by this gateway)", target.model))
                }
            }
        }
        if routes.is_empty() {
            let message = if decision.privacy_critical {
                format!(
                    "privacy-critical content cannot leave the organization and no local target of rule `{}` is available: {}",
                    decision.rule,
                    unavailable.join(", ")
                )
            } else {
                format!(
                    "no target of rule `{}` is available: {}",
                    decision.rule,
                    unavailable.join(", ")
                )
            };
            return Err(refuse(
                if decision.target.as_deref() == Some(policies::policy::REQUESTED_TARGET)
                    && !decision.privacy_critical
                {
                    GatewayError::NotFound(model_not_found(&request.model))
                } else {
                    GatewayError::Overloaded(message)
                },
            ));
        }
        Ok(RoutePlan {
            decision,
            classification,
            routes,
            unavailable,
            redaction,
        })
    }
}

/// The 404 text for a model nobody serves; it names the environment variables that
/// would enable a known provider's model, so the fix is one restart away.
pub fn model_not_found(model: &str) -> String {
    match crate::config::env_provider_for(model) {
        Some(p) => format!(
            "The model `{model}` is not served by this gateway: {} models are served when {} (or {}) is set when the gateway starts, or by a provider in the config file (GET /v1/models lists what is served)",
            p.label, p.key_var, p.base_url_var
        ),
        None => format!(
            "The model `{model}` does not exist or is not served by this gateway (GET /v1/models lists what is served)"
        ),
    }
}

impl PolicyRouter {
    /// Classify and decide, without acting on the decision (explain uses this too).
    pub fn decide(
        &self,
        request: &ChatRequest,
        mut facts: Facts,
        explain: bool,
    ) -> (Classification, Decision, Arc<ActivePolicy>) {
        let active = self.policy.current();
        facts.requested_is_local = self.models.is_local(&request.model);
        facts.model = Some(request.model.clone());
        let mut classification = classify(&active.classifier, request);
        let mut decision = active.policy.decide(&facts, &classification, explain);
        // A learned detector can change the outcome only if the request may still leave
        // the organization or will be redacted (then its spans must be redacted too).
        let settled =
            |d: &Decision| d.is_blocked() || (!d.leaves_organization() && d.redact.is_empty());
        if let Some(ner) = &self.ner {
            let allowed = ner.mode_allows(&classification, settled(&decision));
            if add_model_findings(ner, request, &mut classification, allowed) {
                decision = active.policy.decide(&facts, &classification, explain);
            }
        }
        if let Some(head) = &self.head {
            let allowed = head.mode_allows(&classification, settled(&decision));
            let difficulty = classification.difficulty;
            let reads = active.policy.reads_difficulty();
            let changed = add_head_reading(head, request, &mut classification, allowed, reads);
            // Difficulty feeds the policy's conditions too: decide again when it moved.
            if changed || classification.difficulty != difficulty {
                decision = active.policy.decide(&facts, &classification, explain);
            }
        }
        (classification, decision, active)
    }

    /// Rules and (unless their modes are `off`) the NER model and the sentence head, for
    /// `/v1/classify`: the model runs whenever its gate passes and the head always, so
    /// every finding is shown.
    pub fn classify(&self, request: &ChatRequest) -> Classification {
        let active = self.policy.current();
        let mut classification = classify(&active.classifier, request);
        if let Some(ner) = &self.ner {
            add_model_findings(ner, request, &mut classification, true);
        }
        if let Some(head) = &self.head {
            add_head_reading(head, request, &mut classification, true, true);
        }
        classification
    }
}

/// Runs the sentence head and merges its reading; true when the categories changed.
fn add_head_reading(
    head: &HeadDetector,
    request: &ChatRequest,
    classification: &mut Classification,
    allowed: bool,
    difficulty_matters: bool,
) -> bool {
    let texts = privacy::text_segments(request);
    let segments: Vec<(policies::SegmentRole, &str)> =
        texts.iter().map(|(role, text, _)| (*role, *text)).collect();
    head.apply(&segments, classification, allowed, difficulty_matters)
}

/// Runs the model and merges its findings; true when the categories changed (so the
/// policy must decide again).
fn add_model_findings(
    ner: &NerDetector,
    request: &ChatRequest,
    classification: &mut Classification,
    allowed: bool,
) -> bool {
    let texts = privacy::text_segments(request);
    let segments: Vec<(policies::SegmentRole, &str)> =
        texts.iter().map(|(role, text, _)| (*role, *text)).collect();
    let run = ner.scan(&segments, classification, allowed);
    if run.findings.is_empty() {
        return false;
    }
    let before = classification.categories.clone();
    classification.merge_findings(run.findings);
    classification.categories != before
}

/// Runs the classifier over every text a model would read.
pub fn classify(classifier: &Classifier, request: &ChatRequest) -> Classification {
    let texts = privacy::text_segments(request);
    let segments: Vec<policies::Segment<'_>> = texts
        .iter()
        .map(|(role, text, _)| policies::Segment { role: *role, text })
        .collect();
    classifier.classify(&policies::ClassifyInput {
        segments: &segments,
        embedding: None,
    })
}

/// The workspace's one glob matcher (`policies::glob`).
pub use policies::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn globs() {
        assert!(glob_match("gpt-*", "gpt-4o-mini"));
        assert!(glob_match("*", ""));
        assert!(glob_match("claude-*-latest", "claude-3-5-haiku-latest"));
        assert!(!glob_match("claude-*", "gpt-4o"));
        assert!(glob_match("o?", "o1"));
        assert!(!glob_match("o?", "o10"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        // Non-ASCII takes the char path: `?` is one character, not one byte.
        assert!(glob_match("caf?", "café"));
        assert!(glob_match("*é*", "crème brûlée"));
        assert!(!glob_match("caf??", "café"));
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9.-]{0,12}", b in "[a-z0-9.-]{0,12}") {
            prop_assert_eq!(glob_match(&a, &b), a == b);
        }

        #[test]
        fn agrees_with_a_recursive_reference(p in "[aé*?]{0,8}", t in "[aéb]{0,10}") {
            fn reference(p: &[char], t: &[char]) -> bool {
                match (p.first(), t.first()) {
                    (None, _) => t.is_empty(),
                    (Some('*'), _) => reference(&p[1..], t) || (!t.is_empty() && reference(p, &t[1..])),
                    (Some('?'), Some(_)) => reference(&p[1..], &t[1..]),
                    (Some(c), Some(d)) => c == d && reference(&p[1..], &t[1..]),
                    (Some(_), None) => false,
                }
            }
            let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
            prop_assert_eq!(glob_match(&p, &t), reference(&pc, &tc));
        }

        #[test]
        fn star_suffix_is_prefix_match(a in "[a-z0-9-]{0,8}", b in "[a-z0-9-]{0,8}") {
            let pattern = format!("{a}*");
            prop_assert_eq!(glob_match(&pattern, &b), b.starts_with(&a));
        }
    }
}
