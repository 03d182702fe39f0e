//! Switchyard versus a peer gateway (LiteLLM's proxy), side by side in one run.
//!
//! ```text
//! bench-peers [--secs S] [--warmup-ms MS]
//!             [--switchyard-bin PATH]               # release `switchyard`; else in-process
//!             [--litellm PATH --litellm-config YAML] # LiteLLM proxy; else the column is skipped
//!             [--litellm-log-config JSON]            # uvicorn log config (no access log)
//!             [--no-stream] [--startup-timeout S]
//! ```
//! Normally run through `bench/peer-litellm.sh`, which builds everything and provides LiteLLM.
//!
//! Starts, all on 127.0.0.1:
//! - the mock upstream (`switchyard_it::mock`) on its own tokio runtime in this process;
//! - Switchyard with the default config (built-in policy and classifier on) plus the mock
//!   providers of `harness::gateway_yaml`: as a `switchyard serve` subprocess when
//!   `--switchyard-bin` is given (so it is a separate process like LiteLLM and its RSS can be
//!   read), otherwise in-process on its own runtime;
//! - LiteLLM as `litellm --config YAML --host 127.0.0.1 --port P --num_workers 1` in its own
//!   process group, with `MOCK_OPENAI_BASE`/`MOCK_OPENAI_KEY` in its environment (the config
//!   refers to them as `os.environ/...`); it is polled on `/health/liveliness`, bounded.
//!
//! Then for each scenario (non-streaming and streaming OpenAI chat completions) and each
//! target (direct to the mock, Switchyard, LiteLLM) it measures p50/p99 latency at
//! concurrency 1 and throughput at concurrency 16 with a keep-alive HTTP/1.1 load
//! generator (TCP_NODELAY), and prints one table with the added latency over direct and the
//! Switchyard/LiteLLM ratios; finally the RSS (VmRSS / VmHWM) of both gateway processes.
//! Bounded: about `2 scenarios × 2 concurrencies × 3 targets × (warmup + secs)` ≈ 42 s with
//! the defaults, plus the gateways' start-up (LiteLLM: bounded by `--startup-timeout`).
//! Exits 1 if any target had errors.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions, OPENAI_PROVIDER_KEY};
use switchyard_it::loadgen::{chat_body, client, one_checked, run, runtime, Target};
use switchyard_it::mock::{MockConfig, MockUpstream};

/// A child process in its own process group, killed (whole group) on drop.
struct Proc {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pg = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &pg]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = Command::new("kill").args(["-KILL", "--", &pg]).status();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // Workers that outlived the leader.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &pg])
            .stderr(Stdio::null())
            .status();
        eprintln!(
            "bench-peers: stopped {} (log: {})",
            self.name,
            self.log.display()
        );
    }
}

fn spawn_group(name: &'static str, mut cmd: Command, log: PathBuf, stdout: Stdio) -> Proc {
    use std::os::unix::process::CommandExt;
    let errlog = std::fs::File::create(&log).expect("log file");
    cmd.process_group(0)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(errlog);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
    Proc { name, child, log }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// kB from a `/proc/PID/status` field such as `VmRSS`.
fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Sum of VmRSS over every process of process group `pgid` (and the count).
fn group_rss_kb(pgid: u32) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let pg = rest
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse::<u32>().ok());
        if pg == Some(pgid) {
            if let Some(kb) = proc_status_kb(pid, "VmRSS") {
                total += kb;
                n += 1;
            }
        }
    }
    (total, n)
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

struct Args {
    secs: f64,
    warmup_ms: u64,
    switchyard_bin: Option<PathBuf>,
    litellm: Option<PathBuf>,
    litellm_config: Option<PathBuf>,
    litellm_log_config: Option<PathBuf>,
    stream: bool,
    startup_timeout: u64,
}

fn usage() -> ! {
    eprintln!("usage: bench-peers [--secs S] [--warmup-ms MS] [--switchyard-bin PATH] [--litellm PATH --litellm-config YAML [--litellm-log-config JSON]] [--no-stream] [--startup-timeout S]");
    std::process::exit(2)
}

