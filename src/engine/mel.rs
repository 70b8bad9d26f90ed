//! The log-mel spectrogram Whisper reads, computed exactly as whisper.cpp
//! computes it (25 ms periodic Hann frames every 10 ms, 200 reflected samples in
//! front, 30 s of silence behind, log10, clamped to 8 below the maximum, scaled
//! by (x + 4) / 4) but with a real FFT and only the filters' non-zero bins.
//! whisper.cpp's own version runs a naive DFT on 25-point pieces; this one is
//! several times faster (`benches/hot_paths.rs`), and the engine can reuse it
//! for a second decode of the same clip.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

use crate::model::MelFilters;

/// Samples per frame (Whisper's FFT size).
const FRAME: usize = 400;
/// Samples between frames (10 ms).
const HOP: usize = 160;
/// Reflected samples in front of the audio (and zeros behind it).
const EDGE: usize = FRAME / 2;
/// Silence whisper.cpp appends so the last window is full: 30 s.
const TAIL_SILENCE: usize = 16_000 * 30;
/// log10 of the floor whisper.cpp puts under every band's energy.
const LOG_FLOOR: f64 = -10.0;

/// A spectrogram laid out as whisper.cpp stores it: `n_mel` rows of `n_len` frames.
#[derive(Debug, Clone)]
pub struct LogMelSpectrogram {
    pub data: Vec<f32>,
    pub n_mel: usize,
    /// Frames, the 30 s of silence included.
    pub n_len: usize,
    /// Frames that hold the audio itself.
    pub audio_frames: usize,
}

/// One mel band: its first FFT bin with a non-zero weight, and the weights from there.
struct Band {
    first_bin: usize,
    weights: Vec<f32>,
}

/// Computes spectrograms with one model's filterbank.
pub struct MelSpectrogramMaker {
    bands: Vec<Band>,
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl MelSpectrogramMaker {
    /// Uses the filterbank stored in the model file, as whisper.cpp does.
    pub fn new(filters: &MelFilters) -> Result<Self, String> {
        let n_bins = FRAME / 2 + 1;
        if filters.n_bins != n_bins || filters.weights.len() != filters.n_mel * n_bins {
            return Err(format!(
                "the model's mel filters have {} bins; Whisper's FFT gives {n_bins}",
                filters.n_bins
            ));
        }
        let bands = filters
            .weights
            .chunks_exact(n_bins)
            .map(|row| {
                let first = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let last = row.iter().rposition(|&w| w != 0.0).map_or(first, |i| i + 1);
                Band {
                    first_bin: first,
                    weights: row[first..last].to_vec(),
                }
            })
            .collect();
        let window = (0..FRAME)
            .map(|i| (0.5 * (1.0 - ((2.0 * std::f64::consts::PI * i as f64) / FRAME as f64).cos())) as f32)
            .collect();
        Ok(Self {
            bands,
            window,
            fft: RealFftPlanner::<f32>::new().plan_fft_forward(FRAME),
        })
    }

    /// The spectrogram of 16 kHz mono `samples`.
    pub fn spectrogram(&self, samples: &[f32]) -> LogMelSpectrogram {
        let n = samples.len();
        let n_mel = self.bands.len();
        let n_len = (n + TAIL_SILENCE) / HOP;
        let audio_frames = 1 + (n + EDGE).saturating_sub(FRAME) / HOP;
        // Frames past this one hold only silence: their energy is the floor.
        let computed = ((n + EDGE) / HOP + 1).min(n_len);
        let signal = padded(samples, (computed.max(1) - 1) * HOP + FRAME);

        let mut data = vec![LOG_FLOOR as f32; n_mel * n_len];
        let mut input = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0f32; spectrum.len()];
        for frame in 0..computed {
            let start = frame * HOP;
            for ((x, s), w) in input.iter_mut().zip(&signal[start..start + FRAME]).zip(&self.window) {
                *x = w * s;
            }
            self.fft
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                .expect("buffers sized by the plan");
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.re * c.re + c.im * c.im;
            }
            for (band, row) in self.bands.iter().zip(data.chunks_exact_mut(n_len)) {
                let energy: f64 = power[band.first_bin..]
                    .iter()
                    .zip(&band.weights)
                    .map(|(p, w)| f64::from(p * w))
                    .sum();
                row[frame] = energy.max(1e-10).log10() as f32;
            }
        }

