//! One job, measured: open the upload, transcribe it inside one
//! PerformanceMonitor session and time its stages. The same code runs on a
//! worker thread and inside a `sori worker` process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use super::{allocator, EngineError, JobError, JobOutput, TranscribeOptions, Transcriber};
use crate::audio::AudioStream;
use crate::monitor::{PerformanceMonitor, StageTimings};
use crate::rounding::round_to;

/// Transcribes the upload at `audio` with `transcriber`, measured by `monitor`.
/// `queue_wait_sec` is how long the job waited before it started. A panic of
/// the recognizer fails the job; the memory it freed goes back to the kernel.
pub fn run_job(
    transcriber: &dyn Transcriber,
    monitor: &PerformanceMonitor,
    audio: &Path,
    options: &TranscribeOptions,
    queue_wait_sec: f64,
    max_audio_sec: f64,
) -> Result<JobOutput, JobError> {
    let measured = || -> Result<JobOutput, JobError> {
        let session = monitor.start();
        let started = Instant::now();
        let mut stream = AudioStream::open_file(audio, max_audio_sec)?;
        let transcript = tracing::info_span!("inference", model = transcriber.model_name())
            .in_scope(|| transcriber.transcribe(&mut stream, options))?;
        let performance = session.finish();
        // Decoding runs as the model asks for audio, so its time is inside
        // the transcription's: what is not decoding is the model's.
        let decode_sec = stream.busy().as_secs_f64();
        let inference_sec = (started.elapsed().as_secs_f64() - decode_sec).max(0.0);
        Ok(JobOutput {
            transcript,
            audio_duration_sec: stream.decoded_sec(),
            performance,
            timings: StageTimings {
                queue_wait_sec: round_to(queue_wait_sec, 4),
                decode_sec: round_to(decode_sec, 4),
                inference_sec: round_to(inference_sec, 4),
                model_load_sec: None,
            },
            warnings: stream.warnings(),
        })
    };
    let result = catch_unwind(AssertUnwindSafe(measured))
        .unwrap_or_else(|_| Err(EngineError("the recognizer panicked".into()).into()));
    allocator::return_freed_memory();
    result
}
