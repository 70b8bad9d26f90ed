//! The batch store in PostgreSQL (`--database-url postgres://...`), which
//! many replicas can share: a claim takes the oldest queued file with
//! `FOR UPDATE SKIP LOCKED`, so two replicas never take the same one, and
//! leases are timed by the database's clock, so the replicas' clocks need
//! not agree.
//! tokio-postgres with deadpool's pool: explicit SQL, async, and no second
//! SQLite library beside rusqlite's.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::broadcast;
use tokio_postgres::{NoTls, Row, Statement};
use tokio_util::sync::CancellationToken;

use super::{
    progress_of, BatchOptions, BatchStore, ClaimedFile, FinishedFile, NewFile, Publish, StoreError, StoreResult,
};
use crate::batch::{Batch, BatchFile, BatchListItem, FileChanged, FileStatus};
use crate::store::history::{contains_pattern, HistoryEntry, HistoryQuery, TranscriptionIndex};
use crate::store::record::RequestPerformance;
use crate::store::FileId;

/// Connections one replica keeps open at most.
const MAX_CONNECTIONS: usize = 8;
/// How long getting a connection may take (waiting for a free one,
/// connecting, checking it): a database that does not answer makes requests
/// fail with 503 after this, not hang.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// The key of the advisory lock under which migrations run, so replicas
/// starting together apply each version once.
const MIGRATION_LOCK: i64 = 0x736f_7269;

/// The schema's versions, applied in order; `sori_schema` says how many a database has.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    language    TEXT
);
CREATE TABLE batch_files (
    id                  TEXT PRIMARY KEY,
    batch_id            TEXT NOT NULL REFERENCES batches(id),
    position            INTEGER NOT NULL,
    filename            TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('queued', 'processing', 'done', 'failed')),
    error               TEXT,
    language            TEXT,
    audio_duration_sec  DOUBLE PRECISION,
    word_count          BIGINT,
    performance         TEXT,
    warnings            TEXT,
    finished_at         TEXT,
    engine_crashes      INTEGER NOT NULL DEFAULT 0,
    claim               BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX batch_files_by_batch ON batch_files(batch_id, position);
CREATE INDEX batch_files_by_status ON batch_files(status);
",
    "
ALTER TABLE batch_files ADD COLUMN claimed_by TEXT;
ALTER TABLE batch_files ADD COLUMN lease_until TIMESTAMPTZ;
ALTER TABLE batch_files ADD COLUMN taken_from TEXT;
ALTER TABLE batch_files ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX batch_files_by_change ON batch_files(changed_at);
",
    "
CREATE TABLE transcriptions (
    id                   TEXT PRIMARY KEY,
    filename             TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    created_ms           BIGINT NOT NULL,
    model                TEXT NOT NULL,
    language             TEXT NOT NULL,
    audio_duration_sec   DOUBLE PRECISION NOT NULL,
    word_count           BIGINT NOT NULL,
    processing_time_sec  DOUBLE PRECISION NOT NULL,
    cpu_percent_avg      DOUBLE PRECISION NOT NULL,
    ram_mb_peak          DOUBLE PRECISION NOT NULL,
    real_time_factor     DOUBLE PRECISION NOT NULL,
    replica              TEXT,
    text                 TEXT NOT NULL
);
CREATE INDEX transcriptions_by_time ON transcriptions(created_ms, id);
",
    "
ALTER TABLE batches ADD COLUMN model TEXT;
",
];

/// The database's clock in unix milliseconds, which stamps each change of a
/// file's status (`changed_at`).
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::BIGINT";

/// How often a replica reads which files the replicas changed, to announce
/// them to its event streams.
const CHANGES_POLL: Duration = Duration::from_secs(1);
/// How far back each read looks again, in ms: a change is stamped when its
/// statement runs but seen only once its transaction commits.
const CHANGES_OVERLAP_MS: i64 = 10_000;

