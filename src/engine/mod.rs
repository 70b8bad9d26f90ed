//! Speech recognition: the `Transcriber` trait, the whisper.cpp implementation,
//! and the bounded queue of workers that runs it off the async runtime (in
//! `sori worker` processes for the server, on threads in-process otherwise).

mod allocator;
mod backend;
mod ffi;
mod job;
mod mel;
mod pauses;
mod pool;
pub mod process;
mod repeats;
mod whisper;
mod words;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audio::AudioError;

pub use allocator::return_large_blocks_when_freed;
pub use backend::Backend;
pub use job::run_job;
pub use mel::{LogMelSpectrogram, MelSpectrogramMaker};
pub use pool::{Engine, EngineSettings, JobOutput, Lane, ModelInfo, SubmitError};
pub use whisper::{WhisperSettings, WhisperTranscriber};

pub use words::strip_non_speech;

/// What the model is asked to do with the speech.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Task {
    /// Write down what is said, in its language.
    #[default]
    Transcribe,
    /// Write it down in English (multilingual models only).
    Translate,
}

/// How to transcribe one clip.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TranscribeOptions {
    /// A Whisper language code (`en`, `ko`, ...); `None` detects it.
    pub language: Option<String>,
    /// Transcribe, or translate into English.
    pub task: Task,
    /// Text the decoder reads before each piece of audio (names, spellings, style).
    pub prompt: Option<String>,
    /// Sampling temperature; 0 starts greedy and falls back to higher
    /// temperatures where a decode fails whisper's checks, above 0 is fixed.
    pub temperature: f32,
    /// Time every word (costs a little more; see BENCHMARKS.md).
    pub word_timestamps: bool,
    /// Take silences of 2 s and more out before Whisper sees the audio
    /// (faster-whisper's `vad_filter`); times stay those of the original audio.
    #[serde(default)]
    pub vad_filter: bool,
    /// Told of the transcript as it becomes final, piece by piece, in order
    /// (in the process that runs the job: a worker process reports it over its pipe).
    #[serde(skip)]
    pub progress: Option<ProgressSink>,
}

/// Receives each stretch of the transcript as soon as it is final: its
/// segments (times from the start of the audio, in order, never revised) and
/// the point in the audio, seconds, that the transcript now covers.
#[derive(Clone)]
pub struct ProgressSink(pub Arc<OnProgress>);

/// What a [`ProgressSink`] calls: the final segments, and the seconds of audio covered.
pub type OnProgress = dyn Fn(&[Segment], f64) + Send + Sync;

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
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
    /// Each word with its time, when they were asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
    /// How the decoder produced it (OpenAI's verbose_json shows these).
    #[serde(skip)]
    pub decoding: Decoding,
}

/// One word as the reader sees it (sub-word tokens joined, punctuation kept), and when it was said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub word: String,
    /// Start and end, seconds from the beginning of the audio.
    pub start: f64,
    pub end: f64,
}

/// The decoder's view of a segment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decoding {
    /// Where its window starts in the audio, in 10 ms mel frames (OpenAI's `seek`).
    pub seek: usize,
    /// Its text tokens' ids.
    pub tokens: Vec<i32>,
    /// The temperature of the decode that produced it.
    pub temperature: f32,
    /// Mean log-probability of its text tokens.
    pub avg_logprob: f32,
    /// The probability whisper gave its window of holding no speech.
    pub no_speech_prob: f32,
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
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
#[error("transcription failed: {0}")]
pub struct EngineError(pub String);

/// Why a transcription failed: its audio, the recognizer, or the process running it.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum JobError {
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The worker process died while it ran the job (an abort inside
    /// whisper.cpp, a segfault, the out-of-memory killer); how it ended.
    #[error("the transcription engine crashed while it worked on this file ({0})")]
    Crashed(String),
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
    /// The device the model runs on.
    fn backend(&self) -> &Backend;
    /// Transcribes audio on the calling thread (and threads it starts), reading
    /// it as far ahead as it needs; an error of the audio ends the transcription.
    fn transcribe(&self, audio: &mut AudioBlocks<'_>, options: &TranscribeOptions) -> Result<Transcript, JobError>;
}

/// The English name of a Whisper language code, lower case, as OpenAI's
/// `verbose_json` gives it (`en` is `english`).
pub fn language_name(code: &str) -> Option<&'static str> {
    ffi::language_name(code)
}

/// Whether `code` is a language Whisper knows (`auto` included).
pub fn is_known_language(code: &str) -> bool {
    code == "auto" || ffi::language_id(code).is_some()
}
