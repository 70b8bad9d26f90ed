//! The kept files: each transcription leaves `{file_id}.txt` (the transcript)
//! and `{file_id}.performance.json` (its record), and beside them
//! `{file_id}.segments.json` (its timed segments, for subtitles); batch uploads
//! wait as `uploads/{file_id}.upload` until they are transcribed. They live in
//! the data dir (`folder.rs`) or in an S3-compatible bucket (`bucket.rs`);
//! either way this module decides the order of writes and removals.

pub mod bucket;
pub mod database;
pub mod folder;
pub mod history;
pub mod objects;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

pub use objects::{FilesError, FilesResult, LocalFile};
pub use record::{FileId, LiveSessionSummary, TranscriptionRecord};

use crate::engine::Segment;
use folder::Folder;
use objects::Objects;

/// The uploads folder (in the data dir, and among the objects).
const UPLOADS: &str = "uploads";

/// Paired transcript and record files, and the uploads of batches.
#[derive(Debug, Clone)]
pub struct FileStore {
    objects: Arc<dyn Objects>,
    /// This machine's data dir: uploads are received into its `uploads/`
    /// (and, with a bucket, copied there for the worker); SQLite lives here.
    /// Without a bucket it is also where `objects` are.
    here: Folder,
}

impl FileStore {
    /// The files in the data dir `dir` (created if needed, and checked writable).
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let here = Folder::new(prepare_data_dir(dir)?);
        Ok(Self {
            objects: Arc::new(here.clone()),
            here,
        })
    }

    /// The files in the bucket of `url` (`s3://bucket/prefix`), checked
    /// writable; `dir` is this machine's data dir.
    pub async fn open_bucket(dir: &Path, url: &str) -> anyhow::Result<Self> {
        let here = Folder::new(prepare_data_dir(dir)?);
        let bucket = bucket::Bucket::new(url)?;
        bucket.check_writable().await?;
        Ok(Self {
            objects: Arc::new(bucket),
            here,
        })
    }

    /// Where the files are kept: the data dir's path or the bucket's URL.
    pub fn location(&self) -> String {
        self.objects.location()
    }

    /// This machine's data dir.
    pub fn dir(&self) -> &Path {
        self.here.dir()
    }

    /// The folder where uploads are received.
    pub fn uploads_dir(&self) -> PathBuf {
        self.dir().join(UPLOADS)
    }

    /// Where the upload of `id` is received.
    pub fn upload_path(&self, id: &FileId) -> PathBuf {
        self.uploads_dir().join(format!("{id}.upload"))
    }

    /// Keeps the upload of `id`, received at [`FileStore::upload_path`], for
    /// a batch: in a bucket it is streamed up (the received file stays for
    /// its owner to remove); in the data dir it already is where it belongs.
    pub async fn keep_upload(&self, id: &FileId) -> FilesResult<()> {
        self.objects.put_file(&upload_name(id), &self.upload_path(id)).await
    }

    /// Whether a received upload is itself the kept one (the data dir), so
    /// that it must stay once its batch is recorded; with a bucket it is a
    /// copy, removed once streamed up.
    pub fn received_uploads_are_kept(&self) -> bool {
        self.objects.is_local()
    }

    /// The kept upload of `id` as a file the worker can read, if it exists.
    pub async fn kept_upload(&self, id: &FileId) -> FilesResult<Option<LocalFile>> {
        self.objects.local_file(&upload_name(id), &self.upload_path(id)).await
    }

    /// Removes the kept upload of `id` (its file is transcribed), and with a
    /// bucket the copy made for the worker if one was left (by a crash).
    pub async fn remove_upload(&self, id: &FileId) -> FilesResult<bool> {
        let name = upload_name(id);
        if !self.objects.is_local() {
            self.here.delete(&name).await?;
        }
        self.objects.delete(&name).await
    }

    /// Every upload there is: the kept ones, and with a bucket also the
    /// files in this machine's uploads folder (received, or copied for the
    /// worker, by a process that stopped before removing them).
    pub async fn uploads(&self) -> FilesResult<Vec<Upload>> {
        let listed = |l: objects::Listed, here: bool| Upload {
            file_id: upload_id(&l.name),
            modified: l.modified,
            name: format!("{UPLOADS}/{}", l.name),
            here,
        };
        let mut uploads: Vec<Upload> = self
            .objects
            .list(UPLOADS)
            .await?
            .into_iter()
            .map(|l| listed(l, false))
            .collect();
        if !self.objects.is_local() {
            uploads.extend(self.here.list(UPLOADS).await?.into_iter().map(|l| listed(l, true)));
        }
        Ok(uploads)
    }

    /// Removes an upload that [`FileStore::uploads`] listed; whether it was there.
    pub async fn remove_listed(&self, upload: &Upload) -> FilesResult<bool> {
        if upload.here {
            self.here.delete(&upload.name).await
        } else {
            self.objects.delete(&upload.name).await
        }
    }

    /// Whether the store answers now.
    pub async fn check(&self) -> FilesResult<()> {
        self.objects.check().await
    }

    /// Writes the segments, the transcript, then the record (so a record
    /// always has its text and segments).
    pub async fn save(&self, record: &TranscriptionRecord, text: &str, segments: &[Segment]) -> FilesResult<()> {
        let id = &record.file_id;
        let mut json = serde_json::to_vec_pretty(record).map_err(|e| FilesError::Failed(e.to_string()))?;
        json.push(b'\n');
        let segments = serde_json::to_vec(segments).map_err(|e| FilesError::Failed(e.to_string()))?;
        self.objects.put(&segments_name(id), segments).await?;
        self.objects.put(&transcript_name(id), text.as_bytes().to_vec()).await?;
        self.objects.put(&record_name(id), json).await
    }

    /// The timed segments of `id`, if they were kept (transcriptions made
    /// before segments were kept have none).
    pub async fn load_segments(&self, id: &FileId) -> FilesResult<Option<Vec<Segment>>> {
        self.load_json(&segments_name(id)).await
    }

    /// The record of `id`, if it exists.
    pub async fn load_record(&self, id: &FileId) -> FilesResult<Option<TranscriptionRecord>> {
        self.load_json(&record_name(id)).await
    }

    /// Whether the record of `id` exists: the transcription is there for
    /// readers (the record is written last and removed first).
    pub async fn has_record(&self, id: &FileId) -> FilesResult<bool> {
        self.objects.exists(&record_name(id)).await
    }

    /// The transcript of `id`, if it exists.
    pub async fn load_text(&self, id: &FileId) -> FilesResult<Option<String>> {
        match self.objects.get(&transcript_name(id)).await? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| FilesError::Failed(format!("the transcript of {id}: {e}"))),
            None => Ok(None),
        }
    }

    /// Removes the files of `id`: the record first (a transcript without its
    /// record is not there for readers), then the transcript and segments.
    /// Returns whether there was anything to remove.
    pub async fn delete(&self, id: &FileId) -> FilesResult<bool> {
        let mut found = false;
        for name in [record_name(id), transcript_name(id), segments_name(id)] {
            found |= self.objects.delete(&name).await?;
        }
        Ok(found)
    }

    /// The ids of every record.
    pub async fn record_ids(&self) -> FilesResult<Vec<FileId>> {
        let listed = self.objects.list("").await?;
        Ok(listed
            .iter()
            .filter_map(|l| l.name.strip_suffix(".performance.json")?.parse().ok())
            .collect())
    }

    async fn load_json<T: serde::de::DeserializeOwned>(&self, name: &str) -> FilesResult<Option<T>> {
        match self.objects.get(name).await? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| FilesError::Failed(format!("{name}: {e}"))),
            None => Ok(None),
        }
    }
}

/// An upload found by [`FileStore::uploads`].
#[derive(Debug)]
pub struct Upload {
    /// The file it is of, if its name names one.
    pub file_id: Option<FileId>,
    /// When it was written.
    pub modified: SystemTime,
    /// Its name (`uploads/{id}.upload`) among the kept files, or in the data
    /// dir when `here`.
    name: String,
    /// Whether it is a file in this machine's data dir beside a bucket
    /// (received, or copied for the worker), not a kept upload.
    here: bool,
}

/// Creates `dir` and its uploads folder if needed and checks that a file can be written there.
fn prepare_data_dir(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join(UPLOADS))?;
    tempfile::NamedTempFile::new_in(dir)?;
    Ok(dir.to_path_buf())
}

fn transcript_name(id: &FileId) -> String {
    format!("{id}.txt")
}

fn record_name(id: &FileId) -> String {
    format!("{id}.performance.json")
}

fn segments_name(id: &FileId) -> String {
    format!("{id}.segments.json")
}

fn upload_name(id: &FileId) -> String {
    format!("{UPLOADS}/{id}.upload")
}

/// The file id an upload's name (`{id}.upload`) names.
fn upload_id(name: &str) -> Option<FileId> {
    name.strip_suffix(".upload")?.parse().ok()
}
