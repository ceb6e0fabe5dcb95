//! The exclusive render connection: one device and its render session's host.
//!
//! Like ARR, the host never changes what the device sees on its own: every change (pose, model,
//! placement) is asked for by the device; the host answers with frames and events.

use glam::{Mat4, Quat, Vec3};
use serde::{Deserialize, Serialize};

use crate::catalog::ModelId;
pub use crate::protocol::Codec;
use crate::protocol::ProtocolError;
use crate::review::Review;
use crate::room::{Alignment, RoomPlacement};

/// Close reason when a second device tries to connect.
pub const SESSION_TAKEN: &str = "session already has a connected device";

/// The camera a frame is rendered from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pose {
    /// Echoed in the frame header, so the device can match frames to poses.
    pub id: u64,
    pub position: [f32; 3],
    /// The point the camera looks at.
    pub target: [f32; 3],
    #[serde(default = "up")]
    pub up: [f32; 3],
    /// Vertical field of view.
    pub fov_y_degrees: f32,
    /// Each eye's image size (a stereo frame is two of them side by side).
    pub width: u32,
    pub height: u32,
    /// A headset's two eyes, left then right, to be drawn side by side in one frame instead of
    /// the one view above (which stays the view picks are made in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub views: Option<[EyeView; 2]>,
    /// For a see-through display (WebXR `immersive-ar`): the model on a transparent background,
    /// and the frame twice as tall: the colour, premultiplied by coverage, above the coverage as
    /// grey (neither JPEG nor H.264 carries alpha). The frame header says so
    /// ([`crate::FrameHeader::coverage`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub coverage: bool,
}

/// One eye of a stereo pose, as WebXR's `XRView` gives it, in the space `position` and `target`
/// are in: column-major 4×4 matrices.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EyeView {
    /// Space → eye (`XRView.transform.inverse.matrix`).
    pub view: [f32; 16],
    /// Eye → clip, OpenGL's depth −1..1 (`XRView.projectionMatrix`, asymmetric as the headset's
    /// lenses are).
    pub projection: [f32; 16],
}

fn up() -> [f32; 3] {
    [0.0, 1.0, 0.0]
}

/// The closest [`Pose::orbit`] comes: the camera stays just outside the model's bounding sphere
/// (at zoom 1 it is 2.7 radii away), so zooming in never puts it inside the part, where a
/// closed part shows nothing at all.
pub const MAX_ZOOM: f32 = 2.5;

impl Pose {
    /// A camera on a sphere around `extent` that sees all of it: `azimuth` turns about the
    /// vertical axis, `elevation` lifts the camera (both in degrees), `zoom` above 1 comes closer
    /// (up to [`MAX_ZOOM`]).
    pub fn orbit(extent: &Extent, azimuth: f32, elevation: f32, zoom: f32) -> OrbitPose {
        let center = extent.center();
        let half_diagonal = extent.diameter() * 0.5;
        let fov_y_degrees = 45.0_f32;
        let distance = half_diagonal.max(1e-3) / (fov_y_degrees.to_radians() * 0.5).sin() * 1.05
            / zoom.clamp(0.05, MAX_ZOOM);
        let (azimuth, elevation) = (
            azimuth.to_radians(),
            elevation.clamp(-89.0, 89.0).to_radians(),
        );
        let offset = [
            elevation.cos() * azimuth.sin(),
            elevation.sin(),
            elevation.cos() * azimuth.cos(),
        ];
        OrbitPose {
            position: std::array::from_fn(|i| center[i] + offset[i] * distance),
            target: center,
            up: up(),
            fov_y_degrees,
        }
    }
}

/// Where [`Pose::orbit`] puts the camera; add an id and a viewport with [`OrbitPose::pose`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrbitPose {
    pub position: [f32; 3],
    pub target: [f32; 3],
    pub up: [f32; 3],
    pub fov_y_degrees: f32,
}

impl OrbitPose {
    /// The camera of a WebXR viewer: `position` (m) and `orientation` (a unit quaternion
    /// `[x, y, z, w]`) in the session's reference space, where `placed` puts the model of
    /// `extent`; so walking around it or leaning in moves the camera around the model as it
    /// would around a real one.
    pub fn of_viewer(
        extent: &Extent,
        placed: &XrPlacement,
        position: [f32; 3],
        orientation: [f32; 4],
        fov_y_degrees: f32,
    ) -> Self {
        let to_model = placed.model_to_tracking.inverse();
        let eye = to_model.transform_point3(Vec3::from(position));
        let orientation = Quat::from_array(orientation);
        let turned = |v: Vec3| {
            to_model
                .transform_vector3(orientation * v)
                .normalize_or_zero()
        };
        let forward = turned(Vec3::NEG_Z);
        Self {
            position: eye.to_array(),
            target: (eye + forward * extent.diameter()).to_array(),
            up: turned(Vec3::Y).to_array(),
            fov_y_degrees,
        }
    }

