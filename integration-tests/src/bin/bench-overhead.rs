//! Gateway overhead versus calling the mock upstream directly.
//!
//! `cargo run --release -p switchyard-integration-tests --bin bench-overhead [-- --secs S]`
//!
//! The mock upstream, the gateway and the load generator each run on their own tokio
//! runtime (own worker threads) in this process; all traffic is keep-alive HTTP/1.1 over
//! 127.0.0.1 with TCP_NODELAY on every socket. For each scenario (non-streaming and
//! streaming chat completions, plus OpenAI-client → Anthropic-backend translation) it
//! measures p50/p99 latency at concurrency 1 and throughput at concurrency 16, direct and
//! through the gateway, and prints the added latency in µs and the throughput ratio.
//! Bounded: about `4 × (warmup + secs) × scenarios` seconds (default ≈ 40 s).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions, OPENAI_PROVIDER_KEY};
use switchyard_it::mock::{MockConfig, MockUpstream};

#[derive(Clone)]
struct Target {
    url: String,
    auth: Option<String>,
    body: bytes::Bytes,
    stream: bool,
}

#[derive(Default, Clone)]
struct Stats {
    n: usize,
    errors: usize,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
}

fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn one(client: &reqwest::Client, t: &Target) -> bool {
    let mut rb = client
        .post(&t.url)
        .header("content-type", "application/json")
        .body(t.body.clone());
    if let Some(a) = &t.auth {
        rb = rb.header("authorization", a);
    }
    let Ok(resp) = rb.send().await else {
        return false;
    };
    if !resp.status().is_success() {
        return false;
    }
    match resp.bytes().await {
        Ok(b) => !t.stream || b.ends_with(b"data: [DONE]\n\n"),
        Err(_) => false,
    }
}

async fn run(t: &Target, concurrency: usize, warmup: Duration, secs: Duration) -> Stats {
    let client = client();
    // Warm the pool and both servers.
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, t, stop) = (client.clone(), t.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(100_000);
            let mut errors = 0usize;
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = one(&client, &t).await;
                if t0.duration_since(start) >= warmup {
                    if ok {
                        lat.push(t0.elapsed().as_nanos() as u64);
                    } else {
                        errors += 1;
                    }
                }
            }
            (lat, errors)
        }));
    }
    tokio::time::sleep(warmup + secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        let i = ((all.len() as f64 - 1.0) * p).round() as usize;
        all[i] as f64 / 1000.0
    };
    Stats {
        n: all.len(),
        errors,
        rps: all.len() as f64 / secs.as_secs_f64(),
        p50_us: pct(0.50),
        p99_us: pct(0.99),
    }
}

fn main() {
    let mut secs = 3.0f64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secs" => secs = args.next().and_then(|s| s.parse().ok()).expect("--secs N"),
            _ => {
                eprintln!("usage: bench-overhead [--secs S]");
                std::process::exit(2);
            }
        }
    }
    let secs = Duration::from_secs_f64(secs);
    let warmup = Duration::from_millis(500);

    // Separate runtimes: the mock, the gateway, and the load generator.
    let mock_rt = runtime("mock", 2);
    let gw_rt = runtime("gateway", 2);
    let load_rt = runtime("load", 2);
    let mock = mock_rt.block_on(MockUpstream::start_with(MockConfig {
        record: false,
        ..MockConfig::default()
    }));
    let yaml = gateway_yaml(
        mock.addr,
        &StackOptions {
            record: false,
            ..StackOptions::default()
        },
    );
    let gw = gw_rt
        .block_on(start_gateway(&yaml))
        .unwrap_or_else(|e| panic!("gateway failed to start: {e:#}"));

    let msg = |model: &str, stream: bool| -> bytes::Bytes {
        let mut b: Value = json!({"model": model, "max_tokens": 64, "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello from the load generator, please echo this back"}]});
        if stream {
            b["stream"] = json!(true);
            b["stream_options"] = json!({"include_usage": true});
        }
        serde_json::to_vec(&b).unwrap().into()
    };
    let direct = |stream: bool| Target {
        url: format!("{}/chat/completions", mock.openai_base_url()),
        auth: Some(format!("Bearer {OPENAI_PROVIDER_KEY}")),
        body: msg("gpt-4o-mini", stream),
        stream,
    };
    let via = |model: &str, stream: bool| Target {
        url: format!("http://{}/v1/chat/completions", gw.addr),
        auth: Some("Bearer sk-bench-client".into()),
        body: msg(model, stream),
        stream,
    };
    let scenarios: Vec<(&str, Target, Target)> = vec![
        ("openai json", direct(false), via("gpt-4o-mini", false)),
        ("openai sse", direct(true), via("gpt-4o-mini", true)),
        // Translation: OpenAI client → Anthropic backend, compared with direct OpenAI.
        (
            "openai→anthropic sse",
            direct(true),
            via("claude-echo", true),
        ),
    ];

    println!(
        "bench-overhead: {} s measured per cell after {} ms warm-up; mock, gateway and load on separate runtimes (2 threads each) on {} CPUs",
        secs.as_secs_f64(),
        warmup.as_millis(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!(
        "{:<22} {:>4} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>7}",
        "scenario",
        "conc",
        "dir p50",
        "dir p99",
        "dir rps",
        "gw p50",
        "gw p99",
        "gw rps",
        "+p50 µs",
        "+p99 µs",
        "rps %"
    );
    let mut failed = false;
    for (name, d, g) in &scenarios {
        for conc in [1usize, 16] {
            let sd = load_rt.block_on(run(d, conc, warmup, secs));
            let sg = load_rt.block_on(run(g, conc, warmup, secs));
            if sd.errors > 0 || sg.errors > 0 || sd.n == 0 || sg.n == 0 {
                failed = true;
                eprintln!(
                    "{name} c={conc}: errors direct={} gateway={} (ok direct={} gateway={})",
                    sd.errors, sg.errors, sd.n, sg.n
                );
            }
            println!(
                "{:<22} {:>4} | {:>9.0} {:>9.0} {:>9.0} | {:>9.0} {:>9.0} {:>9.0} | {:>9.0} {:>9.0} {:>6.0}%",
                name,
                conc,
                sd.p50_us,
                sd.p99_us,
                sd.rps,
                sg.p50_us,
                sg.p99_us,
                sg.rps,
                sg.p50_us - sd.p50_us,
                sg.p99_us - sd.p99_us,
                100.0 * sg.rps / sd.rps
            );
        }
    }
    println!("latencies in µs; +p50/+p99 = gateway − direct; rps % = gateway throughput / direct throughput");
    gw_rt.block_on(gw.shutdown());
    drop(mock);
    if failed {
        std::process::exit(1);
    }
}
