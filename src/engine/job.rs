//! One job, measured: open the upload, transcribe it inside one
//! PerformanceMonitor session and time its stages. The same code runs on a
//! worker thread and inside a `sori worker` process.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use super::{allocator, EngineError, JobError, JobOutput, TranscribeOptions, Transcriber, Transcript};
use crate::audio::{AudioError, AudioStream};
use crate::monitor::{PerformanceMonitor, StageTimings};
use crate::rounding::round_to;
use crate::vad::filter::{FilterSettings, SpeechOnly};
use crate::vad::SileroVad;

/// Transcribes the upload at `audio` with `transcriber`, measured by `monitor`;
/// `vad` takes the silences out first where the options ask (`vad_filter`).
/// `queue_wait_sec` is how long the job waited before it started. A panic of
/// the recognizer fails the job; the memory it freed goes back to the kernel.
pub fn run_job(
    transcriber: &dyn Transcriber,
    vad: Option<&SileroVad>,
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
        let transcript =
            tracing::info_span!("inference", model = transcriber.model_name()).in_scope(|| {
                match options.vad_filter {
                    false => transcriber.transcribe(&mut stream, options),
                    true => speech_only(transcriber, vad, &mut stream, options),
                }
            })?;
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

/// Transcribes the speech of `stream` only, its times put back where they
/// were in the original; audio with no speech at all gives an empty transcript.
fn speech_only(
    transcriber: &dyn Transcriber,
    vad: Option<&SileroVad>,
    stream: &mut AudioStream,
    options: &TranscribeOptions,
) -> Result<Transcript, JobError> {
    let vad = vad.ok_or_else(|| EngineError("vad_filter needs Silero VAD in the worker (--vad-model)".into()))?;
    let mut speech = SpeechOnly::new(stream.by_ref(), vad.scorer(), FilterSettings::default());
    let result = transcriber.transcribe(&mut speech, options);
    if let Some(failure) = speech.take_failure() {
        return Err(EngineError(failure.to_string()).into());
    }
    let timeline = speech.timeline().clone();
    let mut transcript = match result {
        Err(JobError::Audio(AudioError::Empty)) if timeline.is_empty() && stream.decoded_sec() > 0.0 => {
            let language = options.language.clone().unwrap_or_else(|| "en".into());
            return Ok(Transcript::from_segments(Vec::new(), language));
        }
        other => other?,
    };
    for segment in &mut transcript.segments {
        segment.start = timeline.original(segment.start);
        segment.end = timeline.original(segment.end);
        for word in &mut segment.words {
            word.start = timeline.original(word.start);
            word.end = timeline.original(word.end);
        }
    }
    Ok(transcript)
}
