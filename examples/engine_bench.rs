//! Sori's engine in-process, without HTTP, for `scripts/compare_peers.py`: loads a
//! model once, then for each audio path read from stdin runs what a worker
//! runs (decode, resample, inference, inside a monitor session) and prints one
//! JSON line with the wall time, the text and what the run cost.
//!
//! `--sample-interval-sec 0` runs without any monitoring, which is how the
//! benchmark measures what the PerformanceMonitor itself costs; `--words`
//! times every word, which is how BENCHMARKS.md measures what words cost.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use sori::audio;
use sori::engine::{
    return_large_blocks_when_freed, TranscribeOptions, Transcriber, WhisperSettings, WhisperTranscriber,
};
use sori::monitor::{process, GpuProbe, PerformanceMonitor};

#[derive(Parser)]
struct Args {
    /// A ggml model file.
    #[arg(long)]
    model: PathBuf,
    /// Compute threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The monitor's sampling interval; 0 turns monitoring off.
    #[arg(long, default_value_t = 0.5)]
    sample_interval_sec: f64,
    /// Time every word (what `timestamp_granularities[]=word` and subtitles cost).
    #[arg(long)]
    words: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // As the server's engine does.
    return_large_blocks_when_freed();
    let settings = WhisperSettings {
        threads: args.threads,
        short_audio_context: true,
        gpu_device: None,
    };
    let transcriber = Arc::new(WhisperTranscriber::load(&args.model, "bench", settings)?);
    let monitor = (args.sample_interval_sec > 0.0)
        .then(|| PerformanceMonitor::new(Duration::from_secs_f64(args.sample_interval_sec), GpuProbe::absent()));
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let path = line?;
        let (cpu_before, sampler_before) = (process::cpu_time_sec(), sampler_cpu_sec());
        let started = Instant::now();
        let session = monitor.as_ref().map(PerformanceMonitor::start);
        let mut stream = audio::AudioStream::open_file(Path::new(path.trim()), f64::INFINITY)?;
        let options = TranscribeOptions {
            word_timestamps: args.words,
            ..TranscribeOptions::default()
        };
        let transcript = transcriber.transcribe(&mut stream, &options)?;
        let sample_count = session.map_or(0, |s| s.finish().sample_count);
        let wall = started.elapsed().as_secs_f64();
        let answer = serde_json::json!({
            "wall": wall,
            "text": transcript.text,
            "peak_mb": process::peak_rss_bytes().unwrap_or(0) as f64 / 1_048_576.0,
            "cpu_sec": process::cpu_time_sec() - cpu_before,
            "sampler_cpu_sec": sampler_cpu_sec() - sampler_before,
            "sample_count": sample_count,
        });
        writeln!(out, "{answer}")?;
        out.flush()?;
    }
    Ok(())
}

/// CPU seconds the monitor's sampler thread has used so far (0 without one),
/// from the scheduler's nanosecond account in /proc.
fn sampler_cpu_sec() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .flatten()
        .filter(|task| std::fs::read_to_string(task.path().join("comm")).is_ok_and(|c| c.trim() == "sori-monitor"))
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .fold(0.0, |total, ns| total + ns / 1e9)
}
