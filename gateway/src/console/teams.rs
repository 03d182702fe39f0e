//! `/console/teams`: every team with its budgets and rate limits and where it stands this
//! period (the live counters, not only the limits), for finance and admins; admins set or
//! clear a team's own daily budget, monthly budget and rate limit from the same page. The
//! change goes through the same service as `PUT /admin/teams/{team}/limits`.

use std::sync::Arc;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{csrf_field, csrf_refused, page, viewer, ConsoleState};
use crate::access::{ConsoleSession, Principal};
use crate::auth::roles::RoleSet;
use crate::dashboard::render::esc;
use crate::limits::{BudgetLimit, LimitSource, RateLimit, TeamLimits, Usd};
use crate::team_limits::{LimitsPatch, TeamReport};

pub async fn page_handler(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
) -> Response {
    view(&state, &p, &s, StatusCode::OK, "").await
}

async fn view(
    state: &ConsoleState,
    p: &Principal,
    s: &ConsoleSession,
    status: StatusCode,
    notice: &str,
) -> Response {
    let Some(service) = &state.team_limits else {
        return page::message(
            StatusCode::NOT_FOUND,
            "Teams",
            "team limits are not available",
        );
    };
    let reports = match service.reports(&state.keys).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "console cannot read the team limits");
            return page::message(
                StatusCode::SERVICE_UNAVAILABLE,
                "Teams",
                "the team limits are unavailable",
            );
        }
    };
    let admin = RoleSet::ADMIN.contains(p.role);
    let csrf = csrf_field(s);
    let rows: String = reports.iter().map(|r| row(r, admin, &csrf)).collect();
    let add = if admin {
        format!(
            "<form method=post action=\"/console/teams\" id=add-team>{csrf}<label>Team <input name=team required></label> {}<button>Set limits</button></form>",
            inputs(&TeamLimits::default())
        )
    } else {
        String::new()
    };
    let how = if admin {
        "Amounts in dollars (up to 6 decimals), rates per minute. A team's own limit replaces, for that team, the configured rule of its kind; an empty pair clears it."
    } else {
        "Read-only: an administrator sets the limits."
    };
    let body = format!(
        "{notice}<p>{how}</p>{add}<table id=teams><tr><th>team</th><th>keys</th><th>budgets this period</th><th>rate limits this minute</th>{}</tr>{rows}</table>",
        if admin { "<th>own limits</th>" } else { "" }
    );
    page::page(status, "Teams", &viewer(p, s), &body)
}

fn source(s: LimitSource) -> &'static str {
    match s {
        LimitSource::Config => "config",
        LimitSource::Team => "team",
    }
}

