//! The console's policies page: the live policy as readable rules, its source, version
//! and reload history, the diff of its last change, a reload button, its test cases run
//! on demand against the live policy, and the playground.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use policies::policy::{PolicyText, TestReport};

use super::{csrf_field, csrf_refused, page, playground, viewer, ConsoleState};
use crate::access::{ConsoleSession, Principal};
use crate::audit::Order;
use crate::dashboard::render::esc;
use crate::store::time::format_rfc3339;

pub(super) async fn policies_page(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
) -> Response {
    policies_view(&state, &p, &s, StatusCode::OK, "", "").await
}

/// The policy's status, its reload history (from the audit trail), the reload button and
/// the playground, with `result` (a playground run) and `notice` shown above.
async fn policies_view(
    state: &ConsoleState,
    p: &Principal,
    s: &ConsoleSession,
    status: StatusCode,
    notice: &str,
    result: &str,
) -> Response {
    let csrf = csrf_field(s);
    let status_html = match &state.policy {
        Some(policy) => {
            let st = policy.status();
            let files: String = st
                .files
                .iter()
                .map(|f| format!("<li><code>{}</code></li>", esc(f)))
                .collect();
            let error = st
                .last_error
                .as_deref()
                .map(|e| {
                    format!(
                        "<p class=bad>Last reload rejected:</p><pre>{}</pre>",
                        esc(e)
                    )
                })
                .unwrap_or_default();
            format!(
                "<p id=policy-version>Source <code>{}</code>, version <b>{}</b>, {} rules; reloads: {} ok, {} rejected.</p><ul>{files}</ul>{error}                 <form method=post action=\"/console/policies/reload\">{csrf}<button id=reload>Reload from disk</button></form>",
                esc(&st.source),
                st.version,
                st.rules,
                st.reloads_ok,
                st.reloads_failed,
            )
        }
        None => "<p>No policy is loaded.</p>".into(),
    };
    let filter = crate::audit::AuditFilter {
        action: Some("policy".into()),
        limit: 20,
        ..Default::default()
    };
    let history: String = match state.audit.list(&filter, Order::NewestFirst).await {
        Ok(entries) => entries
            .iter()
            .map(|e| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    format_rfc3339(e.ts_ms),
                    esc(&e.actor),
                    esc(&e.action),
                    esc(&e.after.as_ref().map(|a| a.to_string()).unwrap_or_default()),
                )
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "console cannot read the audit trail");
            String::new()
        }
    };
    let playground = if state.explain.is_some() {
        format!(
            "<h2>Playground</h2><p>Paste a request as a client would send it. It is classified and routed by the live policy, never sent anywhere.</p>             <form method=post action=\"/console/policies/playground\">{csrf}<p><label>Dialect <select name=dialect><option value=openai>OpenAI</option><option value=anthropic>Anthropic</option></select></label> <label>Team <input name=team></label></p>             <textarea name=request id=request rows=8 cols=100 required>{}</textarea><p><button id=explain>Explain</button></p></form>",
            esc(r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "..."}]}"#)
        )
    } else {
        String::new()
    };
    let (rules, change) = match &state.policy {
        Some(policy) => (
            rules_html(&policy.current().policy.describe()),
            change_html(policy.status().last_change.as_ref()),
        ),
        None => (String::new(), String::new()),
    };
    let tests = if state.policy.is_some() {
        format!(
            "<h2>Test cases</h2><p>Runs the policy's <code>*.test.yaml</code> cases against the live policy, as <code>switchyard policy test</code> does.</p><form method=post action=\"/console/policies/test\">{csrf}<button id=run-tests>Run the test cases</button></form>"
        )
    } else {
        String::new()
    };
    let body = format!(
        "{notice}{status_html}{result}{rules}{change}{tests}{playground}<h2>Reload history</h2><table id=reloads><tr><th>time</th><th>actor</th><th>action</th><th>after</th></tr>{history}</table>"
    );
    page::page(status, "Policies", &viewer(p, s), &body)
}

