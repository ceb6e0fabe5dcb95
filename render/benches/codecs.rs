//! JPEG against H.264 on the frames a headset gets: one scripted 30 s orbit of the 188k-triangle
//! dense part at 30 fps (a full turn, the camera bobbing 15° up and down twice), rendered and
//! replayed through both codecs at 1280×720 mono and 2 × 1024² stereo. For each: Mbit/s, bytes
//! per frame p50/p95, encode ms p50/p95 (H.264 includes RGBA → I420), and PSNR of the decoded
//! frames against the raw render (mean and the worst frame). Then the frame sent when the view
//! comes to rest (H.264's refinement) against a JPEG of the same picture.
//!
//! `cargo bench -p parallax-render --bench codecs`; `PARALLAX_BENCH_SECONDS=5` for a short run,
//! `PARALLAX_BENCH_BITRATE=300000` for a fixed bitrate (as `render-host --bitrate`) instead of
//! the one that follows the frame size.

use std::time::{Duration, Instant};

use glam::{Mat4, Vec3};
use openh264::decoder::Decoder;
use openh264::formats::YUVSource;
use parallax_core::yuv::I420;
use parallax_render::{
    Eye, GpuModel, Renderer, RgbaImage, VideoEncoder, View, encode_jpeg, psnr, samples,
};

const FPS: u32 = 30;
const JPEG_QUALITY: u8 = 80;

fn main() {
    let seconds: u32 = std::env::var("PARALLAX_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let model = renderer
        .upload(&samples::dense_shaft(188_000))
        .expect("the dense part uploads");
    println!(
        "dense part, {seconds} s orbit at {FPS} fps; adapter {}",
        renderer.adapter().name
    );
    println!(
        "{:<22} {:<6} {:>8} {:>10} {:>10} {:>9} {:>9} {:>10} {:>10}",
        "frames",
        "codec",
        "Mbit/s",
        "KiB p50",
        "KiB p95",
        "enc p50",
        "enc p95",
        "PSNR mean",
        "PSNR min"
    );
    for (name, stereo, width, height) in [
        ("mono 1280x720", false, 1280, 720),
        ("stereo 2 x 1024x1024", true, 1024, 1024),
    ] {
        let frames = seconds * FPS;
        let mut jpeg = Tally::default();
        let mut h264 = Tally::default();
        let bitrate = std::env::var("PARALLAX_BENCH_BITRATE")
            .ok()
            .and_then(|s| s.parse().ok());
        let mut encoder = VideoEncoder::new(FPS as f32, bitrate);
        let mut decoder = Decoder::new().expect("an H.264 decoder");
        let mut last = None;
        for i in 0..frames {
            let t = i as f32 / FPS as f32;
            let image = orbit_frame(
                &mut renderer,
                &model,
                t,
                seconds as f32,
                stereo,
                width,
                height,
            );

            let started = Instant::now();
            let bytes = encode_jpeg(&image, JPEG_QUALITY).expect("JPEG encodes");
            jpeg.add(
                started.elapsed(),
                bytes.len(),
                psnr(&image, &decode_jpeg(&bytes)),
            );

            let started = Instant::now();
            let frame = encoder.encode(&image).expect("H.264 encodes");
            let took = started.elapsed();
            let decoded = decode_h264(&mut decoder, &frame.bytes);
            h264.add(took, frame.bytes.len(), psnr(&image, &decoded));
            last = Some(image);
        }
        jpeg.print(name, "JPEG", seconds);
        h264.print(name, "H.264", seconds);

        let image = last.expect("at least one frame");
        let still = encoder
            .refine()
            .expect("a picture to refine")
            .expect("encodes");
        let jpeg_still = encode_jpeg(&image, JPEG_QUALITY).expect("JPEG encodes");
        println!(
            "{:<22} at rest: H.264 refinement {:.1} KiB, PSNR {:.2} dB; JPEG {:.1} KiB, PSNR {:.2} dB",
            name,
            still.bytes.len() as f64 / 1024.0,
            psnr(&image, &decode_h264(&mut decoder, &still.bytes)),
            jpeg_still.len() as f64 / 1024.0,
            psnr(&image, &decode_jpeg(&jpeg_still)),
        );
    }
}

/// Frame `t` seconds into the orbit: one full turn over `seconds`, the elevation going
/// 20° ± 15° twice.
fn orbit_frame(
    renderer: &mut Renderer,
    model: &GpuModel,
    t: f32,
    seconds: f32,
    stereo: bool,
    width: u32,
    height: u32,
) -> RgbaImage {
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
    let view = View {
        eye: centre + offset * distance,
        target: centre,
        ..framing
    };
    if stereo {
        let right = (view.target - view.eye).cross(view.up).normalize();
        let eye = |shift: f32| {
            Eye::of(&View {
                eye: view.eye + right * shift,
                target: view.target + right * shift,
                ..view
            })
        };
        renderer.render_eyes(
            Some(model),
            Mat4::IDENTITY,
            &[eye(-32.0), eye(32.0)],
            width,
            height,
        )
    } else {
        renderer.render(model, Mat4::IDENTITY, &view)
    }
    .expect("renders")
}

fn decode_jpeg(bytes: &[u8]) -> RgbaImage {
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

fn decode_h264(decoder: &mut Decoder, bytes: &[u8]) -> RgbaImage {
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

#[derive(Default)]
struct Tally {
    encode: Vec<Duration>,
    bytes: Vec<usize>,
    psnr: Vec<f64>,
}

impl Tally {
    fn add(&mut self, encode: Duration, bytes: usize, psnr: f64) {
        self.encode.push(encode);
        self.bytes.push(bytes);
        self.psnr.push(psnr);
    }

    fn print(&mut self, frames: &str, codec: &str, seconds: u32) {
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
