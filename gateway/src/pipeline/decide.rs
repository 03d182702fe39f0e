//! Stage 2, decide: the facts the policy may look at besides the content, then
//! classification and the policy's plan in one call (`PolicyRouter::plan`, which also
//! redacts the request where the plan says so), then the price check.

use axum::http::HeaderMap;
use policies::policy::Facts;

use super::{Planned, RequestCtx};
use crate::accounting::UnknownPrice;
use crate::auth::KeyInfo;
use crate::canonical::{ChatRequest, Dialect, GatewayError};
use crate::server::AppState;
use crate::telemetry::{spans, RequestSpan};

pub(super) fn plan(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    mut request: ChatRequest,
    span: &RequestSpan,
) -> Result<Planned, GatewayError> {
    let state = &ctx.state;
    let tracker = &mut ctx.tracker;
    tracker.note_request(&request.model, request.stream);
    let key = ctx.identity.as_deref();
    let facts = facts_for(state, headers, &request, ctx.dialect, key);
    tracker.note_caller(key.map(|k| k.id.as_str()), facts.team.as_deref());
    if let Some(team) = tracker.team() {
        span.record_team(team);
    }

    let classify_started = std::time::Instant::now();
    let classify_span = spans::classify();
    let planned = classify_span.in_scope(|| state.router.plan(&mut request, facts, false));
    state.metrics.observe_classifier(classify_started.elapsed());
    let plan = planned.map_err(|refused| {
        tracker.refused(refused.rule, &refused.error);
        refused.error
    })?;
    tracker.note_plan(&plan);
    let categories: Vec<&str> = tracker.sensitivity().iter().map(String::as_str).collect();
    spans::record_classification(
        &classify_span,
        &categories,
        f64::from(plan.classification.difficulty),
    );
    let target = plan.routes.first().map_or("", |r| r.model.as_str());
    spans::record_decision(&spans::policy(), target, &plan.decision.rule, &categories);
    span.record_decision(target, &plan.decision.rule, &categories);

    let first = plan
        .routes
        .first()
        .ok_or_else(|| GatewayError::Internal("empty route plan".into()))?;
    if state.unknown_price == UnknownPrice::Error
        && first.provider.is_external()
        && state.prices.lookup(&first.upstream_model).is_none()
    {
        return Err(GatewayError::PermissionDenied(format!(
            "no price is known for `{}` and accounting.unknown_price is `error`",
            first.upstream_model
        )));
    }
    Ok(Planned { request, plan })
}

/// What the policy may look at besides the content.
pub fn facts_for(
    state: &AppState,
    headers: &HeaderMap,
    request: &ChatRequest,
    dialect: Dialect,
    identity: Option<&KeyInfo>,
) -> Facts {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let now = super::now_ms();
    // With a virtual key, team, app and tags come from the key: a client cannot pick
    // another team's policy or budget with a header. Headers serve open mode only.
    let (team, key, app, tags) = match identity {
        Some(k) => (
            Some(k.team.clone()),
            Some(k.id.clone()),
            k.app.clone(),
            k.tags.clone(),
        ),
        None => (
            header("x-switchyard-team"),
            None,
            header("x-switchyard-app"),
            header("x-switchyard-tags")
                .map(|t| {
                    t.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        ),
    };
    let team_rpm = team.as_deref().map(|t| state.team_volume.hit(t, now));
    let key_rpm = key.as_deref().map(|k| state.key_volume.hit(k, now));
    Facts {
        team,
        key,
        app,
        tags,
        model: Some(request.model.clone()),
        dialect: Some(dialect),
        stream: request.stream,
        now_unix_s: Some((now / 1000) as i64),
        team_rpm,
        key_rpm,
        requested_is_local: false,
    }
}
