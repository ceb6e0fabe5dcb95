//! One room for every headset in a space: where the model stands in it, and how each headset's
//! own tracking space lines up with it.
//!
//! WebXR has no shared anchors, so a space's headsets agree on the room the way the immersive-web
//! discussions of shared spaces end up: each wearer touches the same two physical marks (two
//! corners of the table, two pieces of tape on the floor) in their own tracking space, and the
//! device gives gravity. The room's frame follows from that alone:
//! - its origin is halfway between the marks (so a model placed at the origin stands between
//!   them, at their height);
//! - its +Y is up (against gravity: a `local-floor` space's +Y);
//! - its +X runs level from the first mark towards the second.
//!
//! Every headset that touched the same marks then has the same room, within how precisely the
//! marks were touched ([`Alignment::error_at`]). The model's [`RoomPlacement`] is a space property
//! in room coordinates, so every aligned headset draws it on the same spot.
//!
//! Distances are metres; tracking spaces are `local-floor` (+Y up, floor at y = 0).

use glam::{Mat4, Quat, Vec3};
use serde::{Deserialize, Serialize};

/// The marks must be at least this far apart, level: nearer, a touch's error turns the room too
/// far (a centimetre off at 20 cm is 3°).
pub const MIN_MARK_SEPARATION: f32 = 0.2;

/// How far apart two marks may be at most: a room, not a building. Tracking drifts over more.
pub const MAX_MARK_SEPARATION: f32 = 50.0;

/// Before a headset aligns to the room, the model stands this far (m) ahead of where the head
/// looked when the session started...
pub const XR_DISTANCE: f32 = 0.8;
/// ...this far below the eyes, as on a table: seen from above at an angle, not edge on...
pub const XR_BELOW_EYES: f32 = 0.45;
/// ...scaled so that its bounding sphere is this wide (m): a part on a table.
pub const XR_SIZE: f32 = 0.6;

/// How another wearer's head is drawn: a box this wide, tall and deep (m).
pub const HEAD_SIZE: [f32; 3] = [0.16, 0.22, 0.2];

/// How another wearer's pointing ray is drawn: this long and this thick (m).
pub const RAY_LENGTH: f32 = 2.0;
pub const RAY_WIDTH: f32 = 0.008;

/// The most a placement's position may lie from the room's origin.
pub const MAX_PLACEMENT_DISTANCE: f32 = 100.0;

/// How large a model may be shown, across its bounding sphere: from a centimetre (a screw at
/// arm's length) to 100 m (a plant walked through). Model units vary (millimetres, metres,
/// inches), so a placement gives the size shown, not a ratio.
pub const SIZE_RANGE: std::ops::RangeInclusive<f32> = 0.01..=100.0;

/// Where the model stands in the room: a space property, the same for every headset.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomPlacement {
    /// The model's centre (of its bounds), in room coordinates (metres).
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub position: [f32; 3],
    /// How far it is turned about the room's up axis, counter-clockwise seen from above
    /// (degrees).
    pub yaw_degrees: f32,
    /// How wide its bounding sphere is shown (metres).
    #[cfg_attr(feature = "openapi", schema(minimum = 0.01, maximum = 100))]
    pub size: f32,
}

impl Default for RoomPlacement {
    /// Between the marks, unturned, as wide as a part on a table is shown before alignment.
    fn default() -> Self {
        Self {
            position: [0.0; 3],
            yaw_degrees: 0.0,
            size: XR_SIZE,
        }
    }
}

impl RoomPlacement {
    /// Why this placement cannot be used, if it cannot.
    pub fn problem(&self) -> Option<String> {
        if !self.position.iter().all(|c| c.is_finite()) || !self.yaw_degrees.is_finite() {
            return Some("a placement needs a finite position and yaw".into());
        }
        if Vec3::from(self.position).length() > MAX_PLACEMENT_DISTANCE {
            return Some(format!(
                "a placement lies at most {MAX_PLACEMENT_DISTANCE} m from the room's origin"
            ));
        }
        if !SIZE_RANGE.contains(&self.size) {
            return Some(format!(
                "a placement's size is from {} to {} m, not {}",
                SIZE_RANGE.start(),
                SIZE_RANGE.end(),
                self.size
            ));
        }
        None
    }

