//! Levels of detail: for each part big enough to be worth it, coarser stand-ins made once when a
//! model is converted (meshoptimizer's simplifier, each level about a quarter of the triangles
//! of the one before, with the most its surface strays from the part's), and the choice, per
//! part and eye each frame, of the coarsest one whose stray would show as at most half a pixel.

use std::ops::Range;

use glam::Mat4;

use crate::mesh::{Bounds, Level, Mesh};

/// Parts with fewer triangles are always drawn whole: a level would save too little.
const MIN_TRIANGLES: usize = 512;
/// Each level asks for this share of the triangles of the one before...
const STEP: f32 = 0.25;
/// ...and is kept only if it has at most this share (some parts will not simplify further).
const KEEP_BELOW: f32 = 0.6;
/// At most this many levels a part.
const MAX_LEVELS: usize = 4;
/// The most a level's surface may stray from the part's, as a share of the part's size.
const MAX_RELATIVE_ERROR: f32 = 0.05;
/// A level is drawn where its stray is at most this many pixels on screen. Half, not one: the
/// parts are flat-shaded, and a coarser level's facets catch the light a little differently, so
/// at a whole pixel 2 % of a frame's pixels changed visibly, at half one 0.2 % (tests/levels.rs).
pub const MAX_PIXELS: f32 = 0.5;

