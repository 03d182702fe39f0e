//! The dashboard page: plain HTML with inline SVG charts drawn by `plotters` (SVG backend,
//! no font features). Charts carry no text of their own, so no font is needed at build or
//! run time; titles, axes and legends are HTML around them. No third-party JS or CSS.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::data::{DashboardData, Outcome, Range};
use crate::accounting::money::format_usd;
use crate::accounting::SpendRow;
use crate::catalog::{CatalogEntry, Pricing};
use crate::shadow::calibrate::{CurvePoint, NONE_STRONG};
use crate::shadow::report::{Calibration, CalibrationReport};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222;background:#fafafa}\
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
table{border-collapse:collapse;background:#fff;margin-bottom:1rem}\
td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}th{background:#f0f0f0}\
td:first-child,th:first-child{text-align:left}\
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{background:#fff;border:1px solid #ddd;padding:.6rem 1rem;min-width:9rem}\
.card b{display:block;font-size:1.3rem}.legend span{margin-right:1rem}\
.sw{display:inline-block;width:.8rem;height:.8rem;margin-right:.3rem;vertical-align:middle}\
nav a{margin-right:.6rem}nav a.on{font-weight:bold}.bar{background:#eee;width:10rem;height:.7rem;display:inline-block}\
.bar i{display:block;height:100%;background:#c0392b}pre{background:#fff;border:1px solid #ddd;padding:.5rem;overflow:auto}\
.chart{display:flex;width:100%;max-width:1200px}.plot{flex:1;border-left:1px solid #888;border-bottom:1px solid #888}\
.plot svg{display:block}.yaxis{display:flex;flex-direction:column;justify-content:space-between;height:220px;\
padding-right:.4rem;font-size:.75rem;color:#555;text-align:right;width:5.6rem;flex:none}\
.xaxis{display:flex;justify-content:space-between;font-size:.75rem;color:#555;margin-left:6rem;max-width:calc(1200px - 6rem)}\
#split-chart{max-width:1200px}#policy th{text-align:left}";

/// Collects script errors, failed resource loads and CSP violations into
/// `window.__dashboardErrors`, so a browser test can assert the page loaded clean.
const ERROR_COLLECTOR: &str = "window.__dashboardErrors=[];\
addEventListener('error',function(e){__dashboardErrors.push(String(e.message||(e.target&&(e.target.src||e.target.href))||'error'))},true);\
addEventListener('securitypolicyviolation',function(e){__dashboardErrors.push('csp: '+e.violatedDirective)});";

/// The content security policy the dashboard is served with: nothing loads from anywhere.
pub const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const ACTUAL: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const COUNTERFACTUAL: RGBColor = RGBColor(0x29, 0x80, 0xb9);
const LOCAL: RGBColor = RGBColor(0x27, 0xae, 0x60);

fn head(title: &str, refresh_s: Option<u32>) -> String {
    let refresh = refresh_s
        .map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">"))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title>\
         <link rel=\"icon\" href=\"data:,\">\
         <script>{ERROR_COLLECTOR}</script><style>{STYLE}</style></head><body>",
        esc(title)
    )
}

/// The login form (`error` is shown above it after a wrong token).
pub fn login_page(error: Option<&str>, next_range: &str) -> String {
    let mut h = head("Switchyard dashboard: sign in", None);
    h.push_str("<h1>Switchyard dashboard</h1>");
    if let Some(e) = error {
        let _ = write!(
            h,
            "<p id=\"login-error\" style=\"color:#c0392b\">{}</p>",
            esc(e)
        );
    }
    let _ = write!(
        h,
        "<form method=\"post\" action=\"/dashboard/login\">\
         <label>Admin token <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"current-password\" autofocus></label>\
         <input type=\"hidden\" name=\"range\" value=\"{}\">\
         <button id=\"login\" type=\"submit\">Sign in</button></form></body></html>",
        esc(next_range)
    );
    h
}

/// `$1.250000`, and `-$0.000329` for a negative amount (a saving that was a loss).
fn usd(micros: i64) -> String {
    let text = format_usd(micros);
    match text.strip_prefix('-') {
        Some(abs) => format!("-${abs}"),
        None => format!("${text}"),
    }
}

/// A UTC timestamp short enough for an axis: `HH:MM` within a day, `MM-DD HH:MM` beyond.
fn axis_time(ts_ms: i64, span_ms: i64) -> String {
    let t = crate::store::time::format_rfc3339(ts_ms);
    // `YYYY-MM-DDTHH:MM:SS...Z`
    match (t.get(5..10), t.get(11..16)) {
        (Some(day), Some(hm)) if span_ms > 24 * 3_600_000 => format!("{day} {hm}"),
        (_, Some(hm)) => hm.to_string(),
        _ => t,
    }
}

/// Makes a plotters SVG scale to its container's width (it writes fixed pixel sizes).
fn responsive(svg: String, w: u32, h: u32) -> String {
    // plotters already writes the viewBox; only the fixed width goes.
    svg.replacen(
        &format!("width=\"{w}\" height=\"{h}\""),
        &format!("width=\"100%\" height=\"{h}\" preserveAspectRatio=\"none\""),
        1,
    )
}

fn ms(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "–".into())
}

fn spend_table(h: &mut String, id: &str, what: &str, rows: &[SpendRow]) {
    let _ = write!(
        h,
        "<table id=\"{id}\"><tr><th>{what}</th><th>requests</th><th>input tokens</th><th>output tokens</th>\
         <th>cost</th><th>counterfactual</th><th>savings</th><th>cache hits</th></tr>"
    );
    for r in rows {
        let _ = write!(
            h,
            "<tr data-group=\"{g}\"><td>{g}</td><td class=\"requests\">{}</td><td>{}</td><td>{}</td>\
             <td class=\"cost\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.requests,
            r.input_tokens,
            r.output_tokens,
            usd(r.cost_micros),
            usd(r.counterfactual_micros),
            usd(r.savings_micros),
            r.cache_hits,
            g = esc(&r.group),
        );
    }
    h.push_str("</table>");
}

/// The cost chart with its axes: dollars on the left (0, half, peak), UTC times below.
fn cost_figure(d: &DashboardData) -> String {
    let peak = d
        .series
        .iter()
        .map(|p| p.cost_micros.max(p.counterfactual_micros))
        .max()
        .unwrap_or(0)
        .max(1);
    // The chart's y range is 0..peak*1.1: the labels sit at those fractions of its height.
    let top = peak as f64 * 1.1;
    let mut h = String::from("<div class=\"chart\"><div class=\"yaxis\">");
    for frac in [1.0, 0.5, 0.0] {
        let _ = write!(h, "<span>{}</span>", usd((top * frac).round() as i64));
    }
    h.push_str("</div><div class=\"plot\">");
    h.push_str(&cost_chart(d));
    h.push_str("</div></div><div class=\"xaxis\" id=\"cost-xaxis\">");
    let span = d.to_ms - d.from_ms;
    for i in 0..=4 {
        let ts = d.from_ms + span * i / 4;
        let _ = write!(h, "<span>{}</span>", axis_time(ts, span));
    }
    h.push_str("</div>");
    h
}

/// Cost (actual and counterfactual) per bucket as an SVG line chart.
pub fn cost_chart(d: &DashboardData) -> String {
    let mut svg = String::new();
    let max = d
        .series
        .iter()
        .map(|p| p.cost_micros.max(p.counterfactual_micros))
        .max()
        .unwrap_or(0)
        .max(1) as f64
        / 1e6;
    let n = d.series.len().max(2) as f64;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 220)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let mut chart = ChartBuilder::on(&root)
                .margin(8)
                .build_cartesian_2d(0f64..(n - 1.0), 0f64..(max * 1.1))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(0)
                .light_line_style(RGBColor(0xee, 0xee, 0xee))
                .draw()?;
            let line = |f: fn(&super::data::CostPoint) -> i64| {
                d.series
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (i as f64, f(p) as f64 / 1e6))
            };
            chart.draw_series(LineSeries::new(
                line(|p| p.counterfactual_micros),
                COUNTERFACTUAL.stroke_width(2),
            ))?;
            chart.draw_series(AreaSeries::new(
                line(|p| p.cost_micros),
                0.0,
                ACTUAL.mix(0.25),
            ))?;
            chart.draw_series(LineSeries::new(
                line(|p| p.cost_micros),
                ACTUAL.stroke_width(2),
            ))?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            tracing::warn!(error = %e, "cannot draw the cost chart");
        }
    }
    responsive(svg, 720, 220)
}

