//! Frame cost on this machine: render + readback and JPEG encoding of each sample model, and of
//! the 188k-triangle dense part, at 720p; the dense part's load time (STL parse + upload); and a
//! headset's stereo frame of the dense part (two eyes side by side, one pass) against a mono
//! frame of the same pixels, at 2 × 1024² and 2 × 1280².
//!
//! `cargo bench -p parallax-render --bench frame` prints a table; with `PARALLAX_BENCH_OUT=DIR`
//! it also writes each model's frame as `DIR/<model>.jpg` so the pictures can be checked by eye.

use std::time::{Duration, Instant};

use glam::Mat4;
use parallax_render::{Eye, Mesh, Renderer, View, encode_jpeg, import, samples};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const ROUNDS: usize = 30;

fn main() {
    let started = Instant::now();
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let info = renderer.adapter();
    println!(
        "adapter: {} ({:?}, {:?}); device ready in {:.1} ms",
        info.name,
        info.backend,
        info.device_type,
        ms(started.elapsed())
    );
    let out_dir = std::env::var_os("PARALLAX_BENCH_OUT").map(std::path::PathBuf::from);
    load_time(&renderer);

    println!(
        "{:<10} {:>9} {:>13} {:>13} {:>13} {:>13} {:>9} {:>9}",
        "model", "triangles", "first ms", "render p50", "render p95", "jpeg p50", "jpeg KiB", "fps"
    );
    let mut models: Vec<(&str, Mesh)> = samples::SAMPLES
        .iter()
        .map(|s| (s.id, (s.build)()))
        .collect();
    models.push(("dense", samples::dense_shaft(188_000)));
    for (id, mesh) in models {
        let model = renderer.upload(&mesh).expect("sample uploads");
        let view = View::framing(&model.bounds, WIDTH, HEIGHT);

        let first = Instant::now();
        let image = renderer
            .render(&model, Mat4::IDENTITY, &view)
            .expect("renders");
        let first = first.elapsed();

        let mut render_times = Vec::with_capacity(ROUNDS);
        let mut encode_times = Vec::with_capacity(ROUNDS);
        let mut jpeg = Vec::new();
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let image = renderer
                .render(&model, Mat4::IDENTITY, &view)
                .expect("renders");
            render_times.push(t.elapsed());
            let t = Instant::now();
            jpeg = encode_jpeg(&image, 80).expect("encodes");
            encode_times.push(t.elapsed());
        }
        println!(
            "{:<10} {:>9} {:>13.1} {:>13.1} {:>13.1} {:>13.1} {:>9.0} {:>9.1}",
            id,
            mesh.triangles(),
            ms(first),
            percentile(&mut render_times, 0.50),
            percentile(&mut render_times, 0.95),
            percentile(&mut encode_times, 0.50),
            jpeg.len() as f64 / 1024.0,
            // One device, frames back to back: render + readback + JPEG each.
            ROUNDS as f64
                / (render_times.iter().chain(&encode_times).sum::<Duration>()).as_secs_f64()
        );
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).expect("output dir");
            std::fs::write(dir.join(format!("{id}.jpg")), &jpeg).expect("write frame");
            drop(image);
        }
    }
    stereo(&mut renderer);
}

/// The dense part for two eyes 64 mm apart (64 units: the part is in millimetres) in one
/// side-by-side frame, against one eye's view across the same pixels.
fn stereo(renderer: &mut Renderer) {
    let mesh = samples::dense_shaft(188_000);
    let model = renderer.upload(&mesh).expect("the dense part uploads");
    println!(
        "\n{:<22} {:>13} {:>13} {:>13} {:>9}",
        "dense part, frame", "render p50", "render p95", "jpeg p50", "fps"
    );
    for side in [1024, 1280] {
        let centre = View::framing(&model.bounds, side, side);
        let right = (centre.target - centre.eye).cross(centre.up).normalize();
        let eye = |offset: f32| View {
            eye: centre.eye + right * offset,
            target: centre.target + right * offset,
            ..centre
        };
        let eyes = [Eye::of(&eye(-32.0)), Eye::of(&eye(32.0))];
        let mono = View::framing(&model.bounds, 2 * side, side);
        let draw = |r: &mut Renderer, stereo: bool| {
            if stereo {
                r.render_eyes(Some(&model), Mat4::IDENTITY, &eyes, side, side)
            } else {
                r.render(&model, Mat4::IDENTITY, &mono)
            }
        };
        for stereo in [true, false] {
            let name = if stereo {
                format!("stereo 2 x {side}x{side}")
            } else {
                format!("mono {}x{side}", 2 * side)
            };
            draw(renderer, stereo).expect("renders"); // Targets of this size made once.
            let (mut render_times, mut encode_times) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                let t = Instant::now();
                let image = draw(renderer, stereo).expect("renders");
                render_times.push(t.elapsed());
                let t = Instant::now();
                encode_jpeg(&image, 80).expect("encodes");
                encode_times.push(t.elapsed());
            }
            println!(
                "{:<22} {:>13.1} {:>13.1} {:>13.1} {:>9.1}",
                name,
                percentile(&mut render_times, 0.50),
                percentile(&mut render_times, 0.95),
                percentile(&mut encode_times, 0.50),
                ROUNDS as f64
                    / (render_times.iter().chain(&encode_times).sum::<Duration>()).as_secs_f64()
            );
        }
    }
}

/// Load = parse the STL file's bytes + upload to the GPU, as a render host does for a new model.
fn load_time(renderer: &Renderer) {
    let stl = samples::dense_shaft(188_000).to_binary_stl();
    let mut times = Vec::with_capacity(10);
    for _ in 0..10 {
        let started = Instant::now();
        let model = import("dense.stl", &stl, &mut |_| None).expect("imports");
        let gpu = renderer.upload(&model.mesh).expect("uploads");
        times.push(started.elapsed());
        drop(gpu);
    }
    println!(
        "dense part load (binary STL {:.1} MB, parse + upload): p50 {:.1} ms, max {:.1} ms",
        stl.len() as f64 / 1e6,
        percentile(&mut times, 0.5),
        percentile(&mut times, 1.0)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(times: &mut [Duration], q: f64) -> f64 {
    times.sort_unstable();
    ms(times[((times.len() - 1) as f64 * q).round() as usize])
}
