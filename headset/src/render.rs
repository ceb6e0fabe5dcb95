//! The exclusive render connection: one device, one render session, its `renderUrl`.
//!
//! The device says hello with its access token, loads models, sends poses and picks; the host
//! answers with binary frames (a [`FrameHeader`] and an H.264 access unit or a JPEG), decoded
//! here into [`Picture`]s, and JSON messages.

use futures_util::{SinkExt, StreamExt};
use parallax_core::ModelId;
use parallax_core::device::{Codec, DeviceMessage, HitPolicy, HostMessage, Pose, SESSION_TAKEN};
use parallax_core::protocol::FrameHeader;
use parallax_core::review::Review;
use parallax_core::trust::Trust;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::space::{ClientError, connect_socket};
use crate::video::{DecodeError, FrameDecoder, Picture};

/// What the render host sent.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderEvent {
    /// A rendered frame: which pose and which selection it shows, its picture, and how many
    /// bytes it took on the wire (header included).
    Frame {
        header: FrameHeader,
        picture: Picture,
        bytes: usize,
    },
    /// A video frame that could not be shown: the decoder lost its state. A key frame has been
    /// asked for; frames until it comes are skipped like this one.
    Skipped { header: FrameHeader, reason: String },
    /// Any other message: load progress, load results, pick results, errors.
    Message(HostMessage),
}

/// A device's exclusive connection to its render session.
pub struct RenderConnection {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    codec: Codec,
    /// `None` when the app decodes H.264 itself.
    decoder: Option<FrameDecoder>,
    next_pick: u64,
}

