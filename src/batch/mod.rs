//! Durable batches: many files uploaded at once, waiting on disk, recorded in
//! SQLite, transcribed through the same queue as single requests, and resumed
//! after a crash without losing or repeating a file.

mod dispatcher;
pub mod store;
pub mod summary;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use dispatcher::{BatchEvents, Dispatcher};
use store::postgres::PostgresStore;
use store::sqlite::SqliteStore;
pub use store::NewFile;
use store::{BatchStore, FinishedFile, StoreResult};

use crate::audio::AudioWarning;
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

/// A whole batch with its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub batch_id: FileId,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// The language asked for (`None`: detected per file).
    pub language: Option<String>,
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

/// Batches: their records, the dispatcher that runs their files, and the
/// events that announce each change. The only owner of the data dir while
/// it runs (a lock file keeps a second process out).
pub struct Batches {
    store: Arc<dyn BatchStore>,
    dispatcher: Arc<Dispatcher>,
    events: BatchEvents,
    /// Held for the life of the process: SQLite and the uploads assume one owner.
    _lock: std::fs::File,
}

/// The data dir is in use by another process.
#[derive(Debug, thiserror::Error)]
#[error("the data dir {0} is in use by another sori process (it holds {0}/sori.lock); stop it, or give this one another --data-dir")]
pub struct DataDirInUse(String);

impl Batches {
    /// Locks the data dir, opens `{data_dir}/sori.db`, settles the files the
    /// last process left processing (done where their record exists, else
    /// queued again) and removes uploads that no file needs. The records are
    /// in PostgreSQL at `database_url` when given, else in `{data_dir}/sori.db`
    /// (either way one server owns the data dir for now). A file gets
    /// `max_attempts` tries when its worker process dies on it. Call
    /// [`Batches::start`] inside the async runtime.
    pub async fn open(
        transcriptions: Transcriptions,
        max_attempts: u32,
        database_url: Option<&str>,
    ) -> anyhow::Result<Self> {
        let files = transcriptions.store().clone();
        let lock = lock_data_dir(files.dir())?;
        let store: Arc<dyn BatchStore> = match database_url {
            Some(url) => Arc::new(PostgresStore::open(url).await?),
            None => Arc::new(SqliteStore::open(&files.dir().join("sori.db"))?),
        };
        settle_interrupted(store.as_ref(), &files).await?;
        sweep_orphan_uploads(store.as_ref(), &files).await?;
        let (events, _) = tokio::sync::broadcast::channel(256);
        let dispatcher = Dispatcher::new(store.clone(), transcriptions, events.clone(), max_attempts);
        Ok(Self {
            store,
            dispatcher,
            events,
            _lock: lock,
        })
    }

    /// Starts feeding queued files (including resumed ones) to the engine
    /// until `shutdown`; the files it has started are tracked by `running`.
    pub fn start(&self, shutdown: CancellationToken, running: TaskTracker) {
        self.dispatcher.start(shutdown, running);
    }

    /// Records a new batch and its files, all or nothing, and wakes the dispatcher.
    pub async fn create(&self, batch_id: FileId, language: Option<String>, files: Vec<NewFile>) -> StoreResult<()> {
        self.store.create_batch(batch_id, language, files).await?;
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

    /// Announcements of which file of which batch changed.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<FileChanged> {
        self.events.subscribe()
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

/// Files left processing by a process that stopped: a file whose record was
/// written is done (its result is recorded from that record, not redone);
/// the others go back to the queue.
async fn settle_interrupted(db: &dyn BatchStore, store: &FileStore) -> anyhow::Result<()> {
    let (mut finished, mut resumed) = (0, 0);
    for file in db.interrupted().await? {
        match store.load_record(&file.file_id)? {
            Some(record) => {
                db.finish(&file, &FinishedFile::from(&record)).await?;
                let _ = std::fs::remove_file(store.upload_path(&file.file_id));
                finished += 1;
            }
            None => {
                db.requeue(&file).await?;
                resumed += 1;
            }
        }
    }
    if finished + resumed > 0 {
        tracing::info!(
            finished,
            resumed,
            "settled batch files interrupted by the last shutdown"
        );
    }
    Ok(())
}

/// Removes uploads no queued or processing file needs (left by a process
/// that stopped while it received them). Uploads are named by their file's id.
async fn sweep_orphan_uploads(db: &dyn BatchStore, store: &FileStore) -> anyhow::Result<()> {
    let needed: HashSet<PathBuf> = db.pending().await?.iter().map(|id| store.upload_path(id)).collect();
    let mut removed = 0;
    for entry in std::fs::read_dir(store.uploads_dir())? {
        let path = store.uploads_dir().join(entry?.file_name());
        if !needed.contains(&path) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(removed, "removed uploads that no batch file needs");
    }
    Ok(())
}
