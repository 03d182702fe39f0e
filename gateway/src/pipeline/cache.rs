//! Stage 3, cache: the exact tier, then (opt-in) the semantic tier — both scoped to the
//! tenant and keyed on the redacted request and the model that would serve it. On a
//! miss, the tracker learns where the answer is to be stored.

use tracing::Instrument;

use super::account::SemanticFill;
use super::{Planned, RequestCtx};
use crate::canonical::{ChatRequest, ChatResponse, GatewayError, Role};
use crate::routing::Route;
use crate::telemetry::spans;

/// An earlier answer this request may have.
pub(super) struct Hit {
    /// The target the answer stands for (the plan's first).
    pub route: Route,
    pub response: ChatResponse,
    pub tier: Tier,
}

pub(super) enum Tier {
    Exact,
    Semantic { similarity: f32 },
}

pub(super) async fn lookup(
    ctx: &mut RequestCtx,
    planned: &Planned,
) -> Result<Option<Hit>, GatewayError> {
    let state = &ctx.state;
    let tenant = &ctx.tenant;
    let Planned { request, plan } = planned;
    let first = plan
        .routes
        .first()
        .ok_or_else(|| GatewayError::Internal("empty route plan".into()))?;
    let cache_key = state
        .cache
        .key(request, &first.model, tenant, plan.decision.cache_ttl_s);
    let Some((key, ttl)) = cache_key else {
        return Ok(None);
    };
    let cache_span = spans::cache("exact");
    let hit = state.cache.get(&key).instrument(cache_span.clone()).await;
    spans::record_cache_result(&cache_span, if hit.is_some() { "hit" } else { "miss" });
    if let Some(response) = hit {
        return Ok(Some(Hit {
            route: first.clone(),
            response,
            tier: Tier::Exact,
        }));
    }

    let mut semantic_fill = None;
    if let (true, Some((_, embedder))) = (state.semantic_cache, &state.embedder) {
        let text = prompt_text(request);
        let embedder = embedder.clone();
        let embedding = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]))
            .await
            .ok()
            .and_then(|r| r.ok())
            .and_then(|mut v| v.pop());
        if let Some(embedding) = embedding {
            let sensitive = plan.classification.sensitive;
            if let Some((response, similarity)) = state
                .cache
                .get_semantic(tenant, &first.model, &embedding, sensitive)
                .await
            {
                return Ok(Some(Hit {
                    route: first.clone(),
                    response,
                    tier: Tier::Semantic { similarity },
                }));
            }
            semantic_fill = Some(SemanticFill {
                tenant: tenant.clone(),
                model: first.model.clone(),
                embedding,
                sensitive,
                ttl,
            });
        }
    }
    ctx.tracker.set_cache_fill(Some((key, ttl)));
    ctx.tracker.set_semantic_fill(semantic_fill);
    Ok(None)
}

/// What the semantic tier compares: the user turns, in order (the redacted form).
fn prompt_text(request: &ChatRequest) -> String {
    let mut out = String::new();
    for (role, text) in request.text_segments() {
        if role == Role::User {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    }
    out
}
