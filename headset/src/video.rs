//! Frames as pictures: JPEG kept as the file it is, H.264 decoded with OpenH264 (built from its
//! bundled source) into RGBA. A decoder that lost its state says so, so that the connection asks
//! for a key frame and skips frames until one comes.

use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use parallax_core::device::Codec;
use parallax_core::protocol::FrameHeader;
use parallax_core::yuv::I420;
use thiserror::Error;

/// What a frame shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Picture {
    /// A JPEG file's bytes, as the host sent them.
    Jpeg(Vec<u8>),
    /// An H.264 access unit as the host sent it, for a decoder of the app's own (a headset's
    /// hardware decoder): see [`crate::RenderConnection::decode_video`].
    H264(Vec<u8>),
    /// An H.264 frame, decoded: tight RGBA rows.
    Rgba {
        width: u32,
        height: u32,
        pixels: Vec<u8>,
    },
}

#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("could not start an H.264 decoder: {0}")]
    Start(String),
    #[error("frame {frame} did not decode: {reason}")]
    Corrupt { frame: u64, reason: String },
    #[error("frame {frame} needs the frames before it; waiting for a key frame")]
    NeedsKeyFrame { frame: u64 },
}

/// One render connection's decoder: frames must come to it in order, as the host sent them.
#[derive(Default)]
pub struct FrameDecoder {
    h264: Option<Decoder>,
    /// Lost state: every frame but a key frame is passed over.
    awaiting_key: bool,
}

impl std::fmt::Debug for FrameDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("awaiting_key", &self.awaiting_key)
            .finish_non_exhaustive()
    }
}

impl FrameDecoder {
    /// The picture of a frame (`data` is what follows its header). After an error, the next
    /// frames fail with [`DecodeError::NeedsKeyFrame`] until a key frame comes: ask for one.
    pub fn decode(&mut self, header: &FrameHeader, data: &[u8]) -> Result<Picture, DecodeError> {
        match header.codec {
            Codec::Jpeg => Ok(Picture::Jpeg(data.to_vec())),
            Codec::H264 => {
                if self.awaiting_key && !header.key {
                    return Err(DecodeError::NeedsKeyFrame {
                        frame: header.frame,
                    });
                }
                let decoded = self.decode_h264(header, data);
                self.awaiting_key = decoded.is_err();
                decoded
            }
        }
    }

    /// Forgets the stream so far, as a decoder that was reset: only a key frame decodes next.
    pub fn reset(&mut self) {
        self.h264 = None;
        self.awaiting_key = true;
    }

    fn decode_h264(&mut self, header: &FrameHeader, data: &[u8]) -> Result<Picture, DecodeError> {
        let decoder = match &mut self.h264 {
            Some(decoder) => decoder,
            slot => slot.insert(Decoder::new().map_err(|e| DecodeError::Start(e.to_string()))?),
        };
        let corrupt = |reason: String| DecodeError::Corrupt {
            frame: header.frame,
            reason,
        };
        let picture = decoder
            .decode(data)
            .map_err(|e| corrupt(e.to_string()))?
            .ok_or_else(|| corrupt("no picture in the frame".into()))?;
        let (width, height) = picture.dimensions();
        Ok(Picture::Rgba {
            width: width as u32,
            height: height as u32,
            pixels: I420::planes_to_rgba(
                (picture.y(), picture.u(), picture.v()),
                picture.strides(),
                width,
                height,
            ),
        })
    }
}
