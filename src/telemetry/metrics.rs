//! Prometheus metrics: every name, help text and bucket in one place, and the
//! helpers that record them. Names follow Prometheus conventions: a `sori_`
//! prefix, base units, `_total` on counters; labels are low-cardinality only
//! (model, endpoint, outcome, error code), never a file name or id.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::engine::Engine;
use crate::models::Models;
use crate::monitor::{process, GpuProbe, PerformanceReport};

const MIB: f64 = 1024.0 * 1024.0;

/// Buckets for durations of transcription work: 100 ms to an hour.
const SECONDS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];
/// Buckets for audio lengths: a second to three hours.
const AUDIO_SECONDS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0,
];
/// Buckets for real-time factors (processing seconds per audio second).
const RTF: &[f64] = &[0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0];
/// Buckets for CPU use in cores (1.0 = one core busy).
const CORES: &[f64] = &[
    0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 32.0,
];
/// Buckets for memory: 64 MiB to 64 GiB.
const BYTES: &[f64] = &[
    64.0 * MIB,
    128.0 * MIB,
    256.0 * MIB,
    512.0 * MIB,
    1024.0 * MIB,
    2048.0 * MIB,
    4096.0 * MIB,
    8192.0 * MIB,
    16384.0 * MIB,
    32768.0 * MIB,
    65536.0 * MIB,
];
/// Buckets for database round trips: half a millisecond to a second.
const DATABASE_SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0];
/// Buckets for a 0-1 utilization.
const RATIO: &[f64] = &[0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0];

/// Histograms of the batch queue, and their buckets.
const BATCH_HISTOGRAMS: &[(&str, &[f64], Unit, &str)] = &[(
    "sori_batch_claim_seconds",
    DATABASE_SECONDS,
    Unit::Seconds,
    "Time to claim the next batch file in the database, round trip included (claims that found one).",
)];

/// Buckets for the wait from the end of speech to its transcript: 50 ms to 10 s.
const LIVE_LATENCY_SECONDS: &[f64] = &[0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0];

/// Histograms of live transcription, and their buckets.
const LIVE_HISTOGRAMS: &[(&str, &[f64], Unit, &str)] = &[(
    "sori_live_utterance_latency_seconds",
    LIVE_LATENCY_SECONDS,
    Unit::Seconds,
    "Live transcription: from the end of an utterance's audio (speech stopped, or the commit) to its completed event.",
)];

/// Per-request histograms and their buckets, in the order of
/// [`record_transcription`]'s values.
const HISTOGRAMS: &[(&str, &[f64], Unit, &str)] = &[
    (
        "sori_transcription_processing_seconds",
        SECONDS,
        Unit::Seconds,
        "Wall time of decoding, resampling and inference per transcription.",
    ),
    (
        "sori_transcription_audio_duration_seconds",
        AUDIO_SECONDS,
        Unit::Seconds,
        "Length of the transcribed audio.",
    ),
    (
        "sori_transcription_real_time_factor",
        RTF,
        Unit::Count,
        "Processing seconds per second of audio (below 1 is faster than real time).",
    ),
    (
        "sori_transcription_cpu_avg_ratio",
        CORES,
        Unit::Count,
        "Mean CPU use of the process during a transcription, in cores (1.0 = one core).",
    ),
    (
        "sori_transcription_cpu_max_ratio",
        CORES,
        Unit::Count,
        "Highest CPU use over one sampling interval during a transcription, in cores.",
    ),
    (
        "sori_transcription_memory_avg_bytes",
        BYTES,
        Unit::Bytes,
        "Mean resident memory of the process during a transcription.",
    ),
    (
        "sori_transcription_memory_peak_bytes",
        BYTES,
        Unit::Bytes,
        "Peak resident memory of the process during a transcription.",
    ),
    (
        "sori_transcription_gpu_memory_peak_bytes",
        BYTES,
        Unit::Bytes,
        "Peak GPU memory held by the process during a transcription.",
    ),
    (
        "sori_transcription_gpu_utilization_ratio",
        RATIO,
        Unit::Count,
        "Mean GPU utilization during a transcription (0-1).",
    ),
    (
        "sori_queue_wait_seconds",
        SECONDS,
        Unit::Seconds,
        "Time a transcription waited in the queue for a worker.",
    ),
];

