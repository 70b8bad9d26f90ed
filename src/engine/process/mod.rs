//! Worker processes: the server runs each job in a `sori worker` process of
//! its own (one job at a time), so a job's CPU, memory and GPU figures are that
//! process's alone, and an abort inside whisper.cpp, a segfault or the
//! out-of-memory killer ends that one job instead of the server.
//!
//! The supervisor's side is here (start, order, read, notice a death, start
//! again); the worker's side is [`child`]; what they say is [`protocol`].

pub mod child;
mod protocol;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use protocol::{segments_from_wire, Message, Order};

use super::pool::{JobSpec, ModelInfo, Runner};
use super::{EngineError, JobError, JobOutput, ProgressSink};
use crate::monitor::Overlaps;

/// The longest wait between tries to start a worker that fails to start.
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(30);
/// The first wait after a worker failed to start.
const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(500);

/// How to start a worker process: the program (`sori` itself) and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// A running worker process and its pipes.
struct WorkerProcess {
    child: Child,
    /// Orders, one JSON line each.
    orders: ChildStdin,
    /// Messages, one JSON line each.
    messages: BufReader<ChildStdout>,
}

impl WorkerProcess {
    /// Starts the process (it then loads the model; see [`WorkerProcess::wait_ready`]).
    fn spawn(command: &WorkerCommand) -> Result<Self, EngineError> {
        let mut child = Command::new(&command.program)
            .args(&command.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| EngineError(format!("starting {} failed: {e}", command.program.display())))?;
        let orders = child.stdin.take().expect("stdin is piped");
        let messages = BufReader::new(child.stdout.take().expect("stdout is piped"));
        Ok(Self {
            child,
            orders,
            messages,
        })
    }

    /// Waits for the worker to say its model is loaded.
    fn wait_ready(&mut self) -> Result<ModelInfo, EngineError> {
        match self.receive() {
            Some(Message::Ready {
                model,
                multilingual,
                backend,
            }) => Ok(ModelInfo {
                name: model,
                multilingual,
                backend,
            }),
            Some(other) => Err(EngineError(format!("the worker began with {other:?}"))),
            None => Err(EngineError(format!(
                "the worker process {} {} before it was ready",
                self.child.id(),
                self.death()
            ))),
        }
    }

    /// The next message, or `None` when the process has closed its end (it died).
    fn receive(&mut self) -> Option<Message> {
        let mut line = String::new();
        match self.messages.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => match serde_json::from_str(&line) {
                Ok(message) => Some(message),
                Err(e) => {
                    tracing::error!(error = %e, "a worker sent what is not a message; stopping it");
                    let _ = self.child.kill();
                    None
                }
            },
        }
    }

    /// Sends `order` and reads messages until its result; a process that
    /// dies meanwhile gives [`JobError::Crashed`].
    fn run(&mut self, order: &Order, progress: Option<&ProgressSink>) -> Result<JobOutput, JobError> {
        let mut line = serde_json::to_string(order).map_err(|e| EngineError(e.to_string()))?;
        line.push('\n');
        if self
            .orders
            .write_all(line.as_bytes())
            .and_then(|()| self.orders.flush())
            .is_err()
        {
            return Err(self.crashed());
        }
        loop {
            match self.receive() {
                Some(Message::Progress { segments, covered_sec }) => {
                    if let Some(sink) = progress {
                        (sink.0)(&segments_from_wire(segments), covered_sec);
                    }
                }
                Some(Message::Done { result }) => return result.map(|output| JobOutput::from(*output)),
                // A second greeting mid-job is a worker that lost its way.
                Some(Message::Ready { .. }) | None => return Err(self.crashed()),
            }
        }
    }

    fn crashed(&mut self) -> JobError {
        let pid = self.child.id();
        let how = self.death();
        tracing::error!(pid, how = %how, "a worker process died during a job; starting another");
        JobError::Crashed(format!("its worker process {how}"))
    }

    /// Reaps the process and says how it ended.
    fn death(&mut self) -> String {
        let _ = self.child.kill();
        match self.child.wait() {
            Ok(status) => describe(status),
            Err(e) => format!("could not be waited for ({e})"),
        }
    }

    /// Whether the process has ended (reaping it if so), with how.
    fn ended(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(describe(status)),
            Ok(None) => None,
            Err(e) => Some(format!("could not be checked ({e})")),
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How a process ended, in words (`was killed by signal 9 (SIGKILL)`).
fn describe(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGKILL => " (SIGKILL: killed, for example by the out-of-memory killer)",
            libc::SIGABRT => " (SIGABRT: an abort inside the engine)",
            libc::SIGSEGV => " (SIGSEGV: a memory fault inside the engine)",
            libc::SIGBUS => " (SIGBUS)",
            libc::SIGFPE => " (SIGFPE)",
            libc::SIGILL => " (SIGILL)",
            _ => "",
        };
        format!("was killed by signal {signal}{name}")
    } else {
        format!("exited with status {}", status.code().unwrap_or(-1))
    }
}