/// Local versus frontier requests as one horizontal stacked bar.
pub fn split_chart(local: i64, frontier: i64) -> String {
    let mut svg = String::new();
    let total = (local + frontier).max(1) as f64;
    {
        let root = SVGBackend::with_string(&mut svg, (720, 36)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let split = (local as f64 / total * 720.0).round() as i32;
            root.draw(&Rectangle::new([(0, 0), (split, 36)], LOCAL.filled()))?;
            root.draw(&Rectangle::new(
                [(split, 0), (720, 36)],
                COUNTERFACTUAL.filled(),
            ))?;
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            tracing::warn!(error = %e, "cannot draw the traffic chart");
        }
    }
    responsive(svg, 720, 36)
}

/// What the page shows besides the ledger.
pub struct PageExtras<'a> {
    pub range: Range,
    pub refresh_s: u32,
    /// The dashboard needs a sign-in (an admin token is configured): offer sign-out.
    pub signed_in: bool,
    pub policy: &'a serde_json::Value,
    /// Budget limit (micro-dollars) per team, when one is configured.
    pub budget_for: &'a dyn Fn(&str) -> Option<i64>,
    /// Shadow-pair calibration over the range (`None`: not available).
    pub calibration: Option<&'a CalibrationReport>,
    /// The model catalog comparison.
    pub catalog: &'a [CatalogEntry],
}

