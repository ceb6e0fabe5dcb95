//! `parallax serve` as an operator runs it: a real process, its flags and environment, the data
//! dir it creates, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts `parallax serve` with `args`/`envs` and returns it with the address it logged.
fn serve(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("parallax starts");
    let stdout = child.stdout.take().unwrap();
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = address
        .recv_timeout(Duration::from_secs(20))
        .expect("parallax logs its address within 20 s");
    (child, addr)
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "parallax did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_creates_its_database_answers_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let (child, addr) = serve(
        &[
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        data.join("parallax.db").is_file(),
        "the database is created in the data dir"
    );

    let health: serde_json::Value = reqwest::get(format!("http://{addr}/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    let status = stop(child);
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn serve_reads_its_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("from-env");
    let (child, addr) = serve(
        &[],
        &[
            ("PARALLAX_ADDR", "127.0.0.1:0"),
            ("PARALLAX_DATA_DIR", data.to_str().unwrap()),
        ],
    );
    assert!(addr.starts_with("127.0.0.1:"));
    assert!(data.join("parallax.db").is_file());
    assert!(stop(child).success());
}
