//! Whisper models: fetching and converting them into whisper.cpp's ggml
//! format, and checking a ggml file before whisper.cpp loads it.

pub mod convert;
pub mod ct2;
pub mod fetch;
pub mod ggml;
pub mod mel;
pub mod vocab;

use std::fs;
use std::path::{Path, PathBuf};

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
    #[error("no model file at {0:?}, and it is not a known model name (known: {known})", known = known_names())]
    Unknown(String),
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

fn known_names() -> String {
    fetch::KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
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
/// known name is fetched into `model_dir` (once; later calls reuse it).
pub fn resolve(model: &str, model_dir: &Path, format: WeightFormat) -> Result<(PathBuf, ModelInfo), ModelError> {
    let as_path = Path::new(model);
    let path = if as_path.is_file() {
        as_path.to_path_buf()
    } else if let Some(known) = fetch::known_model(model) {
        fetch::fetch(known, model_dir, format)?
    } else {
        return Err(ModelError::Unknown(model.to_string()));
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
