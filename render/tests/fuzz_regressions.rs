//! Every input that once crashed a fuzz target of this crate (tests/fuzz/regressions/<target>/),
//! run again through what that target checks: it imports into something drawable, or is refused.

use std::path::PathBuf;

use parallax_render::{Mesh, import};

/// The kept inputs of fuzz target `target`.
fn kept(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/regressions")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        // `x.side` is the file `x.gltf` names, as the fuzz target gave it.
        .filter(|p| p.extension().is_none_or(|e| e != "side"))
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

fn drawable_or_refused(name: &str, input: &str, bytes: &[u8]) {
    let side = std::fs::read(std::path::Path::new(input).with_extension("side")).ok();
    if let Ok(model) = import(name, bytes, &mut |_| side.clone()) {
        assert!(model.triangles() > 0, "{input} imported without a triangle");
        assert!(
            model
                .mesh
                .vertices
                .iter()
                .all(|v| v.position.iter().all(|c| c.is_finite())),
            "{input}"
        );
        let again = Mesh::from_bytes(&model.mesh.to_bytes()).unwrap();
        assert_eq!(
            again, model.mesh,
            "{input} changes through the transfer form"
        );
    }
}

#[test]
fn inputs_that_crashed_the_importers_are_drawable_or_refused() {
    let mut seen = 0;
    for target in ["import_stl", "import_obj", "import_gltf"] {
        for (input, bytes) in kept(target) {
            // Kept as the file the target read: its name says its format.
            let name = input.rsplit('/').next().unwrap_or(&input);
            drawable_or_refused(name, &input, &bytes);
            seen += 1;
        }
    }
    assert!(seen > 0, "no kept inputs found");
}

#[test]
fn inputs_that_crashed_the_transfer_form_decoder_decode_or_are_refused() {
    let kept = kept("mesh_transfer");
    assert!(!kept.is_empty(), "no kept inputs found");
    for (input, bytes) in kept {
        if let Ok(mesh) = Mesh::from_bytes(&bytes) {
            let _ = mesh.part_extents();
            assert_eq!(
                Mesh::from_bytes(&mesh.to_bytes()).as_ref(),
                Ok(&mesh),
                "{input}"
            );
        }
    }
}
