//! Where the files are kept, as named objects: a folder on this machine
//! (`folder.rs`) or an S3-compatible bucket (`bucket.rs`). The rules about
//! which object is written or removed first live above, in `FileStore`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use async_trait::async_trait;

/// Why the file store did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// It cannot be reached now (refused, timed out, throttled): the same
    /// request may work later.
    #[error("the file store cannot be reached: {0}")]
    Unavailable(String),
    /// It answered with an error, or a local file could not be used.
    #[error("the file store failed: {0}")]
    Failed(String),
}

impl From<std::io::Error> for FilesError {
    fn from(e: std::io::Error) -> Self {
        Self::Failed(e.to_string())
    }
}

/// What a file store call gives.
pub type FilesResult<T> = Result<T, FilesError>;

/// An object found by [`Objects::list`].
#[derive(Debug, Clone)]
pub struct Listed {
    /// Its name, relative to the listed folder.
    pub name: String,
    /// When it was last written.
    pub modified: SystemTime,
}

/// An object as a file on this machine; a copy is removed when dropped.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    /// Whether `path` is a copy made for the reader (removed on drop).
    copy: bool,
}

impl LocalFile {
    /// The object's own file (a folder's).
    pub fn original(path: PathBuf) -> Self {
        Self { path, copy: false }
    }

    /// A copy made at `path`, removed when dropped.
    pub fn copy(path: PathBuf) -> Self {
        Self { path, copy: true }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.copy {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Named objects (`{id}.txt`, `uploads/{id}.upload`): whole objects are
/// written, read and removed; a reader never sees half of one.
#[async_trait]
pub trait Objects: Send + Sync + std::fmt::Debug {
    /// Writes `bytes` as `name`, replacing it.
    async fn put(&self, name: &str, bytes: Vec<u8>) -> FilesResult<()>;
    /// The bytes of `name`, if it exists.
    async fn get(&self, name: &str) -> FilesResult<Option<Vec<u8>>>;
    /// Whether `name` exists.
    async fn exists(&self, name: &str) -> FilesResult<bool>;
    /// Removes `name`; whether it existed.
    async fn delete(&self, name: &str) -> FilesResult<bool>;
    /// The objects directly in `folder` ("" for the top).
    async fn list(&self, folder: &str) -> FilesResult<Vec<Listed>>;
    /// Makes the local file `from` the object `name`: a bucket streams it up
    /// (never whole in memory); a folder moves it in, or leaves it where it is
    /// if it is there already.
    async fn put_file(&self, name: &str, from: &Path) -> FilesResult<()>;
    /// `name` as a file on this machine, for a program that reads files (the
    /// worker): a folder's own file, or a bucket's object streamed into
    /// `scratch` and removed when the copy is dropped. `None` if there is no `name`.
    async fn local_file(&self, name: &str, scratch: &Path) -> FilesResult<Option<LocalFile>>;
    /// Where they are (a folder's path, a bucket's URL), for messages.
    fn location(&self) -> String;
    /// Whether objects are files on this machine (a folder).
    fn is_local(&self) -> bool;
    /// Whether the store answers now; the reason when it does not.
    async fn check(&self) -> FilesResult<()>;
}
