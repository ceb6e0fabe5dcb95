//! The transfer form render hosts load (`PXM1`/`PXM2`/`PXM3`): what a host decodes from the coordinator.
#![no_main]
use libfuzzer_sys::fuzz_target;
use parallax_render::Mesh;

fuzz_target!(|data: &[u8]| {
    if let Ok(mesh) = Mesh::from_bytes(data) {
        // Whatever loads can be asked about: parts, extents, paths, bounds, instances, its
        // coarse form; and it encodes back.
        for i in 0..mesh.parts.len() {
            let _ = mesh.path_of(i);
        }
        let _ = mesh.part_extents();
        let _ = mesh.draw_ranges();
        let _ = mesh.bounds();
        let _ = mesh.placed();
        let _ = mesh.drawn_triangles();
        let _ = parallax_render::lod::preview(&mesh);
        if mesh.triangles() > 0 {
            let _ = mesh.part_of(0);
        }
        assert_eq!(Mesh::from_bytes(&mesh.to_bytes()), Ok(mesh));
    }
});