pub(super) async fn reload_policy(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    let Some(policy) = &state.policy else {
        return policies_view(&state, &p, &s, StatusCode::NOT_FOUND, "", "").await;
    };
    let report = policy.reload_report();
    if let Err(e) = state
        .audit
        .record(report.audit_event(p.actor.clone()).source(p.source))
        .await
    {
        tracing::error!(error = %e, "cannot write the audit trail");
    }
    let (status, notice) = match &report.result {
        Ok(v) => (
            StatusCode::OK,
            format!("<p class=notice id=reloaded>Reloaded: version {v}.</p>"),
        ),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "<p class=notice><span class=bad>Rejected; version {} stays.</span></p><pre>{}</pre>",
                report.previous_version,
                esc(e)
            ),
        ),
    };
    policies_view(&state, &p, &s, status, &notice, "").await
}

pub(super) async fn run_playground(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    let Some(explain) = &state.explain else {
        return policies_view(&state, &p, &s, StatusCode::NOT_FOUND, "", "").await;
    };
    let field = |name| crate::dashboard::form_value(&body, name);
    let dialect = match field("dialect").as_deref() {
        Some("anthropic") => crate::canonical::Dialect::Anthropic,
        _ => crate::canonical::Dialect::OpenAi,
    };
    let team = field("team").filter(|t| !t.trim().is_empty());
    let request = field("request").unwrap_or_default();
    match explain(dialect, request.as_bytes(), team) {
        Ok(explained) => {
            let result = render_explained(&explained);
            policies_view(&state, &p, &s, StatusCode::OK, "", &result).await
        }
        Err(e) => {
            let notice = format!(
                "<p class=notice><span class=bad id=playground-error>The request does not parse: {}</span></p>",
                esc(&e)
            );
            policies_view(&state, &p, &s, StatusCode::BAD_REQUEST, &notice, "").await
        }
    }
}

