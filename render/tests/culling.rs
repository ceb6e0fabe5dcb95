//! Parts that cannot show are not drawn: outside an eye's view, cut away or hidden. Counted by
//! the renderer, and judged on the pixels: the frame is the one drawn without culling.

use glam::{Mat4, Vec3};
use parallax_render::{Eye, FrameStats, Look, Renderer, RgbaImage, View, samples};

const SIDE: u32 = 320;

/// A frame of `mesh` for `eyes`, with culling on or off, and what the renderer says it drew.
fn frame(
    renderer: &mut Renderer,
    model: &parallax_render::GpuModel,
    look: &Look,
    eyes: &[Eye],
    culling: bool,
) -> (RgbaImage, FrameStats) {
    renderer.set_culling(culling);
    let image = renderer
        .render_look((Some(model), look), Mat4::IDENTITY, eyes, SIDE, SIDE)
        .unwrap();
    (image, renderer.last_frame())
}

fn renderer() -> Renderer {
    Renderer::new()
        .unwrap_or_else(|_| panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)"))
}

/// The same pixels as without culling, and fewer parts drawn; returns what was drawn.
fn same_picture_fewer_parts(
    renderer: &mut Renderer,
    model: &parallax_render::GpuModel,
    look: &Look,
    eyes: &[Eye],
) -> FrameStats {
    let (culled, drawn) = frame(renderer, model, look, eyes, true);
    let (everything, all) = frame(renderer, model, look, eyes, false);
    assert_eq!(
        culled.pixels, everything.pixels,
        "culling changed the picture ({drawn:?})"
    );
    assert!(drawn.parts_drawn > 0 && drawn.parts_culled > 0, "{drawn:?}");
    assert_eq!(
        drawn.parts_drawn + drawn.parts_culled,
        all.parts_drawn + all.parts_culled
    );
    assert!(
        drawn.triangles_drawn < all.triangles_drawn,
        "{drawn:?} {all:?}"
    );
    drawn
}

#[test]
fn parts_outside_an_eyes_view_are_not_drawn_and_the_picture_is_the_same() {
    let mut renderer = renderer();
    // 20 shafts of 10,000 triangles in one rack, 10 by 2.
    let mesh = samples::assembly(200_000);
    let model = renderer.upload(&mesh).unwrap();
    let parts = model.part_names().count() as u32;
    assert_eq!(parts, 20);

    // Framing the whole rack: everything is drawn, in each of two eyes.
    let whole = View::framing(&model.bounds, SIDE, SIDE);
    let (_, all) = frame(
        &mut renderer,
        &model,
        &Look::default(),
        &[Eye::of(&whole); 2],
        true,
    );
    assert_eq!(
        all,
        FrameStats {
            parts_drawn: 2 * parts,
            parts_culled: 0,
            parts_coarser: 0,
            triangles_drawn: 2 * mesh.triangles()
        }
    );

    // Up close to the first shaft: most of the rack is outside the view.
    // (Part 0 is the rack, a group; its first shaft ends where the second begins.)
    let first = mesh.bounds_of(0..mesh.parts[2].first_triangle).unwrap();
    let close = View::framing(&first, SIDE, SIDE);
    let drawn =
        same_picture_fewer_parts(&mut renderer, &model, &Look::default(), &[Eye::of(&close)]);
    assert!(drawn.parts_culled >= 10, "{drawn:?}");

    // Two eyes, each looking at its own end of the rack: each draws its end only.
    let last = mesh
        .bounds_of(mesh.parts.last().unwrap().first_triangle..mesh.triangles() as u32)
        .unwrap();
    let eyes = [Eye::of(&close), Eye::of(&View::framing(&last, SIDE, SIDE))];
    let drawn = same_picture_fewer_parts(&mut renderer, &model, &Look::default(), &eyes);
    assert!(drawn.parts_culled >= 20, "{drawn:?}");

    // Exploded, parts move from the rack's centre: what is culled is judged where they moved to.
    let exploded = Look {
        explode: 0.8,
        ..Look::default()
    };
    same_picture_fewer_parts(&mut renderer, &model, &exploded, &[Eye::of(&close)]);
}

#[test]
fn parts_cut_away_whole_are_not_drawn_and_the_section_is_the_same() {
    let mut renderer = renderer();
    let mesh = samples::assembly(200_000);
    let model = renderer.upload(&mesh).unwrap();
    let whole = View::framing(&model.bounds, SIDE, SIDE);
    // Everything beyond the middle of the rack along x is cut away: half the shafts whole, and
    // the section through the middle ones is capped as before.
    let centre = model.bounds.center();
    let cut = Look {
        cut_planes: vec![(centre, Vec3::X)],
        ..Look::default()
    };
    let drawn = same_picture_fewer_parts(&mut renderer, &model, &cut, &[Eye::of(&whole)]);
    assert!(drawn.parts_culled >= 8, "{drawn:?}");
}
