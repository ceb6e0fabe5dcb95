//! The headset socket is a conversation: `hello` first, `bye` last, and a clear close reason for
//! a device that breaks the rules. Spoken with raw tokio-tungstenite, as a buggy client would.

use futures_util::{SinkExt, StreamExt};
use parallax_tests::{TestServer, data_dir, within};
use tokio_tungstenite::tungstenite::Message;

/// Sends `first` as the first message and returns the close frame's code and reason.
async fn close_after(server: &TestServer, first: Message) -> (u16, String) {
    let url = format!("ws://{}/v1/headset/ws", server.addr);
    let (mut socket, _) = within(tokio_tungstenite::connect_async(&url))
        .await
        .unwrap();
    socket.send(first).await.unwrap();
    match within(socket.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => (u16::from(frame.code), frame.reason.to_string()),
        Some(Ok(Message::Close(None))) | None => panic!("closed without a reason"),
        Some(Ok(other)) => panic!("expected a close, got {other:?}"),
        Some(Err(e)) => panic!("socket error before a close frame: {e}"),
    }
}

#[tokio::test]
async fn anything_but_hello_first_is_refused_with_a_reason() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;

    let (code, reason) = close_after(&server, Message::text(r#"{"type":"bye"}"#)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1008, "the first message must be hello")
    );

    let (code, reason) = close_after(&server, Message::text("not json")).await;
    assert_eq!(code, 1003);
    assert!(reason.starts_with("malformed message"), "{reason}");

    let (code, reason) = close_after(&server, Message::binary(vec![1, 2, 3])).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("JSON text"), "{reason}");

    // The coordinator is unharmed: a well-behaved headset still gets in.
    within(parallax_headset::Headset::connect(&server.url(), "h"))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn a_second_hello_ends_the_conversation() {
    let dir = data_dir();
    let server = TestServer::start(dir.path()).await;
    let url = format!("ws://{}/v1/headset/ws", server.addr);
    let (mut socket, _) = within(tokio_tungstenite::connect_async(&url))
        .await
        .unwrap();
    let hello = Message::text(r#"{"type":"hello"}"#);
    socket.send(hello.clone()).await.unwrap();
    socket.send(hello).await.unwrap();
    let mut close = None;
    while let Some(Ok(message)) = within(socket.next()).await {
        if let Message::Close(frame) = message {
            close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
            break;
        }
    }
    assert_eq!(
        close,
        Some((
            1008,
            "hello was already received on this connection".to_string()
        ))
    );
    server.stop().await;
}
