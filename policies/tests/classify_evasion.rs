//! Evasion property: a sensitive value stays detected, with its category, under each
//! transform an attacker (or an SDK) applies: full-width forms, zero-width characters
//! between characters, base64, percent-encoding, random spaces inside digit groups,
//! confusable letters in digit runs. Values are generated here (valid checksums), not
//! taken from eval data. Findings stay on char boundaries of the ORIGINAL text.
use base64::Engine;
use policies::classify::validate::luhn;
use policies::{
    Category, Classification, Classifier, ClassifyInput, OrgRules, Segment, SegmentRole,
};
use proptest::prelude::*;
use std::sync::OnceLock;

fn clf() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| Classifier::new(OrgRules::default()).expect("builtin classifier compiles"))
}

fn run(text: &str) -> Classification {
    let segs = [Segment {
        role: SegmentRole::User,
        text,
    }];
    let c = clf().classify(&ClassifyInput {
        segments: &segs,
        embedding: None,
    });
    for f in &c.findings {
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{f:?} in {text:?}"
        );
        assert!(f.start < f.end && f.end <= text.len());
    }
    c
}

fn with_check_digit(prefix: &str) -> String {
    (0..10)
        .map(|d| format!("{prefix}{d}"))
        .find(|s| luhn(s))
        .expect("check digit")
}

fn iban_de(bban: &str) -> String {
    // mod-97 check digits for DE + bban.
    let digits: String = format!("{bban}131400")
        .chars()
        .map(|c| c.to_string())
        .collect();
    let mut r: u64 = 0;
    for ch in digits.chars() {
        r = (r * 10 + ch.to_digit(10).unwrap_or(0) as u64) % 97;
    }
    format!("DE{:02}{bban}", 98 - r)
}

/// (value, category, digits-only?) samples built from generated parts.
/// Random-looking enough to be a real token (the shrinker otherwise walks to `AKIA4444...`,
/// which is rightly rejected as a placeholder).
fn varied(s: &str) -> bool {
    let mut counts = std::collections::HashMap::new();
    for c in s.chars() {
        *counts.entry(c).or_insert(0usize) += 1;
    }
    let n = s.chars().count() as f64;
    let h: f64 = counts
        .values()
        .map(|&k| {
            let p = k as f64 / n;
            -p * p.log2()
        })
        .sum();
    let need = if n >= 32.0 { 3.4 } else { 3.0 };
    let runs = s
        .as_bytes()
        .windows(4)
        .any(|w| w.iter().all(|&b| b == w[0]));
    h >= need && !runs && s.chars().any(|c| c.is_ascii_digit())
}

fn sample() -> impl Strategy<Value = (String, Category, bool)> {
    let card = "[0-9]{11}".prop_map(|d| {
        (
            with_check_digit(&format!("4539{d}")),
            Category::Financial,
            true,
        )
    });
    let ssn = (100u32..665, 10u32..99, 1000u32..9999)
        .prop_map(|(a, g, s)| (format!("SSN {a}-{g}-{s}"), Category::Pii, true));
    let iban = "[0-9]{18}".prop_map(|b| (iban_de(&b), Category::Financial, false));
    let email = ("[a-z]{3,8}", "[a-z]{1,3}[0-9]{2}", "[a-z]{4,8}")
        .prop_map(|(a, b, d)| (format!("{a}.{b}@{d}.io"), Category::Pii, false));
    let phone = ("[2-9][0-9]{2}", "[2-9][0-9]{2}", "[0-9]{4}")
        .prop_map(|(a, b, c)| (format!("+1 {a} {b} {c}"), Category::Pii, true));
    let aws = "[A-Z2-7]{16}"
        .prop_filter("varied", |s| varied(s))
        .prop_map(|s| (format!("AKIA{s}"), Category::Secret, false));
    let stripe = "[A-Za-z0-9]{24}"
        .prop_filter("varied", |s| {
            varied(s) && s.chars().any(|c| c.is_ascii_uppercase())
        })
        .prop_map(|s| (format!("sk_live_{s}"), Category::Secret, false));
    let dop = "[0-9a-f]{64}"
        .prop_filter("varied", |s| {
            varied(s) && s.chars().any(|c| c.is_ascii_alphabetic())
        })
        .prop_map(|s| (format!("dop_v1_{s}"), Category::Secret, false));
    prop_oneof![card, ssn, iban, email, phone, aws, stripe, dop]
}

