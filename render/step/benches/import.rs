//! What reading a STEP file costs: each real file of `tests/data` read, tessellated with the
//! default settings (chordal deflection a thousandth of the model's largest side, 20°) and turned
//! into a welded mesh with its part tree, five times; the median and the triangles. Also a
//! synthetic assembly of 1,000 screw instances (an 800 kB file), to show the cost per instance.
//!
//! `cargo bench -p parallax-step --bench import`
//! `scripts/bench-step-vs-occt.sh` times OpenCascade's own DRAW on the same files.

use std::time::{Duration, Instant};

const ROUNDS: usize = 5;

fn main() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut files: Vec<_> = std::fs::read_dir(&data)
        .expect("tests/data")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("step") || e.eq_ignore_ascii_case("stp"))
        })
        .collect();
    files.sort();
    println!("| file | size | parts | triangles | chordal (mm) | median read |");
    println!("|---|---|---|---|---|---|");
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        row(&name, &bytes);
    }
    let rack = rack(1000);
    row("1,000 screws side by side (made here)", &rack);
}

fn row(name: &str, bytes: &[u8]) {
    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let model = parallax_step::read(bytes, &Default::default()).expect("it reads");
        times.push(started.elapsed());
        last = Some(model);
    }
    times.sort();
    let model = last.unwrap();
    println!(
        "| {name} | {} kB | {} | {} | {:.4} | {:.1} ms |",
        bytes.len() / 1000,
        model.model.mesh.parts.len(),
        model.model.triangles(),
        model.chordal,
        times[ROUNDS / 2].as_secs_f64() * 1000.0
    );
}

/// `screw.step` with `count` instances of the screw placed side by side in one assembly.
fn rack(count: usize) -> Vec<u8> {
    let screw = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/screw.step"),
    )
    .unwrap();
    let end = screw.rfind("ENDSEC;").unwrap();
    let mut text = screw[..end].to_string();
    let mut next = 2_000_000u32;
    let mut entity = |text: &mut String, body: String| {
        next += 1;
        text.push_str(&format!("#{next} = {body};\n"));
        next
    };
    let z = entity(&mut text, "DIRECTION('',(0.,0.,1.))".into());
    let x = entity(&mut text, "DIRECTION('',(1.,0.,0.))".into());
    let origin = entity(&mut text, "CARTESIAN_POINT('',(0.,0.,0.))".into());
    let axes = entity(
        &mut text,
        format!("AXIS2_PLACEMENT_3D('',#{origin},#{z},#{x})"),
    );
    let product = entity(&mut text, "PRODUCT('rack','rack','',(#3))".into());
    let formation = entity(
        &mut text,
        format!("PRODUCT_DEFINITION_FORMATION('','',#{product})"),
    );
    let rack = entity(
        &mut text,
        format!("PRODUCT_DEFINITION('design','',#{formation},#10)"),
    );
    let shape = entity(
        &mut text,
        format!("PRODUCT_DEFINITION_SHAPE('','',#{rack})"),
    );
    let rep = entity(
        &mut text,
        format!("SHAPE_REPRESENTATION('',(#{axes}),#1236)"),
    );
    entity(
        &mut text,
        format!("SHAPE_DEFINITION_REPRESENTATION(#{shape},#{rep})"),
    );
    for k in 0..count {
        let at = format!("({}.,{}.,0.)", (k % 100) * 30, (k / 100) * 30);
        let point = entity(&mut text, format!("CARTESIAN_POINT('',{at})"));
        let place = entity(
            &mut text,
            format!("AXIS2_PLACEMENT_3D('',#{point},#{z},#{x})"),
        );
        let usage = entity(
            &mut text,
            format!("NEXT_ASSEMBLY_USAGE_OCCURRENCE('{k}','','',#{rack},#8,$)"),
        );
        let placed = entity(
            &mut text,
            format!("PRODUCT_DEFINITION_SHAPE('','',#{usage})"),
        );
        let moved = entity(
            &mut text,
            format!("ITEM_DEFINED_TRANSFORMATION('','',#{axes},#{place})"),
        );
        let relation = entity(
            &mut text,
            format!(
                "( REPRESENTATION_RELATIONSHIP('','',#11,#{rep}) \
                 REPRESENTATION_RELATIONSHIP_WITH_TRANSFORMATION(#{moved}) \
                 SHAPE_REPRESENTATION_RELATIONSHIP() )"
            ),
        );
        entity(
            &mut text,
            format!("CONTEXT_DEPENDENT_SHAPE_REPRESENTATION(#{relation},#{placed})"),
        );
    }
    text.push_str(&screw[end..]);
    text.into_bytes()
}
