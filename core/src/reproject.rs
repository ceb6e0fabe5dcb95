//! Planar late-stage reprojection, as HoloLens and Azure Remote Rendering did it: between two
//! streamed frames the headset draws the newest one as seen from where each eye is now, not from
//! where it was rendered, as if what the frame shows lay on a plane through the model's centre
//! facing the eye it was rendered for. A turn of the head then leaves the model where it stands in
//! the room instead of dragging it along.
//!
//! For one eye the mapping from its current view to the frame is a homography: a 3×3 matrix from
//! a point of the current view (normalised device coordinates `(x, y, 1)`) to where it lies in
//! the frame (homogeneous NDC `(x·w, y·w, w)`). The page's shader applies it per pixel.

use glam::{Mat4, Vec3, Vec4};

/// One eye as WebXR gives it: `local` space → eye (`XRView.transform.inverse.matrix`) and its
/// projection (OpenGL clip space), column-major.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XrEye {
    pub view: [f32; 16],
    pub projection: [f32; 16],
}

/// The column-major 3×3 homography taking a point of `current`'s view (NDC `(x, y, 1)`) to the
/// frame rendered for `rendered` (homogeneous NDC), for a frame lying on the plane through
/// `anchor` (in `local` space) facing `rendered`'s eye. `None` when a matrix cannot be inverted
/// or an eye stands on the plane.
pub fn homography(rendered: &XrEye, current: &XrEye, anchor: [f32; 3]) -> Option<[f32; 9]> {
    let anchor = Vec3::from(anchor);
    let rendered_eye = eye_position(&rendered.view)?;
    let current_eye = eye_position(&current.view)?;
    // The plane π = (n, −n·anchor), its normal towards the rendering eye.
    let n = (rendered_eye - anchor).try_normalize()?;
    let plane = n.extend(-n.dot(anchor));
    let c = current_eye.extend(1.0);
    let plane_c = plane.dot(c);
    if plane_c.abs() < 1e-6 {
        return None;
    }
    // A point on the pixel's ray: A = M⁻¹·(x, y, −1, 1), linear in u = (x, y, 1).
    let unproject = invert(&(matrix(&current.projection) * matrix(&current.view)))?;
    let a = [
        unproject.x_axis,
        unproject.y_axis,
        unproject.w_axis - unproject.z_axis,
    ];
    // Where the ray meets the plane: X = (π·A)·C − (π·C)·A, homogeneous, still linear in u; and
    // where that is in the frame, M_r·X, keeping x, y and w.
    let to_frame = matrix(&rendered.projection) * matrix(&rendered.view);
    // Scaled so that the frame's w is positive in front of the rendering eye.
    let sign = if plane_c > 0.0 { -1.0 } else { 1.0 };
    let columns = a.map(|a| {
        let clip = to_frame * (c * plane.dot(a) - a * plane_c) * sign;
        [clip.x, clip.y, clip.w]
    });
    Some(std::array::from_fn(|i| columns[i / 3][i % 3]))
}

/// The homography that changes nothing (a frame drawn as it was rendered).
pub const IDENTITY: [f32; 9] = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0];

fn matrix(columns: &[f32; 16]) -> Mat4 {
    Mat4::from_cols_array(columns)
}

fn invert(m: &Mat4) -> Option<Mat4> {
    let det = m.determinant();
    (det.is_finite() && det.abs() > 1e-12).then(|| m.inverse())
}

