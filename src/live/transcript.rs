//! A live session's transcript as it grows: its transcribed utterances,
//! kept so that the session can be saved as one transcription in the history
//! (text, segments for SRT and VTT, and what the utterances cost together).

use std::collections::HashMap;

use crate::engine::Segment;
use crate::monitor::combined::{combine_reports, sum_timings, COMBINED_FIGURES};
use crate::monitor::{PerformanceReport, StageTimings};
use crate::rounding::round_to;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, LiveSessionSummary, TranscriptionRecord};
use crate::transcription::Transcribed;

/// The most utterances one session keeps for saving (at a few seconds
/// each, hours of speech): bounds what a session holds in memory.
pub const MAX_KEPT_UTTERANCES: usize = 10_000;

/// The longest name a saved session takes, characters.
pub const MAX_NAME_CHARS: usize = 200;

/// One transcribed utterance, on the session's clock.
struct Kept {
    text: String,
    /// Its segments, their times from the start of the session's audio.
    segments: Vec<Segment>,
    /// Where it ends on the session's clock, seconds.
    end_sec: f64,
    speech_sec: f64,
    model: String,
    language: String,
    report: PerformanceReport,
    timings: StageTimings,
}

/// Why a session cannot be saved.
#[derive(Debug, thiserror::Error)]
pub enum SaveRefused {
    #[error("nothing to save yet: no utterance of this session has been transcribed")]
    Empty,
    #[error(
        "this session passed {MAX_KEPT_UTTERANCES} utterances, more than one saved session keeps; \
         save sooner, or start a new session for what follows"
    )]
    TooLong,
}

/// A session's transcribed utterances, in order.
pub struct SessionTranscript {
    /// The id the saved session has: saving again replaces it.
    file_id: FileId,
    started_at: chrono::DateTime<chrono::Utc>,
    kept: Vec<Kept>,
    /// Whether an utterance came beyond [`MAX_KEPT_UTTERANCES`].
    overflowed: bool,
}

impl Default for SessionTranscript {
    fn default() -> Self {
        Self {
            file_id: FileId::new(),
            started_at: chrono::Utc::now(),
            kept: Vec::new(),
            overflowed: false,
        }
    }
}

impl SessionTranscript {
    /// Adds the utterance that started `start_ms` into the session's audio.
    /// Its times follow the previous utterance's end where the session's
    /// clock restarted (a `session.update` that changed the input).
    pub fn add(&mut self, start_ms: u64, done: &Transcribed) {
        if self.kept.len() == MAX_KEPT_UTTERANCES {
            self.overflowed = true;
            return;
        }
        let previous_end = self.kept.last().map_or(0.0, |k| k.end_sec);
        let offset = (start_ms as f64 / 1000.0).max(previous_end);
        let record = &done.record;
        let segments = done
            .output
            .transcript
            .segments
            .iter()
            .map(|segment| shifted(segment, offset))
            .collect();
        self.kept.push(Kept {
            text: done.output.transcript.text.trim().to_string(),
            segments,
            end_sec: offset + record.audio_duration_sec,
            speech_sec: record.audio_duration_sec,
            model: record.model.clone(),
            language: record.language.clone(),
            report: record.performance.report.clone(),
            timings: record.timings,
        });
    }

    /// The session as one transcription named `name` (a default naming its
    /// start when `None`), made by `replica`: one line of text per
    /// utterance, the segments on the session's clock, and the utterances'
    /// figures combined ([`COMBINED_FIGURES`]).
    pub fn to_record(
        &self,
        name: Option<&str>,
        replica: &str,
    ) -> Result<(TranscriptionRecord, String, Vec<Segment>), SaveRefused> {
        if self.overflowed {
            return Err(SaveRefused::TooLong);
        }
        let last = self.kept.last().ok_or(SaveRefused::Empty)?;
        let reports: Vec<&PerformanceReport> = self.kept.iter().map(|k| &k.report).collect();
        let report = combine_reports(&reports).ok_or(SaveRefused::Empty)?;
        let timings: Vec<&StageTimings> = self.kept.iter().map(|k| &k.timings).collect();
        let lines: Vec<&str> = self
            .kept
            .iter()
            .map(|k| k.text.as_str())
            .filter(|t| !t.is_empty())
            .collect();
        let text = lines.join("\n");
        let audio_sec = round_to(last.end_sec, 3);
        let speech_sec = round_to(self.kept.iter().map(|k| k.speech_sec).sum(), 3);
        let filename = name.map_or_else(
            || format!("Live session {}", self.started_at.format("%Y-%m-%d %H:%M UTC")),
            str::to_string,
        );
        let record = TranscriptionRecord {
            file_id: self.file_id,
            filename,
            created_at: chrono::Utc::now(),
            model: most_common(self.kept.iter().map(|k| k.model.as_str())),
            language: most_common(self.kept.iter().map(|k| k.language.as_str())),
            audio_duration_sec: audio_sec,
            word_count: text.split_whitespace().count(),
            performance: RequestPerformance::new(report, audio_sec),
            timings: sum_timings(&timings),
            trace_id: None,
            warnings: Vec::new(),
            replica: Some(replica.to_string()),
            live: Some(LiveSessionSummary {
                utterances: self.kept.len(),
                speech_sec,
                figures: COMBINED_FIGURES.to_string(),
            }),
        };
        let segments = self.kept.iter().flat_map(|k| k.segments.iter().cloned()).collect();
        Ok((record, text, segments))
    }
}

/// `segment` moved `offset` seconds later, with its words.
fn shifted(segment: &Segment, offset: f64) -> Segment {
    let mut moved = segment.clone();
    moved.start = round_to(segment.start + offset, 3);
    moved.end = round_to(segment.end + offset, 3);
    for word in &mut moved.words {
        word.start = round_to(word.start + offset, 3);
        word.end = round_to(word.end + offset, 3);
    }
    moved
}

/// The value seen most often (the first of those tied).
fn most_common<'a>(values: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    let mut index = HashMap::new();
    for value in values {
        let i = *index.entry(value).or_insert_with(|| {
            counts.push((value, 0));
            counts.len() - 1
        });
        counts[i].1 += 1;
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    counts
        .iter()
        .find(|(_, n)| *n == best)
        .map_or_else(String::new, |(v, _)| (*v).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_common_value_wins_and_ties_go_to_the_first() {
        assert_eq!(most_common(["en", "ko", "ko"].into_iter()), "ko");
        assert_eq!(
            most_common(["tiny.en", "base", "base", "tiny.en"].into_iter()),
            "tiny.en"
        );
        assert_eq!(most_common(std::iter::empty()), "");
    }
}
