//! Golden images: each sample rendered at a fixed pose must match the stored PNG pixel by pixel
//! (all but a sliver of edge pixels, where GPUs and drivers rasterise differently), so a change
//! to the renderer that alters what people see shows up here — down to a part gone missing.
//!
//! After an intended change, rewrite the references with
//! `PARALLAX_BLESS=1 cargo test -p parallax-render --test golden samples_match` and look at them.

use std::path::PathBuf;

use glam::{Mat4, Vec3};
use parallax_render::{Renderer, View, decode_png, encode_png, samples};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 180;
/// How far (0–255, per channel) a pixel may be from the golden one and still count as the same.
const PIXEL_THRESHOLD: u8 = 24;
/// The share of pixels that may differ by more than that: anti-aliased edges between drivers.
const TOLERANCE: f64 = 0.005;

fn golden_path(id: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("tests/golden/{id}-{WIDTH}x{HEIGHT}.png"))
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
        }))
        .expect("a golden PNG");
        assert_eq!((golden.width, golden.height), (WIDTH, HEIGHT));
        let differing = image.share_differing(&golden, PIXEL_THRESHOLD);
        eprintln!("{}: {:.4} of the pixels differ", sample.id, differing);
        assert!(
            differing <= TOLERANCE,
            "{} differs from its golden image in {:.2} % of its pixels",
            sample.id,
            differing * 100.0
        );
        // The comparison has teeth: an empty frame of the same size never passes for the part.
        let blank = renderer.render_scene(None, Mat4::IDENTITY, &view).unwrap();
        let missing = blank.share_differing(&golden, PIXEL_THRESHOLD);
        eprintln!("{} blank: {missing:.4}", sample.id);
        assert!(
            missing > TOLERANCE * 5.0,
            "an empty frame passes for {} ({missing:.4})",
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
    let golden = decode_png(&std::fs::read(golden_path("gear")).expect("the golden gear image"))
        .expect("a golden PNG");
    assert!(image.share_differing(&golden, PIXEL_THRESHOLD) > TOLERANCE * 5.0);
}
