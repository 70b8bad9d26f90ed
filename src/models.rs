//! The models a server offers (`--model`, once or more): each runs in a worker
//! pool of its own, started on first use and stopped when idle; the first is
//! the default and runs from start to end. A request names its model (`model`
//! field); no name, or OpenAI's `whisper-1`, means the default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::engine::Engine;

/// OpenAI's model name, accepted everywhere for the default model.
pub const OPENAI_ALIAS: &str = "whisper-1";
/// How long a stopped pool's jobs may take to finish (none run: it was idle).
const STOP_IDLE_POOL: Duration = Duration::from_secs(5);

/// A model the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedModel {
    /// The name requests use (`base-q8_0`, or a file's stem).
    pub name: String,
    /// The ggml file.
    pub path: PathBuf,
    /// Whether it knows languages other than English (from the file's header).
    pub multilingual: bool,
}

/// Starts the worker pool of a model (blocking: its processes load it).
pub type StartEngine = dyn Fn(&OfferedModel) -> anyhow::Result<Engine> + Send + Sync;

/// When models other than the default stop.
#[derive(Debug, Clone, Copy)]
pub struct ModelLimits {
    /// A model without requests this long is stopped (`--model-idle-sec`).
    pub idle: Duration,
    /// The most models running at once, the default included (`--max-loaded-models`).
    pub max_loaded: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            max_loaded: usize::MAX,
        }
    }
}

/// A request for a model the server does not offer.
#[derive(Debug, thiserror::Error)]
#[error("the model {requested:?} is not served here; offered: {offered} (or {OPENAI_ALIAS} for {default})")]
pub struct UnknownModel {
    pub requested: String,
    /// The offered names, comma-separated.
    pub offered: String,
    pub default: String,
}

/// A model that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("the model {name} could not be started: {reason}")]
pub struct LoadFailed {
    pub name: String,
    pub reason: String,
}

/// A running model: its pool, how long starting it took, and who uses it.
#[derive(Clone)]
pub struct LoadedModel {
    pub engine: Arc<Engine>,
    /// Seconds its worker processes took to load it.
    pub load_sec: f64,
    /// Requests holding it now (a pool in use is never stopped).
    users: Arc<AtomicUsize>,
    /// When a request last took it.
    last_used: Arc<Mutex<Instant>>,
}

impl LoadedModel {
    fn new(engine: Arc<Engine>, load_sec: f64) -> Self {
        Self {
            engine,
            load_sec,
            users: Arc::new(AtomicUsize::new(0)),
            last_used: Arc::new(Mutex::new(Instant::now())),
        }
    }

    fn idle_for(&self) -> Option<Duration> {
        let unused = self.users.load(Ordering::SeqCst) == 0;
        let last = *self.last_used.lock().unwrap_or_else(|e| e.into_inner());
        unused.then(|| last.elapsed())
    }
}

/// A model taken for one request: its pool stays up while this lives.
pub struct ModelLease {
    pub model: LoadedModel,
    /// Whether this request had to start the model.
    pub started_now: bool,
}

