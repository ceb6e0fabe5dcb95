//! Real STEP files from several exporters (see `tests/data/SOURCES.md`): each imports with the
//! part tree, names, overall size and colours its file gives.

use std::path::Path;

use glam::Vec3;
use parallax_render::{DEFAULT_COLOR, Format, Mesh, srgb8};

fn read(file: &str) -> parallax_step::StepModel {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parallax_step::read(&bytes, &Default::default())
        .unwrap_or_else(|e| panic!("{file} does not import: {e}"))
}

fn paths(mesh: &Mesh) -> Vec<String> {
    (0..mesh.parts.len()).map(|i| mesh.path_of(i)).collect()
}

fn size(mesh: &Mesh) -> Vec3 {
    let bounds = mesh.bounds().expect("triangles");
    bounds.max - bounds.min
}

/// Within 0.2 % of the largest side: chords across a curved face fall short of the surface by up
/// to the chordal deflection, a thousandth of that side.
fn assert_size(file: &str, mesh: &Mesh, expected: [f32; 3]) {
    let size = size(mesh);
    let expected = Vec3::from(expected);
    assert!(
        (size - expected).abs().max_element() <= expected.max_element() * 0.002,
        "{file} is {size} mm, expected {expected:?}"
    );
}

/// The colours the mesh uses, as its vertices hold them (8-bit sRGB).
fn colours(mesh: &Mesh) -> Vec<[u8; 4]> {
    let mut colours: Vec<[u8; 4]> = mesh.vertices.iter().map(|v| v.color).collect();
    colours.sort_unstable();
    colours.dedup();
    colours
}

/// The linear value of an 8-bit-ish sRGB component, as the file writes it.
fn linear(srgb: f32) -> f32 {
    if srgb <= 0.04045 {
        srgb / 12.92
    } else {
        ((srgb + 0.055) / 1.055).powf(2.4)
    }
}

#[test]
fn a_euclid_screw_is_one_grey_part_of_its_size() {
    let step = read("screw.step");
    assert_eq!(step.model.format, Format::Step);
    assert_eq!(step.unit, "millimetre");
    assert_eq!(paths(&step.model.mesh), ["the product name"]);
    assert_size("screw.step", &step.model.mesh, [19.843, 20.0, 42.295]);
    // The file gives no colour.
    assert_eq!(colours(&step.model.mesh), [srgb8(DEFAULT_COLOR)]);
    // Curved: a thousandth of 42.3 mm as chordal deflection gives over a thousand triangles.
    assert!((step.chordal - 0.0423).abs() < 1e-3, "{}", step.chordal);
    assert!(step.model.triangles() > 1000, "{}", step.model.triangles());
}

#[test]
fn an_assembly_keeps_its_products_under_their_group_in_place() {
    let step = read("I22_2_5_16withEPL22_6_16.stp");
    let mesh = &step.model.mesh;
    assert_eq!(
        paths(mesh),
        [
            "Open CASCADE STEP translator 6.3 2",
            "Open CASCADE STEP translator 6.3 2/Open CASCADE STEP translator 6.3 2.1",
            "Open CASCADE STEP translator 6.3 2/Open CASCADE STEP translator 6.3 2.2",
        ]
    );
    assert_size("the assembly", mesh, [21.8, 15.8, 8.3]);
    // The two products sit side by side where the assembly places them, not on top of each
    // other at their own origins.
    let extents = mesh.part_extents();
    let (a, b) = (extents[1].1.unwrap(), extents[2].1.unwrap());
    let overlap = (a.max.min(b.max) - a.min.max(b.min)).min_element();
    assert!(
        overlap < 0.5,
        "the parts overlap by {overlap} mm: {a:?} {b:?}"
    );
    assert!(extents[1].0 > 0 && extents[2].0 > 0);
}

#[test]
fn an_inch_file_is_read_in_millimetres() {
    let inch = read("I22_2_5_16withEPL22_6_16-inch.stp");
    let millimetres = read("I22_2_5_16withEPL22_6_16.stp");
    assert_eq!(inch.unit, "INCH");
    assert_size("the inch assembly", &inch.model.mesh, [21.8, 15.8, 8.3]);
    assert_eq!(paths(&inch.model.mesh), paths(&millimetres.model.mesh));
    let (a, b) = (
        inch.model.mesh.bounds().unwrap(),
        millimetres.model.mesh.bounds().unwrap(),
    );
    assert!((a.min - b.min).abs().max_element() < 0.01, "{a:?} vs {b:?}");
}