    /// Two eyes `separation` apart (in the model's units: 64 for a part in millimetres), either
    /// side of this camera and looking the same way, as a stereo pose's `views` for eyes of
    /// `width × height`.
    pub fn stereo_views(&self, separation: f32, width: u32, height: u32) -> [EyeView; 2] {
        let (position, target) = (Vec3::from(self.position), Vec3::from(self.target));
        let distance = position.distance(target);
        let forward = (target - position).normalize_or_zero();
        let right = forward.cross(Vec3::from(self.up)).normalize_or_zero();
        // OpenGL's perspective, as WebXR gives projections: depth −1..1.
        let projection = glam::camera::rh::proj::opengl::perspective(
            self.fov_y_degrees.to_radians(),
            width as f32 / height.max(1) as f32,
            distance * 0.01,
            distance * 10.0,
        )
        .to_cols_array();
        [-0.5, 0.5].map(|side| {
            let eye = position + right * side * separation;
            EyeView {
                view: glam::camera::rh::view::look_to_mat4(eye, forward, Vec3::from(self.up))
                    .to_cols_array(),
                projection,
            }
        })
    }

    pub fn pose(&self, id: u64, width: u32, height: u32) -> Pose {
        Pose {
            id,
            position: self.position,
            target: self.target,
            up: self.up,
            fov_y_degrees: self.fov_y_degrees,
            width,
            height,
            views: None,
            coverage: false,
        }
    }
}

/// Where a WebXR session shows a model: from the model's space to the session's reference
/// space (tracking), through the room the headset aligned to (or the one before it, when it has
/// not) and the model's place in that room, which the space shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct XrPlacement {
    pub model_to_tracking: Mat4,
    /// Where the model's centre is in tracking space: what stays put as the head moves, the
    /// plane reprojection holds still.
    pub anchor: [f32; 3],
}

impl XrPlacement {
    /// The model of `extent` where `placement` puts it in the room that `room` lines up with
    /// this headset's tracking space.
    pub fn new(extent: &Extent, room: &Alignment, placement: &RoomPlacement) -> Self {
        let model_to_tracking =
            room.room_to_tracking() * placement.model_to_room(extent.center(), extent.diameter());
        Self {
            model_to_tracking,
            anchor: Self::anchor_of(room, placement),
        }
    }

    /// A ray in tracking space (a headset's pointer) as the same ray in the model's space, where
    /// the render connection casts it; the direction of unit length.
    pub fn ray_to_model(&self, origin: [f32; 3], direction: [f32; 3]) -> ([f32; 3], [f32; 3]) {
        let tracking_to_model = self.model_to_tracking.inverse();
        (
            tracking_to_model
                .transform_point3(Vec3::from(origin))
                .to_array(),
            tracking_to_model
                .transform_vector3(Vec3::from(direction))
                .normalize_or_zero()
                .to_array(),
        )
    }

    /// Where `placement` puts the model's centre in the tracking space `room` lines up with:
    /// known without the model's extent.
    pub fn anchor_of(room: &Alignment, placement: &RoomPlacement) -> [f32; 3] {
        room.room_to_tracking()
            .transform_point3(Vec3::from(placement.position))
            .to_array()
    }
}

impl EyeView {
    /// A WebXR eye (`XRView.transform.inverse.matrix`: the session's reference space → the eye,
    /// in metres; and its `projectionMatrix`) as a view of the model, where `placed` shows it.
    pub fn of_xr(placed: &XrPlacement, tracking_to_eye: [f32; 16], projection: [f32; 16]) -> Self {
        let view = Mat4::from_cols_array(&tracking_to_eye) * placed.model_to_tracking;
        Self {
            view: view.to_cols_array(),
            projection,
        }
    }
}

pub use crate::room::{XR_BELOW_EYES, XR_DISTANCE, XR_SIZE};

/// A model's axis-aligned bounds in scene units, so a device can frame it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Extent {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

impl Extent {
    pub fn center(&self) -> [f32; 3] {
        std::array::from_fn(|i| (self.min[i] + self.max[i]) * 0.5)
    }

    /// How wide its bounding sphere is (its diagonal); never quite 0.
    pub fn diameter(&self) -> f32 {
        (Vec3::from(self.max) - Vec3::from(self.min))
            .length()
            .max(1e-6)
    }
}

impl Default for Extent {
    /// A unit cube at the origin: what a device frames before it knows better.
    fn default() -> Self {
        Self {
            min: [-0.5; 3],
            max: [0.5; 3],
        }
    }
}

/// The most a placement scales a model: beyond it, a model's coordinates leave what a renderer
/// can draw.
pub const MAX_SCALE: f32 = 1_000_000.0;

/// Where the model sits in the scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placement {
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub position: [f32; 3],
    /// A unit quaternion `[x, y, z, w]`.
    #[cfg_attr(feature = "openapi", schema(min_items = 4, max_items = 4))]
    pub rotation: [f32; 4],
    #[cfg_attr(
        feature = "openapi",
        schema(exclusive_minimum = 0, maximum = 1_000_000)
    )]
    pub scale: f32,
}

impl Placement {
    /// Why a model cannot be placed so, if it cannot: every number finite, a scale above 0, a
    /// rotation that is not zero.
    pub fn problem(&self) -> Option<String> {
        let finite = self
            .position
            .iter()
            .chain(&self.rotation)
            .chain([&self.scale])
            .all(|c| c.is_finite());
        // Squared, a finite rotation can still overflow: it would normalize to nothing.
        let length = self.rotation.iter().map(|c| c * c).sum::<f32>();
        let turned = length.is_finite() && length > 1e-12;
        let scaled = self.scale > 0.0 && self.scale <= MAX_SCALE;
        (!(finite && scaled && turned)).then(|| {
            format!(
                "the placement needs finite numbers, a scale above 0 and at most {MAX_SCALE}, \
                 and a non-zero rotation"
            )
        })
    }
}