pub fn dashboard_page(d: &DashboardData, x: &PageExtras<'_>) -> String {
    let mut h = head("Switchyard dashboard", Some(x.refresh_s));
    h.push_str("<h1>Switchyard: cost and latency</h1><nav>Range: ");
    for r in Range::ALL {
        let on = if r == x.range { " class=\"on\"" } else { "" };
        let _ = write!(
            h,
            "<a{on} href=\"/dashboard?range={0}\">{0}</a>",
            r.as_str()
        );
    }
    let _ = write!(h, " · refreshes every {}s", x.refresh_s);
    if x.signed_in {
        h.push_str(" · <a id=\"sign-out\" href=\"/dashboard/logout\">sign out</a>");
    }
    h.push_str("</nav>");

    let (local, frontier) = d.local_frontier();
    let hit = d
        .cache_hit_rate()
        .map(|r| format!("{:.1}%", r * 100.0))
        .unwrap_or_else(|| "–".into());
    let _ = write!(
        h,
        "<div class=\"cards\">\
         <div class=\"card\">Requests<b id=\"total-requests\">{}</b></div>\
         <div class=\"card\">Spend<b id=\"total-cost\">{}</b></div>\
         <div class=\"card\">Frontier baseline<b id=\"total-counterfactual\">{}</b></div>\
         <div class=\"card\">Saved<b id=\"total-savings\">{}</b></div>\
         <div class=\"card\">Cache hit rate<b id=\"cache-hit-rate\">{hit}</b></div>\
         <div class=\"card\">Unpriced requests<b id=\"unknown-price\">{}</b></div></div>",
        d.requests,
        usd(d.cost_micros),
        usd(d.counterfactual_micros),
        usd(d.savings_micros),
        d.unknown_price_requests,
    );

    let _ = write!(
        h,
        "<h2>Cost over time</h2><div class=\"legend\"><span><i class=\"sw\" style=\"background:#c0392b\"></i>actual</span>\
         <span><i class=\"sw\" style=\"background:#2980b9\"></i>counterfactual (frontier baseline)</span>\
         <span>one point per {} min (UTC); peak {}</span></div><div id=\"cost-chart\">{}</div>",
        (d.bucket_ms / 60_000).max(1),
        usd(d
            .series
            .iter()
            .map(|p| p.cost_micros.max(p.counterfactual_micros))
            .max()
            .unwrap_or(0)),
        cost_figure(d)
    );

    let share = if local + frontier > 0 {
        format!("{:.1}%", local as f64 * 100.0 / (local + frontier) as f64)
    } else {
        "–".into()
    };
    let _ = write!(
        h,
        "<h2>Local vs frontier</h2><div class=\"legend\"><span><i class=\"sw\" style=\"background:#27ae60\"></i>local <b id=\"local-requests\">{local}</b> ({share})</span>\
         <span><i class=\"sw\" style=\"background:#2980b9\"></i>frontier <b id=\"frontier-requests\">{frontier}</b></span>\
         <span>blocked by policy <b id=\"blocked-requests\">{}</b></span>\
         <span>errors <b id=\"error-requests\">{}</b></span></div>\
         <div id=\"split-chart\">{}</div><table id=\"traffic\"><tr><th>policy rule (errors: status class)</th><th>outcome</th><th>requests</th></tr>",
        d.count(Outcome::Blocked),
        d.count(Outcome::Error),
        split_chart(local, frontier)
    );
    for t in &d.traffic {
        let _ = write!(
            h,
            "<tr data-outcome=\"{o}\"><td>{}</td><td>{o}</td><td>{}</td></tr>",
            esc(&t.rule),
            t.requests,
            o = t.outcome.as_str(),
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Top teams by spend</h2>");
    let _ = write!(
        h,
        "<table id=\"teams\"><tr><th>team</th><th>requests</th><th>cost</th><th>saved</th><th>budget</th><th>used</th></tr>"
    );
    for r in d.by_team.iter().take(20) {
        let (budget, used) = match (x.budget_for)(&r.group) {
            Some(limit) if limit > 0 => {
                let pct = r.cost_micros as f64 * 100.0 / limit as f64;
                (
                    usd(limit),
                    format!(
                        "<span class=\"bar\"><i style=\"width:{:.0}%\"></i></span> {pct:.0}%",
                        pct.clamp(0.0, 100.0)
                    ),
                )
            }
            _ => ("–".into(), "–".into()),
        };
        let _ = write!(
            h,
            "<tr data-team=\"{g}\"><td>{g}</td><td class=\"requests\">{}</td><td class=\"cost\">{}</td><td>{}</td><td>{budget}</td><td>{used}</td></tr>",
            r.requests,
            usd(r.cost_micros),
            usd(r.savings_micros),
            g = esc(&r.group),
        );
    }
    h.push_str("</table>");

    h.push_str("<h2>Cost by model</h2>");
    spend_table(&mut h, "by-model", "model", &d.by_model);
    h.push_str("<h2>Cost by route (policy rule)</h2>");
    spend_table(&mut h, "by-route", "route", &d.by_route);
    h.push_str("<h2>Cost by team</h2>");
    spend_table(&mut h, "by-team", "team", &d.by_team);

    h.push_str(
        "<h2>Latency per route</h2><table id=\"latency\"><tr><th>route</th><th>served by</th><th>requests</th>\
         <th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>TTFT p50 ms</th><th>TTFT p95 ms</th><th>TTFT p99 ms</th></tr>",
    );
    for l in &d.latency {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&l.route),
            l.outcome.as_str(),
            l.samples,
            l.p50_ms,
            l.p95_ms,
            l.p99_ms,
            ms(l.ttft_p50_ms),
            ms(l.ttft_p95_ms),
            ms(l.ttft_p99_ms),
        );
    }
    h.push_str("</table>");

    if !x.catalog.is_empty() {
        catalog_table(&mut h, x.catalog);
    }
    if let Some(c) = x.calibration {
        calibration_section(&mut h, c);
    }

    policy_section(&mut h, x.policy);
    h.push_str("</body></html>");
    h
}

