//! Stage 4, admit: budgets and rate limits reserve the request's worst case now; the
//! tracker settles the actual cost when the request ends.

use super::{Planned, RequestCtx};
use crate::canonical::GatewayError;
use crate::limits::Subject;

/// Output tokens assumed for a budget reservation when the client sets no `max_tokens`.
const DEFAULT_OUTPUT_ESTIMATE: u32 = 1024;

pub(super) async fn reserve(ctx: &mut RequestCtx, planned: &Planned) -> Result<(), GatewayError> {
    let state = &ctx.state;
    if state.limiter.is_noop() {
        return Ok(());
    }
    let Planned { request, plan, .. } = planned;
    let first = plan
        .routes
        .first()
        .ok_or_else(|| GatewayError::Internal("empty route plan".into()))?;
    let prompt_tokens = u32::try_from(plan.classification.est_prompt_tokens).unwrap_or(u32::MAX);
    let max_out = request
        .sampling
        .max_tokens
        .unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let estimate = state
        .prices
        .estimate(&first.upstream_model, prompt_tokens, max_out)
        .micros;
    let subject = Subject {
        key_id: ctx.tracker.key_id(),
        team: ctx.tracker.team(),
    };
    let admission = state
        .limiter
        .admit(
            &subject,
            estimate,
            u64::from(prompt_tokens) + u64::from(max_out),
            super::now_ms(),
        )
        .await
        .map_err(|r| {
            let scope = if subject.key_id.is_some() {
                "key"
            } else {
                "team"
            };
            state.metrics.budget_rejected(scope);
            GatewayError::from(r)
        })?;
    ctx.warnings = admission.warnings.clone();
    ctx.tracker.set_admission(admission);
    Ok(())
}