impl Default for Placement {
    fn default() -> Self {
        Self {
            position: [0.0; 3],
            rotation: [0.0, 0.0, 0.0, 1.0],
            scale: 1.0,
        }
    }
}

/// What the device sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// A stereo pose's matrices make it large; each message lives only while it is applied. (An
// allow, not an expect: whether the lint fires depends on the other variants' sizes per target.)
#[allow(clippy::large_enum_variant)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeviceMessage {
    /// First message. It carries no credential: the render ticket is in the session's
    /// `renderUrl` (`?ticket=…`), and a render host never sees an account's token or cookie.
    Hello {
        /// The frame formats the device decodes, any order; the host picks the best of them it
        /// encodes ([`Codec::choose`]). Absent: JPEG only, as before video.
        #[serde(default = "jpeg_only", deserialize_with = "known_codecs")]
        #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>, example = json!(["h264", "jpeg"])))]
        codecs: Vec<Codec>,
    },
    Pose(Pose),
    LoadModel {
        model: ModelId,
    },
    SetTransform(Placement),
    /// What the design review shows: parts hidden, tinted, see-through or highlighted, cut
    /// planes, the explode. Replaces the last one; `{"type":"set_review"}` alone clears it.
    SetReview(Review),
    /// The device lost its video decoder's state (an error, a reset): the next frame must be a
    /// key frame. Meaningless, and ignored, for JPEG.
    Keyframe,
    /// ARR's spatial query: a ray from pixel (`x`, `y`) of the last pose's viewport into the scene.
    Pick {
        /// Echoed in the answer.
        id: u64,
        x: f32,
        y: f32,
        #[serde(default)]
        policy: HitPolicy,
        /// Most hits returned for `all` (default 16).
        #[serde(default = "max_hits")]
        max_hits: u32,
    },
    /// ARR's ray cast: what a ray from `origin` along `direction`, in the scene's space (the
    /// space poses are in), meets: a headset's pointing ray. Answered as a pick is.
    RayCast {
        /// Echoed in the answer.
        id: u64,
        origin: [f32; 3],
        direction: [f32; 3],
        #[serde(default)]
        policy: HitPolicy,
        /// Most hits returned for `all` (default 16).
        #[serde(default = "max_hits")]
        max_hits: u32,
    },
    Bye,
}

fn jpeg_only() -> Vec<Codec> {
    vec![Codec::Jpeg]
}

/// The codecs of a hello's list this build knows: a newer device may name more.
fn known_codecs<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Vec<Codec>, D::Error> {
    let names = Vec::<String>::deserialize(from)?;
    Ok(names
        .iter()
        .filter_map(|name| Codec::deserialize(serde_json::Value::from(name.as_str())).ok())
        .collect())
}

fn max_hits() -> u32 {
    16
}

/// Which hits a pick returns, as ARR's ray casts offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HitPolicy {
    /// The nearest hit only.
    #[default]
    Closest,
    /// Any one hit: the cheapest "is something there?".
    Any,
    /// Every hit, nearest first, up to `max_hits`.
    All,
}

/// Where a pick ray met the model, in scene coordinates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Hit {
    /// The part (glTF node, OBJ object, STL file, sample component) that was hit, if the model
    /// names its parts.
    #[serde(default)]
    pub part: Option<String>,
    /// Which triangle of the model was hit.
    pub triangle: u64,
    pub position: [f32; 3],
    /// The hit face's normal, facing the ray.
    pub normal: [f32; 3],
    /// From the eye to the hit.
    pub distance: f32,
}

/// What the host sends besides binary frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HostMessage {
    Welcome {
        session: String,
        /// The frame format this connection's frames come in.
        #[serde(default)]
        codec: Codec,
    },
    LoadProgress {
        model: ModelId,
        percent: u8,
    },
    /// The model is on screen at a coarse level while its full mesh is on its way: `triangles`
    /// of it are drawn now, and `extent` is the whole model's, so a device frames it as it will
    /// frame the full one. `load_done` follows, or `load_failed` (then the coarse form is taken
    /// off the screen), unless the device asks for another model first. Picks meanwhile hit the
    /// coarse form: their parts are the model's, their triangle numbers the coarse form's.
    LoadCoarse {
        model: ModelId,
        triangles: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extent: Option<Extent>,
    },
    LoadDone {
        model: ModelId,
        triangles: u64,
        /// The model's bounds, so the device can frame it; absent for an empty model.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extent: Option<Extent>,
    },
    LoadFailed {
        model: ModelId,
        reason: String,
    },
    PickResult {
        id: u64,
        model: Option<ModelId>,
        hits: Vec<Hit>,
    },
    Error {
        code: String,
        message: String,
    },
}

impl DeviceMessage {
    /// Why a host refuses this message's values, if it does: a pose (with images up to
    /// `max_side` pixels), a placement, a review or a pick point that cannot be used.
    pub fn problem(&self, max_side: u32) -> Option<String> {
        match self {
            DeviceMessage::Pose(pose) => pose.problem(max_side),
            DeviceMessage::SetTransform(placement) => placement.problem(),
            DeviceMessage::SetReview(review) => review.problem(),
            // Hosts answer `BadPick` for a point off the viewport, which these always are.
            DeviceMessage::Pick { x, y, .. } if !(x.is_finite() && y.is_finite()) => {
                Some(format!("the pick's point ({x}, {y}) is not a finite pixel"))
            }
            DeviceMessage::RayCast {
                origin, direction, ..
            } => {
                let finite = origin.iter().chain(direction).all(|c| c.is_finite());
                let length = direction.iter().map(|c| c * c).sum::<f32>();
                (!finite || !length.is_finite() || length < 1e-12).then(|| {
                    "a ray cast needs a finite origin and a finite, non-zero direction".into()
                })
            }
            _ => None,
        }
    }

    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("device messages always serialize")
    }
}