/// A pool of connections to one PostgreSQL database.
pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects to `url` and brings the schema up to date.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let store = Self::connect(url)?;
        store.migrate().await?;
        Ok(store)
    }

    /// A pool for `url`; it connects when first used.
    pub fn connect(url: &str) -> StoreResult<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Failed(format!("--database-url is not a PostgreSQL URL: {e}")))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(MAX_CONNECTIONS)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECTION_TIMEOUT))
            .create_timeout(Some(CONNECTION_TIMEOUT))
            .recycle_timeout(Some(CONNECTION_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Failed(e.to_string()))?;
        Ok(Self { pool })
    }

    /// Applies the versions this database lacks, in one transaction under an
    /// advisory lock; returns how many it applied.
    pub async fn migrate(&self) -> StoreResult<usize> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(failed)?;
        tx.batch_execute(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS sori_schema (version INTEGER NOT NULL)",
        )
        .await
        .map_err(failed)?;
        let version: i32 = tx
            .query_opt("SELECT version FROM sori_schema", &[])
            .await
            .map_err(failed)?
            .map_or(0, |row| row.get(0));
        for migration in MIGRATIONS.iter().skip(version as usize) {
            tx.batch_execute(migration).await.map_err(failed)?;
        }
        let latest = MIGRATIONS.len() as i32;
        tx.execute("DELETE FROM sori_schema", &[]).await.map_err(failed)?;
        tx.execute("INSERT INTO sori_schema (version) VALUES ($1)", &[&latest])
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(MIGRATIONS.len() - version as usize)
    }

    /// Announces on `events`, every [`CHANGES_POLL`] until `shutdown`, each
    /// file whose status any replica changed, so that every replica's event
    /// streams follow every batch. A change may be announced more than once;
    /// listeners compare it with what they last saw.
    pub async fn watch_changes(self: Arc<Self>, events: broadcast::Sender<FileChanged>, shutdown: CancellationToken) {
        let mut since = i64::MAX;
        let mut failing = false;
        let mut tick = tokio::time::interval(CHANGES_POLL);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            match self.changed_since(since).await {
                Ok((changed, now)) => {
                    for change in changed {
                        let _ = events.send(change);
                    }
                    since = now - CHANGES_OVERLAP_MS;
                    failing = false;
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %e, "reading the batch files other replicas changed failed; trying again");
                }
                Err(_) => {}
            }
        }
    }

    /// The files changed after `since` (unix ms), and the database's time now.
    async fn changed_since(&self, since: i64) -> StoreResult<(Vec<FileChanged>, i64)> {
        let client = self.client().await?;
        let rows = client
            .query(
                &prepared(
                    &client,
                    &format!(
                        "SELECT now_ms.ms, f.id, f.batch_id FROM (SELECT {NOW_MS} AS ms) now_ms
                     LEFT JOIN batch_files f ON f.changed_at > $1"
                    ),
                )
                .await?,
                &[&since],
            )
            .await
            .map_err(failed)?;
        let now = rows.first().map_or(since, |row| row.get(0));
        let mut changed = Vec::with_capacity(rows.len());
        for row in &rows {
            if let (Some(file_id), Some(batch_id)) = (row.get::<_, Option<String>>(1), row.get::<_, Option<String>>(2))
            {
                changed.push(FileChanged {
                    file_id: parse_id(&file_id)?,
                    batch_id: parse_id(&batch_id)?,
                });
            }
        }
        Ok((changed, now))
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

/// `sql` prepared once per connection and kept: each later use is one round
/// trip to the database, not two (prepare, then run).
async fn prepared(client: &impl GenericClient, sql: &str) -> StoreResult<Statement> {
    client.prepare_cached(sql).await.map_err(failed)
}

/// A database error: unreachable (the connection is gone) or refused.
fn failed(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) if !e.is_closed() => StoreError::Failed(format!("{}: {}", db.code().code(), db.message())),
        _ => StoreError::Unavailable(e.to_string()),
    }
}

