//! Scores the rules on the hand-written probe set (`tests/data/probe.jsonl`, written for issue
//! #15 from scratch: support tickets, CRM notes, HR cases, clinical letters, claims, configs and
//! logs in nine languages, with hard negatives of the same shapes) and pins the figures.
//!
//! The set has two parts: `tune-` rows were read while generalising the rules, `held-` rows
//! were only ever scored. Per part it checks recall, hard-negative false-positive rate and
//! per-category recall (the row is flagged *and* the category is predicted, as
//! `shared/eval/score.py` counts it) against floors set at what the rules reached; a change
//! that loses any of them fails here.
//!
//! `cargo test -p switchyard-policies --test classify_probe -- --nocapture` prints the table;
//! with `PROBE_MISSES=1` it also lists the tune part's misses and false positives (never the
//! held part's, which stays a measurement).
use std::collections::BTreeMap;

use policies::{Category, Classifier, ClassifyInput, OrgRules, Segment, SegmentRole};
use serde_json::Value;

const CATEGORIES: [&str; 5] = ["pii", "phi", "financial", "secret", "confidential"];

#[derive(Default, Debug)]
struct Score {
    tp: u32,
    fp: u32,
    fn_: u32,
    tn: u32,
    hn: u32,
    hn_fp: u32,
    support: BTreeMap<&'static str, u32>,
    hit: BTreeMap<&'static str, u32>,
    pred: BTreeMap<&'static str, u32>,
    pred_ok: BTreeMap<&'static str, u32>,
}

fn ratio(a: u32, b: u32) -> f64 {
    if b == 0 {
        1.0
    } else {
        f64::from(a) / f64::from(b)
    }
}

impl Score {
    fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }
    fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }
    fn hn_fpr(&self) -> f64 {
        if self.hn == 0 {
            0.0
        } else {
            f64::from(self.hn_fp) / f64::from(self.hn)
        }
    }
    fn cat_recall(&self, c: &str) -> f64 {
        ratio(
            self.hit.get(c).copied().unwrap_or(0),
            self.support.get(c).copied().unwrap_or(0),
        )
    }
    fn cat_precision(&self, c: &str) -> f64 {
        ratio(
            self.pred_ok.get(c).copied().unwrap_or(0),
            self.pred.get(c).copied().unwrap_or(0),
        )
    }
}

fn category_name(c: Category) -> &'static str {
    c.as_str()
}

fn score(part: &str, show_misses: bool) -> Score {
    let clf = Classifier::new(OrgRules::default()).expect("builtin classifier compiles");
    let data = include_str!("data/probe.jsonl");
    let mut s = Score::default();
    for line in data.lines().filter(|l| !l.trim().is_empty()) {
        let row: Value = serde_json::from_str(line).expect("probe row is JSON");
        let id = row["id"].as_str().expect("id");
        if !id.starts_with(part) {
            continue;
        }
        let prompt = row["prompt"].as_str().expect("prompt");
        let gold: Vec<&'static str> = row["categories"]
            .as_array()
            .expect("categories")
            .iter()
            .map(|v| {
                let c = v.as_str().expect("category");
                CATEGORIES
                    .iter()
                    .copied()
                    .find(|k| *k == c)
                    .expect("known category")
            })
            .collect();
        let hard_negative = row["source"]
            .as_str()
            .is_some_and(|s| s.ends_with("/hard-negative"));
        let segs = [Segment {
            role: SegmentRole::User,
            text: prompt,
        }];
        let out = clf.classify(&ClassifyInput {
            segments: &segs,
            embedding: None,
        });
        let guess = out.sensitive;
        let predicted: Vec<&'static str> =
            out.categories.iter().map(|c| category_name(*c)).collect();
        match (!gold.is_empty(), guess) {
            (true, true) => s.tp += 1,
            (true, false) => s.fn_ += 1,
            (false, true) => s.fp += 1,
            (false, false) => s.tn += 1,
        }
        if hard_negative {
            s.hn += 1;
            s.hn_fp += u32::from(guess);
        }
        let mut missed = Vec::new();
        for c in &gold {
            *s.support.entry(c).or_default() += 1;
            let ok = guess && predicted.contains(c);
            *s.hit.entry(c).or_default() += u32::from(ok);
            if !ok {
                missed.push(*c);
            }
        }
        if guess {
            for c in &predicted {
                *s.pred.entry(c).or_default() += 1;
                *s.pred_ok.entry(c).or_default() += u32::from(gold.contains(c));
            }
        }
        let wrong = !missed.is_empty() || (gold.is_empty() && guess);
        if show_misses && wrong {
            let kinds: Vec<String> = out
                .findings
                .iter()
                .map(|f| format!("{}:{}@{:.2}", f.category.as_str(), f.kind, f.confidence))
                .collect();
            eprintln!(
                "{id} gold={gold:?} missed={missed:?} got={predicted:?} {kinds:?}\n    {prompt}"
            );
        }
    }
    s
}

