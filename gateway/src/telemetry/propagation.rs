//! W3C trace context (`traceparent`, `tracestate`) in from clients, out to upstreams.
//!
//! One propagator instance is used directly rather than the OTel global one, so behaviour
//! does not depend on who set what global, and tests need no process state.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(key),
            http::HeaderValue::try_from(value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The client's trace context, or an empty context when it sent none (or a malformed one:
/// the propagator validates version, ids and flags).
pub fn extract_context(headers: &http::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` a child of the client's trace when the request carries `traceparent`.
pub(crate) fn set_parent_from_headers(span: &Span, headers: &http::HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = extract_context(headers);
    if cx.span().span_context().is_valid() {
        // Fails only when no OTel layer is installed; then there is no trace to join.
        let _ = span.set_parent(cx);
    }
}

/// Writes `traceparent` (and `tracestate`) for the current span into an upstream request's
/// headers. Providers call this while building the upstream request, inside the
/// `provider_call` span. Without an OTel layer the current span has no trace context and
/// nothing is written.
pub fn inject_trace_headers(headers: &mut http::HeaderMap) {
    inject_trace_headers_from(&Span::current(), headers);
}

/// Like [`inject_trace_headers`], for an explicit span (e.g. one not entered).
pub fn inject_trace_headers_from(span: &Span, headers: &mut http::HeaderMap) {
    if span.is_disabled() {
        return;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, &mut HeaderInjector(headers));
}
