//! The bounded queue and its workers. The async side only enqueues and awaits
//! a reply; each worker is a thread that takes one job at a time and hands it
//! to its runner: a `sori worker` process it supervises (the server), or the
//! thread itself (`sori transcribe`, tests with a stand-in recognizer).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::process::{ProcessRunner, WorkerCommand};
use super::{allocator, job, Backend, EngineError, JobError, TranscribeOptions, Transcriber, Transcript};
use crate::audio::AudioWarning;
use crate::monitor::{GpuProbe, Overlaps, PerformanceMonitor, PerformanceReport, StageTimings};

/// How often an idle worker checks that its process is still alive, so that
/// `/readyz` and the restart follow a death within about this long.
const LIVENESS_POLL: Duration = Duration::from_secs(1);
/// How long a worker killed at shutdown has to be reaped by its thread.
const KILLED_WORKER_GRACE: Duration = Duration::from_secs(2);

/// Sizes of the worker pool.
#[derive(Debug, Clone, Copy)]
pub struct EngineSettings {
    /// Workers, each running one job at a time.
    pub workers: usize,
    /// Workers that run only batch files, at the lowest CPU priority, so that
    /// a request never waits behind a batch file and gets the cores first
    /// (0: batch files run on `workers`, in turn with requests).
    pub batch_workers: usize,
    /// Jobs that may wait for a worker.
    pub queue_capacity: usize,
    /// Longest audio accepted, seconds.
    pub max_audio_sec: f64,
}

/// The served model, as the HTTP side names and checks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The name shown to users (`base`, `tiny.en`).
    pub name: String,
    /// Whether it knows languages other than English.
    pub multilingual: bool,
    /// The device its workers run it on.
    pub backend: Backend,
}

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Someone waits for the answer: an upload, a live utterance.
    Request,
    /// A batch file: it runs on the batch workers where there are any.
    Batch,
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
    /// No worker answered (the pool is shutting down).
    #[error("the worker stopped before answering")]
    WorkerGone,
}

/// One job as a runner sees it.
pub struct JobSpec<'a> {
    /// The upload on disk.
    pub audio: &'a Path,
    pub options: &'a TranscribeOptions,
    /// How long it waited in the queue, seconds.
    pub queue_wait_sec: f64,
    /// The request's span: the job's spans are its children.
    pub span: &'a tracing::Span,
}

/// Where a worker runs its jobs.
pub trait Runner: Send + 'static {
    /// Whether a job can be run now (a process runner checks its process).
    fn is_ready(&mut self) -> bool;
    /// Blocks until a job can be run (a process runner starts a new process).
    fn make_ready(&mut self);
    /// The process doing the work, when it is not this one.
    fn pid(&self) -> Option<u32>;
    /// Runs one job.
    fn run(&mut self, job: JobSpec<'_>) -> Result<JobOutput, JobError>;
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
    /// Worker processes started again after one died.
    restarts: AtomicU64,
    /// Each worker's process id (0: none, or the worker is a thread).
    pids: Mutex<Vec<u32>>,
    /// Set by [`Engine::stop_workers`]: workers take no more jobs and start no processes.
    stopping: AtomicBool,
}

/// The handle the HTTP side holds: submit jobs, read the queue's state.
pub struct Engine {
    sender: SyncSender<Job>,
    /// The batch workers' queue, when there are batch workers.
    batch_sender: Option<SyncSender<Job>>,
    gauges: Arc<Gauges>,
    settings: EngineSettings,
    model: ModelInfo,
    /// The GPUs, for the device-wide gauges.
    gpu: Arc<GpuProbe>,
    /// The worker threads, joined by [`Engine::stop_workers`].
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    /// Runs jobs on `settings.workers` threads of this process, measured by
    /// `monitor` (figures of jobs that overlap are the whole process's).
    pub fn start(transcriber: Arc<dyn Transcriber>, monitor: PerformanceMonitor, settings: EngineSettings) -> Self {
        allocator::return_large_blocks_when_freed();
        let model = ModelInfo {
            name: transcriber.model_name().to_string(),
            multilingual: transcriber.is_multilingual(),
            backend: transcriber.backend().clone(),
        };
        let gpu = monitor.gpu().clone();
        let runners = (0..settings.workers)
            .map(|_| {
                Box::new(ThreadRunner {
                    transcriber: transcriber.clone(),
                    monitor: monitor.clone(),
                    max_audio_sec: settings.max_audio_sec,
                }) as Box<dyn Runner>
            })
            .collect();
        Self::with_runners(runners, Vec::new(), model, gpu, settings)
    }

