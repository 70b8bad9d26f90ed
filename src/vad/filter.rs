//! Speech only (faster-whisper's `vad_filter`): a stream of 16 kHz blocks with
//! its long silences taken out before Whisper sees it, and the timeline that
//! puts a time in the filtered audio back where it was in the original.

use std::collections::VecDeque;

use super::{FrameScorer, Framer, FRAME_SAMPLES, HYSTERESIS, SAMPLES_PER_MS};

/// What counts as a silence to take out; faster-whisper's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterSettings {
    /// The speech probability from which a frame is speech.
    pub threshold: f32,
    /// Silences at least this long are taken out, ms.
    pub min_silence_ms: u32,
    /// Audio kept on each side of the speech, ms.
    pub speech_pad_ms: u32,
}

impl Default for FilterSettings {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_silence_ms: 2000,
            speech_pad_ms: 400,
        }
    }
}

/// Where each kept stretch starts: in the filtered audio and in the original, samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    runs: Vec<(u64, u64)>,
}

impl Timeline {
    /// The time in the original audio of `seconds` in the filtered audio.
    pub fn original(&self, seconds: f64) -> f64 {
        let at = (seconds.max(0.0) * 16_000.0) as u64;
        let run = self.runs.iter().rev().find(|(filtered, _)| *filtered <= at);
        let shift = run.map_or(0.0, |(filtered, original)| {
            (*original as f64 - *filtered as f64) / 16_000.0
        });
        seconds + shift
    }

    /// Whether any speech was kept.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }
}

/// The speech of `blocks`, as blocks.
pub struct SpeechOnly<I> {
    blocks: I,
    scorer: FrameScorer,
    threshold: f32,
    min_silence: usize,
    pad: usize,
    /// Samples not yet a whole frame.
    framer: Framer,
    /// Outside speech, the last `pad` samples; in speech, the silence run so far.
    held: VecDeque<f32>,
    in_speech: bool,
    /// Original samples scored so far.
    scored: u64,
    /// Samples handed out so far.
    emitted: u64,
    timeline: Timeline,
    /// Speech ready to hand out.
    out: Vec<f32>,
    /// Why the model failed, if it did (the stream then ends).
    failed: Option<super::VadError>,
}

impl<I, E> SpeechOnly<I>
where
    I: Iterator<Item = Result<Vec<f32>, E>>,
{
    /// The speech of `blocks` (16 kHz), judged by `scorer`.
    pub fn new(blocks: I, scorer: FrameScorer, settings: FilterSettings) -> Self {
        Self {
            blocks,
            scorer,
            threshold: settings.threshold,
            min_silence: settings.min_silence_ms as usize * SAMPLES_PER_MS,
            pad: settings.speech_pad_ms as usize * SAMPLES_PER_MS,
            framer: Framer::default(),
            held: VecDeque::new(),
            in_speech: false,
            scored: 0,
            emitted: 0,
            timeline: Timeline::default(),
            out: Vec::new(),
            failed: None,
        }
    }

    /// Why the model failed on a frame, ending the stream early, if it did.
    pub fn take_failure(&mut self) -> Option<super::VadError> {
        self.failed.take()
    }

    /// Where the kept stretches came from (complete once the stream has ended).
    pub fn timeline(&self) -> &Timeline {
        &self.timeline
    }

    fn emit(&mut self, samples: impl IntoIterator<Item = f32>) {
        let before = self.out.len();
        self.out.extend(samples);
        self.emitted += (self.out.len() - before) as u64;
    }

    fn frame(&mut self, frame: &[f32]) -> Result<(), super::VadError> {
        let probability = self.scorer.score(frame)?;
        let start = self.scored;
        self.scored += FRAME_SAMPLES as u64;
        if !self.in_speech {
            if probability >= self.threshold {
                self.in_speech = true;
                let lead = self.held.len() as u64;
                self.timeline.runs.push((self.emitted, start - lead));
                let held: Vec<f32> = self.held.drain(..).collect();
                self.emit(held);
                self.emit(frame.iter().copied());
            } else {
                self.held.extend(frame.iter().copied());
                let excess = self.held.len().saturating_sub(self.pad);
                self.held.drain(..excess);
            }
            return Ok(());
        }
        let silent =
            probability < self.threshold && (!self.held.is_empty() || probability < self.threshold - HYSTERESIS);
        if !silent {
            let gap: Vec<f32> = self.held.drain(..).collect();
            self.emit(gap);
            self.emit(frame.iter().copied());
            return Ok(());
        }
        self.held.extend(frame.iter().copied());
        if self.held.len() >= self.min_silence {
            let trail: Vec<f32> = self.held.drain(..self.pad.min(self.held.len())).collect();
            self.emit(trail);
            let excess = self.held.len().saturating_sub(self.pad);
            self.held.drain(..excess);
            self.in_speech = false;
        }
        Ok(())
    }
}

impl<I, E> Iterator for SpeechOnly<I>
where
    I: Iterator<Item = Result<Vec<f32>, E>>,
{
    type Item = Result<Vec<f32>, E>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.out.is_empty() {
            if self.failed.is_some() {
                return None;
            }
            let Some(block) = self.blocks.next() else {
                // The end: speech under way keeps its silence so far and the last samples.
                if self.in_speech {
                    self.in_speech = false;
                    let rest: Vec<f32> = self.held.drain(..).chain(self.framer.take_rest()).collect();
                    self.emit(rest);
                    continue;
                }
                return None;
            };
            let block = match block {
                Ok(block) => block,
                Err(e) => return Some(Err(e)),
            };
            // Out of `self` while its frames are scored, which needs `self`.
            let mut framer = std::mem::take(&mut self.framer);
            let scored = framer.push(&block, |frame| self.frame(frame));
            self.framer = framer;
            if let Err(e) = scored {
                self.failed = Some(e);
                return None;
            }
        }
        Some(Ok(std::mem::take(&mut self.out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_go_back_to_where_their_stretch_was() {
        // Kept: original 1 s-3 s (filtered 0-2 s), then original 6 s on (filtered 2 s on).
        let timeline = Timeline {
            runs: vec![(0, 16_000), (32_000, 96_000)],
        };
        assert_eq!(timeline.original(0.0), 1.0);
        assert_eq!(timeline.original(1.5), 2.5);
        assert_eq!(timeline.original(2.0), 6.0);
        assert_eq!(timeline.original(3.25), 7.25);
        assert!(!timeline.is_empty() && Timeline::default().is_empty());
        assert_eq!(Timeline::default().original(4.0), 4.0);
    }
}
