//! A real `sori serve` process against careless and hostile clients: uploads
//! that trickle, too many uploads at once, a file whose header claims hours,
//! a second server on the same data dir, and a shutdown in the middle of a
//! transcription.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::error_code;
use common::server::Server;
use common::*;

/// A multipart upload's head: the request line, headers and the file part's
/// header, for a body of `length` bytes that the test then sends itself.
fn upload_head(length: usize) -> Vec<u8> {
    format!(
        "POST /transcribe HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {length}\r\n\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"slow.wav\"\r\n\r\n"
    )
    .into_bytes()
}

/// Reads a whole HTTP/1.1 answer; returns its status and the whole text.
fn read_answer(stream: &mut TcpStream) -> (u16, String) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, response)
}

#[test]
fn a_trickling_upload_is_cut_at_its_deadline_and_extra_uploads_wait_their_turn() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--upload-deadline-sec", "2", "--max-concurrent-uploads", "1"];
    let server = Server::start(&model_path("tiny.en"), data.path(), &args, &[]);

    // One byte every half second: never idle long enough for the idle timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    slow.write_all(&upload_head(100_000)).unwrap();
    let started = Instant::now();
    slow.write_all(b"R").unwrap();
    std::thread::sleep(Duration::from_millis(300));

    // While it holds the only upload slot, another upload is turned away at once.
    let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let client = reqwest::blocking::Client::new();
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(wav[..1000].to_vec()).file_name("jfk.wav"),
    );
    let busy = client.post(server.url("/transcribe")).multipart(form).send().unwrap();
    assert_eq!(busy.status(), 503);
    assert!(busy.headers().contains_key("retry-after"));
    let body: serde_json::Value = busy.json().unwrap();
    assert_eq!(error_code(&body), "too_many_uploads");

    while started.elapsed() < Duration::from_secs(3) && slow.write_all(b"I").is_ok() {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, response) = read_answer(&mut slow);
    let took = started.elapsed();
    assert_eq!(status, 408, "{response}");
    assert!(response.contains("upload_timeout"), "{response}");
    assert!(took < Duration::from_secs(6), "cut after {took:?}");

    // The slot is free again.
    let (status, body) = server.transcribe("jfk.wav", wav, &[]);
    assert_eq!(status, 200, "{body}");
    let uploads = std::fs::read_dir(data.path().join("uploads")).unwrap().count();
    assert_eq!(uploads, 0, "no upload is left behind");
}

