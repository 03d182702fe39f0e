//! Parsing, checking and lowering policy files into a [`CompiledPolicy`].
//!
//! Every file is parsed as a YAML value, then each section, target and rule is deserialized on
//! its own, so one mistake does not hide the next: `compile` reports every error it finds.
//! Positions come from the [`SpanIndex`] built from the file's YAML events.

use super::ast::{ActionDef, CondDef, OneOrMany, PrivacyDef, RangeDef, RuleDef, TargetDef};
use super::catalog::TargetCatalog;
use super::engine::{
    build_decision, Action, CatSet, Cond, Ctx, Decision, Facts, Glob, Privacy, Range,
    ResolvedTarget, Route, Rule, RuleTrace, Scope, ShadowAction, REQUESTED_TARGET,
};
use super::error::{did_you_mean, ErrorCode, PolicyError, Pos};
use super::span::SpanIndex;
use crate::classify::rules::CompiledOrgRules;
use crate::classify::{
    Classification, Classifier, ClassifierError, OrgRules, SENSITIVE_MIN_CONFIDENCE,
};
use crate::Dialect;
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
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

/// A checked policy, ready to decide. Cheap to share behind an `Arc` and swap on reload.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    files: Vec<String>,
    targets: BTreeMap<String, Route>,
    privacy: Privacy,
    org_rules: OrgRules,
    rules: Vec<Rule>,
    default: Rule,
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
        let ctx = Ctx::new(facts, cls, self.privacy);
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

const TOP_KEYS: [&str; 6] = [
    "version",
    "targets",
    "privacy",
    "classifier",
    "rules",
    "default",
];
const DIALECTS: [&str; 4] = [
    Dialect::OpenAi.as_str(),
    Dialect::Anthropic.as_str(),
    Dialect::Responses.as_str(),
    Dialect::Gemini.as_str(),
];

#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub file: usize,
    pub path: String,
}

pub(crate) struct Ctx2<'a> {
    pub names: Vec<String>,
    pub spans: Vec<SpanIndex>,
    pub errors: Vec<PolicyError>,
    pub catalog: Option<&'a dyn TargetCatalog>,
}

