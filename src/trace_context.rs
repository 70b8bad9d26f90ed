//! W3C trace context: continuing a caller's trace (from HTTP headers, or from
//! the traceparent the server hands a worker process) and reading a span's ids.

use std::collections::HashMap;

use axum::http::HeaderMap;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` a child of the W3C `traceparent` in `headers`, if any.
pub fn with_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    let carrier: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    continue_trace(span, &carrier);
}

/// Makes `span` a child of the span a `traceparent` value names.
pub fn with_traceparent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    continue_trace(span, &carrier);
}

fn continue_trace(span: &tracing::Span, carrier: &HashMap<String, String>) {
    let parent = TraceContextPropagator::new().extract(carrier);
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// The 32-hex-digit trace id of `span`, if it has one.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| span_context.trace_id().to_string())
}

/// The W3C `traceparent` of `span` (`00-{trace id}-{span id}-01`), if it has ids.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}
