//! A live session's settings, as OpenAI's transcription session object
//! carries them (`session.update` in, `session.created`/`updated` out).

use serde_json::{json, Value};

use crate::error::AppError;
use crate::live::input::INPUT_RATES;
use crate::models::{Models, OfferedModel};
use crate::vad::turns::ServerVad;

use super::super::transcribe::check_language;
use super::EventError;

/// The longest prefix padding and silence duration taken, ms.
const MAX_VAD_MS: u64 = 10_000;

/// What a session does with its audio.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// The input's sample rate (PCM16 mono).
    pub rate: u32,
    /// The model as the client named it (`whisper-1` stays `whisper-1`).
    pub model_name: String,
    /// The model that runs.
    pub model: OfferedModel,
    /// A Whisper language code; `None` detects it per utterance.
    pub language: Option<String>,
    /// Text the decoder reads first.
    pub prompt: Option<String>,
    /// Server VAD; `None`: the client commits.
    pub turn_detection: Option<ServerVad>,
}

impl SessionConfig {
    /// A new session's settings: 24 kHz, the default model, server VAD when the server has it.
    pub fn new(models: &Models, vad_available: bool) -> Self {
        let model = models.offered()[0].clone();
        Self {
            rate: INPUT_RATES[0],
            model_name: model.name.clone(),
            model,
            language: None,
            prompt: None,
            turn_detection: vad_available.then(ServerVad::default),
        }
    }

    /// The session object of OpenAI's transcription sessions.
    pub fn to_json(&self, id: &str) -> Value {
        let turn_detection = self.turn_detection.map(|vad| {
            json!({
                "type": "server_vad",
                "threshold": vad.threshold,
                "prefix_padding_ms": vad.prefix_padding_ms,
                "silence_duration_ms": vad.silence_duration_ms,
            })
        });
        json!({
            "type": "transcription",
            "id": id,
            "object": "realtime.transcription_session",
            "audio": {"input": {
                "format": {"type": "audio/pcm", "rate": self.rate},
                "transcription": {"model": self.model_name, "language": self.language, "prompt": self.prompt},
                "turn_detection": turn_detection,
                "noise_reduction": null,
            }},
            "include": [],
        })
    }

    /// These settings with `session.update`'s `session` applied; nothing is
    /// changed when any part is refused. `vad` says why server VAD cannot run, if it cannot.
    pub fn updated(&self, session: &Value, models: &Models, vad: Result<(), &str>) -> Result<Self, EventError> {
        let mut next = self.clone();
        match session.get("type").and_then(Value::as_str) {
            None | Some("transcription") => {}
            Some(other) => {
                return Err(invalid(
                    "session.type",
                    format!("Sori runs transcription sessions only (session.type \"transcription\"), not {other:?}"),
                ))
            }
        }
        let input = session.pointer("/audio/input").unwrap_or(&Value::Null);
        if let Some(format) = input.get("format").filter(|f| !f.is_null()) {
            next.rate = input_rate(format)?;
        }
        if let Some(transcription) = input.get("transcription").filter(|t| t.is_object()) {
            if let Some(model) = transcription.get("model").filter(|m| !m.is_null()) {
                let name = model
                    .as_str()
                    .ok_or_else(|| invalid("session.audio.input.transcription.model", "a model name is text"))?;
                next.model = models
                    .find(Some(name))
                    .map_err(|e| {
                        EventError::from(AppError::from(e)).with_param("session.audio.input.transcription.model")
                    })?
                    .clone();
                next.model_name = name.to_string();
            }
            next.language = text(transcription, "language")?.map(|l| l.to_lowercase());
            next.prompt = text(transcription, "prompt")?;
        }
        next.language = check_language(&next.model, next.language.take())
            .map_err(|e| EventError::from(e).with_param("session.audio.input.transcription.language"))?;
        if let Some(turn_detection) = input.get("turn_detection") {
            next.turn_detection = server_vad(turn_detection)?;
            if next.turn_detection.is_some() {
                if let Err(reason) = vad {
                    return Err(invalid(
                        "session.audio.input.turn_detection",
                        format!("server VAD is not available on this server ({reason}); set turn_detection to null and commit the audio"),
                    ));
                }
            }
        }
        Ok(next)
    }
}

/// `{"type": "audio/pcm", "rate": 24000}`: PCM16 at 24 or 16 kHz.
fn input_rate(format: &Value) -> Result<u32, EventError> {
    match format.get("type").and_then(Value::as_str) {
        Some("audio/pcm") | None => {}
        Some(other) => {
            return Err(invalid(
                "session.audio.input.format.type",
                format!("Sori takes audio/pcm (16-bit little-endian mono), not {other}"),
            ))
        }
    }
    match format.get("rate") {
        None | Some(Value::Null) => Ok(INPUT_RATES[0]),
        Some(rate) => rate
            .as_u64()
            .and_then(|r| u32::try_from(r).ok())
            .filter(|r| INPUT_RATES.contains(r))
            .ok_or_else(|| {
                invalid(
                    "session.audio.input.format.rate",
                    format!("the input rate is 24000 (OpenAI's) or 16000 Hz, not {rate}"),
                )
            }),
    }
}

/// `null` (the client commits), or `server_vad` with its parameters.
fn server_vad(turn_detection: &Value) -> Result<Option<ServerVad>, EventError> {
    const PARAM: &str = "session.audio.input.turn_detection";
    if turn_detection.is_null() {
        return Ok(None);
    }
    match turn_detection.get("type").and_then(Value::as_str) {
        Some("server_vad") => {}
        Some("semantic_vad") => {
            return Err(invalid(
                PARAM,
                "Sori has server_vad turn detection, not semantic_vad; use server_vad or null",
            ))
        }
        _ => {
            return Err(invalid(
                PARAM,
                "turn_detection is null or {\"type\": \"server_vad\", ...}",
            ))
        }
    }
    let defaults = ServerVad::default();
    let threshold = match turn_detection.get("threshold").filter(|v| !v.is_null()) {
        None => defaults.threshold,
        Some(v) => v.as_f64().filter(|t| (0.0..=1.0).contains(t)).ok_or_else(|| {
            invalid(
                &format!("{PARAM}.threshold"),
                "the threshold is a number from 0.0 to 1.0",
            )
        })? as f32,
    };
    let millis = |key: &str, default: u32| -> Result<u32, EventError> {
        match turn_detection.get(key).filter(|v| !v.is_null()) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|ms| *ms <= MAX_VAD_MS)
                .map(|ms| ms as u32)
                .ok_or_else(|| {
                    invalid(
                        &format!("{PARAM}.{key}"),
                        format!("{key} is a whole number of milliseconds from 0 to {MAX_VAD_MS}"),
                    )
                }),
        }
    };
    Ok(Some(ServerVad {
        threshold,
        prefix_padding_ms: millis("prefix_padding_ms", defaults.prefix_padding_ms)?,
        silence_duration_ms: millis("silence_duration_ms", defaults.silence_duration_ms)?,
    }))
}

/// An optional text field.
fn text(object: &Value, key: &str) -> Result<Option<String>, EventError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 4096 => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
        Some(_) => Err(invalid(
            &format!("session.audio.input.transcription.{key}"),
            format!("{key} is text of at most 4096 bytes"),
        )),
    }
}

/// A refused setting: `invalid_value` naming the field.
fn invalid(param: &str, message: impl Into<String>) -> EventError {
    EventError::invalid("invalid_value", message).with_param(param)
}
