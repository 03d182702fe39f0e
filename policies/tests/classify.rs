//! Detector tests on synthetic values (generated here, not taken from eval data),
//! JSONL batch tests, the weights file, and a no-panic / span-validity property.
use std::collections::BTreeSet;

use policies::classify::validate::luhn;
use policies::{
    classify_jsonl, joined_text, Category, Classification, Classifier, ClassifyInput, OrgRules,
    Segment, SegmentRole,
};
use proptest::prelude::*;

fn clf() -> Classifier {
    Classifier::new(OrgRules::default()).expect("builtin classifier compiles")
}

fn run(c: &Classifier, text: &str) -> Classification {
    let segs = [Segment {
        role: SegmentRole::User,
        text,
    }];
    c.classify(&ClassifyInput {
        segments: &segs,
        embedding: None,
    })
}

fn cats(c: &Classification) -> BTreeSet<Category> {
    c.categories.clone()
}

fn card(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|s| luhn(s))
        .expect("check digit")
}

#[test]
fn positives_by_category() {
    let c = clf();
    let visa = card("453201511283036");
    let cases: Vec<(String, Category, &str)> = vec![
        (
            format!("Charge my card {visa} please"),
            Category::Financial,
            "credit_card",
        ),
        (
            format!(
                "card {} {} {} {}",
                &visa[..4],
                &visa[4..8],
                &visa[8..12],
                &visa[12..]
            ),
            Category::Financial,
            "credit_card",
        ),
        (
            "Reach me at k.varga71@mailhub.io tomorrow".into(),
            Category::Pii,
            "email",
        ),
        (
            "Call +44 20 7946 0321 after lunch".into(),
            Category::Pii,
            "phone",
        ),
        ("My SSN is 512-48-7731.".into(), Category::Pii, "ssn"),
        (
            "key AKIAZQ3D7RW5TYP2LM4K in the env".into(),
            Category::Secret,
            "aws_access_key",
        ),
        (
            format!("token ghp_{}", "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5")[..46].to_string(),
            Category::Secret,
            "github_token",
        ),
        (
            "db_password = \"Tq8#vLz2!mRw\"".into(),
            Category::Secret,
            "password",
        ),
        (
            "postgres://svc:Zr81kQwPl2@db.internal:5432/app".into(),
            Category::Secret,
            "url_credentials",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow".into(),
            Category::Secret,
            "private_key",
        ),
        (
            "Patient: Olga Brandt, MRN 77310452, on metformin for diabetes".into(),
            Category::Phi,
            "medical_record_number",
        ),
        (
            "Internal only - do not distribute: Q2 bookings missed plan by 9%".into(),
            Category::Confidential,
            "confidential_marker",
        ),
        (
            "My name is Henrik Olsen and I need help".into(),
            Category::Pii,
            "person_name",
        ),
    ];
    for (text, cat, kind) in cases {
        let r = run(&c, &text);
        assert!(r.sensitive, "{text}");
        assert!(cats(&r).contains(&cat), "{text}: {:?}", r.categories);
        assert!(
            r.findings.iter().any(|f| f.kind.contains(kind)),
            "{text}: {:?}",
            r.findings
        );
    }
}

#[test]
fn negatives_and_placeholders() {
    let c = clf();
    for text in [
        "What is the capital of Peru?",
        "key = AKIAIOSFODNN7EXAMPLE",
        "token: xoxb-xxxxxxxxxxxx",
        "password = ${DB_PASSWORD}",
        "api_key: <your-key>",
        "Does it accept cards like 4444 4444 4444 4444 for testing?",
        "The test SSN is 000-00-0000, for demo?",
        "How do I add a 'CONFIDENTIAL' watermark to a document?",
        "What are the side effects of metformin in a 60-year-old male?",
        "Explain how TLS certificates are validated.",
    ] {
        let r = run(&c, text);
        assert!(!r.sensitive, "{text}: {:?}", r.findings);
    }
}

