//! Resampling to 16 kHz with rubato's FFT resampler, as the audio arrives:
//! the output is the same, sample for sample, as resampling the whole signal
//! at once, while only one chunk of input is held.

use rubato::{FftFixedIn, Resampler as _};

use super::WHISPER_SAMPLE_RATE;

/// Frames per resampler call.
const CHUNK: usize = 4096;

/// A resampler from one source rate to 16 kHz, fed in pieces of any length.
pub struct Resampler {
    /// `None` when the source is already at 16 kHz.
    fft: Option<FftFixedIn<f32>>,
    rate: u32,
    /// Input not yet a whole chunk.
    pending: Vec<f32>,
    out_buf: Vec<Vec<f32>>,
    /// Output samples still to drop at the start (the filter's delay).
    delay_left: usize,
    /// Input frames pushed so far.
    input_frames: u64,
    /// Output samples handed out so far.
    emitted: u64,
    /// Input frames per resampler call.
    chunk: usize,
}

impl Resampler {
    /// A resampler from `rate` (non-zero) to 16 kHz.
    pub fn new(rate: u32) -> Result<Self, rubato::ResamplerConstructionError> {
        Self::with_chunk(rate, CHUNK)
    }

    /// A resampler that works on `chunk` input frames at a time: small
    /// chunks hold less audio back (live audio), large ones cost less per sample.
    pub fn with_chunk(rate: u32, chunk: usize) -> Result<Self, rubato::ResamplerConstructionError> {
        let fft = if rate == WHISPER_SAMPLE_RATE {
            None
        } else {
            Some(FftFixedIn::<f32>::new(
                rate as usize,
                WHISPER_SAMPLE_RATE as usize,
                chunk,
                2,
                1,
            )?)
        };
        let (out_buf, delay_left) = match &fft {
            Some(f) => (f.output_buffer_allocate(true), f.output_delay()),
            None => (Vec::new(), 0),
        };
        Ok(Self {
            fft,
            rate,
            pending: Vec::with_capacity(chunk),
            out_buf,
            delay_left,
            input_frames: 0,
            emitted: 0,
            chunk,
        })
    }

    /// Resamples `input`, appending what is ready to `out`.
    pub fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) -> Result<(), rubato::ResampleError> {
        self.input_frames += input.len() as u64;
        if self.fft.is_none() {
            out.extend_from_slice(input);
            self.emitted += input.len() as u64;
            return Ok(());
        }
        while !input.is_empty() {
            let take = (self.chunk - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == self.chunk {
                let chunk = std::mem::take(&mut self.pending);
                self.process(Some(&chunk), out)?;
                self.pending = chunk;
                self.pending.clear();
            }
        }
        Ok(())
    }

    /// Flushes the filter: afterwards exactly `input * 16000 / rate` samples
    /// (rounded up) have been handed out in all, with no added delay.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), rubato::ResampleError> {
        if self.fft.is_none() {
            return Ok(());
        }
        let expected = (self.input_frames * WHISPER_SAMPLE_RATE as u64).div_ceil(self.rate as u64);
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.process(Some(&rest), out)?;
        }
        while self.emitted < expected {
            self.process(None, out)?;
        }
        let extra = (self.emitted - expected) as usize;
        out.truncate(out.len() - extra);
        self.emitted = expected;
        Ok(())
    }

    /// One call of the FFT resampler: a whole chunk, or a partial one (`None`: zeros).
    fn process(&mut self, input: Option<&[f32]>, out: &mut Vec<f32>) -> Result<(), rubato::ResampleError> {
        let fft = self.fft.as_mut().expect("only resampling rates process");
        let written = match input {
            Some(chunk) if chunk.len() == self.chunk => fft.process_into_buffer(&[chunk], &mut self.out_buf, None)?.1,
            Some(chunk) => {
                fft.process_partial_into_buffer(Some(&[chunk]), &mut self.out_buf, None)?
                    .1
            }
            None => {
                fft.process_partial_into_buffer(None::<&[&[f32]]>, &mut self.out_buf, None)?
                    .1
            }
        };
        let skip = self.delay_left.min(written);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_buf[0][skip..written]);
        self.emitted += (written - skip) as u64;
        Ok(())
    }
}

/// Resamples a whole signal from `rate` to 16 kHz.
#[cfg(test)]
fn to_whisper_rate(input: &[f32], rate: u32) -> Result<Vec<f32>, rubato::ResampleError> {
    let mut resampler = Resampler::new(rate).expect("valid, non-zero sample rates");
    let mut out = Vec::new();
    resampler.push(input, &mut out)?;
    resampler.finish(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, secs: f32) -> Vec<f32> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    /// Estimates a signal's frequency by counting rising zero crossings.
    fn frequency(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples.windows(2).filter(|w| w[0] < 0.0 && w[1] >= 0.0).count();
        crossings as f32 * rate as f32 / samples.len() as f32
    }

    #[test]
    fn keeps_length_pitch_and_alignment() {
        for rate in [8_000, 22_050, 44_100, 48_000] {
            let input = sine(440.0, rate, 2.0);
            let out = to_whisper_rate(&input, rate).unwrap();
            assert_eq!(out.len(), (input.len() * 16_000).div_ceil(rate as usize), "rate {rate}");
            let f = frequency(&out, 16_000);
            assert!((f - 440.0).abs() < 2.0, "rate {rate}: {f} Hz");
            // No delay: the sine starts rising at t = 0, as the input does. A mean
            // error of 0.1 is a shift of under half a 16 kHz sample at 440 Hz
            // (rubato's delay is whole output frames; the rest is a fraction).
            let expected = sine(440.0, 16_000, 2.0);
            let err: f32 = out[1000..2000]
                .iter()
                .zip(&expected[1000..2000])
                .map(|(a, b)| (a - b).abs())
                .sum::<f32>()
                / 1000.0;
            assert!(err < 0.1, "rate {rate}: mean error {err}");
        }
    }

    #[test]
    fn feeding_in_odd_pieces_gives_the_same_samples() {
        let input = sine(440.0, 44_100, 3.0);
        let whole = to_whisper_rate(&input, 44_100).unwrap();
        let mut resampler = Resampler::new(44_100).unwrap();
        let mut pieces = Vec::new();
        for piece in input.chunks(1_152) {
            resampler.push(piece, &mut pieces).unwrap();
        }
        resampler.finish(&mut pieces).unwrap();
        assert_eq!(pieces, whole);
    }

    #[test]
    fn passes_16k_through() {
        let input = sine(300.0, 16_000, 0.5);
        assert_eq!(to_whisper_rate(&input, 16_000).unwrap(), input);
    }
}
