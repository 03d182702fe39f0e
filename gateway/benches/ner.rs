//! The latency the gated NER PII model adds per request over a mixed prompt set (needs
//! scripts/setup-models.sh; per-format model latency is `cargo bench -p
//! switchyard-local-runtime --bench ner`) (mode `auto` under the built-in policy: privacy-critical requests stay
//! local, so the model runs only where the rules found nothing and the gate passes).
//!
//! `cargo bench -p switchyard --bench ner` (`NER_BENCH_PROMPTS=file.jsonl` with `prompt`
//! fields replaces the built-in mixed set; one pass per prompt after a warm-up).

use std::time::{Duration, Instant};

use local_runtime::RuntimeConfig;
use policies::{Classifier, ClassifyInput, OrgRules, Segment, SegmentRole};
use switchyard::ner::{NerMode, NerSettings};

#[path = "mixed_prompts.rs"]
mod mixed_prompts;
use mixed_prompts::MIXED;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let rt = RuntimeConfig::default();
    // Gated added latency over the mixed set.
    // (prompt, labelled sensitive?) — labels only when the file has them.
    let rows: Vec<(String, Option<bool>)> = match std::env::var("NER_BENCH_PROMPTS") {
        Ok(path) => std::fs::read_to_string(&path)
            .expect("read NER_BENCH_PROMPTS")
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| {
                v["prompt"]
                    .as_str()
                    .map(|p| (p.to_string(), v["sensitive"].as_bool()))
            })
            .collect(),
        Err(_) => MIXED.iter().map(|s| (s.to_string(), None)).collect(),
    };
    let prompts: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
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

    // The gate's cost in recall: labelled positives the ungated model flags (>= 0.5)
    // that the gate would skip.
    if rows.iter().any(|r| r.1 == Some(true)) {
        let mut cfg = local_runtime::NerConfig::new(local_runtime::ner::default_ner_dir());
        cfg.model_file = NerSettings::default().model_file;
        let model = local_runtime::NerModel::load(&rt, &cfg).expect("load NER model");
        let settings = NerSettings::default();
        let (mut flagged, mut dropped) = (0, 0);
        for (p, label) in &rows {
            if *label != Some(true) {
                continue;
            }
            let segs = [Segment {
                role: SegmentRole::User,
                text: p,
            }];
            let c = classifier.classify(&ClassifyInput {
                segments: &segs,
                embedding: None,
            });
            let spans = model.detect(p, settings.threshold).expect("detect");
            let ctx = switchyard::ner::Context::of(p, 0, &c);
            let hit = switchyard::ner::interpret(p, &spans, &ctx, &settings)
                .iter()
                .any(|d| d.confidence >= 0.5);
            if hit {
                flagged += 1;
                if !switchyard::ner::gate(p) {
                    dropped += 1;
                }
            }
        }
        println!();
        println!(
            "gate cost: of {flagged} labelled positives the ungated model flags, the gate skips {dropped}"
        );
    }
}
