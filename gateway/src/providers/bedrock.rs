//! AWS Bedrock Runtime backend: `POST /model/{modelId}/converse` and `/converse-stream`,
//! every request signed with SigV4 (`aws-sigv4`, service `bedrock`), streams read as the
//! binary event-stream framing (`dialects::bedrock::FrameReader`). Translation lives in
//! `dialects::bedrock`; this file only forms URLs, signs, sends and reads.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};

use crate::canonical::{ChatResponse, EventStream, GatewayError, StreamEvent};
use crate::config::{BedrockAccess, ProviderConfig};
use crate::dialects::bedrock as wire;

use super::endpoints::Pool;
use super::http::{configured_headers, read_body, send, timed_out, transport_error};
use super::{Call, Provider};

/// The SigV4 signing name of Bedrock Runtime.
const SERVICE: &str = "bedrock";
const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

struct Endpoint {
    /// `https://bedrock-runtime.REGION.amazonaws.com` or the configured override.
    base: String,
    /// Configured extra headers (sent, not signed).
    headers: HeaderMap,
}

pub struct BedrockProvider {
    name: String,
    endpoints: Vec<Endpoint>,
    pool: Pool,
    client: reqwest::Client,
    timeout: Duration,
    max_frame_bytes: usize,
    external: bool,
    retry: super::resilience::RetryPolicy,
    region: String,
    /// The credentials as the signer takes them, built once.
    identity: Identity,
    model_ids: BTreeMap<String, String>,
}

impl BedrockProvider {
    pub fn new(
        cfg: &ProviderConfig,
        access: BedrockAccess,
        client: reqwest::Client,
        max_frame_bytes: usize,
    ) -> Self {
        let resolved = cfg.resolved_endpoints();
        let regional = format!("https://bedrock-runtime.{}.amazonaws.com", access.region);
        let endpoints = resolved
            .iter()
            .map(|e| {
                let mut headers = HeaderMap::new();
                configured_headers(cfg, &mut headers);
                Endpoint {
                    base: if e.base_url.is_empty() {
                        regional.clone()
                    } else {
                        e.base_url.clone()
                    },
                    headers,
                }
            })
            .collect();
        let credentials = Credentials::new(
            access.access_key_id,
            access.secret_access_key.expose(),
            access.session_token.map(|t| t.expose().to_owned()),
            None,
            "switchyard-config",
        );
        BedrockProvider {
            name: cfg.name.clone(),
            endpoints,
            pool: Pool::new(&resolved),
            client,
            timeout: Duration::from_millis(cfg.timeout_ms),
            max_frame_bytes,
            external: cfg.external,
            retry: cfg.retry_policy(),
            region: access.region,
            identity: credentials.into(),
            model_ids: cfg
                .bedrock
                .as_ref()
                .map(|b| b.model_ids.clone())
                .unwrap_or_default(),
        }
    }

    /// The Bedrock model id (or inference profile) a model name is called as.
    fn model_id<'m>(&'m self, model: &'m str) -> &'m str {
        self.model_ids.get(model).map_or(model, String::as_str)
    }

    fn internal(&self, what: &str, e: impl std::fmt::Display) -> GatewayError {
        GatewayError::Internal(format!("{}: {what}: {e}", self.name))
    }

    /// The signed request for one call.
    fn post(
        &self,
        endpoint: usize,
        call: &Call<'_>,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, GatewayError> {
        let endpoint = self.endpoints.get(endpoint).ok_or_else(|| {
            GatewayError::Internal(format!("{}: no endpoint number {endpoint}", self.name))
        })?;
        let converse = wire::build_request(call.request)?;
        let body = serde_json::to_vec(&converse)
            .map_err(|e| self.internal("cannot encode upstream request", e))?;
        let url = format!(
            "{}/model/{}/{}",
            endpoint.base,
            wire::encode_model_id(self.model_id(call.upstream_model)),
            if stream {
                "converse-stream"
            } else {
                "converse"
            }
        );
        let accept = if stream {
            EVENT_STREAM
        } else {
            "application/json"
        };

        let settings = SigningSettings::default();
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| self.internal("cannot sign", e))?
            .into();
        let signed = [("content-type", "application/json"), ("accept", accept)];
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            signed.iter().copied(),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| self.internal("cannot sign", e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| self.internal("cannot sign", e))?
            .into_parts();

        let mut headers = endpoint.headers.clone();
        for (k, v) in &call.headers.extra {
            headers.insert(k.clone(), v.clone());
        }
        crate::telemetry::inject_trace_headers(&mut headers);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static(accept));
        let (signing_headers, _) = instructions.into_parts();
        for h in signing_headers {
            let name = HeaderName::from_bytes(h.name().as_bytes())
                .map_err(|e| self.internal("signature header", e))?;
            let mut value = HeaderValue::from_str(h.value())
                .map_err(|e| self.internal("signature header", e))?;
            value.set_sensitive(h.sensitive() || name == http::header::AUTHORIZATION);
            headers.insert(name, value);
        }
        Ok(self.client.post(url).headers(headers).body(body))
    }
}

/// Bedrock's id of the call (`x-amzn-requestid`), else a fresh one.
fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-amzn-requestid")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map_or_else(
            || format!("bedrock-{}", uuid::Uuid::new_v4().simple()),
            |v| format!("bedrock-{v}"),
        )
}

