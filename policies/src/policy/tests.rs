//! Specs of the policy language: errors, guarantees, explain, shipped examples.

use super::*;
use crate::classify::{Category, Classification, Finding};
use proptest::prelude::*;
use std::path::PathBuf;

fn finding(category: Category, kind: &str, confidence: f32) -> Finding {
    Finding {
        category,
        detector: crate::classify::Detector::Rule,
        kind: kind.to_string().into(),
        start: 0,
        end: 1,
        segment: 0,
        seg_start: 0,
        seg_end: 1,
        confidence,
    }
}

fn cls(findings: Vec<Finding>, difficulty: f32, tokens: usize) -> Classification {
    Classification {
        categories: findings.iter().map(|f| f.category).collect(),
        sensitive: !findings.is_empty(),
        findings,
        difficulty,
        difficulty_model: "test",
        prompt_chars: tokens * 4,
        est_prompt_tokens: tokens,
    }
}

fn catalog() -> StaticCatalog {
    StaticCatalog::builtin().with(
        "local/research-only",
        TargetInfo {
            external: false,
            commercial_use: false,
            license: "cc-by-nc-4.0".to_string(),
        },
    )
}

const TARGETS: &str = "version: 1
targets:
  local: { model: local/smollm2-135m-instruct }
  gpt: { model: gpt-4o }
  claude: { model: claude-sonnet-4-5 }
  frontier: { chain: [claude, gpt] }
  frontier-then-local: { chain: [frontier, local] }
  nc: { model: local/research-only }
";

fn policy(rules: &str) -> CompiledPolicy {
    let text = format!("{TARGETS}{rules}");
    match compile_str("p.yaml", &text, &catalog()) {
        Ok(p) => p,
        Err(e) => panic!("{}", format_errors(&e)),
    }
}

fn errors(text: &str) -> Vec<PolicyError> {
    match compile_str("p.yaml", text, &catalog()) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e,
    }
}

fn models(d: &Decision) -> Vec<&str> {
    d.chain.iter().map(|t| t.model.as_str()).collect()
}

// ---- errors ----

#[test]
fn unknown_key_has_position_and_did_you_mean() {
    let e = errors("version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\nrules:\n  - id: a\n    when: { team: x }\n    rout: local\ndefault: { route: local }\n");
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, ErrorCode::UnknownKey);
    assert_eq!((e[0].line, e[0].column), (7, 5));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `route`?"));
    assert_eq!(
        e[0].to_string(),
        "p.yaml:7:5: error[unknown-key]: unknown key `rout` in `rules[0]`\n  hint: did you mean `route`?"
    );
}

