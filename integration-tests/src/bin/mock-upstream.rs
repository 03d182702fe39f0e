//! Standalone mock upstream (OpenAI + Anthropic wire formats; see `switchyard_it::mock`).
//!
//! `mock-upstream --listen 127.0.0.1:PORT [--record] [--openai-key K] [--anthropic-key K]`
//! prints `listening on ADDR` once bound, then serves until killed. Requests are not
//! recorded unless `--record` is given (nobody reads them here; keeps memory flat under load).

use switchyard_it::mock::{MockConfig, MockUpstream};

fn usage() -> ! {
    eprintln!("usage: mock-upstream [--listen 127.0.0.1:PORT] [--record] [--openai-key K] [--anthropic-key K] [--threads N]");
    std::process::exit(2)
}

fn main() {
    let mut listen = "127.0.0.1:0".to_string();
    let mut cfg = MockConfig {
        record: false,
        ..MockConfig::default()
    };
    let mut threads: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage()),
            "--record" => cfg.record = true,
            "--openai-key" => cfg.openai_key = args.next().unwrap_or_else(|| usage()),
            "--anthropic-key" => cfg.anthropic_key = args.next().unwrap_or_else(|| usage()),
            "--threads" => {
                threads = Some(
                    args.next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or_else(|| usage()),
                )
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    let addr = listen.parse().unwrap_or_else(|_| usage());
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = threads {
        rt.worker_threads(n);
    }
    rt.build().expect("tokio runtime").block_on(async move {
        let mock = MockUpstream::bind(addr, cfg).await.unwrap_or_else(|e| {
            eprintln!("mock-upstream: cannot listen on {listen}: {e}");
            std::process::exit(1)
        });
        println!("listening on {}", mock.addr);
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::future::pending::<()>().await;
    });
}
