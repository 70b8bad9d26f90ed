//! Resampling to 16 kHz with rubato's FFT resampler.

use rubato::{FftFixedIn, Resampler};

use super::WHISPER_SAMPLE_RATE;

/// Frames per resampler call.
const CHUNK: usize = 4096;

/// Resamples mono audio from `rate` to 16 kHz; the output has exactly
/// `len * 16000 / rate` samples (rounded up) and no added delay.
pub fn to_whisper_rate(input: &[f32], rate: u32) -> Result<Vec<f32>, rubato::ResampleError> {
    let target = WHISPER_SAMPLE_RATE as usize;
    if rate as usize == target {
        return Ok(input.to_vec());
    }
    let mut resampler =
        FftFixedIn::<f32>::new(rate as usize, target, CHUNK, 2, 1).expect("valid, non-zero sample rates");
    let expected = (input.len() * target).div_ceil(rate as usize);
    let delay = resampler.output_delay();
    let mut output = Vec::with_capacity(expected + delay + CHUNK);
    let mut out_buf = resampler.output_buffer_allocate(true);
    let mut chunks = input.chunks_exact(CHUNK);
    for chunk in &mut chunks {
        let (_, written) = resampler.process_into_buffer(&[chunk], &mut out_buf, None)?;
        output.extend_from_slice(&out_buf[0][..written]);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (_, written) = resampler.process_partial_into_buffer(Some(&[rest]), &mut out_buf, None)?;
        output.extend_from_slice(&out_buf[0][..written]);
    }
    while output.len() < expected + delay {
        let (_, written) = resampler.process_partial_into_buffer(None::<&[&[f32]]>, &mut out_buf, None)?;
        output.extend_from_slice(&out_buf[0][..written]);
    }
    output.drain(..delay);
    output.truncate(expected);
    Ok(output)
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
    fn passes_16k_through() {
        let input = sine(300.0, 16_000, 0.5);
        assert_eq!(to_whisper_rate(&input, 16_000).unwrap(), input);
    }
}
