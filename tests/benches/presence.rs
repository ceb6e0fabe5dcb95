//! What presence costs: N aligned headsets in one space, each saying where its wearer is 15
//! times a second (a head swaying, a pointer), as the headset page does. Measured over the
//! window: what each member receives (presence bytes and messages a second), and the
//! coordinator's CPU. Issue 34.
//!
//! `cargo build --release -p parallax-server && cargo bench -p parallax-tests --bench presence
//! [-- SECONDS N N …]` (default 10 s, 10 and 50 headsets). The server runs as a process of its own
//! (`ws://`, no render hosts); the headsets are tasks of this process, on the same two cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_core::space_protocol::{PRESENCE_HZ, SpaceClientMessage};
use parallax_headset::space::small_messages;
use parallax_headset::{Coordinator, Join, connect_socket, socket_url};
use parallax_tests::{ArrClient, NO_HOSTS, ServeProcess, cpu_time_of, data_dir};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// What all headsets received in the window.
#[derive(Default)]
struct Received {
    bytes: AtomicU64,
    messages: AtomicU64,
    /// Entries (one member's presence each) in those messages.
    entries: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut sizes: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![10, 50];
    }
    println!(
        "{:>9} {:>14} {:>14} {:>16} {:>12}",
        "headsets", "KiB/s each", "messages/s", "others/message", "server CPU"
    );
    for headsets in sizes {
        run(headsets, Duration::from_secs(seconds)).await;
    }
}

async fn run(headsets: usize, window: Duration) {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "bench").await;
    let server = ServeProcess::start(dir.path(), NO_HOSTS).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account.0, &account.1)
        .await
        .unwrap();
    coordinator
        .create_space("bench", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let url = socket_url(&server.url(), "/v1/spaces/bench/ws");
    let received = Arc::new(Received::default());
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..headsets {
        let device = format!("Quest {n}");
        let join = Join {
            device: &device,
            role: Role::Headset,
            code: None,
            render_session: false,
        };
        let member = coordinator.join("bench", &join).await.unwrap();
        let hello = json!({ "type": "hello", "token": coordinator.token, "member": member.token });
        let (url, received, measuring) = (url.clone(), received.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let socket = connect_socket(&url, Some(small_messages()), None)
                .await
                .expect("the server accepts the headset");
            let (mut out, mut incoming) = socket.split();
            out.send(Message::text(hello.to_string())).await.unwrap();
            let reader = tokio::spawn(async move {
                while let Some(Ok(message)) = incoming.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    if text.starts_with(r#"{"type":"presence""#)
                        && measuring.load(Ordering::Relaxed)
                    {
                        received
                            .bytes
                            .fetch_add(text.len() as u64, Ordering::Relaxed);
                        received.messages.fetch_add(1, Ordering::Relaxed);
                        let entries = text.matches(r#""member":"#).count() as u64;
                        received.entries.fetch_add(entries, Ordering::Relaxed);
                    }
                }
            });
            // Each headset's head sways a little, at its own phase; it points ahead.
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1) / PRESENCE_HZ);
            loop {
                tick.tick().await;
                let presence = parallax_tests::swaying_wearer(n, started.elapsed().as_secs_f32());
                let text = SpaceClientMessage::Presence { presence }.to_json();
                if out.send(Message::text(text)).await.is_err() {
                    break;
                }
                if reader.is_finished() {
                    break;
                }
            }
        }));
    }
    // Everyone connected and sending: then the window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_before = cpu_time_of(server.pid()).unwrap_or_default();
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(window).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_time_of(server.pid()).unwrap_or_default() - cpu_before;
    for task in tasks {
        task.abort();
    }
    let per =
        |counter: &AtomicU64| counter.load(Ordering::Relaxed) as f64 / elapsed / headsets as f64;
    let messages = received.messages.load(Ordering::Relaxed).max(1) as f64;
    println!(
        "{headsets:>9} {:>14.1} {:>14.1} {:>16.1} {:>11.0} %",
        per(&received.bytes) / 1024.0,
        per(&received.messages),
        received.entries.load(Ordering::Relaxed) as f64 / messages,
        cpu.as_secs_f64() * 100.0 / elapsed,
    );
    drop(server);
}