fn parse_args() -> Args {
    let mut a = Args {
        secs: 3.0,
        warmup_ms: 500,
        switchyard_bin: None,
        litellm: None,
        litellm_config: None,
        litellm_log_config: None,
        stream: true,
        startup_timeout: 120,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match x.as_str() {
            "--secs" => a.secs = val().parse().unwrap_or_else(|_| usage()),
            "--warmup-ms" => a.warmup_ms = val().parse().unwrap_or_else(|_| usage()),
            "--switchyard-bin" => a.switchyard_bin = Some(val().into()),
            "--litellm" => a.litellm = Some(val().into()),
            "--litellm-config" => a.litellm_config = Some(val().into()),
            "--litellm-log-config" => a.litellm_log_config = Some(val().into()),
            "--startup-timeout" => a.startup_timeout = val().parse().unwrap_or_else(|_| usage()),
            "--no-stream" => a.stream = false,
            _ => usage(),
        }
    }
    if a.litellm.is_some() != a.litellm_config.is_some() {
        usage();
    }
    // Keep every load loop bounded.
    a.secs = a.secs.clamp(0.5, 20.0);
    a
}

/// Starts `switchyard serve` and returns it with the address it printed.
fn start_switchyard_bin(
    bin: &PathBuf,
    yaml: &str,
    dir: &std::path::Path,
    timeout: Duration,
) -> (Proc, String) {
    let cfg = dir.join("switchyard.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut cmd = Command::new(bin);
    cmd.arg("serve").arg("--config").arg(&cfg);
    let mut p = spawn_group(
        "switchyard",
        cmd,
        dir.join("switchyard.log"),
        Stdio::piped(),
    );
    let stdout = p.child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if let Some(a) = line.trim().strip_prefix("switchyard listening on http://") {
                let _ = tx.send(a.to_string());
                break;
            }
            line.clear();
        }
        // Keep draining so the child never blocks on a full pipe.
        let mut sink = Vec::new();
        let _ = r.read_to_end(&mut sink);
    });
    match rx.recv_timeout(timeout) {
        Ok(addr) => (p, addr),
        Err(_) => {
            eprintln!(
                "switchyard did not start within {timeout:?}:\n{}",
                p.log_tail()
            );
            drop(p);
            std::process::exit(1);
        }
    }
}

