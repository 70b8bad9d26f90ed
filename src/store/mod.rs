//! The data dir: each transcription leaves `{file_id}.txt` (the transcript)
//! and `{file_id}.performance.json` (its record), and beside them
//! `{file_id}.segments.json` (its timed segments, for subtitles), each written atomically;
//! uploads wait in `uploads/{file_id}.upload` until they are transcribed.

pub mod database;
pub mod history;
pub mod record;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use record::{FileId, TranscriptionRecord};

use crate::engine::Segment;

/// The uploads folder inside the data dir.
const UPLOADS: &str = "uploads";

/// Paired transcript and record files in one folder.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Opens (creating if needed) the data dir and its uploads folder, and
    /// checks that they are writable.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join(UPLOADS))?;
        tempfile::NamedTempFile::new_in(dir)?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    /// The folder where uploads wait.
    pub fn uploads_dir(&self) -> PathBuf {
        self.dir.join(UPLOADS)
    }

    /// Where the upload of `id` waits.
    pub fn upload_path(&self, id: &FileId) -> PathBuf {
        self.uploads_dir().join(format!("{id}.upload"))
    }

    /// Whether both files of `id` exist (the record is written last).
    pub fn has_record(&self, id: &FileId) -> bool {
        self.record_path(id).exists()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn transcript_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(format!("{id}.txt"))
    }

    fn record_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(format!("{id}.performance.json"))
    }

    fn segments_path(&self, id: &FileId) -> PathBuf {
        self.dir.join(format!("{id}.segments.json"))
    }

    /// Writes the segments, the transcript, then the record (so a record
    /// always has its text and segments).
    pub fn save(&self, record: &TranscriptionRecord, text: &str, segments: &[Segment]) -> io::Result<()> {
        let mut json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        json.push(b'\n');
        let segments = serde_json::to_vec(segments).map_err(io::Error::other)?;
        write_atomic(&self.segments_path(&record.file_id), &segments)?;
        write_atomic(&self.transcript_path(&record.file_id), text.as_bytes())?;
        write_atomic(&self.record_path(&record.file_id), &json)
    }

    /// The timed segments of `id`, if they were kept (transcriptions made
    /// before segments were kept have none).
    pub fn load_segments(&self, id: &FileId) -> io::Result<Option<Vec<Segment>>> {
        match fs::read(self.segments_path(id)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The record of `id`, if it exists.
    pub fn load_record(&self, id: &FileId) -> io::Result<Option<TranscriptionRecord>> {
        match fs::read(self.record_path(id)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(io::Error::other),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes the files of `id`: the record first (a transcript without its
    /// record is not there for readers), then the transcript and segments.
    /// Returns whether there was anything to remove.
    pub fn delete(&self, id: &FileId) -> io::Result<bool> {
        let mut found = false;
        for path in [self.record_path(id), self.transcript_path(id), self.segments_path(id)] {
            match fs::remove_file(&path) {
                Ok(()) => found = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    /// The ids of every record in the folder.
    pub fn record_ids(&self) -> io::Result<Vec<FileId>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".performance.json")) {
                ids.extend(id.parse::<FileId>().ok());
            }
        }
        Ok(ids)
    }

    /// The transcript of `id`, if it exists.
    pub fn load_text(&self, id: &FileId) -> io::Result<Option<String>> {
        match fs::read_to_string(self.transcript_path(id)) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Writes `bytes` to a temporary file in the same folder, syncs it and renames
/// it over `path`: readers see the old file or the whole new one, never half.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("data files live in a folder");
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