fn row(r: &TeamReport, admin: bool, csrf: &str) -> String {
    let budgets: String = r
        .budgets
        .iter()
        .map(|b| {
            let limits = match (&b.soft_usd, &b.hard_usd) {
                (Some(s), Some(h)) => format!("soft ${s}, hard ${h}"),
                (Some(s), None) => format!("soft ${s}"),
                (None, Some(h)) => format!("hard ${h}"),
                (None, None) => String::new(),
            };
            format!(
                "<div class=budget data-budget=\"{}\"><b>{}</b> ({}, {}): <span class=spent>${}</span> spent or reserved, {} <small>resets {}</small></div>",
                esc(&b.name),
                esc(&b.name),
                b.period,
                source(b.source),
                esc(&b.spent_usd),
                esc(&limits),
                esc(&b.resets_at),
            )
        })
        .collect();
    let rates: String = r
        .rate_limits
        .iter()
        .map(|l| {
            let part = |n: i64, limit: Option<u32>, unit: &str| {
                limit.map(|v| format!("{n} of {v} {unit}"))
            };
            let parts: Vec<String> = [
                part(l.requests_this_minute, l.rpm, "requests"),
                part(l.tokens_this_minute, l.tpm, "tokens"),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!(
                "<div class=rate><b>{}</b> ({}): {}</div>",
                esc(&l.name),
                source(l.source),
                esc(&parts.join(", "))
            )
        })
        .collect();
    let none = |s: String| if s.is_empty() { "–".to_string() } else { s };
    let form = if admin {
        format!(
            "<td><form method=post action=\"/console/teams\" class=limits>{csrf}<input type=hidden name=team value=\"{}\">{}<button class=save>Save</button></form></td>",
            esc(&r.team),
            inputs(&r.limits)
        )
    } else {
        String::new()
    };
    format!(
        "<tr data-team=\"{}\"><td><b>{}</b></td><td>{}</td><td>{}</td><td>{}</td>{form}</tr>",
        esc(&r.team),
        esc(&r.team),
        r.keys,
        none(budgets),
        none(rates),
    )
}

/// The six fields of a team's own limits, filled with what is set.
fn inputs(l: &TeamLimits) -> String {
    let usd = |v: Option<Usd>| {
        v.map(|u| u.to_string().trim_start_matches('$').to_string())
            .unwrap_or_default()
    };
    let num = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let field = |name: &str, label: &str, value: String| {
        format!(
            "<label>{label} <input name={name} size=8 value=\"{}\"></label> ",
            esc(&value)
        )
    };
    let day = l.budget_day.unwrap_or(BudgetLimit {
        soft_usd: None,
        hard_usd: None,
    });
    let month = l.budget_month.unwrap_or(BudgetLimit {
        soft_usd: None,
        hard_usd: None,
    });
    let rate = l.rate.unwrap_or(RateLimit {
        rpm: None,
        tpm: None,
    });
    [
        field("day_soft", "Day soft $", usd(day.soft_usd)),
        field("day_hard", "hard $", usd(day.hard_usd)),
        field("month_soft", "Month soft $", usd(month.soft_usd)),
        field("month_hard", "hard $", usd(month.hard_usd)),
        field("rpm", "rpm", num(rate.rpm)),
        field("tpm", "tpm", num(rate.tpm)),
    ]
    .concat()
}

/// The form as a patch of all three kinds: a kind whose fields are all empty is cleared.
fn patch_of(body: &[u8]) -> Result<LimitsPatch, String> {
    let field = |name: &str| {
        crate::dashboard::form_value(body, name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let usd = |name: &str| {
        field(name)
            .map(|v| Usd::parse(&v).map_err(|e| format!("{name}: {e}")))
            .transpose()
    };
    let count = |name: &str| {
        field(name)
            .map(|v| {
                v.parse::<u32>()
                    .map_err(|_| format!("{name}: {v:?} is not a whole number"))
            })
            .transpose()
    };
    let budget = |soft: Option<Usd>, hard: Option<Usd>| {
        (soft.is_some() || hard.is_some()).then_some(BudgetLimit {
            soft_usd: soft,
            hard_usd: hard,
        })
    };
    let (rpm, tpm) = (count("rpm")?, count("tpm")?);
    Ok(LimitsPatch {
        budget_day: Some(budget(usd("day_soft")?, usd("day_hard")?)),
        budget_month: Some(budget(usd("month_soft")?, usd("month_hard")?)),
        rate: Some((rpm.is_some() || tpm.is_some()).then_some(RateLimit { rpm, tpm })),
    })
}

pub async fn save_handler(
    State(state): State<Arc<ConsoleState>>,
    Extension(p): Extension<Principal>,
    Extension(s): Extension<ConsoleSession>,
    body: axum::body::Bytes,
) -> Response {
    if let Some(refused) = csrf_refused(&s, &body) {
        return refused;
    }
    let Some(service) = &state.team_limits else {
        return view(&state, &p, &s, StatusCode::NOT_FOUND, "").await;
    };
    let team = crate::dashboard::form_value(&body, "team")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let bad = |m: &str| {
        format!(
            "<p class=notice><span class=bad id=limits-error>{}</span></p>",
            esc(m)
        )
    };
    let patch = match patch_of(&body) {
        Ok(p) => p,
        Err(m) => return view(&state, &p, &s, StatusCode::BAD_REQUEST, &bad(&m)).await,
    };
    match service.apply(&team, &patch, &p).await {
        Ok(changes) => {
            let what: Vec<&str> = changes.iter().map(|c| c.kind.as_str()).collect();
            let notice = if what.is_empty() {
                format!(
                    "<p class=notice id=limits-saved>Nothing changed for team {}.</p>",
                    esc(&team)
                )
            } else {
                format!(
                    "<p class=notice id=limits-saved>Saved for team {}: {}. In force now on this replica, within 5 s on the others.</p>",
                    esc(&team),
                    esc(&what.join(", "))
                )
            };
            view(&state, &p, &s, StatusCode::OK, &notice).await
        }
        Err(crate::team_limits::TeamLimitError::Invalid(m)) => {
            view(&state, &p, &s, StatusCode::BAD_REQUEST, &bad(&m)).await
        }
        Err(e) => {
            tracing::error!(error = %e, "console cannot save team limits");
            view(
                &state,
                &p,
                &s,
                StatusCode::SERVICE_UNAVAILABLE,
                &bad("the team limits are unavailable"),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_sets_what_is_filled_and_clears_what_is_empty() {
        let p =
            patch_of(b"team=web&day_soft=&day_hard=&month_soft=80&month_hard=100.5&rpm=60&tpm=")
                .expect("valid");
        assert_eq!(p.budget_day, Some(None));
        let month = p.budget_month.flatten().expect("month set");
        assert_eq!(month.hard_usd.map(Usd::micros), Some(100_500_000));
        assert_eq!(month.soft_usd.map(Usd::micros), Some(80_000_000));
        assert_eq!(
            p.rate,
            Some(Some(RateLimit {
                rpm: Some(60),
                tpm: None
            }))
        );
        assert!(patch_of(b"team=web&month_hard=ten").is_err());
        assert!(patch_of(b"team=web&rpm=-1").is_err());
        assert!(patch_of(b"team=web&month_hard=0.0000001").is_err());
    }
}
