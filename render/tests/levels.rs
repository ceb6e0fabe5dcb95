//! Levels of detail on the real device (lavapipe where there is no GPU): a frame with parts drawn
//! at coarser levels is the frame at full detail to within the golden images' tolerance, with far
//! fewer triangles; a part the eye is close to is drawn whole.

use glam::{Mat4, Vec3};
use parallax_render::{Eye, FrameStats, GpuModel, Look, Renderer, RgbaImage, View, lod, samples};

const SIDE: u32 = 640;
/// As in the golden images: how far (0–255, per channel) a pixel may be and still be the same...
const PIXEL_THRESHOLD: u8 = 24;
/// ...and the share of pixels that may be further: edges, where one triangle more or less shows.
const TOLERANCE: f64 = 0.005;

fn frame(
    renderer: &mut Renderer,
    model: &GpuModel,
    view: &View,
    levels: bool,
) -> (RgbaImage, FrameStats) {
    renderer.set_levels(levels);
    let image = renderer
        .render_look(
            (Some(model), &Look::default()),
            Mat4::IDENTITY,
            &[Eye::of(view)],
            SIDE,
            SIDE,
        )
        .unwrap();
    (image, renderer.last_frame())
}

/// With `PARALLAX_LOOK_OUT=DIR`, writes `image` there as `name.png` to be checked by eye.
fn keep(name: &str, image: &RgbaImage) {
    if let Some(dir) = std::env::var_os("PARALLAX_LOOK_OUT") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{name}.png")),
            parallax_render::encode_png(image).unwrap(),
        )
        .unwrap();
    }
}

#[test]
fn coarser_levels_draw_the_picture_full_detail_draws_with_fewer_triangles() {
    let Ok(mut renderer) = Renderer::new() else {
        panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)");
    };
    // Two racks of shafts, 10,000 triangles each, with their levels made as conversion does.
    let mut mesh = samples::assembly(1_000_000);
    lod::make_levels(&mut mesh);
    let model = renderer.upload(&mesh).unwrap();
    let whole = View::framing(&model.bounds, SIDE, SIDE);
    // Standing at the first rack's corner, looking along it: near shafts and far ones.
    let along = View {
        eye: Vec3::new(-150.0, 250.0, -150.0),
        target: Vec3::new(300.0, 80.0, 200.0),
        up: Vec3::Y,
        fov_y: 70f32.to_radians(),
        width: SIDE,
        height: SIDE,
    };
    for (name, view) in [("whole", whole), ("along", along)] {
        let (full, all) = frame(&mut renderer, &model, &view, false);
        let (coarse, drawn) = frame(&mut renderer, &model, &view, true);
        keep(&format!("levels-{name}-full"), &full);
        keep(&format!("levels-{name}-coarse"), &coarse);
        let differing = coarse.share_differing(&full, PIXEL_THRESHOLD);
        eprintln!(
            "{name}: {drawn:?} against {all:?}; {:.4} of the pixels differ",
            differing
        );
        assert!(
            differing <= TOLERANCE,
            "{name}: {:.2} % of the pixels differ",
            differing * 100.0
        );
        assert_eq!(all.parts_coarser, 0);
        assert!(drawn.parts_coarser > 0, "{name}: {drawn:?}");
        assert!(
            drawn.triangles_drawn * 2 < all.triangles_drawn,
            "{name}: {drawn:?} {all:?}"
        );
        // The model is there: the comparison has something to compare.
        let blank = renderer.render_scene(None, Mat4::IDENTITY, &view).unwrap();
        assert!(
            full.share_differing(&blank, PIXEL_THRESHOLD) > 0.05,
            "{name}"
        );
    }
    // Close to the first shaft, it is drawn whole while the far ones are not.
    let first = mesh.bounds_of(0..mesh.parts[2].first_triangle).unwrap();
    let close = View::framing(&first, SIDE, SIDE);
    let (_, drawn) = frame(&mut renderer, &model, &close, true);
    assert!(drawn.parts_coarser < drawn.parts_drawn, "{drawn:?}");
}
