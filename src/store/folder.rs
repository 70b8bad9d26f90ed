//! Objects as files in a folder on this machine (the default data dir), each
//! written atomically (a synced temporary file renamed over the name).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::objects::{FilesError, FilesResult, Listed, LocalFile, Objects};

/// A folder of objects; an object named `a/b` is the file `{dir}/a/b`.
#[derive(Debug, Clone)]
pub struct Folder {
    dir: PathBuf,
}

impl Folder {
    /// The objects in `dir` (which must exist).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs a file system call on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> FilesResult<T> {
        tokio::task::spawn_blocking(call)
            .await
            .map_err(|e| FilesError::Failed(format!("a file task failed: {e}")))?
            .map_err(FilesError::from)
    }
}

#[async_trait]
impl Objects for Folder {
    async fn put(&self, name: &str, bytes: Vec<u8>) -> FilesResult<()> {
        let path = self.path(name);
        self.blocking(move || write_atomic(&path, &bytes)).await
    }

    async fn get(&self, name: &str) -> FilesResult<Option<Vec<u8>>> {
        let path = self.path(name);
        self.blocking(move || match fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn exists(&self, name: &str) -> FilesResult<bool> {
        Ok(tokio::fs::try_exists(self.path(name)).await?)
    }

    async fn delete(&self, name: &str) -> FilesResult<bool> {
        let path = self.path(name);
        self.blocking(move || match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        })
        .await
    }

    async fn list(&self, folder: &str) -> FilesResult<Vec<Listed>> {
        let dir = self.path(folder);
        self.blocking(move || {
            let mut listed = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if let (true, Some(name)) = (metadata.is_file(), entry.file_name().to_str()) {
                    listed.push(Listed {
                        name: name.to_string(),
                        modified: metadata.modified()?,
                    });
                }
            }
            Ok(listed)
        })
        .await
    }

    async fn put_file(&self, name: &str, from: &Path) -> FilesResult<()> {
        let (to, from) = (self.path(name), from.to_path_buf());
        if to == from {
            return Ok(());
        }
        self.blocking(move || fs::rename(from, to)).await
    }

    async fn local_file(&self, name: &str, _scratch: &Path) -> FilesResult<Option<LocalFile>> {
        let exists = self.exists(name).await?;
        Ok(exists.then(|| LocalFile::original(self.path(name))))
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn is_local(&self) -> bool {
        true
    }

    async fn check(&self) -> FilesResult<()> {
        let dir = self.dir.clone();
        self.blocking(move || tempfile::NamedTempFile::new_in(dir).map(drop))
            .await
    }
}

/// Writes `bytes` to a temporary file in the same folder, syncs it and renames
/// it over `path`: readers see the old file or the whole new one, never half.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("objects live in a folder");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
