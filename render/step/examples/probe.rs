//! Prints what a STEP file imports as: triangles, parts, unit, size, colours and time.
//! `cargo run -p parallax-step --example probe -- FILE...`
fn main() {
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap();
        let t = std::time::Instant::now();
        match parallax_step::read(&bytes, &Default::default()) {
            Ok(m) => {
                let b = m.model.mesh.bounds().unwrap();
                println!(
                    "{path}: {} tris, {} parts, unit {}, chordal {:.4}, size {:?}, {:?}",
                    m.model.triangles(),
                    m.model.mesh.parts.len(),
                    m.unit,
                    m.chordal,
                    b.max - b.min,
                    t.elapsed()
                );
                for i in 0..m.model.mesh.parts.len().min(12) {
                    println!("   {}", m.model.mesh.path_of(i));
                }
                let mut colours: Vec<[u32; 3]> = m
                    .model
                    .mesh
                    .vertices
                    .iter()
                    .map(|v| v.linear_color().map(|c| (c * 1000.0) as u32))
                    .collect();
                colours.sort();
                colours.dedup();
                println!("   colours {:?}", colours);
            }
            Err(e) => println!("{path}: error {e}"),
        }
    }
}
