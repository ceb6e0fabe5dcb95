//! What every WebSocket (and connection) the server accepts has in common.

use axum::extract::FromRequestParts;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::{ListenerExt, TapIo};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::AppError;
use crate::outlet::Upgraded;

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

/// A WebSocket upgrade whose socket the handler gets as it is, for [`crate::outlet`] to share
/// (axum's extractor hands out only its own `WebSocket`). HTTP/1.1, RFC 6455.
pub(crate) struct RawUpgrade {
    on_upgrade: OnUpgrade,
    accept: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RawUpgrade {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let has = |name: header::HeaderName, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value
                    .as_bytes()
                    .split(|&b| b == b',')
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        if parts.method != Method::GET
            || !has(header::CONNECTION, "upgrade")
            || !has(header::UPGRADE, "websocket")
        {
            return Err(AppError::client(
                StatusCode::UPGRADE_REQUIRED,
                "UpgradeRequired",
                "this is a WebSocket: send a GET with Connection: upgrade and Upgrade: websocket",
            ));
        }
        if !has(header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(AppError::bad_request(
                "Sec-WebSocket-Version must be 13",
                Some("Sec-WebSocket-Version"),
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| {
                AppError::bad_request(
                    "the Sec-WebSocket-Key header is missing",
                    Some("Sec-WebSocket-Key"),
                )
            })?;
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            AppError::bad_request("this connection cannot be upgraded to a WebSocket", None)
        })?;
        Ok(Self { on_upgrade, accept })
    }
}

impl RawUpgrade {
    /// Answers 101 Switching Protocols; `then` gets the socket once the answer is sent.
    pub(crate) fn on_upgrade<F, Fut>(self, then: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(async move {
            match self.on_upgrade.await {
                Ok(upgraded) => then(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!("a WebSocket upgrade did not complete: {e}"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (
                    header::SEC_WEBSOCKET_ACCEPT,
                    HeaderValue::from_str(&self.accept).expect("base64 is a header value"),
                ),
            ],
        )
            .into_response()
    }
}

/// The configuration of a socket upgraded by [`RawUpgrade`]: small messages, as
/// [`small_messages`].
pub(crate) fn small_messages_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_MESSAGE))
}
