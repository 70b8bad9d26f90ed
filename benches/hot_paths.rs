//! Criterion benches of the pure-Rust hot paths: decoding, resampling, the
//! log-mel spectrogram, the PerformanceMonitor's own cost, and recording and
//! rendering metrics.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use sori::monitor::{GpuProbe, PerformanceMonitor, PerformanceReport};
use sori::telemetry::metrics;

fn jfk() -> bytes::Bytes {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audio/jfk.wav");
    std::fs::read(path).expect("tests/fixtures/audio/jfk.wav").into()
}

fn decode(c: &mut Criterion) {
    let wav = jfk();
    c.bench_function("decode jfk.wav (11 s, 16 kHz: no resampling)", |b| {
        b.iter(|| sori::audio::prepare(black_box(wav.clone()), 3600.0).unwrap())
    });
    let mp3: bytes::Bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/audio/jfk.mp3"))
        .unwrap()
        .into();
    c.bench_function("decode + resample jfk.mp3 (11 s, 44.1 kHz)", |b| {
        b.iter(|| sori::audio::prepare(black_box(mp3.clone()), 3600.0).unwrap())
    });
}

fn spectrogram(c: &mut Criterion) {
    let maker = sori::engine::MelSpectrogramMaker::new(&sori::model::MelFilters {
        n_mel: 80,
        n_bins: 201,
        weights: sori::model::mel::filterbank(80),
    })
    .unwrap();
    let speech = sori::audio::prepare(jfk(), 3600.0).unwrap().samples;
    let thirty: Vec<f32> = speech.iter().cycle().take(30 * 16_000).copied().collect();
    c.bench_function("log-mel spectrogram of 30 s (80 bands)", |b| {
        b.iter(|| maker.spectrogram(black_box(&thirty)))
    });
}

fn monitor(c: &mut Criterion) {
    let monitor = PerformanceMonitor::new(Duration::from_millis(500), GpuProbe::absent());
    c.bench_function("monitor: measure an empty closure (start + end readings)", |b| {
        b.iter(|| monitor.measure(|| black_box(1)))
    });
}

fn report() -> PerformanceReport {
    let monitor = PerformanceMonitor::new(Duration::from_millis(500), GpuProbe::absent());
    monitor.measure(|| std::thread::sleep(Duration::from_millis(5))).1
}

fn metrics_paths(c: &mut Criterion) {
    let handle = metrics::install();
    let r = report();
    c.bench_function("metrics: record one transcription", |b| {
        b.iter(|| metrics::record_transcription("bench", black_box(&r), 11.0, 0.01))
    });
    for _ in 0..10_000 {
        metrics::record_transcription("bench", &r, 11.0, 0.01);
    }
    c.bench_function("metrics: render /metrics after 10,000 recorded transcriptions", |b| {
        b.iter(|| black_box(handle.render()))
    });
}

criterion_group!(benches, decode, spectrogram, monitor, metrics_paths);
criterion_main!(benches);