impl HostMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("host messages always serialize")
    }
}

impl Pose {
    /// Why this pose cannot be rendered, if it cannot.
    pub fn problem(&self, max_side: u32) -> Option<String> {
        let finite = self
            .position
            .iter()
            .chain(&self.target)
            .chain(&self.up)
            .all(|c| c.is_finite());
        if !finite {
            return Some("the pose has a coordinate that is not a finite number".into());
        }
        if self.position == self.target {
            return Some("the pose looks at its own position".into());
        }
        if !(1.0..=170.0).contains(&self.fov_y_degrees) {
            return Some(format!(
                "fovYDegrees must be 1 to 170, not {}",
                self.fov_y_degrees
            ));
        }
        if !(1..=max_side).contains(&self.width) || !(1..=max_side).contains(&self.height) {
            return Some(format!(
                "the viewport must be 1 to {max_side} pixels a side"
            ));
        }
        if self.coverage && self.height.saturating_mul(2) > max_side {
            return Some(format!(
                "a frame with its coverage is twice as tall: at most {} pixels high",
                max_side / 2
            ));
        }
        if let Some(views) = &self.views {
            if self.width.saturating_mul(2) > max_side {
                return Some(format!(
                    "a stereo frame is two eyes side by side: each at most {} pixels wide",
                    max_side / 2
                ));
            }
            let finite = views
                .iter()
                .flat_map(|v| v.view.iter().chain(&v.projection))
                .all(|c| c.is_finite());
            if !finite {
                return Some("a view's matrix has a number that is not finite".into());
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `m` (a point) through the column-major 4×4 `matrix`, divided by w.
    fn through(matrix: &[f32; 16], m: [f32; 3]) -> [f32; 3] {
        let row = |r: usize| (0..3).map(|k| matrix[k * 4 + r] * m[k]).sum::<f32>() + matrix[12 + r];
        let w = row(3);
        [row(0) / w, row(1) / w, row(2) / w]
    }

    #[test]
    fn a_stereo_pose_fits_two_eyes_side_by_side_and_finite_matrices() {
        let stereo = |width: u32| {
            let camera = Pose::orbit(&Extent::default(), 0.0, 0.0, 1.0);
            Pose {
                views: Some(camera.stereo_views(0.1, width, 100)),
                ..camera.pose(1, width, 100)
            }
        };
        assert_eq!(stereo(512).problem(1024), None, "exactly two eyes wide");
        assert!(stereo(513).problem(1024).unwrap().contains("side by side"));
        let mut broken = stereo(256);
        broken.views.as_mut().unwrap()[1].projection[5] = f32::INFINITY;
        assert!(broken.problem(1024).unwrap().contains("not finite"));
        // As a message: a good pose has no problem; one with a broken eye has.
        assert_eq!(DeviceMessage::Pose(stereo(256)).problem(1024), None);
        assert!(DeviceMessage::Pose(broken).problem(1024).is_some());
        let pick = |x: f32| DeviceMessage::Pick {
            id: 1,
            x,
            y: 2.0,
            policy: HitPolicy::Closest,
            max_hits: 16,
        };
        assert_eq!(pick(1.0).problem(1024), None);
        assert!(pick(f32::NAN).problem(1024).is_some());
        // A ray cast needs a direction to cast along, of a length a float can hold.
        let cast = |direction: [f32; 3]| DeviceMessage::RayCast {
            id: 1,
            origin: [0.0, 1.0, 2.0],
            direction,
            policy: HitPolicy::Closest,
            max_hits: 1,
        };
        assert_eq!(cast([0.0, 0.0, -2.0]).problem(1024), None);
        for bad in [[0.0; 3], [f32::NAN, 0.0, 1.0], [1e30, 0.0, 0.0]] {
            assert!(cast(bad).problem(1024).is_some(), "{bad:?}");
        }
        // A placement and a review are checked as they come.
        let placement = |scale| {
            DeviceMessage::SetTransform(Placement {
                scale,
                ..Placement::default()
            })
        };
        assert_eq!(placement(1.0).problem(1024), None);
        assert!(placement(0.0).problem(1024).is_some());
        let review = |planes: usize| {
            DeviceMessage::SetReview(Review {
                cut_planes: vec![
                    crate::review::CutPlane {
                        point: [0.0; 3],
                        normal: [0.0, 0.0, 1.0],
                    };
                    planes
                ],
                ..Review::default()
            })
        };
        assert_eq!(review(1).problem(1024), None);
        assert!(
            review(crate::review::MAX_CUT_PLANES + 1)
                .problem(1024)
                .is_some()
        );
    }

    #[test]
    fn a_stereo_eye_of_a_tilted_camera_sees_as_a_camera_does() {
        // Turned and lifted around a model away from the origin, so no axis of the eye is one
        // of the world's and the eye's position has a part along every one of them.
        let away = Extent {
            min: [10.0, 20.0, 30.0],
            max: [11.0, 21.0, 31.0],
        };
        let camera = Pose::orbit(&away, 30.0, 20.0, 1.0);
        let (width, height) = (400, 200);
        let sub = |a: [f32; 3], b: [f32; 3]| -> [f32; 3] { std::array::from_fn(|i| a[i] - b[i]) };
        let length = |a: [f32; 3]| (0..3).map(|i| a[i] * a[i]).sum::<f32>().sqrt();
        let distance = length(sub(camera.target, camera.position));
        let forward = sub(camera.target, camera.position).map(|c| c / distance);
        let near = |a: [f32; 3], b: [f32; 3]| (0..3).all(|i| (a[i] - b[i]).abs() < 1e-3);
        for (eye, side) in camera
            .stereo_views(0.2, width, height)
            .iter()
            .zip([-0.5, 0.5])
        {
            // The eye stands `side × separation` along the camera's right, which is level.
            let origin = through(&eye.view, camera.position);
            assert!(near(origin, [-side * 0.2, 0.0, 0.0]), "{origin:?}");
            let ahead: [f32; 3] = std::array::from_fn(|i| camera.position[i] + forward[i]);
            assert!(near(through(&eye.view, ahead), [-side * 0.2, 0.0, -1.0]));
            // World up is up-ish for the eye: positive y, no x.
            let above: [f32; 3] = std::array::from_fn(|i| camera.position[i] + [0.0, 1.0, 0.0][i]);
            let up = sub(through(&eye.view, above), origin);
            assert!(up[1] > 0.9 && up[0].abs() < 1e-4, "{up:?}");
            // The projection: near plane at depth −1, far plane at +1 (OpenGL's, as WebXR's),
            // the top of the field of view at y = 1, its side at x = 1 (aspect 2).
            let (z_near, z_far) = (distance * 0.01, distance * 10.0);
            let depth = |z: f32| through(&eye.projection, [0.0, 0.0, -z])[2];
            assert!((depth(z_near) + 1.0).abs() < 1e-3, "{}", depth(z_near));
            assert!((depth(z_far) - 1.0).abs() < 1e-3, "{}", depth(z_far));
            let half = (camera.fov_y_degrees.to_radians() * 0.5).tan();
            let top = through(&eye.projection, [0.0, half * 3.0, -3.0]);
            assert!(
                (top[1] - 1.0).abs() < 1e-4 && top[0].abs() < 1e-6,
                "{top:?}"
            );
            let side_edge = through(&eye.projection, [2.0 * half * 3.0, 0.0, -3.0]);
            assert!((side_edge[0] - 1.0).abs() < 1e-4, "{side_edge:?}");
        }
    }

    #[test]
    fn a_rolled_stereo_eye_keeps_its_axes_square() {
        // A head tilted sideways: its up is not the world's.
        let camera = OrbitPose {
            position: [1.0, 2.0, 3.0],
            target: [0.0, 0.0, 0.0],
            up: [0.5, 1.0, 0.2],
            fov_y_degrees: 60.0,
        };
        for eye in camera.stereo_views(0.1, 100, 100) {
            // The rotation part's rows: right, up and back, each of length 1, each square to the
            // others, and right-handed.
            let row = |r: usize| [eye.view[r], eye.view[4 + r], eye.view[8 + r]];
            let dot = |a: [f32; 3], b: [f32; 3]| (0..3).map(|i| a[i] * b[i]).sum::<f32>();
            let (right, up, back) = (row(0), row(1), row(2));
            for (a, b) in [(right, up), (up, back), (back, right)] {
                assert!(dot(a, b).abs() < 1e-5, "{a:?} · {b:?}");
            }
            for axis in [right, up, back] {
                assert!((dot(axis, axis) - 1.0).abs() < 1e-5, "{axis:?}");
            }
            let cross = [
                right[1] * up[2] - right[2] * up[1],
                right[2] * up[0] - right[0] * up[2],
                right[0] * up[1] - right[1] * up[0],
            ];
            assert!((dot(cross, back) - 1.0).abs() < 1e-5, "right × up = back");
        }
    }

    #[test]
    fn any_turn_that_is_not_zero_is_a_rotation() {
        let turned = |rotation| Placement {
            rotation,
            ..Placement::default()
        };
        // Components of both signs, their sum zero: still a turn.
        assert_eq!(turned([0.6, -0.6, 0.0, 0.0]).problem(), None);
        assert!(
            turned([1e-7, 0.0, 0.0, 0.0]).problem().is_some(),
            "as good as zero"
        );
    }

    #[test]
    fn an_orbit_frames_the_model_with_a_margin_of_five_percent() {
        let extent = Extent::default();
        let radius = 3f32.sqrt() * 0.5;
        for zoom in [1.0, 2.0] {
            let orbit = Pose::orbit(&extent, 30.0, 20.0, zoom);
            let distance = (0..3)
                .map(|i| (orbit.position[i] - orbit.target[i]).powi(2))
                .sum::<f32>()
                .sqrt();
            // The bounding sphere spans 1/1.05 of the half field of view, over the zoom.
            let seen = (radius / distance) / (orbit.fov_y_degrees.to_radians() * 0.5).sin();
            assert!((seen - zoom / 1.05).abs() < 1e-4, "zoom {zoom}: {seen}");
        }
    }

    /// `v` turned by `q` as the wire spells quaternions (`[x, y, z, w]`), read the way the camera
    /// maths reads them.
    fn rotate(q: [f32; 4], v: [f32; 3]) -> [f32; 3] {
        (Quat::from_array(q) * Vec3::from(v)).to_array()
    }

    #[test]
    fn a_quaternion_turns_a_vector_the_right_way_round() {
        let half = std::f32::consts::FRAC_1_SQRT_2;
        let close = |a: [f32; 3], b: [f32; 3]| (0..3).all(|i| (a[i] - b[i]).abs() < 1e-6);
        // 90° about +Y turns −Z (ahead) to −X (left), and +X to −Z.
        let yaw = [0.0, half, 0.0, half];
        assert!(close(rotate(yaw, [0.0, 0.0, -1.0]), [-1.0, 0.0, 0.0]));
        assert!(close(rotate(yaw, [1.0, 0.0, 0.0]), [0.0, 0.0, -1.0]));
        // 90° about +X turns +Y (up) to +Z, and −Z to +Y.
        let pitch = [half, 0.0, 0.0, half];
        assert!(close(rotate(pitch, [0.0, 1.0, 0.0]), [0.0, 0.0, 1.0]));
        assert!(close(rotate(pitch, [0.0, 0.0, -1.0]), [0.0, 1.0, 0.0]));
        // 90° about +Z turns +X to +Y; the identity turns nothing.
        assert!(close(
            rotate([0.0, 0.0, half, half], [1.0, 0.0, 0.0]),
            [0.0, 1.0, 0.0]
        ));
        assert!(close(
            rotate([0.0, 0.0, 0.0, 1.0], [1.0, 2.0, 3.0]),
            [1.0, 2.0, 3.0]
        ));
    }

    #[test]
    fn a_pick_returns_sixteen_hits_unless_it_says() {
        let parse = |text: &str| match DeviceMessage::parse(text).unwrap() {
            DeviceMessage::Pick {
                max_hits, policy, ..
            } => (max_hits, policy),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            parse(r#"{"type":"pick","id":1,"x":2,"y":3}"#),
            (16, HitPolicy::Closest)
        );
        assert_eq!(
            parse(r#"{"type":"pick","id":1,"x":2,"y":3,"policy":"all","max_hits":4}"#),
            (4, HitPolicy::All)
        );
        assert!(DeviceMessage::parse(r#"{"type":"no-such-thing"}"#).is_err());
        assert!(DeviceMessage::parse("not json").is_err());
    }

    #[test]
    fn a_placement_needs_finite_numbers_a_positive_scale_and_a_rotation() {
        assert_eq!(Placement::default().problem(), None);
        let scaled = |scale| Placement {
            scale,
            ..Placement::default()
        };
        for bad in [
            scaled(0.0),
            scaled(-1.0),
            scaled(f32::INFINITY),
            scaled(MAX_SCALE * 2.0),
            Placement {
                rotation: [1e20, 0.0, 0.0, 0.0],
                ..Placement::default()
            },
            Placement {
                rotation: [0.0; 4],
                ..Placement::default()
            },
            Placement {
                position: [f32::NAN, 0.0, 0.0],
                ..Placement::default()
            },
        ] {
            assert!(bad.problem().is_some(), "{bad:?}");
        }
        // A number too large for f32 reads as infinity, and is refused.
        let far = DeviceMessage::parse(
            r#"{"type":"set_transform","position":[1e39,0,0],"rotation":[0,0,0,1],"scale":1}"#,
        )
        .unwrap();
        let DeviceMessage::SetTransform(far) = far else {
            panic!("{far:?}");
        };
        assert!(far.problem().is_some());
    }

    #[test]
    fn the_best_shared_codec_is_chosen_and_an_old_hello_means_jpeg() {
        let both = [Codec::Jpeg, Codec::H264];
        assert_eq!(Codec::choose(&both, &both), Some(Codec::H264));
        assert_eq!(Codec::choose(&[Codec::Jpeg], &both), Some(Codec::Jpeg));
        assert_eq!(Codec::choose(&[Codec::H264], &[Codec::Jpeg]), None);
        let hello = DeviceMessage::parse(r#"{"type":"hello"}"#).unwrap();
        assert_eq!(
            hello,
            DeviceMessage::Hello {
                codecs: vec![Codec::Jpeg]
            }
        );
        let hello = DeviceMessage::parse(r#"{"type":"hello","codecs":["h264","jpeg"]}"#).unwrap();
        let DeviceMessage::Hello { codecs, .. } = hello else {
            panic!("a hello");
        };
        assert_eq!(codecs, [Codec::H264, Codec::Jpeg]);
        assert_eq!(
            DeviceMessage::parse(r#"{"type":"keyframe"}"#).unwrap(),
            DeviceMessage::Keyframe
        );
        // A codec this build does not know is passed over, not refused.
        let hello = DeviceMessage::parse(r#"{"type":"hello","codecs":["av1","jpeg"]}"#).unwrap();
        assert!(matches!(hello, DeviceMessage::Hello { codecs, .. } if codecs == [Codec::Jpeg]));
    }

    #[test]
    fn stereo_eyes_stand_either_side_of_the_camera_and_look_the_same_way() {
        let camera = OrbitPose {
            position: [0.0, 0.0, 100.0],
            target: [0.0; 3],
            up: [0.0, 1.0, 0.0],
            fov_y_degrees: 60.0,
        };
        let [left, right] = camera.stereo_views(64.0, 320, 240);
        let seen = |view: &EyeView, m: [f32; 3]| -> [f32; 3] {
            std::array::from_fn(|row| {
                (0..3).map(|k| view.view[k * 4 + row] * m[k]).sum::<f32>() + view.view[12 + row]
            })
        };
        // The target is 100 ahead of each eye and 32 to the other side of it.
        assert!(close(seen(&left, [0.0; 3]), [32.0, 0.0, -100.0]));
        assert!(close(seen(&right, [0.0; 3]), [-32.0, 0.0, -100.0]));
        // Each eye is at its own origin.
        assert!(close(seen(&left, [-32.0, 0.0, 100.0]), [0.0; 3]));
        // The projection keeps the aspect: x is scaled by height / width more than y.
        assert!((left.projection[0] / left.projection[5] - 0.75).abs() < 1e-6);
    }

    #[test]
    fn an_xr_eye_sees_the_model_where_of_viewer_puts_it() {
        let extent = Extent {
            min: [10.0, -30.0, -30.0],
            max: [70.0, 30.0, 30.0],
        };
        // The head 0.1 m to the right of where the session started, looking ahead: local → eye
        // moves everything 0.1 m left.
        let local_to_eye = [
            1.0, 0.0, 0.0, 0.0, //
            0.0, 1.0, 0.0, 0.0, //
            0.0, 0.0, 1.0, 0.0, //
            -0.1, 0.0, 0.0, 1.0,
        ];
        let placed = ahead_at_eye_height(&extent);
        let eye = EyeView::of_xr(&placed, local_to_eye, [0.0; 16]);
        let seen = |m: [f32; 3]| -> [f32; 3] {
            std::array::from_fn(|row| {
                (0..3).map(|k| eye.view[k * 4 + row] * m[k]).sum::<f32>() + eye.view[12 + row]
            })
        };
        // The model's centre is 1 m ahead and 0.1 m to the left of the eye.
        assert!(close(seen([40.0, 0.0, 0.0]), [-0.1, 0.0, -AHEAD]));
        // It is XR_SIZE across: its far right edge is half that to the right of the centre.
        let diameter = (3.0f32 * 60.0 * 60.0).sqrt();
        let edge = seen([40.0 + diameter / 2.0, 0.0, 0.0]);
        assert!((edge[0] - (-0.1 + XR_SIZE / 2.0)).abs() < 1e-4, "{edge:?}");
        // The same head through of_viewer stands at the same place in the model's space.
        let viewer = OrbitPose::of_viewer(
            &extent,
            &placed,
            [0.1, 0.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            90.0,
        );
        assert!(close(seen(viewer.position), [0.0; 3]));
    }

    /// How far ahead [`ahead_at_eye_height`] puts the model.
    const AHEAD: f32 = 1.0;

    /// The model of `extent` [`AHEAD`] of a session's `local` origin at eye height, as wide as
    /// the default placement shows it.
    fn ahead_at_eye_height(extent: &Extent) -> XrPlacement {
        let room = Alignment::in_front([0.0; 3], [0.0, 0.0, -1.0], AHEAD, 0.0);
        XrPlacement::new(extent, &room, &RoomPlacement::default())
    }

    #[test]
    fn an_unaligned_headset_sees_the_model_ahead_below_its_eyes_and_an_aligned_one_where_the_room_has_it()
     {
        let extent = Extent {
            min: [0.0; 3],
            max: [100.0, 100.0, 100.0],
        };
        // A wearer standing at (1, 1.6, 2) in local-floor, looking along −X.
        let head = [1.0, 1.6, 2.0];
        let room =
            Alignment::in_front(head, [-1.0, 0.0, 0.0], XR_DISTANCE, head[1] - XR_BELOW_EYES);
        let placed = XrPlacement::new(&extent, &room, &RoomPlacement::default());
        let centre = placed.model_to_tracking.transform_point3(Vec3::splat(50.0));
        assert!(close(
            centre.to_array(),
            [1.0 - XR_DISTANCE, 1.6 - XR_BELOW_EYES, 2.0]
        ));
        assert!(close(placed.anchor, centre.to_array()));
        // Looking at it from there is looking down at it.
        let pose = OrbitPose::of_viewer(
            &extent,
            &placed,
            head,
            [
                0.0,
                std::f32::consts::FRAC_1_SQRT_2,
                0.0,
                std::f32::consts::FRAC_1_SQRT_2,
            ],
            90.0,
        );
        assert!(
            pose.position[1] > 50.0,
            "the eye is above the model's centre"
        );

        // Aligned: the room's placement decides, whatever the head did.
        let aligned = Alignment::from_marks([0.0, 0.8, 0.0], [1.0, 0.8, 0.0]).unwrap();
        let moved = RoomPlacement {
            position: [0.0, 0.2, -0.5],
            yaw_degrees: 0.0,
            size: 0.6,
        };
        let placed = XrPlacement::new(&extent, &aligned, &moved);
        let centre = placed.model_to_tracking.transform_point3(Vec3::splat(50.0));
        assert!(close(centre.to_array(), [0.5, 1.0, -0.5]));
        assert!(close(
            XrPlacement::anchor_of(&aligned, &moved),
            [0.5, 1.0, -0.5]
        ));
        // A pointer aimed at that spot from a metre above it is aimed at the model's centre,
        // straight down, in the model's space.
        let (origin, direction) = placed.ray_to_model([0.5, 2.0, -0.5], [0.0, -3.0, 0.0]);
        let centre = Vec3::splat(50.0);
        let to_centre = (centre - Vec3::from(origin)).normalize();
        assert!(close(direction, to_centre.to_array()), "{direction:?}");
        assert!((Vec3::from(direction).length() - 1.0).abs() < 1e-5);
    }

    fn close(a: [f32; 3], b: [f32; 3]) -> bool {
        (0..3).all(|i| (a[i] - b[i]).abs() < 1e-4)
    }

    #[test]
    fn a_webxr_viewer_sees_the_model_ahead_and_walks_around_it() {
        let extent = Extent {
            min: [-30.0, -30.0, -30.0],
            max: [30.0, 30.0, 30.0],
        };
        let diameter = (3.0f32 * 60.0 * 60.0).sqrt();
        let level = [0.0, 0.0, 0.0, 1.0];
        let placed = ahead_at_eye_height(&extent);
        let viewer = |position, orientation| {
            OrbitPose::of_viewer(&extent, &placed, position, orientation, 90.0)
        };
        // At the start the model is AHEAD, looked at straight on.
        let start = viewer([0.0; 3], level);
        let metres = diameter / XR_SIZE;
        assert!(close(start.position, [0.0, 0.0, AHEAD * metres]));
        assert!(close(start.target, [0.0, 0.0, AHEAD * metres - diameter]));
        assert!(close(start.up, [0.0, 1.0, 0.0]));
        // A step to the right moves the camera right by that step in scene units.
        let right = viewer([0.5, 0.0, 0.0], level);
        assert!(close(right.position, [0.5 * metres, 0.0, AHEAD * metres]));
        // Walking to the model's far side and turning round (180° about Y) looks back at it.
        let half_turn = [0.0, 1.0, 0.0, 0.0];
        let behind = viewer([0.0, 0.0, -2.0 * AHEAD], half_turn);
        assert!(close(behind.position, [0.0, 0.0, -AHEAD * metres]));
        assert!(
            behind.target[2] > behind.position[2],
            "looking towards +Z, at the model"
        );
        // Tilting the head (90° about the view axis) tilts the camera's up.
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let tilted = viewer([0.0; 3], [0.0, 0.0, s, s]);
        assert!(close(tilted.up, [-1.0, 0.0, 0.0]));
    }

    fn pose() -> Pose {
        Pose {
            id: 1,
            position: [0.0, 0.0, 10.0],
            target: [0.0; 3],
            up: [0.0, 1.0, 0.0],
            fov_y_degrees: 60.0,
            width: 640,
            height: 480,
            views: None,
            coverage: false,
        }
    }

    #[test]
    fn messages_read_as_the_wire_writes_them() {
        let text = r#"{"type":"pose","id":7,"position":[0,1,5],"target":[0,0,0],"fovYDegrees":50,"width":320,"height":200}"#;
        let DeviceMessage::Pose(pose) = DeviceMessage::parse(text).unwrap() else {
            panic!()
        };
        assert_eq!((pose.id, pose.up), (7, [0.0, 1.0, 0.0]));
        let load = DeviceMessage::LoadModel {
            model: ModelId::new("gear"),
        };
        assert_eq!(load.to_json(), r#"{"type":"load_model","model":"gear"}"#);
        let done = HostMessage::LoadDone {
            model: ModelId::new("gear"),
            triangles: 3,
            extent: Some(Extent::default()),
        };
        assert_eq!(HostMessage::parse(&done.to_json()).unwrap(), done);
    }

    #[test]
    fn an_orbit_sees_the_whole_model_from_where_it_is_asked_to() {
        let extent = Extent {
            min: [0.0, 0.0, 0.0],
            max: [100.0, 100.0, 100.0],
        };
        let front = Pose::orbit(&extent, 0.0, 0.0, 1.0);
        assert_eq!(front.target, [50.0, 50.0, 50.0]);
        // Straight along +Z, far enough that the 86.6-unit bounding sphere fits a 45° view.
        let distance = front.position[2] - 50.0;
        assert!((front.position[0] - 50.0).abs() < 1e-3 && (front.position[1] - 50.0).abs() < 1e-3);
        assert!(
            distance > 86.6 / (22.5_f32.to_radians()).sin(),
            "{distance}"
        );
        let side = Pose::orbit(&extent, 90.0, 0.0, 2.0);
        assert!(
            (side.position[0] - 50.0 - distance / 2.0).abs() < 1e-2,
            "{side:?}"
        );
        let pose = side.pose(3, 320, 240);
        assert_eq!((pose.id, pose.width, pose.problem(4096)), (3, 320, None));
        // However far one zooms in, the camera stays outside the part's bounding sphere.
        let closest = Pose::orbit(&extent, 0.0, 0.0, 100.0);
        let from_center = closest.position[2] - 50.0;
        assert!(from_center > 86.6, "{from_center}");
        assert_eq!(closest, Pose::orbit(&extent, 0.0, 0.0, MAX_ZOOM));
    }

    #[test]
    fn unrenderable_poses_are_named() {
        assert_eq!(pose().problem(4096), None);
        let mut p = pose();
        p.position = [f32::NAN, 0.0, 0.0];
        assert!(p.problem(4096).unwrap().contains("finite"));
        let mut p = pose();
        p.target = p.position;
        assert!(p.problem(4096).is_some());
        let mut p = pose();
        p.width = 0;
        assert!(p.problem(4096).unwrap().contains("viewport"));
        let mut p = pose();
        p.fov_y_degrees = 180.0;
        assert!(p.problem(4096).unwrap().contains("fovYDegrees"));
    }
}
