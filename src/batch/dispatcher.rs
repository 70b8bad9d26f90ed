//! Feeds queued batch files to the engine, a few at a time, so batches share
//! the workers with single requests instead of filling the queue.
//!
//! A claimed file's lease is renewed while it is transcribed. Its result is
//! kept in this order, under its claim: its row is locked, its paired files
//! are written, its row is marked done; then its upload is deleted. A replica
//! that dies between any two leaves a file that the next claim (after the
//! lease, or at once when the same replica starts again) finishes from its
//! record or runs again, never a lost or doubled result.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::store::{BatchStore, ClaimedFile, FinishedFile, Publish, StoreError, StoreResult};
use super::FileChanged;
use crate::engine::{JobError, Lane, SubmitError, TranscribeOptions};
use crate::store::{FileId, FilesError};
use crate::telemetry::metrics;
use crate::transcription::{Request, TranscriptionError, Transcriptions};

/// Announces which file of which batch changed (for Server-Sent Events).
pub type BatchEvents = broadcast::Sender<FileChanged>;

/// How long to wait before retrying when the engine's queue is full.
const FULL_QUEUE_BACKOFF: Duration = Duration::from_millis(500);
/// How often a finished file's upload removal is tried while the store cannot be reached
/// (every [`FILES_UNAVAILABLE_BACKOFF`]: ten minutes).
const UPLOAD_REMOVAL_TRIES: usize = 300;
/// How long to wait before queueing a file again when the file store cannot be reached.
const FILES_UNAVAILABLE_BACKOFF: Duration = Duration::from_secs(2);
/// How long the dispatcher sleeps with nothing queued, unless woken.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Runs batch files through the engine.
pub struct Dispatcher {
    db: Arc<dyn BatchStore>,
    transcriptions: Transcriptions,
    events: BatchEvents,
    /// Woken when files are queued, so they start at once.
    wake: Notify,
    /// Batch files in the engine at once: one per batch worker, else one per
    /// worker (a single request then waits behind at most this many).
    slots: usize,
    /// Tries a file gets when its worker process dies on it (`--max-attempts`):
    /// a file that kills every worker is failed, not retried for ever.
    max_attempts: u32,
    /// How long a claim lasts unless renewed (`--lease-sec`): the time after
    /// which a file whose replica died is taken over.
    lease: Duration,
}

/// What the store now says of a claimed file.
enum Recorded {
    /// Done (and listed in the history) or failed: its upload can go.
    Finished,
    /// Back in the queue.
    Queued,
    /// Claimed again by someone else meanwhile: nothing was changed.
    ClaimLost,
}

/// What became of a claimed file.
enum Outcome {
    /// Transcribed: its figures and history entry, and what writes its
    /// files once it may.
    Done(Box<FinishedFile>, Publish),
    Failed(String),
    /// The engine's queue was full, or the file store could not be reached:
    /// queue it again after `backoff` (`reason` as Prometheus counts it).
    Retry {
        backoff: Duration,
        reason: &'static str,
    },
    /// Its worker process died: try again, up to `max_attempts` tries in all.
    Crashed(String),
}

