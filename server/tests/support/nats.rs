//! A throwaway NATS server for tests: Debian's `nats-server` on a loopback port of its own,
//! stopped when dropped, or the server `PARALLAX_TEST_NATS_URL` names. It lets in only the
//! user whose password is in `url`, as a NATS server in production does (replicas refuse one
//! that lets anyone in).
#![allow(dead_code)] // Each user takes what it needs.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    pub url: String,
    /// The password of user `parallax`, when it lets in only that user.
    pub password: Option<String>,
}

impl NatsServer {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("PARALLAX_TEST_NATS_URL") {
            return Self {
                child: None,
                url,
                password: None,
            };
        }
        Self::with_user()
    }

    /// Its own server, letting in one user with a random password (both in `url`).
    pub fn with_user() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // Random enough for a throwaway server (the standard library's hasher keys are random).
        let random = || {
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        };
        let password = format!("{:016x}{:016x}", random(), random());
        let mut server = Self::start_with(&["--user", "parallax", "--pass", &password], "nats");
        server.url = server
            .url
            .replace("nats://", &format!("nats://parallax:{password}@"));
        server.password = Some(password);
        server
    }

    /// Its own server, open to anyone: what replicas refuse without `--nats-insecure`.
    pub fn open() -> Self {
        Self::start_with(&[], "nats")
    }

    /// Its own server, speaking only TLS with this certificate chain and key (PEM files);
    /// `url` is `tls://localhost:PORT`.
    pub fn start_with_tls(cert: &std::path::Path, key: &std::path::Path) -> Self {
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        Self::start_with(&["--tls", "--tlscert", cert, "--tlskey", key], "tls")
    }

    fn start_with(more: &[&str], scheme: &str) -> Self {
        // A port nobody holds now; nats-server takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("nats-server")
            .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
            .args(more)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (scripts/setup.sh installs Debian's nats-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server listens within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            password: None,
            child: Some(child),
            url: match scheme {
                "tls" => format!("tls://localhost:{port}"),
                _ => format!("nats://127.0.0.1:{port}"),
            },
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
