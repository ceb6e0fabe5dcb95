//! A session's exclusive render connection, spoken with raw tokio-tungstenite as a device would:
//! load a model, send poses, get frames; one device at a time; a clean slate for the next one.

use futures_util::{SinkExt, StreamExt};
use parallax_core::FrameHeader;
use parallax_core::device::{
    Codec, DeviceMessage, EyeView, HitPolicy, HostMessage, Pose, SESSION_TAKEN,
};
use parallax_server::config::PoolArgs;
use parallax_tests::{ArrClient, TestServer, data_dir, decode_jpeg, get_json, upload, within};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[derive(Debug)]
enum Heard {
    Event(HostMessage),
    Frame(FrameHeader, Vec<u8>),
    Closed(u16, String),
}

async fn hear(socket: &mut Socket) -> Heard {
    loop {
        match within(socket.next()).await {
            Some(Ok(Message::Text(text))) => {
                return Heard::Event(HostMessage::parse(text.as_str()).unwrap());
            }
            Some(Ok(Message::Binary(bytes))) => {
                let (header, jpeg) = FrameHeader::decode(&bytes).unwrap();
                return Heard::Frame(header, jpeg.to_vec());
            }
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return Heard::Closed(code, reason);
            }
            Some(Ok(_)) => continue,
            other => panic!("the connection ended without a close frame: {other:?}"),
        }
    }
}

async fn say(socket: &mut Socket, message: DeviceMessage) {
    socket.send(Message::text(message.to_json())).await.unwrap();
}

/// Connects to `url` and says hello with `token` as a device that decodes JPEG only; returns the
/// socket and the first answer.
async fn connect(url: &str) -> (Socket, Heard) {
    let (mut socket, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
    say(
        &mut socket,
        DeviceMessage::Hello {
            codecs: vec![Codec::Jpeg],
        },
    )
    .await;
    let first = hear(&mut socket).await;
    (socket, first)
}

fn load(model: &str) -> DeviceMessage {
    DeviceMessage::LoadModel {
        model: parallax_core::ModelId::new(model),
    }
}

fn pose(id: u64, position: [f32; 3]) -> DeviceMessage {
    DeviceMessage::Pose(Pose {
        id,
        position,
        target: [0.0, 0.0, 0.0],
        up: [0.0, 1.0, 0.0],
        fov_y_degrees: 45.0,
        width: 320,
        height: 240,
        views: None,
        coverage: false,
    })
}

async fn frame(socket: &mut Socket) -> (FrameHeader, Vec<u8>) {
    match hear(socket).await {
        Heard::Frame(header, jpeg) => (header, jpeg),
        Heard::Event(event) => panic!("expected a frame, got {event:?}"),
        Heard::Closed(code, reason) => panic!("closed ({code}) {reason}"),
    }
}

/// What the host says of a load, up to `load_done` (asserting it is not `load_failed`); frames
/// meanwhile are passed over.
async fn load_events(socket: &mut Socket) -> Vec<HostMessage> {
    let mut events = Vec::new();
    loop {
        match hear(socket).await {
            Heard::Event(event @ HostMessage::LoadDone { .. }) => {
                events.push(event);
                return events;
            }
            Heard::Event(HostMessage::LoadFailed { reason, .. }) => panic!("{reason}"),
            Heard::Event(event) => events.push(event),
            // Frames of what was shown before, for a pose sent earlier.
            Heard::Frame(..) => {}
            Heard::Closed(code, reason) => panic!("closed ({code}) {reason}"),
        }
    }
}

fn spread(jpeg: &[u8]) -> u8 {
    let (_, _, pixels) = decode_jpeg(jpeg);
    pixels.iter().max().unwrap() - pixels.iter().min().unwrap()
}

async fn setup(pool: PoolArgs) -> (tempfile::TempDir, TestServer, ArrClient) {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "headsets").await;
    let server = TestServer::start_with(dir.path(), &pool).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    (dir, server, arr)
}