pub(crate) fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Ctx2<'_> {
    pub(crate) fn add_file(&mut self, src: &PolicySource) -> usize {
        self.names.push(src.name.clone());
        self.spans.push(SpanIndex::build(&src.text));
        self.names.len() - 1
    }

    pub(crate) fn key_pos(&self, loc: &Loc) -> Pos {
        self.spans[loc.file].key(&loc.path)
    }

    pub(crate) fn value_pos(&self, loc: &Loc) -> Pos {
        self.spans[loc.file].value(&loc.path)
    }

    pub(crate) fn at(&self, loc: &Loc) -> String {
        let p = self.value_pos(loc);
        format!("{}:{}:{}", self.names[loc.file], p.line, p.column)
    }

    pub(crate) fn err(
        &mut self,
        loc: &Loc,
        key: bool,
        code: ErrorCode,
        msg: String,
    ) -> &mut PolicyError {
        let pos = if key {
            self.key_pos(loc)
        } else {
            self.value_pos(loc)
        };
        self.errors
            .push(PolicyError::new(&self.names[loc.file], pos, code, msg));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// Parses a file to a YAML value; a syntax error is reported with its position.
    pub(crate) fn parse_value(&mut self, file: usize, text: &str) -> Option<Value> {
        match serde_yaml_ng::from_str::<Value>(text) {
            Ok(mut v) => {
                if v.apply_merge().is_err() {
                    self.errors.push(PolicyError::new(
                        &self.names[file],
                        Pos::START,
                        ErrorCode::Syntax,
                        "invalid YAML merge key (`<<`)",
                    ));
                    return None;
                }
                Some(v)
            }
            Err(e) => {
                let pos = e.location().map_or(Pos::START, |l| Pos {
                    line: l.line(),
                    column: l.column(),
                });
                let msg = e.to_string();
                let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
                self.errors.push(
                    PolicyError::new(&self.names[file], pos, ErrorCode::Syntax, msg)
                        .hint("check indentation and quoting around this position"),
                );
                None
            }
        }
    }

    /// Deserializes `value` (found at `loc`) into `T`, reporting a positioned error on failure.
    pub(crate) fn typed<T: DeserializeOwned>(&mut self, loc: &Loc, value: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let mut path = loc.path.clone();
                for seg in e.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => {
                            path.push_str(&format!("[{index}]"))
                        }
                        serde_path_to_error::Segment::Map { key } => path = join_key(&path, key),
                        serde_path_to_error::Segment::Enum { variant } => {
                            path = join_key(&path, variant)
                        }
                        serde_path_to_error::Segment::Unknown => {}
                    }
                }
                let msg = e.inner().to_string();
                let at = Loc {
                    file: loc.file,
                    path: path.clone(),
                };
                let expected: Vec<String> = msg
                    .split_once("expected")
                    .map(|(_, rest)| {
                        rest.split('`')
                            .skip(1)
                            .step_by(2)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let quoted = |m: &str, prefix: &str| {
                    m.strip_prefix(prefix)
                        .and_then(|r| r.split('`').next())
                        .map(str::to_string)
                };
                let shown = if path.is_empty() { "the file" } else { &path };
                let hint = |word: &str| {
                    did_you_mean(word, expected.iter().map(String::as_str)).or_else(|| {
                        (!expected.is_empty()).then(|| {
                            format!(
                                "expected one of: {}",
                                expected
                                    .iter()
                                    .map(|s| format!("`{s}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        })
                    })
                };
                if let Some(field) = quoted(&msg, "unknown field `") {
                    let parent = path.rsplit_once('.').map_or("", |(p, _)| p).to_string();
                    let h = hint(&field);
                    let where_ = if parent.is_empty() {
                        "the file".to_string()
                    } else {
                        format!("`{parent}`")
                    };
                    self.err(
                        &at,
                        true,
                        ErrorCode::UnknownKey,
                        format!("unknown key `{field}` in {where_}"),
                    )
                    .hint = h;
                } else if let Some(variant) = quoted(&msg, "unknown variant `") {
                    let h = hint(&variant);
                    self.err(
                        &at,
                        false,
                        ErrorCode::Invalid,
                        format!("unknown value `{variant}` at `{shown}`"),
                    )
                    .hint = h;
                } else if let Some(field) = quoted(&msg, "missing field `") {
                    self.err(
                        &at,
                        false,
                        ErrorCode::Missing,
                        format!("`{shown}` is missing `{field}`"),
                    );
                } else {
                    self.err(&at, false, ErrorCode::Type, format!("`{shown}`: {msg}"));
                }
                None
            }
        }
    }
}

#[derive(Default)]
struct Acc {
    targets: Vec<(String, TargetDef, Loc)>,
    privacy: Option<(PrivacyDef, Loc)>,
    classifier: Option<(OrgRules, Loc)>,
    /// Rules that failed to parse stay (as `None`) so later checks still see them.
    rules: Vec<(Option<RuleDef>, Option<String>, Loc)>,
    default: Option<(ActionDef, Loc)>,
}

/// Checks the top-level `version:` of a file.
pub(crate) fn check_version(cx: &mut Ctx2, file: usize, m: &serde_yaml_ng::Mapping) {
    let loc = Loc {
        file,
        path: "version".to_string(),
    };
    match m.get("version") {
        None => {
            cx.err(
                &Loc {
                    file,
                    path: String::new(),
                },
                false,
                ErrorCode::Version,
                "missing `version`".to_string(),
            )
            .hint = Some("start the file with `version: 1`".to_string());
        }
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => {
            cx.err(
                &loc,
                false,
                ErrorCode::Version,
                "unsupported `version`".to_string(),
            )
            .hint = Some("this gateway reads policy files with `version: 1`".to_string());
        }
    }
}

fn parse_file(cx: &mut Ctx2, src: &PolicySource, acc: &mut Acc) {
    let file = cx.add_file(src);
    let Some(value) = cx.parse_value(file, &src.text) else {
        return;
    };
    let root = Loc {
        file,
        path: String::new(),
    };
    let Value::Mapping(m) = value else {
        cx.err(
            &root,
            false,
            ErrorCode::Type,
            "a policy file is a mapping".to_string(),
        )
        .hint = Some(
            "expected keys: version, targets, privacy, classifier, rules, default".to_string(),
        );
        return;
    };
    check_version(cx, file, &m);
    for (k, v) in m {
        let Some(key) = k.as_str().map(str::to_string) else {
            cx.err(
                &root,
                false,
                ErrorCode::Type,
                "top-level keys must be strings".to_string(),
            );
            continue;
        };
        let loc = Loc {
            file,
            path: key.clone(),
        };
        match key.as_str() {
            "version" => {}
            "targets" => {
                let v = if v.is_null() {
                    Value::Mapping(Default::default())
                } else {
                    v
                };
                let Value::Mapping(tm) = v else {
                    cx.err(
                        &loc,
                        false,
                        ErrorCode::Type,
                        "`targets` is a mapping of name to `model:` or `chain:`".to_string(),
                    );
                    continue;
                };
                for (name, def) in tm {
                    let Some(name) = name.as_str().map(str::to_string) else {
                        cx.err(
                            &loc,
                            false,
                            ErrorCode::Type,
                            "target names must be strings".to_string(),
                        );
                        continue;
                    };
                    let tloc = Loc {
                        file,
                        path: join_key("targets", &name),
                    };
                    if let Some(def) = cx.typed::<TargetDef>(&tloc, def) {
                        acc.targets.push((name, def, tloc));
                    }
                }
            }
            "privacy" => {
                if let Some(p) = cx.typed::<PrivacyDef>(&loc, v) {
                    once(cx, &mut acc.privacy, p, loc, "privacy");
                }
            }
            "classifier" => {
                if let Some(r) = cx.typed::<OrgRules>(&loc, v) {
                    once(cx, &mut acc.classifier, r, loc, "classifier");
                }
            }
            "default" => {
                if let Some(a) = cx.typed::<ActionDef>(&loc, v) {
                    once(cx, &mut acc.default, a, loc, "default");
                }
            }
            "rules" => {
                let v = if v.is_null() {
                    Value::Sequence(Vec::new())
                } else {
                    v
                };
                let Value::Sequence(rules) = v else {
                    cx.err(
                        &loc,
                        false,
                        ErrorCode::Type,
                        "`rules` is a list of rules".to_string(),
                    );
                    continue;
                };
                for (i, r) in rules.into_iter().enumerate() {
                    let rloc = Loc {
                        file,
                        path: format!("rules[{i}]"),
                    };
                    let id = r.get("id").and_then(Value::as_str).map(str::to_string);
                    let def = cx.typed::<RuleDef>(&rloc, r);
                    acc.rules.push((def, id, rloc));
                }
            }
            other => {
                let h = did_you_mean(other, TOP_KEYS);
                cx.err(
                    &loc,
                    true,
                    ErrorCode::UnknownKey,
                    format!("unknown top-level key `{other}`"),
                )
                .hint = h.or_else(|| Some(format!("expected one of: {}", TOP_KEYS.join(", "))));
            }
        }
    }
}

fn once<T>(cx: &mut Ctx2, slot: &mut Option<(T, Loc)>, v: T, loc: Loc, what: &str) {
    if let Some((_, first)) = slot {
        let first_at = cx.at(first);
        cx.err(
            &loc,
            true,
            ErrorCode::Duplicate,
            format!("`{what}` is defined twice"),
        )
        .hint = Some(format!(
            "first defined at {first_at}; a later file may only add rules and targets"
        ));
    } else {
        *slot = Some((v, loc));
    }
}

/// Compiles policy files, merged in the given order (use [`load_dir`] for lexical order).
/// Reports every error found.
pub fn compile(
    sources: &[PolicySource],
    catalog: &dyn TargetCatalog,
) -> Result<CompiledPolicy, Vec<PolicyError>> {
    let mut cx = Ctx2 {
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
    let mut acc = Acc::default();
    for src in sources {
        parse_file(&mut cx, src, &mut acc);
    }
    let targets = compile_targets(&mut cx, &acc.targets);
    let privacy = match &acc.privacy {
        None => Privacy {
            cats: CatSet::all(),
            min_confidence: SENSITIVE_MIN_CONFIDENCE,
        },
        Some((p, loc)) => {
            let min = p.min_confidence.unwrap_or(SENSITIVE_MIN_CONFIDENCE);
            if !(0.0..=1.0).contains(&min) {
                let l = Loc {
                    file: loc.file,
                    path: join_key(&loc.path, "min_confidence"),
                };
                cx.err(
                    &l,
                    false,
                    ErrorCode::Invalid,
                    "`min_confidence` must be between 0 and 1".to_string(),
                );
            }
            let cats = p
                .categories
                .as_deref()
                .map_or(CatSet::all(), CatSet::from_slice);
            Privacy {
                cats,
                min_confidence: min,
            }
        }
    };
    let org_rules = match &acc.classifier {
        None => OrgRules::default(),
        Some((r, loc)) => {
            // Only the organization's rules can be wrong: building a whole `Classifier`
            // here would also compile every built-in detector on each check and reload.
            if let Err(e) = CompiledOrgRules::compile(r) {
                classifier_error(&mut cx, r, loc, &e);
            }
            r.clone()
        }
    };

    let unparsed = cx.errors.iter().any(|e| e.code == ErrorCode::Syntax);
    let default_action = match &acc.default {
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
            let action = compile_action(&mut cx, a, &loc, &targets, None);
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
    };

    let mut rules = Vec::new();
    let mut ids: HashMap<String, Loc> = HashMap::new();
    let mut catch_all: Option<(String, Loc)> = None;
    for (def, raw_id, loc) in &acc.rules {
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
            Some(c) => compile_cond(&mut cx, c, &when_loc),
        };
        if cond == Cond::True && catch_all.is_none() {
            catch_all = Some((def.id.clone(), loc.clone()));
        }
        let action = compile_action(
            &mut cx,
            &def.action(),
            loc,
            &targets,
            default_action.as_ref(),
        );
        if let Some(action) = action {
            rules.push(Rule {
                id: def.id.clone(),
                cond,
                action,
            });
        }
    }
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

fn compile_targets(cx: &mut Ctx2, defs: &[(String, TargetDef, Loc)]) -> BTreeMap<String, Route> {
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
    cx: &mut Ctx2,
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

fn compile_action(
    cx: &mut Ctx2,
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

fn range(cx: &mut Ctx2, r: &RangeDef, loc: &Loc, what: &str) -> Range {
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

fn glob_list(cx: &mut Ctx2, v: &OneOrMany, loc: &Loc, what: &str) -> Vec<Glob> {
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

fn compile_cond(cx: &mut Ctx2, c: &CondDef, loc: &Loc) -> Cond {
    let sub = |k: &str| Loc {
        file: loc.file,
        path: join_key(&loc.path, k),
    };
    let mut parts = Vec::new();
    for (key, list) in [("all", &c.all), ("any", &c.any)] {
        if let Some(list) = list {
            let l = sub(key);
            if list.is_empty() {
                cx.err(&l, false, ErrorCode::Invalid, format!("empty `{key}` list"));
            }
            let cs: Vec<Cond> = list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    compile_cond(
                        cx,
                        c,
                        &Loc {
                            file: l.file,
                            path: format!("{}[{i}]", l.path),
                        },
                    )
                })
                .collect();
            parts.push(if key == "all" {
                Cond::All(cs)
            } else {
                Cond::Any(cs)
            });
        }
    }
    if let Some(n) = &c.not {
        parts.push(Cond::Not(Box::new(compile_cond(cx, n, &sub("not")))));
    }
    if let Some(s) = &c.sensitivity {
        let l = sub("sensitivity");
        if s.min_confidence.is_some_and(|m| !(0.0..=1.0).contains(&m)) {
            cx.err(
                &sub("sensitivity.min_confidence"),
                false,
                ErrorCode::Invalid,
                "`min_confidence` must be between 0 and 1".to_string(),
            );
        }
        if s.categories.as_ref().is_some_and(|c| c.is_empty()) {
            cx.err(
                &l,
                false,
                ErrorCode::Invalid,
                "empty `categories` list never matches".to_string(),
            );
        }
        parts.push(Cond::Sensitivity {
            cats: s.categories.as_deref().map(CatSet::from_slice),
            kinds: s
                .kinds
                .as_ref()
                .map(|k| glob_list(cx, k, &l, "kinds"))
                .unwrap_or_default(),
            min_confidence: s.min_confidence,
            privacy_critical: s.privacy_critical,
        });
    }
    if let Some(r) = &c.difficulty {
        parts.push(Cond::Difficulty(range(
            cx,
            r,
            &sub("difficulty"),
            "difficulty",
        )));
    }
    if let Some(v) = &c.team {
        parts.push(Cond::Team(glob_list(cx, v, &sub("team"), "team")));
    }
    if let Some(v) = &c.key {
        parts.push(Cond::Key(glob_list(cx, v, &sub("key"), "key")));
    }
    if let Some(v) = &c.app {
        parts.push(Cond::App(glob_list(cx, v, &sub("app"), "app")));
    }
    if let Some(v) = &c.tags {
        if v.0.is_empty() {
            cx.err(
                &sub("tags"),
                false,
                ErrorCode::Invalid,
                "empty `tags` list".to_string(),
            );
        }
        parts.push(Cond::Tags(v.0.clone()));
    }
    if let Some(v) = &c.model {
        parts.push(Cond::Model(glob_list(cx, v, &sub("model"), "model")));
    }
    if let Some(v) = &c.dialect {
        let mut dialects = Vec::new();
        for (i, d) in v.0.iter().enumerate() {
            if let Some(d) = Dialect::parse(d) {
                dialects.push(d);
            } else {
                let l = Loc {
                    file: loc.file,
                    path: format!("{}.dialect[{i}]", loc.path),
                };
                let l = if v.0.len() == 1 { sub("dialect") } else { l };
                cx.err(
                    &l,
                    false,
                    ErrorCode::Invalid,
                    format!("unknown dialect `{d}`"),
                )
                .hint = Some(did_you_mean(d, DIALECTS).unwrap_or_else(|| {
                    "dialects are `openai`, `anthropic`, `responses` and `gemini`".to_string()
                }));
            }
        }
        parts.push(Cond::Dialect(dialects));
    }
    if let Some(r) = &c.tokens {
        parts.push(Cond::Tokens(range(cx, r, &sub("tokens"), "tokens")));
    }
    if let Some(s) = c.stream {
        parts.push(Cond::Stream(s));
    }
    if let Some(t) = &c.time {
        let l = sub("time");
        let from = t.from.unwrap_or(0);
        let to = t.to.unwrap_or(24);
        if t.from.is_none() && t.to.is_none() && t.days.is_none() {
            cx.err(
                &l,
                false,
                ErrorCode::Invalid,
                "`time` needs `from`, `to` and/or `days`".to_string(),
            );
        }
        if from > 23 || to > 24 || from == to {
            cx.err(&l, false, ErrorCode::Invalid, format!("invalid UTC hour window [{from}, {to})"))
                .hint = Some("`from` is 0..=23, `to` is 1..=24 and differs from `from`; from > to wraps past midnight".to_string());
        }
        let days = match &t.days {
            None => 0x7f,
            Some(ds) => {
                if ds.is_empty() {
                    cx.err(
                        &l,
                        false,
                        ErrorCode::Invalid,
                        "empty `days` list never matches".to_string(),
                    );
                }
                ds.iter().fold(0u8, |acc, d| acc | (1 << (*d as u8)))
            }
        };
        parts.push(Cond::Time { from, to, days });
    }
    if let Some(v) = &c.volume {
        let r = range(
            cx,
            &RangeDef {
                gte: v.gte,
                lt: v.lt,
            },
            &sub("volume"),
            "volume",
        );
        let scope = match v.scope {
            super::ast::VolumeScope::Team => Scope::Team,
            super::ast::VolumeScope::Key => Scope::Key,
        };
        parts.push(Cond::Volume(scope, r));
    }
    match parts.len() {
        0 => Cond::True,
        1 => parts.pop().unwrap_or(Cond::True),
        _ => Cond::All(parts),
    }
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

/// Places a classifier error on the detector (and field) it is about.
fn classifier_error(cx: &mut Ctx2, rules: &OrgRules, loc: &Loc, e: &ClassifierError) {
    let (name, field, code, hint) = match e {
        ClassifierError::Regex { name, .. } => (
            Some(name),
            "regex",
            ErrorCode::BadRegex,
            "regular expressions use Rust `regex` syntax (no look-around or back-references); quote them with single quotes in YAML",
        ),
        ClassifierError::UnknownValidator { name, .. } => (
            Some(name),
            "validator",
            ErrorCode::Invalid,
            "validators: luhn, iban, aba, ssn, not_placeholder",
        ),
        ClassifierError::Confidence { name } => (
            Some(name),
            "confidence",
            ErrorCode::Invalid,
            "confidence is between 0 and 1",
        ),
        _ => (None, "", ErrorCode::Invalid, "check the `classifier` section"),
    };
    let at = name
        .and_then(|n| rules.detectors.iter().position(|d| &d.name == n))
        .map_or_else(
            || loc.clone(),
            |i| Loc {
                file: loc.file,
                path: format!("{}.detectors[{i}].{field}", loc.path),
            },
        );
    cx.err(&at, false, code, format!("invalid `classifier` rules: {e}"))
        .hint = Some(hint.to_string());
}
