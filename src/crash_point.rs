//! Named points where a test build kills the process on purpose, to prove
//! that a crash at any step of a batch loses nothing and doubles nothing.
//! Built only with `--features crash-points` (as `make test` builds); the
//! process aborts at the point named by `SORI_CRASH_AT`, as `kill -9` would.

/// Aborts the process if this is the point `SORI_CRASH_AT` names.
#[cfg(feature = "crash-points")]
pub fn here(name: &str) {
    if std::env::var("SORI_CRASH_AT").is_ok_and(|point| point == name) {
        eprintln!("sori: crashing on purpose at {name} (SORI_CRASH_AT)");
        std::process::abort();
    }
}

/// Without the `crash-points` feature, nothing.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn here(_name: &str) {}
