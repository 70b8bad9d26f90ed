//! The HTTP API: `app(state)` builds the router the server runs and the tests drive.

mod batch;
mod files;
mod health;
mod metrics;
mod transcribe;
mod ui;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use std::time::Duration;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::batch::Batches;
use crate::engine::Engine;
use crate::error::AppError;
use crate::store::FileStore;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub store: FileStore,
    /// Batches: their database, dispatcher and events.
    pub batches: Arc<Batches>,
    /// Largest accepted upload of one file, bytes.
    pub max_upload_bytes: u64,
    /// Largest accepted `POST /batch` body, bytes.
    pub max_batch_upload_bytes: u64,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// An upload that sends nothing for this long is dropped, so a stalled
    /// or hostile client cannot hold a request open forever.
    pub upload_idle_timeout: Duration,
}

/// Runs blocking I/O (files, the database) off the async threads; its failure
/// is a server fault, reported as an internal error that names `what`.
async fn blocking<T, E>(what: String, work: impl FnOnce() -> Result<T, E> + Send + 'static) -> Result<T, AppError>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(format!("{what}: {e}")))
}

/// The whole API.
pub fn app(state: AppState) -> Router {
    let body_limit = usize::try_from(state.max_upload_bytes).unwrap_or(usize::MAX);
    let batch_limit = usize::try_from(state.max_batch_upload_bytes).unwrap_or(usize::MAX);
    Router::new()
        .route("/", get(ui::index))
        .route("/static/app.js", get(ui::script))
        .route("/static/style.css", get(ui::style))
        .route("/transcribe", post(transcribe::transcribe))
        .route("/batch", post(batch::create).layer(DefaultBodyLimit::max(batch_limit)))
        .route("/batch/{batch_id}", get(batch::get))
        .route("/batch/{batch_id}/summary", get(batch::summary))
        .route("/batch/{batch_id}/events", get(batch::events))
        .route("/batches", get(batch::list))
        .route("/files/{file_id}", get(files::record))
        .route("/files/{file_id}/text", get(files::text))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { AppError::NotFound("no such endpoint".into()) })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(state.upload_idle_timeout))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
