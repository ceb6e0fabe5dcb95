//! Ray casts against a model: which part of the model is under a point of the screen.

use glam::{Mat4, Vec3};

use parallax_core::review::Review;

use crate::camera::View;
use crate::mesh::Mesh;

/// A ray in scene space; `direction` has unit length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ray {
    pub origin: Vec3,
    pub direction: Vec3,
}

/// One place a ray met a triangle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RayHit {
    pub triangle: usize,
    pub position: Vec3,
    /// The face normal, turned to face the ray.
    pub normal: Vec3,
    pub distance: f32,
}

impl View {
    /// The ray through pixel (`x`, `y`) (0,0 top left) of this view; `None` off the viewport.
    pub fn ray_through(&self, x: f32, y: f32) -> Option<Ray> {
        if !(0.0..=self.width as f32).contains(&x) || !(0.0..=self.height as f32).contains(&y) {
            return None;
        }
        let ndc_x = x / self.width as f32 * 2.0 - 1.0;
        let ndc_y = 1.0 - y / self.height as f32 * 2.0;
        let inverse = self.view_projection().inverse();
        let near = inverse.project_point3(Vec3::new(ndc_x, ndc_y, 0.0));
        let far = inverse.project_point3(Vec3::new(ndc_x, ndc_y, 1.0));
        let direction = (far - near).try_normalize()?;
        Some(Ray {
            origin: self.eye,
            direction,
        })
    }
}

/// Every hit of `ray` on `mesh` placed by `transform`, nearest first; stops after the first hit
/// found when `first_only` (which is then any hit, not necessarily the nearest).
pub fn cast(mesh: &Mesh, transform: Mat4, ray: Ray, first_only: bool) -> Vec<RayHit> {
    cast_shown(mesh, transform, ray, &Review::default(), first_only)
}

/// [`cast`] against the model as `review` shows it: hidden parts are not hit, nor what its cut
/// planes cut away, and exploded parts are hit where the explode moved them.
pub fn cast_shown(
    mesh: &Mesh,
    transform: Mat4,
    ray: Ray,
    review: &Review,
    first_only: bool,
) -> Vec<RayHit> {
    let centre = mesh.bounds().map_or(Vec3::ZERO, |b| b.center());
    let to_model = transform.inverse();
    let cut_away = |p: Vec3| {
        review.cut_planes.iter().any(|plane| {
            (p - Vec3::from(plane.point)).dot(Vec3::from(plane.normal).normalize_or_zero()) > 0.0
        })
    };
    let mut hits = Vec::new();
    for (part, triangles) in mesh.draw_ranges() {
        let path = part.map(|i| mesh.path_of(i));
        if path.as_deref().is_some_and(|p| review.look_of(p).hidden) {
            continue;
        }
        let offset = match review.explode {
            0.0 => Vec3::ZERO,
            explode => (mesh.centre_of(triangles.clone()) - centre) * explode,
        };
        let corner = |i: u32| {
            transform.transform_point3(Vec3::from(mesh.vertices[i as usize].position) + offset)
        };
        for t in triangles {
            let triangle = &mesh.indices[t as usize * 3..t as usize * 3 + 3];
            let [a, b, c] = [
                corner(triangle[0]),
                corner(triangle[1]),
                corner(triangle[2]),
            ];
            let Some(distance) = intersect(ray, a, b, c) else {
                continue;
            };
            let position = ray.origin + ray.direction * distance;
            if cut_away(to_model.transform_point3(position)) {
                continue;
            }
            let mut normal = (b - a).cross(c - a).normalize_or_zero();
            if normal.dot(ray.direction) > 0.0 {
                normal = -normal;
            }
            hits.push(RayHit {
                triangle: t as usize,
                position,
                normal,
                distance,
            });
            if first_only {
                return hits;
            }
        }
    }
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    hits
}

