//! What every WebSocket (and connection) the server accepts has in common.

use axum::extract::ws::WebSocketUpgrade;
use axum::serve::{ListenerExt, TapIo};
use tokio::net::{TcpListener, TcpStream};

/// Read buffer of every WebSocket the server accepts; longer messages still arrive (the buffer
/// grows for them).
const READ_BUFFER: usize = 1024;
/// Largest message a peer may send: hellos, acks, poses and host reports are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// Every peer of the server sends small JSON. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) before every read: more work than the message, and resident memory for
/// each of thousands of idle members.
pub(crate) fn small_messages(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
}

/// Every accepted connection sends small messages at once. With Nagle's algorithm a second small
/// write waits until the peer acknowledges the first, and a peer with nothing to say delays that
/// acknowledgement by up to 40 ms: a space event after another, or a frame after its header.
pub(crate) fn no_delay(listener: TcpListener) -> TapIo<TcpListener, fn(&mut TcpStream)> {
    listener.tap_io(set_no_delay as fn(&mut TcpStream))
}

fn set_no_delay(stream: &mut TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("could not set TCP_NODELAY on a connection: {e}");
    }
}
