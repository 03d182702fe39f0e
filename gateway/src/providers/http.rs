//! HTTP plumbing shared by the HTTP providers: the pooled client, error mapping and
//! turning an upstream SSE body into canonical events.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::canonical::{GatewayError, StreamEvent};
use crate::config::ProviderConfig;
use crate::dialects::sse::{SseEvent, SseParser};
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};

use crate::canonical::EventStream;

/// One pooled client per provider, created at start-up and shared by all requests.
pub(crate) fn client(cfg: &ProviderConfig) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        // Without it every small response can wait ~40 ms on a delayed ACK.
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build()?)
}

/// An endpoint's fixed headers for a JSON API: the content type, the key as `key` gives
/// it (name and value, marked sensitive so it never reaches a log), then the provider's
/// configured `headers:`, which may replace the key header (Azure's `api-key`…).
pub(crate) fn json_headers(cfg: &ProviderConfig, key: Option<(HeaderName, String)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some((name, value)) = key {
        if let Ok(mut value) = HeaderValue::from_str(&value) {
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    configured_headers(cfg, &mut headers);
    headers
}

/// The provider's `headers:` (names or values that are not valid HTTP are skipped; the
/// config check reports them).
pub(crate) fn configured_headers(cfg: &ProviderConfig, headers: &mut HeaderMap) {
    for (k, v) in &cfg.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::try_from(k.as_str()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
}

/// Decodes one provider's streaming wire format into canonical events.
pub(crate) trait SseDecoder: Send + 'static {
    fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String>;
    /// Called at the end of the upstream body; errors when the stream was truncated.
    fn finish(&mut self) -> Result<Vec<StreamEvent>, String>;
    /// The terminal event was seen; anything after it is ignored.
    fn is_done(&self) -> bool;
}

impl SseDecoder for crate::dialects::openai::StreamDecoder {
    fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::openai::StreamDecoder::decode(self, ev)
    }
    fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::openai::StreamDecoder::finish(self)
    }
    fn is_done(&self) -> bool {
        crate::dialects::openai::StreamDecoder::is_done(self)
    }
}

impl SseDecoder for crate::dialects::anthropic::StreamDecoder {
    fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::anthropic::StreamDecoder::decode(self, ev)
    }
    fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::anthropic::StreamDecoder::finish(self)
    }
    fn is_done(&self) -> bool {
        crate::dialects::anthropic::StreamDecoder::is_done(self)
    }
}

impl SseDecoder for crate::dialects::gemini::StreamDecoder {
    fn decode(&mut self, ev: &SseEvent) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::gemini::StreamDecoder::decode(self, ev)
    }
    fn finish(&mut self) -> Result<Vec<StreamEvent>, String> {
        crate::dialects::gemini::StreamDecoder::finish(self)
    }
    fn is_done(&self) -> bool {
        crate::dialects::gemini::StreamDecoder::is_done(self)
    }
}

pub(crate) type ErrorParser = fn(u16, &[u8], Option<String>, &str) -> GatewayError;

/// The message of a failed connection; `health::UpstreamErrorKind` recognises it.
pub(crate) const CONNECT_FAILED: &str = "cannot connect to upstream";

pub(crate) fn transport_error(
    provider: &str,
    timeout: Duration,
    e: reqwest::Error,
) -> GatewayError {
    if e.is_timeout() {
        return GatewayError::Timeout {
            provider: provider.to_string(),
            after_ms: timeout.as_millis() as u64,
        };
    }
    let message = if e.is_connect() {
        let cause = ConnectCause::of(&e);
        tracing::warn!(provider, cause = cause.as_str(), error = %error_chain(&e), "cannot connect to upstream");
        format!("{CONNECT_FAILED}: {}", cause.as_str())
    } else {
        // Strip the URL: it is config, but error text should not grow with it.
        format!("upstream transport error: {}", e.without_url())
    };
    GatewayError::BadGateway {
        provider: provider.to_string(),
        message,
    }
}

/// Why a connection failed, as far as the error chain tells: named in the client's error
/// and the log (never the URL, which may carry credentials for some providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectCause {
    Dns,
    Refused,
    Tls,
    Timeout,
    Unreachable,
    Other,
}

impl ConnectCause {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ConnectCause::Dns => "DNS lookup failed",
            ConnectCause::Refused => "connection refused",
            ConnectCause::Tls => "TLS handshake failed",
            ConnectCause::Timeout => "connect timed out",
            ConnectCause::Unreachable => "network unreachable",
            ConnectCause::Other => "connection failed",
        }
    }

    fn of(e: &(dyn std::error::Error + 'static)) -> ConnectCause {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
        let mut text = String::new();
        while let Some(err) = next {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => return ConnectCause::Refused,
                    std::io::ErrorKind::TimedOut => return ConnectCause::Timeout,
                    std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::HostUnreachable => return ConnectCause::Unreachable,
                    _ => {}
                }
            }
            if err.downcast_ref::<tokio_rustls::rustls::Error>().is_some() {
                return ConnectCause::Tls;
            }
            text.push_str(&err.to_string().to_ascii_lowercase());
            text.push(' ');
            next = err.source();
        }
        // hyper-util's resolver and connector say what failed only in their text.
        if text.contains("dns error") || text.contains("failed to lookup address") {
            ConnectCause::Dns
        } else if [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "fatal alert",
        ]
        .iter()
        .any(|w| text.contains(w))
        {
            ConnectCause::Tls
        } else if text.contains("timed out") {
            ConnectCause::Timeout
        } else {
            ConnectCause::Other
        }
    }
}

