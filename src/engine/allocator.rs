//! How freed memory goes back to the kernel, so that the server's RSS returns
//! to its idle size after a long file and the next request's RAM peak, which is
//! measured from the current RSS, is its own.
//!
//! glibc keeps freed blocks for reuse: in each thread's arena, and, once a large
//! block has been freed, it raises its mmap threshold (up to 32 MiB) so that
//! later large blocks come from the arenas too. A long file's pieces are decoded
//! on threads of their own with whisper.cpp states of tens of MiB: measured
//! after a 5-minute file (tiny.en), the idle RSS stayed at 120-300 MiB instead
//! of 61. With a fixed threshold of 1 MiB and a trim after each job it went back
//! to 64 MiB, at no measurable cost in speed (each lane reuses one state for all
//! its pieces, so the large blocks are mapped once per lane, not once per piece).

/// Blocks of this size or more are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 1 << 20;

/// Makes large blocks (1 MiB and up) go back to the kernel when they are freed.
pub fn return_large_blocks_when_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's own allocation parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Returns the free pages left in the arenas after a job (0.5 ms after JFK,
/// 18 ms after 5 minutes); the worker calls it after the reply is sent.
pub fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
