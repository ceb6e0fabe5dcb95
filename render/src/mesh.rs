//! Triangle meshes as the renderer consumes them.
//!
//! CAD parts read best flat-shaded, so faces do not share vertices: every triangle carries its
//! own face normal and colour.

use bytemuck::{Pod, Zeroable};
use glam::Vec3;

/// One corner of a triangle, laid out as the vertex shader reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Pod, Zeroable)]
pub struct Vertex {
    pub position: [f32; 3],
    pub normal: [f32; 3],
    /// Linear RGB base colour of the face.
    pub color: [f32; 3],
}

/// Axis-aligned bounds of a mesh.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: Vec3,
    pub max: Vec3,
}

impl Bounds {
    pub fn center(&self) -> Vec3 {
        (self.min + self.max) * 0.5
    }

    /// Radius of the sphere around the box: what a camera must fit to see all of it.
    pub fn radius(&self) -> f32 {
        (self.max - self.min).length() * 0.5
    }
}

/// An indexed triangle list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mesh {
    pub vertices: Vec<Vertex>,
    pub indices: Vec<u32>,
}

impl Mesh {
    pub fn triangles(&self) -> u64 {
        (self.indices.len() / 3) as u64
    }

    /// Bounds of all vertices; `None` for an empty mesh.
    pub fn bounds(&self) -> Option<Bounds> {
        let mut points = self.vertices.iter().map(|v| Vec3::from(v.position));
        let first = points.next()?;
        let (min, max) = points.fold((first, first), |(lo, hi), p| (lo.min(p), hi.max(p)));
        Some(Bounds { min, max })
    }

    /// Adds triangle `a b c` (counter-clockwise seen from its front) in `color`.
    pub fn push_triangle(&mut self, a: Vec3, b: Vec3, c: Vec3, color: [f32; 3]) {
        let normal = (b - a).cross(c - a).normalize_or_zero().to_array();
        let base = self.vertices.len() as u32;
        for p in [a, b, c] {
            self.vertices.push(Vertex {
                position: p.to_array(),
                normal,
                color,
            });
        }
        self.indices.extend([base, base + 1, base + 2]);
    }

    /// Adds the planar quad `a b c d` (counter-clockwise seen from its front).
    pub fn push_quad(&mut self, a: Vec3, b: Vec3, c: Vec3, d: Vec3, color: [f32; 3]) {
        self.push_triangle(a, b, c, color);
        self.push_triangle(a, c, d, color);
    }

    /// Adds an axis-aligned box.
    pub fn push_box(&mut self, min: Vec3, max: Vec3, color: [f32; 3]) {
        let corner = |x: bool, y: bool, z: bool| {
            Vec3::new(
                if x { max.x } else { min.x },
                if y { max.y } else { min.y },
                if z { max.z } else { min.z },
            )
        };
        let (f, t) = (false, true);
        // Each face counter-clockwise seen from outside.
        let faces = [
            [
                corner(t, f, f),
                corner(t, t, f),
                corner(t, t, t),
                corner(t, f, t),
            ], // +x
            [
                corner(f, f, f),
                corner(f, f, t),
                corner(f, t, t),
                corner(f, t, f),
            ], // -x
            [
                corner(f, t, f),
                corner(f, t, t),
                corner(t, t, t),
                corner(t, t, f),
            ], // +y
            [
                corner(f, f, f),
                corner(t, f, f),
                corner(t, f, t),
                corner(f, f, t),
            ], // -y
            [
                corner(f, f, t),
                corner(t, f, t),
                corner(t, t, t),
                corner(f, t, t),
            ], // +z
            [
                corner(f, f, f),
                corner(f, t, f),
                corner(t, t, f),
                corner(t, f, f),
            ], // -z
        ];
        for [a, b, c, d] in faces {
            self.push_quad(a, b, c, d, color);
        }
    }

    /// Adds a closed prism: the polygon `outline` in the XZ plane (counter-clockwise seen from +Y),
    /// extruded from `y0` to `y1`. The outline must be convex for its caps to be right.
    pub fn push_prism(&mut self, outline: &[[f32; 2]], y0: f32, y1: f32, color: [f32; 3]) {
        let at = |p: [f32; 2], y: f32| Vec3::new(p[0], y, p[1]);
        for i in 1..outline.len().saturating_sub(1) {
            let (a, b, c) = (outline[0], outline[i], outline[i + 1]);
            self.push_triangle(at(a, y1), at(c, y1), at(b, y1), color);
            self.push_triangle(at(a, y0), at(b, y0), at(c, y0), color);
        }
        for (i, &p) in outline.iter().enumerate() {
            let q = outline[(i + 1) % outline.len()];
            self.push_quad(at(p, y0), at(q, y0), at(q, y1), at(p, y1), color);
        }
    }

    /// Adds a solid of revolution about the Y axis: `profile` is a list of `(radius, y)` points,
    /// swept through `segments` steps.
    pub fn push_lathe(&mut self, profile: &[[f32; 2]], segments: u32, color: [f32; 3]) {
        let ring = |k: u32| {
            let angle = k as f32 / segments as f32 * std::f32::consts::TAU;
            (angle.cos(), angle.sin())
        };
        for k in 0..segments {
            let ((c0, s0), (c1, s1)) = (ring(k), ring(k + 1));
            for pair in profile.windows(2) {
                let ([r0, y0], [r1, y1]) = (pair[0], pair[1]);
                self.push_quad(
                    Vec3::new(r0 * c0, y0, r0 * s0),
                    Vec3::new(r0 * c1, y0, r0 * s1),
                    Vec3::new(r1 * c1, y1, r1 * s1),
                    Vec3::new(r1 * c0, y1, r1 * s0),
                    color,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_has_twelve_outward_triangles() {
        let mut mesh = Mesh::default();
        mesh.push_box(Vec3::ZERO, Vec3::new(2.0, 4.0, 6.0), [1.0; 3]);
        assert_eq!(mesh.triangles(), 12);
        let bounds = mesh.bounds().unwrap();
        assert_eq!(bounds.center(), Vec3::new(1.0, 2.0, 3.0));
        // Every face normal points away from the centre.
        for tri in mesh.indices.chunks(3) {
            let v = mesh.vertices[tri[0] as usize];
            let outward = Vec3::from(v.position) - bounds.center();
            assert!(Vec3::from(v.normal).dot(outward) > 0.0);
        }
    }

    #[test]
    fn an_empty_mesh_has_no_bounds() {
        assert_eq!(Mesh::default().bounds(), None);
    }
}
