//! Batches over HTTP: `POST /batch`, `GET /batch/{id}`, its summary, its
//! Server-Sent Events, and `GET /batches`.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use super::transcribe::check_language;
use super::upload::{
    multipart_error, multipart_form, receive_file, skip_field, text_field, SpooledUpload, SHORT_FIELD_BYTES,
};
use super::{blocking, AppState};
use crate::batch::summary::{summarize, BatchSummary};
use crate::batch::{Batch, BatchFile, BatchListItem, BatchOptions, Batches, Deleted, FileStatus, NewFile, Progress};
use crate::error::AppError;
use crate::store::{FileId, FileStore};

/// Most files one batch may hold.
pub const MAX_FILES_PER_BATCH: usize = 10_000;
/// Batches listed by `GET /batches`.
const RECENT_BATCHES: usize = 50;

/// `POST /batch`: many `file` fields (and optional `language` and `model`). Each upload
/// is streamed to disk, checked, and queued; the answer comes at once. A file
/// that is not audio is recorded as failed with the reason, alone.
pub async fn create(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<Batch>), AppError> {
    let multipart = multipart_form(multipart, "fields named file")?;
    let (files, language, model) = receive(&state, multipart).await?;
    let models = state.transcriptions.models();
    let model = models.find(model.as_deref())?;
    let options = BatchOptions {
        language: check_language(model, language)?,
        model: model.name.clone(),
    };

    let max_sec = models.default_engine().max_audio_sec();
    let batch_id = FileId::new();
    let batches = state.batches.clone();
    let store = state.transcriptions.store().clone();
    // Checked on a blocking thread and recorded by a task of its own that owns
    // the uploads: if the client goes away meanwhile, the batch is still
    // recorded whole (and its uploads kept), or not at all (and they are removed).
    let recording = tokio::spawn(async move {
        let (new_files, keep) = blocking(format!("checking the files of batch {batch_id}"), move || {
            let mut new_files = Vec::with_capacity(files.len());
            let mut keep = Vec::with_capacity(files.len());
            for (file_id, filename, upload) in files {
                let rejected = crate::audio::probe_file(upload.path(), max_sec)
                    .err()
                    .map(|e| AppError::from(e).to_string());
                new_files.push(NewFile {
                    file_id,
                    filename,
                    rejected: rejected.clone(),
                });
                // A refused upload is deleted now; a queued one waits for its turn.
                if rejected.is_none() {
                    keep.push(upload);
                }
            }
            Ok::<_, Infallible>((new_files, keep))
        })
        .await?;
        let kept: Vec<FileId> = new_files
            .iter()
            .filter(|f| f.rejected.is_none())
            .map(|f| f.file_id)
            .collect();
        if let Err(e) = store_and_record(&store, &batches, batch_id, options, new_files, &kept).await {
            // Nothing was recorded: the uploads already stored go (a crash
            // here leaves them to the sweep at the next start).
            for id in &kept {
                let _ = store.remove_upload(id).await;
            }
            return Err(e);
        }
        if store.received_uploads_are_kept() {
            keep.into_iter().for_each(SpooledUpload::keep);
        }
        crate::crash_point::here("batch_recorded");
        Ok::<_, AppError>(())
    });
    recording
        .await
        .map_err(|e| AppError::Internal(format!("recording batch {batch_id}: {e}")))??;
    let batch = load(&state, batch_id).await?;
    tracing::info!(%batch_id, files = batch.progress.total, "batch queued");
    Ok((StatusCode::ACCEPTED, Json(batch)))
}

/// Keeps each accepted upload (`kept`) in the file store, then records the
/// batch; the caller removes the kept uploads if either fails.
async fn store_and_record(
    store: &FileStore,
    batches: &Batches,
    batch_id: FileId,
    options: BatchOptions,
    files: Vec<NewFile>,
    kept: &[FileId],
) -> Result<(), AppError> {
    for id in kept {
        store.keep_upload(id).await?;
    }
    batches.create(batch_id, options, files).await?;
    Ok(())
}

type Received = (Vec<(FileId, String, SpooledUpload)>, Option<String>, Option<String>);

async fn receive(state: &AppState, mut multipart: Multipart) -> Result<Received, AppError> {
    let (file_limit, body_limit) = (state.limits.max_upload_bytes, state.limits.max_batch_upload_bytes);
    let failed = |e| multipart_error(e, "the batch upload", body_limit);
    let mut files = Vec::new();
    let (mut language, mut model) = (None, None);
    while let Some(field) = multipart.next_field().await.map_err(failed)? {
        match field.name() {
            Some("file") => {
                if files.len() == MAX_FILES_PER_BATCH {
                    return Err(AppError::bad_request(
                        "too_many_files",
                        format!("a batch holds at most {MAX_FILES_PER_BATCH} files; split the upload"),
                    ));
                }
                let store = state.transcriptions.store();
                let file = receive_file(field, store, file_limit, "the batch upload", body_limit).await?;
                files.push((file.file_id, file.filename, file.audio));
            }
            Some("language") => {
                language = text_field(field, SHORT_FIELD_BYTES, "the batch upload", body_limit)
                    .await?
                    .map(|v| v.to_lowercase())
            }
            Some("model") => model = text_field(field, SHORT_FIELD_BYTES, "the batch upload", body_limit).await?,
            _ => skip_field(field, "the batch upload", body_limit).await?,
        }
    }
    if files.is_empty() {
        return Err(AppError::bad_request(
            "missing_file",
            "the form has no field named file; send each recording as -F file=@recording.wav",
        ));
    }
    Ok((files, language, model))
}

