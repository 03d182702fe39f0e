//! Bounded load through the gateway against the mock: thousands of mixed requests (both
//! dialects, streaming and not), zero errors, the ledger counts exactly what was served,
//! and memory stays flat between two equal rounds.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use switchyard_it::client::Dialect;
use switchyard_it::harness::{gateway_yaml, start_gateway, StackOptions};
use switchyard_it::mock::{MockConfig, MockUpstream};

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

async fn round(client: &reqwest::Client, addr: std::net::SocketAddr, n: usize) -> usize {
    let results = futures::stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            async move {
                let dialect = if i % 2 == 0 {
                    Dialect::OpenAi
                } else {
                    Dialect::Anthropic
                };
                let stream = i % 3 == 0;
                let model = if i % 4 < 2 {
                    "gpt-4o-mini"
                } else {
                    "claude-echo"
                };
                let mut body = json!({"model": model, "stream": stream,
                    "messages": [{"role": "user", "content": format!("load test {i}")}]});
                let rb = match dialect {
                    Dialect::OpenAi => client.post(format!("http://{addr}/v1/chat/completions")),
                    Dialect::Anthropic => {
                        body["max_tokens"] = json!(16);
                        client
                            .post(format!("http://{addr}/v1/messages"))
                            .header("anthropic-version", "2023-06-01")
                    }
                };
                let resp = rb
                    .header("x-switchyard-team", "load")
                    .json(&body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<bool>>()
        .await;
    results.into_iter().filter(|ok| *ok).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_mixed_requests_zero_errors_ledger_exact_memory_flat() {
    let mock = MockUpstream::start_with(MockConfig {
        record: false,
        ..MockConfig::default()
    })
    .await;
    let gw = start_gateway(&gateway_yaml(mock.addr, &StackOptions::default()))
        .await
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let started = Instant::now();
    let n = 1500;
    assert_eq!(
        round(&client, gw.addr, n).await,
        n,
        "every request of round 1 succeeded"
    );
    let after_first = rss_kb();
    assert_eq!(
        round(&client, gw.addr, n).await,
        n,
        "every request of round 2 succeeded"
    );
    let after_second = rss_kb();
    assert!(started.elapsed() < Duration::from_secs(120));
    // Same work again must not grow memory meaningfully (caches are bounded, nothing leaks
    // per request). Allow allocator noise.
    assert!(
        after_second <= after_first + 16 * 1024,
        "RSS grew from {after_first} kB to {after_second} kB over an equal second round"
    );

    let ledger = gw.state.ledger.clone().expect("ledger");
    ledger.flush().await.unwrap();
    let q = switchyard::accounting::SpendQuery::parse("team", None, None).unwrap();
    let rows = switchyard::accounting::spend_report(ledger.db(), &q)
        .await
        .unwrap();
    let load = rows.iter().find(|r| r.group == "load").expect("load row");
    assert_eq!(
        load.requests,
        2 * n as i64,
        "one ledger record per request served"
    );
    gw.shutdown().await;
}
