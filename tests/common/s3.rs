//! A real S3-compatible server for a test: moto's server (`make test-tools`
//! installs it in `.venv-s3`) on a free loopback port, with one bucket, and a
//! TCP relay in front of it that a test can switch off (connections refused,
//! open ones cut) and on again, keeping what the bucket holds. Stopped on drop.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::server::free_port;

/// The bucket every test server uses, and the prefix its objects are under.
pub const BUCKET: &str = "sori-test";
pub const PREFIX: &str = "files";

/// A running S3 server and the relay Sori reaches it through.
pub struct S3 {
    child: Child,
    /// moto's own port (the test reads the bucket here, past the relay).
    port: u16,
    relay: Relay,
}

impl S3 {
    /// Starts moto's server and creates the bucket.
    pub fn start() -> Self {
        let program = super::repo_root().join(".venv-s3/bin/moto_server");
        assert!(
            program.exists(),
            "no {} (make test-tools installs moto's server)",
            program.display()
        );
        let port = free_port();
        let child = Command::new(program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s3 = Self {
            child,
            port,
            relay: Relay::start(port),
        };
        let started = Instant::now();
        loop {
            if let Ok(r) = reqwest::blocking::Client::new().put(s3.url(BUCKET)).send() {
                assert!(r.status().is_success(), "creating the bucket: {}", r.status());
                return s3;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto's server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The environment that makes a `sori serve` keep its files in the bucket.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SORI_STORAGE_URL", format!("s3://{BUCKET}/{PREFIX}")),
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.relay.port)),
            ("AWS_ACCESS_KEY_ID", "sori-test-key".into()),
            ("AWS_SECRET_ACCESS_KEY", "sori-test-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The object `name` (under the prefix), if it exists.
    pub fn get(&self, name: &str) -> Option<Vec<u8>> {
        let path = ObjectPath::from(format!("{PREFIX}/{name}"));
        self.call(|store| async move {
            match store.get(&path).await {
                Ok(got) => Some(got.bytes().await.unwrap().to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("reading {path}: {e}"),
            }
        })
    }

    /// Writes the object `name` (under the prefix).
    pub fn put(&self, name: &str, bytes: &[u8]) {
        let (path, bytes) = (ObjectPath::from(format!("{PREFIX}/{name}")), bytes.to_vec());
        self.call(|store| async move { store.put(&path, bytes.into()).await.unwrap() });
    }

    /// The names of the objects directly in `folder` ("" for the prefix's top).
    pub fn names(&self, folder: &str) -> Vec<String> {
        let dir = ObjectPath::from(format!("{PREFIX}/{folder}"));
        self.call(|store| async move {
            let listed = store.list_with_delimiter(Some(&dir)).await.unwrap();
            listed
                .objects
                .iter()
                .map(|meta| meta.location.filename().unwrap().to_string())
                .collect()
        })
    }

    /// Runs `call` on a client of the bucket that talks to the server
    /// directly (past the relay).
    fn call<F: std::future::Future>(&self, call: impl FnOnce(Arc<dyn ObjectStore>) -> F) -> F::Output {
        let store = AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_bucket_name(BUCKET)
            .with_region("us-east-1")
            .with_access_key_id("sori-test-key")
            .with_secret_access_key("sori-test-secret")
            .build()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(call(Arc::new(store)))
    }

    /// Cuts Sori off the bucket: new connections are refused, open ones cut.
    pub fn go_away(&self) {
        self.relay.set_open(false);
    }

    /// Lets Sori reach the bucket again (its objects are all still there).
    pub fn come_back(&self) {
        self.relay.set_open(true);
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        self.relay.stop();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays connections on its port to the server's; while closed, its port
/// refuses connections.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    stopped: Arc<AtomicBool>,
    /// Both ends of every relayed connection, to cut them when it closes.
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(to: u16) -> Self {
        let relay = Self {
            port: free_port(),
            open: Arc::new(AtomicBool::new(true)),
            stopped: Arc::new(AtomicBool::new(false)),
            streams: Arc::default(),
        };
        let (port, open, stopped, streams) = (
            relay.port,
            relay.open.clone(),
            relay.stopped.clone(),
            relay.streams.clone(),
        );
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                if !open.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
                listener.set_nonblocking(true).unwrap();
                while open.load(Ordering::SeqCst) && !stopped.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => relay_one(client, to, &streams),
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                // Closed: the port refuses, and what was open is cut.
                drop(listener);
                for stream in streams.lock().unwrap().drain(..) {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        });
        relay
    }

    fn set_open(&self, open: bool) {
        self.open.store(open, Ordering::SeqCst);
        // Give the relay's loop time to close or bind its port.
        std::thread::sleep(Duration::from_millis(100));
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }
}

fn relay_one(client: TcpStream, to: u16, streams: &Mutex<Vec<TcpStream>>) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
        return;
    };
    let mut all = streams.lock().unwrap();
    all.push(client.try_clone().unwrap());
    all.push(server.try_clone().unwrap());
    for (mut from, mut into) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || into.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = into.shutdown(Shutdown::Write);
        });
    }
}
