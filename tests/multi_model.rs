//! Several models in one server (`--model` twice): each request's `model`
//! picks one; the default runs from the start, the other starts on its first
//! request (whose timings say how long that took) in worker processes of its
//! own; both answer at once; unknown names get 404 with the offered list;
//! readiness and Prometheus say which run, with their memory checked
//! against /proc.

mod common;

use common::server::Server;
use common::*;
use serde_json::Value;

/// POSTs `audio` to `/transcribe` with the form field `model` (if any).
fn transcribe_with(url: &str, name: &str, audio: Vec<u8>, model: Option<&str>) -> (u16, Value) {
    let mut form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(audio).file_name(name.to_string()),
    );
    if let Some(model) = model {
        form = form.text("model", model.to_string());
    }
    let response = reqwest::blocking::Client::new()
        .post(url)
        .multipart(form)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// Resident memory of process `pid`, bytes, from /proc.
fn rss_bytes(pid: u64) -> f64 {
    proc_memory_mib(pid as u32, "VmRSS") * 1024.0 * 1024.0
}

fn metric(text: &str, line_start: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{line_start} not in the metrics"))
}

#[test]
fn each_request_runs_the_model_it_names_and_the_second_starts_on_first_use() {
    let data = tempfile::tempdir().unwrap();
    let (tiny, base) = (model_path("tiny.en"), model_path("base"));
    let server = Server::start(&tiny, data.path(), &["--model", base.to_str().unwrap()], &[]);
    let url = server.url("/transcribe");

    let (_, ready) = server.readiness();
    let loaded: Vec<(String, bool)> = ready["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_string(), m["loaded"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        loaded,
        [("tiny.en-q8_0".to_string(), true), ("base-q8_0".to_string(), false)]
    );
    let listed: Value = reqwest::blocking::get(server.url("/v1/models"))
        .unwrap()
        .json()
        .unwrap();
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["tiny.en-q8_0", "base-q8_0", "whisper-1"]);

    // Korean on base (started by this request) and English on the default, at once.
    let korean = {
        let url = url.clone();
        let audio = std::fs::read(fixture_audio("ko_test.wav")).unwrap();
        std::thread::spawn(move || transcribe_with(&url, "ko.wav", audio, Some("base-q8_0")))
    };
    let english = transcribe_with(&url, "jfk.wav", std::fs::read(fixture_audio("jfk.wav")).unwrap(), None);
    let (status, korean) = korean.join().unwrap();
    assert_eq!(status, 200, "{korean}");
    assert_eq!(
        (korean["model"].as_str(), korean["language"].as_str()),
        (Some("base-q8_0"), Some("ko"))
    );
    assert!(
        korean["text"]
            .as_str()
            .unwrap()
            .chars()
            .any(|c| ('가'..='힣').contains(&c)),
        "{korean}"
    );
    let load_sec = korean["timings"]["model_load_sec"]
        .as_f64()
        .expect("the first request waited for base to start");
    assert!(load_sec > 0.0 && load_sec < 60.0, "{load_sec}");
    assert_eq!(english.0, 200, "{}", english.1);
    assert_eq!(english.1["model"], "tiny.en-q8_0");
    assert!(english.1["text"].as_str().unwrap().to_lowercase().contains("country"));
    assert!(
        english.1["timings"].get("model_load_sec").is_none(),
        "the default was running"
    );

    let (status, again) = transcribe_with(
        &url,
        "ko.wav",
        std::fs::read(fixture_audio("ko_test.wav")).unwrap(),
        Some("base-q8_0"),
    );
    assert_eq!(status, 200);
    assert!(
        again["timings"].get("model_load_sec").is_none(),
        "base was running by then: {again}"
    );
    let record: Value = reqwest::blocking::get(server.url(&format!("/files/{}", again["file_id"].as_str().unwrap())))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["model"], "base-q8_0");

    // A batch names its model too: every file runs on it.
    let form = reqwest::blocking::multipart::Form::new()
        .text("model", "base-q8_0")
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(std::fs::read(fixture_audio("ko_test.wav")).unwrap())
                .file_name("ko.wav"),
        );
    let created: Value = server.send_batch(form).unwrap().json().unwrap();
    assert_eq!(created["model"], "base-q8_0", "{created}");
    let batch = server.wait_batch_complete(
        created["batch_id"].as_str().unwrap(),
        std::time::Duration::from_secs(120),
    );
    let file = &batch["files"][0];
    assert_eq!(
        (file["status"].as_str(), file["language"].as_str()),
        (Some("done"), Some("ko")),
        "{batch}"
    );
    let record: Value = reqwest::blocking::get(server.url(&format!("/files/{}", file["file_id"].as_str().unwrap())))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(record["model"], "base-q8_0");
    let unknown_batch = server
        .send_batch(
            reqwest::blocking::multipart::Form::new()
                .text("model", "large-v9")
                .part(
                    "file",
                    reqwest::blocking::multipart::Part::bytes(b"RIFF".to_vec()).file_name("x.wav"),
                ),
        )
        .unwrap();
    assert_eq!(unknown_batch.status(), 404);

    // Unknown names: 404 with the offered ones, in Sori's shape and OpenAI's.
    let (status, unknown) = transcribe_with(
        &url,
        "jfk.wav",
        std::fs::read(fixture_audio("jfk.wav")).unwrap(),
        Some("large-v9"),
    );
    assert_eq!(
        (status, unknown["error"]["code"].as_str()),
        (404, Some("model_not_found")),
        "{unknown}"
    );
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tiny.en-q8_0, base-q8_0"),
        "{unknown}"
    );
    let openai = reqwest::blocking::get(server.url("/v1/models/large-v9")).unwrap();
    assert_eq!(openai.status(), 404);

    // Readiness and Prometheus: both run, each in processes of its own.
    let (_, ready) = server.readiness();
    let base_state = &ready["models"][1];
    assert_eq!(base_state["loaded"], true, "{ready}");
    assert!((base_state["load_sec"].as_f64().unwrap() - load_sec).abs() < 1e-9);
    let base_pids: Vec<u64> = base_state["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    let tiny_pids: Vec<u64> = ready["models"][0]["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    assert!(
        !base_pids.is_empty() && base_pids.iter().all(|p| !tiny_pids.contains(p)),
        "{ready}"
    );
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    assert_eq!(metric(&metrics, "sori_model_loaded{model=\"base-q8_0\"}"), 1.0);
    let reported = metric(&metrics, "sori_model_resident_memory_bytes{model=\"base-q8_0\"}");
    let measured: f64 = base_pids.iter().map(|&p| rss_bytes(p)).sum();
    assert!(
        (reported - measured).abs() < measured * 0.1,
        "base's workers: {reported} reported, {measured} in /proc"
    );
    assert!(metric(&metrics, "sori_model_load_seconds{model=\"base-q8_0\"}") > 0.0);
}

