//! What every connection a Parallax process accepts has in common — the render host's and the
//! coordinator's alike: peers send small messages, and small messages go out at once.

use axum::extract::ws::WebSocketUpgrade;
use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Read buffer of every WebSocket the server accepts; longer messages still arrive (the buffer
/// grows for them).
const READ_BUFFER: usize = 1024;
/// Largest message a peer may send: hellos, acks, poses and host reports are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// Every peer of the server sends small JSON. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) before every read: more work than the message, and resident memory for
/// each of thousands of idle members.
pub fn small_messages(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
}

/// Every accepted connection sends small messages at once. With Nagle's algorithm a second small
/// write waits until the peer acknowledges the first, and a peer with nothing to say delays that
/// acknowledgement by up to 40 ms: a space event after another, or a frame after its header.
pub fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

fn set_no_delay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("could not set TCP_NODELAY on a connection: {e}");
    }
}

/// The configuration of a socket upgraded by hand: small messages, as [`small_messages`].
pub fn small_messages_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
}
