//! The decision engine: compiled rules, [`Facts`], [`Decision`] and `decide`.
//!
//! `decide` is pure: the caller passes everything it needs (the classification, the request's
//! facts, the current time and request rates). Explain is the same code path with a trace
//! collector switched on.

use super::catalog::TargetInfo;
use crate::classify::{Category, Classification, Finding};
use crate::Dialect;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Everything about a request the policy may look at, besides its classification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Facts {
    /// Team, from the virtual key or the `x-switchyard-team` header.
    pub team: Option<String>,
    /// Virtual key id (never the secret itself).
    pub key: Option<String>,
    /// Application tag.
    pub app: Option<String>,
    /// Request tags (`x-switchyard-tags`).
    pub tags: Vec<String>,
    /// The model the client asked for.
    pub model: Option<String>,
    /// The client's dialect.
    pub dialect: Option<Dialect>,
    /// Whether the client asked for a streamed answer.
    pub stream: bool,
    /// Current time, unix seconds UTC. `time:` conditions never match without it.
    pub now_unix_s: Option<i64>,
    /// Requests per minute of the team, as the gateway measured them.
    pub team_rpm: Option<u32>,
    /// Requests per minute of the key.
    pub key_rpm: Option<u32>,
    /// Whether `model` is served in-process (the gateway knows; the built-in `requested`
    /// target counts as external without it).
    pub requested_is_local: bool,
}

/// A compiled set of categories (bit set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CatSet(u8);

pub(crate) const ALL_CATEGORIES: [Category; 5] = [
    Category::Pii,
    Category::Phi,
    Category::Financial,
    Category::Secret,
    Category::Confidential,
];

fn bit(c: Category) -> u8 {
    match c {
        Category::Pii => 1,
        Category::Phi => 2,
        Category::Financial => 4,
        Category::Secret => 8,
        Category::Confidential => 16,
    }
}

impl CatSet {
    pub(crate) fn all() -> CatSet {
        CatSet(31)
    }
    pub(crate) fn from_slice(cats: &[Category]) -> CatSet {
        CatSet(cats.iter().fold(0, |acc, c| acc | bit(*c)))
    }
    pub(crate) fn contains(self, c: Category) -> bool {
        self.0 & bit(c) != 0
    }
    pub(crate) fn insert(&mut self, c: Category) {
        self.0 |= bit(c);
    }
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub(crate) fn to_vec(self) -> Vec<Category> {
        ALL_CATEGORIES
            .iter()
            .copied()
            .filter(|c| self.contains(*c))
            .collect()
    }
    pub(crate) fn difference(self, other: CatSet) -> CatSet {
        CatSet(self.0 & !other.0)
    }
}

/// A `*`/`?` glob (`?` is one character), or an exact string when it has no wildcard.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Glob {
    Exact(String),
    Pattern(String),
}

impl Glob {
    pub(crate) fn new(s: &str) -> Glob {
        if s.contains(['*', '?']) {
            Glob::Pattern(s.to_string())
        } else {
            Glob::Exact(s.to_string())
        }
    }
    pub(crate) fn matches(&self, s: &str) -> bool {
        match self {
            Glob::Exact(e) => e == s,
            Glob::Pattern(p) => crate::glob::glob_match(p, s),
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Glob::Exact(e) | Glob::Pattern(e) => f.write_str(e),
        }
    }
}

#[cfg(test)]
mod glob_tests {
    use super::Glob;

    #[test]
    fn globs() {
        let g = |p: &str, s: &str| Glob::new(p).matches(s);
        assert!(g("gpt-4*", "gpt-4o-mini"));
        assert!(g("*", ""));
        assert!(g("a*b*c", "aXbYbZc"));
        assert!(!g("a*b*c", "aXbYbZ"));
        assert!(g("?é?", "aéb"));
        assert!(g("é*ü", "éaaü"));
        assert!(!g("gpt-4?", "gpt-4"));
        assert!(g("claude-*-4-5", "claude-sonnet-4-5"));
        assert!(!g("team", "team-a"));
    }
}

/// A numeric half-open range `gte <= x < lt`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub gte: Option<f64>,
    pub lt: Option<f64>,
}

