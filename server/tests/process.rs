//! `parallax serve` as an operator runs it: a real process, its flags and environment, the data
//! dir it creates, and a clean exit on SIGTERM.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

#[path = "support/coordinator.rs"]
mod coordinator;
use coordinator::*;

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

/// What an operator gets from `parallax serve` with no TLS flags: HTTPS with a certificate from
/// an authority made in the data dir, render host processes linked to it over wss (verifying
/// it), render URLs on wss, and frames over them; killed and started again, the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_speaks_https_by_default_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let (child, url) = serve_as_is(
        &[
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--standard",
            "1",
            "--premium",
            "0",
        ],
        &[],
    );
    let child = KillOnDrop(Some(child));
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let trust = parallax_headset::Trust::from_file(&data.join("tls/ca.crt")).unwrap();
    let (render_url, client, session_url, token) =
        ready_session(&url, &account, &key, &trust).await;
    let render_url = render_url.as_str();
    assert!(render_url.starts_with("wss://127.0.0.1:"), "{render_url}");
    let mut render = parallax_headset::RenderConnection::connect_trusting(render_url, Some(&trust))
        .await
        .expect("the host process serves wss with a certificate of the authority");
    render.load("gear").await.unwrap();
    let mut loaded = None;
    let frame = loop {
        match render.next().await.unwrap() {
            parallax_headset::RenderEvent::Frame { picture, .. } => break picture,
            parallax_headset::RenderEvent::Message(
                parallax_core::device::HostMessage::LoadDone { extent, .. },
            ) => {
                let extent = extent.unwrap();
                let pose =
                    parallax_core::device::Pose::orbit(&extent, 30.0, 20.0, 1.0).pose(1, 160, 120);
                render.pose(pose).await.unwrap();
                loaded = Some(extent);
            }
            _ => {}
        }
    };
    // The host process encodes H.264 (the library's first choice) and the frame decodes.
    assert_eq!(render.codec(), parallax_core::device::Codec::H264);
    assert!(
        matches!(
            frame,
            parallax_headset::Picture::Rgba {
                width: 160,
                height: 120,
                ..
            }
        ),
        "a decoded 160x120 picture"
    );

    // Killed and started again on its address: the host process links again over wss (verifying
    // the same authority), the session is Ready throughout, the device keeps its frames.
    let mut killed = child.take();
    killed.kill().unwrap();
    killed.wait().unwrap();
    let addr = url.trim_start_matches("https://").to_string();
    let (child, again) = serve_as_is(
        &[
            "--addr",
            &addr,
            "--data-dir",
            data.to_str().unwrap(),
            "--standard",
            "1",
            "--premium",
            "0",
            "--poll-interval-ms",
            "0",
        ],
        &[],
    );
    let child = KillOnDrop(Some(child));
    assert_eq!(again, url);
    let read = || async {
        client
            .get(&session_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let session = read().await;
        assert_eq!(session["status"], "Ready", "{session}");
        let host_of = |url: &str| url.split("?ticket=").next().unwrap_or_default().to_string();
        if host_of(session["renderUrl"].as_str().unwrap_or_default()) == host_of(render_url) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the host did not link again: {session}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pose =
        parallax_core::device::Pose::orbit(&loaded.unwrap(), 60.0, 20.0, 1.0).pose(2, 160, 120);
    render.pose(pose).await.unwrap();
    while !matches!(
        render.next().await.unwrap(),
        parallax_headset::RenderEvent::Frame { .. }
    ) {}
    render.bye().await.unwrap();
    assert!(stop(child.take()).success());
}

/// Signs in to the coordinator at `url` trusting `trust`, creates a Standard session and waits
/// until it is Ready: its render URL, and a client, the session's URL and a token to read it.
async fn ready_session(
    url: &str,
    account: &str,
    key: &str,
    trust: &parallax_headset::Trust,
) -> (String, reqwest::Client, String, String) {
    let coordinator =
        parallax_headset::Coordinator::sign_in_trusting(url, account, key, Some(trust.clone()))
            .await
            .expect("the coordinator's certificate verifies against its authority");
    let client = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .use_preconfigured_tls((*trust.config).clone())
        .build()
        .unwrap();
    // The standby host process registers: it linked over wss, verifying the coordinator.
    let session_url = format!("{url}/accounts/{account}/sessions/tls?api-version=2021-01-01");
    let body = serde_json::json!({"maxLeaseTimeMinutes": 5, "size": "Standard"});
    let mut session: serde_json::Value = client
        .put(&session_url)
        .bearer_auth(&coordinator.token)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for _ in 0..600 {
        if session["status"] == "Ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        session = client
            .get(&session_url)
            .bearer_auth(&coordinator.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    }
    let render_url = session["renderUrl"]
        .as_str()
        .expect("Ready with a renderUrl");
    (
        render_url.to_string(),
        client,
        session_url,
        coordinator.token,
    )
}

/// With the operator's certificate (`--tls-cert`), `parallax serve`'s render host processes
/// serve it too: a device that trusts only the operator's authority opens a render connection.
#[tokio::test]
async fn serve_with_the_operators_certificate_gives_it_to_its_host_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let operators = dir.path().join("operators");
    let names = ["localhost", "127.0.0.1"];
    parallax_server::tls::Tls::open(&operators, &parallax_server::tls::TlsSetup::local(&names))
        .unwrap();
    let (cert, key_file) = (
        operators.join("tls/server.crt"),
        operators.join("tls/server.key"),
    );
    let (child, url) = serve_as_is(
        &[
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--standard",
            "1",
            "--premium",
            "0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
        &[],
    );
    let _child = KillOnDrop(Some(child));
    let trust = parallax_headset::Trust::from_file(&operators.join("tls/ca.crt")).unwrap();
    let (render_url, ..) = ready_session(&url, &account, &key, &trust).await;
    parallax_headset::RenderConnection::connect_trusting(&render_url, Some(&trust))
        .await
        .expect("the host process serves the operator's certificate");
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

/// A coordinator with one Standard and one Premium host, killed under three sessions: `live`
/// (Ready, a headset rendering on it), `waiting` (queued behind it) and `done` (stopped).
struct KilledUnderSessions {
    _dir: tempfile::TempDir,
    args: Vec<String>,
    /// The killed coordinator's address.
    addr: String,
    account: String,
    token: String,
    /// The headset's render connection to `live`, opened before the kill.
    headset: parallax_headset::RenderConnection,
    /// The pid of the render host `live` is on: it outlives its coordinator.
    live_host: u32,
    /// The pids of every render host the killed coordinator had (they all outlive it).
    all_hosts: Vec<u32>,
}

impl KilledUnderSessions {
    async fn start(more: &[&str]) -> Self {
        use reqwest::Method;
        use serde_json::json;

        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (account, key) = create_account(&data);
        let mut args = with_hosts(data.to_str().unwrap(), 1, 1);
        args.extend(more.iter().map(|a| a.to_string()));
        let (child, addr) = serve(&as_strs(&args), &[]);
        // Started again on the port it got.
        let at = args.iter().position(|a| a == "--addr").unwrap();
        args[at + 1] = addr.clone();
        wait_for_standby(&addr).await;
        let token = token(&addr, &account, &key).await;
        let session = |id: &str, extra: &str| {
            format!("http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01{extra}")
        };
        let body = |size: &str| Some(json!({"maxLeaseTimeMinutes": 60, "size": size}));
        let (status, live) = call(Method::PUT, session("live", ""), &token, body("Standard")).await;
        assert_eq!((status, live["status"].as_str()), (201, Some("Ready")));
        let (status, waiting) = call(
            Method::PUT,
            session("waiting", "&queue=true"),
            &token,
            body("Standard"),
        )
        .await;
        assert_eq!((status, waiting["queuePosition"].as_u64()), (201, Some(1)));
        call(Method::PUT, session("done", ""), &token, body("Premium")).await;
        let stop_url =
            format!("http://{addr}/accounts/{account}/sessions/done/:stop?api-version=2021-01-01");
        assert_eq!(call(Method::POST, stop_url, &token, None).await.0, 204);

        // A headset renders `live`.
        let (_, live) = call(Method::GET, session("live", ""), &token, None).await;
        let url = live["renderUrl"]
            .as_str()
            .expect("a Ready session has a renderUrl");
        let mut headset = parallax_headset::RenderConnection::connect(url)
            .await
            .unwrap();
        headset.load("gear").await.unwrap();
        frame_after_pose(&mut headset, 1.0).await;
        let live_host = host_with_device(&addr).await;
        let all_hosts = hosts(&addr)
            .await
            .iter()
            .filter_map(|h| h["pid"].as_u64())
            .map(|pid| pid as u32)
            .collect();

        // No shutdown, no flush: the coordinator is killed.
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        Self {
            _dir: dir,
            args,
            addr,
            account,
            token,
            headset,
            live_host,
            all_hosts,
        }
    }

    /// Session `id` as the coordinator at `addr` answers it now.
    async fn read(&self, addr: &str, id: &str) -> (u16, serde_json::Value) {
        call(
            reqwest::Method::GET,
            self.session(addr, id),
            &self.token,
            None,
        )
        .await
    }

    fn session(&self, addr: &str, id: &str) -> String {
        format!(
            "http://{addr}/accounts/{}/sessions/{id}?api-version=2021-01-01",
            self.account
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_coordinator_comes_back_to_its_ready_sessions_and_their_devices_keep_rendering() {
    use reqwest::Method;

    let mut killed = KilledUnderSessions::start(&[]).await;
    // With no coordinator at all, the headset still gets its frames.
    frame_after_pose(&mut killed.headset, 1.5).await;

    // Started again on the same address: the hosts link again, `live` was Ready all along.
    let (child, addr) = serve(&as_strs(&killed.args), &[]);
    let child = KillOnDrop(Some(child));
    assert_eq!(addr, killed.addr);
    let (status, live) = killed.read(&addr, "live").await;
    assert_eq!(
        (status, live["status"].as_str()),
        (200, Some("Ready")),
        "{live}"
    );
    wait_for_host(&addr, killed.live_host).await;
    let (_, live) = killed.read(&addr, "live").await;
    assert_eq!(live["status"], "Ready", "{live}");
    assert!(live["renderUrl"].is_string(), "{live}");
    frame_after_pose(&mut killed.headset, 2.0).await;
    // The coordinator sees the device again.
    let health = full_health(&addr).await;
    assert!(
        health["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["device"] == true),
        "{health}"
    );
    let (_, done) = killed.read(&addr, "done").await;
    assert_eq!(done["status"], "Stopped");
    let (_, waiting) = killed.read(&addr, "waiting").await;
    assert_eq!(waiting["queuePosition"], 1, "{waiting}");

    // Stopping `live` ends the headset's conversation and hands the host to `waiting`.
    let stop_url = format!(
        "http://{addr}/accounts/{}/sessions/live/:stop?api-version=2021-01-01",
        killed.account
    );
    assert_eq!(
        call(Method::POST, stop_url, &killed.token, None).await.0,
        204
    );
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), killed.headset.next()).await {
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => break e,
            Err(_) => panic!("the device was not told its session ended"),
        }
    };
    assert!(
        matches!(ended, parallax_headset::ClientError::SessionEnded(_)),
        "{ended:?}"
    );
    let waiting = wait_for_status(&killed.session(&addr, "waiting"), &killed.token, "Ready").await;
    assert_eq!(waiting["status"], "Ready", "{waiting}");
    assert!(stop(child.take()).success());
    // The host from before the kill was let go with the coordinator that adopted it.
    wait_until_gone(killed.live_host, "the adopted host did not leave").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_whose_host_never_comes_back_is_an_error_never_a_silent_loss() {
    let killed = KilledUnderSessions::start(&["--host-return-grace", "2"]).await;
    // Started again elsewhere: the old host cannot find it.
    let mut args = killed.args.clone();
    let at = args.iter().position(|a| a == "--addr").unwrap();
    args[at + 1] = "127.0.0.1:0".into();
    let (child, addr) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    // The old token is still good: the signing secret lives in the database.
    let (status, live) = killed.read(&addr, "live").await;
    assert_eq!(
        (status, live["status"].as_str()),
        (200, Some("Ready")),
        "{live}"
    );
    let live = wait_for_status(&killed.session(&addr, "live"), &killed.token, "Error").await;
    assert!(
        live["error"]["message"]
            .as_str()
            .unwrap()
            .contains("restarted"),
        "{live}"
    );
    let (_, done) = killed.read(&addr, "done").await;
    assert_eq!(done["status"], "Stopped");
    // The queued session was not forgotten: it gets the restarted pool's host.
    let waiting = wait_for_status(&killed.session(&addr, "waiting"), &killed.token, "Ready").await;
    assert_eq!(waiting["status"], "Ready", "{waiting}");
    assert!(stop(child.take()).success());
    // The old hosts would wait a minute for their coordinator: not in a test.
    for pid in &killed.all_hosts {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGTERM);
    }
}

/// Polls `url` until its session is `status` (20 s at most); returns the last answer.
async fn wait_for_status(url: &str, token: &str, status: &str) -> serde_json::Value {
    let mut last = serde_json::Value::Null;
    for _ in 0..200 {
        last = call(reqwest::Method::GET, url.to_string(), token, None)
            .await
            .1;
        if last["status"] == status {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

/// Waits (10 s at most) until process `pid` has exited; says `what` if it has not.
async fn wait_until_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while kill(Pid::from_raw(pid as i32), None).is_ok() && !is_zombie(pid) {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether process `pid` has exited but not been reaped.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

#[tokio::test]
async fn a_killed_render_host_process_ends_its_session_in_error_and_is_replaced() {
    use reqwest::Method;
    use serde_json::json;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let args = with_hosts(data.to_str().unwrap(), 1, 0);
    let (child, addr) = serve(&as_strs(&args), &[]);
    wait_for_standby(&addr).await;
    let token = token(&addr, &account, &key).await;
    let session =
        |id: &str| format!("http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01");
    let body = Some(json!({"maxLeaseTimeMinutes": 60, "size": "Standard"}));
    let (status, leased) = call(Method::PUT, session("leased"), &token, body.clone()).await;
    assert_eq!((status, leased["status"].as_str()), (201, Some("Ready")));

    // The session's host is a process of its own, and its renderUrl points at that process.
    let before = hosts(&addr).await;
    assert_eq!(before.len(), 1, "{before:?}");
    let host_pid = before[0]["pid"].as_u64().unwrap() as u32;
    assert_ne!(host_pid, child.id());
    let port = leased["handshakePort"].as_u64().unwrap();
    assert!(
        before[0]["endpoint"]
            .as_str()
            .unwrap()
            .ends_with(&format!(":{port}"))
    );
    assert!(
        leased["renderUrl"].as_str().unwrap().starts_with(&format!(
            "ws://127.0.0.1:{port}/v1/render/{account}/leased?ticket="
        )),
        "{leased}"
    );

    kill(Pid::from_raw(host_pid as i32), Signal::SIGKILL).unwrap();
    let killed = Instant::now();
    let errored = loop {
        let (_, now) = call(Method::GET, session("leased"), &token, None).await;
        if now["status"] == "Error" {
            break now;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "still {now} 5 s after the host was killed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(2), "Error only after {took:?}");
    let message = errored["error"]["message"].as_str().unwrap();
    // Whichever the coordinator notices first: the process's exit, or its link dropping.
    assert!(
        message.contains("exited (signal: 9") || message.contains("lost"),
        "{errored}"
    );

    // The pool starts a replacement process, and the next session is Ready on it.
    wait_for_standby(&addr).await;
    let after = hosts(&addr).await;
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0]["id"], before[0]["id"]);
    assert_ne!(after[0]["pid"].as_u64().unwrap() as u32, host_pid);
    let (status, next) = call(Method::PUT, session("next"), &token, body).await;
    assert_eq!(
        (status, next["status"].as_str()),
        (201, Some("Ready")),
        "{next}"
    );

    // A host that hangs (stopped, its socket still open) stops heartbeating and is given up too.
    let hung_pid = after[0]["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(hung_pid), Signal::SIGSTOP).unwrap();
    let hung = Instant::now();
    let errored = loop {
        let (_, now) = call(Method::GET, session("next"), &token, None).await;
        if now["status"] == "Error" {
            break now;
        }
        assert!(
            hung.elapsed() < Duration::from_secs(5),
            "still {now} 5 s after the hang"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = hung.elapsed();
    assert!(took < Duration::from_secs(2), "Error only after {took:?}");
    assert!(
        errored["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no heartbeat"),
        "{errored}"
    );
    assert!(stop(child).success());
    // The hung host was killed, not left behind.
    let gone = Instant::now();
    while kill(Pid::from_raw(hung_pid), None).is_ok() {
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "the hung host is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn render_writes_an_image_of_a_model_file_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("gear.stl");
    std::fs::write(&model, parallax_render::samples::gear().to_binary_stl()).unwrap();
    let render = |view: &str| {
        let output = dir.path().join(format!("gear-{view}.png"));
        let status = Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args([
                "render",
                model.to_str().unwrap(),
                "--output",
                output.to_str().unwrap(),
                "--size",
                "320x240",
                "--view",
                view,
            ])
            .status()
            .unwrap();
        assert!(status.success());
        parallax_render::decode_png(&std::fs::read(&output).unwrap()).expect("a PNG")
    };
    let (top, front) = (render("top"), render("front"));
    assert_eq!((top.width, top.height), (320, 240));
    // The gear is in the picture, and seen from where it was asked: from the top its round face
    // fills the frame, from the front only its rim (a band) does.
    let (top_covered, front_covered) = (top.coverage(), front.coverage());
    assert!(top_covered > 0.2, "top: {top_covered:.3}");
    assert!(front_covered > 0.02, "front: {front_covered:.3}");
    assert!(
        top_covered > front_covered * 1.5,
        "top {top_covered:.3} vs front {front_covered:.3}"
    );
    assert!(
        top.share_differing(&front, 24) > 0.1,
        "two views, two pictures"
    );

    let broken = dir.path().join("broken.glb");
    std::fs::write(&broken, br#"{"asset":{"version":"2.0"}}"#).unwrap();
    let result = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .args([
            "render",
            broken.to_str().unwrap(),
            "--output",
            dir.path().join("x.png").to_str().unwrap(),
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!result.status.success());
    let said = String::from_utf8_lossy(&result.stdout) + String::from_utf8_lossy(&result.stderr);
    assert!(said.contains("not a binary glTF file"), "{said}");
    assert!(!dir.path().join("x.png").exists());
}

/// What `parallax convert` (the child every upload is converted in) writes reaches the disk
/// before it is named: each file is fsynced before its temporary name is renamed to the real one,
/// and its folder after, so a power cut never leaves the catalog pointing at an empty file. Seen
/// with strace, as the kernel sees it.
#[test]
fn converted_files_reach_the_disk_before_they_get_their_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("part.stl"),
        parallax_render::samples::bracket().to_binary_stl(),
    )
    .unwrap();
    let log = dir.path().join("strace.log");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=fsync,fdatasync,rename,renameat,renameat2",
        ])
        .arg("-o")
        .arg(&log)
        .arg(env!("CARGO_BIN_EXE_parallax"))
        .args(["convert", "--folder"])
        .arg(dir.path())
        .args(["--file", "part.stl"])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("strace runs (scripts/setup.sh installs it)");
    assert!(status.success());
    let traced = std::fs::read_to_string(&log).unwrap();
    // The calls in the order the kernel saw them (a call another thread interrupted shows as
    // "unfinished" where it began).
    let calls: Vec<&str> = traced
        .lines()
        .filter(|line| !line.contains("resumed>"))
        .collect();
    let renames: Vec<usize> = (0..calls.len())
        .filter(|&i| calls[i].contains("rename") && calls[i].contains(".partial"))
        .collect();
    assert!(renames.len() >= 3, "mesh, parts and thumbnail: {traced}");
    let is_sync = |line: &str| line.contains("fsync(") || line.contains("fdatasync(");
    for &i in &renames {
        assert!(
            i > 0 && is_sync(calls[i - 1]),
            "not synced before {}: {traced}",
            calls[i]
        );
        assert!(
            calls.get(i + 1).is_some_and(|next| is_sync(next)),
            "its folder not synced after {}: {traced}",
            calls[i]
        );
    }
}

/// `parallax render` reads OBJ and glTF as it reads STL, and draws the `iso` view (the default):
/// the same gear in the three formats covers the same share of the picture, and iso is neither
/// the top nor the front view.
#[test]
fn render_reads_obj_and_gltf_and_draws_the_iso_view() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let gear = parallax_render::samples::gear();
    let corners: Vec<[f32; 3]> = gear.vertices.iter().map(|v| v.position).collect();
    // OBJ: the vertices, then the faces (1-based).
    let mut obj = String::new();
    for [x, y, z] in &corners {
        obj.push_str(&format!("v {x} {y} {z}\n"));
    }
    for t in gear.indices.chunks_exact(3) {
        obj.push_str(&format!("f {} {} {}\n", t[0] + 1, t[1] + 1, t[2] + 1));
    }
    // glTF: one primitive, its buffer inline.
    let positions: Vec<u8> = corners
        .iter()
        .flatten()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let indices: Vec<u8> = gear.indices.iter().flat_map(|i| i.to_le_bytes()).collect();
    let bound = |pick: fn(f32, f32) -> f32| {
        (0..3)
            .map(|axis| corners.iter().map(|c| c[axis]).reduce(pick).unwrap())
            .collect::<Vec<f32>>()
    };
    let buffer = [positions.as_slice(), indices.as_slice()].concat();
    let gltf = serde_json::json!({
        "asset": { "version": "2.0" },
        "scene": 0, "scenes": [{ "nodes": [0] }], "nodes": [{ "mesh": 0 }],
        "meshes": [{ "primitives": [{ "attributes": { "POSITION": 0 }, "indices": 1 }] }],
        "buffers": [{
            "byteLength": buffer.len(),
            "uri": format!("data:application/octet-stream;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(&buffer)),
        }],
        "bufferViews": [
            { "buffer": 0, "byteOffset": 0, "byteLength": positions.len() },
            { "buffer": 0, "byteOffset": positions.len(), "byteLength": indices.len() },
        ],
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": corners.len(), "type": "VEC3",
              "min": bound(f32::min), "max": bound(f32::max) },
            { "bufferView": 1, "componentType": 5125, "count": gear.indices.len(),
              "type": "SCALAR" },
        ],
    });
    std::fs::write(dir.path().join("gear.stl"), gear.to_binary_stl()).unwrap();
    std::fs::write(dir.path().join("gear.obj"), obj).unwrap();
    std::fs::write(dir.path().join("gear.gltf"), gltf.to_string()).unwrap();
    let render = |file: &str, view: Option<&str>| {
        let output = dir
            .path()
            .join(format!("{file}-{}.png", view.unwrap_or("default")));
        let mut command = Command::new(env!("CARGO_BIN_EXE_parallax"));
        command.args([
            "render",
            dir.path().join(file).to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--size",
            "320x240",
        ]);
        if let Some(view) = view {
            command.args(["--view", view]);
        }
        let result = command.output().unwrap();
        assert!(
            result.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&result.stderr)
        );
        parallax_render::decode_png(&std::fs::read(&output).unwrap()).expect("a PNG")
    };
    let stl = render("gear.stl", Some("iso"));
    let (obj, gltf) = (
        render("gear.obj", Some("iso")),
        render("gear.gltf", Some("iso")),
    );
    let covered = stl.coverage();
    assert!(covered > 0.05, "{covered:.3}");
    for (format, picture) in [("OBJ", &obj), ("glTF", &gltf)] {
        let ratio = picture.coverage() / covered;
        assert!(
            (0.9..1.1).contains(&ratio),
            "{format} covers {:.3}, STL {covered:.3}",
            picture.coverage()
        );
    }
    // Iso is the default, and another view than top or front.
    let default = render("gear.stl", None);
    assert!(
        default.share_differing(&stl, 24) < 0.01,
        "iso is the default"
    );
    for view in ["top", "front"] {
        let other = render("gear.stl", Some(view));
        assert!(other.share_differing(&stl, 24) > 0.1, "iso is not {view}");
    }
}

/// `/v1/health` answers 503 once the renderer could not open a GPU adapter (here: it is told to
/// use Direct3D 12, which Linux has not), and says why to the operator.
#[tokio::test]
async fn health_says_503_when_no_gpu_adapter_opens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let (child, addr) = serve(
        &as_strs(&without_hosts(data.to_str().unwrap(), &[])),
        &[("WGPU_BACKEND", "dx12")],
    );
    let _running = KillOnDrop(Some(child));
    let health = |token: Option<&str>| {
        let mut request = reqwest::Client::new().get(format!("http://{addr}/v1/health"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let answer = request.send().await.unwrap();
            (
                answer.status().as_u16(),
                answer.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    // Not opened yet: up.
    assert_eq!(health(None).await.0, 200);
    let uploader = Uploader::sign_in(&addr, &account, &key).await;
    let (status, answer) = uploader
        .upload(
            "bracket.stl",
            parallax_render::samples::bracket().to_binary_stl(),
        )
        .await;
    assert_eq!(status, 500, "{answer}");
    let (status, body) = health(None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("RendererUnavailable"))
    );
    let (status, body) = health(Some(METRICS_TOKEN)).await;
    assert_eq!(status, 503, "{body}");
    let said = body["error"]["message"].as_str().unwrap();
    assert!(said.contains("no GPU adapter"), "{said}");
}

/// A coordinator stopped with `--on-stop keep-hosts` closes its render hosts' links with "service
/// restart" (1012): they wait for the next coordinator. Stopped as usual, with "going away" (1001).
#[tokio::test]
async fn keep_hosts_closes_host_links_with_service_restart() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    for (on_stop, code) in [("keep-hosts", 1012u16), ("stop-hosts", 1001)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let credential = add_host(&data, "remote-a", &[]);
        // Room for one host, none started by the coordinator: the remote one below.
        let (child, addr) = serve(
            &[
                "--addr",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
                "--site-root",
                "/nonexistent",
                "--standard",
                "1",
                "--standard-standby",
                "0",
                "--premium",
                "0",
                "--on-stop",
                on_stop,
            ],
            &[],
        );
        let running = KillOnDrop(Some(child));
        let (mut link, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/hosts/ws"))
            .await
            .unwrap();
        let register = serde_json::json!({
            "type": "register", "credential": credential, "host": "remote-a", "size": "Standard",
            "endpoint": "ws://127.0.0.1:1", "adapter": "none", "pid": 1,
        });
        link.send(Message::text(register.to_string()))
            .await
            .unwrap();
        let registered = tokio::time::timeout(Duration::from_secs(10), link.next())
            .await
            .unwrap();
        assert!(
            matches!(&registered, Some(Ok(Message::Text(text))) if text.contains("registered")),
            "{registered:?}"
        );
        let child = running.take();
        let stopping = std::thread::spawn(move || stop(child));
        let closed = loop {
            match tokio::time::timeout(Duration::from_secs(10), link.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("{on_stop}: the link ended without a close: {other:?}"),
            }
        };
        assert_eq!(closed.map(|f| u16::from(f.code)), Some(code), "{on_stop}");
        assert!(stopping.join().unwrap().success());
    }
}

/// An upload to `parallax serve` is converted by a child process, so the coordinator itself never
/// loads a GPU driver (nor keeps the import's memory); what the child made is what is served: the
/// thumbnail shows the part, the mesh hosts load has its triangles. A file that does not import
/// is refused with the importer's reason and leaves nothing behind.
#[tokio::test]
async fn uploads_are_converted_out_of_process_and_served_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let (child, addr) = serve(&as_strs(&without_hosts(data.to_str().unwrap(), &[])), &[]);
    let running = KillOnDrop(Some(child));
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .get(format!("http://{addr}/accounts/{account}/token"))
        .bearer_auth(format!("{account}:{key}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["AccessToken"].as_str().unwrap().to_string();
    let upload = |name: &str, bytes: Vec<u8>| {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        client
            .post(format!("http://{addr}/v1/models"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };

    let bracket = parallax_render::samples::bracket();
    let answer = upload("bracket.stl", bracket.to_binary_stl())
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let model: serde_json::Value = answer.json().await.unwrap();
    let id = model["id"].as_str().unwrap().to_string();
    assert_eq!(model["triangles"], bracket.triangles());

    // The thumbnail shows the part: many pixels unlike the background's corner.
    let answer = client
        .get(format!("http://{addr}/v1/models/{id}/thumbnail.png"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let image = parallax_render::decode_png(&answer.bytes().await.unwrap()).unwrap();
    let background = &image.pixels[..4];
    let drawn = image
        .pixels
        .chunks_exact(4)
        .filter(|p| p.iter().zip(background).any(|(a, b)| a.abs_diff(*b) > 24))
        .count();
    let share = drawn as f64 / (image.width * image.height) as f64;
    assert!(
        share > 0.05,
        "{:.1} % of the thumbnail drawn",
        share * 100.0
    );

    // A big part's conversion makes its levels of detail once, for every host that draws it:
    // they are in the mesh written beside the upload.
    let dense = parallax_render::samples::dense_shaft(20_000);
    let answer = upload("dense.stl", dense.to_binary_stl()).await.unwrap();
    assert_eq!(answer.status(), 201);
    let dense_id = answer.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let written = std::fs::read_dir(data.join("models"))
        .unwrap()
        .map(|e| e.unwrap().path().join(".parallax-mesh"))
        .filter_map(|path| std::fs::read(path).ok())
        .map(|bytes| parallax_render::Mesh::from_bytes(&bytes).unwrap())
        .find(|mesh| mesh.triangles() == dense.triangles())
        .unwrap_or_else(|| panic!("the mesh of {dense_id} is written"));
    assert!(written.levels.len() >= 2, "{:?}", written.levels);
    assert!(written.level_indices.len() < written.indices.len() / 2);

    // Render hosts load it only for a session of its account they render: a host that renders
    // none is refused, whatever account it names.
    let mesh = client
        .get(format!(
            "http://{addr}/v1/hosts/models/{id}/mesh?account={account}"
        ))
        .bearer_auth(add_host(&data, "idle-gpu", &[]))
        .send()
        .await
        .unwrap();
    assert_eq!(mesh.status(), 403);

    // A broken file: refused with the importer's reason, nothing kept.
    let answer = upload("broken.stl", b"solid nothing\nfacet normal 0 0".to_vec())
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "InvalidModel", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("broken.stl:"),
        "{body}"
    );
    // The refused upload's folder is removed off the request's thread, just after the answer.
    let folders = || -> Vec<String> {
        std::fs::read_dir(data.join("models"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.len() == 32 || name.starts_with('.'))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while folders().len() > 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        folders().len(),
        2,
        "two uploads stored, no leftovers: {:?}",
        folders()
    );

    // The coordinator never opened a GPU: no Vulkan driver in its address space.
    let child = running.take();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", child.id())).unwrap();
    assert!(
        !maps.contains("vulkan"),
        "the coordinator loaded a Vulkan library itself"
    );
    // Nor OpenCascade: only `parallax-step` loads the CAD kernel's libraries.
    assert!(
        !maps.contains("libTKernel"),
        "the coordinator loaded OpenCascade"
    );
    assert!(stop(child).success());
}

/// An upload goes to disk as it arrives: a 200 MiB one raises the coordinator's peak resident
/// memory by less than 32 MiB (it used to hold the whole body, and then a copy of it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mib_upload_streams_to_disk_in_little_memory() {
    const MIB: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let (child, addr) = serve(&as_strs(&without_hosts(data.to_str().unwrap(), &[])), &[]);
    let running = KillOnDrop(Some(child));
    let pid = running.0.as_ref().unwrap().id();
    let uploader = Uploader::sign_in(&addr, &account, &key).await;
    // A STEP file is stored and answered at once (202); its conversion runs later in a child
    // process, whose memory is not the coordinator's.
    let step = |size: usize, seed: u8| {
        let mut bytes = b"ISO-10303-21;\nHEADER;\n/*".to_vec();
        bytes.extend((0..size).map(|i| b'a' + ((i as u8) ^ seed) % 26));
        bytes.extend(b"*/\nENDSEC;\nEND-ISO-10303-21;\n");
        bytes
    };
    // One small upload first: what the first upload sets up once is not what a big one costs.
    let (status, model) = uploader.upload("small.step", step(MIB, 1)).await;
    assert_eq!(status, 202, "{model}");
    let big = step(200 * MIB, 2);
    let before = memory(pid, "VmRSS:");
    // From here on the peak (VmHWM) counts from the present resident size.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let (status, model) = uploader.upload("big.step", big).await;
    assert_eq!(status, 202, "{model}");
    assert_eq!(model["sizeBytes"], 200 * MIB + 53, "{model}");
    let peak = memory(pid, "VmHWM:");
    let grew = peak.saturating_sub(before);
    eprintln!(
        "a 200 MiB upload raised the peak resident memory by {} KiB",
        grew / 1024
    );
    assert!(
        grew < 32 * MIB as u64,
        "the coordinator's peak resident memory grew by {} MiB (from {} MiB)",
        grew / MIB as u64,
        before / MIB as u64
    );
    drop(running);
}

/// A field of `/proc/PID/status` in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Kills the process if a test fails before stopping it.
struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    fn take(mut self) -> Child {
        self.0.take().expect("taken once")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real STEP screw (from Debian's occt-misc) the hostile files below are built around.
fn screw_step() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../render/step/tests/data/screw.step"
    ))
    .unwrap()
}

/// `screw.step` grown into an assembly of `count` more products: see
/// [`parallax_step::synthetic::screw_assembly`].
fn screw_assembly(count: usize, nested: bool) -> Vec<u8> {
    parallax_step::synthetic::screw_assembly(&screw_step(), count, nested)
}

/// A signed-in client of the coordinator at `addr`.
struct Uploader {
    addr: String,
    token: String,
    client: reqwest::Client,
}

impl Uploader {
    async fn sign_in(addr: &str, account: &str, key: &str) -> Self {
        let url = format!("http://{addr}/accounts/{account}/token");
        let (_, token) = call(reqwest::Method::GET, url, &format!("{account}:{key}"), None).await;
        Self {
            addr: addr.to_string(),
            token: token["AccessToken"].as_str().unwrap().to_string(),
            client: reqwest::Client::new(),
        }
    }

    /// Uploads `bytes` as `name`; returns the status and the model.
    async fn upload(&self, name: &str, bytes: Vec<u8>) -> (u16, serde_json::Value) {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
        );
        let answer = self
            .client
            .post(format!("http://{}/v1/models", self.addr))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let url = format!("http://{}{path}", self.addr);
        call(reqwest::Method::GET, url, &self.token, None).await
    }

    /// Uploads `bytes` as `name`, a STEP file whose conversion must fail; returns the reason.
    async fn fails(&self, name: &str, bytes: Vec<u8>) -> String {
        let (status, model) = self.upload(name, bytes).await;
        assert_eq!(
            (status, model["status"].as_str()),
            (202, Some("Converting")),
            "{model}"
        );
        let failed = self.converted(model["id"].as_str().unwrap()).await;
        assert_eq!(failed["status"], "Failed", "{failed}");
        failed["failure"].as_str().unwrap().to_string()
    }

    /// Model `id` once its conversion has ended.
    async fn converted(&self, id: &str) -> serde_json::Value {
        self.converted_watching(id).await.0
    }

    /// Model `id` once its conversion has ended, and the progress it reported meanwhile.
    async fn converted_watching(&self, id: &str) -> (serde_json::Value, Vec<f64>) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = Vec::new();
        loop {
            let (status, model) = self.get(&format!("/v1/models/{id}")).await;
            assert_eq!(status, 200, "{model}");
            if model["status"] != "Converting" {
                return (model, seen);
            }
            seen.extend(model["progress"].as_f64());
            assert!(Instant::now() < deadline, "still converting after 120 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// STEP files convert after their upload has returned, in a child process. One that crashes the
/// CAD kernel, one that would take longer than the time limit and one that would need more than
/// the memory limit each fail with the reason; the coordinator and its render host go on, and
/// the next file converts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_files_that_crash_or_overrun_the_kernel_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let data_arg = data.to_str().unwrap();
    let args = [
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        data_arg,
        "--site-root",
        "/nonexistent",
        "--standard",
        "1",
        "--standard-standby",
        "1",
        "--premium",
        "0",
        "--convert-time-limit",
        "5",
    ];
    let (child, addr) = serve(&args, &[]);
    let running = KillOnDrop(Some(child));
    wait_for_standby(&addr).await;
    let host_before = hosts(&addr).await[0].clone();
    let user = Uploader::sign_in(&addr, &account, &key).await;

    // 5,000 levels of assembly: OpenCascade recurses once a level and overflows its stack.
    let (status, model) = user.upload("deep.step", screw_assembly(5_000, true)).await;
    assert_eq!(
        (status, model["status"].as_str()),
        (202, Some("Converting")),
        "{model}"
    );
    let id = model["id"].as_str().unwrap().to_string();
    let failed = user.converted(&id).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    let reason = failed["failure"].as_str().unwrap();
    assert!(reason.contains("stack overflow"), "{reason}");
    // It stays listed with its reason, and cannot be shown.
    let (status, body) = user.get(&format!("/v1/models/{id}/parts")).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stack overflow")
    );

    // A real file the fuzzer changed a little (tests/fuzz/regressions/import_step): a vertex
    // without its point makes OpenCascade read address 0x18.
    let segv = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fuzz/regressions/import_step/null-vertex-point.step"
    ))
    .unwrap();
    let reason = user.fails("fuzzed.step", segv).await;
    assert!(reason.contains("SIGSEGV"), "{reason}");

    // 20,000 screws side by side: an 11 MB file, 9 million triangles, minutes of work.
    let (status, model) = user
        .upload("rack.step", screw_assembly(20_000, false))
        .await;
    assert_eq!(status, 202, "{model}");
    let started = Instant::now();
    // Meanwhile an STL uploads as quickly as ever: it converts in a lane of its own.
    let bracket = parallax_render::samples::bracket().to_binary_stl();
    let (status, stl) = user.upload("bracket.stl", bracket).await;
    assert_eq!(
        (status, stl["status"].as_str()),
        (201, Some("Ready")),
        "{stl}"
    );
    let (_, rack) = user
        .get(&format!("/v1/models/{}", model["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        rack["status"], "Converting",
        "the STL waited for the rack: {rack}"
    );
    let (failed, progress) = user.converted_watching(model["id"].as_str().unwrap()).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .contains("longer than its limit of 5 s"),
        "{failed}"
    );
    // Meanwhile the catalog said how far OpenCascade had got, and never went back.
    assert!(
        progress.iter().any(|&done| done > 0.0 && done < 1.0),
        "{progress:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
    // OpenCascade ran in a `parallax-step` of its own, under the conversion child, and went
    // with it: none is left reading this coordinator's files.
    let readers = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
            .map(|cmdline| String::from_utf8_lossy(&cmdline).into_owned())
            .filter(|cmdline| cmdline.contains("parallax-step") && cmdline.contains(data_arg))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while readers() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(readers(), 0, "a parallax-step outlived its conversion");

    // The coordinator, its render host and the next conversion carry on.
    assert_eq!(hosts(&addr).await[0]["id"], host_before["id"]);
    assert!(
        kill(
            Pid::from_raw(host_before["pid"].as_u64().unwrap() as i32),
            None
        )
        .is_ok()
    );
    let xt60 = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../render/step/tests/data/AMASS_XT60-F_1x02_P7.2mm_Vertical.step"
    ))
    .unwrap();
    let (status, model) = user.upload("XT60.step", xt60).await;
    assert_eq!(status, 202, "{model}");
    let ready = user.converted(model["id"].as_str().unwrap()).await;
    assert_eq!(ready["status"], "Ready", "{ready}");
    assert_eq!(ready["format"], "STEP");
    assert!(ready["triangles"].as_u64().unwrap() > 1000, "{ready}");
    let (status, parts) = user
        .get(&format!(
            "/v1/models/{}/parts",
            ready["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(parts["parts"][0]["name"], "XT60 female v5", "{parts}");
    assert!(stop(running.take()).success());

    // Under a 128 MiB memory limit, the wide file fails for want of memory, not of time.
    let memory_args = without_hosts(data_arg, &["--convert-memory-limit-mb", "128"]);
    let (child, addr) = serve(&as_strs(&memory_args), &[]);
    let running = KillOnDrop(Some(child));
    let user = Uploader::sign_in(&addr, &account, &key).await;
    let reason = user
        .fails("rack-2.step", screw_assembly(20_001, false))
        .await;
    assert!(reason.contains("memory limit of 128 MiB"), "{reason}");
    assert!(stop(running.take()).success());
}

/// A coordinator killed while it converts takes its conversion child with it, and at its next
/// start converts again what was left `Converting`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversion_cut_short_by_a_kill_runs_again_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let data_arg = data.to_str().unwrap();
    let args = |limit: &str| without_hosts(data_arg, &["--convert-time-limit", limit]);
    let (child, addr) = serve(&as_strs(&args("300")), &[]);
    let running = KillOnDrop(Some(child));
    let user = Uploader::sign_in(&addr, &account, &key).await;
    let (status, model) = user
        .upload("rack.step", screw_assembly(20_000, false))
        .await;
    assert_eq!(status, 202, "{model}");
    let id = model["id"].as_str().unwrap().to_string();
    // Once the child is at work, the coordinator is killed outright.
    let mut coordinator = running.take();
    let deadline = Instant::now() + Duration::from_secs(20);
    let children = loop {
        let children = conversion_children(coordinator.id());
        if !children.is_empty() {
            break children;
        }
        assert!(Instant::now() < deadline, "no conversion child within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    // Its conversion child ends with it rather than running on unwatched (it asked the kernel to
    // be killed with its parent, and its progress pipe breaks).
    let deadline = Instant::now() + Duration::from_secs(10);
    while children.iter().any(|&child| is_conversion(child)) {
        assert!(
            Instant::now() < deadline,
            "the conversion child outlived its coordinator"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Started again (with a short limit, so the test does not wait minutes), it takes the
    // conversion up again; here it ends at the limit, with the reason.
    let (child, addr) = serve(&as_strs(&args("3")), &[]);
    let running = KillOnDrop(Some(child));
    let user = Uploader::sign_in(&addr, &account, &key).await;
    let (status, model) = user.get(&format!("/v1/models/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(model["status"], "Converting", "{model}");
    let failed = user.converted(&id).await;
    assert_eq!(failed["status"], "Failed", "{failed}");
    assert!(
        failed["failure"].as_str().unwrap().contains("limit of 3 s"),
        "{failed}"
    );
    assert!(stop(running.take()).success());
}

/// Whether process `pid` is a `parallax convert`.
fn is_conversion(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
        cmdline
            .split(|&b| b == 0)
            .nth(1)
            .is_some_and(|command| command == b"convert")
    })
}

/// The `parallax convert` children of process `parent`.
fn conversion_children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|status| status.contains(&format!("PPid:\t{parent}\n")))
                && is_conversion(pid)
        })
        .collect()
}

#[tokio::test]
async fn operators_create_list_rotate_and_revoke_accounts_while_the_coordinator_runs() {
    use reqwest::Method;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = account_json(&data, &["create", "showroom"]);
    let (id, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    assert_eq!(created["name"], "showroom");
    let other = account_json(&data, &["create", "workshop"]);
    let (child, addr) = serve(&as_strs(&without_hosts(data.to_str().unwrap(), &[])), &[]);
    let child = KillOnDrop(Some(child));
    let token_url = format!("http://{addr}/accounts/{id}/token");
    let token_of = |key: String| {
        let url = token_url.clone();
        let credentials = format!("{id}:{key}");
        async move { call(Method::GET, url, &credentials, None).await }
    };
    let sessions = format!("http://{addr}/accounts/{id}/sessions?api-version=2021-01-01");

    let listed = account_json(&data, &["list"]);
    let names: Vec<_> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["revokedAt"].is_null()))
        .collect();
    assert_eq!(names, [("showroom", true), ("workshop", true)]);
    let text = account(&data, &["list"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("showroom\t"));

    // A new key: the old one stops working at once, a token issued before stays good.
    let (status, before) = token_of(key.clone()).await;
    assert_eq!(status, 200);
    let old_token = before["AccessToken"].as_str().unwrap().to_string();
    let rotated = account_json(&data, &["rotate-key", &id]);
    let new_key = rotated["key"].as_str().unwrap().to_string();
    assert_ne!(new_key, key);
    assert_eq!(token_of(key).await.0, 401);
    let (status, after) = token_of(new_key.clone()).await;
    assert_eq!(status, 200);
    let new_token = after["AccessToken"].as_str().unwrap().to_string();
    assert_eq!(
        call(Method::GET, sessions.clone(), &old_token, None)
            .await
            .0,
        200
    );

    // Revoked: its key and every token stop working on the running coordinator.
    let revoked = account_json(&data, &["revoke", &id]);
    assert_eq!(revoked["alreadyRevoked"], false);
    assert_eq!(token_of(new_key).await.0, 401);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = call(Method::GET, sessions.clone(), &new_token, None).await;
        if status == 401 {
            assert!(body.to_string().contains("revoked"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still works");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(call(Method::GET, sessions, &old_token, None).await.0, 401);
    // The other account is untouched.
    let other_url = format!(
        "http://{addr}/accounts/{}/token",
        other["id"].as_str().unwrap()
    );
    let credentials = format!(
        "{}:{}",
        other["id"].as_str().unwrap(),
        other["key"].as_str().unwrap()
    );
    assert_eq!(
        call(Method::GET, other_url, &credentials, None).await.0,
        200
    );

    let listed = account_json(&data, &["list"]);
    assert!(listed[0]["revokedAt"].is_string(), "{listed}");
    assert!(listed[1]["revokedAt"].is_null(), "{listed}");
    assert_eq!(
        account_json(&data, &["revoke", &id])["alreadyRevoked"],
        true
    );
    // Clear refusals: no key for a revoked account, no such account.
    let refused = account(&data, &["rotate-key", &id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("revoked"));
    let unknown = account(&data, &["revoke", "no-such-account"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("there is no account no-such-account")
    );
    assert!(stop(child.take()).success());
}

#[path = "support/postgres.rs"]
mod postgres;

#[tokio::test]
async fn serve_keeps_its_state_in_postgres_and_one_coordinator_has_a_database_or_data_dir() {
    use reqwest::Method;

    let mut postgres = postgres::PostgresServer::start();
    let url = postgres.new_database("parallax_serve").await;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_str = data.to_str().unwrap();
    // The operator's commands work against the database too.
    let created = account_json(&data, &["create", "showroom", "--database-url", &url]);
    let (id, key) = (
        created["id"].as_str().unwrap().to_string(),
        created["key"].as_str().unwrap().to_string(),
    );
    let args = without_hosts(data_str, &["--database-url", &url]);
    let (child, addr) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    let token = token(&addr, &id, &key).await;
    let (status, space) = call(
        Method::PUT,
        format!("http://{addr}/v1/spaces/lobby"),
        &token,
        Some(serde_json::json!({"device": "tablet", "role": "tablet"})),
    )
    .await;
    assert_eq!(status, 201, "{space}");

    // A second coordinator on the same database is refused, with the reason.
    let second = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(as_strs(&without_hosts(
            dir.path().join("other").to_str().unwrap(),
            &["--database-url", &url, "--tls", "off"],
        )))
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("another coordinator is already serving"),
        "{said}"
    );
    assert!(stop(child.take()).success());

    // Started again, it finds the account and the space in Postgres, not in the data dir.
    assert!(
        !data.join("parallax.db").exists(),
        "no SQLite file was made"
    );
    let (child, addr) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    let (status, lobby) = call(
        Method::GET,
        format!("http://{addr}/v1/spaces/lobby"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{lobby}");
    assert_eq!(lobby["name"], "lobby");

    // Postgres goes away: what needs the store fails with a JSON error, the coordinator stays up,
    // and answers again once Postgres is back.
    let token_url = format!("http://{addr}/accounts/{id}/token");
    let credentials = format!("{id}:{key}");
    postgres.stop();
    let (status, error) = call(Method::GET, token_url.clone(), &credentials, None).await;
    assert_eq!(status, 500, "{error}");
    assert!(error["error"]["message"].is_string(), "{error}");
    postgres.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, answer) = call(Method::GET, token_url.clone(), &credentials, None).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no token once Postgres was back: {answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Its claim on the database is cut and someone else holds it when it tries again (another
    // coordinator, started while Postgres was away): it stops rather than share the database.
    use sqlx::Connection;
    let mut thief = sqlx::PgConnection::connect(&url).await.unwrap();
    let holders = "SELECT pid FROM pg_locks
                   WHERE locktype = 'advisory' AND objid = 1347570776 AND granted";
    // The claim went with Postgres' restart; the coordinator has taken it again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let holder: i32 = loop {
        let held: Vec<i32> = sqlx::query_scalar(holders)
            .fetch_all(&mut thief)
            .await
            .unwrap();
        if let [pid] = held[..] {
            break pid;
        }
        assert!(Instant::now() < deadline, "the claim was not taken again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(holder)
        .execute(&mut thief)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_lock(1347570776)")
        .execute(&mut thief)
        .await
        .unwrap();
    let mut child = child.take();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "it kept serving without its claim"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status}");
}

#[tokio::test]
async fn a_second_coordinator_on_one_sqlite_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let args = without_hosts(data.to_str().unwrap(), &[]);
    let (child, _) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    let second = Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(as_strs(&args))
        .args(["--tls", "off"])
        .output()
        .unwrap();
    assert!(!second.status.success());
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("already using the data dir"), "{said}");
    // Operators' commands still work beside it.
    account_json(&data, &["list"]);
    assert!(stop(child.take()).success());
}

/// A deploy: the coordinator stopped with SIGTERM under `--on-stop keep-hosts` and started again
/// (a new binary, say) keeps every session, and the device its frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_with_keep_hosts_keeps_sessions_and_frames() {
    let mut killed = KilledUnderSessions::start(&["--on-stop", "keep-hosts"]).await;
    // `start` killed it; this one is stopped as a service manager stops it.
    let (child, addr) = serve(&as_strs(&killed.args), &[]);
    let child = KillOnDrop(Some(child));
    // Every host of the killed coordinator links again (the idle one too), so the stops below
    // find them all.
    for pid in &killed.all_hosts {
        wait_for_host(&addr, *pid).await;
    }
    assert!(
        stop(child.take()).success(),
        "SIGTERM ends the coordinator cleanly"
    );
    frame_after_pose(&mut killed.headset, 1.5).await;
    assert!(
        kill(Pid::from_raw(killed.live_host as i32), None).is_ok(),
        "the host outlived the stop"
    );

    // The next coordinator (stopping its hosts this time) takes them back.
    let args: Vec<String> = killed
        .args
        .iter()
        .map(|a| {
            if a == "keep-hosts" {
                "stop-hosts".to_string()
            } else {
                a.clone()
            }
        })
        .collect();
    let (child, addr) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    for pid in &killed.all_hosts {
        wait_for_host(&addr, *pid).await;
    }
    let (_, live) = killed.read(&addr, "live").await;
    assert_eq!(live["status"], "Ready", "{live}");
    frame_after_pose(&mut killed.headset, 2.0).await;
    assert!(stop(child.take()).success());
    wait_until_gone(killed.live_host, "stop-hosts let the host go").await;
}

/// A render host on another machine (`parallax render-host`, not started by the coordinator)
/// keeps the name it was registered under: when its coordinator is killed and comes back, it links
/// again as the same host and its session stays Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_host_keeps_its_session_across_a_coordinator_restart() {
    use reqwest::Method;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    // No local hosts: room for one that offers itself.
    let mut args = with_hosts(data.to_str().unwrap(), 1, 0);
    let at = args.iter().position(|a| a == "--standard-standby").unwrap();
    args[at + 1] = "0".into();
    let (child, addr) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    *args.last_mut().unwrap() = addr.clone();
    let remote = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_parallax"))
            .args([
                "render-host",
                "--size",
                "standard",
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--coordinator", &format!("ws://{addr}")])
            .env("PARALLAX_HOST_CREDENTIAL", add_host(&data, "gpu-0", &[]))
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    while hosts(&addr).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the remote host did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let token = token(&addr, &account, &key).await;
    let session = format!("http://{addr}/accounts/{account}/sessions/far?api-version=2021-01-01");
    let body = serde_json::json!({"maxLeaseTimeMinutes": 30, "size": "Standard"});
    let (status, far) = call(Method::PUT, session.clone(), &token, Some(body)).await;
    assert_eq!(
        (status, far["status"].as_str()),
        (201, Some("Ready")),
        "{far}"
    );
    let mut headset =
        parallax_headset::RenderConnection::connect(far["renderUrl"].as_str().unwrap())
            .await
            .unwrap();
    headset.load("gear").await.unwrap();
    frame_after_pose(&mut headset, 1.0).await;

    let mut killed = child.take();
    killed.kill().unwrap();
    killed.wait().unwrap();
    frame_after_pose(&mut headset, 1.5).await;
    let (child, _) = serve(&as_strs(&args), &[]);
    let child = KillOnDrop(Some(child));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, far) = call(Method::GET, session.clone(), &token, None).await;
        assert_eq!(far["status"], "Ready", "{far}");
        if far["renderUrl"].is_string() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the remote host did not link again: {far}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hosts(&addr).await.len(),
        1,
        "the same host, not a second one"
    );
    frame_after_pose(&mut headset, 2.0).await;
    assert!(stop(child.take()).success());
    drop(remote);
}
