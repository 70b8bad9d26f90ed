//! Bad input gets a clear 4xx and leaves nothing behind; a full queue gets a
//! 503 at once; the server keeps serving. The recognizer here is a stand-in
//! (the routing and the errors are under test, not the model); audio decoding
//! is real.

mod common;

use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use common::http::*;
use common::*;
use sori::engine::{AudioBlocks, Backend, JobError, Segment, TranscribeOptions, Transcriber, Transcript};

/// Answers with a fixed sentence; optionally waits until released.
#[derive(Default)]
struct StandIn {
    english_only: bool,
    gate: Option<Arc<(Mutex<bool>, Condvar)>>,
}

impl Transcriber for StandIn {
    fn model_name(&self) -> &str {
        "stand-in"
    }

    fn is_multilingual(&self) -> bool {
        !self.english_only
    }

    fn backend(&self) -> &Backend {
        static CPU: LazyLock<Backend> = LazyLock::new(|| Backend::cpu("stand-in"));
        &CPU
    }

    fn transcribe(&self, audio: &mut AudioBlocks<'_>, _: &TranscribeOptions) -> Result<Transcript, JobError> {
        let mut samples = 0;
        for block in audio {
            samples += block?.len();
        }
        if let Some(gate) = &self.gate {
            let (open, cv) = &**gate;
            let mut open = open.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
        }
        let end = samples as f64 / 16_000.0;
        let text = "stand in words".to_string();
        Ok(Transcript {
            segments: vec![Segment {
                start: 0.0,
                end,
                text: text.clone(),
                words: Vec::new(),
                decoding: Default::default(),
            }],
            text,
            language: "en".into(),
        })
    }
}

fn jfk() -> Vec<u8> {
    std::fs::read(fixture_audio("jfk.wav")).unwrap()
}

