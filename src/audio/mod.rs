//! Audio bytes -> 16 kHz mono f32, the input Whisper expects.

mod decode;
mod resample;

pub use decode::{probe, probe_file};

/// Whisper's sample rate.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;

/// Why an upload could not be turned into speech samples.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The bytes are not a container/codec Sori reads.
    #[error("the file is not audio Sori can read ({0}); send WAV, MP3, FLAC, Ogg Vorbis or M4A/AAC")]
    NotAudio(String),
    /// The container was recognised but the audio inside is damaged.
    #[error("the audio could not be decoded ({0}); the file may be damaged")]
    Corrupt(String),
    /// The file decoded to no samples.
    #[error("the file contains no audio samples")]
    Empty,
    /// Longer than the configured limit.
    #[error("the audio is longer than the {limit_sec:.0} s this server accepts")]
    TooLong { limit_sec: f64 },
}

/// Decoded, downmixed and resampled audio.
#[derive(Debug, Clone)]
pub struct PreparedAudio {
    /// Mono samples at 16 kHz, in [-1, 1].
    pub samples: Vec<f32>,
    /// Length of the original audio, in seconds.
    pub duration_sec: f64,
    /// The original sample rate.
    pub source_sample_rate: u32,
    /// The original channel count.
    pub source_channels: usize,
}

/// Decodes any supported format from bytes (sniffed, not trusted by name),
/// downmixes to mono and resamples to 16 kHz. Refuses audio over `max_duration_sec`.
pub fn prepare(bytes: bytes::Bytes, max_duration_sec: f64) -> Result<PreparedAudio, AudioError> {
    let decoded = tracing::info_span!("decode").in_scope(|| decode::decode_mono(bytes, max_duration_sec))?;
    let duration_sec = decoded.samples.len() as f64 / decoded.sample_rate as f64;
    let samples = tracing::info_span!("resample", from_hz = decoded.sample_rate)
        .in_scope(|| resample::to_whisper_rate(&decoded.samples, decoded.sample_rate))
        .map_err(|e| AudioError::Corrupt(format!("resampling failed: {e}")))?;
    Ok(PreparedAudio {
        samples,
        duration_sec,
        source_sample_rate: decoded.sample_rate,
        source_channels: decoded.channels,
    })
}
