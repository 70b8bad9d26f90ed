//! Real transcription over the real router: converted models, real speech in
//! every supported container, the JSON contract and the two files it leaves.

mod common;

use std::path::Path;
use std::time::Instant;

use axum::http::StatusCode;
use common::http::*;
use common::*;
use serde_json::Value;

/// Transcribes `path` with `model` through a fresh app; returns the body, the
/// request's wall time and the data dir.
async fn transcribe(model: &str, path: &Path, language: Option<&str>) -> (Value, f64, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = test_app(transcriber(model), dir.path(), TestLimits::default()).await;
    let bytes = std::fs::read(path).unwrap();
    let name = path.file_name().unwrap().to_str().unwrap();
    let started = Instant::now();
    let (status, _, body) = send(&app, transcribe_request(name, &bytes, language)).await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(status, StatusCode::OK, "{name}: {body}");
    (body, wall, dir)
}

fn assert_jfk(body: &Value) {
    let text = body["text"].as_str().unwrap();
    let plain = words(text).join(" ");
    assert!(plain.contains("ask not what your country can do for you"), "{text}");
    assert!(wer(JFK_REFERENCE, text) <= 0.1, "WER too high: {text}");
    assert_eq!(body["language"], "en");
}

fn gpu_driver_present() -> bool {
    Path::new("/proc/driver/nvidia").exists()
}

