//! Files in a real S3-compatible bucket (moto's server, `make test-tools`):
//! what a server leaves in the bucket and on its own disk, the orphan uploads
//! swept at start, and a bucket that goes away and comes back (readiness,
//! 503 with Retry-After, and a batch that finishes with nothing lost). The
//! batch, history and deletion tests also run on a bucket
//! (`on_postgres_and_bucket`), as do three replicas with no shared folder.

mod common;

use std::time::{Duration, Instant};

use common::s3::S3;
use common::server::Server;
use common::*;
use serde_json::Value;

fn jfk() -> Vec<u8> {
    std::fs::read(fixture_audio("jfk.wav")).unwrap()
}

/// A server on SQLite with its files in `s3`'s bucket.
fn server(s3: &S3, data: &std::path::Path) -> Server {
    Server::start(&model_path("tiny.en"), data, &[], &s3.env())
}

/// Waits until `/readyz` answers `status`; returns its body.
fn wait_ready(server: &Server, status: u16) -> Value {
    let started = Instant::now();
    loop {
        let (now, body) = server.readiness();
        if now == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "readiness stayed {now}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A single upload leaves its three objects in the bucket and nothing on
/// the server's disk but the database; every read of it comes from the
/// bucket; an upload no batch file needs is removed at start.
#[test]
fn results_live_in_the_bucket_and_orphan_uploads_are_swept() {
    let s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    let orphan = "uploads/00000000-0000-4000-8000-000000000000.upload";
    s3.put(orphan, b"half an upload from a process that stopped");
    let server = server(&s3, data.path());
    assert_eq!(s3.names("uploads"), Vec::<String>::new(), "the orphan was swept");
    assert_eq!(server.readiness().1["storage"], "ok");

    let (status, body) = server.transcribe("jfk.wav", jfk(), &[]);
    assert_eq!(status, 200, "{body}");
    let id = body["file_id"].as_str().unwrap();
    let mut names = s3.names("");
    names.sort();
    assert_eq!(
        names,
        [
            format!("{id}.performance.json"),
            format!("{id}.segments.json"),
            format!("{id}.txt")
        ]
    );
    let record: Value = serde_json::from_slice(&s3.get(&format!("{id}.performance.json")).unwrap()).unwrap();
    assert_eq!(record["performance"], body["performance"]);
    let here: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("sori."))
        .collect();
    assert_eq!(here, ["uploads"], "only the database and an empty uploads folder here");
    assert_eq!(std::fs::read_dir(data.path().join("uploads")).unwrap().count(), 0);

    let text = reqwest::blocking::get(server.url(&format!("/files/{id}/text")))
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(text.as_bytes(), s3.get(&format!("{id}.txt")).unwrap());
    let srt = reqwest::blocking::get(server.url(&format!("/files/{id}/srt"))).unwrap();
    assert_eq!(srt.status(), 200);
    assert!(srt.text().unwrap().contains("00:00:00,000 -->"));
}

/// The bucket goes away: `/readyz` is 503 and names the storage; an upload
/// gets 503 `storage_unavailable` with Retry-After; a batch in progress is
/// not failed. It comes back: readiness returns and the batch finishes with
/// every file done, its results in the bucket and its uploads gone.
#[test]
fn a_bucket_that_goes_away_and_comes_back_loses_nothing() {
    let s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    let server = server(&s3, data.path());
    let files: Vec<(String, Vec<u8>)> = (0..4).map(|i| (format!("clip-{i}.wav"), jfk())).collect();
    let batch_id = server.post_batch(&files);
    let started = Instant::now();
    loop {
        let batch: Value = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}")))
            .unwrap()
            .json()
            .unwrap();
        if batch["progress"]["done"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no file finished: {batch}");
        std::thread::sleep(Duration::from_millis(50));
    }

    s3.go_away();
    let ready = wait_ready(&server, 503);
    assert!(
        ready["storage"].as_str().unwrap().contains("cannot be reached"),
        "{ready}"
    );
    let (status, body) = server.transcribe("jfk.wav", jfk(), &[]);
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("storage_unavailable")),
        "{body}"
    );
    let response = server
        .send_batch(reqwest::blocking::multipart::Form::new().part(
            "file",
            reqwest::blocking::multipart::Part::bytes(jfk()).file_name("a.wav"),
        ))
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // Files keep being tried while it is away; none is failed for it.
    std::thread::sleep(Duration::from_secs(5));
    let batch: Value = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(batch["progress"]["failed"], 0, "{batch}");

    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    assert!(metrics.lines().any(|l| l == "sori_ready 0"), "{metrics}");
    let requeued = metrics
        .lines()
        .find(|l| l.starts_with("sori_batch_requeues_total{reason=\"storage_unavailable\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
    assert!(
        requeued.is_some_and(|n| n >= 1.0),
        "the waiting files were queued again: {requeued:?}"
    );

    s3.come_back();
    wait_ready(&server, 200);
    let finished = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    assert_eq!(finished["progress"]["done"], 4, "{finished}");
    for file in finished["files"].as_array().unwrap() {
        let id = file["file_id"].as_str().unwrap();
        let text = String::from_utf8(s3.get(&format!("{id}.txt")).unwrap()).unwrap();
        assert!(words(&text).join(" ").contains("ask not what your country"), "{text}");
    }
    let batches: Value = reqwest::blocking::get(server.url("/batches")).unwrap().json().unwrap();
    assert_eq!(
        batches.as_array().unwrap().len(),
        1,
        "the refused batch was not recorded"
    );
    assert_eq!(std::fs::read_dir(data.path().join("uploads")).unwrap().count(), 0);
    // An upload whose removal met the bucket away goes once it is back.
    let started = Instant::now();
    while !s3.names("uploads").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", s3.names("uploads"));
        std::thread::sleep(Duration::from_millis(200));
    }
    // And every file is in the history.
    let history: Value = reqwest::blocking::get(server.url("/files")).unwrap().json().unwrap();
    assert_eq!(history["files"].as_array().unwrap().len(), 4, "{history}");
}