fn main() {
    let args = parse_args();
    let secs = Duration::from_secs_f64(args.secs);
    let warmup = Duration::from_millis(args.warmup_ms);
    let startup_timeout = Duration::from_secs(args.startup_timeout);
    let t_start = Instant::now();
    let tmp = std::env::temp_dir().join(format!("bench-peers-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();

    let mock_rt = runtime("mock", 2);
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

    // Switchyard: subprocess (release binary) or in-process.
    let mut sy_proc = None;
    let mut sy_inproc = None;
    let gw_rt;
    let sy_addr = match &args.switchyard_bin {
        Some(bin) => {
            gw_rt = None;
            let (p, addr) = start_switchyard_bin(bin, &yaml, &tmp, startup_timeout);
            sy_proc = Some(p);
            addr
        }
        None => {
            let rt = runtime("gateway", 2);
            let gw = rt
                .block_on(start_gateway(&yaml))
                .unwrap_or_else(|e| panic!("gateway failed to start: {e:#}"));
            let addr = gw.addr.to_string();
            sy_inproc = Some(gw);
            gw_rt = Some(rt);
            addr
        }
    };

    // LiteLLM.
    let mut ll_proc = None;
    let mut ll_addr = None;
    if let (Some(bin), Some(cfg)) = (&args.litellm, &args.litellm_config) {
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(cfg)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--num_workers",
                "1",
            ])
            .env("MOCK_OPENAI_BASE", mock.openai_base_url())
            .env("MOCK_OPENAI_KEY", OPENAI_PROVIDER_KEY)
            .env(
                "LITELLM_LOG",
                std::env::var("LITELLM_LOG").unwrap_or("ERROR".into()),
            )
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("DISABLE_SCHEMA_UPDATE", "True")
            .env_remove("DATABASE_URL")
            .env_remove("LITELLM_MASTER_KEY");
        if let Some(l) = &args.litellm_log_config {
            // uvicorn logging config: no access log line per request.
            cmd.arg("--log_config").arg(l);
        }
        let log = tmp.join("litellm.log");
        let mut p = spawn_group("litellm", cmd, log, Stdio::null());
        let addr = format!("127.0.0.1:{port}");
        let health = format!("http://{addr}/health/liveliness");
        let c = client();
        let t0 = Instant::now();
        let ready = load_rt.block_on(async {
            while t0.elapsed() < startup_timeout {
                if let Ok(r) = c.get(&health).timeout(Duration::from_secs(2)).send().await {
                    if r.status().is_success() {
                        return true;
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            false
        });
        if !ready || p.child.try_wait().ok().flatten().is_some() {
            eprintln!(
                "LiteLLM not ready within {startup_timeout:?} (exited: {:?}); log tail:\n{}",
                p.child.try_wait().ok().flatten(),
                p.log_tail()
            );
            drop(p);
            drop(sy_proc);
            std::process::exit(1);
        }
        eprintln!(
            "bench-peers: LiteLLM ready on {addr} after {:.1} s",
            t0.elapsed().as_secs_f64()
        );
        ll_proc = Some(p);
        ll_addr = Some(addr);
    }

    let direct = |stream: bool| Target {
        url: format!("{}/chat/completions", mock.openai_base_url()),
        auth: Some(format!("Bearer {OPENAI_PROVIDER_KEY}")),
        body: chat_body("gpt-4o-mini", stream),
        stream,
    };
    let switchyard = |stream: bool| Target {
        url: format!("http://{sy_addr}/v1/chat/completions"),
        auth: Some("Bearer sk-bench-client".into()),
        body: chat_body("gpt-4o-mini", stream),
        stream,
    };
    let litellm = |stream: bool| {
        ll_addr.as_ref().map(|a| Target {
            url: format!("http://{a}/v1/chat/completions"),
            auth: Some("Bearer sk-bench-client".into()),
            body: chat_body("gpt-4o-mini", stream),
            stream,
        })
    };

    let mut scenarios = vec![("openai json", false)];
    if args.stream {
        scenarios.push(("openai sse", true));
    }

    // Sanity: every target answers the mock's echo before anything is timed.
    let mut failed = false;
    for (name, stream) in &scenarios {
        let mut ts = vec![
            ("direct", direct(*stream)),
            ("switchyard", switchyard(*stream)),
        ];
        if let Some(t) = litellm(*stream) {
            ts.push(("litellm", t));
        }
        for (who, t) in ts {
            let r = load_rt.block_on(one_checked(&client(), &t));
            match r {
                Ok(b) if String::from_utf8_lossy(&b).contains("Echo") => {}
                Ok(b) => {
                    failed = true;
                    eprintln!(
                        "{name} via {who}: answer without the echo: {}",
                        String::from_utf8_lossy(&b)
                    );
                }
                Err(e) => {
                    failed = true;
                    eprintln!("{name} via {who}: {e}");
                }
            }
        }
    }
    if failed {
        if let Some(p) = &ll_proc {
            eprintln!("litellm log tail:\n{}", p.log_tail());
        }
        drop(ll_proc);
        drop(sy_proc);
        std::process::exit(1);
    }

    println!(
        "bench-peers: {} s measured per cell after {} ms warm-up; loopback keep-alive HTTP/1.1; {} CPUs; Switchyard {} (default config: built-in policy + classifier){}",
        secs.as_secs_f64(),
        warmup.as_millis(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if sy_proc.is_some() { "release binary, own process" } else { "in-process, own 2-thread runtime" },
        if ll_proc.is_some() { "; LiteLLM proxy, 1 worker" } else { "; LiteLLM: not run" },
    );
    println!(
        "{:<12} {:<10} | {:>8} {:>8} {:>8} {:>8} | {:>8} {:>8} | {:>6}",
        "scenario", "target", "c1 p50", "c1 p99", "+p50", "+p99", "c16 rps", "c16 p50", "errors"
    );
    let mut ratios = Vec::new();
    for (name, stream) in &scenarios {
        let mut ts = vec![
            ("direct", direct(*stream)),
            ("switchyard", switchyard(*stream)),
        ];
        if let Some(t) = litellm(*stream) {
            ts.push(("litellm", t));
        }
        let mut c1 = Vec::new();
        let mut c16 = Vec::new();
        // Interleaved per concurrency so that background noise hits all targets alike.
        for (_, t) in &ts {
            c1.push(load_rt.block_on(run(t, 1, warmup, secs)));
        }
        for (_, t) in &ts {
            c16.push(load_rt.block_on(run(t, 16, warmup, secs)));
        }
        for (i, (who, _)) in ts.iter().enumerate() {
            let (a, b) = (&c1[i], &c16[i]);
            let errs = a.errors + b.errors;
            if errs > 0 || a.n == 0 || b.n == 0 {
                failed = true;
            }
            let (dp50, dp99) = if i == 0 {
                (f64::NAN, f64::NAN)
            } else {
                (a.p50_us - c1[0].p50_us, a.p99_us - c1[0].p99_us)
            };
            let fmt = |x: f64| {
                if x.is_nan() {
                    "-".to_string()
                } else {
                    format!("{x:.0}")
                }
            };
            println!(
                "{:<12} {:<10} | {:>8.0} {:>8.0} {:>8} {:>8} | {:>8.0} {:>8.0} | {:>6}",
                name,
                who,
                a.p50_us,
                a.p99_us,
                fmt(dp50),
                fmt(dp99),
                b.rps,
                b.p50_us,
                errs
            );
        }
        if ts.len() == 3 {
            let (sy1, ll1, d1) = (&c1[1], &c1[2], &c1[0]);
            ratios.push(format!(
                "{name:<12} Switchyard/LiteLLM: c16 throughput {:.1}×; c1 latency p50 {:.3}, p99 {:.3}; added latency p50 {:.0} vs {:.0} µs ({:.0}× less), p99 {:.0} vs {:.0} µs",
                c16[1].rps / c16[2].rps,
                sy1.p50_us / ll1.p50_us,
                sy1.p99_us / ll1.p99_us,
                sy1.p50_us - d1.p50_us,
                ll1.p50_us - d1.p50_us,
                (ll1.p50_us - d1.p50_us) / (sy1.p50_us - d1.p50_us).max(1.0),
                sy1.p99_us - d1.p99_us,
                ll1.p99_us - d1.p99_us,
            ));
        }
    }
    println!("latencies in µs; +p50/+p99 = target − direct at concurrency 1; c16 = concurrency 16");
    for r in &ratios {
        println!("{r}");
    }

    // Memory after the load: RSS now and peak, and how many ledger records were still
    // queued (not yet written) at that moment.
    if let Some(p) = &sy_proc {
        let pid = p.pid();
        let ready = load_rt.block_on(async {
            let r = client()
                .get(format!("http://{sy_addr}/readyz"))
                .send()
                .await
                .ok()?;
            r.json::<serde_json::Value>().await.ok()
        });
        if let Some(l) = ready.as_ref().map(|v| v["ledger"].clone()) {
            println!("switchyard ledger queue after load: {l}");
        }
        println!(
            "switchyard serve RSS after load: VmRSS {:.1} MB, VmHWM (peak) {:.1} MB (no local model; pid {pid})",
            mb(proc_status_kb(pid, "VmRSS").unwrap_or(0)),
            mb(proc_status_kb(pid, "VmHWM").unwrap_or(0)),
        );
    }
    if let Some(p) = &ll_proc {
        let (kb, n) = group_rss_kb(p.pid());
        println!(
            "litellm proxy RSS after load: VmRSS {:.1} MB over {n} process(es)",
            mb(kb)
        );
    }
    println!("total wall time {:.1} s", t_start.elapsed().as_secs_f64());

    drop(ll_proc);
    drop(sy_proc);
    if let (Some(rt), Some(gw)) = (gw_rt, sy_inproc) {
        rt.block_on(gw.shutdown());
    }
    drop(mock);
    if !failed {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if failed {
        eprintln!("bench-peers: some targets had errors (see the errors column)");
        std::process::exit(1);
    }
}
