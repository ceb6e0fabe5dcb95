//! What a big model costs a render host: the generated assembly (`samples::assembly`, parts of
//! 10,000 triangles in racks of 50) at 1, 5 and 20 million triangles. For each size: the mesh's
//! bytes per triangle (held in memory, on the GPU, in the transfer form), how long its levels of detail take to make (as conversion makes them), the
//! GPU upload, and a headset's stereo frame at 2 × 1024² (render and readback) from a headset's
//! distance (the whole assembly in view) and from inside it (standing among the racks, looking
//! along them): every part at full detail (as before), with culling, and with culling and levels.
//!
//! `NODEVICE_SELECT=1 cargo bench -p parallax-render --bench big [-- MILLIONS...]`

use std::time::{Duration, Instant};

use glam::{Mat4, Vec3};
use parallax_render::{Eye, FrameStats, GpuModel, Look, Renderer, View, lod, samples};

const SIDE: u32 = 1024;
const ROUNDS: usize = 5;
/// Between a person's eyes, in the model's millimetres.
const IPD: f32 = 63.0;

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
    let mut renderer =
        Renderer::new().expect("a wgpu adapter (lavapipe on machines without a GPU)");
    println!("adapter: {}", renderer.adapter().name);
    println!(
        "| triangles | levels made | bytes/triangle: held (with levels), GPU, transfer | upload | \
         view | whole p50 | culled p50 | culled + levels p50 | parts drawn (coarser) | triangles drawn |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for millions in sizes {
        let mut mesh = samples::assembly(millions * 1_000_000);
        let per_triangle = mesh.heap_bytes() as f64 / mesh.triangles() as f64;
        let started = Instant::now();
        lod::make_levels(&mut mesh);
        let levels_made = started.elapsed();
        let with_levels = mesh.heap_bytes() as f64 / mesh.triangles() as f64;
        let transfer = mesh.to_bytes().len() as f64 / mesh.triangles() as f64;
        let started = Instant::now();
        let model = renderer.upload(&mesh).expect("the assembly uploads");
        let upload = started.elapsed();
        let on_gpu = model.gpu_bytes() as f64 / mesh.triangles() as f64;
        drop(mesh);
        let (b, centre) = (model.bounds, model.bounds.center());
        let headset = View::framing(&b, SIDE, SIDE);
        // Standing among the racks at eye height, looking along them.
        let inside = View {
            eye: Vec3::new(centre.x, 160.0, centre.z),
            target: Vec3::new(centre.x + 1000.0, 120.0, centre.z + 300.0),
            up: Vec3::Y,
            fov_y: 90f32.to_radians(),
            width: SIDE,
            height: SIDE,
        };
        for (name, view) in [("headset distance", headset), ("inside", inside)] {
            let eyes = stereo(&view);
            let (whole, _) = frame_time(&mut renderer, &model, &eyes, (false, false));
            let (culled, _) = frame_time(&mut renderer, &model, &eyes, (true, false));
            let (levels, drawn) = frame_time(&mut renderer, &model, &eyes, (true, true));
            println!(
                "| {:.1} M | {:.1} s | {per_triangle:.1} ({with_levels:.1}), {on_gpu:.1}, \
                 {transfer:.1} | {:.2} s | {name} | \
                 {:.0} ms | {:.0} ms | {:.0} ms | {} of {} ({}) | {:.2} M |",
                model.triangles as f64 / 1e6,
                levels_made.as_secs_f64(),
                upload.as_secs_f64(),
                ms(whole),
                ms(culled),
                ms(levels),
                drawn.parts_drawn,
                drawn.parts_drawn + drawn.parts_culled,
                drawn.parts_coarser,
                drawn.triangles_drawn as f64 / 1e6,
            );
        }
    }
}

/// Two eyes `IPD` apart, either side of `view`'s eye, looking the same way.
fn stereo(view: &View) -> [Eye; 2] {
    let right = (view.target - view.eye).cross(view.up).normalize() * IPD / 2.0;
    let eye = |shift: Vec3| {
        Eye::of(&View {
            eye: view.eye + shift,
            target: view.target + shift,
            ..*view
        })
    };
    [eye(-right), eye(right)]
}

/// The median frame time with culling and levels of detail on or off, and what the frame drew.
fn frame_time(
    renderer: &mut Renderer,
    model: &GpuModel,
    eyes: &[Eye],
    (culling, levels): (bool, bool),
) -> (Duration, FrameStats) {
    renderer.set_culling(culling);
    renderer.set_levels(levels);
    let mut times: Vec<Duration> = (0..ROUNDS + 1)
        .map(|_| {
            let started = Instant::now();
            let look = (Some(model), &Look::default());
            renderer
                .render_look(look, Mat4::IDENTITY, eyes, SIDE, SIDE)
                .expect("the frame renders");
            started.elapsed()
        })
        .skip(1)
        .collect();
    times.sort();
    (times[times.len() / 2], renderer.last_frame())
}

fn ms(time: Duration) -> f64 {
    time.as_secs_f64() * 1000.0
}
