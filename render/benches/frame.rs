//! Frame cost on this machine: render + readback and JPEG encoding of each sample model at 720p.
//!
//! `cargo bench -p parallax-render --bench frame` prints a table; with `PARALLAX_BENCH_OUT=DIR`
//! it also writes each model's frame as `DIR/<model>.jpg` so the pictures can be checked by eye.

use std::time::{Duration, Instant};

use glam::Mat4;
use parallax_render::{Renderer, View, encode_jpeg, samples};

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

    println!(
        "{:<10} {:>9} {:>13} {:>13} {:>13} {:>13} {:>9}",
        "model", "triangles", "first ms", "render p50", "render p95", "jpeg p50", "jpeg KiB"
    );
    for sample in samples::SAMPLES {
        let mesh = (sample.build)();
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
            "{:<10} {:>9} {:>13.1} {:>13.1} {:>13.1} {:>13.1} {:>9.0}",
            sample.id,
            mesh.triangles(),
            ms(first),
            percentile(&mut render_times, 0.50),
            percentile(&mut render_times, 0.95),
            percentile(&mut encode_times, 0.50),
            jpeg.len() as f64 / 1024.0
        );
        if let Some(dir) = &out_dir {
            std::fs::create_dir_all(dir).expect("output dir");
            std::fs::write(dir.join(format!("{}.jpg", sample.id)), &jpeg).expect("write frame");
            drop(image);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(times: &mut [Duration], q: f64) -> f64 {
    times.sort_unstable();
    ms(times[((times.len() - 1) as f64 * q).round() as usize])
}
