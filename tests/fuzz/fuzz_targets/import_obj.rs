//! OBJ as an upload brings it (no material files).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = parallax_render::import("upload.obj", data, &mut |_| None) {
        assert!(model.triangles() > 0);
        assert!(
            model
                .mesh
                .vertices
                .iter()
                .all(|v| v.position.iter().all(|c| c.is_finite()))
        );
        // Every part's path resolves, and round-trips through the transfer form.
        let bytes = model.mesh.to_bytes();
        assert_eq!(
            parallax_render::Mesh::from_bytes(&bytes).as_ref(),
            Ok(&model.mesh)
        );
    }
});
