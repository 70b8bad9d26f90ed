//! The real engine on real speech: the shortened audio context for short clips
//! gives the same words, and detects the same language, as whisper.cpp's full
//! 30 s window; audio longer than a window is cut at its pauses and its pieces'
//! words and times come back in place.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use sori::audio;
use sori::engine::{WhisperSettings, WhisperTranscriber};

fn samples(path: &Path) -> Vec<f32> {
    audio::prepare(Bytes::from(std::fs::read(path).unwrap()), 3600.0)
        .unwrap()
        .samples
}

fn transcribe(engine: &WhisperTranscriber, path: &Path) -> sori::engine::Transcript {
    transcribe_samples(engine, &samples(path)).unwrap()
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
    // "Ask not!" as a live utterance has it (half a second of silence after):
    // greedy at the sized context falls just under whisper's log-probability
    // threshold, and the sampled try at 0.2 on the same context is kept.
    let ask_not = tmp.path().join("ask-not.wav");
    let jfk = fixture_audio("jfk.wav");
    sox(&[
        jfk.to_str().unwrap(),
        ask_not.to_str().unwrap(),
        "trim",
        "3.1",
        "1.8",
        "pad",
        "0",
        "0.5",
    ]);
    // (model, clip, reference, language); `base` detects the language itself.
    let cases = [
        ("tiny.en", fixture_audio("jfk.wav"), JFK_REFERENCE, "en"),
        ("tiny.en", spoken, sentence, "en"),
        ("tiny.en", short_jfk, "And so my fellow Americans", "en"),
        ("tiny.en", ask_not.clone(), "Ask not", "en"),
        ("base", fixture_audio("ko_test.wav"), KO_REFERENCE, "ko"),
        ("base", fixture_audio("jfk.wav"), JFK_REFERENCE, "en"),
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
                    gpu_device: None,
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
        if path == ask_not {
            let temperatures: Vec<f32> = short.segments.iter().map(|s| s.decoding.temperature).collect();
            assert_eq!(
                temperatures,
                [0.2],
                "greedy failed its checks; the sampled try was kept"
            );
        }
        assert_eq!(full.language, language, "{}", path.display());
    }
}

/// Sentences for the long clip, none of them said twice.
const LONG_SENTENCES: [&str; 10] = [
    "The committee decided to visit the harbour bridge last Tuesday.",
    "Our neighbour wrote a letter about the yellow house on the hill.",
    "A young engineer finally repaired the broken kitchen clock.",
    "The old captain took a photograph of the ancient stone wall.",
    "My sister bought a ticket to the morning train to the coast.",
    "The city council read a long report on the public library.",
    "A local farmer carefully painted a small wooden boat in the spring.",
    "The night nurse talked for hours about the garden behind the school.",
    "The new teacher could not find the museum of science after the storm.",
    "Every student forgot about the mountain road during the holidays.",
];

#[test]
fn audio_longer_than_a_window_comes_back_whole_and_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let pause = vec![0.0f32; 8_000];
    let jfk = samples(&fixture_audio("jfk.wav"));
    // Five sentences, JFK, five sentences, JFK: about 70 s, three pieces or more.
    let (mut clip, mut reference, mut jfk_starts) = (Vec::new(), Vec::new(), Vec::new());
    for (i, sentence) in LONG_SENTENCES.iter().enumerate() {
        let path = tmp.path().join(format!("s{i}.wav"));
        espeak(sentence, &path);
        clip.extend(samples(&path));
        clip.extend(&pause);
        reference.push(sentence.to_string());
        if i % 5 == 4 {
            jfk_starts.push(clip.len() as f64 / 16_000.0);
            clip.extend(&jfk);
            clip.extend(&pause);
            reference.push(JFK_REFERENCE.to_string());
        }
    }
    let seconds = clip.len() as f64 / 16_000.0;
    assert!(seconds > 60.0, "the clip spans more than two windows: {seconds} s");
    let reference = reference.join(" ");
    for model in ["tiny.en", "base"] {
        let transcript = transcribe_samples(transcriber(model).as_ref(), &clip).unwrap();
        let error = wer(&reference, &transcript.text);
        assert!(error <= 0.15, "{model}: WER {error}: {:?}", transcript.text);
        assert_eq!(transcript.language, "en", "{model}");
        let segments = &transcript.segments;
        for pair in segments.windows(2) {
            assert!(pair[1].start >= pair[0].start, "{model}: out of order: {pair:?}");
        }
        assert!(
            segments.iter().all(|s| s.start < s.end && s.end <= seconds + 0.5),
            "{model}: {segments:?}"
        );
        // Each "my fellow Americans" is placed where JFK starts: the segment
        // holding it starts within a couple of seconds of his first words (whisper's
        // timestamps are coarse), where a piece's offset left out would put it
        // tens of seconds early.
        let addressed: Vec<f64> = segments
            .iter()
            .filter(|s| s.text.to_lowercase().contains("fellow americans"))
            .map(|s| s.start)
            .collect();
        assert_eq!(addressed.len(), 2, "{model}: {segments:?}");
        for (found, start) in addressed.iter().zip(&jfk_starts) {
            assert!(
                (start - 2.0..start + 3.0).contains(found),
                "{model}: JFK starts at {start:.1} s; \"fellow Americans\" found at {found:.1} s"
            );
        }
    }
}
