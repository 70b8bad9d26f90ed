//! The real engine on real speech: the shortened audio context for short clips
//! gives the same words, and detects the same language, as whisper.cpp's full
//! 30 s window.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use sori::audio;
use sori::engine::{TranscribeOptions, Transcriber, WhisperSettings, WhisperTranscriber};

fn transcribe(engine: &WhisperTranscriber, path: &Path) -> sori::engine::Transcript {
    let audio = audio::prepare(Bytes::from(std::fs::read(path).unwrap()), 3600.0).unwrap();
    engine
        .transcribe(&audio.samples, &TranscribeOptions::default())
        .unwrap()
}

fn espeak(text: &str, out: &Path) {
    let raw = out.with_extension("espeak.wav");
    let status = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status();
    assert!(status.expect("espeak-ng is installed (make test-deps)").success());
    sox(&[raw.to_str().unwrap(), "-r", "16000", "-c", "1", out.to_str().unwrap()]);
}

#[test]
fn the_short_audio_context_keeps_the_words_of_the_full_window() {
    let tmp = tempfile::tempdir().unwrap();
    let sentence = "The quick brown fox jumps over the lazy dog, and then it runs back to the old farm house.";
    let spoken = tmp.path().join("sentence.wav");
    espeak(sentence, &spoken);
    let short_jfk = jfk_excerpt(tmp.path(), 3.2);
    // (model, clip, reference, language); `base` detects the language itself.
    let cases = [
        ("tiny.en", shared_audio("jfk.wav"), JFK_REFERENCE, "en"),
        ("tiny.en", spoken, sentence, "en"),
        ("tiny.en", short_jfk, "And so my fellow Americans", "en"),
        ("base", shared_audio("ko_test.wav"), KO_REFERENCE, "ko"),
        ("base", shared_audio("jfk.wav"), JFK_REFERENCE, "en"),
    ];
    for (model, path, reference, language) in cases {
        let path_to_model = model_path(model);
        let load = |short| {
            WhisperTranscriber::load(
                &path_to_model,
                model,
                WhisperSettings {
                    threads: 2,
                    short_audio_context: short,
                },
            )
            .unwrap()
        };
        let (short, full) = (transcribe(&load(true), &path), transcribe(&load(false), &path));
        let error = |t: &str| {
            if language == "ko" {
                cer(reference, t)
            } else {
                wer(reference, t)
            }
        };
        assert!(
            error(&short.text) <= error(&full.text) + 0.02,
            "{}: short context {:?} vs full {:?}",
            path.display(),
            short.text,
            full.text
        );
        assert_eq!(short.language, language, "{}", path.display());
        assert_eq!(full.language, language, "{}", path.display());
    }
}
