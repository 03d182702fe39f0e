//! Policy tests (`*.test.yaml`): requests with the decision they must get.

use super::ast::{ExpectDef, RequestDef, TestCaseDef, TimeValue};
use super::catalog::TargetCatalog;
use super::compile::{
    check_version, join_key, sorted, CompileCtx, CompiledPolicy, Loc, PolicySource,
};
use super::engine::{cat_name, Decision, Facts, ALL_CATEGORIES};
use super::error::{did_you_mean, ErrorCode, PolicyError};
use super::redact::redact;
use crate::classify::{Classifier, ClassifyInput, Segment, SegmentRole};
use serde::Serialize;
use serde_yaml_ng::Value;
use std::fmt;

/// One parsed test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub file: String,
    pub line: usize,
    messages: Vec<(SegmentRole, String)>,
    facts: Facts,
    difficulty: Option<f32>,
    expect: ExpectDef,
}

/// The outcome of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub file: String,
    pub line: usize,
    pub passed: bool,
    /// One line per unmet expectation.
    pub failures: Vec<String>,
    /// The decision, with its explain trace.
    pub decision: Decision,
}

/// The outcome of a test run. `Display` prints one line per case, the failures with the
/// rules considered, and a closing `N passed, N failed` line.
#[derive(Debug, Clone, Serialize)]
pub struct TestReport {
    pub passed: usize,
    pub failed: usize,
    pub cases: Vec<CaseResult>,
}

impl TestReport {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for TestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.cases {
            let status = if c.passed { "ok  " } else { "FAIL" };
            writeln!(f, "{status} {}:{} {}", c.file, c.line, c.name)?;
            for msg in &c.failures {
                writeln!(f, "       {msg}")?;
            }
            if !c.passed {
                for r in c.decision.trace.iter().flatten() {
                    let why: Vec<String> = r
                        .conditions
                        .iter()
                        .map(|t| {
                            format!(
                                "{} [{}] ({})",
                                t.condition,
                                if t.matched { "yes" } else { "no" },
                                t.actual
                            )
                        })
                        .collect();
                    writeln!(
                        f,
                        "       rule `{}`: {} {}",
                        r.rule,
                        if r.matched { "matched" } else { "no match" },
                        why.join("; ")
                    )?;
                }
            }
        }
        writeln!(f, "{} passed, {} failed", self.passed, self.failed)
    }
}

fn role(s: &str) -> Option<SegmentRole> {
    Some(match s {
        "system" | "developer" => SegmentRole::System,
        "user" => SegmentRole::User,
        "assistant" => SegmentRole::Assistant,
        "tool" => SegmentRole::Tool,
        _ => return None,
    })
}

/// Parses `YYYY-MM-DDTHH:MM[:SS]Z` to unix seconds.
pub(crate) fn parse_utc(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || !(2..=3).contains(&t.len()) {
        return None;
    }
    let sec = t.get(2).copied().unwrap_or(0);
    if !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
        || !(0..24).contains(&t[0])
        || !(0..60).contains(&t[1])
        || !(0..61).contains(&sec)
    {
        return None;
    }
    // Range-checked above, so the month and day fit a u32.
    let day = crate::calendar::days_from_civil(d[0], d[1] as u32, d[2] as u32);
    Some(day * 86_400 + t[0] * 3600 + t[1] * 60 + sec)
}

/// Parses `*.test.yaml` files. Reports every error found.
pub fn parse_tests(sources: &[PolicySource]) -> Result<Vec<TestCase>, Vec<PolicyError>> {
    let mut cx = CompileCtx {
        names: Vec::new(),
        spans: Vec::new(),
        errors: Vec::new(),
        catalog: None,
    };
    let mut out = Vec::new();
    for src in sources {
        let file = cx.add_file(src);
        let Some(value) = cx.parse_value(file, &src.text) else {
            continue;
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
                "a test file is a mapping with `version` and `cases`".to_string(),
            );
            continue;
        };
        check_version(&mut cx, file, &m);
        for (k, v) in m {
            let key = k.as_str().unwrap_or("?").to_string();
            let loc = Loc {
                file,
                path: key.clone(),
            };
            match key.as_str() {
                "version" => {}
                "cases" => {
                    let Value::Sequence(cases) = v else {
                        cx.err(
                            &loc,
                            false,
                            ErrorCode::Type,
                            "`cases` is a list".to_string(),
                        );
                        continue;
                    };
                    for (i, c) in cases.into_iter().enumerate() {
                        let cloc = Loc {
                            file,
                            path: format!("cases[{i}]"),
                        };
                        if let Some(def) = cx.typed::<TestCaseDef>(&cloc, c) {
                            if let Some(tc) = lower_case(&mut cx, def, &cloc) {
                                out.push(tc);
                            }
                        }
                    }
                }
                other => {
                    let h = did_you_mean(other, ["version", "cases"]);
                    cx.err(
                        &loc,
                        true,
                        ErrorCode::UnknownKey,
                        format!("unknown top-level key `{other}`"),
                    )
                    .hint = h;
                }
            }
        }
    }
    if cx.errors.is_empty() {
        Ok(out)
    } else {
        Err(sorted(cx.errors, &cx.names))
    }
}

