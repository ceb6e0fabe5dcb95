//! What a pick costs on a big model: the generated assembly (`samples::assembly`) at 1, 5 and
//! 20 million triangles, framed as a headset sees it at 640×360. For each size: how long the pick
//! index takes to build and what it holds, then the closest hit under points of the model on
//! screen (the middles of random triangles, seen or hidden) through the index and, for comparison, testing every triangle (what picks did before).
//!
//! `cargo bench -p parallax-render --bench pick [-- MILLIONS...]`

use std::time::{Duration, Instant};

use glam::{Mat4, Vec3};
use parallax_core::device::HitPolicy;
use parallax_core::review::Review;
use parallax_render::pick::{PickIndex, cast_shown};
use parallax_render::{View, samples};
use rand::{Rng, SeedableRng, rngs::StdRng};

const PICKS: usize = 200;
/// Testing every triangle of 20 M takes about a third of a second a pick: fewer of those.
const BRUTE_PICKS: usize = 30;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1, 5, 20]
    } else {
        sizes
    };
    println!(
        "| triangles | parts | index build | index bytes/triangle | pick p50 | pick p99 | every triangle p50 | every triangle p99 | hits |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for millions in sizes {
        let mesh = samples::assembly(millions * 1_000_000);
        let started = Instant::now();
        let index = PickIndex::new(&mesh);
        let built = started.elapsed();
        let bounds = mesh.bounds().expect("the assembly has triangles");
        let view = View::framing(&bounds, 640, 360);
        let mut random = StdRng::seed_from_u64(20);
        // Where people pick: on the model, at the middle of a random triangle's place on screen.
        let to_clip = view.view_projection();
        let mut rays = (0..PICKS).map(|_| {
            let t = random.random_range(0..mesh.triangles() as usize);
            let corners = mesh.indices[t * 3..t * 3 + 3]
                .iter()
                .map(|&i| Vec3::from(mesh.vertices[i as usize].position));
            let middle = to_clip.project_point3(corners.sum::<Vec3>() / 3.0);
            let (x, y) = ((middle.x + 1.0) * 320.0, (1.0 - middle.y) * 180.0);
            view.ray_through(x.clamp(0.0, 640.0), y.clamp(0.0, 360.0))
                .expect("inside the view")
        });
        let review = Review::default();
        let mut hits = 0;
        let mut indexed = Vec::new();
        let mut every = Vec::new();
        for (i, ray) in rays.by_ref().enumerate() {
            let started = Instant::now();
            let found = index.cast(&mesh, Mat4::IDENTITY, ray, &review, HitPolicy::Closest);
            indexed.push(started.elapsed());
            hits += usize::from(!found.is_empty());
            if i < BRUTE_PICKS {
                let started = Instant::now();
                let reference = cast_shown(&mesh, Mat4::IDENTITY, ray, &review, false);
                every.push(started.elapsed());
                assert_eq!(
                    found.first(),
                    reference.first(),
                    "the index finds what every triangle finds"
                );
            }
        }
        println!(
            "| {:.1} M | {} | {:.2} s | {:.1} | {} | {} | {} | {} | {hits}/{PICKS} |",
            mesh.triangles() as f64 / 1e6,
            mesh.parts.len(),
            built.as_secs_f64(),
            index.heap_bytes() as f64 / mesh.triangles() as f64,
            ms(percentile(&mut indexed, 50)),
            ms(percentile(&mut indexed, 99)),
            ms(percentile(&mut every, 50)),
            ms(percentile(&mut every, 99)),
        );
    }
}

fn percentile(times: &mut [Duration], p: usize) -> Duration {
    times.sort();
    times[(times.len() * p / 100).min(times.len() - 1)]
}

fn ms(time: Duration) -> String {
    format!("{:.3} ms", time.as_secs_f64() * 1000.0)
}
