//! The calibration report: scored pairs → the threshold curve, the recommendation, and
//! the policy lines to change. Shared by `switchyard calibrate`, `/admin/calibration`
//! and the dashboard.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::calibrate::{curve, recommend, sampled, CurvePoint, NONE_STRONG};
use super::store::{load, PairFilter, PairRecord};
use crate::limits::format_usd;
use crate::store::{Db, StoreError};

#[derive(Debug, Clone)]
pub struct CalibrationQuery {
    pub target_quality: f64,
    pub filter: PairFilter,
}

/// One group's (all traffic, or one team's) calibration.
#[derive(Debug, Clone, Serialize)]
pub struct Calibration {
    /// `all` or the team name.
    pub scope: String,
    pub pairs: usize,
    pub scored: usize,
    pub failed: usize,
    pub judged: usize,
    /// The curve at thresholds 0, 0.05, …, 1 (plus nothing-strong), for tables/charts.
    pub curve: Vec<CurvePoint>,
    pub recommended: Option<CurvePoint>,
    /// Shadow and judge spend that produced these pairs, µ$.
    pub shadow_cost_micros: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CalibrationReport {
    pub target_quality: f64,
    pub overall: Calibration,
    pub by_team: Vec<Calibration>,
}

/// Pairs at most this many newest are read: a curve needs hundreds, not millions.
const MAX_PAIRS: usize = 100_000;

pub async fn calibration(db: &Db, q: &CalibrationQuery) -> Result<CalibrationReport, StoreError> {
    let mut filter = q.filter.clone();
    if filter.limit == 0 {
        filter.limit = MAX_PAIRS;
    }
    let pairs = load(db, &filter).await?;
    Ok(build(&pairs, q.target_quality))
}

pub fn build(pairs: &[PairRecord], target: f64) -> CalibrationReport {
    let mut teams: BTreeMap<&str, Vec<PairRecord>> = BTreeMap::new();
    for p in pairs {
        teams.entry(p.team.as_str()).or_default().push(p.clone());
    }
    let mut by_team: Vec<Calibration> = teams
        .into_iter()
        .map(|(team, ps)| {
            group(
                if team.is_empty() { "(no team)" } else { team },
                &ps,
                target,
            )
        })
        .collect();
    by_team.sort_by(|a, b| b.scored.cmp(&a.scored).then(a.scope.cmp(&b.scope)));
    CalibrationReport {
        target_quality: target,
        overall: group("all", pairs, target),
        by_team,
    }
}

fn group(scope: &str, pairs: &[PairRecord], target: f64) -> Calibration {
    let scored: Vec<_> = pairs
        .iter()
        .filter_map(PairRecord::calibration_pair)
        .collect();
    let full = curve(&scored);
    let mut shown = sampled(&full, 20);
    if let Some(last) = full.last() {
        shown.push(*last);
    }
    Calibration {
        scope: scope.to_string(),
        pairs: pairs.len(),
        scored: scored.len(),
        failed: pairs.iter().filter(|p| p.quality.is_none()).count(),
        judged: pairs.iter().filter(|p| p.judge.is_some()).count(),
        curve: shown,
        recommended: recommend(&full, target),
        shadow_cost_micros: pairs
            .iter()
            .map(|p| p.shadow.cost_micros + p.judge_cost_micros)
            .sum(),
    }
}

fn threshold_str(t: f64) -> String {
    if t >= NONE_STRONG {
        "none".to_string()
    } else {
        format!("{t:.3}")
    }
}

/// The report as a table, the recommendation and the policy lines to change.
pub fn render(r: &CalibrationReport, policy_lines: &[DifficultyLine]) -> String {
    let mut out = String::new();
    let c = &r.overall;
    let _ = writeln!(
        out,
        "Calibration from {} shadow pairs ({} scored, {} failed, {} judged); shadow spend {}",
        c.pairs,
        c.scored,
        c.failed,
        c.judged,
        format_usd(c.shadow_cost_micros)
    );
    if c.scored == 0 {
        out.push_str("\nNo scored pairs yet: add `shadow:` to the rules that route by difficulty (docs/shadow.md) and let traffic flow.\n");
        return out;
    }
    out.push_str("\nthreshold  frontier share  quality vs all-frontier  cost/request  cost vs all-frontier\n");
    for p in &c.curve {
        let _ = writeln!(
            out,
            "{:>9}  {:>13.1}%  {:>22.1}%  {:>12}  {:>19.1}%",
            threshold_str(p.threshold),
            p.strong_share * 100.0,
            p.quality * 100.0,
            format_usd(p.cost_per_request_micros.round() as i64),
            p.relative_cost * 100.0
        );
    }
    let _ = writeln!(out);
    match &c.recommended {
        Some(best) => {
            let _ = writeln!(
                out,
                "Recommended: difficulty threshold {} — {:.1}% of requests to the frontier, {:.1}% of all-frontier quality (target {:.1}%), {:.1}% of all-frontier cost.",
                threshold_str(best.threshold),
                best.strong_share * 100.0,
                best.quality * 100.0,
                r.target_quality * 100.0,
                best.relative_cost * 100.0
            );
            out.push_str(&suggest(best.threshold, policy_lines));
        }
        None => {
            let _ = writeln!(
                out,
                "No threshold reaches {:.1}% quality on these pairs.",
                r.target_quality * 100.0
            );
        }
    }
    if r.by_team.len() > 1 {
        out.push_str("\nPer team:\n");
        for t in &r.by_team {
            let rec = t.recommended.as_ref().map_or_else(
                || "no threshold reaches the target".to_string(),
                |b| {
                    format!(
                        "threshold {} ({:.1}% frontier, quality {:.1}%)",
                        threshold_str(b.threshold),
                        b.strong_share * 100.0,
                        b.quality * 100.0
                    )
                },
            );
            let _ = writeln!(out, "  {:<20} {:>6} pairs  {rec}", t.scope, t.scored);
        }
    }
    out
}

/// A `difficulty:` bound found in a policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct DifficultyLine {
    pub file: String,
    pub line: usize,
    pub text: String,
}