/// The last request's eight figures, as gauges.
const LAST_REQUEST: &[(&str, Unit, &str)] = &[
    (
        "sori_last_request_cpu_avg_ratio",
        Unit::Count,
        "Mean CPU use of the last transcription, in cores.",
    ),
    (
        "sori_last_request_cpu_max_ratio",
        Unit::Count,
        "Highest CPU use of the last transcription, in cores.",
    ),
    (
        "sori_last_request_memory_avg_bytes",
        Unit::Bytes,
        "Mean resident memory during the last transcription.",
    ),
    (
        "sori_last_request_memory_peak_bytes",
        Unit::Bytes,
        "Peak resident memory during the last transcription.",
    ),
    (
        "sori_last_request_gpu_memory_current_bytes",
        Unit::Bytes,
        "GPU memory held at the end of the last transcription.",
    ),
    (
        "sori_last_request_gpu_memory_peak_bytes",
        Unit::Bytes,
        "Peak GPU memory during the last transcription.",
    ),
    (
        "sori_last_request_gpu_utilization_ratio",
        Unit::Count,
        "Mean GPU utilization during the last transcription (0-1).",
    ),
    (
        "sori_last_request_processing_seconds",
        Unit::Seconds,
        "Processing time of the last transcription.",
    ),
];

/// Installs the global recorder once and returns the handle that renders
/// `/metrics`. Later calls return the same handle.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            for (name, buckets, _, _) in HISTOGRAMS.iter().chain(BATCH_HISTOGRAMS).chain(LIVE_HISTOGRAMS) {
                builder = builder
                    .set_buckets_for_metric(Matcher::Full((*name).into()), buckets)
                    .expect("non-empty buckets");
            }
            let handle = builder
                .install_recorder()
                .expect("the metrics recorder is installed once");
            describe();
            handle
        })
        .clone()
}

fn describe() {
    for (name, _, unit, help) in HISTOGRAMS.iter().chain(BATCH_HISTOGRAMS).chain(LIVE_HISTOGRAMS) {
        describe_histogram!(*name, *unit, *help);
    }
    describe_counter!("sori_live_sessions_total", "Live transcription sessions opened.");
    describe_gauge!("sori_live_sessions_active", "Live transcription sessions open now.");
    describe_counter!(
        "sori_live_utterances_total",
        "Live utterances transcribed, by model and outcome (completed, failed)."
    );
    describe_counter!(
        "sori_live_audio_seconds_total",
        Unit::Seconds,
        "Seconds of audio received by live sessions (speech and silence)."
    );
    for (name, unit, help) in LAST_REQUEST {
        describe_gauge!(*name, *unit, *help);
    }
    describe_counter!(
        "sori_http_requests_total",
        "HTTP requests by endpoint and outcome (success, client_error, server_error)."
    );
    describe_gauge!(
        "sori_http_requests_in_flight",
        "HTTP requests being handled now, by endpoint."
    );
    describe_counter!("sori_errors_total", Unit::Count, "Error answers by error code.");
    describe_counter!(
        "sori_audio_seconds_total",
        Unit::Seconds,
        "Seconds of audio transcribed."
    );
    describe_counter!("sori_transcriptions_total", "Finished transcriptions by model.");
    describe_counter!(
        "sori_batch_claims_total",
        "Batch files this replica claimed; taken_over=true: from a replica whose lease ran out (it died or stalled)."
    );
    describe_counter!(
        "sori_batch_claims_lost_total",
        "Batch files whose result this replica did not keep: its lease ran out and another replica took the file."
    );
    describe_counter!(
        "sori_batch_requeues_total",
        "Batch files queued again instead of finished, by reason: engine_crashed (its worker process died), storage_unavailable (the bucket could not be reached), queue_full (the engine's queue was full)."
    );
    describe_gauge!(
        "sori_batch_files_queued",
        "Batch files waiting in the database's queue, every replica's (NaN while the database does not answer)."
    );
    describe_gauge!(
        "sori_ready",
        "1 when the last readiness check (GET /readyz) found the server ready, else 0."
    );
    describe_counter!(
        "sori_retention_removed_total",
        "Transcriptions and batches (kind) removed for being older than --retention-days."
    );
    describe_gauge!("sori_queue_depth", "Transcriptions waiting for a worker.");
    describe_gauge!(
        "sori_queue_capacity",
        "Transcriptions that may wait before requests are refused with 503."
    );
    describe_gauge!(
        "sori_workers",
        "Workers configured (each a worker process running one transcription at a time)."
    );
    describe_gauge!(
        "sori_workers_alive",
        "Workers ready for a transcription (fewer while a crashed one is started again)."
    );
    describe_gauge!("sori_workers_busy", "Workers running a transcription now.");
    describe_counter!(
        "sori_worker_restarts_total",
        "Worker processes started again after one died (an engine crash, the out-of-memory killer)."
    );
    describe_gauge!(
        "sori_worker_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the worker processes together (each holds the model)."
    );
    describe_gauge!(
        "sori_process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the server process (its workers are sori_worker_resident_memory_bytes)."
    );
    describe_counter!(
        "sori_process_cpu_seconds_total",
        Unit::Seconds,
        "CPU time used by the server process (the workers' is in each transcription's figures)."
    );
    describe_gauge!(
        "sori_gpu_available",
        "1 when an NVIDIA GPU is seen through NVML, else 0."
    );
    describe_gauge!(
        "sori_gpu_memory_used_bytes",
        Unit::Bytes,
        "GPU memory in use on all devices (only when a GPU is seen)."
    );
    describe_gauge!(
        "sori_gpu_memory_total_bytes",
        Unit::Bytes,
        "GPU memory on all devices (only when a GPU is seen)."
    );
    describe_gauge!(
        "sori_gpu_utilization_ratio",
        "Mean GPU utilization of the devices, 0-1 (only when a GPU is seen)."
    );
    describe_gauge!("sori_model_info", "The default model (always 1; the model is a label).");
    describe_gauge!(
        "sori_model_loaded",
        "Whether an offered model's worker processes run (1) or not (0)."
    );
    describe_gauge!(
        "sori_model_load_seconds",
        Unit::Seconds,
        "How long a running model's worker processes took to start and load it (0 when not running)."
    );
    describe_gauge!(
        "sori_model_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of a model's worker processes, summed (0 when not running)."
    );
}

