//! Batches in a real PostgreSQL (a private cluster per test): the store's
//! claims and their fencing, and a real server whose batch lives there.

mod common;

use std::time::Duration;

use common::postgres::Postgres;
use common::server::Server;
use common::*;
use serde_json::Value;
use sori::batch::store::postgres::PostgresStore;
use sori::batch::store::{BatchStore, NewFile};
use sori::batch::FileStatus;
use sori::store::FileId;

fn new_file(name: &str) -> NewFile {
    NewFile {
        file_id: FileId::new(),
        filename: name.into(),
        rejected: None,
    }
}

/// Two claims at once take two different files (`SKIP LOCKED`), never one
/// twice; a worker whose file was claimed again changes nothing of it; the
/// new claim can; and migrating again applies nothing.
#[tokio::test]
async fn claims_are_exclusive_and_a_lost_claim_changes_nothing() {
    let pg = Postgres::start();
    let store = PostgresStore::open(&pg.url).await.unwrap();
    assert_eq!(store.migrate().await.unwrap(), 0, "the schema is already up to date");
    let files = vec![new_file("a.wav"), new_file("b.wav")];
    let ids = [files[0].file_id, files[1].file_id];
    store.create_batch(FileId::new(), None, files).await.unwrap();

    let (one, two) = tokio::join!(store.claim_next(), store.claim_next());
    let (one, two) = (one.unwrap().unwrap(), two.unwrap().unwrap());
    assert_ne!(one.file_id, two.file_id, "one file, one claim");
    assert!(ids.contains(&one.file_id) && ids.contains(&two.file_id));
    assert!(store.claim_next().await.unwrap().is_none());

    store.requeue(&one).await.unwrap();
    let again = store.claim_next().await.unwrap().unwrap();
    assert_eq!((again.file_id, again.claim), (one.file_id, one.claim + 1));
    assert!(!store.fail(&one, "stale").await.unwrap());
    assert_eq!(store.count_crash(&one).await.unwrap(), None);

    assert_eq!(store.count_crash(&again).await.unwrap(), Some(1));
    assert!(store.fail(&again, "the engine crashed").await.unwrap());
    let now = store.file(again.file_id).await.unwrap().unwrap();
    assert_eq!((now.status, now.engine_crashes), (FileStatus::Failed, 1));
    assert_eq!(now.error.as_deref(), Some("the engine crashed"));
}

/// `sori serve --database-url`: a batch (a good file and one that is not
/// audio) is recorded in PostgreSQL, not in the data dir, runs to the end, and
/// is still there for the next server.
#[test]
fn a_server_on_postgres_runs_a_batch_and_keeps_it_across_a_restart() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let env = [("SORI_DATABASE_URL", pg.url.clone())];
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(["db", "migrate", "--database-url", &pg.url])
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("1 versions applied"));

    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let files = [
        ("jfk.wav".to_string(), std::fs::read(fixture_audio("jfk.wav")).unwrap()),
        ("notes.wav".to_string(), b"not audio at all".to_vec()),
    ];
    let batch_id = server.post_batch(&files);
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    assert_eq!(batch["progress"]["done"], 1, "{batch}");
    assert_eq!(batch["progress"]["failed"], 1, "{batch}");
    let text = reqwest::blocking::get(server.url(&format!(
        "/files/{}/text",
        batch["files"][0]["file_id"].as_str().unwrap()
    )))
    .unwrap()
    .text()
    .unwrap();
    assert!(text.contains("country"), "{text}");
    assert!(!data.path().join("sori.db").exists(), "the batch is not in SQLite");
    drop(server);

    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let again: Value = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["files"], batch["files"], "the same batch, from PostgreSQL");
}
