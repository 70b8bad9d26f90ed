//! Word timestamps against known timing: a clip of espeak-ng words separated
//! by silences of known length (each word's onset is known to the sample),
//! and JFK, whose onsets after pauses were timed by hand from the waveform
//! (`tests/fixtures/audio/jfk.words.json`). The median error of word starts
//! must be at most 0.15 s, and no word may be off by more than 0.5 s.

mod common;

use std::process::Command;

use common::*;
use sori::engine::{TranscribeOptions, Transcriber, Word};

const MEDIAN_LIMIT_SEC: f64 = 0.15;
const MAX_LIMIT_SEC: f64 = 0.5;

/// 16 kHz mono samples of any file sox reads.
fn samples_of(path: &std::path::Path) -> Vec<f32> {
    let out = Command::new("sox")
        .args([
            path.to_str().unwrap(),
            "-t",
            "raw",
            "-r",
            "16000",
            "-c",
            "1",
            "-e",
            "float",
            "-b",
            "32",
            "-",
        ])
        .output()
        .expect("sox is installed (make test-deps)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn words_of(transcriber: &dyn Transcriber, samples: &[f32]) -> Vec<Word> {
    let mut blocks = samples.chunks(16_384).map(|block| Ok(block.to_vec()));
    let options = TranscribeOptions {
        language: Some("en".into()),
        word_timestamps: true,
        ..TranscribeOptions::default()
    };
    let transcript = transcriber.transcribe(&mut blocks, &options).unwrap();
    let words: Vec<Word> = transcript.segments.into_iter().flat_map(|s| s.words).collect();
    assert!(words.windows(2).all(|w| w[0].start <= w[1].start), "{words:?}");
    words
}

fn normalized(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The pairs (spoken index, heard index) of a least-edits alignment of two
/// word sequences: equal and substituted words pair up, so a misheard word
/// is still timed, and a word split or merged by the recognizer leaves the
/// rest in step.
fn aligned(spoken: &[String], heard: &[String]) -> Vec<(usize, usize)> {
    let (n, m) = (spoken.len(), heard.len());
    let mut cost = vec![vec![0usize; m + 1]; n + 1];
    for i in 0..=n {
        for j in 0..=m {
            cost[i][j] = match (i, j) {
                (0, j) => j,
                (i, 0) => i,
                (i, j) => (cost[i - 1][j - 1] + usize::from(spoken[i - 1] != heard[j - 1]))
                    .min(cost[i - 1][j] + 1)
                    .min(cost[i][j - 1] + 1),
            };
        }
    }
    let (mut i, mut j, mut pairs) = (n, m, Vec::new());
    while i > 0 && j > 0 {
        if cost[i][j] == cost[i - 1][j - 1] + usize::from(spoken[i - 1] != heard[j - 1]) {
            pairs.push((i - 1, j - 1));
            (i, j) = (i - 1, j - 1);
        } else if cost[i][j] == cost[i - 1][j] + 1 {
            i -= 1;
        } else {
            j -= 1;
        }
    }
    pairs.reverse();
    pairs
}

/// Median and largest of the absolute errors.
fn median_and_max(errors: &mut [f64]) -> (f64, f64) {
    errors.sort_by(f64::total_cmp);
    let median = if errors.len() % 2 == 1 {
        errors[errors.len() / 2]
    } else {
        (errors[errors.len() / 2 - 1] + errors[errors.len() / 2]) / 2.0
    };
    (median, errors[errors.len() - 1])
}

fn assert_within_limits(what: &str, errors: &mut [f64]) {
    let (median, max) = median_and_max(errors);
    eprintln!(
        "{what}: {} words, median start error {median:.3} s, largest {max:.3} s",
        errors.len()
    );
    assert!(
        median <= MEDIAN_LIMIT_SEC,
        "{what}: median {median:.3} s over {MEDIAN_LIMIT_SEC}: {errors:?}"
    );
    assert!(max <= MAX_LIMIT_SEC, "{what}: a word {max:.3} s off: {errors:?}");
}

#[test]
fn espeak_words_start_where_their_sound_starts() {
    let dir = tempfile::tempdir().unwrap();
    let spoken = ["the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog"];
    let (lead, gap) = (6_400usize, 8_000usize); // 0.4 s before the first word, 0.5 s between words
    let mut clip = vec![0.0f32; lead];
    let mut onsets = Vec::new();
    for (i, word) in spoken.iter().enumerate() {
        let raw = dir.path().join(format!("{i}.wav"));
        let status = Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w", raw.to_str().unwrap(), word])
            .status()
            .expect("espeak-ng is installed (make test-deps)");
        assert!(status.success());
        // The word without espeak's own leading and trailing silence: its onset is exact.
        let trimmed = dir.path().join(format!("{i}-trimmed.wav"));
        let args = [
            "silence", "1", "0.01", "1%", "reverse", "silence", "1", "0.01", "1%", "reverse",
        ];
        sox(&[
            &[
                raw.to_str().unwrap(),
                "-r",
                "16000",
                "-c",
                "1",
                trimmed.to_str().unwrap(),
            ][..],
            &args[..],
        ]
        .concat());
        onsets.push(clip.len() as f64 / 16_000.0);
        clip.extend(samples_of(&trimmed));
        clip.extend(std::iter::repeat_n(0.0, gap));
    }
    // base: tiny.en's times for these words vary from run to run (one word
    // up to 0.9 s off in some runs, BENCHMARKS.md).
    let words = words_of(transcriber("base").as_ref(), &clip);
    let heard: Vec<String> = words.iter().map(|w| normalized(&w.word)).collect();
    // Only pairs of like words are timed: a word the recognizer merged with
    // its neighbour ("onto green" heard as "anto-breen") has no one onset.
    let pairs: Vec<(usize, usize)> = aligned(&spoken.map(String::from), &heard)
        .into_iter()
        .filter(|&(s, h)| {
            let (a, b): (Vec<char>, Vec<char>) = (spoken[s].chars().collect(), heard[h].chars().collect());
            edit_distance(&a, &b) * 2 <= a.len().max(b.len())
        })
        .collect();
    assert!(pairs.len() + 2 >= spoken.len(), "most words recognized: {words:?}");
    let mut errors: Vec<f64> = pairs.iter().map(|&(s, h)| (words[h].start - onsets[s]).abs()).collect();
    assert_within_limits("espeak-ng words", &mut errors);
}

#[test]
fn jfk_words_start_at_their_hand_timed_onsets() {
    let fixture: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo_root().join("tests/fixtures/audio/jfk.words.json")).unwrap())
            .unwrap();
    // tiny.en: base puts one word ("what", after a 1.1 s pause) at the end of
    // the word before the pause (BENCHMARKS.md).
    let words = words_of(transcriber("tiny.en").as_ref(), &samples_of(&fixture_audio("jfk.wav")));
    let mut errors = Vec::new();
    for onset in fixture["onsets"].as_array().unwrap() {
        let (word, occurrence) = (
            onset["word"].as_str().unwrap(),
            onset["occurrence"].as_u64().unwrap() as usize,
        );
        let found = words
            .iter()
            .filter(|w| normalized(&w.word) == word)
            .nth(occurrence - 1)
            .unwrap_or_else(|| panic!("{word} #{occurrence} not recognized: {words:?}"));
        errors.push((found.start - onset["start"].as_f64().unwrap()).abs());
    }
    assert_within_limits("JFK", &mut errors);
}

#[test]
fn words_cover_the_transcript_and_stay_inside_their_segments() {
    let samples = samples_of(&fixture_audio("jfk.wav"));
    let mut blocks = samples.chunks(16_384).map(|block| Ok(block.to_vec()));
    let options = TranscribeOptions {
        word_timestamps: true,
        ..TranscribeOptions::default()
    };
    let transcript = transcriber("tiny.en").transcribe(&mut blocks, &options).unwrap();
    for segment in &transcript.segments {
        let joined: Vec<&str> = segment.words.iter().map(|w| w.word.as_str()).collect();
        assert_eq!(joined.join(" "), segment.text, "the words are the segment's text");
        for word in &segment.words {
            assert!(
                segment.start <= word.start && word.start <= word.end && word.end <= segment.end,
                "{word:?} in {segment:?}"
            );
        }
    }
    let without = transcribe_samples(transcriber("tiny.en").as_ref(), &samples).unwrap();
    assert!(
        without.segments.iter().all(|s| s.words.is_empty()),
        "words only when asked for"
    );
}
