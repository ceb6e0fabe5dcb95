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
