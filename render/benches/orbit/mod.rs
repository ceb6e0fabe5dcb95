//! The scripted orbit the codec benches share: frames of a model turning once, the camera
//! bobbing, in one eye or two, and the decoders that read frames back.

use std::time::Duration;

use glam::{Mat4, Vec3};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use parallax_core::yuv::I420;
use parallax_render::{Eye, GpuModel, Look, Renderer, RgbaImage, View};

/// Frame `t` seconds into the orbit: one full turn over `seconds`, the elevation going
/// 20° ± 15° twice.
pub fn orbit_frame(
    renderer: &mut Renderer,
    model: &GpuModel,
    t: f32,
    seconds: f32,
    stereo: bool,
    width: u32,
    height: u32,
) -> RgbaImage {
    let view = orbit_view(model, t, seconds, width, height);
    let eyes = eyes_of(&view, stereo);
    orbit_look(renderer, model, &Look::default(), (&eyes, width, height))
}

/// The orbit's frame for `eyes`, each `width × height`, drawn as `look` says.
pub fn orbit_look(
    renderer: &mut Renderer,
    model: &GpuModel,
    look: &Look,
    (eyes, width, height): (&[Eye], u32, u32),
) -> RgbaImage {
    renderer
        .render_look((Some(model), look), Mat4::IDENTITY, eyes, width, height)
        .expect("renders")
}

/// The camera `t` seconds into the orbit.
pub fn orbit_view(model: &GpuModel, t: f32, seconds: f32, width: u32, height: u32) -> View {
    let turn = t / seconds;
    let framing = View::framing(&model.bounds, width, height);
    let centre = model.bounds.center();
    let distance = (framing.eye - framing.target).length();
    let azimuth = turn * std::f32::consts::TAU;
    let elevation = (20.0 + 15.0 * (turn * 2.0 * std::f32::consts::TAU).sin()).to_radians();
    let offset = Vec3::new(
        elevation.cos() * azimuth.sin(),
        elevation.sin(),
        elevation.cos() * azimuth.cos(),
    );
    View {
        eye: centre + offset * distance,
        target: centre,
        ..framing
    }
}

/// One eye at `view`, or two 64 mm apart (the part is in millimetres).
pub fn eyes_of(view: &View, stereo: bool) -> Vec<Eye> {
    if !stereo {
        return vec![Eye::of(view)];
    }
    let right = (view.target - view.eye).cross(view.up).normalize();
    let eye = |shift: f32| {
        Eye::of(&View {
            eye: view.eye + right * shift,
            target: view.target + right * shift,
            ..*view
        })
    };
    vec![eye(-32.0), eye(32.0)]
}

pub fn decode_jpeg(bytes: &[u8]) -> RgbaImage {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let rgb = decoder.decode().expect("our JPEG decodes");
    let info = decoder.info().expect("a decoded JPEG has its info");
    RgbaImage {
        width: u32::from(info.width),
        height: u32::from(info.height),
        pixels: rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
    }
}

pub fn decode_h264(decoder: &mut Decoder, bytes: &[u8]) -> RgbaImage {
    let picture = decoder
        .decode(bytes)
        .expect("our H.264 decodes")
        .expect("each access unit is a picture");
    let (width, height) = picture.dimensions();
    RgbaImage {
        width: width as u32,
        height: height as u32,
        pixels: I420::planes_to_rgba(
            (picture.y(), picture.u(), picture.v()),
            picture.strides(),
            width,
            height,
        ),
    }
}

/// Per frame: encode time, bytes and PSNR; printed as a row of the codec tables.
#[derive(Default)]
pub struct Tally {
    encode: Vec<Duration>,
    bytes: Vec<usize>,
    psnr: Vec<f64>,
}

impl Tally {
    pub fn add(&mut self, encode: Duration, bytes: usize, psnr: f64) {
        self.encode.push(encode);
        self.bytes.push(bytes);
        self.psnr.push(psnr);
    }

    pub fn print(&mut self, frames: &str, codec: &str, seconds: u32) {
        let total: usize = self.bytes.iter().sum();
        self.encode.sort_unstable();
        self.bytes.sort_unstable();
        let at = |n: usize, q: f64| ((n - 1) as f64 * q).round() as usize;
        let n = self.bytes.len();
        println!(
            "{:<22} {:<6} {:>8.2} {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>10.2} {:>10.2}",
            frames,
            codec,
            total as f64 * 8.0 / f64::from(seconds) / 1e6,
            self.bytes[at(n, 0.5)] as f64 / 1024.0,
            self.bytes[at(n, 0.95)] as f64 / 1024.0,
            self.encode[at(n, 0.5)].as_secs_f64() * 1000.0,
            self.encode[at(n, 0.95)].as_secs_f64() * 1000.0,
            self.psnr.iter().sum::<f64>() / n as f64,
            self.psnr.iter().copied().fold(f64::INFINITY, f64::min),
        );
    }
}
