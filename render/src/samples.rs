//! CAD-like sample models that Parallax builds itself, so a fresh install has something to show
//! without downloading anything. Units are millimetres.

use std::f32::consts::TAU;

use glam::Vec3;

use crate::mesh::Mesh;

const STEEL: [f32; 3] = [0.46, 0.52, 0.60];
const BRASS: [f32; 3] = [0.78, 0.58, 0.20];
const DARK_STEEL: [f32; 3] = [0.30, 0.33, 0.38];
const ANODISED_RED: [f32; 3] = [0.70, 0.16, 0.12];

/// A sample in the catalog: a stable id, a name for people, and how to build it.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub id: &'static str,
    pub name: &'static str,
    pub build: fn() -> Mesh,
}

/// Every sample, in the order the tablet lists them.
pub const SAMPLES: &[Sample] = &[
    Sample {
        id: "bracket",
        name: "Angle bracket",
        build: bracket,
    },
    Sample {
        id: "gear",
        name: "Spur gear (24 teeth)",
        build: gear,
    },
    Sample {
        id: "shaft",
        name: "Stepped shaft",
        build: shaft,
    },
    Sample {
        id: "gearbox",
        name: "Gearbox (assembly)",
        build: gearbox,
    },
];

/// An L-shaped angle bracket with two gussets and bolt bosses.
pub fn bracket() -> Mesh {
    let mut mesh = Mesh::default();
    // Base plate and upright.
    mesh.begin_part("Base plate");
    mesh.push_box(Vec3::new(0.0, 0.0, 0.0), Vec3::new(80.0, 6.0, 40.0), STEEL);
    mesh.begin_part("Upright");
    mesh.push_box(Vec3::new(0.0, 6.0, 0.0), Vec3::new(6.0, 60.0, 40.0), STEEL);
    // Triangular gussets between them, near each edge.
    mesh.begin_part("Gussets");
    for z in [4.0, 30.0] {
        let outline = [[6.0, z], [6.0, z + 6.0], [40.0, z + 6.0], [40.0, z]];
        let mut gusset = Mesh::default();
        gusset.push_prism(&outline, 0.0, 1.0, STEEL);
        // Shear the unit-height slab into a triangle: height falls linearly from the upright.
        for v in &mut gusset.vertices {
            let along = (v.position[0] - 6.0) / 34.0;
            v.position[1] = 6.0 + v.position[1] * 48.0 * (1.0 - along);
        }
        // Normals changed with the shape: rebuild the triangles so each face gets its own again.
        append_rebuilt(&mut mesh, &gusset);
    }
    // Bolt bosses on the base plate and on the upright.
    mesh.begin_part("Bolt bosses");
    for x in [30.0, 62.0] {
        push_boss(
            &mut mesh,
            Vec3::new(x, 6.0, 20.0),
            Vec3::Y,
            7.0,
            3.0,
            ANODISED_RED,
        );
    }
    push_boss(
        &mut mesh,
        Vec3::new(6.0, 42.0, 20.0),
        Vec3::X,
        7.0,
        3.0,
        ANODISED_RED,
    );
    mesh.welded()
}

/// A spur gear: 24 trapezoidal teeth around a bored hub.
pub fn gear() -> Mesh {
    let mut mesh = Mesh::default();
    mesh.begin_part("Gear");
    push_gear(&mut mesh, 24, (34.0, 40.0), 10.0, 6.0, BRASS);
    mesh.welded()
}