impl Range {
    fn contains(self, x: f64) -> bool {
        self.gte.is_none_or(|g| x >= g) && self.lt.is_none_or(|l| x < l)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.gte, self.lt) {
            (Some(g), Some(l)) => write!(f, ">= {g} and < {l}"),
            (Some(g), None) => write!(f, ">= {g}"),
            (None, Some(l)) => write!(f, "< {l}"),
            (None, None) => f.write_str("any"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Team,
    Key,
}

/// A compiled condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cond {
    True,
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Sensitivity {
        cats: Option<CatSet>,
        kinds: Vec<Glob>,
        min_confidence: Option<f32>,
        privacy_critical: Option<bool>,
    },
    Difficulty(Range),
    Team(Vec<Glob>),
    Key(Vec<Glob>),
    App(Vec<Glob>),
    Tags(Vec<String>),
    Model(Vec<Glob>),
    Dialect(Vec<Dialect>),
    Tokens(Range),
    Stream(bool),
    /// UTC hours `[from, to)` (wrapping past midnight when from > to) and a weekday mask
    /// (bit 0 = Monday).
    Time {
        from: u8,
        to: u8,
        days: u8,
    },
    Volume(Scope, Range),
}

fn globs(gs: &[Glob]) -> String {
    let v: Vec<String> = gs.iter().map(|g| g.to_string()).collect();
    if v.len() == 1 {
        v[0].clone()
    } else {
        format!("[{}]", v.join(", "))
    }
}

fn cats_str(c: CatSet) -> String {
    let v: Vec<String> = c.to_vec().iter().map(|c| cat_name(*c)).collect();
    format!("[{}]", v.join(", "))
}

pub(crate) fn cat_name(c: Category) -> String {
    c.as_str().to_string()
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cond::True => f.write_str("always"),
            Cond::All(_) => f.write_str("all of"),
            Cond::Any(_) => f.write_str("any of"),
            Cond::Not(_) => f.write_str("not"),
            Cond::Sensitivity {
                cats,
                kinds,
                min_confidence,
                privacy_critical,
            } => {
                let mut parts = Vec::new();
                if let Some(p) = privacy_critical {
                    parts.push(format!("privacy_critical == {p}"));
                }
                if cats.is_some() || !kinds.is_empty() || min_confidence.is_some() {
                    let mut s = "a finding".to_string();
                    if let Some(c) = cats {
                        s.push_str(&format!(" in {}", cats_str(*c)));
                    }
                    if !kinds.is_empty() {
                        s.push_str(&format!(" of kind {}", globs(kinds)));
                    }
                    if let Some(m) = min_confidence {
                        s.push_str(&format!(" with confidence >= {m}"));
                    }
                    parts.push(s);
                }
                if parts.is_empty() {
                    parts.push("any finding".to_string());
                }
                write!(f, "sensitivity: {}", parts.join(" and "))
            }
            Cond::Difficulty(r) => write!(f, "difficulty {r}"),
            Cond::Team(g) => write!(f, "team is {}", globs(g)),
            Cond::Key(g) => write!(f, "key is {}", globs(g)),
            Cond::App(g) => write!(f, "app is {}", globs(g)),
            Cond::Tags(t) => write!(f, "tags include [{}]", t.join(", ")),
            Cond::Model(g) => write!(f, "requested model is {}", globs(g)),
            Cond::Dialect(d) => {
                let names: Vec<&str> = d.iter().map(|d| d.as_str()).collect();
                write!(f, "dialect is [{}]", names.join(", "))
            }
            Cond::Tokens(r) => write!(f, "estimated prompt tokens {r}"),
            Cond::Stream(s) => write!(f, "stream == {s}"),
            Cond::Time { from, to, days } => {
                write!(f, "UTC hour in [{from}, {to})")?;
                if *days != 0x7f {
                    let d: Vec<&str> = (0..7)
                        .filter(|i| days & (1 << i) != 0)
                        .map(|i| DAYS[i])
                        .collect();
                    write!(f, " on [{}]", d.join(", "))?;
                }
                Ok(())
            }
            Cond::Volume(s, r) => write!(
                f,
                "{} requests per minute {r}",
                if *s == Scope::Team { "team" } else { "key" }
            ),
        }
    }
}

