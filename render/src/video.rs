//! H.264 for the wire: one [`VideoEncoder`] per render connection, OpenH264 built from its
//! bundled source (BSD licensed; nothing to install). Constrained Baseline (no B-frames: every
//! frame can be shown as soon as it arrives), one thread, frame skipping off, no periodic key
//! frames (the link is reliable), and a bitrate that follows the frame size.

use std::time::Instant;

use openh264::OpenH264API;
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, IntraFramePeriod, Profile,
    QpRange, RateControlMode, UsageType,
};
use openh264::formats::YUVSlices;
use parallax_core::yuv::I420;
use thiserror::Error;

use crate::renderer::RgbaImage;

#[derive(Debug, Error)]
pub enum VideoError {
    #[error("H.264 needs an even width and height, not {width}x{height}")]
    OddSize { width: u32, height: u32 },
    #[error("H.264 encodes at most 3840x2160 (2160x3840 upright), not {width}x{height}")]
    TooLarge { width: u32, height: u32 },
    #[error("the H.264 encoder failed: {0}")]
    Encoder(#[from] openh264::Error),
}

/// Bits per pixel per frame in motion: with frames mostly flat background and shaded faces,
/// about 0.1 keeps edges clean at a third of JPEG's bytes (docs/BENCHMARKS.md).
const BITS_PER_PIXEL: f64 = 0.2;

/// The quantiser's range. Below 16 the picture is no closer to the render (over 48 dB) for
/// many more bytes; above 40 edges smear.
const MIN_QP: u8 = 16;
const MAX_QP: u8 = 40;

/// How much more the frame sent when the view comes to rest may spend than one in motion.
const STILL_BUDGET: u32 = 8;

/// A frame in motion quantised this finely or finer is already sharper than a JPEG of it
/// (48 dB on the dense part): the view at rest needs nothing more.
const SHARP_QP: u32 = 22;

/// One encoded frame: an H.264 access unit in Annex B byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub bytes: Vec<u8>,
    /// An IDR, with the SPS and PPS in front: decodes on its own.
    pub key: bool,
}

/// What a frame is for: one of a moving view, or the one sent when it came to rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quality {
    Motion,
    /// Sharp: the last picture again as a key frame with a larger budget, so a still view is as
    /// crisp as a JPEG of it (rate control lowers its quantiser for a key frame at once, for a
    /// predicted one only a step per frame).
    Still,
}

/// A render connection's H.264 encoder. Its state (the reference picture) belongs to one
/// stream: never share it between devices.
pub struct VideoEncoder {
    fps: f32,
    /// A host's `--bitrate`: replaces the one that follows the frame size.
    bitrate_override: Option<u32>,
    /// The encoder and the size it was made for; a new size makes a new one (and so a key frame).
    encoder: Option<(Encoder, (u32, u32))>,
    picture: Option<I420>,
    key_wanted: bool,
    /// The last picture went out coarser than [`SHARP_QP`]: the view at rest gets a sharp one.
    blurred: bool,
    started: Instant,
}

impl VideoEncoder {
    /// An encoder for frames coming at most `fps` a second.
    pub fn new(fps: f32, bitrate_override: Option<u32>) -> Self {
        Self {
            fps: fps.max(1.0),
            bitrate_override,
            encoder: None,
            picture: None,
            key_wanted: true,
            blurred: false,
            started: Instant::now(),
        }
    }

    /// The bitrate frames of `width × height` are encoded at (bits per second).
    pub fn bitrate(&self, width: u32, height: u32) -> u32 {
        self.bitrate_override.unwrap_or_else(|| {
            let bits = f64::from(width) * f64::from(height) * f64::from(self.fps) * BITS_PER_PIXEL;
            bits.clamp(100_000.0, 50_000_000.0) as u32
        })
    }

    /// The next frame will be a key frame: a new model, or the device lost its decoder's state.
    pub fn request_keyframe(&mut self) {
        self.key_wanted = true;
    }

