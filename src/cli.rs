//! `sori transcribe FILE...`: the engine in-process, no server. Each
//! transcript goes to stdout or to `{name}.{ext}` in an output folder; the
//! eight figures of each file, and a summary, go to stderr as a table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::config::TranscribeArgs;
use crate::engine::{
    Engine, EngineSettings, JobOutput, Lane, ProgressSink, Task, TranscribeOptions, WhisperSettings, WhisperTranscriber,
};
use crate::formats::{self, Granularities, ResponseFormat};
use crate::monitor::{GpuProbe, PerformanceMonitor};

/// Exit status: every file transcribed.
pub const EXIT_OK: u8 = 0;
/// Exit status: some file failed (each reason is printed).
pub const EXIT_SOME_FAILED: u8 = 1;
/// Exit status: the command line or the model is unusable.
pub const EXIT_USAGE: u8 = 2;
/// Audio longer than this shows a progress bar.
const PROGRESS_BAR_SEC: f64 = 30.0;

/// Transcribes every file of `args`; returns the exit status.
pub fn run(args: TranscribeArgs) -> u8 {
    let format: ResponseFormat = match args.format.parse() {
        Ok(format) => format,
        Err(message) => return usage(&message),
    };
    if let Some(dir) = &args.output_dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return usage(&format!("cannot create {}: {e}", dir.display()));
        }
    }
    let engine = match start_engine(&args) {
        Ok(engine) => engine,
        Err(message) => return usage(&message),
    };
    let language = args.language.clone().filter(|l| l != "auto");
    if let Some(code) = &language {
        if !crate::engine::is_known_language(code) {
            return usage(&format!("{code:?} is not a Whisper language code; use e.g. en, ko, ja"));
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => return usage(&format!("cannot start: {e}")),
    };
    let mut done: Vec<(String, JobOutput)> = Vec::new();
    let mut failed = 0;
    for path in &args.files {
        let name = path.display().to_string();
        let options = TranscribeOptions {
            language: language.clone(),
            task: Task::Transcribe,
            word_timestamps: args.words || format.wants_words(),
            ..TranscribeOptions::default()
        };
        match runtime.block_on(transcribe_one(&engine, path, options)) {
            Ok(output) => {
                let granularities = Granularities {
                    words: args.words,
                    segments: true,
                };
                let body = formats::render(
                    format,
                    Task::Transcribe,
                    &output.transcript,
                    output.audio_duration_sec,
                    granularities,
                    Some(&serde_json::json!({"performance": output.performance})),
                );
                if let Err(e) = write_transcript(&args.output_dir, path, format, &body) {
                    eprintln!("{name}: cannot write the transcript: {e}");
                    failed += 1;
                    continue;
                }
                print_figures(&name, &output);
                done.push((name, output));
            }
            Err(message) => {
                eprintln!("{name}: failed: {message}");
                failed += 1;
            }
        }
    }
    print_summary(&done, failed);
    if failed > 0 {
        EXIT_SOME_FAILED
    } else {
        EXIT_OK
    }
}

fn usage(message: &str) -> u8 {
    eprintln!("sori transcribe: {message}");
    EXIT_USAGE
}

fn start_engine(args: &TranscribeArgs) -> Result<Engine, String> {
    let offered = args.model.resolve().map_err(|e| format!("{e:#}"))?;
    let [model] = offered.as_slice() else {
        return Err("sori transcribe runs one model; give --model once".into());
    };
    let threads = args.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    );
    let transcriber = WhisperTranscriber::load(
        &model.path,
        &model.name,
        WhisperSettings {
            threads,
            short_audio_context: true,
            gpu_device: args.gpu_device,
        },
    )
    .map_err(|e| format!("loading {}: {}", model.path.display(), e.0))?;
    let monitor = PerformanceMonitor::new(Duration::from_millis(500), GpuProbe::detect());
    Ok(Engine::start(
        Arc::new(transcriber),
        monitor,
        EngineSettings {
            workers: 1,
            batch_workers: 0,
            queue_capacity: 1,
            max_audio_sec: f64::INFINITY,
        },
    ))
}

/// One file through the engine, with a progress bar when it is long.
async fn transcribe_one(engine: &Engine, path: &Path, mut options: TranscribeOptions) -> Result<JobOutput, String> {
    let stated = crate::audio::probe_file(path, f64::INFINITY).map_err(|e| e.to_string())?;
    let bar = stated.filter(|&s| s > PROGRESS_BAR_SEC).map(|seconds| {
        let bar = ProgressBar::new((seconds * 10.0) as u64);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:40}] {percent}% ({elapsed} elapsed, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(path.display().to_string());
        bar
    });
    if let Some(bar) = bar.clone() {
        options.progress = Some(ProgressSink(Arc::new(move |_, covered_sec| {
            bar.set_position((covered_sec * 10.0) as u64);
        })));
    }
    let result = engine.submit(path.to_path_buf(), options, Lane::Request).await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    result.map_err(|e| e.to_string())
}

fn write_transcript(dir: &Option<PathBuf>, path: &Path, format: ResponseFormat, body: &str) -> std::io::Result<()> {
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        out.write_all(body.as_bytes())?;
        if !body.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        return out.flush();
    };
    let stem = path.file_stem().map_or_else(|| "audio".into(), |s| s.to_string_lossy());
    std::fs::write(dir.join(format!("{stem}.{}", format.extension())), body)
}

/// The eight figures of one file, a line each.
fn print_figures(name: &str, output: &JobOutput) {
    let report = &output.performance;
    eprintln!(
        "{name}: {:.1} s of audio, {} words",
        output.audio_duration_sec,
        output.transcript.text.split_whitespace().count()
    );
    for (key, value) in report.eight() {
        eprintln!("  {key:<22}{value:>12.2}");
    }
    eprintln!("  {:<22}{:>12.4}", "cpu_time_sec", report.cpu_time_sec);
}

/// Totals over the files done.
fn print_summary(done: &[(String, JobOutput)], failed: usize) {
    let audio: f64 = done.iter().map(|(_, o)| o.audio_duration_sec).sum();
    let processing: f64 = done.iter().map(|(_, o)| o.performance.processing_time_sec).sum();
    let cpu: f64 = done.iter().map(|(_, o)| o.performance.cpu_time_sec).sum();
    let peak = done.iter().map(|(_, o)| o.performance.ram_mb_peak).fold(0.0, f64::max);
    eprintln!("summary: {} done, {failed} failed", done.len());
    eprintln!("  {:<22}{audio:>12.2}", "audio_sec");
    eprintln!("  {:<22}{processing:>12.2}", "processing_time_sec");
    eprintln!("  {:<22}{cpu:>12.2}", "cpu_time_sec");
    eprintln!("  {:<22}{peak:>12.2}", "ram_mb_peak (max)");
    if processing > 0.0 {
        eprintln!("  {:<22}{:>12.2}", "audio_sec / processing", audio / processing);
    }
}
