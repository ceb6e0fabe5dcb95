//! What every WebSocket shares: close codes and reasons, the hello timeout, and the binary frame
//! header in front of every video frame, with the codecs frames come in. The messages themselves
//! are in [`crate::space_protocol`] and [`crate::device`].

use thiserror::Error;

use serde::{Deserialize, Serialize};

use crate::change::ChangeNumber;

/// WebSocket close code for a conversation that ended as agreed (`bye`).
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code when one side goes away: the server shuts down, the session ended, the
/// connection was lost.
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// WebSocket close code when the server stops to start again (IANA's "Service Restart"): a render
/// host told so keeps its device and links again, as when its coordinator died.
pub const CLOSE_SERVICE_RESTART: u16 = 1012;
/// WebSocket close code for a peer that broke the conversation's rules (RFC 6455 "policy violation").
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
/// WebSocket close code for a message that could not be understood at all.
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// How long a new connection may stay silent before it must have said `hello`.
pub const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The browser's session cookie: an access token, which the API and every WebSocket (the
/// render connection too: cookies do not tell ports apart) accept instead of a bearer token.
pub const SESSION_COOKIE: &str = "parallax_session";
/// A WebSocket close reason may hold at most 123 bytes.
pub const MAX_CLOSE_REASON: usize = 123;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProtocolError {
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("binary frame too short: {0} bytes, the header alone is {len}", len = FrameHeader::LEN)]
    FrameTooShort(usize),
    #[error("binary frame does not start with the Parallax frame magic")]
    BadFrameMagic,
    #[error("binary frame in an unknown codec ({0})")]
    UnknownCodec(u8),
    #[error(
        "binary frame with flags {0:#04x}: only bits 0 (key frame) and 1 (coverage) are defined"
    )]
    UnknownFrameFlags(u8),
}

/// How a render connection's frames are encoded, named as in `hello` and `welcome`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Codec {
    /// Each frame a baseline JPEG: decodes anywhere, no state between frames.
    #[default]
    Jpeg,
    /// H.264 Constrained Baseline in Annex B byte stream, no B-frames: each frame one access
    /// unit, the first and every one after a `keyframe` request an IDR with its SPS and PPS.
    H264,
}

impl Codec {
    /// Best first: the order the host prefers them in.
    pub const PREFERENCE: [Codec; 2] = [Codec::H264, Codec::Jpeg];

    /// The best codec both sides have, or `None` when they share none.
    pub fn choose(device: &[Codec], host: &[Codec]) -> Option<Codec> {
        Self::PREFERENCE
            .into_iter()
            .find(|c| device.contains(c) && host.contains(c))
    }

    /// The name in `hello` and `welcome`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }

    /// The byte in a [`FrameHeader`] that says which codec a frame is in.
    pub fn wire(self) -> u8 {
        match self {
            Codec::Jpeg => 0,
            Codec::H264 => 1,
        }
    }

    pub fn from_wire(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Codec::Jpeg),
            1 => Some(Codec::H264),
            _ => None,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Codec::Jpeg => "JPEG",
            Codec::H264 => "H.264",
        })
    }
}

/// The header in front of every binary video frame; the encoded image follows it directly.
///
/// Layout (little-endian): `b"PXF2"`, frame number (u64), pose id (u64), change number (u64),
/// codec (u8, [`Codec::wire`]), flags (u8: bit 0 set on a key frame, bit 1 on a frame that
/// carries its coverage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Counts the frames sent on one connection, so a client can see drops (and a video decoder
    /// can match each decoded picture to its frame).
    pub frame: u64,
    /// The pose this frame answers, so a headset can measure pose-to-photon latency.
    pub pose: u64,
    /// The selection this frame shows, so a client never pairs a frame with the wrong model.
    pub change: ChangeNumber,
    pub codec: Codec,
    /// Decodes on its own: every JPEG, and an H.264 IDR access unit.
    pub key: bool,
    /// The picture is twice as tall as the view: the colour on a transparent background,
    /// premultiplied by coverage, over its coverage as grey (255 where the model covers the
    /// pixel, 0 where the room shows through). Asked for by [`crate::device::Pose::coverage`].
    pub coverage: bool,
}

