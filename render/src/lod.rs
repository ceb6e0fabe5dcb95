//! Levels of detail: for each part big enough to be worth it, coarser stand-ins made once when a
//! model is converted (meshoptimizer's simplifier, each level about a quarter of the triangles
//! of the one before, with the most its surface strays from the part's), and the choice, per
//! part and eye each frame, of the coarsest one whose stray would show as at most half a pixel.

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
/// place of any it had: finest first, each part's in a row.
pub fn make_levels(mesh: &mut Mesh) {
    let mut levels = Vec::new();
    let mut level_indices = Vec::new();
    for (range, (_, triangles)) in mesh.draw_ranges().into_iter().enumerate() {
        if triangles.len() < MIN_TRIANGLES {
            continue;
        }
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
                range: range as u32,
                first_index: level_indices.len() as u32,
                index_count: coarser.len() as u32,
                error,
            });
            level_indices.extend(coarser.iter().map(|&i| used[i as usize]));
            previous = coarser;
        }
    }
    mesh.levels = levels;
    mesh.level_indices = level_indices;
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
