//! Policy files and policy test files, compiled from text (`policies::policy::compile_str`
//! and `parse_tests`, what `load_dir` / `check` feed them).
//!
//! Invariants: nothing panics, errors always format, and whatever compiles decides: the
//! shipped test cases run against a fuzzed policy, and fuzzed test cases run against the
//! shipped policy.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use policies::policy::{
    compile_str, default_policy, format_errors, parse_tests, run_tests, CompiledPolicy,
    PolicySource, StaticCatalog, TestCase, DEFAULT_POLICY_TESTS_YAML,
};
use policies::{Classifier, OrgRules};

fn catalog() -> &'static StaticCatalog {
    static CATALOG: OnceLock<StaticCatalog> = OnceLock::new();
    CATALOG.get_or_init(StaticCatalog::builtin)
}

fn shipped() -> &'static (CompiledPolicy, Vec<TestCase>) {
    static SHIPPED: OnceLock<(CompiledPolicy, Vec<TestCase>)> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let policy = default_policy(catalog()).expect("the default policy compiles");
        let tests = parse_tests(&[PolicySource::new(
            "default.test.yaml",
            DEFAULT_POLICY_TESTS_YAML,
        )])
        .expect("the default tests parse");
        (policy, tests)
    })
}

/// Building a classifier (its model and detector regexes) costs far more than compiling
/// a policy; most fuzzed policies share a handful of `classifier:` sections, so keep the
/// last few.
fn classifier_for(policy: &CompiledPolicy) -> Rc<Classifier> {
    const KEEP: usize = 8;
    thread_local! {
        static CACHE: RefCell<Vec<(OrgRules, Rc<Classifier>)>> = const { RefCell::new(Vec::new()) };
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, c)) = cache.iter().find(|(r, _)| r == policy.org_rules()) {
            return c.clone();
        }
        // A policy may carry a classifier section the compiler accepted; building it must
        // not fail differently from compiling it.
        let built = Rc::new(
            policy
                .classifier()
                .expect("a compiled policy's classifier builds"),
        );
        if cache.len() == KEEP {
            cache.remove(0);
        }
        cache.push((policy.org_rules().clone(), built.clone()));
        built
    })
}

fn run(policy: &CompiledPolicy, cases: &[TestCase]) {
    let report = run_tests(policy, &classifier_for(policy), cases, catalog());
    assert_eq!(report.passed + report.failed, cases.len());
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (default, default_cases) = shipped();
    match compile_str("fuzz.yaml", text, catalog()) {
        Ok(policy) => {
            let _ = (policy.rule_ids(), policy.targets(), policy.files());
            run(&policy, default_cases);
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "a failed compile reported no error");
            let _ = format_errors(&errors);
        }
    }
    match parse_tests(&[PolicySource::new("fuzz.test.yaml", text)]) {
        Ok(cases) => run(default, &cases),
        Err(errors) => {
            assert!(!errors.is_empty(), "a failed parse reported no error");
            let _ = format_errors(&errors);
        }
    }
});