/// A route: a target name resolved to its flattened, de-duplicated model chain.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Route {
    pub target: String,
    pub chain: Vec<ResolvedTarget>,
}

/// A compiled action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Action {
    pub route: Option<Route>,
    pub block: Option<String>,
    pub redact: CatSet,
    pub require_local: bool,
    pub require_commercial_license: bool,
    pub cache_ttl_s: Option<u64>,
    pub budget: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub shadow: Option<ShadowAction>,
}

/// A compiled `shadow:` action.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ShadowAction {
    pub route: Route,
    pub sample: f64,
    pub retain_text: bool,
}

/// Where a request is also sent, after its answer, to compare the two (shadow mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShadowPlan {
    /// The target name in the policy.
    pub target: String,
    /// The model the shadow call goes to.
    pub model: String,
    pub external: bool,
    /// Fraction of matching requests shadowed.
    pub sample: f64,
    /// Whether the pair may keep the (redacted) prompt and answers.
    pub retain_text: bool,
}

/// A compiled rule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    pub id: String,
    pub cond: Cond,
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Privacy {
    pub cats: CatSet,
    pub min_confidence: f32,
}

/// One model of a decision's chain with what the catalog says about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolvedTarget {
    pub model: String,
    pub external: bool,
    pub commercial_use: bool,
    pub license: String,
}

/// Name of the built-in target that routes to the model the client asked for.
pub const REQUESTED_TARGET: &str = "requested";
/// Placeholder model of the `requested` target in a compiled chain.
pub(crate) const REQUESTED_MODEL: &str = "$requested";

impl ResolvedTarget {
    pub(crate) fn requested_placeholder() -> Self {
        ResolvedTarget {
            model: REQUESTED_MODEL.to_string(),
            external: true,
            commercial_use: true,
            license: "unknown".to_string(),
        }
    }

    /// The `requested` placeholder made concrete from the request's facts. Unless the
    /// gateway says the requested model is local, it counts as external: fail closed.
    fn for_request(&self, facts: &Facts) -> Option<ResolvedTarget> {
        if self.model != REQUESTED_MODEL {
            return Some(self.clone());
        }
        let model = facts.model.as_deref().filter(|m| !m.is_empty())?;
        Some(ResolvedTarget {
            model: model.to_string(),
            external: !facts.requested_is_local,
            commercial_use: true,
            license: if facts.requested_is_local {
                "local"
            } else {
                "requested"
            }
            .to_string(),
        })
    }

    pub(crate) fn new(model: &str, info: TargetInfo) -> Self {
        ResolvedTarget {
            model: model.to_string(),
            external: info.external,
            commercial_use: info.commercial_use,
            license: info.license,
        }
    }
}

/// A model the engine took out of the chosen route, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemovedTarget {
    pub model: String,
    pub reason: String,
}

/// How one condition evaluated (explain only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CondTrace {
    /// The condition, in words (`difficulty >= 0.6`).
    pub condition: String,
    pub matched: bool,
    /// What the request had (`difficulty = 0.42`).
    pub actual: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<CondTrace>,
}

/// How one rule evaluated (explain only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleTrace {
    pub rule: String,
    pub matched: bool,
    pub conditions: Vec<CondTrace>,
}

/// The outcome of `decide`. Blocked when `blocked` is `Some`; then `chain` is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Id of the rule that matched, or `default`.
    pub rule: String,
    /// The target name the rule routes to (before constraints).
    pub target: Option<String>,
    /// The models to try, in order, after constraints. Empty when blocked.
    pub chain: Vec<ResolvedTarget>,
    /// Models removed from the route by a constraint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<RemovedTarget>,
    /// Categories to redact before dispatch (placeholders restored in the answer).
    pub redact: Vec<Category>,
    /// Block message, when the request must not be served.
    pub blocked: Option<String>,
    /// Whether the request holds privacy-critical findings.
    pub privacy_critical: bool,
    /// Categories of the privacy-critical findings.
    pub critical_categories: Vec<Category>,
    pub cache_ttl_s: Option<u64>,
    pub budget: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// The comparison call made after the answer, when the rule asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<ShadowPlan>,
    /// Why the rule's shadow was not planned (privacy, licence, same model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow_skipped: Option<String>,
    /// Every rule considered, when explain was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Vec<RuleTrace>>,
}

