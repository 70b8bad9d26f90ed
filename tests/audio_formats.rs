//! Decoding and resampling checked against an independent implementation:
//! every format is compared with sox's own 16 kHz mono rendering of the source.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// sox's 16 kHz mono f32 rendering of `path`.
fn sox_reference(path: &Path, tmp: &Path) -> Vec<f32> {
    let raw = tmp.join("reference.raw");
    sox(&[
        path.to_str().unwrap(),
        "-r",
        "16000",
        "-c",
        "1",
        "-e",
        "floating-point",
        "-b",
        "32",
        "-t",
        "raw",
        raw.to_str().unwrap(),
    ]);
    std::fs::read(raw)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The best normalized correlation of `a` against `b` over lags up to
/// `max_lag` samples, on a 3 s window of speech; returns (correlation, lag).
fn best_correlation(a: &[f32], b: &[f32], max_lag: usize) -> (f64, isize) {
    let (start, len) = (16_000, 48_000);
    let window = &b[start..start + len];
    let mut best = (f64::MIN, 0isize);
    for lag in -(max_lag as isize)..=max_lag as isize {
        let from = (start as isize + lag) as usize;
        let other = &a[from..from + len];
        let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in other.iter().zip(window) {
            dot += (*x as f64) * (*y as f64);
            na += (*x as f64).powi(2);
            nb += (*y as f64).powi(2);
        }
        let c = dot / (na.sqrt() * nb.sqrt()).max(1e-12);
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

fn sori_prepare(path: &Path) -> sori::audio::PreparedAudio {
    sori::audio::prepare(std::fs::read(path).unwrap().into(), 3600.0).unwrap()
}

/// The Python with PyAV that `make test` sets up, to write M4A/AAC.
fn test_tools_python() -> PathBuf {
    let python = repo_root().join(".venv-test/bin/python");
    assert!(
        python.exists(),
        "run `make test-tools` (part of `make test`) to create {}",
        python.display()
    );
    python
}

#[test]
fn lossless_variants_match_sox_sample_for_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture_audio("jfk.wav");
    let reference = sox_reference(&source, tmp.path());
    // (file name, sox options, whether the variant has another sample rate)
    let variants: &[(&str, &[&str], bool)] = &[
        ("u8.wav", &["-b", "8"], false),
        ("s24.wav", &["-b", "24"], false),
        ("s32.wav", &["-b", "32"], false),
        ("f32.wav", &["-e", "floating-point", "-b", "32"], false),
        ("stereo-44k.wav", &["-r", "44100", "-c", "2"], true),
        ("8k.wav", &["-r", "8000"], true),
        ("48k-24bit.flac", &["-r", "48000", "-b", "24"], true),
    ];
    for (name, effects, resampled) in variants {
        let path = tmp.path().join(name);
        let mut args = vec![source.to_str().unwrap()];
        args.extend_from_slice(effects);
        args.push(path.to_str().unwrap());
        sox(&args);
        let ours = sori_prepare(&path);
        assert!(
            (ours.duration_sec - 11.0).abs() < 0.01,
            "{name}: {} s",
            ours.duration_sec
        );
        assert!(
            ours.samples.len().abs_diff(reference.len()) <= 2,
            "{name}: {} vs {}",
            ours.samples.len(),
            reference.len()
        );
        let (corr, lag) = best_correlation(&ours.samples, &reference, 40);
        // Same rate: only the sample format differs. Resampled twice (by sox
        // for the variant, by Sori back to 16 kHz): the two resamplers' filters
        // and a sub-sample offset (one 48 kHz input sample at most) remain.
        let floor = if *resampled { 0.98 } else { 0.999 };
        assert!(corr > floor && lag == 0, "{name}: correlation {corr:.4} at lag {lag}");
    }
}

#[test]
fn lossy_formats_decode_to_the_same_speech() {
    let tmp = tempfile::tempdir().unwrap();
    let source = fixture_audio("jfk.wav");
    let reference = sox_reference(&source, tmp.path());
    let ogg = tmp.path().join("jfk.ogg");
    sox(&[source.to_str().unwrap(), ogg.to_str().unwrap()]);
    let m4a = tmp.path().join("jfk.m4a");
    let status = Command::new(test_tools_python())
        .arg(repo_root().join("tests/tools/to_m4a.py"))
        .arg(&source)
        .arg(&m4a)
        .status()
        .unwrap();
    assert!(status.success(), "writing the M4A/AAC test file failed");
    for path in [fixture_audio("jfk.mp3"), ogg, m4a] {
        let ours = sori_prepare(&path);
        assert!(
            (ours.duration_sec - 11.0).abs() < 0.2,
            "{}: {} s",
            path.display(),
            ours.duration_sec
        );
        let (corr, lag) = best_correlation(&ours.samples, &reference, 2400);
        assert!(corr > 0.9, "{}: correlation {corr:.4} at lag {lag}", path.display());
    }
}
