//! The worker's side: `sori worker` loads the model once, says it is ready,
//! then runs each order from its stdin as one measured job and answers on its
//! stdout, until its stdin closes.

use std::fs::File;
use std::io::{self, BufRead, Write};
use std::os::fd::FromRawFd;
use std::sync::{Arc, Mutex};

use super::protocol::{segments_to_wire, Message, Order};
use crate::engine::{run_job, ProgressSink, TranscribeOptions, Transcriber};
use crate::monitor::PerformanceMonitor;
use crate::vad::SileroVad;

/// Where a worker's messages go: the stdout it was started with. Anything
/// else that writes to stdout (a C library's printf) goes to stderr instead,
/// so it can never be taken for a message.
#[derive(Clone)]
struct Replies(Arc<Mutex<File>>);

impl Replies {
    fn take_stdout() -> io::Result<Self> {
        // SAFETY: dup and dup2 on the standard descriptors, which stay open
        // for the life of the process; the new descriptor is owned by the File.
        let file = unsafe {
            let copy = libc::dup(libc::STDOUT_FILENO);
            if copy < 0 || libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0 {
                return Err(io::Error::last_os_error());
            }
            File::from_raw_fd(copy)
        };
        Ok(Self(Arc::new(Mutex::new(file))))
    }

    fn send(&self, message: &Message) -> io::Result<()> {
        let mut line = serde_json::to_vec(message)?;
        line.push(b'\n');
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(&line)?;
        out.flush()
    }
}

/// Ties the worker's life to the server's: it is killed when the server dies
/// (however it dies), and it ignores the Ctrl-C and SIGTERM meant for the
/// server (which sends them to its whole group), so a draining server's jobs
/// finish; it ends when its stdin closes.
pub fn bind_to_parent() {
    // SAFETY: prctl and signal with constant arguments have no preconditions.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

/// Serves orders from stdin until it closes. `job_span` makes the span a job
/// runs in from the request's traceparent; `after_job` runs after each answer
/// (the caller flushes its traces there).
pub fn serve(
    transcriber: &dyn Transcriber,
    vad: Option<&SileroVad>,
    monitor: &PerformanceMonitor,
    max_audio_sec: f64,
    job_span: impl Fn(Option<&str>) -> tracing::Span,
    after_job: impl Fn(),
) -> io::Result<()> {
    let replies = Replies::take_stdout()?;
    replies.send(&Message::Ready {
        model: transcriber.model_name().to_string(),
        multilingual: transcriber.is_multilingual(),
        backend: transcriber.backend().clone(),
    })?;
    for line in io::stdin().lock().lines() {
        let line = line?;
        let order: Order = serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let progress = order.report_progress.then(|| {
            let replies = replies.clone();
            ProgressSink(Arc::new(move |segments, covered_sec| {
                let _ = replies.send(&Message::Progress {
                    segments: segments_to_wire(segments),
                    covered_sec,
                });
            }))
        });
        let options = TranscribeOptions {
            progress,
            ..order.options
        };
        crate::crash_point::here_for_file("worker_job", &order.audio);
        let span = job_span(order.traceparent.as_deref());
        let result = span.in_scope(|| {
            run_job(
                transcriber,
                vad,
                monitor,
                &order.audio,
                &options,
                order.queue_wait_sec,
                max_audio_sec,
            )
        });
        drop(span);
        replies.send(&Message::Done {
            result: result.map(|output| Box::new(output.into())),
        })?;
        after_job();
    }
    Ok(())
}
