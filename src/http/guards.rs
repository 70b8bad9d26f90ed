//! What stands between a client and the handlers: security headers on every
//! answer, a same-origin check on every state-changing request, and the
//! bounds on uploads (how many at once, how long each may take).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::time::Instant;

use super::AppState;
use crate::error::AppError;

/// The page loads only its own script and style, and may not be framed.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Adds the security headers to every answer.
pub async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// Refuses a state-changing request that a browser sends on behalf of
/// another site (a multipart form is a "simple" request: no preflight would
/// stop it). Requests without an `Origin` (curl, SDKs) pass.
pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let changes_state = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes_state {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("(not text)");
            if !origin_allowed(origin, request.headers(), &state.limits.allowed_origins) {
                return AppError::ForbiddenOrigin(origin.to_string()).into_response();
            }
        }
    }
    next.run(request).await
}

/// Whether `origin` is this server's own (the `Host` it was reached at) or configured.
pub(super) fn origin_allowed(origin: &str, headers: &HeaderMap, allowed: &[String]) -> bool {
    if allowed.iter().any(|a| a == "*" || a.trim_end_matches('/') == origin) {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["http://", "https://"]
        .iter()
        .any(|scheme| origin.strip_prefix(scheme) == Some(host))
}

/// `405` with the JSON error body.
pub async fn method_not_allowed(method: Method) -> AppError {
    AppError::MethodNotAllowed(method.to_string())
}

/// Bounds an upload: a slot among `max_concurrent_uploads` (503 when none is
/// free, or when the server is shutting down) held until its body is read,
/// and a deadline for the whole body (408 after it). The request is part of
/// the work a shutdown waits for until it is answered. An answer given before
/// the body was read to its end (a bad field ahead of the file) says
/// `Connection: close`: the connection cannot carry another request, and a
/// client that reused it would find it closed under its next request.
pub async fn limit_uploads(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.shutdown.is_cancelled() {
        return AppError::ShuttingDown.into_response();
    }
    let Ok(slot) = state.upload_slots.clone().try_acquire_owned() else {
        return AppError::TooManyUploads.into_response();
    };
    // Counted until answered: a shutdown waits for it.
    let _in_flight = state.work.token();
    let limit = state.limits.upload_deadline;
    let deadline = Instant::now() + limit;
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let declared: Option<u64> = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let (read, ended) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let (read_in_stream, ended_in_stream) = (read.clone(), ended.clone());
    let flag = expired.clone();
    // The slot lives in the stream: it is given back when the body ends, fails, or is dropped.
    let body = futures_util::stream::unfold(Some((body.into_data_stream(), slot)), move |state| {
        let flag = flag.clone();
        let (read, ended) = (read_in_stream.clone(), ended_in_stream.clone());
        async move {
            let (mut stream, slot) = state?;
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(chunk))) => {
                    read.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    Some((Ok(chunk), Some((stream, slot))))
                }
                Ok(Some(Err(e))) => Some((Err(e), None)),
                Ok(None) => {
                    ended.store(true, Ordering::SeqCst);
                    None
                }
                Err(_) => {
                    flag.store(true, Ordering::SeqCst);
                    let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "upload deadline passed");
                    Some((Err(axum::Error::new(late)), None))
                }
            }
        }
    });
    let mut response = next.run(Request::from_parts(parts, Body::from_stream(body))).await;
    if expired.load(Ordering::SeqCst) {
        response = AppError::UploadTimeout {
            limit_sec: limit.as_secs(),
        }
        .into_response();
    }
    let read_whole =
        ended.load(Ordering::SeqCst) || declared.is_some_and(|length| read.load(Ordering::SeqCst) >= length);
    if !read_whole {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn only_the_servers_own_origin_and_configured_ones_pass() {
        let own = host("localhost:8003");
        assert!(origin_allowed("http://localhost:8003", &own, &[]));
        assert!(!origin_allowed("http://evil.example", &own, &[]));
        assert!(!origin_allowed("http://localhost:8004", &own, &[]));
        assert!(!origin_allowed("null", &own, &[]));
        assert!(!origin_allowed("http://localhost:8003", &HeaderMap::new(), &[]));
        let listed = vec!["https://app.example.com/".to_string()];
        assert!(origin_allowed("https://app.example.com", &own, &listed));
        assert!(origin_allowed("http://anything", &own, &["*".to_string()]));
    }
}
