//! The request path of a model call, as named stages over one `RequestCtx`. The client
//! guard (`access.rs`) has authenticated the caller before the body is read; then:
//!
//! | stage | file | what it does |
//! |---|---|---|
//! | 1 intake | `intake.rs` | load shedding, the body (bounded and timed), the dialect's parser |
//! | 1b recall | `recall.rs` | a Responses turn that continues a stored one gets the earlier turns, before classification |
//! | 2 decide | `decide.rs` | facts, classification and the policy's plan (redaction applied), the price check |
//! | 3 cache | `cache.rs` | the exact tier, then the semantic tier, for this tenant and model |
//! | 4 admit | `admit.rs` | budgets and rate limits reserve the worst case |
//! | 5 dispatch | `dispatch.rs` | the fallback chain, each target through its attempts |
//! | 6 respond | `respond.rs`, `remember.rs` | restore redactions, render in the client's dialect, headers; keep a Responses turn the client asked to store |
//! | 7 account | `account.rs` | the tracker: cost, settlement, cache fill, ledger, metrics, shadow |
//!
//! Every stage but `respond` takes the context by reference and may end the request with
//! an error; `respond` consumes the context, and with it the tracker, exactly once.

mod account;
mod admit;
mod cache;
mod decide;
mod dispatch;
mod intake;
mod recall;
mod remember;
mod respond;

use std::sync::Arc;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use tracing::Instrument;

use crate::access::Identity;
use crate::auth::KeyInfo;
use crate::canonical::{ChatRequest, Dialect, GatewayError, Message};
use crate::dialects::client::{ClientSide, Endpoint};
use crate::routing::RoutePlan;
use crate::server::AppState;
use crate::telemetry::RequestSpan;

pub use account::{AccountServices, StreamTap, Tracker, CLIENT_CLOSED};
pub use decide::facts_for;
pub use dispatch::forward_headers;
pub use intake::read_body_timed;
pub use respond::{error_response, json_response, stream_body};

/// What every stage of one request shares.
pub struct RequestCtx {
    state: Arc<AppState>,
    dialect: Dialect,
    /// The caller's virtual key; `None` in open mode.
    identity: Option<Arc<KeyInfo>>,
    /// Finishes the request exactly once (move-only; see `account`).
    tracker: Tracker,
    /// How answers go back in the client's dialect (for the Responses API, the turn).
    client: ClientSide,
    /// Whose cache entries, limits and stored conversations these are: the key's
    /// team, else (open mode) the team header, else `open`.
    tenant: String,
    /// The conversation as the client sent it (before any redaction), kept only when a
    /// Responses turn is to be stored.
    conversation: Option<Vec<Message>>,
    /// Budget warnings from the reservation (the first becomes a response header).
    warnings: Vec<String>,
}

/// A request the policy has planned: its canonical form (redacted where the plan says
/// so — the only form that travels on) and the plan.
pub struct Planned {
    request: ChatRequest,
    plan: RoutePlan,
}

/// How a request that did not fail is answered.
enum Answer {
    Cached(cache::Hit),
    Served(dispatch::Dispatched),
}

/// One model request on a client `endpoint`, from its body to its response.
pub async fn handle(
    state: Arc<AppState>,
    endpoint: Endpoint,
    Identity(identity): Identity,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let dialect = endpoint.dialect();
    let tracker = Tracker::new(state.accounting.clone(), dialect);
    // Held until the response head is ready (a stream's body is not counted).
    let (_permit, request, client) = match intake::read(&state, &endpoint, headers, body).await {
        Ok(read) => read,
        Err(e) => return respond::refused(dialect, tracker, &e),
    };
    let tenant = tenant_of(identity.as_deref(), headers);
    let ctx = RequestCtx {
        state,
        dialect,
        identity,
        tracker,
        client,
        tenant,
        conversation: None,
        warnings: Vec::new(),
    };
    let span = RequestSpan::start(headers, dialect.as_str(), &request.model, request.stream);
    run(ctx, headers, request, &span)
        .instrument(span.span().clone())
        .await
}

async fn run(
    mut ctx: RequestCtx,
    headers: &HeaderMap,
    request: ChatRequest,
    span: &RequestSpan,
) -> Response {
    match stages(&mut ctx, headers, request, span).await {
        Ok((planned, answer)) => {
            let response = respond::answer(ctx, planned, answer).await;
            span.record_status(response.status().as_u16());
            response
        }
        Err(e) => {
            span.record_error(&e);
            respond::failed(ctx, &e)
        }
    }
}

/// Stages 1b to 5, in order.
async fn stages(
    ctx: &mut RequestCtx,
    headers: &HeaderMap,
    request: ChatRequest,
    span: &RequestSpan,
) -> Result<(Planned, Answer), GatewayError> {
    let request = recall::earlier_turns(ctx, request).await?;
    let planned = decide::plan(ctx, headers, request, span)?;
    if let Some(hit) = cache::lookup(ctx, &planned).await? {
        return Ok((planned, Answer::Cached(hit)));
    }
    admit::reserve(ctx, &planned).await?;
    // Decided now (the request is in its dispatched form), started after the answer.
    let job = ctx.state.shadow.select(&planned.plan, &planned.request);
    ctx.tracker.set_shadow(job);
    let served = dispatch::run(ctx, &planned, headers).await?;
    Ok((planned, Answer::Served(served)))
}

/// The tenant of a request: the key's team, else (open mode only) the team header.
pub fn tenant_of(identity: Option<&KeyInfo>, headers: &HeaderMap) -> String {
    match identity {
        Some(key) => key.team.clone(),
        None => headers
            .get("x-switchyard-team")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or("open")
            .to_string(),
    }
}

/// Unix milliseconds, as the limiter and the volume meters count them.
fn now_ms() -> u64 {
    crate::store::time::now_ms().max(0) as u64
}
