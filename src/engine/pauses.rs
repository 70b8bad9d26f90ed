//! Where the pauses are: long audio is cut into pieces within given limits,
//! each cut in the longest pause in reach, so that a piece can be decoded on
//! its own without a word split between two pieces; and where decoding should
//! resume after a point the decoder stopped at.

/// Samples in one loudness frame (10 ms at 16 kHz).
const FRAME: usize = 160;
/// Frames over which loudness is averaged when looking for a pause (150 ms):
/// long enough to skip the gaps inside words, short enough to fit a breath.
const PAUSE_FRAMES: usize = 15;

/// How far (20 dB) below the loudest stretch a stretch still counts as sound.
const SOUND_BELOW_LOUDEST: f32 = 0.01;
/// How far after where the decoder stopped a pause is looked for (1 s).
const RESUME_REACH: usize = 100;

/// How long pieces may be, in samples.
#[derive(Debug, Clone, Copy)]
pub struct PieceLimits {
    /// No piece is longer.
    pub max: usize,
    /// A cut is looked for in the last `max - min` samples of a piece; only the
    /// last piece may be shorter.
    pub min: usize,
}

/// Cuts audio into pieces as it arrives: each cut in the longest pause between
/// `limits.min` and `limits.max` after the previous one, so a cut depends only
/// on the next `limits.max` samples and at most that much is held.
pub struct PieceCutter {
    limits: PieceLimits,
    /// Samples read but not yet handed out in a piece.
    buffer: Vec<f32>,
    /// Where `buffer` starts in the whole audio (a multiple of `FRAME`).
    start: usize,
    /// The source has no more samples.
    ended: bool,
}

impl PieceCutter {
    /// A cutter for pieces within `limits`.
    pub fn new(limits: PieceLimits) -> Self {
        assert!(
            FRAME * PAUSE_FRAMES < limits.min && limits.min < limits.max,
            "piece limits leave no room to look for a pause"
        );
        Self {
            limits,
            buffer: Vec::new(),
            start: 0,
            ended: false,
        }
    }

    /// Whether every sample of the source has been handed out.
    pub fn is_done(&self) -> bool {
        self.ended && self.buffer.is_empty()
    }

    /// The next piece, with where it starts in the whole audio, reading from
    /// `source` as far as the cut needs; `None` once everything is cut.
    pub fn next_piece<E>(
        &mut self,
        source: &mut dyn Iterator<Item = Result<Vec<f32>, E>>,
    ) -> Result<Option<(usize, Vec<f32>)>, E> {
        while !self.ended && self.buffer.len() <= self.limits.max {
            match source.next() {
                Some(block) => self.buffer.extend(block?),
                None => self.ended = true,
            }
        }
        if self.buffer.is_empty() {
            return Ok(None);
        }
        let end = if self.buffer.len() <= self.limits.max {
            self.buffer.len()
        } else {
            // Audio that runs on past one piece: cut in the longest pause in reach.
            let first = self.limits.min / FRAME;
            let last = self.limits.max / FRAME - PAUSE_FRAMES;
            let energy = frame_energy(&self.buffer[first * FRAME..(last + PAUSE_FRAMES) * FRAME]);
            (longest_pause(&energy) + first) * FRAME
        };
        let rest = self.buffer.split_off(end);
        let piece = std::mem::replace(&mut self.buffer, rest);
        let start = self.start;
        self.start += piece.len();
        Ok(Some((start, piece)))
    }
}

/// Where decoding should resume after `from`, a point the decoder stopped at,
/// when sound (a stretch within 20 dB of the loudest) follows: the middle of
/// a pause that begins within `RESUME_REACH` frames of it, else `from` itself.
/// Skipping to the pause keeps the end of a word the decoder did hear (its
/// timestamps are coarse) from being decoded twice; where speech runs on
/// without a pause, nothing is skipped.
pub fn resume_point(samples: &[f32], from: usize) -> Option<usize> {
    let loudness = stretch_energy(&frame_energy(samples));
    let sound = SOUND_BELOW_LOUDEST * loudness.iter().copied().fold(0.0, f32::max);
    let first = from / FRAME;
    let after = loudness.get(first..)?;
    let Some(pause) = after.iter().take(RESUME_REACH).position(|&e| e < sound) else {
        return (!after.is_empty()).then_some(from);
    };
    let pause = first + pause;
    let resumes = pause + loudness[pause..].iter().position(|&e| e >= sound)?;
    Some(((pause + resumes) / 2 + PAUSE_FRAMES / 2) * FRAME)
}

/// How far (30 dB) below the loudest frame a frame still counts as sound
/// when word times are checked against the audio.
const WORD_SOUND_BELOW_LOUDEST: f32 = 0.001;
/// How far (10 dB) above the background a frame must be to count as sound.
const WORD_SOUND_ABOVE_BACKGROUND: f32 = 10.0;

