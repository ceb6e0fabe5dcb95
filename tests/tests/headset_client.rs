//! The native headset client (`parallax-headset`) against a real coordinator: a network outage
//! in the middle of a stream (a TCP proxy the test cuts) and the load generator's own figures.

use std::time::Duration;

use parallax_core::space::Role;
use parallax_core::space_protocol::SpaceEvent;
use parallax_headset::load::{self, LoadConfig};
use parallax_headset::{ClientError, Coordinator, RenderConnection, SpaceConnection, SpaceUpdate};
use parallax_tests::{ArrClient, Proxy, SignedIn, TestServer, data_dir};
use serde_json::json;

const EVENTS: i64 = 60;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_outage_mid_stream_loses_and_repeats_nothing() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let proxy = Proxy::start(server.addr).await;
    let direct = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let tablet = direct
        .create_space("outage", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    // The headset reaches the coordinator only through the proxy.
    let through_proxy = Coordinator::sign_in(&proxy.url(), &account, &key)
        .await
        .unwrap();
    let headset = through_proxy
        .join_space("outage", "headset", Role::Headset, None)
        .await
        .unwrap();
    let mut space = headset.connect().await.unwrap();

    // The tablet writes a stream of events; the network drops a third of the way in, for 300 ms.
    let writer = tokio::spawn(async move {
        for n in 1..=EVENTS {
            tablet
                .write(json!({ "custom": { "n": n } }), None)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    let mut seen = Vec::new();
    let mut seqs = Vec::new();
    let mut drops = 0;
    let mut cut = false;
    while seen.last() != Some(&EVENTS) {
        match tokio::time::timeout(Duration::from_secs(10), space.next())
            .await
            .expect("the stream goes on")
        {
            Ok(SpaceUpdate::Event { seq, event, .. }) => {
                seqs.push(seq);
                if let SpaceEvent::Custom { custom } = event {
                    seen.push(custom["n"].as_i64().unwrap());
                    if seen.len() == 20 && !cut {
                        proxy.cut(Duration::from_millis(300));
                        cut = true;
                    }
                }
            }
            Ok(SpaceUpdate::Snapshot(_) | SpaceUpdate::Presence { .. }) => {}
            Err(e) if SpaceConnection::is_drop(&e) => {
                drops += 1;
                space.resume_within(Duration::from_secs(10)).await.unwrap();
            }
            Err(e) => panic!("the stream failed: {e}"),
        }
    }
    writer.await.unwrap();
    assert_eq!(drops, 1, "the client noticed the outage once");
    assert_eq!(
        seen,
        (1..=EVENTS).collect::<Vec<_>>(),
        "every event once, in order, across the outage"
    );
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive sequence numbers: {seqs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_generator_counts_every_selection_at_every_device() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    server.wait_for_standby().await;
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();

    // 30 devices following, no render sessions.
    let config = LoadConfig {
        space: "load".into(),
        code: None,
        devices: 30,
        render: false,
        duration: Duration::from_millis(1500),
        every: Duration::from_millis(100),
        concurrency: 8,
        pose_rate: 0,
        viewport: (320, 240),
        codecs: parallax_core::device::Codec::PREFERENCE.to_vec(),
        review: false,
    };
    let report = load::run(&coordinator, &config, |_| {}).await.unwrap();
    assert!(report.selections >= 10, "{report:?}");
    assert_eq!(report.messages, 30 * report.selections, "{report:?}");
    assert_eq!((report.lost, report.duplicated), (0, 0));
    let broadcast = report.broadcast_ms.expect("broadcast latencies");
    assert!(broadcast.p50 > 0.0 && broadcast.p50 <= broadcast.max);
    assert_eq!(report.frame_ms, None, "no render connections, no frames");
    // The space it created is gone once everyone left (sessionEmpty 0).
    let gone = coordinator.space("load").await;
    assert!(
        matches!(gone, Err(ClientError::NotFound(_))),
        "not found, not just any error: {gone:?}"
    );

    // Two devices with render sessions: each selection also reaches each device as a frame.
    let config = LoadConfig {
        space: "render".into(),
        devices: 2,
        render: true,
        duration: Duration::from_millis(1500),
        every: Duration::from_millis(500),
        ..config
    };
    let report = load::run(&coordinator, &config, |_| {}).await.unwrap();
    assert!(report.selections >= 3, "{report:?}");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
    assert_eq!(report.frames, 2 * report.selections, "{report:?}");
    assert!(report.frame_ms.unwrap().p50 >= report.broadcast_ms.unwrap().p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_on_a_render_session_gets_session_taken() {
    let signed_in = SignedIn::start().await;
    let coordinator = &signed_in.coordinator;
    signed_in.space("taken", "default").await;
    let headset = coordinator
        .join_space("taken", "headset", Role::Headset, None)
        .await
        .unwrap();
    let url = headset.render_url(Duration::from_secs(10)).await.unwrap();
    let first = RenderConnection::connect(&url).await.unwrap();
    match RenderConnection::connect(&url).await {
        Err(ClientError::SessionTaken(reason)) => {
            assert!(
                reason.contains("already has a connected device"),
                "{reason}"
            );
        }
        other => panic!("expected SessionTaken, got {other:?}"),
    }
    // Leaving ends the session: the connected device hears it as SessionEnded.
    let mut first = first;
    headset.leave().await.unwrap();
    let ended = loop {
        match tokio::time::timeout(Duration::from_secs(10), first.next())
            .await
            .expect("the host says the session ended")
        {
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert!(matches!(ended, ClientError::SessionEnded(_)), "{ended:?}");
}

/// A headset whose render session is still starting polls it until it is Ready; the coordinator
/// answers polls faster than its limit with 429 and `Retry-After`, and `render_url` waits that
/// long instead of failing (a client that gave up here would never see a frame).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_url_waits_out_the_poll_limit_while_the_session_starts() {
    let pool = parallax_server::config::PoolArgs {
        standard_standby: 0,
        poll_interval_ms: 1000,
        ..Default::default()
    };
    let signed_in = SignedIn::start_with(&pool).await;
    signed_in.space("cold", "default").await;
    let headset = signed_in
        .coordinator
        .join_space("cold", "headset", Role::Headset, None)
        .await
        .unwrap();
    // No host is booted: the session is Starting, and the client's next poll comes 100 ms later.
    let id = headset.render_session.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let first = signed_in.coordinator.own_render_session(&id).await.unwrap();
    assert_eq!(first["status"], "Starting", "{first}");
    let second = signed_in.coordinator.own_render_session(&id).await;
    assert!(
        matches!(second, Err(ClientError::Throttled(wait)) if wait >= Duration::from_secs(1)),
        "a poll within the limit is refused with Retry-After: {second:?}"
    );
    let url = tokio::time::timeout(
        Duration::from_secs(60),
        headset.render_url(Duration::from_secs(60)),
    )
    .await
    .expect("Ready within a minute")
    .expect("render_url waits out the 429s");
    assert!(url.starts_with("ws://"), "{url}");
}
