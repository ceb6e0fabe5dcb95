//! Shared spaces through the client integrators use (`parallax-headset`), against a real
//! coordinator on a real port with its SQLite file: tablets select, every headset follows once
//! and in order and renders the model on its own render session; resume after a dropped
//! connection; the refusals; timeouts; a restart.

use std::time::Duration;

use parallax_core::ModelId;
use parallax_core::device::{HostMessage, Pose};
use parallax_core::space::{MemberStatus, Role};
use parallax_core::space_protocol::SpaceEvent;
use parallax_headset::{
    ClientError, Coordinator, RenderConnection, RenderEvent, SpaceConnection, SpaceUpdate,
};
use parallax_server::config::PoolArgs;
use parallax_tests::{ArrClient, SignedIn, TestServer, data_dir, frame_of, get_json};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn signed_in(server: &TestServer, account: &(String, String)) -> Coordinator {
    Coordinator::sign_in(&server.url(), &account.0, &account.1)
        .await
        .expect("sign in")
}

/// Everything that arrives within `quiet` of silence.
async fn drain(connection: &mut SpaceConnection, quiet: Duration) -> Vec<SpaceUpdate> {
    let mut updates = Vec::new();
    while let Ok(update) = connection.next_within(quiet).await {
        updates.push(update);
    }
    updates
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tablet_selects_and_every_headset_follows_once_in_order_on_its_own_render_session() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let pool = PoolArgs {
        standard: 2,
        standard_standby: 2,
        premium: 1,
        premium_standby: 1,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let server = TestServer::start_with(dir.path(), &pool).await;
    let coordinator = signed_in(&server, &account).await;

    let tablet = coordinator
        .create_space("review", "default", json!({}), "tablet-1", Role::Tablet)
        .await
        .unwrap();
    let mut tablet_socket = tablet.connect().await.unwrap();
    assert!(matches!(
        tablet_socket.next_within(WAIT).await.unwrap(),
        SpaceUpdate::Snapshot(_)
    ));

    let mut headsets = Vec::new();
    for n in 0..3 {
        let membership = coordinator
            .join_space("review", &format!("headset-{n}"), Role::Headset, None)
            .await
            .unwrap();
        let session = membership
            .render_session
            .clone()
            .expect("a headset gets a render session when it joins");
        let connection = membership.connect().await.unwrap();
        headsets.push((membership, session, connection));
    }
    // Two Standard hosts, then the third headset falls back to Premium.
    let sizes: Vec<&str> = headsets
        .iter()
        .map(|(_, session, _)| session["size"].as_str().unwrap())
        .collect();
    assert_eq!(sizes, ["Standard", "Standard", "Premium"]);

    tablet.select("gear").await.unwrap();
    tablet.select("shaft").await.unwrap();
    for (membership, _, connection) in &mut headsets {
        let mut selections = Vec::new();
        let updates = drain(connection, Duration::from_millis(300)).await;
        for update in updates {
            if let SpaceUpdate::Event {
                event: SpaceEvent::Selection { model, .. },
                ..
            } = update
            {
                selections.push(model.map(|m| m.as_str().to_string()));
            }
        }
        assert_eq!(
            selections,
            [Some("gear".to_string()), Some("shaft".to_string())],
            "{}: each selection once, in order",
            membership.id
        );
        // The headset loads the selection it received on its own render connection: the part
        // is in the frame, neither missing nor filling it.
        let url = membership.render_url(WAIT).await.unwrap();
        let selected = selections.last().cloned().flatten().unwrap();
        let frame = frame_of(&url, &selected).await;
        assert_eq!((frame.width, frame.height), (320, 240));
        let covered = frame.coverage();
        assert!(
            (0.02..0.9).contains(&covered),
            "{}: the {selected} covers {covered:.3} of the frame",
            membership.id
        );
    }

    // Leaving releases the render session.
    let (leaver, session, _) = headsets.pop().unwrap();
    leaver.leave().await.unwrap();
    let after = coordinator
        .render_session(&account.0, session["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(after["status"], "Stopped");
    let space = tablet.space().await.unwrap();
    assert_eq!(space["memberCount"], 3);
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_headset_resumes_with_exactly_the_messages_it_missed() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let tablet = coordinator
        .create_space("drop", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let headset = coordinator
        .join_space("drop", "headset", Role::Headset, None)
        .await
        .unwrap();
    let mut socket = headset.connect().await.unwrap();
    drain(&mut socket, Duration::from_millis(200)).await;

    tablet
        .write(json!({ "custom": { "n": 0 } }), None)
        .await
        .unwrap();
    let before = drain(&mut socket, Duration::from_millis(200)).await;
    assert_eq!(before.len(), 1, "{before:?}");

    // The network goes away mid-stream; the tablet goes on.
    socket.drop_connection();
    for n in 1..=5 {
        tablet
            .write(json!({ "custom": { "n": n } }), None)
            .await
            .unwrap();
    }
    socket.resume().await.unwrap();
    let after = drain(&mut socket, Duration::from_millis(300)).await;
    let customs: Vec<i64> = after
        .iter()
        .filter_map(|u| match u {
            SpaceUpdate::Event {
                event: SpaceEvent::Custom { custom },
                ..
            } => custom["n"].as_i64(),
            _ => None,
        })
        .collect();
    assert_eq!(
        customs,
        [1, 2, 3, 4, 5],
        "every missed message once, in order"
    );
    // Consecutive sequence numbers: nothing lost, nothing twice.
    let seqs: Vec<u64> = after
        .iter()
        .filter_map(|u| match u {
            SpaceUpdate::Event { seq, .. } => Some(*seq),
            SpaceUpdate::Snapshot(_) | SpaceUpdate::Presence { .. } => None,
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert!(after.iter().all(|u| !matches!(u, SpaceUpdate::Snapshot(_))));
    server.stop().await;
}

#[tokio::test]
async fn private_full_and_stale_writes_are_refused_clearly() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;

    let owner = coordinator
        .create_space("private", "private", json!({}), "owner", Role::Tablet)
        .await
        .unwrap();
    let code = owner.join_code.clone().expect("a private space has a code");
    let refused = coordinator
        .join_space("private", "guest", Role::Tablet, None)
        .await;
    assert!(
        matches!(refused, Err(ClientError::WrongCode(_))),
        "{refused:?}"
    );
    let wrong = coordinator
        .join_space("private", "guest", Role::Tablet, Some("not-it"))
        .await;
    assert!(matches!(wrong, Err(ClientError::WrongCode(_))));
    coordinator
        .join_space("private", "guest", Role::Tablet, Some(&code))
        .await
        .unwrap();
    // A template's constant cannot be overridden: the request conflicts with the stored template.
    let overridden = coordinator
        .create_space(
            "sneaky",
            "private",
            json!({ "visibility": "open" }),
            "x",
            Role::Tablet,
        )
        .await;
    assert!(matches!(
        overridden,
        Err(ClientError::Refused { status: 409, .. })
    ));

    // 100 members fit; the 101st does not.
    let full = coordinator
        .create_space("full", "default", json!({}), "tablet-0", Role::Tablet)
        .await
        .unwrap();
    for n in 1..100 {
        coordinator
            .join_space("full", &format!("tablet-{n}"), Role::Tablet, None)
            .await
            .unwrap();
    }
    let over = coordinator
        .join_space("full", "tablet-100", Role::Tablet, None)
        .await;
    assert!(matches!(over, Err(ClientError::SpaceFull(_))), "{over:?}");

    // If-Match with the change number seen: a stale one is refused and changes nothing.
    let seen = full.space().await.unwrap()["change"].as_u64().unwrap();
    full.write(json!({ "selectedModel": "gear" }), Some(seen))
        .await
        .unwrap();
    let stale = full
        .write(json!({ "selectedModel": "bracket" }), Some(seen))
        .await;
    assert!(matches!(stale, Err(ClientError::Stale(_))), "{stale:?}");
    let space = full.space().await.unwrap();
    assert_eq!(space["properties"]["selectedModel"], "gear");
    // Only models in the catalog can be shown.
    let unknown = full.select("no-such-model").await;
    assert!(
        matches!(unknown, Err(ClientError::NotFound(_))),
        "{unknown:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn reserved_members_who_never_connect_are_removed_and_lose_their_session() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let timeouts = json!({ "timeouts": {
        "reservedRemoval": 300, "readyRemoval": 180000, "inactiveRemoval": 0, "sessionEmpty": 0
    }});
    let tablet = coordinator
        .create_space("short", "default", timeouts, "tablet", Role::Tablet)
        .await
        .unwrap();
    let mut socket = tablet.connect().await.unwrap();
    let ghost = coordinator
        .join_space("short", "ghost", Role::Headset, None)
        .await
        .unwrap();
    let session = ghost.render_session.clone().unwrap();
    drain(&mut socket, Duration::from_millis(100)).await;

    // The tablet hears the roster without the ghost, without asking.
    let mut removed = false;
    for update in drain(&mut socket, Duration::from_millis(1500)).await {
        if let SpaceUpdate::Event {
            event: SpaceEvent::Roster { members },
            ..
        } = update
        {
            removed = members.iter().all(|m| m.device != "ghost");
        }
    }
    assert!(removed, "the reserved headset was removed after 300 ms");
    let space = tablet.space().await.unwrap();
    assert_eq!(space["memberCount"], 1);
    let lease = coordinator
        .render_session(&account.0, session["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(lease["status"], "Stopped");
    // Its token no longer acts in the space.
    assert!(matches!(
        ghost.leave().await,
        Err(ClientError::Forbidden(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn spaces_members_and_properties_survive_a_restart_and_clients_resume() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let tablet = coordinator
        .create_space("lasting", "review", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    tablet.select("bracket").await.unwrap();
    let mut socket = tablet.connect().await.unwrap();
    drain(&mut socket, Duration::from_millis(100)).await;
    socket.set_status(MemberStatus::Active).await.unwrap();
    drain(&mut socket, Duration::from_millis(100)).await;
    // The last write before the restart touches only the properties.
    tablet
        .write(json!({ "custom": { "note": "kept" } }), None)
        .await
        .unwrap();
    let before = tablet.space().await.unwrap();
    server.stop().await;

    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let listed = get_json(&server, "/v1/spaces?member=tablet", &coordinator.token).await;
    assert_eq!(listed["spaces"][0]["name"], "lasting", "{listed}");
    // The old connection died with the server: the member waits, ready to resume.
    assert_eq!(listed["spaces"][0]["status"], "ready");
    let tablet = tablet.through(&coordinator);
    let space = tablet.space().await.unwrap();
    assert_eq!(space["properties"]["selectedModel"], "bracket");
    assert_eq!(space["properties"]["custom"]["note"], "kept");
    assert!(
        space["change"].as_u64() >= before["change"].as_u64(),
        "the change number never goes back: {} after {}",
        space["change"],
        before["change"]
    );
    assert_eq!(space["members"][0]["device"], "tablet");
    assert_eq!(space["constants"], before["constants"]);
    assert_eq!(space["joinCode"], before["joinCode"]);

    // The client resumes; the server's replay buffer did not survive, so it gets a snapshot.
    let mut socket = tablet.reconnect(socket.last_seq()).await.unwrap();
    match socket.next_within(WAIT).await.unwrap() {
        SpaceUpdate::Snapshot(space) => {
            assert_eq!(
                space.properties.selected_model,
                Some(ModelId::new("bracket"))
            );
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let space = tablet.space().await.unwrap();
    assert_eq!(space["members"][0]["status"], "active");
    server.stop().await;
}

/// `GET /v1/spaces/{name}/render` as the account.
async fn render_states(server: &TestServer, coordinator: &Coordinator, space: &str) -> Vec<Value> {
    let answer = get_json(
        server,
        &format!("/v1/spaces/{space}/render"),
        &coordinator.token,
    )
    .await;
    answer["members"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_roster_tells_each_headsets_render_session_state_and_frame_rate() {
    let signed_in = SignedIn::start().await;
    let (server, coordinator) = (&signed_in.server, &signed_in.coordinator);
    signed_in.space("floor", "default").await;
    let moving = coordinator
        .join_space("floor", "moving", Role::Headset, None)
        .await
        .unwrap();
    let idle = coordinator
        .join_space("floor", "idle", Role::Headset, None)
        .await
        .unwrap();
    let url = moving.render_url(WAIT).await.unwrap();
    idle.render_url(WAIT).await.unwrap();

    // One headset orbits the gear as fast as its frames come back; the other never connects.
    let mut render = RenderConnection::connect(&url).await.unwrap();
    render.load("gear").await.unwrap();
    let orbiting = tokio::spawn(async move {
        let mut extent = None;
        let mut pose_id = 0;
        loop {
            match render.next().await {
                Ok(RenderEvent::Message(HostMessage::LoadDone { extent: e, .. })) => extent = e,
                Ok(RenderEvent::Frame { .. }) => {}
                Ok(RenderEvent::Message(_)) => continue,
                Ok(RenderEvent::Skipped { reason, .. }) => panic!("{reason}"),
                Err(e) => panic!("the render connection failed: {e}"),
            }
            if let Some(extent) = &extent {
                pose_id += 1;
                let pose = Pose::orbit(extent, pose_id as f32, 20.0, 1.0).pose(pose_id, 320, 240);
                render.pose(pose).await.unwrap();
            }
        }
    });

    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        states = render_states(server, coordinator, "floor").await;
        if states
            .iter()
            .any(|s| s["fps"].as_f64().unwrap_or_default() > 5.0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    orbiting.abort();
    let of = |member: &str| {
        states
            .iter()
            .find(|s| s["member"] == member)
            .unwrap_or_else(|| panic!("{member} is listed: {states:?}"))
            .clone()
    };
    let (moving, idle) = (of(&moving.id), of(&idle.id));
    assert_eq!(
        (&moving["status"], &moving["device"]),
        (&json!("Ready"), &json!(true)),
        "{moving}"
    );
    assert!(moving["fps"].as_f64().unwrap() > 5.0, "{moving}");
    assert!(moving["frameMs"].as_f64().unwrap() > 0.0, "{moving}");
    assert_eq!(
        (&idle["status"], &idle["device"], &idle["fps"]),
        (&json!("Ready"), &json!(false), &json!(0.0)),
        "{idle}"
    );
    assert_eq!(states.len(), 2, "the tablet has no render session");
    signed_in.server.stop().await;
}

/// The `large` template, end to end: members come and go without a roster broadcast (MPSD's
/// large sessions), the space counts them, and every selection still reaches every member once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_space_sends_no_roster_but_every_selection_once() {
    let signed_in = SignedIn::start().await;
    let tablet = signed_in.space("hall", "large").await;
    let mut connections = Vec::new();
    for n in 0..3 {
        let member = signed_in
            .coordinator
            .join_space("hall", &format!("tablet-{n}"), Role::Tablet, None)
            .await
            .unwrap();
        let mut connection = member.connect().await.unwrap();
        assert!(matches!(
            connection.next_within(WAIT).await.unwrap(),
            SpaceUpdate::Snapshot(_)
        ));
        connections.push(connection);
    }
    tablet.select("gear").await.unwrap();
    tablet.select("shaft").await.unwrap();
    for connection in &mut connections {
        let mut selections = Vec::new();
        for update in drain(connection, Duration::from_millis(300)).await {
            match update {
                SpaceUpdate::Event {
                    event: SpaceEvent::Selection { model, .. },
                    ..
                } => selections.push(model.map(|m| m.as_str().to_string())),
                SpaceUpdate::Event {
                    event: SpaceEvent::Roster { .. },
                    ..
                } => panic!("a large space broadcasts no roster"),
                _ => {}
            }
        }
        assert_eq!(
            selections,
            [Some("gear".to_string()), Some("shaft".to_string())]
        );
    }
    let space = get_json(
        &signed_in.server,
        "/v1/spaces/hall",
        &signed_in.coordinator.token,
    )
    .await;
    assert_eq!(space["memberCount"], 4, "{space}");
    assert_eq!(space["constants"]["large"], true, "{space}");
    signed_in.server.stop().await;
}

/// Issue 34's room: where the model stands in the room is a space property any member writes (a
/// tablet on its room map, a wearer grabbing it), broadcast once to everyone, checked, and kept.
#[tokio::test]
async fn a_headset_moves_the_model_in_the_room_and_every_member_sees_it_once() {
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let tablet = coordinator
        .create_space("table", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let headset = coordinator
        .join_space("table", "headset", Role::Headset, None)
        .await
        .unwrap();
    let mut socket = tablet.connect().await.unwrap();
    drain(&mut socket, Duration::from_millis(200)).await;

    // Numbers an f32 holds exactly, so they come back as they went.
    let placed = json!({ "position": [0.5, 0.0, -0.25], "yawDegrees": 90.0, "size": 1.25 });
    headset
        .write(json!({ "room": placed }), None)
        .await
        .unwrap();
    let rooms: Vec<Value> = drain(&mut socket, Duration::from_millis(300))
        .await
        .into_iter()
        .filter_map(|u| match u {
            SpaceUpdate::Event {
                event: SpaceEvent::Room { room },
                ..
            } => Some(serde_json::to_value(room).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(
        rooms,
        std::slice::from_ref(&placed),
        "the tablet sees the move once"
    );

    // Of no size, against the document (400 naming the field), or out of the room, against a
    // rule it cannot state (422): refused, and nothing moves.
    let sizeless =
        json!({ "room": { "position": [0.0, 0.0, 0.0], "yawDegrees": 0.0, "size": 0.0 } });
    let refused = headset.write(sizeless, None).await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { status: 400, message, .. }) if message.contains("/room/size")),
        "{refused:?}"
    );
    let nowhere =
        json!({ "room": { "position": [80.0, 0.0, 80.0], "yawDegrees": 0.0, "size": 1.0 } });
    let refused = headset.write(nowhere, None).await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { status: 422, message, .. }) if message.contains("100 m")),
        "{refused:?}"
    );
    let space = tablet.space().await.unwrap();
    assert_eq!(space["properties"]["room"], placed);

    // It stays where it is when the tablet shows another model, and across a restart.
    tablet.select("gear").await.unwrap();
    server.stop().await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let space = coordinator.space("table").await.unwrap();
    assert_eq!(space["properties"]["room"], placed);
    assert_eq!(space["properties"]["selectedModel"], "gear");
    server.stop().await;
}

/// Issue 34's presence: where each aligned headset's wearer is and points reaches the headsets,
/// batched at most 15 times a second, and the tablets that show the room map, the whole room at
/// most twice a second (one that shows none gets nothing), the latest only; it is never in the log (a resume does not
/// replay it, though events still come exactly once), ends when the member's socket closes, and
/// bad ones or a tablet's are refused with a close that says why; a headset's watch changes
/// nothing.
#[tokio::test]
async fn presence_reaches_everyone_batched_and_is_never_replayed() {
    use parallax_core::space_protocol::Presence;
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = signed_in(&server, &account).await;
    let tablet = coordinator
        .create_space("presence", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let join = |device: &'static str| {
        let coordinator = &coordinator;
        async move {
            let join = parallax_headset::Join {
                device,
                role: Role::Headset,
                code: None,
                render_session: false,
            };
            coordinator.join("presence", &join).await.unwrap()
        }
    };
    let (a, b) = (join("Quest A").await, join("Quest B").await);
    let tablet_two = coordinator
        .join(
            "presence",
            &parallax_headset::Join {
                device: "tablet two",
                role: Role::Tablet,
                code: None,
                render_session: false,
            },
        )
        .await
        .unwrap();
    let mut watcher = tablet.connect().await.unwrap();
    let mut sender = a.connect().await.unwrap();
    let mut other = b.connect().await.unwrap();
    // A second tablet shows no room map: it gets no presence.
    let mut elsewhere = tablet_two.connect().await.unwrap();
    watcher.watch_map(true).await.unwrap();
    for socket in [&mut watcher, &mut sender, &mut other, &mut elsewhere] {
        drain(socket, Duration::from_millis(200)).await;
    }
    let at = |x: f32| Presence {
        head: [x, 1.6, 0.0],
        orientation: [0.0, 0.0, 0.0, 1.0],
        ray: Some([[x, 1.2, -0.2], [0.0, 0.0, -1.0]]),
    };
    // 60 updates as fast as they go: fewer, batched, arrive; the last one last.
    let started = std::time::Instant::now();
    for n in 0..60 {
        sender.send_presence(at(n as f32 * 0.01)).await.unwrap();
    }
    let presences = |updates: Vec<SpaceUpdate>| -> Vec<(Vec<String>, Vec<f32>)> {
        updates
            .into_iter()
            .filter_map(|u| match u {
                SpaceUpdate::Presence { members, .. } => Some((
                    members.iter().map(|m| m.device.clone()).collect(),
                    members.iter().map(|m| m.presence.head[0]).collect(),
                )),
                _ => None,
            })
            .collect()
    };
    let (by_b, by_tablet, by_other_tablet) = tokio::join!(
        drain(&mut other, Duration::from_millis(700)),
        drain(&mut watcher, Duration::from_millis(700)),
        drain(&mut elsewhere, Duration::from_millis(700)),
    );
    let (by_b, by_tablet) = (presences(by_b), presences(by_tablet));
    assert_eq!(presences(by_other_tablet), [], "a tablet without the map");
    // Batches came for as long as updates did, at most 15 a second to the headset and 2 to the
    // tablet: the drains ended 700 ms after the last.
    let window = started.elapsed().saturating_sub(Duration::from_millis(700));
    for (received, hz) in [(&by_b, 15.0), (&by_tablet, 2.0)] {
        let batches = received.len();
        let most = 1 + (window.as_secs_f64() * hz).ceil() as usize;
        assert!(
            (1..=most).contains(&batches) && batches < 30,
            "{batches} batches for 60 updates in {window:?} at {hz}/s: {received:?}"
        );
        let (devices, heads) = received.last().unwrap();
        assert_eq!(devices, &["Quest A"]);
        assert!((heads[0] - 0.59).abs() < 1e-6, "the latest: {heads:?}");
    }
    // Paced as a headset sends them, 15 a second for a second: the other headset gets nearly
    // every one, the tablet's slower turns beside them notwithstanding.
    let mut tick = tokio::time::interval(Duration::from_millis(67));
    for n in 0..15 {
        tick.tick().await;
        sender
            .send_presence(at(2.0 + n as f32 * 0.01))
            .await
            .unwrap();
    }
    let (paced, _) = tokio::join!(
        drain(&mut other, Duration::from_millis(300)),
        drain(&mut watcher, Duration::from_millis(700)),
    );
    let paced = presences(paced).len();
    assert!(
        (12..=16).contains(&paced),
        "{paced} batches for 15 paced updates"
    );

    // A resume replays events exactly once, and no presence.
    // While it is away A moves twice: back, it gets where A is now, not where A was.
    watcher.drop_connection();
    sender.send_presence(at(0.8)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    sender.send_presence(at(1.0)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    tablet
        .write(json!({ "custom": { "n": 1 } }), None)
        .await
        .unwrap();
    watcher.resume().await.unwrap();
    watcher.watch_map(true).await.unwrap();
    let after = drain(&mut watcher, Duration::from_millis(300)).await;
    let customs = after
        .iter()
        .filter(|u| {
            matches!(
                u,
                SpaceUpdate::Event {
                    event: SpaceEvent::Custom { .. },
                    ..
                }
            )
        })
        .count();
    assert_eq!(customs, 1, "{after:?}");
    assert!(
        !after.iter().any(|u| matches!(u, SpaceUpdate::Presence { members, .. } if members.iter().any(|m| m.presence.head[0] == 0.8))),
        "presence sent while it was away is not replayed: {after:?}"
    );
    let now: Vec<f32> = after
        .iter()
        .filter_map(|u| match u {
            SpaceUpdate::Presence { members, .. } => {
                Some(members.iter().map(|m| m.presence.head[0]))
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(now, [1.0], "where A is now, once: {after:?}");

    // The tablet hides its map: no more presence. It shows it again: the room as it is now, at
    // once.
    watcher.watch_map(false).await.unwrap();
    drain(&mut watcher, Duration::from_millis(100)).await;
    sender.send_presence(at(1.5)).await.unwrap();
    let hidden = drain(&mut watcher, Duration::from_millis(700)).await;
    assert_eq!(presences(hidden), [], "the map hidden");
    watcher.watch_map(true).await.unwrap();
    let shown = presences(drain(&mut watcher, Duration::from_millis(200)).await);
    assert_eq!(shown, [(vec!["Quest A".to_string()], vec![1.5])]);

    // A's socket closes: its presence is gone for the others.
    sender.bye().await.unwrap();
    let (gone, gone_on_map) = tokio::join!(
        drain(&mut other, Duration::from_millis(700)),
        drain(&mut watcher, Duration::from_millis(700)),
    );
    for gone in [gone, gone_on_map] {
        assert!(
            gone.iter()
                .any(|u| matches!(u, SpaceUpdate::Presence { gone, .. } if gone.len() == 1)),
            "{gone:?}"
        );
    }

    // A bad presence, or a tablet's, ends the conversation with the reason.
    let mut bad = a.connect().await.unwrap();
    drain(&mut bad, Duration::from_millis(100)).await;
    bad.send_presence(Presence {
        orientation: [0.0; 4],
        ..at(0.0)
    })
    .await
    .unwrap();
    let refused = bad.next_within(WAIT).await;
    assert!(
        matches!(&refused, Err(ClientError::Closed { code: 1008, reason }) if reason.contains("unit quaternion")),
        "{refused:?}"
    );
    let mut from_tablet = tablet.connect().await.unwrap();
    drain(&mut from_tablet, Duration::from_millis(100)).await;
    from_tablet.send_presence(at(0.0)).await.unwrap();
    let refused = from_tablet.next_within(WAIT).await;
    assert!(
        matches!(&refused, Err(ClientError::Closed { code: 1008, reason }) if reason.contains("only a headset")),
        "{refused:?}"
    );
    // A headset has everyone's presence already: its watch changes nothing, and it goes on
    // getting the batches.
    let mut from_headset = b.connect().await.unwrap();
    drain(&mut from_headset, Duration::from_millis(100)).await;
    from_headset.watch_map(false).await.unwrap();
    let mut again = a.connect().await.unwrap();
    drain(&mut again, Duration::from_millis(100)).await;
    again.send_presence(at(0.7)).await.unwrap();
    let batches = presences(drain(&mut from_headset, Duration::from_millis(300)).await);
    assert!(
        batches.iter().any(|(_, heads)| heads.contains(&0.7)),
        "{batches:?}"
    );
    server.stop().await;
}
