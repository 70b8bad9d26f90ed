//! What the supervisor and a `sori worker` process say to each other: one
//! JSON object per line, orders on the worker's stdin, messages on its stdout.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::audio::AudioWarning;
use crate::engine::{Backend, Decoding, JobError, JobOutput, Segment, TranscribeOptions, Transcript};
use crate::monitor::{PerformanceReport, StageTimings};

/// One job for a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub struct Order {
    /// The upload on disk (the supervisor's side deletes it).
    pub audio: PathBuf,
    /// How to transcribe it (the progress sink stays with the supervisor).
    pub options: TranscribeOptions,
    /// Whether to send [`Message::Progress`] as pieces become final.
    pub report_progress: bool,
    /// How long the job waited in the queue, seconds.
    pub queue_wait_sec: f64,
    /// The W3C traceparent of the request's span, so the worker's spans join its trace.
    pub traceparent: Option<String>,
}

/// What a worker process says.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Message {
    /// The model is loaded; the worker waits for orders.
    Ready {
        model: String,
        multilingual: bool,
        backend: Backend,
    },
    /// Segments that became final, and how far into the audio the transcript reaches.
    Progress {
        segments: Vec<SegmentOnWire>,
        covered_sec: f64,
    },
    /// The job ended.
    Done {
        result: Result<Box<OutputOnWire>, JobError>,
    },
}

/// A segment with its decoder's figures (which the data folder does not keep).
pub type SegmentOnWire = (Segment, Decoding);

/// A [`JobOutput`] as it crosses the pipe.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutputOnWire {
    text: String,
    language: String,
    segments: Vec<SegmentOnWire>,
    audio_duration_sec: f64,
    performance: PerformanceReport,
    timings: StageTimings,
    warnings: Vec<AudioWarning>,
}

/// Pairs each segment with its decoding, for the wire.
pub fn segments_to_wire(segments: &[Segment]) -> Vec<SegmentOnWire> {
    segments.iter().map(|s| (s.clone(), s.decoding.clone())).collect()
}

/// Puts each segment's decoding back in its place.
pub fn segments_from_wire(segments: Vec<SegmentOnWire>) -> Vec<Segment> {
    segments
        .into_iter()
        .map(|(segment, decoding)| Segment { decoding, ..segment })
        .collect()
}

impl From<JobOutput> for OutputOnWire {
    fn from(output: JobOutput) -> Self {
        Self {
            segments: segments_to_wire(&output.transcript.segments),
            text: output.transcript.text,
            language: output.transcript.language,
            audio_duration_sec: output.audio_duration_sec,
            performance: output.performance,
            timings: output.timings,
            warnings: output.warnings,
        }
    }
}

impl From<OutputOnWire> for JobOutput {
    fn from(wire: OutputOnWire) -> Self {
        Self {
            transcript: Transcript {
                text: wire.text,
                segments: segments_from_wire(wire.segments),
                language: wire.language,
            },
            audio_duration_sec: wire.audio_duration_sec,
            performance: wire.performance,
            timings: wire.timings,
            warnings: wire.warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioError;

    #[test]
    fn decoder_figures_and_errors_survive_the_pipe() {
        let segment = Segment {
            start: 0.5,
            end: 2.0,
            text: "hello".into(),
            words: Vec::new(),
            decoding: Decoding {
                seek: 50,
                tokens: vec![1, 2],
                temperature: 0.2,
                avg_logprob: -0.3,
                no_speech_prob: 0.01,
            },
        };
        let line = serde_json::to_string(&Message::Progress {
            segments: segments_to_wire(std::slice::from_ref(&segment)),
            covered_sec: 2.0,
        })
        .unwrap();
        let Message::Progress { segments, covered_sec } = serde_json::from_str(&line).unwrap() else {
            panic!("{line}")
        };
        assert_eq!((segments_from_wire(segments), covered_sec), (vec![segment], 2.0));

        let failed = Message::Done {
            result: Err(JobError::Audio(AudioError::TooLong {
                limit_sec: 60.0,
                stated_sec: Some(90.0),
            })),
        };
        let line = serde_json::to_string(&failed).unwrap();
        let Message::Done { result: Err(e) } = serde_json::from_str(&line).unwrap() else {
            panic!("{line}")
        };
        assert_eq!(
            e.to_string(),
            "the audio is 90 s long (as the file states); this server accepts at most 60 s"
        );
    }
}
