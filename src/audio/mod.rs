//! Audio -> 16 kHz mono f32, the input Whisper expects, as a stream: a file is
//! decoded, downmixed and resampled block by block while it is transcribed,
//! so memory does not grow with its length.

mod decode;
mod header;
mod resample;

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use symphonia::core::io::MediaSource;

use decode::Decoder;
pub use resample::Resampler;

/// Whisper's sample rate.
pub const WHISPER_SAMPLE_RATE: u32 = 16_000;
/// Sample rates real recordings use (telephone 8 kHz down to 4 kHz, studio up to 768 kHz).
pub const SAMPLE_RATES: RangeInclusive<u32> = 4_000..=768_000;
/// 16 kHz samples per block handed to the engine (about 1 s).
const BLOCK_SAMPLES: usize = 16_384;
/// A decoded length this much (2 %, and 0.1 s) short of the stated one is a cut file.
const TRUNCATION_TOLERANCE: (f64, f64) = (0.98, 0.1);

/// Why an upload could not be turned into speech samples.
#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum AudioError {
    /// The bytes are not a container/codec Sori reads.
    #[error("the file is not audio Sori can read ({0}); send WAV, MP3, FLAC, Ogg Vorbis or M4A/AAC")]
    NotAudio(String),
    /// The container was recognised but the audio inside is damaged.
    #[error("the audio could not be decoded ({0}); the file may be damaged")]
    Corrupt(String),
    /// A sample rate outside [`SAMPLE_RATES`].
    #[error(
        "the audio's sample rate is {0} Hz, outside the 4,000-768,000 Hz that recordings use; the header is damaged or the file is not a recording"
    )]
    UnsupportedRate(u32),
    /// The file decoded to no samples.
    #[error("the file contains no audio samples")]
    Empty,
    /// Longer than the configured limit; `stated_sec` when the header says so.
    #[error("{}", too_long_message(*.limit_sec, *.stated_sec))]
    TooLong { limit_sec: f64, stated_sec: Option<f64> },
}

fn too_long_message(limit_sec: f64, stated_sec: Option<f64>) -> String {
    match stated_sec {
        Some(stated) => format!(
            "the audio is {stated:.0} s long (as the file states); this server accepts at most {limit_sec:.0} s"
        ),
        None => format!("the audio is longer than the {limit_sec:.0} s this server accepts"),
    }
}

/// Something the answer must say about the audio although it was transcribed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum AudioWarning {
    /// The file ends before the length its header states: only what is there was transcribed.
    Truncated { declared_sec: f64, decoded_sec: f64 },
    /// Damaged packets were skipped.
    DamagedPackets { skipped: usize },
}

/// Opens `path` and checks its header: a file that is not audio, has an
/// impossible sample rate, or states a length over `max_duration_sec` is
/// refused here, before it waits for a worker or allocates any samples.
/// Returns the length the header states, if it states one.
pub fn probe_file(path: &Path, max_duration_sec: f64) -> Result<Option<f64>, AudioError> {
    AudioStream::open_file(path, max_duration_sec).map(|stream| stream.decoder.declared_sec())
}

/// A whole file in memory, for tools and tests (the server streams).
#[derive(Debug, Clone)]
pub struct PreparedAudio {
    /// Mono samples at 16 kHz, in [-1, 1].
    pub samples: Vec<f32>,
    /// Length of the decoded audio, in seconds.
    pub duration_sec: f64,
}

/// Decodes bytes of any supported format into one buffer of 16 kHz samples.
pub fn prepare(bytes: bytes::Bytes, max_duration_sec: f64) -> Result<PreparedAudio, AudioError> {
    let mut stream = AudioStream::open(Box::new(std::io::Cursor::new(bytes)), max_duration_sec)?;
    let mut samples = Vec::new();
    for block in stream.by_ref() {
        samples.extend(block?);
    }
    Ok(PreparedAudio {
        samples,
        duration_sec: stream.decoded_sec(),
    })
}

/// 16 kHz mono blocks of a file, decoded as they are asked for; it ends with
/// an error if the audio turns out longer than the limit, empty, or damaged.
pub struct AudioStream {
    decoder: Decoder,
    /// Made for the first packet's rate.
    resampler: Option<Resampler>,
    max_duration_sec: f64,
    /// Source frames decoded so far, and at which rate.
    source_frames: u64,
    source_rate: u32,
    finished: bool,
    /// Time spent decoding and resampling.
    busy: Duration,
    /// One `decode` and one `resample` span per file, entered for each block
    /// (both children of the request's span, as the stages of one job).
    decode_span: tracing::Span,
    resample_span: tracing::Span,
}