fn lower_case(cx: &mut CompileCtx, def: TestCaseDef, loc: &Loc) -> Option<TestCase> {
    let req_loc = Loc {
        file: loc.file,
        path: join_key(&loc.path, "request"),
    };
    let r: RequestDef = def.request;
    let mut messages = Vec::new();
    let mut ok = true;
    match (&r.messages, &r.prompt) {
        (Some(ms), None) => {
            for (i, m) in ms.iter().enumerate() {
                match role(&m.role) {
                    Some(role) => messages.push((role, m.content.clone())),
                    None => {
                        ok = false;
                        let l = Loc {
                            file: loc.file,
                            path: format!("{}.messages[{i}].role", req_loc.path),
                        };
                        cx.err(
                            &l,
                            false,
                            ErrorCode::Invalid,
                            format!("unknown role `{}`", m.role),
                        )
                        .hint = Some(
                            did_you_mean(&m.role, ["system", "user", "assistant", "tool"])
                                .unwrap_or_else(|| {
                                    "roles: system, user, assistant, tool".to_string()
                                }),
                        );
                    }
                }
            }
        }
        (None, Some(p)) => messages.push((SegmentRole::User, p.clone())),
        _ => {
            ok = false;
            cx.err(
                &req_loc,
                false,
                ErrorCode::Invalid,
                "a test request needs exactly one of `messages` or `prompt`".to_string(),
            );
        }
    }
    let now = match &r.time {
        None => None,
        Some(TimeValue::Unix(t)) => Some(*t),
        Some(TimeValue::Text(s)) => {
            let t = parse_utc(s);
            if t.is_none() {
                ok = false;
                let l = Loc {
                    file: loc.file,
                    path: join_key(&req_loc.path, "time"),
                };
                cx.err(
                    &l,
                    false,
                    ErrorCode::Invalid,
                    format!("cannot read time `{s}`"),
                )
                .hint = Some("use `2025-01-31T14:00:00Z` (UTC) or unix seconds".to_string());
            }
            t
        }
    };
    if let Some(list) = &def.expect.redactions {
        for (i, item) in list.iter().enumerate() {
            let is_cat = ALL_CATEGORIES.iter().any(|c| cat_name(*c) == *item);
            let is_placeholder = item.starts_with('<') && item.ends_with('>');
            if !is_cat && !is_placeholder {
                ok = false;
                let l = Loc {
                    file: loc.file,
                    path: format!("{}.expect.redactions[{i}]", loc.path),
                };
                cx.err(&l, false, ErrorCode::Invalid, format!("`{item}` is neither a category nor a placeholder")).hint =
                    Some("use categories (pii, phi, financial, secret, confidential) or placeholders like `<EMAIL_1>`".to_string());
            }
        }
    }
    if !ok {
        return None;
    }
    let pos = cx.value_pos(loc);
    Some(TestCase {
        name: def.name,
        file: cx.names[loc.file].clone(),
        line: pos.line,
        messages,
        facts: Facts {
            team: r.team,
            key: r.key,
            app: r.app,
            tags: r.tags.unwrap_or_default(),
            // Set by `run_tests` from the catalog, as the gateway does per request.
            requested_is_local: false,
            model: r.model,
            dialect: r.dialect,
            stream: r.stream.unwrap_or(false),
            now_unix_s: now,
            team_rpm: r.team_rpm,
            key_rpm: r.key_rpm,
        },
        difficulty: r.difficulty,
        expect: def.expect,
    })
}

