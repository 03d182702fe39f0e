//! The routing seam: canonical request in, route out. Today a model-name map from
//! config; the policy engine replaces the inside of `Router::route`, not its callers.

use std::sync::Arc;

use crate::canonical::{ChatRequest, GatewayError};
use crate::providers::Provider;

/// Where one request goes.
#[derive(Clone)]
pub struct Route {
    pub provider: Arc<dyn Provider>,
    /// The model name sent to the backend.
    pub upstream_model: String,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    pub owned_by: String,
}

pub trait Router: Send + Sync {
    fn route(&self, request: &ChatRequest) -> Result<Route, GatewayError>;
    fn models(&self) -> Vec<ModelInfo>;
}

/// Routes by model name: `provider/model` picks that provider; otherwise the first
/// provider (in config order) whose model list (exact names or `*` globs) matches.
pub struct ModelMap {
    entries: Vec<(Arc<dyn Provider>, Vec<String>)>,
}

impl ModelMap {
    pub fn new(entries: Vec<(Arc<dyn Provider>, Vec<String>)>) -> Self {
        ModelMap { entries }
    }
}

impl Router for ModelMap {
    fn route(&self, request: &ChatRequest) -> Result<Route, GatewayError> {
        let model = request.model.as_str();
        if let Some((prefix, rest)) = model.split_once('/') {
            if let Some((provider, _)) = self.entries.iter().find(|(p, _)| p.name() == prefix) {
                if !rest.is_empty() {
                    return Ok(Route {
                        provider: provider.clone(),
                        upstream_model: rest.to_string(),
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
            })
            .ok_or_else(|| {
                GatewayError::NotFound(format!(
                    "The model `{model}` does not exist or is not served by this gateway (see GET /v1/models)"
                ))
            })
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.entries
            .iter()
            .flat_map(|(provider, patterns)| {
                patterns
                    .iter()
                    .filter(|p| !p.contains('*') && !p.contains('?'))
                    .map(|p| ModelInfo {
                        id: p.clone(),
                        owned_by: provider.name().to_string(),
                    })
            })
            .collect()
    }
}

/// `*` matches any run of characters, `?` exactly one; everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            backtrack = Some((pi, ti));
            pi += 1;
        } else if let Some((star, matched)) = backtrack {
            pi = star + 1;
            ti = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

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
    }

    proptest! {
        #[test]
        fn literal_patterns_match_only_themselves(a in "[a-z0-9.-]{0,12}", b in "[a-z0-9.-]{0,12}") {
            prop_assert_eq!(glob_match(&a, &b), a == b);
        }

        #[test]
        fn star_suffix_is_prefix_match(a in "[a-z0-9-]{0,8}", b in "[a-z0-9-]{0,8}") {
            let pattern = format!("{a}*");
            prop_assert_eq!(glob_match(&pattern, &b), b.starts_with(&a));
        }
    }
}