    /// Encodes `image`, converted to I420 here (BT.601 limited range: what a decoder assumes
    /// without colour information).
    pub fn encode(&mut self, image: &RgbaImage) -> Result<EncodedFrame, VideoError> {
        let (width, height) = (image.width, image.height);
        check_size(width as usize, height as usize)?;
        let picture = I420::from_rgba(
            &image.pixels,
            width as usize,
            height as usize,
            self.picture.take(),
        );
        self.encode_i420(picture)
    }

    /// Encodes a picture already in I420 ([`crate::Renderer::render_eyes_i420`]).
    pub fn encode_i420(&mut self, picture: I420) -> Result<EncodedFrame, VideoError> {
        check_size(picture.width, picture.height)?;
        self.picture = Some(picture);
        self.encode_picture(Quality::Motion)
    }

    /// The frame for a view come to rest: the last picture again as a key frame at a higher
    /// bitrate, when the last one went out coarser than a JPEG would have; `None` when it was
    /// sharp already (or nothing was encoded yet).
    pub fn refine(&mut self) -> Result<Option<EncodedFrame>, VideoError> {
        if self.picture.is_none() || !self.blurred {
            return Ok(None);
        }
        self.encode_picture(Quality::Still).map(Some)
    }

    fn encode_picture(&mut self, quality: Quality) -> Result<EncodedFrame, VideoError> {
        // Both callers set a picture first; an error, not a panic, should that ever change.
        let Some(picture) = &self.picture else {
            return Err(VideoError::Encoder(openh264::Error::msg(
                "there is no picture to encode",
            )));
        };
        let (width, height) = (picture.width as u32, picture.height as u32);
        let bitrate = self.bitrate(width, height);
        let encoder = match &mut self.encoder {
            Some((encoder, size)) if *size == (width, height) => encoder,
            slot => {
                let config = config(bitrate, self.fps);
                let mut encoder = Encoder::with_api_config(OpenH264API::from_source(), config)?;
                quiet(&mut encoder);
                self.key_wanted = false;
                &mut slot.insert((encoder, (width, height))).0
            }
        };
        if std::mem::take(&mut self.key_wanted) {
            encoder.force_intra_frame();
        }
        // Only a picture already encoded is refined: the encoder has been initialised by then.
        if quality == Quality::Still {
            set_bitrate(encoder, bitrate.saturating_mul(STILL_BUDGET))?;
            encoder.force_intra_frame();
        }
        let at = openh264::Timestamp::from_millis(self.started.elapsed().as_millis() as u64);
        let half = picture.width / 2;
        let source = YUVSlices::new(
            (picture.y(), picture.u(), picture.v()),
            (picture.width, picture.height),
            (picture.width, half, half),
        );
        let stream = encoder.encode_at(&source, at)?;
        let frame = EncodedFrame {
            key: matches!(stream.frame_type(), FrameType::IDR),
            bytes: stream.to_vec(),
        };
        self.blurred = last_qp(encoder).is_none_or(|qp| qp > SHARP_QP);
        if quality == Quality::Still {
            set_bitrate(encoder, bitrate)?;
        }
        Ok(frame)
    }
}

fn check_size(width: usize, height: usize) -> Result<(), VideoError> {
    let (width, height) = (width as u32, height as u32);
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(VideoError::OddSize { width, height });
    }
    if width.max(height) > 3840 || width.min(height) > 2160 {
        return Err(VideoError::TooLarge { width, height });
    }
    Ok(())
}

fn config(bitrate: u32, fps: f32) -> EncoderConfig {
    EncoderConfig::new()
        .profile(Profile::Baseline)
        .usage_type(UsageType::CameraVideoRealTime)
        .rate_control_mode(RateControlMode::Bitrate)
        .bitrate(BitRate::from_bps(bitrate))
        .max_frame_rate(FrameRate::from_hz(fps))
        .skip_frames(false)
        .num_threads(1)
        .complexity(Complexity::Low)
        .intra_frame_period(IntraFramePeriod::from_num_frames(0))
        .scene_change_detect(false)
        .qp(QpRange::new(MIN_QP, MAX_QP))
        .background_detection(false)
        .adaptive_quantization(false)
}

