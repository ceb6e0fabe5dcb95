//! `parallax-headset` is the client a native headset app embeds: it opens the conversation with
//! the coordinator and turns what arrives into [`Event`]s — selections and rendered frames.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parallax_headset::HeadsetError> {
//! let mut headset = parallax_headset::Headset::connect("http://127.0.0.1:3000", "quest-3").await?;
//! while let parallax_headset::Event::Frame { header, jpeg } = headset.next_event().await? {
//!     println!("frame {} of change {}: {} bytes", header.frame, header.change.0, jpeg.len());
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - this file: [`Headset`], [`Event`], [`HeadsetError`] (the default space of the slice).
//! - [`space`]: [`Coordinator`], [`Membership`], [`SpaceConnection`]: spaces with acks and resume.
//! - [`load`]: many simulated headsets in one space, measured (`parallax-headset load`).
//! - [`render`]: [`RenderConnection`]: the exclusive render connection (poses, frames, picks).
//! - `main.rs`: the `parallax-headset` command line.

pub mod load;
pub mod render;
pub mod space;

pub use render::{RenderConnection, RenderEvent};
pub use space::{ClientError, Coordinator, Join, Membership, SpaceConnection, SpaceUpdate};

use futures_util::{SinkExt, StreamExt};
use parallax_core::protocol::ProtocolError;
use parallax_core::{
    ChangeNumber, ClientMessage, Follower, FrameHeader, ModelSummary, ServerMessage,
};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What the coordinator told this headset.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The space now shows `model`. Each change arrives once: repeats and stale ones are dropped.
    Selection {
        change: ChangeNumber,
        model: Option<ModelSummary>,
    },
    /// A rendered frame; `jpeg` is a complete JPEG image.
    Frame { header: FrameHeader, jpeg: Vec<u8> },
    /// Something failed on the server side; the conversation goes on.
    Error { code: String, message: String },
}

#[derive(Debug, Error)]
pub enum HeadsetError {
    #[error("could not connect to {url}: {source}")]
    Connect {
        url: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("the connection failed: {0}")]
    Transport(#[from] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("the server closed the conversation ({code}): {reason}")]
    Closed { code: u16, reason: String },
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
}

impl From<ProtocolError> for HeadsetError {
    fn from(error: ProtocolError) -> Self {
        Self::Protocol(error.to_string())
    }
}

impl From<tokio_tungstenite::tungstenite::Error> for HeadsetError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::Transport(Box::new(error))
    }
}

/// One headset's open conversation with a coordinator.
pub struct Headset {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    follower: Follower,
    conversation: String,
}

impl Headset {
    /// Connects to the coordinator at `server` (`http://host:port`), says hello as `device` and
    /// waits for the welcome.
    pub async fn connect(server: &str, device: &str) -> Result<Self, HeadsetError> {
        let url = socket_url(server, "/v1/headset/ws");
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .map_err(|source| HeadsetError::Connect {
                url: url.clone(),
                source: Box::new(source),
            })?;
        let hello = ClientMessage::Hello {
            token: None,
            device: Some(device.to_string()),
        };
        socket.send(Message::text(hello.to_json())).await?;
        let mut headset = Self {
            socket,
            follower: Follower::default(),
            conversation: String::new(),
        };
        match headset.next_message().await? {
            ServerOrFrame::Server(ServerMessage::Welcome { conversation }) => {
                headset.conversation = conversation;
                Ok(headset)
            }
            other => Err(HeadsetError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    /// The server's id for this conversation, as it appears in its logs.
    pub fn conversation(&self) -> &str {
        &self.conversation
    }

    /// Waits for the next event.
    pub async fn next_event(&mut self) -> Result<Event, HeadsetError> {
        loop {
            match self.next_message().await? {
                ServerOrFrame::Server(ServerMessage::Selection { change, model }) => {
                    if self.follower.handle_update(change) {
                        return Ok(Event::Selection { change, model });
                    }
                }
                ServerOrFrame::Server(ServerMessage::Error { code, message }) => {
                    return Ok(Event::Error { code, message });
                }
                ServerOrFrame::Server(ServerMessage::Welcome { .. }) => {
                    return Err(HeadsetError::Protocol("a second welcome".into()));
                }
                ServerOrFrame::Frame(header, jpeg) => {
                    // A frame of a selection older than the newest one seen is stale.
                    if self
                        .follower
                        .seen()
                        .is_none_or(|seen| header.change >= seen)
                    {
                        return Ok(Event::Frame { header, jpeg });
                    }
                }
            }
        }
    }

    /// Ends the conversation politely and waits for the server to close it.
    pub async fn bye(mut self) -> Result<CloseFrame, HeadsetError> {
        self.socket
            .send(Message::text(ClientMessage::Bye.to_json()))
            .await?;
        loop {
            match self.next_message().await {
                Ok(_) => continue,
                Err(HeadsetError::Closed { code, reason }) => {
                    return Ok(CloseFrame {
                        code: code.into(),
                        reason: reason.into(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn next_message(&mut self) -> Result<ServerOrFrame, HeadsetError> {
        loop {
            let message = self.socket.next().await.ok_or(HeadsetError::Closed {
                code: 1006,
                reason: "the connection dropped without a close frame".into(),
            })??;
            match message {
                Message::Text(text) => {
                    return Ok(ServerOrFrame::Server(ServerMessage::parse(text.as_str())?));
                }
                Message::Binary(bytes) => {
                    let (header, jpeg) = FrameHeader::decode(&bytes)?;
                    return Ok(ServerOrFrame::Frame(header, jpeg.to_vec()));
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(HeadsetError::Closed { code, reason });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }
}

#[derive(Debug)]
enum ServerOrFrame {
    Server(ServerMessage),
    Frame(FrameHeader, Vec<u8>),
}

/// `http://host:port` → `ws://host:port{path}` (and `https` → `wss`).
pub fn socket_url(server: &str, path: &str) -> String {
    let server = server.trim_end_matches('/');
    let base = if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_string()
    } else {
        format!("ws://{server}")
    };
    format!("{base}{path}")
}

#[cfg(test)]
mod tests {
    use super::socket_url;

    #[test]
    fn server_addresses_become_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
        assert_eq!(
            socket_url("https://p.example/", "/v1/x"),
            "wss://p.example/v1/x"
        );
        assert_eq!(
            socket_url("127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
    }
}