async fn expect_error(
    app: &axum::Router,
    request: axum::http::Request<axum::body::Body>,
    status: StatusCode,
    code: &str,
) {
    let (got, _, body) = send(app, request).await;
    assert_eq!(got, status, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
}

#[tokio::test]
async fn malformed_uploads_get_clear_client_errors_and_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    let mut random = vec![0u8; 200_000];
    let mut x = 0x2545F4914F6CDD1Du64;
    for b in random.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }

    expect_error(
        &app,
        multipart_request("/transcribe", &[("language", None, b"en")]),
        StatusCode::BAD_REQUEST,
        "missing_file",
    )
    .await;
    let no_multipart = axum::http::Request::post("/transcribe")
        .body(axum::body::Body::from("hello"))
        .unwrap();
    expect_error(&app, no_multipart, StatusCode::BAD_REQUEST, "invalid_request").await;
    let two = multipart_request(
        "/transcribe",
        &[("file", Some("a.wav"), &wav), ("file", Some("b.wav"), &wav)],
    );
    expect_error(&app, two, StatusCode::BAD_REQUEST, "too_many_files").await;
    expect_error(
        &app,
        transcribe_request("empty.wav", b"", None),
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_audio",
    )
    .await;
    let text = b"This is a text file pretending to be a WAV.\n".repeat(20);
    expect_error(
        &app,
        transcribe_request("notes.wav", &text, None),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media",
    )
    .await;
    expect_error(
        &app,
        transcribe_request("noise.wav", &random, None),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media",
    )
    .await;
    expect_error(
        &app,
        transcribe_request("cut.wav", &wav[..30], None),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media",
    )
    .await;
    // A well-formed WAV with no samples at all.
    expect_error(
        &app,
        transcribe_request("header-only.wav", &wav_bytes(&[], 16_000, 1), None),
        StatusCode::UNPROCESSABLE_ENTITY,
        "empty_audio",
    )
    .await;
    expect_error(
        &app,
        transcribe_request("a.wav", &wav, Some("klingon")),
        StatusCode::BAD_REQUEST,
        "unknown_language",
    )
    .await;

    assert!(
        data_files(dir.path()).is_empty(),
        "failed requests wrote {:?}",
        data_files(dir.path())
    );

    // The server keeps serving, and a good request leaves exactly its files:
    // the pair and its segments.
    let (status, _, body) = send(&app, transcribe_request("jfk.wav", &wav, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["file_id"].as_str().unwrap();
    assert_eq!(
        data_files(dir.path()),
        vec![
            format!("{id}.performance.json"),
            format!("{id}.segments.json"),
            format!("{id}.txt")
        ]
    );
}

#[tokio::test]
async fn a_wav_shorter_than_its_header_claims_is_transcribed_as_far_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    let (status, _, body) = send(&app, transcribe_request("partial.wav", &wav[..wav.len() / 2], None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let duration = body["audio_duration_sec"].as_f64().unwrap();
    assert!((duration - 5.5).abs() < 0.1, "half of 11 s decoded: {body}");
    // The answer says that the file is cut, and how much of it was there.
    let warning = &body["warnings"][0];
    assert_eq!(warning["code"], "truncated", "{body}");
    assert!(
        (warning["declared_sec"].as_f64().unwrap() - 11.0).abs() < 0.01,
        "{body}"
    );
    assert_eq!(warning["decoded_sec"].as_f64(), Some(duration), "{body}");
    let id = body["file_id"].as_str().unwrap();
    let (_, _, record) = send(&app, get(&format!("/files/{id}"))).await;
    assert_eq!(record["warnings"], body["warnings"], "the record keeps the warning");

    // The first 3,000 bytes of an 11 s file: 0.09 s, and a warning that says so.
    let (status, _, body) = send(&app, transcribe_request("cut.wav", &wav[..3_000], None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["warnings"][0]["code"], "truncated", "{body}");
    assert!(body["warnings"][0]["decoded_sec"].as_f64().unwrap() < 0.1, "{body}");

    // A whole file has none.
    let (_, _, body) = send(&app, transcribe_request("jfk.wav", &wav, None)).await;
    assert_eq!(body["warnings"], serde_json::json!([]), "{body}");
}

#[tokio::test]
async fn limits_on_size_and_duration_are_4xx() {
    let dir = tempfile::tempdir().unwrap();
    let limits = TestLimits {
        max_audio_sec: 5.0,
        max_upload_bytes: 256 << 10,
        ..TestLimits::default()
    };
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), limits).await;
    let wav = jfk();
    expect_error(
        &app,
        transcribe_request("big.wav", &wav, None),
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    )
    .await;
    expect_error(
        &app,
        transcribe_request("long.wav", &wav[..200_000], None),
        StatusCode::UNPROCESSABLE_ENTITY,
        "audio_too_long",
    )
    .await;
    // A WAV whose header states 3 s (its own length) is within the limit.
    let samples: Vec<i16> = wav[44..100_000]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let short = wav_bytes(&samples, 16_000, 1);
    let (status, _, body) = send(&app, transcribe_request("short.wav", &short, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn english_only_models_refuse_other_languages() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(
        Arc::new(StandIn {
            english_only: true,
            gate: None,
        }),
        dir.path(),
        TestLimits::default(),
    )
    .await;
    let wav = jfk();
    expect_error(
        &app,
        transcribe_request("a.wav", &wav, Some("ko")),
        StatusCode::BAD_REQUEST,
        "unsupported_language",
    )
    .await;
    let (status, _, _) = send(&app, transcribe_request("a.wav", &wav, Some("en"))).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_503_with_retry_after_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let stand_in = StandIn {
        english_only: false,
        gate: Some(gate.clone()),
    };
    let limits = TestLimits {
        workers: 1,
        queue_capacity: 1,
        ..TestLimits::default()
    };
    let (app, state) = test_app(Arc::new(stand_in), dir.path(), limits).await;
    let wav = jfk();

    let running = tokio::spawn({
        let (app, wav) = (app.clone(), wav.clone());
        async move { send(&app, transcribe_request("1.wav", &wav, None)).await }
    });
    wait_until(|| state.transcriptions.models().default_engine().workers_busy() == 1).await;
    let queued = tokio::spawn({
        let (app, wav) = (app.clone(), wav.clone());
        async move { send(&app, transcribe_request("2.wav", &wav, None)).await }
    });
    wait_until(|| state.transcriptions.models().default_engine().queue_depth() == 1).await;

    let refused = tokio::time::timeout(
        Duration::from_secs(2),
        send(&app, transcribe_request("3.wav", &wav, None)),
    )
    .await
    .expect("a full queue answers at once");
    assert_eq!(refused.0, StatusCode::SERVICE_UNAVAILABLE, "{}", refused.2);
    assert_eq!(error_code(&refused.2), "queue_full");
    let retry: u64 = refused.1["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry >= 1);

    // Under /v1 the same full queue is OpenAI's 429 (which its clients retry),
    // streamed or not: a stream is refused before its events begin.
    for stream in ["false", "true"] {
        let parts: Vec<Part> = vec![
            ("file", Some("4.wav"), &wav[..]),
            ("model", None, b"whisper-1"),
            ("stream", None, stream.as_bytes()),
        ];
        let (status, headers, body) = send(&app, multipart_request("/v1/audio/transcriptions", &parts)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "stream={stream}: {body}");
        assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
        assert_eq!(body["error"]["code"], "queue_full", "{body}");
        assert!(headers.contains_key("retry-after"));
    }

    let (_, ready_body) = {
        let (s, _, b) = send(&app, get("/readyz")).await;
        (s, b)
    };
    assert_eq!(ready_body["queue_depth"], 1);

    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert_eq!(running.await.unwrap().0, StatusCode::OK);
    assert_eq!(queued.await.unwrap().0, StatusCode::OK);
    assert_eq!(data_files(dir.path()).len(), 6, "two transcriptions, three files each");
}

async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..200 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached in 2 s");
}

#[tokio::test]
async fn file_ids_never_reach_outside_the_data_dir() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    std::fs::write(parent.path().join("secret.performance.json"), "{}").unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), &data, TestLimits::default()).await;
    for uri in [
        "/files/..%2Fsecret",
        "/files/..%2F..%2Fetc%2Fpasswd",
        "/files/%2E%2E",
        "/files/not-an-id",
        "/files/00000000-0000-4000-8000-000000000000",
        "/files/00000000-0000-4000-8000-000000000000/text",
        "/files/ABCDEF00-0000-4000-8000-000000000000",
    ] {
        let (status, _, body) = send(&app, get(uri)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}: {body}");
        assert_eq!(error_code(&body), "not_found");
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(
        Arc::new(StandIn::default()),
        dir.path(),
        TestLimits {
            workers: 2,
            ..TestLimits::default()
        },
    )
    .await;
    let (status, _, body) = send(&app, get("/healthz")).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (status, _, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["workers_alive"].as_u64(), body["model"].as_str()),
        (Some(2), Some("stand-in"))
    );
    let (status, _, body) = send(&app, get("/nope")).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

/// A 16-bit mono PCM WAV header that states `rate` and `data_bytes`, followed
/// by `samples` of silence (a file shorter or longer than it claims).
fn wav_claiming(rate: u32, data_bytes: u32, samples: usize) -> Vec<u8> {
    let mut wav = wav_bytes(&vec![0i16; samples], rate, 1);
    wav[4..8].copy_from_slice(&(36 + data_bytes).to_le_bytes());
    wav[40..44].copy_from_slice(&data_bytes.to_le_bytes());
    wav
}

#[tokio::test]
async fn impossible_sample_rates_are_refused_with_the_rate_named() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    // Rate 0 made symphonia panic (500); 1 Hz made 100 "seconds" of 200 samples;
    // 4 GHz made no seconds at all.
    for (rate, name) in [(0u32, "zero"), (1, "one-hertz"), (4_000_000_000, "four-gigahertz")] {
        let bytes = wav_claiming(rate, 200, 100);
        let (status, _, body) = send(&app, transcribe_request(&format!("{name}.wav"), &bytes, None)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {body}");
        assert_eq!(error_code(&body), "unsupported_media");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("{rate} Hz")),
            "{name}: the rate is named: {message}"
        );
    }
    // A batch holding a rate-0 file beside a good one: the bad one fails alone.
    let good = jfk();
    let bad = wav_claiming(0, 200, 100);
    let request = multipart_request(
        "/batch",
        &[("file", Some("bad.wav"), &bad), ("file", Some("good.wav"), &good)],
    );
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["files"][0]["status"], "failed", "{body}");
    assert!(body["files"][0]["error"].as_str().unwrap().contains("0 Hz"), "{body}");
    let id = body["batch_id"].as_str().unwrap();
    let batch = wait_complete(&app, id, Duration::from_secs(4)).await;
    assert_eq!(batch["files"][1]["status"], "done", "{batch}");
}

