//! RGBA ↔ I420 (YUV 4:2:0, BT.601 limited range: what an H.264 decoder assumes when the stream
//! says nothing of colour), in integers with rounding both ways, so a picture that goes there
//! and back loses only what the chroma subsampling and the codec take.

/// An I420 picture in one buffer: full-size luma, then the quarter-size U and V planes, tightly
/// packed (as a GPU pass writes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl I420 {
    /// The bytes of a `width × height` picture.
    pub fn len(width: usize, height: usize) -> usize {
        width * height * 3 / 2
    }

    /// Takes planes laid out as [`I420`] describes; `None` if `data` is not exactly that size
    /// or the size is odd.
    pub fn from_data(width: usize, height: usize, data: Vec<u8>) -> Option<Self> {
        let even = width.is_multiple_of(2) && height.is_multiple_of(2);
        (even && data.len() == Self::len(width, height)).then_some(Self {
            width,
            height,
            data,
        })
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn u(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma..luma + luma / 4]
    }

    pub fn v(&self) -> &[u8] {
        let luma = self.width * self.height;
        &self.data[luma + luma / 4..]
    }

    /// Converts tight RGBA rows of an even-sized picture (alpha is ignored); `into` is reused
    /// when it has the size already.
    pub fn from_rgba(rgba: &[u8], width: usize, height: usize, into: Option<Self>) -> Self {
        assert!(
            width.is_multiple_of(2) && height.is_multiple_of(2),
            "I420 needs an even size"
        );
        assert_eq!(rgba.len(), width * height * 4, "RGBA of {width}x{height}");
        let mut out = match into {
            Some(picture) if picture.width == width && picture.height == height => picture,
            _ => Self {
                width,
                height,
                data: vec![0; Self::len(width, height)],
            },
        };
        let half = width / 2;
        let (y_plane, chroma) = out.data.split_at_mut(width * height);
        let (u_plane, v_plane) = chroma.split_at_mut(width * height / 4);
        for row in 0..height / 2 {
            let top = &rgba[row * 2 * width * 4..][..width * 4];
            let bottom = &rgba[(row * 2 + 1) * width * 4..][..width * 4];
            let (y_top, y_bottom) = y_plane[row * 2 * width..][..width * 2].split_at_mut(width);
            for col in 0..half {
                let mut sum = [0i32; 3];
                for (line, luma) in [(top, &mut *y_top), (bottom, &mut *y_bottom)] {
                    for dx in 0..2 {
                        let p = &line[(col * 2 + dx) * 4..][..3];
                        let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
                        luma[col * 2 + dx] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16) as u8;
                        sum[0] += r;
                        sum[1] += g;
                        sum[2] += b;
                    }
                }
                let [r, g, b] = sum;
                // The four pixels' sum is 4× their mean: divide by 4 × 256.
                u_plane[row * half + col] =
                    (((-38 * r - 74 * g + 112 * b + 512) >> 10) + 128) as u8;
                v_plane[row * half + col] = (((112 * r - 94 * g - 18 * b + 512) >> 10) + 128) as u8;
            }
        }
        out
    }

    /// Converts planes with the given row strides back to tight RGBA rows (alpha 255).
    pub fn planes_to_rgba(
        (y, u, v): (&[u8], &[u8], &[u8]),
        (y_stride, u_stride, v_stride): (usize, usize, usize),
        width: usize,
        height: usize,
    ) -> Vec<u8> {
        let mut rgba = vec![0; width * height * 4];
        for (row, line) in rgba.chunks_exact_mut(width * 4).enumerate() {
            for (col, pixel) in line.chunks_exact_mut(4).enumerate() {
                let c = 298 * (i32::from(y[row * y_stride + col]) - 16);
                let d = i32::from(u[row / 2 * u_stride + col / 2]) - 128;
                let e = i32::from(v[row / 2 * v_stride + col / 2]) - 128;
                let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
                pixel.copy_from_slice(&[
                    clamp(c + 409 * e),
                    clamp(c - 100 * d - 208 * e),
                    clamp(c + 516 * d),
                    255,
                ]);
            }
        }
        rgba
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_survives_the_round_trip_within_a_step() {
        // Flat 2×2 blocks (no chroma detail for subsampling to lose), across the colour cube.
        let (width, height) = (16, 8);
        let mut rgba = vec![0u8; width * height * 4];
        for row in 0..height {
            for col in 0..width {
                let block = (row / 2 * width / 2 + col / 2) as u32;
                let colour = [block * 37 % 256, block * 91 % 256, block * 53 % 256];
                let at = (row * width + col) * 4;
                for (i, c) in colour.iter().enumerate() {
                    rgba[at + i] = *c as u8;
                }
                rgba[at + 3] = 255;
            }
        }
        let picture = I420::from_rgba(&rgba, width, height, None);
        let half = width / 2;
        let back = I420::planes_to_rgba(
            (picture.y(), picture.u(), picture.v()),
            (width, half, half),
            width,
            height,
        );
        let worst = rgba
            .iter()
            .zip(&back)
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 3, "off by {worst}");
        // Black and white land on the limited range's ends.
        let white = I420::from_rgba(&[255; 16], 2, 2, None);
        let black = I420::from_rgba(&[0, 0, 0, 255].repeat(4), 2, 2, None);
        assert_eq!((white.y()[0], white.u()[0], white.v()[0]), (235, 128, 128));
        assert_eq!((black.y()[0], black.u()[0], black.v()[0]), (16, 128, 128));
        assert_eq!(I420::from_data(2, 2, white.data.clone()), Some(white));
        assert_eq!(I420::from_data(2, 2, vec![0; 5]), None);
    }
}
