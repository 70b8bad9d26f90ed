//! The eight figures (and extras) computed from a request's samples.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::gpu::GpuSample;
use crate::rounding::round_to;

const MIB: f64 = 1024.0 * 1024.0;

/// How long each stage of a job took, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageTimings {
    /// Waiting in the queue (not part of the measured processing).
    pub queue_wait_sec: f64,
    /// Reading, decoding, downmixing and resampling the audio (done block by
    /// block as the model asks for it).
    pub decode_sec: f64,
    /// The rest of the processing time: the model's work.
    pub inference_sec: f64,
    /// Waiting for the model's worker processes to start (only in the answer
    /// of the request that started them: it was not loaded yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_load_sec: Option<f64>,
}

/// One reading of the process.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub at: Instant,
    pub cpu_time_sec: f64,
    pub rss_bytes: u64,
    pub gpu: Option<GpuSample>,
}

/// What one request cost the machine. The first eight fields are the
/// contract (docs/ARCHITECTURE.md); the rest are extras.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerformanceReport {
    /// This process's CPU use while the request ran, time-weighted mean; 100 = one core.
    pub cpu_percent_avg: f64,
    /// The highest CPU use over one sampling interval.
    pub cpu_percent_max: f64,
    /// Mean resident memory of the samples, MiB.
    pub ram_mb_avg: f64,
    /// Highest resident memory, MiB (the kernel's high-water mark where it can be reset).
    pub ram_mb_peak: f64,
    /// GPU memory this process held at the end, MiB.
    pub gpu_vram_mb_current: f64,
    /// Highest GPU memory this process held, MiB.
    pub gpu_vram_mb_peak: f64,
    /// Mean GPU utilization, %.
    pub gpu_percent: f64,
    /// Wall time of the measured work, seconds.
    pub processing_time_sec: f64,
    /// CPU seconds the process used during the work.
    pub cpu_time_sec: f64,
    /// Readings taken (start and end included).
    pub sample_count: usize,
    /// Whether an NVIDIA GPU was seen.
    pub gpu_available: bool,
    /// The most other measured jobs that ran at the same time as this one.
    #[serde(default)]
    pub concurrent_jobs_max: usize,
    /// What the CPU, RAM and GPU figures cover (see [`MeasurementScope`]).
    #[serde(default)]
    pub scope: MeasurementScope,
    /// Whose utilization `gpu_percent` is: `process` (NVML's samples of the
    /// process that ran the job) or `device` (the whole GPU's, where the
    /// driver keeps no per-process samples); absent without a GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_percent_source: Option<GpuPercentSource>,
    /// CPU and RAM over the request's duration (at most [`MAX_SERIES_POINTS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SeriesPoint>,
}

/// What a report's CPU, RAM and GPU figures cover.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasurementScope {
    /// The job ran alone: every figure is its own.
    Request,
    /// Other jobs overlapped it: CPU, RAM and GPU are the whole process's
    /// over the job's time, the overlapping jobs' included.
    Process,
    /// A record written before Sori said which (its figures are the process's).
    #[default]
    Unrecorded,
}

/// Whose GPU utilization a report's `gpu_percent` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuPercentSource {
    /// The job's process's own, from NVML's per-process samples.
    Process,
    /// The device's, all processes on it together.
    Device,
}

impl GpuPercentSource {
    /// The name in the JSON and on the span.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Device => "device",
        }
    }
}

impl MeasurementScope {
    /// The name in the JSON and on the span.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Process => "process",
            Self::Unrecorded => "unrecorded",
        }
    }
}

impl PerformanceReport {
    /// The eight figures by their contract names (docs/ARCHITECTURE.md), in contract order.
    pub fn eight(&self) -> [(&'static str, f64); 8] {
        [
            ("cpu_percent_avg", self.cpu_percent_avg),
            ("cpu_percent_max", self.cpu_percent_max),
            ("ram_mb_avg", self.ram_mb_avg),
            ("ram_mb_peak", self.ram_mb_peak),
            ("gpu_vram_mb_current", self.gpu_vram_mb_current),
            ("gpu_vram_mb_peak", self.gpu_vram_mb_peak),
            ("gpu_percent", self.gpu_percent),
            ("processing_time_sec", self.processing_time_sec),
        ]
    }
}

/// Most points kept in [`PerformanceReport::samples`]; longer series are thinned.
pub const MAX_SERIES_POINTS: usize = 120;

/// One point of the CPU/RAM series: the span since the previous point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the start of the request, at the end of the span.
    pub t_sec: f64,
    /// CPU use over the span; 100 = one core.
    pub cpu_percent: f64,
    /// Resident memory at the end of the span, MiB.
    pub ram_mb: f64,
}

