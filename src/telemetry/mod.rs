//! Telemetry: logs to stderr, traces over OTLP (OpenTelemetry), and the
//! Prometheus metrics served at `/metrics`.

pub mod metrics;
mod traces;

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Logs shown when `RUST_LOG` is not set. symphonia logs every undecodable
/// upload as an error; Sori answers those itself, so its logs are off.
const DEFAULT_LOG_FILTER: &str = "info,whisper_cpp=warn,symphonia_core=off";

/// Keeps the trace pipeline alive; on drop, flushes spans not yet sent and
/// shuts the exporter down (so nothing is lost at shutdown).
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Sends the spans not yet sent (a worker process does after each job,
    /// since it may be killed before its exporter's next round).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::debug!(error = %e, "flushing traces failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.force_flush() {
            eprintln!("sori: flushing traces failed: {e}");
        }
        if let Err(e) = self.provider.shutdown() {
            eprintln!("sori: stopping the trace exporter failed: {e}");
        }
    }
}

/// Installs logging and tracing for the process. Traces are exported when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set; spans and
/// trace ids exist either way. Call before starting the async runtime.
pub fn init() -> anyhow::Result<TelemetryGuard> {
    let provider = traces::provider()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(traces::layer(&provider))
        .try_init()?;
    if traces::export_configured() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    Ok(TelemetryGuard { provider })
}
