//! Plain whisper.cpp in-process, for `scripts/compare_peers.py`: the same
//! vendored whisper.cpp build and weights as Sori, called the way its own
//! examples call it (one `whisper_full` over the whole clip, library defaults:
//! 30 s windows, its temperature fallback, flash attention as it defaults),
//! without any of Sori's engine work (sized contexts, pieces, lanes, its own
//! spectrogram). It loads a model once, then for each audio path read from
//! stdin decodes the file with Sori's decoder (inside the timing, as in Sori's
//! engine bench), transcribes it and prints one JSON line.

use std::ffi::{CStr, CString};
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use sori::audio;
use sori::monitor::process;
use whisper_rs_sys as sys;

#[derive(Parser)]
struct Args {
    /// A ggml model file.
    #[arg(long)]
    model: PathBuf,
    /// Compute threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The spoken language, or `auto` to detect it.
    #[arg(long, default_value = "en")]
    language: String,
}

/// Silences whisper.cpp's own logging (it prints every stage to stderr).
unsafe extern "C" fn quiet(_level: sys::ggml_log_level, _text: *const std::ffi::c_char, _data: *mut std::ffi::c_void) {}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = CString::new(args.model.as_os_str().as_bytes())?;
    let language = CString::new(args.language.as_str())?;
    // SAFETY: plain C calls; the context lives until the end of main, the
    // strings for every call that reads them.
    let context = unsafe {
        sys::whisper_log_set(Some(quiet), std::ptr::null_mut());
        sys::whisper_init_from_file_with_params(path.as_ptr(), sys::whisper_context_default_params())
    };
    anyhow::ensure!(
        !context.is_null(),
        "whisper.cpp could not load {}",
        args.model.display()
    );
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let cpu_before = process::cpu_time_sec();
        let started = Instant::now();
        let samples = audio::prepare(std::fs::read(line.trim())?.into(), f64::INFINITY)?.samples;
        // SAFETY: as above; `samples` outlives the call, and the segments are
        // read before the next one.
        let text = unsafe {
            let mut params = sys::whisper_full_default_params(sys::whisper_sampling_strategy_WHISPER_SAMPLING_GREEDY);
            params.n_threads = args.threads as i32;
            params.language = language.as_ptr();
            // As every peer in the benchmark: no conditioning on the previous window's text.
            params.no_context = true;
            params.print_progress = false;
            params.print_realtime = false;
            params.print_timestamps = false;
            params.print_special = false;
            let status = sys::whisper_full(context, params, samples.as_ptr(), samples.len() as i32);
            anyhow::ensure!(status == 0, "whisper_full failed ({status})");
            (0..sys::whisper_full_n_segments(context))
                .map(|i| {
                    CStr::from_ptr(sys::whisper_full_get_segment_text(context, i))
                        .to_string_lossy()
                        .into_owned()
                })
                .collect::<String>()
        };
        let answer = serde_json::json!({
            "wall": started.elapsed().as_secs_f64(),
            "text": text.trim(),
            "peak_mb": process::peak_rss_bytes().unwrap_or(0) as f64 / 1_048_576.0,
            "cpu_sec": process::cpu_time_sec() - cpu_before,
        });
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    // SAFETY: the context is not used after this.
    unsafe { sys::whisper_free(context) };
    Ok(())
}
