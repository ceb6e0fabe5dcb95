//! Frame encoding for the wire.

use jpeg_encoder::{ColorType, Encoder, EncodingError};
use thiserror::Error;

use crate::renderer::RgbaImage;

#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("a {width}x{height} image is too large for JPEG (65535 pixels per side at most)")]
    TooLarge { width: u32, height: u32 },
    #[error("JPEG encoding failed: {0}")]
    Jpeg(#[from] EncodingError),
    #[error("PNG encoding failed: {0}")]
    Png(#[from] png::EncodingError),
    #[error("PNG decoding failed: {0}")]
    PngDecoding(#[from] png::DecodingError),
    #[error("the PNG is not 8-bit RGBA, as Parallax writes them")]
    NotRgba,
}

/// Encodes `image` as a baseline JPEG at `quality` (clamped to 1..=100).
pub fn encode_jpeg(image: &RgbaImage, quality: u8) -> Result<Vec<u8>, EncodeError> {
    let too_large = || EncodeError::TooLarge {
        width: image.width,
        height: image.height,
    };
    let width = u16::try_from(image.width).map_err(|_| too_large())?;
    let height = u16::try_from(image.height).map_err(|_| too_large())?;
    let mut out = Vec::with_capacity(image.pixels.len() / 10);
    Encoder::new(&mut out, quality.clamp(1, 100)).encode(
        &image.pixels,
        width,
        height,
        ColorType::Rgba,
    )?;
    Ok(out)
}

/// Encodes `image` as an RGBA PNG (lossless: thumbnails, golden images, `parallax render`).
pub fn encode_png(image: &RgbaImage) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_source_srgb(png::SrgbRenderingIntent::Perceptual);
    // Rendered frames are mostly flat background: fast compression is nearly as small and
    // several times quicker than the default.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.pixels)?;
    writer.finish()?;
    Ok(out)
}

/// Decodes a PNG that [`encode_png`] wrote (8-bit RGBA): how tests and tools read back
/// thumbnails and `parallax render`'s images.
pub fn decode_png(bytes: &[u8]) -> Result<RgbaImage, EncodeError> {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info()?;
    let size = reader.output_buffer_size().ok_or(EncodeError::NotRgba)?;
    let mut pixels = vec![0; size];
    let info = reader.next_frame(&mut pixels)?;
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        return Err(EncodeError::NotRgba);
    }
    pixels.truncate(info.buffer_size());
    Ok(RgbaImage {
        width: info.width,
        height: info.height,
        pixels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_round_trips_exactly_and_other_pngs_are_refused() {
        let image = RgbaImage {
            width: 3,
            height: 2,
            pixels: (0..24).map(|i| i * 10).collect(),
        };
        let png = encode_png(&image).unwrap();
        assert_eq!(decode_png(&png).unwrap(), image);

        // An RGB PNG (8-bit, but no alpha) is not one Parallax wrote.
        let mut rgb = Vec::new();
        let mut encoder = png::Encoder::new(&mut rgb, 1, 1);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        encoder
            .write_header()
            .unwrap()
            .write_image_data(&[1, 2, 3])
            .unwrap();
        assert!(matches!(decode_png(&rgb), Err(EncodeError::NotRgba)));
    }
}