/// A worker that runs its jobs in a worker process, started again when it dies.
pub struct ProcessRunner {
    command: Arc<WorkerCommand>,
    process: Option<WorkerProcess>,
    /// Which jobs of all workers ran at the same time (for `concurrent_jobs_max`).
    overlaps: Arc<Overlaps>,
    /// Which worker this is, for the log.
    slot: usize,
}

impl ProcessRunner {
    /// Starts the worker's process; call [`ProcessRunner::ready`] before use.
    pub fn spawn(command: Arc<WorkerCommand>, overlaps: Arc<Overlaps>, slot: usize) -> Result<Self, EngineError> {
        let process = WorkerProcess::spawn(&command)?;
        Ok(Self {
            command,
            process: Some(process),
            overlaps,
            slot,
        })
    }

    /// Waits until the process has loaded the model; returns the model's name and kind.
    pub fn ready(mut self) -> Result<(Self, ModelInfo), EngineError> {
        let process = self.process.as_mut().expect("spawned");
        let model = process.wait_ready()?;
        tracing::info!(worker = self.slot, pid = process.child.id(), "worker process ready");
        Ok((self, model))
    }
}

impl Runner for ProcessRunner {
    fn is_ready(&mut self) -> bool {
        let Some(process) = self.process.as_mut() else {
            return false;
        };
        if let Some(how) = process.ended() {
            tracing::error!(worker = self.slot, pid = process.child.id(), how = %how, "a worker process died while idle; starting another");
            self.process = None;
        }
        self.process.is_some()
    }

    fn make_ready(&mut self) {
        let mut backoff = FIRST_RESTART_BACKOFF;
        loop {
            match WorkerProcess::spawn(&self.command).and_then(|mut p| p.wait_ready().map(|_| p)) {
                Ok(process) => {
                    tracing::info!(
                        worker = self.slot,
                        pid = process.child.id(),
                        "worker process started again"
                    );
                    self.process = Some(process);
                    return;
                }
                Err(e) => {
                    tracing::error!(worker = self.slot, error = %e, retry_in_sec = backoff.as_secs_f64(), "a worker process failed to start");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
                }
            }
        }
    }

    fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    fn run(&mut self, job: JobSpec<'_>) -> Result<JobOutput, JobError> {
        let process = self.process.as_mut().expect("the worker made its runner ready");
        let order = Order {
            audio: job.audio.to_path_buf(),
            options: job.options.clone(),
            report_progress: job.options.progress.is_some(),
            queue_wait_sec: job.queue_wait_sec,
            traceparent: crate::trace_context::traceparent_of(job.span),
        };
        let overlap = self.overlaps.enter();
        let result = process.run(&order, job.options.progress.as_ref());
        if matches!(result, Err(JobError::Crashed(_))) {
            self.process = None;
        }
        result.map(|mut output| {
            // The process ran this job alone: its figures are the job's own
            // whatever ran beside it; say what did.
            output.performance.concurrent_jobs_max = overlap.most_others();
            output
        })
    }
}