/// Computes the report. `points` holds at least the start and end readings,
/// in time order; `interval_sec` is the sampler's interval; `peak_rss` is a
/// high-water mark valid for exactly this span, where one is known;
/// `overlap` is the most other jobs measured at once during it.
pub fn compute(
    points: &[Point],
    interval_sec: f64,
    peak_rss: Option<u64>,
    gpu_available: bool,
    overlap: usize,
) -> PerformanceReport {
    let (first, last) = (points[0], points[points.len() - 1]);
    let wall = last.at.duration_since(first.at).as_secs_f64();
    let cpu_time = (last.cpu_time_sec - first.cpu_time_sec).max(0.0);
    let cpu_avg = if wall > 0.0 { cpu_time / wall * 100.0 } else { 0.0 };
    let bounds = span_bounds(points, interval_sec / 2.0);
    let cpu_max = bounds
        .windows(2)
        .filter_map(|w| cpu_percent(&points[w[0]], &points[w[1]]))
        .fold(cpu_avg, f64::max);

    let rss_sum: f64 = points.iter().map(|p| p.rss_bytes as f64).sum();
    let rss_max = points.iter().map(|p| p.rss_bytes).max().unwrap_or(0);
    let rss_peak = peak_rss.map_or(rss_max, |hwm| hwm.max(rss_max));

    let gpu: Vec<GpuSample> = points.iter().filter_map(|p| p.gpu).collect();
    let gpu_peak = gpu.iter().map(|g| g.process_memory_bytes).max().unwrap_or(0);
    // Each reading's utilization covers the time since the one before: the
    // first reading's is from before the job.
    let during = if gpu.len() > 1 { &gpu[1..] } else { &gpu[..] };
    let gpu_util = if during.is_empty() {
        0.0
    } else {
        during.iter().map(|g| g.utilization_percent).sum::<f64>() / during.len() as f64
    };
    let gpu_percent_source = (!gpu.is_empty()).then(|| {
        if gpu.iter().all(|g| g.utilization_per_process) {
            GpuPercentSource::Process
        } else {
            GpuPercentSource::Device
        }
    });

    PerformanceReport {
        cpu_percent_avg: round_to(cpu_avg, 2),
        cpu_percent_max: round_to(cpu_max, 2),
        ram_mb_avg: round_to(rss_sum / points.len() as f64 / MIB, 2),
        ram_mb_peak: round_to(rss_peak as f64 / MIB, 2),
        gpu_vram_mb_current: round_to(last.gpu.map_or(0, |g| g.process_memory_bytes) as f64 / MIB, 2),
        gpu_vram_mb_peak: round_to(gpu_peak as f64 / MIB, 2),
        gpu_percent: round_to(gpu_util, 2),
        processing_time_sec: round_to(wall, 4),
        cpu_time_sec: round_to(cpu_time, 4),
        sample_count: points.len(),
        gpu_available,
        concurrent_jobs_max: overlap,
        scope: if overlap == 0 {
            MeasurementScope::Request
        } else {
            MeasurementScope::Process
        },
        gpu_percent_source,
        samples: series(points, &bounds),
    }
}

/// Indices of `points` that bound consecutive spans of at least
/// `min_span_sec` (a short tail is merged into the span before it), so a
/// 1 ms gap cannot give a wild CPU reading.
fn span_bounds(points: &[Point], min_span_sec: f64) -> Vec<usize> {
    let mut bounds = vec![0];
    for (i, p) in points.iter().enumerate().skip(1) {
        let start = points[*bounds.last().expect("non-empty")];
        if p.at.duration_since(start.at).as_secs_f64() >= min_span_sec {
            bounds.push(i);
        }
    }
    let last = points.len() - 1;
    if *bounds.last().expect("non-empty") != last {
        if bounds.len() > 1 {
            bounds.pop();
        }
        bounds.push(last);
    }
    bounds
}

/// CPU % over the span from `a` to `b`, if it has a length.
fn cpu_percent(a: &Point, b: &Point) -> Option<f64> {
    let wall = b.at.duration_since(a.at).as_secs_f64();
    (wall > 0.0).then(|| (b.cpu_time_sec - a.cpu_time_sec).max(0.0) / wall * 100.0)
}

