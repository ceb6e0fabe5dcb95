//! The socket protocols as the API document states them. `/openapi.json` holds a schema for each
//! direction of each socket (`SpaceClientMessage` and `SpaceServerMessage` on the space socket,
//! `DeviceMessage` and `HostMessage` on the render connection, `HostReport` and `HostCommand` on
//! the host link), generated from the types both ends parse. Here real clients drive a real
//! coordinator and render host through every kind of message, and each text message either side
//! sends is checked against its schema.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parallax_tests::{
    ArrClient, TestServer, data_dir, get_public_json, ready_session, swaying_wearer,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The socket messages' schemas, by name.
const MESSAGES: [&str; 6] = [
    "SpaceClientMessage",
    "SpaceServerMessage",
    "DeviceMessage",
    "HostMessage",
    "HostReport",
    "HostCommand",
];

/// The document's schemas of the socket messages, each compiled once.
struct Schemas {
    validators: HashMap<&'static str, jsonschema::Validator>,
}

impl Schemas {
    async fn of(server: &TestServer) -> Self {
        let document = get_public_json(server, "/openapi.json").await;
        let compile = |name: &'static str| {
            let root = json!({
                "$ref": format!("#/components/schemas/{name}"),
                "components": document["components"],
            });
            let validator = jsonschema::draft202012::options()
                .build(&root)
                .unwrap_or_else(|e| panic!("the document's {name} does not compile: {e}"));
            (name, validator)
        };
        Self {
            validators: MESSAGES.into_iter().map(compile).collect(),
        }
    }

    /// Panics, naming the place and the message, unless `message` is as the schema `name` says.
    fn check(&self, name: &str, message: &Value) {
        let validator = &self.validators[name];
        if let Err(error) = validator.validate(message) {
            panic!(
                "a message is not the document's {name}: {error} (at {}): {message}",
                error.instance_path()
            );
        }
    }
}

/// `url` (http or https) as a WebSocket URL.
fn socket_url(url: &str) -> String {
    url.replacen("http", "ws", 1)
}

/// Sends `message`, checked against the document's schema `name` first.
async fn send(socket: &mut Socket, schemas: &Schemas, name: &str, message: Value) {
    schemas.check(name, &message);
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
}

/// The next text message within `wait`, checked against the schema `name`; `None` on silence.
async fn receive(
    socket: &mut Socket,
    schemas: &Schemas,
    name: &str,
    wait: Duration,
) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(wait, socket.next())
            .await
            .ok()??
            .unwrap();
        match message {
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                schemas.check(name, &value);
                return Some(value);
            }
            Message::Close(frame) => panic!("the socket closed: {frame:?}"),
            _ => {}
        }
    }
}

