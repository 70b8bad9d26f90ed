//! This process's CPU time and resident memory, read the cheap way
//! (`clock_gettime` and `/proc/self`), so sampling costs next to nothing.

use std::fs;

/// CPU time this process has used so far (all threads), in seconds.
pub fn cpu_time_sec() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Resident memory of this process now, in bytes.
pub fn rss_bytes() -> u64 {
    resident_bytes_in("/proc/self/statm").unwrap_or(0)
}

/// Resident memory of process `pid` now, in bytes, if it exists.
pub fn rss_bytes_of(pid: u32) -> Option<u64> {
    resident_bytes_in(&format!("/proc/{pid}/statm"))
}

fn resident_bytes_in(statm_path: &str) -> Option<u64> {
    let statm = fs::read_to_string(statm_path).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The kernel's high-water mark of resident memory (VmHWM), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Resets VmHWM to the current resident size, so that a later read gives the
/// peak since now. Returns false where the kernel does not allow it.
pub fn reset_peak_rss() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}
