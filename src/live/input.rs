//! A live session's input audio: PCM16 from the client at 16 or 24 kHz,
//! turned into 16 kHz samples and cut into utterances, by the voice-activity
//! detector (server VAD) or by the client's commits.

use crate::audio::Resampler;
use crate::vad::turns::{Turn, TurnDetector};
use crate::vad::VadError;

/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: u64 = 16;
/// The shortest audio a commit takes (OpenAI's minimum), ms.
const MIN_COMMIT_MS: u64 = 100;
/// Input audio resampled per call: 20 ms, so that little is held back.
const RESAMPLE_CHUNK_MS: u32 = 20;

/// The input sample rates a session takes: OpenAI's 24 kHz, and 16 kHz (Whisper's own).
pub const INPUT_RATES: [u32; 2] = [24_000, 16_000];

/// A piece of speech, ready to transcribe.
#[derive(Debug, Clone, PartialEq)]
pub struct Utterance {
    /// 16 kHz samples.
    pub audio: Vec<f32>,
    /// Where its audio starts and ends, ms from the session's first audio.
    pub start_ms: u64,
    pub end_ms: u64,
}

/// What the input saw in the audio appended to it.
#[derive(Debug, Clone, PartialEq)]
pub enum InputEvent {
    /// Speech began (server VAD), at this point of the session's audio, prefix padding included.
    SpeechStarted { audio_start_ms: u64 },
    /// Speech ended (server VAD), and its utterance is committed.
    SpeechStopped(Utterance),
}

/// Why appended audio or a commit was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The bytes are not whole 16-bit samples.
    #[error("input audio must be whole 16-bit little-endian samples; this chunk has {0} bytes, an odd count")]
    OddBytes(usize),
    /// A commit with less audio than OpenAI's minimum.
    #[error("buffer too small: expected at least {MIN_COMMIT_MS} ms of audio, but the buffer holds {0} ms")]
    CommitEmpty(u64),
    /// Without turn detection, the buffer is at its longest.
    #[error(
        "the input audio buffer holds the longest utterance this server takes ({0} s); commit it before appending more (the audio beyond was dropped)"
    )]
    BufferFull(u32),
    /// The voice-activity model failed.
    #[error(transparent)]
    Vad(#[from] VadError),
}

/// The session's input audio.
pub struct InputAudio {
    rate: u32,
    resampler: Resampler,
    /// Server VAD; `None`: the client commits.
    turns: Option<TurnDetector>,
    /// Without turn detection: the audio since the last commit or clear.
    buffer: Vec<f32>,
    /// Without turn detection: 16 kHz samples before the buffer, for its times.
    buffer_start: u64,
    /// The longest utterance, ms: the buffer's bound without turn detection.
    max_utterance_ms: u32,
    /// Resampled samples waiting for the detector or buffer (a call's output).
    resampled: Vec<f32>,
}

impl InputAudio {
    /// Input at `rate` (one of [`INPUT_RATES`]), cut by `turns` or by commits.
    pub fn new(rate: u32, turns: Option<TurnDetector>, max_utterance_ms: u32) -> Self {
        Self {
            rate,
            resampler: resampler(rate),
            turns,
            buffer: Vec::new(),
            buffer_start: 0,
            max_utterance_ms,
            resampled: Vec::new(),
        }
    }

    /// Takes PCM16 little-endian mono bytes at the session's rate.
    pub fn append(&mut self, pcm: &[u8]) -> Result<Vec<InputEvent>, InputError> {
        if !pcm.len().is_multiple_of(2) {
            return Err(InputError::OddBytes(pcm.len()));
        }
        let samples: Vec<f32> = pcm
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        self.resampled.clear();
        self.resampler
            .push(&samples, &mut self.resampled)
            .expect("whole chunks of a fixed size resample");
        self.take_resampled()
    }

    /// Ends the utterance now (`input_audio_buffer.commit`): with server
    /// VAD the speech under way, else the audio since the last commit.
    pub fn commit(&mut self) -> Result<Utterance, InputError> {
        let ended = match &mut self.turns {
            Some(detector) => detector.finish().map(utterance_of),
            None => {
                self.resampled.clear();
                self.resampler
                    .finish(&mut self.resampled)
                    .expect("a flush of whole chunks resamples");
                self.resampler = resampler(self.rate);
                self.take_resampled()?;
                let start_ms = self.buffer_start / SAMPLES_PER_MS;
                self.buffer_start += self.buffer.len() as u64;
                let audio = std::mem::take(&mut self.buffer);
                Some(Utterance {
                    end_ms: start_ms + audio.len() as u64 / SAMPLES_PER_MS,
                    start_ms,
                    audio,
                })
            }
        };
        match ended {
            Some(utterance) if utterance.end_ms - utterance.start_ms >= MIN_COMMIT_MS => Ok(utterance),
            Some(utterance) => Err(InputError::CommitEmpty(utterance.end_ms - utterance.start_ms)),
            None => Err(InputError::CommitEmpty(0)),
        }
    }