/// A spur gear about the Y axis at the origin: `teeth` trapezoidal teeth between the `root` and
/// `tip` radii around a bore, `half_thickness` either side of y = 0.
fn push_gear(
    mesh: &mut Mesh,
    teeth: usize,
    (root, tip): (f32, f32),
    bore: f32,
    half_thickness: f32,
    color: [f32; 3],
) {
    // Per tooth: root land, rising flank, tip land, falling flank.
    let fractions = [0.0, 0.35, 0.5, 0.75, 0.9];
    let radii = [root, root, tip, tip, root];
    let mut outline = Vec::with_capacity(teeth * fractions.len());
    for tooth in 0..teeth {
        for (f, r) in fractions.iter().zip(radii) {
            outline.push(((tooth as f32 + f) / teeth as f32 * TAU, r));
        }
    }
    let point = |angle: f32, r: f32, y: f32| Vec3::new(r * angle.cos(), y, r * angle.sin());
    let (top, bottom) = (half_thickness, -half_thickness);
    for i in 0..outline.len() {
        let (a0, r0) = outline[i];
        let (a1, r1) = outline[(i + 1) % outline.len()];
        // Faces of the annulus between the bore and the tooth profile.
        mesh.push_quad(
            point(a0, bore, top),
            point(a1, bore, top),
            point(a1, r1, top),
            point(a0, r0, top),
            color,
        );
        mesh.push_quad(
            point(a0, bore, bottom),
            point(a0, r0, bottom),
            point(a1, r1, bottom),
            point(a1, bore, bottom),
            color,
        );
        // Outer wall (teeth) and bore wall.
        mesh.push_quad(
            point(a0, r0, bottom),
            point(a0, r0, top),
            point(a1, r1, top),
            point(a1, r1, bottom),
            color,
        );
        mesh.push_quad(
            point(a0, bore, bottom),
            point(a1, bore, bottom),
            point(a1, bore, top),
            point(a0, bore, top),
            color,
        );
    }
}

/// A gearbox: a housing (a base and a hollow cover) around an input shaft with a pinion and an
/// output shaft with a gear. Its parts are a tree (`Housing/Cover`, `Output shaft/Gear`), what
/// design reviews hide, isolate and cut through.
pub fn gearbox() -> Mesh {
    let mut mesh = Mesh::default();
    let housing = mesh.begin_part("Housing");
    mesh.begin_part_in("Base", Some(housing));
    mesh.push_box(
        Vec3::new(-40.0, 0.0, -50.0),
        Vec3::new(100.0, 8.0, 50.0),
        DARK_STEEL,
    );
    mesh.begin_part_in("Cover", Some(housing));
    let (outer_min, outer_max) = (Vec3::new(-40.0, 8.0, -50.0), Vec3::new(100.0, 72.0, 50.0));
    mesh.push_box(outer_min, outer_max, STEEL);
    // The inside wall, facing in: a hollow shell 3 thick, which a section shows as such.
    let inside = mesh.triangles() as usize;
    mesh.push_box(outer_min + 3.0, outer_max - 3.0, STEEL);
    for triangle in mesh.indices[inside * 3..].chunks_exact_mut(3) {
        triangle.swap(1, 2);
    }
    for (shaft, x, teeth, radii, wheel) in [
        ("Input shaft", 0.0, 12, (16.0, 20.0), "Pinion"),
        ("Output shaft", 56.0, 24, (34.0, 40.0), "Gear"),
    ] {
        let group = mesh.begin_part(shaft);
        mesh.begin_part_in("Shaft", Some(group));
        let start = mesh.vertices.len();
        mesh.push_lathe(
            &[[0.0, 11.0], [5.5, 11.0], [5.5, 69.0], [0.0, 69.0]],
            32,
            DARK_STEEL,
        );
        mesh.begin_part_in(wheel, Some(group));
        let gear_start = mesh.vertices.len();
        push_gear(&mut mesh, teeth, radii, 6.0, 5.0, BRASS);
        for v in &mut mesh.vertices[gear_start..] {
            v.position[1] += 40.0;
        }
        for v in &mut mesh.vertices[start..] {
            v.position[0] += x;
        }
    }
    mesh.welded()
}

/// A turned shaft with a collar, bearing seats and a keyway block.
pub fn shaft() -> Mesh {
    let profile = [
        [0.0, 0.0],
        [8.0, 0.0],
        [8.0, 30.0],
        [10.0, 30.0],
        [10.0, 70.0],
        [16.0, 70.0],
        [16.0, 78.0],
        [12.0, 78.0],
        [12.0, 110.0],
        [9.0, 110.0],
        [9.0, 130.0],
        [0.0, 130.0],
    ];
    let mut mesh = Mesh::default();
    mesh.begin_part("Shaft");
    mesh.push_lathe(&profile, 48, DARK_STEEL);
    mesh.push_box(
        Vec3::new(-2.5, 84.0, 10.5),
        Vec3::new(2.5, 104.0, 13.5),
        BRASS,
    );
    mesh.welded()
}

