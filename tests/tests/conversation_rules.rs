//! The space socket is a conversation: `hello` first, `bye` last, and a clear close reason for
//! a device that breaks the rules. Spoken with raw tokio-tungstenite, as a buggy client would.

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::{Coordinator, Membership, SpaceUpdate};
use parallax_tests::{ArrClient, TestServer, data_dir, within};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A coordinator with one space and its tablet.
async fn space() -> (tempfile::TempDir, TestServer, Membership) {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let tablet = coordinator
        .create_space("rules", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    (dir, server, tablet)
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
    let (_dir, server, tablet) = space().await;

    let (code, reason) = close_after(&server, vec![Message::text(r#"{"type":"bye"}"#)]).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "the first message must be hello")
    );

    let (code, reason) = close_after(&server, vec![Message::text("not json")]).await;
    assert_eq!(code, 1003);
    assert!(!reason.is_empty());

    let (code, _) = close_after(&server, vec![Message::binary(vec![1, 2, 3])]).await;
    assert_eq!(code, 1003);

    let stranger = json!({ "type": "hello", "member": "not-a-member-token" }).to_string();
    let (code, reason) = close_after(&server, vec![Message::text(stranger)]).await;
    assert_eq!(code, 1008, "{reason}");

    // The coordinator is unharmed: the tablet still gets in, with the whole space.
    let mut connection = within(tablet.connect()).await.unwrap();
    assert!(matches!(
        within(connection.next()).await.unwrap(),
        SpaceUpdate::Snapshot(_)
    ));
    server.stop().await;
}

#[tokio::test]
async fn a_second_hello_ends_the_conversation() {
    let (_dir, server, tablet) = space().await;
    let (code, reason) = close_after(&server, vec![hello(&tablet), hello(&tablet)]).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "hello was already received on this connection")
    );
    server.stop().await;
}
