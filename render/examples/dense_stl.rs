//! Writes the benchmarks' dense turned part as a binary STL:
//! `cargo run --release -p parallax-render --example dense_stl -- TRIANGLES OUT.stl`
//! (188,000 triangles by default).

use parallax_render::samples::dense_shaft;

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let target: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(188_000);
    let out = args.next().unwrap_or_else(|| "dense.stl".into());
    let mesh = dense_shaft(target);
    let mut bytes = vec![0u8; 80];
    bytes.extend((mesh.triangles() as u32).to_le_bytes());
    for (t, triangle) in mesh.indices.chunks_exact(3).enumerate() {
        bytes.extend(
            mesh.face_normal(t)
                .to_array()
                .iter()
                .flat_map(|c| c.to_le_bytes()),
        );
        for &i in triangle {
            bytes.extend(
                mesh.vertices[i as usize]
                    .position
                    .iter()
                    .flat_map(|c| c.to_le_bytes()),
            );
        }
        bytes.extend([0u8; 2]);
    }
    std::fs::write(&out, bytes)?;
    eprintln!("{out}: {} triangles", mesh.triangles());
    Ok(())
}
