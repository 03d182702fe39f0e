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

use std::time::Duration;

use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions, OPENAI_PROVIDER_KEY};
use switchyard_it::loadgen::{chat_body, run, runtime, Target};
use switchyard_it::mock::{MockConfig, MockUpstream};

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

    let direct = |stream: bool| Target {
        url: format!("{}/chat/completions", mock.openai_base_url()),
        auth: Some(format!("Bearer {OPENAI_PROVIDER_KEY}")),
        body: chat_body("gpt-4o-mini", stream),
        stream,
    };
    let via = |model: &str, stream: bool| Target {
        url: format!("http://{}/v1/chat/completions", gw.addr),
        auth: Some("Bearer sk-bench-client".into()),
        body: chat_body(model, stream),
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