/// The high-water mark of a process's resident memory (VmHWM), in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib / 1024.0
}

/// A batch file of 110 MiB (five minutes of 48 kHz stereo float samples) goes
/// to the bucket in parts and back to the worker as a stream: it is
/// transcribed whole, and the server process's peak memory (VmHWM, from
/// `/proc`) stays below the size of the file.
#[test]
fn a_large_batch_file_is_streamed_through_the_bucket_not_held_in_memory() {
    let s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    let audio = tempfile::tempdir().unwrap();
    let jfk = fixture_audio("jfk.wav");
    let jfk = jfk.to_str().unwrap();
    let long = audio.path().join("long.wav");
    let mut args = vec![jfk; 27];
    let long_str = long.to_str().unwrap().to_string();
    args.extend(["-r", "48000", "-c", "2", "-e", "floating-point", "-b", "32", &long_str]);
    sox(&args);
    let bytes = std::fs::read(&long).unwrap();
    let file_mib = bytes.len() as f64 / (1 << 20) as f64;
    assert!(file_mib > 100.0, "{file_mib} MiB");

    let server = server(&s3, data.path());
    let id = server.post_batch(&[("long.wav".to_string(), bytes)]);
    let batch = server.wait_batch_complete(&id, Duration::from_secs(300));
    let file = &batch["files"][0];
    assert_eq!(file["status"], "done", "{batch}");
    let seconds = file["audio_duration_sec"].as_f64().unwrap();
    assert!((seconds - 27.0 * 11.0).abs() < 1.0, "{seconds} s");
    let peak = peak_rss_mib(server.child.id());
    eprintln!("server peak memory {peak:.1} MiB for a {file_mib:.1} MiB batch file");
    assert!(
        peak < file_mib * 0.75,
        "the server's peak memory ({peak:.0} MiB) is not below the file's size ({file_mib:.0} MiB)"
    );
    assert_eq!(std::fs::read_dir(data.path().join("uploads")).unwrap().count(), 0);
}

/// A bucket that does not exist, or an address that is not `s3://`, stops
/// `sori serve` at start with a message naming it; the secret key is never printed.
#[test]
fn a_missing_bucket_or_a_bad_storage_url_is_said_at_start() {
    let s3 = S3::start();
    let data = tempfile::tempdir().unwrap();
    for (url, says) in [
        (
            "s3://no-such-bucket/x",
            "the bucket s3://no-such-bucket/x cannot be written",
        ),
        (
            "https://example.com/bucket",
            "--storage-url must look like s3://bucket/prefix",
        ),
    ] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_sori"));
        command
            .args(["serve", "--port", "0", "--model"])
            .arg(model_path("tiny.en"))
            .arg("--data-dir")
            .arg(data.path());
        for (key, value) in s3.env() {
            command.env(key, value);
        }
        let out = command.env("SORI_STORAGE_URL", url).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{url}: started");
        assert!(stderr.contains(says), "{url}: {stderr}");
        assert!(!stderr.contains("sori-test-secret"), "{stderr}");
    }
}