impl Decision {
    pub fn is_blocked(&self) -> bool {
        self.blocked.is_some()
    }
    /// Whether any model of the chain is external.
    pub fn leaves_organization(&self) -> bool {
        self.chain.iter().any(|t| t.external)
    }
}

/// The block reason of the fail-closed guarantee.
pub const PRIVACY_BLOCK_MESSAGE: &str =
    "privacy-critical content cannot leave the organization and no local target is available";

/// Per-request values derived once from the facts and the classification.
pub(crate) struct EvalCtx<'a> {
    facts: &'a Facts,
    findings: &'a [Finding],
    difficulty: f32,
    tokens: f64,
    critical: CatSet,
    hour_day: Option<(u8, u8)>,
}

/// `(hour, weekday)` with weekday 0 = Monday.
pub(crate) fn hour_and_weekday(unix_s: i64) -> (u8, u8) {
    let days = unix_s.div_euclid(86_400);
    let secs = unix_s.rem_euclid(86_400);
    // 1970-01-01 was a Thursday (weekday 3 when Monday is 0).
    ((secs / 3600) as u8, (days + 3).rem_euclid(7) as u8)
}

impl<'a> EvalCtx<'a> {
    pub(crate) fn new(facts: &'a Facts, cls: &'a Classification, privacy: Privacy) -> Self {
        let mut critical = CatSet::default();
        for f in &cls.findings {
            if privacy.cats.contains(f.category) && f.confidence >= privacy.min_confidence {
                critical.insert(f.category);
            }
        }
        EvalCtx {
            facts,
            findings: &cls.findings,
            difficulty: cls.difficulty,
            tokens: cls.est_prompt_tokens as f64,
            critical,
            hour_day: facts.now_unix_s.map(hour_and_weekday),
        }
    }
}

fn any_glob(gs: &[Glob], v: Option<&str>) -> bool {
    v.is_some_and(|v| gs.iter().any(|g| g.matches(v)))
}

fn opt_str(v: Option<&str>) -> String {
    v.map_or_else(|| "none".to_string(), |s| s.to_string())
}

impl Cond {
    /// Whether the condition reads the difficulty score anywhere.
    pub(crate) fn reads_difficulty(&self) -> bool {
        match self {
            Cond::Difficulty(_) => true,
            Cond::All(cs) | Cond::Any(cs) => cs.iter().any(Cond::reads_difficulty),
            Cond::Not(c) => c.reads_difficulty(),
            _ => false,
        }
    }

    /// Evaluates the condition; with a trace sink, records why (and evaluates every branch).
    pub(crate) fn eval(&self, ctx: &EvalCtx, trace: Option<&mut Vec<CondTrace>>) -> bool {
        let f = ctx.facts;
        match trace {
            None => match self {
                Cond::All(cs) => cs.iter().all(|c| c.eval(ctx, None)),
                Cond::Any(cs) => cs.iter().any(|c| c.eval(ctx, None)),
                Cond::Not(c) => !c.eval(ctx, None),
                leaf => leaf.leaf(ctx, f),
            },
            Some(sink) => {
                let mut children = Vec::new();
                let matched = match self {
                    Cond::All(cs) => cs
                        .iter()
                        .map(|c| c.eval(ctx, Some(&mut children)))
                        .collect::<Vec<bool>>()
                        .iter()
                        .all(|b| *b),
                    Cond::Any(cs) => cs
                        .iter()
                        .map(|c| c.eval(ctx, Some(&mut children)))
                        .collect::<Vec<bool>>()
                        .iter()
                        .any(|b| *b),
                    Cond::Not(c) => !c.eval(ctx, Some(&mut children)),
                    leaf => leaf.leaf(ctx, f),
                };
                sink.push(CondTrace {
                    condition: self.to_string(),
                    matched,
                    actual: self.actual(ctx),
                    children,
                });
                matched
            }
        }
    }

