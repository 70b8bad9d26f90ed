//! Batch statistics: totals, throughput, and for each of the eight figures its
//! mean, min, max and 95th percentile over the files that are done.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Batch, FileStatus};
use crate::monitor::MeasurementScope;
use crate::rounding::round_to;
use crate::store::FileId;

/// Mean, min, max and 95th percentile (nearest rank) of some values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub p95: f64,
}

impl Stat {
    /// The statistics of `values`, or `None` when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = ((0.95 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        Some(Self {
            mean: round_to(sorted.iter().sum::<f64>() / sorted.len() as f64, 4),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            p95: sorted[rank - 1],
        })
    }
}

/// One file's point in the summary chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilePoint {
    pub filename: String,
    pub processing_time_sec: f64,
    pub cpu_percent_avg: f64,
}

/// `GET /batch/{id}/summary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchSummary {
    pub batch_id: FileId,
    pub status: String,
    pub count_total: usize,
    pub count_done: usize,
    pub count_failed: usize,
    pub total_audio_sec: f64,
    pub total_processing_sec: f64,
    /// Seconds of audio transcribed per second of processing.
    pub throughput_audio_sec_per_sec: f64,
    /// For each of the eight figures, its statistics over the done files.
    pub metrics: BTreeMap<String, Stat>,
    /// Processing time and CPU per done file, in batch order.
    pub files: Vec<FilePoint>,
    /// Done files whose figures are their own (scope `request`: a worker
    /// process that ran only them).
    pub count_measured_own: usize,
    /// Done files whose figures are the whole process's (scope `process`:
    /// other jobs in the same process overlapped them).
    pub count_measured_process_wide: usize,
    /// The most other jobs that ran at the same time as any one done file.
    pub concurrent_jobs_max: usize,
}

/// Summarizes a batch.
pub fn summarize(batch: &Batch) -> BatchSummary {
    let done: Vec<_> = batch.files.iter().filter(|f| f.status == FileStatus::Done).collect();
    let mut columns: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for file in &done {
        if let Some(p) = &file.performance {
            for (key, value) in p.report.eight() {
                columns.entry(key.to_string()).or_default().push(value);
            }
        }
    }
    let reports: Vec<_> = done
        .iter()
        .filter_map(|f| Some(&f.performance.as_ref()?.report))
        .collect();
    let count_scope = |scope| reports.iter().filter(|r| r.scope == scope).count();
    let total_audio_sec: f64 = done.iter().filter_map(|f| f.audio_duration_sec).sum();
    let total_processing_sec: f64 = done.iter().filter_map(|f| f.processing_time_sec).sum();
    BatchSummary {
        batch_id: batch.batch_id,
        status: batch.status.clone(),
        count_total: batch.progress.total,
        count_done: batch.progress.done,
        count_failed: batch.progress.failed,
        total_audio_sec: round_to(total_audio_sec, 4),
        total_processing_sec: round_to(total_processing_sec, 4),
        throughput_audio_sec_per_sec: if total_processing_sec > 0.0 {
            round_to(total_audio_sec / total_processing_sec, 4)
        } else {
            0.0
        },
        metrics: columns
            .into_iter()
            .filter_map(|(k, v)| Some((k, Stat::of(&v)?)))
            .collect(),
        files: done
            .iter()
            .filter_map(|f| {
                let p = f.performance.as_ref()?;
                Some(FilePoint {
                    filename: f.filename.clone(),
                    processing_time_sec: p.report.processing_time_sec,
                    cpu_percent_avg: p.report.cpu_percent_avg,
                })
            })
            .collect(),
        count_measured_own: count_scope(MeasurementScope::Request),
        count_measured_process_wide: count_scope(MeasurementScope::Process),
        concurrent_jobs_max: reports.iter().map(|r| r.concurrent_jobs_max).max().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_statistics() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = Stat::of(&values).unwrap();
        assert_eq!((s.mean, s.min, s.max, s.p95), (10.5, 1.0, 20.0, 19.0));
        let one = Stat::of(&[3.5]).unwrap();
        assert_eq!((one.mean, one.min, one.max, one.p95), (3.5, 3.5, 3.5, 3.5));
        let three = Stat::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((three.min, three.max, three.p95), (1.0, 5.0, 5.0));
        assert!(Stat::of(&[]).is_none());
    }
}
