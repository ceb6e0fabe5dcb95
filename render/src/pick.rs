//! Ray casts against a model: which part of the model is under a point of the screen.
//!
//! [`PickIndex`] is what a render host casts with: built once per model, it holds each part's
//! bounds and a BVH of its triangles, so a ray tests the few triangles near it instead of every
//! triangle of the model. [`cast_shown`] tests every triangle; it is the reference the index is
//! tested against, and the figure the benchmark compares with.

use std::ops::Range;

use glam::{Mat4, Vec3, Vec3A};
use obvhs::BvhBuildParams;
use obvhs::aabb::Aabb;
use obvhs::bvh2::Bvh2;
use obvhs::bvh2::builder::build_bvh2;
use parallax_core::device::HitPolicy;
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
    /// The part hit, in [`Mesh::parts`]: for an instance, the instance's part, not the one whose
    /// triangles it copies. `None` for triangles before the first part.
    pub part: Option<usize>,
    /// The triangle hit, in [`Mesh::indices`]: for a copy, the held triangle it copies.
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
    let mut hits = Vec::new();
    for drawn in drawn(mesh) {
        let path = drawn.part.map(|i| mesh.path_of(i));
        if path.as_deref().is_some_and(|p| review.look_of(p).hidden) {
            continue;
        }
        let offset = match review.explode {
            0.0 => Vec3::ZERO,
            explode => {
                let own = drawn
                    .placement
                    .transform_point3(mesh.centre_of(drawn.triangles.clone()));
                (own - centre) * explode
            }
        };
        let corner = |i: u32| {
            let at = drawn
                .placement
                .transform_point3(Vec3::from(mesh.vertices[i as usize].position));
            transform.transform_point3(at + offset)
        };
        for t in drawn.triangles {
            let triangle = &mesh.indices[t as usize * 3..t as usize * 3 + 3];
            let corners = [
                corner(triangle[0]),
                corner(triangle[1]),
                corner(triangle[2]),
            ];
            let Some(hit) = hit_on(ray, corners, (drawn.part, t), to_model, review) else {
                continue;
            };
            hits.push(hit);
            if first_only {
                return hits;
            }
        }
    }
    hits.sort_by(|a, b| a.distance.total_cmp(&b.distance));
    hits
}

/// A run of triangles as the renderer draws it: a part's own, or an instance's copy of
/// another's, placed.
struct Drawn {
    part: Option<usize>,
    triangles: Range<u32>,
    placement: Mat4,
}

/// What `mesh` draws: each range of [`Mesh::draw_ranges`], then each instance.
fn drawn(mesh: &Mesh) -> Vec<Drawn> {
    let ranges = mesh.draw_ranges();
    let instances = mesh.placed().into_iter().map(|placed| Drawn {
        part: Some(placed.part),
        triangles: ranges[placed.range].1.clone(),
        placement: placed.placement,
    });
    ranges
        .iter()
        .map(|(part, triangles)| Drawn {
            part: *part,
            triangles: triangles.clone(),
            placement: Mat4::IDENTITY,
        })
        .chain(instances)
        .collect()
}

/// A model's triangles arranged for ray casts: for each part (each range [`Mesh::draw_ranges`]
/// gives), its bounds and a BVH of its triangles, in model space; for each instance, its bounds
/// and its placement, cast through the tree of the part it copies. A cast finds the same hits as
/// [`cast_shown`], in the same order, honouring the review the same way: the index only decides
/// which triangles are tested, and they are tested as [`cast_shown`] tests them. Parts are kept
/// apart so that hiding one skips it and exploding moves it whole, with no rebuild.
pub struct PickIndex {
    /// The centre of the model's bounds, which exploded parts move away from.
    centre: Vec3,
    parts: Vec<IndexedPart>,
    /// The instances, each cast through the tree of the part it copies.
    instances: Vec<IndexedInstance>,
}

struct IndexedInstance {
    /// The instance's part in [`Mesh::parts`].
    part: usize,
    /// The part it copies, in [`PickIndex::parts`].
    of: usize,
    placement: Mat4,
    /// Its inverse: from where the copy is to where the copied triangles are.
    to_held: Mat4,
    /// The centre of the copy's bounds.
    centre: Vec3,
    /// The copy's bounds, in model space.
    bounds: Aabb,
}

struct IndexedPart {
    /// The part's index in [`Mesh::parts`]; `None` for the triangles before the first part.
    part: Option<usize>,
    triangles: Range<u32>,
    /// The centre of the part's bounds, which the explode moves out from the model's centre.
    centre: Vec3,
    /// The part's bounds, a little larger than its triangles (see [`PickIndex::new`]).
    bounds: Aabb,
    /// Over the part's triangles, numbered from `triangles.start`.
    bvh: Bvh2,
}