    fn leaf(&self, ctx: &EvalCtx, f: &Facts) -> bool {
        match self {
            Cond::True => true,
            Cond::All(_) | Cond::Any(_) | Cond::Not(_) => false,
            Cond::Sensitivity {
                cats,
                kinds,
                min_confidence,
                privacy_critical,
            } => {
                if let Some(p) = privacy_critical {
                    if ctx.critical.is_empty() == *p {
                        return false;
                    }
                }
                if privacy_critical.is_some()
                    && cats.is_none()
                    && kinds.is_empty()
                    && min_confidence.is_none()
                {
                    return true;
                }
                ctx.findings.iter().any(|x| {
                    cats.is_none_or(|c| c.contains(x.category))
                        && min_confidence.is_none_or(|m| x.confidence >= m)
                        && (kinds.is_empty() || kinds.iter().any(|k| k.matches(&x.kind)))
                })
            }
            Cond::Difficulty(r) => r.contains(f64::from(ctx.difficulty)),
            Cond::Team(g) => any_glob(g, f.team.as_deref()),
            Cond::Key(g) => any_glob(g, f.key.as_deref()),
            Cond::App(g) => any_glob(g, f.app.as_deref()),
            Cond::Tags(t) => t.iter().all(|t| f.tags.iter().any(|x| x == t)),
            Cond::Model(g) => any_glob(g, f.model.as_deref()),
            Cond::Dialect(d) => f.dialect.is_some_and(|x| d.contains(&x)),
            Cond::Tokens(r) => r.contains(ctx.tokens),
            Cond::Stream(s) => f.stream == *s,
            Cond::Time { from, to, days } => ctx.hour_day.is_some_and(|(h, d)| {
                let in_hours = if from <= to {
                    h >= *from && h < *to
                } else {
                    h >= *from || h < *to
                };
                in_hours && days & (1 << d) != 0
            }),
            Cond::Volume(s, r) => {
                let v = if *s == Scope::Team {
                    f.team_rpm
                } else {
                    f.key_rpm
                };
                v.is_some_and(|v| r.contains(f64::from(v)))
            }
        }
    }

    /// What the request had, for the trace. Never prints finding text.
    fn actual(&self, ctx: &EvalCtx) -> String {
        let f = ctx.facts;
        match self {
            Cond::True | Cond::All(_) | Cond::Any(_) | Cond::Not(_) => String::new(),
            Cond::Sensitivity { .. } => {
                let mut kinds: Vec<String> = ctx
                    .findings
                    .iter()
                    .map(|x| format!("{}:{}@{:.2}", cat_name(x.category), x.kind, x.confidence))
                    .collect();
                kinds.dedup();
                format!(
                    "privacy_critical = {}, findings = [{}]",
                    !ctx.critical.is_empty(),
                    kinds.join(", ")
                )
            }
            Cond::Difficulty(_) => format!("difficulty = {:.3}", ctx.difficulty),
            Cond::Team(_) => format!("team = {}", opt_str(f.team.as_deref())),
            Cond::Key(_) => format!("key = {}", opt_str(f.key.as_deref())),
            Cond::App(_) => format!("app = {}", opt_str(f.app.as_deref())),
            Cond::Tags(_) => format!("tags = [{}]", f.tags.join(", ")),
            Cond::Model(_) => format!("model = {}", opt_str(f.model.as_deref())),
            Cond::Dialect(_) => format!("dialect = {}", opt_str(f.dialect.map(Dialect::as_str))),
            Cond::Tokens(_) => format!("estimated prompt tokens = {}", ctx.tokens),
            Cond::Stream(_) => format!("stream = {}", f.stream),
            Cond::Time { .. } => match ctx.hour_day {
                Some((h, d)) => format!("UTC hour = {h}, day = {}", DAYS[usize::from(d)]),
                None => "no time in facts".to_string(),
            },
            Cond::Volume(s, _) => {
                let v = if *s == Scope::Team {
                    f.team_rpm
                } else {
                    f.key_rpm
                };
                v.map_or_else(|| "rpm unknown".to_string(), |v| format!("rpm = {v}"))
            }
        }
    }
}

