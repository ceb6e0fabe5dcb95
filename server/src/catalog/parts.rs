//! A model's parts as a design review lists them: the part tree with each part's path, triangle
//! count and bounds, and the model's bounds. Made once per model at conversion and kept beside
//! its mesh ([`PARTS`]), so listing parts reads a small file, never the mesh.

use parallax_render::{Bounds, Mesh, path_in};
use serde::Serialize;

/// The parts list's file name in a model's folder: hidden, so no upload can be called that.
pub const PARTS: &str = ".parallax-parts.json";

/// `GET /v1/models/{id}/parts`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartsJson {
    /// Where cut planes go: the model's bounds, in model space.
    pub bounds: Option<BoundsJson>,
    /// The roots of the part tree, in the model's order.
    pub parts: Vec<PartJson>,
}

/// One part, or a group of them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartJson {
    pub name: String,
    /// What a review's overrides and a pick's hits call it: the names from the root down,
    /// joined by `/`.
    pub path: String,
    /// Its own and those of the parts within it.
    pub triangles: u64,
    pub bounds: Option<BoundsJson>,
    pub children: Vec<PartJson>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct BoundsJson {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

impl From<Bounds> for BoundsJson {
    fn from(bounds: Bounds) -> Self {
        Self {
            min: bounds.min.to_array(),
            max: bounds.max.to_array(),
        }
    }
}

/// The parts of `mesh`, as a tree.
pub fn parts_of(mesh: &Mesh) -> PartsJson {
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
    ) -> PartJson {
        PartJson {
            name: mesh.parts[i].name.clone(),
            path: path_in(&mesh.parts, i),
            triangles: extents[i].0,
            bounds: extents[i].1.map(BoundsJson::from),
            children: children[i]
                .iter()
                .map(|&child| build(mesh, extents, children, child))
                .collect(),
        }
    }
    PartsJson {
        bounds: mesh.bounds().map(BoundsJson::from),
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
