//! `GET /files/{file_id}`, `GET /files/{file_id}/text`, its subtitles
//! (`GET /files/{file_id}/srt` and `GET /files/{file_id}/vtt`), and
//! `DELETE /files/{file_id}`.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;

use super::{blocking, AppState};
use crate::error::AppError;
use crate::formats::{self, ResponseFormat};
use crate::store::{FileId, TranscriptionRecord};

fn parse_id(raw: &str) -> Result<FileId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("no transcription with id {raw:?}")))
}

/// The performance record of one transcription.
pub async fn record(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TranscriptionRecord>, AppError> {
    let id = parse_id(&raw)?;
    let store = state.transcriptions.store().clone();
    let record = blocking(format!("reading record {id}"), move || store.load_record(&id)).await?;
    record
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no transcription with id {raw:?}")))
}

/// `DELETE /files/{file_id}`: removes a transcription's record, transcript
/// and segments (the record first: a reader never finds half of it). A file
/// of a batch goes with its batch (`DELETE /batch/{id}`).
pub async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<StatusCode, AppError> {
    let id = parse_id(&raw)?;
    if state.batches.file(id).await?.is_some() {
        return Err(AppError::Conflict {
            code: "part_of_batch",
            message: format!("{id} is a file of a batch; delete the whole batch with DELETE /batch/{{batch_id}}"),
        });
    }
    let store = state.transcriptions.store().clone();
    if blocking(format!("deleting {id}"), move || store.delete(&id)).await? {
        tracing::info!(file_id = %id, "transcription deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("no transcription with id {raw:?}")))
    }
}

/// The transcript of one transcription, as plain text.
pub async fn text(State(state): State<AppState>, Path(raw): Path<String>) -> Result<impl IntoResponse, AppError> {
    let id = parse_id(&raw)?;
    let store = state.transcriptions.store().clone();
    let text = blocking(format!("reading transcript {id}"), move || store.load_text(&id)).await?;
    let text = text.ok_or_else(|| AppError::NotFound(format!("no transcription with id {raw:?}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

/// SubRip subtitles of one transcription.
pub async fn srt(state: State<AppState>, raw: Path<String>) -> Result<impl IntoResponse, AppError> {
    subtitles(state, raw, ResponseFormat::Srt).await
}

/// WebVTT subtitles of one transcription.
pub async fn vtt(state: State<AppState>, raw: Path<String>) -> Result<impl IntoResponse, AppError> {
    subtitles(state, raw, ResponseFormat::Vtt).await
}

async fn subtitles(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    format: ResponseFormat,
) -> Result<impl IntoResponse, AppError> {
    let id = parse_id(&raw)?;
    let store = state.transcriptions.store().clone();
    let segments = blocking(format!("reading segments {id}"), move || store.load_segments(&id)).await?;
    let segments = segments.ok_or_else(|| {
        AppError::NotFound(format!(
            "no subtitles for {raw:?}: no such transcription, or it was made before Sori kept segments"
        ))
    })?;
    let cues = formats::cues(&segments);
    let body = match format {
        ResponseFormat::Vtt => formats::vtt(&cues),
        _ => formats::srt(&cues),
    };
    let disposition = format!("attachment; filename=\"{id}.{}\"", format.extension());
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    ))
}
