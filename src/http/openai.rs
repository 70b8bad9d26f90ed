//! The OpenAI-compatible audio API: `POST /v1/audio/transcriptions`,
//! `POST /v1/audio/translations`, `GET /v1/models` and `GET /v1/models/{id}`,
//! with OpenAI's request fields, response shapes, streaming events and error
//! body, plus what OpenAI does not give: the request's measured cost.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::transcribe::{check_language, probe, traced};
use super::upload::{
    multipart_error, multipart_form, receive_single_file, required_file, skip_field, text_field, ReceivedFile,
    SpooledUpload, SHORT_FIELD_BYTES,
};
use super::AppState;
use crate::engine::{Lane, ProgressSink, Task, TranscribeOptions};
use crate::error::AppError;
use crate::formats::{self, Granularities, ResponseFormat};
use crate::models::{OfferedModel, OPENAI_ALIAS};
use crate::store::FileId;
use crate::trace_context;
use crate::transcription::{Request as Job, Transcribed};

/// Longest accepted prompt, bytes (Whisper reads at most its last 224 tokens).
const MAX_PROMPT_BYTES: usize = 4096;
/// Largest body of an error response that is rewritten into OpenAI's shape.
const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// What an OpenAI audio request asked for.
struct AudioRequest {
    file_id: FileId,
    filename: String,
    audio: SpooledUpload,
    model: Option<String>,
    language: Option<String>,
    prompt: Option<String>,
    format: ResponseFormat,
    temperature: f32,
    granularities: Granularities,
    stream: bool,
    /// Take the long silences out first (faster-whisper's and speaches' `vad_filter`).
    vad_filter: bool,
}

/// `POST /v1/audio/transcriptions`.
pub async fn transcriptions(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    traced("POST /v1/audio/transcriptions", &headers, |span| {
        run(state, Task::Transcribe, multipart, span)
    })
    .await
}