/// A rippled turned part of about `triangles` triangles: the big model the benchmarks use
/// (188,000 triangles there, the size of a detailed CAD part).
pub fn dense_shaft(triangles: usize) -> Mesh {
    const RINGS: usize = 50;
    // Two triangles per quad, less the two that close up at the poles.
    let segments = (triangles / (2 * (RINGS - 2))).max(3) as u32;
    let ripple = |i: usize| {
        let y = i as f32 * 4.0;
        [12.0 + 3.0 * (y * 0.35).sin() + 1.5 * (y * 1.3).cos(), y]
    };
    // Closed at both ends (radius 0), so it is a solid.
    let top = (RINGS - 3) as f32 * 4.0;
    let profile: Vec<[f32; 2]> = std::iter::once([0.0, 0.0])
        .chain((0..RINGS - 2).map(ripple))
        .chain(std::iter::once([0.0, top]))
        .collect();
    let mut mesh = Mesh::default();
    mesh.push_lathe(&profile, segments, STEEL);
    mesh.welded()
}

/// A plant-sized assembly of about `triangles` triangles (at least one part's worth): racks of 50
/// rippled shafts of 10,000 triangles each, every shaft its own shape (radius and length differ),
/// standing in a grid. What the big-model tests and benchmarks load, made here so they need no
/// download: at 20 M triangles, 2,000 parts in 40 racks.
pub fn assembly(triangles: usize) -> Mesh {
    const PER_PART: usize = 10_000;
    const PER_RACK: usize = 50;
    const PITCH: f32 = 48.0;
    let shape = dense_shaft(PER_PART);
    let parts = (triangles / PER_PART).max(1);
    let racks = parts.div_ceil(PER_RACK);
    let across = (racks as f32).sqrt().ceil() as usize;
    let mut mesh = Mesh::default();
    mesh.vertices.reserve(parts * shape.vertices.len());
    mesh.indices.reserve(parts * shape.indices.len());
    let colours = [STEEL, DARK_STEEL, BRASS, ANODISED_RED];
    for r in 0..racks {
        let rack = mesh.begin_part_in(format!("Rack {}", r + 1), None);
        let corner = Vec3::new(
            (r % across) as f32 * PITCH * 12.0,
            0.0,
            (r / across) as f32 * PITCH * 7.0,
        );
        for s in 0..PER_RACK.min(parts - r * PER_RACK) {
            mesh.begin_part_in(format!("Shaft {}", s + 1), Some(rack));
            // The golden ratio's fractions spread radii (0.7–1.3×) and lengths (0.8–1.2×).
            let n = (r * PER_RACK + s) as f32;
            let radius = 0.7 + 0.6 * (n * 0.618_034).fract();
            let length = 0.8 + 0.4 * (n * 0.381_966).fract();
            let at = corner + Vec3::new((s % 10) as f32 * PITCH, 0.0, (s / 10) as f32 * PITCH);
            let color = colours[(r + s) % colours.len()];
            let first = mesh.vertices.len() as u32;
            mesh.vertices.extend(shape.vertices.iter().map(|v| {
                let [x, y, z] = v.position;
                crate::mesh::Vertex::new([x * radius + at.x, y * length, z * radius + at.z], color)
            }));
            mesh.indices.extend(shape.indices.iter().map(|i| i + first));
        }
    }
    mesh
}

/// A cylindrical boss of `radius` standing `height` on `base` along `axis` (+X or +Y).
fn push_boss(mesh: &mut Mesh, base: Vec3, axis: Vec3, radius: f32, height: f32, color: [f32; 3]) {
    let mut boss = Mesh::default();
    boss.push_lathe(
        &[[0.0, 0.0], [radius, 0.0], [radius, height], [0.0, height]],
        32,
        color,
    );
    let rotation = glam::Quat::from_rotation_arc(Vec3::Y, axis);
    for v in &mut boss.vertices {
        v.position = (rotation * Vec3::from(v.position) + base).to_array();
    }
    append_rebuilt(mesh, &boss);
}

