//! Building an app for tests and talking to it with tower's `oneshot`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use sori::batch::BatchSettings;
use sori::engine::{Engine, EngineSettings, Transcriber};
use sori::models::Models;
use sori::monitor::{GpuProbe, PerformanceMonitor};
use sori::store::FileStore;
use sori::{AppState, HttpLimits};

/// Limits of a test app.
pub struct TestLimits {
    pub workers: usize,
    pub queue_capacity: usize,
    pub max_audio_sec: f64,
    pub max_upload_bytes: u64,
    /// PostgreSQL for the batches; `None`: SQLite in the data dir.
    pub database_url: Option<String>,
}

impl Default for TestLimits {
    fn default() -> Self {
        Self {
            workers: 1,
            queue_capacity: 4,
            max_audio_sec: 600.0,
            max_upload_bytes: 64 << 20,
            database_url: None,
        }
    }
}

/// An app over `transcriber` writing into `data_dir`.
pub async fn test_app(
    transcriber: Arc<dyn Transcriber>,
    data_dir: &std::path::Path,
    limits: TestLimits,
) -> (Router, AppState) {
    let monitor = PerformanceMonitor::new(Duration::from_millis(100), GpuProbe::detect());
    let engine = Engine::start(
        transcriber,
        monitor,
        EngineSettings {
            workers: limits.workers,
            batch_workers: 0,
            queue_capacity: limits.queue_capacity,
            max_audio_sec: limits.max_audio_sec,
        },
    );
    let store = FileStore::open(data_dir).unwrap();
    let http = HttpLimits {
        max_upload_bytes: limits.max_upload_bytes,
        max_batch_upload_bytes: limits.max_upload_bytes * 4,
        ..HttpLimits::default()
    };
    let batch = BatchSettings {
        database_url: limits.database_url,
        max_attempts: 2,
        lease: Duration::from_secs(30),
        retention: None,
    };
    let models = Arc::new(Models::single(Arc::new(engine)));
    let state = sori::server::assemble(models, store, "test".into(), http, &batch)
        .await
        .unwrap();
    sori::server::start_background_work(&state);
    (sori::app(state.clone()), state)
}

/// One multipart part: (field name, file name, bytes).
pub type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A multipart/form-data POST.
pub fn multipart_request(uri: &str, parts: &[Part]) -> Request<Body> {
    let boundary = "sori-test-boundary-7d9f";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                    .as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Request::post(uri)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .header("content-length", body.len())
        .body(Body::from(body))
        .unwrap()
}

/// A transcription request for one file (and an optional language).
pub fn transcribe_request(filename: &str, bytes: &[u8], language: Option<&str>) -> Request<Body> {
    let mut parts: Vec<Part> = vec![("file", Some(filename), bytes)];
    if let Some(lang) = language {
        parts.push(("language", None, lang.as_bytes()));
    }
    multipart_request("/transcribe", &parts)
}

/// Sends a request; returns the status, the headers and the body as JSON (or a string).
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}

/// Reads `GET /batch/{id}` until the batch is complete, and returns it;
/// panics after `limit`.
pub async fn wait_complete(app: &Router, batch_id: &str, limit: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, _, body) = send(app, get(&format!("/batch/{batch_id}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] == "complete" {
            return body;
        }
        assert!(started.elapsed() < limit, "batch never completed: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A GET request.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// Files in the data dir besides the batch database, its lock and the uploads
/// folder, sorted; the uploads folder must be empty (nothing is left behind).
pub fn data_files(dir: &std::path::Path) -> Vec<String> {
    let uploads: Vec<_> = std::fs::read_dir(dir.join("uploads")).unwrap().collect();
    assert!(uploads.is_empty(), "uploads left behind: {uploads:?}");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("sori.db") && name != "sori.lock" && name != "uploads")
        .collect();
    names.sort();
    names
}

/// Asserts the JSON error body and returns its code.
pub fn error_code(body: &Value) -> String {
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.len() > 10, "an actionable message: {body}");
    body["error"]["code"].as_str().expect("error.code").to_string()
}
