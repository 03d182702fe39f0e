//! Observability over HTTP and through the OTel pipeline: `/metrics` after recorded
//! requests, the dashboard's access control and numbers from a real SQLite ledger, and
//! request spans that join the client's trace, carry GenAI attributes and no prompt text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use switchyard::accounting::{AccountingConfig, Ledger, LedgerRecord};
use switchyard::canonical::Dialect;
use switchyard::dashboard::{dashboard_router, DashboardState};
use switchyard::store::Db;
use switchyard::telemetry::metrics::metrics_router;
use switchyard::telemetry::{self, spans, Metrics, MetricsConfig, RequestObservation, RequestSpan};
use tracing_subscriber::layer::SubscriberExt;

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

#[tokio::test]
async fn metrics_endpoint_exposes_recorded_requests() {
    let metrics = Arc::new(
        Metrics::new(MetricsConfig {
            models: vec!["gpt-4o".into()],
            teams: vec!["search".into()],
            providers: vec!["openai".into()],
            ..Default::default()
        })
        .expect("metrics"),
    );
    metrics.observe_request(&RequestObservation {
        dialect: Dialect::Anthropic,
        route: switchyard::telemetry::metrics::RouteKind::Frontier,
        provider: "openai",
        model: "gpt-4o",
        rule: Some("hard-tasks"),
        status: 200,
        latency: Duration::from_millis(250),
        ttft: Some(Duration::from_millis(40)),
        input_tokens: 120,
        output_tokens: 30,
        cost_micros: 2_000,
        savings_micros: 0,
        team: Some("search"),
        cache_hit: Some(true),
    });
    metrics.observe_classifier(Duration::from_micros(80));
    metrics.budget_rejected("team");
    metrics.policy_reloaded(false);
    metrics.set_local_runtime("gpt-4o", 3, 4, 55.5);

    let base = serve(metrics_router(metrics.clone())).await;
    let resp = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert!(resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain")));
    let text = resp.text().await.expect("body");
    for needle in [
        r#"switchyard_requests_total{dialect="anthropic",model="gpt-4o",provider="openai",route="frontier",status="200"} 1"#,
        r#"switchyard_tokens_total{direction="input",model="gpt-4o",provider="openai",route="frontier"} 120"#,
        r#"switchyard_tokens_total{direction="output",model="gpt-4o",provider="openai",route="frontier"} 30"#,
        r#"switchyard_cost_usd_total{model="gpt-4o",route="frontier",team="search"} 0.002"#,
        r#"switchyard_cache_requests_total{result="hit"} 1"#,
        r#"switchyard_routing_decisions_total{route="frontier",rule="hard-tasks"} 1"#,
        r#"switchyard_request_duration_seconds_count{model="gpt-4o",provider="openai",route="frontier",status="200"} 1"#,
        r#"switchyard_time_to_first_token_seconds_count{model="gpt-4o",provider="openai",route="frontier"} 1"#,
        "switchyard_classifier_duration_seconds_count 1",
        r#"switchyard_budget_rejections_total{scope="team"} 1"#,
        r#"switchyard_policy_reloads_total{result="error"} 1"#,
        "switchyard_policy_last_reload_success 0",
        r#"switchyard_local_queue_depth{model="gpt-4o"} 3"#,
        r#"switchyard_local_tokens_per_second{model="gpt-4o"} 55.5"#,
    ] {
        assert!(text.contains(needle), "missing {needle}\n{text}");
    }
}

async fn ledger_with(records: Vec<LedgerRecord>) -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let db = Db::connect(&url).await.expect("connect");
    let ledger = Ledger::start(db.clone(), &AccountingConfig::default());
    for r in records {
        ledger.record(r);
    }
    ledger.flush().await.expect("flush");
    (dir, db)
}

fn record(
    team: &str,
    provider: &str,
    route: &str,
    cost: i64,
    cf: i64,
    latency: u64,
) -> LedgerRecord {
    LedgerRecord {
        team: Some(team.into()),
        provider: provider.into(),
        model: if provider == "local" {
            "qwen2.5-0.5b".into()
        } else {
            "gpt-4o".into()
        },
        route: route.into(),
        input_tokens: 100,
        output_tokens: 20,
        cost_micros: cost,
        counterfactual_micros: cf,
        latency_ms: latency,
        ttft_ms: Some(latency / 4),
        ..LedgerRecord::default()
    }
}

