//! The server's life in one place: start the engine, assemble the service,
//! serve until the shutdown signal, then drain the work in flight and stop.
//! `sori serve` and the tests build the service through these functions.

use std::future::{Future, IntoFuture};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::batch::{BatchSettings, Batches, Database};
use crate::config::{ServeConfig, WorkerArgs};
use crate::engine::process::WorkerCommand;
use crate::engine::{Engine, EngineSettings};
use crate::models::{ModelLimits, Models, OfferedModel, StartEngine};

use crate::http::{app, ApiKeys, AppState, HttpLimits};
use crate::live::LiveSettings;
use crate::monitor::GpuProbe;
use crate::store::history::History;
use crate::store::FileStore;
use crate::telemetry::metrics;
use crate::transcription::Transcriptions;

/// The nice value of batch workers: the lowest CPU priority, so that requests
/// get the cores first and batch files take what is left.
const BATCH_WORKER_NICE: i32 = 19;

/// How often the metrics recorder drops stale data (its memory grows otherwise).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
/// How long open connections get to close once the work has drained.
const CLOSE_CONNECTIONS: Duration = Duration::from_secs(2);

/// The models `config` offers, the first (the default) started now: its
/// worker processes have loaded it when this returns. The others start on
/// first use and stop when idle (`--model-idle-sec`, `--max-loaded-models`).
/// `vad_model` is Silero VAD's file (see [`vad_model`]), for `vad_filter` jobs.
pub fn start_models(config: &ServeConfig, vad_model: &Path) -> anyhow::Result<Models> {
    let offered = config.model.resolve()?;
    let start = worker_pools(config, vad_model)?;
    let began = Instant::now();
    let default = start(&offered[0])?;
    let limits = ModelLimits {
        idle: Duration::from_secs(config.model_idle_sec),
        max_loaded: config.max_loaded_models.map_or(usize::MAX, |n| n as usize),
    };
    let load_sec = began.elapsed().as_secs_f64();
    Ok(Models::new(offered, Arc::new(default), load_sec, start, limits))
}

/// What starts the worker pool of one model with `config`'s sizes.
fn worker_pools(config: &ServeConfig, vad_model: &Path) -> anyhow::Result<Arc<StartEngine>> {
    let vad_model = vad_model.is_file().then(|| vad_model.to_path_buf());
    let program = std::env::current_exe().context("finding the sori program to start its workers")?;
    let (threads, workers) = (config.threads(), config.workers as usize);
    let (short_audio_context, sample_interval_sec) = (config.short_audio_context, config.sample_interval_sec);
    let gpu_device = config.gpu_device;
    let settings = EngineSettings {
        workers,
        batch_workers: config.batch_workers as usize,
        queue_capacity: config.queue_capacity as usize,
        max_audio_sec: config.max_audio_sec,
    };
    Ok(Arc::new(move |model: &OfferedModel| {
        let worker = WorkerArgs {
            model_path: model.path.clone(),
            model_name: model.name.clone(),
            threads,
            short_audio_context,
            sample_interval_sec,
            max_audio_sec: settings.max_audio_sec,
            vad_model: vad_model.clone(),
            gpu_device,
            nice: 0,
        };
        tracing::info!(
            model = %model.name,
            path = %model.path.display(),
            threads,
            workers,
            batch_workers = settings.batch_workers,
            "starting the worker processes"
        );
        let command = WorkerCommand {
            program: program.clone(),
            args: worker.command_line(),
        };
        let batch_command = WorkerCommand {
            program: program.clone(),
            args: WorkerArgs {
                nice: BATCH_WORKER_NICE,
                ..worker
            }
            .command_line(),
        };
        Ok(Engine::start_processes(
            command,
            batch_command,
            GpuProbe::detect(),
            settings,
        )?)
    }))
}

/// What clients may send and who may send it, from `config`.
/// `vad_model` is Silero VAD's file (see [`vad_model`]).
pub fn http_limits(config: &ServeConfig, vad_model: PathBuf) -> anyhow::Result<HttpLimits> {
    Ok(HttpLimits {
        max_upload_bytes: config.max_upload_mb << 20,
        max_batch_upload_bytes: config.max_batch_upload_mb << 20,
        upload_idle_timeout: Duration::from_secs(config.upload_idle_timeout_sec),
        upload_deadline: Duration::from_secs(config.upload_deadline_sec),
        max_concurrent_uploads: config.max_concurrent_uploads as usize,
        allowed_origins: config.allowed_origins.clone(),
        api_keys: ApiKeys::new(config.all_api_keys()?),
        live: LiveSettings {
            max_sessions: config.max_live_sessions as usize,
            max_utterance_sec: config.live_max_utterance_sec,
            max_pending_sec: config.live_max_pending_sec,
            idle_timeout: Duration::from_secs(config.live_idle_timeout_sec),
            vad_model,
        },
    })
}

