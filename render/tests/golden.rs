//! Golden images: each sample rendered at a fixed pose must match the stored PNG within a small
//! mean error, so a change to the renderer that alters what people see shows up here.
//!
//! After an intended change, rewrite the references with
//! `PARALLAX_BLESS=1 cargo test -p parallax-render --test golden samples_match` and look at them.

use std::path::PathBuf;

use glam::{Mat4, Vec3};
use parallax_render::{Renderer, RgbaImage, View, encode_png, samples};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
/// Mean absolute difference per channel (0–255) allowed between GPUs and drivers.
const TOLERANCE: f64 = 2.0;

fn golden_path(id: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/{id}-{WIDTH}x{HEIGHT}.png"))
}

fn decode_png(bytes: &[u8]) -> RgbaImage {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("one frame");
    assert_eq!(info.color_type, png::ColorType::Rgba);
    pixels.truncate(info.buffer_size());
    RgbaImage {
        width: info.width,
        height: info.height,
        pixels,
    }
}

#[test]
fn samples_match_their_golden_images() {
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let bless = std::env::var_os("PARALLAX_BLESS").is_some();
    for sample in samples::SAMPLES {
        let model = renderer.upload(&(sample.build)()).unwrap();
        let view = View::framing_from(&model.bounds, Vec3::new(1.0, 0.8, 1.3), WIDTH, HEIGHT);
        let image = renderer.render(&model, Mat4::IDENTITY, &view).unwrap();
        let path = golden_path(sample.id);
        if bless {
            std::fs::write(&path, encode_png(&image).unwrap()).unwrap();
            continue;
        }
        let golden = decode_png(&std::fs::read(&path).unwrap_or_else(|_| {
            panic!(
                "{} is missing: run with PARALLAX_BLESS=1 to create it",
                path.display()
            )
        }));
        assert_eq!((golden.width, golden.height), (WIDTH, HEIGHT));
        let mean = image.mean_difference(&golden);
        assert!(
            mean <= TOLERANCE,
            "{} differs from its golden image by {mean:.2} on average",
            sample.id
        );
    }
}

#[test]
fn a_different_pose_does_not_match_the_golden_image() {
    // The comparison has teeth: the same part from the front is far outside the tolerance.
    let mut renderer = Renderer::new().expect("a wgpu adapter");
    let model = renderer.upload(&samples::gear()).unwrap();
    let view = View::framing_from(&model.bounds, Vec3::Z, WIDTH, HEIGHT);
    let image = renderer.render(&model, Mat4::IDENTITY, &view).unwrap();
    let golden = decode_png(&std::fs::read(golden_path("gear")).expect("the golden gear image"));
    assert!(image.mean_difference(&golden) > TOLERANCE * 3.0);
}
