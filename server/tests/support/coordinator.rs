//! Starting and driving `parallax serve` as an operator does, for the process tests and the
//! restart benchmark: the real binary, its flags, its log, its HTTP API.
#![allow(dead_code)] // Each user takes what it needs.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The metrics token every coordinator here is started with: it reads `/v1/health` in full.
pub const METRICS_TOKEN: &str = "process-test-metrics-token";

/// Starts `parallax serve` with `args`/`envs`, plain HTTP, and returns it with the address it
/// logged.
pub fn serve(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let (child, url) = serve_as_is(&[args, &["--tls", "off"]].concat(), envs);
    let addr = url.strip_prefix("http://").expect("plain http").to_string();
    (child, addr)
}

/// Starts `parallax serve` with `args`/`envs` and returns it with the URL it logged.
pub fn serve_as_is(args: &[&str], envs: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(args)
        .args(["--metrics-token", METRICS_TOKEN])
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
            // What went wrong shows with a failing test's output.
            if line.contains(" ERROR parallax") {
                eprintln!("{line}");
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = found.send(rest.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let addr = address
        .recv_timeout(Duration::from_secs(20))
        .expect("parallax logs its address within 20 s");
    (child, addr)
}

/// `parallax account create` as an operator runs it; returns (id, key).
pub fn create_account(data: &std::path::Path) -> (String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["account", "create", "showroom", "--data-dir"])
        .arg(data)
        .output()
        .expect("parallax account create runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {label} in {text}"))
    };
    (field("account id:"), field("account key:"))
}

pub fn stop(mut child: Child) -> std::process::ExitStatus {
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

/// `/v1/health` as an operator reads it: with the pool and the hosts.
pub async fn full_health(addr: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://{addr}/v1/health"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `/metrics` as the operator's scraper reads it.
pub async fn metrics(addr: &str) -> String {
    reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Waits until the coordinator at `addr` reports its standby hosts booted.
pub async fn wait_for_standby(addr: &str) {
    for _ in 0..400 {
        let health = full_health(addr).await;
        let sizes = health["pool"].as_array().cloned().unwrap_or_default();
        if sizes
            .iter()
            .all(|s| s["idle"].as_u64() >= s["standby"].as_u64())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the standby hosts did not boot within 20 s");
}

pub async fn call(
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new()
        .request(method, url)
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

/// Whether the render host process `pid` is registered with the coordinator at `addr`.
pub async fn host_linked(addr: &str, pid: u32) -> bool {
    hosts(addr)
        .await
        .iter()
        .any(|h| h["pid"].as_u64() == Some(u64::from(pid)))
}

/// The pid of the render host that has a device, once its heartbeat says so (10 s at most).
pub async fn host_with_device(addr: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = hosts(addr)
            .await
            .iter()
            .find(|h| h["device"] == true)
            .and_then(|h| h["pid"].as_u64());
        if let Some(pid) = found {
            return pid as u32;
        }
        assert!(Instant::now() < deadline, "no render host reports a device");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (20 s at most) until the render host process `pid` has linked to `addr`.
pub async fn wait_for_host(addr: &str, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !host_linked(addr, pid).await {
        assert!(
            Instant::now() < deadline,
            "render host {pid} did not link again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An access token of `account` from the coordinator at `addr`, for its key.
pub async fn token(addr: &str, account: &str, key: &str) -> String {
    let url = format!("http://{addr}/accounts/{account}/token");
    let (status, token) = call(reqwest::Method::GET, url, &format!("{account}:{key}"), None).await;
    assert_eq!(status, 200, "{token}");
    token["AccessToken"].as_str().unwrap().to_string()
}

/// The registered render hosts `/v1/health` reports.
pub async fn hosts(addr: &str) -> Vec<serde_json::Value> {
    let health = full_health(addr).await;
    health["hosts"].as_array().cloned().unwrap_or_default()
}

/// `parallax account ARGS… --data-dir DATA`, as an operator's script runs it.
pub fn account(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("account")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("parallax account runs")
}

/// Its `--json` answer, which must have succeeded.
pub fn account_json(data: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let output = account(data, &[args, &["--json"]].concat());
    assert!(
        output.status.success(),
        "parallax account {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

/// `parallax host add NAME --json` as an operator runs it, on `data` (and `more`, e.g. a
/// `--database-url`); returns the host's credential.
pub fn add_host(data: &std::path::Path, name: &str, more: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args(["host", "add", name, "--json", "--data-dir"])
        .arg(data)
        .args(more)
        .output()
        .expect("parallax host add runs");
    assert!(
        output.status.success(),
        "parallax host add {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let added: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "parallax host add {name} answered {e}: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    added["credential"]
        .as_str()
        .expect("a credential")
        .to_string()
}

/// `serve`'s arguments for a coordinator on `data` with no render hosts, and `more`.
pub fn without_hosts(data: &str, more: &[&str]) -> Vec<String> {
    let base = [
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        data,
        "--site-root",
        "/nonexistent",
        "--standard",
        "0",
        "--premium",
        "0",
    ];
    base.iter().chain(more).map(|a| a.to_string()).collect()
}

/// `serve`'s flags for a coordinator on `data` with `standard` Standard hosts (one kept warm) and
/// `premium` Premium ones, polling limit off, on a port of its own (`--addr` last: a restart
/// puts the port it got there).
pub fn with_hosts(data: &str, standard: u32, premium: u32) -> Vec<String> {
    let (standard, premium) = (standard.to_string(), premium.to_string());
    [
        "--data-dir",
        data,
        "--standard",
        &standard,
        "--standard-standby",
        "1",
        "--premium",
        &premium,
        "--poll-interval-ms",
        "0",
        "--addr",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

pub fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Sends a pose from `distance` metres and waits for a frame.
pub async fn frame_after_pose(headset: &mut parallax_headset::RenderConnection, distance: f32) {
    use parallax_core::device::Pose;
    use parallax_headset::RenderEvent;

    let pose = Pose {
        id: (distance * 1000.0) as u64,
        position: [0.0, 0.0, distance],
        target: [0.0; 3],
        up: [0.0, 1.0, 0.0],
        fov_y_degrees: 45.0,
        width: 320,
        height: 240,
        views: None,
        coverage: false,
    };
    headset.pose(pose).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline.into(), headset.next())
            .await
            .expect("a frame within 20 s");
        match event.unwrap() {
            RenderEvent::Frame { .. } => return,
            _ => continue,
        }
    }
}
