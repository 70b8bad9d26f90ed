//! `sori worker`: one worker process of `sori serve`, started by it (never by
//! hand). It loads the model, then runs the jobs the server sends, one at a
//! time, each measured by its own monitor (see `engine::process`).

use std::time::Duration;

use crate::config::WorkerArgs;
use crate::engine::process::child;
use crate::engine::{return_large_blocks_when_freed, WhisperSettings, WhisperTranscriber};
use crate::monitor::{GpuProbe, PerformanceMonitor};
use crate::telemetry::TelemetryGuard;
use crate::trace_context;
use crate::vad::SileroVad;

/// Serves the server's orders until it closes the pipe.
pub fn run(args: WorkerArgs, telemetry: &TelemetryGuard) -> anyhow::Result<()> {
    child::bind_to_parent();
    if args.nice != 0 {
        // Before the model's and the jobs' threads start: a thread takes the
        // priority of the thread that starts it.
        // SAFETY: setpriority has no memory preconditions; 0 names this process.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, args.nice) } != 0 {
            anyhow::bail!(
                "setting the CPU priority to {}: {}",
                args.nice,
                std::io::Error::last_os_error()
            );
        }
    }
    return_large_blocks_when_freed();
    let transcriber = WhisperTranscriber::load(
        &args.model_path,
        &args.model_name,
        WhisperSettings {
            threads: args.threads,
            short_audio_context: args.short_audio_context,
            gpu_device: args.gpu_device,
        },
    )
    .map_err(|e| anyhow::anyhow!("loading {}: {}", args.model_path.display(), e.0))?;
    // Only `vad_filter` needs it: a worker without it refuses those jobs, not the others.
    let vad = args.vad_model.as_deref().and_then(|path| {
        SileroVad::load(path)
            .map_err(|e| tracing::warn!(error = %e, "vad_filter is not available"))
            .ok()
    });
    let monitor = PerformanceMonitor::new(Duration::from_secs_f64(args.sample_interval_sec), GpuProbe::detect());
    let job_span = |traceparent: Option<&str>| {
        let span = tracing::info_span!("worker", pid = i64::from(std::process::id()));
        if let Some(traceparent) = traceparent {
            trace_context::with_traceparent(&span, traceparent);
        }
        span
    };
    child::serve(
        &transcriber,
        vad.as_ref(),
        &monitor,
        args.max_audio_sec,
        job_span,
        || telemetry.flush(),
    )?;
    Ok(())
}
