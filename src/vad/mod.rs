//! Voice-activity detection: Silero VAD, run by tract, gives each 32 ms frame
//! of 16 kHz audio the probability that it is speech (`FrameScorer`); `turns`
//! cuts utterances out of a live stream by those probabilities.

pub mod filter;
pub mod turns;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tract_onnx::prelude::*;

/// Samples in one frame the model scores: 32 ms at 16 kHz.
pub const FRAME_SAMPLES: usize = 512;
/// Samples of the previous frame the model sees in front of each frame.
const CONTEXT_SAMPLES: usize = 64;
/// The recurrent state carried from frame to frame: (h, c) x batch 1 x 128.
const STATE_SHAPE: [usize; 3] = [2, 1, 128];
/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: usize = 16;
/// How far below the threshold a frame must fall to count as silence once
/// speech has started (Silero's own margin).
const HYSTERESIS: f32 = 0.15;

/// Gathers a stream's samples, however they arrive split, into whole frames.
#[derive(Debug, Default)]
pub struct Framer {
    /// Samples that do not make a whole frame yet.
    pending: Vec<f32>,
}

impl Framer {
    /// Calls `each` with every whole frame that `samples` completes, in
    /// order, stopping at its first error (the rest of `samples` is dropped).
    pub fn push<E>(&mut self, samples: &[f32], mut each: impl FnMut(&[f32]) -> Result<(), E>) -> Result<(), E> {
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == FRAME_SAMPLES {
                let scored = each(&self.pending);
                self.pending.clear();
                scored?;
            }
        }
        Ok(())
    }

    /// Takes the samples that do not make a whole frame yet.
    pub fn take_rest(&mut self) -> Vec<f32> {
        std::mem::take(&mut self.pending)
    }
}

/// Why the voice-activity model could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The file is missing or is not the model Sori runs.
    #[error(
        "the voice-activity model {path} cannot be loaded ({reason}); fetch it with `sori model fetch silero-vad`"
    )]
    Load { path: PathBuf, reason: String },
    /// Running the model on a frame failed.
    #[error("the voice-activity model failed on a frame: {0}")]
    Run(String),
}

/// The loaded model, optimized for one frame at a time; cheap to clone and
/// shared by every stream.
#[derive(Clone)]
pub struct SileroVad {
    plan: Arc<TypedRunnableModel>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SileroVad")
    }
}

impl SileroVad {
    /// Loads Silero VAD's 16 kHz ONNX export from `path` (`model::silero`).
    pub fn load(path: &Path) -> Result<Self, VadError> {
        let load = || -> TractResult<Arc<TypedRunnableModel>> {
            tract_onnx::onnx()
                .model_for_path(path)?
                .with_input_fact(0, f32::fact([1, CONTEXT_SAMPLES + FRAME_SAMPLES]).into())?
                .with_input_fact(1, f32::fact(STATE_SHAPE).into())?
                .into_optimized()?
                .into_runnable()
        };
        let plan = load().map_err(|e| VadError::Load {
            path: path.to_path_buf(),
            reason: format!("{e:#}"),
        })?;
        Ok(Self { plan })
    }

    /// A scorer for one stream, starting from silence.
    pub fn scorer(&self) -> FrameScorer {
        FrameScorer {
            plan: Arc::clone(&self.plan),
            state: Tensor::zero::<f32>(&STATE_SHAPE).expect("a fixed shape"),
            context: [0.0; CONTEXT_SAMPLES],
        }
    }
}

/// One stream's view of the model: its recurrent state and the end of the
/// previous frame, both carried from frame to frame.
pub struct FrameScorer {
    plan: Arc<TypedRunnableModel>,
    state: Tensor,
    context: [f32; CONTEXT_SAMPLES],
}

impl FrameScorer {
    /// The probability (0-1) that `frame`, the stream's next
    /// [`FRAME_SAMPLES`] samples (16 kHz, -1..1), is speech.
    pub fn score(&mut self, frame: &[f32]) -> Result<f32, VadError> {
        assert_eq!(frame.len(), FRAME_SAMPLES, "the model scores whole frames");
        let mut samples = Vec::with_capacity(CONTEXT_SAMPLES + FRAME_SAMPLES);
        samples.extend_from_slice(&self.context);
        samples.extend_from_slice(frame);
        self.context.copy_from_slice(&frame[FRAME_SAMPLES - CONTEXT_SAMPLES..]);
        let run = || -> TractResult<(f32, Tensor)> {
            let input = Tensor::from_shape(&[1, samples.len()], &samples)?;
            let mut out = self.plan.run(tvec!(input.into(), self.state.clone().into()))?;
            let state = out.pop().expect("two outputs").into_tensor();
            let probability = out[0].try_as_plain_ram()?.as_slice::<f32>()?[0];
            Ok((probability, state))
        };
        let (probability, state) = run().map_err(|e| VadError::Run(format!("{e:#}")))?;
        self.state = state;
        Ok(probability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_of(chunks: &[&[f32]]) -> (Vec<Vec<f32>>, Vec<f32>) {
        let mut framer = Framer::default();
        let mut frames = Vec::new();
        for chunk in chunks {
            framer
                .push(chunk, |frame| {
                    frames.push(frame.to_vec());
                    Ok::<(), ()>(())
                })
                .unwrap();
        }
        (frames, framer.take_rest())
    }

    #[test]
    fn frames_do_not_depend_on_how_the_stream_was_split() {
        let stream: Vec<f32> = (0..FRAME_SAMPLES * 3 + 100).map(|i| i as f32).collect();
        let whole = frames_of(&[&stream]);
        let (a, b, c) = (
            &stream[..7],
            &stream[7..FRAME_SAMPLES + 3],
            &stream[FRAME_SAMPLES + 3..],
        );
        assert_eq!(frames_of(&[a, b, c]), whole);
        assert_eq!(whole.0.len(), 3);
        assert_eq!(whole.1, stream[FRAME_SAMPLES * 3..]);
        assert_eq!(whole.0.concat(), stream[..FRAME_SAMPLES * 3]);
    }

    #[test]
    fn an_error_stops_the_frames() {
        let mut framer = Framer::default();
        let mut seen = 0;
        let stream = vec![0.0; FRAME_SAMPLES * 3];
        let result = framer.push(&stream, |_| {
            seen += 1;
            if seen == 2 {
                Err("failed")
            } else {
                Ok(())
            }
        });
        assert_eq!((result, seen), (Err("failed"), 2));
    }
}
