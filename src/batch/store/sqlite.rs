//! The batch store in SQLite (`{data_dir}/sori.db`), for one server. Every
//! change is one statement or one transaction, so a crash leaves a consistent
//! database; the calls run on blocking threads, one at a time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    progress_of, BatchOptions, BatchStore, ClaimedFile, FinishedFile, NewFile, Publish, StoreError, StoreResult,
    QUEUED_COUNT,
};
use crate::batch::{Batch, BatchFile, BatchListItem, FileStatus};
use crate::store::history::{contains_pattern, HistoryEntry, HistoryQuery, TranscriptionIndex};
use crate::store::record::RequestPerformance;
use crate::store::FileId;

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
    "
ALTER TABLE batch_files ADD COLUMN claim INTEGER NOT NULL DEFAULT 0;
",
    "
ALTER TABLE batch_files ADD COLUMN claimed_by TEXT;
ALTER TABLE batch_files ADD COLUMN lease_until INTEGER;
ALTER TABLE batch_files ADD COLUMN taken_from TEXT;
",
    "
CREATE TABLE transcriptions (
    id                   TEXT PRIMARY KEY,
    filename             TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    created_ms           INTEGER NOT NULL,
    model                TEXT NOT NULL,
    language             TEXT NOT NULL,
    audio_duration_sec   REAL NOT NULL,
    word_count           INTEGER NOT NULL,
    processing_time_sec  REAL NOT NULL,
    cpu_percent_avg      REAL NOT NULL,
    ram_mb_peak          REAL NOT NULL,
    real_time_factor     REAL NOT NULL,
    replica              TEXT,
    text                 TEXT NOT NULL
);
CREATE INDEX transcriptions_by_time ON transcriptions(created_ms, id);
",
    "
ALTER TABLE batches ADD COLUMN model TEXT;
",
];

/// The database, behind a mutex (SQLite connections are not shared between threads).
pub struct SqliteStore {
    db: Arc<Db>,
}

struct Db {
    conn: Mutex<Connection>,
}

type DbResult<T> = Result<T, rusqlite::Error>;

impl SqliteStore {
    /// Opens (creating, or bringing its schema up to date) the database.
    pub fn open(path: &Path) -> StoreResult<Self> {
        Ok(Self {
            db: Arc::new(Db::open(path)?),
        })
    }

    /// Runs `work` on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Db) -> DbResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || work(&db))
            .await
            .map_err(|e| StoreError::Failed(format!("the database task failed: {e}")))?
            .map_err(StoreError::from)
    }
}

#[async_trait]
impl BatchStore for SqliteStore {
    async fn create_batch(&self, batch_id: FileId, options: BatchOptions, files: Vec<NewFile>) -> StoreResult<()> {
        self.blocking(move |db| db.create_batch(batch_id, &options, &files))
            .await
    }

    async fn claim_next(&self, replica: &str, lease: Duration) -> StoreResult<Option<ClaimedFile>> {
        let replica = replica.to_string();
        self.blocking(move |db| db.claim_next(&replica, lease)).await
    }

    async fn renew(&self, file: &ClaimedFile, lease: Duration) -> StoreResult<bool> {
        let (file_id, claim) = (file.file_id, file.claim);
        self.blocking(move |db| db.renew(file_id, claim, lease)).await
    }

    async fn requeue(&self, file: &ClaimedFile) -> StoreResult<()> {
        let (file_id, claim) = (file.file_id, file.claim);
        self.blocking(move |db| db.requeue(file_id, claim)).await
    }

    async fn count_crash(&self, file: &ClaimedFile) -> StoreResult<Option<u32>> {
        let (file_id, claim) = (file.file_id, file.claim);
        self.blocking(move |db| db.count_crash(file_id, claim)).await
    }

    async fn finish(&self, file: &ClaimedFile, result: &FinishedFile, publish: Publish) -> StoreResult<bool> {
        let (db, file_id, claim, result) = (self.db.clone(), file.file_id, file.claim, result.clone());
        tokio::task::spawn_blocking(move || db.finish(file_id, claim, &result, publish))
            .await
            .map_err(|e| StoreError::Failed(format!("the database task failed: {e}")))?
    }

    async fn fail(&self, file: &ClaimedFile, error: &str) -> StoreResult<bool> {
        let (file_id, claim, error) = (file.file_id, file.claim, error.to_string());
        self.blocking(move |db| db.fail(file_id, claim, &error)).await
    }

    async fn batch(&self, batch_id: FileId) -> StoreResult<Option<Batch>> {
        self.blocking(move |db| db.batch(batch_id)).await
    }

    async fn file(&self, file_id: FileId) -> StoreResult<Option<BatchFile>> {
        self.blocking(move |db| db.file(file_id)).await
    }