    /// What a headset that has not aligned shows: the same turn and size, but where its own
    /// room is (ahead of it), since a position in the shared room means nothing to it.
    pub fn unaligned(self) -> Self {
        Self {
            position: [0.0; 3],
            ..self
        }
    }

    /// From the model's own space to the room, for a model whose bounds are centred on
    /// `center` with a bounding sphere `diameter` across (model units).
    pub fn model_to_room(&self, center: [f32; 3], diameter: f32) -> Mat4 {
        let scale = self.size / diameter.max(1e-6);
        Mat4::from_scale_rotation_translation(
            Vec3::splat(scale),
            Quat::from_rotation_y(self.yaw_degrees.to_radians()),
            Vec3::from(self.position),
        ) * Mat4::from_translation(-Vec3::from(center))
    }
}

/// Where a hand holds the model while it carries it (a controller squeezed, a pinch held), in
/// the room: its position (metres) and which way it faces about the up axis (degrees,
/// counter-clockwise seen from above, as [`RoomPlacement::yaw_degrees`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grip {
    pub position: [f32; 3],
    pub yaw_degrees: f32,
}

impl RoomPlacement {
    /// Where the model is when a hand that took it at `from` has moved to `to`: carried rigidly,
    /// turning about the hand as the hand turns about the up axis (a tilt of the wrist does not
    /// tip the model over). Its size stays.
    pub fn carried(&self, from: Grip, to: Grip) -> Self {
        let turn = to.yaw_degrees - from.yaw_degrees;
        let held = Vec3::from(self.position) - Vec3::from(from.position);
        let position = Vec3::from(to.position) + Quat::from_rotation_y(turn.to_radians()) * held;
        Self {
            position: position.to_array(),
            yaw_degrees: (self.yaw_degrees + turn).rem_euclid(360.0),
            size: self.size,
        }
    }
}

/// Where a wearer is and points, in the space's room (metres).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Presence {
    /// The head's position...
    pub head: [f32; 3],
    /// ...and orientation, a unit quaternion `[x, y, z, w]`.
    pub orientation: [f32; 4],
    /// Where it points: a ray's origin and unit direction (a controller's or a hand's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ray: Option<[[f32; 3]; 2]>,
}

impl Presence {
    /// Which way the head looks on the floor: the unit `(x, z)` its forward (−Z) turns to, seen
    /// from above; straight ahead (−Z) when it looks straight up or down.
    pub fn facing(&self) -> [f32; 2] {
        let forward = glam::Quat::from_array(self.orientation).normalize() * glam::Vec3::NEG_Z;
        glam::Vec2::new(forward.x, forward.z)
            .try_normalize()
            .unwrap_or(glam::Vec2::NEG_Y)
            .to_array()
    }

    /// Why this presence cannot be passed on, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let numbers = self
            .head
            .iter()
            .chain(&self.orientation)
            .chain(self.ray.iter().flatten().flatten());
        if !numbers.into_iter().all(|c| c.is_finite()) {
            return Some("a presence needs finite numbers".into());
        }
        let length = |v: &[f32]| v.iter().map(|c| c * c).sum::<f32>().sqrt();
        if (length(&self.orientation) - 1.0).abs() > 0.01 {
            return Some("a presence's orientation is a unit quaternion".into());
        }
        if let Some([_, direction]) = self.ray
            && (length(&direction) - 1.0).abs() > 0.01
        {
            return Some("a presence's ray has a unit direction".into());
        }
        let far = |p: &[f32; 3]| length(p) > MAX_PLACEMENT_DISTANCE;
        if far(&self.head) || self.ray.is_some_and(|[origin, _]| far(&origin)) {
            return Some("a presence lies in the room".into());
        }
        None
    }
}

/// Why two marks do not make a room.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignError {
    #[error("a mark is not a finite point")]
    NotFinite,
    #[error(
        "the marks are {0:.2} m apart, level; touch two at least {MIN_MARK_SEPARATION} m apart"
    )]
    TooClose(f32),
    #[error("the marks are {0:.1} m apart, level; touch two at most {MAX_MARK_SEPARATION} m apart")]
    TooFar(f32),
}

