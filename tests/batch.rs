//! Batches with the real model: the lifecycle, the summary maths against the
//! files' own figures, Server-Sent Events, sharing the workers with single
//! requests, and resuming after `kill -9`; each on SQLite and on PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use common::http::*;
use common::postgres::Database;
use common::server::Server;
use common::*;
use serde_json::Value;

on_each_database!(
    sync: [
        server_sent_events_follow_the_batch_to_completion,
        single_requests_are_served_while_a_batch_runs,
        a_batch_resumes_after_kill_9_without_losing_or_repeating_files,
        #[cfg(feature = "crash-points")]
        a_crash_at_every_step_of_a_batch_loses_nothing_and_doubles_nothing,
    ],
    async: [a_batch_runs_to_completion_and_its_summary_adds_up, batch_requests_are_checked],
);

/// A test app over tiny.en whose batches live in `database`.
async fn app_on(database: &Database, dir: &std::path::Path) -> axum::Router {
    let limits = TestLimits {
        database_url: database.url(),
        ..TestLimits::default()
    };
    test_app(transcriber("tiny.en"), dir, limits).await.0
}

async fn a_batch_runs_to_completion_and_its_summary_adds_up(database: Database) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&database, dir.path()).await;
    let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let mp3 = std::fs::read(fixture_audio("jfk.mp3")).unwrap();
    let request = multipart_request(
        "/batch",
        &[
            ("file", Some("jfk.wav"), &wav),
            ("file", Some("speech.mp3"), &mp3),
            ("file", Some("notes.wav"), b"plain text, not audio"),
            ("language", None, b"en"),
        ],
    );
    let (status, _, created) = send(&app, request).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{created}");
    assert_eq!(created["progress"]["total"], 3);
    assert_eq!(created["language"], "en");
    let batch_id = created["batch_id"].as_str().unwrap().to_string();

    let batch = wait_complete(&app, &batch_id, Duration::from_secs(180)).await;
    let files = batch["files"].as_array().unwrap();
    let names: Vec<&str> = files.iter().map(|f| f["filename"].as_str().unwrap()).collect();
    assert_eq!(names, ["jfk.wav", "speech.mp3", "notes.wav"], "files keep their order");
    for done in &files[..2] {
        assert_eq!(done["status"], "done", "{done}");
        assert_eq!(done["language"], "en");
        assert!((done["audio_duration_sec"].as_f64().unwrap() - 11.0).abs() < 0.2);
        assert!((20..=24).contains(&done["word_count"].as_u64().unwrap()));
        assert_eq!(done["processing_time_sec"], done["performance"]["processing_time_sec"]);
        // Each done file left its paired files, under its own id.
        let id = done["file_id"].as_str().unwrap();
        let text = std::fs::read_to_string(dir.path().join(format!("{id}.txt"))).unwrap();
        assert!(
            words(&text)
                .join(" ")
                .contains("ask not what your country can do for you"),
            "{text}"
        );
        assert!(dir.path().join(format!("{id}.performance.json")).exists());
    }
    assert_eq!(files[2]["status"], "failed");
    assert!(
        files[2]["error"].as_str().unwrap().contains("not audio"),
        "{}",
        files[2]
    );
    assert_eq!(batch["progress"]["done"], 2);
    assert_eq!(batch["progress"]["failed"], 1);
    // A file's upload is deleted right after its row is marked done.
    let finished = Instant::now();
    while std::fs::read_dir(dir.path().join("uploads")).unwrap().count() > 0 {
        assert!(
            finished.elapsed() < Duration::from_secs(5),
            "uploads are removed once finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The summary, checked against the files' own figures.
    let (status, _, summary) = send(&app, get(&format!("/batch/{batch_id}/summary"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (summary["count_done"].as_u64(), summary["count_failed"].as_u64()),
        (Some(2), Some(1))
    );
    let audio: f64 = files[..2]
        .iter()
        .map(|f| f["audio_duration_sec"].as_f64().unwrap())
        .sum();
    let processing: f64 = files[..2]
        .iter()
        .map(|f| f["processing_time_sec"].as_f64().unwrap())
        .sum();
    assert!((summary["total_audio_sec"].as_f64().unwrap() - audio).abs() < 1e-3);
    assert!((summary["total_processing_sec"].as_f64().unwrap() - processing).abs() < 1e-3);
    assert!((summary["throughput_audio_sec_per_sec"].as_f64().unwrap() - audio / processing).abs() < 1e-3);
    for key in EIGHT {
        let values: Vec<f64> = files[..2]
            .iter()
            .map(|f| f["performance"][key].as_f64().unwrap())
            .collect();
        let stat = &summary["metrics"][key];
        let (lo, hi) = (
            values.iter().cloned().fold(f64::MAX, f64::min),
            values.iter().cloned().fold(f64::MIN, f64::max),
        );
        assert_eq!(stat["min"].as_f64().unwrap(), lo, "{key}");
        assert_eq!(stat["max"].as_f64().unwrap(), hi, "{key}");
        assert_eq!(
            stat["p95"].as_f64().unwrap(),
            hi,
            "{key}: p95 of two values is the larger"
        );
        assert!(
            (stat["mean"].as_f64().unwrap() - (values[0] + values[1]) / 2.0).abs() < 1e-3,
            "{key}"
        );
    }
    assert_eq!(summary["files"].as_array().unwrap().len(), 2);

    let (_, _, list) = send(&app, get("/batches")).await;
    assert_eq!(list[0]["batch_id"], batch_id.as_str());
    assert_eq!(list[0]["progress"]["total"], 3);
}

async fn batch_requests_are_checked(database: Database) {
    let dir = tempfile::tempdir().unwrap();
    let app = app_on(&database, dir.path()).await;
    let (status, _, body) = send(&app, multipart_request("/batch", &[("language", None, b"en")])).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "missing_file")
    );
    let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let with_bad_language = multipart_request("/batch", &[("file", Some("a.wav"), &wav), ("language", None, b"xx")]);
    let (status, _, body) = send(&app, with_bad_language).await;
    assert_eq!(
        (status, error_code(&body).as_str()),
        (StatusCode::BAD_REQUEST, "unknown_language")
    );
    for uri in [
        "/batch/nope",
        "/batch/00000000-0000-4000-8000-000000000000",
        "/batch/00000000-0000-4000-8000-000000000000/summary",
    ] {
        let (status, _, body) = send(&app, get(uri)).await;
        assert_eq!(
            (status, error_code(&body).as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("uploads")).unwrap().count(),
        0,
        "refused batches leave no uploads"
    );
}

fn post_batch(server: &Server, files: usize) -> String {
    let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let files: Vec<_> = (0..files).map(|i| (format!("clip-{i}.wav"), wav.clone())).collect();
    server.post_batch(&files)
}

fn batch(server: &Server, id: &str) -> Value {
    reqwest::blocking::get(server.url(&format!("/batch/{id}")))
        .unwrap()
        .json()
        .unwrap()
}

fn server_sent_events_follow_the_batch_to_completion(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &database.env());
    let id = post_batch(&server, 2);
    let events = server.follow_events(&id, Duration::from_secs(120)).join().unwrap();
    let (first, last) = (&events[0], events.last().unwrap());
    assert_eq!(first.0, "batch", "the whole batch first");
    assert_eq!(first.1["files"].as_array().unwrap().len(), 2);
    // Between them, one small event per change: the file that changed and the progress.
    let changes: Vec<&Value> = events[1..events.len() - 1]
        .iter()
        .map(|(n, v)| {
            assert_eq!(n, "file", "{v}");
            assert!(v.get("files").is_none(), "a change does not carry the whole batch: {v}");
            v
        })
        .collect();
    assert!(changes.len() >= 2, "each file's start and end: {}", changes.len());
    let done: Vec<u64> = events
        .iter()
        .map(|(_, v)| v["progress"]["done"].as_u64().unwrap())
        .collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "progress only grows: {done:?}");
    assert!(changes
        .iter()
        .any(|c| c["file"]["status"] == "done" && c["file"]["performance"].is_object()));
    assert_eq!(last.0, "batch", "the stream ends with the complete batch");
    assert_eq!(last.1["status"], "complete");
    assert_eq!(last.1["progress"]["done"], 2);
}

