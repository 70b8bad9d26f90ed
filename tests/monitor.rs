//! The PerformanceMonitor against ground truth: known CPU load, known
//! allocations, known durations. One test at a time, since the monitor
//! measures the whole process.

use std::hint::black_box;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use sori::monitor::{GpuProbe, PerformanceMonitor};

mod common;

static SERIAL: Mutex<()> = Mutex::new(());

fn monitor(interval_ms: u64) -> PerformanceMonitor {
    PerformanceMonitor::new(Duration::from_millis(interval_ms), GpuProbe::detect())
}

/// Keeps the calling thread busy for `d`; returns the CPU seconds the kernel
/// gave this thread meanwhile (less than `d` when other work shares the cores).
fn spin(d: Duration) -> f64 {
    let before = thread_cpu_sec();
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
    thread_cpu_sec() - before
}

/// The calling thread's CPU time, from the kernel.
fn thread_cpu_sec() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid pointer to a timespec for the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// This process's user + system CPU time from `/proc/self/stat`, seconds
/// (clock ticks: 10 ms resolution).
fn proc_cpu_sec() -> f64 {
    common::proc_cpu_sec(std::process::id())
}

/// The report's CPU figures against the kernel's: its CPU seconds within two
/// clock ticks (and the sampler's own few milliseconds) of `/proc`, at least
/// what the busy threads themselves were given, and its average exactly
/// CPU seconds over wall seconds.
fn assert_cpu_matches_the_kernel(r: &sori::monitor::PerformanceReport, proc_delta: f64, busy_threads_sec: f64) {
    assert!(
        (r.cpu_time_sec - proc_delta).abs() <= 0.03,
        "/proc says {proc_delta} s: {r:?}"
    );
    assert!(
        r.cpu_time_sec >= busy_threads_sec - 0.005 && r.cpu_time_sec <= busy_threads_sec + 0.05,
        "the busy threads had {busy_threads_sec} s: {r:?}"
    );
    let average = r.cpu_time_sec / r.processing_time_sec * 100.0;
    assert!((r.cpu_percent_avg - average).abs() <= 0.5, "{r:?}");
}

#[test]
fn one_busy_thread_is_one_core() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = proc_cpu_sec();
    let (busy, r) = monitor(500).measure(|| spin(Duration::from_secs(1)));
    assert_cpu_matches_the_kernel(&r, proc_cpu_sec() - before, busy);
    // One thread can never use more than one core.
    assert!(r.cpu_percent_avg <= 105.0, "{r:?}");
    assert!(r.cpu_percent_max >= r.cpu_percent_avg, "{r:?}");
    assert!(r.cpu_percent_max <= 115.0, "{r:?}");
    assert!(r.sample_count >= 3, "the sampler ran: {r:?}");
}

#[test]
fn two_busy_threads_are_two_cores() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cores >= 2, "this test needs two cores");
    let before = proc_cpu_sec();
    let (busy, r) = monitor(500).measure(|| {
        let other = thread::spawn(|| spin(Duration::from_secs(1)));
        let mine = spin(Duration::from_secs(1));
        mine + other.join().unwrap()
    });
    // Both threads are counted, whatever else shares the machine's cores.
    assert_cpu_matches_the_kernel(&r, proc_cpu_sec() - before, busy);
    assert!(r.cpu_percent_avg <= 210.0, "two threads, two cores at most: {r:?}");
}

#[test]
fn touching_300_mib_raises_the_peak_by_300_mib() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = monitor(500);
    let (_, before) = m.measure(|| thread::sleep(Duration::from_millis(50)));
    let (_, r) = m.measure(|| {
        let mut block = vec![0u8; 300 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        black_box(&block);
        // Freed before the end reading: only the high-water mark can see it.
    });
    let rise = r.ram_mb_peak - before.ram_mb_peak;
    assert!(
        (rise - 300.0).abs() <= 15.0,
        "peak rose by {rise} MiB: {before:?} -> {r:?}"
    );
    assert!(r.ram_mb_peak >= r.ram_mb_avg && r.ram_mb_avg > 0.0, "{r:?}");
}

#[test]
fn a_short_sleep_is_timed_exactly_and_sampled_twice() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, r) = monitor(500).measure(|| thread::sleep(Duration::from_millis(200)));
    assert!((r.processing_time_sec - 0.2).abs() <= 0.02, "{r:?}");
    assert!(r.sample_count >= 2, "{r:?}");
    assert!(r.cpu_percent_avg < 20.0, "sleeping costs no CPU: {r:?}");
}

#[test]
fn without_a_gpu_the_gpu_figures_are_zero() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = PerformanceMonitor::new(Duration::from_millis(100), GpuProbe::absent());
    let (_, r) = m.measure(|| thread::sleep(Duration::from_millis(250)));
    assert!(!r.gpu_available);
    assert_eq!(
        (r.gpu_vram_mb_current, r.gpu_vram_mb_peak, r.gpu_percent),
        (0.0, 0.0, 0.0)
    );
    assert!(r.sample_count >= 3, "0.1 s sampling over 0.25 s: {r:?}");
}

#[test]
fn an_idle_monitor_takes_no_readings() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = monitor(10);
    thread::sleep(Duration::from_millis(300));
    let (_, r) = m.measure(|| ());
    assert_eq!(
        r.sample_count, 2,
        "readings taken while idle leaked into a session: {r:?}"
    );
}

#[test]
fn overlapping_sessions_say_so_and_a_lone_one_is_its_own() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let m = monitor(50);
    let (_, alone) = m.measure(|| thread::sleep(Duration::from_millis(20)));
    assert_eq!(
        (alone.concurrent_jobs_max, alone.scope.as_str()),
        (0, "request"),
        "{alone:?}"
    );
    // The first starts alone; two more start while it runs; the last starts after the second ends.
    let first = m.start();
    let second = m.start();
    let third = m.start();
    let second = second.finish();
    let fourth = m.start();
    let (first, third, fourth) = (first.finish(), third.finish(), fourth.finish());
    assert_eq!(
        (first.concurrent_jobs_max, first.scope.as_str()),
        (2, "process"),
        "{first:?}"
    );
    assert_eq!(second.concurrent_jobs_max, 2, "{second:?}");
    assert_eq!(third.concurrent_jobs_max, 2, "{third:?}");
    assert_eq!(
        (fourth.concurrent_jobs_max, fourth.scope.as_str()),
        (2, "process"),
        "{fourth:?}"
    );
}
