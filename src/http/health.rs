//! Liveness and readiness.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::models::Models;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// How long readiness waits for the database to answer.
const DATABASE_CHECK: Duration = Duration::from_secs(2);

/// `GET /readyz`: the model is loaded (`backend` says on which device), every worker is alive (not while a
/// crashed worker process is started again), the database and the file
/// storage answer, and the server is not shutting down (a load balancer
/// stops sending work at once).
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    // The database and storage first: the engine's figures below are read
    // together, with no wait between them, so they describe one moment.
    let (database, storage) = tokio::join!(
        state.batches.check_database(DATABASE_CHECK),
        state.transcriptions.store().check()
    );
    let models = state.transcriptions.models();
    let engine = models.default_engine();
    let (alive, started) = engine.workers_alive();
    let draining = state.shutdown.is_cancelled();
    let ready = alive == started && alive > 0 && !draining && database.is_ok() && storage.is_ok();
    crate::telemetry::metrics::record_ready(ready);
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else if draining { "shutting_down" } else { "not_ready" },
        "database": match &database {
            Ok(()) => "ok".to_string(),
            Err(reason) => reason.clone(),
        },
        "storage": match &storage {
            Ok(()) => "ok".to_string(),
            Err(reason) => reason.to_string(),
        },
        "model": engine.model().name,
        "backend": engine.model().backend,
        "models": models_state(models),
        "workers_alive": alive,
        "workers": started,
        "worker_pids": engine.worker_pids(),
        "worker_restarts": engine.worker_restarts(),
        "queue_depth": engine.queue_depth(),
        "queue_capacity": engine.queue_capacity(),
    });
    (status, Json(body))
}

/// Each offered model: whether its worker processes run, and if so how long
/// they took to start and their state now.
fn models_state(models: &Models) -> Vec<Value> {
    models
        .each()
        .into_iter()
        .map(|(offered, running)| match running {
            Some(running) => {
                let (alive, started) = running.engine.workers_alive();
                json!({
                    "name": offered.name,
                    "loaded": true,
                    "load_sec": running.load_sec,
                    "workers": started,
                    "workers_alive": alive,
                    "worker_pids": running.engine.worker_pids(),
                })
            }
            None => json!({"name": offered.name, "loaded": false}),
        })
        .collect()
}
