//! Named points where a test build kills the process on purpose, to prove
//! that a crash at any step of a batch loses nothing and doubles nothing, and
//! that a file which crashes the engine fails alone.
//! Built only with `--features crash-points` (as `make test` builds); the
//! process aborts, as `kill -9` would, at the point named by `SORI_CRASH_AT`,
//! or at a point named by a marker inside the file it is working on.

use std::path::Path;

/// Aborts the process if this is the point `SORI_CRASH_AT` names.
#[cfg(feature = "crash-points")]
pub fn here(name: &str) {
    if std::env::var("SORI_CRASH_AT").is_ok_and(|point| point == name) {
        eprintln!("sori: crashing on purpose at {name} (SORI_CRASH_AT)");
        std::process::abort();
    }
}

/// Aborts the process if the file at `path` holds the bytes
/// `SORI-CRASH-AT:{name}` anywhere: a poison file, which kills every process
/// that reaches this point with it, every time.
#[cfg(feature = "crash-points")]
pub fn here_for_file(name: &str, path: &Path) {
    let marker = format!("SORI-CRASH-AT:{name}");
    let marked = std::fs::read(path).is_ok_and(|bytes| bytes.windows(marker.len()).any(|w| w == marker.as_bytes()));
    if marked {
        eprintln!(
            "sori: crashing on purpose at {name} ({} holds {marker})",
            path.display()
        );
        std::process::abort();
    }
}

/// Without the `crash-points` feature, nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn here(_name: &str) {}

/// Without the `crash-points` feature, nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn here_for_file(_name: &str, _path: &Path) {}
