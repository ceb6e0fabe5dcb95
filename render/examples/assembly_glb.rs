//! Writes the generated assembly (`samples::assembly`) as a binary glTF, as a CAD exporter would:
//! a node per rack and per shaft, each shaft its own mesh and material.
//! `cargo run --release -p parallax-render --example assembly_glb -- TRIANGLES OUT.glb`
//! (1,000,000 triangles by default). What the big-model load bench uploads.
//!
//! `… -- copies:N OUT.glb` writes instead one mesh, the dense turned part (188,000 triangles),
//! placed by N nodes in a grid: a GLB of one part used N times, as issue 33 tried it (107).

use std::borrow::Cow;

use glam::Vec3;
use gltf::binary::{Glb, Header};
use parallax_render::{Bounds, samples};
use serde_json::{Value, json};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let out = args.next().unwrap_or_else(|| "assembly.glb".into());
    if let Some(copies) = what.strip_prefix("copies:") {
        return write_copies(copies.parse()?, &out);
    }
    let target: usize = what.parse().unwrap_or(1_000_000);
    let mesh = samples::assembly(target);

    let mut bin: Vec<u8> = Vec::new();
    let (mut views, mut accessors, mut meshes, mut materials) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut nodes: Vec<Value> = mesh
        .parts
        .iter()
        .map(|part| json!({ "name": part.name }))
        .collect();
    for (part, triangles) in mesh.draw_ranges() {
        let Some(part) = part else { continue };
        // The part's own vertices, numbered from 0.
        let global = &mesh.indices[triangles.start as usize * 3..triangles.end as usize * 3];
        let mut local_of = std::collections::HashMap::new();
        let mut positions: Vec<[f32; 3]> = Vec::new();
        let local: Vec<u32> = global
            .iter()
            .map(|&i| {
                *local_of.entry(i).or_insert_with(|| {
                    positions.push(mesh.vertices[i as usize].position);
                    (positions.len() - 1) as u32
                })
            })
            .collect();
        let (min, max) = corners(&positions);
        let view = |bin: &mut Vec<u8>, bytes: &[u8], target: u32| {
            let offset = bin.len();
            bin.extend_from_slice(bytes);
            json!({ "buffer": 0, "byteOffset": offset, "byteLength": bytes.len(), "target": target })
        };
        views.push(view(&mut bin, bytemuck::cast_slice(&positions), 34962));
        accessors.push(json!({
            "bufferView": views.len() - 1, "componentType": 5126, "count": positions.len(),
            "type": "VEC3", "min": min, "max": max,
        }));
        views.push(view(&mut bin, bytemuck::cast_slice(&local), 34963));
        accessors.push(json!({
            "bufferView": views.len() - 1, "componentType": 5125, "count": local.len(),
            "type": "SCALAR",
        }));
        let [r, g, b] = mesh.vertices[global[0] as usize].linear_color();
        materials.push(json!({ "pbrMetallicRoughness": { "baseColorFactor": [r, g, b, 1.0] } }));
        meshes.push(json!({ "primitives": [{
            "attributes": { "POSITION": accessors.len() - 2 },
            "indices": accessors.len() - 1,
            "material": materials.len() - 1,
        }]}));
        nodes[part]["mesh"] = json!(meshes.len() - 1);
    }
    let mut roots = Vec::new();
    for (i, part) in mesh.parts.iter().enumerate() {
        match part.parent {
            Some(parent) => {
                let children = &mut nodes[parent as usize]["children"];
                if children.is_null() {
                    *children = json!([]);
                }
                children.as_array_mut().expect("a list").push(json!(i));
            }
            None => roots.push(i),
        }
    }
    let document = json!({
        "asset": { "version": "2.0", "generator": "parallax assembly_glb" },
        "scene": 0,
        "scenes": [{ "nodes": roots }],
        "nodes": nodes,
        "meshes": meshes,
        "materials": materials,
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{ "byteLength": bin.len() }],
    });
    write_glb(&out, &document, bin)?;
    eprintln!(
        "{out}: {} triangles in {} parts",
        mesh.triangles(),
        mesh.parts.len()
    );
    Ok(())
}

/// One mesh, the dense part, placed by `copies` nodes ten to a row.
fn write_copies(copies: usize, out: &str) -> Result<(), Box<dyn std::error::Error>> {
    let part = samples::dense_shaft(188_000);
    let positions: Vec<[f32; 3]> = part.vertices.iter().map(|v| v.position).collect();
    let (min, max) = corners(&positions);
    let mut bin: Vec<u8> = bytemuck::cast_slice(&positions).to_vec();
    let index_offset = bin.len();
    bin.extend_from_slice(bytemuck::cast_slice(&part.indices));
    let pitch = (max[0] - min[0]).max(max[2] - min[2]) * 1.5;
    let nodes: Vec<Value> = (0..copies)
        .map(|i| {
            json!({
                "name": format!("Shaft {}", i + 1),
                "mesh": 0,
                "translation": [(i % 10) as f32 * pitch, 0.0, (i / 10) as f32 * pitch],
            })
        })
        .collect();
    let [r, g, b] = part.vertices[0].linear_color();
    let document = json!({
        "asset": { "version": "2.0", "generator": "parallax assembly_glb" },
        "scene": 0,
        "scenes": [{ "nodes": (0..copies).collect::<Vec<_>>() }],
        "nodes": nodes,
        "meshes": [{ "primitives": [{ "attributes": { "POSITION": 0 }, "indices": 1, "material": 0 }] }],
        "materials": [{ "pbrMetallicRoughness": { "baseColorFactor": [r, g, b, 1.0] } }],
        "accessors": [
            { "bufferView": 0, "componentType": 5126, "count": positions.len(), "type": "VEC3",
              "min": min, "max": max },
            { "bufferView": 1, "componentType": 5125, "count": part.indices.len(), "type": "SCALAR" },
        ],
        "bufferViews": [
            { "buffer": 0, "byteOffset": 0, "byteLength": index_offset, "target": 34962 },
            { "buffer": 0, "byteOffset": index_offset, "byteLength": bin.len() - index_offset,
              "target": 34963 },
        ],
        "buffers": [{ "byteLength": bin.len() }],
    });
    write_glb(out, &document, bin)?;
    eprintln!("{out}: {copies} copies of {} triangles", part.triangles());
    Ok(())
}

/// The corners of the box around `positions`, as a glTF accessor's `min` and `max`.
fn corners(positions: &[[f32; 3]]) -> ([f32; 3], [f32; 3]) {
    let bounds =
        Bounds::of_points(positions.iter().map(|p| Vec3::from(*p))).expect("a part has vertices");
    (bounds.min.to_array(), bounds.max.to_array())
}

/// Writes the binary glTF of `document` and its buffer `bin` to `out`.
fn write_glb(out: &str, document: &Value, bin: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
    let glb = Glb {
        header: Header {
            magic: *b"glTF",
            version: 2,
            length: 0,
        },
        json: Cow::Owned(serde_json::to_vec(document)?),
        bin: Some(Cow::Owned(bin)),
    };
    std::fs::write(out, glb.to_vec()?)?;
    Ok(())
}
