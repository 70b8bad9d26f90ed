//! The batch records in SQLite (`{data_dir}/sori.db`). Every change is one
//! statement or one transaction, so a crash leaves a consistent database.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::{Batch, BatchFile, BatchListItem, FileStatus, Progress};
use crate::audio::AudioWarning;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, TranscriptionRecord};

/// The schema's versions, applied in order; `PRAGMA user_version` says how
/// many a database has. A database made before versions were counted holds
/// the first one (its statements are idempotent).
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS batches (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    language    TEXT
);
CREATE TABLE IF NOT EXISTS batch_files (
    id                  TEXT PRIMARY KEY,
    batch_id            TEXT NOT NULL REFERENCES batches(id),
    position            INTEGER NOT NULL,
    filename            TEXT NOT NULL,
    audio_path          TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    error               TEXT,
    language            TEXT,
    audio_duration_sec  REAL,
    word_count          INTEGER,
    performance         TEXT,
    finished_at         TEXT
);
CREATE INDEX IF NOT EXISTS batch_files_by_batch ON batch_files(batch_id, position);
CREATE INDEX IF NOT EXISTS batch_files_by_status ON batch_files(status);
",
    "
ALTER TABLE batch_files ADD COLUMN warnings TEXT;
",
    "
ALTER TABLE batch_files ADD COLUMN engine_crashes INTEGER NOT NULL DEFAULT 0;
",
];

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
}

/// The result of a finished file.
#[derive(Debug, Clone)]
pub struct FinishedFile {
    pub language: String,
    pub audio_duration_sec: f64,
    pub word_count: usize,
    pub performance: RequestPerformance,
    pub warnings: Vec<AudioWarning>,
}

impl From<&TranscriptionRecord> for FinishedFile {
    fn from(record: &TranscriptionRecord) -> Self {
        Self {
            language: record.language.clone(),
            audio_duration_sec: record.audio_duration_sec,
            word_count: record.word_count,
            performance: record.performance.clone(),
            warnings: record.warnings.clone(),
        }
    }
}

/// The database, behind a mutex (SQLite connections are not shared between threads).
pub struct BatchDb {
    conn: Mutex<Connection>,
}

type DbResult<T> = Result<T, rusqlite::Error>;

impl BatchDb {
    /// Opens (creating, or bringing its schema up to date) the database.
    pub fn open(path: &Path) -> DbResult<Self> {
        let mut conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        for (number, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", number as i64 + 1)?;
            tx.commit()?;
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    /// The files that were being processed when the last process stopped.
    pub fn interrupted(&self) -> DbResult<Vec<FileId>> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT id FROM batch_files WHERE status = 'processing'")?;
        let ids = statement.query_map([], |row| parse_id(&row.get::<_, String>(0)?))?;
        ids.collect()
    }

    /// The files that still need their uploads (queued or processing).
    pub fn pending(&self) -> DbResult<Vec<FileId>> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT id FROM batch_files WHERE status IN ('queued', 'processing')")?;
        let ids = statement.query_map([], |row| parse_id(&row.get::<_, String>(0)?))?;
        ids.collect()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new batch and its files in one transaction.
    pub fn create_batch(&self, batch_id: FileId, language: Option<&str>, files: &[NewFile]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = chrono::Utc::now().to_rfc3339();
        tx.execute(
            "INSERT INTO batches (id, created_at, language) VALUES (?1, ?2, ?3)",
            params![batch_id.to_string(), now, language],
        )?;
        for (position, f) in files.iter().enumerate() {
            let status = if f.rejected.is_some() { "failed" } else { "queued" };
            tx.execute(
                "INSERT INTO batch_files (id, batch_id, position, filename, audio_path, status, error, finished_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?6 = 'failed' THEN ?8 END)",
                params![
                    f.file_id.to_string(),
                    batch_id.to_string(),
                    position as i64,
                    f.filename,
                    // Informational: an upload is found by its file's id, wherever the data dir is.
                    format!("uploads/{}.upload", f.file_id),
                    status,
                    f.rejected,
                    now
                ],
            )?;
        }
        tx.commit()
    }

    /// Takes the oldest queued file and marks it processing, in one statement
    /// (no other claim can take the same file between a read and a write).
    pub fn claim_next(&self) -> DbResult<Option<ClaimedFile>> {
        let conn = self.conn();
        let next = conn
            .query_row(
                "UPDATE batch_files SET status = 'processing'
                 WHERE status = 'queued' AND id = (
                     SELECT f.id FROM batch_files f JOIN batches b ON b.id = f.batch_id
                     WHERE f.status = 'queued'
                     ORDER BY b.created_at, f.batch_id, f.position LIMIT 1)
                 RETURNING id, batch_id, filename,
                     (SELECT language FROM batches WHERE batches.id = batch_files.batch_id)",
                [],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, batch_id, filename, language)) = next else {
            return Ok(None);
        };
        Ok(Some(ClaimedFile {
            file_id: parse_id(&id)?,
            batch_id: parse_id(&batch_id)?,
            filename,
            language,
        }))
    }

