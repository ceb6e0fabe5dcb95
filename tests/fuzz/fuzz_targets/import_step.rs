//! STEP through the C++ shim into OpenCascade. A crash in OpenCascade itself is what the
//! conversion child's limits are for; the shim and the Rust side must hold up whatever it returns.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(model) = parallax_step::read(data, &parallax_step::Tessellation::default()) {
        assert!(model.model.triangles() > 0);
        assert!(model.chordal > 0.0);
        let bytes = model.model.mesh.to_bytes();
        assert_eq!(
            parallax_render::Mesh::from_bytes(&bytes).as_ref(),
            Ok(&model.model.mesh)
        );
    }
});
