//! The bounded queue and the worker threads. The async side only enqueues and
//! awaits a reply; decoding, resampling and inference all run on a worker,
//! inside one PerformanceMonitor session, whose report comes back with the
//! transcript (the caller records it).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{allocator, EngineError, JobError, TranscribeOptions, Transcriber, Transcript};
use crate::audio::{AudioStream, AudioWarning};
use crate::monitor::{PerformanceMonitor, PerformanceReport, StageTimings};
use crate::rounding::round_to;

/// Sizes of the worker pool.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Worker threads, each running one job at a time.
    pub workers: usize,
    /// Jobs that may wait for a worker.
    pub queue_capacity: usize,
    /// Longest audio accepted, seconds.
    pub max_audio_sec: f64,
}

/// A finished job.
#[derive(Debug, Clone)]
pub struct JobOutput {
    pub transcript: Transcript,
    /// Length of the decoded audio, seconds.
    pub audio_duration_sec: f64,
    pub performance: PerformanceReport,
    pub timings: StageTimings,
    /// What the answer must say about the audio (cut short, damaged packets).
    pub warnings: Vec<AudioWarning>,
}

/// Why a job was not run.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Every queue slot is taken.
    #[error("the transcription queue is full")]
    QueueFull,
    /// The job ran and failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// No worker answered (the pool is shutting down, or a worker crashed).
    #[error("the worker stopped before answering")]
    WorkerGone,
}

struct Job {
    /// The upload on disk (its owner deletes it once the job is answered).
    audio: PathBuf,
    options: TranscribeOptions,
    enqueued: Instant,
    /// The request's span: the worker's spans are its children.
    span: tracing::Span,
    /// Open while the job waits; closed when a worker takes it.
    waiting: tracing::Span,
    reply: oneshot::Sender<Result<JobOutput, JobError>>,
}

/// Counters shared by the queue and the workers.
#[derive(Default)]
struct Gauges {
    queued: AtomicUsize,
    busy: AtomicUsize,
    alive: AtomicUsize,
}

/// The handle the HTTP side holds: submit jobs, read the queue's state.
pub struct Engine {
    sender: SyncSender<Job>,
    monitor: PerformanceMonitor,
    gauges: Arc<Gauges>,
    settings: EngineSettings,
    transcriber: Arc<dyn Transcriber>,
}

impl Engine {
    /// Starts `settings.workers` threads serving a queue of `settings.queue_capacity`.
    pub fn start(transcriber: Arc<dyn Transcriber>, monitor: PerformanceMonitor, settings: EngineSettings) -> Self {
        allocator::return_large_blocks_when_freed();
        let (sender, receiver) = mpsc::sync_channel::<Job>(settings.queue_capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let gauges = Arc::new(Gauges::default());
        for i in 0..settings.workers {
            let worker = Worker {
                receiver: receiver.clone(),
                gauges: gauges.clone(),
                transcriber: transcriber.clone(),
                monitor: monitor.clone(),
                max_audio_sec: settings.max_audio_sec,
            };
            gauges.alive.fetch_add(1, Ordering::SeqCst);
            thread::Builder::new()
                .name(format!("sori-worker-{i}"))
                .spawn(move || worker.run())
                .expect("spawn a worker thread");
        }
        Self {
            sender,
            monitor,
            gauges,
            settings,
            transcriber,
        }
    }

    /// Queues a job and waits for its result. A full queue fails at once.
    pub async fn submit(&self, audio: PathBuf, options: TranscribeOptions) -> Result<JobOutput, SubmitError> {
        let (reply, answer) = oneshot::channel();
        let span = tracing::Span::current();
        let waiting = tracing::info_span!("queue_wait");
        let job = Job {
            audio,
            options,
            enqueued: Instant::now(),
            span,
            waiting,
            reply,
        };
        self.gauges.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = self.sender.try_send(job) {
            self.gauges.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => SubmitError::QueueFull,
                TrySendError::Disconnected(_) => SubmitError::WorkerGone,
            });
        }
        answer
            .await
            .map_err(|_| SubmitError::WorkerGone)?
            .map_err(SubmitError::Job)
    }

    /// The monitor that measures every job.
    pub fn monitor(&self) -> &PerformanceMonitor {
        &self.monitor
    }

    /// The recognizer behind the pool.
    pub fn transcriber(&self) -> &dyn Transcriber {
        self.transcriber.as_ref()
    }

    /// Jobs waiting for a worker.
    pub fn queue_depth(&self) -> usize {
        self.gauges.queued.load(Ordering::SeqCst)
    }

    /// Longest audio accepted, seconds.
    pub fn max_audio_sec(&self) -> f64 {
        self.settings.max_audio_sec
    }

    /// Jobs that may wait.
    pub fn queue_capacity(&self) -> usize {
        self.settings.queue_capacity
    }

    /// Workers running a job now.
    pub fn workers_busy(&self) -> usize {
        self.gauges.busy.load(Ordering::SeqCst)
    }

    /// Workers alive, and how many were started.
    pub fn workers_alive(&self) -> (usize, usize) {
        (self.gauges.alive.load(Ordering::SeqCst), self.settings.workers)
    }
}

struct Worker {
    receiver: Arc<Mutex<Receiver<Job>>>,
    gauges: Arc<Gauges>,
    transcriber: Arc<dyn Transcriber>,
    monitor: PerformanceMonitor,
    max_audio_sec: f64,
}

impl Worker {
    fn run(self) {
        loop {
            let next = self.receiver.lock().map(|r| r.recv());
            let Ok(Ok(job)) = next else { break };
            self.gauges.queued.fetch_sub(1, Ordering::SeqCst);
            drop(job.waiting);
            if job.reply.is_closed() {
                continue; // the client went away while the job waited
            }
            self.gauges.busy.fetch_add(1, Ordering::SeqCst);
            let queue_wait_sec = job.enqueued.elapsed().as_secs_f64();
            let (span, audio, options) = (job.span, job.audio, job.options);
            let result = catch_unwind(AssertUnwindSafe(|| {
                span.in_scope(|| self.process(audio, &options, queue_wait_sec))
            }))
            .unwrap_or_else(|_| Err(EngineError("the recognizer panicked".into()).into()));
            self.gauges.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = job.reply.send(result);
            allocator::return_freed_memory();
        }
        self.gauges.alive.fetch_sub(1, Ordering::SeqCst);
    }

    fn process(&self, audio: PathBuf, options: &TranscribeOptions, queue_wait_sec: f64) -> Result<JobOutput, JobError> {
        let session = self.monitor.start();
        let started = Instant::now();
        let mut stream = AudioStream::open_file(&audio, self.max_audio_sec)?;
        let transcript = tracing::info_span!("inference", model = self.transcriber.model_name())
            .in_scope(|| self.transcriber.transcribe(&mut stream, options))?;
        let performance = session.finish();
        // Decoding runs as the model asks for audio, so its time is inside
        // the transcription's: what is not decoding is the model's.
        let decode_sec = stream.busy().as_secs_f64();
        let inference_sec = (started.elapsed().as_secs_f64() - decode_sec).max(0.0);
        Ok(JobOutput {
            transcript,
            audio_duration_sec: stream.decoded_sec(),
            performance,
            timings: StageTimings {
                queue_wait_sec: round_to(queue_wait_sec, 4),
                decode_sec: round_to(decode_sec, 4),
                inference_sec: round_to(inference_sec, 4),
            },
            warnings: stream.warnings(),
        })
    }
}
