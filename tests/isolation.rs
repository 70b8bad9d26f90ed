//! Worker processes against ground truth read from outside them: each
//! request's CPU and memory are its own process's (checked in `/proc`) however
//! many run at once, and an engine crash (`kill -9` of the worker doing a
//! job) fails only that job, single or batch, while the server goes on.

mod common;

use std::path::Path;
use std::thread;
use std::time::Duration;

use common::http::error_code;
use common::server::Server;
use common::*;
use serde_json::Value;

/// JFK `times` times over (11 s each), as WAV bytes.
fn jfk_times(dir: &Path, times: usize) -> Vec<u8> {
    let jfk = fixture_audio("jfk.wav");
    let out = dir.join(format!("jfk-x{times}.wav"));
    let mut args: Vec<&str> = vec![jfk.to_str().unwrap(); times];
    args.push(out.to_str().unwrap());
    sox(&args);
    std::fs::read(out).unwrap()
}

/// CPU seconds used so far by the server and its worker processes together.
fn server_cpu_sec(server: &Server) -> f64 {
    let pids = std::iter::once(server.child.id()).chain(server.worker_pids());
    pids.map(proc_cpu_sec).sum()
}

fn f(value: &Value, key: &str) -> f64 {
    value["performance"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

/// Four requests of three sizes on two single-thread workers: every report's
/// CPU is its own (together the whole server's, per `/proc`), its average is
/// its CPU over its time, it says what overlapped it, and each memory peak is
/// its own worker's high-water mark: the same as the same clip's alone.
#[test]
fn overlapping_requests_each_report_their_own_cpu_and_memory() {
    let data = tempfile::tempdir().unwrap();
    let audio = tempfile::tempdir().unwrap();
    let server = Server::start(
        &model_path("tiny.en"),
        data.path(),
        &["--workers", "2", "--threads-per-worker", "1"],
        &[],
    );
    let workers = server.worker_pids();
    assert_eq!(workers.len(), 2, "two worker processes");
    let (long, mid) = (jfk_times(audio.path(), 12), jfk_times(audio.path(), 1));
    let short = std::fs::read(jfk_excerpt(audio.path(), 3.0)).unwrap();

    let before = server_cpu_sec(&server);
    let long_request = server.transcribe_later("long.wav", long.clone());
    server.wait_workers_busy(1, Duration::from_secs(20));
    let others: Vec<_> = [
        ("short.wav", short.clone()),
        ("mid-1.wav", mid.clone()),
        ("mid-2.wav", mid),
    ]
    .into_iter()
    .map(|(name, bytes)| {
        let request = server.transcribe_later(name, bytes);
        thread::sleep(Duration::from_millis(100));
        request
    })
    .collect();
    let mut bodies = vec![long_request.join().unwrap()];
    bodies.extend(others.into_iter().map(|r| r.join().unwrap()));
    let spent = server_cpu_sec(&server) - before;

    for (status, body) in &bodies {
        assert_eq!(*status, 200, "{body}");
        let p = &body["performance"];
        assert_eq!(p["scope"], "request", "a worker process runs one job: {p}");
        assert!(
            p["concurrent_jobs_max"].as_u64().unwrap() >= 1,
            "each overlapped another: {p}"
        );
        let (cpu, wall, avg) = (
            f(body, "cpu_time_sec"),
            f(body, "processing_time_sec"),
            f(body, "cpu_percent_avg"),
        );
        assert!((avg - cpu / wall * 100.0).abs() < 0.5, "average is CPU over time: {p}");
        assert!(avg <= 105.0, "one thread is at most one core: {p}");
    }
    // The long one ran beside each of the other three in turn, one at a time.
    assert_eq!(bodies[0].1["performance"]["concurrent_jobs_max"], 1, "{}", bodies[0].1);
    let reported: f64 = bodies.iter().map(|(_, b)| f(b, "cpu_time_sec")).sum();
    assert!(
        (reported - spent).abs() <= 0.1 * spent,
        "the reports add up to {reported:.3} s of CPU; the server's processes spent {spent:.3} s"
    );

    // No job has run since: each worker's high-water mark is the peak of the
    // last job it ran (the long one's, on the worker it kept busy throughout).
    let marks: Vec<f64> = workers.iter().map(|&pid| proc_memory_mib(pid, "VmHWM")).collect();
    let peaks: Vec<f64> = bodies.iter().map(|(_, b)| f(b, "ram_mb_peak")).collect();
    let matches = |peak: f64| marks.iter().any(|mark| (peak - mark).abs() <= 0.01 * mark);
    assert!(
        matches(peaks[0]),
        "the long job's peak {} MiB is its worker's VmHWM: {marks:?}",
        peaks[0]
    );
    assert!(
        peaks[1..].iter().any(|&peak| matches(peak)),
        "the other worker's VmHWM is its last job's peak: {marks:?} vs {peaks:?}"
    );
    // The same clips again, one at a time: each peak is what it was beside
    // the others (in one process it was the memory of all of them).
    for (name, bytes, beside) in [("long.wav", long, &bodies[0].1), ("short.wav", short, &bodies[1].1)] {
        let (status, alone) = server.transcribe(name, bytes, &[]);
        assert_eq!(status, 200, "{alone}");
        let (peak_alone, peak_beside) = (f(&alone, "ram_mb_peak"), f(beside, "ram_mb_peak"));
        assert!(
            (peak_alone - peak_beside).abs() <= 0.03 * peak_alone,
            "{name}: peak {peak_beside} MiB beside the others, {peak_alone} MiB alone"
        );
        assert_eq!(alone["performance"]["concurrent_jobs_max"], 0, "{alone}");
    }
}

/// One worker, a request alone: CPU and memory within a whisker of what the
/// kernel says of the worker process, a batch file beside an upload waits
/// for it instead of overlapping it.
#[test]
fn a_request_alone_is_exact_and_one_worker_never_overlaps() {
    let data = tempfile::tempdir().unwrap();
    let audio = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &["--threads-per-worker", "2"], &[]);
    let worker = server.worker_pids()[0];
    let long = jfk_times(audio.path(), 4);
    let before = proc_cpu_sec(worker);
    let (status, body) = server.transcribe("long.wav", long.clone(), &[]);
    assert_eq!(status, 200, "{body}");
    let spent = proc_cpu_sec(worker) - before;
    let cpu = f(&body, "cpu_time_sec");
    assert!(
        (cpu - spent).abs() <= 0.02 * spent + 0.03,
        "reported {cpu} s, /proc {spent} s"
    );
    let (peak, mark) = (f(&body, "ram_mb_peak"), proc_memory_mib(worker, "VmHWM"));
    assert!(
        (peak - mark).abs() <= 0.01 * mark,
        "reported {peak} MiB, VmHWM {mark} MiB"
    );
    assert_eq!(body["performance"]["concurrent_jobs_max"], 0);

    let batch_id = server.post_batch(&[("batch.wav".to_string(), long.clone())]);
    server.wait_workers_busy(1, Duration::from_secs(20));
    let (status, single) = server.transcribe("single.wav", long, &[]);
    assert_eq!(status, 200, "{single}");
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    let file = &batch["files"][0];
    for p in [&single["performance"], &file["performance"]] {
        assert_eq!(p["concurrent_jobs_max"], 0, "one worker runs one job at a time: {p}");
        assert_eq!(p["scope"], "request", "{p}");
    }
    assert!(
        single["timings"]["queue_wait_sec"].as_f64().unwrap() > 0.1,
        "it waited: {single}"
    );
}

/// The nice value of every thread of process `pid`, from `/proc/{pid}/task/*/stat`.
fn thread_nice_values(pid: u32) -> Vec<i64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
            // Field 19 of stat; the 17th after the command name, which may hold spaces.
            stat.rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .nth(16)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

/// `--batch-workers 1`: batch files run in a process of their own whose every
/// thread is at the lowest CPU priority (nice 19, per `/proc`), the request
/// worker stays at 0, and a request sent while a batch file runs does not wait
/// for it. Each worker's CPU time in `/proc` is what its own jobs reported.
#[test]
fn batch_files_run_on_their_own_low_priority_worker_and_requests_do_not_wait() {
    let data = tempfile::tempdir().unwrap();
    let audio = tempfile::tempdir().unwrap();
    let args = ["--threads-per-worker", "1", "--batch-workers", "1"];
    let server = Server::start(&model_path("tiny.en"), data.path(), &args, &[]);
    let pids = server.worker_pids();
    assert_eq!(pids.len(), 2, "one request worker and one batch worker: {pids:?}");
    let (request_worker, batch_worker) = (pids[0], pids[1]);
    let long = jfk_times(audio.path(), 4);
    let (cpu_request_worker, cpu_batch_worker) = (proc_cpu_sec(request_worker), proc_cpu_sec(batch_worker));

    let batch_id = server.post_batch(&[("batch.wav".to_string(), long)]);
    server.wait_workers_busy(1, Duration::from_secs(20));
    // Now its compute threads exist too.
    assert!(
        thread_nice_values(batch_worker).iter().all(|&n| n == 19),
        "{:?}",
        thread_nice_values(batch_worker)
    );
    assert!(thread_nice_values(request_worker).iter().all(|&n| n == 0));
    let (status, single) = server.transcribe("single.wav", std::fs::read(fixture_audio("jfk.wav")).unwrap(), &[]);
    assert_eq!(status, 200, "{single}");
    let batch = server.wait_batch_complete(&batch_id, Duration::from_secs(120));
    assert!(
        single["timings"]["queue_wait_sec"].as_f64().unwrap() < 0.1,
        "a request does not wait for a batch file: {single}"
    );
    for (pid, before, reported) in [
        (request_worker, cpu_request_worker, f(&single, "cpu_time_sec")),
        (batch_worker, cpu_batch_worker, f(&batch["files"][0], "cpu_time_sec")),
    ] {
        let spent = proc_cpu_sec(pid) - before;
        assert!(
            (reported - spent).abs() <= 0.02 * spent + 0.05,
            "worker {pid}: its job reported {reported} s, /proc {spent} s"
        );
    }
}

/// `kill -9` of the worker while it transcribes: that request fails with
/// `engine_crashed`, the server keeps serving, a new worker is ready within
/// seconds, and Prometheus counts the restart.
#[test]
fn killing_the_worker_mid_request_fails_only_that_request() {
    let data = tempfile::tempdir().unwrap();
    let audio = tempfile::tempdir().unwrap();
    let server = Server::start(&model_path("tiny.en"), data.path(), &["--threads-per-worker", "1"], &[]);
    let worker = server.worker_pids()[0];
    let request = server.transcribe_later("long.wav", jfk_times(audio.path(), 8));
    server.wait_workers_busy(1, Duration::from_secs(20));
    thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling the server's own worker process.
    assert_eq!(unsafe { libc::kill(worker as i32, libc::SIGKILL) }, 0);

    let (status, body) = request.join().unwrap();
    assert_eq!(status, 500, "{body}");
    assert_eq!(error_code(&body), "engine_crashed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("signal 9"), "{message}");
    let recovered = server.wait_workers_replaced(&[worker], Duration::from_secs(10));
    assert_ne!(recovered["worker_pids"][0].as_u64().unwrap(), worker as u64);
    assert_eq!(recovered["worker_restarts"], 1);
    let (status, body) = server.transcribe("jfk.wav", std::fs::read(fixture_audio("jfk.wav")).unwrap(), &[]);
    assert_eq!(status, 200, "the server keeps serving: {body}");
    assert!(body["text"].as_str().unwrap().contains("ask not"));
    let metrics = reqwest::blocking::get(server.url("/metrics")).unwrap().text().unwrap();
    assert!(
        metrics.lines().any(|l| l == "sori_worker_restarts_total 1"),
        "{metrics}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sori_errors_total") && l.contains("engine_crashed")),
        "the error is counted"
    );
}

