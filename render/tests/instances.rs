//! Instances: a part placed many times is held once and drawn per placement. What is drawn and
//! what a pick hits are those of the same parts held one by one.

use glam::{Mat4, Quat, Vec3};
use parallax_core::device::HitPolicy;
use parallax_core::review::{PartOverride, Review};
use parallax_render::pick::{PickIndex, cast_shown};
use parallax_render::{Eye, Instance, Look, Mesh, Renderer, View, samples};

const SIDE: u32 = 320;

/// Three gears: the first held, the others placed copies of it (turned, moved, one larger);
/// and the same three each held.
fn gears() -> (Mesh, Mesh) {
    let gear = samples::gear();
    let placements = [
        Mat4::from_rotation_translation(Quat::from_rotation_y(0.7), Vec3::new(120.0, 0.0, 0.0)),
        Mat4::from_scale_rotation_translation(
            Vec3::splat(1.5),
            Quat::from_rotation_z(0.4),
            Vec3::new(0.0, 20.0, -140.0),
        ),
    ];
    let mut instanced = Mesh::default();
    let mut held = Mesh::default();
    for (mesh, copies) in [(&mut instanced, true), (&mut held, false)] {
        mesh.begin_part("Gear 1");
        mesh.vertices.extend(&gear.vertices);
        mesh.indices.extend(&gear.indices);
        for (i, placement) in placements.iter().enumerate() {
            let part = mesh.begin_part(format!("Gear {}", i + 2));
            if copies {
                mesh.instances.push(Instance {
                    part,
                    of: 0,
                    placement: *placement,
                });
            } else {
                let first = mesh.vertices.len() as u32;
                mesh.vertices.extend(gear.vertices.iter().map(|v| {
                    let mut v = *v;
                    v.position = placement.transform_point3(Vec3::from(v.position)).into();
                    v
                }));
                mesh.indices.extend(gear.indices.iter().map(|i| i + first));
            }
        }
    }
    assert_eq!(instanced.triangles() * 3, held.triangles());
    assert_eq!(instanced.drawn_triangles(), held.triangles());
    (instanced, held)
}

/// Gear 3 tinted and see-through, Gear 2 hidden, a cut through them; exploded when `explode` (where an instance's centre is its
/// copy's placed centre, which is not the centre of its own bounds when turned: compared only
/// between an index and the reference).
fn review(explode: f32) -> Review {
    let mut review = Review {
        explode,
        ..Review::default()
    };
    review.parts.insert(
        "Gear 2".into(),
        PartOverride {
            hidden: Some(true),
            ..PartOverride::default()
        },
    );
    review.parts.insert(
        "Gear 3".into(),
        PartOverride {
            tint: Some([0.9, 0.1, 0.1]),
            see_through: Some(true),
            ..PartOverride::default()
        },
    );
    // Cutting the turned copy and the larger one through, in model space.
    review.cut_planes.push(parallax_core::review::CutPlane {
        point: [60.0, 0.0, 0.0],
        normal: [1.0, 0.0, -0.3],
    });
    review
}

#[test]
fn instances_draw_what_the_parts_held_one_by_one_draw() {
    let (instanced, held) = gears();
    // The copies' bounds are their boxes placed: around the turned copies, a little larger.
    let (a, b) = (instanced.bounds().unwrap(), held.bounds().unwrap());
    assert!(
        a.min.cmple(b.min).all() && a.max.cmpge(b.max).all(),
        "{a:?} {b:?}"
    );
    assert!(a.radius() < b.radius() * 1.2, "{a:?} {b:?}");
    let mut renderer = Renderer::new()
        .unwrap_or_else(|_| panic!("no GPU adapter: install Mesa's lavapipe (scripts/setup.sh)"));
    let (a, b) = (
        renderer.upload(&instanced).unwrap(),
        renderer.upload(&held).unwrap(),
    );
    assert!(a.gpu_bytes() * 2 < b.gpu_bytes(), "held once");
    let view = View::framing(&b.bounds, SIDE, SIDE);
    for review in [Review::default(), review(0.0)] {
        let frames = [&a, &b].map(|model| {
            let look = Look::of_review(&review, model);
            renderer
                .render_look(
                    (Some(model), &look),
                    Mat4::IDENTITY,
                    &[Eye::of(&view)],
                    SIDE,
                    SIDE,
                )
                .unwrap()
        });
        let differ = frames[0]
            .pixels
            .chunks(4)
            .zip(frames[1].pixels.chunks(4))
            .filter(|(x, y)| x.iter().zip(*y).any(|(p, q)| p.abs_diff(*q) > 8))
            .count();
        let background = frames[1]
            .pixels
            .chunks(4)
            .filter(|p| p[..3] == frames[1].pixels[..3])
            .count();
        let drawn = (SIDE * SIDE) as usize - background;
        assert!(drawn > 2_000, "the gears fill the view: {drawn}");
        assert!(
            differ * 200 < drawn,
            "{differ} of {drawn} pixels differ ({review:?})"
        );
    }
}

#[test]
fn a_pick_hits_an_instance_where_it_is_placed_and_names_its_part() {
    let (instanced, held) = gears();
    let index = PickIndex::new(&instanced);
    let bounds = held.bounds().unwrap();
    let view = View::framing(&bounds, SIDE, SIDE);
    let mut named = std::collections::HashSet::new();
    for review in [Review::default(), review(0.0), review(0.4)] {
        for y in (0..SIDE).step_by(7) {
            for x in (0..SIDE).step_by(7) {
                let ray = view.ray_through(x as f32, y as f32).unwrap();
                let got = cast_shown(&instanced, Mat4::IDENTITY, ray, &review, false);
                let fast = index.cast(&instanced, Mat4::IDENTITY, ray, &review, HitPolicy::All);
                assert_eq!(fast.len(), got.len(), "({x}, {y})");
                for (f, g) in fast.iter().zip(&got) {
                    assert_eq!(f.part, g.part);
                    assert!((f.distance - g.distance).abs() < 1e-4 * g.distance.max(1.0));
                    named.insert(instanced.path_of(g.part.unwrap()));
                }
                if review.explode > 0.0 {
                    continue;
                }
                let want = cast_shown(&held, Mat4::IDENTITY, ray, &review, false);
                assert_eq!(got.len(), want.len(), "({x}, {y})");
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.part, w.part);
                    assert!((g.distance - w.distance).abs() < 1e-2 * w.distance.max(1.0));
                }
            }
        }
    }
    assert_eq!(named.len(), 3, "{named:?}");
}
