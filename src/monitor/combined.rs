//! The figures of several measured jobs taken as one piece of work (a live
//! session's utterances, saved as one transcription).

use super::report::{
    GpuPercentSource, MeasurementScope, PerformanceReport, SeriesPoint, StageTimings, MAX_SERIES_POINTS,
};
use crate::rounding::round_to;

/// What a combined report's figures are, said in the record that keeps one.
pub const COMBINED_FIGURES: &str = "over the utterances' work only: processing_time_sec and cpu_time_sec \
     are sums; cpu_percent_avg, ram_mb_avg and gpu_percent are means weighted by processing time; \
     cpu_percent_max, ram_mb_peak and gpu_vram_mb_peak are the highest of any utterance; \
     gpu_vram_mb_current is the last one's";

/// The jobs of `reports` as one piece of work, on a clock that runs only
/// while one of them did (see [`COMBINED_FIGURES`]); the CPU/RAM series are
/// joined end to end on that clock. `None` without reports.
pub fn combine_reports(reports: &[&PerformanceReport]) -> Option<PerformanceReport> {
    let last = reports.last()?;
    let time: f64 = reports.iter().map(|r| r.processing_time_sec).sum();
    let weighted = |figure: fn(&PerformanceReport) -> f64| {
        if time > 0.0 {
            reports.iter().map(|r| figure(r) * r.processing_time_sec).sum::<f64>() / time
        } else {
            reports.iter().map(|r| figure(r)).sum::<f64>() / reports.len() as f64
        }
    };
    let highest = |figure: fn(&PerformanceReport) -> f64| reports.iter().map(|r| figure(r)).fold(0.0, f64::max);
    let scope = if reports.iter().all(|r| r.scope == MeasurementScope::Request) {
        MeasurementScope::Request
    } else if reports.iter().any(|r| r.scope == MeasurementScope::Process) {
        MeasurementScope::Process
    } else {
        MeasurementScope::Unrecorded
    };
    let sources: Vec<GpuPercentSource> = reports.iter().filter_map(|r| r.gpu_percent_source).collect();
    let gpu_percent_source = sources.first().map(|_| {
        if sources.iter().all(|s| *s == GpuPercentSource::Process) {
            GpuPercentSource::Process
        } else {
            GpuPercentSource::Device
        }
    });
    Some(PerformanceReport {
        cpu_percent_avg: round_to(weighted(|r| r.cpu_percent_avg), 2),
        cpu_percent_max: highest(|r| r.cpu_percent_max),
        ram_mb_avg: round_to(weighted(|r| r.ram_mb_avg), 2),
        ram_mb_peak: highest(|r| r.ram_mb_peak),
        gpu_vram_mb_current: last.gpu_vram_mb_current,
        gpu_vram_mb_peak: highest(|r| r.gpu_vram_mb_peak),
        gpu_percent: round_to(weighted(|r| r.gpu_percent), 2),
        processing_time_sec: round_to(time, 4),
        cpu_time_sec: round_to(reports.iter().map(|r| r.cpu_time_sec).sum(), 4),
        sample_count: reports.iter().map(|r| r.sample_count).sum(),
        gpu_available: reports.iter().any(|r| r.gpu_available),
        concurrent_jobs_max: reports.iter().map(|r| r.concurrent_jobs_max).max().unwrap_or(0),
        scope,
        gpu_percent_source,
        samples: joined_series(reports),
    })
}

/// The stage timings of several jobs, summed.
pub fn sum_timings(timings: &[&StageTimings]) -> StageTimings {
    let sum = |stage: fn(&StageTimings) -> f64| round_to(timings.iter().map(|t| stage(t)).sum(), 4);
    let loads: Vec<f64> = timings.iter().filter_map(|t| t.model_load_sec).collect();
    StageTimings {
        queue_wait_sec: sum(|t| t.queue_wait_sec),
        decode_sec: sum(|t| t.decode_sec),
        inference_sec: sum(|t| t.inference_sec),
        model_load_sec: (!loads.is_empty()).then(|| round_to(loads.iter().sum(), 4)),
    }
}

