//! Removing what Sori keeps: `DELETE /files/{id}`, `DELETE /batch/{id}` and
//! `--retention-days`, with a real server, on SQLite and on PostgreSQL.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::postgres::Database;
use common::server::Server;
use common::*;
use serde_json::Value;

on_each_database!(
    sync: [
        a_transcription_is_deleted_with_its_files_and_only_with_a_key,
        a_batch_is_deleted_with_its_files_once_complete,
        retention_removes_what_is_older_and_keeps_the_rest,
    ],
    async: [],
);

fn jfk() -> Vec<u8> {
    std::fs::read(fixture_audio("jfk.wav")).unwrap()
}

/// The names of the kept files (data dir or bucket) that start with `id`.
fn files_of(database: &Database, dir: &Path, id: &str) -> Vec<String> {
    database
        .file_names(dir, "")
        .into_iter()
        .filter(|name| name.starts_with(id))
        .collect()
}

fn delete(server: &Server, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::blocking::Client::new().delete(server.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

/// With an API key configured, `DELETE /files/{id}` needs it; with it the
/// transcript, record and segments are gone, the record cannot be read, and
/// a second delete finds nothing.
fn a_transcription_is_deleted_with_its_files_and_only_with_a_key(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        &model_path("tiny.en"),
        data.path(),
        &["--api-key", "k-1"],
        &database.env(),
    );
    let (status, body) = server.transcribe("jfk.wav", jfk(), &[("Authorization", "Bearer k-1")]);
    assert_eq!(status, 200, "{body}");
    let id = body["file_id"].as_str().unwrap();
    assert_eq!(
        files_of(&database, data.path(), id).len(),
        3,
        "transcript, record and segments"
    );

    assert_eq!(delete(&server, &format!("/files/{id}"), None).0, 401);
    assert_eq!(
        files_of(&database, data.path(), id).len(),
        3,
        "nothing removed without the key"
    );
    assert_eq!(delete(&server, &format!("/files/{id}"), Some("k-1")).0, 204);
    assert_eq!(files_of(&database, data.path(), id), Vec::<String>::new());
    let read = reqwest::blocking::Client::new()
        .get(server.url(&format!("/files/{id}")))
        .bearer_auth("k-1")
        .send()
        .unwrap();
    assert_eq!(read.status(), 404);
    let (status, again) = delete(&server, &format!("/files/{id}"), Some("k-1"));
    assert_eq!((status, &again["error"]["code"]), (404, &Value::from("not_found")));
}

/// A running batch cannot be deleted (409, nothing removed); a file of a
/// batch goes only with its batch; a complete batch is deleted with every
/// file's transcript and record.
fn a_batch_is_deleted_with_its_files_once_complete(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &database.env());
    let files: Vec<(String, Vec<u8>)> = (0..3).map(|i| (format!("clip-{i}.wav"), jfk())).collect();
    let batch_id = server.post_batch(&files);
    let (status, body) = delete(&server, &format!("/batch/{batch_id}"), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &Value::from("batch_running")),
        "{body}"
    );

    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    let ids: Vec<String> = batch["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ids.iter().all(|id| files_of(&database, data.path(), id).len() == 3),
        "{batch}"
    );
    let (status, body) = delete(&server, &format!("/files/{}", ids[0]), None);
    assert_eq!(
        (status, &body["error"]["code"]),
        (409, &Value::from("part_of_batch")),
        "{body}"
    );

    assert_eq!(delete(&server, &format!("/batch/{batch_id}"), None).0, 204);
    for id in &ids {
        assert_eq!(files_of(&database, data.path(), id), Vec::<String>::new());
    }
    let gone = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}"))).unwrap();
    assert_eq!(gone.status(), 404);
    let list: Value = reqwest::blocking::get(server.url("/batches")).unwrap().json().unwrap();
    assert_eq!(list, Value::Array(Vec::new()));
    assert_eq!(delete(&server, &format!("/batch/{batch_id}"), None).0, 404);
}

/// `--retention-days 7`: at start, a transcription and a batch back-dated ten
/// days are removed (the batch with its file's pair), a fresh transcription is
/// kept, and Prometheus counts each kind.
fn retention_removes_what_is_older_and_keeps_the_rest(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let model = model_path("tiny.en");
    let server = Server::start(&model, data.path(), &[], &database.env());
    let (_, old) = server.transcribe("old.wav", jfk(), &[]);
    let (_, fresh) = server.transcribe("fresh.wav", jfk(), &[]);
    let batch_id = server.post_batch(&[("in-batch.wav".to_string(), jfk())]);
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    let in_batch = batch["files"][0]["file_id"].as_str().unwrap().to_string();
    let old_id = old["file_id"].as_str().unwrap();
    assert_eq!(
        (
            files_of(&database, data.path(), old_id).len(),
            files_of(&database, data.path(), &in_batch).len()
        ),
        (3, 3)
    );
    drop(server);

    let ten_days_ago = (chrono::Utc::now() - chrono::Duration::days(10)).to_rfc3339();
    let name = format!("{old_id}.performance.json");
    let mut record: Value = serde_json::from_slice(&database.file(data.path(), &name).unwrap()).unwrap();
    record["created_at"] = Value::from(ten_days_ago.clone());
    database.write_file(data.path(), &name, &serde_json::to_vec(&record).unwrap());
    database.execute(
        data.path(),
        &format!("UPDATE batches SET created_at = '{ten_days_ago}' WHERE id = '{batch_id}'"),
    );

    let server = Server::start(&model, data.path(), &["--retention-days", "7"], &database.env());
    let started = Instant::now();
    while !files_of(&database, data.path(), old_id).is_empty()
        || !files_of(&database, data.path(), &in_batch).is_empty()
    {
        assert!(started.elapsed() < Duration::from_secs(20), "the sweep did not run");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fresh_id = fresh["file_id"].as_str().unwrap();
    assert_eq!(
        files_of(&database, data.path(), fresh_id).len(),
        3,
        "the fresh one is kept"
    );
    let gone = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}"))).unwrap();
    assert_eq!(gone.status(), 404);
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    for kind in ["transcription", "batch"] {
        let line = format!("sori_retention_removed_total{{kind=\"{kind}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}
