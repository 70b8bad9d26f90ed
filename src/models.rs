//! The models a server offers (`--model`, once or more): each runs in a worker
//! pool of its own, started on first use; the first is the default and runs
//! from the start. A request names its model (`model` field); no name, or
//! OpenAI's `whisper-1`, means the default.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::engine::Engine;

/// OpenAI's model name, accepted everywhere for the default model.
pub const OPENAI_ALIAS: &str = "whisper-1";

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

/// A started model: its pool, and how long starting it took.
#[derive(Clone)]
pub struct LoadedModel {
    pub engine: Arc<Engine>,
    /// Seconds its worker processes took to load it.
    pub load_sec: f64,
}

/// The offered models and the pools of those started.
pub struct Models {
    /// In `--model` order; the first is the default.
    offered: Vec<OfferedModel>,
    /// The default model's pool, started with the server and never stopped.
    default: Arc<Engine>,
    /// Started pools by name (the default's too).
    loaded: Mutex<HashMap<String, LoadedModel>>,
    /// Taken while a pool starts, so that one start serves every request
    /// that waits for it.
    starting: tokio::sync::Mutex<()>,
    start: Arc<StartEngine>,
}

impl Models {
    /// `offered` (the first already running in `default`, started in
    /// `default_load_sec`), the others started by `start` when first asked for.
    pub fn new(
        offered: Vec<OfferedModel>,
        default: Arc<Engine>,
        default_load_sec: f64,
        start: Arc<StartEngine>,
    ) -> Self {
        assert!(!offered.is_empty(), "a server offers at least one model");
        let first = LoadedModel {
            engine: default.clone(),
            load_sec: default_load_sec,
        };
        Self {
            loaded: Mutex::new(HashMap::from([(offered[0].name.clone(), first)])),
            offered,
            default,
            starting: tokio::sync::Mutex::new(()),
            start,
        }
    }

    /// One model, already running in `engine` (`sori transcribe`, tests).
    pub fn single(engine: Arc<Engine>) -> Self {
        let model = engine.model();
        let offered = OfferedModel {
            name: model.name.clone(),
            path: PathBuf::new(),
            multilingual: model.multilingual,
        };
        Self::new(
            vec![offered],
            engine,
            0.0,
            Arc::new(|m| anyhow::bail!("{} is the only model", m.name)),
        )
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

    /// The pools started now, by name.
    pub fn loaded(&self) -> Vec<(String, LoadedModel)> {
        let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = loaded.iter().map(|(name, m)| (name.clone(), m.clone())).collect();
        all.sort_by_key(|(name, _)| self.offered.iter().position(|m| &m.name == name));
        all
    }

    /// The pool of model `name`, if it is running.
    pub fn running(&self, name: &str) -> Option<LoadedModel> {
        self.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned()
    }

    /// The pool of `model`, started now if it is not running; whether this
    /// call started it.
    pub async fn engine(&self, model: &OfferedModel) -> Result<(LoadedModel, bool), LoadFailed> {
        if let Some(running) = self.running(&model.name) {
            return Ok((running, false));
        }
        let _starting = self.starting.lock().await;
        if let Some(running) = self.running(&model.name) {
            return Ok((running, false));
        }
        tracing::info!(model = %model.name, path = %model.path.display(), "starting the model's worker processes");
        let began = Instant::now();
        let (start, offered) = (self.start.clone(), model.clone());
        let failed = |reason: String| LoadFailed {
            name: model.name.clone(),
            reason,
        };
        let engine = tokio::task::spawn_blocking(move || start(&offered))
            .await
            .map_err(|e| failed(e.to_string()))?
            .map_err(|e| failed(format!("{e:#}")))?;
        let loaded = LoadedModel {
            engine: Arc::new(engine),
            load_sec: began.elapsed().as_secs_f64(),
        };
        tracing::info!(model = %model.name, load_sec = loaded.load_sec, "the model is ready");
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(model.name.clone(), loaded.clone());
        Ok((loaded, true))
    }
}