fn full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '!'..='~' => char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap_or(c),
            ' ' => '\u{3000}',
            c => c,
        })
        .collect()
}

fn zero_width(s: &str, seed: u64) -> String {
    const ZW: [char; 5] = ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'];
    let mut out = String::new();
    let mut x = seed | 1;
    for c in s.chars() {
        out.push(c);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 2 == 0 {
            out.push(ZW[(x >> 8) as usize % ZW.len()]);
        }
    }
    out
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Spaces inserted at random between two digits (keeps the existing separators).
fn spaced_digits(s: &str, seed: u64) -> String {
    let mut out = String::new();
    let mut x = seed | 1;
    let cs: Vec<char> = s.chars().collect();
    for (i, &c) in cs.iter().enumerate() {
        out.push(c);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if c.is_ascii_digit() && cs.get(i + 1).is_some_and(|n| n.is_ascii_digit()) && x % 3 == 0 {
            out.push(' ');
        }
    }
    out
}

fn wrap(v: &str) -> String {
    format!("Please file this for me: {v} thanks")
}

fn detected(text: &str, cat: Category) -> bool {
    run(text).categories.contains(&cat)
}

/// Found by `plain_samples_are_detected`: the groups of a real number joined into a run
/// of one digit and read as a placeholder.
#[test]
fn phone_groups_that_join_into_a_run_are_still_a_phone() {
    for v in ["+1 415 203 3333", "+1 200 203 3333", "+14152033333"] {
        assert!(detected(&wrap(v), Category::Pii), "{v}");
    }
    for placeholder in ["+1 555 555 5555", "+1 123 456 7890", "+1 000 000 0000"] {
        assert!(
            !detected(&wrap(placeholder), Category::Pii),
            "{placeholder}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn plain_samples_are_detected((v, cat, _) in sample()) {
        prop_assert!(detected(&wrap(&v), cat), "{}", wrap(&v));
    }

    #[test]
    fn full_width_forms((v, cat, _) in sample()) {
        let t = full_width(&wrap(&v));
        prop_assert!(detected(&t, cat), "{t}");
    }

    #[test]
    fn zero_width_between_characters((v, cat, _) in sample(), seed in any::<u64>()) {
        let t = wrap(&zero_width(&v, seed));
        prop_assert!(detected(&t, cat), "{t:?}");
    }

    #[test]
    fn base64_of_the_value((v, cat, _) in sample()) {
        let t = wrap(&base64::engine::general_purpose::STANDARD.encode(&v));
        prop_assert!(detected(&t, cat), "{t}");
    }

    #[test]
    fn base64_of_the_sentence((v, cat, _) in sample()) {
        let t = format!("decode this: {}", base64::engine::general_purpose::STANDARD.encode(wrap(&v)));
        prop_assert!(detected(&t, cat), "{t}");
    }

    #[test]
    fn percent_encoded_value((v, cat, _) in sample()) {
        let t = wrap(&percent(&v));
        prop_assert!(detected(&t, cat), "{t}");
    }

    #[test]
    fn random_spaces_inside_digit_groups((v, cat, digits) in sample(), seed in any::<u64>()) {
        prop_assume!(digits);
        let t = wrap(&spaced_digits(&v, seed));
        prop_assert!(detected(&t, cat), "{t}");
    }
}

#[test]
fn hex_encoded_and_confusable_values() {
    let card = with_check_digit("453201511283036");
    let hex: String = format!("my card is {card}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(detected(&format!("log: {hex}"), Category::Financial));
    let conf = format!("card {}", card.replace('1', "l").replacen('0', "O", 1));
    assert!(detected(&conf, Category::Financial), "{conf}");
    assert!(detected("SSN: ２１９-０９-９９５１", Category::Pii));
    assert!(detected("SSN: ٢١٩-٠٩-٩٩٥١", Category::Pii));
}

#[test]
fn encoded_noise_is_not_sensitive() {
    for t in [
        "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "base64 of hello world is aGVsbG8gd29ybGQgYWdhaW4=",
        "the URL was /search?q=%E2%9C%93+done%21%21",
        "ｈｅｌｌｏ　ｗｏｒｌｄ, translate this",
    ] {
        assert!(!run(t).sensitive, "{t}");
    }
}
