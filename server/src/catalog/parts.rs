//! A model's parts as a design review lists them: the part tree with each part's path, triangle
//! count and bounds, and the model's bounds. Made once per model at conversion and kept beside
//! its mesh ([`PARTS`]), so listing parts reads a small file, never the mesh.

use parallax_core::api;
use parallax_render::{Bounds, Mesh, path_in};

/// The parts list's file name in a model's folder: hidden, so no upload can be called that.
pub const PARTS: &str = ".parallax-parts.json";

/// `bounds` as the API states them.
fn bounds_of(bounds: Bounds) -> api::Bounds {
    api::Bounds {
        min: bounds.min.to_array(),
        max: bounds.max.to_array(),
    }
}

/// The parts of `mesh`, as a tree.
pub fn parts_of(mesh: &Mesh) -> api::Parts {
    let extents = mesh.part_extents();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); mesh.parts.len()];
    let mut roots = Vec::new();
    for (i, part) in mesh.parts.iter().enumerate() {
        match part.parent {
            Some(parent) => children[parent as usize].push(i),
            None => roots.push(i),
        }
    }
    // Recursion is bounded: importers refuse trees deeper than 64 levels.
    fn build(
        mesh: &Mesh,
        extents: &[(u64, Option<Bounds>)],
        children: &[Vec<usize>],
        i: usize,
    ) -> api::Part {
        api::Part {
            name: mesh.parts[i].name.clone(),
            path: path_in(&mesh.parts, i),
            triangles: extents[i].0,
            bounds: extents[i].1.map(bounds_of),
            children: children[i]
                .iter()
                .map(|&child| build(mesh, extents, children, child))
                .collect(),
        }
    }
    api::Parts {
        bounds: mesh.bounds().map(bounds_of),
        parts: roots
            .into_iter()
            .map(|root| build(mesh, &extents, &children, root))
            .collect(),
    }
}

/// [`parts_of`] as the JSON file kept beside the mesh.
pub fn parts_file(mesh: &Mesh) -> Vec<u8> {
    serde_json::to_vec(&parts_of(mesh)).expect("parts serialize")
}
