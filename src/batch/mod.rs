//! Durable batches: many files uploaded at once, waiting on disk, recorded in
//! SQLite (one server) or PostgreSQL (replicas sharing one queue),
//! transcribed through the same queue as single requests, and resumed after a
//! crash, by the same replica or another, without losing or repeating a file.

mod dispatcher;
mod retention;
pub mod store;
pub mod summary;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use dispatcher::{BatchEvents, Dispatcher};
use store::postgres::PostgresStore;
use store::sqlite::SqliteStore;
pub use store::NewFile;
use store::{BatchStore, StoreError, StoreResult};

use crate::audio::AudioWarning;
use crate::store::history::{DeleteFailed, History, TranscriptionIndex};
use crate::store::record::RequestPerformance;
use crate::store::{FileId, FileStore};
use crate::transcription::Transcriptions;

/// Where a file of a batch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    Queued,
    Processing,
    Done,
    Failed,
}

impl FileStatus {
    /// The name stored in the database and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Processing => "processing",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "processing" => Self::Processing,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => Self::Queued,
        }
    }
}

/// One file of a batch, as `GET /batch/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchFile {
    /// Also the id of its paired files once done (`GET /files/{file_id}`).
    pub file_id: FileId,
    pub filename: String,
    pub status: FileStatus,
    pub audio_duration_sec: Option<f64>,
    pub word_count: Option<usize>,
    pub processing_time_sec: Option<f64>,
    pub language: Option<String>,
    /// Why the file failed, in words a person can act on.
    pub error: Option<String>,
    /// The eight figures (and extras) once done.
    pub performance: Option<RequestPerformance>,
    /// What its transcript does not cover (a file cut short, damaged packets).
    #[serde(default)]
    pub warnings: Vec<AudioWarning>,
    /// How many times its worker process died while transcribing it (kept
    /// across restarts of the server); at `--max-attempts` it is failed.
    #[serde(default)]
    pub engine_crashes: u32,
    /// The replica that has the file, or had it last (`--replica-name`).
    #[serde(default)]
    pub replica: Option<String>,
}

/// Counts of files by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: usize,
    pub queued: usize,
    pub processing: usize,
    pub done: usize,
    pub failed: usize,
}

impl Progress {
    /// Whether every file is done or failed.
    pub fn is_complete(&self) -> bool {
        self.done + self.failed == self.total
    }

    /// `complete` or `running`.
    pub fn status_word(&self) -> &'static str {
        if self.is_complete() {
            "complete"
        } else {
            "running"
        }
    }

    /// The count of files in `status`.
    pub(crate) fn of(&mut self, status: FileStatus) -> &mut usize {
        match status {
            FileStatus::Queued => &mut self.queued,
            FileStatus::Processing => &mut self.processing,
            FileStatus::Done => &mut self.done,
            FileStatus::Failed => &mut self.failed,
        }
    }

    /// The progress after one file moved from `from` to `to`.
    pub fn moved(mut self, from: FileStatus, to: FileStatus) -> Self {
        let left = self.of(from);
        *left = left.saturating_sub(1);
        *self.of(to) += 1;
        self
    }
}

/// A change to one file of a batch, as the dispatcher announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileChanged {
    pub batch_id: FileId,
    pub file_id: FileId,
}

/// What a batch asks for every file of it.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    /// The language (`None`: detected per file).
    pub language: Option<String>,
    /// The model's name.
    pub model: String,
}

/// A whole batch with its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: FileId,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The language asked for (`None`: detected per file).
    pub language: Option<String>,
    /// The model its files run on (`None`: made before batches named one;
    /// the default).
    pub model: Option<String>,
    /// `running` or `complete`.
    pub status: String,
    pub progress: Progress,
    pub files: Vec<BatchFile>,
}

/// A batch in the list of recent batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchListItem {
    pub batch_id: FileId,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub status: String,
    pub progress: Progress,
}

/// How batches are kept and run.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// PostgreSQL, which replicas share (`--database-url`); `None`: SQLite
    /// in the data dir, which one server owns.
    pub database_url: Option<String>,
    /// Tries a file gets when its worker process dies on it (`--max-attempts`).
    pub max_attempts: u32,
    /// How long a claim on a file lasts unless renewed (`--lease-sec`).
    pub lease: Duration,
    /// Transcriptions and batches older than this are removed
    /// (`--retention-days`); `None`: kept until deleted.
    pub retention: Option<Duration>,
}

