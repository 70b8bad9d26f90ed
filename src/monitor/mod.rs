//! PerformanceMonitor: measures what a piece of work costs this process
//! (CPU, RAM, GPU, wall time) with a background sampler plus a reading at the
//! start and at the end, so even very short work gets real values.

pub mod combined;
mod gpu;
mod overlap;
pub mod process;
mod report;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use gpu::{DeviceSummary, GpuProbe, GpuSample};
pub use overlap::{Overlap, Overlaps};
use report::Point;
pub use report::{GpuPercentSource, MeasurementScope, PerformanceReport, SeriesPoint, StageTimings, MAX_SERIES_POINTS};

/// Samples this process while sessions are open. Cheap to clone; the sampler
/// thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct PerformanceMonitor {
    shared: Arc<Shared>,
    _sampler: Arc<SamplerHandle>,
}

struct Shared {
    interval: Duration,
    gpu: Arc<GpuProbe>,
    state: Mutex<State>,
    wake: Condvar,
    /// Which sessions ran at the same time.
    overlaps: Arc<Overlaps>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// Each open session's readings so far.
    sessions: HashMap<u64, Vec<Point>>,
    stopping: bool,
}

/// Stops and joins the sampler thread when dropped.
struct SamplerHandle {
    shared: Arc<Shared>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Drop for SamplerHandle {
    fn drop(&mut self) {
        self.shared.state.lock().expect("monitor lock").stopping = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl PerformanceMonitor {
    /// Starts a monitor sampling every `interval` while work is measured.
    pub fn new(interval: Duration, gpu: impl Into<Arc<GpuProbe>>) -> Self {
        let shared = Arc::new(Shared {
            interval,
            gpu: gpu.into(),
            state: Mutex::default(),
            wake: Condvar::new(),
            overlaps: Overlaps::new(),
        });
        let thread = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("sori-monitor".into())
                .spawn(move || sample_loop(&shared))
                .expect("spawn the monitor thread")
        };
        let handle = SamplerHandle {
            shared: shared.clone(),
            thread: Some(thread),
        };
        Self {
            shared,
            _sampler: Arc::new(handle),
        }
    }

    /// The GPU probe the monitor reads.
    pub fn gpu(&self) -> &Arc<GpuProbe> {
        &self.shared.gpu
    }

    /// Starts measuring; finish the session to get the report.
    pub fn start(&self) -> MonitorSession {
        let mut state = self.shared.state.lock().expect("monitor lock");
        // The kernel's peak-RSS mark is per process: only a session that starts
        // alone can reset it and trust it afterwards.
        let owns_peak = state.sessions.is_empty() && process::reset_peak_rss();
        let id = state.next_id;
        state.next_id += 1;
        let overlap = self.shared.overlaps.enter();
        state.sessions.insert(id, vec![self.shared.read()]);
        drop(state);
        self.shared.wake.notify_all();
        MonitorSession {
            shared: self.shared.clone(),
            id,
            owns_peak,
            overlap,
        }
    }

    /// Measures `work` and returns its result with the report.
    pub fn measure<T>(&self, work: impl FnOnce() -> T) -> (T, PerformanceReport) {
        let session = self.start();
        let out = work();
        (out, session.finish())
    }
}

impl Shared {
    fn read(&self) -> Point {
        Point {
            at: Instant::now(),
            cpu_time_sec: process::cpu_time_sec(),
            rss_bytes: process::rss_bytes(),
            gpu: self.gpu.sample(),
        }
    }
}

fn sample_loop(shared: &Shared) {
    let mut state = shared.state.lock().expect("monitor lock");
    loop {
        if state.stopping {
            return;
        }
        if state.sessions.is_empty() {
            // Idle: no readings at all until a session starts.
            state = shared.wake.wait(state).expect("monitor lock");
            continue;
        }
        let (next, _) = shared.wake.wait_timeout(state, shared.interval).expect("monitor lock");
        state = next;
        if state.stopping || state.sessions.is_empty() {
            continue;
        }
        let point = shared.read();
        for points in state.sessions.values_mut() {
            points.push(point);
        }
    }
}

/// One measured span of work.
pub struct MonitorSession {
    shared: Arc<Shared>,
    id: u64,
    owns_peak: bool,
    /// Counts the other sessions open beside this one.
    overlap: Overlap,
}

impl MonitorSession {
    /// Takes the final reading and computes the report.
    pub fn finish(self) -> PerformanceReport {
        let end = self.shared.read();
        let peak = if self.owns_peak {
            process::peak_rss_bytes()
        } else {
            None
        };
        let overlap = self.overlap.most_others();
        let mut points = self
            .shared
            .state
            .lock()
            .expect("monitor lock")
            .sessions
            .remove(&self.id)
            .expect("a session is open until it finishes");
        // A sampler reading taken after `end` belongs to no one's span.
        points.retain(|p| p.at <= end.at);
        points.push(end);
        let interval = self.shared.interval.as_secs_f64();
        report::compute(&points, interval, peak, self.shared.gpu.available(), overlap)
    }
}

impl Drop for MonitorSession {
    fn drop(&mut self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.sessions.remove(&self.id);
        }
    }
}
