//! Rampart NER on ONNX Runtime (needs scripts/setup-models.sh, which runs scripts/setup-ner.sh).

mod common;

use local_runtime::ner::default_ner_dir;
use local_runtime::{NerConfig, NerLabel, NerModel};

fn model(file: &str) -> NerModel {
    let dir = default_ner_dir();
    assert!(
        dir.join(file).is_file(),
        "NER model {} is missing: {}",
        dir.display(),
        common::SETUP_HINT
    );
    let mut cfg = NerConfig::new(dir);
    cfg.model_file = file.into();
    NerModel::load(&common::runtime(), &cfg).expect("load NER model")
}

fn labelled(text: &str, m: &NerModel) -> Vec<(NerLabel, String)> {
    m.detect(text, 0.5)
        .unwrap()
        .into_iter()
        .map(|s| (s.label, text[s.start..s.end].to_string()))
        .collect()
}

#[test]
fn finds_a_name_and_street_address_with_byte_offsets() {
    for file in ["model_int8.onnx", "model_q4.onnx"] {
        let m = model(file);
        // Non-ASCII before the entities: offsets must be bytes into the original text.
        let text = "Café order — please ship it to Maria Gonzalez, 42 Elm Street, Springfield.";
        let got = labelled(text, &m);
        let has = |l: NerLabel, v: &str| got.iter().any(|(x, s)| *x == l && s == v);
        assert!(has(NerLabel::GivenName, "Maria"), "{file}: {got:?}");
        assert!(has(NerLabel::Surname, "Gonzalez"), "{file}: {got:?}");
        assert!(has(NerLabel::BuildingNumber, "42"), "{file}: {got:?}");
        assert!(
            got.iter()
                .any(|(l, s)| *l == NerLabel::StreetName && s.starts_with("Elm")),
            "{file}: {got:?}"
        );
    }
}

#[test]
fn long_text_is_windowed_and_entities_past_the_first_window_are_found() {
    let m = model("model_int8.onnx");
    let filler =
        "The quarterly report covers revenue, churn and hiring plans in detail. ".repeat(60);
    let text = format!("{filler}Send the badge to Olusegun Adeyemi at 17 Harbour Road.");
    assert!(
        m.count_tokens(&text).unwrap() > 700,
        "needs several windows"
    );
    let spans = m.detect(&text, 0.5).unwrap();
    let start = filler.len();
    let names: Vec<&str> = spans
        .iter()
        .filter(|s| matches!(s.label, NerLabel::GivenName | NerLabel::Surname))
        .map(|s| &text[s.start..s.end])
        .collect();
    assert!(
        names.contains(&"Olusegun") && names.contains(&"Adeyemi"),
        "{names:?}"
    );
    assert!(
        spans.iter().all(|s| s.start >= start),
        "filler is not PII: {spans:?}"
    );
    // Each entity is reported once although windows overlap.
    let mut seen = std::collections::HashSet::new();
    assert!(spans.iter().all(|s| seen.insert((s.start, s.end))));
}

#[test]
fn plain_prose_has_no_entities_and_empty_text_is_fine() {
    let m = model("model_int8.onnx");
    assert!(m.detect("", 0.5).unwrap().is_empty());
    let spans = m
        .detect(
            "Explain how a hash map handles collisions, with an example in Rust.",
            0.5,
        )
        .unwrap();
    assert!(spans.is_empty(), "{spans:?}");
}

#[test]
fn a_missing_model_file_is_a_load_error() {
    let mut cfg = NerConfig::new(default_ner_dir());
    cfg.model_file = "no-such-model.onnx".into();
    let err = NerModel::load(&common::runtime(), &cfg).unwrap_err();
    assert!(err.to_string().contains("setup-models"), "{err}");
}
