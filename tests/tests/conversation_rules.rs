//! The space socket is a conversation: `hello` first, `bye` last, and a clear close reason for
//! a device that breaks the rules. Spoken with raw tokio-tungstenite, as a buggy client would.

use futures_util::{SinkExt, StreamExt};
use parallax_headset::{Membership, SpaceUpdate};
use parallax_tests::{SignedIn, TestServer, within};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A coordinator with one space and its tablet.
async fn space() -> (SignedIn, Membership) {
    let signed_in = SignedIn::start().await;
    let tablet = signed_in.space("rules", "default").await;
    (signed_in, tablet)
}

fn socket_url(server: &TestServer) -> String {
    format!("ws://{}/v1/spaces/rules/ws", server.addr)
}

fn hello(member: &Membership) -> Message {
    let hello = json!({
        "type": "hello",
        "token": member.coordinator().token,
        "member": member.token,
    });
    Message::text(hello.to_string())
}

/// Sends `messages` and returns the close frame's code and reason.
async fn close_after(server: &TestServer, messages: Vec<Message>) -> (u16, String) {
    let (mut socket, _) = within(tokio_tungstenite::connect_async(socket_url(server)))
        .await
        .unwrap();
    for message in messages {
        socket.send(message).await.unwrap();
    }
    loop {
        match within(socket.next()).await {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a reason"),
            Some(Ok(_)) => {} // the welcome, when the hello was good
            Some(Err(e)) => panic!("socket error before a close frame: {e}"),
        }
    }
}

#[tokio::test]
async fn anything_but_hello_first_is_refused_with_a_reason() {
    let (signed_in, tablet) = space().await;
    let server = &signed_in.server;

    let (code, reason) = close_after(server, vec![Message::text(r#"{"type":"bye"}"#)]).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "the first message must be hello")
    );

    let (code, reason) = close_after(server, vec![Message::text("not json")]).await;
    assert_eq!(code, 1003);
    assert!(!reason.is_empty());

    let (code, _) = close_after(server, vec![Message::binary(vec![1, 2, 3])]).await;
    assert_eq!(code, 1003);

    let stranger = json!({ "type": "hello", "member": "not-a-member-token" }).to_string();
    let (code, reason) = close_after(server, vec![Message::text(stranger)]).await;
    assert_eq!(code, 1008, "{reason}");

    // The coordinator is unharmed: the tablet still gets in, with the whole space.
    let mut connection = within(tablet.connect()).await.unwrap();
    assert!(matches!(
        within(connection.next()).await.unwrap(),
        SpaceUpdate::Snapshot(_)
    ));
    signed_in.server.stop().await;
}

#[tokio::test]
async fn a_second_hello_ends_the_conversation() {
    let (signed_in, tablet) = space().await;
    let server = &signed_in.server;
    let (code, reason) = close_after(server, vec![hello(&tablet), hello(&tablet)]).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "hello was already received on this connection")
    );
    signed_in.server.stop().await;
}

#[tokio::test]
async fn a_plain_request_is_told_to_upgrade_and_a_ping_on_the_socket_is_answered() {
    let (signed_in, tablet) = space().await;
    let server = &signed_in.server;
    let response = within(reqwest::get(format!(
        "http://{}/v1/spaces/rules/ws",
        server.addr
    )))
    .await
    .unwrap();
    assert_eq!(response.status(), 426);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UpgradeRequired");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("WebSocket")),
        "{body}"
    );

    // The server's own frames (a pong here) and the events share the socket without mixing.
    let (mut socket, _) = within(tokio_tungstenite::connect_async(socket_url(server)))
        .await
        .unwrap();
    socket.send(hello(&tablet)).await.unwrap();
    socket
        .send(Message::Ping(b"are you there".to_vec().into()))
        .await
        .unwrap();
    let (mut welcomed, mut ponged) = (false, false);
    while !(welcomed && ponged) {
        match within(socket.next()).await {
            Some(Ok(Message::Text(text))) => {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                // The welcome first; events (this member's own arrival) may follow it.
                assert!(welcomed || message["type"] == "welcome", "{message}");
                welcomed = true;
            }
            Some(Ok(Message::Pong(data))) => {
                assert_eq!(&data[..], b"are you there");
                ponged = true;
            }
            other => panic!("expected the welcome and a pong, got {other:?}"),
        }
    }
    tablet.select("gear").await.unwrap();
    loop {
        match within(socket.next()).await {
            Some(Ok(Message::Text(text))) => {
                let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                if message["event"]["kind"] == "selection" {
                    assert_eq!(message["event"]["model"], "gear");
                    break;
                }
            }
            other => panic!("expected the selection, got {other:?}"),
        }
    }
    signed_in.server.stop().await;
}

/// The next text message on `socket`, as JSON.
async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> serde_json::Value {
    loop {
        match within(socket.next()).await {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// Resuming with `lastSeq` replays exactly what came after it — read on a raw socket, since the
/// client library would quietly drop anything replayed twice.
#[tokio::test]
async fn a_resume_replays_exactly_the_events_after_the_last_one_processed() {
    let (signed_in, tablet) = space().await;
    let watcher = signed_in
        .coordinator
        .join_space("rules", "watcher", parallax_core::space::Role::Tablet, None)
        .await
        .unwrap();
    let (mut socket, _) = within(tokio_tungstenite::connect_async(socket_url(
        &signed_in.server,
    )))
    .await
    .unwrap();
    socket.send(hello(&watcher)).await.unwrap();
    assert_eq!(next_json(&mut socket).await["type"], "welcome");
    let models = ["gear", "shaft", "gear", "bracket", "shaft", "gear"];
    for model in &models[..4] {
        tablet.select(model).await.unwrap();
    }
    // Four selections arrive (and maybe roster changes); the watcher processes two of them.
    let mut processed = 0;
    let mut last_seq = 0;
    while processed < 2 {
        let event = next_json(&mut socket).await;
        last_seq = event["seq"].as_u64().unwrap();
        if event["event"]["kind"] == "selection" {
            processed += 1;
        }
    }
    drop(socket);
    for model in &models[4..] {
        tablet.select(model).await.unwrap();
    }

    let (mut socket, _) = within(tokio_tungstenite::connect_async(socket_url(
        &signed_in.server,
    )))
    .await
    .unwrap();
    let resume = json!({
        "type": "hello",
        "token": watcher.coordinator().token,
        "member": watcher.token,
        "lastSeq": last_seq,
    });
    socket
        .send(Message::text(resume.to_string()))
        .await
        .unwrap();
    let welcome = next_json(&mut socket).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert!(
        welcome.get("space").is_none(),
        "a resume, not a snapshot: {welcome}"
    );
    let mut expected_seq = last_seq + 1;
    let mut selected = Vec::new();
    while selected.len() < 4 {
        let event = next_json(&mut socket).await;
        assert_eq!(
            event["seq"], expected_seq,
            "each event once, in order: {event}"
        );
        expected_seq += 1;
        if event["event"]["kind"] == "selection" {
            selected.push(event["event"]["model"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        selected,
        models[2..],
        "the two unprocessed, then the two missed"
    );
    // And nothing more: no selection is replayed twice.
    let more = tokio::time::timeout(std::time::Duration::from_millis(300), socket.next()).await;
    if let Ok(Some(Ok(Message::Text(text)))) = more {
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_ne!(
            event["event"]["kind"], "selection",
            "replayed again: {event}"
        );
        assert_eq!(event["seq"], expected_seq, "{event}");
    }
    signed_in.server.stop().await;
}