    /// Drops the audio not yet committed (`input_audio_buffer.clear`).
    pub fn clear(&mut self) {
        self.resampler = resampler(self.rate);
        if let Some(detector) = &mut self.turns {
            detector.clear();
        }
        self.buffer_start += self.buffer.len() as u64;
        self.buffer.clear();
    }

    /// Hands the resampled samples to the detector, or to the buffer.
    fn take_resampled(&mut self) -> Result<Vec<InputEvent>, InputError> {
        let Some(detector) = &mut self.turns else {
            let max = (u64::from(self.max_utterance_ms) * SAMPLES_PER_MS) as usize;
            let room = max.saturating_sub(self.buffer.len());
            let fits = self.resampled.len().min(room);
            self.buffer.extend_from_slice(&self.resampled[..fits]);
            if fits < self.resampled.len() {
                return Err(InputError::BufferFull(self.max_utterance_ms / 1000));
            }
            return Ok(Vec::new());
        };
        let turns = detector.push(&self.resampled)?;
        Ok(turns
            .into_iter()
            .map(|turn| match turn {
                Turn::Started { audio_start_ms } => InputEvent::SpeechStarted { audio_start_ms },
                stopped => InputEvent::SpeechStopped(utterance_of(stopped)),
            })
            .collect())
    }
}

/// The utterance a stop hands over.
fn utterance_of(turn: Turn) -> Utterance {
    let Turn::Stopped { audio_end_ms, audio } = turn else {
        unreachable!("only a stop carries audio")
    };
    Utterance {
        start_ms: audio_end_ms - audio.len() as u64 / SAMPLES_PER_MS,
        end_ms: audio_end_ms,
        audio,
    }
}

fn resampler(rate: u32) -> Resampler {
    let chunk = (rate / 1000 * RESAMPLE_CHUNK_MS) as usize;
    Resampler::with_chunk(rate, chunk).expect("the input rates resample to 16 kHz")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of a 440 Hz tone as PCM16 bytes at `rate`.
    fn tone(rate: u32, ms: u32) -> Vec<u8> {
        (0..rate / 1000 * ms)
            .flat_map(|i| {
                let t = f64::from(i) / f64::from(rate);
                (((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 8000.0) as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn a_commit_takes_the_audio_since_the_last_one_at_16_khz() {
        let mut input = InputAudio::new(24_000, None, 30_000);
        for _ in 0..10 {
            assert_eq!(input.append(&tone(24_000, 100)).unwrap(), Vec::new());
        }
        let first = input.commit().unwrap();
        assert_eq!((first.start_ms, first.end_ms), (0, 1000));
        assert_eq!(first.audio.len(), 16_000);
        input.append(&tone(24_000, 500)).unwrap();
        let second = input.commit().unwrap();
        assert_eq!((second.start_ms, second.end_ms), (1000, 1500));
    }

    #[test]
    fn too_little_audio_odd_bytes_and_a_full_buffer_are_refused() {
        let mut input = InputAudio::new(16_000, None, 1000);
        assert!(matches!(input.commit(), Err(InputError::CommitEmpty(0))));
        assert!(matches!(input.append(&[0, 0, 0]), Err(InputError::OddBytes(3))));
        input.append(&tone(16_000, 50)).unwrap();
        assert!(matches!(input.commit(), Err(InputError::CommitEmpty(50))));
        input.append(&tone(16_000, 900)).unwrap();
        assert!(matches!(
            input.append(&tone(16_000, 200)),
            Err(InputError::BufferFull(1))
        ));
        let full = input.commit().unwrap();
        assert_eq!(
            full.audio.len(),
            16_000,
            "the buffer keeps what fits and drops the rest"
        );
    }

    #[test]
    fn clear_drops_what_was_not_committed() {
        let mut input = InputAudio::new(16_000, None, 30_000);
        input.append(&tone(16_000, 700)).unwrap();
        input.clear();
        input.append(&tone(16_000, 300)).unwrap();
        let utterance = input.commit().unwrap();
        assert_eq!((utterance.start_ms, utterance.end_ms), (700, 1000));
    }
}