/// The pauses of `samples`: runs of at least `PAUSE_FRAMES` frames (150 ms)
/// each quieter than sound (more than 30 dB below the loudest frame, or less
/// than 10 dB above the background: the quietest tenth of the frames), as
/// (start, end) seconds.
pub fn pauses(samples: &[f32]) -> Vec<(f64, f64)> {
    let energy = frame_energy(samples);
    let mut sorted = energy.clone();
    sorted.sort_by(f32::total_cmp);
    let (Some(&loudest), Some(&background)) = (sorted.last(), sorted.get(sorted.len() / 10)) else {
        return Vec::new();
    };
    let sound = (WORD_SOUND_BELOW_LOUDEST * loudest).max(WORD_SOUND_ABOVE_BACKGROUND * background);
    let seconds = |frame: usize| (frame * FRAME) as f64 / 16_000.0;
    let mut found = Vec::new();
    let mut quiet_since = None;
    for (i, &e) in energy.iter().chain(std::iter::once(&f32::INFINITY)).enumerate() {
        match (e < sound, quiet_since) {
            (true, None) => quiet_since = Some(i),
            (false, Some(start)) => {
                if i - start >= PAUSE_FRAMES {
                    found.push((seconds(start), seconds(i)));
                }
                quiet_since = None;
            }
            _ => {}
        }
    }
    found
}

/// How far (0.5 s) inside a stretch a pause must lie for `longest_pause_within`,
/// so that neither side of a cut there is a sliver.
const WITHIN_MARGIN_SEC: f64 = 0.5;

/// The sample in the middle of the longest pause (`pauses`) whose middle lies
/// between `start` and `end` seconds, at least half a second inside them.
pub fn longest_pause_within(samples: &[f32], start: f64, end: f64) -> Option<usize> {
    pauses(samples)
        .into_iter()
        .map(|(from, to)| (to - from, (from + to) / 2.0))
        .filter(|&(_, middle)| middle > start + WITHIN_MARGIN_SEC && middle < end - WITHIN_MARGIN_SEC)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, middle)| (middle * 16_000.0) as usize)
}

/// The energy of each run of `PAUSE_FRAMES` frames, by its first frame.
fn stretch_energy(frame_energy: &[f32]) -> Vec<f32> {
    frame_energy.windows(PAUSE_FRAMES).map(|w| w.iter().sum()).collect()
}

/// The energy of each `FRAME` of samples.
fn frame_energy(samples: &[f32]) -> Vec<f32> {
    samples
        .chunks(FRAME)
        .map(|frame| frame.iter().map(|s| s * s).sum::<f32>())
        .collect()
}