#[test]
fn iban_and_routing() {
    let c = clf();
    // Compute valid IBAN check digits for a synthetic German BBAN.
    let bban = "370400440532013000";
    let iban = (2..99)
        .map(|cd| format!("DE{cd:02}{bban}"))
        .find(|s| policies::classify::validate::iban(s))
        .expect("check digits");
    let r = run(&c, &format!("Wire it to {iban} today"));
    assert!(r.findings.iter().any(|f| f.kind == "iban"));
    let routing = (0..10)
        .map(|d| format!("02100002{d}"))
        .find(|s| policies::classify::validate::aba_routing(s))
        .expect("check digit");
    let r = run(&c, &format!("routing number {routing}"));
    assert!(
        r.findings.iter().any(|f| f.kind == "aba_routing"),
        "{:?}",
        r.findings
    );
}

#[test]
fn spans_and_segments() {
    let c = clf();
    let segs = [
        Segment {
            role: SegmentRole::System,
            text: "You are helpful.",
        },
        Segment {
            role: SegmentRole::User,
            text: "Écris à zoë.m@correo.es stp",
        },
    ];
    let r = c.classify(&ClassifyInput {
        segments: &segs,
        embedding: None,
    });
    let joined = joined_text(&segs);
    let f = r
        .findings
        .iter()
        .find(|f| f.kind == "email")
        .expect("email");
    assert_eq!(f.segment, 1);
    assert_eq!(
        &joined[f.start..f.end],
        &segs[1].text[f.seg_start..f.seg_end]
    );
    assert_eq!(r.prompt_chars, joined.chars().count());
    assert_eq!(r.est_prompt_tokens, r.prompt_chars.div_ceil(4));
}

#[test]
fn org_rules() {
    let rules: OrgRules = serde_json::from_str(
        r#"{"detectors":[{"name":"employee_id","category":"pii","regex":"\\bEMP-\\d{6}\\b","confidence":0.9}],
            "confidential_terms":["Bluebird"],
            "allow":["helpdesk@acme-corp.io"]}"#,
    )
    .expect("rules parse");
    let c = Classifier::new(rules).expect("compiles");
    let r = run(&c, "Ask EMP-204981 about project bluebird");
    assert!(r.findings.iter().any(|f| f.kind == "employee_id"));
    assert!(r.categories.contains(&Category::Confidential));
    let r = run(&c, "write to helpdesk@acme-corp.io");
    assert!(!r.sensitive, "{:?}", r.findings);
    let bad: OrgRules =
        serde_json::from_str(r#"{"detectors":[{"name":"x","category":"pii","regex":"("}]}"#)
            .expect("parses");
    assert!(Classifier::new(bad).is_err());
}

#[test]
fn weights_file_loads_and_scores() {
    let json = include_str!("../models/difficulty_lexical.json");
    let m: policies::classify::difficulty::LexicalModel = serde_json::from_str(json).expect("json");
    m.check().expect("shape");
    assert!(m.dense_w.iter().any(|w| *w != 0.0), "model is trained");
    let c = clf();
    let easy = run(&c, "Translate 'good morning' into Spanish.");
    let hard = run(&c, "Prove that for every prime p > 3, p^2 - 1 is divisible by 24. Then implement a function that verifies it for all p < 10^6 and derive its complexity.");
    assert!((0.0..=1.0).contains(&easy.difficulty));
    assert!(hard.difficulty > easy.difficulty);
    assert_eq!(easy.difficulty_model, "lexical");
}