#[tokio::test]
async fn a_header_that_states_more_than_the_limit_is_refused_before_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let limits = TestLimits {
        max_audio_sec: 3600.0,
        ..TestLimits::default()
    };
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), limits).await;
    // Four hours stated, one second sent.
    let bytes = wav_claiming(16_000, 4 * 3600 * 16_000 * 2, 16_000);
    let (status, _, body) = send(&app, transcribe_request("meeting.wav", &bytes, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "audio_too_long");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("14400 s") && message.contains("3600 s"), "{message}");
    // In a batch it is refused at upload, alone.
    let request = multipart_request("/batch", &[("file", Some("meeting.wav"), &bytes)]);
    let (status, _, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["files"][0]["status"], "failed", "{body}");
    assert!(data_files(dir.path()).is_empty());
}

#[tokio::test]
async fn every_error_has_the_json_body_and_every_answer_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    for (request, status, code) in [
        (get("/transcribe"), StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        (
            axum::http::Request::delete("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (get("/no/such/path"), StatusCode::NOT_FOUND, "not_found"),
        (get("/static/no-such.js"), StatusCode::NOT_FOUND, "not_found"),
        (get("/static/../Cargo.toml"), StatusCode::NOT_FOUND, "not_found"),
    ] {
        let (got, headers, body) = send(&app, request).await;
        assert_eq!((got, error_code(&body).as_str()), (status, code), "{body}");
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-content-type-options"], "nosniff");
    }
    let (status, headers, _) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(
        policy.contains("default-src 'self'") && policy.contains("frame-ancestors 'none'"),
        "{policy}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    // The page's scripts and styles, each with its type (nosniff would refuse a wrong one).
    for (path, content_type) in [
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/history.js", "text/javascript; charset=utf-8"),
        ("/static/vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, _) = send(&app, get(path)).await;
        assert_eq!(
            (status, &headers["content-type"]),
            (StatusCode::OK, &content_type.parse().unwrap()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn uploads_from_other_sites_are_refused_and_the_servers_own_page_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    let from = |origin: &str| {
        let mut request = transcribe_request("jfk.wav", &wav, None);
        let headers = request.headers_mut();
        headers.insert("host", "localhost:8003".parse().unwrap());
        headers.insert("origin", origin.parse().unwrap());
        request
    };
    for origin in ["http://evil.example", "null", "http://localhost:9999"] {
        let (status, _, body) = send(&app, from(origin)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin}: {body}");
        assert_eq!(error_code(&body), "forbidden_origin");
    }
    assert!(data_files(dir.path()).is_empty(), "a refused upload writes nothing");
    let (status, _, body) = send(&app, from("http://localhost:8003")).await;
    assert_eq!(status, StatusCode::OK, "the page's own origin: {body}");
    let (status, _, body) = send(&app, transcribe_request("jfk.wav", &wav, None)).await;
    assert_eq!(status, StatusCode::OK, "no Origin (curl, SDKs): {body}");
}

/// A client that goes away while its batch is being recorded leaves the whole
/// batch (every queued file with its upload) or nothing (no upload left), at
/// whatever moment it goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_request_dropped_at_any_moment_leaves_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // Transcription never starts, so files stay queued and keep their uploads.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let stand_in = StandIn {
        english_only: false,
        gate: Some(gate.clone()),
    };
    let (app, state) = test_app(Arc::new(stand_in), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    let files: Vec<Part> = (0..40).map(|_| ("file", Some("clip.wav"), &wav[..])).collect();
    let uploads = dir.path().join("uploads");
    let mut outcomes = (0, 0);
    // From dropped at once to dropped after the answer: stop once both were seen often.
    for delay_ms in (0..1_000).step_by(3) {
        if outcomes.0 >= 5 {
            break;
        }
        let before: Vec<_> = std::fs::read_dir(&uploads)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let request = multipart_request("/batch", &files);
        let app = app.clone();
        let task = tokio::spawn(async move { send(&app, request).await });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        task.abort();
        let _ = task.await;
        // Let a blocking step that was already running finish.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now: Vec<_> = std::fs::read_dir(&uploads)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let new_uploads = now.iter().filter(|p| !before.contains(p)).count();
        let batches = state.batches.recent(1000).await.unwrap();
        let recorded = batches.len() > outcomes.0;
        if recorded {
            let batch = state.batches.batch(batches[0].batch_id).await.unwrap().unwrap();
            assert_eq!(batch.files.len(), 40, "{delay_ms} ms: a whole batch");
            let waiting = batch.files.iter().filter(|f| f.status.as_str() != "failed").count();
            assert_eq!(
                new_uploads, waiting,
                "{delay_ms} ms: every queued file keeps its upload"
            );
            outcomes.0 += 1;
        } else {
            assert_eq!(new_uploads, 0, "{delay_ms} ms: nothing recorded, so nothing left");
            outcomes.1 += 1;
        }
    }
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    assert!(
        outcomes.0 > 0 && outcomes.1 > 0,
        "requests dropped before and after they were recorded: {outcomes:?}"
    );
}

#[tokio::test]
async fn text_fields_are_bounded_and_unknown_fields_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    let huge = vec![b'e'; 10 << 20];
    let request = multipart_request(
        "/transcribe",
        &[("language", None, &huge), ("file", Some("a.wav"), &wav)],
    );
    expect_error(&app, request, StatusCode::BAD_REQUEST, "invalid_request").await;
    let request = multipart_request("/batch", &[("language", None, &huge), ("file", Some("a.wav"), &wav)]);
    expect_error(&app, request, StatusCode::BAD_REQUEST, "invalid_request").await;
    let request = multipart_request("/transcribe", &[("notes", None, &huge), ("file", Some("a.wav"), &wav)]);
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "an unknown field is read past: {body}");
    assert_eq!(
        headers.get("connection"),
        None,
        "a body read whole leaves the connection open"
    );
}

#[tokio::test]
async fn an_answer_given_before_the_body_is_read_closes_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), TestLimits::default()).await;
    let wav = jfk();
    // A bad value ahead of the file: refused before the file is read. The
    // body comes in pieces, as from a socket.
    let request = multipart_request(
        "/v1/audio/transcriptions",
        &[
            ("model", None, b"whisper-1"),
            ("temperature", None, b"hot"),
            ("file", Some("a.wav"), &wav),
        ],
    );
    let (parts, whole) = request.into_parts();
    let bytes = http_body_util::BodyExt::collect(whole).await.unwrap().to_bytes();
    let pieces: Vec<Result<bytes::Bytes, std::io::Error>> = bytes
        .chunks(8192)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    // Each piece after a wait, so the parser cannot take the whole body at once.
    let arriving = futures_util::StreamExt::then(futures_util::stream::iter(pieces), |piece| async {
        tokio::task::yield_now().await;
        piece
    });
    let streamed = axum::body::Body::from_stream(arriving);
    let request = axum::http::Request::from_parts(parts, streamed);
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        headers.get("connection").map(|v| v.to_str().unwrap()),
        Some("close"),
        "a client must not send its next request on a connection with unread bytes"
    );
    let request = multipart_request(
        "/v1/audio/transcriptions",
        &[("model", None, b"whisper-1"), ("file", Some("a.wav"), &wav)],
    );
    let (status, headers, body) = send(&app, request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers.get("connection"), None);
}

