//! A private PostgreSQL server for a test: Debian's binaries, a new cluster in
//! a temporary folder, a Unix socket there and no TCP; stopped on drop.

use std::path::{Path, PathBuf};

use super::s3::S3;
use std::process::Command;

/// A running PostgreSQL cluster.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// `host=... port=... user=sori dbname=postgres`, for `--database-url`.
    pub url: String,
}

impl Postgres {
    /// Creates a cluster and starts it (as the `postgres` user when the tests
    /// run as root: PostgreSQL refuses to run as root).
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed (make test-deps installs Debian's postgresql)")
            .map(|e| e.unwrap().path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()
            .expect("a PostgreSQL version with initdb");
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the cluster's folder");
        }
        let port = super::server::free_port();
        let pg = Self {
            url: format!("host={} port={port} user=sori dbname=postgres", dir.path().display()),
            dir,
            bin,
            port,
        };
        let data = pg.data();
        pg.run("initdb", &["-D", &data, "-U", "sori", "--auth=trust", "-E", "UTF8"]);
        pg.start_server();
        pg
    }

    /// Stops the server (open sessions are ended), keeping its data.
    pub fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// Starts the server (again, after [`Postgres::stop`]).
    pub fn start_server(&self) {
        let options = format!(
            "-k {} -p {} -c listen_addresses=''",
            self.dir.path().display(),
            self.port
        );
        let log = self.dir.path().join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Runs `sql` with psql.
    pub fn psql(&self, sql: &str) {
        let port = self.port.to_string();
        let host = self.dir.path().to_string_lossy().into_owned();
        self.run(
            "psql",
            &[
                "-h",
                &host,
                "-p",
                &port,
                "-U",
                "sori",
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Where a test server keeps its batches: SQLite in its data dir, or a
/// private PostgreSQL cluster (stopped when this is dropped); and its files:
/// the data dir, or with PostgreSQL also a bucket of a real S3 server.
pub enum Database {
    Sqlite,
    Postgres(Postgres),
    PostgresAndBucket(Postgres, S3),
}

impl Database {
    /// A new private PostgreSQL cluster.
    pub fn postgres() -> Self {
        Self::Postgres(Postgres::start())
    }

    /// A new private PostgreSQL cluster, and the files in a new S3 server's bucket.
    pub fn postgres_and_bucket() -> Self {
        Self::PostgresAndBucket(Postgres::start(), S3::start())
    }

    /// `--database-url`, if any.
    pub fn url(&self) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Postgres(pg) | Self::PostgresAndBucket(pg, _) => Some(pg.url.clone()),
        }
    }

    /// The bucket the files are kept in, if any.
    pub fn bucket(&self) -> Option<&S3> {
        match self {
            Self::PostgresAndBucket(_, s3) => Some(s3),
            _ => None,
        }
    }

    /// Runs `sql` on the batch database of a server whose data dir is `data_dir`.
    pub fn execute(&self, data_dir: &Path, sql: &str) {
        match self {
            Self::Sqlite => {
                rusqlite::Connection::open(data_dir.join("sori.db"))
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Self::Postgres(pg) | Self::PostgresAndBucket(pg, _) => pg.psql(sql),
        }
    }

    /// The environment that gives a `sori serve` this database (and bucket).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env: Vec<_> = self.url().map(|url| ("SORI_DATABASE_URL", url)).into_iter().collect();
        env.extend(self.bucket().map(S3::env).unwrap_or_default());
        env
    }

    /// The kept file `name` (`{id}.txt`, `uploads/{id}.upload`) of a server
    /// whose data dir is `data_dir`, if it exists.
    pub fn file(&self, data_dir: &Path, name: &str) -> Option<Vec<u8>> {
        match self.bucket() {
            Some(s3) => s3.get(name),
            None => std::fs::read(data_dir.join(name)).ok(),
        }
    }

    /// Writes the kept file `name` of a server whose data dir is `data_dir`.
    pub fn write_file(&self, data_dir: &Path, name: &str, bytes: &[u8]) {
        match self.bucket() {
            Some(s3) => s3.put(name, bytes),
            None => std::fs::write(data_dir.join(name), bytes).unwrap(),
        }
    }

    /// The names of the kept files directly in `folder` ("" or "uploads").
    /// With a bucket, the data dir's own `uploads/` must be empty too: a
    /// file left there is counted as `here/{name}`.
    pub fn file_names(&self, data_dir: &Path, folder: &str) -> Vec<String> {
        let here = |dir: &Path| -> Vec<String> {
            std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .map(|e| e.unwrap())
                        .filter(|e| e.file_type().unwrap().is_file())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        match self.bucket() {
            Some(s3) => {
                let mut names = s3.names(folder);
                if folder == "uploads" {
                    names.extend(here(&data_dir.join("uploads")).into_iter().map(|n| format!("here/{n}")));
                }
                names
            }
            None => here(&data_dir.join(folder)),
        }
    }
}

/// Runs each named test, a function of a [`Database`], on SQLite and on
/// PostgreSQL: `on_each_database!(sync: [a, b], async: [c])` makes
/// `on_sqlite::a`, `on_postgres::a` and so on; attributes before a name
/// (`#[cfg(...)]`) go on each. The sync tests (a real `sori serve`) also run
/// on PostgreSQL with the files in a bucket (`on_postgres_and_bucket::a`).
#[macro_export]
macro_rules! on_each_database {
    (sync: [$($(#[$sync_meta:meta])* $sync:ident),* $(,)?], async: [$($(#[$async_meta:meta])* $async:ident),* $(,)?] $(,)?) => {
        $crate::on_each_database!(@module on_sqlite, $crate::common::postgres::Database::Sqlite,
            [$($(#[$sync_meta])* $sync),*], [$($(#[$async_meta])* $async),*]);
        $crate::on_each_database!(@module on_postgres, $crate::common::postgres::Database::postgres(),
            [$($(#[$sync_meta])* $sync),*], [$($(#[$async_meta])* $async),*]);
        $crate::on_each_database!(@module on_postgres_and_bucket, $crate::common::postgres::Database::postgres_and_bucket(),
            [$($(#[$sync_meta])* $sync),*], []);
    };
    (@module $module:ident, $database:expr, [$($(#[$sync_meta:meta])* $sync:ident),*], [$($(#[$async_meta:meta])* $async:ident),*]) => {
        mod $module {
            $(
                $(#[$sync_meta])*
                #[test]
                fn $sync() {
                    super::$sync($database)
                }
            )*
            $(
                $(#[$async_meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $async() {
                    super::$async($database).await
                }
            )*
        }
    };
}
