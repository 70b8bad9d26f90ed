//! A private PostgreSQL server for a test: Debian's binaries, a new cluster in
//! a temporary folder, a Unix socket there and no TCP; stopped on drop.

use std::path::PathBuf;
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
/// private PostgreSQL cluster (stopped when this is dropped).
pub enum Database {
    Sqlite,
    Postgres(Postgres),
}

impl Database {
    /// A new private PostgreSQL cluster.
    pub fn postgres() -> Self {
        Self::Postgres(Postgres::start())
    }

    /// `--database-url`, if any.
    pub fn url(&self) -> Option<String> {
        match self {
            Self::Sqlite => None,
            Self::Postgres(pg) => Some(pg.url.clone()),
        }
    }

    /// Runs `sql` on the batch database of a server whose data dir is `data_dir`.
    pub fn execute(&self, data_dir: &std::path::Path, sql: &str) {
        match self {
            Self::Sqlite => {
                rusqlite::Connection::open(data_dir.join("sori.db"))
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Self::Postgres(pg) => pg.psql(sql),
        }
    }

    /// The environment that gives a `sori serve` this database.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        self.url().map(|url| ("SORI_DATABASE_URL", url)).into_iter().collect()
    }
}

/// Runs each named test, a function of a [`Database`], on SQLite and on
/// PostgreSQL: `on_each_database!(sync: [a, b], async: [c])` makes
/// `on_sqlite::a`, `on_postgres::a` and so on; attributes before a name
/// (`#[cfg(...)]`) go on both.
#[macro_export]
macro_rules! on_each_database {
    (sync: [$($(#[$sync_meta:meta])* $sync:ident),* $(,)?], async: [$($(#[$async_meta:meta])* $async:ident),* $(,)?] $(,)?) => {
        $crate::on_each_database!(@module on_sqlite, $crate::common::postgres::Database::Sqlite,
            [$($(#[$sync_meta])* $sync),*], [$($(#[$async_meta])* $async),*]);
        $crate::on_each_database!(@module on_postgres, $crate::common::postgres::Database::postgres(),
            [$($(#[$sync_meta])* $sync),*], [$($(#[$async_meta])* $async),*]);
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