impl PickIndex {
    /// Builds the index of `mesh`: about 0.2 s per million triangles on one core here, 22 bytes
    /// a triangle (docs/BENCHMARKS.md). A host builds it once per model, once it is on screen.
    pub fn new(mesh: &Mesh) -> Self {
        let centre = mesh.bounds().map_or(Vec3::ZERO, |b| b.center());
        let corner = |i: u32| Vec3A::from(mesh.vertices[i as usize].position);
        let parts = mesh
            .draw_ranges()
            .into_iter()
            .filter(|(_, triangles)| !triangles.is_empty())
            .map(|(part, triangles)| {
                let mut boxes: Vec<Aabb> = triangles
                    .clone()
                    .map(|t| {
                        let at = t as usize * 3;
                        let corners = mesh.indices[at..at + 3].iter().map(|&i| corner(i));
                        let mut bounds = Aabb::empty();
                        corners.for_each(|c| {
                            bounds.extend(c);
                        });
                        bounds
                    })
                    .collect();
                let bounds = boxes.iter().fold(Aabb::empty(), |all, b| all.union(b));
                // Rays are traced through the index in model space, triangles tested in scene
                // space: each box is a hair larger (a millionth of the part and of its distance
                // from the origin) so that rounding never leaves out a triangle the test hits.
                let pad = Vec3A::splat(
                    bounds.diagonal().max_element() * 1e-5
                        + bounds.min.abs().max(bounds.max.abs()).max_element() * 1e-6,
                );
                for b in &mut boxes {
                    *b = Aabb::new(b.min - pad, b.max + pad);
                }
                let mut spent = std::time::Duration::ZERO;
                // Quick to build (a fast pick needs no better tree), and leaves of up to 8
                // triangles where that costs a pick little: 22 bytes a triangle, not 26.
                let params = BvhBuildParams {
                    collapse_traversal_cost: 12.0,
                    ..BvhBuildParams::very_fast_build()
                };
                let mut bvh = build_bvh2(&boxes, params, &mut spent);
                // What traversal reads, and no more (the builder leaves each node's parent).
                bvh.nodes.shrink_to_fit();
                bvh.primitive_indices.shrink_to_fit();
                bvh.parents = Vec::new();
                IndexedPart {
                    part,
                    centre: Vec3::from(bounds.center()),
                    bounds: Aabb::new(bounds.min - pad, bounds.max + pad),
                    triangles,
                    bvh,
                }
            })
            .collect::<Vec<IndexedPart>>();
        let tree_of: rustc_hash::FxHashMap<usize, usize> = parts
            .iter()
            .enumerate()
            .filter_map(|(index, p)| Some((p.part?, index)))
            .collect();
        let instances = mesh
            .instances
            .iter()
            .filter_map(|instance| {
                let of = *tree_of.get(&(instance.of as usize))?;
                let held = &parts[of];
                let corners = crate::mesh::Bounds {
                    min: Vec3::from(held.bounds.min),
                    max: Vec3::from(held.bounds.max),
                }
                .placed(instance.placement);
                Some(IndexedInstance {
                    part: instance.part as usize,
                    of,
                    placement: instance.placement,
                    to_held: instance.placement.inverse(),
                    centre: instance.placement.transform_point3(held.centre),
                    bounds: Aabb::new(corners.min.into(), corners.max.into()),
                })
            })
            .collect();
        Self {
            centre,
            parts,
            instances,
        }
    }

    /// About what the index of `mesh` holds, in bytes, before it is built: what a cache weighs
    /// it by (measured on the generated assemblies, docs/BENCHMARKS.md).
    pub fn expected_bytes(mesh: &Mesh) -> u64 {
        // A part's own: its entry (bounds, tree) and its tree's first node.
        let per_part = (std::mem::size_of::<IndexedPart>() + 64) as u64;
        // A copy is cast through the tree of the part it copies: its entry alone.
        let per_copy = std::mem::size_of::<IndexedInstance>() as u64;
        mesh.triangles() * BYTES_PER_TRIANGLE
            + (mesh.parts.len() as u64 + 1) * per_part
            + mesh.instances.len() as u64 * per_copy
    }

