//! JPEG against H.264 on the frames a headset gets: one scripted 30 s orbit of the 188k-triangle
//! dense part at 30 fps (a full turn, the camera bobbing 15° up and down twice), rendered and
//! replayed through both codecs at 1280×720 mono and 2 × 1024² stereo. For each: Mbit/s, bytes
//! per frame p50/p95, encode ms p50/p95 (H.264 includes RGBA → I420), and PSNR of the decoded
//! frames against the raw render (mean and the worst frame). Then the frame sent when the view
//! comes to rest (H.264's refinement) against a JPEG of the same picture.
//!
//! Last, where RGBA becomes I420 for the encoder: render + RGBA readback + conversion on the CPU,
//! against render + a compute pass + I420 readback (1.5 bytes a pixel instead of 4).
//!
//! `cargo bench -p parallax-render --bench codecs`; `PARALLAX_BENCH_SECONDS=5` for a short run,
//! `PARALLAX_BENCH_BITRATE=300000` for a fixed bitrate (as `render-host --bitrate`) instead of
//! the one that follows the frame size.

use std::time::Instant;

use glam::Mat4;
use openh264::decoder::Decoder;
use parallax_core::yuv::I420;
use parallax_render::{GpuModel, Look, Renderer, VideoEncoder, encode_jpeg, psnr, samples};

mod orbit;
use orbit::{Tally, decode_h264, decode_jpeg, eyes_of, orbit_frame, orbit_view};

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
        let jpeg_still = encode_jpeg(&image, JPEG_QUALITY).expect("JPEG encodes");
        let jpeg_still = format!(
            "JPEG {:.1} KiB, PSNR {:.2} dB",
            jpeg_still.len() as f64 / 1024.0,
            psnr(&image, &decode_jpeg(&jpeg_still)),
        );
        match encoder.refine().unwrap_or_else(|e| panic!("refines: {e}")) {
            Some(still) => println!(
                "{:<22} at rest: H.264 key frame {:.1} KiB, PSNR {:.2} dB; {jpeg_still}",
                name,
                still.bytes.len() as f64 / 1024.0,
                psnr(&image, &decode_h264(&mut decoder, &still.bytes)),
            ),
            None => println!(
                "{:<22} at rest: the last H.264 frame was sharp already, none sent; {jpeg_still}",
                name
            ),
        }
    }
    conversion(&mut renderer, &model);
}

/// Frame to I420, both ways, 60 frames each of a slowly turning view.
fn conversion(renderer: &mut Renderer, model: &GpuModel) {
    println!(
        "\n{:<22} {:<24} {:>10} {:>9} {:>9}",
        "frames", "RGBA -> I420", "read back", "ms p50", "ms p95"
    );
    for (name, stereo, width, height) in [
        ("mono 1280x720", false, 1280, 720),
        ("stereo 2 x 1024x1024", true, 1024, 1024),
    ] {
        let eyes = if stereo { 2 } else { 1 };
        let pixels = f64::from(width * eyes * height);
        for gpu in [false, true] {
            let mut times = Vec::new();
            for i in 0..60 {
                let t = i as f32 / FPS as f32;
                let started = Instant::now();
                if gpu {
                    let view = orbit_view(model, t, 30.0, width, height);
                    let eyes = eyes_of(&view, stereo);
                    renderer
                        .render_eyes_i420(
                            (Some(model), &Look::default()),
                            Mat4::IDENTITY,
                            &eyes,
                            width,
                            height,
                        )
                        .expect("renders");
                } else {
                    let image = orbit_frame(renderer, model, t, 30.0, stereo, width, height);
                    let (w, h) = (image.width as usize, image.height as usize);
                    I420::from_rgba(&image.pixels, w, h, None);
                }
                times.push(started.elapsed());
            }
            times.sort_unstable();
            let ms =
                |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
            println!(
                "{:<22} {:<24} {:>8.1}MB {:>9.2} {:>9.2}",
                name,
                if gpu {
                    "compute pass on the GPU"
                } else {
                    "on the CPU"
                },
                pixels * if gpu { 1.5 } else { 4.0 } / 1e6,
                ms(0.5),
                ms(0.95)
            );
        }
    }
}