/// `POST /v1/audio/translations`: Whisper's translate task, English out.
pub async fn translations(
    State(state): State<AppState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, AppError> {
    traced("POST /v1/audio/translations", &headers, |span| {
        run(state, Task::Translate, multipart, span)
    })
    .await
}

/// `GET /v1/models`: the offered models, and `whisper-1` (the default's alias).
pub async fn models(State(state): State<AppState>) -> Json<Value> {
    let data: Vec<Value> = served_names(&state)
        .into_iter()
        .map(|id| model_object(&state, &id))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{id}`.
pub async fn model(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, AppError> {
    state.transcriptions.models().find(Some(&id))?;
    Ok(Json(model_object(&state, &id)))
}

fn served_names(state: &AppState) -> Vec<String> {
    let offered = state.transcriptions.models().offered().iter().map(|m| m.name.clone());
    offered.chain([OPENAI_ALIAS.to_string()]).collect()
}

fn model_object(state: &AppState, id: &str) -> Value {
    json!({"id": id, "object": "model", "created": state.started_at, "owned_by": "sori"})
}

async fn run(
    state: AppState,
    task: Task,
    multipart: Result<Multipart, MultipartRejection>,
    span: tracing::Span,
) -> Result<Response, AppError> {
    let multipart = multipart_form(multipart, "a field named file")?;
    let request = read_form(&state, multipart).await?;
    let (model, options) = check(&state, task, &request)?;
    probe(&state, &request.audio).await?;
    let job = Job {
        file_id: request.file_id,
        filename: request.filename.clone(),
        model,
        audio: request.audio.path().to_path_buf(),
        options,
        trace_id: trace_context::trace_id_of(&span),
        lane: Lane::Request,
    };
    if request.stream {
        // Once the events have begun the status is 200, so a full queue is
        // answered (429 under /v1) before they begin. Another request can
        // still take the last slot in between; that one ends with an error event.
        if let Some(running) = state.transcriptions.models().running(&job.model.name) {
            if running.engine.queue_depth() >= running.engine.queue_capacity() {
                return Err(AppError::QueueFull);
            }
        }
        return Ok(stream_events(state, job, request.audio, span));
    }
    let transcribed = state.transcriptions.transcribe(job).await?;
    drop(request.audio);
    Ok(answer(task, request.format, request.granularities, &transcribed, &span))
}

/// Validates the form's fields (before the audio waits in the queue) and
/// turns them into the model to run and the engine's options.
fn check(state: &AppState, task: Task, request: &AudioRequest) -> Result<(OfferedModel, TranscribeOptions), AppError> {
    let model = request.model.as_deref().ok_or_else(|| {
        AppError::bad_request(
            "missing_model",
            format!("the form has no field named model; send model={OPENAI_ALIAS}"),
        )
    })?;
    let model = state.transcriptions.models().find(Some(model))?.clone();
    if task == Task::Translate && !model.multilingual {
        return Err(AppError::bad_request(
            "translation_unsupported",
            format!(
                "the model {} knows English only, so it cannot translate; run a multilingual model such as base",
                model.name
            ),
        ));
    }
    let wants_granularity = request.granularities.words || request.granularities.segments;
    if wants_granularity && request.format != ResponseFormat::VerboseJson {
        return Err(AppError::bad_request(
            "invalid_request",
            "timestamp_granularities need response_format=verbose_json",
        ));
    }
    if request.stream && !matches!(request.format, ResponseFormat::Json | ResponseFormat::Text) {
        return Err(AppError::bad_request(
            "invalid_request",
            "stream=true sends text events; use it with response_format json or text",
        ));
    }
    if request.vad_filter {
        if let Err(reason) = state.live.vad() {
            return Err(AppError::bad_request(
                "vad_unavailable",
                format!(
                    "vad_filter needs Silero VAD on the server, which has none ({reason}); send the file without it"
                ),
            ));
        }
    }
    let options = TranscribeOptions {
        language: match task {
            Task::Transcribe => check_language(&model, request.language.clone())?,
            Task::Translate => None,
        },
        task,
        prompt: request.prompt.clone(),
        temperature: request.temperature,
        word_timestamps: request.granularities.words || request.format.wants_words(),
        vad_filter: request.vad_filter,
        progress: None,
    };
    Ok((model, options))
}

async fn read_form(state: &AppState, mut multipart: Multipart) -> Result<AudioRequest, AppError> {
    let limit = state.limits.max_upload_bytes;
    let failed = |e| multipart_error(e, "the upload", limit);
    let store = state.transcriptions.store();
    let mut file = None;
    let (mut model, mut language, mut prompt) = (None, None, None);
    let (mut format, mut temperature, mut stream, mut vad_filter) = (ResponseFormat::default(), 0.0, false, false);
    let mut granularities = Granularities::default();
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        let name = field.name().unwrap_or_default().to_string();
        let short = |field| text_field(field, SHORT_FIELD_BYTES, "the upload", limit);
        match name.as_str() {
            "file" => receive_single_file(&mut file, field, store, limit).await?,
            "model" => model = short(field).await?,
            "language" => language = short(field).await?.map(|v| v.to_lowercase()),
            "prompt" => prompt = text_field(field, MAX_PROMPT_BYTES, "the upload", limit).await?,
            "response_format" => {
                if let Some(value) = short(field).await? {
                    format = value
                        .parse()
                        .map_err(|message| AppError::bad_request("invalid_response_format", message))?;
                }
            }
            "temperature" => {
                if let Some(value) = short(field).await? {
                    temperature = parse_temperature(&value)?;
                }
            }
            "timestamp_granularities[]" | "timestamp_granularities" => match short(field).await?.as_deref() {
                Some("word") => granularities.words = true,
                Some("segment") => granularities.segments = true,
                None => {}
                Some(other) => {
                    return Err(AppError::bad_request(
                        "invalid_request",
                        format!("timestamp_granularities[] {other:?} is not word or segment"),
                    ))
                }
            },
            "stream" => stream = flag("stream", short(field).await?)?,
            "vad_filter" => vad_filter = flag("vad_filter", short(field).await?)?,
            // Fields of OpenAI's that Whisper has no use for (include[],
            // chunking_strategy), and unknown ones, are read and ignored.
            _ => skip_field(field, "the upload", limit).await?,
        }
    }
    let ReceivedFile {
        file_id,
        filename,
        audio,
    } = required_file(file)?;
    Ok(AudioRequest {
        file_id,
        filename,
        audio,
        model,
        language,
        prompt,
        format,
        temperature,
        granularities,
        stream,
        vad_filter,
    })
}

/// A true/false form field; absent is false.
fn flag(name: &str, value: Option<String>) -> Result<bool, AppError> {
    match value.map(|v| v.to_lowercase()).as_deref() {
        Some("true") => Ok(true),
        Some("false") | None => Ok(false),
        Some(other) => Err(AppError::bad_request(
            "invalid_request",
            format!("{name} {other:?} is not true or false"),
        )),
    }
}

fn parse_temperature(value: &str) -> Result<f32, AppError> {
    value
        .parse::<f32>()
        .ok()
        .filter(|t| (0.0..=1.0).contains(t))
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_temperature",
                format!("temperature {value:?} is not a number from 0 to 1 (0 lets Whisper fall back by itself)"),
            )
        })
}

/// Sori's figures, added to the JSON formats.
fn sori_fields(transcribed: &Transcribed) -> Value {
    let record = &transcribed.record;
    json!({
        "file_id": record.file_id,
        "model": record.model,
        "performance": record.performance,
        "timings": record.timings,
        "warnings": record.warnings,
        "trace_id": record.trace_id,
        "replica": record.replica,
    })
}

/// The answer in the asked format; the text formats carry Sori's figures as headers.
fn answer(
    task: Task,
    format: ResponseFormat,
    granularities: Granularities,
    transcribed: &Transcribed,
    span: &tracing::Span,
) -> Response {
    let extra = sori_fields(transcribed);
    let body = formats::render(
        format,
        task,
        &transcribed.output.transcript,
        transcribed.record.audio_duration_sec,
        granularities,
        Some(&extra),
    );
    let mut response = ([(header::CONTENT_TYPE, format.content_type())], body).into_response();
    let headers = response.headers_mut();
    let record = &transcribed.record;
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-sori-file-id", record.file_id.to_string());
    set(
        "x-sori-processing-time",
        record.performance.report.processing_time_sec.to_string(),
    );
    set("x-sori-audio-duration", record.audio_duration_sec.to_string());
    let eight: serde_json::Map<String, Value> = record
        .performance
        .report
        .eight()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    set("x-sori-performance", Value::Object(eight).to_string());
    if let Some(traceparent) = trace_context::traceparent_of(span) {
        set("traceparent", traceparent);
    }
    response
}

/// `stream=true`: `transcript.text.delta` events as pieces of the audio
/// become final (in order), then `transcript.text.done` with the text, the
/// usage and Sori's figures; a failure is an event with OpenAI's error body.
/// The transcription runs in the server's tracked work, so a shutdown waits for it.
fn stream_events(state: AppState, mut job: Job, upload: SpooledUpload, span: tracing::Span) -> Response {
    let (events, receiver) = mpsc::unbounded_channel::<Value>();
    let deltas = events.clone();
    let started = std::sync::atomic::AtomicBool::new(false);
    job.options.progress = Some(ProgressSink(std::sync::Arc::new(move |segments, _| {
        for segment in segments {
            let first = !started.swap(true, std::sync::atomic::Ordering::SeqCst);
            let delta = if first {
                segment.text.clone()
            } else {
                format!(" {}", segment.text)
            };
            let _ = deltas.send(json!({"type": "transcript.text.delta", "delta": delta}));
        }
    })));
    let transcriptions = state.transcriptions.clone();
    state.work.spawn(
        async move {
            let last = match transcriptions.transcribe(job).await {
                Ok(done) => {
                    let mut event = json!({
                        "type": "transcript.text.done",
                        "text": done.output.transcript.text,
                        "usage": formats::usage(done.record.audio_duration_sec),
                    });
                    if let (Value::Object(event), Value::Object(extra)) = (&mut event, sori_fields(&done)) {
                        event.extend(extra);
                    }
                    event
                }
                Err(e) => {
                    let (_, body) = openai_error(&AppError::from(e));
                    body
                }
            };
            drop(upload);
            let _ = events.send(last);
        }
        .instrument(span),
    );
    let events = stream::unfold(receiver, |mut receiver| async move {
        let event = receiver.recv().await?;
        Some((Ok::<_, Infallible>(Event::default().data(event.to_string())), receiver))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// OpenAI's status and error body for an error: `{"error": {"message",
/// "type", "param", "code"}}`. OpenAI answers a file it cannot use with 400,
/// so Sori's 415 and 422 become 400 (Sori's own code stays in `code`), and a
/// full queue is 429 (which OpenAI's clients retry by themselves).
pub fn openai_error(error: &AppError) -> (StatusCode, Value) {
    openai_error_of(error.status(), error.code(), &error.to_string())
}

fn openai_error_of(status: StatusCode, code: &str, message: &str) -> (StatusCode, Value) {
    let status = match (status, code) {
        (StatusCode::UNSUPPORTED_MEDIA_TYPE | StatusCode::UNPROCESSABLE_ENTITY, _) => StatusCode::BAD_REQUEST,
        (StatusCode::SERVICE_UNAVAILABLE, "queue_full" | "too_many_uploads") => StatusCode::TOO_MANY_REQUESTS,
        (status, _) => status,
    };
    let kind = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500.. => "server_error",
        _ => "invalid_request_error",
    };
    let param = match code {
        "missing_file" | "too_many_files" | "unsupported_media" | "empty_audio" | "audio_too_long"
        | "payload_too_large" => Some("file"),
        "model_not_found" | "missing_model" | "translation_unsupported" => Some("model"),
        "unknown_language" | "unsupported_language" => Some("language"),
        "invalid_response_format" => Some("response_format"),
        "invalid_temperature" => Some("temperature"),
        _ => None,
    };
    let body = json!({"error": {"message": message, "type": kind, "param": param, "code": code}});
    (status, body)
}

/// Rewrites every error answered under `/v1/` (by a handler, a guard, the
/// body limit, the router's 404 and 405) from Sori's body into OpenAI's, so
/// OpenAI's clients raise the matching exception with Sori's message.
pub async fn openai_errors(request: Request, next: Next) -> Response {
    let under_v1 = request.uri().path().starts_with("/v1/");
    let response = next.run(request).await;
    if !under_v1 || response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let sori: Option<Value> = serde_json::from_slice(&bytes).ok();
    let error = sori.as_ref().and_then(|v| v.get("error"));
    let (Some(code), Some(message)) = (
        error.and_then(|e| e.get("code")).and_then(Value::as_str),
        error.and_then(|e| e.get("message")).and_then(Value::as_str),
    ) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let (status, body) = openai_error_of(parts.status, code, message);
    parts.status = status;
    parts.headers.remove(header::CONTENT_LENGTH);
    if status == StatusCode::TOO_MANY_REQUESTS && !parts.headers.contains_key(header::RETRY_AFTER) {
        parts.headers.insert(header::RETRY_AFTER, HeaderValue::from(5));
    }
    Response::from_parts(parts, Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_openai_statuses_and_types() {
        let (status, body) = openai_error_of(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media", "not audio");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["param"], "file");
        assert_eq!(body["error"]["code"], "unsupported_media");
        let (status, body) = openai_error_of(StatusCode::SERVICE_UNAVAILABLE, "queue_full", "busy");
        assert_eq!(
            (status, body["error"]["type"].as_str()),
            (StatusCode::TOO_MANY_REQUESTS, Some("rate_limit_error"))
        );
        let (status, _) = openai_error_of(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "bye");
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (_, body) = openai_error_of(StatusCode::UNAUTHORIZED, "invalid_api_key", "no");
        assert_eq!(body["error"]["type"], "authentication_error");
    }

    #[test]
    fn temperatures_stay_within_zero_and_one() {
        assert_eq!(parse_temperature("0.4").unwrap(), 0.4);
        assert!(parse_temperature("1.5").is_err());
        assert!(parse_temperature("hot").is_err());
    }
}
