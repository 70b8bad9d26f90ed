//! What the database (SQLite in the data dir, or PostgreSQL), which keeps the
//! batches and the history of transcriptions, answers when it fails.

/// Why the database did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// It cannot be reached now (refused, lost, timed out): the same request
    /// may work later.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    /// It answered with an error.
    #[error("the database failed: {0}")]
    Failed(String),
    /// The result's files could not be written (nothing was recorded).
    #[error("writing the result's files failed: {0}")]
    Publish(crate::store::FilesError),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

/// What a database call gives.
pub type StoreResult<T> = Result<T, StoreError>;
