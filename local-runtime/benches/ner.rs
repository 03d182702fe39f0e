//! Rampart NER latency per 200 tokens, for each weight format and thread count
//! (`cargo bench -p switchyard-local-runtime --bench ner`; needs scripts/setup-ner.sh
//! `--variants` for the fp32 file). `NER_BENCH_ITERS` sets the repetitions (default 30).

use std::time::Instant;

use local_runtime::{NerConfig, NerModel, RuntimeConfig};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let iters: usize = std::env::var("NER_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
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
            let p50 = pct(&mut ms, 0.5);
            let p90 = pct(&mut ms, 0.9);
            println!(
                "| {label} | {file} | {threads} | {} | {p50:.1} | {p90:.1} |",
                m.count_tokens(t200).unwrap_or(0)
            );
        }
    }
}