/// Where the eye of a `local` → eye transform stands, in `local` space.
fn eye_position(view: &[f32; 16]) -> Option<Vec3> {
    let eye = invert(&matrix(view))? * Vec4::W;
    (eye.w.abs() > 1e-9).then(|| eye.truncate() / eye.w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn multiply(a: &[f32; 16], b: &[f32; 16]) -> [f32; 16] {
        (matrix(a) * matrix(b)).to_cols_array()
    }

    fn dot3(a: [f32; 3], b: [f32; 3]) -> f32 {
        Vec3::from(a).dot(Vec3::from(b))
    }

    /// A WebXR-like eye at `position` turned `yaw` radians (positive: to the left) about y.
    fn eye(position: [f32; 3], yaw: f32) -> XrEye {
        // Eye → local: a rotation about y, then the position; the view is its inverse. A 90° ×
        // 90° symmetric field of view, near 0.1, far 100.
        let eye_to_local =
            Mat4::from_rotation_translation(glam::Quat::from_rotation_y(yaw), position.into());
        let projection =
            glam::camera::rh::proj::opengl::perspective(90f32.to_radians(), 1.0, 0.1, 100.0)
                .to_cols_array();
        XrEye {
            view: eye_to_local.inverse().to_cols_array(),
            projection,
        }
    }

    /// Where a `local` point appears in `eye`'s view (NDC x, y).
    fn project(eye: &XrEye, point: [f32; 3]) -> [f32; 2] {
        let m = multiply(&eye.projection, &eye.view);
        let clip: [f32; 4] = std::array::from_fn(|r| {
            (0..3).map(|j| m[j * 4 + r] * point[j]).sum::<f32>() + m[12 + r]
        });
        [clip[0] / clip[3], clip[1] / clip[3]]
    }

    fn apply(h: &[f32; 9], ndc: [f32; 2]) -> [f32; 2] {
        let v: [f32; 3] = std::array::from_fn(|r| h[r] * ndc[0] + h[3 + r] * ndc[1] + h[6 + r]);
        assert!(v[2] > 0.0, "in front of the rendering eye: {v:?}");
        [v[0] / v[2], v[1] / v[2]]
    }

    fn close(a: [f32; 2], b: [f32; 2]) {
        assert!(
            (a[0] - b[0]).abs() < 1e-4 && (a[1] - b[1]).abs() < 1e-4,
            "{a:?} != {b:?}"
        );
    }

    const ANCHOR: [f32; 3] = [0.0, 0.0, -1.0];

    #[test]
    fn an_eye_that_has_not_moved_sees_the_frame_as_rendered() {
        let still = eye([0.03, 0.0, 0.0], 0.0);
        let h = homography(&still, &still, ANCHOR).unwrap();
        for ndc in [[0.0, 0.0], [0.5, -0.25], [-0.9, 0.9]] {
            close(apply(&h, ndc), ndc);
        }
    }

    #[test]
    fn after_a_turn_of_the_head_the_model_stays_where_it_stands() {
        // Rendered looking straight at the model; the head then turns 10° to the left.
        let rendered = eye([0.0, 0.0, 0.0], 0.0);
        let turned = eye([0.0, 0.0, 0.0], 10f32.to_radians());
        let h = homography(&rendered, &turned, ANCHOR).unwrap();
        // The model's centre now appears right of the middle, by tan(10°) in NDC (f = 1)...
        let seen = project(&turned, ANCHOR);
        close(seen, [10f32.to_radians().tan(), 0.0]);
        // ...and that pixel of the current view looks at the frame's middle, where it was drawn.
        close(apply(&h, seen), [0.0, 0.0]);
    }

    #[test]
    fn points_of_the_plane_map_to_where_the_frame_drew_them_after_a_step_and_a_turn() {
        let rendered = eye([0.032, 0.0, 0.0], 0.0);
        let current = eye([-0.2, 0.05, 0.1], -0.2);
        let h = homography(&rendered, &current, ANCHOR).unwrap();
        // Points on the plane through the anchor facing the rendering eye.
        let n = {
            let t = [0.032 - ANCHOR[0], -ANCHOR[1], -ANCHOR[2]];
            let l = dot3(t, t).sqrt();
            t.map(|v| v / l)
        };
        let across = [n[2], 0.0, -n[0]]; // ⟂ n, horizontal
        for (u, v) in [(0.0, 0.0), (0.2, 0.1), (-0.15, -0.2)] {
            let p: [f32; 3] =
                std::array::from_fn(|i| ANCHOR[i] + across[i] * u + [0.0, 1.0, 0.0][i] * v);
            close(apply(&h, project(&current, p)), project(&rendered, p));
        }
    }

    #[test]
    fn degenerate_views_give_no_homography() {
        let good = eye([0.0, 0.0, 0.0], 0.0);
        let singular = XrEye {
            view: [0.0; 16],
            projection: good.projection,
        };
        assert_eq!(homography(&singular, &good, ANCHOR), None);
        assert_eq!(homography(&good, &singular, ANCHOR), None);
        // The rendering eye at the anchor: no plane facing it.
        assert_eq!(homography(&eye(ANCHOR, 0.0), &good, ANCHOR), None);
    }
}
