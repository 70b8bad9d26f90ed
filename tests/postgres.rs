//! Batches in a real PostgreSQL (a private cluster per test): the store's
//! claims, leases and their fencing (on SQLite too), real servers whose
//! batches live there, and three replicas sharing one.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::postgres::{Database, Postgres};
use common::server::Server;
use common::*;
use serde_json::Value;
use sori::batch::store::postgres::PostgresStore;
use sori::batch::store::sqlite::SqliteStore;
use sori::batch::store::{BatchStore, FinishedFile, NewFile, Publish};
use sori::batch::FileStatus;
use sori::store::history::HistoryEntry;
use sori::store::FileId;

/// A lease that does not run out during a test.
const LEASE: Duration = Duration::from_secs(60);

on_each_database!(
    sync: [],
    async: [
        claims_are_exclusive_and_a_lost_claim_changes_nothing,
        a_lapsed_lease_is_taken_over_and_fences_its_old_holder,
    ],
);

/// The store of `database` (SQLite in `dir`), its schema up to date.
async fn open_store(database: &Database, dir: &std::path::Path) -> Arc<dyn BatchStore> {
    match database.url() {
        Some(url) => Arc::new(PostgresStore::open(&url).await.unwrap()),
        None => Arc::new(SqliteStore::open(&dir.join("sori.db")).unwrap()),
    }
}

fn new_file(name: &str) -> NewFile {
    NewFile {
        file_id: FileId::new(),
        filename: name.into(),
        rejected: None,
    }
}

/// Two claims at once take two different files (`SKIP LOCKED`), never one
/// twice; a worker whose file was claimed again changes nothing of it; the
/// new claim can.
async fn claims_are_exclusive_and_a_lost_claim_changes_nothing(database: Database) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&database, dir.path()).await;
    let files = vec![new_file("a.wav"), new_file("b.wav")];
    let ids = [files[0].file_id, files[1].file_id];
    store
        .create_batch(FileId::new(), Default::default(), files)
        .await
        .unwrap();

    let (one, two) = tokio::join!(store.claim_next("here", LEASE), store.claim_next("here", LEASE));
    let (one, two) = (one.unwrap().unwrap(), two.unwrap().unwrap());
    assert_ne!(one.file_id, two.file_id, "one file, one claim");
    assert!(ids.contains(&one.file_id) && ids.contains(&two.file_id));
    assert!(store.claim_next("here", LEASE).await.unwrap().is_none());

    store.requeue(&one).await.unwrap();
    let again = store.claim_next("here", LEASE).await.unwrap().unwrap();
    assert_eq!((again.file_id, again.claim), (one.file_id, one.claim + 1));
    assert!(!store.fail(&one, "stale").await.unwrap());
    assert_eq!(store.count_crash(&one).await.unwrap(), None);

    assert_eq!(store.count_crash(&again).await.unwrap(), Some(1));
    assert!(store.fail(&again, "the engine crashed").await.unwrap());
    let now = store.file(again.file_id).await.unwrap().unwrap();
    assert_eq!((now.status, now.engine_crashes), (FileStatus::Failed, 1));
    assert_eq!(now.error.as_deref(), Some("the engine crashed"));
}

