//! NER PII model latency (needs scripts/setup-models.sh): per 200 tokens for each weight
//! format and thread count, then the latency the gated model adds per request over a
//! mixed prompt set (mode `auto` under the built-in policy: privacy-critical requests stay
//! local, so the model runs only where the rules found nothing and the gate passes).
//!
//! `cargo bench -p switchyard --bench ner` (`NER_BENCH_PROMPTS=file.jsonl` with `prompt`
//! fields replaces the built-in mixed set; `NER_BENCH_ITERS` sets the repetitions).

use std::time::{Duration, Instant};

use local_runtime::{NerConfig, NerModel, RuntimeConfig};
use policies::{Classifier, ClassifyInput, OrgRules, Segment, SegmentRole};
use switchyard::ner::{NerMode, NerSettings};

const MIXED: &[&str] = &[
    "Explain how a hash map handles collisions, with an example in Rust.",
    "What is the capital of Australia?",
    "Write a haiku about autumn rain.",
    "def add(a, b):\n    return a + b\n# write tests for this function",
    "Janet has 3 apples and buys 5 more. How many apples does she have?",
    "Summarize the plot of the novel in which Elizabeth Bennet meets Fitzwilliam Darcy.",
    "Please ship the replacement to Maria Gonzalez, 42 Elm Street, Springfield.",
    "Draft a polite reply to Tomasz Kowalczyk about the delayed refund.",
    "My card is 4111 1111 1111 1111, can you check the charge?",
    "Translate 'good morning' into Spanish, French and German.",
    "SELECT name, COUNT(*) FROM orders GROUP BY name HAVING COUNT(*) > 5;",
    "Compare the marketing strategies of Procter & Gamble and Unilever.",
    "What are the main causes of inflation? Answer in three bullet points.",
    "Our new hire Priya Raman needs a laptop and a badge. Draft the IT request.",
    "Write a short biography of Marie Curie.",
    "Give me a regex that matches ISO 8601 dates.",
    "How do I center a div in CSS?",
    "My email is jon.smith77@fastmail.com, please unsubscribe me.",
    "List five healthy breakfast ideas.",
    "The New York Times reported on the Federal Reserve decision today. Summarise it.",
];

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let iters: usize = std::env::var("NER_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rt = RuntimeConfig::default();
    let dir = local_runtime::ner::default_ner_dir();
    // A ~200-token prompt (the unit).
    let text = "Hi, this is Maria Gonzalez from accounts. Please send the signed contract to 42 Elm Street, Springfield, IL 62704, or call me on 555-201-3344 before Friday. ".repeat(5);
    println!("| weight format | file | threads | tokens | p50 ms | p90 ms |");
    println!("|---|---|---|---|---|---|");
    for (label, file) in [
        ("int4 (as shipped)", "model_q4.onnx"),
        ("int8", "model_int8.onnx"),
        ("fp32", "model_fp32.onnx"),
    ] {
        if !dir.join(file).is_file() {
            println!("| {label} | {file} | - | - | missing (scripts/setup-ner.sh --variants) | |");
            continue;
        }
        for threads in [1, 2] {
            let mut cfg = NerConfig::new(&dir);
            cfg.model_file = file.into();
            cfg.threads = threads;
            let m = NerModel::load(&rt, &cfg).expect("load NER model");
            let tokens = m.count_tokens(&text).expect("tokenize");
            let cut = text
                .char_indices()
                .map(|(i, _)| i)
                .find(|&i| m.count_tokens(&text[..i]).unwrap_or(0) >= 200)
                .unwrap_or(text.len());
            let t200 = &text[..cut];
            let _ = m.detect(t200, 0.5);
            let mut ms: Vec<f64> = (0..iters)
                .map(|_| {
                    let t = Instant::now();
                    let _ = m.detect(t200, 0.5);
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            let _ = tokens;
            let p50 = pct(&mut ms, 0.5);
            let p90 = pct(&mut ms, 0.9);
            println!(
                "| {label} | {file} | {threads} | {} | {p50:.1} | {p90:.1} |",
                m.count_tokens(t200).unwrap_or(0)
            );
        }
    }

    // Gated added latency over the mixed set.
    let prompts: Vec<String> = match std::env::var("NER_BENCH_PROMPTS") {
        Ok(path) => std::fs::read_to_string(&path)
            .expect("read NER_BENCH_PROMPTS")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["prompt"].as_str().map(str::to_string))
            .collect(),
        Err(_) => MIXED.iter().map(|s| s.to_string()).collect(),
    };
    let classifier = Classifier::new(OrgRules::default()).expect("classifier");
    println!();
    println!("| mode | prompts | model ran | added p50 ms | added p90 ms | added mean ms |");
    println!("|---|---|---|---|---|---|");
    for mode in [NerMode::Auto, NerMode::Always] {
        let settings = NerSettings {
            mode,
            execution_providers: vec![local_runtime::ExecutionProvider::Cpu],
            ..NerSettings::default()
        };
        let det = switchyard::ner::load(&settings, &rt)
            .expect("load")
            .expect("mode is on");
        let mut added = Vec::with_capacity(prompts.len());
        let mut ran = 0;
        for p in &prompts {
            let segs = [Segment {
                role: SegmentRole::User,
                text: p,
            }];
            let c = classifier.classify(&ClassifyInput {
                segments: &segs,
                embedding: None,
            });
            // Built-in policy: a privacy-critical request stays local, so its outcome is
            // settled before the model (what `PolicyRouter::decide` computes).
            let allowed = det.mode_allows(&c, c.sensitive);
            let t = Instant::now();
            let run = det.scan(&[(SegmentRole::User, p.as_str())], &c, allowed);
            let d: Duration = t.elapsed();
            if run.outcome == switchyard::ner::NerOutcome::Ran {
                ran += 1;
            }
            added.push(d.as_secs_f64() * 1e3);
        }
        let mean = added.iter().sum::<f64>() / added.len().max(1) as f64;
        let p50 = pct(&mut added, 0.5);
        let p90 = pct(&mut added, 0.9);
        println!(
            "| {} | {} | {ran} | {p50:.2} | {p90:.2} | {mean:.2} |",
            mode.as_str(),
            prompts.len()
        );
    }
}
