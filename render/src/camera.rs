//! The eye a frame is rendered from.

use glam::camera::rh;
use glam::{Mat4, Vec3};

use crate::mesh::Bounds;

/// A perspective view into a viewport of `width × height` pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    pub eye: Vec3,
    pub target: Vec3,
    pub up: Vec3,
    /// Vertical field of view, in radians.
    pub fov_y: f32,
    pub width: u32,
    pub height: u32,
}

impl View {
    /// A three-quarter view from above that fits the whole of `bounds` into the viewport, the way
    /// a CAD viewer opens a part.
    pub fn framing(bounds: &Bounds, width: u32, height: u32) -> Self {
        Self::framing_from(bounds, Vec3::new(1.0, 0.8, 1.3), width, height)
    }

    /// Fits `bounds` into the viewport, seen from `direction` (pointing from the part to the eye).
    pub fn framing_from(bounds: &Bounds, direction: Vec3, width: u32, height: u32) -> Self {
        let direction = direction.normalize_or(Vec3::Z);
        // Looking straight down (or up), "up" on screen is -Z, as in a CAD top view.
        let up = if direction.cross(Vec3::Y).length_squared() < 1e-6 {
            Vec3::NEG_Z
        } else {
            Vec3::Y
        };
        let fov_y = 40f32.to_radians();
        let aspect = width as f32 / height.max(1) as f32;
        // Start from the distance that fits the bounding sphere, which always shows everything...
        let half_fov = (fov_y * 0.5).min((aspect * (fov_y * 0.5).tan()).atan());
        let radius = bounds.radius().max(1e-3);
        let mut view = Self {
            eye: bounds.center() + direction * radius / half_fov.sin() * 1.05,
            target: bounds.center(),
            up,
            fov_y,
            width,
            height,
        };
        // ...then move in until the box's corners fill ~90% of the frame, as a CAD viewer's
        // "fit" does: a flat part seen from above is otherwise lost in the middle.
        for _ in 0..4 {
            let extent = view.screen_extent(bounds);
            let distance = (view.eye - view.target).length() * extent / 0.9;
            view.eye = view.target + direction * distance.max(radius * 1.05);
        }
        view
    }

    /// The largest |x| or |y| of the box's corners in normalised device coordinates.
    fn screen_extent(&self, bounds: &Bounds) -> f32 {
        let vp = self.view_projection();
        bounds
            .corners()
            .into_iter()
            .map(|corner| {
                let clip = vp * corner.extend(1.0);
                (clip.x / clip.w).abs().max((clip.y / clip.w).abs())
            })
            .fold(0.0, f32::max)
    }

    /// Clip-space transform for the GPU (depth 0..1, as wgpu expects).
    pub fn view_projection(&self) -> Mat4 {
        let aspect = self.width as f32 / self.height.max(1) as f32;
        let distance = (self.eye - self.target).length().max(1e-3);
        let projection =
            rh::proj::directx::perspective(self.fov_y, aspect, distance * 0.01, distance * 10.0);
        projection * rh::view::look_at_mat4(self.eye, self.target, self.up)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing_puts_every_corner_of_the_bounds_on_screen() {
        let bounds = Bounds {
            min: Vec3::new(-10.0, 0.0, -5.0),
            max: Vec3::new(30.0, 60.0, 5.0),
        };
        let views = [
            (1280, 720, Vec3::new(1.0, 0.8, 1.3)),
            (390, 844, Vec3::Z),
            (640, 480, Vec3::Y),
        ];
        for (w, h, direction) in views {
            let vp = View::framing_from(&bounds, direction, w, h).view_projection();
            for corner in bounds.corners() {
                let clip = vp * corner.extend(1.0);
                let ndc = clip.truncate() / clip.w;
                assert!(ndc.x.abs() <= 1.0 && ndc.y.abs() <= 1.0, "{w}x{h}: {ndc}");
                assert!((0.0..=1.0).contains(&ndc.z));
            }
            // And the part is not lost in the middle: it spans most of the frame.
            let view = View::framing_from(&bounds, direction, w, h);
            assert!(
                view.screen_extent(&bounds) > 0.8,
                "{w}x{h} from {direction}"
            );
        }
    }
}
