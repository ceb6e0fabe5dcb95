//! Helpers for Parallax's integration tests: a real coordinator on a real port with its own
//! SQLite file, and the few calls a tablet makes.
//!
//! # Layout
//! - this file: [`TestServer`] and [`ServeProcess`] (a coordinator in this process or as the real
//!   binary), [`SignedIn`], [`ArrClient`] and the calls tests share ([`send`], [`upload`],
//!   [`get_json`], [`model_ids`], [`guest_cookie`], [`frame_of`]), [`Proxy`] (a link to cut),
//!   [`within`], [`decode_jpeg`],
//!   [`cpu_time_of`].
//! - `tests/`: one file per user-visible flow, and `layout.rs`: no circles between files.
//! - `benches/`: the benchmarks of `docs/BENCHMARKS.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use parallax_core::device::{HostMessage, Pose};
use parallax_core::space::Role;
use parallax_headset::{
    Coordinator, Membership, Picture, RenderConnection, RenderEvent, Trust, http_client,
};
use parallax_server::config::PoolArgs;
use parallax_server::tls::TlsSetup;
use parallax_server::{AppState, Options};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A coordinator serving on `127.0.0.1:<free port>` until dropped or [`TestServer::stop`]ped.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The authority its certificate chains to, when it serves TLS (`DATA/tls/ca.crt`).
    pub trust: Option<Trust>,
    /// An access token of an account of its own, "test operator": it reads `/v1/health` in full.
    pub operator: String,
    /// Where its database is, for `parallax host add` and `account create`.
    pub data: parallax_server::config::DataDir,
    /// How many remote hosts were added, to name the next.
    remote_hosts: std::sync::atomic::AtomicU32,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a coordinator on the data dir `data_dir` (the database lives there).
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &PoolArgs::default()).await
    }

    /// Starts a coordinator with the given render pool and polling limit.
    pub async fn start_with(data_dir: &Path, pool: &PoolArgs) -> Self {
        let options = Options {
            pool: pool.clone(),
            ..Self::options(data_dir)
        };
        Self::start_with_options(data_dir, &options).await
    }

    /// Default options for a test server on `data_dir`.
    pub fn options(data_dir: &Path) -> Options {
        // Tests exercise the API and sockets; the pages render without the wasm bundle.
        Options::new(data_dir.join("site"))
    }

    pub async fn start_with_options(data_dir: &Path, options: &Options) -> Self {
        let state = AppState::open(data_dir, options)
            .await
            .expect("the coordinator opens its data dir");
        let data = parallax_server::config::DataDir {
            path: data_dir.to_path_buf(),
            database_url: options.database_url.clone(),
        };
        let operator = parallax_server::create_account(&data, "test operator")
            .await
            .expect("an operator's account");
        let trust = match options.tls {
            TlsSetup::Off => None,
            _ => Some(
                Trust::from_file(&data_dir.join("tls/ca.crt"))
                    .expect("the coordinator made its certificate authority"),
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            parallax_server::run(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("the coordinator runs until stopped");
        });
        let mut server = Self {
            addr,
            trust,
            operator: String::new(),
            data,
            remote_hosts: Default::default(),
            stop: Some(stop),
            task: Some(task),
        };
        server.operator = ArrClient::sign_in(&server, &operator.id, &operator.key)
            .await
            .token;
        server.wait_for_standby().await;
        server
    }

    /// Waits until every size has its standby hosts booted, as `/v1/health` reports, so tests
    /// that expect an immediately Ready session do not race the hosts' start-up.
    pub async fn wait_for_standby(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let health: Value = self
                .http()
                .get(format!("{}/v1/health", self.url()))
                .bearer_auth(&self.operator)
                .send()
                .await
                .expect("the coordinator answers")
                .json()
                .await
                .expect("a JSON body");
            let warm = health["pool"].as_array().is_some_and(|sizes| {
                sizes
                    .iter()
                    .all(|s| s["idle"].as_u64() >= s["standby"].as_u64())
            });
            if warm {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "standby hosts did not boot: {health}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new render host's credential (`parallax host add`), named `remote-N`.
    pub async fn host_credential(&self) -> String {
        let n = self
            .remote_hosts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        parallax_server::add_host(&self.data, &format!("remote-{n}"))
            .await
            .expect("a host credential")
    }

    /// A Standard render host as one on another machine runs it (`parallax render-host
    /// --coordinator ws://…`, not started by the coordinator), with a credential of its own,
    /// linked over plain ws: start it with `parallax_host::run`.
    pub async fn remote_host(
        &self,
        target_fps: u32,
        bitrate: Option<u32>,
    ) -> parallax_host::HostConfig {
        parallax_host::HostConfig {
            coordinators: vec![format!("ws://{}/v1/hosts/ws", self.addr)],
            ca: None,
            tls: None,
            size: parallax_core::session::SessionSize::Standard,
            credential: self.host_credential().await,
            host: None,
            listen: "127.0.0.1:0".parse().expect("an address"),
            advertise: None,
            advertise_port: None,
            local: false,
            coordinator_wait: std::time::Duration::from_secs(
                parallax_host::config::DEFAULT_COORDINATOR_WAIT_S,
            ),
            target_fps,
            bitrate,
            mesh_cache_bytes: parallax_host::HostConfig::mib(64),
            gpu_cache_bytes: parallax_host::HostConfig::mib(64),
        }
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` over TLS.
    pub fn url(&self) -> String {
        match self.trust {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// An HTTP client trusting this coordinator's authority, and no other.
    pub fn http(&self) -> reqwest::Client {
        http_client(self.trust.as_ref()).expect("an HTTP client")
    }

    /// Shuts down gracefully and waits until the coordinator has closed its database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within(task)
                .await
                .expect("the coordinator task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fresh data dir.
pub fn data_dir() -> TempDir {
    tempfile::tempdir().expect("a temp dir")
}

/// Awaits `future`, failing the test if it takes more than five seconds.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("answered within 5 s")
}

/// Decodes a JPEG frame, returning (width, height, RGB pixels).
pub fn decode_jpeg(jpeg: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().expect("a decodable JPEG");
    let info = decoder.info().expect("image info");
    (info.width, info.height, pixels)
}

/// An HTTP answer: status, headers, JSON body (`Null` when empty).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The ARR error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A client of the ARR-shaped session API, signed in to one account.
pub struct ArrClient {
    http: reqwest::Client,
    pub base: String,
    pub account: String,
    pub token: String,
}

pub const API_VERSION: &str = "api-version=2021-01-01";

impl ArrClient {
    /// Creates an account in `data_dir` (as `parallax account create` does) before the server
    /// starts on it, and returns its id and key.
    pub async fn create_account(data_dir: &Path, name: &str) -> (String, String) {
        Self::create_account_in(data_dir, None, name).await
    }

    /// The same in the Postgres database at `database_url`, when there is one.
    pub async fn create_account_in(
        data_dir: &Path,
        database_url: Option<&str>,
        name: &str,
    ) -> (String, String) {
        let data = parallax_server::config::DataDir {
            path: data_dir.to_path_buf(),
            database_url: database_url.map(str::to_string),
        };
        let account = parallax_server::create_account(&data, name)
            .await
            .expect("account created");
        (account.id, account.key)
    }

    /// Trades the account key for an access token, as ARR clients do first.
    pub async fn sign_in(server: &TestServer, account: &str, key: &str) -> Self {
        Self::sign_in_with(server.http(), server.url(), account, key).await
    }

    /// Signs in at the plain-HTTP coordinator at `base` (`http://host:port`).
    pub async fn sign_in_at(base: &str, account: &str, key: &str) -> Self {
        Self::sign_in_with(reqwest::Client::new(), base.to_string(), account, key).await
    }

    async fn sign_in_with(http: reqwest::Client, base: String, account: &str, key: &str) -> Self {
        let answer = send(
            http.get(format!("{base}/accounts/{account}/token"))
                .bearer_auth(format!("{account}:{key}")),
        )
        .await;
        assert_eq!(answer.status, 200, "token: {}", answer.body);
        Self {
            http,
            base,
            account: account.to_string(),
            token: answer.body["AccessToken"]
                .as_str()
                .expect("AccessToken")
                .to_string(),
        }
    }

    pub fn session_url(&self, id: &str) -> String {
        format!(
            "{}/accounts/{}/sessions/{id}?{API_VERSION}",
            self.base, self.account
        )
    }

    /// `method url` with this client's token and an optional JSON body.
    pub async fn call(&self, method: reqwest::Method, url: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        send(request).await
    }

    pub async fn put(&self, id: &str, size: &str, minutes: u32) -> Answer {
        let body = json!({ "maxLeaseTimeMinutes": minutes, "size": size });
        self.call(reqwest::Method::PUT, &self.session_url(id), Some(body))
            .await
    }

    pub async fn get(&self, id: &str) -> Answer {
        self.call(reqwest::Method::GET, &self.session_url(id), None)
            .await
    }

    pub async fn patch(&self, id: &str, minutes: u32) -> Answer {
        let body = json!({ "maxLeaseTimeMinutes": minutes });
        self.call(reqwest::Method::PATCH, &self.session_url(id), Some(body))
            .await
    }

    pub async fn stop(&self, id: &str) -> Answer {
        let url = format!(
            "{}/accounts/{}/sessions/{id}/:stop?{API_VERSION}",
            self.base, self.account
        );
        self.call(reqwest::Method::POST, &url, None).await
    }
}

/// Sends `request` and reads the answer.
pub async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = within(request.send())
        .await
        .expect("the coordinator answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("a JSON body")
    };
    Answer {
        status,
        headers,
        body,
    }
}

/// Uploads `files` (name, bytes) to the catalog with `token`.
pub async fn upload(server: &TestServer, token: &str, files: &[(&str, Vec<u8>)]) -> Answer {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    send(
        server
            .http()
            .post(format!("{}/v1/models", server.url()))
            .bearer_auth(token)
            .multipart(form),
    )
    .await
}

/// A TCP proxy the test controls, between a client and the coordinator: [`Proxy::cut`] drops
/// every connection through it at once and refuses new ones for a while, as a network outage
/// would.
pub struct Proxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    down_until: std::sync::Arc<std::sync::Mutex<tokio::time::Instant>>,
    task: JoinHandle<()>,
}

impl Proxy {
    /// Forwards `127.0.0.1:<free port>` to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("a bound address");
        let (cut, cuts) = tokio::sync::watch::channel(0_u64);
        let down_until = std::sync::Arc::new(std::sync::Mutex::new(tokio::time::Instant::now()));
        let down = down_until.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if tokio::time::Instant::now() < *down.lock().expect("not poisoned") {
                    continue; // Dropped: the outage refuses it.
                }
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            down_until,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every connection through the proxy and refuses new ones for `outage`.
    pub fn cut(&self, outage: Duration) {
        *self.down_until.lock().expect("not poisoned") = tokio::time::Instant::now() + outage;
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// CPU time process `pid` has used so far (user + system), from `/proc/PID/stat`.
pub fn cpu_time_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    Some(Duration::from_millis(ticks * 10))
}

/// `parallax serve`'s flags for a coordinator without render hosts: only its spaces are measured.
pub const NO_HOSTS: &[&str] = &[
    "--standard",
    "0",
    "--standard-standby",
    "0",
    "--premium",
    "0",
];

/// The `parallax` binary a benchmark runs: the release build beside it.
pub fn parallax_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    exe.ancestors()
        .skip(1)
        .map(|dir| dir.join("parallax"))
        .find(|p| p.is_file())
        .expect("the parallax binary beside this one: cargo build --release -p parallax-server")
}

/// `parallax serve` as a process of its own (the release binary beside this benchmark's), so a
/// benchmark's clients and the server do not share a runtime, and its memory can be read.
pub struct ServeProcess {
    pub addr: SocketAddr,
    /// Its authority, when it serves TLS (`--tls on`).
    pub trust: Option<Trust>,
    child: tokio::process::Child,
}

impl ServeProcess {
    /// Starts `parallax serve --data-dir DIR --addr 127.0.0.1:<free port>` with `args` (plain
    /// HTTP unless they say `--tls on`) and waits until it answers. Build it first:
    /// `cargo build --release -p parallax-server`.
    pub async fn start(data_dir: &Path, args: &[&str]) -> Self {
        let binary = parallax_binary();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = tokio::process::Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--addr", &addr.to_string()])
            // Plain HTTP unless a benchmark asks for TLS (`--tls on`).
            .args(if args.contains(&"--tls") {
                &[][..]
            } else {
                &["--tls", "off"][..]
            })
            .args(args)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true)
            .spawn()
            .expect("parallax serve starts");
        let tls = args.windows(2).any(|pair| pair == ["--tls", "on"]);
        let mut server = Self {
            addr,
            trust: None,
            child,
        };
        for _ in 0..300 {
            // Its authority is in the data dir once it has started.
            if tls && server.trust.is_none() {
                server.trust = Trust::from_file(&data_dir.join("tls/ca.crt")).ok();
            }
            let health = format!("{}/v1/health", server.url());
            if (server.trust.is_some() || !tls)
                && let Ok(client) = http_client(server.trust.as_ref())
                && client
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("parallax serve did not answer on {addr} within 15 s");
    }

    /// `http://127.0.0.1:PORT`, or `https://localhost:PORT` over TLS.
    pub fn url(&self) -> String {
        match self.trust {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the server runs until dropped")
    }

    /// The server's resident memory in bytes (Linux: `VmRSS` of `/proc/PID/status`).
    pub fn rss_bytes(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }
}

/// A coordinator on a fresh data dir with one account (named `account`) and a Ready Standard
/// render session `session`: the data dir, the server, the signed-in client and the session's
/// `renderUrl`. The pool is polled without delay.
pub async fn ready_session(
    account: &str,
    session: &str,
) -> (TempDir, TestServer, ArrClient, String) {
    let dir = data_dir();
    let (id, key) = ArrClient::create_account(dir.path(), account).await;
    let pool = PoolArgs {
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let server = TestServer::start_with(dir.path(), &pool).await;
    let arr = ArrClient::sign_in(&server, &id, &key).await;
    let answer = arr.put(session, "Standard", 30).await;
    let url = answer.body["renderUrl"]
        .as_str()
        .expect("a Ready session has a renderUrl")
        .to_string();
    (dir, server, arr, url)
}

/// Loads `model` on the render connection at `url` and returns one frame of it, then says bye
/// and waits for the host to close: the session is free for the next device when this returns
/// (dropping the connection instead left the host to notice later, and a quick next connection
/// could find the session still taken).
///
/// The frame comes in the host's best codec (H.264) and is decoded whatever it is.
pub async fn frame_of(url: &str, model: &str) -> parallax_render::RgbaImage {
    frame_trusting(url, model, None).await
}

/// [`frame_of`] over `wss://`, trusting `trust`.
pub async fn frame_trusting(
    url: &str,
    model: &str,
    trust: Option<&Trust>,
) -> parallax_render::RgbaImage {
    let mut render = within(RenderConnection::connect_trusting(url, trust))
        .await
        .unwrap();
    render.load(model).await.unwrap();
    loop {
        match within(render.next()).await.unwrap() {
            RenderEvent::Frame { picture, .. } => {
                within(render.bye()).await.unwrap();
                return image_of(picture);
            }
            RenderEvent::Message(HostMessage::LoadDone { extent, .. }) => {
                let extent = extent.expect("a loaded model has an extent");
                let pose = Pose::orbit(&extent, 45.0, 30.0, 1.0).pose(1, 320, 240);
                render.pose(pose).await.unwrap();
            }
            RenderEvent::Message(
                HostMessage::LoadFailed { reason, .. }
                | HostMessage::Error {
                    message: reason, ..
                },
            ) => panic!("the render host refused: {reason}"),
            RenderEvent::Message(_) => {}
            RenderEvent::Skipped { reason, .. } => panic!("a frame did not decode: {reason}"),
        }
    }
}

/// A frame's picture as RGBA, whichever codec it came in.
pub fn image_of(picture: Picture) -> parallax_render::RgbaImage {
    match picture {
        Picture::Jpeg(jpeg) => {
            let (width, height, rgb) = decode_jpeg(&jpeg);
            parallax_render::RgbaImage {
                width: u32::from(width),
                height: u32::from(height),
                pixels: rgb
                    .chunks_exact(3)
                    .flat_map(|p| [p[0], p[1], p[2], 255])
                    .collect(),
            }
        }
        Picture::Rgba {
            width,
            height,
            pixels,
        } => parallax_render::RgbaImage {
            width,
            height,
            pixels,
        },
        Picture::H264(_) => panic!("an undecoded H.264 frame: the connection decodes by default"),
    }
}

/// A coordinator on a fresh data dir (its standby hosts booted) with one account, signed in
/// through the client library: how most space tests begin.
pub struct SignedIn {
    pub dir: TempDir,
    pub server: TestServer,
    /// The account's id and key.
    pub account: (String, String),
    pub coordinator: Coordinator,
}

impl SignedIn {
    pub async fn start() -> Self {
        Self::start_with(&PoolArgs::default()).await
    }

    pub async fn start_with(pool: &PoolArgs) -> Self {
        Self::start_with_tls(pool, TlsSetup::Off).await
    }

    /// Over HTTPS, with the coordinator's own authority for `localhost` and `127.0.0.1`
    /// (`dir/tls/ca.crt`); the client trusts it.
    pub async fn start_https() -> Self {
        let tls = TlsSetup::local(&["localhost", "127.0.0.1"]);
        Self::start_with_tls(&PoolArgs::default(), tls).await
    }

    async fn start_with_tls(pool: &PoolArgs, tls: TlsSetup) -> Self {
        let dir = data_dir();
        let account = ArrClient::create_account(dir.path(), "showroom").await;
        let options = Options {
            pool: pool.clone(),
            tls,
            ..TestServer::options(dir.path())
        };
        let server = TestServer::start_with_options(dir.path(), &options).await;
        let coordinator = Coordinator::sign_in_trusting(
            &server.url(),
            &account.0,
            &account.1,
            server.trust.clone(),
        )
        .await
        .expect("the account signs in");
        Self {
            dir,
            server,
            account,
            coordinator,
        }
    }

    /// Creates `space` from `template`; a tablet named "tablet" is its first member.
    pub async fn space(&self, space: &str, template: &str) -> Membership {
        self.coordinator
            .create_space(space, template, json!({}), "tablet", Role::Tablet)
            .await
            .expect("the space is created")
    }
}

/// `GET path` on `server` with a bearer token; the JSON answer.
/// `GET path` on `server` without credentials (a public route); the JSON answer.
pub async fn get_public_json(server: &TestServer, path: &str) -> Value {
    json_of(get(server, path)).await
}

pub async fn get_json(server: &TestServer, path: &str, token: &str) -> Value {
    json_of(get(server, path).bearer_auth(token)).await
}

/// `GET path` on `server` as the browser holding `cookie` (`parallax_session=…`); the JSON answer.
pub async fn get_json_with_cookie(server: &TestServer, path: &str, cookie: &str) -> Value {
    json_of(get(server, path).header("cookie", cookie)).await
}

fn get(server: &TestServer, path: &str) -> reqwest::RequestBuilder {
    server.http().get(format!("{}{path}", server.url()))
}

async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request
        .send()
        .await
        .expect("the coordinator answers")
        .json()
        .await
        .expect("a JSON body")
}

/// A browser that follows no redirects (to see what each answer says) and trusts `server`'s
/// authority, as one that has installed it does.
pub fn browser(server: &TestServer) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
    if let Some(trust) = &server.trust {
        builder = builder.use_preconfigured_tls((*trust.config).clone());
    }
    builder.build().expect("a browser")
}

/// Signs `browser` in to `server` with the account's key, as the sign-in form posts it; `headers`
/// go with it (a proxy's, say). The answer, with the session cookie in `set-cookie`.
pub async fn browser_sign_in(
    browser: &reqwest::Client,
    server: &TestServer,
    (account, key): (&str, &str),
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = browser
        .post(format!("{}/v1/browser/sign-in", server.url()))
        .form(&[("account", account), ("key", key)]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("the coordinator answers")
}

/// Joins the space whose join code is `code` as a guest tablet, as a browser does; returns the
/// guest's cookie (`parallax_session=…`), which reaches only that space.
pub async fn guest_cookie(server: &TestServer, code: &str) -> String {
    let joined = server
        .http()
        .post(format!("{}/v1/browser/join", server.url()))
        .json(&json!({ "code": code, "device": "guest tablet", "role": "tablet" }))
        .send()
        .await
        .expect("the coordinator answers");
    assert_eq!(joined.status(), 201, "the guest joins");
    joined.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("a cookie's value")
        .to_string()
}

/// The ids of the models `token` sees in the catalog.
pub async fn model_ids(server: &TestServer, token: &str) -> Vec<String> {
    let list = get_json(server, "/v1/models", token).await;
    list["models"]
        .as_array()
        .expect("a list of models")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_string())
        .collect()
}

/// Wearer `n` of a bench's row, `t` seconds in: standing 30 cm from the next, its head swaying a
/// little at its own phase, pointing ahead (presence as the headset page sends it).
pub fn swaying_wearer(n: usize, t: f32) -> parallax_core::space_protocol::Presence {
    let (x, t) = (n as f32 * 0.3 - 5.0, t + n as f32);
    parallax_core::space_protocol::Presence {
        head: [x, 1.6 + 0.02 * t.sin(), 1.0],
        orientation: [0.0, 0.0, 0.0, 1.0],
        ray: Some([[x + 0.2, 1.2, 0.8], [0.0, 0.0, -1.0]]),
    }
}