/// Möller–Trumbore: the distance along `ray` to triangle `a b c`, from either side.
fn intersect(ray: Ray, a: Vec3, b: Vec3, c: Vec3) -> Option<f32> {
    let (edge1, edge2) = (b - a, c - a);
    let p = ray.direction.cross(edge2);
    let determinant = edge1.dot(p);
    if determinant.abs() < 1e-12 {
        return None;
    }
    let inverse = 1.0 / determinant;
    let s = ray.origin - a;
    let u = s.dot(p) * inverse;
    if !(0.0..=1.0).contains(&u) {
        return None;
    }
    let q = s.cross(edge1);
    let v = ray.direction.dot(q) * inverse;
    if v < 0.0 || u + v > 1.0 {
        return None;
    }
    let distance = edge2.dot(q) * inverse;
    (distance > 0.0).then_some(distance)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube() -> Mesh {
        let mut mesh = Mesh::default();
        mesh.push_box(Vec3::splat(-1.0), Vec3::splat(1.0), [1.0; 3]);
        mesh.welded()
    }

    #[test]
    fn a_ray_through_a_cube_hits_near_and_far_faces_in_order() {
        let ray = Ray {
            origin: Vec3::new(0.2, 0.3, 10.0),
            direction: Vec3::NEG_Z,
        };
        let hits = cast(&cube(), Mat4::IDENTITY, ray, false);
        assert_eq!(hits.len(), 2);
        assert!((hits[0].distance - 9.0).abs() < 1e-5);
        assert!((hits[0].position - Vec3::new(0.2, 0.3, 1.0)).length() < 1e-5);
        assert_eq!(hits[0].normal, Vec3::Z, "faces the ray");
        assert!((hits[1].distance - 11.0).abs() < 1e-5);
        assert_eq!(cast(&cube(), Mat4::IDENTITY, ray, true).len(), 1);
    }

    #[test]
    fn transforms_move_what_is_hit_and_misses_are_empty() {
        let ray = Ray {
            origin: Vec3::new(0.0, 0.0, 10.0),
            direction: Vec3::NEG_Z,
        };
        let moved = Mat4::from_translation(Vec3::new(5.0, 0.0, 0.0));
        assert!(cast(&cube(), moved, ray, false).is_empty());
        let scaled = Mat4::from_scale(Vec3::splat(2.0));
        assert!((cast(&cube(), scaled, ray, false)[0].distance - 8.0).abs() < 1e-5);
    }

    #[test]
    fn the_ray_through_the_middle_of_the_screen_goes_to_the_target() {
        let bounds = cube().bounds().unwrap();
        let view = View::framing(&bounds, 640, 480);
        let ray = view.ray_through(320.0, 240.0).unwrap();
        let towards = (view.target - view.eye).normalize();
        assert!(ray.direction.dot(towards) > 0.9999);
        assert!(view.ray_through(-1.0, 10.0).is_none());
        assert!(!cast(&cube(), Mat4::IDENTITY, ray, false).is_empty());
        let corner = view.ray_through(0.0, 0.0).unwrap();
        assert!(cast(&cube(), Mat4::IDENTITY, corner, false).is_empty());
    }

    #[test]
    fn a_hit_from_inside_faces_back_along_the_ray() {
        let ray = Ray {
            origin: Vec3::new(0.2, 0.3, 0.0),
            direction: Vec3::NEG_Z,
        };
        let hits = cast(&cube(), Mat4::IDENTITY, ray, false);
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].normal, Vec3::Z, "the far face, seen from inside");
    }

    #[test]
    fn a_ray_past_the_long_edge_of_a_triangle_misses_it() {
        let mut triangle = Mesh::default();
        triangle.push_triangle(Vec3::ZERO, Vec3::X, Vec3::Y, [1.0; 3]);
        let down_at = |x: f32, y: f32| Ray {
            origin: Vec3::new(x, y, 5.0),
            direction: Vec3::NEG_Z,
        };
        assert_eq!(
            cast(&triangle, Mat4::IDENTITY, down_at(0.4, 0.4), false).len(),
            1
        );
        assert!(cast(&triangle, Mat4::IDENTITY, down_at(0.6, 0.6), false).is_empty());
        assert!(cast(&triangle, Mat4::IDENTITY, down_at(0.2, -0.1), false).is_empty());
        // Behind the ray's origin is not a hit.
        let away = Ray {
            direction: Vec3::Z,
            ..down_at(0.2, 0.2)
        };
        assert!(cast(&triangle, Mat4::IDENTITY, away, false).is_empty());
    }

    #[test]
    fn rays_of_a_view_away_from_the_origin_start_at_the_eye_and_go_through_their_pixel() {
        let bounds = crate::mesh::Bounds {
            min: Vec3::new(40.0, 10.0, -20.0),
            max: Vec3::new(60.0, 30.0, 0.0),
        };
        let view = View::framing(&bounds, 640, 480);
        let centre = view.ray_through(320.0, 240.0).unwrap();
        let towards = (view.target - view.eye).normalize();
        assert!(centre.direction.dot(towards) > 0.9999, "{centre:?}");
        assert_eq!(centre.origin, view.eye);
        // A point along the ray through (160, 120) lands on that pixel.
        let ray = view.ray_through(160.0, 120.0).unwrap();
        let clip = view.view_projection() * (ray.origin + ray.direction * 30.0).extend(1.0);
        let (x, y) = (clip.x / clip.w, clip.y / clip.w);
        assert!(
            (x + 0.5).abs() < 1e-3 && (y - 0.5).abs() < 1e-3,
            "({x}, {y})"
        );
    }

    #[test]
    fn a_pick_goes_through_hidden_and_cut_parts_and_finds_exploded_ones_where_they_moved() {
        // Two unit cubes in a row along -z, seen from +z: Front (z 1..3) before Back (z -1..1).
        let mut mesh = Mesh::default();
        let pair = mesh.begin_part("Pair");
        mesh.begin_part_in("Front", Some(pair));
        mesh.push_box(
            Vec3::new(-1.0, -1.0, 1.0),
            Vec3::new(1.0, 1.0, 3.0),
            [1.0; 3],
        );
        mesh.begin_part_in("Back", Some(pair));
        mesh.push_box(Vec3::splat(-1.0), Vec3::splat(1.0), [1.0; 3]);
        let mesh = mesh.welded();
        let ray = Ray {
            origin: Vec3::new(0.2, 0.3, 10.0),
            direction: Vec3::NEG_Z,
        };
        let first = |review: &Review| {
            cast_shown(&mesh, Mat4::IDENTITY, ray, review, false)
                .first()
                .map(|hit| (mesh.part_of(hit.triangle).unwrap(), hit.position.z))
        };
        assert_eq!(first(&Review::default()), Some(("Pair/Front".into(), 3.0)));

        let mut hidden = Review::default();
        hidden.parts.insert(
            "Pair/Front".into(),
            parallax_core::review::PartOverride {
                hidden: Some(true),
                ..Default::default()
            },
        );
        assert_eq!(first(&hidden), Some(("Pair/Back".into(), 1.0)));
        // Hiding the group hides both.
        let mut group = Review::default();
        group
            .parts
            .insert("Pair".into(), hidden.parts["Pair/Front"]);
        assert_eq!(first(&group), None);

        // Cut away everything above z = 0.5: the ray enters Back through its cut face, inside.
        let cut = Review {
            cut_planes: vec![parallax_core::review::CutPlane {
                point: [0.0, 0.0, 0.5],
                normal: [0.0, 0.0, 1.0],
            }],
            ..Review::default()
        };
        assert_eq!(first(&cut), Some(("Pair/Back".into(), -1.0)));

        // Exploded fully, Front moves out by its centre's distance from the assembly's: +1 z.
        let exploded = Review {
            explode: 1.0,
            ..Review::default()
        };
        assert_eq!(first(&exploded), Some(("Pair/Front".into(), 4.0)));
    }
}