/// Runs test cases against a policy and the classifier it asks for. Whether the model a
/// case requests is local comes from `catalog`, the same question the gateway asks its
/// providers. Pure.
pub fn run_tests(
    policy: &CompiledPolicy,
    classifier: &Classifier,
    cases: &[TestCase],
    catalog: &dyn TargetCatalog,
) -> TestReport {
    let mut results = Vec::with_capacity(cases.len());
    for case in cases {
        let segments: Vec<Segment> = case
            .messages
            .iter()
            .map(|(role, text)| Segment { role: *role, text })
            .collect();
        let mut cls = classifier.classify(&ClassifyInput {
            segments: &segments,
            embedding: None,
        });
        if let Some(d) = case.difficulty {
            cls.difficulty = d;
        }
        let mut facts = case.facts.clone();
        facts.requested_is_local = facts
            .model
            .as_deref()
            .and_then(|m| catalog.lookup(m))
            .is_some_and(|i| !i.external);
        let decision = policy.decide(&facts, &cls, true);
        let e = &case.expect;
        let mut failures = Vec::new();
        if let Some(rule) = &e.rule {
            if *rule != decision.rule {
                failures.push(format!("rule: expected `{rule}`, got `{}`", decision.rule));
            }
        }
        if let Some(b) = e.blocked {
            if b != decision.is_blocked() {
                failures.push(format!(
                    "blocked: expected {b}, got {}{}",
                    decision.is_blocked(),
                    decision
                        .blocked
                        .as_deref()
                        .map(|m| format!(" ({m})"))
                        .unwrap_or_default()
                ));
            }
        }
        if let Some(t) = &e.target {
            if decision.is_blocked() || decision.target.as_deref() != Some(t.as_str()) {
                failures.push(format!(
                    "target: expected `{t}`, got {}",
                    if decision.is_blocked() {
                        "a block".to_string()
                    } else {
                        format!("`{}`", decision.target.as_deref().unwrap_or("none"))
                    }
                ));
            }
        }
        if let Some(m) = &e.model {
            let got = decision.chain.first().map(|t| t.model.as_str());
            if got != Some(m.as_str()) {
                failures.push(format!(
                    "model: expected `{m}` first, got `{}`",
                    got.unwrap_or("none")
                ));
            }
        }
        if let Some(x) = e.external {
            if x != decision.leaves_organization() {
                failures.push(format!(
                    "external: expected {x}, got {}",
                    decision.leaves_organization()
                ));
            }
        }
        if let Some(expected) = &e.shadow {
            let got = decision
                .shadow
                .as_ref()
                .map_or("none", |s| s.model.as_str());
            if got != expected {
                failures.push(format!("shadow: expected `{expected}`, got `{got}`"));
            }
        }
        if let Some(p) = e.privacy_critical {
            if p != decision.privacy_critical {
                failures.push(format!(
                    "privacy_critical: expected {p}, got {}",
                    decision.privacy_critical
                ));
            }
        }
        if let Some(expected) = &e.redactions {
            let texts: Vec<&str> = case.messages.iter().map(|(_, t)| t.as_str()).collect();
            let red = if decision.is_blocked() {
                None
            } else {
                Some(redact(&texts, &cls.findings, &decision.redact))
            };
            let mut got_cats: Vec<String> = red
                .iter()
                .flat_map(|r| r.map.categories())
                .map(cat_name)
                .collect();
            got_cats.sort();
            let mut got_ph: Vec<String> = red
                .iter()
                .flat_map(|r| r.map.placeholders().map(str::to_string).collect::<Vec<_>>())
                .collect();
            got_ph.sort();
            let (mut want_ph, mut want_cats): (Vec<String>, Vec<String>) =
                expected.iter().cloned().partition(|s| s.starts_with('<'));
            want_ph.sort();
            want_cats.sort();
            want_cats.dedup();
            let empty_ok = !expected.is_empty() || (got_cats.is_empty() && got_ph.is_empty());
            if !empty_ok
                || (!want_cats.is_empty() && want_cats != got_cats)
                || (!want_ph.is_empty() && want_ph != got_ph)
            {
                failures.push(format!(
                    "redactions: expected [{}], got categories [{}] placeholders [{}]",
                    expected.join(", "),
                    got_cats.join(", "),
                    got_ph.join(", ")
                ));
            }
        }
        results.push(CaseResult {
            name: case.name.clone(),
            file: case.file.clone(),
            line: case.line,
            passed: failures.is_empty(),
            failures,
            decision,
        });
    }
    let passed = results.iter().filter(|r| r.passed).count();
    TestReport {
        passed,
        failed: results.len() - passed,
        cases: results,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_parse() {
        assert_eq!(parse_utc("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_utc("2025-01-31T14:30Z"), Some(1_738_333_800));
        assert_eq!(parse_utc("2025-13-01T00:00Z"), None);
        assert_eq!(parse_utc("yesterday"), None);
    }
}
