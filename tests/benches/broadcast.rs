//! Broadcast latency of a space: a tablet's selection until each subscribed WebSocket client has
//! it, with N clients on loopback, against Parallax and, in the same run and with the same
//! client code, against a reference broadcast server on Node's `ws` (`benches/reference/`).
//!
//! `cargo build --release -p parallax-server && cargo bench -p parallax-tests --bench broadcast
//! [-- ROUNDS N N …]` (default 50 rounds, 100 and 1000 clients). Needs `node`; installs the
//! reference's one npm package on first use. Both servers run as processes of their own.
//! Parallax runs twice for each size: plain `ws://` (`--tls off`) and `wss://` (its default),
//! the clients trusting its certificate authority: what TLS costs the broadcast.
//!
//! With `PARALLAX_BENCH_PRESENCE=W`, W of Parallax's members are aligned headsets that say where
//! their wearers are 15 times a second throughout (issue 34: the selection's latency with
//! presence on); then only plain `ws://` Parallax runs (`=0`: the same without presence). Of the
//! tablets, the `PARALLAX_BENCH_MAPS` before the wearers (default 50) show the room map: they get
//! the whole room twice a second; the others show none, and get no presence.
//!
//! Parallax: N members of one space (the `large` template above 100), all connected to
//! `/v1/spaces/{name}/ws`; member 0 is a tablet that selects with `PATCH …/properties`, as a
//! tablet does; the clock starts just before that request is sent. Reference: N clients of the
//! Node server; client 0 sends `{"type":"select"}`; the clock starts just before it is sent. Every
//! client acknowledges every event, as Parallax's protocol asks.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::load::Summary;
use parallax_headset::space::small_messages;
use parallax_headset::{Coordinator, Join, Trust, connect_socket, socket_url};
use parallax_tests::{ArrClient, NO_HOSTS, ServeProcess, cpu_time_of, data_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

const MODELS: [&str; 2] = ["gear", "shaft"];

/// One received selection: which round (its model), when.
type Receipt = (String, Instant);

/// Where every subscriber notes what it received and when. The measuring task is woken once
/// every client has a message, not for each one: a wake-up per message would cost the clients'
/// side of the machine as much as a second socket read.
struct Receipts {
    clients: usize,
    noted: Mutex<Noted>,
    complete: Notify,
}

#[derive(Default)]
struct Noted {
    receipts: Vec<Receipt>,
    counts: HashMap<String, usize>,
}

impl Receipts {
    fn new(clients: usize) -> Arc<Self> {
        Arc::new(Self {
            clients,
            noted: Mutex::default(),
            complete: Notify::new(),
        })
    }

    fn note(&self, label: &str, at: Instant) {
        let mut noted = self.noted.lock().unwrap();
        noted.receipts.push((label.to_string(), at));
        let count = match noted.counts.get_mut(label) {
            Some(count) => count,
            None => noted.counts.entry(label.to_string()).or_default(),
        };
        *count += 1;
        if *count == self.clients {
            self.complete.notify_one();
        }
    }

    /// Waits until every client has `label`; returns their times (other labels are dropped).
    async fn gather(&self, label: &str) -> Vec<Instant> {
        loop {
            {
                let mut noted = self.noted.lock().unwrap();
                if noted.counts.get(label) >= Some(&self.clients) {
                    let receipts = std::mem::take(&mut *noted).receipts;
                    return receipts
                        .into_iter()
                        .filter(|(got, _)| got == label)
                        .map(|(_, at)| at)
                        .collect();
                }
            }
            if tokio::time::timeout(Duration::from_secs(30), self.complete.notified())
                .await
                .is_err()
            {
                let noted = self.noted.lock().unwrap();
                let got = noted.counts.get(label).copied().unwrap_or(0);
                panic!("only {got} of {} clients got {label}", self.clients);
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let mut sizes: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    // Set (0 for the same run without presence): plain Parallax only, with that many wearers.
    let wearers: Option<usize> = std::env::var("PARALLAX_BENCH_PRESENCE")
        .ok()
        .and_then(|w| w.parse().ok());
    if let Some(wearers) = wearers {
        let maps: usize = std::env::var("PARALLAX_BENCH_MAPS")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(50);
        println!(
            "{rounds} selections per run, {wearers} wearers sending presence at 15 Hz, \
             {maps} tablets showing the room map"
        );
        println!(
            "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "server", "clients", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for &clients in &sizes {
            let wearers = wearers.min(clients - 1);
            let maps = maps.min(clients - 1 - wearers);
            let ours = parallax(clients, rounds, (false, wearers, maps)).await;
            report("parallax", clients, ours);
        }
        return;
    }
    let reference = start_reference().await;
    println!("{rounds} selections per run; latency from send to receipt at every client");
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "server", "clients", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for &clients in &sizes {
        let ours = parallax(clients, rounds, (false, 0, 0)).await;
        report("parallax", clients, ours);
        let ours = parallax(clients, rounds, (true, 0, 0)).await;
        report("parallax wss", clients, ours);
        let pid = reference.0.id().expect("the reference server runs");
        let theirs = node(pid, &reference.1, clients, rounds).await;
        report("node ws", clients, theirs);
    }
    drop(reference);
}

/// What a subscriber reads of each message; the rest is skipped unparsed.
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default, borrow)]
    event: Option<IncomingEvent<'a>>,
}

#[derive(serde::Deserialize)]
struct IncomingEvent<'a> {
    #[serde(default)]
    kind: &'a str,
    #[serde(default)]
    model: Option<&'a str>,
}