/// The policy in force, as a person reads it: where it comes from, when it loaded, how
/// reloads went, and the last rejected file's errors.
fn policy_section(h: &mut String, p: &serde_json::Value) {
    let text = |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or("–").to_string();
    let num = |k: &str| p.get(k).and_then(|v| v.as_u64());
    let when = |k: &str| {
        num(k)
            .filter(|s| *s > 0)
            .map(|s| crate::store::time::format_rfc3339(s as i64 * 1000).replace('T', " "))
            .unwrap_or_else(|| "–".into())
    };
    let files = p
        .get("files")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str())
                .map(esc)
                .collect::<Vec<_>>()
                .join("<br>")
        })
        .unwrap_or_default();
    let _ = write!(
        h,
        "<h2>Policy</h2><table id=\"policy\"><tr><th>source</th><td>{}</td></tr>\
         <tr><th>version</th><td>{}</td></tr><tr><th>rules</th><td>{}</td></tr>\
         <tr><th>files</th><td>{}</td></tr><tr><th>loaded at (UTC)</th><td>{}</td></tr>\
         <tr><th>reloads</th><td>{} ok, {} rejected</td></tr></table>",
        esc(&text("source")),
        num("version").unwrap_or(0),
        num("rules").unwrap_or(0),
        if files.is_empty() {
            "–".into()
        } else {
            files
        },
        when("loaded_at_unix_s"),
        num("reloads_ok").unwrap_or(0),
        num("reloads_failed").unwrap_or(0),
    );
    if let Some(err) = p.get("last_error").and_then(|v| v.as_str()) {
        let _ = write!(
            h,
            "<p>Last rejected reload ({}), the previous policy kept serving:</p><pre id=\"policy-error\">{}</pre>",
            when("last_error_at_unix_s"),
            esc(err)
        );
    }
}