fn report(part: &str, s: &Score) {
    let cats: Vec<String> = CATEGORIES
        .iter()
        .map(|c| {
            format!(
                "{c} {:.3} (p {:.3}, n {})",
                s.cat_recall(c),
                s.cat_precision(c),
                s.support.get(c).copied().unwrap_or(0)
            )
        })
        .collect();
    eprintln!(
        "probe {part}: recall {:.3} precision {:.3} HN-FPR {:.3} ({}/{}) | {}",
        s.recall(),
        s.precision(),
        s.hn_fpr(),
        s.hn_fp,
        s.hn,
        cats.join(" | ")
    );
}

/// Floors: recall, HN-FPR ceiling, per-category recall pii/phi/financial/secret/confidential.
/// Set at what the rules reach (docs/classification.md has the before/after table); before
/// this work the same rows scored tune 0.670 / 0.250, held 0.705 / 0.231, fresh 0.595 / 0.273
/// (recall / HN-FPR).
struct Floors {
    recall: f64,
    hn_fpr: f64,
    cats: [f64; 5],
}

fn check(part: &str, floors: &Floors) {
    let show = part != "held" && std::env::var_os("PROBE_MISSES").is_some();
    let s = score(part, show);
    report(part, &s);
    assert!(s.tp + s.fn_ >= 30, "{part}: probe rows missing");
    assert!(
        s.recall() >= floors.recall,
        "{part}: recall {:.3} < floor {:.3}",
        s.recall(),
        floors.recall
    );
    assert!(
        s.hn_fpr() <= floors.hn_fpr,
        "{part}: hard-negative FPR {:.3} > ceiling {:.3}",
        s.hn_fpr(),
        floors.hn_fpr
    );
    for (c, floor) in CATEGORIES.iter().zip(floors.cats) {
        assert!(
            s.cat_recall(c) >= floor,
            "{part}: {c} recall {:.3} < floor {floor:.3}",
            s.cat_recall(c)
        );
    }
}

#[test]
fn probe_tune_part_holds_its_figures() {
    check(
        "tune",
        &Floors {
            recall: 0.991,
            hn_fpr: 0.028,
            cats: [0.967, 0.954, 1.0, 1.0, 1.0],
        },
    );
}

#[test]
fn probe_held_part_holds_its_figures() {
    check(
        "held",
        &Floors {
            recall: 0.948,
            hn_fpr: 0.077,
            cats: [0.954, 0.875, 0.916, 0.928, 1.0],
        },
    );
}

/// Everyday sentences that share words with the multilingual rules (plans, do-not-share
/// lines, family words, doctors, recipes, salary statistics, passwords talked about): none
/// is sensitive.
#[test]
fn probe_fresh_part_holds_its_figures() {
    check(
        "fresh",
        &Floors {
            recall: 1.0,
            hn_fpr: 0.0,
            cats: [1.0, 1.0, 1.0, 1.0, 1.0],
        },
    );
}

#[test]
fn everyday_sentences_sharing_rule_words_are_not_sensitive() {
    let clf = Classifier::new(OrgRules::default()).expect("builtin classifier compiles");
    for text in [
        "Vamos a comprar pan y leche para la cena, ¿qué receta me recomiendas?",
        "Wir werden die Kosten für das Essen übernehmen, schreib eine nette Einladung.",
        "Nous allons fermer la fenêtre avant la pluie.",
        "Chiuderemo la porta alle otto, scrivi un cartello per il condominio.",
        "We sluiten de vergadering om vijf uur af.",
        "Vamos vender o carro velho, como escrevo o anúncio?",
        "Intern: please review the pull request from the new intern.",
        "No compartir contraseñas es una buena práctica de seguridad, explícalo.",
        "Mi madre tiene 70 años y le gusta el jardín.",
        "Mein Hausarzt ist sehr nett, wie bedanke ich mich?",
        "Explain what 'Vertraulich – nur für den Dienstgebrauch' means on German documents.",
        "Ik heb een vraag over de operatie van mijn auto.",
        "The salary range for this job is €45.000 to €55.000.",
        "Das Gehalt für Junior-Entwickler liegt bei 48.000 Euro, stimmt das?",
        "Le salaire minimum en France est de 1 766 euros brut.",
        "Our wifi is called the best in town by customers.",
        "Wie war der Film? Ich habe ihn mit meiner Mutter gesehen.",
        "Je gagne toujours aux échecs contre mon frère, 3 parties sur 4.",
        "Mon mot de passe est trop court, quelles règles dois-je suivre ?",
        "Write a tagline for Marks & Spencer's summer sale.",
    ] {
        let segs = [Segment {
            role: SegmentRole::User,
            text,
        }];
        let out = clf.classify(&ClassifyInput {
            segments: &segs,
            embedding: None,
        });
        assert!(!out.sensitive, "{text}: {:?}", out.findings);
    }
}
