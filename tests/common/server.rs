//! A real `sori serve` process on a free loopback port, stopped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port free now, for peers that cannot report the port they
/// bound (Prometheus), or for a port nothing listens on; Sori itself binds
/// port 0 and says which port it got.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server. Its log is kept in a file and printed when a test fails.
pub struct Server {
    pub child: Child,
    pub port: u16,
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Starts `sori serve` with `model`, extra arguments and environment on a
    /// port the kernel picks (read back from its log, so no other test can
    /// take it first), and waits until `/readyz` answers 200.
    pub fn start(model: &Path, data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let server = Self::spawn(model, data_dir, args, env);
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::blocking::get(server.url("/readyz")) {
                if r.status() == 200 {
                    return server;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts `sori serve` and waits until it listens (not until it is ready).
    pub fn spawn(model: &Path, data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sori"));
        command
            .args(["serve", "--model", model.to_str().unwrap(), "--port", "0"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut server = Self {
            child: command.spawn().unwrap(),
            port: 0,
            log,
        };
        let started = Instant::now();
        while server.port == 0 {
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("the server exited with {status}:\n{}", server.log());
            }
            server.port = server
                .log()
                .lines()
                .find_map(|line| line.split("listening on http://127.0.0.1:").nth(1))
                .and_then(|rest| rest.trim().parse().ok())
                .unwrap_or(0);
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server did not listen:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs a file to `/transcribe` with extra headers; returns status and JSON.
    pub fn transcribe(&self, name: &str, bytes: Vec<u8>, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        post_transcribe(&self.url("/transcribe"), name, bytes, headers)
    }

    /// [`Server::transcribe`] on a thread of its own, for requests that overlap.
    pub fn transcribe_later(&self, name: &str, bytes: Vec<u8>) -> std::thread::JoinHandle<(u16, serde_json::Value)> {
        let (url, name) = (self.url("/transcribe"), name.to_string());
        std::thread::spawn(move || post_transcribe(&url, &name, bytes, &[]))
    }

    /// POSTs `files` (name, bytes) as one batch; returns its id.
    pub fn post_batch(&self, files: &[(String, Vec<u8>)]) -> String {
        let form = files
            .iter()
            .fold(reqwest::blocking::multipart::Form::new(), |form, (name, bytes)| {
                form.part(
                    "file",
                    reqwest::blocking::multipart::Part::bytes(bytes.clone()).file_name(name.clone()),
                )
            });
        let response = self.send_batch(form).unwrap();
        assert_eq!(response.status(), 202);
        let body: serde_json::Value = response.json().unwrap();
        body["batch_id"].as_str().unwrap().to_string()
    }

    /// POSTs `form` to `/batch`; the answer, whatever its status.
    pub fn send_batch(&self, form: reqwest::blocking::multipart::Form) -> reqwest::Result<reqwest::blocking::Response> {
        reqwest::blocking::Client::new()
            .post(self.url("/batch"))
            .multipart(form)
            .send()
    }

    /// Reads `GET /batch/{id}` until the batch is complete, and returns it.
    pub fn wait_batch_complete(&self, id: &str, limit: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let batch: serde_json::Value = reqwest::blocking::get(self.url(&format!("/batch/{id}")))
                .unwrap()
                .json()
                .unwrap();
            if batch["status"] == "complete" {
                return batch;
            }
            assert!(started.elapsed() < limit, "the batch did not complete: {batch}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Follows `GET /batch/{id}/events` to its end on a thread of its own;
    /// the thread gives each event's name and data.
    pub fn follow_events(
        &self,
        id: &str,
        limit: Duration,
    ) -> std::thread::JoinHandle<Vec<(String, serde_json::Value)>> {
        use std::io::BufRead;
        let url = self.url(&format!("/batch/{id}/events"));
        std::thread::spawn(move || {
            let response = reqwest::blocking::Client::new().get(url).timeout(limit).send().unwrap();
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            let mut events = Vec::new();
            let mut name = String::new();
            for line in std::io::BufReader::new(response).lines() {
                let line = line.unwrap();
                if let Some(event) = line.strip_prefix("event: ") {
                    name = event.to_string();
                } else if let Some(data) = line.strip_prefix("data: ") {
                    events.push((name.clone(), serde_json::from_str(data).unwrap()));
                }
            }
            events
        })
    }

    /// `GET /readyz`: its status and body.
    pub fn readiness(&self) -> (u16, serde_json::Value) {
        let response = reqwest::blocking::get(self.url("/readyz")).unwrap();
        (response.status().as_u16(), response.json().unwrap())
    }

    /// The ids of the worker processes the server runs now.
    pub fn worker_pids(&self) -> Vec<u32> {
        pids_in(&self.readiness().1)
    }

    /// Waits until `/readyz` is 200 with none of the worker processes in
    /// `old` (a killed worker was replaced); returns the readiness body.
    pub fn wait_workers_replaced(&self, old: &[u32], limit: Duration) -> serde_json::Value {
        let started = Instant::now();
        loop {
            // The status and the pids of one answer: they describe the same moment.
            let (status, ready) = self.readiness();
            if status == 200 && !pids_in(&ready).iter().any(|pid| old.contains(pid)) {
                return ready;
            }
            assert!(started.elapsed() < limit, "no new worker: {ready}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/metrics` says `busy` workers are running a job.
    pub fn wait_workers_busy(&self, busy: usize, limit: Duration) {
        let started = Instant::now();
        let line = format!("sori_workers_busy {busy}");
        loop {
            let metrics = reqwest::blocking::get(self.url("/metrics")).unwrap().text().unwrap();
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(started.elapsed() < limit, "never {busy} workers busy");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took and whether it exited 0.
    pub fn terminate(mut self) -> (Duration, bool) {
        let started = Instant::now();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (started.elapsed(), status.success());
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- the server's log ---\n{}", self.log());
        }
    }
}

fn post_transcribe(url: &str, name: &str, bytes: Vec<u8>, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let form = reqwest::blocking::multipart::Form::new().part(
        "file",
        reqwest::blocking::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    let mut request = reqwest::blocking::Client::new().post(url).multipart(form);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.timeout(Duration::from_secs(300)).send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap())
}

/// The worker pids of a `/readyz` body.
fn pids_in(ready: &serde_json::Value) -> Vec<u32> {
    ready["worker_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u32)
        .collect()
}
