//! Speech recognition: the `Transcriber` trait, the whisper.cpp implementation,
//! and the bounded queue of worker threads that runs it off the async runtime.

mod allocator;
mod ffi;
mod mel;
mod pauses;
mod pool;
mod whisper;

use serde::{Deserialize, Serialize};

use crate::audio::AudioError;

pub use allocator::return_large_blocks_when_freed;
pub use mel::{LogMelSpectrogram, MelSpectrogramMaker};
pub use pool::{Engine, EngineSettings, JobOutput, SubmitError};
pub use whisper::{WhisperSettings, WhisperTranscriber};

/// How to transcribe one clip.
#[derive(Debug, Clone, Default)]
pub struct TranscribeOptions {
    /// A Whisper language code (`en`, `ko`, ...); `None` detects it.
    pub language: Option<String>,
}

/// A timed piece of the transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start, seconds from the beginning of the audio.
    pub start: f64,
    /// End, seconds from the beginning of the audio.
    pub end: f64,
    /// The words, without leading or trailing spaces.
    pub text: String,
}

/// What the model heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The whole text.
    pub text: String,
    /// Timed segments, in order.
    pub segments: Vec<Segment>,
    /// The language used (detected or given), as a Whisper code.
    pub language: String,
}

impl Transcript {
    /// A transcript whose text is its segments' texts, in order.
    pub fn from_segments(segments: Vec<Segment>, language: String) -> Self {
        let text = segments.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ");
        Self {
            text,
            segments,
            language,
        }
    }
}

/// A failure inside the recognizer itself (not the caller's input).
#[derive(Debug, thiserror::Error)]
#[error("transcription failed: {0}")]
pub struct EngineError(pub String);

/// Why a transcription failed: its audio, or the recognizer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// 16 kHz mono audio in blocks, as it is decoded; an error ends it.
pub type AudioBlocks<'a> = dyn Iterator<Item = Result<Vec<f32>, AudioError>> + Send + 'a;

/// A speech recognizer. HTTP tests of routing and errors can use a stand-in;
/// transcription itself is tested with [`WhisperTranscriber`] and a real model.
pub trait Transcriber: Send + Sync + 'static {
    /// The model's name as shown to users (`base`, `tiny.en`).
    fn model_name(&self) -> &str;
    /// Whether the model knows languages other than English.
    fn is_multilingual(&self) -> bool;
    /// Transcribes audio on the calling thread (and threads it starts), reading
    /// it as far ahead as it needs; an error of the audio ends the transcription.
    fn transcribe(&self, audio: &mut AudioBlocks<'_>, options: &TranscribeOptions) -> Result<Transcript, JobError>;
}

/// Whether `code` is a language Whisper knows (`auto` included).
pub fn is_known_language(code: &str) -> bool {
    code == "auto" || ffi::language_id(code).is_some()
}
