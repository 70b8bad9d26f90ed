//! `POST /transcribe`: one uploaded file in, its transcript and what it cost out.

use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use bytes::Bytes;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{blocking, AppState};
use crate::engine::{is_known_language, Segment, StageTimings, TranscribeOptions};
use crate::error::AppError;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, TranscriptionRecord};
use crate::telemetry;

/// Longest file name kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;

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
    /// The W3C trace id of this request (also in the record and the log line).
    pub trace_id: Option<String>,
}

/// What the multipart form carried.
struct Upload {
    filename: String,
    audio: Bytes,
    language: Option<String>,
}

/// Transcribes the multipart field `file` (optional field `language`), in a
/// span that continues the caller's W3C `traceparent` and carries the outcome
/// and the eight figures as attributes.
pub async fn transcribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<TranscribeResponse>, AppError> {
    let span = tracing::info_span!("transcribe", otel.name = "POST /transcribe", otel.kind = "server");
    telemetry::with_remote_parent(&span, &headers);
    let result = run(state, multipart, &span).instrument(span.clone()).await;
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
    let multipart = multipart.map_err(|e| {
        AppError::bad_request(
            "invalid_request",
            format!("send the audio as multipart/form-data with a field named file ({e})"),
        )
    })?;
    let upload = read_upload(multipart, state.max_upload_bytes).await?;
    let language = check_language(&state, upload.language)?;
    if upload.audio.is_empty() {
        return Err(AppError::Unprocessable {
            code: "empty_audio",
            message: "the uploaded file is empty (0 bytes)".into(),
        });
    }

    // Cheap header sniffing first, so junk never waits in the queue.
    let probe_bytes = upload.audio.clone();
    tokio::task::spawn_blocking(move || crate::audio::probe(probe_bytes))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))??;

    let engine = state.engine.clone();
    let output = engine.submit(upload.audio, TranscribeOptions { language }).await?;

    let file_id = FileId::new();
    let trace_id = telemetry::trace_id_of(span);
    let model = engine.transcriber().model_name().to_string();
    let record = TranscriptionRecord::from_output(file_id, upload.filename, model, &output, trace_id.clone());
    record_on_span(span, &record);
    let store = state.store.clone();
    let (saved_record, text) = (record.clone(), output.transcript.text.clone());
    let write_span = tracing::info_span!("write_files");
    blocking(format!("writing the files of {file_id}"), move || {
        write_span.in_scope(|| store.save(&saved_record, &text))
    })
    .await?;
    tracing::info!(
        %file_id,
        trace_id = trace_id.as_deref().unwrap_or("-"),
        model = %record.model,
        language = %record.language,
        audio_sec = record.audio_duration_sec,
        processing_sec = record.performance.report.processing_time_sec,
        cpu_avg = record.performance.report.cpu_percent_avg,
        ram_peak_mb = record.performance.report.ram_mb_peak,
        "transcribed"
    );

    Ok(Json(TranscribeResponse {
        file_id,
        filename: record.filename,
        text: output.transcript.text,
        language: record.language,
        audio_duration_sec: record.audio_duration_sec,
        word_count: record.word_count,
        model: record.model,
        segments: output.transcript.segments,
        performance: record.performance,
        timings: output.timings,
        trace_id,
    }))
}

/// Puts what the transcription was and cost onto the request's span.
fn record_on_span(span: &tracing::Span, record: &TranscriptionRecord) {
    span.set_attribute("file_id", record.file_id.to_string());
    span.set_attribute("model", record.model.clone());
    span.set_attribute("language", record.language.clone());
    span.set_attribute("audio_duration_sec", record.audio_duration_sec);
    span.set_attribute("word_count", record.word_count as i64);
    for (key, value) in record.performance.report.eight() {
        span.set_attribute(key, value);
    }
    span.set_attribute("real_time_factor", record.performance.real_time_factor);
}

async fn read_upload(mut multipart: Multipart, limit_bytes: u64) -> Result<Upload, AppError> {
    let too_large = |e: MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            AppError::PayloadTooLarge {
                what: "the upload".into(),
                limit_mb: limit_bytes >> 20,
            }
        } else {
            AppError::bad_request(
                "invalid_multipart",
                format!("the multipart body could not be read: {}", e.body_text()),
            )
        }
    };
    let mut file: Option<(String, Bytes)> = None;
    let mut language = None;
    while let Some(field) = multipart.next_field().await.map_err(too_large)? {
        match field.name() {
            Some("file") => {
                if file.is_some() {
                    return Err(AppError::bad_request(
                        "too_many_files",
                        "send one field named file per request",
                    ));
                }
                let name = clean_filename(field.file_name().unwrap_or("upload"));
                file = Some((name, field.bytes().await.map_err(too_large)?));
            }
            Some("language") => {
                let value = field.text().await.map_err(too_large)?;
                let value = value.trim().to_lowercase();
                language = (!value.is_empty()).then_some(value);
            }
            _ => {
                // Unknown fields are read and ignored.
                field.bytes().await.map_err(too_large)?;
            }
        }
    }
    let (filename, audio) = file.ok_or_else(|| {
        AppError::bad_request(
            "missing_file",
            "the form has no field named file; send the audio as -F file=@recording.wav",
        )
    })?;
    Ok(Upload {
        filename,
        audio,
        language,
    })
}

/// The language to ask the model for: `None` detects it.
pub(super) fn check_language(state: &AppState, language: Option<String>) -> Result<Option<String>, AppError> {
    let Some(code) = language else {
        return Ok(None);
    };
    if !is_known_language(&code) {
        return Err(AppError::bad_request(
            "unknown_language",
            format!("{code:?} is not a Whisper language code; use e.g. en, ko, ja, or auto"),
        ));
    }
    let transcriber = state.engine.transcriber();
    if !transcriber.is_multilingual() && code != "en" && code != "auto" {
        return Err(AppError::bad_request(
            "unsupported_language",
            format!(
                "the model {} understands English only; send language=en or run a multilingual model",
                transcriber.model_name()
            ),
        ));
    }
    Ok((code != "auto").then_some(code))
}

/// The last path component of a client's file name, at most 255 characters,
/// without control characters (browsers may send `C:\fakepath\x.wav`).
pub(super) fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    if cleaned.trim().is_empty() {
        "upload".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn file_names_keep_only_their_last_component() {
        assert_eq!(clean_filename("C:\\fakepath\\talk.wav"), "talk.wav");
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("a\u{0}b\nc.wav"), "abc.wav");
        assert_eq!(clean_filename("/"), "upload");
        assert_eq!(clean_filename(&"x".repeat(1000)).chars().count(), 255);
        assert_eq!(clean_filename("회의 녹음.m4a"), "회의 녹음.m4a");
    }
}
