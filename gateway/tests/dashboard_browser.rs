//! The dashboard in a real headless Chromium, driven over WebDriver: sign in with the admin
//! token, check the page loads without script, resource or CSP errors and shows the
//! numbers that are in the ledger, and save a screenshot to
//! `integration-tests/artifacts/dashboard.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/setup-browser.sh`); without
//! them this test fails rather than skips, so a CI machine missing them is noticed.

#[path = "support/browser.rs"]
mod browser;

use std::sync::Arc;
use std::time::Duration;

use fantoccini::Locator;
use switchyard::accounting::{AccountingConfig, Ledger, LedgerRecord};
use switchyard::canonical::ErrorKind;
use switchyard::dashboard::{dashboard_router, DashboardState};
use switchyard::store::Db;

const TOKEN: &str = "browser-admin-token";

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
        input_tokens: 200,
        output_tokens: 50,
        cost_micros: cost,
        counterfactual_micros: cf,
        latency_ms: latency,
        ttft_ms: Some(latency / 5),
        cache_hit: route == "cached",
        ..LedgerRecord::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_renders_ledger_numbers_in_headless_chromium() {
    // A temporary ledger with known records, written through the ledger itself.
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("ledger.db").display());
    let db = Db::connect(&url).await.expect("connect");
    let ledger = Ledger::start(db.clone(), &AccountingConfig::default());
    let mut records = Vec::new();
    for i in 0..4 {
        records.push(record(
            "search",
            "openai",
            "hard-tasks",
            500_000,
            500_000,
            900 + i * 50,
        ));
    }
    for i in 0..3 {
        records.push(record(
            "search",
            "local",
            "private-data",
            2_000,
            300_000,
            150 + i * 10,
        ));
    }
    records.push(record("ads", "openai", "cached", 0, 0, 5));
    records.push(record("ads", "local", "easy", 1_000, 200_000, 120));
    // A local answer that cost more than the baseline would have: a negative saving.
    records.push(record("ads", "local", "loss", 5_000, 1_000, 130));
    // Refusals are their own rows, not "frontier" traffic: a policy block (per rule) and
    // two client errors (per status class), none of them served by anyone.
    let refused = |status: u16, route: &str, kind: ErrorKind| LedgerRecord {
        team: Some("ads".into()),
        route: route.into(),
        status,
        error_kind: Some(kind),
        latency_ms: 1,
        ..LedgerRecord::default()
    };
    records.push(refused(403, "suspended", ErrorKind::PolicyBlocked));
    records.push(refused(401, "", ErrorKind::Authentication));
    records.push(refused(404, "default", ErrorKind::NotFound));
    let now = switchyard::store::time::now_ms();
    for (i, r) in records.iter_mut().enumerate() {
        // Spread over the last hours so the cost chart has a shape.
        r.ts_ms = now - (i as i64) * 5_400_000 - 60_000;
    }
    for r in records {
        ledger.record(r);
    }
    ledger.flush().await.expect("flush");
    // Shadow pairs with a known optimum: the local model matches the frontier below
    // difficulty 0.5 and fails above it. At the dashboard's 95% target two of the twenty
    // hard requests may stay local: the threshold is 0.55.
    for i in 0..40 {
        let d = f64::from(i) / 40.0;
        let pair = switchyard::shadow::store::PairRecord {
            id: format!("pair{i}"),
            request_id: format!("req{i}"),
            ts_ms: now - 120_000,
            team: if i % 2 == 0 { "search" } else { "ads" }.into(),
            difficulty: d,
            primary: switchyard::shadow::store::Side {
                model: "qwen2.5-0.5b".into(),
                cost_micros: 10,
                ..Default::default()
            },
            shadow: switchyard::shadow::store::Side {
                model: "gpt-4o".into(),
                external: true,
                cost_micros: 1_000,
                ..Default::default()
            },
            shadow_status: 200,
            quality: Some(if d < 0.5 { 1.0 } else { 0.0 }),
            ..Default::default()
        };
        switchyard::shadow::store::insert(&db, &pair)
            .await
            .expect("pair");
    }

    let catalog = Arc::new(switchyard::catalog::Catalog::new(
        Some(db.clone()),
        Arc::new(switchyard::accounting::PriceCatalog::builtin()),
    ));
    let mut state = DashboardState::new(Some(db), Some(TOKEN.into()));
    state.catalog = Some(Arc::new(move || {
        let catalog = catalog.clone();
        Box::pin(async move {
            let models = [
                switchyard::routing::ModelInfo {
                    id: "gpt-4o".into(),
                    owned_by: "openai".into(),
                    metadata: None,
                },
                switchyard::routing::ModelInfo {
                    id: "qwen2.5-0.5b".into(),
                    owned_by: "local".into(),
                    metadata: Some(serde_json::json!({"license": "Apache-2.0"})),
                },
            ];
            catalog.entries(&models).await
        })
    }));
    state.policy_status = Arc::new(
        || serde_json::json!({"source": "policies/", "version": 3, "rules": 4, "files": ["policies/10-base.yaml"], "loaded_at_unix_s": 1_796_000_000u64, "reloads_ok": 2, "reloads_failed": 1, "last_error": null}),
    );
    state.budget_for = Arc::new(|team| (team == "search").then_some(10_000_000));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, dashboard_router(state)).await;
    });
    let base = format!("http://{addr}");

    let b = browser::start(1280, 2400).await;
    let client = b.client.clone();

    let result = async {
        // Without the token the dashboard offers the login form.
        client.goto(&format!("{base}/dashboard")).await?;
        client.find(Locator::Id("token")).await?;

        client
            .goto(&format!("{base}/dashboard/login?range=24h"))
            .await?;
        client
            .find(Locator::Id("token"))
            .await?
            .send_keys(TOKEN)
            .await?;
        client.find(Locator::Id("login")).await?.click().await?;
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Id("total-requests"))
            .await?;

        let text = |id: &'static str| {
            let client = client.clone();
            async move { client.find(Locator::Id(id)).await?.text().await }
        };
        assert_eq!(text("total-requests").await?, "13");
        // 4 × $0.50 + 3 × $0.002 + $0.001 + $0.005
        assert_eq!(text("total-cost").await?, "$2.012000");
        assert_eq!(text("local-requests").await?, "5");
        assert_eq!(text("frontier-requests").await?, "5");
        assert_eq!(text("blocked-requests").await?, "1");
        assert_eq!(text("error-requests").await?, "2");
        assert_eq!(text("cache-hit-rate").await?, "7.7%");
        let blocked = client
            .find(Locator::Css("#traffic tr[data-outcome='blocked']"))
            .await?
            .text()
            .await?;
        assert!(blocked.starts_with("suspended"), "{blocked}");
        let errors_row = client
            .find(Locator::Css("#traffic tr[data-outcome='error']"))
            .await?
            .text()
            .await?;
        assert!(
            errors_row.starts_with("4xx") && errors_row.ends_with('2'),
            "{errors_row}"
        );
        let loss = client
            .find(Locator::Css("#by-route tr[data-group='loss']"))
            .await?
            .text()
            .await?;
        assert!(loss.contains("-$0.004000"), "{loss}");
        // The cost chart has a dollar axis and five UTC time labels.
        let ticks = client.find_all(Locator::Css("#cost-xaxis span")).await?;
        assert_eq!(ticks.len(), 5);
        for t in ticks {
            let t = t.text().await?;
            assert!(t.contains(':'), "time label {t:?}");
        }
        assert!(text("sign-out").await?.contains("sign out"));
        let search = client
            .find(Locator::Css("#teams tr[data-team='search']"))
            .await?;
        assert_eq!(
            search
                .find(Locator::Css("td.requests"))
                .await?
                .text()
                .await?,
            "7"
        );
        assert_eq!(
            search.find(Locator::Css("td.cost")).await?.text().await?,
            "$2.006000"
        );
        assert!(text("calibration-summary").await?.contains("40 pairs"));
        let policy = text("policy").await?;
        assert!(policy.contains("version 3"), "{policy}");
        assert!(policy.contains("loaded at (UTC) 2026-"), "{policy}");
        assert!(!policy.contains('{'), "not a JSON dump: {policy}");
        let svgs = client.find_all(Locator::Css("#cost-chart svg")).await?;
        assert_eq!(svgs.len(), 1);

        // Model comparison: measured from the ledger, agreement from the shadow pairs.
        let row = |sel: &'static str| {
            let client = client.clone();
            async move { client.find(Locator::Css(sel)).await?.text().await }
        };
        let local = row("#catalog tr[data-model='qwen2.5-0.5b']").await?;
        assert!(
            local.contains("in-process") && local.contains("Apache-2.0"),
            "{local}"
        );
        // 20 of the 40 candidate pairs agree.
        assert_eq!(
            row("#catalog tr[data-model='qwen2.5-0.5b'] td.quality").await?,
            "50.0%"
        );
        let frontier = row("#catalog tr[data-model='gpt-4o']").await?;
        assert!(frontier.contains("$2.50 / $10.00 per M tok"), "{frontier}");
        // Calibration: the recommended threshold per scope, with its curve.
        assert_eq!(
            row("#calibration tr[data-scope='all'] td.threshold").await?,
            "0.55"
        );
        let curves = client.find_all(Locator::Css("#calibration svg")).await?;
        assert_eq!(curves.len(), 3, "overall plus the two teams");

        // The range selector keeps the session (HttpOnly cookie) and re-renders.
        client
            .find(Locator::Css("nav a[href='/dashboard?range=7d']"))
            .await?
            .click()
            .await?;
        client
            .wait()
            .at_most(Duration::from_secs(15))
            .for_element(Locator::Css("nav a.on[href='/dashboard?range=7d']"))
            .await?;
        assert_eq!(text("total-requests").await?, "13");

        let cookies = client.execute("return document.cookie", vec![]).await?;
        assert_eq!(
            cookies,
            serde_json::json!(""),
            "the session cookie must be HttpOnly"
        );
        let errors = client
            .execute(
                "return window.__dashboardErrors || ['collector missing']",
                vec![],
            )
            .await?;
        assert_eq!(
            errors,
            serde_json::json!([]),
            "console/page errors: {errors}"
        );
        // What the page's own collector cannot see: failed loads (a missing icon…).
        let logged = browser::console_errors(&client, &base).await;
        assert!(logged.is_empty(), "browser console: {logged:?}");

        let png = client.screenshot().await?;
        let dir = browser::artifacts_dir();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        std::fs::write(dir.join("dashboard.png"), png).expect("write screenshot");
        Ok::<(), fantoccini::error::CmdError>(())
    }
    .await;
    let _ = client.close().await;
    if let Err(e) = result {
        panic!("browser check failed: {e}");
    }
}