impl Drop for ModelLease {
    fn drop(&mut self) {
        *self.model.last_used.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.model.users.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The offered models and the pools of those running.
pub struct Models {
    /// In `--model` order; the first is the default.
    offered: Vec<OfferedModel>,
    /// The default model's pool, started with the server and never stopped.
    default: Arc<Engine>,
    /// Running pools by name (the default's too).
    loaded: Mutex<HashMap<String, LoadedModel>>,
    /// Taken while a pool starts, so that one start serves every request
    /// that waits for it.
    starting: tokio::sync::Mutex<()>,
    start: Arc<StartEngine>,
    limits: ModelLimits,
    /// Worker restarts of the pools stopped so far (so the total never goes down).
    stopped_restarts: AtomicU64,
}

impl Models {
    /// `offered` (the first already running in `default`, started in
    /// `default_load_sec`), the others started by `start` when first asked
    /// for and stopped as `limits` say.
    pub fn new(
        offered: Vec<OfferedModel>,
        default: Arc<Engine>,
        default_load_sec: f64,
        start: Arc<StartEngine>,
        limits: ModelLimits,
    ) -> Self {
        assert!(!offered.is_empty(), "a server offers at least one model");
        let first = LoadedModel::new(default.clone(), default_load_sec);
        Self {
            loaded: Mutex::new(HashMap::from([(offered[0].name.clone(), first)])),
            offered,
            default,
            starting: tokio::sync::Mutex::new(()),
            start,
            limits,
            stopped_restarts: AtomicU64::new(0),
        }
    }

    /// Worker processes started again after one died, in every pool since the server started.
    pub fn worker_restarts(&self) -> u64 {
        let running: u64 = self.lock().values().map(|m| m.engine.worker_restarts()).sum();
        running + self.stopped_restarts.load(Ordering::SeqCst)
    }

    /// One model, already running in `engine` (`sori transcribe`, tests).
    pub fn single(engine: Arc<Engine>) -> Self {
        let model = engine.model();
        let offered = OfferedModel {
            name: model.name.clone(),
            path: PathBuf::new(),
            multilingual: model.multilingual,
        };
        let only = Arc::new(|m: &OfferedModel| anyhow::bail!("{} is the only model", m.name));
        Self::new(vec![offered], engine, 0.0, only, ModelLimits::default())
    }

    /// Every offered model, the default first.
    pub fn offered(&self) -> &[OfferedModel] {
        &self.offered
    }

    /// The default model's pool (always running).
    pub fn default_engine(&self) -> &Arc<Engine> {
        &self.default
    }

    /// The offered model a request names: `None` or `whisper-1` is the default.
    pub fn find(&self, requested: Option<&str>) -> Result<&OfferedModel, UnknownModel> {
        match requested.map(str::trim).filter(|name| !name.is_empty()) {
            None | Some(OPENAI_ALIAS) => Ok(&self.offered[0]),
            Some(name) => self
                .offered
                .iter()
                .find(|m| m.name == name)
                .ok_or_else(|| UnknownModel {
                    requested: name.to_string(),
                    offered: self
                        .offered
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    default: self.offered[0].name.clone(),
                }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoadedModel>> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every offered model, the default first, with its pool if it is running.
    pub fn each(&self) -> Vec<(&OfferedModel, Option<LoadedModel>)> {
        let loaded = self.lock();
        self.offered.iter().map(|m| (m, loaded.get(&m.name).cloned())).collect()
    }

    /// The pool of model `name`, if it is running.
    pub fn running(&self, name: &str) -> Option<LoadedModel> {
        self.lock().get(name).cloned()
    }

    /// Takes model `name` for one request, if it is running.
    fn lease(&self, name: &str, started_now: bool) -> Option<ModelLease> {
        let loaded = self.lock();
        let model = loaded.get(name)?.clone();
        model.users.fetch_add(1, Ordering::SeqCst);
        Some(ModelLease { model, started_now })
    }

    /// Takes `model` for one request, starting its pool first if it is not
    /// running (stopping the model idle longest first when
    /// `--max-loaded-models` are running).
    pub async fn take(&self, model: &OfferedModel) -> Result<ModelLease, LoadFailed> {
        if let Some(lease) = self.lease(&model.name, false) {
            return Ok(lease);
        }
        let _starting = self.starting.lock().await;
        if let Some(lease) = self.lease(&model.name, false) {
            return Ok(lease);
        }
        let failed = |reason: String| LoadFailed {
            name: model.name.clone(),
            reason,
        };
        if self.lock().len() >= self.limits.max_loaded {
            let Some((name, idle)) = self.idlest(Duration::ZERO) else {
                return Err(failed(format!(
                    "{} models are running, the most --max-loaded-models allows, and every one but the default (which \
                     always runs) is in use; retry when one is done",
                    self.limits.max_loaded
                )));
            };
            self.stop(&name, idle, "to make room for another model").await;
        }
        tracing::info!(model = %model.name, path = %model.path.display(), "starting the model's worker processes");
        let began = Instant::now();
        let (start, offered) = (self.start.clone(), model.clone());
        let engine = tokio::task::spawn_blocking(move || start(&offered))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(format!("{e:#}")))?;
        let loaded = LoadedModel::new(Arc::new(engine), began.elapsed().as_secs_f64());
        tracing::info!(model = %model.name, load_sec = loaded.load_sec, "the model is ready");
        self.lock().insert(model.name.clone(), loaded);
        Ok(self.lease(&model.name, true).expect("just started"))
    }

    /// The model other than the default that no request holds and that has
    /// been idle longest, at least `at_least`.
    fn idlest(&self, at_least: Duration) -> Option<(String, Duration)> {
        let default = &self.offered[0].name;
        self.lock()
            .iter()
            .filter(|(name, _)| *name != default)
            .filter_map(|(name, m)| Some((name.clone(), m.idle_for()?)))
            .filter(|(_, idle)| *idle >= at_least)
            .max_by_key(|(_, idle)| *idle)
    }

    /// Stops model `name`'s pool if no request holds it (new requests start it again).
    async fn stop(&self, name: &str, idle: Duration, why: &str) {
        let removed = {
            let mut loaded = self.lock();
            let unused = loaded.get(name).is_some_and(|m| m.idle_for().is_some());
            if unused {
                loaded.remove(name)
            } else {
                None
            }
        };
        let Some(model) = removed else { return };
        tracing::info!(model = %name, idle_sec = idle.as_secs(), "stopping the model's worker processes {why}");
        let engine = model.engine;
        self.stopped_restarts
            .fetch_add(engine.worker_restarts(), Ordering::SeqCst);
        let _ = tokio::task::spawn_blocking(move || engine.stop_workers(STOP_IDLE_POOL)).await;
    }

    /// Until `shutdown`, stops the pools of models idle for `--model-idle-sec`.
    pub async fn stop_idle(self: Arc<Self>, shutdown: CancellationToken) {
        let every = (self.limits.idle / 2).clamp(Duration::from_millis(500), Duration::from_secs(30));
        let mut tick = tokio::time::interval(every);
        while shutdown.run_until_cancelled(tick.tick()).await.is_some() {
            while let Some((name, idle)) = self.idlest(self.limits.idle) {
                let _starting = self.starting.lock().await;
                self.stop(&name, idle, "after --model-idle-sec without requests").await;
            }
        }
    }
}
