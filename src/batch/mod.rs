//! Durable batches: many files uploaded at once, waiting on disk, recorded in
//! SQLite, transcribed through the same queue as single requests, and resumed
//! after a crash.

mod db;
mod dispatcher;
pub mod summary;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use db::{BatchDb, NewFile};
pub use dispatcher::{BatchEvents, Dispatcher};

use crate::engine::Engine;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, FileStore};

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

/// Everything the HTTP side needs for batches.
pub struct Batches {
    pub db: Arc<BatchDb>,
    pub dispatcher: Arc<Dispatcher>,
    pub events: BatchEvents,
    /// Where uploads wait until they are transcribed.
    pub uploads_dir: PathBuf,
}

impl Batches {
    /// Opens `{data_dir}/sori.db` (resuming interrupted files) and prepares the
    /// dispatcher. Call [`Batches::start`] inside the async runtime.
    pub fn open(data_dir: &Path, engine: Arc<Engine>, store: FileStore) -> anyhow::Result<Self> {
        let uploads_dir = data_dir.join("uploads");
        std::fs::create_dir_all(&uploads_dir)?;
        let db = Arc::new(BatchDb::open(&data_dir.join("sori.db"))?);
        let (events, _) = tokio::sync::broadcast::channel(256);
        let dispatcher = Dispatcher::new(db.clone(), engine, store, events.clone());
        Ok(Self {
            db,
            dispatcher,
            events,
            uploads_dir,
        })
    }

    /// Starts feeding queued files (including resumed ones) to the engine.
    pub fn start(&self) {
        self.dispatcher.start();
    }
}