/// A member's socket to space `space`, welcomed.
async fn member_socket(
    server: &TestServer,
    schemas: &Schemas,
    space: &str,
    token: &str,
    member: &str,
) -> Socket {
    let url = format!("{}/v1/spaces/{space}/ws", socket_url(&server.url()));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = json!({ "type": "hello", "token": token, "member": member });
    send(&mut socket, schemas, "SpaceClientMessage", hello).await;
    let welcome = receive(
        &mut socket,
        schemas,
        "SpaceServerMessage",
        Duration::from_secs(5),
    )
    .await
    .expect("a welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    socket
}

#[tokio::test(flavor = "multi_thread")]
async fn every_space_socket_message_is_as_the_document_states_it() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "wire").await;
    let server = TestServer::start(dir.path()).await;
    let owner = ArrClient::sign_in(&server, &account, &key).await;
    let schemas = Schemas::of(&server).await;
    let spaces = format!("{}/v1/spaces/wire", server.url());
    // The check refuses what the document does not allow: an event without its number or kind.
    let unnumbered = json!({ "type": "event", "change": 1, "event": {} });
    let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        schemas.check("SpaceServerMessage", &unnumbered)
    }));
    assert!(refused.is_err(), "an event without seq is refused");

    let created = owner
        .call(
            reqwest::Method::PUT,
            &spaces,
            Some(json!({ "device": "wire tablet", "role": "tablet" })),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let tablet = created.body["member"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    let members = format!("{spaces}/members");
    let join = |device: &str, role: &str| {
        let body = json!({ "device": device, "role": role, "renderSession": false });
        owner.call(reqwest::Method::POST, &members, Some(body))
    };
    let joined = join("wire headset", "headset").await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    let headset = joined.body["member"]["token"].as_str().unwrap().to_string();

    let mut tablet_socket = member_socket(&server, &schemas, "wire", &owner.token, &tablet).await;
    let mut headset_socket = member_socket(&server, &schemas, "wire", &owner.token, &headset).await;
    // The tablet shows the room map: it hears presence too.
    let watch = json!({ "type": "watch", "map": true });
    send(&mut tablet_socket, &schemas, "SpaceClientMessage", watch).await;

    // Every kind of write, as a tablet's page and a headset make them.
    let write = |patch: Value| {
        let request = server
            .http()
            .patch(format!("{spaces}/properties"))
            .bearer_auth(&owner.token)
            .header("parallax-member", &tablet)
            .json(&patch);
        async move {
            let answer = request.send().await.unwrap();
            assert_eq!(
                answer.status(),
                200,
                "{patch}: {}",
                answer.text().await.unwrap()
            );
        }
    };
    write(json!({ "selectedModel": "gear",
        "transform": { "position": [0, 0, 0], "rotation": [0, 0, 0, 1], "scale": 1 } }))
    .await;
    write(json!({ "custom": { "note": "from the wire test" } })).await;
    write(json!({ "review": {
        "parts": { "Gear": { "tint": [1, 0, 0], "seeThrough": true } },
        "cutPlanes": [{ "point": [0, 0, 0], "normal": [1, 0, 0] }],
        "explode": 0.25,
        "pointer": { "target": [0, 0, 0], "origin": [0, 1, 1], "part": "Gear" } } }))
    .await;
    write(json!({ "pick": { "part": "Gear", "position": [0, 0.1, 0] } })).await;
    write(json!({ "room": { "position": [0, 0.75, -1], "yawDegrees": 30, "size": 0.5 } })).await;
    let presence = json!({ "type": "presence", "presence": swaying_wearer(0, 0.0) });
    send(
        &mut headset_socket,
        &schemas,
        "SpaceClientMessage",
        presence,
    )
    .await;
    for status in ["inactive", "active"] {
        let message = json!({ "type": "status", "status": status });
        send(&mut headset_socket, &schemas, "SpaceClientMessage", message).await;
    }
    // Someone comes and goes: the roster, twice.
    let visitor = join("wire visitor", "tablet").await;
    let visitor_token = visitor.body["member"]["token"].as_str().unwrap();
    let left = server
        .http()
        .delete(format!("{spaces}/members/me"))
        .bearer_auth(&owner.token)
        .header("parallax-member", visitor_token)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 204);

    // The tablet hears it all, acknowledging as a client does.
    let mut heard = BTreeSet::new();
    while let Some(message) = receive(
        &mut tablet_socket,
        &schemas,
        "SpaceServerMessage",
        Duration::from_secs(2),
    )
    .await
    {
        match message["type"].as_str().unwrap() {
            "event" => {
                heard.insert(message["event"]["kind"].as_str().unwrap().to_string());
                let ack = json!({ "type": "ack", "seq": message["seq"] });
                send(&mut tablet_socket, &schemas, "SpaceClientMessage", ack).await;
            }
            other => {
                heard.insert(other.to_string());
            }
        }
    }
    let expected = [
        "custom",
        "pick",
        "presence",
        "review",
        "room",
        "roster",
        "selection",
    ];
    assert!(
        expected.iter().all(|kind| heard.contains(*kind)),
        "heard {heard:?}, not all of {expected:?}"
    );
    // The headset hears them too, and says goodbye.
    let heard_by_headset = receive(
        &mut headset_socket,
        &schemas,
        "SpaceServerMessage",
        Duration::from_secs(2),
    )
    .await;
    assert!(heard_by_headset.is_some());
    send(
        &mut headset_socket,
        &schemas,
        "SpaceClientMessage",
        json!({ "type": "bye" }),
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_render_connection_message_is_as_the_document_states_it() {
    let (_dir, server, _arr, url) = ready_session("wire-render", "wire").await;
    let schemas = Schemas::of(&server).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let device = "DeviceMessage";
    send(
        &mut socket,
        &schemas,
        device,
        json!({ "type": "hello", "codecs": ["jpeg"] }),
    )
    .await;
    let welcome = receive(
        &mut socket,
        &schemas,
        "HostMessage",
        Duration::from_secs(10),
    )
    .await
    .expect("a welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    send(
        &mut socket,
        &schemas,
        device,
        json!({ "type": "load_model", "model": "gear" }),
    )
    .await;
    let pose = json!({ "type": "pose", "id": 1, "position": [0, 0.2, 0.5], "target": [0, 0, 0],
        "fovYDegrees": 45, "width": 64, "height": 48 });
    send(&mut socket, &schemas, device, pose).await;
    let placed = json!({ "type": "set_transform", "position": [0, 0, 0],
        "rotation": [0, 0, 0, 1], "scale": 1 });
    send(&mut socket, &schemas, device, placed).await;
    let review = json!({ "type": "set_review", "explode": 0.1,
        "cutPlanes": [{ "point": [0, 0, 0], "normal": [0, 1, 0] }] });
    send(&mut socket, &schemas, device, review).await;
    send(&mut socket, &schemas, device, json!({ "type": "keyframe" })).await;
    let pick = json!({ "type": "pick", "id": 2, "x": 32, "y": 24, "policy": "all" });
    send(&mut socket, &schemas, device, pick).await;
    let ray = json!({ "type": "ray_cast", "id": 3, "origin": [0, 0.2, 0.5],
        "direction": [0, -0.371, -0.928] });
    send(&mut socket, &schemas, device, ray).await;
    // Well-formed, but no placement: the host says why.
    let unturned = json!({ "type": "set_transform", "position": [0, 0, 0],
        "rotation": [0, 0, 0, 0], "scale": 1 });
    send(&mut socket, &schemas, device, unturned).await;

    let mut heard = BTreeSet::new();
    while let Some(message) =
        receive(&mut socket, &schemas, "HostMessage", Duration::from_secs(5)).await
    {
        heard.insert(message["type"].as_str().unwrap().to_string());
        if ["load_done", "pick_result", "error"]
            .iter()
            .all(|kind| heard.contains(*kind))
        {
            break;
        }
    }
    assert!(
        ["load_done", "pick_result", "error"]
            .iter()
            .all(|kind| heard.contains(*kind)),
        "heard {heard:?}"
    );
    send(&mut socket, &schemas, device, json!({ "type": "bye" })).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_host_link_is_as_the_document_states_it() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    let schemas = Schemas::of(&server).await;
    let credential = server.host_credential().await;
    let url = format!("{}/v1/hosts/ws", socket_url(&server.url()));
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let register = json!({ "type": "register", "credential": credential, "size": "Standard",
        "host": null, "endpoint": "ws://127.0.0.1:9", "adapter": "the wire test", "pid": 1 });
    send(&mut socket, &schemas, "HostReport", register).await;
    let registered = receive(&mut socket, &schemas, "HostCommand", Duration::from_secs(5))
        .await
        .expect("registered");
    assert_eq!(registered["type"], "registered", "{registered}");
    let heartbeat = json!({ "type": "heartbeat", "device": false, "fps": 0 });
    send(&mut socket, &schemas, "HostReport", heartbeat).await;
    // Whatever else comes within a heartbeat's silence is as documented too.
    while receive(
        &mut socket,
        &schemas,
        "HostCommand",
        Duration::from_millis(800),
    )
    .await
    .is_some()
    {}
    server.stop().await;
}
