//! Multipart uploads streamed to the data folder's `uploads/`, never held in
//! memory: the one way both `/transcribe` and `/batch` receive audio.

use std::path::{Path, PathBuf};

use axum::extract::multipart::{Field, Multipart, MultipartError, MultipartRejection};
use axum::http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::error::AppError;
use crate::store::{FileId, FileStore};

/// Longest file name kept, in characters.
const MAX_FILENAME_CHARS: usize = 255;
/// Longest value of a short text field (`language`, `model`), bytes.
pub const SHORT_FIELD_BYTES: usize = 256;

/// An upload on disk, deleted when dropped unless [`SpooledUpload::keep`] was called.
#[derive(Debug)]
pub struct SpooledUpload {
    path: PathBuf,
    keep: bool,
}

impl SpooledUpload {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the file in place (it belongs to a recorded batch now).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for SpooledUpload {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The multipart form of an upload, or 400 saying how to send one; `fields`
/// names the file fields it needs (`a field named file`).
pub fn multipart_form(multipart: Result<Multipart, MultipartRejection>, fields: &str) -> Result<Multipart, AppError> {
    multipart.map_err(|e| {
        AppError::bad_request(
            "invalid_request",
            format!("send the audio as multipart/form-data with {fields} ({e})"),
        )
    })
}

/// How a multipart error reads: too large (naming `what` and its limit) or malformed.
pub fn multipart_error(e: MultipartError, what: &str, limit_bytes: u64) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge {
            what: what.to_string(),
            limit_mb: limit_bytes >> 20,
        }
    } else {
        AppError::bad_request(
            "invalid_multipart",
            format!("the multipart body could not be read: {}", e.body_text()),
        )
    }
}

/// Streams one file field to `path`, never holding more than a chunk in
/// memory; refuses it once it passes `limit_bytes`. A failure leaves no file.
pub async fn spool_field(
    mut field: Field<'_>,
    path: PathBuf,
    limit_bytes: u64,
    body_what: &str,
    body_limit_bytes: u64,
) -> Result<SpooledUpload, AppError> {
    let name = clean_filename(field.file_name().unwrap_or("upload"));
    let io_error = |e: std::io::Error| AppError::Internal(format!("saving an upload: {e}"));
    // Created here, not on a blocking thread: a request dropped while the file
    // was being created could otherwise leave it behind after its guard was gone.
    let file = std::fs::File::create(&path).map_err(io_error)?;
    let upload = SpooledUpload { path, keep: false };
    let mut out = tokio::fs::File::from_std(file);
    let mut size = 0u64;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(e, body_what, body_limit_bytes))?
    {
        size += chunk.len() as u64;
        if size > limit_bytes {
            return Err(AppError::PayloadTooLarge {
                what: format!("the file {name:?}"),
                limit_mb: limit_bytes >> 20,
            });
        }
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.flush().await.map_err(io_error)?;
    Ok(upload)
}

/// A file field received: the id its transcription will have, the client's
/// name for it (cleaned), and the upload on disk.
pub struct ReceivedFile {
    pub file_id: FileId,
    pub filename: String,
    pub audio: SpooledUpload,
}

/// Spools a file field into `store`'s uploads under a new file id.
pub async fn receive_file(
    field: Field<'_>,
    store: &FileStore,
    limit_bytes: u64,
    body_what: &str,
    body_limit_bytes: u64,
) -> Result<ReceivedFile, AppError> {
    let file_id = FileId::new();
    let filename = clean_filename(field.file_name().unwrap_or("upload"));
    let path = store.upload_path(&file_id);
    let audio = spool_field(field, path, limit_bytes, body_what, body_limit_bytes).await?;
    Ok(ReceivedFile {
        file_id,
        filename,
        audio,
    })
}

/// Receives the one `file` field of a single upload into `slot`; a second one is refused.
pub async fn receive_single_file(
    slot: &mut Option<ReceivedFile>,
    field: Field<'_>,
    store: &FileStore,
    limit_bytes: u64,
) -> Result<(), AppError> {
    if slot.is_some() {
        return Err(AppError::bad_request(
            "too_many_files",
            "send one field named file per request",
        ));
    }
    *slot = Some(receive_file(field, store, limit_bytes, "the upload", limit_bytes).await?);
    Ok(())
}

/// The file of a single upload, or 400 `missing_file`.
pub fn required_file(slot: Option<ReceivedFile>) -> Result<ReceivedFile, AppError> {
    slot.ok_or_else(|| {
        AppError::bad_request(
            "missing_file",
            "the form has no field named file; send the audio as -F file=@recording.wav",
        )
    })
}

/// The last path component of a client's file name, at most 255 characters,
/// without control characters (browsers may send `C:\fakepath\x.wav`).
pub fn clean_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or(raw);
    let cleaned: String = base
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_FILENAME_CHARS)
        .collect();
    if cleaned.trim().is_empty() {
        "upload".into()
    } else {
        cleaned
    }
}

/// A form field's text, trimmed; `None` when empty. At most `max_bytes` are
/// held: a longer value is refused.
pub async fn text_field(
    mut field: Field<'_>,
    max_bytes: usize,
    body_what: &str,
    body_limit_bytes: u64,
) -> Result<Option<String>, AppError> {
    let name = field.name().unwrap_or("?").to_string();
    let mut bytes = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(e, body_what, body_limit_bytes))?
    {
        if bytes.len() + chunk.len() > max_bytes {
            return Err(AppError::bad_request(
                "invalid_request",
                format!("the field {name} is longer than {max_bytes} bytes; send a shorter value"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let value = String::from_utf8(bytes)
        .map_err(|_| AppError::bad_request("invalid_request", format!("the field {name} is not UTF-8 text")))?;
    let value = value.trim();
    Ok((!value.is_empty()).then(|| value.to_string()))
}

/// Reads a field Sori does not use to its end, holding nothing of it.
pub async fn skip_field(mut field: Field<'_>, body_what: &str, body_limit_bytes: u64) -> Result<(), AppError> {
    while field
        .chunk()
        .await
        .map_err(|e| multipart_error(e, body_what, body_limit_bytes))?
        .is_some()
    {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::clean_filename;

    #[test]
    fn file_names_keep_only_their_last_component() {
        assert_eq!(clean_filename("C:\\fakepath\\talk.wav"), "talk.wav");
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("a\u{0}b\nc.wav"), "abc.wav");
        assert_eq!(clean_filename("/"), "upload");
        assert_eq!(clean_filename(&"x".repeat(1000)).chars().count(), 255);
        assert_eq!(clean_filename("회의 녹음.m4a"), "회의 녹음.m4a");
    }
}