#[async_trait]
impl BatchStore for PostgresStore {
    async fn create_batch(&self, batch_id: FileId, options: BatchOptions, files: Vec<NewFile>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let now = chrono::Utc::now().to_rfc3339();
        tx.execute(
            &prepared(
                &tx,
                "INSERT INTO batches (id, created_at, language, model) VALUES ($1, $2, $3, $4)",
            )
            .await?,
            &[&batch_id.to_string(), &now, &options.language, &options.model],
        )
        .await
        .map_err(failed)?;
        let insert = prepared(
            &tx,
            "INSERT INTO batch_files (id, batch_id, position, filename, status, error, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
        for (position, f) in files.iter().enumerate() {
            let status = if f.rejected.is_some() { "failed" } else { "queued" };
            let finished_at = f.rejected.as_ref().map(|_| now.clone());
            tx.execute(
                &insert,
                &[
                    &f.file_id.to_string(),
                    &batch_id.to_string(),
                    &(position as i32),
                    &f.filename,
                    &status,
                    &f.rejected,
                    &finished_at,
                ],
            )
            .await
            .map_err(failed)?;
        }
        tx.commit().await.map_err(failed)
    }

    async fn claim_next(&self, replica: &str, lease: Duration) -> StoreResult<Option<ClaimedFile>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &prepared(
                    &client,
                    &format!(
                        "UPDATE batch_files SET status = 'processing', claim = claim + 1, changed_at = {NOW_MS},
                     claimed_by = $1, lease_until = now() + make_interval(secs => $2),
                     taken_from = CASE WHEN status = 'processing' THEN claimed_by END
                 WHERE id = (
                     SELECT f.id FROM batch_files f JOIN batches b ON b.id = f.batch_id
                     WHERE f.status = 'queued' OR (f.status = 'processing' AND f.lease_until < now())
                     ORDER BY b.created_at, f.batch_id, f.position
                     LIMIT 1 FOR UPDATE OF f SKIP LOCKED)
                 RETURNING id, batch_id, filename,
                     (SELECT language FROM batches WHERE batches.id = batch_files.batch_id), claim, taken_from,
                     (SELECT model FROM batches WHERE batches.id = batch_files.batch_id)"
                    ),
                )
                .await?,
                &[&replica, &lease.as_secs_f64()],
            )
            .await
            .map_err(failed)?;
        row.map(|row| claimed_of_row(&row)).transpose()
    }

    async fn renew(&self, file: &ClaimedFile, lease: Duration) -> StoreResult<bool> {
        let client = self.client().await?;
        let changed = client
            .execute(
                &prepared(
                    &client,
                    "UPDATE batch_files SET lease_until = now() + make_interval(secs => $3)
                 WHERE id = $1 AND status = 'processing' AND claim = $2",
                )
                .await?,
                &[&file.file_id.to_string(), &file.claim, &lease.as_secs_f64()],
            )
            .await
            .map_err(failed)?;
        Ok(changed == 1)
    }

    async fn requeue(&self, file: &ClaimedFile) -> StoreResult<()> {
        let client = self.client().await?;
        client
            .execute(
                &prepared(
                    &client,
                    &format!(
                        "UPDATE batch_files SET status = 'queued', changed_at = {NOW_MS}
                     WHERE id = $1 AND status = 'processing' AND claim = $2"
                    ),
                )
                .await?,
                &[&file.file_id.to_string(), &file.claim],
            )
            .await
            .map(drop)
            .map_err(failed)
    }

    async fn count_crash(&self, file: &ClaimedFile) -> StoreResult<Option<u32>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &prepared(
                    &client,
                    "UPDATE batch_files SET engine_crashes = engine_crashes + 1
                 WHERE id = $1 AND status = 'processing' AND claim = $2 RETURNING engine_crashes",
                )
                .await?,
                &[&file.file_id.to_string(), &file.claim],
            )
            .await
            .map_err(failed)?;
        Ok(row.map(|row| row.get::<_, i32>(0) as u32))
    }

    async fn finish(&self, file: &ClaimedFile, result: &FinishedFile, publish: Publish) -> StoreResult<bool> {
        let performance = serde_json::to_string(&result.performance).expect("serializable");
        let warnings = serde_json::to_string(&result.warnings).expect("serializable");
        let file_id = file.file_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        // The row stays locked until the commit: no claim can take the file
        // over while its files are written.
        let held = tx
            .query_opt(
                &prepared(
                    &tx,
                    "SELECT 1 FROM batch_files WHERE id = $1 AND status = 'processing' AND claim = $2 FOR UPDATE",
                )
                .await?,
                &[&file_id, &file.claim],
            )
            .await
            .map_err(failed)?;
        if held.is_none() {
            return Ok(false);
        }
        publish.await.map_err(StoreError::Publish)?;
        tx.execute(
            &prepared(
                &tx,
                &format!(
                    "UPDATE batch_files SET status = 'done', error = NULL, language = $2, audio_duration_sec = $3,
                 word_count = $4, performance = $5, finished_at = $6, warnings = $7, changed_at = {NOW_MS}
                 WHERE id = $1"
                ),
            )
            .await?,
            &[
                &file_id,
                &result.language,
                &result.audio_duration_sec,
                &(result.word_count as i64),
                &performance,
                &chrono::Utc::now().to_rfc3339(),
                &warnings,
            ],
        )
        .await
        .map_err(failed)?;
        index_on(&tx, &result.entry, &result.text).await?;
        tx.commit().await.map_err(failed)?;
        Ok(true)
    }

    async fn fail(&self, file: &ClaimedFile, error: &str) -> StoreResult<bool> {
        let client = self.client().await?;
        let changed = client
            .execute(
                &prepared(
                    &client,
                    &format!(
                        "UPDATE batch_files SET status = 'failed', error = $3, finished_at = $4, changed_at = {NOW_MS}
                     WHERE id = $1 AND status = 'processing' AND claim = $2"
                    ),
                )
                .await?,
                &[
                    &file.file_id.to_string(),
                    &file.claim,
                    &error,
                    &chrono::Utc::now().to_rfc3339(),
                ],
            )
            .await
            .map_err(failed)?;
        Ok(changed == 1)
    }

    async fn batch(&self, batch_id: FileId) -> StoreResult<Option<Batch>> {
        let client = self.client().await?;
        let Some(head) = client
            .query_opt(
                &prepared(&client, "SELECT created_at, language, model FROM batches WHERE id = $1").await?,
                &[&batch_id.to_string()],
            )
            .await
            .map_err(failed)?
        else {
            return Ok(None);
        };
        let rows = client
            .query(
                &prepared(
                    &client,
                    &format!("{FILE_COLUMNS} WHERE batch_id = $1 ORDER BY position"),
                )
                .await?,
                &[&batch_id.to_string()],
            )
            .await
            .map_err(failed)?;
        let files = rows.iter().map(file_of_row).collect::<StoreResult<Vec<_>>>()?;
        let progress = progress_of(files.iter().map(|f| f.status));
        Ok(Some(Batch {
            batch_id,
            created_at: parse_time(&head.get::<_, String>(0)),
            language: head.get(1),
            model: head.get(2),
            status: progress.status_word().to_string(),
            progress,
            files,
        }))
    }

    async fn file(&self, file_id: FileId) -> StoreResult<Option<BatchFile>> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &prepared(&client, &format!("{FILE_COLUMNS} WHERE id = $1")).await?,
                &[&file_id.to_string()],
            )
            .await
            .map_err(failed)?;
        row.map(|row| file_of_row(&row)).transpose()
    }

    async fn batches_of(&self, files: &[FileId]) -> StoreResult<HashMap<FileId, FileId>> {
        let client = self.client().await?;
        let ids: Vec<String> = files.iter().map(FileId::to_string).collect();
        let rows = client
            .query(
                &prepared(&client, "SELECT id, batch_id FROM batch_files WHERE id = ANY($1)").await?,
                &[&ids],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| Ok((parse_id(&row.get::<_, String>(0))?, parse_id(&row.get::<_, String>(1))?)))
            .collect()
    }

    async fn recent(&self, limit: usize) -> StoreResult<Vec<BatchListItem>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &prepared(
                    &client,
                    "SELECT b.id, b.created_at, string_agg(f.status, ',')
                 FROM batches b LEFT JOIN batch_files f ON f.batch_id = b.id
                 GROUP BY b.id ORDER BY b.created_at DESC LIMIT $1",
                )
                .await?,
                &[&(limit as i64)],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                let statuses: Option<String> = row.get(2);
                let progress = progress_of(statuses.iter().flat_map(|s| s.split(',')).map(FileStatus::parse));
                Ok(BatchListItem {
                    batch_id: parse_id(&row.get::<_, String>(0))?,
                    created_at: parse_time(&row.get::<_, String>(1)),
                    status: progress.status_word().to_string(),
                    progress,
                })
            })
            .collect()
    }

    async fn release_claims(&self, replica: Option<&str>) -> StoreResult<u64> {
        let client = self.client().await?;
        client
            .execute(
                &prepared(
                    &client,
                    &format!(
                        "UPDATE batch_files SET status = 'queued', lease_until = NULL, changed_at = {NOW_MS}
                     WHERE status = 'processing' AND ($1::TEXT IS NULL OR claimed_by = $1)"
                    ),
                )
                .await?,
                &[&replica],
            )
            .await
            .map_err(failed)
    }

    async fn pending(&self) -> StoreResult<Vec<FileId>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &prepared(
                    &client,
                    "SELECT id FROM batch_files WHERE status IN ('queued', 'processing')",
                )
                .await?,
                &[],
            )
            .await
            .map_err(failed)?;
        rows.iter().map(|row| parse_id(&row.get::<_, String>(0))).collect()
    }

    async fn delete_batch(&self, batch_id: FileId) -> StoreResult<bool> {
        let id = batch_id.to_string();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(failed)?;
        let running = tx
            .query(
                "SELECT 1 FROM batch_files WHERE batch_id = $1 AND status IN ('queued', 'processing')",
                &[&id],
            )
            .await
            .map_err(failed)?;
        if !running.is_empty() {
            return Ok(false);
        }
        tx.execute("DELETE FROM batch_files WHERE batch_id = $1", &[&id])
            .await
            .map_err(failed)?;
        let removed = tx
            .execute("DELETE FROM batches WHERE id = $1", &[&id])
            .await
            .map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        Ok(removed == 1)
    }

    async fn complete_before(&self, cutoff: chrono::DateTime<chrono::Utc>) -> StoreResult<Vec<FileId>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT b.id FROM batches b WHERE b.created_at::timestamptz < $1::TEXT::timestamptz
                 AND NOT EXISTS (SELECT 1 FROM batch_files
                                 WHERE batch_id = b.id AND status IN ('queued', 'processing'))
                 ORDER BY b.created_at",
                &[&cutoff.to_rfc3339()],
            )
            .await
            .map_err(failed)?;
        rows.iter().map(|row| parse_id(&row.get::<_, String>(0))).collect()
    }

    async fn queued(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(&prepared(&client, super::QUEUED_COUNT).await?, &[])
            .await
            .map_err(failed)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    async fn ping(&self) -> StoreResult<()> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await.map(drop).map_err(failed)
    }
}