/// The CPU/RAM series over the same spans as `cpu_percent_max`, thinned to at
/// most [`MAX_SERIES_POINTS`] by merging neighbouring spans.
fn series(points: &[Point], bounds: &[usize]) -> Vec<SeriesPoint> {
    let step = (bounds.len() - 1).div_ceil(MAX_SERIES_POINTS).max(1);
    let mut kept: Vec<usize> = bounds.iter().copied().step_by(step).collect();
    if kept.last() != bounds.last() {
        kept.push(*bounds.last().expect("non-empty"));
    }
    let start = points[0].at;
    kept.windows(2)
        .filter_map(|w| {
            let (a, b) = (&points[w[0]], &points[w[1]]);
            Some(SeriesPoint {
                t_sec: round_to(b.at.duration_since(start).as_secs_f64(), 4),
                cpu_percent: round_to(cpu_percent(a, b)?, 2),
                ram_mb: round_to(b.rss_bytes as f64 / MIB, 2),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn point(start: Instant, t: f64, cpu: f64, rss_mib: u64) -> Point {
        Point {
            at: start + Duration::from_secs_f64(t),
            cpu_time_sec: cpu,
            rss_bytes: rss_mib << 20,
            gpu: None,
        }
    }

    #[test]
    fn averages_are_time_weighted_and_max_ignores_tiny_tails() {
        let s = Instant::now();
        // 0.5 s at 100 %, 0.5 s at 50 %, then a 1 ms tail with a 10 ms CPU tick.
        let points = [
            point(s, 0.0, 0.0, 100),
            point(s, 0.5, 0.5, 300),
            point(s, 1.0, 0.75, 200),
            point(s, 1.001, 0.76, 200),
        ];
        let r = compute(&points, 0.5, None, false, 0);
        assert!((r.cpu_percent_avg - 75.92).abs() < 0.01, "{r:?}");
        assert!((r.cpu_percent_max - 100.0).abs() < 0.01, "{r:?}");
        assert_eq!(r.ram_mb_peak, 300.0);
        assert_eq!(r.ram_mb_avg, 200.0);
        assert_eq!(r.sample_count, 4);
        // The series uses the same spans: the 1 ms tail joins the last one.
        assert_eq!(r.samples.len(), 2);
        assert_eq!(
            (r.samples[0].t_sec, r.samples[0].cpu_percent, r.samples[0].ram_mb),
            (0.5, 100.0, 300.0)
        );
        assert_eq!(
            (r.samples[1].t_sec, r.samples[1].cpu_percent, r.samples[1].ram_mb),
            (1.001, 51.9, 200.0)
        );
        assert_eq!((r.gpu_vram_mb_peak, r.gpu_percent), (0.0, 0.0));
    }

    #[test]
    fn long_series_are_thinned_and_keep_their_end() {
        let s = Instant::now();
        let points: Vec<Point> = (0..=1000)
            .map(|i| point(s, i as f64 * 0.5, i as f64 * 0.25, 100))
            .collect();
        let r = compute(&points, 0.5, None, false, 0);
        assert!(r.samples.len() <= MAX_SERIES_POINTS, "{}", r.samples.len());
        assert_eq!(r.samples.last().unwrap().t_sec, 500.0);
        assert!(r.samples.iter().all(|p| (p.cpu_percent - 50.0).abs() < 1e-6));
    }

    #[test]
    fn high_water_mark_raises_the_peak_only() {
        let s = Instant::now();
        let points = [point(s, 0.0, 0.0, 100), point(s, 0.1, 0.1, 100)];
        let r = compute(&points, 0.5, Some(400 << 20), false, 0);
        assert_eq!((r.ram_mb_avg, r.ram_mb_peak), (100.0, 400.0));
        assert!(r.cpu_percent_max >= r.cpu_percent_avg);
    }

    #[test]
    fn gpu_utilization_is_of_the_readings_after_the_first_and_says_whose() {
        let s = Instant::now();
        let gpu = |memory_mib: u64, percent: f64, per_process: bool| GpuSample {
            process_memory_bytes: memory_mib << 20,
            utilization_percent: percent,
            utilization_per_process: per_process,
        };
        let mut points = [
            point(s, 0.0, 0.0, 100),
            point(s, 0.5, 0.1, 100),
            point(s, 1.0, 0.2, 100),
        ];
        // The first reading covers the time before the job began.
        for (p, g) in points
            .iter_mut()
            .zip([gpu(10, 90.0, true), gpu(300, 40.0, true), gpu(200, 60.0, true)])
        {
            p.gpu = Some(g);
        }
        let r = compute(&points, 0.5, None, true, 0);
        assert_eq!(
            (r.gpu_percent, r.gpu_vram_mb_peak, r.gpu_vram_mb_current),
            (50.0, 300.0, 200.0)
        );
        assert_eq!(r.gpu_percent_source, Some(GpuPercentSource::Process));
        points[1].gpu = Some(gpu(300, 40.0, false));
        let r = compute(&points, 0.5, None, true, 0);
        assert_eq!(
            r.gpu_percent_source,
            Some(GpuPercentSource::Device),
            "one device-wide reading taints it"
        );
        let without: Vec<Point> = points.iter().map(|p| Point { gpu: None, ..*p }).collect();
        assert_eq!(compute(&without, 0.5, None, false, 0).gpu_percent_source, None);
    }
}
