//! PerformanceMonitor: measures what a piece of work costs this process
//! (CPU, RAM, GPU, wall time) with a background sampler plus a reading at the
//! start and at the end, so even very short work gets real values.

mod gpu;
pub mod process;
mod report;

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub use gpu::{DeviceSummary, GpuProbe, GpuSample};
use report::Point;
pub use report::{MeasurementScope, PerformanceReport, SeriesPoint, StageTimings, MAX_SERIES_POINTS};

/// Samples this process while sessions are open. Cheap to clone; the sampler
/// thread stops when the last clone is dropped.
#[derive(Clone)]
pub struct PerformanceMonitor {
    shared: Arc<Shared>,
    _sampler: Arc<SamplerHandle>,
}

struct Shared {
    interval: Duration,
    gpu: GpuProbe,
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    next_id: u64,
    sessions: HashMap<u64, Session>,
    stopping: bool,
}

/// What the monitor keeps for one open session.
struct Session {
    points: Vec<Point>,
    /// The most other sessions that were open at once during this one.
    overlap: usize,
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
    pub fn new(interval: Duration, gpu: GpuProbe) -> Self {
        let shared = Arc::new(Shared {
            interval,
            gpu,
            state: Mutex::default(),
            wake: Condvar::new(),
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
    pub fn gpu(&self) -> &GpuProbe {
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
        // Every open session now overlaps as many others as this one does.
        let others = state.sessions.len();
        for session in state.sessions.values_mut() {
            session.overlap = session.overlap.max(others);
        }
        let session = Session {
            points: vec![self.shared.read()],
            overlap: others,
        };
        state.sessions.insert(id, session);
        drop(state);
        self.shared.wake.notify_all();
        MonitorSession {
            shared: self.shared.clone(),
            id,
            owns_peak,
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
        for session in state.sessions.values_mut() {
            session.points.push(point);
        }
    }
}

/// One measured span of work.
pub struct MonitorSession {
    shared: Arc<Shared>,
    id: u64,
    owns_peak: bool,
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
        let Session { mut points, overlap } = self
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