    /// The memory the index holds, in bytes.
    pub fn heap_bytes(&self) -> u64 {
        let parts = self.parts.capacity() * std::mem::size_of::<IndexedPart>();
        let trees: usize = self
            .parts
            .iter()
            .map(|p| {
                p.bvh.nodes.capacity() * std::mem::size_of::<obvhs::bvh2::node::Bvh2Node>()
                    + (p.bvh.primitive_indices.capacity() + p.bvh.parents.capacity()) * 4
            })
            .sum();
        let copies = self.instances.capacity() * std::mem::size_of::<IndexedInstance>();
        (std::mem::size_of::<Self>() + parts + trees + copies) as u64
    }

    /// The hits of `ray` on `mesh` (the mesh this index was built from) placed by `transform`,
    /// as `review` shows it: [`HitPolicy::Closest`] the nearest, [`HitPolicy::Any`] one,
    /// [`HitPolicy::All`] every hit, nearest first. The same hits as [`cast_shown`] finds.
    pub fn cast(
        &self,
        mesh: &Mesh,
        transform: Mat4,
        ray: Ray,
        review: &Review,
        policy: HitPolicy,
    ) -> Vec<RayHit> {
        let to_model = transform.inverse();
        // The ray in model space, its direction of unit length: a point at distance `d` along
        // the scene's ray is at `d * stretch` along this one, since placements are affine.
        let origin = to_model.transform_point3(ray.origin);
        let along = to_model.transform_vector3(ray.direction);
        let stretch = along.length();
        if !(origin.is_finite() && stretch.is_finite() && stretch > 0.0) {
            return Vec::new();
        }
        let direction = along / stretch;
        let test = Tester {
            mesh,
            transform,
            to_model,
            ray,
            review,
        };
        // What the ray passes through, nearest first: parts' own triangles and instances', each
        // with the tree it is cast through, its part, its placement and the explode's offset.
        let hidden =
            |part: Option<usize>| part.is_some_and(|i| review.look_of(&mesh.path_of(i)).hidden);
        let offset_of = |centre: Vec3| match review.explode {
            0.0 => Vec3::ZERO,
            explode => (centre - self.centre) * explode,
        };
        let held = self.parts.iter().map(|p| Target {
            tree: p,
            part: p.part,
            placement: None,
            offset: offset_of(p.centre),
            bounds: p.bounds,
        });
        let copies = self.instances.iter().map(|i| Target {
            tree: &self.parts[i.of],
            part: Some(i.part),
            placement: Some((i.placement, i.to_held)),
            offset: offset_of(i.centre),
            bounds: i.bounds,
        });
        let mut passed: Vec<(f32, Target)> = held
            .chain(copies)
            .filter(|target| !hidden(target.part))
            .filter_map(|target| {
                let local = model_ray(origin - target.offset, direction);
                let entry = target.bounds.intersect_ray(&local) / stretch;
                (entry < f32::INFINITY).then_some((entry, target))
            })
            .collect();
        passed.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut hits = Vec::new();
        let mut stack: Vec<u32> = Vec::with_capacity(64);
        for (entry, target) in passed {
            // Nothing in a part the ray enters beyond the nearest hit can be nearer.
            let nearest = hits.first().map(|h: &RayHit| h.distance);
            if policy == HitPolicy::Closest && nearest.is_some_and(|d| entry > slack(d)) {
                break;
            }
            // The ray where the tree's triangles are held: for an instance, moved back by its
            // placement, and a distance there is `scale` times one in the scene.
            let (held_origin, held_along) = match target.placement {
                None => (origin - target.offset, direction),
                Some((_, to_held)) => (
                    to_held.transform_point3(origin - target.offset),
                    to_held.transform_vector3(direction),
                ),
            };
            let along_held = held_along.length();
            if !(along_held.is_finite() && along_held > 0.0) {
                continue;
            }
            let scale = stretch * along_held;
            let mut local = model_ray(held_origin, held_along / along_held);
            if let Some(d) = nearest.filter(|_| policy == HitPolicy::Closest) {
                local.tmax = slack(d) * scale;
            }
            let placement = target.placement.map(|(p, _)| p);
            let part = target.tree;
            let mut done = false;
            stack.clear();
            part.bvh.ray_traverse_dynamic(
                &mut stack,
                local,
                &mut obvhs::ray::RayHit::none(),
                |node, local, _| {
                    let first = node.first_index as usize;
                    for &i in &part.bvh.primitive_indices[first..first + node.prim_count as usize] {
                        let t = part.triangles.start + i;
                        let Some(hit) = test.triangle((target.part, t), placement, target.offset)
                        else {
                            continue;
                        };
                        match policy {
                            HitPolicy::All => hits.push(hit),
                            HitPolicy::Any => {
                                hits.push(hit);
                                done = true;
                                return false;
                            }
                            // The nearest, and of hits as near, the first triangle (as the
                            // reference's stable sort keeps it).
                            HitPolicy::Closest => {
                                let nearer = hits.first().is_none_or(|best: &RayHit| {
                                    (hit.distance, hit.triangle) < (best.distance, best.triangle)
                                });
                                if nearer {
                                    local.tmax = slack(hit.distance) * scale;
                                    hits = vec![hit];
                                }
                            }
                        }
                    }
                    true
                },
            );
            if done {
                break;
            }
        }
        hits.sort_by(|a, b| {
            (a.distance, a.triangle)
                .partial_cmp(&(b.distance, b.triangle))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        hits
    }
}

/// Something a ray may pass through in [`PickIndex::cast`]: a part's own triangles or an
/// instance's copy of them.
struct Target<'a> {
    /// The part whose tree is traversed.
    tree: &'a IndexedPart,
    /// The part a hit names.
    part: Option<usize>,
    /// An instance's placement and its inverse.
    placement: Option<(Mat4, Mat4)>,
    /// Where the explode moves it.
    offset: Vec3,
    /// Its bounds in model space, before the explode.
    bounds: Aabb,
}

/// What an index holds per triangle of its model, in bytes (see [`PickIndex::expected_bytes`]).
const BYTES_PER_TRIANGLE: u64 = 22;

/// A little past distance `d`: hits as near as `d` are still tested, as rounding in model space
/// may put them a hair further.
fn slack(d: f32) -> f32 {
    d * (1.0 + 1e-5) + 1e-6
}

fn model_ray(origin: Vec3, direction: Vec3) -> obvhs::ray::Ray {
    obvhs::ray::Ray::new_inf(origin.into(), direction.into())
}

/// A triangle tested exactly as [`cast_shown`] tests it.
struct Tester<'a> {
    mesh: &'a Mesh,
    transform: Mat4,
    to_model: Mat4,
    ray: Ray,
    review: &'a Review,
}

