//! Batches over HTTP: `POST /batch`, `GET /batch/{id}`, its summary, its
//! Server-Sent Events, and `GET /batches`.

use std::convert::Infallible;
use std::path::PathBuf;

use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use tokio::io::AsyncWriteExt;
use tokio::sync::broadcast::error::RecvError;

use super::transcribe::{check_language, clean_filename};
use super::{blocking, AppState};
use crate::batch::summary::{summarize, BatchSummary};
use crate::batch::{Batch, BatchListItem, NewFile};
use crate::error::AppError;
use crate::store::FileId;

/// Most files one batch may hold.
pub const MAX_FILES_PER_BATCH: usize = 10_000;
/// Batches listed by `GET /batches`.
const RECENT_BATCHES: usize = 50;

/// `POST /batch`: many `file` fields (and an optional `language`). Each upload
/// is streamed to disk, checked, and queued; the answer comes at once.
pub async fn create(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Batch>), AppError> {
    let multipart = multipart.map_err(|e| {
        AppError::bad_request(
            "invalid_request",
            format!("send the audio as multipart/form-data with fields named file ({e})"),
        )
    })?;
    let mut saved = SavedUploads::default();
    let (files, language) = receive(&state, multipart, &mut saved).await?;
    let language = check_language(&state, language)?;

    let mut new_files = Vec::with_capacity(files.len());
    for (file_id, filename, path) in files {
        let probe_path = path.clone();
        let rejected = tokio::task::spawn_blocking(move || crate::audio::probe_file(&probe_path))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .err()
            .map(|e| AppError::from(e).to_string());
        if rejected.is_some() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        new_files.push(NewFile {
            file_id,
            filename,
            audio_path: path.to_string_lossy().into_owned(),
            rejected,
        });
    }
    let batch_id = FileId::new();
    let db = state.batches.db.clone();
    let lang = language.clone();
    blocking(format!("recording batch {batch_id}"), move || {
        db.create_batch(batch_id, lang.as_deref(), &new_files)
    })
    .await?;
    saved.keep();
    state.batches.dispatcher.wake();
    let batch = load(&state, batch_id).await?;
    tracing::info!(%batch_id, files = batch.progress.total, "batch queued");
    Ok((StatusCode::ACCEPTED, Json(batch)))
}

/// Uploads written so far; removed again unless the batch is recorded.
#[derive(Default)]
struct SavedUploads(Vec<PathBuf>);

impl SavedUploads {
    fn keep(&mut self) {
        self.0.clear();
    }
}

impl Drop for SavedUploads {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

type Received = (Vec<(FileId, String, PathBuf)>, Option<String>);

async fn receive(state: &AppState, mut multipart: Multipart, saved: &mut SavedUploads) -> Result<Received, AppError> {
    let mut files = Vec::new();
    let mut language = None;
    while let Some(field) = multipart.next_field().await.map_err(|e| multipart_error(state, e))? {
        match field.name() {
            Some("file") => {
                if files.len() == MAX_FILES_PER_BATCH {
                    return Err(AppError::bad_request(
                        "too_many_files",
                        format!("a batch holds at most {MAX_FILES_PER_BATCH} files; split the upload"),
                    ));
                }
                let file_id = FileId::new();
                let filename = clean_filename(field.file_name().unwrap_or("upload"));
                let path = state.batches.uploads_dir.join(format!("{file_id}.upload"));
                saved.0.push(path.clone());
                save_field(state, field, &path, &filename).await?;
                files.push((file_id, filename, path));
            }
            Some("language") => {
                let value = field
                    .text()
                    .await
                    .map_err(|e| multipart_error(state, e))?
                    .trim()
                    .to_lowercase();
                language = (!value.is_empty()).then_some(value);
            }
            _ => {
                field.bytes().await.map_err(|e| multipart_error(state, e))?;
            }
        }
    }
    if files.is_empty() {
        return Err(AppError::bad_request(
            "missing_file",
            "the form has no field named file; send each recording as -F file=@recording.wav",
        ));
    }
    Ok((files, language))
}

/// Streams one upload to disk, never holding more than a chunk in memory.
async fn save_field(
    state: &AppState,
    mut field: Field<'_>,
    path: &std::path::Path,
    name: &str,
) -> Result<(), AppError> {
    let io_error = |e: std::io::Error| AppError::Internal(format!("saving an upload: {e}"));
    let mut out = tokio::fs::File::create(path).await.map_err(io_error)?;
    let mut size = 0u64;
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(state, e))? {
        size += chunk.len() as u64;
        if size > state.max_upload_bytes {
            return Err(AppError::PayloadTooLarge {
                what: format!("the file {name:?}"),
                limit_mb: state.max_upload_bytes >> 20,
            });
        }
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    Ok(())
}

fn multipart_error(state: &AppState, e: MultipartError) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge {
            what: "the batch upload".into(),
            limit_mb: state.max_batch_upload_bytes >> 20,
        }
    } else {
        AppError::bad_request(
            "invalid_multipart",
            format!("the multipart body could not be read: {}", e.body_text()),
        )
    }
}

fn parse_batch_id(raw: &str) -> Result<FileId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("no batch with id {raw:?}")))
}

async fn load(state: &AppState, batch_id: FileId) -> Result<Batch, AppError> {
    let db = state.batches.db.clone();
    blocking(format!("reading batch {batch_id}"), move || db.batch(batch_id))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no batch with id {batch_id}")))
}

/// `GET /batch/{id}`: progress and every file.
pub async fn get(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<Batch>, AppError> {
    Ok(Json(load(&state, parse_batch_id(&raw)?).await?))
}

/// `GET /batch/{id}/summary`: the batch statistics.
pub async fn summary(State(state): State<AppState>, Path(raw): Path<String>) -> Result<Json<BatchSummary>, AppError> {
    Ok(Json(summarize(&load(&state, parse_batch_id(&raw)?).await?)))
}

/// `GET /batches`: the most recent batches.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<BatchListItem>>, AppError> {
    let db = state.batches.db.clone();
    let batches = blocking("listing batches".into(), move || db.recent(RECENT_BATCHES)).await?;
    Ok(Json(batches))
}

/// `GET /batch/{id}/events`: the batch as a `batch` event now and after every
/// change; the stream ends after the event that shows it complete.
pub async fn events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let batch_id = parse_batch_id(&raw)?;
    let receiver = state.batches.events.subscribe();
    let first = load(&state, batch_id).await?;
    let stream = stream::unfold(
        (Some(first), receiver, state, false),
        move |(pending, mut receiver, state, finished)| async move {
            if finished {
                return None;
            }
            let batch = match pending {
                Some(batch) => batch,
                None => loop {
                    match receiver.recv().await {
                        Ok(id) if id != batch_id => continue,
                        Ok(_) | Err(RecvError::Lagged(_)) => break load(&state, batch_id).await.ok()?,
                        Err(RecvError::Closed) => return None,
                    }
                },
            };
            let complete = batch.progress.is_complete();
            let event = Event::default().event("batch").json_data(&batch).expect("serializable");
            Some((Ok(event), (None, receiver, state, complete)))
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
