//! Selection-to-frame latency as a headset sees it: a tablet's `PUT /v1/selection` until each
//! connected headset has the new frame, over real loopback sockets, against a coordinator with
//! its own SQLite file.
//!
//! `cargo bench -p parallax-tests --bench selection_to_frame [-- HEADSETS ROUNDS]`

use std::time::{Duration, Instant};

use parallax_headset::{Event, Headset};
use parallax_tests::{TestServer, data_dir};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let headsets: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);

    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    let mut devices = Vec::with_capacity(headsets);
    for i in 0..headsets {
        let mut headset = Headset::connect(&server.url(), &format!("bench-{i}"))
            .await
            .unwrap();
        headset.next_event().await.unwrap(); // the initial, empty selection
        devices.push(headset);
    }

    let models = ["gear", "bracket", "shaft"];
    let mut put_times = Vec::with_capacity(rounds);
    let mut frame_times = Vec::with_capacity(rounds * headsets);
    for round in 0..rounds {
        let started = Instant::now();
        let (status, _) = server.select(models[round % models.len()]).await;
        assert_eq!(status, 200);
        put_times.push(started.elapsed());
        for headset in &mut devices {
            loop {
                if let Event::Frame { .. } = headset.next_event().await.unwrap() {
                    frame_times.push(started.elapsed());
                    break;
                }
            }
        }
    }

    println!("{headsets} headsets, {rounds} selections, frames 1280x720 JPEG q80");
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>8}",
        "", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    report("PUT /v1/selection answered", &mut put_times);
    report("frame at every headset", &mut frame_times);
    server.stop().await;
}

fn report(name: &str, times: &mut [Duration]) {
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!(
        "{name:<28} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
        at(0.5),
        at(0.95),
        at(0.99),
        at(1.0)
    );
}