/// How one headset's tracking space lies in the room: a turn about the up axis and a shift
/// (gravity is shared, so nothing tilts).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Alignment {
    /// Where the room's origin is, in tracking coordinates.
    pub origin: [f32; 3],
    /// The room's +X in tracking coordinates, as an angle about +Y from tracking's +X
    /// (counter-clockwise seen from above, radians).
    pub yaw: f32,
    /// How far apart, level, the marks were as touched: what [`Self::error_at`] scales by, and
    /// what another headset's touches of the same marks should also measure.
    pub separation: f32,
}

impl Alignment {
    /// The room two marks make, as touched in one headset's tracking space (first, then
    /// second).
    pub fn from_marks(first: [f32; 3], second: [f32; 3]) -> Result<Self, AlignError> {
        let (a, b) = (Vec3::from(first), Vec3::from(second));
        if !a.is_finite() || !b.is_finite() {
            return Err(AlignError::NotFinite);
        }
        let level = Vec3::new(b.x - a.x, 0.0, b.z - a.z);
        let separation = level.length();
        if separation < MIN_MARK_SEPARATION {
            return Err(AlignError::TooClose(separation));
        }
        if separation > MAX_MARK_SEPARATION {
            return Err(AlignError::TooFar(separation));
        }
        Ok(Self {
            origin: ((a + b) * 0.5).to_array(),
            // Counter-clockwise seen from above (+Y towards the eye) takes +X towards −Z.
            yaw: (-level.z).atan2(level.x),
            separation,
        })
    }

    /// The room a headset that has not aligned uses: the model before the wearer as on a table,
    /// `ahead` metres in front of where the head looks (level), at `height` above the floor,
    /// the room's +X to the wearer's right. `head` and `forward` are the head's position and
    /// where it looks, in tracking coordinates; looking straight up or down, ahead is tracking's
    /// −Z.
    pub fn in_front(head: [f32; 3], forward: [f32; 3], ahead: f32, height: f32) -> Self {
        let level = Vec3::new(forward[0], 0.0, forward[2])
            .try_normalize()
            .unwrap_or(Vec3::NEG_Z);
        let head = Vec3::from(head);
        let origin = Vec3::new(head.x, height, head.z) + level * ahead;
        // The wearer's right: forward turned clockwise seen from above.
        let right = Vec3::new(-level.z, 0.0, level.x);
        Self {
            origin: origin.to_array(),
            yaw: (-right.z).atan2(right.x),
            separation: 0.0,
        }
    }

    /// The room a headset uses before it aligns, from its head at `position` turned by
    /// `orientation` (a unit quaternion `[x, y, z, w]`) as its session starts: the model
    /// [`XR_DISTANCE`] ahead and [`XR_BELOW_EYES`] below the eyes, as on a table.
    pub fn before_aligning(position: [f32; 3], orientation: [f32; 4]) -> Self {
        let turn = Quat::from_array(orientation);
        let turn = if turn.is_finite() && turn.length() > 1e-6 {
            turn.normalize()
        } else {
            Quat::IDENTITY
        };
        let forward = turn * Vec3::NEG_Z;
        Self::in_front(
            position,
            forward.to_array(),
            XR_DISTANCE,
            position[1] - XR_BELOW_EYES,
        )
    }

    /// Where a wearer is and points in the room, from their head (position, unit quaternion
    /// `[x, y, z, w]`) and pointing ray (origin, direction) in this headset's tracking space.
    pub fn presence_of(
        &self,
        head: [f32; 3],
        orientation: [f32; 4],
        ray: Option<([f32; 3], [f32; 3])>,
    ) -> Presence {
        let to_room = self.tracking_to_room();
        let turn = Quat::from_rotation_y(-self.yaw) * Quat::from_array(orientation);
        Presence {
            head: to_room.transform_point3(Vec3::from(head)).to_array(),
            orientation: turn.normalize().to_array(),
            ray: ray.and_then(|(origin, direction)| {
                let direction = to_room
                    .transform_vector3(Vec3::from(direction))
                    .try_normalize()?;
                Some([
                    to_room.transform_point3(Vec3::from(origin)).to_array(),
                    direction.to_array(),
                ])
            }),
        }
    }

