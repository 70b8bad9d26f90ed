//! The real engine on real speech: converted models, whisper.cpp, every format.

mod common;

use bytes::Bytes;
use common::*;
use sori::audio;
use sori::engine::{TranscribeOptions, Transcriber};

fn transcribe_file(model: &str, path: &std::path::Path, language: Option<&str>) -> sori::engine::Transcript {
    let audio = audio::prepare(Bytes::from(std::fs::read(path).unwrap()), 3600.0).unwrap();
    let options = TranscribeOptions {
        language: language.map(String::from),
    };
    transcriber(model).transcribe(&audio.samples, &options).unwrap()
}

#[test]
fn tiny_en_transcribes_jfk_wav() {
    let t = transcribe_file("tiny.en", &shared_audio("jfk.wav"), None);
    assert!(
        t.text
            .to_lowercase()
            .contains("ask not what your country can do for you"),
        "{}",
        t.text
    );
    assert!(wer(JFK_REFERENCE, &t.text) <= 0.1, "{}", t.text);
    assert_eq!(t.language, "en");
    let last = t.segments.last().unwrap();
    assert!(last.end > 8.0 && last.end <= 11.5, "segments {:?}", t.segments);
}
