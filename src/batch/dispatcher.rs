//! Feeds queued batch files to the engine, a few at a time, so batches share
//! the workers with single requests instead of filling the queue.
//!
//! A file's result is kept in this order: its paired files are written, then
//! its row is marked done, then its upload is deleted; a process that stops
//! between any two leaves a file that the next start finishes (from its
//! record) or runs again, never a lost or doubled result.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::db::{BatchDb, ClaimedFile, FinishedFile};
use super::FileChanged;
use crate::engine::{JobError, SubmitError, TranscribeOptions};
use crate::transcription::{Request, TranscriptionError, Transcriptions};

/// Announces which file of which batch changed (for Server-Sent Events).
pub type BatchEvents = broadcast::Sender<FileChanged>;

/// How long to wait before retrying when the engine's queue is full.
const FULL_QUEUE_BACKOFF: Duration = Duration::from_millis(500);
/// How long the dispatcher sleeps with nothing queued, unless woken.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs batch files through the engine.
pub struct Dispatcher {
    db: Arc<BatchDb>,
    transcriptions: Transcriptions,
    events: BatchEvents,
    /// Woken when files are queued, so they start at once.
    wake: Notify,
    /// Batch files in the engine at once (the worker count): a single request
    /// waits behind at most this many batch files.
    slots: usize,
    /// Tries a file gets when its worker process dies on it (`--max-attempts`):
    /// a file that kills every worker is failed, not retried for ever.
    max_attempts: u32,
}

/// What became of a claimed file.
enum Outcome {
    Done(FinishedFile),
    Failed(String),
    /// The engine's queue was full: try again soon.
    Retry,
    /// Its worker process died: try again, up to `max_attempts` tries in all.
    Crashed(String),
}

impl Dispatcher {
    /// A dispatcher; call [`Dispatcher::start`] to run it.
    pub fn new(db: Arc<BatchDb>, transcriptions: Transcriptions, events: BatchEvents, max_attempts: u32) -> Arc<Self> {
        let slots = transcriptions.engine().workers_alive().1.max(1);
        Arc::new(Self {
            db,
            transcriptions,
            events,
            wake: Notify::new(),
            slots,
            max_attempts,
        })
    }

    /// Tells the dispatcher that new files are queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Starts the dispatch loop on the runtime: it claims files until
    /// `shutdown`, and each file it starts is a task of `running`.
    pub fn start(self: &Arc<Self>, shutdown: CancellationToken, running: TaskTracker) {
        let this = self.clone();
        tokio::spawn(async move { this.run(shutdown, running).await });
    }

    async fn run(self: Arc<Self>, shutdown: CancellationToken, running: TaskTracker) {
        let slots = Arc::new(Semaphore::new(self.slots));
        loop {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let db = self.db.clone();
            match tokio::task::spawn_blocking(move || db.claim_next()).await {
                Ok(Ok(Some(file))) => {
                    self.announce(&file);
                    let this = self.clone();
                    running.spawn(async move {
                        this.process(file).await;
                        drop(permit);
                    });
                }
                Ok(Ok(None)) => {
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()) => {}
                    }
                }
                Ok(Err(e)) => {
                    drop(permit);
                    tracing::error!(error = %e, "reading the batch queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => tracing::error!(error = %e, "the batch queue task failed"),
            }
        }
        tracing::info!("the batch dispatcher stopped claiming files");
    }

    async fn process(&self, file: ClaimedFile) {
        let span = tracing::info_span!("batch_file", batch_id = %file.batch_id, file_id = %file.file_id);
        let outcome = self.transcribe(&file).instrument(span).await;
        let db = self.db.clone();
        let file_id = file.file_id;
        if matches!(outcome, Outcome::Done(_)) {
            crate::crash_point::here("files_written");
        }
        // Whether the file is finished (done or failed), so its upload can go.
        let update = match outcome {
            Outcome::Done(result) => {
                tokio::task::spawn_blocking(move || db.finish(file_id, &result).map(|()| true)).await
            }
            Outcome::Failed(message) => {
                tokio::task::spawn_blocking(move || db.fail(file_id, &message).map(|()| true)).await
            }
            Outcome::Retry => {
                tokio::time::sleep(FULL_QUEUE_BACKOFF).await;
                tokio::task::spawn_blocking(move || db.requeue(file_id).map(|()| false)).await
            }
            Outcome::Crashed(message) => {
                let max_attempts = self.max_attempts;
                let error = move |crashes| {
                    format!("{message}, on each of its {crashes} tries; the file was not tried again (the server's log has the details)")
                };
                let again = tokio::task::spawn_blocking(move || db.record_crash(file_id, max_attempts, error)).await;
                if let Ok(Ok(true)) = again {
                    tracing::warn!(%file_id, "the engine crashed on a batch file; it is queued again");
                }
                again.map(|queued| queued.map(|again| !again))
            }
        };
        match update {
            // The result is recorded: the upload is no longer needed.
            Ok(Ok(true)) => {
                crate::crash_point::here("result_recorded");
                let _ = tokio::fs::remove_file(self.transcriptions.store().upload_path(&file_id)).await;
            }
            Ok(Ok(false)) => self.wake(),
            Ok(Err(e)) => tracing::error!(error = %e, %file_id, "recording a batch file failed"),
            Err(e) => tracing::error!(error = %e, %file_id, "recording a batch file failed"),
        }
        self.announce(&file);
    }

    fn announce(&self, file: &ClaimedFile) {
        let _ = self.events.send(FileChanged {
            batch_id: file.batch_id,
            file_id: file.file_id,
        });
    }

    async fn transcribe(&self, file: &ClaimedFile) -> Outcome {
        let audio = self.transcriptions.store().upload_path(&file.file_id);
        if !tokio::fs::try_exists(&audio).await.unwrap_or(false) {
            return Outcome::Failed("the uploaded audio is gone; upload the file again".into());
        }
        let request = Request {
            file_id: file.file_id,
            filename: file.filename.clone(),
            audio,
            options: TranscribeOptions {
                language: file.language.clone(),
                ..TranscribeOptions::default()
            },
            trace_id: None,
        };
        match self.transcriptions.transcribe(request).await {
            Ok(done) => Outcome::Done(FinishedFile::from(&done.record)),
            Err(TranscriptionError::Submit(SubmitError::QueueFull)) => Outcome::Retry,
            Err(TranscriptionError::Submit(SubmitError::Job(JobError::Audio(e)))) => Outcome::Failed(e.to_string()),
            Err(TranscriptionError::Submit(SubmitError::Job(crashed @ JobError::Crashed(_)))) => {
                Outcome::Crashed(crashed.to_string())
            }
            Err(e) => {
                tracing::error!(error = %e, file_id = %file.file_id, "batch transcription failed");
                Outcome::Failed("the server failed to transcribe this file".into())
            }
        }
    }
}