/// Silero VAD's file: `--vad-model`, else the model folder's, fetched now
/// when missing (a failure is logged: live sessions then take commits only).
pub fn vad_model(config: &ServeConfig) -> PathBuf {
    if let Some(path) = &config.vad_model {
        return path.clone();
    }
    let dir = &config.model.model_dir;
    let path = crate::model::silero::path_in(dir);
    if config.max_live_sessions > 0 && !path.is_file() {
        if let Err(e) =
            crate::model::fetch::fetch(crate::model::silero::NAME, dir, &config.model.source.model_source, None)
        {
            tracing::warn!(error = %e, "could not fetch the voice-activity model");
        }
    }
    path
}

/// Where batches are kept and how their files are claimed, from `config`.
pub fn batch_settings(config: &ServeConfig) -> BatchSettings {
    BatchSettings {
        database_url: config.database_url.clone(),
        max_attempts: config.max_attempts,
        lease: Duration::from_secs(config.lease_sec),
        retention: config
            .retention_days
            .map(|days| Duration::from_secs(u64::from(days) * 86_400)),
    }
}

/// The service over `models`, keeping its files in `files` as `replica`:
/// the database (PostgreSQL or SQLite in the data dir, opened and settled),
/// the history (brought in line with the records in the data dir), the
/// batches, and what every handler shares. Nothing runs until [`run`], or
/// [`start_background_work`] for a router driven without a socket.
pub async fn assemble(
    models: Arc<Models>,
    files: FileStore,
    replica: String,
    limits: HttpLimits,
    batch: &BatchSettings,
) -> anyhow::Result<AppState> {
    let opening = || match batch.database_url {
        Some(_) => "opening the database in PostgreSQL (--database-url)".to_string(),
        None => format!("opening the database in {}", files.dir().display()),
    };
    tracing::info!(files = %files.location(), "keeping transcripts and records");
    let database = Database::open(batch, &files).await.with_context(opening)?;
    let history = History::new(database.index.clone(), files.clone(), replica.clone());
    let transcriptions = Transcriptions::new(models, files.clone(), replica, history.clone());
    let batches = Batches::open(transcriptions.clone(), database, batch)
        .await
        .with_context(opening)?;
    let (added, removed) = history
        .reconcile()
        .await
        .with_context(|| format!("bringing the history in line with the records in {}", files.location()))?;
    if added + removed > 0 {
        tracing::info!(added, removed, "the history now lists the records in the data dir");
    }
    // One signal every task listens to, and one tracker of the work a shutdown waits for.
    Ok(AppState::new(
        transcriptions,
        Arc::new(batches),
        limits,
        metrics::install(),
        CancellationToken::new(),
        TaskTracker::new(),
    ))
}

/// Starts what runs beside the requests until the state's shutdown: the
/// batch dispatcher and the metrics recorder's upkeep.
pub fn start_background_work(state: &AppState) {
    state.batches.start(state.shutdown.clone(), state.work.clone());
    tokio::spawn(state.transcriptions.models().clone().stop_idle(state.shutdown.clone()));
    let upkeep = state.metrics.clone();
    let stop = state.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(METRICS_UPKEEP);
        while stop.run_until_cancelled(tick.tick()).await.is_some() {
            upkeep.run_upkeep();
        }
    });
}

/// Serves `state` on `listener` until `shutdown` completes. Then readiness
/// turns 503 and new uploads are refused while the work in flight gets
/// `grace` to finish (batch files still running after it resume at the next
/// start); then the listener closes. The worker processes are the caller's
/// to stop ([`Engine::stop_workers`]) once the runtime is done.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> anyhow::Result<()> {
    tracing::info!("sori listening on http://{}", listener.local_addr()?);
    if !state.limits.api_keys.required() && !listener.local_addr()?.ip().is_loopback() {
        tracing::warn!("listening beyond this machine without API keys: anyone who reaches the port can transcribe and read transcripts; set --api-key");
    }
    start_background_work(&state);
    let (stopping, work) = (state.shutdown.clone(), state.work.clone());
    let signal = stopping.clone();
    tokio::spawn(async move {
        shutdown.await;
        signal.cancel();
    });
    // The listener stays open while the work drains, so that /readyz can
    // say 503 and late uploads get a 503 with Retry-After.
    let stop_listening = CancellationToken::new();
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(stop_listening.clone().cancelled_owned());
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        ended = &mut server => return ended?.map_err(anyhow::Error::from),
        _ = stopping.cancelled() => {}
    }
    tracing::info!(
        grace_sec = grace.as_secs(),
        "shutting down: finishing the transcriptions in flight"
    );
    work.close();
    if tokio::time::timeout(grace, work.wait()).await.is_err() {
        tracing::warn!("the grace period ended with work in flight; interrupted batch files resume at the next start");
    }
    stop_listening.cancel();
    if tokio::time::timeout(CLOSE_CONNECTIONS, server).await.is_err() {
        tracing::warn!("connections still open after the drain were closed");
    }
    tracing::info!("sori stopped");
    Ok(())
}
