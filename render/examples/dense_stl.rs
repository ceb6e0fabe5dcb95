//! Writes the benchmarks' dense turned part as a binary STL:
//! `cargo run --release -p parallax-render --example dense_stl -- TRIANGLES OUT.stl`
//! (188,000 triangles by default).

use parallax_render::samples::dense_shaft;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let target: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(188_000);
    let out = args.next().unwrap_or_else(|| "dense.stl".into());
    let mesh = dense_shaft(target);
    std::fs::write(&out, mesh.to_binary_stl())?;
    eprintln!("{out}: {} triangles", mesh.triangles());
    Ok(())
}