/// Every report's series, each shifted by the processing time of the ones
/// before it, thinned to [`MAX_SERIES_POINTS`] by merging neighbours (CPU
/// weighted by each span's length, RAM the merged span's last).
fn joined_series(reports: &[&PerformanceReport]) -> Vec<SeriesPoint> {
    let mut joined = Vec::new();
    let mut offset = 0.0;
    for report in reports {
        joined.extend(report.samples.iter().map(|p| SeriesPoint {
            t_sec: p.t_sec + offset,
            ..*p
        }));
        offset += report.processing_time_sec;
    }
    let step = joined.len().div_ceil(MAX_SERIES_POINTS).max(1);
    let mut start = 0.0;
    joined
        .chunks(step)
        .map(|spans| {
            let end = spans[spans.len() - 1].t_sec;
            let mut before = start;
            let (mut busy, mut length) = (0.0, 0.0);
            for p in spans {
                let span = (p.t_sec - before).max(0.0);
                busy += p.cpu_percent * span;
                length += span;
                before = p.t_sec;
            }
            start = end;
            SeriesPoint {
                t_sec: round_to(end, 4),
                cpu_percent: if length > 0.0 {
                    round_to(busy / length, 2)
                } else {
                    spans[0].cpu_percent
                },
                ram_mb: spans[spans.len() - 1].ram_mb,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(time: f64, cpu: f64, ram_peak: f64, scope: MeasurementScope) -> PerformanceReport {
        PerformanceReport {
            cpu_percent_avg: cpu,
            cpu_percent_max: cpu + 10.0,
            ram_mb_avg: ram_peak - 10.0,
            ram_mb_peak: ram_peak,
            gpu_vram_mb_current: 0.0,
            gpu_vram_mb_peak: 0.0,
            gpu_percent: 0.0,
            processing_time_sec: time,
            cpu_time_sec: time * cpu / 100.0,
            sample_count: 3,
            gpu_available: false,
            concurrent_jobs_max: 0,
            scope,
            gpu_percent_source: None,
            samples: vec![
                SeriesPoint {
                    t_sec: time / 2.0,
                    cpu_percent: cpu,
                    ram_mb: ram_peak,
                },
                SeriesPoint {
                    t_sec: time,
                    cpu_percent: cpu,
                    ram_mb: ram_peak - 20.0,
                },
            ],
        }
    }

    #[test]
    fn sums_times_weights_means_by_time_and_keeps_the_highest_peaks() {
        let a = report(1.0, 200.0, 300.0, MeasurementScope::Request);
        let b = report(3.0, 100.0, 250.0, MeasurementScope::Request);
        let c = combine_reports(&[&a, &b]).unwrap();
        assert_eq!(c.processing_time_sec, 4.0);
        assert_eq!(c.cpu_time_sec, 5.0);
        // 5 CPU seconds over 4 s of work.
        assert_eq!(c.cpu_percent_avg, 125.0);
        assert_eq!(c.cpu_percent_max, 210.0);
        assert_eq!(c.ram_mb_peak, 300.0);
        assert_eq!(c.ram_mb_avg, (290.0 + 3.0 * 240.0) / 4.0);
        assert_eq!(c.sample_count, 6);
        assert_eq!(c.scope, MeasurementScope::Request);
        let times: Vec<f64> = c.samples.iter().map(|p| p.t_sec).collect();
        assert_eq!(
            times,
            [0.5, 1.0, 2.5, 4.0],
            "the second job's series follows the first's"
        );
        let overlapped = report(1.0, 100.0, 100.0, MeasurementScope::Process);
        assert_eq!(
            combine_reports(&[&a, &overlapped]).unwrap().scope,
            MeasurementScope::Process,
            "one overlapped job makes the whole process-wide"
        );
        assert!(combine_reports(&[]).is_none());
    }

    #[test]
    fn a_long_joined_series_is_thinned_keeping_its_end_and_its_mean() {
        let reports: Vec<PerformanceReport> = (0..200)
            .map(|i| {
                report(
                    1.0,
                    if i % 2 == 0 { 100.0 } else { 50.0 },
                    200.0,
                    MeasurementScope::Request,
                )
            })
            .collect();
        let refs: Vec<&PerformanceReport> = reports.iter().collect();
        let c = combine_reports(&refs).unwrap();
        assert!(c.samples.len() <= MAX_SERIES_POINTS, "{}", c.samples.len());
        assert_eq!(c.samples.last().unwrap().t_sec, 200.0);
        let mean = c.samples.iter().map(|p| p.cpu_percent).sum::<f64>() / c.samples.len() as f64;
        assert!((mean - 75.0).abs() < 1.0, "{mean}");
    }
}