/// A batch file that kills its worker on every try (a test build's crash
/// point, keyed on a marker inside the file) is failed after `--max-attempts`
/// tries with a message saying so; the other files are done; and its crash
/// count is kept in the database across a restart of the server: a server
/// restarted after one crash fails it on the next.
#[cfg(feature = "crash-points")]
#[test]
fn a_poison_batch_file_fails_after_its_tries_even_across_a_restart() {
    let data = tempfile::tempdir().unwrap();
    let jfk = std::fs::read(fixture_audio("jfk.wav")).unwrap();
    let mut poison = jfk.clone();
    poison.extend_from_slice(b"SORI-CRASH-AT:worker_job");
    let files = [
        ("poison.wav".to_string(), poison),
        ("fine-1.wav".to_string(), jfk.clone()),
        ("fine-2.wav".to_string(), jfk),
    ];
    let args = ["--threads-per-worker", "1", "--max-attempts"];
    // Many tries: the first server is stopped (as by kill -9) after the first crash.
    let mut first = Server::start(&model_path("tiny.en"), data.path(), &[&args[..], &["5"]].concat(), &[]);
    let batch_id = first.post_batch(&files);
    let started = std::time::Instant::now();
    loop {
        let batch: Value = reqwest::blocking::get(first.url(&format!("/batch/{batch_id}")))
            .unwrap()
            .json()
            .unwrap();
        if batch["files"][0]["engine_crashes"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no crash: {batch}");
        thread::sleep(Duration::from_millis(20));
    }
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    let second = Server::start(&model_path("tiny.en"), data.path(), &[&args[..], &["2"]].concat(), &[]);
    let batch = second.wait_batch_complete(&batch_id, Duration::from_secs(120));
    let poison = &batch["files"][0];
    assert_eq!(poison["status"], "failed", "{batch}");
    assert_eq!(
        second.readiness().1["worker_restarts"],
        1,
        "the crash before the restart counted: one more was the last try"
    );
    let crashes = poison["engine_crashes"].as_u64().unwrap();
    assert!(crashes >= 2, "{poison}");
    let error = poison["error"].as_str().unwrap();
    assert!(
        error.contains("crashed") && error.contains(&format!("{crashes} tries")),
        "{error}"
    );
    for fine in &batch["files"].as_array().unwrap()[1..] {
        assert_eq!(fine["status"], "done", "{batch}");
        assert_eq!(fine["engine_crashes"], 0, "{fine}");
    }
}
