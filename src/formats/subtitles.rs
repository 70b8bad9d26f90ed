//! SRT and WebVTT: segments become numbered cues short enough to read (at
//! most two lines of about 42 characters and 7 s), split at word boundaries
//! with the words' own times where the transcript has them.

use std::fmt::Write;

use crate::engine::{Segment, Word};

/// Characters on one subtitle line.
const LINE_CHARS: usize = 42;
/// Lines in one cue.
const CUE_LINES: usize = 2;
/// The longest a cue stays on screen, seconds.
const CUE_SEC: f64 = 7.0;
/// The shortest a cue stays on screen, where the next one leaves room, seconds.
const MIN_CUE_SEC: f64 = 0.5;

/// One subtitle: when it shows and its lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub lines: Vec<String>,
}

/// The cues of a transcript, in order and never overlapping.
pub fn cues(segments: &[Segment]) -> Vec<Cue> {
    let mut cues: Vec<Cue> = segments.iter().flat_map(segment_cues).collect();
    for i in 0..cues.len() {
        let next_start = cues.get(i + 1).map_or(f64::INFINITY, |c| c.start);
        let cue = &mut cues[i];
        if cue.end - cue.start < MIN_CUE_SEC {
            cue.end = (cue.start + MIN_CUE_SEC).min(next_start).max(cue.end);
        }
        cue.end = cue.end.min(next_start).max(cue.start);
    }
    cues
}

/// SubRip: `1`, `00:00:01,000 --> 00:00:04,500`, the lines, a blank line.
pub fn srt(cues: &[Cue]) -> String {
    numbered_cues(String::new(), cues, ',')
}

/// WebVTT: the `WEBVTT` header, then numbered cues with `.` before the milliseconds.
pub fn vtt(cues: &[Cue]) -> String {
    numbered_cues(String::from("WEBVTT\n\n"), cues, '.')
}

/// `cues` after `header`, numbered, with `separator` before the milliseconds.
fn numbered_cues(mut out: String, cues: &[Cue], separator: char) -> String {
    for (i, cue) in cues.iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(cue.start, separator),
            timestamp(cue.end, separator),
            cue.lines.join("\n")
        );
    }
    out
}

/// `HH:MM:SS,mmm` (or with `.`).
fn timestamp(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// A segment's cues: the whole segment when it fits one, else as few cues
/// as fit it, of about equal length, broken at words.
fn segment_cues(segment: &Segment) -> Vec<Cue> {
    let words = if segment.words.is_empty() {
        spread_words(segment)
    } else {
        segment.words.clone()
    };
    if words.is_empty() {
        return Vec::new();
    }
    let total = chars_of(&words);
    let span = words[words.len() - 1].end - words[0].start;
    let needed = total
        .div_ceil(LINE_CHARS * CUE_LINES)
        .max((span / CUE_SEC).ceil() as usize)
        .max(1);
    let target = total.div_ceil(needed);
    let mut cues = Vec::new();
    let mut current: Vec<Word> = Vec::new();
    for word in words {
        if let Some(first) = current.first() {
            let chars = chars_of(&current) + 1 + word.word.chars().count();
            let full = chars > LINE_CHARS * CUE_LINES || word.end - first.start > CUE_SEC;
            if full || chars_of(&current) >= target {
                cues.push(cue_of(&current));
                current.clear();
            }
        }
        current.push(word);
    }
    cues.push(cue_of(&current));
    if let Some(first) = cues.first_mut() {
        first.start = first.start.min(segment.start.max(0.0));
    }
    cues
}

/// Words of a segment that has no word times, timed by their share of its characters.
fn spread_words(segment: &Segment) -> Vec<Word> {
    let total = segment.text.chars().count().max(1) as f64;
    let span = (segment.end - segment.start).max(0.0);
    let mut at = 0usize;
    segment
        .text
        .split_whitespace()
        .map(|w| {
            let len = w.chars().count();
            let start = segment.start + span * at as f64 / total;
            at += len + 1;
            let end = segment.start + span * ((at - 1) as f64 / total).min(1.0);
            Word {
                word: w.to_string(),
                start,
                end,
            }
        })
        .collect()
}

fn chars_of(words: &[Word]) -> usize {
    words
        .iter()
        .map(|w| w.word.chars().count() + 1)
        .sum::<usize>()
        .saturating_sub(1)
}

/// A cue of `words`: one line when they fit in `LINE_CHARS`, else two,
/// broken at the word boundary nearest the middle (two lines of about equal
/// length read better than a full one and a stub).
fn cue_of(words: &[Word]) -> Cue {
    let texts: Vec<&str> = words.iter().map(|w| w.word.as_str()).collect();
    let total = chars_of(words);
    let lines = if total <= LINE_CHARS || words.len() < 2 {
        vec![texts.join(" ")]
    } else {
        let mut before = 0;
        let split = (1..words.len())
            .min_by_key(|&i| {
                before = chars_of(&words[..i]);
                before.abs_diff(total - before)
            })
            .unwrap_or(1);
        vec![texts[..split].join(" "), texts[split..].join(" ")]
    };
    Cue {
        start: words[0].start,
        end: words[words.len() - 1].end,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            start,
            end,
            text: text.into(),
            words: Vec::new(),
            decoding: Default::default(),
        }
    }

    #[test]
    fn timestamps_are_zero_padded() {
        assert_eq!(timestamp(3725.5, ','), "01:02:05,500");
        assert_eq!(timestamp(0.0, '.'), "00:00:00.000");
    }

    #[test]
    fn long_segments_become_readable_cues() {
        let text = "And so my fellow Americans ask not what your country can do for you ask what you can do for your country and more words to push it well past two lines";
        let cues = cues(&[segment(0.0, 12.0, text)]);
        assert!(cues.len() >= 2, "{cues:?}");
        for cue in &cues {
            assert!(cue.lines.len() <= CUE_LINES, "{cue:?}");
            assert!(
                cue.lines.iter().all(|l| l.chars().count() <= LINE_CHARS + 10),
                "{cue:?}"
            );
            assert!(cue.end - cue.start <= CUE_SEC + 1e-9, "{cue:?}");
        }
        let rejoined: Vec<String> = cues.iter().flat_map(|c| c.lines.clone()).collect();
        assert_eq!(rejoined.join(" "), text, "no word lost or repeated");
        assert!(cues.windows(2).all(|w| w[0].end <= w[1].start), "{cues:?}");
    }

    #[test]
    fn srt_and_vtt_number_their_cues() {
        let cues = cues(&[segment(0.0, 2.0, "Hello."), segment(2.5, 4.0, "World.")]);
        assert_eq!(
            srt(&cues),
            "1\n00:00:00,000 --> 00:00:02,000\nHello.\n\n2\n00:00:02,500 --> 00:00:04,000\nWorld.\n\n"
        );
        assert!(vtt(&cues).starts_with("WEBVTT\n\n1\n00:00:00.000 --> 00:00:02.000\nHello.\n\n"));
        assert_eq!(srt(&[]), "");
    }
}