/// The playground's answer: texts with findings marked, the findings with their
/// detector, the decision (rule, trace, chain) and what would serve it.
fn render_explained(x: &playground::Explained) -> String {
    let findings = x.explain["classification"]["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let str_of = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let texts: String = x
        .texts
        .iter()
        .enumerate()
        .map(|(i, (role, text))| {
            let spans: Vec<(usize, usize, String)> = findings
                .iter()
                .filter(|f| f["segment"].as_u64() == Some(i as u64))
                .filter_map(|f| {
                    Some((
                        usize::try_from(f["start"].as_u64()?).ok()?,
                        usize::try_from(f["end"].as_u64()?).ok()?,
                        format!(
                            "{}/{} ({})",
                            str_of(&f["category"]),
                            str_of(&f["type"]),
                            str_of(&f["detector"])
                        ),
                    ))
                })
                .collect();
            format!(
                "<p><b>{}</b>: <span class=segment>{}</span></p>",
                esc(role),
                playground::highlight(text, &spans)
            )
        })
        .collect();
    let rows: String = findings
        .iter()
        .map(|f| {
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}..{}</td></tr>",
                esc(&str_of(&f["category"])),
                esc(&str_of(&f["type"])),
                esc(&str_of(&f["detector"])),
                esc(&str_of(&f["confidence"])),
                f["start"],
                f["end"],
            )
        })
        .collect();
    let outcome = &x.explain["outcome"];
    let served = match outcome["served_by"].as_array() {
        Some(chain) => chain
            .iter()
            .map(|r| {
                format!(
                    "{} ({}, {})",
                    str_of(&r["model"]),
                    str_of(&r["provider"]),
                    if r["external"].as_bool() == Some(true) {
                        "external"
                    } else {
                        "local"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join(" → "),
        None => format!("refused: {}", str_of(&outcome["error"])),
    };
    let pretty = |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
    format!(
        "<h2>Result</h2><div id=texts>{texts}</div><table id=findings><tr><th>category</th><th>type</th><th>detector</th><th>confidence</th><th>span</th></tr>{rows}</table>         <p>Served by: <b id=served-by>{}</b></p><p>Redaction would send: <code id=redactions>{}</code></p><h3>Decision</h3><pre id=decision>{}</pre>",
        esc(&served),
        esc(&outcome["redactions"].to_string()),
        esc(&pretty(&x.explain["decision"])),
    )
}

/// The rules in words: the privacy guarantee, the targets and each rule's condition tree
/// and actions, in evaluation order.
fn rules_html(text: &PolicyText) -> String {
    let targets: String = text
        .targets
        .iter()
        .map(|(name, chain)| {
            format!(
                "<tr><td><code>{}</code></td><td>{}</td></tr>",
                esc(name),
                esc(chain)
            )
        })
        .collect();
    let rules: String = text
        .rules
        .iter()
        .map(|r| {
            let when: String = r
                .when
                .iter()
                .map(|l| {
                    format!(
                        "<div style=\"padding-left:{}rem\">{}</div>",
                        l.depth,
                        esc(&l.text)
                    )
                })
                .collect();
            let then: String = r
                .then
                .iter()
                .map(|t| format!("<div>{}</div>", esc(t)))
                .collect();
            format!(
                "<tr><td><code>{}</code></td><td>{when}</td><td>{then}</td></tr>",
                esc(&r.id)
            )
        })
        .collect();
    format!(
        "<h2>Rules</h2><p id=privacy-guarantee>{}</p><table id=targets><tr><th>target</th><th>chain</th></tr>{targets}</table><p>Evaluated in order; the first rule that matches decides.</p><table id=rules><tr><th>rule</th><th>when</th><th>then</th></tr>{rules}</table>",
        esc(&text.privacy)
    )
}

/// The diff of the last reload that changed a file, added lines green, removed red.
fn change_html(change: Option<&crate::policy_runtime::PolicyChange>) -> String {
    let Some(c) = change else {
        return "<h2>Last change</h2><p id=change-summary>No reload has changed a policy file since start-up.</p>".into();
    };
    let lines: String = c
        .diff
        .lines()
        .map(|l| {
            let class = if l.starts_with("+++") || l.starts_with("---") {
                "file"
            } else if l.starts_with('+') {
                "add"
            } else if l.starts_with('-') {
                "del"
            } else {
                "ctx"
            };
            format!("<span class={class}>{}</span>\n", esc(l))
        })
        .collect();
    format!(
        "<h2>Last change</h2><p id=change-summary>Version {} → {} at {}: {} line(s) added, {} removed.</p><pre id=policy-diff>{lines}</pre>",
        c.from_version,
        c.to_version,
        format_rfc3339(c.at_unix_s.saturating_mul(1000) as i64),
        c.lines_added,
        c.lines_removed,
    )
}

fn report_html(report: &TestReport) -> String {
    if report.cases.is_empty() {
        return "<h2>Test results</h2><p class=notice id=tests-summary>The policy has no test cases: add a <code>*.test.yaml</code> file to its directory.</p>".into();
    }
    let rows: String = report
        .cases
        .iter()
        .map(|c| {
            let status = if c.passed {
                "<span class=ok>ok</span>"
            } else {
                "<span class=bad>FAIL</span>"
            };
            let failures: String = c
                .failures
                .iter()
                .map(|f| format!("<div>{}</div>", esc(f)))
                .collect();
            format!(
                "<tr><td>{status}</td><td>{}</td><td><code>{}:{}</code></td><td>{}</td><td>{failures}</td></tr>",
                esc(&c.name),
                esc(&c.file),
                c.line,
                esc(&c.decision.rule),
            )
        })
        .collect();
    format!(
        "<h2>Test results</h2><p id=tests-summary class={}>{} passed, {} failed</p><table id=test-results><tr><th></th><th>case</th><th>where</th><th>rule</th><th>unmet</th></tr>{rows}</table>",
        if report.ok() { "ok" } else { "bad" },
        report.passed,
        report.failed
    )
}

pub(super) async fn run_tests(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    let Some(policy) = &state.policy else {
        return policies_view(&state, &p, &s, StatusCode::NOT_FOUND, "", "").await;
    };
    match policy.run_tests() {
        Ok(report) => {
            let status = if report.ok() {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            policies_view(&state, &p, &s, status, "", &report_html(&report)).await
        }
        Err(e) => {
            let notice = format!(
                "<p class=notice><span class=bad id=tests-error>The test files do not parse:</span></p><pre>{}</pre>",
                esc(&e)
            );
            policies_view(
                &state,
                &p,
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                &notice,
                "",
            )
            .await
        }
    }
}
