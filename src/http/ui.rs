//! The web UI: static files built into the binary, so Sori serves its page
//! with no CDN and nothing to install.

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::AppError;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files under `/static/`: path, content type and content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../static/app.js")),
    ("api.js", JS, include_str!("../../static/api.js")),
    ("charts.js", JS, include_str!("../../static/charts.js")),
    ("history.js", JS, include_str!("../../static/history.js")),
    ("i18n.js", JS, include_str!("../../static/i18n.js")),
    ("live.js", JS, include_str!("../../static/live.js")),
    ("live-worklet.js", JS, include_str!("../../static/live-worklet.js")),
    ("view.js", JS, include_str!("../../static/view.js")),
    ("style.css", CSS, include_str!("../../static/style.css")),
    (
        "vendor/uPlot.iife.min.js",
        JS,
        include_str!("../../static/vendor/uPlot.iife.min.js"),
    ),
    (
        "vendor/uPlot.min.css",
        CSS,
        include_str!("../../static/vendor/uPlot.min.css"),
    ),
];

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, HTML)], include_str!("../../static/index.html"))
}

/// `GET /static/{*path}`: one of [`ASSETS`].
pub async fn asset(Path(path): Path<String>) -> Result<impl IntoResponse, AppError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == path)
        .ok_or_else(|| AppError::NotFound(format!("no static file {path:?}")))?;
    Ok(([(header::CONTENT_TYPE, *content_type)], *body))
}