/// The frame in the middle of the longest pause: the longest run of
/// stretches of `PAUSE_FRAMES` frames, each at most twice as loud as the
/// quietest one (a pause is tens of decibels below speech), the latest of
/// runs as long. In conversation the longest pause in reach is where one
/// speaker hands over to the other or a sentence ends, so a piece starts with
/// its speaker's sentence; the last pause in reach, often a breath inside a
/// sentence, measured less accurate with `base` on a call (BENCHMARKS.md).
fn longest_pause(energy: &[f32]) -> usize {
    let sums = stretch_energy(energy);
    let quiet_enough = 2.0 * sums.iter().copied().fold(f32::INFINITY, f32::min);
    let (mut end, mut longest, mut run) = (0, 0usize, 0);
    for (i, &sum) in sums.iter().enumerate() {
        run = if sum <= quiet_enough { run + 1 } else { 0 };
        if run > 0 && run >= longest {
            (end, longest) = (i, run);
        }
    }
    end + 1 - longest.div_ceil(2) + PAUSE_FRAMES / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Range;

    /// Splits `samples` into consecutive pieces that together cover all of them.
    /// Audio no longer than `limits.max` is one piece.
    fn split_at_pauses(samples: &[f32], limits: PieceLimits) -> Vec<Range<usize>> {
        let mut cutter = PieceCutter::new(limits);
        let mut source = samples.chunks(4_000).map(|block| Ok::<_, ()>(block.to_vec()));
        let mut pieces = Vec::new();
        while let Some((start, piece)) = cutter.next_piece(&mut source).unwrap() {
            pieces.push(start..start + piece.len());
        }
        pieces
    }

    const SECOND: usize = 16_000;
    const LIMITS: PieceLimits = PieceLimits {
        max: 30 * SECOND,
        min: 20 * SECOND,
    };

    /// A 440 Hz tone with silent gaps at the given (start s, length s).
    fn tone_with_gaps(seconds: f64, gaps: &[(f64, f64)]) -> Vec<f32> {
        (0..(seconds * SECOND as f64) as usize)
            .map(|i| {
                let t = i as f64 / SECOND as f64;
                let silent = gaps.iter().any(|&(s, len)| t >= s && t < s + len);
                if silent {
                    0.0
                } else {
                    (t * 440.0 * std::f64::consts::TAU).sin() as f32 * 0.3
                }
            })
            .collect()
    }

    #[test]
    fn pauses_are_the_quiet_runs() {
        let samples = tone_with_gaps(6.0, &[(1.0, 0.5), (3.0, 0.1), (5.0, 1.0)]);
        let found = pauses(&samples);
        assert_eq!(found.len(), 2, "the 100 ms gap is too short to be a pause: {found:?}");
        assert!(
            (found[0].0 - 1.0).abs() < 0.011 && (found[0].1 - 1.5).abs() < 0.011,
            "{found:?}"
        );
        assert!(
            (found[1].0 - 5.0).abs() < 0.011 && (found[1].1 - 6.0).abs() < 0.011,
            "{found:?}"
        );
    }

    #[test]
    fn the_longest_pause_within_a_stretch_is_found_away_from_its_ends() {
        let samples = tone_with_gaps(6.0, &[(1.0, 0.3), (2.0, 0.5), (4.0, 0.2)]);
        let middle = |found: Option<usize>| found.map(|at| at as f64 / SECOND as f64);
        let near = |found: Option<f64>, want: f64| found.is_some_and(|at| (at - want).abs() < 0.011);
        let found = middle(longest_pause_within(&samples, 0.0, 6.0));
        assert!(near(found, 2.25), "the longest of three: {found:?}");
        let found = middle(longest_pause_within(&samples, 2.6, 6.0));
        assert!(near(found, 4.1), "the only one inside: {found:?}");
        assert_eq!(
            longest_pause_within(&samples, 0.0, 1.5),
            None,
            "1.15 s is within half a second of the end"
        );
    }

    #[test]
    fn a_clip_within_one_window_is_one_piece() {
        let samples = vec![0.1; 30 * SECOND];
        assert_eq!(split_at_pauses(&samples, LIMITS), vec![0..samples.len()]);
    }

    #[test]
    fn cuts_fall_in_the_middle_of_the_longest_pause_in_reach() {
        // Pauses at 10 s (too early to cut), 22 s (in reach, but 25 s is as
        // long and later), 25 s, 47 s (in reach and longer than 52 s), 52 s
        // and 70 s.
        let gaps = [
            (10.0, 0.5),
            (22.0, 0.4),
            (25.0, 0.4),
            (47.0, 0.6),
            (52.0, 0.3),
            (70.0, 0.4),
        ];
        let cut_in = [gaps[2], gaps[3], gaps[5]];
        let samples = tone_with_gaps(80.0, &gaps);
        let pieces = split_at_pauses(&samples, LIMITS);
        let cuts: Vec<f64> = pieces[1..].iter().map(|p| p.start as f64 / SECOND as f64).collect();
        assert_eq!(cuts.len(), 3, "{cuts:?}");
        for (cut, (gap, len)) in cuts.iter().zip(&cut_in) {
            assert!(
                (cut - (gap + len / 2.0)).abs() < 0.1,
                "cut at {cut} s, pause at {gap}+{len}"
            );
        }
    }

    #[test]
    fn decoding_resumes_in_the_pause_before_the_next_sound() {
        let samples = tone_with_gaps(10.0, &[(4.0, 3.0)]);
        let at = |seconds: f64| (seconds * SECOND as f64) as usize;
        // From inside the sound, less than a second before the pause: the pause's middle.
        let resume = resume_point(&samples, at(3.2)).expect("sound follows");
        assert!((at(5.4)..at(5.6)).contains(&resume), "{resume}");
        // Further from the pause, speech runs on: where the decoder stopped.
        assert_eq!(resume_point(&samples, at(2.0)), Some(at(2.0)), "no pause near");
        // From inside the pause: between there and the sound.
        let resume = resume_point(&samples, at(4.5)).expect("sound follows");
        assert!((at(5.6)..at(5.9)).contains(&resume), "{resume}");
        assert_eq!(resume_point(&samples, at(7.5)), Some(at(7.5)), "no pause follows");
        assert_eq!(resume_point(&samples, at(10.0)), None, "nothing follows");
        let silence_after = tone_with_gaps(7.0, &[(4.0, 3.0)]);
        assert_eq!(resume_point(&silence_after, at(3.2)), None, "no sound follows");
        // Noise 30 dB below the tone is a pause, not sound.
        let noisy: Vec<f32> = silence_after
            .iter()
            .enumerate()
            .map(|(i, s)| s + 0.0095 * ((i * 7919 % 200) as f32 / 100.0 - 1.0))
            .collect();
        assert_eq!(resume_point(&noisy, at(3.2)), None, "quiet noise");
    }

    #[test]
    fn pieces_cover_the_audio_in_order_and_respect_the_limits() {
        // No pause at all: the cuts still keep every piece within the window.
        let samples = tone_with_gaps(125.0, &[]);
        let pieces = split_at_pauses(&samples, LIMITS);
        assert_eq!(pieces.first().unwrap().start, 0);
        assert_eq!(pieces.last().unwrap().end, samples.len());
        for pair in pieces.windows(2) {
            assert_eq!(pair[0].end, pair[1].start);
        }
        for piece in &pieces[..pieces.len() - 1] {
            assert!((LIMITS.min..=LIMITS.max).contains(&piece.len()), "{piece:?}");
        }
        assert!(pieces.last().unwrap().len() <= LIMITS.max);
    }
}
