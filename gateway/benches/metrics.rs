//! Cost of recording one request in the Prometheus registry (`Metrics::observe_request`),
//! the work added to every request. Run: `cargo bench -p switchyard --bench metrics`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use switchyard::canonical::Dialect;
use switchyard::telemetry::metrics::RouteKind;
use switchyard::telemetry::{Metrics, MetricsConfig, RequestObservation};

fn main() {
    let metrics = match Metrics::new(MetricsConfig {
        models: vec!["gpt-4o".into(), "qwen2.5-0.5b".into()],
        teams: (0..20).map(|i| format!("team-{i}")).collect(),
        providers: vec!["openai".into(), "local".into()],
        ..Default::default()
    }) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("cannot build metrics: {e}");
            std::process::exit(1);
        }
    };
    let teams: Vec<String> = (0..20).map(|i| format!("team-{i}")).collect();
    let n = 1_000_000u32;
    for round in 0..3 {
        let start = Instant::now();
        for i in 0..n {
            let o = RequestObservation {
                dialect: Dialect::OpenAi,
                route: if i % 3 == 0 {
                    RouteKind::Local
                } else {
                    RouteKind::Frontier
                },
                provider: if i % 3 == 0 { "local" } else { "openai" },
                model: if i % 3 == 0 { "qwen2.5-0.5b" } else { "gpt-4o" },
                rule: Some("default"),
                status: 200,
                latency: Duration::from_micros(u64::from(i % 5000)),
                ttft: Some(Duration::from_micros(300)),
                input_tokens: 100,
                output_tokens: 20,
                cost_micros: 1200,
                savings_micros: 300,
                team: Some(&teams[(i % 20) as usize]),
                cache_hit: Some(i % 7 == 0),
            };
            metrics.observe_request(black_box(&o));
        }
        let per = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!("round {round}: observe_request {per:.0} ns/request");
    }
}