impl Dispatcher {
    /// A dispatcher; call [`Dispatcher::start`] to run it.
    pub fn new(
        db: Arc<dyn BatchStore>,
        transcriptions: Transcriptions,
        events: BatchEvents,
        max_attempts: u32,
        lease: Duration,
    ) -> Arc<Self> {
        let slots = transcriptions.models().default_engine().batch_slots().max(1);
        Arc::new(Self {
            db,
            transcriptions,
            events,
            wake: Notify::new(),
            slots,
            max_attempts,
            lease,
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
            let asked = std::time::Instant::now();
            match self.db.claim_next(self.transcriptions.replica(), self.lease).await {
                Ok(Some(file)) => {
                    metrics::record_claim(asked.elapsed().as_secs_f64(), file.taken_from.is_some());
                    if let Some(from) = &file.taken_from {
                        tracing::warn!(file_id = %file.file_id, from = %from, "took over a batch file whose replica stopped renewing its lease");
                    }
                    self.announce(&file);
                    let this = self.clone();
                    running.spawn(async move {
                        this.process(file).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::timeout(IDLE_POLL, self.wake.notified()) => {}
                    }
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "reading the batch queue failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("the batch dispatcher stopped claiming files");
    }

    async fn process(&self, file: ClaimedFile) {
        let span = tracing::info_span!("batch_file", batch_id = %file.batch_id, file_id = %file.file_id);
        let outcome = tokio::select! {
            outcome = self.transcribe(&file).instrument(span) => outcome,
            never = self.keep_lease(&file) => match never {},
        };
        let file_id = file.file_id;
        match self.record(&file, outcome).await {
            // The result is recorded: the upload is no longer needed.
            Ok(Recorded::Finished) => {
                crate::crash_point::here("result_recorded");
                self.remove_upload(file_id);
            }
            Ok(Recorded::Queued) => self.wake(),
            Ok(Recorded::ClaimLost) => {
                metrics::record_claim_lost();
                tracing::warn!(%file_id, "the file was claimed again meanwhile; this result is not recorded")
            }
            Err(e) => tracing::error!(error = %e, %file_id, "recording a batch file failed"),
        }
        self.announce(&file);
    }

    /// Removes a finished file's upload, now or, while the file store cannot
    /// be reached, every few seconds for a while (then the next start's sweep does).
    fn remove_upload(&self, file_id: FileId) {
        let store = self.transcriptions.store().clone();
        tokio::spawn(async move {
            for _ in 0..UPLOAD_REMOVAL_TRIES {
                match store.remove_upload(&file_id).await {
                    Err(FilesError::Unavailable(_)) => tokio::time::sleep(FILES_UNAVAILABLE_BACKOFF).await,
                    Err(e) => {
                        tracing::warn!(error = %e, %file_id, "the upload of a finished batch file was not removed; the next start removes it");
                        return;
                    }
                    Ok(_) => return,
                }
            }
            tracing::warn!(%file_id, "the file store stayed unreachable; the next start removes this finished file's upload");
        });
    }

    /// Records what became of a claimed file.
    async fn record(&self, file: &ClaimedFile, outcome: Outcome) -> StoreResult<Recorded> {
        let finished = |changed: bool| {
            if changed {
                Recorded::Finished
            } else {
                Recorded::ClaimLost
            }
        };
        match outcome {
            Outcome::Done(result, publish) => match self.db.finish(file, &result, publish).await {
                Err(StoreError::Publish(FilesError::Unavailable(e))) => {
                    tracing::warn!(error = %e, file_id = %file.file_id, "the file store cannot be reached; the batch file is queued again");
                    self.requeue(file, FILES_UNAVAILABLE_BACKOFF, "storage_unavailable")
                        .await
                }
                Err(StoreError::Publish(e)) => {
                    tracing::error!(error = %e, file_id = %file.file_id, "writing a batch file's result failed");
                    let error = format!("the server could not write this file's transcript ({e}); send it again");
                    Ok(finished(self.db.fail(file, &error).await?))
                }
                done => Ok(finished(done?)),
            },
            Outcome::Failed(message) => Ok(finished(self.db.fail(file, &message).await?)),
            Outcome::Retry { backoff, reason } => self.requeue(file, backoff, reason).await,
            Outcome::Crashed(message) => match self.db.count_crash(file).await? {
                None => Ok(Recorded::ClaimLost),
                Some(crashes) if crashes < self.max_attempts => {
                    tracing::warn!(file_id = %file.file_id, crashes, "the engine crashed on a batch file; it is queued again");
                    self.requeue(file, Duration::ZERO, "engine_crashed").await
                }
                Some(crashes) => {
                    let error = format!("{message}, on each of its {crashes} tries; the file was not tried again (the server's log has the details)");
                    Ok(finished(self.db.fail(file, &error).await?))
                }
            },
        }
    }

    /// Queues a claimed file again after `backoff`, counting why (`reason`).
    async fn requeue(&self, file: &ClaimedFile, backoff: Duration, reason: &'static str) -> StoreResult<Recorded> {
        metrics::record_requeue(reason);
        tokio::time::sleep(backoff).await;
        self.db.requeue(file).await?;
        Ok(Recorded::Queued)
    }

    /// Renews the file's lease every third of its length, for as long as it
    /// is polled; says so once if the claim was lost (the result will not be kept).
    async fn keep_lease(&self, file: &ClaimedFile) -> std::convert::Infallible {
        let mut lost = false;
        loop {
            tokio::time::sleep(self.lease / 3).await;
            match self.db.renew(file, self.lease).await {
                Ok(true) => {}
                Ok(false) if !lost => {
                    lost = true;
                    tracing::warn!(file_id = %file.file_id, "the lease of a batch file ran out and it was taken over");
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, file_id = %file.file_id, "renewing a batch file's lease failed"),
            }
        }
    }

    fn announce(&self, file: &ClaimedFile) {
        let _ = self.events.send(FileChanged {
            batch_id: file.batch_id,
            file_id: file.file_id,
        });
    }

    async fn transcribe(&self, file: &ClaimedFile) -> Outcome {
        let store = self.transcriptions.store();
        // A holder that died after writing the files but before marking the
        // file done: its record is the result.
        match store.load_record(&file.file_id).await {
            Ok(Some(record)) => {
                tracing::info!(file_id = %file.file_id, "a batch file's record was already written; it is marked done");
                let text = match store.load_text(&file.file_id).await {
                    Ok(text) => text.unwrap_or_default(),
                    Err(e) => return files_trouble(file, e),
                };
                let result = Box::new(FinishedFile::new(&record, &text));
                return Outcome::Done(result, Box::pin(async { Ok(()) }));
            }
            Ok(None) => {}
            Err(e) => return files_trouble(file, e),
        }
        let audio = match store.kept_upload(&file.file_id).await {
            Ok(Some(audio)) => audio,
            Ok(None) => return Outcome::Failed("the uploaded audio is gone; upload the file again".into()),
            Err(e) => return files_trouble(file, e),
        };
        let model = match self.transcriptions.models().find(file.model.as_deref()) {
            Ok(model) => model.clone(),
            Err(unknown) => {
                return Outcome::Failed(format!("{unknown}: the server was started again without it"));
            }
        };
        let request = Request {
            file_id: file.file_id,
            filename: file.filename.clone(),
            model,
            audio: audio.path().to_path_buf(),
            options: TranscribeOptions {
                language: file.language.clone(),
                ..TranscribeOptions::default()
            },
            trace_id: None,
            lane: Lane::Batch,
        };
        match self.transcriptions.run(request).await {
            Ok(done) => {
                let write = self.transcriptions.publisher(&done);
                let publish = Box::pin(async move {
                    write.await?;
                    crate::crash_point::here("files_written");
                    Ok(())
                });
                let result = FinishedFile::new(&done.record, &done.output.transcript.text);
                Outcome::Done(Box::new(result), publish)
            }
            Err(TranscriptionError::Submit(SubmitError::QueueFull)) => Outcome::Retry {
                backoff: FULL_QUEUE_BACKOFF,
                reason: "queue_full",
            },
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

/// What becomes of a file whose record or upload could not be read: queued
/// again while the store cannot be reached, else failed.
fn files_trouble(file: &ClaimedFile, e: FilesError) -> Outcome {
    match e {
        FilesError::Unavailable(reason) => {
            tracing::warn!(error = %reason, file_id = %file.file_id, "the file store cannot be reached; the batch file is queued again");
            Outcome::Retry {
                backoff: FILES_UNAVAILABLE_BACKOFF,
                reason: "storage_unavailable",
            }
        }
        FilesError::Failed(reason) => {
            tracing::error!(error = %reason, file_id = %file.file_id, "reading a batch file's upload failed");
            Outcome::Failed("the server could not read this file's upload; send it again".into())
        }
    }
}
