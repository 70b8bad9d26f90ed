//! `GET /metrics` (Prometheus text format) and the middleware that counts
//! every HTTP request by endpoint and outcome.

use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::telemetry::metrics;

/// How long a scrape waits for the database's count of queued batch files.
const QUEUED_COUNT_LIMIT: Duration = Duration::from_secs(1);

/// Renders every metric, after refreshing the gauges of the present state.
/// The count of queued batch files is NaN while the database does not
/// answer within a second (not a number, rather than a wrong one).
pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let models = state.transcriptions.models();
    metrics::refresh_state(models, models.default_engine().gpu());
    let queued = tokio::time::timeout(QUEUED_COUNT_LIMIT, state.batches.queued()).await;
    metrics::record_batch_files_queued(queued.ok().and_then(Result::ok));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

/// Counts the request and keeps it in the in-flight gauge while it runs.
/// Installed as a route layer: the endpoint label is the route template
/// (`/files/{file_id}`), so ids never become labels.
pub async fn track(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unknown".to_string(), |p| p.as_str().to_string());
    let _in_flight = metrics::in_flight(&endpoint);
    let response = next.run(request).await;
    metrics::record_request(&endpoint, response.status().as_u16());
    response
}
