//! Where batches, their files and the queue of files live, behind one
//! interface: SQLite in the data dir (the default: one server), or PostgreSQL
//! (many replicas sharing one queue).
//!
//! A file is claimed for work with a claim number that the claim raises; every
//! change a worker makes afterwards (done, failed, queued again, a crash
//! counted) names that number and is refused once the file was claimed again,
//! so a worker that lost its file can never overwrite the result of the one
//! that took it over.
//!
//! A claim is also a lease: the replica that holds it renews it while it
//! works, and a file whose lease ran out (its replica was killed, its node
//! lost) can be claimed by any replica. A file's paired files are written
//! while its row is locked under the claim ([`BatchStore::finish`]'s
//! `publish`), so only the holder of the current claim ever writes them.

pub mod postgres;
pub mod sqlite;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{Batch, BatchFile, BatchListItem, BatchOptions, FileStatus, Progress};
use crate::audio::AudioWarning;
pub use crate::store::database::{StoreError, StoreResult};
use crate::store::history::HistoryEntry;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, TranscriptionRecord};

/// A file to add to a new batch.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub file_id: FileId,
    pub filename: String,
    /// Set when the upload was refused at once (not audio, empty).
    pub rejected: Option<String>,
}

/// A file taken for processing.
#[derive(Debug, Clone)]
pub struct ClaimedFile {
    pub file_id: FileId,
    pub batch_id: FileId,
    pub filename: String,
    pub language: Option<String>,
    /// The model its batch runs on (`None`: the default).
    pub model: Option<String>,
    /// Raised by each claim of this file: the changes made under this claim
    /// name it, and are refused once the file has been claimed again.
    pub claim: i64,
    /// The replica whose lease on the file ran out (it died or stalled
    /// mid-file), when this claim took the file over from it.
    pub taken_from: Option<String>,
}

/// The result of a finished file: its figures for its row, and its history
/// entry, listed in the same transaction that marks it done.
#[derive(Debug, Clone)]
pub struct FinishedFile {
    pub language: String,
    pub audio_duration_sec: f64,
    pub word_count: usize,
    pub performance: RequestPerformance,
    pub warnings: Vec<AudioWarning>,
    pub entry: HistoryEntry,
    /// The transcript, for the history's search.
    pub text: String,
}

impl FinishedFile {
    /// The result whose record is `record` and transcript `text`.
    pub fn new(record: &TranscriptionRecord, text: &str) -> Self {
        Self {
            language: record.language.clone(),
            audio_duration_sec: record.audio_duration_sec,
            word_count: record.word_count,
            performance: record.performance.clone(),
            warnings: record.warnings.clone(),
            entry: HistoryEntry::from(record),
            text: text.to_string(),
        }
    }
}

/// Writes a finished file's paired files; [`BatchStore::finish`] runs it
/// only while it holds the file under its claim.
pub type Publish = futures_util::future::BoxFuture<'static, Result<(), crate::store::FilesError>>;

/// Batches, their files and the queue of files waiting for the engine.
#[async_trait]
pub trait BatchStore: Send + Sync {
    /// Records a new batch and its files, all or nothing.
    async fn create_batch(&self, batch_id: FileId, options: BatchOptions, files: Vec<NewFile>) -> StoreResult<()>;
    /// Takes the oldest file that is queued, or processing under a lease
    /// that ran out, for `replica` with a lease of `lease`; no other claim
    /// can take the same file.
    async fn claim_next(&self, replica: &str, lease: Duration) -> StoreResult<Option<ClaimedFile>>;
    /// Extends the lease of a claimed file to `lease` from now; false if the
    /// claim was lost.
    async fn renew(&self, file: &ClaimedFile, lease: Duration) -> StoreResult<bool>;
    /// Returns a claimed file to the queue (the engine was full, or the
    /// process stopped while it ran).
    async fn requeue(&self, file: &ClaimedFile) -> StoreResult<()>;
    /// Counts that the engine crashed on a claimed file; returns its crashes
    /// so far, or `None` if the claim was lost.
    async fn count_crash(&self, file: &ClaimedFile) -> StoreResult<Option<u32>>;
    /// Runs `publish`, marks a claimed file done with its figures and lists
    /// it in the history, with
    /// the file's row locked under its claim; returns false (and runs and
    /// changes nothing) if the claim was lost. A `publish` that fails changes nothing.
    async fn finish(&self, file: &ClaimedFile, result: &FinishedFile, publish: Publish) -> StoreResult<bool>;
    /// Marks a claimed file failed with a message for people; returns false
    /// (and changes nothing) if the claim was lost.
    async fn fail(&self, file: &ClaimedFile, error: &str) -> StoreResult<bool>;
    /// A whole batch, or `None` if there is no such batch.
    async fn batch(&self, batch_id: FileId) -> StoreResult<Option<Batch>>;
    /// One file of a batch as it stands now, or `None`.
    async fn file(&self, file_id: FileId) -> StoreResult<Option<BatchFile>>;
    /// The batch of each of `files` that belongs to one (others are left out).
    async fn batches_of(&self, files: &[FileId]) -> StoreResult<HashMap<FileId, FileId>>;
    /// The most recent batches, newest first.
    async fn recent(&self, limit: usize) -> StoreResult<Vec<BatchListItem>>;
    /// Queues again the files left processing by `replica` (all of them when
    /// `None`) before it started: they can be taken at once, not after their
    /// leases. Returns how many.
    async fn release_claims(&self, replica: Option<&str>) -> StoreResult<u64>;
    /// The files that still need their uploads (queued or processing).
    async fn pending(&self) -> StoreResult<Vec<FileId>>;
    /// How many files wait in the queue, every replica's (for autoscaling).
    async fn queued(&self) -> StoreResult<u64>;
    /// Whether the database answers now (for readiness).
    async fn ping(&self) -> StoreResult<()>;
    /// Removes a batch and its files' rows, all or nothing; false (and
    /// nothing removed) while any of its files is queued or processing.
    async fn delete_batch(&self, batch_id: FileId) -> StoreResult<bool>;
    /// The complete batches created before `cutoff`, oldest first.
    async fn complete_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<FileId>>;
}

/// Counts the files waiting in the queue (the same SQL on both databases).
const QUEUED_COUNT: &str = "SELECT count(*) FROM batch_files WHERE status = 'queued'";

/// Counts files by status.
fn progress_of(statuses: impl Iterator<Item = FileStatus>) -> Progress {
    let mut p = Progress::default();
    for status in statuses {
        p.total += 1;
        *p.of(status) += 1;
    }
    p
}