impl std::fmt::Debug for RenderConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderConnection")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl RenderConnection {
    /// Connects to a session's `renderUrl` (the render ticket in it opens the connection; no
    /// account token is ever sent to a render host) and says hello.
    ///
    /// [`ClientError::SessionTaken`] if another device holds the session, [`ClientError::Closed`]
    /// with the host's reason for any other refusal.
    pub async fn connect(render_url: &str) -> Result<Self, ClientError> {
        Self::connect_trusting(render_url, None).await
    }

    /// [`Self::connect`], verifying a `wss://` host against `trust`'s authorities only.
    pub async fn connect_trusting(
        render_url: &str,
        trust: Option<&Trust>,
    ) -> Result<Self, ClientError> {
        Self::connect_offering(render_url, trust, &Codec::PREFERENCE).await
    }

    /// [`Self::connect_trusting`], offering only `codecs` (this library decodes them all): the
    /// host picks the best of them it has.
    pub async fn connect_offering(
        render_url: &str,
        trust: Option<&Trust>,
        codecs: &[Codec],
    ) -> Result<Self, ClientError> {
        // Poses are small and frequent: send each at once (no Nagle).
        let socket = connect_socket(render_url, None, trust).await?;
        let mut connection = Self {
            socket,
            session: String::new(),
            codec: Codec::Jpeg,
            decoder: Some(FrameDecoder::default()),
            next_pick: 0,
        };
        connection
            .send(DeviceMessage::Hello {
                codecs: codecs.to_vec(),
            })
            .await?;
        match connection.next().await? {
            RenderEvent::Message(HostMessage::Welcome { session, codec }) => {
                connection.session = session;
                connection.codec = codec;
                Ok(connection)
            }
            other => Err(ClientError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    /// The render session this connection holds.
    pub fn session(&self) -> &str {
        &self.session
    }

    /// The codec the host chose for this connection's frames.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Asks for a key frame: the next frame decodes on its own. [`Self::next`] asks by itself
    /// when a frame does not decode.
    pub async fn request_keyframe(&mut self) -> Result<(), ClientError> {
        self.send(DeviceMessage::Keyframe).await
    }

    /// Whether H.264 frames are decoded here into [`Picture::Rgba`] (the default) or handed
    /// over as they came, [`Picture::H264`], for a decoder of the app's own: a headset's hardware
    /// decoder, or a load test that measures the hosts rather than itself.
    pub fn decode_video(&mut self, decode: bool) {
        self.decoder = decode.then(FrameDecoder::default);
    }

    /// Forgets the video stream so far, as a decoder reset does, and asks for a key frame:
    /// frames are skipped until it comes.
    pub async fn reset_decoder(&mut self) -> Result<(), ClientError> {
        if let Some(decoder) = &mut self.decoder {
            decoder.reset();
        }
        self.request_keyframe().await
    }

    /// Asks the host to load `model` from the catalog; frames show it once it is loaded.
    pub async fn load(&mut self, model: &str) -> Result<(), ClientError> {
        self.send(DeviceMessage::LoadModel {
            model: ModelId::new(model),
        })
        .await
    }

    /// What the design review shows from now on (parts hidden, tinted, see-through or
    /// highlighted, cut planes, the explode); a frame showing it follows.
    pub async fn set_review(&mut self, review: Review) -> Result<(), ClientError> {
        self.send(DeviceMessage::SetReview(review)).await
    }

    /// Where the device looks from now; a frame answering it follows.
    pub async fn pose(&mut self, pose: Pose) -> Result<(), ClientError> {
        self.send(DeviceMessage::Pose(pose)).await
    }

    /// Casts a ray through pixel (`x`, `y`) of the last pose's viewport; returns the pick's id,
    /// echoed in its `pick_result`.
    pub async fn pick(&mut self, x: f32, y: f32, policy: HitPolicy) -> Result<u64, ClientError> {
        self.next_pick += 1;
        let id = self.next_pick;
        self.send(DeviceMessage::Pick {
            id,
            x,
            y,
            policy,
            max_hits: 16,
        })
        .await?;
        Ok(id)
    }

    async fn send(&mut self, message: DeviceMessage) -> Result<(), ClientError> {
        self.socket.send(Message::text(message.to_json())).await?;
        Ok(())
    }

    /// The next frame or message. The end of the conversation is an error: the host's close
    /// code and reason ([`ClientError::SessionEnded`] when the lease ran out or was stopped).
    pub async fn next(&mut self) -> Result<RenderEvent, ClientError> {
        loop {
            let message = self.socket.next().await.ok_or(ClientError::Closed {
                code: 1006,
                reason: "the connection dropped without a close frame".into(),
            })??;
            match message {
                Message::Binary(bytes) => {
                    let (header, data) = FrameHeader::decode(&bytes)
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    let decoded = match &mut self.decoder {
                        Some(decoder) => decoder.decode(&header, data),
                        None if header.codec == Codec::H264 => Ok(Picture::H264(data.to_vec())),
                        None => Ok(Picture::Jpeg(data.to_vec())),
                    };
                    return match decoded {
                        Ok(picture) => Ok(RenderEvent::Frame {
                            header,
                            picture,
                            bytes: bytes.len(),
                        }),
                        Err(e) => {
                            // The frame that failed asks once; those after it wait.
                            if !matches!(e, DecodeError::NeedsKeyFrame { .. }) {
                                self.request_keyframe().await?;
                            }
                            Ok(RenderEvent::Skipped {
                                header,
                                reason: e.to_string(),
                            })
                        }
                    };
                }
                Message::Text(text) => {
                    let message = HostMessage::parse(text.as_str())
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    return Ok(RenderEvent::Message(message));
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(closed(code, reason));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Ends the conversation; the session stays leased (release it through its space or ARR).
    pub async fn bye(mut self) -> Result<(), ClientError> {
        self.send(DeviceMessage::Bye).await?;
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(ClientError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A close from the host, as the error a caller acts on.
fn closed(code: u16, reason: String) -> ClientError {
    if reason.contains(SESSION_TAKEN) {
        ClientError::SessionTaken(reason)
    } else if reason.contains("session has ended") {
        ClientError::SessionEnded(reason)
    } else {
        ClientError::Closed { code, reason }
    }
}