#[tokio::test]
async fn dashboard_requires_the_admin_token_and_shows_ledger_numbers() {
    let (_dir, db) = ledger_with(vec![
        record("search", "openai", "hard", 1_000_000, 1_000_000, 800),
        record("search", "local", "private", 10_000, 500_000, 200),
        record("ads", "openai", "hard", 250_000, 250_000, 400),
    ])
    .await;
    let mut state = DashboardState::new(Some(db), Some("t0ken".into()));
    state.policy_status = Arc::new(|| serde_json::json!({"source": "builtin", "version": 7}));
    state.budget_for = Arc::new(|team| (team == "search").then_some(4_000_000));
    let base = serve(dashboard_router(state)).await;
    let http = client();

    let anon = http
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .expect("get");
    assert_eq!(anon.status(), 401);
    let wrong = http
        .get(format!("{base}/dashboard"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("get");
    assert_eq!(wrong.status(), 401);

    let ok = http
        .get(format!("{base}/dashboard?range=7d"))
        .bearer_auth("t0ken")
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("content-security-policy"));
    let page = ok.text().await.expect("body");
    assert!(page.contains(r#"<b id="total-requests">3</b>"#), "{page}");
    assert!(
        page.contains(r#"<b id="total-cost">$1.260000</b>"#),
        "{page}"
    );
    assert!(
        page.contains(r#"<b id="total-savings">$0.490000</b>"#),
        "{page}"
    );
    assert!(page.contains(r#"<b id="local-requests">1</b>"#), "{page}");
    assert!(
        page.contains(r#"<tr data-team="search"><td>search</td><td class="requests">2</td><td class="cost">$1.010000</td>"#),
        "{page}"
    );
    // Budget usage: $1.01 of $4.00.
    assert!(page.contains("25%"), "{page}");
    assert!(
        page.contains("<tr><th>version</th><td>7</td></tr>"),
        "{page}"
    );
    assert!(page.contains("<svg"), "{page}");

    // Login form: a wrong token is refused, the right one sets an HttpOnly session cookie
    // that then opens the page.
    let bad = http
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=wrong&range=24h")
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status(), 401);
    let good = http
        .post(format!("{base}/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=t0ken&range=7d")
        .send()
        .await
        .expect("post");
    assert_eq!(good.status(), 303);
    let cookie = good
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("cookie")
        .to_string();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(
        !cookie.contains("t0ken"),
        "the cookie must not carry the token: {cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_string();
    let with_cookie = http
        .get(format!("{base}/dashboard"))
        .header("cookie", session)
        .send()
        .await
        .expect("get");
    assert_eq!(with_cookie.status(), 200);
}

#[tokio::test]
async fn dashboard_is_open_without_an_admin_token() {
    let base = serve(dashboard_router(DashboardState::new(None, None))).await;
    let resp = client()
        .get(format!("{base}/dashboard"))
        .send()
        .await
        .expect("get");
    assert_eq!(resp.status(), 200);
}

/// Collects finished spans in memory.
#[derive(Debug, Clone, Default)]
struct Collect(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collect {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if let Ok(mut v) = self.0.lock() {
            v.extend(batch);
        }
        Ok(())
    }
}

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[test]
fn request_spans_join_the_client_trace_and_carry_genai_attributes() {
    let collect = Collect::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(collect.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(telemetry::otel_layer(&provider));
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_str(&format!("00-{client_trace}-00f067aa0ba902b7-01")).expect("hv"),
    );
    let prompt = "my card is 4539 5780 1234 5671";
    let mut upstream = http::HeaderMap::new();
    tracing::subscriber::with_default(subscriber, || {
        let req = RequestSpan::start(&headers, "openai", "gpt-4o", true);
        let _g = req.span().enter();
        let classify = spans::classify();
        spans::record_classification(&classify, &["financial"], 0.3);
        drop(classify);
        req.record_decision("local", "private-data", &["financial"]);
        let call = spans::provider_call("openai", "gpt-4o-2024-08-06", true);
        {
            let _c = call.enter();
            telemetry::inject_trace_headers(&mut upstream);
        }
        spans::record_usage(&call, 12, 7);
        drop(call);
        req.record_provider("openai", "gpt-4o-2024-08-06");
        req.record_usage(12, 7);
        req.record_status(200);
        // The prompt is never handed to telemetry; make sure nothing smuggles it in.
        tracing::debug!(len = prompt.len(), "prompt length only");
    });
    let _ = provider.force_flush();
    let spans = collect.0.lock().expect("lock").clone();
    let root = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o")
        .unwrap_or_else(|| panic!("no request span in {spans:#?}"));
    assert_eq!(root.span_context.trace_id().to_string(), client_trace);
    assert_eq!(root.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(root.span_kind, opentelemetry::trace::SpanKind::Server);
    assert_eq!(attr(root, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(
        attr(root, "gen_ai.request.model").as_deref(),
        Some("gpt-4o")
    );
    assert_eq!(
        attr(root, "gen_ai.response.model").as_deref(),
        Some("gpt-4o-2024-08-06")
    );
    assert_eq!(
        attr(root, "gen_ai.provider.name").as_deref(),
        Some("openai")
    );
    assert_eq!(
        attr(root, "gen_ai.usage.input_tokens").as_deref(),
        Some("12")
    );
    assert_eq!(
        attr(root, "gen_ai.usage.output_tokens").as_deref(),
        Some("7")
    );
    assert_eq!(attr(root, "switchyard.route").as_deref(), Some("local"));
    assert_eq!(
        attr(root, "switchyard.rule").as_deref(),
        Some("private-data")
    );
    assert_eq!(
        attr(root, "switchyard.sensitivity.categories").as_deref(),
        Some("financial")
    );

    let call = spans
        .iter()
        .find(|s| s.name == "chat gpt-4o-2024-08-06")
        .unwrap_or_else(|| panic!("no provider span in {spans:#?}"));
    assert_eq!(call.span_kind, opentelemetry::trace::SpanKind::Client);
    assert_eq!(call.parent_span_id, root.span_context.span_id());
    let tp = upstream
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .expect("traceparent injected upstream");
    assert_eq!(
        tp,
        format!("00-{client_trace}-{}-01", call.span_context.span_id())
    );
    assert!(spans.iter().any(|s| s.name == "switchyard.classify"));

    let all = format!("{spans:?}");
    assert!(!all.contains("4539"), "prompt text leaked into spans");
}

#[test]
fn without_an_otel_layer_nothing_is_injected() {
    let mut headers = http::HeaderMap::new();
    let span = spans::provider_call("openai", "gpt-4o", false);
    let _g = span.enter();
    telemetry::inject_trace_headers(&mut headers);
    assert!(headers.is_empty());
    let cx = telemetry::extract_context(&http::HeaderMap::new());
    assert!(!cx.span().span_context().is_valid());
}