#[test]
fn a_fusion_export_keeps_its_product_name_and_colours() {
    let step = read("AMASS_XT60-F_1x02_P7.2mm_Vertical.step");
    assert_eq!(paths(&step.model.mesh), ["XT60 female v5"]);
    assert_size("the XT60", &step.model.mesh, [15.9, 8.1, 21.2]);
    // COLOUR_RGB (0.91, 0.68, 0.13)-ish yellow housing and gold contacts, in sRGB in the file.
    let colours = colours(&step.model.mesh);
    assert_eq!(colours.len(), 2, "{colours:?}");
    assert!(!colours.contains(&srgb8(DEFAULT_COLOR)));
}

#[test]
fn face_colours_come_through_converted_to_linear() {
    // kicad StepUp: a brown body (sRGB 0.82, 0.686, 0.06-ish) and tinned leads.
    let axial = read("C_Axial_L12.0mm_D10.5mm_P15.00mm_Horizontal.step");
    assert_eq!(axial.model.mesh.parts.len(), 1);
    assert_size("the capacitor", &axial.model.mesh, [15.5, 10.5, 12.492]);
    assert_eq!(colours(&axial.model.mesh).len(), 2);

    // Three colours given per face; the black of the pads is the only one at zero.
    let crystal = read("Crystal_SMD_4P_2520.step");
    assert_eq!(paths(&crystal.model.mesh), ["Crystal_SMD_4P_2520"]);
    assert_size("the crystal", &crystal.model.mesh, [2.5, 1.0, 2.0]);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/Crystal_SMD_4P_2520.step"),
    )
    .unwrap();
    let mut expected: Vec<[u8; 4]> = text
        .lines()
        .filter_map(|line| {
            line.split_once("COLOUR_RGB")?
                .1
                .split_once(",")?
                .1
                .split_once(")")
        })
        .map(|(numbers, _)| {
            let c: Vec<f32> = numbers
                .split(',')
                .map(|n| n.trim().parse().unwrap())
                .collect();
            srgb8([linear(c[0]), linear(c[1]), linear(c[2])])
        })
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(colours(&crystal.model.mesh), expected);
}

#[test]
fn a_pick_names_the_assembly_part_it_hits() {
    use parallax_render::pick::{Ray, cast};
    let step = read("I22_2_5_16withEPL22_6_16.stp");
    let mesh = &step.model.mesh;
    let extents = mesh.part_extents();
    let (a, b) = (extents[1].1.unwrap(), extents[2].1.unwrap());
    // The two products are stacked along the axis where their boxes overlap least. From outside
    // on each one's side, a ray at one of its outer faces meets that product first.
    let gap = a.max.min(b.max) - a.min.max(b.min);
    let axis = Vec3::AXES[gap.min_position()];
    let reach = mesh.bounds().unwrap().radius() * 4.0;
    for (index, (own, other)) in [(1usize, (a, b)), (2, (b, a))] {
        let outward = axis * (own.center() - other.center()).dot(axis).signum();
        let path = mesh.path_of(index);
        let corners = |t: usize| {
            [0, 1, 2].map(|i| Vec3::from(mesh.vertices[mesh.indices[3 * t + i] as usize].position))
        };
        let area = |t: usize| {
            let [p, q, r] = corners(t);
            (q - p).cross(r - p).length()
        };
        // Its largest outer face: a sliver's centroid lies on an edge, where a ray may slip by.
        let face = (0..mesh.triangles() as usize)
            .filter(|&t| {
                mesh.part_of(t).as_ref() == Some(&path) && mesh.face_normal(t).dot(outward) > 0.99
            })
            .max_by(|&x, &y| area(x).total_cmp(&area(y)))
            .expect("an outer face");
        let centroid = corners(face).into_iter().sum::<Vec3>() / 3.0;
        let ray = Ray {
            origin: centroid + outward * reach,
            direction: -outward,
        };
        let hits = cast(mesh, glam::Mat4::IDENTITY, ray, false);
        let hit = hits.first().and_then(|hit| mesh.part_of(hit.triangle));
        assert_eq!(hit, Some(path), "{hits:?}");
    }
}