/// The names of the models running now, by /readyz.
fn running(server: &Server) -> Vec<String> {
    let (_, ready) = server.readiness();
    ready["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["loaded"] == true)
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect()
}

/// The worker pids of running model `name`, by /readyz.
fn pids_of(server: &Server, name: &str) -> Vec<u64> {
    let (_, ready) = server.readiness();
    let model = ready["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap();
    model["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect()
}

#[test]
fn the_cap_stops_the_idlest_model_and_an_idle_model_stops_by_itself_and_starts_again() {
    let data = tempfile::tempdir().unwrap();
    let copy = data.path().join("ggml-tiny-copy.bin");
    std::fs::copy(model_path("tiny.en"), &copy).unwrap();
    let base = model_path("base");
    let args = [
        "--model",
        base.to_str().unwrap(),
        "--model",
        copy.to_str().unwrap(),
        "--model-idle-sec",
        "4",
        "--max-loaded-models",
        "2",
    ];
    let server = Server::start(&model_path("tiny.en"), data.path(), &args, &[]);
    let url = server.url("/transcribe");
    let jfk = || std::fs::read(fixture_audio("jfk.wav")).unwrap();

    let (status, body) = transcribe_with(&url, "a.wav", jfk(), Some("base-q8_0"));
    assert_eq!(status, 200, "{body}");
    let base_pids = pids_of(&server, "base-q8_0");
    assert_eq!(running(&server), ["tiny.en-q8_0", "base-q8_0"]);
    // A third model, with two running at most: base (idle, well under 4 s) makes room.
    let (status, body) = transcribe_with(&url, "b.wav", jfk(), Some("tiny-copy"));
    assert_eq!(status, 200, "{body}");
    assert!(body["timings"]["model_load_sec"].as_f64().is_some(), "{body}");
    assert_eq!(running(&server), ["tiny.en-q8_0", "tiny-copy"]);
    assert!(
        server.log().contains("to make room for another model"),
        "{}",
        server.log()
    );
    for pid in base_pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "base's worker {pid} is gone"
        );
    }

    // Four seconds without requests: tiny-copy stops by itself; the default never does.
    let began = std::time::Instant::now();
    while running(&server).len() > 1 {
        assert!(
            began.elapsed().as_secs() < 15,
            "tiny-copy still runs: {:?}",
            running(&server)
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(running(&server), ["tiny.en-q8_0"]);
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    assert_eq!(metric(&metrics, "sori_model_loaded{model=\"tiny-copy\"}"), 0.0);

    // The next request starts it again.
    let (status, again) = transcribe_with(&url, "c.wav", jfk(), Some("tiny-copy"));
    assert_eq!(status, 200, "{again}");
    assert!(again["timings"]["model_load_sec"].as_f64().unwrap() > 0.0, "{again}");
    assert!(again["text"].as_str().unwrap().to_lowercase().contains("country"));
}