/// Counts a live session opening; the active gauge goes down when `LiveSessionCount` is dropped.
pub fn live_session_opened() -> LiveSessionCount {
    counter!("sori_live_sessions_total").increment(1);
    gauge!("sori_live_sessions_active").increment(1.0);
    LiveSessionCount(())
}

/// One open live session in `sori_live_sessions_active`, until dropped.
pub struct LiveSessionCount(());

impl Drop for LiveSessionCount {
    fn drop(&mut self) {
        gauge!("sori_live_sessions_active").decrement(1.0);
    }
}

/// Counts seconds of audio a live session received (whole seconds of the exact running total).
pub fn record_live_audio(seconds: f64) {
    static TOTAL: Mutex<f64> = Mutex::new(0.0);
    let mut total = TOTAL.lock().unwrap_or_else(|e| e.into_inner());
    *total += seconds;
    counter!("sori_live_audio_seconds_total").absolute(total.floor() as u64);
}

/// Records a live utterance's outcome and, when completed, the wait from the end of its audio.
pub fn record_live_utterance(model: &str, latency_sec: Option<f64>) {
    let outcome = if latency_sec.is_some() { "completed" } else { "failed" };
    counter!("sori_live_utterances_total", "model" => model.to_string(), "outcome" => outcome).increment(1);
    if let Some(latency) = latency_sec {
        histogram!("sori_live_utterance_latency_seconds", "model" => model.to_string()).record(latency);
    }
}

/// Records a finished transcription's figures.
pub fn record_transcription(model: &str, report: &PerformanceReport, audio_duration_sec: f64, queue_wait_sec: f64) {
    let label = ("model", model.to_string());
    let rtf = if audio_duration_sec > 0.0 {
        report.processing_time_sec / audio_duration_sec
    } else {
        0.0
    };
    let values = [
        report.processing_time_sec,
        audio_duration_sec,
        rtf,
        report.cpu_percent_avg / 100.0,
        report.cpu_percent_max / 100.0,
        report.ram_mb_avg * MIB,
        report.ram_mb_peak * MIB,
        report.gpu_vram_mb_peak * MIB,
        report.gpu_percent / 100.0,
        queue_wait_sec,
    ];
    for ((name, ..), value) in HISTOGRAMS.iter().zip(values) {
        histogram!(*name, label.0 => label.1.clone()).record(value);
    }
    let last = [
        report.cpu_percent_avg / 100.0,
        report.cpu_percent_max / 100.0,
        report.ram_mb_avg * MIB,
        report.ram_mb_peak * MIB,
        report.gpu_vram_mb_current * MIB,
        report.gpu_vram_mb_peak * MIB,
        report.gpu_percent / 100.0,
        report.processing_time_sec,
    ];
    for ((name, ..), value) in LAST_REQUEST.iter().zip(last) {
        gauge!(*name).set(value);
    }
    add_audio_seconds(label.1.clone(), audio_duration_sec);
    counter!("sori_transcriptions_total", label.0 => label.1).increment(1);
}

/// Prometheus counters here are whole numbers: the exact running total of
/// audio seconds is kept per model, and the counter shows its whole seconds
/// (the histogram's `_sum` has the exact figure).
fn add_audio_seconds(model: String, seconds: f64) {
    static TOTALS: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());
    let mut totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let total = totals.entry(model.clone()).or_insert(0.0);
    *total += seconds;
    counter!("sori_audio_seconds_total", "model" => model).absolute(total.floor() as u64);
}