impl Provider for BedrockProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "bedrock"
    }

    fn is_external(&self) -> bool {
        self.external
    }

    fn retry_policy(&self) -> super::resilience::RetryPolicy {
        self.retry
    }

    fn pool(&self) -> Option<&Pool> {
        Some(&self.pool)
    }

    fn chat<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, GatewayError>> {
        Box::pin(async move {
            let request = self.post(endpoint, &call, false)?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let id = request_id(&response);
            let body = read_body(&self.name, self.timeout, response).await?;
            wire::parse_response(&body, id, call.upstream_model).map_err(|message| {
                GatewayError::BadGateway {
                    provider: self.name.clone(),
                    message: format!("unreadable upstream response: {message}"),
                }
            })
        })
    }

    fn stream<'a>(
        &'a self,
        endpoint: usize,
        call: Call<'a>,
    ) -> BoxFuture<'a, Result<EventStream, GatewayError>> {
        Box::pin(async move {
            let request = self.post(endpoint, &call, true)?;
            let response = send(&self.name, self.timeout, request, wire::parse_error).await?;
            let id = request_id(&response);
            let state = StreamState {
                provider: self.name.clone(),
                idle_timeout: self.timeout,
                body: response.bytes_stream().boxed(),
                reader: wire::FrameReader::new(self.max_frame_bytes),
                decoder: wire::StreamDecoder::new(id, call.upstream_model),
                pending: VecDeque::new(),
                finished: false,
            };
            let events: EventStream = Box::pin(futures::stream::unfold(state, StreamState::next));
            Ok(events)
        })
    }
}

/// An upstream event-stream body turned into canonical events. Bounded memory: one frame
/// (capped at `max_sse_event_bytes`) plus the events of one chunk. Dropping it closes the
/// upstream connection.
struct StreamState {
    provider: String,
    idle_timeout: Duration,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    reader: wire::FrameReader,
    decoder: wire::StreamDecoder,
    pending: VecDeque<Result<StreamEvent, GatewayError>>,
    finished: bool,
}

impl StreamState {
    fn fail(&mut self, failure: wire::StreamFailure) {
        self.pending
            .push_back(Err(failure.into_error(&self.provider)));
        self.finished = true;
    }

    fn feed(&mut self, chunk: &[u8]) {
        let frames = match self.reader.push(chunk) {
            Ok(frames) => frames,
            Err(message) => return self.fail(wire::StreamFailure::Malformed(message)),
        };
        for frame in frames {
            if self.decoder.is_done() {
                break;
            }
            match self.decoder.decode(&frame) {
                Ok(events) => self.pending.extend(events.into_iter().map(Ok)),
                Err(failure) => return self.fail(failure),
            }
        }
        if self.decoder.is_done() {
            self.finished = true;
        }
    }

    fn end(&mut self) {
        if self.reader.has_partial() && !self.decoder.is_done() {
            return self.fail(wire::StreamFailure::Malformed(
                "upstream stream ended inside an event-stream frame".into(),
            ));
        }
        match self.decoder.finish() {
            Ok(events) => {
                self.pending.extend(events.into_iter().map(Ok));
                self.finished = true;
            }
            Err(failure) => self.fail(failure),
        }
    }

    async fn next(mut self) -> Option<(Result<StreamEvent, GatewayError>, Self)> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some((item, self));
            }
            if self.finished {
                return None;
            }
            match tokio::time::timeout(self.idle_timeout, self.body.next()).await {
                Err(_) => {
                    let err = timed_out(&self.provider, self.idle_timeout);
                    self.pending.push_back(Err(err));
                    self.finished = true;
                }
                Ok(Some(Ok(chunk))) => self.feed(&chunk),
                Ok(Some(Err(e))) => {
                    let err = transport_error(&self.provider, self.idle_timeout, e);
                    self.pending.push_back(Err(err));
                    self.finished = true;
                }
                Ok(None) => self.end(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{ChatRequest, Dialect, Message, Role};
    use crate::config::{Config, Secret};

    fn provider() -> BedrockProvider {
        let cfg = Config::from_yaml_str(
            "providers:\n  - name: br\n    kind: bedrock\n    base_url: \"http://127.0.0.1:9\"\n    bedrock: { region: us-east-1, access_key_id: AKID, secret_access_key: s, model_ids: { m: \"anthropic.x-v1:0\" } }\n",
        )
        .expect("config");
        let p = &cfg.providers[0];
        let access = BedrockAccess {
            region: "us-east-1".into(),
            access_key_id: "AKID".into(),
            secret_access_key: Secret::new("s"),
            session_token: None,
        };
        BedrockProvider::new(p, access, reqwest::Client::new(), 1 << 20)
    }

    #[test]
    fn requests_are_signed_for_bedrock_in_the_region() {
        let p = provider();
        let req = ChatRequest::new("m", vec![Message::text(Role::User, "hi")], Dialect::OpenAi);
        let headers = crate::providers::ForwardHeaders::default();
        let call = Call {
            request: &req,
            upstream_model: "m",
            headers: &headers,
        };
        let built = p
            .post(0, &call, true)
            .expect("post")
            .build()
            .expect("request");
        assert_eq!(
            built.url().as_str(),
            "http://127.0.0.1:9/model/anthropic.x-v1%3A0/converse-stream"
        );
        let auth = built.headers()["authorization"].to_str().expect("ascii");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/"),
            "{auth}"
        );
        assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=accept;content-type;host;x-amz-date"),
            "{auth}"
        );
        assert!(built.headers()["authorization"].is_sensitive());
    }

    /// `cargo test -p switchyard --lib signing_cost -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn signing_cost() {
        let p = provider();
        let req = ChatRequest::new(
            "m",
            vec![Message::text(Role::User, "hello ".repeat(200))],
            Dialect::OpenAi,
        );
        let headers = crate::providers::ForwardHeaders::default();
        let n = 5000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            let call = Call {
                request: &req,
                upstream_model: "m",
                headers: &headers,
            };
            let _ = std::hint::black_box(p.post(0, &call, false).expect("post"));
        }
        let per = start.elapsed() / n;
        println!("translate + encode + SigV4-sign one ~1.2 KB Converse request: {per:?}");
    }
}