#[tokio::test]
async fn audio_that_states_no_length_is_cut_off_at_the_limit_while_decoding() {
    let dir = tempfile::tempdir().unwrap();
    let limits = TestLimits {
        max_audio_sec: 5.0,
        ..TestLimits::default()
    };
    let (app, _) = test_app(Arc::new(StandIn::default()), dir.path(), limits).await;
    // JFK (11 s) as FLAC whose STREAMINFO says "length unknown" (0 samples).
    let tmp = tempfile::tempdir().unwrap();
    let flac = tmp.path().join("unknown-length.flac");
    sox(&[fixture_audio("jfk.wav").to_str().unwrap(), flac.to_str().unwrap()]);
    let mut bytes = std::fs::read(&flac).unwrap();
    let packed = u64::from_be_bytes(bytes[18..26].try_into().unwrap());
    bytes[18..26].copy_from_slice(&(packed & !((1u64 << 36) - 1)).to_be_bytes());
    let (status, _, body) = send(&app, transcribe_request("unknown-length.flac", &bytes, None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error_code(&body), "audio_too_long");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("longer than the 5 s"),
        "{body}"
    );
    assert!(data_files(dir.path()).is_empty());
    // Within the limit, the same kind of file transcribes.
    let limits = TestLimits::default();
    let (app, _) = test_app(Arc::new(StandIn::default()), tmp.path().join("data").as_path(), limits).await;
    let (status, _, body) = send(&app, transcribe_request("unknown-length.flac", &bytes, None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        (body["audio_duration_sec"].as_f64().unwrap() - 11.0).abs() < 0.01,
        "{body}"
    );
}
