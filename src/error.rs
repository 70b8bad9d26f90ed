//! One error type for the HTTP layer, mapped in one place to a status and the
//! JSON body `{"error": {"code": "...", "message": "..."}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::audio::AudioError;
use crate::batch::store::StoreError;
use crate::batch::DeleteError;
use crate::engine::{JobError, SubmitError};
use crate::models::UnknownModel;
use crate::store::history::DeleteFailed;
use crate::store::FilesError;
use crate::transcription::TranscriptionError;

/// Seconds a client is asked to wait after a 503 for a full queue.
const RETRY_AFTER_SEC: u32 = 5;
/// Seconds a client is asked to wait after a 503 while the server shuts down
/// (long enough for a replacement to start).
const SHUTDOWN_RETRY_AFTER_SEC: u32 = 30;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed; `code` names the problem for programs.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// The body (or one file of it, `what`) is larger than the configured limit.
    #[error("{what} is larger than the {limit_mb} MiB this server accepts")]
    PayloadTooLarge { what: String, limit_mb: u64 },
    /// The bytes are not audio Sori reads.
    #[error("{0}")]
    UnsupportedMedia(String),
    /// Audio that decodes but cannot be transcribed (empty, too long).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// No such file id.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be done in the resource's present state (a batch
    /// still running); `code` names why.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The model asked for is not the one served.
    #[error("{0}")]
    ModelNotFound(String),
    /// An API key is required and the request has none, or a wrong one.
    #[error("{0}")]
    Unauthorized(String),
    /// The path exists, the method does not.
    #[error("{0} is not allowed on this path; see the API in the README")]
    MethodNotAllowed(String),
    /// A browser sent a state-changing request on behalf of another site.
    #[error("requests from the web page at {0} are not accepted; start the server with --allowed-origins to allow it")]
    ForbiddenOrigin(String),
    /// The upload did not finish within the deadline.
    #[error("the upload did not finish within {limit_sec} s; send it over a faster connection, or raise --upload-deadline-sec")]
    UploadTimeout { limit_sec: u64 },
    /// Every upload slot is taken.
    #[error("the server is receiving as many uploads as it accepts at once; retry in {RETRY_AFTER_SEC} s")]
    TooManyUploads,
    /// Every live session slot is taken (`--max-live-sessions`).
    #[error("the server has as many live sessions open as it takes ({0}); retry in {RETRY_AFTER_SEC} s")]
    TooManyLiveSessions(usize),
    /// The server is draining before it stops.
    #[error("the server is shutting down; retry in {SHUTDOWN_RETRY_AFTER_SEC} s (another replica, or this one after its restart)")]
    ShuttingDown,
    /// The queue is full: try again later.
    #[error("the server is busy: every transcription slot is taken; retry in {RETRY_AFTER_SEC} s")]
    QueueFull,
    /// The database cannot be reached now.
    #[error("the server cannot reach its database just now; retry in {RETRY_AFTER_SEC} s")]
    DatabaseUnavailable(String),
    /// The file store (the bucket) cannot be reached now.
    #[error("the server cannot reach its file storage just now; retry in {RETRY_AFTER_SEC} s")]
    StorageUnavailable(String),
    /// The model's worker processes could not be started (the reason goes to the log).
    #[error("the model {model} could not be started; the server's log says why")]
    ModelUnavailable { model: String, details: String },
    /// The worker process running the job died (the server itself is fine).
    #[error("{0}; the server is still running and a new worker process is started in its place. Sending the file again may work; a file that crashes the engine every time should be reported with the server's log")]
    EngineCrashed(String),
    /// A fault of the server; the details go to the log only.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    /// A 400 with a code and a message.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The machine-readable error code (`missing_file`, `queue_full`, ...).
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media"),
            Self::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::ModelNotFound(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "invalid_api_key"),
            Self::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::ForbiddenOrigin(_) => (StatusCode::FORBIDDEN, "forbidden_origin"),
            Self::UploadTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "upload_timeout"),
            Self::TooManyUploads => (StatusCode::SERVICE_UNAVAILABLE, "too_many_uploads"),
            Self::TooManyLiveSessions(_) => (StatusCode::SERVICE_UNAVAILABLE, "too_many_live_sessions"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            Self::QueueFull => (StatusCode::SERVICE_UNAVAILABLE, "queue_full"),
            Self::DatabaseUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
            Self::StorageUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::ModelUnavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "model_unavailable"),
            Self::EngineCrashed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "engine_crashed"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        crate::telemetry::metrics::record_error(code);
        let message = match &self {
            Self::DatabaseUnavailable(details) => {
                tracing::warn!(%details, "the database is unreachable");
                self.to_string()
            }
            Self::StorageUnavailable(details) => {
                tracing::warn!(%details, "the file storage is unreachable");
                self.to_string()
            }
            Self::ModelUnavailable { model, details } => {
                tracing::error!(%model, %details, "a model could not be started");
                self.to_string()
            }
            Self::Internal(details) => {
                tracing::error!(%details, "request failed");
                "the server failed to process this request; the details are in its log".to_string()
            }
            other => other.to_string(),
        };
        let mut response = (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
        let retry_after = match self {
            Self::QueueFull
            | Self::TooManyUploads
            | Self::TooManyLiveSessions(_)
            | Self::DatabaseUnavailable(_)
            | Self::StorageUnavailable(_)
            | Self::ModelUnavailable { .. } => Some(RETRY_AFTER_SEC),
            Self::ShuttingDown => Some(SHUTDOWN_RETRY_AFTER_SEC),
            _ => None,
        };
        if code == "invalid_api_key" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<AudioError> for AppError {
    fn from(e: AudioError) -> Self {
        match e {
            AudioError::NotAudio(_) | AudioError::Corrupt(_) | AudioError::UnsupportedRate(_) => {
                Self::UnsupportedMedia(e.to_string())
            }
            AudioError::Empty => Self::Unprocessable {
                code: "empty_audio",
                message: e.to_string(),
            },
            AudioError::TooLong { .. } => Self::Unprocessable {
                code: "audio_too_long",
                message: e.to_string(),
            },
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(details) => Self::DatabaseUnavailable(details),
            StoreError::Publish(files) => files.into(),
            failed @ StoreError::Failed(_) => Self::Internal(failed.to_string()),
        }
    }
}

impl From<FilesError> for AppError {
    fn from(e: FilesError) -> Self {
        match e {
            FilesError::Unavailable(details) => Self::StorageUnavailable(details),
            failed @ FilesError::Failed(_) => Self::Internal(failed.to_string()),
        }
    }
}

impl From<DeleteFailed> for AppError {
    fn from(e: DeleteFailed) -> Self {
        match e {
            DeleteFailed::Files(files) => files.into(),
            DeleteFailed::Index(index) => index.into(),
        }
    }
}

impl From<DeleteError> for AppError {
    fn from(e: DeleteError) -> Self {
        match e {
            DeleteError::Store(store) => store.into(),
            DeleteError::Files(_, failed) => failed.into(),
        }
    }
}

impl From<UnknownModel> for AppError {
    fn from(e: UnknownModel) -> Self {
        Self::ModelNotFound(e.to_string())
    }
}

impl From<SubmitError> for AppError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::QueueFull => Self::QueueFull,
            SubmitError::Job(JobError::Audio(audio)) => audio.into(),
            SubmitError::Job(JobError::Engine(engine)) => Self::Internal(engine.to_string()),
            SubmitError::Job(crashed @ JobError::Crashed(_)) => Self::EngineCrashed(crashed.to_string()),
            SubmitError::WorkerGone => Self::Internal(e.to_string()),
        }
    }
}

impl From<TranscriptionError> for AppError {
    fn from(e: TranscriptionError) -> Self {
        match e {
            TranscriptionError::Submit(submit) => submit.into(),
            TranscriptionError::Load(failed) => Self::ModelUnavailable {
                model: failed.name,
                details: failed.reason,
            },
            TranscriptionError::Save {
                source: FilesError::Unavailable(details),
                ..
            } => Self::StorageUnavailable(details),
            save @ TranscriptionError::Save { .. } => Self::Internal(save.to_string()),
        }
    }
}