#[tokio::test]
async fn one_device_loads_a_model_and_gets_a_frame_per_pose_then_the_next_starts_clean() {
    let (_dir, server, arr) = setup(PoolArgs {
        poll_interval_ms: 0,
        ..PoolArgs::default()
    })
    .await;
    let session = arr.put("review", "Standard", 30).await;
    let url = session.body["renderUrl"]
        .as_str()
        .expect("a Ready session has a renderUrl")
        .to_string();
    assert!(url.starts_with("ws://"), "{url}");

    let (mut device, welcome) = connect(&url).await;
    assert!(matches!(welcome, Heard::Event(HostMessage::Welcome { .. })));
    say(&mut device, load("gear")).await;
    let events = load_events(&mut device).await;
    assert!(matches!(
        events[0],
        HostMessage::LoadProgress { percent: 0, .. }
    ));
    assert!(
        matches!(
            events[events.len() - 2..],
            [
                HostMessage::LoadProgress { percent: 100, .. },
                HostMessage::LoadDone { triangles: 960, .. }
            ]
        ),
        "{events:?}"
    );

    say(&mut device, pose(1, [0.0, 60.0, 90.0])).await;
    let (first, first_jpeg) = frame(&mut device).await;
    say(&mut device, pose(2, [90.0, 10.0, 0.0])).await;
    let (second, second_jpeg) = frame(&mut device).await;
    assert_eq!(
        (first.pose, second.pose),
        (1, 2),
        "each frame answers its pose"
    );
    assert_eq!(decode_jpeg(&first_jpeg).0, 320);
    assert!(spread(&first_jpeg) > 100, "the gear is in the picture");
    assert_ne!(first_jpeg, second_jpeg, "another pose, another picture");

    // Moving the model re-renders the current pose with the model elsewhere.
    let placement = parallax_core::device::Placement {
        position: [0.0, 20.0, 0.0],
        rotation: [0.0, 0.0, 0.0, 1.0],
        scale: 0.5,
    };
    say(&mut device, DeviceMessage::SetTransform(placement)).await;
    let (moved, moved_jpeg) = frame(&mut device).await;
    assert_eq!(moved.pose, 2);
    assert_ne!(moved_jpeg, second_jpeg);
    let broken = parallax_core::device::Placement {
        scale: 0.0,
        ..placement
    };
    say(&mut device, DeviceMessage::SetTransform(broken)).await;
    assert!(
        matches!(hear(&mut device).await, Heard::Event(HostMessage::Error { ref code, .. }) if code == "BadTransform")
    );
    // Picking: the middle of the screen is on the model, a corner is not.
    say(
        &mut device,
        DeviceMessage::SetTransform(parallax_core::device::Placement::default()),
    )
    .await;
    frame(&mut device).await;
    say(
        &mut device,
        DeviceMessage::Pick {
            id: 11,
            x: 160.0,
            y: 120.0,
            policy: HitPolicy::All,
            max_hits: 8,
        },
    )
    .await;
    let Heard::Event(HostMessage::PickResult { id, model, hits }) = hear(&mut device).await else {
        panic!("a pick result")
    };
    assert_eq!((id, model.map(|m| m.0)), (11, Some("gear".to_string())));
    assert_eq!(
        hits[0].part.as_deref(),
        Some("Gear"),
        "the hit names its part"
    );
    assert!(
        hits.len() >= 2,
        "through the gear: in and out ({} hits)",
        hits.len()
    );
    assert!(
        hits.windows(2).all(|w| w[0].distance <= w[1].distance),
        "nearest first"
    );
    // Pose 2 stands 90 units from the gear's centre; its faces lie within a radius of 40.
    assert!(
        (50.0..=130.0).contains(&hits[0].distance),
        "{}",
        hits[0].distance
    );
    let to_eye = [
        90.0 - hits[0].position[0],
        10.0 - hits[0].position[1],
        -hits[0].position[2],
    ];
    let facing: f32 = hits[0].normal.iter().zip(to_eye).map(|(n, e)| n * e).sum();
    assert!(facing > 0.0, "the normal faces the viewer");
    say(
        &mut device,
        DeviceMessage::Pick {
            id: 12,
            x: 1.0,
            y: 1.0,
            policy: HitPolicy::Closest,
            max_hits: 1,
        },
    )
    .await;
    assert!(
        matches!(hear(&mut device).await, Heard::Event(HostMessage::PickResult { id: 12, ref hits, .. }) if hits.is_empty())
    );
    say(
        &mut device,
        DeviceMessage::Pick {
            id: 13,
            x: 5000.0,
            y: 1.0,
            policy: HitPolicy::Any,
            max_hits: 1,
        },
    )
    .await;
    assert!(
        matches!(hear(&mut device).await, Heard::Event(HostMessage::Error { ref code, .. }) if code == "BadPick")
    );

    // A ray cast (a headset's pointer) from where the pick's eye was, at the gear's first hit,
    // meets the gear there, whatever the pose; a ray with no direction is refused.
    let aim = std::array::from_fn(|i| hits[0].position[i] - [90.0, 10.0, 0.0][i]);
    for (id, direction) in [(14, aim), (15, [0.0; 3])] {
        let cast = DeviceMessage::RayCast {
            id,
            origin: [90.0, 10.0, 0.0],
            direction,
            policy: HitPolicy::Closest,
            max_hits: 1,
        };
        say(&mut device, cast).await;
    }
    let Heard::Event(HostMessage::PickResult {
        id: 14, hits: cast, ..
    }) = hear(&mut device).await
    else {
        panic!("a ray cast's result")
    };
    assert_eq!(cast.len(), 1);
    assert_eq!(cast[0].part.as_deref(), Some("Gear"));
    let apart: f32 = (0..3)
        .map(|i| (cast[0].position[i] - hits[0].position[i]).abs())
        .sum();
    assert!(
        apart < 0.01,
        "{:?} against {:?}",
        cast[0].position,
        hits[0].position
    );
    assert!(
        matches!(hear(&mut device).await, Heard::Event(HostMessage::Error { ref code, .. }) if code == "BadPick")
    );

    // A second device is refused while the first holds the session.
    let (_, refused) = connect(&url).await;
    assert!(matches!(refused, Heard::Closed(1008, ref reason) if reason == SESSION_TAKEN));

    say(&mut device, DeviceMessage::Bye).await;
    assert!(matches!(hear(&mut device).await, Heard::Closed(1000, _)));

    // The next device starts from a clean slate: no model, just the background.
    let (mut next, welcome) = connect(&url).await;
    assert!(matches!(welcome, Heard::Event(HostMessage::Welcome { .. })));
    say(&mut next, pose(7, [0.0, 60.0, 90.0])).await;
    let (header, jpeg) = frame(&mut next).await;
    assert_eq!(header.pose, 7);
    assert!(
        spread(&jpeg) < 16,
        "an empty scene, not the last device's gear"
    );

    // Stopping the session ends the connection with a reason.
    arr.stop("review").await;
    assert!(
        matches!(hear(&mut next).await, Heard::Closed(1001, ref reason) if reason.contains("ended"))
    );
    server.stop().await;
}