/// How old an upload with no file in the database must be before a replica
/// sharing the data dir removes it: older than any upload can take
/// (`--upload-deadline-sec` is at most a day), so it is nobody's upload in flight.
const SHARED_ORPHAN_AGE: Duration = Duration::from_secs(25 * 3600);

/// Batches: their records, the dispatcher that runs their files, and the
/// events that announce each change.
pub struct Batches {
    store: Arc<dyn BatchStore>,
    dispatcher: Arc<Dispatcher>,
    events: BatchEvents,
    /// With PostgreSQL, the store, whose changes by every replica are
    /// announced on `events` once started.
    shared: Option<Arc<PostgresStore>>,
    /// The history, whose entries (and files) a deleted batch takes with it.
    history: History,
    /// `--retention-days`, when set.
    retention: Option<Duration>,
    /// With SQLite, held for the life of the process: SQLite and the uploads
    /// then have one owner. With PostgreSQL the database coordinates the
    /// replicas, which may share the data dir: none.
    _lock: Option<std::fs::File>,
}

/// The database a server keeps its batches and history in.
pub struct Database {
    /// Batches, their files and the queue.
    pub store: Arc<dyn BatchStore>,
    /// The history of transcriptions.
    pub index: Arc<dyn TranscriptionIndex>,
    /// With PostgreSQL, the store itself (it also announces other replicas' changes).
    shared: Option<Arc<PostgresStore>>,
    /// With SQLite, the data dir's lock, held while the server runs.
    lock: Option<std::fs::File>,
}

impl Database {
    /// PostgreSQL at `settings.database_url` (its schema brought up to
    /// date), else `sori.db` in the data dir of `files`, which it locks.
    pub async fn open(settings: &BatchSettings, files: &FileStore) -> anyhow::Result<Self> {
        Ok(match &settings.database_url {
            Some(url) => {
                let postgres = Arc::new(PostgresStore::open(url).await?);
                Self {
                    store: postgres.clone(),
                    index: postgres.clone(),
                    shared: Some(postgres),
                    lock: None,
                }
            }
            None => {
                let lock = lock_data_dir(files.dir())?;
                let sqlite = Arc::new(SqliteStore::open(&files.dir().join("sori.db"))?);
                Self {
                    store: sqlite.clone(),
                    index: sqlite,
                    shared: None,
                    lock: Some(lock),
                }
            }
        })
    }
}

/// What became of a request to delete a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It and its files are gone.
    Done,
    /// There is no such batch.
    NotFound,
    /// This many of its files are still queued or processing: nothing was deleted.
    Running(usize),
}

/// Why a batch could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file of it could not be removed (the batch is kept).
    #[error("removing the files of batch {0} failed: {1}")]
    Files(FileId, DeleteFailed),
}

/// The data dir is in use by another process.
#[derive(Debug, thiserror::Error)]
#[error("the data dir {0} is in use by another sori process (it holds {0}/sori.lock); stop it, or give this one another --data-dir (replicas that share a data dir need --database-url)")]
pub struct DataDirInUse(String);

impl Batches {
    /// Batches in `database` (opened by [`Database::open`]): queues again
    /// the files this replica (with SQLite: any process) left processing, and
    /// removes uploads that no file needs. Call [`Batches::start`] inside the
    /// async runtime.
    pub async fn open(
        transcriptions: Transcriptions,
        database: Database,
        settings: &BatchSettings,
    ) -> anyhow::Result<Self> {
        let Database {
            store, shared, lock, ..
        } = database;
        let files = transcriptions.store().clone();
        let (left_by, orphan_age) = match shared {
            Some(_) => (Some(transcriptions.replica()), SHARED_ORPHAN_AGE),
            None => (None, Duration::ZERO),
        };
        let resumed = store.release_claims(left_by).await?;
        if resumed > 0 {
            tracing::info!(resumed, "queued again the batch files the last run left processing");
        }
        sweep_orphan_uploads(store.as_ref(), &files, orphan_age).await?;
        let history = transcriptions.history().clone();
        let (events, _) = tokio::sync::broadcast::channel(256);
        let dispatcher = Dispatcher::new(
            store.clone(),
            transcriptions,
            events.clone(),
            settings.max_attempts,
            settings.lease,
        );
        Ok(Self {
            store,
            dispatcher,
            events,
            shared,
            history,
            retention: settings.retention,
            _lock: lock,
        })
    }

