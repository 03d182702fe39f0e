//! What the sentence head (MiniLM embedding + logistic read-outs, `classifier.sentence_head`)
//! costs: per 200-token prompt with one and two encoder threads, and the latency it adds
//! per request over a mixed prompt set in modes `auto` (built-in policy: a request the
//! rules made privacy-critical stays local, so its outcome is settled; the policy reads no
//! difficulty, so a message with no first-person word is skipped) and `always`.
//! Needs scripts/setup-models.sh (which trains the head).
//!
//! `cargo bench -p switchyard --bench sentence_head` (`HEAD_BENCH_PROMPTS=file.jsonl` with
//! `prompt` fields replaces the built-in mixed set; one pass per prompt after a warm-up).

use std::time::Instant;

use local_runtime::RuntimeConfig;
use policies::{Classifier, ClassifyInput, OrgRules, Segment, SegmentRole};
use switchyard::sentence_head::{HeadMode, HeadSettings};

#[path = "mixed_prompts.rs"]
mod mixed_prompts;
use mixed_prompts::MIXED;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// About 200 MiniLM tokens of ordinary prose with a figure or two.
fn prompt_200_tokens() -> String {
    let s =
        "Our team is reviewing the quarterly plan and wants a short summary of the main risks, \
             the budget of 120 thousand, and the hiring timeline for the two new roles. ";
    s.repeat(6)
}

fn main() {
    let rt = RuntimeConfig::default();
    let classifier = Classifier::new(OrgRules::default()).expect("classifier");
    let classify = |p: &str| {
        let segs = [Segment {
            role: SegmentRole::User,
            text: p,
        }];
        classifier.classify(&ClassifyInput {
            segments: &segs,
            embedding: None,
        })
    };

    // Per 200 tokens, 1 and 2 threads.
    let long = prompt_200_tokens();
    println!();
    println!("| learned path, 200-token prompt | runs | p50 ms | p90 ms |");
    println!("|---|---|---|---|");
    for threads in [1, 2] {
        let settings = HeadSettings {
            mode: HeadMode::Always,
            threads,
            ..HeadSettings::default()
        };
        let head = switchyard::sentence_head::load(&settings, &rt)
            .expect("load (run scripts/setup-models.sh)")
            .expect("mode is on");
        let base = classify(&long);
        let segs = [(SegmentRole::User, long.as_str())];
        for _ in 0..3 {
            head.apply(&segs, &mut base.clone(), true, true);
        }
        let mut ms = Vec::new();
        for _ in 0..30 {
            let mut c = base.clone();
            let t = Instant::now();
            head.apply(&segs, &mut c, true, true);
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let p50 = pct(&mut ms, 0.5);
        let p90 = pct(&mut ms, 0.9);
        println!("| {threads} thread(s) | 30 | {p50:.2} | {p90:.2} |");
    }

    // Added latency over a mixed set.
    let prompts: Vec<String> = match std::env::var("HEAD_BENCH_PROMPTS") {
        Ok(path) => std::fs::read_to_string(&path)
            .expect("read HEAD_BENCH_PROMPTS")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["prompt"].as_str().map(str::to_owned))
            .collect(),
        Err(_) => MIXED.iter().map(|s| s.to_string()).collect(),
    };
    println!();
    println!("| mode | prompts | head ran | added p50 ms | added p90 ms | added mean ms |");
    println!("|---|---|---|---|---|---|");
    for mode in [HeadMode::Auto, HeadMode::Always] {
        let settings = HeadSettings {
            mode,
            ..HeadSettings::default()
        };
        let head = switchyard::sentence_head::load(&settings, &rt)
            .expect("load")
            .expect("mode is on");
        let mut added = Vec::with_capacity(prompts.len());
        let mut ran = 0;
        for p in &prompts {
            let mut c = classify(p);
            let allowed = head.mode_allows(&c, c.sensitive);
            let segs = [(SegmentRole::User, p.as_str())];
            let t = Instant::now();
            // The built-in policy reads no difficulty.
            head.apply(&segs, &mut c, allowed, false);
            added.push(t.elapsed().as_secs_f64() * 1e3);
            ran += usize::from(
                allowed && (mode == HeadMode::Always || policies::classify::head::first_person(p)),
            );
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
