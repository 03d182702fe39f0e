//! Generation benchmark on the default model (not a test). Needs scripts/setup-models.sh.
//!
//!   CARGO_TARGET_DIR=... cargo bench -p switchyard-local-runtime --bench generate
//!
//! Prints load time, time to first token, single-stream decode tokens/s, aggregate tokens/s
//! at 1/4/8/16 concurrent streams, next to a plain Python onnxruntime greedy loop on the same
//! ONNX file (scripts/convert/bench_python_loop.py), and bytes read per token.
//! Env: BENCH_TOKENS (default 64), BENCH_STREAMS (default "1,4,8,16"),
//! BENCH_MODEL_DIR (default: the set-up cache's SmolLM2), BENCH_EP ("cpu" (default) or
//! "cuda": execution providers [cuda, cpu]), BENCH_PYTHON=0 (skip the Python baseline).
//! Warnings (e.g. a CUDA fallback and its reason) are printed to stderr; the last line is
//! `BENCH_JSON {...}` with the figures, for scripts (local-runtime/scripts/gpu-check.sh).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use local_runtime::{
    default_cache_dir, model_names, ChatMessage, ExecutionProvider, GenerateEvent, GenerateRequest,
    LocalModel, LocalModelConfig, ModelCatalog, RuntimeConfig, SamplingParams,
};

/// Minimal tracing subscriber: prints INFO and above (target, message, fields) to stderr, so
/// the runtime's "falling back to CPU" warning and its reason are visible in bench logs.
struct StderrLog;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?} "));
        } else {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }
}

impl tracing::Subscriber for StderrLog {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::INFO
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        let mut f = Fields(String::new());
        e.record(&mut f);
        eprintln!(
            "[{} {}] {}",
            e.metadata().level(),
            e.metadata().target(),
            f.0.trim_end()
        );
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

const PROMPTS: &[&str] = &[
    "Write a long story about a dragon who learns to fly.",
    "Explain in detail how a steam engine works.",
    "Describe the history of the Roman Empire in detail.",
    "Write a long letter to a friend about your summer holidays.",
    "Explain how photosynthesis works, step by step.",
    "Write a detailed guide to baking bread at home.",
    "Describe a journey across the ocean on a sailing ship.",
    "Explain the rules of chess to a beginner in detail.",
];

struct Run {
    ttft: Duration,
    decode: Duration,
    tokens: u32,
}

async fn run_one(m: &LocalModel, prompt: &str, max_tokens: u32) -> Run {
    let req = GenerateRequest {
        messages: vec![ChatMessage::user(prompt)],
        params: SamplingParams::greedy(max_tokens),
    };
    let t0 = Instant::now();
    let mut rx = m.generate(req).expect("generate");
    let mut first = None;
    let mut tokens = 0;
    while let Some(ev) = rx.recv().await {
        match ev {
            GenerateEvent::Text(_) if first.is_none() => first = Some(t0.elapsed()),
            GenerateEvent::Done {
                completion_tokens, ..
            } => tokens = completion_tokens,
            GenerateEvent::Error(e) => panic!("generation failed: {e}"),
            _ => {}
        }
    }
    let total = t0.elapsed();
    let ttft = first.unwrap_or(total);
    Run {
        ttft,
        decode: total - ttft,
        tokens,
    }
}

fn memory_bandwidth_gbs() -> f64 {
    let n = 64 << 20; // 256 MiB of f32
    let src = vec![1.0f32; n];
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        // 16 independent lanes so the loop vectorises and is bound by memory, not adds
        let mut acc = [0f32; 16];
        for c in src.chunks_exact(16) {
            for (a, x) in acc.iter_mut().zip(c) {
                *a += x;
            }
        }
        std::hint::black_box(acc);
        best = best.min(t.elapsed().as_secs_f64());
    }
    (n * 4) as f64 / best / 1e9
}

