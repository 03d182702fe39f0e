//! Policy decision speed: a 100-rule policy, `decide()` per request.
//! Run: `cargo bench -p switchyard-policies --bench policy`. Prints a table.

use policies::policy::{compile_str, format_errors, Facts, StaticCatalog};
use policies::{Category, Classification, Finding};
use std::hint::black_box;
use std::time::Instant;

fn policy_yaml(rules: usize) -> String {
    let mut s = String::from(
        "version: 1\ntargets:\n  local: { model: local/smollm2-135m-instruct }\n  gpt: { model: gpt-4o }\n  claude: { model: claude-sonnet-4-5 }\n  frontier: { chain: [claude, gpt, local] }\nrules:\n",
    );
    for i in 0..rules - 1 {
        let when = match i % 6 {
            0 => format!("{{ team: [team-{i}, 'org-{i}-*'] }}"),
            1 => format!("{{ all: [ {{ difficulty: {{ gte: 0.99 }} }}, {{ tags: [t{i}] }} ] }}"),
            2 => format!("{{ model: 'claude-{i}-*', stream: true }}"),
            3 => format!("{{ sensitivity: {{ categories: [phi], kinds: [kind-{i}] }} }}"),
            4 => format!(
                "{{ any: [ {{ key: k{i} }}, {{ app: a{i} }}, {{ tokens: {{ gte: 100000 }} }} ] }}"
            ),
            _ => format!(
                "{{ time: {{ from: 3, to: 4 }}, volume: {{ gte: {} }} }}",
                10_000 + i
            ),
        };
        s.push_str(&format!(
            "  - id: r{i}\n    when: {when}\n    route: frontier\n    redact: [pii]\n"
        ));
    }
    s.push_str("  - id: last\n    when: { difficulty: { gte: 0.5 } }\n    route: frontier\n    redact: [pii]\ndefault: { route: local }\n");
    s
}

fn cls(findings: Vec<Finding>, difficulty: f32) -> Classification {
    Classification {
        categories: findings.iter().map(|f| f.category).collect(),
        sensitive: !findings.is_empty(),
        findings,
        difficulty,
        difficulty_model: "bench",
        prompt_chars: 2000,
        est_prompt_tokens: 500,
    }
}

fn finding(category: Category, kind: &'static str) -> Finding {
    Finding {
        category,
        detector: policies::Detector::Rule,
        kind: kind.into(),
        start: 0,
        end: 5,
        segment: 0,
        seg_start: 0,
        seg_end: 5,
        confidence: 0.95,
    }
}

fn time(iters: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..iters / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(iters)
}

fn main() {
    let yaml = policy_yaml(100);
    let catalog = StaticCatalog::builtin();
    let t = Instant::now();
    let policy = match compile_str("bench.yaml", &yaml, &catalog) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", format_errors(&e));
            std::process::exit(1);
        }
    };
    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
    let facts = Facts {
        team: Some("support".into()),
        key: Some("key-1".into()),
        app: Some("helpdesk".into()),
        tags: vec!["prod".into()],
        model: Some("gpt-4o".into()),
        dialect: Some(policies::Dialect::OpenAi),
        stream: true,
        now_unix_s: Some(1_738_450_800),
        team_rpm: Some(40),
        key_rpm: Some(4),
        requested_is_local: false,
    };
    let email = cls(vec![finding(Category::Pii, "email")], 0.7);
    let phi = cls(
        vec![
            finding(Category::Pii, "email"),
            finding(Category::Phi, "diagnosis"),
        ],
        0.7,
    );
    let easy = cls(vec![], 0.1);
    let n = 20_000;
    println!(
        "policy decide() with {} rules (compile: {compile_ms:.2} ms)",
        policy.rule_ids().len()
    );
    println!("{:<48} {:>12}", "case", "µs/decide");
    let rows: [(&str, &Classification, bool); 5] = [
        ("match at rule 100, pii redacted -> frontier", &email, false),
        ("match at rule 100, phi -> fail closed (local)", &phi, false),
        ("no match -> default", &easy, false),
        ("match at rule 100, explain on", &email, true),
        ("no match -> default, explain on", &easy, true),
    ];
    for (name, c, explain) in rows {
        let us = time(n, || {
            black_box(policy.decide(black_box(&facts), black_box(c), explain));
        });
        println!("{name:<48} {us:>12.2}");
    }
}