/// Makes the levels of detail of every part of `mesh` with at least [`MIN_TRIANGLES`], in
/// place of any it had: finest first, each part's in a row. Parts are shared out among the
/// machine's cores (the result is the same as on one).
pub fn make_levels(mesh: &mut Mesh) {
    let ranges: Vec<(u32, Range<u32>)> = mesh
        .draw_ranges()
        .into_iter()
        .enumerate()
        .filter(|(_, (_, triangles))| triangles.len() >= MIN_TRIANGLES)
        .map(|(range, (_, triangles))| (range as u32, triangles))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    // Runs of parts of about the same number of triangles, one a thread, in order.
    let total: usize = ranges.iter().map(|(_, t)| t.len()).sum();
    let share = total.div_ceil(threads).max(1);
    let mut runs: Vec<&[(u32, Range<u32>)]> = Vec::new();
    let (mut from, mut counted) = (0, 0);
    for (i, (_, triangles)) in ranges.iter().enumerate() {
        counted += triangles.len();
        if counted >= share {
            runs.push(&ranges[from..=i]);
            (from, counted) = (i + 1, 0);
        }
    }
    runs.push(&ranges[from..]);
    let mesh_ref = &*mesh;
    let made: Vec<(Vec<Level>, Vec<u32>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = runs
            .into_iter()
            .map(|run| scope.spawn(move || levels_of(mesh_ref, run)))
            .collect();
        workers
            .into_iter()
            .map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    let mut levels = Vec::new();
    let mut level_indices = Vec::new();
    for (run_levels, run_indices) in made {
        let offset = level_indices.len() as u32;
        levels.extend(run_levels.into_iter().map(|level| Level {
            first_index: level.first_index + offset,
            ..level
        }));
        level_indices.extend(run_indices);
    }
    mesh.levels = levels;
    mesh.level_indices = level_indices;
}

/// The levels of the parts `run` names (each its range in [`Mesh::draw_ranges`] and its
/// triangles), their first indices counted from the start of the indices returned.
fn levels_of(mesh: &Mesh, run: &[(u32, Range<u32>)]) -> (Vec<Level>, Vec<u32>) {
    let mut levels = Vec::new();
    let mut level_indices = Vec::new();
    for (range, triangles) in run {
        // The part on its own: its vertices numbered from 0, so the simplifier's work is the
        // part's size, not the model's.
        let global = &mesh.indices[triangles.start as usize * 3..triangles.end as usize * 3];
        let mut local_of = rustc_hash::FxHashMap::default();
        let mut positions: Vec<[f32; 3]> = Vec::new();
        let mut used: Vec<u32> = Vec::new();
        let local: Vec<u32> = global
            .iter()
            .map(|&i| {
                *local_of.entry(i).or_insert_with(|| {
                    positions.push(mesh.vertices[i as usize].position);
                    used.push(i);
                    (positions.len() - 1) as u32
                })
            })
            .collect();
        let scale = meshopt::simplify_scale_decoder(&positions);
        let mut previous = local;
        let mut error = 0.0;
        for _ in 0..MAX_LEVELS {
            let target = ((previous.len() / 3) as f32 * STEP) as usize * 3;
            let mut stray = 0.0;
            let mut coarser = meshopt::simplify_decoder(
                &previous,
                &positions,
                target,
                MAX_RELATIVE_ERROR,
                meshopt::SimplifyOptions::None,
                Some(&mut stray),
            );
            if coarser.is_empty() || coarser.len() as f32 > previous.len() as f32 * KEEP_BELOW {
                break;
            }
            meshopt::optimize_vertex_cache_in_place(&mut coarser, positions.len());
            // Each level is made from the one before: its stray from the part is at most the
            // sum of the steps'.
            error += stray * scale;
            levels.push(Level {
                range: *range,
                first_index: level_indices.len() as u32,
                index_count: coarser.len() as u32,
                error,
            });
            level_indices.extend(coarser.iter().map(|&i| used[i as usize]));
            previous = coarser;
        }
    }
    (levels, level_indices)
}

/// How far a preview's surface may stray from the model's, as a share of the model's diagonal:
/// where the whole model spans 1,000 pixels, 5 pixels.
pub const PREVIEW_ERROR: f32 = 0.005;

/// The model coarse, as a device first sees it: each part drawn by its coarsest level that
/// strays at most [`PREVIEW_ERROR`] of the model's size (whole if none is that close), over only
/// the vertices those use, with the same parts in the same order; what a render host shows while
/// the full mesh is still on its way. Its bounds are the model's own (two vertices no triangle
/// uses stand at their corners), so a device frames the coarse picture as it will frame the full
/// one and nothing moves when it refines. `None` when no part has such a
/// level: the model is as coarse as it gets.
pub fn preview(mesh: &Mesh) -> Option<Mesh> {
    let whole = mesh.bounds()?;
    let allowed = whole.radius() * 2.0 * PREVIEW_ERROR;
    let ranges = mesh.draw_ranges();
    // Levels come finest first, their errors growing: the last allowed of each part's is its
    // coarsest.
    let mut coarsest: Vec<Option<&Level>> = vec![None; ranges.len()];
    for level in mesh.levels.iter().filter(|l| l.error <= allowed) {
        coarsest[level.range as usize] = Some(level);
    }
    if coarsest.iter().all(Option::is_none) {
        return None;
    }
    let mut out = Mesh {
        parts: mesh.parts.clone(),
        ..Mesh::default()
    };
    let mut new_of = vec![u32::MAX; mesh.vertices.len()];
    let mut keep = |out: &mut Mesh, old: u32| -> u32 {
        let new = &mut new_of[old as usize];
        if *new == u32::MAX {
            *new = out.vertices.len() as u32;
            out.vertices.push(mesh.vertices[old as usize]);
        }
        *new
    };
    // Two vertices no triangle uses, at the corners of the model's bounds (its instances'
    // included): the preview's bounds are the model's.
    let color = mesh.vertices.first().map_or([0, 0, 0, 255], |v| v.color);
    for corner in [whole.min, whole.max] {
        out.vertices.push(crate::mesh::Vertex {
            position: corner.to_array(),
            color,
        });
    }
    // Where each range begins in the preview, by where it began in the model.
    let mut starts = Vec::with_capacity(ranges.len());
    for (range, (_, triangles)) in ranges.iter().enumerate() {
        starts.push((triangles.start, out.triangles() as u32));
        let source = match coarsest[range] {
            Some(level) => {
                let first = level.first_index as usize;
                &mesh.level_indices[first..first + level.index_count as usize]
            }
            None => &mesh.indices[triangles.start as usize * 3..triangles.end as usize * 3],
        };
        for &old in source {
            let new = keep(&mut out, old);
            out.indices.push(new);
        }
    }
    // A part begins where its range does; a group (no triangles of its own) where the part after
    // it does, or at the end.
    let end = out.triangles() as u32;
    for part in &mut out.parts {
        let at = starts.partition_point(|&(old, _)| old < part.first_triangle);
        part.first_triangle = match starts.get(at) {
            Some(&(old, new)) if old == part.first_triangle => new,
            _ => end,
        };
    }
    // Instances copy the same parts: now their coarse triangles.
    out.instances = mesh.instances.clone();
    Some(out)
}

/// How an eye sees a placed model, for judging levels: worked out once per eye and frame.
pub struct Sight {
    /// Model space to the eye's clip space.
    to_clip: Mat4,
    /// The placement's largest scale: model units to scene units, at most.
    stretch: f32,
    /// The projection's scales: 1 / tan of the half-angles of the view (each eye's own).
    scales: (f32, f32),
    /// Pixels per scene unit across the view at unit depth, the larger of the two axes.
    focal: f32,
}

impl Sight {
    /// The eye whose view and projection is `view_projection`, with a viewport of `width ×
    /// height` pixels, looking at a model placed by `transform`.
    pub fn new(view_projection: Mat4, transform: Mat4, (width, height): (u32, u32)) -> Self {
        let (scale, _, _) = transform.to_scale_rotation_translation();
        let (x, y) = (
            view_projection.row(0).truncate().length(),
            view_projection.row(1).truncate().length(),
        );
        Self {
            to_clip: view_projection * transform,
            stretch: scale.abs().max_element(),
            scales: (x, y),
            focal: (x * width as f32).max(y * height as f32) * 0.5,
        }
    }

    /// How many pixels a stray of `error` (model units) in a part within `bounds` (model space)
    /// can cover, at most. Infinite when the part reaches the eye's plane. Measured at the
    /// part's nearest depth along the view, with the projection's larger scale, and larger off
    /// the view's axis, where a stray across the line of sight shows more: by up to 1/cos of the
    /// angle between them, at the part's corner furthest out in view.
    pub fn pixels(&self, error: f32, bounds: &Bounds) -> f32 {
        let clip = bounds.corners().map(|c| self.to_clip * c.extend(1.0));
        // Clip space's w is the depth along the view.
        let depth = clip.iter().map(|c| c.w).fold(f32::INFINITY, f32::min);
        if depth.is_nan() || depth <= 0.0 {
            return f32::INFINITY;
        }
        let (x, y) = self.scales;
        let slant = clip
            .iter()
            .map(|c| {
                let (across, up) = (
                    (c.x / c.w).clamp(-1.0, 1.0) / x,
                    (c.y / c.w).clamp(-1.0, 1.0) / y,
                );
                (1.0 + across * across + up * up).sqrt()
            })
            .fold(1.0, f32::max);
        error * self.stretch * self.focal * slant / depth
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples;

    #[test]
    fn big_parts_get_coarser_levels_with_growing_errors_and_small_ones_none() {
        let mut mesh = samples::assembly(30_000);
        make_levels(&mut mesh);
        let ranges = mesh.draw_ranges();
        assert_eq!(ranges.len(), 3);
        for (range, (_, triangles)) in ranges.iter().enumerate() {
            let levels: Vec<&Level> = mesh
                .levels
                .iter()
                .filter(|l| l.range == range as u32)
                .collect();
            assert!(levels.len() >= 2, "part {range}: {levels:?}");
            let mut before = (triangles.len() * 3) as u32;
            let mut error = 0.0;
            for level in levels {
                assert!(
                    level.index_count < before && level.index_count > 0,
                    "{level:?}"
                );
                assert!(level.error >= error, "{level:?}");
                (before, error) = (level.index_count, level.error);
            }
        }
        // The levels keep to the bound they were made with: 5 % of a shaft's size (~200 mm).
        assert!(
            mesh.levels
                .iter()
                .all(|l| l.error < 0.05 * 200.0 * MAX_LEVELS as f32)
        );
        let mut small = samples::bracket();
        make_levels(&mut small);
        assert!(small.levels.is_empty());
    }

    #[test]
    fn levels_made_on_every_core_are_those_made_on_one_in_the_same_order() {
        let mut mesh = samples::assembly(120_000);
        make_levels(&mut mesh);
        let every: Vec<(u32, Range<u32>)> = mesh
            .draw_ranges()
            .into_iter()
            .enumerate()
            .map(|(range, (_, triangles))| (range as u32, triangles))
            .collect();
        let (levels, level_indices) = levels_of(&mesh, &every);
        assert!(levels.len() > 12, "{}", levels.len());
        assert_eq!(
            (&mesh.levels, &mesh.level_indices),
            (&levels, &level_indices)
        );
    }

    #[test]
    fn the_preview_draws_every_part_coarsest_within_the_models_bounds() {
        let mut mesh = samples::assembly(60_000);
        assert_eq!(preview(&mesh), None, "no levels, nothing coarser");
        make_levels(&mut mesh);
        let coarse = preview(&mesh).expect("the assembly has levels");
        assert_eq!(coarse.bounds(), mesh.bounds());
        assert_eq!(coarse.parts.len(), mesh.parts.len());
        let (full, shown) = (mesh.draw_ranges(), coarse.draw_ranges());
        assert_eq!(full.len(), shown.len(), "every part keeps triangles");
        for ((part, whole), (same, fewer)) in full.iter().zip(&shown) {
            assert_eq!(part, same);
            assert!(
                fewer.len() * 8 <= whole.len(),
                "{part:?}: {fewer:?} of {whole:?}"
            );
            // The same part's triangles: they lie within its bounds.
            let (a, b) = (
                mesh.bounds_of(whole.clone()),
                coarse.bounds_of(fewer.clone()),
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(b.min.cmpge(a.min).all() && b.max.cmple(a.max).all());
        }
        for i in 0..mesh.parts.len() {
            assert_eq!(coarse.path_of(i), mesh.path_of(i));
        }
        assert!(coarse.vertices.len() * 8 < mesh.vertices.len());
        assert_eq!(Mesh::from_bytes(&coarse.to_bytes()).unwrap(), coarse);
    }

    #[test]
    fn the_preview_of_a_model_with_copies_copies_the_coarse_parts_within_the_same_bounds() {
        let mut mesh = samples::assembly(30_000);
        let first = mesh.draw_ranges()[0].0.unwrap() as u32;
        let part = mesh.begin_part("Far copy");
        mesh.instances.push(crate::Instance {
            part,
            of: first,
            placement: Mat4::from_translation(glam::Vec3::new(0.0, 900.0, 0.0)),
        });
        make_levels(&mut mesh);
        let coarse = preview(&mesh).expect("coarser");
        assert_eq!(coarse.instances, mesh.instances);
        assert_eq!(coarse.bounds(), mesh.bounds());
        assert!(coarse.drawn_triangles() * 8 <= mesh.drawn_triangles());
    }

    #[test]
    fn levels_travel_in_the_transfer_form_and_bad_ones_are_refused() {
        let mut mesh = samples::assembly(20_000);
        make_levels(&mut mesh);
        assert!(!mesh.levels.is_empty());
        let bytes = mesh.to_bytes();
        assert_eq!(Mesh::from_bytes(&bytes).unwrap(), mesh);
        // A level index past the vertices, a level of a part the mesh lacks, a cut-short section.
        let mut bad = mesh.clone();
        bad.level_indices[0] = mesh.vertices.len() as u32;
        assert!(Mesh::from_bytes(&bad.to_bytes()).is_err());
        let mut bad = mesh.clone();
        bad.levels[0].range = 99;
        assert!(Mesh::from_bytes(&bad.to_bytes()).is_err());
        assert!(Mesh::from_bytes(&bytes[..bytes.len() - 2]).is_err());
        // Levels that share triangles: an upload would read them once per level.
        let mut overlapping = mesh.clone();
        let first = overlapping.levels[0];
        overlapping.levels.extend(std::iter::repeat_n(first, 1000));
        let refused = Mesh::from_bytes(&overlapping.to_bytes()).unwrap_err();
        assert!(refused.contains("overlap"), "{refused}");
    }

    #[test]
    fn a_stray_covers_fewer_pixels_further_away_more_off_axis_and_every_pixel_when_near() {
        use glam::Vec3;
        let bounds = Bounds {
            min: Vec3::splat(-1.0),
            max: Vec3::splat(1.0),
        };
        let view = crate::View {
            eye: Vec3::new(0.0, 0.0, 11.0),
            target: Vec3::ZERO,
            up: Vec3::Y,
            fov_y: 90f32.to_radians(),
            width: 1000,
            height: 1000,
        };
        let at = |error, transform| {
            Sight::new(view.view_projection(), transform, (1000, 1000)).pixels(error, &bounds)
        };
        // 10 units deep with a 90° view 1,000 px high: 500 px a unit; a 0.01 stray is 0.5 px
        // (and a hair more, the box's corners being a little off the axis).
        let near = at(0.01, Mat4::IDENTITY);
        assert!((near - 0.5).abs() < 0.01, "{near}");
        let scaled = at(0.01, Mat4::from_scale(Vec3::splat(2.0)));
        assert!(scaled > 2.0 * near, "twice the size and nearer: {scaled}");
        let further = at(0.01, Mat4::from_translation(Vec3::new(0.0, 0.0, -10.0)));
        assert!(further < near * 0.55, "twice as deep: {further}");
        // Off to the side at the same depth: seen at a slant, the stray shows more.
        let aside = at(0.01, Mat4::from_translation(Vec3::new(8.0, 0.0, 0.0)));
        assert!(aside > near * 1.2, "{aside}");
        // Reaching the eye's plane: every pixel.
        let around = at(0.01, Mat4::from_translation(Vec3::new(0.0, 0.0, 10.5)));
        assert_eq!(around, f32::INFINITY);
    }
}