/// Counts a claimed batch file and how long the claim took.
pub fn record_claim(seconds: f64, taken_over: bool) {
    histogram!("sori_batch_claim_seconds").record(seconds);
    counter!("sori_batch_claims_total", "taken_over" => if taken_over { "true" } else { "false" }).increment(1);
}

/// Counts a batch file whose result was not kept because its claim was lost.
pub fn record_claim_lost() {
    counter!("sori_batch_claims_lost_total").increment(1);
}

/// Counts a batch file queued again, and why (`engine_crashed`,
/// `storage_unavailable`, `queue_full`).
pub fn record_requeue(reason: &'static str) {
    counter!("sori_batch_requeues_total", "reason" => reason).increment(1);
}

/// Sets the count of batch files waiting in the database's queue, or NaN
/// when it could not be read.
pub fn record_batch_files_queued(queued: Option<u64>) {
    match queued {
        Some(n) => gauge!("sori_batch_files_queued").set(n as f64),
        None => gauge!("sori_batch_files_queued").set(f64::NAN),
    }
}

/// Records what the last readiness check found.
pub fn record_ready(ready: bool) {
    gauge!("sori_ready").set(if ready { 1.0 } else { 0.0 });
}

/// Counts a transcription or batch (`kind`) removed by the retention sweep.
pub fn record_retention_removal(kind: &'static str) {
    counter!("sori_retention_removed_total", "kind" => kind).increment(1);
}

/// Counts an error answer by its code.
pub fn record_error(code: &'static str) {
    counter!("sori_errors_total", "code" => code).increment(1);
}

/// Counts a finished HTTP request.
pub fn record_request(endpoint: &str, status: u16) {
    let outcome = match status {
        500.. => "server_error",
        400..=499 => "client_error",
        _ => "success",
    };
    counter!("sori_http_requests_total", "endpoint" => endpoint.to_string(), "outcome" => outcome).increment(1);
}

/// Marks a request of `endpoint` in flight until the guard is dropped.
pub fn in_flight(endpoint: &str) -> InFlight {
    let gauge = gauge!("sori_http_requests_in_flight", "endpoint" => endpoint.to_string());
    gauge.increment(1.0);
    InFlight(gauge)
}

/// Decrements the in-flight gauge when dropped (also when the client goes away).
pub struct InFlight(metrics::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Sets the gauges that describe the present: queue, workers, process, GPU
/// and model. Called at every scrape, so they are never stale.
pub fn refresh_state(models: &Models, gpu: &GpuProbe) {
    let each = models.each();
    let engines = || {
        each.iter()
            .filter_map(|(_, running)| running.as_ref())
            .map(|m| &m.engine)
    };
    let sum = |f: &dyn Fn(&Engine) -> usize| engines().map(|e| f(e)).sum::<usize>() as f64;
    gauge!("sori_queue_depth").set(sum(&|e| e.queue_depth()));
    gauge!("sori_queue_capacity").set(sum(&|e| e.queue_capacity()));
    gauge!("sori_workers").set(sum(&|e| e.workers_alive().1));
    gauge!("sori_workers_alive").set(sum(&|e| e.workers_alive().0));
    gauge!("sori_workers_busy").set(sum(&|e| e.workers_busy()));
    counter!("sori_worker_restarts_total").absolute(models.worker_restarts());
    let mut worker_rss = 0;
    for (offered, running) in &each {
        let rss: u64 = running.as_ref().map_or(0, |m| {
            m.engine
                .worker_pids()
                .into_iter()
                .filter_map(process::rss_bytes_of)
                .sum()
        });
        worker_rss += rss;
        let model = offered.name.clone();
        gauge!("sori_model_loaded", "model" => model.clone()).set(if running.is_some() { 1.0 } else { 0.0 });
        gauge!("sori_model_load_seconds", "model" => model.clone()).set(running.as_ref().map_or(0.0, |m| m.load_sec));
        gauge!("sori_model_resident_memory_bytes", "model" => model).set(rss as f64);
    }
    gauge!("sori_worker_resident_memory_bytes").set(worker_rss as f64);
    gauge!("sori_process_resident_memory_bytes").set(process::rss_bytes() as f64);
    counter!("sori_process_cpu_seconds_total").absolute(process::cpu_time_sec() as u64);
    gauge!("sori_model_info", "model" => models.offered()[0].name.clone()).set(1.0);
    gauge!("sori_gpu_available").set(if gpu.available() { 1.0 } else { 0.0 });
    if let Some(devices) = gpu.devices() {
        gauge!("sori_gpu_memory_used_bytes").set(devices.memory_used_bytes as f64);
        gauge!("sori_gpu_memory_total_bytes").set(devices.memory_total_bytes as f64);
        gauge!("sori_gpu_utilization_ratio").set(devices.utilization_percent / 100.0);
    }
}
