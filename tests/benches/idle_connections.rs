//! Memory of idle subscribed space connections: `parallax serve` as its own process, N members in
//! `large` spaces of 1,000, each connected to `/v1/spaces/{name}/ws` (hello, welcome) and then
//! idle; the server's resident memory (VmRSS) before and after.
//!
//! `cargo build --release -p parallax-server && cargo bench -p parallax-tests --bench
//! idle_connections [-- CONNECTIONS]` (default 10,000; needs about CONNECTIONS + 100 open files
//! per process: `ulimit -n`).

use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use parallax_core::space::Role;
use parallax_headset::{Coordinator, Join, SpaceConnection, SpaceUpdate};
use parallax_tests::{ArrClient, NO_HOSTS, ServeProcess, data_dir};
use serde_json::json;

const PER_SPACE: usize = 1000;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let connections: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "bench").await;
    let server = ServeProcess::start(dir.path(), NO_HOSTS).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let mib = |bytes: Option<u64>| bytes.unwrap_or_default() as f64 / (1024.0 * 1024.0);
    let rss_before = server.rss_bytes();
    println!("parallax serve started: RSS {:.1} MiB", mib(rss_before));

    let started = Instant::now();
    let spaces = connections.div_ceil(PER_SPACE);
    let mut members = Vec::with_capacity(connections);
    for s in 0..spaces {
        let name = format!("idle-{s}");
        let creator = coordinator
            .create_space(&name, "large", json!({}), "creator", Role::Tablet)
            .await
            .unwrap();
        members.push(creator);
        let in_space = PER_SPACE.min(connections - s * PER_SPACE);
        let joined: Vec<_> = stream::iter(1..in_space)
            .map(|i| {
                let (coordinator, name) = (&coordinator, &name);
                async move {
                    let device = format!("headset-{i}");
                    let join = Join {
                        device: &device,
                        role: Role::Headset,
                        code: None,
                        render_session: false,
                    };
                    coordinator.join(name, &join).await.unwrap()
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        members.extend(joined);
    }
    let rss_joined = server.rss_bytes();
    println!(
        "{} members joined {spaces} spaces in {:.1} s: RSS {:.1} MiB",
        members.len(),
        started.elapsed().as_secs_f64(),
        mib(rss_joined)
    );

    let started = Instant::now();
    let mut sockets: Vec<SpaceConnection> = stream::iter(&members)
        .map(|m| async move { m.connect().await.unwrap() })
        .buffered(64)
        .collect()
        .await;
    println!(
        "{} space connections open (hello + welcome each) in {:.1} s",
        sockets.len(),
        started.elapsed().as_secs_f64()
    );
    for socket in &mut sockets {
        // The welcome's snapshot; nothing else is sent to an idle member of a large space.
        assert!(matches!(socket.next().await, Ok(SpaceUpdate::Snapshot(_))));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = server.rss_bytes();
    println!(
        "{} idle connections: RSS {:.1} MiB ({:.1} KiB a member above the empty server, {:.1} KiB a connection above the members)",
        sockets.len(),
        mib(rss_idle),
        (mib(rss_idle) - mib(rss_before)) * 1024.0 / sockets.len() as f64,
        (mib(rss_idle) - mib(rss_joined)) * 1024.0 / sockets.len() as f64
    );

    // Still live: a selection in the first space reaches its members.
    coordinator
        .write_space("idle-0", &json!({ "selectedModel": "gear" }), None)
        .await
        .unwrap();
    let reached = stream::iter(sockets.iter_mut().take(PER_SPACE.min(connections)))
        .map(|s| s.next_within(Duration::from_secs(30)))
        .buffer_unordered(256)
        .filter(|u| std::future::ready(u.is_ok()))
        .count()
        .await;
    println!("a selection in idle-0 reached {reached} of its members");
}
