//! `parallax-headset` as a person runs it against a real coordinator: `join` follows the space
//! and writes frames, resumes after the network drops, and leaves the space on Ctrl-C; `load
//! --json` prints one JSON report.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parallax_tests::{Proxy, SignedIn};

fn headset(url: &str, account: &(String, String), args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_parallax-headset"));
    command
        .args(args)
        .args(["--server", url])
        .env("PARALLAX_ACCOUNT", &account.0)
        .env("PARALLAX_KEY", &account.1)
        .env("RUST_LOG", "warn");
    command
}

/// The lines a running process prints, as they come.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout piped");
    let (send, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// Waits for a printed line containing `text`; panics with what was printed otherwise.
fn wait_for_line(lines: &mpsc::Receiver<String>, text: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(text);
                seen.push(line);
                if found {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!(
        "no line with {text:?} within 60 s; printed:\n{}",
        seen.join("\n")
    );
}

fn frames_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jpg" || x == "png"))
                .collect()
        })
        .unwrap_or_default()
}

/// The size of a written frame (PNG decoded from H.264, or JPEG), from its header alone: a
/// frame may be half written.
fn frame_size(path: &std::path::Path) -> Option<(u32, u32)> {
    let bytes = std::fs::read(path).ok()?;
    if path.extension().is_some_and(|x| x == "png") {
        let reader = png::Decoder::new(std::io::Cursor::new(bytes))
            .read_info()
            .ok()?;
        let info = reader.info();
        return Some((info.width, info.height));
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes.as_slice());
    decoder.read_info().ok()?;
    decoder
        .info()
        .map(|info| (u32::from(info.width), u32::from(info.height)))
}

/// Starts `parallax-headset join` with `args`, writing frames into `frames`; returns the process
/// and the lines it prints.
fn join(
    url: &str,
    account: &(String, String),
    args: &[&str],
    frames: &std::path::Path,
) -> (Running, mpsc::Receiver<String>) {
    let child = headset(url, account, &[&["join"], args].concat())
        .arg("--frames")
        .arg(frames)
        .stdout(Stdio::piped())
        .spawn()
        .expect("parallax-headset starts");
    let mut child = Running(child);
    let lines = lines_of(&mut child.0);
    (child, lines)
}

/// Kills the process if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_writes_frames_of_what_the_space_shows_resumes_and_leaves_on_ctrl_c() {
    let signed_in = SignedIn::start().await;
    let tablet = signed_in.space("cli", "default").await;
    tablet.select("gear").await.unwrap();
    // The headset reaches the coordinator through a proxy the test can cut.
    let proxy = Proxy::start(signed_in.server.addr).await;
    let frames = tempfile::tempdir().unwrap();
    let (mut child, lines) = join(
        &proxy.url(),
        &signed_in.account,
        &[
            "--space",
            "cli",
            "--device",
            "cli-headset",
            "--width",
            "320",
            "--height",
            "240",
        ],
        frames.path(),
    );
    let mut seen = Vec::new();

    wait_for_line(&lines, "frames come as H.264", &mut seen);
    wait_for_line(&lines, "loaded gear", &mut seen);
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames_in(frames.path()).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "fewer than 3 frames written in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Decoded from H.264 and written as PNG.
    let first = &frames_in(frames.path())[0];
    assert!(first.extension().is_some_and(|x| x == "png"), "{first:?}");
    assert_eq!(
        frame_size(first),
        Some((320, 240)),
        "frames of the size asked for"
    );

    // The network drops; the headset resumes by itself and follows the next selection.
    proxy.cut(Duration::from_millis(300));
    wait_for_line(&lines, "resuming", &mut seen);
    wait_for_line(&lines, "resumed at sequence", &mut seen);
    tablet.select("bracket").await.unwrap();
    wait_for_line(&lines, "loaded bracket", &mut seen);

    // Ctrl-C: it leaves the space, which then has only the tablet.
    kill(Pid::from_raw(child.0.id() as i32), Signal::SIGINT).unwrap();
    wait_for_line(&lines, "left space cli", &mut seen);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
    let space = tablet.space().await.unwrap();
    let members: Vec<&str> = space["members"]
        .as_array()
        .unwrap_or_else(|| panic!("members in {space}"))
        .iter()
        .filter_map(|m| m["device"].as_str())
        .collect();
    assert_eq!(members, ["tablet"], "{space}");
}

/// Against an https coordinator, the command line trusts only the authority `--ca` names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refuses_an_untrusted_coordinator_and_joins_with_its_ca() {
    let signed_in = SignedIn::start_https().await;
    let tablet = signed_in.space("tls", "default").await;
    tablet.select("gear").await.unwrap();
    let url = signed_in.server.url();
    let args = [
        "join", "--space", "tls", "--width", "160", "--height", "120",
    ];

    let refused = headset(&url, &signed_in.account, &args)
        .output()
        .expect("parallax-headset runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );

    let ca = signed_in.dir.path().join("tls/ca.crt");
    let frames = tempfile::tempdir().unwrap();
    let (_child, lines) = join(
        &url,
        &signed_in.account,
        &[&args[1..], &["--ca", ca.to_str().unwrap()]].concat(),
        frames.path(),
    );
    wait_for_line(&lines, "loaded gear", &mut Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while frames_in(frames.path()).is_empty() {
        assert!(Instant::now() < deadline, "no frame over wss in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_with_json_prints_one_report() {
    let signed_in = SignedIn::start().await;
    let output = headset(
        &signed_in.server.url(),
        &signed_in.account,
        &[
            "load",
            "--space",
            "json",
            "--devices",
            "3",
            "--duration",
            "1s",
            "--every",
            "200ms",
            "--json",
        ],
    )
    .output()
    .expect("parallax-headset runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(report["devices"], 3);
    let selections = report["selections"].as_u64().unwrap();
    assert!(selections >= 3, "{report}");
    assert_eq!(
        report["messages"].as_u64(),
        Some(3 * selections),
        "{report}"
    );
    assert_eq!(
        (report["lost"].as_u64(), report["duplicated"].as_u64()),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_with_stereo_writes_both_eyes_side_by_side() {
    let signed_in = SignedIn::start().await;
    let tablet = signed_in.space("stereo", "default").await;
    tablet.select("gear").await.unwrap();
    let frames = tempfile::tempdir().unwrap();
    let (_child, lines) = join(
        &signed_in.server.url(),
        &signed_in.account,
        &[
            "--space", "stereo", "--width", "320", "--height", "240", "--stereo", "--codec", "jpeg",
        ],
        frames.path(),
    );
    let mut seen = Vec::new();
    wait_for_line(&lines, "frames come as JPEG", &mut seen);
    wait_for_line(&lines, "loaded gear", &mut seen);
    // The first frames answer the load (one eye); those of the orbit's poses are stereo.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let wide = frames_in(frames.path()).iter().any(|path| {
            path.extension().is_some_and(|x| x == "jpg") && frame_size(path) == Some((640, 240))
        });
        if wide {
            break;
        }
        assert!(Instant::now() < deadline, "no 640×240 stereo frame in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
