//! Stage 6, respond: restore what the policy redacted, render the answer (or replay a
//! cached one) in the client's dialect, and say where the request went and what the
//! gateway's own share of the time was. Consumes the context: the tracker is finished
//! here or handed to the stream tap.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};

use super::account::{StreamTap, Tracker};
use super::cache::{Hit, Tier};
use super::dispatch::{Dispatched, Served};
use super::remember::{self, Keep};
use super::{Answer, Planned, RequestCtx};
use crate::canonical::{ChatRequest, ChatResponse, Dialect, EventStream, GatewayError};
use crate::dialects::client::{self, ClientSide, StreamEncoder};
use crate::routing::RoutePlan;

pub(super) async fn answer(ctx: RequestCtx, planned: Planned, answer: Answer) -> Response {
    let RequestCtx {
        state,
        tracker,
        client,
        tenant,
        conversation,
        warnings,
        ..
    } = ctx;
    let started = tracker.started();
    let Planned { request, plan } = planned;
    // A Responses turn the client asked to store.
    let keep = match (client.turn(), conversation) {
        (Some(turn), Some(conversation)) => Some(Keep {
            conversations: state.conversations.clone(),
            tenant,
            turn: turn.clone(),
            conversation,
        }),
        _ => None,
    };
    match answer {
        Answer::Cached(Hit {
            route,
            response,
            tier,
        }) => {
            tracker.cache_hit(&route, &response);
            let mut out = render_cached(&client, &request, &plan, response, keep).await;
            annotate(&mut out, &plan, &route.model);
            let h = out.headers_mut();
            match tier {
                Tier::Exact => {
                    h.insert("x-switchyard-cache", HeaderValue::from_static("hit"));
                }
                Tier::Semantic { similarity } => {
                    h.insert(
                        "x-switchyard-cache",
                        HeaderValue::from_static("semantic-hit"),
                    );
                    if let Ok(v) = HeaderValue::from_str(&format!("{similarity:.3}")) {
                        h.insert("x-switchyard-cache-similarity", v);
                    }
                }
            }
            set_overhead(&mut out, started.elapsed());
            out
        }
        Answer::Served(Dispatched {
            served,
            route,
            upstream,
        }) => {
            let mut out = match served {
                Served::Complete(mut response) => {
                    tracker.complete(&route, &response);
                    if let Some(r) = &plan.redaction {
                        r.restore_response(&mut response);
                    }
                    if let Some(keep) = keep {
                        keep.save(&response).await;
                    }
                    json_response(StatusCode::OK, client.render_response(&response))
                }
                Served::Stream(first_event, events) => {
                    let events: EventStream = Box::pin(
                        futures::stream::once(async move { Ok(first_event) }).chain(events),
                    );
                    let events: EventStream =
                        Box::pin(StreamTap::new(events, tracker, route.clone()));
                    let events = match &plan.redaction {
                        Some(r) => r.restore_stream(events),
                        None => events,
                    };
                    let events = match keep {
                        Some(keep) => remember::stream(events, keep),
                        None => events,
                    };
                    stream_body(client.stream_encoder(), events)
                }
            };
            annotate(&mut out, &plan, &route.model);
            set_overhead(&mut out, started.elapsed().saturating_sub(upstream));
            if let Some(v) = warnings.first().and_then(|w| HeaderValue::from_str(w).ok()) {
                out.headers_mut().insert("x-switchyard-budget-warning", v);
            }
            out
        }
    }
}

/// The error in the client's dialect; the ledger records it (a refusal by a policy rule
/// names the rule, as every answer does).
pub(super) fn failed(ctx: RequestCtx, err: &GatewayError) -> Response {
    refused(ctx.dialect, ctx.tracker, err)
}

/// `failed` before the request was read (no context yet).
pub(super) fn refused(dialect: Dialect, tracker: Tracker, err: &GatewayError) -> Response {
    let mut response = error_response(dialect, err);
    if let Some(v) = tracker.rule().and_then(|r| HeaderValue::from_str(r).ok()) {
        response.headers_mut().insert("x-switchyard-rule", v);
    }
    tracker.fail(err);
    response
}

/// A cached answer, replayed as a stream when the client asked for one.
async fn render_cached(
    client: &ClientSide,
    request: &ChatRequest,
    plan: &RoutePlan,
    mut hit: ChatResponse,
    keep: Option<Keep>,
) -> Response {
    if request.stream {
        let events: EventStream = Box::pin(futures::stream::iter(
            crate::cache::replay_events(&hit).into_iter().map(Ok),
        ));
        let events = match &plan.redaction {
            Some(r) => r.restore_stream(events),
            None => events,
        };
        let events = match keep {
            Some(keep) => remember::stream(events, keep),
            None => events,
        };
        stream_body(client.stream_encoder(), events)
    } else {
        if let Some(r) = &plan.redaction {
            r.restore_response(&mut hit);
        }
        if let Some(keep) = keep {
            keep.save(&hit).await;
        }
        json_response(StatusCode::OK, client.render_response(&hit))
    }
}

