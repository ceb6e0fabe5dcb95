//! Broadcast latency of a space: a tablet's selection until each subscribed WebSocket client has
//! it, with N clients on loopback, against Parallax and, in the same run and with the same
//! client code, against a reference broadcast server on Node's `ws` (`benches/reference/`).
//!
//! `cargo bench -p parallax-tests --bench broadcast [-- ROUNDS N N …]` (default 50 rounds, 100
//! and 1000 clients). Needs `node`; installs the reference's one npm package on first use.
//!
//! Parallax: N members of one space (the `large` template above 100), all connected to
//! `/v1/spaces/{name}/ws`; member 0 is a tablet that selects with `PATCH …/properties`, as a
//! tablet does; the clock starts just before that request is sent. Reference: N clients of the
//! Node server; client 0 sends `{"type":"select"}`; the clock starts just before it is sent. Every
//! client acknowledges every event, as Parallax's protocol asks.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_tests::{ArrClient, TestServer, data_dir};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const MODELS: [&str; 2] = ["gear", "shaft"];

/// One received selection: which round (its model), when.
type Receipt = (String, Instant);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50);
    let mut sizes: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![100, 1000];
    }
    let reference = start_reference().await;
    println!("{rounds} selections per run; latency from send to receipt at every client");
    println!(
        "{:<10} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "server", "clients", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for &clients in &sizes {
        let ours = parallax(clients, rounds).await;
        report("parallax", clients, ours);
        let theirs = node(&reference.1, clients, rounds).await;
        report("node ws", clients, theirs);
    }
    drop(reference);
}

/// A subscriber: says `hello`, then reports each selection and acknowledges every event.
async fn subscribe(url: String, hello: Value, receipts: mpsc::UnboundedSender<Receipt>) {
    let (socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the server accepts the client");
    let (mut tx, mut rx) = socket.split();
    tx.send(Message::text(hello.to_string())).await.unwrap();
    let (ready, mut acks) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Some(seq) = acks.recv().await {
            let ack = json!({ "type": "ack", "seq": seq }).to_string();
            if tx.send(Message::text(ack)).await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(message)) = rx.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let at = Instant::now();
        let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
        match value["type"].as_str() {
            Some("welcome") => {
                let _ = receipts.send(("welcome".into(), at));
            }
            Some("event") => {
                if let Some(seq) = value["seq"].as_u64() {
                    let _ = ready.send(seq);
                }
                let event = &value["event"];
                if event["kind"] == "selection"
                    && let Some(model) = event["model"].as_str()
                {
                    let _ = receipts.send((model.to_string(), at));
                }
            }
            _ => {}
        }
    }
}

/// Waits for `count` receipts of `label`; returns their times (other labels are dropped).
async fn gather(
    receipts: &mut mpsc::UnboundedReceiver<Receipt>,
    label: &str,
    count: usize,
) -> Vec<Instant> {
    let mut times = Vec::with_capacity(count);
    while times.len() < count {
        let (got, at) = tokio::time::timeout(Duration::from_secs(30), receipts.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {count} clients got {label}", times.len()))
            .expect("subscribers alive");
        if got == label {
            times.push(at);
        }
    }
    times
}

async fn parallax(clients: usize, rounds: usize) -> Vec<Duration> {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "bench").await;
    let pool = parallax_server::config::PoolArgs {
        standard: 0,
        standard_standby: 0,
        premium: 0,
        premium_standby: 0,
        ..Default::default()
    };
    let server = TestServer::start_with(dir.path(), &pool).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account.0, &account.1)
        .await
        .unwrap();
    let template = if clients > 100 { "large" } else { "default" };
    let tablet = coordinator
        .create_space("bench", template, json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let mut members = vec![tablet.clone()];
    for n in 1..clients {
        members.push(
            coordinator
                .join_space("bench", &format!("client-{n}"), Role::Tablet, None)
                .await
                .unwrap(),
        );
    }
    let url = format!("ws://{}/v1/spaces/bench/ws", server.addr);
    let (receipts, mut heard) = mpsc::unbounded_channel();
    for member in &members {
        let hello = json!({ "type": "hello", "token": coordinator.token, "member": member.token });
        tokio::spawn(subscribe(url.clone(), hello, receipts.clone()));
    }
    gather(&mut heard, "welcome", clients).await;
    // Let the roster taps of everyone connecting settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::with_capacity(rounds * clients);
    for round in 0..rounds {
        // Alternating catalog models: every selection is a real change.
        let model = MODELS[round % 2].to_string();
        let started = Instant::now();
        tablet.select(&model).await.unwrap();
        for at in gather(&mut heard, &model, clients).await {
            latencies.push(at - started);
        }
    }
    server.stop().await;
    latencies
}

async fn node(port: &str, clients: usize, rounds: usize) -> Vec<Duration> {
    let url = format!("ws://127.0.0.1:{port}");
    let (receipts, mut heard) = mpsc::unbounded_channel();
    for _ in 1..clients {
        tokio::spawn(subscribe(
            url.clone(),
            json!({ "type": "hello" }),
            receipts.clone(),
        ));
    }
    // Client 0 publishes and subscribes, as the tablet does.
    let (publisher, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
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
            let _ = own_receipts.send((label, at));
        }
    });
    gather(&mut heard, "welcome", clients).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::with_capacity(rounds * clients);
    for round in 0..rounds {
        let model = MODELS[round % 2].to_string();
        let select = json!({ "type": "select", "model": model }).to_string();
        let started = Instant::now();
        publish.send(Message::text(select)).await.unwrap();
        for at in gather(&mut heard, &model, clients).await {
            latencies.push(at - started);
        }
    }
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

fn report(server: &str, clients: usize, mut times: Vec<Duration>) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{server:<10} {clients:>8} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        at(0.50),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}
