//! OpenTelemetry traces: the OTLP exporter configured by the standard
//! `OTEL_*` variables (trace context itself is `crate::trace_context`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Whether an OTLP endpoint is configured for traces.
pub fn export_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

/// The tracer provider: batching to OTLP/HTTP (protobuf) when an endpoint is
/// set, otherwise none (spans still get ids, and nothing is sent).
pub fn provider() -> anyhow::Result<SdkTracerProvider> {
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name("sori");
    }
    let mut builder = SdkTracerProvider::builder().with_resource(resource.build());
    if export_configured() {
        // The batch processor sends from its own thread: a slow or missing
        // collector never blocks a request.
        let exporter = SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// The tracing layer that turns spans into OpenTelemetry spans.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("sori"))
}
