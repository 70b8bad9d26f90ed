//! Feeds queued batch files to the engine, a few at a time, so batches share
//! the workers with single requests instead of filling the queue.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify, Semaphore};
use tracing::Instrument;

use super::db::{BatchDb, ClaimedFile, FinishedFile};
use crate::engine::{Engine, JobError, SubmitError, TranscribeOptions};
use crate::store::record::TranscriptionRecord;
use crate::store::{FileId, FileStore};

/// Announces which batch changed (for Server-Sent Events).
pub type BatchEvents = broadcast::Sender<FileId>;

/// How long to wait before retrying when the engine's queue is full.
const FULL_QUEUE_BACKOFF: Duration = Duration::from_millis(500);

/// Runs batch files through the engine.
pub struct Dispatcher {
    db: Arc<BatchDb>,
    engine: Arc<Engine>,
    store: FileStore,
    events: BatchEvents,
    wake: Notify,
    /// Batch files in the engine at once (the worker count): a single request
    /// waits behind at most this many batch files.
    slots: usize,
}

impl Dispatcher {
    /// A dispatcher; call [`Dispatcher::start`] to run it.
    pub fn new(db: Arc<BatchDb>, engine: Arc<Engine>, store: FileStore, events: BatchEvents) -> Arc<Self> {
        let slots = engine.workers_alive().1.max(1);
        Arc::new(Self {
            db,
            engine,
            store,
            events,
            wake: Notify::new(),
            slots,
        })
    }

    /// Tells the dispatcher that new files are queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the dispatch loop on the runtime.
    pub fn start(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move { this.run().await });
    }

    async fn run(self: Arc<Self>) {
        let slots = Arc::new(Semaphore::new(self.slots));
        loop {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let db = self.db.clone();
            match tokio::task::spawn_blocking(move || db.claim_next()).await {
                Ok(Ok(Some(file))) => {
                    let _ = self.events.send(file.batch_id);
                    let this = self.clone();
                    tokio::spawn(async move {
                        this.process(file).await;
                        drop(permit);
                    });
                }
                Ok(Ok(None)) => {
                    drop(permit);
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
                }
                Ok(Err(e)) => {
                    drop(permit);
                    tracing::error!(error = %e, "reading the batch queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => tracing::error!(error = %e, "the batch queue task failed"),
            }
        }
    }

    async fn process(&self, file: ClaimedFile) {
        let span = tracing::info_span!("batch_file", batch_id = %file.batch_id, file_id = %file.file_id);
        let outcome = self.transcribe(&file).instrument(span).await;
        let db = self.db.clone();
        let file_id = file.file_id;
        let update = match outcome {
            Outcome::Done(result) => tokio::task::spawn_blocking(move || db.finish(file_id, &result)).await,
            Outcome::Failed(message) => tokio::task::spawn_blocking(move || db.fail(file_id, &message)).await,
            Outcome::Retry => {
                tokio::time::sleep(FULL_QUEUE_BACKOFF).await;
                tokio::task::spawn_blocking(move || db.requeue(file_id)).await
            }
        };
        match update {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, %file_id, "recording a batch file failed"),
            Err(e) => tracing::error!(error = %e, %file_id, "recording a batch file failed"),
        }
        let _ = self.events.send(file.batch_id);
    }

    async fn transcribe(&self, file: &ClaimedFile) -> Outcome {
        let audio = match tokio::fs::read(&file.audio_path).await {
            Ok(bytes) => bytes,
            Err(e) => return Outcome::Failed(format!("the uploaded audio is gone ({e}); upload the file again")),
        };
        let options = TranscribeOptions {
            language: file.language.clone(),
        };
        let output = match self.engine.submit(audio.into(), options).await {
            Ok(output) => output,
            Err(SubmitError::QueueFull) => return Outcome::Retry,
            Err(SubmitError::Job(JobError::Audio(e))) => return self.give_up(file, e.to_string()).await,
            Err(e) => {
                tracing::error!(error = %e, file_id = %file.file_id, "batch transcription failed");
                return self
                    .give_up(file, "the server failed to transcribe this file".into())
                    .await;
            }
        };
        let model = self.engine.transcriber().model_name().to_string();
        let record = TranscriptionRecord::from_output(file.file_id, file.filename.clone(), model, &output, None);
        let (store, saved, text) = (self.store.clone(), record.clone(), output.transcript.text.clone());
        match tokio::task::spawn_blocking(move || store.save(&saved, &text)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Outcome::Failed(format!("writing the transcript failed: {e}")),
            Err(e) => return Outcome::Failed(format!("writing the transcript failed: {e}")),
        }
        let _ = tokio::fs::remove_file(&file.audio_path).await;
        Outcome::Done(FinishedFile {
            language: record.language,
            audio_duration_sec: record.audio_duration_sec,
            word_count: record.word_count,
            performance: record.performance,
        })
    }

    /// A file that cannot be transcribed: its upload is removed, the reason kept.
    async fn give_up(&self, file: &ClaimedFile, message: String) -> Outcome {
        let _ = tokio::fs::remove_file(&file.audio_path).await;
        Outcome::Failed(message)
    }
}

enum Outcome {
    Done(FinishedFile),
    Failed(String),
    Retry,
}
