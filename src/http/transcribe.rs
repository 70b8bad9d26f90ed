//! `POST /transcribe`: one uploaded file in, its transcript and what it cost out.

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::upload::{
    multipart_error, multipart_form, receive_single_file, required_file, skip_field, text_field, SpooledUpload,
    SHORT_FIELD_BYTES,
};
use super::AppState;
use crate::audio::AudioWarning;
use crate::engine::{is_known_language, Lane, Segment, TranscribeOptions};
use crate::error::AppError;
use crate::models::OfferedModel;
use crate::monitor::StageTimings;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, LiveSessionSummary, TranscriptionRecord};
use crate::trace_context;
use crate::transcription::Request;

/// The JSON answer.
#[derive(Debug, Serialize)]
pub struct TranscribeResponse {
    pub file_id: FileId,
    pub filename: String,
    pub text: String,
    pub language: String,
    pub audio_duration_sec: f64,
    pub word_count: usize,
    pub model: String,
    pub segments: Vec<Segment>,
    pub performance: RequestPerformance,
    pub timings: StageTimings,
    /// What the transcript does not cover (a file cut short, damaged packets).
    pub warnings: Vec<AudioWarning>,
    /// The W3C trace id of this request (also in the record and the log line).
    pub trace_id: Option<String>,
    /// The replica that did the work (`--replica-name`).
    pub replica: Option<String>,
    /// For a saved live session: what it covers and what its figures mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSessionSummary>,
}

impl TranscribeResponse {
    /// The answer for a transcription: its record, transcript and segments.
    pub fn new(record: TranscriptionRecord, text: String, segments: Vec<Segment>) -> Self {
        Self {
            file_id: record.file_id,
            filename: record.filename,
            text,
            language: record.language,
            audio_duration_sec: record.audio_duration_sec,
            word_count: record.word_count,
            model: record.model,
            segments,
            performance: record.performance,
            timings: record.timings,
            warnings: record.warnings,
            trace_id: record.trace_id,
            replica: record.replica,
            live: record.live,
        }
    }
}

/// What the multipart form carried.
struct Upload {
    file_id: FileId,
    filename: String,
    audio: SpooledUpload,
    language: Option<String>,
    /// The model asked for (`None`: the default).
    model: Option<String>,
}

/// Transcribes the multipart field `file` (optional field `language`), in a
/// span that continues the caller's W3C `traceparent` and carries the outcome
/// and the eight figures as attributes.
pub async fn transcribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<TranscribeResponse>, AppError> {
    traced("POST /transcribe", &headers, |span| async move {
        run(state, multipart, &span).await
    })
    .await
}

/// Runs a transcription request in its server span (named `name`), which
/// continues the caller's W3C `traceparent` and gets the outcome as attributes.
pub(super) async fn traced<T, F>(
    name: &'static str,
    headers: &HeaderMap,
    handle: impl FnOnce(tracing::Span) -> F,
) -> Result<T, AppError>
where
    F: std::future::Future<Output = Result<T, AppError>>,
{
    let span = tracing::info_span!("transcribe", otel.name = name, otel.kind = "server");
    trace_context::with_remote_parent(&span, headers);
    let result = handle(span.clone()).instrument(span.clone()).await;
    match &result {
        Ok(_) => span.set_attribute("outcome", "success"),
        Err(e) => {
            span.set_attribute("outcome", e.code());
            span.set_status(opentelemetry::trace::Status::error(e.to_string()));
        }
    }
    result
}

async fn run(
    state: AppState,
    multipart: Result<Multipart, MultipartRejection>,
    span: &tracing::Span,
) -> Result<Json<TranscribeResponse>, AppError> {
    let multipart = multipart_form(multipart, "a field named file")?;
    let upload = read_upload(&state, multipart).await?;
    let model = state.transcriptions.models().find(upload.model.as_deref())?.clone();
    let language = check_language(&model, upload.language)?;
    probe(&state, &upload.audio).await?;

    let transcribed = state
        .transcriptions
        .transcribe(Request {
            file_id: upload.file_id,
            filename: upload.filename,
            model,
            audio: upload.audio.path().to_path_buf(),
            options: TranscribeOptions {
                language,
                ..TranscribeOptions::default()
            },
            trace_id: trace_context::trace_id_of(span),
            lane: Lane::Request,
        })
        .await?;
    drop(upload.audio);
    let (record, output) = (transcribed.record, transcribed.output);
    Ok(Json(TranscribeResponse::new(
        record,
        output.transcript.text,
        output.transcript.segments,
    )))
}

async fn read_upload(state: &AppState, mut multipart: Multipart) -> Result<Upload, AppError> {
    let limit = state.limits.max_upload_bytes;
    let failed = |e| multipart_error(e, "the upload", limit);
    let store = state.transcriptions.store();
    let mut file = None;
    let (mut language, mut model) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        match field.name() {
            Some("file") => receive_single_file(&mut file, field, store, limit).await?,
            Some("model") => model = text_field(field, SHORT_FIELD_BYTES, "the upload", limit).await?,
            Some("language") => {
                language = text_field(field, SHORT_FIELD_BYTES, "the upload", limit)
                    .await?
                    .map(|v| v.to_lowercase())
            }
            // Unknown fields are read and ignored.
            _ => skip_field(field, "the upload", limit).await?,
        }
    }
    let file = required_file(file)?;
    Ok(Upload {
        file_id: file.file_id,
        filename: file.filename,
        audio: file.audio,
        language,
        model,
    })
}

/// Reads the header of an upload (format, sample rate, stated length), so
/// junk is refused before it waits in the queue.
pub(super) async fn probe(state: &AppState, upload: &SpooledUpload) -> Result<(), AppError> {
    let (path, max_sec) = (
        upload.path().to_path_buf(),
        state.transcriptions.models().default_engine().max_audio_sec(),
    );
    tokio::task::spawn_blocking(move || crate::audio::probe_file(&path, max_sec))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;
    Ok(())
}

/// The language to ask the model for: `None` detects it.
pub(super) fn check_language(model: &OfferedModel, language: Option<String>) -> Result<Option<String>, AppError> {
    let Some(code) = language else {
        return Ok(None);
    };
    if !is_known_language(&code) {
        return Err(AppError::bad_request(
            "unknown_language",
            format!("{code:?} is not a Whisper language code; use e.g. en, ko, ja, or auto"),
        ));
    }
    if !model.multilingual && code != "en" && code != "auto" {
        return Err(AppError::bad_request(
            "unsupported_language",
            format!(
                "the model {} understands English only; send language=en or run a multilingual model",
                model.name
            ),
        ));
    }
    Ok((code != "auto").then_some(code))
}
