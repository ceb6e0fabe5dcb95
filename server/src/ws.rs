//! What every WebSocket the server accepts has in common.

use axum::extract::ws::WebSocketUpgrade;

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
