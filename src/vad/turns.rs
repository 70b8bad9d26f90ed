//! Turn detection: utterances cut out of a live 16 kHz stream by each frame's
//! speech probability, with OpenAI's `server_vad` parameters and Silero's
//! hysteresis (speech starts at `threshold` and counts as silence only below
//! `threshold - 0.15`).

use std::collections::VecDeque;

use super::{FrameScorer, Framer, VadError, FRAME_SAMPLES, HYSTERESIS};

/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: u64 = super::SAMPLES_PER_MS as u64;

/// OpenAI's `server_vad` parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerVad {
    /// The speech probability (0-1) from which a frame starts speech.
    pub threshold: f32,
    /// Audio kept in front of the first speech frame, ms.
    pub prefix_padding_ms: u32,
    /// Silence that ends an utterance, ms.
    pub silence_duration_ms: u32,
}

impl Default for ServerVad {
    /// OpenAI's defaults: 0.5, 300 ms, 500 ms.
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
        }
    }
}

/// What the detector found in the audio it was given.
#[derive(Debug, Clone, PartialEq)]
pub enum Turn {
    /// Speech began. `audio_start_ms` counts from the stream's start and is
    /// where the utterance's audio begins, the prefix padding included.
    Started { audio_start_ms: u64 },
    /// The utterance ended: after `silence_duration_ms` of silence, or at
    /// its longest length (speech then goes on in a new utterance).
    /// `audio_end_ms` is where its audio ends, the silence included.
    Stopped { audio_end_ms: u64, audio: Vec<f32> },
}

/// Cuts one stream into utterances. Memory is bounded: less than a frame
/// waiting, the prefix padding, and at most one utterance of the longest length.
pub struct TurnDetector {
    params: ServerVad,
    scorer: FrameScorer,
    /// Samples that do not make a whole frame yet.
    framer: Framer,
    /// Samples taken so far but those still pending: the stream's clock.
    scored: u64,
    /// Outside speech, the last `prefix_padding_ms` of audio; in speech, the utterance so far.
    audio: VecDeque<f32>,
    /// In speech: where the utterance's audio begins (samples from the stream's start).
    started_at: Option<u64>,
    /// In speech: the silence run so far, samples (0 when the last frames were speech).
    silence: u64,
    /// The longest utterance, samples; one that reaches it is cut there.
    max_utterance: usize,
}

impl TurnDetector {
    /// A detector with `params` whose utterances are at most `max_utterance_ms` long.
    pub fn new(params: ServerVad, scorer: FrameScorer, max_utterance_ms: u32) -> Self {
        let max_utterance = (u64::from(max_utterance_ms) * SAMPLES_PER_MS) as usize;
        Self {
            params,
            scorer,
            framer: Framer::default(),
            scored: 0,
            audio: VecDeque::new(),
            started_at: None,
            silence: 0,
            max_utterance: max_utterance.max(FRAME_SAMPLES),
        }
    }

    /// Whether an utterance is under way.
    pub fn in_speech(&self) -> bool {
        self.started_at.is_some()
    }

    /// Takes 16 kHz samples, scores every whole frame, and says where speech started and stopped in them.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Turn>, VadError> {
        let mut turns = Vec::new();
        // Out of `self` while its frames are scored, which needs `self`.
        let mut framer = std::mem::take(&mut self.framer);
        let scored = framer.push(samples, |frame| self.frame(frame, &mut turns));
        self.framer = framer;
        scored.map(|()| turns)
    }

    /// Ends the utterance under way now (the client committed, or the stream
    /// ends), with the samples not yet scored; `None` outside speech.
    pub fn finish(&mut self) -> Option<Turn> {
        self.started_at?;
        let rest = self.framer.take_rest();
        self.scored += rest.len() as u64;
        self.audio.extend(rest);
        Some(self.stop(self.scored))
    }

    /// Forgets the audio so far (the client cleared the buffer): speech under way ends without an utterance.
    pub fn clear(&mut self) {
        self.audio.clear();
        self.framer.take_rest();
        self.started_at = None;
        self.silence = 0;
    }

    fn frame(&mut self, frame: &[f32], turns: &mut Vec<Turn>) -> Result<(), VadError> {
        let probability = self.scorer.score(frame)?;
        let frame_start = self.scored;
        self.scored += FRAME_SAMPLES as u64;
        self.audio.extend(frame.iter().copied());
        match self.started_at {
            None => {
                if probability >= self.params.threshold {
                    let padding = (u64::from(self.params.prefix_padding_ms) * SAMPLES_PER_MS).min(frame_start);
                    let keep = (padding as usize + FRAME_SAMPLES).min(self.audio.len());
                    self.audio.drain(..self.audio.len() - keep);
                    let start = self.scored - keep as u64;
                    self.started_at = Some(start);
                    self.silence = 0;
                    turns.push(Turn::Started {
                        audio_start_ms: start / SAMPLES_PER_MS,
                    });
                } else {
                    let padding = (u64::from(self.params.prefix_padding_ms) * SAMPLES_PER_MS) as usize;
                    let excess = self.audio.len().saturating_sub(padding);
                    self.audio.drain(..excess);
                }
            }
            Some(_) => {
                if probability >= self.params.threshold {
                    self.silence = 0;
                } else if self.silence > 0 || probability < self.params.threshold - HYSTERESIS {
                    self.silence += FRAME_SAMPLES as u64;
                }
                if self.silence >= u64::from(self.params.silence_duration_ms) * SAMPLES_PER_MS {
                    turns.push(self.stop(self.scored));
                } else if self.audio.len() + FRAME_SAMPLES > self.max_utterance {
                    let at = self.scored;
                    let still_speaking = self.silence == 0;
                    turns.push(self.stop(at));
                    if still_speaking {
                        self.started_at = Some(at);
                        turns.push(Turn::Started {
                            audio_start_ms: at / SAMPLES_PER_MS,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the utterance at `end` (samples) and hands over its audio.
    fn stop(&mut self, end: u64) -> Turn {
        self.started_at = None;
        self.silence = 0;
        Turn::Stopped {
            audio_end_ms: end / SAMPLES_PER_MS,
            audio: self.audio.drain(..).collect(),
        }
    }
}
