//! What the policy needs to know about models: local or external, and licence terms.
//! The gateway passes its model catalog in; [`StaticCatalog`] is a plain map for tests and tools.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Catalog facts about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetInfo {
    /// True when requests to it leave the organization (a provider API).
    pub external: bool,
    /// True when its licence allows commercial use.
    pub commercial_use: bool,
    /// Licence name (`apache-2.0`, `llama3.2`, `proprietary-api`...).
    pub license: String,
}

/// Looks up models by name at compile time.
pub trait TargetCatalog {
    fn lookup(&self, model: &str) -> Option<TargetInfo>;
    /// Known model names, used for "did you mean" hints. Optional.
    fn models(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A catalog held in a map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticCatalog {
    map: BTreeMap<String, TargetInfo>,
}

impl StaticCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a model.
    pub fn insert(&mut self, model: impl Into<String>, info: TargetInfo) {
        self.map.insert(model.into(), info);
    }

    /// Builder form of [`StaticCatalog::insert`].
    pub fn with(mut self, model: impl Into<String>, info: TargetInfo) -> Self {
        self.insert(model, info);
        self
    }

    /// The models the shipped example policies use: `local/smollm2-135m-instruct` (in-process,
    /// Apache-2.0), `gpt-4o` and `claude-sonnet-4-5` (external APIs).
    pub fn builtin() -> Self {
        let api = |license: &str| TargetInfo {
            external: true,
            commercial_use: true,
            license: license.to_string(),
        };
        StaticCatalog::new()
            .with(
                "local/smollm2-135m-instruct",
                TargetInfo {
                    external: false,
                    commercial_use: true,
                    license: "apache-2.0".to_string(),
                },
            )
            .with("gpt-4o", api("openai-terms"))
            .with("gpt-4o-mini", api("openai-terms"))
            .with("claude-sonnet-4-5", api("anthropic-terms"))
            .with("claude-haiku-4-5", api("anthropic-terms"))
    }
}

impl TargetCatalog for StaticCatalog {
    fn lookup(&self, model: &str) -> Option<TargetInfo> {
        self.map.get(model).cloned()
    }
    fn models(&self) -> Vec<String> {
        self.map.keys().cloned().collect()
    }
}