/// A big upload shows first as its coarse form (each part at its coarsest level of detail),
/// framed as the whole model, and a frame of it comes before the full mesh replaces it; the next
/// load of the same model, from the host's memory, has no coarse step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_model_shows_its_coarse_form_first_then_refines_in_place() {
    let (_dir, server, arr) = setup(PoolArgs {
        poll_interval_ms: 0,
        ..PoolArgs::default()
    })
    .await;
    let racks = parallax_render::samples::assembly(60_000);
    let bounds = racks.bounds().unwrap();
    let extent = parallax_core::device::Extent {
        min: bounds.min.to_array(),
        max: bounds.max.to_array(),
    };
    let stl = racks.to_binary_stl();
    let uploaded = upload(&server, &arr.token, &[("racks.stl", stl)]).await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.body);
    let id = uploaded.body["id"].as_str().unwrap().to_string();
    let mut model = get_json(&server, &format!("/v1/models/{id}"), &arr.token).await;
    while model["status"] != "Ready" {
        assert_eq!(model["status"], "Converting", "{model}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        model = get_json(&server, &format!("/v1/models/{id}"), &arr.token).await;
    }
    // The coarse form is a host's to fetch, as the mesh is: only one rendering a session of the
    // account that owns the model.
    let coarse_url = format!("{}/v1/hosts/models/{id}/mesh?detail=coarse", server.url());
    let idle_host = server.host_credential().await;
    for (credential, status) in [(None, 401), (Some(idle_host.as_str()), 403)] {
        let mut request = server.http().get(&coarse_url);
        if let Some(credential) = credential {
            request = request.bearer_auth(credential);
        }
        let answer = parallax_tests::send(request).await;
        assert_eq!(answer.status, status, "{}", answer.body);
    }
    let session = arr.put("big", "Standard", 30).await;
    let url = session.body["renderUrl"].as_str().unwrap().to_string();

    let (mut device, _) = connect(&url).await;
    // A pose first, as a device following a space has: the coarse form is drawn at once.
    let view = Pose::orbit(&extent, 30.0, 20.0, 1.0).pose(1, 320, 240);
    say(&mut device, DeviceMessage::Pose(view)).await;
    let (_, empty) = frame(&mut device).await;
    say(&mut device, load(&id)).await;
    let mut heard = Vec::new();
    let done = loop {
        match hear(&mut device).await {
            Heard::Event(event @ HostMessage::LoadDone { .. }) => break event,
            Heard::Event(HostMessage::LoadFailed { reason, .. }) => panic!("{reason}"),
            other => heard.push(other),
        }
    };
    let HostMessage::LoadDone {
        triangles: full,
        extent: full_extent,
        ..
    } = done
    else {
        unreachable!()
    };
    let coarse_at = heard
        .iter()
        .position(|h| matches!(h, Heard::Event(HostMessage::LoadCoarse { .. })))
        .unwrap_or_else(|| panic!("no coarse form before load_done: {heard:?}"));
    let Heard::Event(HostMessage::LoadCoarse {
        triangles: coarse,
        extent: coarse_extent,
        ..
    }) = &heard[coarse_at]
    else {
        unreachable!()
    };
    // (The STL import drops the few triangles too thin to see.)
    assert!(full > 59_000, "{full}");
    assert!(*coarse * 8 <= full, "{coarse} of {full} triangles");
    // Framed the same: nothing jumps when the full mesh comes.
    assert_eq!(*coarse_extent, full_extent);
    let coarse_frame = heard[coarse_at..]
        .iter()
        .find_map(|h| match h {
            Heard::Frame(_, jpeg) => Some(jpeg.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no frame of the coarse form: {heard:?}"));
    assert!(
        spread(&coarse_frame) > spread(&empty) + 40,
        "the coarse frame shows the model"
    );
    assert!(
        matches!(
            heard.last(),
            Some(Heard::Event(HostMessage::LoadProgress { percent: 100, .. }))
        ),
        "{heard:?}"
    );
    // The full mesh's frame comes next, and shows the same model in the same place: its
    // outline, where it differs from the background, is the coarse one's but for a rim.
    let (_, full_frame) = frame(&mut device).await;
    let outline = |jpeg: &[u8]| {
        let (_, _, pixels) = decode_jpeg(jpeg);
        let background = [pixels[0], pixels[1], pixels[2]];
        pixels
            .chunks(3)
            .map(|p| p.iter().zip(background).any(|(x, y)| x.abs_diff(y) > 24))
            .collect::<Vec<bool>>()
    };
    let (coarse_outline, full_outline) = (outline(&coarse_frame), outline(&full_frame));
    let covered = full_outline.iter().filter(|&&m| m).count();
    let moved = coarse_outline
        .iter()
        .zip(&full_outline)
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        covered > 320 * 240 / 10,
        "the model fills the view: {covered} px"
    );
    assert!(
        moved * 20 < covered,
        "{moved} of the model's {covered} pixels changed sides"
    );
    // And it is the full mesh: its finer facets light differently.
    let (_, _, coarse_pixels) = decode_jpeg(&coarse_frame);
    let (_, _, full_pixels) = decode_jpeg(&full_frame);
    let refined = coarse_pixels
        .chunks(3)
        .zip(full_pixels.chunks(3))
        .filter(|(a, b)| a.iter().zip(*b).any(|(x, y)| x.abs_diff(*y) > 48))
        .count();
    assert!(
        refined * 50 > covered,
        "only {refined} of {covered} pixels changed"
    );

    // Again, from the host's memory: straight to the full mesh.
    say(&mut device, load("gear")).await;
    load_events(&mut device).await;
    say(&mut device, load(&id)).await;
    let again = load_events(&mut device).await;
    assert!(
        !again
            .iter()
            .any(|e| matches!(e, HostMessage::LoadCoarse { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn devices_that_break_the_rules_get_a_reason() {
    let pool = PoolArgs {
        standard: 2,
        poll_interval_ms: 0,
        standard_polygon_budget: 500,
        ..PoolArgs::default()
    };
    let (_dir, server, arr) = setup(pool).await;
    let session = arr.put("rules", "Standard", 30).await;
    let url = session.body["renderUrl"].as_str().unwrap().to_string();

    let (mut socket, _) = within(tokio_tungstenite::connect_async(url.as_str()))
        .await
        .unwrap();
    say(&mut socket, pose(1, [0.0, 0.0, 5.0])).await;
    assert!(
        matches!(hear(&mut socket).await, Heard::Closed(1008, ref r) if r == "the first message must be hello")
    );
    // The render ticket in the URL opens the connection, nothing else does.
    let (path, ticket) = url
        .split_once("?ticket=")
        .expect("renderUrl carries a ticket");
    let (_, bare) = connect(path).await;
    assert!(
        matches!(bare, Heard::Closed(1008, ref r) if r.contains("ticket")),
        "{bare:?}"
    );
    let (_, forged) = connect(&format!("{path}?ticket=not-a-ticket")).await;
    assert!(
        matches!(forged, Heard::Closed(1008, ref r) if r.contains("unreadable")),
        "{forged:?}"
    );
    // Session A's ticket does not open session B.
    let mut second = arr.put("second", "Standard", 30).await.body;
    while second["status"] != "Ready" {
        assert_eq!(second["status"], "Starting", "{second}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        second = arr.get("second").await.body;
    }
    let other = format!("{}?ticket={ticket}", path.replace("/rules", "/second"));
    let (_, other) = connect(&other).await;
    assert!(
        matches!(other, Heard::Closed(1008, ref r) if r.contains("another session")),
        "{other:?}"
    );

    let (mut device, _) = connect(&url).await;
    say(&mut device, load("gear")).await;
    let failed = loop {
        if let Heard::Event(HostMessage::LoadFailed { reason, .. }) = hear(&mut device).await {
            break reason;
        }
    };
    assert!(failed.contains("polygon budget"), "{failed}");
    say(&mut device, load("teapot")).await;
    let missing = loop {
        if let Heard::Event(HostMessage::LoadFailed { reason, .. }) = hear(&mut device).await {
            break reason;
        }
    };
    assert!(missing.contains("teapot"), "{missing}");
    device.send(Message::text(json!({"type": "pose", "id": 3, "position": [0, 0, 0], "target": [0, 0, 0], "fovYDegrees": 45, "width": 10, "height": 10}).to_string())).await.unwrap();
    assert!(
        matches!(hear(&mut device).await, Heard::Event(HostMessage::Error { ref code, .. }) if code == "BadPose")
    );
    device.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert!(matches!(hear(&mut device).await, Heard::Closed(1003, _)));

    // A ticket opens its session only while it is Ready: stopped, it opens nothing.
    drop(device);
    arr.stop("rules").await;
    let (_, stopped) = connect(&url).await;
    assert!(
        matches!(stopped, Heard::Closed(1008, ref r) if r.contains("Stopped")),
        "{stopped:?}"
    );
    server.stop().await;
}

/// Starts a render host as one on another machine runs (`parallax render-host --coordinator …`,
/// not started by the coordinator) in this process; it runs until `stop`.
async fn remote_host(server: &TestServer, target_fps: u32, stop: &CancellationToken) {
    let config = server.remote_host(target_fps, None).await;
    tokio::spawn(parallax_host::run(config, stop.clone()));
}

/// Room for one Standard host, none started by the coordinator: a remote host takes it.
fn one_remote_slot() -> PoolArgs {
    PoolArgs {
        standard: 1,
        standard_standby: 0,
        premium: 0,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    }
}

/// Waits (20 s at most) until a host registered.
async fn wait_for_a_host(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while registered_hosts(server).await.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the remote host did not register"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn registered_hosts(server: &TestServer) -> Vec<Value> {
    let health = get_json(server, "/v1/health", &server.operator).await;
    health["hosts"].as_array().cloned().unwrap_or_default()
}

/// A host on another machine joins the pool while it has room and is refused past its capacity;
/// a session runs on it, and its frames keep to its `--target-fps` however fast poses come, each
/// frame drawn from the latest pose (the ones that queued meanwhile are merged, not replayed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_host_joins_up_to_capacity_and_paces_frames_from_the_latest_pose() {
    let (_dir, server, arr) = setup(one_remote_slot()).await;
    let stop = CancellationToken::new();
    remote_host(&server, 4, &stop).await;
    wait_for_a_host(&server).await;
    let deadline = tokio::time::Instant::now();
    // A second one finds the pool full (one Standard host at most) and is not registered.
    remote_host(&server, 4, &stop).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(registered_hosts(&server).await.len(), 1);

    // A session runs on the remote host.
    let session = arr.put("remote", "Standard", 30).await;
    let mut status = session.body["status"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut body = session.body;
    while status != "Ready" {
        assert!(
            tokio::time::Instant::now() < deadline + Duration::from_secs(10),
            "{body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = arr.get("remote").await.body;
        status = body["status"].as_str().unwrap_or_default().to_string();
    }
    let url = body["renderUrl"].as_str().unwrap().to_string();
    let (mut device, _) = connect(&url).await;
    say(&mut device, load("gear")).await;
    loop {
        if let Heard::Event(HostMessage::LoadDone { .. }) = hear(&mut device).await {
            break;
        }
    }

    // Poses every 10 ms for 1.5 s, read as they come; the host draws at most 4 frames a second.
    let (mut sink, mut stream) = device.split();
    let reader = tokio::spawn(async move {
        let mut frames = Vec::new();
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Binary(bytes) = message {
                let (header, _) = FrameHeader::decode(&bytes).unwrap();
                frames.push((header.pose, std::time::Instant::now()));
                if header.pose == 150 {
                    break;
                }
            }
        }
        frames
    });
    for id in 1..=150u64 {
        let message = pose(id, [90.0 * (id as f32 / 25.0).cos(), 30.0, 90.0]).to_json();
        sink.send(Message::text(message)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent_last = std::time::Instant::now();
    let frames = tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the last pose's frame comes within 5 s")
        .unwrap();
    let (last, arrived) = *frames.last().unwrap();
    assert_eq!(last, 150, "the last frame is of the last pose");
    assert!(
        arrived.duration_since(sent_last) < Duration::from_secs(1),
        "the latest pose is drawn next, not after the queue: {:?}",
        arrived.duration_since(sent_last)
    );
    assert!(
        (3..=10).contains(&frames.len()),
        "{} frames for 150 poses in ~1.7 s at 4 fps",
        frames.len()
    );
    assert!(frames.windows(2).all(|w| w[0].0 < w[1].0), "in pose order");
    let closest = frames
        .windows(2)
        .map(|w| w[1].1.duration_since(w[0].1))
        .min()
        .unwrap();
    assert!(
        closest >= Duration::from_millis(150),
        "two frames {closest:?} apart"
    );
    stop.cancel();
}

/// A headset's two eyes, as WebXR gives them: space → eye and an asymmetric OpenGL projection.
fn eye_view(eye: glam::Vec3, target: glam::Vec3, shift: f32) -> EyeView {
    let view = glam::camera::rh::view::look_at_mat4(eye, target, glam::Vec3::Y);
    // An off-centre frustum, wider towards the nose, as a headset's lens gives.
    let (near, far) = (1.0, 1000.0);
    let (top, right) = (0.4 * near, 0.5 * near);
    let projection = glam::camera::rh::proj::opengl::frustum(
        -right + shift,
        right + shift,
        -top,
        top,
        near,
        far,
    );
    EyeView {
        view: view.to_cols_array(),
        projection: projection.to_cols_array(),
    }
}

/// A stereo pose gets one frame of both eyes side by side, each at the pose's size; the two
/// halves differ as two eyes' views do; a stereo pose too wide for the frame gets a reason.
#[tokio::test]
async fn a_stereo_pose_gets_both_eyes_side_by_side() {
    let (_dir, _server, arr) = setup(PoolArgs {
        poll_interval_ms: 0,
        ..PoolArgs::default()
    })
    .await;
    let session = arr.put("stereo", "Standard", 30).await;
    let url = session.body["renderUrl"].as_str().unwrap().to_string();
    let (mut device, _) = connect(&url).await;
    say(&mut device, load("gear")).await;
    loop {
        if let Heard::Event(HostMessage::LoadDone { .. }) = hear(&mut device).await {
            break;
        }
    }
    let target = glam::Vec3::ZERO;
    let (left, right) = (
        glam::Vec3::new(-32.0, 60.0, 90.0),
        glam::Vec3::new(32.0, 60.0, 90.0),
    );
    let stereo = |id: u64, width: u32| {
        let DeviceMessage::Pose(mono) = pose(id, [0.0, 60.0, 90.0]) else {
            unreachable!()
        };
        DeviceMessage::Pose(Pose {
            width,
            views: Some([
                eye_view(left, target - (right - left) / 2.0, 0.05),
                eye_view(right, target + (right - left) / 2.0, -0.05),
            ]),
            ..mono
        })
    };
    say(&mut device, stereo(1, 320)).await;
    let (header, jpeg) = frame(&mut device).await;
    assert_eq!(header.pose, 1);
    let (width, height, pixels) = decode_jpeg(&jpeg);
    assert_eq!((width, height), (640, 240), "two eyes of 320×240");
    let half = |x0: usize| -> Vec<u8> {
        (0..240)
            .flat_map(|y| pixels[(y * 640 + x0) * 3..(y * 640 + x0 + 320) * 3].to_vec())
            .collect()
    };
    let (l, r) = (half(0), half(320));
    let differing = l
        .chunks_exact(3)
        .zip(r.chunks_exact(3))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 24))
        .count();
    assert!(
        differing > 320 * 240 / 50,
        "the eyes see the gear differently: {differing} px"
    );
    for eye in [&l, &r] {
        assert!(
            eye.iter().max().unwrap() - eye.iter().min().unwrap() > 60,
            "each eye shows the gear"
        );
    }

    say(&mut device, stereo(2, 3000)).await;
    let Heard::Event(HostMessage::Error { code, message }) = hear(&mut device).await else {
        panic!("a reason for the too-wide stereo pose")
    };
    assert_eq!(code, "BadPose");
    assert!(message.contains("side by side"), "{message}");

    // For a see-through display: the same view on a transparent background, its coverage below.
    let with_coverage = |id: u64, height: u32| {
        let DeviceMessage::Pose(pose) = stereo(id, 320) else {
            unreachable!()
        };
        DeviceMessage::Pose(Pose {
            coverage: true,
            height,
            ..pose
        })
    };
    say(&mut device, with_coverage(3, 240)).await;
    let (header, jpeg) = frame(&mut device).await;
    assert_eq!((header.pose, header.coverage), (3, true));
    let (width, height, framed) = decode_jpeg(&jpeg);
    assert_eq!((width, height), (640, 480), "the colour over the coverage");
    let opaque = pixels;
    let at = |x: usize, y: usize| (y * 640 + x) * 3;
    let background = opaque[..3].to_vec();
    let cover = |x: usize, y: usize| framed[at(x, y + 240)];
    let (mut covered, mut clear) = (0, 0);
    for y in (3..237).step_by(3) {
        for x in (3..637).step_by(3) {
            // Away from the gear's edges (JPEG blurs them): where the coverage says the gear is
            // (in all of a 7×7 square), the colour is the opaque frame's; where it says the room
            // is, the opaque frame shows its background and the colour is black.
            let square = (x - 3..=x + 3).flat_map(|u| (y - 3..=y + 3).map(move |v| cover(u, v)));
            let colour = &framed[at(x, y)..at(x, y) + 3];
            let seen = &opaque[at(x, y)..at(x, y) + 3];
            let off = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(a, b)| a.abs_diff(*b)).max();
            if square.clone().all(|c| c > 230) {
                assert!(
                    off(colour, seen) < Some(40),
                    "{colour:?} on the gear, {seen:?} opaque"
                );
                covered += 1;
            } else if square.clone().all(|c| c < 25) {
                assert!(
                    off(seen, &background) < Some(24),
                    "{seen:?} opaque off the gear"
                );
                assert!(colour.iter().all(|c| *c < 40), "{colour:?} off the gear");
                clear += 1;
            }
        }
    }
    assert!(
        covered > 500 && clear > 5000,
        "{covered} covered, {clear} clear"
    );

    say(&mut device, with_coverage(4, 2100)).await;
    let Heard::Event(HostMessage::Error { code, message }) = hear(&mut device).await else {
        panic!("a reason for the too-tall pose")
    };
    assert_eq!(code, "BadPose");
    assert!(message.contains("twice as tall"), "{message}");
}

/// `parallax host revoke NAME` while the host renders a session: the coordinator drops the host
/// within seconds and the session ends in `Error` saying why; the host cannot register again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_host_is_dropped_within_seconds_and_its_session_ends() {
    let (_dir, server, arr) = setup(one_remote_slot()).await;
    let stop = CancellationToken::new();
    let config = server.remote_host(4, None).await;
    let name = config.credential.split('.').next().unwrap().to_string();
    tokio::spawn(parallax_host::run(config, stop.clone()));
    wait_for_a_host(&server).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut body = arr.put("revoked", "Standard", 30).await.body;
    while body["status"] != "Ready" {
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = arr.get("revoked").await.body;
    }

    let revoke = parallax_server::config::HostCommand::Revoke {
        name: name.clone(),
        output: parallax_server::config::AccountOutput {
            data: server.data.clone(),
            json: true,
        },
    };
    let answer = parallax_server::host_command(revoke).await.unwrap();
    assert!(answer.contains("\"revoked\":true"), "{answer}");
    let revoked = tokio::time::Instant::now();
    loop {
        let body = arr.get("revoked").await.body;
        if body["status"] == "Error" {
            let why = body["error"]["message"].as_str().unwrap_or_default();
            assert!(why.contains("revoked") && why.contains(&name), "{body}");
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(5),
            "still {body} 5 s after the revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And it does not come back.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(registered_hosts(&server).await.is_empty());
    stop.cancel();
    server.stop().await;
}