#[test]
fn jsonl_batch() {
    let c = clf();
    let input = "{\"id\":\"a\",\"prompt\":\"mail me: r.ito@post.jp\"}\n\n{\"id\":2,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n";
    let mut out = Vec::new();
    let n = classify_jsonl(&c, input.as_bytes(), &mut out).expect("ok");
    assert_eq!(n.classified, 2);
    let text = String::from_utf8(out).expect("utf8");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("line")).expect("json");
    assert_eq!(first["sensitive"], true);
    assert_eq!(first["categories"][0], "pii");
    assert_eq!(first["findings"][0]["type"], "email");
    // More batch cases (error rows, content parts) are in tests/classify_jsonl.rs.
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn never_panics_and_spans_are_valid(a in "\\PC{0,200}", b in "[a-zA-Z0-9 @.:=_/+-]{0,120}", digits in "[0-9 -]{0,40}") {
        let c = clf();
        let t2 = format!("{b} {digits} password={b}");
        let segs = [
            Segment { role: SegmentRole::User, text: &a },
            Segment { role: SegmentRole::Assistant, text: &t2 },
        ];
        let r = c.classify(&ClassifyInput { segments: &segs, embedding: None });
        let joined = joined_text(&segs);
        for f in &r.findings {
            prop_assert!(f.start < f.end && f.end <= joined.len());
            prop_assert!(joined.is_char_boundary(f.start) && joined.is_char_boundary(f.end));
            let seg = segs[f.segment].text;
            prop_assert!(seg.is_char_boundary(f.seg_start) && seg.is_char_boundary(f.seg_end));
            prop_assert_eq!(&joined[f.start..f.end], &seg[f.seg_start..f.seg_end]);
            prop_assert!((0.0..=1.0).contains(&f.confidence));
        }
        prop_assert!((0.0..=1.0).contains(&r.difficulty));
    }
}

#[test]
fn contextual_and_name_heuristics() {
    let c = clf();
    for (text, cat) in [
        (
            "Please resend the address I mentioned yesterday.",
            Category::Pii,
        ),
        (
            "My voice assistant history shows 'order pizza at 9'.",
            Category::Pii,
        ),
        ("Yesterday Marta Kowalczyk's car was towed.", Category::Pii),
        ("Oksana, could you call me back tonight?", Category::Pii),
        ("Keep the filter on for my kids under ten.", Category::Pii),
        ("My ins plcy is P O L 9 8 7 6 5 4.", Category::Financial),
    ] {
        assert!(cats(&run(&c, text)).contains(&cat), "{text}");
    }
    for text in [
        "Mr. Ortiz has 31 pencils and gives away 7. How many are left?",
        "What if Albert Einstein had never left Germany?",
        "List the CEO Jane Parker's three priorities from the memo.",
    ] {
        assert!(!run(&c, text).sensitive, "{text}");
    }
}

#[test]
fn formats_and_lookalikes() {
    let c = clf();
    for (text, cat) in [
        (
            "Reach Tomasz on 020 7946 0958 x104 after lunch.",
            Category::Pii,
        ),
        (
            "my phone is four one five, five five five, zero one nine nine",
            Category::Pii,
        ),
        ("She lives at 18 Rue des Lilas, 75019 Paris.", Category::Pii),
        (
            "Customer account no. 7730219 keeps getting locked.",
            Category::Pii,
        ),
        (
            "My annual income is about 85k and I want a quote.",
            Category::Financial,
        ),
        (
            "Policy number HX-449120-B covers the water damage.",
            Category::Financial,
        ),
        (
            "my backup codes are 4821-9931 and 7720-1184",
            Category::Secret,
        ),
        (
            "The answer to my security question (first pet) is Biscuit.",
            Category::Secret,
        ),
        (
            "Authorization: Bearer 9f8a7c6b5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a",
            Category::Secret,
        ),
        (
            "My A1C came back at 8.2 and my doctor wants to start metformin.",
            Category::Phi,
        ),
    ] {
        assert!(cats(&run(&c, text)).contains(&cat), "{text}");
    }
    for text in [
        "The password field should be at least 12 characters.",
        "List three famous works by Leonardo da Vinci.",
        "Chest x-ray shows prominent pulmonary vascular markings.",
    ] {
        assert!(!run(&c, text).sensitive, "{text}");
    }
}