/// The lines of the policy files that set a difficulty bound, so the recommendation can
/// name what to edit. A text scan: the policy keeps its comments and layout.
pub fn difficulty_lines(dir: &Path) -> Vec<DifficultyLine> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            (name.ends_with(".yaml") || name.ends_with(".yml")) && !name.contains(".test.")
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for (i, l) in text.lines().enumerate() {
            let code = l.split('#').next().unwrap_or("");
            if code.contains("difficulty:") && (code.contains("gte") || code.contains("lt")) {
                out.push(DifficultyLine {
                    file: f.display().to_string(),
                    line: i + 1,
                    text: l.trim().to_string(),
                });
            }
        }
    }
    out
}

fn suggest(threshold: f64, lines: &[DifficultyLine]) -> String {
    let t = if threshold >= NONE_STRONG {
        // Nothing needs the frontier on this traffic: a bound above every score.
        "1.0".to_string()
    } else {
        format!("{:.2}", threshold)
    };
    let mut out = String::new();
    if lines.is_empty() {
        let _ = writeln!(
            out,
            "Policy change: route by difficulty, e.g.\n  - id: hard-to-frontier\n    when: {{ difficulty: {{ gte: {t} }} }}\n    route: frontier\n  (and the rest to the local target)"
        );
    } else {
        out.push_str("Policy change: set the difficulty bound to ");
        let _ = writeln!(out, "{t} where the rules split local from frontier:");
        for l in lines {
            let _ = writeln!(out, "  {}:{}: {}", l.file, l.line, l.text);
        }
        let _ = writeln!(
            out,
            "  (requests with `difficulty: {{ gte: {t} }}` go to the frontier; `{{ lt: {t} }}` stay local)"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::store::Side;
    use super::*;

    fn rec(team: &str, difficulty: f64, quality: Option<f64>) -> PairRecord {
        PairRecord {
            team: team.into(),
            difficulty,
            quality,
            primary_is_strong: false,
            primary: Side {
                model: "local/x".into(),
                cost_micros: 1,
                ..Side::default()
            },
            shadow: Side {
                model: "gpt-4o".into(),
                external: true,
                cost_micros: 100,
                ..Side::default()
            },
            ..PairRecord::default()
        }
    }

    #[test]
    fn report_recommends_and_names_policy_lines() {
        let mut pairs: Vec<PairRecord> = (0..50)
            .map(|i| {
                let d = f64::from(i) / 50.0;
                rec("a", d, Some(if d < 0.5 { 1.0 } else { 0.0 }))
            })
            .collect();
        pairs.push(rec("b", 0.3, None));
        let r = build(&pairs, 1.0);
        assert_eq!(r.overall.pairs, 51);
        assert_eq!(r.overall.scored, 50);
        assert_eq!(r.overall.failed, 1);
        let best = r.overall.recommended.expect("reachable");
        assert!((best.threshold - 0.5).abs() < 1e-9);
        assert_eq!(r.by_team[0].scope, "a");
        let lines = [DifficultyLine {
            file: "p.yaml".into(),
            line: 7,
            text: "when: { difficulty: { gte: 0.7 } }".into(),
        }];
        let text = render(&r, &lines);
        assert!(
            text.contains("Recommended: difficulty threshold 0.500"),
            "{text}"
        );
        assert!(text.contains("p.yaml:7"), "{text}");
        assert!(text.contains("set the difficulty bound to 0.50"), "{text}");
    }

    #[test]
    fn empty_report_says_how_to_get_pairs() {
        let text = render(&build(&[], 0.95), &[]);
        assert!(text.contains("No scored pairs yet"), "{text}");
    }

    #[test]
    fn finds_difficulty_lines_in_policy_files() {
        let dir = std::env::temp_dir().join(format!("sy-cal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("p.yaml"),
            "rules:\n  - id: hard\n    when: { difficulty: { gte: 0.6 } } # frontier\n    route: f\n# difficulty: { lt: 0.1 }\n",
        )
        .expect("write");
        std::fs::write(dir.join("p.test.yaml"), "difficulty: { gte: 0.6 }\n").expect("write");
        let lines = difficulty_lines(&dir);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].line, 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
