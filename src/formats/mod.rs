//! The shapes a transcript is delivered in, shared by the OpenAI-compatible
//! API, the file downloads and the CLI: OpenAI's `json`, `verbose_json` and
//! `text`, and SRT and WebVTT subtitles.

mod subtitles;

use std::io::Write;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{json, Value};

use crate::engine::{Segment, Task, Transcript, Word};
use crate::rounding::round_to;

pub use subtitles::{cues, srt, vtt, Cue};

/// One of OpenAI's `response_format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// `{"text", "usage"}`.
    #[default]
    Json,
    /// The text alone.
    Text,
    /// SubRip subtitles.
    Srt,
    /// Text, language, duration, segments with the decoder's figures, words.
    VerboseJson,
    /// WebVTT subtitles.
    Vtt,
}

impl FromStr for ResponseFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            "srt" => Ok(Self::Srt),
            "verbose_json" => Ok(Self::VerboseJson),
            "vtt" => Ok(Self::Vtt),
            other => Err(format!(
                "response_format {other:?} is not one of json, text, srt, verbose_json, vtt"
            )),
        }
    }
}

impl ResponseFormat {
    /// The media type of the body.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip",
            Self::Vtt => "text/vtt; charset=utf-8",
        }
    }

    /// A file name extension for it.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "json",
            Self::Text => "txt",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
        }
    }

    /// Whether word times make it better (subtitles split long segments at words).
    pub fn wants_words(self) -> bool {
        matches!(self, Self::Srt | Self::Vtt)
    }
}

/// What `verbose_json` includes besides segments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Granularities {
    pub words: bool,
    pub segments: bool,
}

/// OpenAI's `usage` for audio billed by its length.
pub fn usage(duration_sec: f64) -> Value {
    json!({"type": "duration", "seconds": round_to(duration_sec, 3)})
}

/// The body of `format` for a transcript of `duration_sec` seconds of audio;
/// `extra` (Sori's figures) is merged into the JSON formats.
pub fn render(
    format: ResponseFormat,
    task: Task,
    transcript: &Transcript,
    duration_sec: f64,
    granularities: Granularities,
    extra: Option<&Value>,
) -> String {
    let mut body = match format {
        ResponseFormat::Text => return format!("{}\n", transcript.text),
        ResponseFormat::Srt => return srt(&cues(&transcript.segments)),
        ResponseFormat::Vtt => return vtt(&cues(&transcript.segments)),
        ResponseFormat::Json => json!({"text": transcript.text, "usage": usage(duration_sec)}),
        ResponseFormat::VerboseJson => verbose_json(task, transcript, duration_sec, granularities),
    };
    if let (Some(Value::Object(extra)), Value::Object(body)) = (extra, &mut body) {
        body.extend(extra.clone());
    }
    body.to_string()
}

/// OpenAI's `verbose_json`: segments are always there unless only words
/// were asked for; words only when asked for.
fn verbose_json(task: Task, transcript: &Transcript, duration_sec: f64, granularities: Granularities) -> Value {
    let mut body = json!({
        "task": match task {
            Task::Transcribe => "transcribe",
            Task::Translate => "translate",
        },
        "language": crate::engine::language_name(&transcript.language).unwrap_or(&transcript.language),
        "duration": round_to(duration_sec, 3),
        "text": transcript.text,
        "usage": usage(duration_sec),
    });
    if granularities.segments || !granularities.words {
        let segments: Vec<VerboseSegment> = transcript
            .segments
            .iter()
            .enumerate()
            .map(|(id, s)| VerboseSegment::new(id, s))
            .collect();
        body["segments"] = json!(segments);
    }
    if granularities.words {
        let words: Vec<&Word> = transcript.segments.iter().flat_map(|s| &s.words).collect();
        body["words"] = json!(words);
    }
    body
}

/// A segment as OpenAI's `TranscriptionSegment`.
#[derive(Debug, Serialize)]
struct VerboseSegment<'a> {
    id: usize,
    seek: usize,
    start: f64,
    end: f64,
    text: &'a str,
    tokens: &'a [i32],
    temperature: f32,
    avg_logprob: f32,
    compression_ratio: f64,
    no_speech_prob: f32,
}

impl<'a> VerboseSegment<'a> {
    fn new(id: usize, segment: &'a Segment) -> Self {
        let d = &segment.decoding;
        Self {
            id,
            seek: d.seek,
            start: round_to(segment.start, 3),
            end: round_to(segment.end, 3),
            text: &segment.text,
            tokens: &d.tokens,
            temperature: d.temperature,
            avg_logprob: d.avg_logprob,
            compression_ratio: compression_ratio(&segment.text),
            no_speech_prob: d.no_speech_prob,
        }
    }
}

/// How well the text compresses, as Whisper measures it (its UTF-8 length over
/// its zlib-compressed length): repetitive, looping text scores high (whisper
/// treats above 2.4 as a failed decode).
pub fn compression_ratio(text: &str) -> f64 {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return 0.0;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .map_or(bytes.len(), |c| c.len());
    round_to(bytes.len() as f64 / compressed as f64, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_compresses_well() {
        let varied = compression_ratio("And so my fellow Americans, ask not what your country can do for you.");
        let looped = compression_ratio(&"thank you ".repeat(30));
        assert!(varied < 1.5, "{varied}");
        assert!(looped > 2.4, "{looped}");
        assert_eq!(compression_ratio(""), 0.0);
    }

    #[test]
    fn formats_parse_and_name_themselves() {
        let all = [
            ("json", ResponseFormat::Json),
            ("text", ResponseFormat::Text),
            ("srt", ResponseFormat::Srt),
            ("verbose_json", ResponseFormat::VerboseJson),
            ("vtt", ResponseFormat::Vtt),
        ];
        for (name, format) in all {
            assert_eq!(name.parse::<ResponseFormat>().unwrap(), format);
        }
        assert!("xml".parse::<ResponseFormat>().unwrap_err().contains("verbose_json"));
    }
}
