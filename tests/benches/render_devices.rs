//! Aggregate frame rate of 1, 2 and 4 devices, each holding its own render session, rendering the
//! 188k-triangle dense part at 1280x720 over real loopback WebSockets. Each device streams poses
//! at 90 Hz whatever comes back, as a headset's tracking does; the host merges poses that queue up
//! (latest wins), so this counts the frames the hosts can deliver.
//!
//! Then one device again over `wss://` (the coordinator and its hosts on TLS, the device trusting
//! its certificate authority): what TLS costs a render connection's frame rate.
//!
//! `cargo bench -p parallax-tests --bench render_devices [-- SECONDS]`

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parallax_core::device::{Codec, DeviceMessage, Pose};
use parallax_headset::{Trust, connect_socket};
use parallax_render::samples;
use parallax_server::Options;
use parallax_server::config::PoolArgs;
use parallax_server::tls::TlsSetup;
use parallax_tests::{ArrClient, TestServer, data_dir, upload};
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    println!("188k-triangle dense part, 1280x720 JPEG frames, {seconds} s per run");
    println!(
        "{:>8} {:>6} {:>14} {:>16}",
        "devices", "socket", "aggregate fps", "fps per device"
    );
    run(TlsSetup::Off, &[1, 2, 4], seconds).await;
    run(TlsSetup::local(&["localhost", "127.0.0.1"]), &[1], seconds).await;
}

/// Each count of `devices` in turn, on a coordinator with `tls`.
async fn run(tls: TlsSetup, device_counts: &[usize], seconds: u64) {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "bench").await;
    let pool = PoolArgs {
        standard: 4,
        standard_standby: 4,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let options = Options {
        pool,
        tls,
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let socket = if server.trust.is_some() { "wss" } else { "ws" };
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let dense = upload(
        &server,
        &arr.token,
        &[("dense.stl", samples::dense_shaft(188_000).to_binary_stl())],
    )
    .await;
    let model = dense.body["id"].as_str().expect("uploaded").to_string();
    for &devices in device_counts {
        let mut tasks = Vec::new();
        for d in 0..devices {
            let session = arr
                .put(&format!("bench-{devices}-{d}"), "Standard", 30)
                .await;
            let url = session.body["renderUrl"]
                .as_str()
                .expect("Ready")
                .to_string();
            let model = model.clone();
            let trust = server.trust.clone();
            tasks.push(tokio::spawn(async move {
                frames(&url, &model, seconds, trust).await
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.expect("device ran");
        }
        let fps = total as f64 / seconds as f64;
        println!(
            "{devices:>8} {socket:>6} {fps:>14.1} {:>16.1}",
            fps / devices as f64
        );
        for d in 0..devices {
            arr.stop(&format!("bench-{devices}-{d}")).await;
        }
        server.wait_for_standby().await;
    }
    server.stop().await;
}

/// Frames one device receives in `seconds` while it streams poses at 90 Hz.
async fn frames(url: &str, model: &str, seconds: u64, trust: Option<Trust>) -> u64 {
    let socket = connect_socket(url, None, trust.as_ref())
        .await
        .expect("connects");
    let (mut outgoing, mut incoming) = socket.split();
    let send = |m: DeviceMessage| Message::text(m.to_json());
    outgoing
        .send(send(DeviceMessage::Hello {
            codecs: vec![Codec::Jpeg],
        }))
        .await
        .unwrap();
    outgoing
        .send(send(DeviceMessage::LoadModel {
            model: parallax_core::ModelId::new(model),
        }))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tracking = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_micros(11_111));
        for id in 0u64.. {
            tick.tick().await;
            if Instant::now() >= deadline {
                break;
            }
            let angle = id as f32 * 0.02;
            let pose = DeviceMessage::Pose(Pose {
                id,
                position: [150.0 * angle.cos(), 100.0, 150.0 * angle.sin()],
                target: [0.0, 90.0, 0.0],
                up: [0.0, 1.0, 0.0],
                fov_y_degrees: 45.0,
                width: 1280,
                height: 720,
                views: None,
                coverage: false,
            });
            if outgoing.send(send(pose)).await.is_err() {
                break;
            }
        }
        let _ = outgoing.send(send(DeviceMessage::Bye)).await;
    });
    let mut frames = 0;
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout_at(deadline.into(), incoming.next()).await
    {
        if let Message::Binary(_) = message {
            frames += 1;
        }
    }
    tracking.await.expect("tracking ran");
    frames
}