    /// Starts feeding queued files (including resumed ones) to the engine
    /// until `shutdown`, and with PostgreSQL announcing the other replicas'
    /// changes; the files it has started are tracked by `running`.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken, running: TaskTracker) {
        if let Some(shared) = &self.shared {
            tokio::spawn(shared.clone().watch_changes(self.events.clone(), shutdown.clone()));
        }
        if let Some(keep) = self.retention {
            tokio::spawn(retention::run(self.clone(), keep, shutdown.clone()));
        }
        self.dispatcher.start(shutdown, running);
    }

    /// Deletes a batch and the files of its files: the paired files first (a
    /// process that stops meanwhile leaves the batch, and deleting it again
    /// finishes), then its rows. Refused while any of its files is queued or processing.
    pub async fn delete(&self, batch_id: FileId) -> Result<Deleted, DeleteError> {
        let Some(batch) = self.store.batch(batch_id).await? else {
            return Ok(Deleted::NotFound);
        };
        let left = batch.progress.queued + batch.progress.processing;
        if left > 0 {
            return Ok(Deleted::Running(left));
        }
        for file in &batch.files {
            self.history
                .delete(file.file_id)
                .await
                .map_err(|e| DeleteError::Files(batch_id, e))?;
        }
        Ok(if self.store.delete_batch(batch_id).await? {
            Deleted::Done
        } else {
            Deleted::NotFound
        })
    }

    /// Records a new batch and its files, all or nothing, and wakes the dispatcher.
    pub async fn create(&self, batch_id: FileId, options: BatchOptions, files: Vec<NewFile>) -> StoreResult<()> {
        self.store.create_batch(batch_id, options, files).await?;
        self.dispatcher.wake();
        Ok(())
    }

    /// A whole batch, or `None`.
    pub async fn batch(&self, batch_id: FileId) -> StoreResult<Option<Batch>> {
        self.store.batch(batch_id).await
    }

    /// The most recent batches, newest first.
    pub async fn recent(&self, limit: usize) -> StoreResult<Vec<BatchListItem>> {
        self.store.recent(limit).await
    }

    /// The batch of each of `files` that belongs to one.
    pub async fn batches_of(&self, files: &[FileId]) -> StoreResult<HashMap<FileId, FileId>> {
        self.store.batches_of(files).await
    }

    /// Announcements of which file of which batch changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FileChanged> {
        self.events.subscribe()
    }

    /// Whether the database answers within `limit`; why not, if it does not.
    pub async fn check_database(&self, limit: Duration) -> Result<(), String> {
        match tokio::time::timeout(limit, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("the database did not answer within {} s", limit.as_secs_f64())),
        }
    }

    /// How many batch files wait in the queue (every replica's).
    pub async fn queued(&self) -> StoreResult<u64> {
        self.store.queued().await
    }

    /// One file of a batch as it stands now.
    pub async fn file(&self, file_id: FileId) -> StoreResult<Option<BatchFile>> {
        self.store.file(file_id).await
    }
}

/// Takes `{dir}/sori.lock` for this process, or says who holds it.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("sori.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DataDirInUse(dir.display().to_string()).into()),
        Err(std::fs::TryLockError::Error(e)) => Err(e.into()),
    }
}

/// Removes uploads that no queued or processing file needs: those of files
/// that are done or failed (a replica stopped before deleting them), and
/// those of no file at all (a process stopped while it received them) once
/// they are `min_age` old. Uploads are named by their file's id.
async fn sweep_orphan_uploads(db: &dyn BatchStore, store: &FileStore, min_age: Duration) -> anyhow::Result<()> {
    let needed: HashSet<FileId> = db.pending().await?.into_iter().collect();
    let mut removed = 0;
    for upload in store.uploads().await? {
        if upload.file_id.is_some_and(|id| needed.contains(&id)) {
            continue;
        }
        let finished = match upload.file_id {
            // Read now: a file queued since `needed` was read is not finished.
            Some(id) => db
                .file(id)
                .await?
                .is_some_and(|f| matches!(f.status, FileStatus::Done | FileStatus::Failed)),
            None => false,
        };
        let age = SystemTime::now().duration_since(upload.modified).unwrap_or_default();
        if (finished || age >= min_age) && store.remove_listed(&upload).await? {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed uploads that no batch file needs");
    }
    Ok(())
}
