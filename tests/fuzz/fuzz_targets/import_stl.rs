//! STL (binary and ASCII) as an upload brings it: any bytes import or are refused, never crash.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = parallax_render::import("upload.stl", data, &mut |_| None) {
        // What the importer promises: something to draw, every corner finite.
        assert!(model.triangles() > 0);
        assert!(
            model
                .mesh
                .vertices
                .iter()
                .all(|v| v.position.iter().all(|c| c.is_finite()))
        );
    }
});
