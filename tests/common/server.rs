//! A real `sori serve` process on a free loopback port, stopped on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running server.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `sori serve` with `model`, extra arguments and environment, and
    /// waits until `/readyz` answers 200.
    pub fn start(model: &Path, data_dir: &Path, args: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sori"));
        command
            .args(["serve", "--model", model.to_str().unwrap(), "--port", &port.to_string()])
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let server = Self {
            child: command.spawn().unwrap(),
            port,
        };
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

    /// `http://127.0.0.1:{port}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// POSTs a file to `/transcribe` with extra headers; returns status and JSON.
    pub fn transcribe(&self, name: &str, bytes: Vec<u8>, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let form = reqwest::blocking::multipart::Form::new().part(
            "file",
            reqwest::blocking::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        let mut request = reqwest::blocking::Client::new()
            .post(self.url("/transcribe"))
            .multipart(form);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.timeout(Duration::from_secs(120)).send().unwrap();
        let status = response.status().as_u16();
        (status, response.json().unwrap())
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
    }
}
