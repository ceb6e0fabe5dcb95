//! A throwaway NATS server for tests: Debian's `nats-server` on a loopback port of its own,
//! stopped when dropped, or the server `PARALLAX_TEST_NATS_URL` names.
#![allow(dead_code)] // Each user takes what it needs.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    pub url: String,
}

impl NatsServer {
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("PARALLAX_TEST_NATS_URL") {
            return Self { child: None, url };
        }
        // A port nobody holds now; nats-server takes it a moment later.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let child = Command::new("nats-server")
            .args(["--addr", "127.0.0.1", "--port", &port.to_string()])
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
            child: Some(child),
            url: format!("nats://127.0.0.1:{port}"),
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
