//! The history of transcriptions: every kept transcription has an entry in
//! the database (the one that keeps the batches), with its transcript for
//! search, so that listing, filtering and searching never read every record.
//! The data dir stays the truth: at start the index is brought in line with
//! the records there (a crash between writing and indexing loses nothing).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use super::database::{StoreError, StoreResult};
use super::{FileId, FileStore, FilesError, TranscriptionRecord};

/// Why a transcription could not be deleted.
#[derive(Debug, thiserror::Error)]
pub enum DeleteFailed {
    /// Its files could not be removed (its entry is kept).
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Its entry could not be removed.
    #[error(transparent)]
    Index(#[from] StoreError),
}

/// One transcription as the history lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryEntry {
    pub file_id: FileId,
    pub filename: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub model: String,
    pub language: String,
    pub audio_duration_sec: f64,
    pub word_count: usize,
    pub processing_time_sec: f64,
    pub cpu_percent_avg: f64,
    pub ram_mb_peak: f64,
    pub real_time_factor: f64,
    /// The replica that did the work, where the record says.
    pub replica: Option<String>,
}

impl From<&TranscriptionRecord> for HistoryEntry {
    fn from(record: &TranscriptionRecord) -> Self {
        let report = &record.performance.report;
        Self {
            file_id: record.file_id,
            filename: record.filename.clone(),
            created_at: record.created_at,
            model: record.model.clone(),
            language: record.language.clone(),
            audio_duration_sec: record.audio_duration_sec,
            word_count: record.word_count,
            processing_time_sec: report.processing_time_sec,
            cpu_percent_avg: report.cpu_percent_avg,
            ram_mb_peak: report.ram_mb_peak,
            real_time_factor: record.performance.real_time_factor,
            replica: record.replica.clone(),
        }
    }
}

/// Where a page of the history ends: the next page starts after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The last entry's time, Unix milliseconds.
    pub created_ms: i64,
    pub file_id: FileId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_ms, self.file_id)
    }
}

impl FromStr for Cursor {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, id) = s.split_once('_').ok_or(())?;
        Ok(Self {
            created_ms: ms.parse().map_err(drop)?,
            file_id: id.parse().map_err(drop)?,
        })
    }
}

/// Which transcriptions to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    /// Words the transcript contains (as written, any case).
    pub text: Option<String>,
    /// Part of the file name (any case).
    pub name: Option<String>,
    pub language: Option<String>,
    pub model: Option<String>,
    /// Made at or after this time.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Made before this time.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Older than the last entry of the page before.
    pub after: Option<Cursor>,
    /// Entries at most.
    pub limit: usize,
}

/// A `LIKE` pattern that finds `part` anywhere, with `\` escaping the
/// pattern's own characters in it.
pub fn contains_pattern(part: &str) -> String {
    let escaped = part.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

/// The index of transcriptions, in the database.
#[async_trait]
pub trait TranscriptionIndex: Send + Sync {
    /// Adds (or replaces) the entry of a transcription, with its transcript.
    async fn index(&self, entry: &HistoryEntry, text: &str) -> StoreResult<()>;
    /// Removes the entry of a transcription; whether there was one.
    async fn unindex(&self, file_id: FileId) -> StoreResult<bool>;
    /// Every indexed transcription, with the replica that made it.
    async fn indexed(&self) -> StoreResult<Vec<(FileId, Option<String>)>>;
    /// The entries that match `query`, newest first.
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>>;
}

/// One page of the history.
#[derive(Debug)]
pub struct HistoryPage {
    pub files: Vec<HistoryEntry>,
    /// Pass as `cursor` for the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// The history: the index in the database over the files in the data dir.
#[derive(Clone)]
pub struct History {
    index: Arc<dyn TranscriptionIndex>,
    files: FileStore,
    /// This replica's name: it clears only its own entries whose files are gone.
    replica: String,
}

impl History {
    /// The history of `files`, indexed in `index`, kept by `replica`.
    pub fn new(index: Arc<dyn TranscriptionIndex>, files: FileStore, replica: String) -> Self {
        Self { index, files, replica }
    }

    /// The data dir the history is of.
    pub fn files(&self) -> &FileStore {
        &self.files
    }

    /// Adds a kept transcription.
    pub async fn add(&self, record: &TranscriptionRecord, text: &str) -> StoreResult<()> {
        self.index.index(&HistoryEntry::from(record), text).await
    }

    /// Adds the transcription whose files `id` are in the data dir.
    pub async fn add_from_files(&self, id: FileId) -> anyhow::Result<()> {
        let kept = self.files.load_record(&id).await?.zip(self.files.load_text(&id).await?);
        if let Some((record, text)) = kept {
            self.add(&record, &text).await?;
        }
        Ok(())
    }

    /// Removes a transcription: its files (the record first), then its
    /// entry. Whether there was anything to remove.
    pub async fn delete(&self, id: FileId) -> Result<bool, DeleteFailed> {
        let removed = self.files.delete(&id).await?;
        let unindexed = self.index.unindex(id).await?;
        Ok(removed || unindexed)
    }

    /// A page of the entries that match `query` (`limit` of them at most),
    /// with a cursor only when more follow.
    pub async fn page(&self, query: &HistoryQuery) -> StoreResult<HistoryPage> {
        let one_more = HistoryQuery {
            limit: query.limit + 1,
            ..query.clone()
        };
        let mut files = self.index.history(&one_more).await?;
        let more = files.len() > query.limit;
        files.truncate(query.limit);
        let next_cursor = files.last().filter(|_| more).map(|last| {
            Cursor {
                created_ms: last.created_at.timestamp_millis(),
                file_id: last.file_id,
            }
            .to_string()
        });
        Ok(HistoryPage { files, next_cursor })
    }

    /// Brings the index in line with the records in the data dir: adds the
    /// records it lacks, and removes this replica's entries whose record is
    /// gone. Returns (added, removed).
    pub async fn reconcile(&self) -> anyhow::Result<(usize, usize)> {
        let indexed = self.index.indexed().await?;
        let kept: HashSet<FileId> = self.files.record_ids().await?.into_iter().collect();
        let known: HashSet<FileId> = indexed.iter().map(|(id, _)| *id).collect();
        let mut added = 0;
        for id in kept.difference(&known) {
            self.add_from_files(*id).await?;
            added += 1;
        }
        let mut removed = 0;
        for (id, replica) in &indexed {
            let mine = replica.as_deref().is_none_or(|r| r == self.replica);
            if mine && !kept.contains(id) && self.index.unindex(*id).await? {
                removed += 1;
            }
        }
        Ok((added, removed))
    }
}
