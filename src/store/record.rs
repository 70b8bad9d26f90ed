//! The record kept for every transcription, and the id that names its files.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::audio::AudioWarning;
use crate::monitor::{PerformanceReport, StageTimings};
use crate::rounding::round_to;

/// A transcription's id: a UUID in its canonical hyphenated form. Parsing
/// accepts nothing else, so an id can never name a path outside the data dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileId(uuid::Uuid);

impl FileId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for FileId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for FileId {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let id = uuid::Uuid::try_parse(s).map_err(|_| ())?;
        // Only the exact lower-case hyphenated spelling names a file.
        (id.hyphenated().to_string() == s).then_some(Self(id)).ok_or(())
    }
}

impl Serialize for FileId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| serde::de::Error::custom("not a file id"))
    }
}

/// Performance figures of one request: the monitor's report plus the
/// real-time factor (processing time / audio duration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPerformance {
    #[serde(flatten)]
    pub report: PerformanceReport,
    /// Processing seconds per second of audio (below 1 is faster than real time).
    pub real_time_factor: f64,
}

impl RequestPerformance {
    /// Adds the real-time factor to a report.
    pub fn new(report: PerformanceReport, audio_duration_sec: f64) -> Self {
        let rtf = if audio_duration_sec > 0.0 {
            report.processing_time_sec / audio_duration_sec
        } else {
            0.0
        };
        Self {
            report,
            real_time_factor: round_to(rtf, 4),
        }
    }
}

/// `{file_id}.performance.json`: what was transcribed, by which model, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptionRecord {
    pub file_id: FileId,
    /// The uploaded file's name (as sent; never used as a path).
    pub filename: String,
    /// When the transcription finished (RFC 3339, UTC).
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub model: String,
    pub language: String,
    pub audio_duration_sec: f64,
    pub word_count: usize,
    pub performance: RequestPerformance,
    pub timings: StageTimings,
    /// The W3C trace id of the request, to find its trace in Jaeger.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// What the transcript does not cover (a file cut short, damaged packets).
    #[serde(default)]
    pub warnings: Vec<AudioWarning>,
    /// The replica that did the work (`--replica-name`; absent from records
    /// made before replicas were named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// Present when the record is a saved live session: what it covers, and
    /// what its figures mean there (they combine its utterances').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveSessionSummary>,
}

/// What the record of a saved live session covers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveSessionSummary {
    /// Utterances transcribed.
    pub utterances: usize,
    /// Seconds of their audio: the speech transcribed (`audio_duration_sec`
    /// is the session's audio up to the end of its last utterance, pauses included).
    pub speech_sec: f64,
    /// What the performance figures are: sums and maxima over the utterances' work.
    pub figures: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_are_ids() {
        let id = FileId::new();
        assert_eq!(id.to_string().parse::<FileId>(), Ok(id));
        for bad in [
            "",
            "..",
            "../etc/passwd",
            "%2e%2e",
            "ABCDEF00-0000-4000-8000-000000000000",
            "abcdef0000004000800000000000000000",
            "{abcdef00-0000-4000-8000-000000000000}",
            "abcdef00-0000-4000-8000-000000000000/../x",
        ] {
            assert!(bad.parse::<FileId>().is_err(), "{bad} accepted");
        }
    }
}