#[async_trait]
impl TranscriptionIndex for PostgresStore {
    async fn index(&self, e: &HistoryEntry, text: &str) -> StoreResult<()> {
        index_on(&self.client().await?, e, text).await
    }

    async fn unindex(&self, file_id: FileId) -> StoreResult<bool> {
        let client = self.client().await?;
        let statement = prepared(&client, "DELETE FROM transcriptions WHERE id = $1").await?;
        let removed = client
            .execute(&statement, &[&file_id.to_string()])
            .await
            .map_err(failed)?;
        Ok(removed == 1)
    }

    async fn indexed(&self) -> StoreResult<Vec<(FileId, Option<String>)>> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id, replica FROM transcriptions", &[])
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| Ok((parse_id(&row.get::<_, String>(0))?, row.get(1))))
            .collect()
    }

    async fn history(&self, q: &HistoryQuery) -> StoreResult<Vec<HistoryEntry>> {
        let client = self.client().await?;
        let statement = prepared(
            &client,
            "SELECT id, filename, created_at, model, language, audio_duration_sec, word_count,
                 processing_time_sec, cpu_percent_avg, ram_mb_peak, real_time_factor, replica
             FROM transcriptions
             WHERE ($1::TEXT IS NULL OR text ILIKE $1 ESCAPE '\\')
               AND ($2::TEXT IS NULL OR filename ILIKE $2 ESCAPE '\\')
               AND ($3::TEXT IS NULL OR language = $3)
               AND ($4::TEXT IS NULL OR model = $4)
               AND ($5::BIGINT IS NULL OR created_ms >= $5)
               AND ($6::BIGINT IS NULL OR created_ms < $6)
               AND ($7::BIGINT IS NULL OR created_ms < $7 OR (created_ms = $7 AND id < $8))
             ORDER BY created_ms DESC, id DESC
             LIMIT $9",
        )
        .await?;
        let rows = client
            .query(
                &statement,
                &[
                    &q.text.as_deref().map(contains_pattern),
                    &q.name.as_deref().map(contains_pattern),
                    &q.language,
                    &q.model,
                    &q.from.map(|t| t.timestamp_millis()),
                    &q.to.map(|t| t.timestamp_millis()),
                    &q.after.map(|c| c.created_ms),
                    &q.after.map(|c| c.file_id.to_string()),
                    &(q.limit as i64),
                ],
            )
            .await
            .map_err(failed)?;
        rows.iter()
            .map(|row| {
                Ok(HistoryEntry {
                    file_id: parse_id(&row.get::<_, String>(0))?,
                    filename: row.get(1),
                    created_at: parse_time(&row.get::<_, String>(2)),
                    model: row.get(3),
                    language: row.get(4),
                    audio_duration_sec: row.get(5),
                    word_count: row.get::<_, i64>(6) as usize,
                    processing_time_sec: row.get(7),
                    cpu_percent_avg: row.get(8),
                    ram_mb_peak: row.get(9),
                    real_time_factor: row.get(10),
                    replica: row.get(11),
                })
            })
            .collect()
    }
}

