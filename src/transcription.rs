//! One transcription, end to end, for every caller (a single upload, a batch
//! file): run the job on the engine, record its figures in Prometheus and on
//! the request's span, and write its paired files.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::engine::{JobOutput, Lane, Segment, SubmitError, TranscribeOptions};
use crate::models::{LoadFailed, Models, OfferedModel};
use crate::rounding::round_to;
use crate::store::history::History;
use crate::store::record::RequestPerformance;
use crate::store::{FileId, FileStore, FilesError, TranscriptionRecord};
use crate::telemetry::metrics;

/// What to transcribe.
pub struct Request {
    /// The id its files will have.
    pub file_id: FileId,
    /// The name the client gave it.
    pub filename: String,
    /// The model to run (one the server offers).
    pub model: OfferedModel,
    /// The upload on disk (the caller deletes it).
    pub audio: PathBuf,
    /// Language, task, prompt, temperature, word times, progress.
    pub options: TranscribeOptions,
    /// The W3C trace id of the request, kept in the record.
    pub trace_id: Option<String>,
    /// A request someone waits for, or a batch file.
    pub lane: Lane,
}

/// A finished transcription: its record (as written) and what the model heard.
pub struct Transcribed {
    pub record: TranscriptionRecord,
    pub output: JobOutput,
}

/// Why a transcription has no record.
#[derive(Debug, thiserror::Error)]
pub enum TranscriptionError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    /// The model's worker processes could not be started.
    #[error(transparent)]
    Load(#[from] LoadFailed),
    /// The paired files could not be written.
    #[error("writing the files of {file_id} failed: {source}")]
    Save { file_id: FileId, source: FilesError },
}

/// Transcribes uploads and keeps what they cost.
#[derive(Clone)]
pub struct Transcriptions {
    models: Arc<Models>,
    store: FileStore,
    /// This replica's name, in every record and span.
    replica: String,
    /// Where each kept transcription is listed.
    history: History,
}

impl Transcriptions {
    /// Transcriptions on `models`, written into `store`, by `replica`,
    /// listed in `history`.
    pub fn new(models: Arc<Models>, store: FileStore, replica: String, history: History) -> Self {
        Self {
            models,
            store,
            replica,
            history,
        }
    }

    /// The history of transcriptions.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// This replica's name (`--replica-name`).
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// The models the jobs run on.
    pub fn models(&self) -> &Arc<Models> {
        &self.models
    }

    /// The data folder.
    pub fn store(&self) -> &FileStore {
        &self.store
    }

    /// Runs `request` on the engine, counts it in Prometheus, puts its figures
    /// on the current span and keeps it (see [`Transcriptions::keep`]).
    pub async fn transcribe(&self, request: Request) -> Result<Transcribed, TranscriptionError> {
        let transcribed = self.run(request).await?;
        let transcript = &transcribed.output.transcript;
        self.keep(&transcribed.record, &transcript.text, &transcript.segments)
            .await?;
        Ok(transcribed)
    }

    /// Writes `{id}.txt` + `{id}.performance.json` (and the segments), then
    /// lists the transcription in the history; a record already kept under
    /// the same id is replaced.
    pub async fn keep(
        &self,
        record: &TranscriptionRecord,
        text: &str,
        segments: &[Segment],
    ) -> Result<(), TranscriptionError> {
        let file_id = record.file_id;
        self.store
            .save(record, text, segments)
            .instrument(tracing::info_span!("write_files"))
            .await
            .map_err(|source| TranscriptionError::Save { file_id, source })?;
        // Kept either way: the next start indexes a record that is not yet.
        if let Err(e) = self.history.add(record, text).await {
            tracing::warn!(error = %e, %file_id, "the transcription is kept but not yet in the history");
        }
        Ok(())
    }

    /// What writes the paired files of `transcribed` (and its segments),
    /// for the caller to run when it may (a batch file: while it holds its claim).
    pub fn publisher(
        &self,
        transcribed: &Transcribed,
    ) -> impl Future<Output = Result<(), FilesError>> + Send + 'static {
        let (store, record) = (self.store.clone(), transcribed.record.clone());
        let transcript = &transcribed.output.transcript;
        let (text, segments) = (transcript.text.clone(), transcript.segments.clone());
        async move { store.save(&record, &text, &segments).await }
    }

    /// Runs `request` on the engine, counts it in Prometheus and puts its
    /// figures on the current span; writes nothing (see [`Transcriptions::publisher`]).
    pub async fn run(&self, request: Request) -> Result<Transcribed, TranscriptionError> {
        // Held until the job is answered: the model's pool is not stopped meanwhile.
        let lease = self.models.take(&request.model).await?;
        let mut output = lease
            .model
            .engine
            .submit(request.audio, request.options, request.lane)
            .await?;
        if lease.started_now {
            output.timings.model_load_sec = Some(lease.model.load_sec);
        }
        drop(lease);
        let model = request.model.name;
        metrics::record_transcription(
            &model,
            &output.performance,
            output.audio_duration_sec,
            output.timings.queue_wait_sec,
        );
        let record = TranscriptionRecord {
            file_id: request.file_id,
            filename: request.filename,
            created_at: chrono::Utc::now(),
            model,
            language: output.transcript.language.clone(),
            audio_duration_sec: round_to(output.audio_duration_sec, 3),
            word_count: output.transcript.text.split_whitespace().count(),
            performance: RequestPerformance::new(output.performance.clone(), output.audio_duration_sec),
            timings: output.timings,
            trace_id: request.trace_id,
            warnings: output.warnings.clone(),
            replica: Some(self.replica.clone()),
            live: None,
        };
        record_on_span(&tracing::Span::current(), &record);
        let file_id = record.file_id;
        tracing::info!(
            %file_id,
            trace_id = record.trace_id.as_deref().unwrap_or("-"),
            model = %record.model,
            language = %record.language,
            audio_sec = record.audio_duration_sec,
            processing_sec = record.performance.report.processing_time_sec,
            cpu_avg = record.performance.report.cpu_percent_avg,
            ram_peak_mb = record.performance.report.ram_mb_peak,
            "transcribed"
        );
        Ok(Transcribed { record, output })
    }
}

/// Puts what the transcription was and cost onto the request's span.
fn record_on_span(span: &tracing::Span, record: &TranscriptionRecord) {
    span.set_attribute("file_id", record.file_id.to_string());
    span.set_attribute("model", record.model.clone());
    if let Some(replica) = &record.replica {
        span.set_attribute("replica", replica.clone());
    }
    span.set_attribute("language", record.language.clone());
    span.set_attribute("audio_duration_sec", record.audio_duration_sec);
    span.set_attribute("word_count", record.word_count as i64);
    for (key, value) in record.performance.report.eight() {
        span.set_attribute(key, value);
    }
    span.set_attribute("real_time_factor", record.performance.real_time_factor);
    span.set_attribute(
        "concurrent_jobs_max",
        record.performance.report.concurrent_jobs_max as i64,
    );
    span.set_attribute("scope", record.performance.report.scope.as_str());
    if let Some(source) = record.performance.report.gpu_percent_source {
        span.set_attribute("gpu_percent_source", source.as_str());
    }
}
