//! Traces and metrics.
//!
//! - [`init`] installs the process-wide `tracing` subscriber: human logs on stderr, plus an
//!   OpenTelemetry layer exporting spans over OTLP (HTTP/protobuf) when the standard
//!   `OTEL_EXPORTER_OTLP_*ENDPOINT` variables ask for it.
//! - [`spans`] builds the request-path spans with GenAI semantic-convention attributes.
//! - [`propagation`] reads W3C `traceparent` from clients and writes it to upstreams.
//! - [`metrics`] is the Prometheus registry behind `/metrics`.
//!
//! Spans use the target [`SPAN_TARGET`]. The stderr layer ignores that target unless
//! `RUST_LOG` names it, and the OTel layer exists only when export is on, so with export off
//! no subscriber is interested in those callsites and creating a span costs one cached
//! interest check.

pub mod metrics;
pub mod propagation;
pub mod spans;

pub use metrics::{Metrics, MetricsConfig, MetricsError, RequestObservation};
pub use propagation::{extract_context, inject_trace_headers, inject_trace_headers_from};
pub use spans::{RequestSpan, SPAN_TARGET};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// Why OTLP export could not be set up. `init` reports it on stderr and keeps running with
/// logs only: a broken collector address must not stop the gateway.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP protocol {0:?} is not supported by this build; use http/protobuf")]
    UnsupportedProtocol(String),
    #[error("cannot build the OTLP span exporter: {0}")]
    Exporter(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// Flushes and shuts down the span exporter when dropped. Keep it alive in `main` for the
/// whole run; drop it after the server has stopped so the last spans are sent.
#[must_use = "dropping the guard shuts trace export down"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported (OTLP configured and set up).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The batch processor exports on its own thread, so this blocks only this
            // thread, never a runtime worker's scheduled tasks.
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: flushing spans at shutdown failed: {e}");
            }
        }
    }
}

/// When OTLP trace export is on, following the OpenTelemetry SDK environment spec.
pub fn otlp_enabled_from_env(get: impl Fn(&str) -> Option<String>) -> bool {
    let set = |k: &str| get(k).is_some_and(|v| !v.trim().is_empty());
    if get("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return false;
    }
    if get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim().eq_ignore_ascii_case("none")) {
        return false;
    }
    set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// The stderr filter: `RUST_LOG` (default `info`), with the span target turned off unless
/// `RUST_LOG` mentions it, so request spans are free when only logging.
fn fmt_filter(rust_log: Option<&str>) -> EnvFilter {
    let spec = rust_log.filter(|s| !s.trim().is_empty()).unwrap_or("info");
    let mut filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .parse_lossy(spec);
    if !spec.contains(SPAN_TARGET) {
        if let Ok(d) = format!("{SPAN_TARGET}=off").parse() {
            filter = filter.add_directive(d);
        }
    }
    filter
}

/// What the OTel layer sees: our request spans, and warnings/errors elsewhere (they become
/// span events on the current span).
fn otel_filter() -> Targets {
    Targets::new()
        .with_target(SPAN_TARGET, LevelFilter::TRACE)
        .with_default(LevelFilter::WARN)
}

fn build_provider(service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let protocol =
        env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if let Some(p) = protocol.filter(|p| p.trim() != "http/protobuf") {
        return Err(TelemetryError::UnsupportedProtocol(p));
    }
    // Reads OTEL_EXPORTER_OTLP_{,TRACES_}{ENDPOINT,HEADERS,TIMEOUT} itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()?;
    // The default resource reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only fall
    // back to our name when the operator did not choose one.
    let mut resource = opentelemetry_sdk::Resource::builder();
    if env("OTEL_SERVICE_NAME").is_none_or(|v| v.trim().is_empty()) {
        resource = resource.with_service_name(service_name.to_string());
    }
    Ok(SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build())
}

/// Installs the global subscriber (stderr logs; OTLP spans when configured). Call once at
/// the start of `main`, before anything logs. A second call (tests) keeps the first
/// subscriber and returns a guard that does nothing.
pub fn init(service_name: &str) -> TelemetryGuard {
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(fmt_filter(env("RUST_LOG").as_deref()));
    let mut provider = None;
    let mut setup_error = None;
    if otlp_enabled_from_env(env) {
        match build_provider(service_name) {
            Ok(p) => provider = Some(p),
            Err(e) => setup_error = Some(e),
        }
    }
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("switchyard"))
            .with_threads(false)
            .with_location(false)
            .with_filter(otel_filter())
    });
    let installed = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .is_ok();
    if let Some(e) = setup_error {
        tracing::error!(error = %e, "OpenTelemetry export disabled");
    }
    if !installed {
        if let Some(p) = provider.take() {
            let _ = p.shutdown();
        }
    } else if provider.is_some() {
        tracing::info!("exporting traces over OTLP");
    }
    TelemetryGuard { provider }
}

/// A subscriber layer exporting spans through `provider`, filtered as `init` does. For
/// embedding the gateway in a process that owns its own subscriber (and for tests).
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("switchyard"))
        .with_threads(false)
        .with_location(false)
        .with_filter(otel_filter())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn export_is_off_unless_an_endpoint_is_set() {
        assert!(!otlp_enabled_from_env(vars(&[])));
        assert!(otlp_enabled_from_env(vars(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318"
        )])));
        assert!(otlp_enabled_from_env(vars(&[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/v1/traces"
        )])));
        assert!(!otlp_enabled_from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ])));
        assert!(!otlp_enabled_from_env(vars(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])));
    }

    #[test]
    fn stderr_filter_hides_request_spans_unless_asked() {
        use tracing::level_filters::LevelFilter;
        let f = fmt_filter(None);
        assert_eq!(f.max_level_hint(), Some(LevelFilter::INFO));
        assert!(!fmt_filter(None).to_string().is_empty());
        assert!(fmt_filter(None)
            .to_string()
            .contains(&format!("{SPAN_TARGET}=off")));
        assert!(!fmt_filter(Some("debug,switchyard::otel=info"))
            .to_string()
            .contains("=off"));
    }
}