/// What a subscriber does besides following the space.
#[derive(Clone, Copy)]
enum Kind {
    Plain,
    /// A tablet that shows the room map.
    Map,
    /// Wearer `n`: says where it is, 15 times a second.
    Wearer(usize),
}

/// A subscriber: says `hello`, then reports each selection and acknowledges every event, from
/// one task per client.
async fn subscribe(
    url: String,
    hello: Value,
    receipts: Arc<Receipts>,
    (trust, kind): (Option<Trust>, Kind),
) {
    let socket = connect_socket(&url, Some(small_messages()), trust.as_ref())
        .await
        .expect("the server accepts the client");
    let (out, mut socket) = socket.split();
    let out = Arc::new(tokio::sync::Mutex::new(out));
    out.lock()
        .await
        .send(Message::text(hello.to_string()))
        .await
        .unwrap();
    match kind {
        Kind::Wearer(n) => {
            tokio::spawn(sway(out.clone(), n));
        }
        Kind::Map => {
            let watch = json!({ "type": "watch", "map": true }).to_string();
            out.lock().await.send(Message::text(watch)).await.unwrap();
        }
        Kind::Plain => {}
    }
    while let Some(Ok(message)) = socket.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let at = Instant::now();
        let Ok(incoming) = serde_json::from_str::<Incoming>(text.as_str()) else {
            continue;
        };
        match (incoming.kind, incoming.seq, incoming.event) {
            ("welcome", ..) => {
                receipts.note("welcome", at);
            }
            ("event", Some(seq), event) => {
                if let Some(IncomingEvent {
                    kind: "selection",
                    model: Some(model),
                }) = event
                {
                    receipts.note(model, at);
                }
                let ack = format!(r#"{{"type":"ack","seq":{seq}}}"#);
                if out.lock().await.send(Message::text(ack)).await.is_err() {
                    return;
                }
            }
            _ => {}
        }
    }
}

type Outgoing = futures_util::stream::SplitSink<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Message,
>;

/// Wearer `n`'s head sways a little, at its own phase, and it points ahead: presence at 15 Hz,
/// as the headset page sends it, until the socket closes.
async fn sway(out: Arc<tokio::sync::Mutex<Outgoing>>, n: usize) {
    use parallax_core::space_protocol::{PRESENCE_HZ, SpaceClientMessage};
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1) / PRESENCE_HZ);
    loop {
        tick.tick().await;
        let presence = parallax_tests::swaying_wearer(n, started.elapsed().as_secs_f32());
        let text = SpaceClientMessage::Presence { presence }.to_json();
        if out.lock().await.send(Message::text(text)).await.is_err() {
            return;
        }
    }
}

/// Selections to `clients` members of one space, `rounds` times, over TLS or not; the last
/// `wearers` of them headsets that send presence throughout, the `maps` before them tablets that
/// show the room map.
async fn parallax(
    clients: usize,
    rounds: usize,
    (tls, wearers, maps): (bool, usize, usize),
) -> Vec<Duration> {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "bench").await;
    let tls_flag: &[&str] = if tls { &["--tls", "on"] } else { &[] };
    let server = ServeProcess::start(dir.path(), &[NO_HOSTS, tls_flag].concat()).await;
    let coordinator =
        Coordinator::sign_in_trusting(&server.url(), &account.0, &account.1, server.trust.clone())
            .await
            .unwrap();
    let template = if clients > 100 { "large" } else { "default" };
    let tablet = coordinator
        .create_space("bench", template, json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let mut members = vec![tablet.clone()];
    for n in 1..clients {
        let role = if n >= clients - wearers {
            Role::Headset
        } else {
            Role::Tablet
        };
        let device = format!("client-{n}");
        let join = Join {
            device: &device,
            role,
            code: None,
            render_session: false,
        };
        members.push(coordinator.join("bench", &join).await.unwrap());
    }
    let url = socket_url(&server.url(), "/v1/spaces/bench/ws");
    let receipts = Receipts::new(clients);
    for (n, member) in members.iter().enumerate() {
        let hello = json!({ "type": "hello", "token": coordinator.token, "member": member.token });
        // Wearers numbered from 0, standing 30 cm apart in a row.
        let kind = match n.checked_sub(clients - wearers) {
            Some(wearer) => Kind::Wearer(wearer),
            None if n >= clients - wearers - maps => Kind::Map,
            None => Kind::Plain,
        };
        tokio::spawn(subscribe(
            url.clone(),
            hello,
            receipts.clone(),
            (server.trust.clone(), kind),
        ));
    }
    receipts.gather("welcome").await;
    // Let the roster taps of everyone connecting settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::with_capacity(rounds * clients);
    let mut answered = Vec::with_capacity(rounds);
    let mut firsts = Vec::with_capacity(rounds);
    let cpu = CpuWatch::start(server.pid());
    for round in 0..rounds {
        // Alternating catalog models: every selection is a real change.
        let model = MODELS[round % 2].to_string();
        let started = Instant::now();
        tablet.select(&model).await.unwrap();
        answered.push(started.elapsed());
        let times = receipts.gather(&model).await;
        if let Some(first) = times.iter().min() {
            firsts.push(*first - started);
        }
        for at in times {
            latencies.push(at - started);
        }
    }
    cpu.report(
        if tls {
            "parallax serve (wss)"
        } else {
            "parallax serve"
        },
        clients,
        rounds,
    );
    if let (Some(patch), Some(first)) = (Summary::of(&mut answered), Summary::of(&mut firsts)) {
        eprintln!(
            "the first client had it after p50 {:.2} ms (p95 {:.2}); the tablet's PATCH was answered after p50 {:.2} ms (p95 {:.2})",
            first.p50, first.p95, patch.p50, patch.p95
        );
    }
    drop(server);
    latencies
}