/// Appends `part`'s triangles to `mesh`, recomputing face normals from the (moved) positions.
fn append_rebuilt(mesh: &mut Mesh, part: &Mesh) {
    for tri in part.indices.chunks_exact(3) {
        let corner = |i: usize| Vec3::from(part.vertices[tri[i] as usize].position);
        // Shearing collapses some faces to lines; their corners meet, and welding the finished
        // mesh drops them.
        let color = part.vertices[tri[0] as usize].linear_color();
        mesh.push_triangle(corner(0), corner(1), corner(2), color);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_is_a_solid_with_real_extent() {
        for sample in SAMPLES {
            let mesh = (sample.build)();
            assert!(
                mesh.triangles() > 50,
                "{} has {} triangles",
                sample.id,
                mesh.triangles()
            );
            let bounds = mesh.bounds().expect("non-empty");
            assert!(bounds.radius() > 20.0, "{} is too small", sample.id);
            assert!(
                mesh.vertices
                    .iter()
                    .all(|v| v.position.iter().all(|c| c.is_finite())),
                "{} has non-finite coordinates",
                sample.id
            );
        }
    }

    #[test]
    fn samples_are_welded_and_the_dense_part_is_a_closed_solid() {
        for sample in SAMPLES {
            let mesh = (sample.build)();
            assert!(
                mesh.vertices.len() * 2 < mesh.indices.len(),
                "{} shares vertices",
                sample.id
            );
        }
        let dense = dense_shaft(188_000);
        assert!(
            (180_000..196_000).contains(&dense.triangles()),
            "{}",
            dense.triangles()
        );
        assert_eq!(dense.orientation(), crate::mesh::Orientation::Outward);
    }

    #[test]
    fn sample_ids_are_unique() {
        let mut ids: Vec<_> = SAMPLES.iter().map(|s| s.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), SAMPLES.len());
    }

    #[test]
    fn no_sample_has_a_triangle_without_area() {
        for sample in SAMPLES {
            let mesh = (sample.build)();
            let flat = (0..mesh.triangles() as usize)
                .filter(|&t| mesh.face_normal(t) == Vec3::ZERO)
                .count();
            assert_eq!(flat, 0, "{} has {flat} triangles without area", sample.id);
        }
    }

    #[test]
    fn the_gearbox_is_a_tree_of_groups_and_parts() {
        let mesh = gearbox();
        let paths: Vec<String> = (0..mesh.parts.len()).map(|i| mesh.path_of(i)).collect();
        assert_eq!(
            paths,
            [
                "Housing",
                "Housing/Base",
                "Housing/Cover",
                "Input shaft",
                "Input shaft/Shaft",
                "Input shaft/Pinion",
                "Output shaft",
                "Output shaft/Shaft",
                "Output shaft/Gear",
            ]
        );
        let extents = mesh.part_extents();
        assert_eq!(
            extents[0].0,
            extents[1].0 + extents[2].0,
            "a group counts its parts"
        );
        assert_eq!(extents[2].0, 24, "the cover is two boxes");
        // The gears sit on their shafts, 40 up, and mesh between them.
        let gear = extents[8].1.unwrap();
        assert_eq!(gear.center().to_array().map(f32::round), [56.0, 40.0, 0.0]);
        let pinion = extents[5].1.unwrap();
        assert!(pinion.max.x > gear.min.x, "the teeth overlap");
    }

    #[test]
    fn the_shaft_has_a_brass_key_five_wide() {
        let mesh = shaft();
        let xs: Vec<f32> = mesh
            .vertices
            .iter()
            .filter(|v| v.color == crate::mesh::srgb8(BRASS))
            .map(|v| v.position[0])
            .collect();
        let (lo, hi) = xs
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        assert_eq!((lo, hi), (-2.5, 2.5));
    }

    #[test]
    fn the_dense_shaft_is_188_tall_and_rippled_between_radii_7_6_and_16_4() {
        let mesh = dense_shaft(20_000);
        let bounds = mesh.bounds().unwrap();
        assert_eq!((bounds.min.y, bounds.max.y), (0.0, 188.0));
        let radii: Vec<f32> = mesh
            .vertices
            .iter()
            .filter(|v| v.position[1] > 0.0 && v.position[1] < 188.0)
            .map(|v| v.position[0].hypot(v.position[2]))
            .collect();
        let (lo, hi) = radii
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &r| (lo.min(r), hi.max(r)));
        assert!(
            (lo - 7.62).abs() < 0.05 && (hi - 16.36).abs() < 0.05,
            "{lo}..{hi}"
        );
        assert!(
            (19_000..21_000).contains(&mesh.triangles()),
            "{}",
            mesh.triangles()
        );
    }
}
