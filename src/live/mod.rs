//! Live transcription: sessions that take audio as it is spoken and
//! transcribe it utterance by utterance (the WebSocket protocol is
//! `http::realtime`). Each utterance runs on the same workers, measured the
//! same way, as an uploaded file.

pub mod input;
pub mod transcript;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use serde::Serialize;

use crate::engine::{Lane, TranscribeOptions};
use crate::error::AppError;
use crate::models::OfferedModel;
use crate::monitor::PerformanceReport;
use crate::rounding::round_to;
use crate::store::FileId;
use crate::transcription::{Request, Transcribed, Transcriptions};
use crate::vad::SileroVad;

/// Limits of live sessions, each bounding what one client can hold.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// Sessions open at once; more are refused (503), so that live audio
    /// cannot hold every connection and fill the queue.
    pub max_sessions: usize,
    /// The longest utterance, seconds: longer speech is cut there, which
    /// bounds a session's buffer and the wait for its text.
    pub max_utterance_sec: u32,
    /// Audio of one session waiting for transcription, seconds; beyond it
    /// the session stops reading the client's audio until the workers catch up.
    pub max_pending_sec: u32,
    /// A session that sends nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Silero VAD's file (`sori model fetch silero-vad`).
    pub vad_model: PathBuf,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            max_sessions: 16,
            max_utterance_sec: 30,
            max_pending_sec: 120,
            idle_timeout: Duration::from_secs(60),
            vad_model: PathBuf::from("models").join(crate::model::silero::FILE_NAME),
        }
    }
}

/// What live sessions share: their limits, the voice-activity model, and the session slots.
pub struct Live {
    /// The limits.
    pub settings: LiveSettings,
    /// The loaded voice-activity model, or why there is none (sessions then
    /// work with commits only).
    vad: Result<SileroVad, String>,
    /// One permit per open session.
    slots: Arc<Semaphore>,
}

impl Live {
    /// Live sessions with `settings`; the voice-activity model is loaded now.
    pub fn new(settings: LiveSettings) -> Self {
        let vad = SileroVad::load(&settings.vad_model).map_err(|e| e.to_string());
        if let Err(reason) = &vad {
            tracing::warn!(%reason, "live sessions have no server VAD, only commits");
        }
        Self {
            slots: Arc::new(Semaphore::new(settings.max_sessions)),
            settings,
            vad,
        }
    }

    /// The voice-activity model, or why there is none.
    pub fn vad(&self) -> Result<&SileroVad, &str> {
        self.vad.as_ref().map_err(String::as_str)
    }

    /// A slot for one more session, if one is free.
    pub fn open_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }
}

/// What a session's utterances cost together, so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionTotals {
    /// Utterances transcribed.
    pub utterances: u64,
    /// Seconds of their audio.
    pub audio_sec: f64,
    /// Sum of their processing times, seconds.
    pub processing_time_sec: f64,
    /// CPU time of the workers for them, seconds (each one's average CPU times its processing time).
    pub cpu_sec: f64,
    /// The highest resident memory of a worker during any of them, MiB.
    pub ram_mb_peak: f64,
    /// The most GPU memory a worker held during any of them, MiB.
    pub gpu_vram_mb_peak: f64,
}

impl SessionTotals {
    /// Adds one transcribed utterance.
    pub fn add(&mut self, report: &PerformanceReport, audio_sec: f64) {
        self.utterances += 1;
        self.audio_sec = round_to(self.audio_sec + audio_sec, 3);
        self.processing_time_sec = round_to(self.processing_time_sec + report.processing_time_sec, 4);
        self.cpu_sec = round_to(
            self.cpu_sec + report.cpu_percent_avg / 100.0 * report.processing_time_sec,
            4,
        );
        self.ram_mb_peak = self.ram_mb_peak.max(report.ram_mb_peak);
        self.gpu_vram_mb_peak = self.gpu_vram_mb_peak.max(report.gpu_vram_mb_peak);
    }
}

/// Transcribes one utterance as an upload is: written as a WAV file where
/// uploads wait (removed after, or by the start-up sweep after a crash) and
/// run by the transcription service, which measures and counts it. Nothing
/// is kept: a live session's text is the client's.
pub async fn transcribe(
    transcriptions: &Transcriptions,
    model: OfferedModel,
    audio: Vec<f32>,
    options: TranscribeOptions,
) -> Result<Transcribed, AppError> {
    let file_id = FileId::new();
    let path = transcriptions.store().upload_path(&file_id);
    let written = path.clone();
    let file = tokio::task::spawn_blocking(move || write_wav(&written, &audio))
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
        .map_err(|e| AppError::Internal(format!("writing the utterance to {}: {e}", path.display())))?;
    let request = Request {
        file_id,
        filename: "live utterance".into(),
        model,
        audio: file.to_path_buf(),
        options,
        trace_id: None,
        lane: Lane::Request,
    };
    let transcribed = transcriptions.run(request).await;
    drop(file);
    Ok(transcribed?)
}

/// Writes 16 kHz samples as a 32-bit float WAV file, removed when the returned path is dropped.
fn write_wav(path: &std::path::Path, samples: &[f32]) -> Result<tempfile::TempPath, hound::Error> {
    let file = tempfile::TempPath::try_from_path(path)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: crate::audio::WHISPER_SAMPLE_RATE,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for sample in samples {
        writer.write_sample(*sample)?;
    }
    writer.finalize()?;
    Ok(file)
}