/// A file whose replica stopped renewing its lease goes to the next claim
/// once the lease ran out; the first replica can then neither renew nor
/// publish (its files are never written); while the new holder writes its
/// files the row is locked, so even with its lease run out no third replica
/// takes the file meanwhile.
async fn a_lapsed_lease_is_taken_over_and_fences_its_old_holder(database: Database) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&database, dir.path()).await;
    let file = new_file("a.wav");
    let file_id = file.file_id;
    store
        .create_batch(FileId::new(), Default::default(), vec![file])
        .await
        .unwrap();
    let short = Duration::from_millis(200);
    let first = store.claim_next("a", short).await.unwrap().unwrap();
    assert!(store.claim_next("b", short).await.unwrap().is_none(), "a's lease runs");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = store.claim_next("b", short).await.unwrap().unwrap();
    assert_eq!((second.file_id, second.claim), (file_id, first.claim + 1));
    assert_eq!(
        (first.taken_from.as_deref(), second.taken_from.as_deref()),
        (None, Some("a"))
    );
    assert!(!store.renew(&first, LEASE).await.unwrap());

    let published = Arc::new(Mutex::new(Vec::new()));
    let publish = |who: &'static str, takes: Duration| -> Publish {
        let published = published.clone();
        Box::pin(async move {
            tokio::time::sleep(takes).await;
            published.lock().unwrap().push(who);
            Ok(())
        })
    };
    assert!(!store
        .finish(&first, &finished(file_id), publish("a", Duration::ZERO))
        .await
        .unwrap());
    // b's lease runs out while it writes: the locked row is still b's.
    let writing = {
        let store = store.clone();
        let publish = publish("b", Duration::from_millis(800));
        tokio::spawn(async move { store.finish(&second, &finished(file_id), publish).await })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store.claim_next("c", LEASE).await.unwrap().is_none(),
        "the file is being written"
    );
    assert!(writing.await.unwrap().unwrap());
    assert_eq!(
        *published.lock().unwrap(),
        ["b"],
        "only the holder of the claim publishes"
    );
    let now = store.file(file_id).await.unwrap().unwrap();
    assert_eq!((now.status, now.replica.as_deref()), (FileStatus::Done, Some("b")));
    assert!(
        store.claim_next("c", LEASE).await.unwrap().is_none(),
        "a done file stays done"
    );
}

/// A finished result of `file_id` (its figures and history entry).
fn finished(file_id: FileId) -> FinishedFile {
    let report = serde_json::from_value(serde_json::json!({
        "cpu_percent_avg": 100.0, "cpu_percent_max": 120.0, "ram_mb_avg": 80.0, "ram_mb_peak": 90.0,
        "gpu_vram_mb_current": 0.0, "gpu_vram_mb_peak": 0.0, "gpu_percent": 0.0,
        "processing_time_sec": 0.5, "cpu_time_sec": 0.5, "sample_count": 2, "gpu_available": false
    }))
    .unwrap();
    let performance = sori::store::record::RequestPerformance::new(report, 1.0);
    let entry = HistoryEntry {
        file_id,
        filename: "a.wav".into(),
        created_at: chrono::Utc::now(),
        model: "tiny.en".into(),
        language: "en".into(),
        audio_duration_sec: 1.0,
        word_count: 2,
        processing_time_sec: performance.report.processing_time_sec,
        cpu_percent_avg: performance.report.cpu_percent_avg,
        ram_mb_peak: performance.report.ram_mb_peak,
        real_time_factor: performance.real_time_factor,
        replica: Some("b".into()),
    };
    FinishedFile {
        language: "en".into(),
        audio_duration_sec: 1.0,
        word_count: 2,
        performance,
        warnings: Vec::new(),
        entry,
        text: "two words".into(),
    }
}

/// The database stopped under a running server: readiness says 503 with the
/// reason and a batch upload gets 503 database_unavailable with Retry-After
/// (its uploads removed); started again, readiness comes back by itself and
/// the batch recorded before is still there and completes.
#[test]
fn readiness_follows_the_database_and_uploads_wait_for_it() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let env = [("SORI_DATABASE_URL", pg.url.clone())];
    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let (status, body) = server.readiness();
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")), "{body}");
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let before = server.post_batch(&[("jfk.wav".into(), jfk.clone())]);
    server.wait_batch_complete(&before, Duration::from_secs(120));

    pg.stop();
    let (status, body) = server.readiness();
    assert_eq!(status, 503, "{body}");
    assert!(body["database"].as_str().unwrap().contains("unreachable"), "{body}");
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(jfk.clone()).file_name("jfk.wav"),
    );
    let refused = server.send_batch(form).unwrap();
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().unwrap();
    assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
    let uploads = std::fs::read_dir(data.path().join("uploads")).unwrap().count();
    assert_eq!(uploads, 0, "the refused batch left no upload behind");

    pg.start_server();
    let started = std::time::Instant::now();
    while server.readiness().0 != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "readiness did not come back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let kept: Value = reqwest::blocking::get(server.url(&format!("/batch/{before}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(kept["progress"]["done"], 1, "{kept}");
    let after = server.post_batch(&[("jfk.wav".into(), jfk)]);
    let done = server.wait_batch_complete(&after, Duration::from_secs(120));
    assert_eq!(done["progress"]["done"], 1, "{done}");
}