#[test]
fn a_file_that_claims_hours_is_refused_at_once_without_memory() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &[]);
    // One second of real FLAC whose STREAMINFO says 3 h 20 min (the limit is 3 h).
    let tmp = tempfile::tempdir().unwrap();
    let flac = tmp.path().join("claims-hours.flac");
    sox(&[
        fixture_audio("jfk.wav").to_str().unwrap(),
        flac.to_str().unwrap(),
        "trim",
        "0",
        "1",
    ]);
    let mut bytes = std::fs::read(&flac).unwrap();
    assert_eq!(&bytes[..4], b"fLaC");
    let packed = u64::from_be_bytes(bytes[18..26].try_into().unwrap());
    let total_samples: u64 = 200 * 60 * 16_000;
    let patched = (packed & !((1u64 << 36) - 1)) | total_samples;
    bytes[18..26].copy_from_slice(&patched.to_be_bytes());

    let before = proc_memory_mib(server.child.id(), "VmHWM");
    let started = Instant::now();
    let (status, body) = server.transcribe("claims-hours.flac", bytes, &[]);
    assert_eq!(status, 422, "{body}");
    assert_eq!(error_code(&body), "audio_too_long");
    assert!(body["error"]["message"].as_str().unwrap().contains("12000 s"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let after = proc_memory_mib(server.child.id(), "VmHWM");
    assert!(after - before < 20.0, "peak memory {before:.0} -> {after:.0} MiB");
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_with_a_clear_message() {
    let data = tempfile::tempdir().unwrap();
    let model = model_path("tiny.en");
    let _first = Server::start(&model, data.path(), &[], &[]);
    let second = std::process::Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(["serve", "--model", model.to_str().unwrap(), "--port", "0", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let message = String::from_utf8_lossy(&second.stderr);
    assert!(message.contains("in use by another sori process"), "{message}");
}

#[test]
fn readiness_names_the_device_and_a_gpu_that_is_not_there_stops_the_start_with_a_clear_message() {
    if cfg!(feature = "cuda") {
        return; // a CUDA build may see a GPU; this is the CPU build's behaviour
    }
    let data = tempfile::tempdir().unwrap();
    let model = model_path("tiny.en");
    {
        let server = Server::start(&model, data.path(), &[], &[]);
        let (status, ready) = server.readiness();
        assert_eq!(status, 200, "{ready}");
        // ggml names the CPU as /proc/cpuinfo does.
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let cpu = cpuinfo.lines().find(|l| l.starts_with("model name")).unwrap();
        let backend = &ready["backend"];
        assert_eq!(backend["device"], "CPU", "{ready}");
        assert!(
            cpu.ends_with(backend["description"].as_str().unwrap()),
            "{cpu} / {ready}"
        );
        assert!(backend["memory_mib"].is_null(), "{ready}");
    }
    let started = Instant::now();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_sori"))
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--gpu-device",
            "0",
            "--data-dir",
        ])
        .arg(data.path())
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(
        message.contains("--gpu-device 0: no GPU is seen (this build is for the CPU only)")
            && message.contains("make build-cuda"),
        "{message}"
    );
}

#[test]
fn sigterm_during_a_transcription_finishes_it_then_exits_within_the_grace() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        &model_path("tiny.en"),
        data.path(),
        &["--shutdown-grace-sec", "30"],
        &[],
    );
    // JFK five times with pauses (about 57 s): a few seconds of work.
    let tmp = tempfile::tempdir().unwrap();
    let long = tmp.path().join("long.wav");
    let jfk = fixture_audio("jfk.wav");
    let jfk = jfk.to_str().unwrap();
    sox(&[jfk, jfk, jfk, jfk, jfk, long.to_str().unwrap()]);
    let request = server.transcribe_later("long.wav", std::fs::read(&long).unwrap());
    server.wait_workers_busy(1, Duration::from_secs(20));
    // Three batch files wait behind it, and a client follows the batch's events.
    let wav = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let form = (0..3).fold(reqwest::blocking::multipart::Form::new(), |form, i| {
        form.part(
            "file",
            reqwest::blocking::multipart::Part::bytes(wav.clone()).file_name(format!("queued-{i}.wav")),
        )
    });
    let posted: serde_json::Value = server.send_batch(form).unwrap().json().unwrap();
    let batch_id = posted["batch_id"].as_str().unwrap().to_string();
    let events_url = server.url(&format!("/batch/{batch_id}/events"));
    let events = std::thread::spawn(move || {
        let response = reqwest::blocking::Client::new()
            .get(events_url)
            .timeout(Duration::from_secs(60))
            .send()
            .unwrap();
        let mut text = String::new();
        let _ = std::io::BufReader::new(response).read_to_string(&mut text);
        (text, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200));
    let workers = server.worker_pids();
    assert!(!workers.is_empty(), "the server runs worker processes");

    // SAFETY: signalling our own child process.
    unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) };
    let signalled = Instant::now();
    std::thread::sleep(Duration::from_millis(200));
    let ready = reqwest::blocking::get(server.url("/readyz")).unwrap();
    assert_eq!(ready.status(), 503, "not ready while draining");
    let late = reqwest::blocking::Client::new()
        .post(server.url("/transcribe"))
        .multipart(reqwest::blocking::multipart::Form::new().text("language", "en"))
        .send()
        .unwrap();
    assert_eq!(late.status(), 503, "new uploads are refused while draining");
    assert!(late.headers().contains_key("retry-after"));

    let (status, body) = request.join().unwrap();
    assert_eq!(status, 200, "the transcription in flight finished: {body}");
    assert!(
        body["text"].as_str().unwrap().contains("ask not what your country"),
        "{body}"
    );
    let (took, clean) = server.terminate();
    assert!(clean, "exit 0");
    for pid in workers {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the worker process {pid} outlived the server"
        );
    }
    let total = signalled.elapsed();
    assert!(
        total < Duration::from_secs(30),
        "exited {total:?} after SIGTERM ({took:?} after the answer)"
    );
    let (streamed, ended) = events.join().unwrap();
    assert!(streamed.contains("event: batch"), "{streamed}");
    assert!(
        ended.duration_since(signalled) < Duration::from_secs(30),
        "the event stream ended with the server, not at its client's timeout"
    );

    // Batch files not started stay queued (none is left half done), and the next start runs them.
    let db = rusqlite::Connection::open(data.path().join("sori.db")).unwrap();
    let count = |status: &str| -> i64 {
        db.query_row("SELECT COUNT(*) FROM batch_files WHERE status = ?1", [status], |r| {
            r.get(0)
        })
        .unwrap()
    };
    assert_eq!(count("processing"), 0);
    assert!(count("queued") >= 1, "queued files stay queued");
    drop(db);
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &[]);
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(60));
    assert_eq!(batch["progress"]["done"], 3, "{batch}");
}
