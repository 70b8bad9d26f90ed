//! The `sori` binary: parses the command line and runs the chosen command.

use std::sync::Arc;
use std::time::Duration;

use std::future::IntoFuture;

use anyhow::Context;
use clap::Parser;
use sori::batch::Batches;
use sori::config::{Cli, Command, ModelCommand, ServeConfig, WorkerArgs};
use sori::engine::process::WorkerCommand;
use sori::engine::{Engine, EngineSettings};
use sori::http::ApiKeys;
use sori::model;
use sori::monitor::GpuProbe;
use sori::store::FileStore;
use sori::telemetry::{self, metrics};
use sori::transcription::Transcriptions;
use sori::HttpLimits;
use sori::{app, AppState};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the metrics recorder drops stale data (its memory grows otherwise).
const METRICS_UPKEEP: Duration = Duration::from_secs(5);
/// How long open connections get to close once the work has drained.
const CLOSE_CONNECTIONS: Duration = Duration::from_secs(2);
/// How long the workers have to stop after the drain (an idle one notices within a second); a job still running then is killed.
const STOP_WORKERS: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Flushes traces when main returns, after the server has stopped.
    let _telemetry = telemetry::init()?;
    match cli.command {
        Command::Serve(config) => serve(config),
        Command::Model(cmd) => run_model_command(cmd),
        Command::Transcribe(args) => std::process::exit(i32::from(sori::cli::run(args))),
        Command::Worker(args) => sori::worker::run(args, &_telemetry),
    }
}

fn run_model_command(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch { name, dest, quantize } => {
            let known = model::fetch::known_model(&name).ok_or_else(|| model::ModelError::Unknown(name.clone()))?;
            let path = model::fetch::fetch(known, &dest, quantize)?;
            println!("{}", path.display());
        }
        ModelCommand::ImportCt2 { dir, out, quantize } => {
            model::import_ct2_dir(&dir, &out, quantize)?;
            println!("{}", out.display());
        }
        ModelCommand::Check { path } => {
            let info = model::check_file(&path)?;
            println!("{}: {:?}, {} tensors", path.display(), info.hparams, info.tensor_count);
        }
    }
    Ok(())
}

/// Starts the worker processes (each loads the model) and serves until Ctrl-C or SIGTERM.
fn serve(config: ServeConfig) -> anyhow::Result<()> {
    config.validate()?;
    let addr = config.addr()?;
    let (model_path, info) = config.model.resolve()?;
    let threads = config.threads();
    let store = FileStore::open(&config.data_dir)
        .with_context(|| format!("the data dir {} is not writable", config.data_dir.display()))?;
    let worker = WorkerArgs {
        model_path,
        model_name: model_display_name(&config.model.model),
        threads,
        short_audio_context: config.short_audio_context,
        sample_interval_sec: config.sample_interval_sec,
        max_audio_sec: config.max_audio_sec,
    };
    tracing::info!(path = %worker.model_path.display(), hparams = ?info.hparams, threads, workers = config.workers, "starting the worker processes");
    let command = WorkerCommand {
        program: std::env::current_exe().context("finding the sori program to start its workers")?,
        args: worker.command_line(),
    };
    let engine = Engine::start_processes(
        command,
        GpuProbe::detect(),
        EngineSettings {
            workers: config.workers as usize,
            queue_capacity: config.queue_capacity as usize,
            max_audio_sec: config.max_audio_sec,
        },
    )?;
    let engine = Arc::new(engine);
    let transcriptions = Transcriptions::new(engine.clone(), store);
    let batches = Batches::open(transcriptions.clone(), config.max_attempts)
        .with_context(|| format!("opening the batch database in {}", config.data_dir.display()))?;
    let limits = HttpLimits {
        max_upload_bytes: config.max_upload_mb << 20,
        max_batch_upload_bytes: config.max_batch_upload_mb << 20,
        upload_idle_timeout: Duration::from_secs(config.upload_idle_timeout_sec),
        upload_deadline: Duration::from_secs(config.upload_deadline_sec),
        max_concurrent_uploads: config.max_concurrent_uploads as usize,
        allowed_origins: config.allowed_origins.clone(),
        api_keys: ApiKeys::new(config.all_api_keys()?),
    };
    if !limits.api_keys.required() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "listening beyond this machine without API keys: anyone who reaches the port can transcribe and read transcripts; set --api-key");
    }
    // One signal every task listens to, and one tracker of the work a shutdown waits for.
    let shutdown = CancellationToken::new();
    let work = TaskTracker::new();
    let state = AppState::new(
        transcriptions,
        Arc::new(batches),
        limits,
        metrics::install(),
        shutdown.clone(),
        work.clone(),
    );
    let grace = Duration::from_secs(config.shutdown_grace_sec);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!("sori listening on http://{}", listener.local_addr()?);
        state.batches.start(shutdown.clone(), work.clone());
        let upkeep_handle = state.metrics.clone();
        let upkeep_stop = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP);
            while upkeep_stop.run_until_cancelled(tick.tick()).await.is_some() {
                upkeep_handle.run_upkeep();
            }
        });
        let signal = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            signal.cancel();
        });
        // The listener stays open while the work drains, so that /readyz can
        // say 503 and late uploads get a 503 with Retry-After.
        let stop_listening = CancellationToken::new();
        let server = axum::serve(listener, app(state)).with_graceful_shutdown(stop_listening.clone().cancelled_owned());
        let mut server = tokio::spawn(server.into_future());
        tokio::select! {
            ended = &mut server => return ended?.map_err(anyhow::Error::from),
            _ = shutdown.cancelled() => {}
        }
        tracing::info!(
            grace_sec = grace.as_secs(),
            "shutting down: finishing the transcriptions in flight"
        );
        work.close();
        if tokio::time::timeout(grace, work.wait()).await.is_err() {
            tracing::warn!(
                "the grace period ended with work in flight; interrupted batch files resume at the next start"
            );
        }
        stop_listening.cancel();
        if tokio::time::timeout(CLOSE_CONNECTIONS, server).await.is_err() {
            tracing::warn!("connections still open after the drain were closed");
        }
        tracing::info!("sori stopped");
        anyhow::Ok(())
    })?;
    // Blocking tasks still running (a file write, a header check) get a moment, not forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The work in flight had its grace; no worker process outlives the server.
    engine.stop_workers(STOP_WORKERS);
    Ok(())
}

/// The name shown for a model: a known name as given, a file by its stem.
fn model_display_name(model: &str) -> String {
    if model::fetch::known_model(model).is_some() {
        return model.to_string();
    }
    let stem = std::path::Path::new(model)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(model);
    stem.strip_prefix("ggml-").unwrap_or(stem).to_string()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
