//! The policy language: YAML files that decide, per request, where it goes.
//!
//! `compile` / `check` turn policy files into a [`CompiledPolicy`] (every error with file, line,
//! column and a hint); [`CompiledPolicy::decide`] maps a request's [`Facts`] and classification
//! to a [`Decision`], enforcing the fail-closed privacy guarantee; [`redact`] and [`Restorer`]
//! make redaction reversible; [`run_tests`] runs `*.test.yaml` cases. Pure: the only I/O is
//! [`load_dir`] / [`check`] reading a directory. See `docs/policies.md`.

mod ast;
mod catalog;
mod compile;
mod describe;
mod engine;
mod error;
mod redact;
mod span;
mod testing;

pub use catalog::{StaticCatalog, TargetCatalog, TargetInfo};
pub use compile::{check, compile, compile_str, load_dir, CompiledPolicy, PolicyDir, PolicySource};
pub use describe::{CondLine, PolicyText, RuleText};
pub use engine::{
    CondTrace, Decision, Facts, RemovedTarget, ResolvedTarget, RuleTrace, ShadowPlan,
    PRIVACY_BLOCK_MESSAGE, REQUESTED_TARGET,
};
pub use error::{format_errors, ErrorCode, PolicyError};
pub use redact::{redact, Redacted, RedactionMap, Restorer};
pub use testing::{parse_tests, run_tests, CaseResult, TestCase, TestReport};

/// The shipped default policy (`policies/examples/default/policy.yaml`): privacy-critical
/// requests stay local, hard ones go to a frontier chain, high-volume teams stay local.
pub const DEFAULT_POLICY_YAML: &str = include_str!("../../examples/default/policy.yaml");

/// The policy a gateway runs without a policy directory (`policies/examples/builtin`):
/// the requested model, except that privacy-critical requests stay local.
pub const BUILTIN_POLICY_YAML: &str = include_str!("../../examples/builtin/policy.yaml");

/// The built-in policy's test cases.
pub const BUILTIN_POLICY_TESTS_YAML: &str = include_str!("../../examples/builtin/policy.test.yaml");

/// The default policy's test cases.
pub const DEFAULT_POLICY_TESTS_YAML: &str = include_str!("../../examples/default/policy.test.yaml");

/// Compiles [`DEFAULT_POLICY_YAML`] against a catalog (for a gateway started without a policy
/// directory). Fails only if the catalog lacks the default policy's models.
pub fn default_policy(catalog: &dyn TargetCatalog) -> Result<CompiledPolicy, Vec<PolicyError>> {
    compile_str("<default policy>", DEFAULT_POLICY_YAML, catalog)
}

#[cfg(test)]
mod tests;