fn parse_batch_id(raw: &str) -> Result<FileId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound(format!("no batch with id {raw:?}")))
}

async fn load(state: &AppState, batch_id: FileId) -> Result<Batch, AppError> {
    state
        .batches
        .batch(batch_id)
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

/// `DELETE /batch/{id}`: removes a finished batch, its files' transcripts
/// and records; 409 while any of its files is queued or processing.
pub async fn delete(State(state): State<AppState>, Path(raw): Path<String>) -> Result<StatusCode, AppError> {
    let batch_id = parse_batch_id(&raw)?;
    match state.batches.delete(batch_id).await? {
        Deleted::Done => {
            tracing::info!(%batch_id, "batch deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Deleted::NotFound => Err(AppError::NotFound(format!("no batch with id {batch_id}"))),
        Deleted::Running(left) => Err(AppError::Conflict {
            code: "batch_running",
            message: format!("batch {batch_id} still has {left} files to transcribe; delete it once it is complete"),
        }),
    }
}

/// `GET /batches`: the most recent batches.
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<BatchListItem>>, AppError> {
    Ok(Json(state.batches.recent(RECENT_BATCHES).await?))
}

/// One file of a batch after a change, with the batch's progress then.
#[derive(Debug, Serialize)]
struct FileEvent<'a> {
    batch_id: FileId,
    status: &'static str,
    progress: Progress,
    file: &'a BatchFile,
}

/// Where an event stream stands: what the client was last told.
struct Following {
    batch_id: FileId,
    /// The status of each file as last sent.
    sent: HashMap<FileId, FileStatus>,
    progress: Progress,
}

impl Following {
    fn new(batch: &Batch) -> Self {
        Self {
            batch_id: batch.batch_id,
            sent: batch.files.iter().map(|f| (f.file_id, f.status)).collect(),
            progress: batch.progress,
        }
    }

    /// The event for a changed file, or `None` when the client already knows its status.
    fn file_event(&mut self, file: &BatchFile) -> Option<Event> {
        let before = self.sent.insert(file.file_id, file.status)?;
        if before == file.status {
            return None;
        }
        self.progress = self.progress.moved(before, file.status);
        let event = FileEvent {
            batch_id: self.batch_id,
            status: self.progress.status_word(),
            progress: self.progress,
            file,
        };
        Some(Event::default().event("file").json_data(&event).expect("serializable"))
    }
}

fn batch_event(batch: &Batch) -> Event {
    Event::default().event("batch").json_data(batch).expect("serializable")
}

/// `GET /batch/{id}/events`: a `batch` event with the whole batch now, then a
/// `file` event for each change (the file as it is now, and the batch's
/// progress), so that a 5,000-file batch costs one row per change, not the
/// whole batch; the stream ends with a `batch` event of the complete batch,
/// or when the server shuts down.
pub async fn events(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let batch_id = parse_batch_id(&raw)?;
    let receiver = state.batches.subscribe();
    let first = load(&state, batch_id).await?;
    let shutdown = state.shutdown.clone();
    let opening = (!first.progress.is_complete()).then(|| Following::new(&first));
    let first = stream::once(async move { Ok(batch_event(&first)) });
    let changes = stream::unfold(
        (opening, receiver, state),
        move |(following, mut receiver, state)| async move {
            let mut following = following?;
            loop {
                let change = match receiver.recv().await {
                    Ok(change) if change.batch_id != batch_id => continue,
                    Ok(change) => Some(change.file_id),
                    // Missed announcements: start again from the whole batch.
                    Err(RecvError::Lagged(_)) => None,
                    Err(RecvError::Closed) => return None,
                };
                if let Some(file_id) = change {
                    let file = state.batches.file(file_id).await.ok()??;
                    let Some(event) = following.file_event(&file) else {
                        continue;
                    };
                    if !following.progress.is_complete() {
                        return Some((Ok(event), (Some(following), receiver, state)));
                    }
                }
                // Complete (or lagged): the whole batch, once.
                let batch = load(&state, batch_id).await.ok()?;
                let next = (!batch.progress.is_complete()).then(|| Following::new(&batch));
                return Some((Ok(batch_event(&batch)), (next, receiver, state)));
            }
        },
    );
    let stream = first.chain(changes).take_until(shutdown.cancelled_owned());
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