/// The columns [`file_of_row`] reads, in its order.
const FILE_COLUMNS: &str =
    "SELECT id, filename, status, audio_duration_sec, word_count, language, error, performance, warnings,
     engine_crashes, claimed_by FROM batch_files";

fn file_of_row(row: &Row) -> StoreResult<BatchFile> {
    let performance: Option<RequestPerformance> = row
        .get::<_, Option<String>>(7)
        .and_then(|json| serde_json::from_str(&json).ok());
    Ok(BatchFile {
        file_id: parse_id(&row.get::<_, String>(0))?,
        filename: row.get(1),
        status: FileStatus::parse(&row.get::<_, String>(2)),
        audio_duration_sec: row.get(3),
        word_count: row.get::<_, Option<i64>>(4).map(|n| n as usize),
        processing_time_sec: performance.as_ref().map(|p| p.report.processing_time_sec),
        language: row.get(5),
        error: row.get(6),
        performance,
        warnings: row
            .get::<_, Option<String>>(8)
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default(),
        engine_crashes: row.get::<_, i32>(9) as u32,
        replica: row.get(10),
    })
}

fn claimed_of_row(row: &Row) -> StoreResult<ClaimedFile> {
    Ok(ClaimedFile {
        file_id: parse_id(&row.get::<_, String>(0))?,
        batch_id: parse_id(&row.get::<_, String>(1))?,
        filename: row.get(2),
        language: row.get(3),
        claim: row.get(4),
        taken_from: row.get(5),
        model: row.get(6),
    })
}

