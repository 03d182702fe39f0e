//! Parsing, checking and lowering policy files into a [`CompiledPolicy`].
//!
//! Every file is parsed as a YAML value, then each section, target and rule is deserialized on
//! its own, so one mistake does not hide the next: `compile` reports every error it finds.
//! Positions come from the [`SpanIndex`](super::span::SpanIndex) built from the file's YAML
//! events. One module per thing compiled, in the order [`compile`] runs them: [`files`]
//! (sections of each file), [`targets`], [`sections`] (privacy, classifier), [`rules`] (with
//! [`conds`] and [`actions`]); [`policy`] is the result.

mod actions;
mod conds;
mod context;
mod files;
mod policy;
mod rules;
mod sections;
mod targets;

pub(crate) use context::{join_key, CompileCtx, Loc};
pub(crate) use files::check_version;
pub use policy::CompiledPolicy;

use super::catalog::TargetCatalog;
use super::engine::{Cond, Rule};
use super::error::{ErrorCode, PolicyError, Pos};
use std::path::Path;

/// One policy (or policy-test) file: a name for messages and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

impl PolicySource {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        PolicySource {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// The files of a policy directory: `*.yaml` policies and `*.test.yaml` tests, each sorted by
/// file name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyDir {
    pub policies: Vec<PolicySource>,
    pub tests: Vec<PolicySource>,
}

/// Reads a policy directory (the only function of this module that touches the file system).
pub fn load_dir(dir: &Path) -> Result<PolicyDir, Vec<PolicyError>> {
    let io_err = |file: &Path, e: std::io::Error| {
        vec![PolicyError::new(
            &file.display().to_string(),
            Pos::START,
            ErrorCode::Io,
            format!("cannot read: {e}"),
        )]
    };
    let entries = std::fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") && !name.starts_with('.') && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    let mut out = PolicyDir::default();
    for name in names {
        let path = dir.join(&name);
        let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
        let src = PolicySource::new(path.display().to_string(), text);
        if name.ends_with(".test.yaml") {
            out.tests.push(src);
        } else {
            out.policies.push(src);
        }
    }
    if out.policies.is_empty() {
        return Err(vec![PolicyError::new(
            &dir.display().to_string(),
            Pos::START,
            ErrorCode::Missing,
            "no policy files (`*.yaml`, not `*.test.yaml`) in this directory",
        )
        .hint("start from policies/examples/default/policy.yaml")]);
    }
    Ok(out)
}

/// Reads and compiles a policy directory.
pub fn check(dir: &Path, catalog: &dyn TargetCatalog) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let files = load_dir(dir)?;
    compile(&files.policies, catalog)
}

/// Compiles one YAML text (for instance [`super::DEFAULT_POLICY_YAML`]).
pub fn compile_str(
    name: &str,
    yaml: &str,
    catalog: &dyn TargetCatalog,
) -> Result<CompiledPolicy, Vec<PolicyError>> {
    compile(&[PolicySource::new(name, yaml)], catalog)
}

/// Compiles policy files, merged in the given order (use [`load_dir`] for lexical order).
/// Reports every error found.
pub fn compile(
    sources: &[PolicySource],
    catalog: &dyn TargetCatalog,
) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let mut cx = CompileCtx {
        names: Vec::new(),
        spans: Vec::new(),
        errors: Vec::new(),
        catalog: Some(catalog),
    };
    if sources.is_empty() {
        return Err(vec![PolicyError::new(
            "<policy>",
            Pos::START,
            ErrorCode::Missing,
            "no policy files",
        )]);
    }
    let mut acc = files::Acc::default();
    for src in sources {
        files::parse_file(&mut cx, src, &mut acc);
    }
    let targets = targets::compile_targets(&mut cx, &acc.targets);
    let privacy = sections::privacy(&mut cx, acc.privacy.as_ref());
    let org_rules = sections::org_rules(&mut cx, acc.classifier.as_ref());
    let default_action = rules::compile_default(&mut cx, acc.default.as_ref(), &targets);
    let rules = rules::compile_rules(&mut cx, &acc.rules, &targets, default_action.as_ref());
    if !cx.errors.is_empty() {
        return Err(sorted(cx.errors, &cx.names));
    }
    let Some(default_action) = default_action else {
        return Err(cx.errors);
    };
    Ok(CompiledPolicy {
        files: cx.names,
        targets,
        privacy,
        org_rules,
        rules,
        default: Rule {
            id: "default".to_string(),
            cond: Cond::True,
            action: default_action,
        },
    })
}

/// Errors in file order, then by position.
pub(crate) fn sorted(mut errors: Vec<PolicyError>, names: &[String]) -> Vec<PolicyError> {
    errors.sort_by_key(|e| {
        (
            names
                .iter()
                .position(|n| *n == e.file)
                .unwrap_or(usize::MAX),
            e.line,
            e.column,
        )
    });
    errors
}
