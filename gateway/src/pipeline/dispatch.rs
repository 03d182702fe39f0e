//! Stage 5, dispatch: the plan's targets in order. A target that fails before anything
//! reached the client (connect errors, timeouts, 429, 5xx) is retried per its
//! provider's policy — first on the provider's other endpoints, then with backoff
//! (`providers::attempts`) — then hands over to the next target; open circuits are
//! skipped.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use futures::StreamExt;
use tracing::Instrument;

use super::{Planned, RequestCtx};
use crate::canonical::{ChatRequest, ChatResponse, EventStream, GatewayError, StreamEvent};
use crate::providers::attempts::call_target;
use crate::providers::resilience::is_retryable;
use crate::providers::{Call, ForwardHeaders};
use crate::routing::{Route, RoutePlan};
use crate::telemetry::spans;

/// What a target delivered before anything went to the client.
pub(super) enum Served {
    Complete(ChatResponse),
    /// The first event already arrived (so the target is committed), then the rest.
    Stream(StreamEvent, EventStream),
}

pub(super) struct Dispatched {
    pub served: Served,
    /// The target that answered.
    pub route: Route,
    /// The backend's share: the whole call, or a stream's wait for its first event.
    pub upstream: Duration,
}

pub(super) async fn run(
    ctx: &RequestCtx,
    planned: &Planned,
    headers: &HeaderMap,
) -> Result<Dispatched, GatewayError> {
    let state = &ctx.state;
    let Planned { request, plan, .. } = planned;
    let forward = forward_headers(headers, plan);
    let started = Instant::now();
    let mut last_error = None;
    for (i, route) in plan.routes.iter().enumerate() {
        let result = call_target(
            &state.breakers,
            &state.metrics,
            route.provider.as_ref(),
            &route.upstream_model,
            &route.model,
            |endpoint| {
                let span = if route.provider.is_external() {
                    spans::provider_call(
                        route.provider.name(),
                        &route.upstream_model,
                        request.stream,
                    )
                } else {
                    spans::local_generation(&route.model, request.stream)
                };
                call_once(request, &forward, route, endpoint).instrument(span)
            },
        )
        .await;
        match result {
            Ok(served) => {
                return Ok(Dispatched {
                    served,
                    route: route.clone(),
                    upstream: started.elapsed(),
                })
            }
            Err(e) if is_retryable(&e) && i + 1 < plan.routes.len() => {
                tracing::warn!(model = %route.model, error = %e, "target failed; trying the next one of the chain");
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| GatewayError::Internal("empty route plan".into())))
}

/// One call to one target; a stream is committed (and no longer retryable) only once
/// its first event arrived.
async fn call_once(
    request: &ChatRequest,
    forward: &ForwardHeaders,
    route: &Route,
    endpoint: usize,
) -> Result<Served, GatewayError> {
    let call = Call {
        request,
        upstream_model: &route.upstream_model,
        headers: forward,
    };
    if request.stream {
        let mut events = route.provider.stream(endpoint, call).await?;
        match events.next().await {
            Some(Ok(first)) => Ok(Served::Stream(first, events)),
            Some(Err(e)) => Err(e),
            None => Err(GatewayError::BadGateway {
                provider: route.provider.name().to_string(),
                message: "upstream closed the stream before sending anything".into(),
            }),
        }
    } else {
        route
            .provider
            .chat(endpoint, call)
            .await
            .map(Served::Complete)
    }
}

/// Client headers some providers need, plus the headers the policy rule adds.
pub fn forward_headers(headers: &HeaderMap, plan: &RoutePlan) -> ForwardHeaders {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    ForwardHeaders {
        anthropic_version: get("anthropic-version"),
        anthropic_beta: get("anthropic-beta"),
        extra: plan
            .decision
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    http::HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect(),
    }
}