/// `x-switchyard-overhead-ms`: the gateway's own time for this request up to the response
/// head (milliseconds, three decimals), i.e. everything but the backend's: parsing,
/// classification, policy, cache, limits, and for a stream everything until its first
/// event except the wait for it. Users see overhead in production, not only in a bench.
fn set_overhead(response: &mut Response, own: Duration) {
    let ms = own.as_secs_f64() * 1000.0;
    if let Ok(v) = HeaderValue::from_str(&format!("{ms:.3}")) {
        response.headers_mut().insert("x-switchyard-overhead-ms", v);
    }
}

/// Tells the client where its request went and why (never any sensitive value).
fn annotate(response: &mut Response, plan: &RoutePlan, model: &str) {
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert("x-switchyard-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&plan.decision.rule) {
        h.insert("x-switchyard-rule", v);
    }
    if let Some(r) = &plan.redaction {
        h.insert("x-switchyard-redactions", HeaderValue::from(r.count()));
    }
}

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// An error in `dialect`'s shape, with `retry-after` when the error carries one.
pub fn error_response(dialect: Dialect, err: &GatewayError) -> Response {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut response = json_response(status, client::render_error(dialect, err));
    if let Some(value) = err
        .retry_after()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

/// Streams canonical events back in the client's dialect. The caller has already seen
/// the first event (see `call_once`), so the upstream is committed and the head can go.
/// Bytes of already-arrived events written to the client in one chunk at most.
const COALESCE_MAX_BYTES: usize = 16 * 1024;

pub fn stream_body(encoder: StreamEncoder, events: EventStream) -> Response {
    let body = futures::stream::unfold(
        (events, encoder, false),
        |(mut events, mut encoder, done)| async move {
            if done {
                return None;
            }
            let mut out = Vec::with_capacity(256);
            let mut finished = false;
            // Wait until something is encoded (no empty chunk is written), then take the
            // events that are already there without waiting: one upstream read that
            // carried several events becomes one write to the client, not one per event.
            let mut wait = true;
            while !finished && (wait || out.len() < COALESCE_MAX_BYTES) {
                let next = if wait {
                    Some(events.next().await)
                } else {
                    events.next().now_or_never()
                };
                let Some(next) = next else { break };
                match next {
                    Some(Ok(ev)) => encoder.encode(&ev, &mut out),
                    Some(Err(err)) => {
                        tracing::warn!(error = %err, "upstream stream failed");
                        encoder.encode_error(&err, &mut out);
                        finished = true;
                    }
                    None => {
                        encoder.finish(&mut out);
                        finished = true;
                    }
                }
                wait = out.is_empty();
            }
            Some((
                Ok::<_, std::convert::Infallible>(Bytes::from(out)),
                (events, encoder, finished),
            ))
        },
    );
    let mut response = Response::new(Body::from_stream(body));
    let h = response.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{StopReason, StreamEvent};
    use http_body_util::BodyExt;

    fn openai_encoder() -> StreamEncoder {
        ClientSide::OpenAi {
            include_usage: false,
        }
        .stream_encoder()
    }

    fn events(n: usize) -> Vec<Result<StreamEvent, GatewayError>> {
        let mut v = vec![Ok(StreamEvent::Start {
            id: "x".into(),
            model: "m".into(),
            created: 0,
            usage: None,
        })];
        v.extend((0..n).map(|i| {
            Ok(StreamEvent::TextDelta {
                index: 0,
                text: format!("t{i} "),
            })
        }));
        v.push(Ok(StreamEvent::Finish {
            stop_reason: StopReason::EndTurn,
            usage: None,
        }));
        v
    }

    async fn frames(body: Body) -> Vec<Bytes> {
        let mut body = body;
        let mut out = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                out.push(data);
            }
        }
        out
    }

    #[tokio::test]
    async fn events_already_arrived_go_out_in_one_write() {
        let ready: EventStream = Box::pin(futures::stream::iter(events(20)));
        let body = stream_body(openai_encoder(), ready).into_body();
        let frames = frames(body).await;
        assert_eq!(frames.len(), 1, "{} frames", frames.len());
        let text = String::from_utf8_lossy(&frames[0]);
        assert!(
            text.contains("t19 ") && text.ends_with("data: [DONE]\n\n"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn events_that_arrive_apart_are_not_held_back() {
        // Each event arrives after a pause: each is written as soon as it is there.
        let spaced: EventStream = Box::pin(futures::stream::iter(events(3)).then(|e| async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            e
        }));
        let body = stream_body(openai_encoder(), spaced).into_body();
        assert!(frames(body).await.len() >= 4);
    }
}