/// Keeps OpenH264 from printing its warning about frame skipping being off (as intended) to
/// stderr whenever a connection starts; errors still print. After its initialisation the
/// wrapper silences it altogether.
fn quiet(encoder: &mut Encoder) {
    let mut level = openh264_sys2::WELS_LOG_ERROR;
    // SAFETY: the trace level may be set before initialisation; the option reads one int during
    // the call, and `level` outlives it.
    unsafe {
        encoder.raw_api().set_option(
            openh264_sys2::ENCODER_OPTION_TRACE_LEVEL,
            (&raw mut level).cast(),
        )
    };
}

/// Changes the target (and maximum) bitrate from the next frame on, keeping the encoder's
/// state. The encoder must have encoded a frame: it is initialised by the first.
fn set_bitrate(encoder: &mut Encoder, bits_per_second: u32) -> Result<(), VideoError> {
    let bits = i32::try_from(bits_per_second).unwrap_or(i32::MAX);
    // The target may not pass the maximum: raise the maximum first, lower it last.
    let options = if bits > current_max(encoder) {
        [
            openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
            openh264_sys2::ENCODER_OPTION_BITRATE,
        ]
    } else {
        [
            openh264_sys2::ENCODER_OPTION_BITRATE,
            openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
        ]
    };
    for option in options {
        // The one layer's own maximum, which the target is checked against.
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_0,
            iBitrate: bits,
        };
        // SAFETY: both options read one SBitrateInfo from the pointer during the call, and
        // `info` outlives it. The bitrate is not among the parameters the wrapper relies on.
        let result = unsafe { encoder.raw_api().set_option(option, (&raw mut info).cast()) };
        if result != 0 {
            return Err(VideoError::Encoder(openh264::Error::msg(
                "the encoder refused a new bitrate",
            )));
        }
    }
    Ok(())
}

/// The average quantiser of the frame just encoded.
fn last_qp(encoder: &mut Encoder) -> Option<u32> {
    let mut statistics = openh264_sys2::SEncoderStatistics::default();
    // SAFETY: the option writes one SEncoderStatistics during the call; `statistics` outlives it.
    let result = unsafe {
        encoder.raw_api().get_option(
            openh264_sys2::ENCODER_OPTION_GET_STATISTICS,
            (&raw mut statistics).cast(),
        )
    };
    (result == 0).then_some(statistics.uiAverageFrameQP)
}

fn current_max(encoder: &mut Encoder) -> i32 {
    let mut info = openh264_sys2::SBitrateInfo {
        iLayer: openh264_sys2::SPATIAL_LAYER_0,
        iBitrate: 0,
    };
    // SAFETY: as in `set_bitrate`: the option writes one SBitrateInfo during the call.
    unsafe {
        encoder.raw_api().get_option(
            openh264_sys2::ENCODER_OPTION_MAX_BITRATE,
            (&raw mut info).cast(),
        )
    };
    info.iBitrate
}

/// Peak signal-to-noise ratio of `b` against `a` over the colour channels, in dB (infinite for
/// equal images): how the benchmarks and tests judge a codec's pictures.
pub fn psnr(a: &RgbaImage, b: &RgbaImage) -> f64 {
    assert_eq!(
        (a.width, a.height),
        (b.width, b.height),
        "PSNR compares images of one size"
    );
    let (sum, count) = a
        .pixels
        .chunks_exact(4)
        .zip(b.pixels.chunks_exact(4))
        .flat_map(|(p, q)| (0..3).map(move |i| f64::from(p[i]) - f64::from(q[i])))
        .fold((0.0, 0usize), |(sum, n), d| (sum + d * d, n + 1));
    let mse = sum / count.max(1) as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}
