//! The mel filterbank that whisper.cpp reads from a ggml file: librosa's
//! `filters.mel(sr=16000, n_fft=400, n_mels=N)` with the Slaney scale and norm.

/// Whisper's sample rate.
const SAMPLE_RATE: f64 = 16_000.0;
/// Whisper's FFT size; it gives `N_FFT / 2 + 1 = 201` frequency bins.
pub const N_FFT: usize = 400;

/// Hz to mel on the Slaney scale (linear below 1 kHz, logarithmic above).
fn hz_to_mel(hz: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Mel to Hz, the inverse of [`hz_to_mel`].
fn mel_to_hz(mel: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = (6.4f64).ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The filterbank as `n_mels` rows of `N_FFT / 2 + 1` weights, row-major.
pub fn filterbank(n_mels: usize) -> Vec<f32> {
    let n_bins = N_FFT / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * (SAMPLE_RATE / 2.0) / (n_bins - 1) as f64)
        .collect();
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0));
    let mel_points: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut weights = Vec::with_capacity(n_mels * n_bins);
    for m in 0..n_mels {
        let (left, center, right) = (mel_points[m], mel_points[m + 1], mel_points[m + 2]);
        let norm = 2.0 / (right - left);
        for &f in &fft_freqs {
            let lower = (f - left) / (center - left);
            let upper = (right - f) / (right - center);
            weights.push((lower.min(upper).max(0.0) * norm) as f32);
        }
    }
    weights
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_and_is_linear_below_one_khz() {
        for hz in [0.0, 300.0, 999.0, 1000.0, 4000.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-6);
        }
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn filters_are_triangles_with_slaney_area() {
        let n_bins = N_FFT / 2 + 1;
        let bank = filterbank(80);
        assert_eq!(bank.len(), 80 * n_bins);
        for row in bank.chunks(n_bins) {
            assert!(row.iter().all(|w| *w >= 0.0));
            let peak = row.iter().cloned().fold(0.0, f32::max);
            assert!(peak > 0.0, "every filter covers at least one bin");
            // Rising then falling: no second rise after the peak.
            let top = row.iter().position(|w| *w == peak).unwrap();
            assert!(row[top..].windows(2).all(|p| p[1] <= p[0]));
            assert!(row[..=top].windows(2).all(|p| p[1] >= p[0]));
        }
        // Slaney norm: each triangle's area in Hz is about 1 (bins are 40 Hz wide).
        let area: f32 = bank[40 * n_bins..41 * n_bins].iter().sum::<f32>() * 40.0;
        assert!((area - 1.0).abs() < 0.1, "area {area}");
    }
}