#[test]
fn unknown_condition_and_top_level_keys_suggest() {
    let e = errors(&format!(
        "{TARGETS}rulez: []\nrules:\n  - id: a\n    when: {{ teams: [x] }}\n    route: local\ndefault: {{ route: local }}\n"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e.iter().any(
        |e| e.message.contains("`rulez`") && e.hint.as_deref() == Some("did you mean `rules`?")
    ));
    assert!(e.iter().any(
        |e| e.message.contains("`teams`") && e.hint.as_deref() == Some("did you mean `team`?")
    ));
}

#[test]
fn wrong_type_points_at_value() {
    let e = errors(&format!(
        "{TARGETS}rules:\n  - id: a\n    when: {{ difficulty: {{ gte: high }} }}\n    route: local\ndefault: {{ route: local }}\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, ErrorCode::Type);
    assert_eq!((e[0].line, e[0].column), (11, 32));
    assert!(
        e[0].message.contains("rules[0].when.difficulty.gte"),
        "{}",
        e[0]
    );
}

#[test]
fn unknown_category_value_suggests() {
    let e = errors(&format!("{TARGETS}rules:\n  - id: a\n    route: gpt\n    redact: [pi]\ndefault: {{ route: local }}\n"));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `pii`?"));
    assert_eq!((e[0].line, e[0].column), (12, 14));
}

#[test]
fn unknown_target_and_model_and_cycles_and_duplicates_all_reported() {
    let text = "version: 1
targets:
  local: { model: local/smollm2-135m-instruct }
  gpt: { model: gpt-4 }
  a: { chain: [b, local] }
  b: { chain: [a] }
  c: { chain: [lokal] }
rules:
  - id: r1
    when: { team: x }
    route: frontier
  - id: r1
    when: { team: y }
    route: local
default: { route: locl }
";
    let e = errors(text);
    let codes: Vec<ErrorCode> = e.iter().map(|e| e.code).collect();
    assert!(codes.contains(&ErrorCode::UnknownModel), "{e:?}");
    assert!(codes.contains(&ErrorCode::Cycle), "{e:?}");
    assert!(codes.contains(&ErrorCode::Duplicate), "{e:?}");
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == ErrorCode::UnknownTarget)
            .count(),
        3,
        "{}",
        format_errors(&e)
    );
    let model = e
        .iter()
        .find(|e| e.code == ErrorCode::UnknownModel)
        .map(|e| (e.line, e.hint.clone()));
    assert_eq!(model, Some((4, Some("did you mean `gpt-4o`?".to_string()))));
    let cycle = e.iter().filter(|e| e.code == ErrorCode::Cycle).count();
    assert_eq!(cycle, 1, "one cycle, reported once");
    let lokal = e
        .iter()
        .find(|e| e.message.contains("`lokal`"))
        .map(|e| (e.line, e.column, e.hint.clone()));
    assert_eq!(
        lokal,
        Some((7, 16, Some("did you mean `local`?".to_string())))
    );
    let dup = e
        .iter()
        .find(|e| e.code == ErrorCode::Duplicate)
        .map(|e| e.line);
    assert_eq!(dup, Some(12));
}

#[test]
fn bad_classifier_regex_points_at_the_detector() {
    let e = errors(&format!(
        "{TARGETS}classifier:\n  detectors:\n    - name: ok\n      category: pii\n      regex: 'EMP-\\d+'\n    - name: broken\n      category: pii\n      regex: '(unclosed'\ndefault: {{ route: local }}\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, ErrorCode::BadRegex);
    assert_eq!((e[0].line, e[0].column), (16, 14), "{}", e[0]);
    assert!(e[0].message.contains("broken"), "{}", e[0]);
    let e = errors(&format!(
        "{TARGETS}classifier:\n  detectors:\n    - name: x\n      category: pii\n      regex: a\n      validatr: luhn\ndefault: {{ route: local }}\n"
    ));
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `validator`?"));
}

#[test]
fn compiled_policy_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicy>();
    assert_send_sync::<Decision>();
}

#[test]
fn rule_after_unconditional_rule_is_unreachable() {
    let e = errors(&format!(
        "{TARGETS}rules:\n  - id: all\n    route: local\n  - id: never\n    when: {{ team: x }}\n    route: gpt\ndefault: {{ route: local }}\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].code, ErrorCode::Unreachable);
    assert_eq!(e[0].line, 12);
    assert!(
        e[0].hint
            .as_deref()
            .is_some_and(|h| h.contains("rule `all` at p.yaml:10:5")),
        "{}",
        e[0]
    );
}

#[test]
fn syntax_version_and_missing_default() {
    let e = errors("version: 1\nrules: [\n");
    assert_eq!(e[0].code, ErrorCode::Syntax);
    let e = errors("version: 2\ntargets: {}\ndefault: { block: no }\n");
    assert_eq!(
        (e[0].code, e[0].line, e[0].column),
        (ErrorCode::Version, 1, 10)
    );
    let e = errors("version: 1\ntargets: { local: { model: local/smollm2-135m-instruct } }\n");
    assert_eq!(e[0].code, ErrorCode::Missing);
    assert!(e[0].hint.as_deref().is_some_and(|h| h.contains("default")));
}

#[test]
fn invalid_values_are_reported() {
    let e = errors(&format!(
        "{TARGETS}rules:
  - id: a
    when:
      time: {{ from: 25 }}
      dialect: opena
      difficulty: {{ gte: 0.9, lt: 0.1 }}
    route: gpt
    block: nope
    headers: {{ 'bad header': x }}
default: {{ route: local }}
"
    ));
    let msgs = format_errors(&e);
    assert_eq!(e.len(), 5, "{msgs}");
    assert!(msgs.contains("did you mean `openai`?"), "{msgs}");
    assert!(msgs.contains("exclude each other"), "{msgs}");
}

#[test]
fn later_files_may_only_add() {
    let a = PolicySource::new(
        "00-base.yaml",
        format!("{TARGETS}default: {{ route: local }}\n"),
    );
    let b = PolicySource::new(
        "10-more.yaml",
        "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\n  extra: { model: gpt-4o }\nrules:\n  - id: x\n    when: { team: a }\n    route: extra\ndefault: { route: local }\n",
    );
    let e = compile(&[a.clone(), b], &catalog())
        .err()
        .unwrap_or_default();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e
        .iter()
        .all(|e| e.code == ErrorCode::Duplicate && e.file == "10-more.yaml"));
    let c = PolicySource::new(
        "10-more.yaml",
        "version: 1\ntargets:\n  extra: { model: gpt-4o }\nrules:\n  - id: x\n    when: { team: a }\n    route: extra\n",
    );
    let p = compile(&[a, c], &catalog());
    assert!(p.is_ok_and(|p| p.rule_ids() == ["x"]));
}

// ---- guarantees ----

#[test]
fn privacy_critical_request_never_leaves_without_redaction() {
    let p = policy("rules:\n  - id: send\n    when: { difficulty: { gte: 0.5 } }\n    route: frontier-then-local\ndefault: { route: frontier }\n");
    let facts = Facts::default();
    let c = cls(vec![finding(Category::Phi, "diagnosis", 0.9)], 0.9, 10);
    let d = p.decide(&facts, &c, false);
    assert_eq!(d.rule, "send");
    assert!(d.privacy_critical);
    assert_eq!(models(&d), ["local/smollm2-135m-instruct"]);
    assert_eq!(d.removed.len(), 2);
    // No local target left: a block with the guarantee's message, never a leak.
    let d = p.decide(&facts, &cls(c.findings.clone(), 0.1, 10), false);
    assert_eq!(d.rule, "default");
    assert!(d.chain.is_empty());
    assert_eq!(d.blocked.as_deref(), Some(PRIVACY_BLOCK_MESSAGE));
}

#[test]
fn redaction_covering_every_critical_finding_allows_external() {
    let p = policy("rules:\n  - id: redact-pii\n    when: { sensitivity: { categories: [pii] } }\n    route: frontier\n    redact: [pii]\ndefault: { route: local }\n");
    let d = p.decide(
        &Facts::default(),
        &cls(vec![finding(Category::Pii, "email", 0.99)], 0.5, 10),
        false,
    );
    assert_eq!(models(&d), ["claude-sonnet-4-5", "gpt-4o"]);
    assert_eq!(d.redact, [Category::Pii]);
    // A secret besides the email is not covered: fail closed.
    let both = vec![
        finding(Category::Pii, "email", 0.99),
        finding(Category::Secret, "api_key", 0.99),
    ];
    let d = p.decide(&Facts::default(), &cls(both, 0.5, 10), false);
    assert_eq!(d.blocked.as_deref(), Some(PRIVACY_BLOCK_MESSAGE));
}

#[test]
fn privacy_section_sets_what_is_critical() {
    let p = policy(
        "privacy: { categories: [phi], min_confidence: 0.8 }\nrules: []\ndefault: { route: gpt }\n",
    );
    let d = p.decide(
        &Facts::default(),
        &cls(vec![finding(Category::Pii, "email", 0.99)], 0.5, 1),
        false,
    );
    assert!(!d.privacy_critical);
    assert_eq!(models(&d), ["gpt-4o"]);
    let d = p.decide(
        &Facts::default(),
        &cls(vec![finding(Category::Phi, "diagnosis", 0.5)], 0.5, 1),
        false,
    );
    assert!(!d.privacy_critical, "below min_confidence");
    let d = p.decide(
        &Facts::default(),
        &cls(vec![finding(Category::Phi, "diagnosis", 0.8)], 0.5, 1),
        false,
    );
    assert!(d.is_blocked());
}

#[test]
fn require_local_and_commercial_licence_constrain_the_route() {
    let p = policy("rules:\n  - id: legal\n    when: { team: legal }\n    route: frontier-then-local\n    require_local: true\n  - id: biz\n    when: { team: sales }\n    route: nc\n    require_commercial_license: true\n  - id: only-ext\n    when: { team: ops }\n    route: frontier\n    require_local: true\ndefault: { route: local }\n");
    let c = cls(vec![], 0.5, 1);
    let facts = |t: &str| Facts {
        team: Some(t.to_string()),
        ..Facts::default()
    };
    let d = p.decide(&facts("legal"), &c, false);
    assert_eq!(models(&d), ["local/smollm2-135m-instruct"]);
    let d = p.decide(&facts("sales"), &c, false);
    assert!(
        d.blocked
            .as_deref()
            .is_some_and(|m| m.contains("commercial")),
        "{d:?}"
    );
    let d = p.decide(&facts("ops"), &c, false);
    assert!(
        d.blocked
            .as_deref()
            .is_some_and(|m| m.contains("requires a local target")),
        "{d:?}"
    );
}

#[test]
fn explain_traces_every_rule_and_condition_without_changing_the_decision() {
    let p = policy("rules:\n  - id: hard\n    when: { all: [ { difficulty: { gte: 0.6 } }, { stream: true } ] }\n    route: frontier\n  - id: batch\n    when: { tags: [batch], model: 'gpt-4*' }\n    route: local\ndefault: { route: gpt }\n    \n");
    let facts = Facts {
        tags: vec!["batch".into()],
        model: Some("gpt-4o-mini".into()),
        ..Facts::default()
    };
    let c = cls(vec![], 0.7, 5);
    let plain = p.decide(&facts, &c, false);
    let mut explained = p.decide(&facts, &c, true);
    let trace = explained.trace.take().unwrap_or_default();
    assert_eq!(plain, explained);
    assert_eq!(plain.rule, "batch");
    assert_eq!(trace.len(), 2);
    assert!(!trace[0].matched);
    let all = &trace[0].conditions[0];
    assert_eq!(all.children.len(), 2);
    assert_eq!(all.children[0].condition, "difficulty >= 0.6");
    assert!(all.children[0].matched);
    assert_eq!(all.children[1].actual, "stream = false");
    assert!(trace[1].matched);
    assert_eq!(
        trace[1].conditions[0].children[1].condition,
        "requested model is gpt-4*"
    );
    let json = serde_json::to_string(&p.decide(&facts, &c, true)).unwrap_or_default();
    assert!(json.contains("\"trace\""));
}

#[test]
fn conditions_time_volume_tokens_dialect() {
    let p = policy(
        "rules:
  - id: night
    when: { time: { from: 22, to: 6, days: [sat, sun] } }
    route: local
  - id: busy-key
    when: { volume: { scope: key, gte: 100 } }
    route: local
  - id: big
    when: { tokens: { gte: 1000 }, dialect: anthropic }
    route: claude
  - id: not-team
    when: { not: { team: 'eng-*' } }
    route: gpt
default: { route: frontier }
",
    );
    let c = cls(vec![], 0.1, 10);
    // 2025-02-01 was a Saturday.
    let sat_23 = Facts {
        now_unix_s: Some(1_738_450_800),
        team: Some("eng-a".into()),
        ..Facts::default()
    };
    assert_eq!(p.decide(&sat_23, &c, false).rule, "night");
    let mon_23 = Facts {
        now_unix_s: Some(1_738_450_800 + 2 * 86_400),
        ..sat_23.clone()
    };
    assert_eq!(p.decide(&mon_23, &c, false).rule, "default");
    let busy = Facts {
        key_rpm: Some(150),
        ..mon_23.clone()
    };
    assert_eq!(p.decide(&busy, &c, false).rule, "busy-key");
    let big = Facts {
        dialect: Some(crate::Dialect::Anthropic),
        ..mon_23.clone()
    };
    assert_eq!(p.decide(&big, &cls(vec![], 0.1, 2000), false).rule, "big");
    assert_eq!(p.decide(&Facts::default(), &c, false).rule, "not-team");
}

#[test]
fn rule_without_route_inherits_default_route() {
    let p = policy("rules:\n  - id: tag\n    when: { team: x }\n    budget: team-x\n    cache_ttl_s: 60\n    headers: { X-Team: x }\ndefault: { route: gpt }\n");
    let d = p.decide(
        &Facts {
            team: Some("x".into()),
            ..Facts::default()
        },
        &cls(vec![], 0.1, 1),
        false,
    );
    assert_eq!(
        (d.rule.as_str(), d.budget.as_deref(), d.cache_ttl_s),
        ("tag", Some("team-x"), Some(60))
    );
    assert_eq!(models(&d), ["gpt-4o"]);
    assert_eq!(d.headers.get("x-team").map(String::as_str), Some("x"));
}

// ---- property: fail closed ----

fn arb_policy() -> impl Strategy<Value = String> {
    let target = prop::collection::vec(0usize..4, 1..4);
    let cats = prop::collection::vec(
        prop::sample::select(vec!["pii", "phi", "financial", "secret", "confidential"]),
        0..3,
    );
    let rule = (0usize..6, target.clone(), cats, any::<bool>(), 0u8..10);
    (prop::collection::vec(rule, 0..6), target).prop_map(|(rules, default)| {
        let names = ["l1", "e1", "e2", "l2"];
        let chain = |v: &[usize]| v.iter().map(|i| names[*i]).collect::<Vec<_>>().join(", ");
        let mut s = String::from("version: 1\ntargets:\n  l1: { model: local/smollm2-135m-instruct }\n  e1: { model: gpt-4o }\n  e2: { model: claude-sonnet-4-5 }\n  l2: { model: local/research-only }\n");
        for (i, (_, t, _, _, _)) in rules.iter().enumerate() {
            s.push_str(&format!("  c{i}: {{ chain: [{}] }}\n", chain(t)));
        }
        s.push_str(&format!("  cd: {{ chain: [{}] }}\nrules:\n", chain(&default)));
        for (i, (cond, _, cats, local, d)) in rules.iter().enumerate() {
            let when = match cond {
                0 => format!("{{ difficulty: {{ gte: 0.{d} }} }}"),
                1 => "{ sensitivity: { privacy_critical: true } }".to_string(),
                2 => "{ sensitivity: { categories: [pii] } }".to_string(),
                3 => "{ not: { sensitivity: { privacy_critical: true } } }".to_string(),
                4 => format!("{{ any: [ {{ team: t{d} }}, {{ difficulty: {{ lt: 0.{d} }} }} ] }}"),
                _ => "{ stream: true }".to_string(),
            };
            s.push_str(&format!("  - id: r{i}\n    when: {when}\n    route: c{i}\n    redact: [{}]\n    require_local: {local}\n", cats.join(", ")));
            // Every rule shadows to some other chain, so the guarantee is checked on it too.
            s.push_str(&format!("    shadow: {{ target: {}, sample: 1.0 }}\n", names[(usize::from(*d) + i) % 4]));
        }
        s.push_str("default: { route: cd }\n");
        s
    })
}

fn arb_findings() -> impl Strategy<Value = Vec<Finding>> {
    let cat = prop::sample::select(vec![
        Category::Pii,
        Category::Phi,
        Category::Financial,
        Category::Secret,
        Category::Confidential,
    ]);
    prop::collection::vec(
        (cat, 0.0f32..1.0).prop_map(|(c, conf)| finding(c, "x", conf)),
        0..4,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn external_target_implies_all_critical_findings_redacted(
        yaml in arb_policy(),
        findings in arb_findings(),
        difficulty in 0.0f32..1.0,
        team in 0u8..10,
        stream in any::<bool>(),
        explain in any::<bool>(),
    ) {
        let p = compile_str("gen.yaml", &yaml, &catalog());
        prop_assert!(p.is_ok(), "{}\n{}", yaml, p.err().map(|e| format_errors(&e)).unwrap_or_default());
        let Ok(p) = p else { return Ok(()) };
        let facts = Facts { team: Some(format!("t{team}")), stream, ..Facts::default() };
        let d = p.decide(&facts, &cls(findings.clone(), difficulty, 10), explain);
        let critical = findings.iter().any(|f| f.confidence >= crate::classify::SENSITIVE_MIN_CONFIDENCE);
        if let Some(shadow) = &d.shadow {
            // Privacy-critical content is compared only when both sides stay inside.
            prop_assert!(!critical || (!shadow.external && !d.leaves_organization()), "{:?}", d);
        }
        if d.leaves_organization() {
            prop_assert!(!d.is_blocked());
            // Default privacy section: every category, the classifier's sensitivity threshold.
            for f in findings.iter().filter(|f| f.confidence >= crate::classify::SENSITIVE_MIN_CONFIDENCE) {
                prop_assert!(d.redact.contains(&f.category), "external target with unredacted {:?}: {:?}", f.category, d);
            }
        }
        if !d.is_blocked() {
            prop_assert!(!d.chain.is_empty());
        }
    }
}

// ---- shipped policies ----

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

#[test]
fn default_policy_compiles_and_keeps_private_data_local() {
    let p = default_policy(&StaticCatalog::builtin());
    let p = match p {
        Ok(p) => p,
        Err(e) => panic!("{}", format_errors(&e)),
    };
    let d = p.decide(
        &Facts::default(),
        &cls(vec![finding(Category::Pii, "email", 0.6)], 0.95, 10),
        false,
    );
    assert_eq!(models(&d), ["local/smollm2-135m-instruct"]);
    let d = p.decide(&Facts::default(), &cls(vec![], 0.95, 10), false);
    assert_eq!(d.chain.first().map(|t| t.external), Some(true));
}

#[test]
fn shipped_examples_pass_their_tests() {
    let mut failed = Vec::new();
    for name in ["builtin", "default", "healthcare", "cost-saver"] {
        let dir = match load_dir(&example(name)) {
            Ok(d) => d,
            Err(e) => panic!("{}", format_errors(&e)),
        };
        let p = match compile(&dir.policies, &StaticCatalog::builtin()) {
            Ok(p) => p,
            Err(e) => panic!("{name}: {}", format_errors(&e)),
        };
        let cases = match parse_tests(&dir.tests) {
            Ok(c) => c,
            Err(e) => panic!("{name}: {}", format_errors(&e)),
        };
        assert!(cases.len() >= 4, "{name}: too few cases");
        let classifier = match p.classifier() {
            Ok(c) => c,
            Err(e) => panic!("{name}: {e}"),
        };
        let report = run_tests(&p, &classifier, &cases, &catalog());
        if !report.ok() {
            failed.push(format!("{name}:\n{report}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn failing_test_case_is_reported_with_trace() {
    let p = policy("rules: []\ndefault: { route: local }\n");
    let cases = parse_tests(&[PolicySource::new(
        "t.test.yaml",
        "version: 1\ncases:\n  - name: wrong\n    request: { prompt: hi, time: '2025-02-01T10:00:00Z' }\n    expect: { rule: nope, target: gpt, blocked: true }\n",
    )]);
    let cases = cases.unwrap_or_default();
    assert_eq!(cases.len(), 1);
    let classifier = p.classifier().ok();
    let Some(classifier) = classifier else {
        panic!("classifier")
    };
    let report = run_tests(&p, &classifier, &cases, &catalog());
    assert_eq!((report.passed, report.failed), (0, 1));
    assert_eq!(report.cases[0].failures.len(), 3);
    let text = report.to_string();
    assert!(text.contains("FAIL t.test.yaml:3 wrong"), "{text}");
    assert!(text.ends_with("0 passed, 1 failed\n"), "{text}");
    let e = parse_tests(&[PolicySource::new(
        "t.test.yaml",
        "version: 1\ncases:\n  - name: x\n    request: { prompt: hi, tim: 3 }\n    expect: {}\n",
    )]);
    let e = e.err().unwrap_or_default();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].hint.as_deref(), Some("did you mean `time`?"));
}

#[test]
fn all_errors_are_reported_in_order_as_documented() {
    let text = "version: 1
targets:
  local: { model: local/smollm2-135m-instruct }
  gpt: { model: gpt-4 }
  frontier: { chain: [gpt, claude] }
rules:
  - id: private
    when: { sensitivity: { privacy_critical: true } }
    route: local
  - id: everything
    route: frontier
  - id: hard
    when: { dificulty: { gte: 0.6 } }
    route: frontier
default: { route: local }
";
    let e = compile_str("policies/10-routing.yaml", text, &catalog())
        .err()
        .unwrap_or_default();
    // The same text is shown in docs/policies.md.
    assert_eq!(
        format_errors(&e),
        "policies/10-routing.yaml:4:17: error[unknown-model]: unknown model `gpt-4` in target `gpt`
  hint: did you mean `gpt-4o`?
policies/10-routing.yaml:5:28: error[unknown-target]: unknown target `claude` in chain of `frontier`
  hint: define it under `targets:`, e.g. `claude: { model: MODEL }`
policies/10-routing.yaml:12:5: error[unreachable]: rule `hard` can never match
  hint: rule `everything` at policies/10-routing.yaml:10:5 has no condition and matches every request; move it last or give it a `when`
policies/10-routing.yaml:13:13: error[unknown-key]: unknown key `dificulty` in `rules[2].when`
  hint: did you mean `difficulty`?
4 errors
"
    );
}

#[test]
fn requested_target_routes_to_the_client_model_and_fails_closed() {
    let p = policy("rules: []\ndefault: { route: requested }\n");
    let facts = Facts {
        model: Some("gpt-4o-mini".to_string()),
        ..Facts::default()
    };
    let d = p.decide(&facts, &cls(vec![], 0.2, 10), false);
    assert_eq!(models(&d), ["gpt-4o-mini"]);
    assert!(d.leaves_organization());
    // Unknown locality counts as external: a privacy-critical request is refused.
    let pii = cls(vec![finding(Category::Pii, "email", 0.9)], 0.2, 10);
    let d = p.decide(&facts, &pii, false);
    assert!(d.is_blocked(), "{d:?}");
    // The gateway says the requested model is in-process: it may serve the request.
    let local = Facts {
        model: Some("local/smollm2-135m-instruct".to_string()),
        requested_is_local: true,
        ..Facts::default()
    };
    let d = p.decide(&local, &pii, false);
    assert_eq!(models(&d), ["local/smollm2-135m-instruct"]);
    assert!(!d.leaves_organization());
    // No model named: nothing to route to.
    let d = p.decide(&Facts::default(), &cls(vec![], 0.2, 10), false);
    assert!(d.is_blocked());
}

// ---- shadow ----

#[test]
fn shadow_plans_the_other_side_and_never_leaks_privacy_critical_content() {
    let p = policy("rules:\n  - id: easy\n    when: { difficulty: { lt: 0.5 } }\n    route: local\n    shadow: { target: frontier, sample: 0.25 }\n  - id: hard\n    route: frontier\n    shadow: { target: local }\ndefault: { route: local }\n");
    let facts = Facts::default();
    let d = p.decide(&facts, &cls(vec![], 0.2, 10), false);
    let s = d
        .shadow
        .as_ref()
        .expect("easy requests are shadowed on the frontier");
    assert_eq!(
        (s.model.as_str(), s.external, s.sample),
        ("claude-sonnet-4-5", true, 0.25)
    );
    assert!(!s.retain_text);
    let d = p.decide(&facts, &cls(vec![], 0.9, 10), false);
    let s = d
        .shadow
        .as_ref()
        .expect("hard requests are shadowed locally");
    assert_eq!(
        (s.model.as_str(), s.external, s.sample),
        ("local/smollm2-135m-instruct", false, 0.05)
    );
    // Privacy-critical, served locally: the external shadow is dropped, with the reason.
    let phi = vec![finding(Category::Phi, "diagnosis", 0.9)];
    let d = p.decide(&facts, &cls(phi, 0.2, 10), false);
    assert_eq!(models(&d), ["local/smollm2-135m-instruct"]);
    assert!(d.shadow.is_none());
    assert!(
        d.shadow_skipped
            .as_deref()
            .is_some_and(|w| w.contains("privacy-critical")),
        "{d:?}"
    );
}

#[test]
fn shadow_of_privacy_critical_content_is_allowed_only_local_to_local() {
    let text = "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\n  nc: { model: local/research-only }\n  gpt: { model: gpt-4o }\n  redacted-out: { model: gpt-4o }\nrules:\n  - id: both-local\n    when: { team: a }\n    route: local\n    shadow: { target: nc }\n  - id: out-redacted\n    when: { team: b }\n    route: redacted-out\n    redact: [phi]\n    shadow: { target: local }\ndefault: { route: local }\n";
    let p =
        compile_str("p.yaml", text, &catalog()).unwrap_or_else(|e| panic!("{}", format_errors(&e)));
    let phi = cls(vec![finding(Category::Phi, "diagnosis", 0.9)], 0.5, 10);
    let team = |t: &str| Facts {
        team: Some(t.to_string()),
        ..Facts::default()
    };
    let d = p.decide(&team("a"), &phi, false);
    assert_eq!(
        d.shadow.as_ref().map(|s| s.model.as_str()),
        Some("local/research-only")
    );
    // The primary leaves (redacted): a comparison is optional, so it fails closed.
    let d = p.decide(&team("b"), &phi, false);
    assert!(d.leaves_organization());
    assert!(d.shadow.is_none(), "{d:?}");
}

#[test]
fn shadow_errors_point_at_the_field() {
    let e = errors(&format!("{TARGETS}rules:\n  - id: a\n    route: local\n    shadow: {{ target: frontierr, sample: 1.5 }}\ndefault: {{ route: local }}\n"));
    let msgs: Vec<String> = e
        .iter()
        .map(|e| format!("{}:{} {}", e.line, e.column, e.message))
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("`sample` is a fraction")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("unknown shadow target `frontierr`")),
        "{msgs:?}"
    );
    let unknown = e
        .iter()
        .find(|e| e.code == ErrorCode::UnknownTarget)
        .expect("unknown target");
    assert_eq!(unknown.line, 12);
    assert_eq!(unknown.hint.as_deref(), Some("did you mean `frontier`?"));
    let e = errors(&format!("{TARGETS}rules:\n  - id: a\n    block: no\n    shadow: {{ target: local }}\ndefault: {{ route: local }}\n"));
    assert!(
        e.iter()
            .any(|e| e.message.contains("a blocked request has none")),
        "{e:?}"
    );
}

#[test]
fn shadow_is_never_the_primary_model_and_honours_require_local() {
    let p = policy("rules:\n  - id: same\n    when: { team: s }\n    route: local\n    shadow: { target: local }\n  - id: strict\n    when: { team: r }\n    route: local\n    require_local: true\n    shadow: { target: frontier-then-local, sample: 1 }\ndefault: { route: local }\n");
    let team = |t: &str| Facts {
        team: Some(t.to_string()),
        ..Facts::default()
    };
    let d = p.decide(&team("s"), &cls(vec![], 0.5, 10), false);
    assert!(d.shadow.is_none());
    assert!(d
        .shadow_skipped
        .as_deref()
        .is_some_and(|w| w.contains("already the primary")));
    let d = p.decide(&team("r"), &cls(vec![], 0.5, 10), false);
    assert!(d.shadow.is_none(), "{d:?}");
}

#[test]
fn policy_tests_ask_the_catalog_whether_the_requested_model_is_local() {
    // No `local/` naming convention: an on-premises model the catalog calls local keeps
    // privacy-critical content on the `requested` route; one it does not know fails closed.
    let p = policy("rules: []\ndefault: { route: requested }\n");
    let cases = parse_tests(&[PolicySource::new(
        "t.test.yaml",
        "version: 1\ncases:\n  - name: private on the in-house model\n    request: { prompt: \"Patient diagnosed with type 2 diabetes, DOB 1980-02-03\", model: onprem-llama }\n    expect: { blocked: false, external: false, model: onprem-llama }\n",
    )])
    .unwrap_or_default();
    assert_eq!(cases.len(), 1);
    let Ok(classifier) = p.classifier() else {
        panic!("classifier")
    };
    let inside = catalog().with(
        "onprem-llama",
        TargetInfo {
            external: false,
            commercial_use: true,
            license: "llama3".to_string(),
        },
    );
    let report = run_tests(&p, &classifier, &cases, &inside);
    assert_eq!((report.passed, report.failed), (1, 0), "{report}");
    let report = run_tests(&p, &classifier, &cases, &catalog());
    assert_eq!((report.passed, report.failed), (0, 1), "{report}");
}

#[test]
fn a_redacting_rule_without_a_local_target_is_warned_about() {
    // The trap a security engineer fell into: email redacted, chain all external, so a
    // request with an email *and* a secret is refused while `policy test` only tried the
    // email.
    let p = policy("rules:\n  - id: redact-pii\n    when: { sensitivity: { categories: [pii] } }\n    route: frontier\n    redact: [pii]\ndefault: { route: local }\n");
    let w = p.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("rule `redact-pii` redacts pii"), "{}", w[0]);
    assert!(
        w[0].contains("phi, financial, secret, confidential"),
        "{}",
        w[0]
    );
    // With a local model at the end of the chain, the rest goes there: no warning.
    let ok = policy("rules:\n  - id: redact-pii\n    when: { sensitivity: { categories: [pii] } }\n    route: frontier-then-local\n    redact: [pii]\ndefault: { route: local }\n");
    assert!(ok.warnings().is_empty(), "{:?}", ok.warnings());
    // Redacting every critical category leaves nothing to refuse.
    let all = policy("rules:\n  - id: redact-all\n    route: frontier\n    redact: [pii, phi, financial, secret, confidential]\ndefault: { route: local }\n");
    assert!(all.warnings().is_empty());
}

#[test]
fn a_policy_reads_difficulty_only_when_a_condition_names_it() {
    let nested = policy("rules:\n  - id: hard\n    when: { all: [ { not: { difficulty: { lt: 0.6 } } }, { stream: true } ] }\n    route: gpt\ndefault: { route: local }\n");
    assert!(nested.reads_difficulty());
    let none = policy("rules:\n  - id: batch\n    when: { tags: [batch] }\n    route: local\ndefault: { route: gpt }\n");
    assert!(!none.reads_difficulty());
}
