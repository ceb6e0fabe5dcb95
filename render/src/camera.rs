//! The eye a frame is rendered from.

use glam::camera::rh;
use glam::{Mat4, Vec3};

use crate::mesh::Bounds;

/// How much of the frame a framed part fills, edge to edge (a CAD viewer's "fit").
const FILL: f32 = 0.9;

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
        let tan_y = (fov_y * 0.5).tan();
        let tan_x = tan_y * width as f32 / height.max(1) as f32;
        // The screen's axes, for an eye looking along -direction.
        let right = up.cross(direction).normalize();
        let screen_up = direction.cross(right);
        // The nearest the eye may be so that each corner lies within FILL of the frame's edge,
        // as a CAD viewer's "fit" does: a corner `depth` nearer the eye than the centre and
        // `x` to the side is at x / ((distance - depth) tan) in the frame.
        let center = bounds.center();
        let distance = bounds
            .corners()
            .into_iter()
            .map(|corner| {
                let offset = corner - center;
                let depth = offset.dot(direction);
                let across = offset.dot(right).abs() / (FILL * tan_x);
                let along = offset.dot(screen_up).abs() / (FILL * tan_y);
                depth + across.max(along)
            })
            .fold(0.0, f32::max);
        Self {
            // Never inside the part's bounding sphere (nor on a point-sized part's centre).
            eye: center + direction * distance.max(bounds.radius().max(1e-3) * 1.05),
            target: center,
            up,
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

    /// The largest |x| or |y| of the box's corners in normalised device coordinates.
    fn screen_extent(view: &View, bounds: &Bounds) -> f32 {
        let vp = view.view_projection();
        bounds
            .corners()
            .into_iter()
            .map(|corner| {
                let clip = vp * corner.extend(1.0);
                (clip.x / clip.w).abs().max((clip.y / clip.w).abs())
            })
            .fold(0.0, f32::max)
    }

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
                screen_extent(&view, &bounds) > 0.8,
                "{w}x{h} from {direction}"
            );
        }
    }

    #[test]
    fn framing_fills_nine_tenths_of_the_frame_from_any_side() {
        let bounds = Bounds {
            min: Vec3::new(100.0, -20.0, 5.0),
            max: Vec3::new(180.0, 0.0, 25.0),
        };
        for (w, h) in [(1280, 720), (390, 844)] {
            for direction in [Vec3::new(1.0, 0.8, 1.3), Vec3::Y, Vec3::NEG_Y, Vec3::X] {
                let view = View::framing_from(&bounds, direction, w, h);
                let extent = screen_extent(&view, &bounds);
                assert!(
                    (extent - FILL).abs() < 1e-3,
                    "{w}x{h} from {direction}: {extent}"
                );
                // Seen from where it was asked, looking at the middle.
                assert_eq!(view.target, bounds.center());
                let seen_from = (view.eye - view.target).normalize();
                assert!(seen_from.dot(direction.normalize()) > 0.9999);
                // Straight down, up on screen is -Z (a CAD top view); otherwise +Y.
                let up = if direction.x == 0.0 && direction.z == 0.0 {
                    Vec3::NEG_Z
                } else {
                    Vec3::Y
                };
                assert_eq!(view.up, up);
            }
        }
    }

    #[test]
    fn the_eye_stays_outside_the_parts_bounding_sphere() {
        // A long thin rod across a very wide viewport: its corners alone would let the eye come
        // within 8 units of its middle, inside the sphere around it.
        let rod = Bounds {
            min: Vec3::new(-100.0, -0.1, -0.1),
            max: Vec3::new(100.0, 0.1, 0.1),
        };
        let view = View::framing_from(&rod, Vec3::Z, 4000, 100);
        let distance = (view.eye - view.target).length();
        assert!((distance - rod.radius() * 1.05).abs() < 1e-3, "{distance}");
        // A point: the eye is not on it.
        let point = Bounds {
            min: Vec3::ONE,
            max: Vec3::ONE,
        };
        let view = View::framing(&point, 640, 480);
        assert!((view.eye - view.target).length() > 1e-3);
        assert!(view.view_projection().is_finite());
    }

    #[test]
    fn near_and_far_follow_the_eyes_distance_wherever_the_view_is() {
        let view = View {
            eye: Vec3::new(1000.0, 0.0, 100.0),
            target: Vec3::new(1000.0, 0.0, 0.0),
            up: Vec3::Y,
            fov_y: 1.0,
            width: 100,
            height: 100,
        };
        let depth = |z: f32| {
            let clip = view.view_projection() * Vec3::new(1000.0, 0.0, z).extend(1.0);
            clip.z / clip.w
        };
        // 5 in front of the eye and 900 behind the target are both drawn.
        assert!((0.0..=1.0).contains(&depth(95.0)), "{}", depth(95.0));
        assert!((0.0..=1.0).contains(&depth(-900.0)), "{}", depth(-900.0));
    }
}