#[tokio::test]
async fn jfk_wav_gives_the_whole_contract_and_its_files() {
    let (body, wall, dir) = transcribe("tiny.en", &fixture_audio("jfk.wav"), None).await;
    assert_jfk(&body);
    assert_eq!(body["filename"], "jfk.wav");
    assert_eq!(body["model"], "tiny.en");
    assert!(
        (body["audio_duration_sec"].as_f64().unwrap() - 11.0).abs() < 0.01,
        "{body}"
    );
    let word_count = body["word_count"].as_u64().unwrap() as usize;
    assert_eq!(word_count, body["text"].as_str().unwrap().split_whitespace().count());
    assert!((20..=24).contains(&word_count), "{body}");

    let segments = body["segments"].as_array().unwrap();
    assert!(!segments.is_empty());
    let mut last_end = 0.0;
    for s in segments {
        let (start, end) = (s["start"].as_f64().unwrap(), s["end"].as_f64().unwrap());
        assert!(start >= last_end - 1e-9 && end > start && end <= 11.5, "{segments:?}");
        last_end = end;
    }

    let perf = &body["performance"];
    for key in EIGHT {
        assert!(perf[key].is_number(), "performance.{key} missing: {perf}");
    }
    let f = |k: &str| perf[k].as_f64().unwrap();
    assert!(
        f("processing_time_sec") > 0.0 && f("processing_time_sec") <= wall,
        "{perf} within {wall} s"
    );
    assert!(f("ram_mb_peak") >= f("ram_mb_avg") && f("ram_mb_avg") > 0.0, "{perf}");
    assert!(
        f("cpu_percent_max") >= f("cpu_percent_avg") && f("cpu_percent_avg") > 0.0,
        "{perf}"
    );
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(f("cpu_percent_max") <= cores * 100.0 * 1.15, "{perf}");
    assert!(perf["sample_count"].as_u64().unwrap() >= 2);
    let rtf = f("real_time_factor");
    assert!((rtf - f("processing_time_sec") / 11.0).abs() < 0.01, "{perf}");
    if !gpu_driver_present() {
        assert_eq!(perf["gpu_available"], false);
        assert_eq!(
            (f("gpu_vram_mb_current"), f("gpu_vram_mb_peak"), f("gpu_percent")),
            (0.0, 0.0, 0.0)
        );
    }

    // The two files: the transcript and the record.
    let id = body["file_id"].as_str().unwrap();
    let text = std::fs::read_to_string(dir.path().join(format!("{id}.txt"))).unwrap();
    assert_eq!(text, body["text"].as_str().unwrap());
    let record: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(format!("{id}.performance.json"))).unwrap()).unwrap();
    for key in [
        "file_id",
        "filename",
        "created_at",
        "model",
        "language",
        "audio_duration_sec",
    ] {
        assert!(!record[key].is_null(), "record.{key} missing: {record}");
    }
    assert_eq!(record["file_id"], id);
    assert_eq!(record["performance"], body["performance"]);
    let created = chrono::DateTime::parse_from_rfc3339(record["created_at"].as_str().unwrap()).unwrap();
    assert!((chrono::Utc::now() - created.to_utc()).num_seconds().abs() < 120);
    assert_eq!(
        data_files(dir.path()),
        vec![
            format!("{id}.performance.json"),
            format!("{id}.segments.json"),
            format!("{id}.txt")
        ],
        "the pair, the segments, no temporary files"
    );

    // GET /files/{id} returns the record; /text the transcript.
    let (app, _) = test_app(transcriber("tiny.en"), dir.path(), TestLimits::default()).await;
    let (status, _, served) = send(&app, get(&format!("/files/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, record);
    let (status, _, served_text) = send(&app, get(&format!("/files/{id}/text"))).await;
    assert_eq!((status, served_text.as_str()), (StatusCode::OK, Some(text.as_str())));
    // Its subtitles, from the kept segments.
    let (status, headers, srt) = send(&app, get(&format!("/files/{id}/srt"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/x-subrip");
    let srt = srt.as_str().unwrap();
    assert!(srt.starts_with("1\n00:00:00,000 --> "), "{srt}");
    assert!(srt.to_lowercase().contains("your country"), "{srt}");
    let (status, _, vtt) = send(&app, get(&format!("/files/{id}/vtt"))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        vtt.as_str().unwrap().starts_with("WEBVTT\n\n1\n00:00:00.000 --> "),
        "{vtt}"
    );
    let (status, _, missing) = send(&app, get(&format!("/files/{}/srt", sori::store::FileId::new()))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // Without its record (being written, or half deleted) a transcription is
    // not there: its transcript and subtitles are not served.
    std::fs::remove_file(dir.path().join(format!("{id}.performance.json"))).unwrap();
    for read in ["text", "srt", "vtt", "json"] {
        let (status, _, body) = send(&app, get(&format!("/files/{id}/{read}"))).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{read}: {body}");
    }
}

#[tokio::test]
async fn jfk_mp3_flac_ogg_and_stereo_44k_all_transcribe() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = fixture_audio("jfk.wav");
    let wav = wav.to_str().unwrap();
    let flac = tmp.path().join("jfk.flac");
    let ogg = tmp.path().join("jfk.ogg");
    let stereo = tmp.path().join("jfk-stereo-44k.wav");
    let stereo_24bit = tmp.path().join("jfk-48k-24bit.wav");
    sox(&[wav, flac.to_str().unwrap()]);
    sox(&[wav, ogg.to_str().unwrap()]);
    sox(&[wav, "-r", "44100", "-c", "2", stereo.to_str().unwrap()]);
    sox(&[wav, "-r", "48000", "-b", "24", stereo_24bit.to_str().unwrap()]);
    for path in [fixture_audio("jfk.mp3"), flac, ogg, stereo, stereo_24bit] {
        let (body, _, _) = transcribe("tiny.en", &path, None).await;
        assert_jfk(&body);
        let duration = body["audio_duration_sec"].as_f64().unwrap();
        assert!((duration - 11.0).abs() < 0.2, "{}: {duration} s", path.display());
    }
}

#[tokio::test]
async fn korean_is_detected_and_transcribed_by_base() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = fixture_audio("ko_test.wav");
    let flac = tmp.path().join("ko.flac");
    let ogg = tmp.path().join("ko.ogg");
    sox(&[wav.to_str().unwrap(), flac.to_str().unwrap()]);
    sox(&[wav.to_str().unwrap(), ogg.to_str().unwrap()]);
    for path in [wav, flac, ogg] {
        let (body, _, _) = transcribe("base", &path, None).await;
        assert_eq!(body["language"], "ko", "{body}");
        assert_eq!(body["model"], "base");
        let text = body["text"].as_str().unwrap();
        let error = cer(KO_REFERENCE, text);
        assert!(error <= 0.25, "{}: CER {error:.2} for {text}", path.display());
    }
}

#[tokio::test]
async fn a_given_language_is_used_and_results_repeat() {
    let wav = fixture_audio("jfk.wav");
    let (first, _, _) = transcribe("base", &wav, Some("en")).await;
    let (second, _, _) = transcribe("base", &wav, Some("en")).await;
    assert_jfk(&first);
    assert_eq!(
        first["text"], second["text"],
        "a fresh state per request gives the same words"
    );
    assert_eq!(first["segments"], second["segments"]);
}

#[tokio::test]
async fn a_clip_shorter_than_a_second_still_transcribes() {
    let tmp = tempfile::tempdir().unwrap();
    // "And so" from the start of the JFK clip: 0.2 s to 0.9 s.
    let clip = jfk_excerpt(tmp.path(), 0.8);
    let (body, _, _) = transcribe("tiny.en", &clip, None).await;
    assert!(
        (body["audio_duration_sec"].as_f64().unwrap() - 0.8).abs() < 0.01,
        "{body}"
    );
    assert!(body["performance"]["processing_time_sec"].as_f64().unwrap() > 0.0);
}

/// Two transcriptions at once on two workers: each says that other work
/// overlapped it and that its figures are the whole process's; one alone
/// says its figures are its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_report_says_whether_other_jobs_overlapped_it() {
    let dir = tempfile::tempdir().unwrap();
    let limits = TestLimits {
        workers: 2,
        ..TestLimits::default()
    };
    let (app, _) = test_app(transcriber("tiny.en"), dir.path(), limits).await;
    let audio = tempfile::tempdir().unwrap();
    let thrice = audio.path().join("jfk-thrice.wav");
    let jfk = fixture_audio("jfk.wav");
    let jfk = jfk.to_str().unwrap();
    sox(&[jfk, jfk, jfk, thrice.to_str().unwrap()]);
    let bytes = std::fs::read(&thrice).unwrap();
    let (a, b) = tokio::join!(
        send(&app, transcribe_request("a.wav", &bytes, None)),
        send(&app, transcribe_request("b.wav", &bytes, None)),
    );
    for (status, _, body) in [a, b] {
        assert_eq!(status, StatusCode::OK, "{body}");
        let p = &body["performance"];
        assert_eq!(p["concurrent_jobs_max"], 1, "{p}");
        assert_eq!(p["scope"], "process", "{p}");
        let id = body["file_id"].as_str().unwrap();
        let (_, _, record) = send(&app, get(&format!("/files/{id}"))).await;
        assert_eq!(record["performance"]["scope"], "process", "the record says so too");
    }
    let (status, _, alone) = send(&app, transcribe_request("c.wav", &bytes, None)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(alone["performance"]["concurrent_jobs_max"], 0, "{alone}");
    assert_eq!(alone["performance"]["scope"], "request", "{alone}");
}