impl AudioStream {
    /// Opens a file on disk (only its header is read now).
    pub fn open_file(path: &Path, max_duration_sec: f64) -> Result<Self, AudioError> {
        let file =
            std::fs::File::open(path).map_err(|e| AudioError::NotAudio(format!("cannot read the upload: {e}")))?;
        Self::open(Box::new(file), max_duration_sec)
    }

    /// Opens any seekable source and checks its header.
    pub fn open(source: Box<dyn MediaSource>, max_duration_sec: f64) -> Result<Self, AudioError> {
        let decode_span = tracing::info_span!("decode");
        let resample_span = tracing::info_span!("resample", from_hz = tracing::field::Empty);
        let started = Instant::now();
        let decoder = decode_span.in_scope(|| Decoder::open(source))?;
        if let Some(stated) = decoder.declared_sec().filter(|&s| s > max_duration_sec) {
            return Err(AudioError::TooLong {
                limit_sec: max_duration_sec,
                stated_sec: Some(stated),
            });
        }
        Ok(Self {
            decoder,
            resampler: None,
            max_duration_sec,
            source_frames: 0,
            source_rate: 0,
            finished: false,
            busy: started.elapsed(),
            decode_span,
            resample_span,
        })
    }

    /// Seconds of audio decoded so far (the whole length once the stream has ended).
    pub fn decoded_sec(&self) -> f64 {
        if self.source_rate == 0 {
            0.0
        } else {
            self.source_frames as f64 / self.source_rate as f64
        }
    }

    /// Time spent decoding and resampling so far.
    pub fn busy(&self) -> Duration {
        self.busy
    }

    /// What the answer must say about the audio, once the stream has ended.
    pub fn warnings(&self) -> Vec<AudioWarning> {
        let mut warnings = Vec::new();
        let decoded_sec = self.decoded_sec();
        if let Some(declared_sec) = self.decoder.declared_sec() {
            let (ratio, margin) = TRUNCATION_TOLERANCE;
            if decoded_sec < declared_sec * ratio - margin {
                warnings.push(AudioWarning::Truncated {
                    declared_sec: crate::rounding::round_to(declared_sec, 3),
                    decoded_sec: crate::rounding::round_to(decoded_sec, 3),
                });
            }
        }
        if self.decoder.skipped_packets() > 0 || self.decoder.stopped_early() {
            warnings.push(AudioWarning::DamagedPackets {
                skipped: self.decoder.skipped_packets() + usize::from(self.decoder.stopped_early()),
            });
        }
        warnings
    }

    /// Decodes until a block is ready or the stream ends.
    fn next_block(&mut self) -> Result<Option<Vec<f32>>, AudioError> {
        let mut block = Vec::with_capacity(BLOCK_SAMPLES + 4096);
        while block.len() < BLOCK_SAMPLES {
            let Some((mono, rate)) = self.decoder.next_mono()? else {
                self.finished = true;
                self.decoder.check_damage()?;
                if self.source_frames == 0 {
                    return Err(AudioError::Empty);
                }
                if let Some(resampler) = &mut self.resampler {
                    let _resample = self.resample_span.enter();
                    resampler.finish(&mut block).map_err(resample_failed)?;
                }
                break;
            };
            if self.resampler.is_none() {
                self.source_rate = rate;
                self.resample_span.record("from_hz", rate);
                self.resampler = Some(Resampler::new(rate).map_err(|e| AudioError::Corrupt(e.to_string()))?);
            } else if rate != self.source_rate {
                return Err(AudioError::Corrupt(format!(
                    "its sample rate changes from {} to {rate} Hz",
                    self.source_rate
                )));
            }
            self.source_frames += mono.len() as u64;
            if self.source_frames as f64 > self.max_duration_sec * self.source_rate as f64 {
                return Err(AudioError::TooLong {
                    limit_sec: self.max_duration_sec,
                    stated_sec: None,
                });
            }
            let _resample = self.resample_span.enter();
            let resampler = self.resampler.as_mut().expect("made above");
            resampler.push(&mono, &mut block).map_err(resample_failed)?;
        }
        Ok((!block.is_empty()).then_some(block))
    }
}

fn resample_failed(e: rubato::ResampleError) -> AudioError {
    AudioError::Corrupt(format!("resampling failed: {e}"))
}

impl Iterator for AudioStream {
    type Item = Result<Vec<f32>, AudioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let started = Instant::now();
        let span = self.decode_span.clone();
        let result = span.in_scope(|| self.next_block());
        self.busy += started.elapsed();
        if result.is_err() {
            self.finished = true;
        }
        result.transpose()
    }
}