fn opt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

/// Every model side by side: licence, price, measured latency and shadow agreement.
fn catalog_table(h: &mut String, entries: &[CatalogEntry]) {
    h.push_str(
        "<h2>Model comparison</h2><table id=\"catalog\"><tr><th>model</th><th>where</th><th>licence</th>\
         <th>price</th><th>requests</th><th>p50 ms</th><th>p95 ms</th><th>TTFT p50 ms</th><th>tokens/s</th>\
         <th>quality vs reference</th><th>shadow pairs</th></tr>",
    );
    for e in entries {
        let price = match &e.pricing {
            Pricing::Tokens {
                input_per_mtok_usd,
                output_per_mtok_usd,
            } => format!("${input_per_mtok_usd:.2} / ${output_per_mtok_usd:.2} per M tok"),
            Pricing::Compute {
                cpu_hour_usd,
                gpu_hour_usd,
            } => format!("compute ${cpu_hour_usd:.2}/CPU-h, ${gpu_hour_usd:.2}/GPU-h"),
            Pricing::Unknown => "unknown".into(),
        };
        let m = e.measured.clone().unwrap_or_default();
        let a = e.agreement.clone().unwrap_or_default();
        let quality = a
            .quality_vs_reference
            .map_or_else(|| "–".into(), |q| format!("{:.1}%", q * 100.0));
        let _ = write!(
            h,
            "<tr data-model=\"{id}\"><td>{id}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"quality\">{quality}</td><td>{}</td></tr>",
            if e.local { "in-process" } else { "API" },
            esc(&e.license),
            esc(&price),
            m.requests,
            opt_num(m.p50_ms, 0),
            opt_num(m.p95_ms, 0),
            opt_num(m.ttft_p50_ms, 0),
            opt_num(m.tokens_per_s, 1),
            a.pairs_as_candidate + a.pairs_as_reference,
            id = esc(&e.id),
        );
    }
    h.push_str("</table>");
}

fn threshold_label(t: f64) -> String {
    if t >= NONE_STRONG {
        "none".into()
    } else {
        format!("{t:.2}")
    }
}

