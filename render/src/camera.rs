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
        let fov_y = 40f32.to_radians();
        let aspect = width as f32 / height.max(1) as f32;
        // The narrower of the two fields of view decides how far back the eye must be.
        let half_fov = (fov_y * 0.5).min((aspect * (fov_y * 0.5).tan()).atan());
        let distance = bounds.radius().max(1e-3) / half_fov.sin() * 1.05;
        let direction = Vec3::new(1.0, 0.8, 1.3).normalize();
        Self {
            eye: bounds.center() + direction * distance,
            target: bounds.center(),
            up: Vec3::Y,
            fov_y,
            width,
            height,
        }
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
        for (w, h) in [(1280, 720), (390, 844)] {
            let vp = View::framing(&bounds, w, h).view_projection();
            for i in 0..8 {
                let corner = Vec3::new(
                    if i & 1 == 0 {
                        bounds.min.x
                    } else {
                        bounds.max.x
                    },
                    if i & 2 == 0 {
                        bounds.min.y
                    } else {
                        bounds.max.y
                    },
                    if i & 4 == 0 {
                        bounds.min.z
                    } else {
                        bounds.max.z
                    },
                );
                let clip = vp * corner.extend(1.0);
                let ndc = clip.truncate() / clip.w;
                assert!(ndc.x.abs() <= 1.0 && ndc.y.abs() <= 1.0, "{w}x{h}: {ndc}");
                assert!((0.0..=1.0).contains(&ndc.z));
            }
        }
    }
}