fn python_loop(dir: &std::path::Path, ids: &[u32], tokens: u32) -> Option<serde_json::Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/convert/bench_python_loop.py");
    let py = default_cache_dir().join("venv-convert/bin/python");
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let out = Command::new(py)
        .arg(script)
        .arg("--model")
        .arg(dir)
        .arg("--ids")
        .arg(ids.join(","))
        .arg("--new-tokens")
        .arg(tokens.to_string())
        .arg("--ignore-eos")
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python loop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = tracing::subscriber::set_global_default(StderrLog);
    let tokens: u32 = std::env::var("BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let streams: Vec<usize> = std::env::var("BENCH_STREAMS")
        .unwrap_or_else(|_| "1,4,8,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = std::env::var_os("BENCH_MODEL_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            default_cache_dir()
                .join("models")
                .join(model_names::SMOLLM2_135M)
        });
    let want_cuda = std::env::var("BENCH_EP").is_ok_and(|v| v.eq_ignore_ascii_case("cuda"));
    let run_python = std::env::var("BENCH_PYTHON").map_or(true, |v| v != "0");
    if !dir.join("model.onnx").is_file() {
        eprintln!(
            "{} missing: run scripts/setup-models.sh first",
            dir.display()
        );
        std::process::exit(1);
    }
    let model_bytes = std::fs::metadata(dir.join("model.onnx"))
        .map(|m| m.len())
        .unwrap_or(0);

    let mut cfg = LocalModelConfig::new(
        "local/smollm2-135m-instruct",
        &dir,
        ModelCatalog::smollm2_135m(),
    );
    cfg.max_batch = streams.iter().copied().max().unwrap_or(16).max(1);
    cfg.max_context = 1024;
    if want_cuda {
        cfg.execution_providers = vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu];
    }
    let t = Instant::now();
    let m = LocalModel::load(&RuntimeConfig::default(), cfg).expect("load");
    let load = t.elapsed();

    // warm-up
    run_one(&m, PROMPTS[0], 8).await;

    // single stream
    let r = run_one(&m, PROMPTS[0], tokens).await;
    let single_tps = (r.tokens.saturating_sub(1)) as f64 / r.decode.as_secs_f64();
    let ttft = r.ttft;

    // aggregate
    let mut agg = Vec::new();
    for &n in &streams {
        let before = m.stats();
        let t = Instant::now();
        let mut hs = Vec::new();
        for i in 0..n {
            let m = m.clone();
            hs.push(tokio::spawn(async move {
                run_one(&m, PROMPTS[i % PROMPTS.len()], tokens).await
            }));
        }
        let mut total = 0u32;
        for h in hs {
            total += h.await.expect("join").tokens;
        }
        let wall = t.elapsed().as_secs_f64();
        let after = m.stats();
        agg.push((
            n,
            total as f64 / wall,
            after.max_batch_seen,
            after.batches_run - before.batches_run,
        ));
    }

    // python baseline on the same file, same prompt
    let ids = m
        .prompt_token_ids(&[ChatMessage::user(PROMPTS[0])])
        .expect("tokenize");
    let py = if run_python {
        python_loop(&dir, &ids, tokens)
    } else {
        None
    };
    let py_tps = py.as_ref().and_then(|v| v["decode_tokens_per_s"].as_f64());
    let py_ttft = py.as_ref().and_then(|v| v["ttft_ms"].as_f64());
    let py_load = py.as_ref().and_then(|v| v["load_ms"].as_f64());
    let bw = memory_bandwidth_gbs();

    let ratio = |a: f64, b: Option<f64>| {
        b.map(|b| format!("{:.2}x", a / b))
            .unwrap_or_else(|| "n/a".into())
    };
    let opt = |b: Option<f64>, unit: &str| {
        b.map(|b| format!("{b:.1} {unit}"))
            .unwrap_or_else(|| "n/a".into())
    };
    println!(
        "\n{} fp32 ONNX, {} ({} threads), {tokens} new tokens, greedy",
        dir.display(),
        m.execution_provider(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("| metric | switchyard (Rust) | python ort loop | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| load time | {:.0} ms | {} | |",
        load.as_secs_f64() * 1e3,
        opt(py_load, "ms")
    );
    println!(
        "| time to first token | {:.1} ms | {} | {} (lower is better) |",
        ttft.as_secs_f64() * 1e3,
        opt(py_ttft, "ms"),
        ratio(ttft.as_secs_f64() * 1e3, py_ttft)
    );
    println!(
        "| single-stream decode | {single_tps:.1} tok/s | {} | {} |",
        opt(py_tps, "tok/s"),
        ratio(single_tps, py_tps)
    );
    for (n, tps, maxb, steps) in &agg {
        println!(
            "| aggregate, {n} streams | {tps:.1} tok/s (max batch {maxb}, {steps} steps) | | {:.2}x single |",
            tps / single_tps
        );
    }
    let mb = model_bytes as f64 / 1e6;
    println!(
        "\nbytes read per token: ~{mb:.0} MB of weights at batch 1 (÷ batch size when batched); \
         single-stream {:.1} GB/s effective vs ~{bw:.1} GB/s measured single-thread read bandwidth (rough)",
        mb * single_tps / 1e3
    );
    let json = serde_json::json!({
        "model_dir": dir.display().to_string(),
        "execution_provider": m.execution_provider(),
        "requested": if want_cuda { "cuda" } else { "cpu" },
        "tokens": tokens,
        "load_ms": load.as_secs_f64() * 1e3,
        "ttft_ms": ttft.as_secs_f64() * 1e3,
        "single_tok_s": single_tps,
        "single_completion_tokens": r.tokens,
        "aggregate": agg.iter().map(|(n, tps, maxb, steps)| serde_json::json!({
            "streams": n, "tok_s": tps, "max_batch_seen": maxb, "steps": steps,
        })).collect::<Vec<_>>(),
        "python_tok_s": py_tps,
    });
    println!("BENCH_JSON {json}");
    // Let the scheduler thread drop its ONNX session before the process exits: on the CUDA
    // EP, a session destroyed while exit() tears down the CUDA runtime segfaults (seen on an
    // H200, exit status 139 after all output). BENCH_EXIT_WAIT_MS=0 reproduces it.
    let wait_ms: u64 = std::env::var("BENCH_EXIT_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    drop(m);
    std::thread::sleep(Duration::from_millis(wait_ms));
    eprintln!("bench: exiting after {wait_ms} ms wait");
}