    /// Runs jobs in `settings.workers` worker processes started by `command`,
    /// one job at a time each, so every job's figures are its process's
    /// alone; a process that dies fails only its job and is started again.
    /// Batch files run in `settings.batch_workers` more, started by
    /// `batch_command`. Waits until every process has loaded the model.
    pub fn start_processes(
        command: WorkerCommand,
        batch_command: WorkerCommand,
        gpu: GpuProbe,
        settings: EngineSettings,
    ) -> Result<Self, EngineError> {
        let overlaps = Overlaps::new();
        let (command, batch_command) = (Arc::new(command), Arc::new(batch_command));
        let starting: Vec<_> = (0..settings.workers + settings.batch_workers)
            .map(|slot| {
                let command = if slot < settings.workers {
                    &command
                } else {
                    &batch_command
                };
                ProcessRunner::spawn(command.clone(), overlaps.clone(), slot)
            })
            .collect::<Result<_, _>>()?;
        let mut model = None;
        let mut runners: Vec<Box<dyn Runner>> = Vec::new();
        for runner in starting {
            let (runner, info) = runner.ready()?;
            model.get_or_insert(info);
            runners.push(Box::new(runner));
        }
        let model = model.ok_or_else(|| EngineError("no workers were asked for".into()))?;
        let batch_runners = runners.split_off(settings.workers);
        Ok(Self::with_runners(
            runners,
            batch_runners,
            model,
            Arc::new(gpu),
            settings,
        ))
    }

    fn with_runners(
        runners: Vec<Box<dyn Runner>>,
        batch_runners: Vec<Box<dyn Runner>>,
        model: ModelInfo,
        gpu: Arc<GpuProbe>,
        mut settings: EngineSettings,
    ) -> Self {
        settings.batch_workers = batch_runners.len();
        let (sender, receiver) = mpsc::sync_channel::<Job>(settings.queue_capacity);
        let (batch_sender, batch_receiver) = mpsc::sync_channel::<Job>(settings.queue_capacity);
        let (receiver, batch_receiver) = (Arc::new(Mutex::new(receiver)), Arc::new(Mutex::new(batch_receiver)));
        let gauges = Arc::new(Gauges {
            pids: Mutex::new(vec![0; runners.len() + batch_runners.len()]),
            ..Gauges::default()
        });
        let mut threads = Vec::new();
        let batch_from = runners.len();
        for (slot, runner) in runners.into_iter().chain(batch_runners).enumerate() {
            let worker = Worker {
                receiver: if slot < batch_from {
                    receiver.clone()
                } else {
                    batch_receiver.clone()
                },
                gauges: gauges.clone(),
                runner,
                slot,
            };
            let thread = thread::Builder::new()
                .name(format!("sori-worker-{slot}"))
                .spawn(move || worker.run())
                .expect("spawn a worker thread");
            threads.push(thread);
        }
        Self {
            sender,
            batch_sender: (settings.batch_workers > 0).then_some(batch_sender),
            gauges,
            settings,
            model,
            gpu,
            threads: Mutex::new(threads),
        }
    }

    /// Stops the workers at shutdown, once the jobs in flight are done or
    /// given up: each ends its worker process (killed and reaped) and its
    /// thread; a job still running after `deadline` has its process killed.
    /// No worker process outlives this call.
    pub fn stop_workers(&self, deadline: Duration) {
        self.gauges.stopping.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        let wait_until = |until: Instant| {
            while threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
                thread::sleep(Duration::from_millis(20));
            }
        };
        wait_until(Instant::now() + deadline);
        // A worker clears its pid before its process is reaped, so these are alive.
        for pid in self.worker_pids() {
            tracing::warn!(
                pid,
                "a worker process was still busy at the shutdown deadline; killing it"
            );
            // SAFETY: kill has no memory preconditions; the pid is a child
            // this process has not reaped (its runner reaps it when dropped).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        wait_until(Instant::now() + KILLED_WORKER_GRACE);
        for thread in threads.into_iter().filter(|t| t.is_finished()) {
            let _ = thread.join();
        }
    }