    /// A hand at `position` turned by `orientation` (unit quaternion `[x, y, z, w]`) in this
    /// headset's tracking space, as a grip in the room: where it is, and where its forward (−Z)
    /// points about the up axis.
    pub fn grip_of(&self, position: [f32; 3], orientation: [f32; 4]) -> Grip {
        let to_room = self.tracking_to_room();
        let forward =
            to_room.transform_vector3(Quat::from_array(orientation).normalize() * Vec3::NEG_Z);
        // Counter-clockwise from above, 0 facing −Z: the yaw that turns −Z onto `forward`.
        let yaw = (-forward.x).atan2(-forward.z).to_degrees();
        Grip {
            position: to_room.transform_point3(Vec3::from(position)).to_array(),
            yaw_degrees: if yaw.is_finite() { yaw } else { 0.0 },
        }
    }

    /// Where to draw another wearer in this headset's tracking space: the placement of a head
    /// ([`HEAD_SIZE`], its front towards where they look) and, when they point, of a ray
    /// [`RAY_LENGTH`] long; each a column-major matrix from a unit cube centred on the origin.
    pub fn markers_of(&self, presence: &Presence) -> ([f32; 16], Option<[f32; 16]>) {
        let to_tracking = self.room_to_tracking();
        let turn = Quat::from_array(presence.orientation).normalize();
        let head = to_tracking
            * Mat4::from_scale_rotation_translation(
                Vec3::from(HEAD_SIZE),
                turn,
                Vec3::from(presence.head),
            );
        let ray = presence.ray.and_then(|[origin, direction]| {
            let direction = Vec3::from(direction).try_normalize()?;
            let along = Quat::from_rotation_arc(Vec3::NEG_Z, direction);
            let middle = Vec3::from(origin) + direction * (RAY_LENGTH / 2.0);
            let ray = Mat4::from_scale_rotation_translation(
                Vec3::new(RAY_WIDTH, RAY_WIDTH, RAY_LENGTH),
                along,
                middle,
            );
            Some((to_tracking * ray).to_cols_array())
        });
        (head.to_cols_array(), ray)
    }

    /// From room coordinates to this headset's tracking coordinates.
    pub fn room_to_tracking(&self) -> Mat4 {
        Mat4::from_rotation_translation(Quat::from_rotation_y(self.yaw), Vec3::from(self.origin))
    }

    /// From this headset's tracking coordinates to the room.
    pub fn tracking_to_room(&self) -> Mat4 {
        self.room_to_tracking().inverse()
    }

