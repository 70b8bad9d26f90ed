//! The history of transcriptions (`GET /files`) with a real server, on
//! SQLite and on PostgreSQL: newest first, pages, filters, search in the
//! transcripts, each entry's batch, the whole transcription to open again,
//! deletion, and the index rebuilt from the data dir.

mod common;

use std::time::Duration;

use common::postgres::Database;
use common::server::Server;
use common::*;
use serde_json::Value;

on_each_database!(
    sync: [the_history_lists_filters_searches_and_pages_what_is_kept],
    async: [],
);

fn history(server: &Server, query: &str) -> (u16, Value) {
    let response = reqwest::blocking::get(server.url(&format!("/files{query}"))).unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

fn ids(page: &Value) -> Vec<String> {
    page["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["file_id"].as_str().unwrap().to_string())
        .collect()
}

/// Three single transcriptions (English twice, Korean once) and a one-file
/// batch: all four listed newest first with their figures; a search for a
/// word of JFK's speech finds the three English ones and not the Korean one;
/// name, language and time filters; two pages of two; bad queries get 400;
/// a deleted transcription leaves the history; and entries removed from the
/// database come back from the data dir at the next start.
fn the_history_lists_filters_searches_and_pages_what_is_kept(database: Database) {
    let data = tempfile::tempdir().unwrap();
    let model = model_path("base");
    let server = Server::start(&model, data.path(), &[], &database.env());
    let read = |name: &str| std::fs::read(fixture_audio(name)).unwrap();
    let mut made = Vec::new();
    for (name, bytes) in [
        ("speech.wav", read("jfk.wav")),
        ("korean.wav", read("ko_test.wav")),
        ("speech.mp3", read("jfk.mp3")),
    ] {
        let (status, body) = server.transcribe(name, bytes, &[]);
        assert_eq!(status, 200, "{body}");
        made.push(body["file_id"].as_str().unwrap().to_string());
    }
    let batch_id = server.post_batch(&[("in-batch.wav".to_string(), read("jfk.wav"))]);
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    made.push(batch["files"][0]["file_id"].as_str().unwrap().to_string());
    // A batch file is listed in the history in the transaction that marks
    // it done: once the batch says complete, the history has it.

    let (status, all) = history(&server, "");
    assert_eq!(status, 200, "{all}");
    let newest_first: Vec<String> = made.iter().rev().cloned().collect();
    assert_eq!(ids(&all), newest_first, "{all}");
    let korean = &all["files"][2];
    assert_eq!(
        (korean["filename"].as_str(), korean["language"].as_str()),
        (Some("korean.wav"), Some("ko"))
    );
    assert!(korean["processing_time_sec"].as_f64().unwrap() > 0.0 && korean["ram_mb_peak"].as_f64().unwrap() > 0.0);
    assert_eq!(all["next_cursor"], Value::Null);
    let batches: Vec<&Value> = all["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| &f["batch_id"])
        .collect();
    assert_eq!(
        batches,
        [
            &Value::String(batch_id.clone()),
            &Value::Null,
            &Value::Null,
            &Value::Null
        ],
        "the batch file names its batch; single uploads have none"
    );

    // The whole transcription, as POST /transcribe answered it, for the page to open it again.
    let whole: Value = reqwest::blocking::get(server.url(&format!("/files/{}/json", made[2])))
        .unwrap()
        .json()
        .unwrap();
    let record: Value = reqwest::blocking::get(server.url(&format!("/files/{}", made[2])))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(whole["filename"], "speech.mp3");
    assert!(
        whole["text"].as_str().unwrap().to_lowercase().contains("your country"),
        "{whole}"
    );
    assert!(!whole["segments"].as_array().unwrap().is_empty(), "{whole}");
    assert_eq!(whole["performance"], record["performance"], "the figures of its record");
    assert!(
        !whole["performance"]["samples"].as_array().unwrap().is_empty(),
        "with its samples for the chart"
    );
    let unknown = reqwest::blocking::get(server.url("/files/00000000-0000-4000-8000-000000000000/json")).unwrap();
    assert_eq!(unknown.status(), 404);

    let (_, found) = history(&server, "?q=COUNTRY");
    let english: Vec<String> = [&made[3], &made[2], &made[0]].iter().map(|s| s.to_string()).collect();
    assert_eq!(ids(&found), english, "a word of the transcript, any case: {found}");
    assert_eq!(ids(&history(&server, "?name=.MP3").1), [made[2].clone()]);
    assert_eq!(ids(&history(&server, "?language=ko").1), [made[1].clone()]);
    assert_eq!(
        ids(&history(&server, "?q=100%25").1),
        Vec::<String>::new(),
        "% is a character, not a wildcard"
    );
    assert_eq!(ids(&history(&server, "?from=2999-01-01").1), Vec::<String>::new());
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(ids(&history(&server, &format!("?from={today}&to={today}")).1).len(), 4);

    let (_, first) = history(&server, "?limit=2");
    assert_eq!(ids(&first), newest_first[..2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = history(&server, &format!("?limit=2&cursor={cursor}"));
    assert_eq!(ids(&second), newest_first[2..]);
    assert_eq!(second["next_cursor"], Value::Null, "the last page says so");

    for (query, code) in [
        ("?limit=0", "invalid_limit"),
        ("?limit=many", "invalid_limit"),
        ("?cursor=nope", "invalid_cursor"),
        ("?from=yesterday", "invalid_time"),
    ] {
        let (status, body) = history(&server, query);
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    let long = "a".repeat(201);
    assert_eq!(history(&server, &format!("?q={long}")).0, 400);

    let deleted = reqwest::blocking::Client::new()
        .delete(server.url(&format!("/files/{}", made[0])))
        .send()
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(!ids(&history(&server, "").1).contains(&made[0]));
    drop(server);

    // The database loses the index; the data dir still holds the records.
    database.execute(data.path(), "DELETE FROM transcriptions");
    let server = Server::start(&model, data.path(), &[], &database.env());
    assert_eq!(
        ids(&history(&server, "").1),
        newest_first[..3],
        "rebuilt from the records"
    );
}