    /// Queues a job in its `lane` and waits for its result. A full queue fails at once.
    pub async fn submit(
        &self,
        audio: PathBuf,
        options: TranscribeOptions,
        lane: Lane,
    ) -> Result<JobOutput, SubmitError> {
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
        let sender = match (lane, &self.batch_sender) {
            (Lane::Batch, Some(batch)) => batch,
            _ => &self.sender,
        };
        self.gauges.queued.fetch_add(1, Ordering::SeqCst);
        if let Err(e) = sender.try_send(job) {
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

    /// The served model.
    pub fn model(&self) -> &ModelInfo {
        &self.model
    }

    /// The GPUs, for the device-wide gauges.
    pub fn gpu(&self) -> &GpuProbe {
        &self.gpu
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

    /// Workers ready for a job, and how many there are (batch workers included).
    pub fn workers_alive(&self) -> (usize, usize) {
        (
            self.gauges.alive.load(Ordering::SeqCst),
            self.settings.workers + self.settings.batch_workers,
        )
    }

    /// How many batch files may run at once: one per batch worker, or, without
    /// any, one per worker (a request then waits behind at most this many).
    pub fn batch_slots(&self) -> usize {
        if self.settings.batch_workers > 0 {
            self.settings.batch_workers
        } else {
            self.settings.workers
        }
    }

    /// Worker processes started again after one died, since the server started.
    pub fn worker_restarts(&self) -> u64 {
        self.gauges.restarts.load(Ordering::SeqCst)
    }

    /// The worker processes' ids (none when the workers are threads).
    pub fn worker_pids(&self) -> Vec<u32> {
        let pids = self.gauges.pids.lock().expect("gauges lock");
        pids.iter().copied().filter(|&pid| pid != 0).collect()
    }
}

/// One worker: a thread taking jobs from the queue for its runner.
struct Worker {
    receiver: Arc<Mutex<Receiver<Job>>>,
    gauges: Arc<Gauges>,
    runner: Box<dyn Runner>,
    /// Its place in `Gauges::pids`.
    slot: usize,
}

impl Worker {
    fn run(mut self) {
        let mut counted = false;
        loop {
            if self.gauges.stopping.load(Ordering::SeqCst) {
                break;
            }
            self.stay_ready(&mut counted);
            let Ok(receiver) = self.receiver.lock() else { break };
            let next = receiver.recv_timeout(LIVENESS_POLL);
            drop(receiver);
            let job = match next {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            self.gauges.queued.fetch_sub(1, Ordering::SeqCst);
            drop(job.waiting);
            if job.reply.is_closed() {
                continue; // the client went away while the job waited
            }
            self.stay_ready(&mut counted);
            self.gauges.busy.fetch_add(1, Ordering::SeqCst);
            let result = self.runner.run(JobSpec {
                audio: &job.audio,
                options: &job.options,
                queue_wait_sec: job.enqueued.elapsed().as_secs_f64(),
                span: &job.span,
            });
            self.gauges.busy.fetch_sub(1, Ordering::SeqCst);
            let _ = job.reply.send(result);
        }
        if counted {
            self.gauges.alive.fetch_sub(1, Ordering::SeqCst);
        }
        // Before the runner (and its process) is dropped: see `Engine::stop_workers`.
        self.set_pid(None);
    }

    /// Starts the runner again if it cannot take a job (its process died),
    /// keeping the alive count, the restart count and the process id true.
    fn stay_ready(&mut self, counted: &mut bool) {
        let ready = self.runner.is_ready();
        if *counted && ready {
            return;
        }
        if *counted {
            *counted = false;
            self.gauges.alive.fetch_sub(1, Ordering::SeqCst);
            self.set_pid(None);
        }
        if !ready {
            self.runner.make_ready();
            self.gauges.restarts.fetch_add(1, Ordering::SeqCst);
        }
        *counted = true;
        self.gauges.alive.fetch_add(1, Ordering::SeqCst);
        self.set_pid(self.runner.pid());
    }

    fn set_pid(&self, pid: Option<u32>) {
        self.gauges.pids.lock().expect("gauges lock")[self.slot] = pid.unwrap_or(0);
    }
}

/// Runs jobs on the worker's own thread, measured by the process's monitor.
struct ThreadRunner {
    transcriber: Arc<dyn Transcriber>,
    monitor: PerformanceMonitor,
    max_audio_sec: f64,
}

impl Runner for ThreadRunner {
    fn is_ready(&mut self) -> bool {
        true
    }

    fn make_ready(&mut self) {}

    fn pid(&self) -> Option<u32> {
        None
    }

    fn run(&mut self, job: JobSpec<'_>) -> Result<JobOutput, JobError> {
        job.span.in_scope(|| {
            job::run_job(
                self.transcriber.as_ref(),
                None,
                &self.monitor,
                job.audio,
                job.options,
                job.queue_wait_sec,
                self.max_audio_sec,
            )
        })
    }
}
