//! Stage 1, intake: a concurrency permit (load shedding), the body — bounded in size and
//! time — and the client dialect's parser.

use axum::body::Body;
use axum::http::HeaderMap;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::OwnedSemaphorePermit;

use crate::canonical::{ChatRequest, GatewayError};
use crate::dialects::client::{self, ClientSide, Endpoint};
use crate::server::AppState;

pub(super) async fn read(
    state: &AppState,
    endpoint: &Endpoint,
    headers: &HeaderMap,
    body: Body,
) -> Result<(OwnedSemaphorePermit, ChatRequest, ClientSide), GatewayError> {
    let permit = state.inflight.clone().try_acquire_owned().map_err(|_| {
        GatewayError::Overloaded("the gateway is at its concurrency limit; retry shortly".into())
    })?;
    let body = read_body_timed(state, body, headers).await?;
    let (request, client) = client::parse_request(endpoint, &body)?;
    Ok((permit, request, client))
}

/// The whole body, within `max_body_bytes` and `body_read_timeout_ms`.
pub async fn read_body_timed(
    state: &AppState,
    body: Body,
    headers: &HeaderMap,
) -> Result<Bytes, GatewayError> {
    tokio::time::timeout(
        state.body_read_timeout,
        read_body(body, headers, state.max_body_bytes),
    )
    .await
    .map_err(|_| GatewayError::RequestTimeout("the request body did not arrive in time".into()))?
}

async fn read_body(body: Body, headers: &HeaderMap, limit: usize) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(GatewayError::PayloadTooLarge { limit })
        }
        Err(e) => Err(GatewayError::InvalidRequest(format!(
            "cannot read request body: {e}"
        ))),
    }
}
