//! The `sori` binary: parses the command line and runs the chosen command.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use sori::batch::store::postgres::PostgresStore;
use sori::config::{Cli, Command, DbCommand, ModelCommand, ServeConfig};
use sori::store::FileStore;
use sori::telemetry;
use sori::{model, server};

/// How long the workers have to stop after the drain (an idle one notices within a second); a job still running then is killed.
const STOP_WORKERS: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Flushes traces when main returns, after the server has stopped.
    let _telemetry = telemetry::init()?;
    match cli.command {
        Command::Serve(config) => serve(*config),
        Command::Model(cmd) => run_model_command(cmd),
        Command::Db(DbCommand::Migrate { database_url }) => migrate(&database_url),
        Command::Transcribe(args) => std::process::exit(i32::from(sori::cli::run(args))),
        Command::Worker(args) => sori::worker::run(args, &_telemetry),
    }
}

fn run_model_command(cmd: ModelCommand) -> anyhow::Result<()> {
    match cmd {
        ModelCommand::Fetch {
            name,
            dest,
            source,
            sha1,
        } => {
            let path = model::fetch::fetch(&name, &dest, &source.model_source, sha1.as_deref())?;
            println!("{}", path.display());
        }
        ModelCommand::List { dest } => print_models(&dest),
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

/// `sori model list`: name, published size, whether PyPI has it, and the file here.
fn print_models(dest: &std::path::Path) {
    println!("{:<22} {:>10}  {:<5} here", "name", "published", "pypi");
    for m in model::fetch::list(dest) {
        let published = m.published_mib.map_or("-".to_string(), |mib| format!("{mib} MiB"));
        let here = m.present.map_or("-".to_string(), |(path, bytes)| {
            format!("{} ({} MiB)", path.display(), bytes / (1024 * 1024))
        });
        let pypi = if m.on_pypi { "yes" } else { "" };
        println!("{:<22} {published:>10}  {pypi:<5} {here}", m.name);
    }
}

/// `sori db migrate`: applies the schema versions the database lacks.
fn migrate(database_url: &str) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let applied = runtime.block_on(async { PostgresStore::connect(database_url)?.migrate().await })?;
    println!("the database schema is up to date ({applied} versions applied now)");
    Ok(())
}

/// Starts the worker processes (each loads the model) and serves until Ctrl-C or SIGTERM.
fn serve(config: ServeConfig) -> anyhow::Result<()> {
    config.validate()?;
    let addr = config.addr()?;
    let vad_model = server::vad_model(&config);
    let models = Arc::new(server::start_models(&config, &vad_model)?);
    let limits = server::http_limits(&config, vad_model)?;
    let grace = Duration::from_secs(config.shutdown_grace_sec);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let offered = models.clone();
    runtime.block_on(async move {
        let store = open_files(&config).await?;
        let settings = server::batch_settings(&config);
        let state = server::assemble(offered, store, config.replica(), limits, &settings).await?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        server::run(listener, state, shutdown_signal(), grace).await
    })?;
    // Blocking tasks still running (a file write, a header check) get a moment, not forever.
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The work in flight had its grace; no worker process outlives the server.
    for (_, running) in models.each() {
        if let Some(running) = running {
            running.engine.stop_workers(STOP_WORKERS);
        }
    }
    Ok(())
}

/// The data dir, or the bucket of `--storage-url` (with the data dir for
/// uploads being received and read).
async fn open_files(config: &ServeConfig) -> anyhow::Result<FileStore> {
    let dir = &config.data_dir;
    match &config.storage_url {
        Some(url) => FileStore::open_bucket(dir, url).await,
        None => FileStore::open(dir).with_context(|| format!("the data dir {} is not writable", dir.display())),
    }
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