impl Tester<'_> {
    /// Triangle `t` as drawn for `part`, `placement` (an instance's) and `offset` (the
    /// explode's).
    fn triangle(
        &self,
        (part, t): (Option<usize>, u32),
        placement: Option<Mat4>,
        offset: Vec3,
    ) -> Option<RayHit> {
        let corner = |i: u32| {
            let held = Vec3::from(self.mesh.vertices[i as usize].position);
            let at = placement.map_or(held, |p| p.transform_point3(held));
            self.transform.transform_point3(at + offset)
        };
        let at = t as usize * 3;
        let triangle = &self.mesh.indices[at..at + 3];
        hit_on(
            self.ray,
            [
                corner(triangle[0]),
                corner(triangle[1]),
                corner(triangle[2]),
            ],
            (part, t),
            self.to_model,
            self.review,
        )
    }
}

/// Where `ray` meets triangle `t` with scene-space corners `a b c`, unless that point is cut
/// away by `review` (tested in model space, through `to_model`).
fn hit_on(
    ray: Ray,
    [a, b, c]: [Vec3; 3],
    (part, t): (Option<usize>, u32),
    to_model: Mat4,
    review: &Review,
) -> Option<RayHit> {
    let distance = intersect(ray, a, b, c)?;
    let position = ray.origin + ray.direction * distance;
    let model = to_model.transform_point3(position);
    let cut_away = review.cut_planes.iter().any(|plane| {
        (model - Vec3::from(plane.point)).dot(Vec3::from(plane.normal).normalize_or_zero()) > 0.0
    });
    if cut_away {
        return None;
    }
    let mut normal = (b - a).cross(c - a).normalize_or_zero();
    if normal.dot(ray.direction) > 0.0 {
        normal = -normal;
    }
    Some(RayHit {
        part,
        triangle: t as usize,
        position,
        normal,
        distance,
    })
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
    use parallax_core::review::{CutPlane, PartOverride};
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// The index finds what testing every triangle finds, hit for hit, on random rays through
    /// every sample and a generated assembly, placed off the origin, turned and scaled, with
    /// parts hidden, cut, exploded and all three at once.
    #[test]
    fn the_index_finds_the_hits_testing_every_triangle_finds() {
        let mut random = StdRng::seed_from_u64(33);
        let mut models: Vec<(&str, Mesh)> = crate::samples::SAMPLES
            .iter()
            .map(|s| (s.id, (s.build)()))
            .collect();
        models.push(("assembly", crate::samples::assembly(120_000)));
        // Placed small and turned, and placed huge along the axes (a model scaled up 1,000 times,
        // seen straight from the front: rays with no sideways component at all).
        let turned = Mat4::from_scale_rotation_translation(
            Vec3::splat(0.002),
            glam::Quat::from_euler(glam::EulerRot::YXZ, 0.7, -0.3, 0.2),
            Vec3::new(0.4, 1.1, -2.0),
        );
        let huge = Mat4::from_scale_rotation_translation(
            Vec3::splat(1000.0),
            glam::Quat::IDENTITY,
            Vec3::new(5.0, 0.0, 0.0),
        );
        let mut compared = [0usize; 2];
        let placed = models.iter().flat_map(|m| [(m, turned), (m, huge)]);
        for ((name, mesh), transform) in placed {
            let index = PickIndex::new(mesh);
            let bounds = mesh.bounds().unwrap();
            let paths: Vec<String> = (0..mesh.parts.len()).map(|i| mesh.path_of(i)).collect();
            let mut hidden = Review::default();
            for path in paths.iter().filter(|_| random.random_bool(0.3)) {
                let hide = PartOverride {
                    hidden: Some(true),
                    ..Default::default()
                };
                hidden.parts.insert(path.clone(), hide);
            }
            let cut = Review {
                cut_planes: vec![CutPlane {
                    point: bounds.center().to_array(),
                    normal: [0.3, 1.0, -0.5],
                }],
                ..Review::default()
            };
            let exploded = Review {
                explode: 0.6,
                ..Review::default()
            };
            let all = Review {
                explode: 0.6,
                cut_planes: cut.cut_planes.clone(),
                parts: hidden.parts.clone(),
                ..Review::default()
            };
            for review in [Review::default(), hidden, cut, exploded, all] {
                for _ in 0..60 {
                    // From outside the model towards a point in it, in scene space.
                    let aim = bounds.min + (bounds.max - bounds.min) * random_unit_box(&mut random);
                    let mut from = bounds.center()
                        + random_direction(&mut random)
                            * bounds.radius()
                            * random.random_range(1.2..3.0);
                    if transform == huge {
                        // Straight along -z, from in front.
                        from = Vec3::new(aim.x, aim.y, bounds.max.z + bounds.radius());
                    }
                    let (aim, from) = (
                        transform.transform_point3(aim),
                        transform.transform_point3(from),
                    );
                    let ray = Ray {
                        origin: from,
                        direction: (aim - from).normalize(),
                    };
                    let every = cast_shown(mesh, transform, ray, &review, false);
                    let all_hits = index.cast(mesh, transform, ray, &review, HitPolicy::All);
                    assert_eq!(all_hits, every, "{name}: every hit of {ray:?}");
                    let closest = index.cast(mesh, transform, ray, &review, HitPolicy::Closest);
                    assert_eq!(closest.first(), every.first(), "{name}: the nearest hit");
                    assert!(closest.len() <= 1);
                    let any = index.cast(mesh, transform, ray, &review, HitPolicy::Any);
                    assert_eq!(any.len(), every.len().min(1), "{name}: any hit");
                    assert!(any.iter().all(|hit| every.contains(hit)));
                    compared[usize::from(!every.is_empty())] += 1;
                }
            }
        }
        // Both kinds of ray were compared, many times: those that hit and those that miss.
        assert!(compared.iter().all(|&n| n > 100), "{compared:?}");
    }

    fn random_unit_box(random: &mut StdRng) -> Vec3 {
        Vec3::new(random.random(), random.random(), random.random())
    }

    fn random_direction(random: &mut StdRng) -> Vec3 {
        loop {
            let v = random_unit_box(random) * 2.0 - 1.0;
            if (0.01..=1.0).contains(&v.length_squared()) {
                return v.normalize();
            }
        }
    }

    /// What a cache weighs an index by before it is built is near what it then holds, for big
    /// parts and for many small ones.
    #[test]
    fn an_index_weighs_about_what_was_expected() {
        for mesh in [crate::samples::assembly(200_000), crate::samples::gearbox()] {
            let index = PickIndex::new(&mesh);
            let expected = PickIndex::expected_bytes(&mesh) as f64;
            let held = index.heap_bytes() as f64;
            assert!(
                (0.5..2.0).contains(&(held / expected)),
                "{} parts: expected {expected} bytes, held {held}",
                mesh.parts.len()
            );
        }
    }

    #[test]
    fn the_index_of_an_empty_model_finds_nothing() {
        let mesh = Mesh::default();
        let ray = Ray {
            origin: Vec3::Z,
            direction: Vec3::NEG_Z,
        };
        let index = PickIndex::new(&mesh);
        assert!(
            index
                .cast(
                    &mesh,
                    Mat4::IDENTITY,
                    ray,
                    &Review::default(),
                    HitPolicy::All
                )
                .is_empty()
        );
    }

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
