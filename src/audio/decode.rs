//! Decoding with symphonia, packet by packet: the container is sniffed from
//! the bytes, the header's sample rate and length are checked before any
//! sample is decoded, and every channel is averaged into one as packets arrive.
//! Every call into symphonia is guarded, so a file that trips a panic in it
//! is refused like any other damaged file.

use std::panic::{catch_unwind, AssertUnwindSafe};

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::{header, AudioError, SAMPLE_RATES};

/// An audio track being decoded to mono at its own sample rate.
pub struct Decoder {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn symphonia::core::codecs::Decoder>,
    track_id: u32,
    /// Reused between packets of the same size.
    buffer: Option<SampleBuffer<f32>>,
    /// The length the container states (WAV data size, FLAC STREAMINFO, MP4
    /// duration, MP3 Xing/VBRI or symphonia's estimate), seconds.
    declared_sec: Option<f64>,
    good_packets: usize,
    bad_packets: usize,
    /// Decoding stopped at a packet it could not read, after good ones.
    stopped_early: bool,
}

impl Decoder {
    /// Opens a source and checks what its header states: a sample rate real
    /// recordings use, an audio track, a codec symphonia decodes.
    pub fn open(mut source: Box<dyn MediaSource>) -> Result<Self, AudioError> {
        if source.byte_len() == Some(0) {
            return Err(AudioError::Empty);
        }
        let stated_rate = header::wav_sample_rate(&mut source)
            .map_err(|e| AudioError::NotAudio(format!("cannot read the upload: {e}")))?;
        if let Some(rate) = stated_rate {
            check_rate(rate)?;
        }
        let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
        let format = guarded("header", || {
            symphonia::default::get_probe()
                .format(
                    &Hint::new(),
                    stream,
                    &FormatOptions::default(),
                    &MetadataOptions::default(),
                )
                .map(|probed| probed.format)
                .map_err(|e| match e {
                    SymphoniaError::IoError(_) | SymphoniaError::Unsupported(_) => {
                        AudioError::NotAudio("no known audio format was recognised in its bytes".into())
                    }
                    other => AudioError::NotAudio(describe(&other)),
                })
        })?;
        let track = format
            .tracks()
            .iter()
            .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
            .ok_or_else(|| AudioError::NotAudio("no audio track".into()))?;
        let params = track.codec_params.clone();
        let track_id = track.id;
        if let Some(rate) = params.sample_rate {
            check_rate(rate)?;
        }
        let declared_sec = match (params.n_frames, params.sample_rate) {
            (Some(frames), Some(rate)) => Some(frames as f64 / rate as f64),
            _ => None,
        };
        let decoder = guarded("codec", || {
            symphonia::default::get_codecs()
                .make(&params, &DecoderOptions::default())
                .map_err(|e| AudioError::NotAudio(describe(&e)))
        })?;
        Ok(Self {
            format,
            decoder,
            track_id,
            buffer: None,
            declared_sec,
            good_packets: 0,
            bad_packets: 0,
            stopped_early: false,
        })
    }

    /// The length the container states, seconds.
    pub fn declared_sec(&self) -> Option<f64> {
        self.declared_sec
    }

    /// Packets that could not be decoded and were skipped.
    pub fn skipped_packets(&self) -> usize {
        self.bad_packets
    }

    /// Whether decoding ended at an unreadable packet rather than the end of the stream.
    pub fn stopped_early(&self) -> bool {
        self.stopped_early
    }

    /// The next packet's samples, mixed to mono, with their sample rate;
    /// `None` at the end of the stream (or of a file shorter than its header claims).
    pub fn next_mono(&mut self) -> Result<Option<(Vec<f32>, u32)>, AudioError> {
        loop {
            let packet = match guarded("packets", || Ok(self.format.next_packet()))? {
                Ok(p) => p,
                Err(SymphoniaError::IoError(_)) | Err(SymphoniaError::ResetRequired) => return Ok(None),
                Err(e) if self.good_packets > 0 => {
                    tracing::debug!(error = %e, "stopping at an unreadable packet");
                    self.stopped_early = true;
                    return Ok(None);
                }
                Err(e) => return Err(AudioError::Corrupt(describe(&e))),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let (decoder, buffer) = (&mut self.decoder, &mut self.buffer);
            let mono = guarded("audio", || {
                let decoded = match decoder.decode(&packet) {
                    Ok(d) => d,
                    Err(SymphoniaError::DecodeError(_)) => return Ok(None),
                    Err(e) => return Err(AudioError::Corrupt(describe(&e))),
                };
                let spec = *decoded.spec();
                let channels = spec.channels.count().max(1);
                let buf = match buffer {
                    Some(b) if b.capacity() >= decoded.capacity() * channels => b,
                    _ => buffer.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
                };
                buf.copy_interleaved_ref(decoded);
                let scale = 1.0 / channels as f32;
                let mono: Vec<f32> = buf
                    .samples()
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale)
                    .collect();
                Ok(Some((mono, spec.rate)))
            })?;
            let Some((mono, rate)) = mono else {
                self.bad_packets += 1;
                if self.bad_packets > 16 && self.bad_packets > self.good_packets {
                    return Err(self.mostly_damaged());
                }
                continue;
            };
            self.good_packets += 1;
            check_rate(rate)?;
            return Ok(Some((mono, rate)));
        }
    }

    /// The error for a stream whose packets are mostly damaged, if it is one.
    pub fn check_damage(&self) -> Result<(), AudioError> {
        if self.bad_packets > self.good_packets {
            return Err(self.mostly_damaged());
        }
        Ok(())
    }

    fn mostly_damaged(&self) -> AudioError {
        AudioError::Corrupt(format!(
            "{} of {} packets are damaged",
            self.bad_packets,
            self.bad_packets + self.good_packets
        ))
    }
}

/// Refuses sample rates no real recording uses (a header that says 0 or
/// 1 Hz would make a tiny file "hours" long).
fn check_rate(rate: u32) -> Result<(), AudioError> {
    if SAMPLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(AudioError::UnsupportedRate(rate))
    }
}

/// Runs a call into symphonia; a panic inside it becomes a damaged-file error.
fn guarded<T>(what: &str, call: impl FnOnce() -> Result<T, AudioError>) -> Result<T, AudioError> {
    catch_unwind(AssertUnwindSafe(call)).unwrap_or_else(|_| {
        tracing::warn!(part = what, "the audio decoder panicked on an upload");
        Err(AudioError::Corrupt(format!("its {what} could not be read")))
    })
}

fn describe(e: &SymphoniaError) -> String {
    match e {
        SymphoniaError::Unsupported(what) => format!("unsupported {what}"),
        SymphoniaError::DecodeError(what) => what.to_string(),
        SymphoniaError::IoError(io) => format!("read error: {io}"),
        other => other.to_string(),
    }
}