/// The quality/frontier-share curve per scope and the recommended thresholds.
fn calibration_section(h: &mut String, r: &CalibrationReport) {
    let _ = write!(
        h,
        "<h2>Routing calibration (shadow pairs)</h2><p id=\"calibration-summary\">{} pairs, {} scored, {} judged; target {:.0}% of all-frontier quality.</p>",
        r.overall.pairs,
        r.overall.scored,
        r.overall.judged,
        r.target_quality * 100.0
    );
    if r.overall.scored == 0 {
        h.push_str("<p>No scored pairs in this range: add <code>shadow:</code> to the rules that route by difficulty (docs/shadow.md).</p>");
        return;
    }
    h.push_str("<div class=\"legend\"><span>x: share of requests sent to the frontier · y: quality relative to all-frontier · dot: recommended threshold</span></div>");
    let scopes: Vec<&Calibration> = std::iter::once(&r.overall)
        .chain(r.by_team.iter().filter(|_| r.by_team.len() > 1).take(4))
        .collect();
    h.push_str("<table id=\"calibration\"><tr><th>scope</th><th>pairs</th><th>curve</th><th>threshold</th><th>frontier share</th><th>quality</th><th>cost vs all-frontier</th></tr>");
    for c in scopes {
        let (t, share, q, cost) = match &c.recommended {
            Some(b) => (
                threshold_label(b.threshold),
                format!("{:.1}%", b.strong_share * 100.0),
                format!("{:.1}%", b.quality * 100.0),
                format!("{:.1}%", b.relative_cost * 100.0),
            ),
            None => ("unreachable".into(), "–".into(), "–".into(), "–".into()),
        };
        let _ = write!(
            h,
            "<tr data-scope=\"{s}\"><td>{s}</td><td>{}</td><td>{}</td><td class=\"threshold\">{t}</td><td>{share}</td><td>{q}</td><td>{cost}</td></tr>",
            c.scored,
            curve_chart(&c.curve, c.recommended.as_ref()),
            s = esc(&c.scope),
        );
    }
    h.push_str("</table>");
}

/// Quality against frontier share, with the recommended point marked.
pub fn curve_chart(points: &[CurvePoint], best: Option<&CurvePoint>) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (260, 140)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            root.fill(&WHITE)?;
            let low = points
                .iter()
                .map(|p| p.quality)
                .fold(1.0f64, f64::min)
                .min(0.9)
                - 0.02;
            let mut chart = ChartBuilder::on(&root)
                .margin(6)
                .build_cartesian_2d(0f64..1.0, low..1.01)?;
            chart
                .configure_mesh()
                .x_labels(0)
                .y_labels(0)
                .light_line_style(RGBColor(0xee, 0xee, 0xee))
                .draw()?;
            let mut line: Vec<(f64, f64)> =
                points.iter().map(|p| (p.strong_share, p.quality)).collect();
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart.draw_series(LineSeries::new(line, COUNTERFACTUAL.stroke_width(2)))?;
            if let Some(b) = best {
                chart.draw_series(std::iter::once(Circle::new(
                    (b.strong_share, b.quality),
                    4,
                    ACTUAL.filled(),
                )))?;
            }
            root.present()?;
            Ok(())
        })();
        if let Err(e) = drawn {
            tracing::warn!(error = %e, "cannot draw the calibration chart");
        }
    }
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
    }

    #[test]
    fn charts_are_svg_without_text() {
        let d = DashboardData {
            series: (0..5)
                .map(|i| super::super::data::CostPoint {
                    ts_ms: i,
                    cost_micros: i * 1000,
                    counterfactual_micros: i * 3000,
                    requests: 1,
                })
                .collect(),
            ..Default::default()
        };
        let svg = cost_chart(&d);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert_eq!(svg.matches("viewBox").count(), 1, "{svg}");
        assert!(svg.contains("polyline") || svg.contains("path"), "{svg}");
        assert!(split_chart(3, 1).contains("<rect"));
    }
}
