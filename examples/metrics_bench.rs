//! `/metrics` render time for `scripts/compare_peers.py`: records 10,000 transcriptions
//! into the real Prometheus recorder (two models, with errors and HTTP request
//! counts beside them), then renders the page 2,000 times, timing each render,
//! and prints one JSON line: median, p99 and largest time, and the page's size.

use std::time::{Duration, Instant};

use sori::monitor::{GpuProbe, PerformanceMonitor};
use sori::telemetry::metrics;

const RECORDED: usize = 10_000;
const RENDERS: usize = 2_000;

fn main() {
    let handle = metrics::install();
    let monitor = PerformanceMonitor::new(Duration::from_millis(500), GpuProbe::absent());
    let (_, report) = monitor.measure(|| std::thread::sleep(Duration::from_millis(5)));
    for i in 0..RECORDED {
        let model = if i % 2 == 0 { "base" } else { "tiny.en" };
        metrics::record_transcription(model, &report, 1.0 + (i % 600) as f64, (i % 7) as f64 * 0.1);
        metrics::record_request("/transcribe", if i % 50 == 0 { 415 } else { 200 });
        if i % 50 == 0 {
            metrics::record_error("unsupported_media_type");
        }
    }
    let mut times: Vec<f64> = (0..RENDERS)
        .map(|_| {
            let started = Instant::now();
            let page = handle.render();
            std::hint::black_box(page);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let answer = serde_json::json!({
        "recorded": RECORDED,
        "renders": RENDERS,
        "median_ms": at(0.5),
        "p99_ms": at(0.99),
        "max_ms": at(1.0),
        "page_bytes": handle.render().len(),
    });
    println!("{answer}");
}
