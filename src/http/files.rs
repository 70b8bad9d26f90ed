//! `GET /files` (the history), `GET /files/{file_id}`, the whole
//! transcription (`GET /files/{file_id}/json`), `GET /files/{file_id}/text`, its subtitles (`GET /files/{file_id}/srt` and
//! `GET /files/{file_id}/vtt`), and `DELETE /files/{file_id}`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::transcribe::TranscribeResponse;
use super::AppState;
use crate::error::AppError;
use crate::formats::{self, ResponseFormat};
use crate::store::history::{Cursor, HistoryEntry, HistoryQuery};
use crate::store::{FileId, FileStore, TranscriptionRecord};

/// Entries of the history per page, unless asked.
const DEFAULT_PAGE: usize = 20;
/// Entries of the history per page at most.
const MAX_PAGE: usize = 100;
/// The longest text a filter may hold.
const MAX_FILTER_CHARS: usize = 200;

/// `GET /files`'s query: every field optional.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryParams {
    /// Words the transcript contains.
    q: Option<String>,
    /// Part of the file name.
    name: Option<String>,
    language: Option<String>,
    model: Option<String>,
    /// From this time or day (RFC 3339, or YYYY-MM-DD in UTC).
    from: Option<String>,
    /// Up to this time, or to the end of this day.
    to: Option<String>,
    limit: Option<String>,
    /// `next_cursor` of the page before.
    cursor: Option<String>,
}

/// `GET /files`' answer: a page of the history.
#[derive(Debug, Serialize)]
pub struct FilesPage {
    files: Vec<ListedFile>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// One transcription of the history and the batch it came in.
#[derive(Debug, Serialize)]
struct ListedFile {
    #[serde(flatten)]
    entry: HistoryEntry,
    /// The batch it is a file of (deleted with it); `null` for a single upload.
    batch_id: Option<FileId>,
}

/// `GET /files`: the transcriptions kept, newest first, a page at a time,
/// filtered by words of the transcript, name, language, model and time.
pub async fn list(
    State(state): State<AppState>,
    params: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Json<FilesPage>, AppError> {
    let Query(params) = params.map_err(|e| AppError::bad_request("invalid_query", e.body_text()))?;
    let query = history_query(params)?;
    let page = state.transcriptions.history().page(&query).await?;
    let ids: Vec<FileId> = page.files.iter().map(|entry| entry.file_id).collect();
    let batches = state.batches.batches_of(&ids).await?;
    let files = page
        .files
        .into_iter()
        .map(|entry| ListedFile {
            batch_id: batches.get(&entry.file_id).copied(),
            entry,
        })
        .collect();
    Ok(Json(FilesPage {
        files,
        next_cursor: page.next_cursor,
    }))
}

fn history_query(p: HistoryParams) -> Result<HistoryQuery, AppError> {
    let limit = match p.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(raw) => raw.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
            AppError::bad_request(
                "invalid_limit",
                format!("limit {raw:?} is not a number from 1 to {MAX_PAGE}"),
            )
        })?,
    };
    let after = p
        .cursor
        .as_deref()
        .map(|raw| {
            raw.parse::<Cursor>().map_err(|()| {
                AppError::bad_request(
                    "invalid_cursor",
                    "cursor is not a next_cursor this server gave; start again without it",
                )
            })
        })
        .transpose()?;
    Ok(HistoryQuery {
        text: filter("q", p.q)?,
        name: filter("name", p.name)?,
        language: filter("language", p.language)?,
        model: filter("model", p.model)?,
        from: p.from.as_deref().map(|raw| time("from", raw, false)).transpose()?,
        to: p.to.as_deref().map(|raw| time("to", raw, true)).transpose()?,
        after,
        limit,
    })
}

/// A text filter: trimmed, `None` when empty, refused when too long.
fn filter(name: &str, value: Option<String>) -> Result<Option<String>, AppError> {
    let Some(value) = value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > MAX_FILTER_CHARS {
        return Err(AppError::bad_request(
            "filter_too_long",
            format!("{name} holds more than {MAX_FILTER_CHARS} characters; search for fewer words"),
        ));
    }
    Ok(Some(value))
}

/// A time of the `from`/`to` filters: RFC 3339, or a day in UTC (its start,
/// or for `to` its end).
fn time(name: &str, raw: &str, end_of_day: bool) -> Result<chrono::DateTime<chrono::Utc>, AppError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Ok(t.to_utc());
    }
    let day = chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map_err(|_| {
        AppError::bad_request(
            "invalid_time",
            format!("{name} {raw:?} is neither a day (2026-12-06) nor a time (2026-12-06T09:30:00Z)"),
        )
    })?;
    let day = if end_of_day { day.succ_opt().unwrap_or(day) } else { day };
    Ok(day.and_time(chrono::NaiveTime::MIN).and_utc())
}

/// The 404 for an id that names no kept transcription.
fn no_transcription(raw: &str) -> AppError {
    AppError::NotFound(format!("no transcription with id {raw:?}"))
}

/// The id of a kept transcription: one whose record exists (a transcript or
/// segments without it are still being written, or half deleted), else 404.
async fn kept(state: &AppState, raw: &str) -> Result<FileId, AppError> {
    let id = parse_id(raw)?;
    if files(state).has_record(&id).await? {
        Ok(id)
    } else {
        Err(no_transcription(raw))
    }
}

/// The kept files.
fn files(state: &AppState) -> &FileStore {
    state.transcriptions.store()
}

fn parse_id(raw: &str) -> Result<FileId, AppError> {
    raw.parse().map_err(|_| no_transcription(raw))
}

/// The performance record of one transcription.
pub async fn record(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TranscriptionRecord>, AppError> {
    let record = files(&state).load_record(&parse_id(&raw)?).await?;
    record.map(Json).ok_or_else(|| no_transcription(&raw))
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
    if state.transcriptions.history().delete(id).await? {
        tracing::info!(file_id = %id, "transcription deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_transcription(&raw))
    }
}

/// `GET /files/{file_id}/json`: the whole transcription, as `POST /transcribe`
/// answered it (transcript, segments, figures and samples).
pub async fn json(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Json<TranscribeResponse>, AppError> {
    let (id, store) = (parse_id(&raw)?, files(&state));
    let record = store.load_record(&id).await?.ok_or_else(|| no_transcription(&raw))?;
    let text = store.load_text(&id).await?.unwrap_or_default();
    let segments = store.load_segments(&id).await?.unwrap_or_default();
    Ok(Json(TranscribeResponse::new(record, text, segments)))
}

/// The transcript of one transcription, as plain text.
pub async fn text(State(state): State<AppState>, Path(raw): Path<String>) -> Result<impl IntoResponse, AppError> {
    let id = kept(&state, &raw).await?;
    let text = files(&state).load_text(&id).await?;
    let text = text.ok_or_else(|| no_transcription(&raw))?;
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
    let id = kept(&state, &raw).await?;
    let segments = files(&state).load_segments(&id).await?;
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