        let floor = data.iter().fold(f64::MIN, |m, &v| m.max(f64::from(v))) - 8.0;
        for v in &mut data {
            *v = ((f64::from(*v).max(floor) + 4.0) / 4.0) as f32;
        }
        LogMelSpectrogram {
            data,
            n_mel,
            n_len,
            audio_frames,
        }
    }
}

/// `samples` with `EDGE` reflected samples in front (`samples[EDGE]` first, down
/// to `samples[1]`), then zeros, `len` samples in all.
fn padded(samples: &[f32], len: usize) -> Vec<f32> {
    let mut signal = vec![0f32; len.max(EDGE + samples.len())];
    for (i, slot) in signal[..EDGE].iter_mut().enumerate() {
        *slot = samples.get(EDGE - i).copied().unwrap_or(0.0);
    }
    signal[EDGE..EDGE + samples.len()].copy_from_slice(samples);
    signal
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::mel::filterbank;

    fn maker() -> MelSpectrogramMaker {
        MelSpectrogramMaker::new(&MelFilters {
            n_mel: 80,
            n_bins: FRAME / 2 + 1,
            weights: filterbank(80),
        })
        .unwrap()
    }

    /// The textbook definition, term by term in f64: a DFT of each windowed
    /// frame, the full (dense) filterbank, log10, clamp, scale.
    fn reference(samples: &[f32]) -> (Vec<f64>, usize) {
        let filters = filterbank(80);
        let n_bins = FRAME / 2 + 1;
        let signal = padded(samples, samples.len() + TAIL_SILENCE + 2 * EDGE);
        let n_len = (signal.len() - FRAME) / HOP;
        let mut out = vec![0f64; 80 * n_len];
        for frame in 0..n_len {
            let x: Vec<f64> = (0..FRAME)
                .map(|i| {
                    let w = 0.5 * (1.0 - (2.0 * std::f64::consts::PI * i as f64 / FRAME as f64).cos());
                    w * f64::from(signal[frame * HOP + i])
                })
                .collect();
            let power: Vec<f64> = (0..n_bins)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (i, v) in x.iter().enumerate() {
                        let t = -2.0 * std::f64::consts::PI * (k * i) as f64 / FRAME as f64;
                        re += v * t.cos();
                        im += v * t.sin();
                    }
                    re * re + im * im
                })
                .collect();
            for band in 0..80 {
                let e: f64 = (0..n_bins)
                    .map(|k| power[k] * f64::from(filters[band * n_bins + k]))
                    .sum();
                out[band * n_len + frame] = e.max(1e-10).log10();
            }
        }
        let floor = out.iter().cloned().fold(f64::MIN, f64::max) - 8.0;
        (out.into_iter().map(|v| (v.max(floor) + 4.0) / 4.0).collect(), n_len)
    }

    #[test]
    fn matches_the_textbook_definition() {
        // 0.3 s of a chirp plus noise-like content, so every band sees energy.
        let samples: Vec<f32> = (0..4_800)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.5 * (2.0 * std::f32::consts::PI * (200.0 + 9_000.0 * t) * t).sin()
                    + 0.1 * ((i * 7919) % 101) as f32 / 101.0
            })
            .collect();
        let got = maker().spectrogram(&samples);
        let (want, n_len) = reference(&samples);
        assert_eq!(got.n_len, n_len);
        assert_eq!(got.audio_frames, 1 + (4_800 + EDGE - FRAME) / HOP);
        let worst = got
            .data
            .iter()
            .zip(&want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max);
        assert!(worst < 5e-5, "largest difference {worst}");
    }

    #[test]
    fn silence_after_the_audio_sits_at_the_floor() {
        let samples: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin()).collect();
        let mel = maker().spectrogram(&samples);
        let max = mel.data.iter().cloned().fold(f32::MIN, f32::max);
        let last = mel.data[mel.n_len - 1];
        assert!((f64::from(max) - f64::from(last) - 2.0).abs() < 1e-5, "{max} vs {last}");
        assert_eq!(mel.n_len, (16_000 + TAIL_SILENCE) / HOP);
    }
}
