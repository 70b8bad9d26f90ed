//! Any bytes through the header check and the whole decode path (decode,
//! downmix, resample): an error is fine, a panic, a hang or unbounded memory
//! is a bug. Seeded with the test audio (`make fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Longest audio decoded per input: enough to pass through the resampler's
/// chunks, short enough that every input finishes quickly.
const MAX_AUDIO_SEC: f64 = 30.0;

fuzz_target!(|data: &[u8]| {
    let _ = sori::audio::prepare(bytes::Bytes::copy_from_slice(data), MAX_AUDIO_SEC);
});
