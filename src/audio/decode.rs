//! Decoding with symphonia: the container is sniffed from the bytes, every
//! channel is averaged into one as packets arrive.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSource, MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::AudioError;

/// Mono samples at the source rate.
pub struct MonoAudio {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    pub channels: usize,
}

fn open(bytes: bytes::Bytes) -> Result<Box<dyn FormatReader>, AudioError> {
    if bytes.is_empty() {
        return Err(AudioError::NotAudio("the file is empty".into()));
    }
    open_source(Box::new(Cursor::new(bytes)))
}

fn open_source(source: Box<dyn MediaSource>) -> Result<Box<dyn FormatReader>, AudioError> {
    let stream = MediaSourceStream::new(source, MediaSourceStreamOptions::default());
    let probed = symphonia::default::get_probe()
        .format(
            &Hint::new(),
            stream,
            &FormatOptions::default(),
            &MetadataOptions::default(),
        )
        .map_err(|e| match e {
            SymphoniaError::IoError(_) | SymphoniaError::Unsupported(_) => {
                AudioError::NotAudio("no known audio format was recognised in its bytes".into())
            }
            other => AudioError::NotAudio(describe(&other)),
        })?;
    Ok(probed.format)
}

/// Checks cheaply (headers only) that the bytes are a container Sori reads
/// with an audio track, so junk is refused before it waits in the queue.
pub fn probe(bytes: bytes::Bytes) -> Result<(), AudioError> {
    check_has_audio(open(bytes)?)
}

/// [`probe`] for a file on disk: only its headers are read.
pub fn probe_file(path: &std::path::Path) -> Result<(), AudioError> {
    let file = std::fs::File::open(path).map_err(|e| AudioError::NotAudio(format!("cannot read the upload: {e}")))?;
    if file.metadata().map(|m| m.len()).unwrap_or(0) == 0 {
        return Err(AudioError::Empty);
    }
    check_has_audio(open_source(Box::new(file))?)
}

fn check_has_audio(format: Box<dyn FormatReader>) -> Result<(), AudioError> {
    let has_audio = format.tracks().iter().any(|t| t.codec_params.codec != CODEC_TYPE_NULL);
    if !has_audio {
        return Err(AudioError::NotAudio("no audio track".into()));
    }
    Ok(())
}

/// Decodes the first audio track to mono f32.
pub fn decode_mono(bytes: bytes::Bytes, max_duration_sec: f64) -> Result<MonoAudio, AudioError> {
    let mut format = open(bytes)?;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NotAudio("no audio track".into()))?;
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::NotAudio(describe(&e)))?;

    let mut samples = Vec::new();
    let mut sample_rate = track.codec_params.sample_rate.unwrap_or(0);
    let mut channels = track.codec_params.channels.map_or(0, |c| c.count());
    let (mut good_packets, mut bad_packets) = (0usize, 0usize);
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            // The end of the stream, or a file shorter than its header claims:
            // keep what was decoded.
            Err(SymphoniaError::IoError(_)) | Err(SymphoniaError::ResetRequired) => break,
            Err(e) if good_packets > 0 => {
                tracing::debug!(error = %e, "stopping at an unreadable packet");
                break;
            }
            Err(e) => return Err(AudioError::Corrupt(describe(&e))),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            Err(SymphoniaError::DecodeError(_)) => {
                bad_packets += 1;
                continue;
            }
            Err(e) => return Err(AudioError::Corrupt(describe(&e))),
        };
        good_packets += 1;
        let spec = *decoded.spec();
        sample_rate = spec.rate;
        channels = spec.channels.count().max(1);
        let buf = match &mut buffer {
            Some(b) if b.capacity() >= decoded.capacity() * channels => b,
            _ => buffer.insert(SampleBuffer::new(decoded.capacity() as u64, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let scale = 1.0 / channels as f32;
        samples.extend(
            buf.samples()
                .chunks_exact(channels)
                .map(|frame| frame.iter().sum::<f32>() * scale),
        );
        if sample_rate > 0 && samples.len() as f64 > max_duration_sec * sample_rate as f64 {
            return Err(AudioError::TooLong {
                limit_sec: max_duration_sec,
            });
        }
    }
    if bad_packets > good_packets {
        return Err(AudioError::Corrupt(format!(
            "{bad_packets} of {} packets are damaged",
            bad_packets + good_packets
        )));
    }
    if samples.is_empty() || sample_rate == 0 {
        return Err(AudioError::Empty);
    }
    Ok(MonoAudio {
        samples,
        sample_rate,
        channels,
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
