//! What a see-through display's frames cost (issue 34): the same views as VR frames (the model
//! on the CAD background) and as AR frames (on a transparent background, the coverage below the
//! colour, `with_coverage`), through both codecs. The codec benches' orbit of the 188k-triangle
//! dense part, stereo 2 × 1024², at 30 fps: Mbit/s, bytes per frame, encode ms and PSNR of the
//! decoded frame against what was encoded (an AR frame's colour and coverage together), then the
//! time to make a frame ready for the encoder (render, read back, and for AR the coverage).
//!
//! `cargo bench -p parallax-render --bench coverage`; `PARALLAX_BENCH_SECONDS=5` for a short run.

use std::time::{Duration, Instant};

use openh264::decoder::Decoder;
use parallax_render::{Look, Renderer, VideoEncoder, encode_jpeg, psnr, samples, with_coverage};

// Shared with the codec bench, which uses all of it.
#[allow(dead_code)]
mod orbit;
use orbit::{Tally, decode_h264, decode_jpeg, eyes_of, orbit_look, orbit_view};

const FPS: u32 = 30;
const JPEG_QUALITY: u8 = 80;
const SIDE: u32 = 1024;

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
        "dense part, stereo 2 x {SIDE}x{SIDE}, {seconds} s orbit at {FPS} fps; adapter {}",
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
    let mut ready = Vec::new();
    for (name, see_through) in [("VR (opaque)", false), ("AR (with coverage)", true)] {
        let look = Look {
            transparent: see_through,
            ..Look::default()
        };
        let (mut jpeg, mut h264) = (Tally::default(), Tally::default());
        let mut encoder = VideoEncoder::new(FPS as f32, None);
        let mut decoder = Decoder::new().expect("an H.264 decoder");
        let mut made: Vec<Duration> = Vec::new();
        for i in 0..seconds * FPS {
            let t = i as f32 / FPS as f32;
            let view = orbit_view(&model, t, seconds as f32, SIDE, SIDE);
            let eyes = eyes_of(&view, true);
            let started = Instant::now();
            let rendered = orbit_look(&mut renderer, &model, &look, (&eyes, SIDE, SIDE));
            let image = if see_through {
                with_coverage(&rendered)
            } else {
                rendered
            };
            made.push(started.elapsed());

            let started = Instant::now();
            let bytes = encode_jpeg(&image, JPEG_QUALITY).expect("JPEG encodes");
            let took = started.elapsed();
            jpeg.add(took, bytes.len(), psnr(&image, &decode_jpeg(&bytes)));

            let started = Instant::now();
            let frame = encoder.encode(&image).expect("H.264 encodes");
            let took = started.elapsed();
            let decoded = decode_h264(&mut decoder, &frame.bytes);
            h264.add(took, frame.bytes.len(), psnr(&image, &decoded));
        }
        jpeg.print(name, "JPEG", seconds);
        h264.print(name, "H.264", seconds);
        made.sort_unstable();
        ready.push((name, made));
    }
    println!(
        "\n{:<22} {:>9} {:>9}",
        "frame ready for encoding", "ms p50", "ms p95"
    );
    for (name, made) in ready {
        let at = |q: f64| made[((made.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        println!("{name:<22} {:>9.2} {:>9.2}", at(0.5), at(0.95));
    }
}