async fn node(server_pid: u32, port: &str, clients: usize, rounds: usize) -> Vec<Duration> {
    let url = format!("ws://127.0.0.1:{port}");
    let receipts = Receipts::new(clients);
    for _ in 1..clients {
        tokio::spawn(subscribe(
            url.clone(),
            json!({ "type": "hello" }),
            receipts.clone(),
            (None, Kind::Plain),
        ));
    }
    // Client 0 publishes and subscribes, as the tablet does.
    let (publisher, _) =
        tokio_tungstenite::connect_async_with_config(&url, Some(small_messages()), true)
            .await
            .unwrap();
    let (mut publish, mut own) = publisher.split();
    publish
        .send(Message::text(json!({ "type": "hello" }).to_string()))
        .await
        .unwrap();
    let own_receipts = receipts.clone();
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(text))) = own.next().await {
            let at = Instant::now();
            let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            let label = match value["type"].as_str() {
                Some("welcome") => "welcome".to_string(),
                _ => value["event"]["model"].as_str().unwrap_or("").to_string(),
            };
            own_receipts.note(&label, at);
        }
    });
    receipts.gather("welcome").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::with_capacity(rounds * clients);
    let cpu = CpuWatch::start(server_pid);
    for round in 0..rounds {
        let model = MODELS[round % 2].to_string();
        let select = json!({ "type": "select", "model": model }).to_string();
        let started = Instant::now();
        publish.send(Message::text(select)).await.unwrap();
        for at in receipts.gather(&model).await {
            latencies.push(at - started);
        }
    }
    cpu.report("node ws", clients, rounds);
    let _ = publish.close().await;
    latencies
}

/// Starts the Node reference server; returns it with its port.
async fn start_reference() -> (tokio::process::Child, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/reference");
    if !dir.join("node_modules/ws").is_dir() {
        let installed = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs");
        assert!(installed.success(), "npm ci for the reference server");
    }
    let mut child = tokio::process::Command::new("node")
        .arg("server.mjs")
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the reference server says where it listens");
        if let Some(port) = line.strip_prefix("listening on ") {
            break port.trim().to_string();
        }
    };
    (child, port)
}

/// CPU time of a server and of this process (the clients) over the measured rounds: on a machine
/// this size both compete for the same cores.
struct CpuWatch {
    server: u32,
    before: (Duration, Duration),
    started: Instant,
}

impl CpuWatch {
    fn start(server: u32) -> Self {
        Self {
            server,
            before: Self::read(server),
            started: Instant::now(),
        }
    }

    fn read(server: u32) -> (Duration, Duration) {
        let of = |pid| cpu_time_of(pid).unwrap_or_default();
        (of(server), of(std::process::id()))
    }

    fn report(&self, name: &str, clients: usize, rounds: usize) {
        let (server, own) = Self::read(self.server);
        let per_round = |d: Duration| d.as_secs_f64() * 1e3 / rounds as f64;
        let wall = self.started.elapsed().as_secs_f64();
        eprintln!(
            "{name}: CPU per selection to {clients} clients: server {:.1} ms ({:.0} % of a core), clients {:.1} ms ({:.0} %)",
            per_round(server - self.before.0),
            (server - self.before.0).as_secs_f64() * 100.0 / wall,
            per_round(own - self.before.1),
            (own - self.before.1).as_secs_f64() * 100.0 / wall,
        );
    }
}

fn report(server: &str, clients: usize, mut times: Vec<Duration>) {
    let s = Summary::of(&mut times).expect("latencies");
    println!(
        "{server:<10} {clients:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        s.p50, s.p95, s.p99, s.max
    );
}