/// Applies an action's constraints and the fail-closed privacy guarantee.
pub(crate) fn build_decision(
    rule: &Rule,
    ctx: &EvalCtx,
    trace: Option<Vec<RuleTrace>>,
) -> Decision {
    let a = &rule.action;
    let mut d = Decision {
        rule: rule.id.clone(),
        target: a.route.as_ref().map(|r| r.target.clone()),
        chain: Vec::new(),
        removed: Vec::new(),
        redact: Vec::new(),
        blocked: None,
        privacy_critical: !ctx.critical.is_empty(),
        critical_categories: ctx.critical.to_vec(),
        cache_ttl_s: a.cache_ttl_s,
        budget: a.budget.clone(),
        headers: a.headers.clone(),
        shadow: None,
        shadow_skipped: None,
        trace,
    };
    if let Some(msg) = &a.block {
        d.blocked = Some(msg.clone());
        return d;
    }
    let Some(route) = &a.route else {
        d.blocked = Some("no route".to_string());
        return d;
    };
    let uncovered = ctx.critical.difference(a.redact);
    let mut kept = Vec::with_capacity(route.chain.len());
    let mut privacy_removed = false;
    let mut license_removed = false;
    for t in &route.chain {
        let Some(t) = t.for_request(ctx.facts) else {
            d.removed.push(RemovedTarget {
                model: REQUESTED_TARGET.to_string(),
                reason: "the request names no model".to_string(),
            });
            continue;
        };
        let t = &t;
        let reason = if t.external && !uncovered.is_empty() {
            privacy_removed = true;
            Some(format!(
                "external target: privacy-critical findings {} are not redacted by rule `{}`",
                cats_str(uncovered),
                rule.id
            ))
        } else if t.external && a.require_local {
            privacy_removed = true;
            Some(format!(
                "external target: rule `{}` requires a local target",
                rule.id
            ))
        } else if a.require_commercial_license && !t.commercial_use {
            license_removed = true;
            Some(format!(
                "licence `{}` does not allow commercial use (rule `{}` requires it)",
                t.license, rule.id
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => d.removed.push(RemovedTarget {
                model: t.model.clone(),
                reason,
            }),
            None => kept.push(t.clone()),
        }
    }
    if kept.is_empty() {
        d.blocked = Some(if privacy_removed && !uncovered.is_empty() {
            PRIVACY_BLOCK_MESSAGE.to_string()
        } else if privacy_removed {
            format!(
                "rule `{}` requires a local target and route `{}` has none",
                rule.id, route.target
            )
        } else if license_removed {
            format!(
                "no target of route `{}` has a licence that allows commercial use",
                route.target
            )
        } else {
            format!("route `{}` has no target", route.target)
        });
        return d;
    }
    d.chain = kept;
    d.redact = a.redact.to_vec();
    if let Some(s) = &a.shadow {
        match plan_shadow(rule, s, ctx, &d) {
            Ok(plan) => d.shadow = Some(plan),
            Err(why) => d.shadow_skipped = Some(why),
        }
    }
    d
}

/// The shadow target a served request may also go to. Privacy-critical content is
/// compared only when both sides stay inside (redaction does not make it eligible: the
/// comparison is optional, so it fails closed), and the rule's own constraints apply.
fn plan_shadow(
    rule: &Rule,
    s: &ShadowAction,
    ctx: &EvalCtx,
    d: &Decision,
) -> Result<ShadowPlan, String> {
    let a = &rule.action;
    let critical = !ctx.critical.is_empty();
    if critical && d.leaves_organization() {
        return Err("privacy-critical request served externally: no comparison".to_string());
    }
    let mut why = format!("target `{}` has no eligible model", s.route.target);
    for t in &s.route.chain {
        let Some(t) = t.for_request(ctx.facts) else {
            continue;
        };
        if t.external && critical {
            why = format!(
                "`{}` is external and the request is privacy-critical",
                t.model
            );
        } else if t.external && a.require_local {
            why = format!(
                "`{}` is external and rule `{}` requires local targets",
                t.model, rule.id
            );
        } else if a.require_commercial_license && !t.commercial_use {
            why = format!(
                "licence `{}` of `{}` forbids commercial use",
                t.license, t.model
            );
        } else if d.chain.first().is_some_and(|p| p.model == t.model) {
            why = format!("`{}` is already the primary model", t.model);
        } else {
            return Ok(ShadowPlan {
                target: s.route.target.clone(),
                model: t.model,
                external: t.external,
                sample: s.sample,
                retain_text: s.retain_text,
            });
        }
    }
    Err(why)
}