    async fn batches_of(&self, files: &[FileId]) -> StoreResult<HashMap<FileId, FileId>> {
        let files = files.to_vec();
        self.blocking(move |db| db.batches_of(&files)).await
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<BatchListItem>> {
        self.blocking(move |db| db.recent(limit)).await
    }

    async fn release_claims(&self, replica: Option<&str>) -> StoreResult<u64> {
        let replica = replica.map(str::to_string);
        self.blocking(move |db| db.release_claims(replica.as_deref())).await
    }

    async fn pending(&self) -> StoreResult<Vec<FileId>> {
        self.blocking(Db::pending).await
    }

    async fn delete_batch(&self, batch_id: FileId) -> StoreResult<bool> {
        self.blocking(move |db| db.delete_batch(batch_id)).await
    }

    async fn complete_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<FileId>> {
        self.blocking(move |db| db.complete_before(cutoff)).await
    }

    async fn queued(&self) -> StoreResult<u64> {
        let count = |db: &Db| db.conn().query_row(QUEUED_COUNT, [], |row| row.get::<_, i64>(0));
        Ok(self.blocking(count).await?.max(0) as u64)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.blocking(|db| db.conn().query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}

#[async_trait]
impl TranscriptionIndex for SqliteStore {
    async fn index(&self, entry: &HistoryEntry, text: &str) -> StoreResult<()> {
        let (entry, text) = (entry.clone(), text.to_string());
        self.blocking(move |db| db.index(&entry, &text)).await
    }

    async fn unindex(&self, file_id: FileId) -> StoreResult<bool> {
        self.blocking(move |db| {
            db.conn()
                .execute("DELETE FROM transcriptions WHERE id = ?1", params![file_id.to_string()])
                .map(|n| n == 1)
        })
        .await
    }

    async fn indexed(&self) -> StoreResult<Vec<(FileId, Option<String>)>> {
        self.blocking(|db| {
            let conn = db.conn();
            let mut statement = conn.prepare("SELECT id, replica FROM transcriptions")?;
            let rows = statement.query_map([], |row| Ok((parse_id(&row.get::<_, String>(0)?)?, row.get(1)?)))?;
            rows.collect()
        })
        .await
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        let query = query.clone();
        self.blocking(move |db| db.history(&query)).await
    }
}

impl Db {
    fn index(&self, e: &HistoryEntry, text: &str) -> DbResult<()> {
        index_on(&self.conn(), e, text)
    }

    fn history(&self, q: &HistoryQuery) -> DbResult<Vec<HistoryEntry>> {
        let conn = self.conn();
        let mut statement = conn.prepare(
            "SELECT id, filename, created_at, model, language, audio_duration_sec, word_count,
                 processing_time_sec, cpu_percent_avg, ram_mb_peak, real_time_factor, replica
             FROM transcriptions
             WHERE (?1 IS NULL OR text LIKE ?1 ESCAPE '\\')
               AND (?2 IS NULL OR filename LIKE ?2 ESCAPE '\\')
               AND (?3 IS NULL OR language = ?3)
               AND (?4 IS NULL OR model = ?4)
               AND (?5 IS NULL OR created_ms >= ?5)
               AND (?6 IS NULL OR created_ms < ?6)
               AND (?7 IS NULL OR created_ms < ?7 OR (created_ms = ?7 AND id < ?8))
             ORDER BY created_ms DESC, id DESC
             LIMIT ?9",
        )?;
        let rows = statement.query_map(
            params![
                q.text.as_deref().map(contains_pattern),
                q.name.as_deref().map(contains_pattern),
                q.language,
                q.model,
                q.from.map(|t| t.timestamp_millis()),
                q.to.map(|t| t.timestamp_millis()),
                q.after.map(|c| c.created_ms),
                q.after.map(|c| c.file_id.to_string()),
                q.limit as i64
            ],
            |row| {
                Ok(HistoryEntry {
                    file_id: parse_id(&row.get::<_, String>(0)?)?,
                    filename: row.get(1)?,
                    created_at: parse_time(&row.get::<_, String>(2)?),
                    model: row.get(3)?,
                    language: row.get(4)?,
                    audio_duration_sec: row.get(5)?,
                    word_count: row.get::<_, i64>(6)? as usize,
                    processing_time_sec: row.get(7)?,
                    cpu_percent_avg: row.get(8)?,
                    ram_mb_peak: row.get(9)?,
                    real_time_factor: row.get(10)?,
                    replica: row.get(11)?,
                })
            },
        )?;
        rows.collect()
    }

    fn open(path: &Path) -> DbResult<Self> {
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

    fn release_claims(&self, replica: Option<&str>) -> DbResult<u64> {
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'queued', lease_until = NULL
                 WHERE status = 'processing' AND (?1 IS NULL OR claimed_by = ?1)",
                params![replica],
            )
            .map(|n| n as u64)
    }

    fn pending(&self) -> DbResult<Vec<FileId>> {
        let conn = self.conn();
        let mut statement = conn.prepare("SELECT id FROM batch_files WHERE status IN ('queued', 'processing')")?;
        let ids = statement.query_map([], |row| parse_id(&row.get::<_, String>(0)?))?;
        ids.collect()
    }

    fn delete_batch(&self, batch_id: FileId) -> DbResult<bool> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let id = batch_id.to_string();
        let running: i64 = tx.query_row(
            &format!("SELECT count(*) FROM batch_files WHERE batch_id = ?1 AND {UNFINISHED}"),
            params![id],
            |row| row.get(0),
        )?;
        if running > 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM batch_files WHERE batch_id = ?1", params![id])?;
        let removed = tx.execute("DELETE FROM batches WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(removed == 1)
    }

    fn complete_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> DbResult<Vec<FileId>> {
        let conn = self.conn();
        let mut statement = conn.prepare(&format!(
            "SELECT b.id FROM batches b WHERE julianday(b.created_at) < julianday(?1)
             AND NOT EXISTS (SELECT 1 FROM batch_files WHERE batch_id = b.id AND {UNFINISHED})
             ORDER BY b.created_at"
        ))?;
        let ids = statement.query_map(params![cutoff.to_rfc3339()], |row| parse_id(&row.get::<_, String>(0)?))?;
        ids.collect()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn create_batch(&self, batch_id: FileId, options: &BatchOptions, files: &[NewFile]) -> DbResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let now = chrono::Utc::now().to_rfc3339();
        tx.execute(
            "INSERT INTO batches (id, created_at, language, model) VALUES (?1, ?2, ?3, ?4)",
            params![batch_id.to_string(), now, options.language, options.model],
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

    /// Takes the oldest queued (or abandoned) file and marks it processing,
    /// raising its claim, in one statement (no other claim can take the same
    /// file between a read and a write).
    fn claim_next(&self, replica: &str, lease: Duration) -> DbResult<Option<ClaimedFile>> {
        let now = unix_ms(Duration::ZERO);
        self.conn()
            .query_row(
                &format!(
                    "UPDATE batch_files SET status = 'processing', claim = claim + 1, claimed_by = ?1, lease_until = ?2,
                         taken_from = CASE WHEN status = 'processing' THEN claimed_by END
                     WHERE id = (
                         SELECT f.id FROM batch_files f JOIN batches b ON b.id = f.batch_id
                         WHERE {CLAIMABLE}
                         ORDER BY b.created_at, f.batch_id, f.position LIMIT 1)
                     RETURNING {CLAIMED_COLUMNS}"
                ),
                params![replica, unix_ms(lease), now],
                claimed_of_row,
            )
            .optional()
    }

    fn renew(&self, file_id: FileId, claim: i64, lease: Duration) -> DbResult<bool> {
        self.conn()
            .execute(
                "UPDATE batch_files SET lease_until = ?3
                 WHERE id = ?1 AND status = 'processing' AND claim = ?2",
                params![file_id.to_string(), claim, unix_ms(lease)],
            )
            .map(|changed| changed == 1)
    }

    fn requeue(&self, file_id: FileId, claim: i64) -> DbResult<()> {
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'queued'
                 WHERE id = ?1 AND status = 'processing' AND claim = ?2",
                params![file_id.to_string(), claim],
            )
            .map(drop)
    }

    fn count_crash(&self, file_id: FileId, claim: i64) -> DbResult<Option<u32>> {
        self.conn()
            .query_row(
                "UPDATE batch_files SET engine_crashes = engine_crashes + 1
                 WHERE id = ?1 AND status = 'processing' AND claim = ?2 RETURNING engine_crashes",
                params![file_id.to_string(), claim],
                |row| row.get(0),
            )
            .optional()
    }

    /// Publishes, marks done and lists in the history in one write
    /// transaction, if the claim holds.
    fn finish(&self, file_id: FileId, claim: i64, result: &FinishedFile, publish: Publish) -> StoreResult<bool> {
        let performance = serde_json::to_string(&result.performance).expect("serializable");
        let warnings = serde_json::to_string(&result.warnings).expect("serializable");
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held = tx
            .query_row(
                "SELECT 1 FROM batch_files WHERE id = ?1 AND status = 'processing' AND claim = ?2",
                params![file_id.to_string(), claim],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !held {
            return Ok(false);
        }
        // On a blocking thread (see the caller), which may wait for the writes.
        tokio::runtime::Handle::current()
            .block_on(publish)
            .map_err(StoreError::Publish)?;
        tx.execute(
            "UPDATE batch_files SET status = 'done', error = NULL, language = ?2, audio_duration_sec = ?3,
                 word_count = ?4, performance = ?5, finished_at = ?6, warnings = ?7
                 WHERE id = ?1 AND status = 'processing' AND claim = ?8",
            params![
                file_id.to_string(),
                result.language,
                result.audio_duration_sec,
                result.word_count as i64,
                performance,
                chrono::Utc::now().to_rfc3339(),
                warnings,
                claim
            ],
        )?;
        index_on(&tx, &result.entry, &result.text)?;
        tx.commit()?;
        Ok(true)
    }

    fn fail(&self, file_id: FileId, claim: i64, error: &str) -> DbResult<bool> {
        self.conn()
            .execute(
                "UPDATE batch_files SET status = 'failed', error = ?2, finished_at = ?3
                 WHERE id = ?1 AND status = 'processing' AND claim = ?4",
                params![file_id.to_string(), error, chrono::Utc::now().to_rfc3339(), claim],
            )
            .map(|changed| changed == 1)
    }

    fn batch(&self, batch_id: FileId) -> DbResult<Option<Batch>> {
        let conn = self.conn();
        let head = conn
            .query_row(
                "SELECT created_at, language, model FROM batches WHERE id = ?1",
                params![batch_id.to_string()],
                |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((created_at, language, model)) = head else {
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
            model,
            status: progress.status_word().to_string(),
            progress,
            files,
        }))
    }

    fn file(&self, file_id: FileId) -> DbResult<Option<BatchFile>> {
        self.conn()
            .query_row(
                &format!("{FILE_COLUMNS} WHERE id = ?1"),
                params![file_id.to_string()],
                file_of_row,
            )
            .optional()
    }

    fn batches_of(&self, files: &[FileId]) -> DbResult<HashMap<FileId, FileId>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached("SELECT batch_id FROM batch_files WHERE id = ?1")?;
        let mut batches = HashMap::new();
        for file in files {
            let batch: Option<String> = statement
                .query_row(params![file.to_string()], |row| row.get(0))
                .optional()?;
            if let Some(batch) = batch {
                batches.insert(*file, parse_id(&batch)?);
            }
        }
        Ok(batches)
    }

    fn recent(&self, limit: usize) -> DbResult<Vec<BatchListItem>> {
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

/// A file (of `batch_files`) still to be done.
const UNFINISHED: &str = "status IN ('queued', 'processing')";

/// Which files (`f`) a claim may take: queued, or processing under a lease
/// that ran out by `?3` (unix ms).
const CLAIMABLE: &str = "f.status = 'queued' OR (f.status = 'processing' AND f.lease_until < ?3)";

/// The columns [`claimed_of_row`] reads, in its order.
const CLAIMED_COLUMNS: &str =
    "id, batch_id, filename, (SELECT language FROM batches WHERE batches.id = batch_files.batch_id), claim, taken_from,
     (SELECT model FROM batches WHERE batches.id = batch_files.batch_id)";

/// Unix time in milliseconds, `ahead` from now.
fn unix_ms(ahead: Duration) -> i64 {
    (chrono::Utc::now() + ahead).timestamp_millis()
}

/// A claimed file from a row of [`CLAIMED_COLUMNS`].
fn claimed_of_row(row: &rusqlite::Row<'_>) -> DbResult<ClaimedFile> {
    Ok(ClaimedFile {
        file_id: parse_id(&row.get::<_, String>(0)?)?,
        batch_id: parse_id(&row.get::<_, String>(1)?)?,
        filename: row.get(2)?,
        language: row.get(3)?,
        claim: row.get(4)?,
        taken_from: row.get(5)?,
        model: row.get(6)?,
    })
}

/// The columns [`file_of_row`] reads, in its order.
const FILE_COLUMNS: &str =
    "SELECT id, filename, status, audio_duration_sec, word_count, language, error, performance, warnings,
     engine_crashes, claimed_by FROM batch_files";

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
        replica: row.get(10)?,
    })
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

/// Lists a transcription in the history (or updates its entry), on `conn`
/// (a transaction's, when it is listed as its batch file is marked done).
fn index_on(conn: &rusqlite::Connection, e: &HistoryEntry, text: &str) -> DbResult<()> {
    conn.execute(
        "INSERT OR REPLACE INTO transcriptions (id, filename, created_at, created_ms, model, language,
             audio_duration_sec, word_count, processing_time_sec, cpu_percent_avg, ram_mb_peak,
             real_time_factor, replica, text)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
        params![
            e.file_id.to_string(),
            e.filename,
            e.created_at.to_rfc3339(),
            e.created_at.timestamp_millis(),
            e.model,
            e.language,
            e.audio_duration_sec,
            e.word_count as i64,
            e.processing_time_sec,
            e.cpu_percent_avg,
            e.ram_mb_peak,
            e.real_time_factor,
            e.replica,
            text
        ],
    )
    .map(drop)
}