    /// Returns a claimed file to the queue (the engine was full, or the
    /// process stopped while it ran).
    pub fn requeue(&self, file_id: FileId) -> DbResult<()> {
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'queued' WHERE id = ?1 AND status = 'processing'",
                params![file_id.to_string()],
            )
            .map(drop)
    }

    /// Counts that the engine crashed on a claimed file, and queues it again
    /// unless that was its `max_attempts`th try: then it is failed with the
    /// message `error` makes of its crash count, so a file that kills its
    /// worker every time is not retried for ever. Returns whether it was
    /// queued again.
    pub fn record_crash(
        &self,
        file_id: FileId,
        max_attempts: u32,
        error: impl FnOnce(u32) -> String,
    ) -> DbResult<bool> {
        let crashes: u32 = self.conn().query_row(
            "UPDATE batch_files SET engine_crashes = engine_crashes + 1
             WHERE id = ?1 AND status = 'processing' RETURNING engine_crashes",
            params![file_id.to_string()],
            |row| row.get(0),
        )?;
        let again = crashes < max_attempts;
        if again {
            self.requeue(file_id)?;
        } else {
            self.fail(file_id, &error(crashes))?;
        }
        Ok(again)
    }

    /// Marks a claimed file done with its figures; a file no longer
    /// processing (already finished) is left as it is.
    pub fn finish(&self, file_id: FileId, result: &FinishedFile) -> DbResult<()> {
        let performance = serde_json::to_string(&result.performance).expect("serializable");
        let warnings = serde_json::to_string(&result.warnings).expect("serializable");
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'done', error = NULL, language = ?2, audio_duration_sec = ?3,
                 word_count = ?4, performance = ?5, finished_at = ?6, warnings = ?7
                 WHERE id = ?1 AND status = 'processing'",
                params![
                    file_id.to_string(),
                    result.language,
                    result.audio_duration_sec,
                    result.word_count as i64,
                    performance,
                    chrono::Utc::now().to_rfc3339(),
                    warnings
                ],
            )
            .map(drop)
    }

    /// Marks a file failed with a message for people.
    pub fn fail(&self, file_id: FileId, error: &str) -> DbResult<()> {
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'failed', error = ?2, finished_at = ?3
                 WHERE id = ?1 AND status = 'processing'",
                params![file_id.to_string(), error, chrono::Utc::now().to_rfc3339()],
            )
            .map(drop)
    }

    /// A whole batch, or `None` if there is no such batch.
    pub fn batch(&self, batch_id: FileId) -> DbResult<Option<Batch>> {
        let conn = self.conn();
        let head = conn
            .query_row(
                "SELECT created_at, language FROM batches WHERE id = ?1",
                params![batch_id.to_string()],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?)),
            )
            .optional()?;
        let Some((created_at, language)) = head else {
            return Ok(None);
        };
        let mut statement = conn.prepare(&format!("{FILE_COLUMNS} WHERE batch_id = ?1 ORDER BY position"))?;
        let files = statement
            .query_map(params![batch_id.to_string()], file_of_row)?
            .collect::<DbResult<Vec<_>>>()?;
        let progress = progress_of(files.iter().map(|f| f.status));
        Ok(Some(Batch {
            batch_id,
            created_at: parse_time(&created_at),
            language,
            status: progress.status_word().to_string(),
            progress,
            files,
        }))
    }

    /// One file of a batch as it stands now, or `None`.
    pub fn file(&self, file_id: FileId) -> DbResult<Option<BatchFile>> {
        self.conn()
            .query_row(
                &format!("{FILE_COLUMNS} WHERE id = ?1"),
                params![file_id.to_string()],
                file_of_row,
            )
            .optional()
    }

    /// The most recent batches, newest first.
    pub fn recent(&self, limit: usize) -> DbResult<Vec<BatchListItem>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT b.id, b.created_at, group_concat(f.status)
             FROM batches b LEFT JOIN batch_files f ON f.batch_id = b.id
             GROUP BY b.id ORDER BY b.created_at DESC LIMIT ?1",
        )?;
        let rows = statement.query_map(params![limit as i64], |row| {
            let statuses: Option<String> = row.get(2)?;
            let progress = progress_of(statuses.iter().flat_map(|s| s.split(',')).map(FileStatus::parse));
            Ok(BatchListItem {
                batch_id: parse_id(&row.get::<_, String>(0)?)?,
                created_at: parse_time(&row.get::<_, String>(1)?),
                status: progress.status_word().to_string(),
                progress,
            })
        })?;
        rows.collect()
    }
}

/// The columns [`file_of_row`] reads, in its order.
const FILE_COLUMNS: &str =
    "SELECT id, filename, status, audio_duration_sec, word_count, language, error, performance, warnings,
     engine_crashes FROM batch_files";

/// A file as the API shows it, from a row of [`FILE_COLUMNS`].
fn file_of_row(row: &rusqlite::Row<'_>) -> DbResult<BatchFile> {
    let performance: Option<RequestPerformance> = row
        .get::<_, Option<String>>(7)?
        .and_then(|json| serde_json::from_str(&json).ok());
    Ok(BatchFile {
        file_id: parse_id(&row.get::<_, String>(0)?)?,
        filename: row.get(1)?,
        status: FileStatus::parse(&row.get::<_, String>(2)?),
        audio_duration_sec: row.get(3)?,
        word_count: row.get::<_, Option<i64>>(4)?.map(|n| n as usize),
        processing_time_sec: performance.as_ref().map(|p| p.report.processing_time_sec),
        language: row.get(5)?,
        error: row.get(6)?,
        performance,
        warnings: row
            .get::<_, Option<String>>(8)?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        engine_crashes: row.get(9)?,
    })
}

fn progress_of(statuses: impl Iterator<Item = FileStatus>) -> Progress {
    let mut p = Progress::default();
    for status in statuses {
        p.total += 1;
        *p.of(status) += 1;
    }
    p
}

fn parse_id(s: &str) -> DbResult<FileId> {
    s.parse()
        .map_err(|_| rusqlite::Error::InvalidColumnType(0, format!("id {s}"), rusqlite::types::Type::Text))
}

fn parse_time(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .unwrap_or_default()
}