/// `sori serve --database-url`: a batch (a good file and one that is not
/// audio) is recorded in PostgreSQL, not in the data dir, runs to the end, and
/// is still there for the next server; a single transcription's answer, its
/// record and the batch's file name the replica (`SORI_REPLICA_NAME`).
#[test]
fn a_server_on_postgres_runs_a_batch_and_keeps_it_across_a_restart() {
    let pg = Postgres::start();
    let data = tempfile::tempdir().unwrap();
    let env = [
        ("SORI_DATABASE_URL", pg.url.clone()),
        ("SORI_REPLICA_NAME", "sori-a".to_string()),
    ];
    let migrate = std::process::Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(["db", "migrate", "--database-url", &pg.url])
        .output()
        .unwrap();
    assert!(migrate.status.success(), "{}", String::from_utf8_lossy(&migrate.stderr));
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("4 versions applied"));
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_sori"))
        .args(["db", "migrate", "--database-url", &pg.url])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 versions applied"),
        "nothing twice"
    );

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
    assert_eq!(batch["files"][0]["replica"], "sori-a", "{batch}");
    let (status, single) = server.transcribe("jfk.wav", std::fs::read(fixture_audio("jfk.wav")).unwrap(), &[]);
    assert_eq!((status, &single["replica"]), (200, &Value::from("sori-a")), "{single}");
    let record: Value = serde_json::from_slice(
        &std::fs::read(
            data.path()
                .join(format!("{}.performance.json", single["file_id"].as_str().unwrap())),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(record["replica"], "sori-a");
    assert!(!data.path().join("sori.db").exists(), "the batch is not in SQLite");
    drop(server);

    let server = Server::start(&model_path("tiny.en"), data.path(), &[], &env);
    let again: Value = reqwest::blocking::get(server.url(&format!("/batch/{batch_id}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(again["files"], batch["files"], "the same batch, from PostgreSQL");
}

/// Three `sori serve` replicas on one PostgreSQL and one data dir. A 9-file
/// batch sent to replica 1 is shared by the replicas; replica 2 is killed
/// (SIGKILL) in the middle of a file, which another replica finishes once the
/// lease ran out; every file is done exactly once, with one record and one
/// pair of files that name the replica that did it; replica 3, which never
/// saw the upload, streams the batch's progress, other replicas' files
/// included, to the end.
#[test]
fn three_replicas_share_a_batch_and_a_killed_one_loses_nothing() {
    three_replicas_share_a_batch(Database::postgres());
}

/// The same with the files in a bucket and no shared folder: each replica
/// has a data dir of its own, empty at start.
#[test]
fn three_replicas_with_a_bucket_and_no_shared_folder_lose_nothing() {
    three_replicas_share_a_batch(Database::postgres_and_bucket());
}

fn three_replicas_share_a_batch(database: Database) {
    let shared = database.bucket().is_none();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // With a shared folder, every replica's data dir is the first one.
    let dir_of = |i: usize| if shared { dirs[0].path() } else { dirs[i].path() };
    let data = &dirs[0];
    let audio = tempfile::tempdir().unwrap();
    // Long enough (33 s) that a replica is caught in the middle of a file.
    let jfk = fixture_audio("jfk.wav");
    let clip = audio.path().join("jfk-3x.wav");
    let jfk = jfk.to_str().unwrap();
    sox(&[jfk, jfk, jfk, clip.to_str().unwrap()]);
    let clip = std::fs::read(clip).unwrap();
    let replica = |i: usize| {
        let mut env = database.env();
        env.push(("SORI_REPLICA_NAME", format!("r{}", i + 1)));
        env.push(("SORI_LEASE_SEC", "3".to_string()));
        Server::start(&model_path("tiny.en"), dir_of(i), &["--threads-per-worker", "1"], &env)
    };
    let (one, mut two, three) = (replica(0), replica(1), replica(2));

    let files: Vec<(String, Vec<u8>)> = (0..9).map(|i| (format!("clip-{i}.wav"), clip.clone())).collect();
    let batch_id = one.post_batch(&files);
    let followed = three.follow_events(&batch_id, Duration::from_secs(300));

    // Replica 2 dies in the middle of a file.
    let started = std::time::Instant::now();
    let killed = loop {
        let batch: Value = reqwest::blocking::get(one.url(&format!("/batch/{batch_id}")))
            .unwrap()
            .json()
            .unwrap();
        let busy = batch["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["status"] == "processing" && f["replica"] == "r2");
        if let Some(file) = busy {
            two.child.kill().unwrap();
            two.child.wait().unwrap();
            break file["file_id"].as_str().unwrap().to_string();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "replica 2 took no file: {batch}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let batch = one.wait_batch_complete(&batch_id, Duration::from_secs(300));
    let done = batch["files"].as_array().unwrap();
    assert_eq!(batch["progress"]["done"], 9, "{batch}");
    let by_replica = |name: &str| done.iter().filter(|f| f["replica"] == name).count();
    let taken_over = done.iter().find(|f| f["file_id"] == killed.as_str()).unwrap();
    assert_ne!(taken_over["replica"], "r2", "another replica finished it: {taken_over}");
    assert!(by_replica("r1") > 0 && by_replica("r3") > 0, "shared: {batch}");

    // Exactly once: one record and one transcript per file, from the replica that has it.
    let names = database.file_names(data.path(), "");
    let count = |suffix: &str| names.iter().filter(|n| n.ends_with(suffix)).count();
    assert_eq!((count(".performance.json"), count(".txt")), (9, 9), "{names:?}");
    for file in done {
        let id = file["file_id"].as_str().unwrap();
        let record = database.file(data.path(), &format!("{id}.performance.json")).unwrap();
        let record: Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(record["replica"], file["replica"], "{record}");
        assert_eq!(
            record["performance"], file["performance"],
            "the row holds the record's figures"
        );
    }
    // No upload is left, in the bucket or on the replicas still running
    // (the killed one's copy of its file stays with it).
    for i in [0, 2] {
        assert_eq!(database.file_names(dir_of(i), "uploads"), Vec::<String>::new());
    }
    if !shared {
        for dir in &dirs {
            let here: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".txt") || name.ends_with(".json"))
                .collect();
            assert_eq!(here, Vec::<String>::new(), "no results on a replica's own disk");
        }
    }

    // Replica 3 answers the reads of another's work: a record and the summary.
    let elsewhere = done.iter().find(|f| f["replica"] != "r3").unwrap();
    let id = elsewhere["file_id"].as_str().unwrap();
    let record: Value = reqwest::blocking::get(three.url(&format!("/files/{id}")))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["replica"], elsewhere["replica"], "{record}");
    let summary = reqwest::blocking::get(three.url(&format!("/batch/{batch_id}/summary"))).unwrap();
    assert_eq!(summary.status(), 200);

    // Prometheus counts the one takeover, on the replica that made it.
    let takeovers: f64 = [&one, &three]
        .iter()
        .map(|server| {
            let text = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
            text.lines()
                .find(|l| l.starts_with("sori_batch_claims_total{taken_over=\"true\"}"))
                .map_or(0.0, |l| l.rsplit(' ').next().unwrap().parse().unwrap())
        })
        .sum();
    assert_eq!(takeovers, 1.0, "one file was taken over");

    // Replica 3 followed it all, including the files the others finished.
    let events = followed.join().unwrap();
    let (last_name, last) = events.last().unwrap();
    assert_eq!(
        (last_name.as_str(), &last["status"]),
        ("batch", &Value::from("complete"))
    );
    let done_elsewhere = events
        .iter()
        .filter(|(name, e)| name == "file" && e["file"]["status"] == "done" && e["file"]["replica"] != "r3")
        .count();
    assert!(
        done_elsewhere > 0,
        "replica 3 streamed other replicas' progress: {events:?}"
    );
}
