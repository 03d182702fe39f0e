//! The closed-loop load generator behind the `bench-*` binaries: N keep-alive HTTP/1.1
//! connections (TCP_NODELAY) each sending one request after another for a fixed time,
//! with latency percentiles over the requests that started after a warm-up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One endpoint under load: every request is the same POST.
#[derive(Clone)]
pub struct Target {
    pub url: String,
    /// The `authorization` header, if any.
    pub auth: Option<String>,
    pub body: bytes::Bytes,
    /// An SSE answer, complete only once it ends with `data: [DONE]`.
    pub stream: bool,
}

/// One measured cell: successful requests after the warm-up and their latency.
#[derive(Default, Clone)]
pub struct Stats {
    pub n: usize,
    pub errors: usize,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

/// A multi-thread runtime of its own, so the load generator, the mock and the gateway do
/// not steal each other's workers.
pub fn runtime(name: &str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The client every cell uses: HTTP/1.1 only so each worker keeps one connection, and a
/// pool big enough for the highest concurrency.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client")
}

/// An OpenAI chat completion body: a short system prompt and a user message the mock
/// echoes; streaming requests ask for usage, as SDKs do.
pub fn chat_body(model: &str, stream: bool) -> bytes::Bytes {
    let mut b: Value = json!({"model": model, "max_tokens": 64, "messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "hello from the load generator, please echo this back"}]});
    if stream {
        b["stream"] = json!(true);
        b["stream_options"] = json!({"include_usage": true});
    }
    serde_json::to_vec(&b).expect("JSON body").into()
}

/// One request; `Ok(body)` only for a 2xx whose body is complete (SSE: ends with `[DONE]`).
pub async fn one_checked(client: &reqwest::Client, t: &Target) -> Result<bytes::Bytes, String> {
    let mut rb = client
        .post(&t.url)
        .header("content-type", "application/json")
        .body(t.body.clone());
    if let Some(a) = &t.auth {
        rb = rb.header("authorization", a);
    }
    let resp = rb.send().await.map_err(|e| format!("send: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    if t.stream && !body.ends_with(b"data: [DONE]\n\n") {
        return Err(format!(
            "stream did not end with [DONE]: {}",
            String::from_utf8_lossy(&body)
        ));
    }
    Ok(body)
}

/// `concurrency` workers against `t` for `warmup + secs`; only requests started after the
/// warm-up count.
pub async fn run(t: &Target, concurrency: usize, warmup: Duration, secs: Duration) -> Stats {
    let client = client();
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
                let ok = one_checked(&client, &t).await.is_ok();
                if t0.duration_since(start) >= warmup {
                    if ok {
                        lat.push(t0.elapsed().as_nanos() as u64);
                    } else {
                        errors += 1;
                    }
                } else if !ok {
                    // Do not spin on a dead target during warm-up.
                    tokio::time::sleep(Duration::from_millis(10)).await;
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
        // A request in flight ends within the client timeout (10 s).
        let (l, e) = task.await.expect("load worker");
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