fn parse_id(s: &str) -> StoreResult<FileId> {
    s.parse()
        .map_err(|_| StoreError::Failed(format!("the database holds a bad id {s:?}")))
}

fn parse_time(s: &str) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .unwrap_or_default()
}

/// Lists a transcription in the history (or updates its entry), on `client`
/// (a transaction, when it is listed as its batch file is marked done).
async fn index_on(client: &impl GenericClient, e: &HistoryEntry, text: &str) -> StoreResult<()> {
    let statement = prepared(
        client,
        "INSERT INTO transcriptions (id, filename, created_at, created_ms, model, language,
             audio_duration_sec, word_count, processing_time_sec, cpu_percent_avg, ram_mb_peak,
             real_time_factor, replica, text)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (id) DO UPDATE SET filename = $2, created_at = $3, created_ms = $4, model = $5,
             language = $6, audio_duration_sec = $7, word_count = $8, processing_time_sec = $9,
             cpu_percent_avg = $10, ram_mb_peak = $11, real_time_factor = $12, replica = $13, text = $14",
    )
    .await?;
    client
        .execute(
            &statement,
            &[
                &e.file_id.to_string(),
                &e.filename,
                &e.created_at.to_rfc3339(),
                &e.created_at.timestamp_millis(),
                &e.model,
                &e.language,
                &e.audio_duration_sec,
                &(e.word_count as i64),
                &e.processing_time_sec,
                &e.cpu_percent_avg,
                &e.ram_mb_peak,
                &e.real_time_factor,
                &e.replica,
                &text,
            ],
        )
        .await
        .map(drop)
        .map_err(failed)
}
