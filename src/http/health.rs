//! Liveness and readiness.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the model is loaded and every worker is alive.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (alive, started) = state.engine.workers_alive();
    let ready = alive == started && alive > 0;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "model": state.engine.transcriber().model_name(),
        "workers_alive": alive,
        "workers": started,
        "queue_depth": state.engine.queue_depth(),
        "queue_capacity": state.engine.queue_capacity(),
    });
    (status, Json(body))
}
