//! A throwaway Postgres server for tests: a cluster of Debian's `postgresql` started in a
//! temporary folder (a Unix socket inside it, no TCP port, stopped when dropped), or the server
//! `PARALLAX_TEST_DATABASE_URL` names. Each test gets databases of its own in it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Postgres server for one test: its own cluster, or the one `PARALLAX_TEST_DATABASE_URL`
/// names.
pub struct PostgresServer {
    /// The cluster started here (stopped when dropped), and its folder.
    cluster: Option<(Child, tempfile::TempDir)>,
    /// The maintenance database's URL.
    url: String,
}

impl PostgresServer {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("PARALLAX_TEST_DATABASE_URL") {
            return Self { cluster: None, url };
        }
        let bin = server_programs();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Postgres refuses to run as root: as root, the cluster is the `postgres` user's.
        let user = nix::unistd::geteuid().is_root().then(|| {
            nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("a postgres user")
        });
        if let Some(user) = &user {
            std::os::unix::fs::chown(dir.path(), Some(user.uid.as_raw()), Some(user.gid.as_raw()))
                .unwrap();
        }
        let command = |program: &str| {
            let mut command = Command::new(bin.join(program));
            if let Some(user) = &user {
                use std::os::unix::process::CommandExt;
                command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
            }
            command
        };
        let status = command("initdb")
            .args(["--auth=trust", "--username=parallax", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        let child = command("postgres")
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args([
                "-c",
                "listen_addresses=",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = dir.path().join(".s.PGSQL.5432");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            assert!(Instant::now() < deadline, "postgres did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let url = format!(
            "postgres://parallax@localhost/postgres?host={}",
            dir.path().display()
        );
        Self {
            cluster: Some((child, dir)),
            url,
        }
    }

    /// Creates database `name` (dropping one left by an earlier run) and returns its URL.
    pub async fn new_database(&self, name: &str) -> String {
        use sqlx::Connection;

        let mut admin = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while admin.is_none() {
            match sqlx::PgConnection::connect(&self.url).await {
                Ok(connection) => admin = Some(connection),
                Err(e) => {
                    assert!(Instant::now() < deadline, "postgres does not answer: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        let mut admin = admin.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.unwrap();
        self.url.replacen("/postgres", &format!("/{name}"), 1)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some((child, _)) = &mut self.cluster {
            // SIGINT: Postgres' fast shutdown.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
        }
    }
}

/// Where Debian keeps the newest installed Postgres server's programs.
fn server_programs() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let version = path.file_name()?.to_str()?.parse().ok()?;
            let bin = path.join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "no Postgres server is installed: scripts/setup.sh test installs Debian's postgresql"
        )
    })
}
