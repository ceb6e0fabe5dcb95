//! Frames for see-through displays (WebXR `immersive-ar`): the model alone, with where it
//! covers the view, so a headset composites only the model over the room. Neither JPEG nor
//! H.264 carries alpha, so the coverage travels as a second picture below the colour, in the same
//! frame and the same codec: one decoder, one texture, the two always of the same moment.

use std::sync::LazyLock;

use crate::renderer::RgbaImage;

/// Each sRGB byte's linear value (0–1).
static LINEAR: LazyLock<[f32; 256]> = LazyLock::new(|| {
    std::array::from_fn(|byte| {
        let s = byte as f32 / 255.0;
        if s <= 0.04045 {
            s / 12.92
        } else {
            ((s + 0.055) / 1.055).powf(2.4)
        }
    })
});

fn srgb(linear: f32) -> f32 {
    if linear <= 0.003_130_8 {
        linear * 12.92
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    }
}

/// `image`, rendered on a transparent background ([`crate::Look::transparent`]), as a frame a
/// codec without alpha carries: twice as tall, the colour above and the coverage below as
/// opaque grey (255 where the model covers a pixel).
///
/// The colour is premultiplied by coverage as a browser composites it, in sRGB bytes
/// (`colour + room × (1 − coverage)`): the GPU blended see-through parts in linear light, so
/// partly covered pixels are converted; covered and empty ones are already right. Premultiplied,
/// an edge that the codec blurs blurs towards "nothing", never towards black: no dark halo.
pub fn with_coverage(image: &RgbaImage) -> RgbaImage {
    let pixels = image.pixels.len();
    let mut out = Vec::with_capacity(pixels * 2);
    out.extend(image.pixels.chunks_exact(4).flat_map(|p| {
        let a = p[3];
        match a {
            0 => [0, 0, 0, 255],
            255 => [p[0], p[1], p[2], 255],
            _ => {
                let coverage = f32::from(a) / 255.0;
                let channel = |c: u8| {
                    let straight = (LINEAR[usize::from(c)] / coverage).min(1.0);
                    (srgb(straight) * coverage * 255.0).round() as u8
                };
                [channel(p[0]), channel(p[1]), channel(p[2]), 255]
            }
        }
    }));
    out.extend(
        image
            .pixels
            .chunks_exact(4)
            .flat_map(|p| [p[3], p[3], p[3], 255]),
    );
    RgbaImage {
        width: image.width,
        height: image.height * 2,
        pixels: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_coverage_goes_below_the_premultiplied_colour() {
        // One row: empty, covered, half covered by a see-through part of linear 0.5 grey (the
        // GPU stored its premultiplied linear 0.25 as sRGB byte 137).
        let image = RgbaImage {
            width: 3,
            height: 1,
            pixels: vec![9, 9, 9, 0, 200, 100, 50, 255, 137, 137, 137, 128],
        };
        let framed = with_coverage(&image);
        assert_eq!((framed.width, framed.height), (3, 2));
        assert_eq!(
            framed.pixel(0, 0),
            [0, 0, 0, 255],
            "nothing where nothing is"
        );
        assert_eq!(framed.pixel(1, 0), [200, 100, 50, 255]);
        // Straight sRGB of linear 0.5 is 188; premultiplied by 128/255, 94.
        assert_eq!(framed.pixel(2, 0), [94, 94, 94, 255]);
        assert_eq!(framed.pixel(0, 1), [0, 0, 0, 255]);
        assert_eq!(framed.pixel(1, 1), [255, 255, 255, 255]);
        assert_eq!(framed.pixel(2, 1), [128, 128, 128, 255]);
    }
}
