//! The HTTP API: `app(state)` builds the router the server runs and the tests drive.

mod auth;
mod batch;
mod files;
mod guards;
mod health;
mod metrics;
mod openai;
mod realtime;
mod transcribe;
mod ui;
mod upload;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::ApiKeys;

use crate::batch::Batches;
use crate::error::AppError;
use crate::live::{Live, LiveSettings};
use crate::transcription::Transcriptions;

/// Who may send requests, what one client may send, and how long it may take.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Largest accepted upload of one file, bytes.
    pub max_upload_bytes: u64,
    /// Largest accepted `POST /batch` body, bytes.
    pub max_batch_upload_bytes: u64,
    /// An upload that sends nothing for this long is dropped, so a stalled
    /// client cannot hold a request open.
    pub upload_idle_timeout: Duration,
    /// An upload not complete after this long is dropped, so a client that
    /// trickles a byte now and then cannot hold a request open either.
    pub upload_deadline: Duration,
    /// Uploads received at once; more get 503, so slow clients cannot take every connection.
    pub max_concurrent_uploads: usize,
    /// Origins (`https://app.example.com`) allowed to send state-changing
    /// requests besides the server's own; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Keys one of which every API request must carry; none: the API is open.
    pub api_keys: ApiKeys,
    /// Live sessions (`/v1/realtime`): how many, and what each may hold.
    pub live: LiveSettings,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 512 << 20,
            max_batch_upload_bytes: 4096 << 20,
            upload_idle_timeout: Duration::from_secs(30),
            upload_deadline: Duration::from_secs(600),
            max_concurrent_uploads: 32,
            allowed_origins: Vec::new(),
            api_keys: ApiKeys::default(),
            live: LiveSettings::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// Runs, records and saves transcriptions (the engine and the data folder).
    pub transcriptions: Transcriptions,
    /// Batches: their database, dispatcher and events.
    pub batches: Arc<Batches>,
    /// What clients may send.
    pub limits: Arc<HttpLimits>,
    /// One permit per upload being received (`limits.max_concurrent_uploads`).
    pub upload_slots: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// Cancelled when the server begins to shut down: readiness turns 503,
    /// uploads are refused, event streams end.
    pub shutdown: CancellationToken,
    /// The work a shutdown waits for: every upload request until it is
    /// answered, every streamed transcription, every batch file being transcribed.
    pub work: TaskTracker,
    /// When the server started, Unix seconds (the `created` of `/v1/models`).
    pub started_at: i64,
    /// Live sessions: their slots and the voice-activity model.
    pub live: Arc<Live>,
}

impl AppState {
    /// The state of a server with these parts and limits.
    pub fn new(
        transcriptions: Transcriptions,
        batches: Arc<Batches>,
        limits: HttpLimits,
        metrics: metrics_exporter_prometheus::PrometheusHandle,
        shutdown: CancellationToken,
        work: TaskTracker,
    ) -> Self {
        Self {
            transcriptions,
            batches,
            live: Arc::new(Live::new(limits.live.clone())),
            upload_slots: Arc::new(Semaphore::new(limits.max_concurrent_uploads)),
            limits: Arc::new(limits),
            metrics,
            shutdown,
            work,
            started_at: chrono::Utc::now().timestamp(),
        }
    }
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
    let body_limit = usize::try_from(state.limits.max_upload_bytes).unwrap_or(usize::MAX);
    let batch_limit = usize::try_from(state.limits.max_batch_upload_bytes).unwrap_or(usize::MAX);
    let uploads = middleware::from_fn_with_state(state.clone(), guards::limit_uploads);
    Router::new()
        .route("/", get(ui::index))
        .route("/static/{*path}", get(ui::asset))
        .route("/transcribe", post(transcribe::transcribe).route_layer(uploads.clone()))
        .route(
            "/v1/audio/transcriptions",
            post(openai::transcriptions).route_layer(uploads.clone()),
        )
        .route(
            "/v1/audio/translations",
            post(openai::translations).route_layer(uploads.clone()),
        )
        .route("/v1/realtime", get(realtime::connect))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{model_id}", get(openai::model))
        .route(
            "/batch",
            post(batch::create)
                .route_layer(uploads)
                .layer(DefaultBodyLimit::max(batch_limit)),
        )
        .route("/batch/{batch_id}", get(batch::get).delete(batch::delete))
        .route("/batch/{batch_id}/summary", get(batch::summary))
        .route("/batch/{batch_id}/events", get(batch::events))
        .route("/batches", get(batch::list))
        .route("/files", get(files::list))
        .route("/files/{file_id}", get(files::record).delete(files::delete))
        .route("/files/{file_id}/json", get(files::json))
        .route("/files/{file_id}/text", get(files::text))
        .route("/files/{file_id}/srt", get(files::srt))
        .route("/files/{file_id}/vtt", get(files::vtt))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::render))
        .fallback(|| async { AppError::NotFound("no such endpoint; see the API in the README".into()) })
        .method_not_allowed_fallback(guards::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(RequestBodyTimeoutLayer::new(state.limits.upload_idle_timeout))
        .route_layer(middleware::from_fn(metrics::track))
        .layer(middleware::from_fn_with_state(state.clone(), guards::same_origin))
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_key))
        .layer(middleware::from_fn(guards::security_headers))
        .layer(middleware::from_fn(openai::openai_errors))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
