//! A throwaway Postgres server for tests: a cluster of Debian's `postgresql` started in a
//! temporary folder (a Unix socket inside it, no TCP port, stopped when dropped), or the server
//! `PARALLAX_TEST_DATABASE_URL` names. Each test gets databases of its own in it.
#![allow(dead_code)] // Each user takes what it needs.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Postgres server for one test: its own cluster, or the one `PARALLAX_TEST_DATABASE_URL`
/// names.
pub struct PostgresServer {
    /// The cluster started here (stopped when dropped), and its folder.
    cluster: Option<(Child, tempfile::TempDir)>,
    /// How its server is started (again), and the socket it is up when it has made.
    launch: Option<(Command, PathBuf)>,
    /// The maintenance database's URL.
    url: String,
    /// The TCP port it listens on over TLS, when started with a certificate.
    tls_port: Option<u16>,
}

impl PostgresServer {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("PARALLAX_TEST_DATABASE_URL") {
            return Self {
                cluster: None,
                launch: None,
                url,
                tls_port: None,
            };
        }
        Self::start_cluster(None)
    }

    /// Its own cluster, which also serves TLS on a loopback port with this certificate chain
    /// and key (PEM).
    pub fn start_with_tls(cert: &str, key: &str) -> Self {
        Self::start_cluster(Some((cert, key)))
    }

    /// `postgres://…` of `database` over TCP, for a server started with TLS; `params` follow `?`.
    pub fn tls_url(&self, database: &str, params: &str) -> String {
        let port = self.tls_port.expect("started with TLS");
        format!("postgres://parallax@localhost:{port}/{database}?{params}")
    }

    fn start_cluster(tls: Option<(&str, &str)>) -> Self {
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
        let mut settings = vec!["fsync=off".to_string(), "max_connections=200".to_string()];
        let port = match tls {
            Some((cert, key)) => {
                // Postgres reads its key only if nobody else may.
                use std::os::unix::fs::PermissionsExt;
                let (cert_file, key_file) = (data.join("server.crt"), data.join("server.key"));
                std::fs::write(&cert_file, cert).unwrap();
                std::fs::write(&key_file, key).unwrap();
                std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600))
                    .unwrap();
                if let Some(user) = &user {
                    for file in [&cert_file, &key_file] {
                        std::os::unix::fs::chown(
                            file,
                            Some(user.uid.as_raw()),
                            Some(user.gid.as_raw()),
                        )
                        .unwrap();
                    }
                }
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                settings.extend([
                    "listen_addresses=127.0.0.1".to_string(),
                    "ssl=on".to_string(),
                    format!("port={port}"),
                ]);
                Some(port)
            }
            None => {
                settings.push("listen_addresses=".to_string());
                None
            }
        };
        let mut postgres = command("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let socket = dir
            .path()
            .join(format!(".s.PGSQL.{}", port.unwrap_or(5432)));
        let child = launch(&mut postgres, &socket);
        let url = format!(
            "postgres://parallax@localhost{}/postgres?host={}",
            port.map(|p| format!(":{p}")).unwrap_or_default(),
            dir.path().display()
        );
        Self {
            cluster: Some((child, dir)),
            launch: Some((postgres, socket)),
            url,
            tls_port: port,
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

impl PostgresServer {
    /// Stops the server (a fast shutdown: sessions are cut); its cluster stays.
    pub fn stop(&mut self) {
        if let Some((child, _)) = &mut self.cluster {
            // SIGINT: Postgres' fast shutdown.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same cluster and socket.
    pub fn start_again(&mut self) {
        let (postgres, socket) = self.launch.as_mut().expect("a cluster started here");
        let (running, _) = self.cluster.as_mut().expect("a cluster started here");
        *running = launch(postgres, socket);
    }
}

/// Starts `postgres` and waits until it has made `socket`.
fn launch(postgres: &mut Command, socket: &std::path::Path) -> Child {
    let child = postgres.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(Instant::now() < deadline, "postgres did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
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
        panic!("no Postgres server is installed: scripts/setup.sh installs Debian's postgresql")
    })
}
