//! The PerformanceMonitor against ground truth: known CPU load, known
//! allocations, known durations. One test at a time, since the monitor
//! measures the whole process.

use std::hint::black_box;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use sori::monitor::{GpuProbe, PerformanceMonitor};

static SERIAL: Mutex<()> = Mutex::new(());

fn monitor(interval_ms: u64) -> PerformanceMonitor {
    PerformanceMonitor::new(Duration::from_millis(interval_ms), GpuProbe::detect())
}

/// Keeps the calling thread busy for `d`.
fn spin(d: Duration) {
    let start = Instant::now();
    let mut x = 0u64;
    while start.elapsed() < d {
        x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

#[test]
fn one_busy_thread_is_one_core() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_, r) = monitor(500).measure(|| spin(Duration::from_secs(1)));
    assert!((r.cpu_percent_avg - 100.0).abs() <= 10.0, "{r:?}");
    assert!(r.cpu_percent_max >= r.cpu_percent_avg, "{r:?}");
    assert!(r.cpu_percent_max <= 115.0, "{r:?}");
    assert!(r.sample_count >= 3, "the sampler ran: {r:?}");
}

#[test]
fn two_busy_threads_are_two_cores() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    assert!(cores >= 2, "this test needs two cores");
    let (_, r) = monitor(500).measure(|| {
        let other = thread::spawn(|| spin(Duration::from_secs(1)));
        spin(Duration::from_secs(1));
        other.join().unwrap();
    });
    assert!((r.cpu_percent_avg - 200.0).abs() <= 20.0, "{r:?}");
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
