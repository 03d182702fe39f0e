//! Constrained decoding cost (not a test). Needs scripts/setup-models.sh.
//!
//!   CARGO_TARGET_DIR=... cargo bench -p switchyard-local-runtime --bench structured
//!
//! Runs the same greedy request free and under a JSON schema (the patient record of
//! tests/structured.rs) at 1 and 8 concurrent streams and prints, from the runtime's own
//! counters, the time per token spent on the grammar mask (compute + apply + advance)
//! against the time per token of the decode step, and the throughput of both.
//! Env: BENCH_MODEL_DIR (default: the set-up cache's smollm2-135m-instruct),
//! BENCH_THREADS (default 2), BENCH_TOKENS (default 128), BENCH_ROUNDS (default 3).

use std::time::Instant;

use local_runtime::{
    default_cache_dir, model_names, ChatMessage, GenerateEvent, GenerateRequest, LocalModel,
    LocalModelConfig, ModelCatalog, OutputConstraint, RuntimeConfig, RuntimeStats, SamplingParams,
};
use serde_json::json;

const PROMPT: &str = "Patient John Miller, 54, lives at 12 Oak St, Springfield 62704. Type 2 diabetes, HbA1c 8.2, insured. Give his record as JSON.";

fn schema() -> serde_json::Value {
    // Long free-text fields, so the answer runs to max_tokens and every step is masked.
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "role": {"type": "string", "enum": ["doctor", "patient", "nurse"]},
            "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}, "required": ["city", "zip"]},
            "conditions": {"type": "array", "items": {"type": "string"}},
            "summary": {"type": "string"}
        },
        "required": ["name", "age", "role", "address", "conditions", "summary"]
    })
}

async fn run(m: &LocalModel, constrained: bool, streams: usize, tokens: u32) -> (u64, f64) {
    let mut hs = Vec::new();
    let t = Instant::now();
    for _ in 0..streams {
        let m = m.clone();
        hs.push(tokio::spawn(async move {
            let req = GenerateRequest {
                constraint: constrained.then(|| OutputConstraint::JsonSchema { schema: schema() }),
                ..GenerateRequest::new(
                    vec![ChatMessage::user(PROMPT)],
                    SamplingParams::greedy(tokens),
                )
            };
            let mut rx = m.generate(req).expect("generate");
            let mut n = 0u64;
            while let Some(ev) = rx.recv().await {
                match ev {
                    GenerateEvent::Done {
                        completion_tokens, ..
                    } => n = completion_tokens as u64,
                    GenerateEvent::Error(e) => panic!("generation failed: {e}"),
                    _ => {}
                }
            }
            n
        }));
    }
    let mut total = 0;
    for h in hs {
        total += h.await.expect("join");
    }
    (total, total as f64 / t.elapsed().as_secs_f64())
}

struct Row {
    streams: usize,
    free_tokens: u64,
    constrained_tokens: u64,
    free_tps: f64,
    constrained_tps: f64,
    decode_ms_per_step: f64,
    mask_us_per_token: f64,
    mask_us_per_step: f64,
}

fn delta(a: &RuntimeStats, b: &RuntimeStats) -> (f64, u64, u64, f64) {
    (
        b.busy_ms - a.busy_ms,
        b.batches_run - a.batches_run,
        b.masked_tokens - a.masked_tokens,
        b.mask_ms - a.mask_ms,
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let env_num = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let tokens = env_num("BENCH_TOKENS", 128) as u32;
    let threads = env_num("BENCH_THREADS", 2).max(1) as usize;
    let rounds = env_num("BENCH_ROUNDS", 3).max(1);
    let dir = std::env::var_os("BENCH_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            default_cache_dir()
                .join("models")
                .join(model_names::SMOLLM2_135M)
        });
    let mut cfg = LocalModelConfig::new("local/bench", &dir, ModelCatalog::smollm2_135m());
    cfg.max_batch = 8;
    cfg.max_context = 1024;
    cfg.intra_op_threads = Some(threads);
    let m = LocalModel::load(&RuntimeConfig::default(), cfg).expect("load");
    // Warm-up; the first constrained request also builds the vocabulary trie.
    let t = Instant::now();
    run(&m, true, 1, 4).await;
    let first = t.elapsed();
    run(&m, false, 1, 4).await;

    let mut rows = Vec::new();
    for streams in [1usize, 8] {
        let mut row = Row {
            streams,
            free_tokens: 0,
            constrained_tokens: 0,
            free_tps: 0.0,
            constrained_tps: 0.0,
            decode_ms_per_step: f64::MAX,
            mask_us_per_token: f64::MAX,
            mask_us_per_step: f64::MAX,
        };
        // Interleaved rounds, best of each: the machine is shared.
        for _ in 0..rounds {
            let before = m.stats();
            let (n, tps) = run(&m, false, streams, tokens).await;
            row.free_tokens = n;
            row.free_tps = row.free_tps.max(tps);
            let (busy, steps, _, _) = delta(&before, &m.stats());
            // Model time per decode step of the free run (its prefills amortised in).
            row.decode_ms_per_step = row.decode_ms_per_step.min(busy / steps.max(1) as f64);
            let before = m.stats();
            let (n, tps) = run(&m, true, streams, tokens).await;
            row.constrained_tokens = n;
            let (_, steps, masked, mask_ms) = delta(&before, &m.stats());
            row.constrained_tps = row.constrained_tps.max(tps);
            row.mask_us_per_token = row
                .mask_us_per_token
                .min(mask_ms * 1000.0 / masked.max(1) as f64);
            row.mask_us_per_step = row
                .mask_us_per_step
                .min(mask_ms * 1000.0 / steps.max(1) as f64);
        }
        rows.push(row);
    }
    m.shutdown();

    println!("\nConstrained decoding (llguidance), {} on {threads} threads, {tokens} greedy tokens, best of {rounds}", dir.display());
    println!(
        "first constrained request (builds the vocabulary trie): {:.0} ms",
        first.as_secs_f64() * 1000.0
    );
    println!("| streams | free: tokens, tok/s | constrained: tokens, tok/s | decode step (ms) | mask per token (µs) | mask per step (µs) | mask / decode step |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {}, {:.1} | {}, {:.1} | {:.2} | {:.0} | {:.0} | {:.4} |",
            r.streams,
            r.free_tokens,
            r.free_tps,
            r.constrained_tokens,
            r.constrained_tps,
            r.decode_ms_per_step,
            r.mask_us_per_token,
            r.mask_us_per_step,
            r.mask_us_per_step / 1000.0 / r.decode_ms_per_step
        );
    }
}