impl FrameHeader {
    pub const MAGIC: [u8; 4] = *b"PXF2";
    pub const LEN: usize = 4 + 8 + 8 + 8 + 1 + 1;
    const KEY: u8 = 1;
    const COVERAGE: u8 = 2;

    /// A full binary frame: this header followed by `image`.
    pub fn encode_with(&self, image: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN + image.len());
        out.extend_from_slice(&Self::MAGIC);
        out.extend_from_slice(&self.frame.to_le_bytes());
        out.extend_from_slice(&self.pose.to_le_bytes());
        out.extend_from_slice(&self.change.0.to_le_bytes());
        out.push(self.codec.wire());
        out.push(
            if self.key { Self::KEY } else { 0 } | if self.coverage { Self::COVERAGE } else { 0 },
        );
        out.extend_from_slice(image);
        out
    }

    /// Splits a binary frame into its header and the image bytes.
    pub fn decode(frame: &[u8]) -> Result<(Self, &[u8]), ProtocolError> {
        if frame.len() < Self::LEN {
            return Err(ProtocolError::FrameTooShort(frame.len()));
        }
        let (head, image) = frame.split_at(Self::LEN);
        if head[..4] != Self::MAGIC {
            return Err(ProtocolError::BadFrameMagic);
        }
        let word = |at: usize| u64::from_le_bytes(head[at..at + 8].try_into().expect("8 bytes"));
        let codec = Codec::from_wire(head[28]).ok_or(ProtocolError::UnknownCodec(head[28]))?;
        // Undefined bits set mean a frame from another version, or a corrupt one: what they ask
        // cannot be known, so the frame is refused rather than half understood.
        if head[29] & !(Self::KEY | Self::COVERAGE) != 0 {
            return Err(ProtocolError::UnknownFrameFlags(head[29]));
        }
        Ok((
            Self {
                frame: word(4),
                pose: word(12),
                change: ChangeNumber(word(20)),
                codec,
                key: head[29] & Self::KEY != 0,
                coverage: head[29] & Self::COVERAGE != 0,
            },
            image,
        ))
    }
}

/// Shortens a close reason to what a WebSocket close frame can carry, on a char boundary.
pub fn close_reason(reason: &str) -> &str {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason;
    }
    let mut end = MAX_CLOSE_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header_round_trips_and_keeps_the_image() {
        let header = FrameHeader {
            frame: 7,
            pose: 42,
            change: ChangeNumber(9),
            codec: Codec::H264,
            key: true,
            coverage: false,
        };
        let bytes = header.encode_with(&[0, 0, 0, 1]);
        assert_eq!(bytes.len(), FrameHeader::LEN + 4);
        let (decoded, image) = FrameHeader::decode(&bytes).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(image, &[0, 0, 0, 1]);
        let delta = FrameHeader {
            codec: Codec::Jpeg,
            key: false,
            coverage: true,
            ..header
        };
        assert_eq!(
            FrameHeader::decode(&delta.encode_with(&[])).unwrap().0,
            delta
        );
    }

    #[test]
    fn short_or_foreign_frames_are_rejected() {
        assert_eq!(
            FrameHeader::decode(b"PXF1"),
            Err(ProtocolError::FrameTooShort(4))
        );
        let mut foreign = vec![0u8; FrameHeader::LEN];
        foreign[..4].copy_from_slice(b"JFIF");
        assert_eq!(
            FrameHeader::decode(&foreign),
            Err(ProtocolError::BadFrameMagic)
        );
        let mut future = vec![0u8; FrameHeader::LEN];
        future[..4].copy_from_slice(&FrameHeader::MAGIC);
        future[28] = 9;
        assert_eq!(
            FrameHeader::decode(&future),
            Err(ProtocolError::UnknownCodec(9))
        );
    }

    #[test]
    fn frames_with_undefined_flags_are_rejected() {
        // Found by the `frame_header` fuzz target: flags 0xff decoded as a key frame, so a
        // frame read and written again was not the frame sent.
        let fuzzed =
            include_bytes!("../../tests/fuzz/regressions/frame_header/undefined-flags.bin");
        assert_eq!(
            FrameHeader::decode(fuzzed),
            Err(ProtocolError::UnknownFrameFlags(0xff))
        );
    }

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = "é".repeat(100);
        let cut = close_reason(&long);
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert!(long.starts_with(cut));
        assert_eq!(close_reason("bye"), "bye");
    }
}
