//! glTF, as JSON (`.gltf`, with one side file the fuzzer also writes) and binary (`.glb`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the form; for JSON, the bytes after the first NUL are `buffer.bin`.
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let result = if form % 2 == 0 {
        let (json, side) = match rest.iter().position(|&b| b == 0) {
            Some(at) => (&rest[..at], Some(rest[at + 1..].to_vec())),
            None => (rest, None),
        };
        parallax_render::import("upload.gltf", json, &mut |_| side.clone())
    } else {
        parallax_render::import("upload.glb", rest, &mut |_| None)
    };
    if let Ok(model) = result {
        assert!(model.triangles() > 0);
        let bytes = model.mesh.to_bytes();
        assert_eq!(
            parallax_render::Mesh::from_bytes(&bytes).as_ref(),
            Ok(&model.mesh)
        );
    }
});