/// The error and its sources on one line, for the log.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(err) = next {
        out.push_str(": ");
        out.push_str(&err.to_string());
        next = err.source();
    }
    out
}

pub(crate) fn timed_out(provider: &str, timeout: Duration) -> GatewayError {
    GatewayError::Timeout {
        provider: provider.to_string(),
        after_ms: timeout.as_millis() as u64,
    }
}

/// Sends the request and waits for the response head; a non-2xx status becomes the
/// provider's error in canonical form (status and `retry-after` kept).
pub(crate) async fn send(
    provider: &str,
    timeout: Duration,
    request: reqwest::RequestBuilder,
    parse_error: ErrorParser,
) -> Result<reqwest::Response, GatewayError> {
    let response = tokio::time::timeout(timeout, request.send())
        .await
        .map_err(|_| timed_out(provider, timeout))?
        .map_err(|e| transport_error(provider, timeout, e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = read_body(provider, timeout, response)
        .await
        .unwrap_or_default();
    if status == http::StatusCode::UNAUTHORIZED {
        // About the gateway's own key, and upstreams quote part of it back ("Incorrect
        // API key provided: sk-ab***"): the text must reach neither clients nor logs.
        return Err(GatewayError::Upstream {
            provider: provider.to_string(),
            status: 401,
            message: "the upstream refused the key configured for this provider".into(),
            retry_after: None,
        });
    }
    Err(parse_error(status.as_u16(), &body, retry_after, provider))
}

pub(crate) async fn read_body(
    provider: &str,
    timeout: Duration,
    response: reqwest::Response,
) -> Result<Bytes, GatewayError> {
    tokio::time::timeout(timeout, response.bytes())
        .await
        .map_err(|_| timed_out(provider, timeout))?
        .map_err(|e| transport_error(provider, timeout, e))
}

struct StreamState<D> {
    provider: String,
    idle_timeout: Duration,
    body: BoxStream<'static, reqwest::Result<Bytes>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<Result<StreamEvent, GatewayError>>,
    finished: bool,
}

impl<D: SseDecoder> StreamState<D> {
    fn fail(&mut self, message: String) {
        self.pending.push_back(Err(GatewayError::BadGateway {
            provider: self.provider.clone(),
            message,
        }));
        self.finished = true;
    }

    fn feed(&mut self, events: Vec<SseEvent>) {
        for ev in events {
            if self.decoder.is_done() {
                break;
            }
            match self.decoder.decode(&ev) {
                Ok(out) => self.pending.extend(out.into_iter().map(Ok)),
                Err(message) => return self.fail(message),
            }
        }
        if self.decoder.is_done() {
            self.end();
        }
    }

    fn end(&mut self) {
        match self.decoder.finish() {
            Ok(out) => {
                self.pending.extend(out.into_iter().map(Ok));
                self.finished = true;
            }
            Err(message) => self.fail(message),
        }
    }

    async fn next_event(mut self) -> Option<(Result<StreamEvent, GatewayError>, Self)> {
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
                Ok(Some(Ok(chunk))) => match self.parser.push(&chunk) {
                    Ok(events) => self.feed(events),
                    Err(e) => self.fail(format!("invalid event stream: {e}")),
                },
                Ok(Some(Err(e))) => {
                    let err = transport_error(&self.provider, self.idle_timeout, e);
                    self.pending.push_back(Err(err));
                    self.finished = true;
                }
                Ok(None) => match self.parser.finish() {
                    Ok(last) => {
                        self.feed(last.into_iter().collect());
                        if !self.finished {
                            self.end();
                        }
                    }
                    Err(e) => self.fail(format!("invalid event stream: {e}")),
                },
            }
        }
    }
}

/// Turns an upstream SSE response into canonical events. Bounded memory: one parser
/// buffer (capped at `max_event_bytes`) plus the events of one chunk.
pub(crate) fn event_stream<D: SseDecoder>(
    provider: &str,
    idle_timeout: Duration,
    max_event_bytes: usize,
    response: reqwest::Response,
    decoder: D,
) -> EventStream {
    let state = StreamState {
        provider: provider.to_string(),
        idle_timeout,
        body: response.bytes_stream().boxed(),
        parser: SseParser::new(max_event_bytes),
        decoder,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, StreamState::next_event))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn failure(url: &str) -> String {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let e = client.get(url).send().await.expect_err("cannot succeed");
        match transport_error("p", Duration::from_secs(2), e) {
            GatewayError::BadGateway { message, .. } => message,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_failed_connection_names_its_cause() {
        // A port nobody listens on: refused.
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = free.local_addr().expect("addr").port();
        drop(free);
        let m = failure(&format!("http://127.0.0.1:{port}/v1")).await;
        assert_eq!(m, "cannot connect to upstream: connection refused");
        // TLS spoken to a plain-TCP server that answers garbage: the handshake fails.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                use tokio::io::AsyncWriteExt;
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let m = failure(&format!("https://127.0.0.1:{port}/v1")).await;
        assert_eq!(m, "cannot connect to upstream: TLS handshake failed");
        use crate::providers::health::UpstreamErrorKind;
        assert!(
            UpstreamErrorKind::of(&GatewayError::BadGateway {
                provider: "p".into(),
                message: m
            }) == UpstreamErrorKind::Connect
        );
    }
}
