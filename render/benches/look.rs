//! What a design review costs a frame: the 188k-triangle dense part at 1280×720, split into
//! 1,000 parts of ~188 triangles, drawn as modelled (one draw), with every part overridden (a
//! tint each, so 1,000 draws reading the part-state buffer), with 8 cut planes (the cutting,
//! capping shader, two-sided), and both; then a hundred parts see-through.
//!
//! `cargo bench -p parallax-render --bench look`

use std::time::{Duration, Instant};

use glam::{Mat4, Vec3};
use parallax_render::{Eye, Look, Part, PartLook, Renderer, View, samples};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const PARTS: u32 = 1000;
const ROUNDS: usize = 30;

fn main() {
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    let mut mesh = samples::dense_shaft(188_000);
    let triangles = mesh.triangles() as u32;
    mesh.parts = (0..PARTS)
        .map(|i| Part {
            name: format!("part {i}"),
            first_triangle: i * triangles / PARTS,
            parent: None,
        })
        .collect();
    let model = renderer.upload(&mesh).expect("the dense part uploads");
    let view = View::framing(&model.bounds, WIDTH, HEIGHT);
    let eyes = [Eye::of(&view)];
    let (min, max) = (model.bounds.min, model.bounds.max);
    // Eight planes, each cutting a sliver off the far ends: all are tested for every pixel.
    let planes: Vec<(Vec3, Vec3)> = (0..8)
        .map(|i| {
            let angle = i as f32 * std::f32::consts::TAU / 8.0;
            let normal = Vec3::new(angle.cos(), 0.0, angle.sin());
            let reach = (max - min).length();
            (model.bounds.center() + normal * reach * 0.45, normal)
        })
        .collect();
    let tinted: Vec<PartLook> = (0..PARTS)
        .map(|i| PartLook {
            tint: Some([(i % 7) as f32 / 7.0, 0.4, 0.6]),
            ..PartLook::default()
        })
        .collect();
    let mut see_through = tinted.clone();
    for part in see_through.iter_mut().step_by(10) {
        part.see_through = true;
    }
    let looks = [
        ("as modelled", Look::default()),
        (
            "1,000 parts tinted",
            Look {
                parts: tinted.clone(),
                ..Look::default()
            },
        ),
        (
            "8 cut planes",
            Look {
                cut_planes: planes.clone(),
                ..Look::default()
            },
        ),
        (
            "1,000 tinted + 8 cuts",
            Look {
                parts: tinted,
                cut_planes: planes,
                ..Look::default()
            },
        ),
        (
            "+ 100 see-through",
            Look {
                parts: see_through,
                ..Look::default()
            },
        ),
    ];
    println!(
        "dense part ({} triangles, {PARTS} parts), {WIDTH}x{HEIGHT}; adapter {}",
        model.triangles,
        renderer.adapter().name
    );
    println!("{:<24} {:>12} {:>12}", "look", "render p50", "render p95");
    for (name, look) in &looks {
        let draw = |r: &mut Renderer| {
            r.render_look((Some(&model), look), Mat4::IDENTITY, &eyes, WIDTH, HEIGHT)
                .expect("renders")
        };
        draw(&mut renderer);
        let mut times: Vec<Duration> = (0..ROUNDS)
            .map(|_| {
                let started = Instant::now();
                draw(&mut renderer);
                started.elapsed()
            })
            .collect();
        times.sort_unstable();
        let ms = |q: f64| times[((ROUNDS - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        println!("{:<24} {:>10.1}ms {:>10.1}ms", name, ms(0.5), ms(0.95));
    }
}
