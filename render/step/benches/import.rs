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
    let screw = std::fs::read_to_string(data.join("screw.step")).unwrap();
    let rack = parallax_step::synthetic::screw_assembly(&screw, 1000, false);
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