    /// At most how far a room point `distance` metres from the origin can be from where another
    /// headset has it, when each mark was touched within `touch` metres of where it is: the
    /// origin (halfway between the marks) moves by at most `touch`, and the room's +X turns by
    /// at most `asin(2·touch / separation)`.
    pub fn error_at(&self, distance: f32, touch: f32) -> f32 {
        let turn = (2.0 * touch / self.separation).clamp(-1.0, 1.0).asin();
        touch + 2.0 * distance * (turn / 2.0).sin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f32::consts::FRAC_PI_4;

    fn close(a: [f32; 3], b: [f32; 3]) -> bool {
        (0..3).all(|i| (a[i] - b[i]).abs() < 1e-4)
    }

    #[test]
    fn a_hand_carries_the_model_as_it_moves_and_turns() {
        let room = Alignment::from_marks([1.0, 0.8, 0.0], [1.0, 0.8, -1.0]).unwrap();
        let on_table = RoomPlacement {
            position: [0.3, 0.1, 0.0],
            yaw_degrees: 10.0,
            size: 0.5,
        };
        let level = [0.0, 0.0, 0.0, 1.0];
        let quarter_left = [0.0, FRAC_PI_4.sin(), 0.0, FRAC_PI_4.cos()];
        // The room's origin is halfway between the marks, at their height; its +X is tracking's −Z.
        // The hand takes the model 0.3 m from it along the room's +X, steps 1 m that way and
        // turns a quarter to the left: the model goes with it, and turns with it about it.
        let from = room.grip_of([1.0, 0.9, -0.5], level);
        let to = room.grip_of([1.0, 0.9, -1.5], quarter_left);
        assert!(close(from.position, [0.0, 0.1, 0.0]), "{from:?}");
        assert!(
            (to.yaw_degrees - from.yaw_degrees - 90.0).abs() < 1e-3,
            "{from:?} {to:?}"
        );
        let moved = on_table.carried(from, to);
        assert!(close(moved.position, [1.0, 0.1, -0.3]), "{moved:?}");
        assert!((moved.yaw_degrees - 100.0).abs() < 1e-3);
        assert_eq!(moved.size, 0.5);
        // A hand that did not move leaves it where it was.
        assert_eq!(on_table.carried(from, from), on_table);
    }

    /// Two headsets whose tracking spaces differ as the issue's test has them: one 1.5 m to the
    /// side of the other and turned 90°.
    fn tracking_of_second() -> Mat4 {
        // Room (here: the first headset's tracking) → the second's tracking.
        Mat4::from_rotation_translation(
            Quat::from_rotation_y(90f32.to_radians()),
            Vec3::new(1.5, 0.0, 0.0),
        )
        .inverse()
    }

    /// Two marks, the second headset's tracking, and each headset's room from touching them.
    fn both_aligned() -> ([Vec3; 2], Mat4, Alignment, Alignment) {
        let marks = [Vec3::new(0.3, 0.74, -1.2), Vec3::new(1.1, 0.76, -1.5)];
        let second = tracking_of_second();
        let a = Alignment::from_marks(marks[0].to_array(), marks[1].to_array()).unwrap();
        let b = Alignment::from_marks(
            second.transform_point3(marks[0]).to_array(),
            second.transform_point3(marks[1]).to_array(),
        )
        .unwrap();
        (marks, second, a, b)
    }

    #[test]
    fn two_headsets_that_touch_the_same_marks_put_a_room_point_in_the_same_place() {
        let (marks, second, a, b) = both_aligned();
        assert!((a.separation - b.separation).abs() < 1e-5);
        let placement = RoomPlacement {
            position: [0.2, 0.0, -0.1],
            yaw_degrees: 30.0,
            size: 0.5,
        };
        // A model in millimetres, centred on (100, 50, 0), 250 mm across.
        let to_room = placement.model_to_room([100.0, 50.0, 0.0], 250.0);
        let centre_room = to_room.transform_point3(Vec3::new(100.0, 50.0, 0.0));
        assert!(centre_room.distance(Vec3::new(0.2, 0.0, -0.1)) < 1e-5);
        let across = to_room
            .transform_vector3(Vec3::new(250.0, 0.0, 0.0))
            .length();
        assert!((across - 0.5).abs() < 1e-5, "shown {across} m across");
        // The model's centre, where each headset draws it, brought back to the first's space.
        let in_a = a.room_to_tracking().transform_point3(centre_room);
        let in_b = b.room_to_tracking().transform_point3(centre_room);
        let b_in_a = second.inverse().transform_point3(in_b);
        assert!(in_a.distance(b_in_a) < 1e-4, "{in_a} vs {b_in_a}");
        // Halfway between the marks, at their height.
        let origin = a.room_to_tracking().transform_point3(Vec3::ZERO);
        assert!(origin.distance((marks[0] + marks[1]) * 0.5) < 1e-5);
        // The room's +X runs level from the first mark to the second.
        let x = a.room_to_tracking().transform_vector3(Vec3::X);
        let level = (marks[1] - marks[0]) * Vec3::new(1.0, 0.0, 1.0);
        assert!(x.distance(level.normalize()) < 1e-5, "{x}");
        // And back.
        let back = a.tracking_to_room().transform_point3(in_a);
        assert!(back.distance(centre_room) < 1e-5);
    }

    #[test]
    fn a_wearer_is_where_the_room_has_them_whichever_headset_says_so() {
        let (_, second, a, b) = both_aligned();
        // One wearer at (0.2, 1.6, 0.4) of the first's space, turned 30° to the left, pointing
        // down and ahead; said by each headset in its own tracking coordinates.
        let (head, look) = (
            Vec3::new(0.2, 1.6, 0.4),
            Quat::from_rotation_y(std::f32::consts::FRAC_PI_6),
        );
        let (origin, direction) = (Vec3::new(0.3, 1.2, 0.2), Vec3::new(0.0, -0.6, -0.8));
        let turn_b = Quat::from_mat4(&second);
        let said_by_a = a.presence_of(
            head.to_array(),
            look.to_array(),
            Some((origin.to_array(), direction.to_array())),
        );
        let said_by_b = b.presence_of(
            second.transform_point3(head).to_array(),
            (turn_b * look).to_array(),
            Some((
                second.transform_point3(origin).to_array(),
                second.transform_vector3(direction).to_array(),
            )),
        );
        assert!(Vec3::from(said_by_a.head).distance(Vec3::from(said_by_b.head)) < 1e-4);
        let (qa, qb) = (
            Quat::from_array(said_by_a.orientation),
            Quat::from_array(said_by_b.orientation),
        );
        assert!(qa.angle_between(qb) < 1e-3, "{qa} vs {qb}");
        let ([oa, da], [ob, db]) = (said_by_a.ray.unwrap(), said_by_b.ray.unwrap());
        assert!(Vec3::from(oa).distance(Vec3::from(ob)) < 1e-4);
        assert!(Vec3::from(da).distance(Vec3::from(db)) < 1e-4);
        assert_eq!(said_by_a.problem(), None);
    }

    #[test]
    fn another_wearer_is_drawn_where_they_stand_pointing_where_they_point() {
        let room = Alignment::from_marks([-0.4, 0.75, -1.0], [0.4, 0.75, -1.0]).unwrap();
        let presence = Presence {
            head: [-0.3, 0.85, 0.5],
            orientation: [0.0, 0.0, 0.0, 1.0],
            ray: Some([[-0.2, 0.5, 0.4], [0.0, 0.0, -1.0]]),
        };
        let (head, ray) = room.markers_of(&presence);
        let head = Mat4::from_cols_array(&head);
        // The room's origin is (0, 0.75, −1) here: the head's centre is at (−0.3, 1.6, −0.5).
        let centre = head.transform_point3(Vec3::ZERO);
        assert!(
            centre.distance(Vec3::new(-0.3, 1.6, -0.5)) < 1e-5,
            "{centre}"
        );
        let top = head.transform_point3(Vec3::new(0.0, 0.5, 0.0));
        assert!((top.y - centre.y - HEAD_SIZE[1] / 2.0).abs() < 1e-5);
        // The ray starts at its origin and runs RAY_LENGTH along −Z.
        let ray = Mat4::from_cols_array(&ray.unwrap());
        let start = ray.transform_point3(Vec3::new(0.0, 0.0, 0.5));
        let end = ray.transform_point3(Vec3::new(0.0, 0.0, -0.5));
        assert!(
            start.distance(Vec3::new(-0.2, 1.25, -0.6)) < 1e-5,
            "{start}"
        );
        assert!(
            end.distance(Vec3::new(-0.2, 1.25, -0.6 - RAY_LENGTH)) < 1e-5,
            "{end}"
        );
    }

    #[test]
    fn the_error_bound_holds_for_marks_touched_within_it() {
        let marks = [Vec3::new(-0.4, 0.0, 0.0), Vec3::new(0.4, 0.0, 0.0)];
        let exact = Alignment::from_marks(marks[0].to_array(), marks[1].to_array()).unwrap();
        let touch = 0.01;
        let point = Vec3::new(1.0, 0.3, 0.5);
        let distance = point.length();
        let bound = exact.error_at(distance, touch);
        // A centimetre at each mark of an 80 cm pair: 1 cm at the origin, about 3.8 cm at
        // 1.16 m.
        assert!((0.038..0.040).contains(&bound), "{bound}");
        let mut worst = 0f32;
        // Every combination of pushing each mark a centimetre along each level axis.
        let pushes = [Vec3::X, Vec3::NEG_X, Vec3::Z, Vec3::NEG_Z].map(|d| d * touch);
        for da in pushes {
            for db in pushes {
                let off =
                    Alignment::from_marks((marks[0] + da).to_array(), (marks[1] + db).to_array())
                        .unwrap();
                let moved = off
                    .room_to_tracking()
                    .transform_point3(point)
                    .distance(exact.room_to_tracking().transform_point3(point));
                worst = worst.max(moved);
            }
        }
        assert!(worst <= bound + 1e-5, "{worst} > {bound}");
        assert!(
            worst > bound * 0.6,
            "the bound is near what happens: {worst} of {bound}"
        );
    }

    #[test]
    fn marks_too_close_too_far_or_not_finite_make_no_room() {
        let at = |x: f32, y: f32| [x, y, 0.0];
        assert!(matches!(
            Alignment::from_marks(at(0.0, 0.0), at(0.1, 0.0)),
            Err(AlignError::TooClose(_))
        ));
        // Far apart, but one above the other: level, they are the same point.
        assert!(matches!(
            Alignment::from_marks(at(0.0, 0.0), at(0.05, 2.0)),
            Err(AlignError::TooClose(_))
        ));
        assert!(matches!(
            Alignment::from_marks(at(0.0, 0.0), at(60.0, 0.0)),
            Err(AlignError::TooFar(_))
        ));
        assert_eq!(
            Alignment::from_marks(at(f32::NAN, 0.0), at(1.0, 0.0)),
            Err(AlignError::NotFinite)
        );
        let error = Alignment::from_marks(at(0.0, 0.0), at(0.1, 0.0)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the marks are 0.10 m apart, level; touch two at least 0.2 m apart"
        );
    }

    #[test]
    fn without_marks_the_model_stands_ahead_as_on_a_table_facing_the_wearer() {
        // A wearer at (2, 1.6, 1) looking along +X and a little down.
        let room = Alignment::in_front([2.0, 1.6, 1.0], [0.9, -0.3, 0.0], 0.8, 0.9);
        let origin = room.room_to_tracking().transform_point3(Vec3::ZERO);
        assert!(origin.distance(Vec3::new(2.8, 0.9, 1.0)) < 1e-5, "{origin}");
        // Below the eyes, so it is seen from above.
        assert!(origin.y < 1.6);
        // The room's +X to the wearer's right (looking along +X, right is +Z).
        let x = room.room_to_tracking().transform_vector3(Vec3::X);
        assert!(x.distance(Vec3::Z) < 1e-5, "{x}");
        // As a session starts: the head at (0, 1.5, 0) turned 90° to the left (looking along −X).
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let start = Alignment::before_aligning([0.0, 1.5, 0.0], [0.0, s, 0.0, s]);
        let origin = start.room_to_tracking().transform_point3(Vec3::ZERO);
        let expected = Vec3::new(-XR_DISTANCE, 1.5 - XR_BELOW_EYES, 0.0);
        assert!(origin.distance(expected) < 1e-5, "{origin}");
        // A head without a turn (zeros) looks along −Z.
        let plain = Alignment::before_aligning([0.0; 3], [0.0; 4]);
        let origin = plain.room_to_tracking().transform_point3(Vec3::ZERO);
        assert!(origin.distance(Vec3::new(0.0, -XR_BELOW_EYES, -XR_DISTANCE)) < 1e-5);
        // Looking straight down, ahead is −Z.
        let down = Alignment::in_front([0.0, 1.6, 0.0], [0.0, -1.0, 0.0], 1.0, 0.9);
        let origin = down.room_to_tracking().transform_point3(Vec3::ZERO);
        assert!(
            origin.distance(Vec3::new(0.0, 0.9, -1.0)) < 1e-5,
            "{origin}"
        );
    }

    #[test]
    fn placements_outside_the_room_or_of_no_size_are_refused() {
        assert_eq!(RoomPlacement::default().problem(), None);
        let bad = [
            RoomPlacement {
                position: [f32::NAN, 0.0, 0.0],
                ..Default::default()
            },
            RoomPlacement {
                position: [0.0, 0.0, 200.0],
                ..Default::default()
            },
            RoomPlacement {
                size: 0.0,
                ..Default::default()
            },
            RoomPlacement {
                size: f32::NAN,
                ..Default::default()
            },
            RoomPlacement {
                yaw_degrees: f32::INFINITY,
                ..Default::default()
            },
        ];
        for placement in bad {
            assert!(placement.problem().is_some(), "{placement:?}");
        }
        let json = serde_json::to_string(&RoomPlacement::default()).unwrap();
        assert_eq!(
            json,
            r#"{"position":[0.0,0.0,0.0],"yawDegrees":0.0,"size":0.6}"#
        );
    }
}