fn single_requests_are_served_while_a_batch_runs(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        &model_path("tiny.en"),
        data.path(),
        &["--workers", "1"],
        &database.env(),
    );
    let id = post_batch(&server, 6);
    std::thread::sleep(Duration::from_millis(300));
    // The database's queue, as Prometheus sees it (the autoscaling signal),
    // read between two reads of the batch: within what they say.
    let before = batch(&server, &id)["progress"]["queued"].as_u64().unwrap();
    let queued = batch_files_queued(&server);
    let after = batch(&server, &id)["progress"]["queued"].as_u64().unwrap();
    assert!((after..=before).contains(&queued), "{after} <= {queued} <= {before}");
    assert!(before >= 3, "{before} files waiting");
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let (status, body) = server.transcribe("single.wav", jfk, &[]);
    assert_eq!(status, 200, "{body}");
    let progress = &batch(&server, &id)["progress"];
    assert!(
        progress["done"].as_u64().unwrap() < 6,
        "the single request did not wait for the whole batch: {progress}"
    );
    server.wait_batch_complete(&id, Duration::from_secs(120));
    assert_eq!(batch_files_queued(&server), 0);
}

/// `sori_batch_files_queued` from `/metrics`.
fn batch_files_queued(server: &Server) -> u64 {
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("sori_batch_files_queued "))
        .unwrap_or_else(|| panic!("no sori_batch_files_queued in:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

fn a_batch_resumes_after_kill_9_without_losing_or_repeating_files(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let model = model_path("tiny.en");
    let mut server = Server::start(&model, data.path(), &[], &database.env());
    let id = post_batch(&server, 5);
    let started = Instant::now();
    while batch(&server, &id)["progress"]["done"].as_u64().unwrap() < 1 {
        assert!(started.elapsed() < Duration::from_secs(60), "no file finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    server.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.child.wait().unwrap();
    drop(server);

    // The same folder, spelled another way: the uploads are found by their ids.
    let server = Server::start(&model, &data.path().join("."), &[], &database.env());
    let finished = server.wait_batch_complete(&id, Duration::from_secs(120));
    assert_eq!(finished["progress"]["done"], 5, "{finished}");
    assert_eq!(finished["progress"]["failed"], 0, "{finished}");
    let ids: Vec<&str> = finished["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap())
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 5, "five distinct files");
    for file_id in ids {
        let text = database.file(data.path(), &format!("{file_id}.txt")).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(words(&text).join(" ").contains("ask not what your country"), "{text}");
    }
    let pairs = database
        .file_names(data.path(), "")
        .iter()
        .filter(|name| name.ends_with(".performance.json"))
        .count();
    assert_eq!(pairs, 5, "one record per file, none twice");
    assert_eq!(database.file_names(data.path(), "uploads"), Vec::<String>::new());
    let list: Value = reqwest::blocking::get(server.url("/batches")).unwrap().json().unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
}

/// The kept records (data dir or bucket), by file name, with their contents.
#[cfg(feature = "crash-points")]
fn records(database: &Database, dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    database
        .file_names(dir, "")
        .into_iter()
        .filter(|name| name.ends_with(".performance.json"))
        .map(|name| {
            let text = String::from_utf8(database.file(dir, &name).unwrap()).unwrap();
            (name, text)
        })
        .collect()
}

/// For each step of a batch file's life, a process killed right after it
/// (`abort`, as `kill -9`): the next start loses no file, transcribes none
/// twice, keeps one record per file, and leaves no upload behind.
#[cfg(feature = "crash-points")]
fn a_crash_at_every_step_of_a_batch_loses_nothing_and_doubles_nothing(database: Database) {
    let model = model_path("tiny.en");
    let mut seen = Vec::new();
    for point in ["batch_recorded", "files_written", "result_recorded"] {
        let data = tempfile::tempdir().unwrap();
        let mut env = database.env();
        env.push(("SORI_CRASH_AT", point.to_string()));
        let mut server = Server::start(&model, data.path(), &[], &env);
        let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
        let form = (0..2).fold(reqwest::blocking::multipart::Form::new(), |form, i| {
            form.part(
                "file",
                reqwest::blocking::multipart::Part::bytes(wav.clone()).file_name(format!("clip-{i}.wav")),
            )
        });
        // At `batch_recorded` the process dies before it answers.
        let answer = server.send_batch(form);
        assert_eq!(answer.is_err(), point == "batch_recorded", "{point}: {answer:?}");
        let started = Instant::now();
        while server.child.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(60), "{point}: no crash");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(server);
        let before = records(&database, data.path());
        // And an upload whose request never finished, two days ago (no batch
        // file needs it; a replica sharing the folder leaves younger ones).
        // An S3 server dates its objects itself: this machine's uploads
        // folder takes the orphan then (the bucket's are in tests/storage.rs).
        let orphan = data.path().join("uploads/00000000-0000-4000-8000-000000000000.upload");
        std::fs::write(&orphan, b"half an upload").unwrap();
        let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
        std::fs::File::options()
            .write(true)
            .open(&orphan)
            .unwrap()
            .set_modified(two_days_ago)
            .unwrap();

        let server = Server::start(&model, data.path(), &[], &database.env());
        // (PostgreSQL keeps the batches of the points before.)
        let list: Value = reqwest::blocking::get(server.url("/batches")).unwrap().json().unwrap();
        let new: Vec<String> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["batch_id"].as_str().unwrap().to_string())
            .filter(|id| !seen.contains(id))
            .collect();
        assert_eq!(new.len(), 1, "{point}: the batch is whole: {list}");
        let id = new[0].clone();
        seen.push(id.clone());
        let finished = server.wait_batch_complete(&id, Duration::from_secs(120));
        assert_eq!(finished["progress"]["done"], 2, "{point}: {finished}");
        // (A bucket keeps the records of the points before.)
        let this_batch = |name: &String| {
            finished["files"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| name.starts_with(f["file_id"].as_str().unwrap()))
        };
        let after: std::collections::BTreeMap<_, _> = records(&database, data.path())
            .into_iter()
            .filter(|(name, _)| this_batch(name))
            .collect();
        assert_eq!(after.len(), 2, "{point}: one record per file");
        for (name, written) in before.iter().filter(|(name, _)| this_batch(name)) {
            assert_eq!(&after[name], written, "{point}: {name} was not transcribed again");
        }
        for file in finished["files"].as_array().unwrap() {
            let name = format!("{}.performance.json", file["file_id"].as_str().unwrap());
            let record: Value = serde_json::from_str(&after[&name]).unwrap();
            assert_eq!(
                file["performance"]["processing_time_sec"], record["performance"]["processing_time_sec"],
                "{point}: the row holds the record's figures"
            );
        }
        assert_eq!(
            database.file_names(data.path(), "uploads"),
            Vec::<String>::new(),
            "{point}: no upload left, the orphan swept"
        );
    }
}
