//! A shared space, after Xbox MPSD's sessions: constants fixed at creation (from a template),
//! properties members may write, members with their own constants and a status, timeouts that
//! remove members who never came or went away, an arbiter, and a change number bumped by every
//! change.
//!
//! Time is given, never read. Timeouts are evaluated by [`Space::handle_timeout`], which the
//! caller runs right before every read or write and whenever [`Space::poll_timeout`] says so; a
//! member makes at most one transition per evaluation, as in MPSD.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::catalog::ModelId;
use crate::change::ChangeNumber;
use crate::device::Placement;
use crate::review::Review;
use crate::room::RoomPlacement;
use crate::session::SessionSize;
use crate::time::Timestamp;

/// Most members of an ordinary space.
pub const MAX_MEMBERS: u32 = 100;
/// Most members of a `large` space (which sends no roster).
pub const MAX_LARGE_MEMBERS: u32 = 1000;
/// Largest custom JSON property, serialized.
pub const MAX_CUSTOM_BYTES: usize = 4096;

/// Member timeouts in milliseconds; `None` is infinite. MPSD's contract-107 defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeouts {
    /// A reserved member who never connects is removed after this.
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub reserved_removal: Option<u64>,
    /// A member whose connection went away (ready) is removed after this: the resume window.
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub ready_removal: Option<u64>,
    /// A member who said it is inactive is removed after this.
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub inactive_removal: Option<u64>,
    /// An empty space is deleted after this.
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub session_empty: Option<u64>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            reserved_removal: Some(30_000),
            ready_removal: Some(180_000),
            inactive_removal: Some(0),
            session_empty: Some(0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Visibility {
    /// Anyone signed in may join.
    Open,
    /// Joining needs the join code.
    Private,
}

/// Which tablets may change the selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SelectPolicy {
    AnyTablet,
    ArbiterOnly,
}

/// Constants of a space. In a template every field is optional: what a template sets, a creator
/// may not override; what it leaves open, the creator may set, else the default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConstantChoices {
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    #[serde(default, deserialize_with = "crate::whole::option")]
    pub max_members: Option<u32>,
    pub large: Option<bool>,
    pub visibility: Option<Visibility>,
    pub select_policy: Option<SelectPolicy>,
    /// Render session size for the space's headsets.
    pub render_size: Option<SessionSize>,
    pub timeouts: Option<Timeouts>,
}

/// A stored template: a name and the constants it fixes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Template {
    pub name: String,
    pub constants: ConstantChoices,
}

/// The constants of a space, fixed at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Constants {
    pub template: String,
    pub max_members: u32,
    /// Up to 1000 members; no roster is sent.
    pub large: bool,
    pub visibility: Visibility,
    pub select_policy: SelectPolicy,
    pub render_size: SessionSize,
    pub timeouts: Timeouts,
}

impl Constants {
    /// The constants of a space made from `template` with the creator's `choices`.
    pub fn resolve(template: &Template, choices: &ConstantChoices) -> Result<Self, SpaceError> {
        let fixed = &template.constants;
        fn pick<T: Copy>(
            field: &'static str,
            fixed: Option<T>,
            chosen: Option<T>,
            default: T,
        ) -> Result<T, SpaceError> {
            match (fixed, chosen) {
                (Some(_), Some(_)) => Err(SpaceError::ConstantFixed(field)),
                (Some(value), None) | (None, Some(value)) => Ok(value),
                (None, None) => Ok(default),
            }
        }
        let large = pick("large", fixed.large, choices.large, false)?;
        let limit = if large {
            MAX_LARGE_MEMBERS
        } else {
            MAX_MEMBERS
        };
        let max_members = pick("maxMembers", fixed.max_members, choices.max_members, limit)?;
        if !(1..=limit).contains(&max_members) {
            return Err(SpaceError::BadConstant(format!(
                "maxMembers must be 1 to {limit}{}, not {max_members}",
                if large { "" } else { " (or set large)" }
            )));
        }
        Ok(Self {
            template: template.name.clone(),
            max_members,
            large,
            visibility: pick(
                "visibility",
                fixed.visibility,
                choices.visibility,
                Visibility::Open,
            )?,
            select_policy: pick(
                "selectPolicy",
                fixed.select_policy,
                choices.select_policy,
                SelectPolicy::AnyTablet,
            )?,
            render_size: pick(
                "renderSize",
                fixed.render_size,
                choices.render_size,
                SessionSize::Standard,
            )?,
            timeouts: pick(
                "timeouts",
                fixed.timeouts,
                choices.timeouts,
                Timeouts::default(),
            )?,
        })
    }
}

/// What members may write.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Properties {
    pub selected_model: Option<ModelId>,
    pub transform: Placement,
    /// Opaque to Parallax, at most [`MAX_CUSTOM_BYTES`].
    pub custom: serde_json::Value,
    /// What everyone looks at in the selected model: parts hidden, tinted, see-through or
    /// highlighted, cut planes, the explode. A new model starts as modelled.
    #[serde(default)]
    pub review: Review,
    /// The last part a member picked (a tap on a headset's view), for the tablets to act on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
    /// Where the model stands in the room every aligned headset shares (metres, room
    /// coordinates: see [`crate::room`]). It stays when the model changes: the table does not
    /// move.
    #[serde(default)]
    pub room: RoomPlacement,
}

/// A member pointed at a part: a pick on its render session hit it (or nothing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pick {
    /// The part hit, as the review names parts; `None` when the pick hit nothing named.
    #[cfg_attr(feature = "openapi", schema(max_length = 1024))]
    pub part: Option<String>,
    /// Where, in the space's scene.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 3, max_items = 3))]
    pub position: Option<[f32; 3]>,
    /// The device that picked (set by the space, not the writer).
    #[serde(default)]
    pub by: String,
}

impl Pick {
    /// Why this pick cannot be shared, if it cannot: a part name of at most 1024 characters, a
    /// finite position.
    pub fn problem(&self) -> Option<String> {
        if self.part.as_ref().is_some_and(|p| p.chars().count() > 1024) {
            return Some("a part name is at most 1024 characters".into());
        }
        if self
            .position
            .is_some_and(|p| !p.iter().all(|c| c.is_finite()))
        {
            return Some("a pick's position needs finite numbers".into());
        }
        None
    }
}

/// A write to the properties; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PropertiesPatch {
    /// `null` clears the selection.
    #[serde(default, with = "double_option")]
    pub selected_model: Option<Option<ModelId>>,
    pub transform: Option<Placement>,
    pub custom: Option<serde_json::Value>,
    /// Replaces the whole review (`{}` shows the model as modelled).
    pub review: Option<Review>,
    /// What this member just picked; any member may write it.
    pub pick: Option<Pick>,
    /// Moves the model in the room: a tablet on its room map, or a headset's wearer grabbing
    /// it; under the select policy, as the selection is.
    pub room: Option<RoomPlacement>,
}

impl PropertiesPatch {
    /// Whether every value written can be kept and drawn: the custom JSON's size, the review,
    /// the room placement, the placement and the pick, each within its bounds. Whatever the
    /// space's state, so a write is told what is wrong with it before whether it is stale.
    pub fn check(&self) -> Result<(), SpaceError> {
        if let Some(custom) = &self.custom {
            let size = custom.to_string().len();
            if size > MAX_CUSTOM_BYTES {
                return Err(SpaceError::CustomTooLarge(size));
            }
        }
        if let Some(problem) = self.review.as_ref().and_then(Review::problem) {
            return Err(SpaceError::BadReview(problem));
        }
        if let Some(problem) = self.room.as_ref().and_then(RoomPlacement::problem) {
            return Err(SpaceError::BadRoom(problem));
        }
        if let Some(problem) = self.transform.as_ref().and_then(Placement::problem) {
            return Err(SpaceError::BadPlacement(problem));
        }
        if let Some(problem) = self.pick.as_ref().and_then(Pick::problem) {
            return Err(SpaceError::BadPick(problem));
        }
        Ok(())
    }
}

/// Tells "absent" from "null" for `selectedModel`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    Tablet,
    Headset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MemberStatus {
    /// Joined, not yet connected.
    Reserved,
    /// Was connected; its connection went away. It may resume.
    Ready,
    /// Connected.
    Active,
    /// Connected, but said it is not in use (headset taken off, app in the background).
    Inactive,
}

/// A member's id within its space: [`MEMBER_ID_LEN`] lowercase hex digits.
pub type MemberId = String;

/// How many hex digits a member id has.
pub const MEMBER_ID_LEN: usize = 12;

/// The render session a headset member of `space` leases: `{space}-{member}`.
pub fn headset_session(space: &str, member: &str) -> String {
    format!("{space}-{member}")
}

/// The space whose headset's render session `session` is, if it names one: what comes before
/// the last `-`, when a member id follows it. Space names may hold dashes themselves, so this is
/// the only exact way back: `lab-2-0123456789ab` is space `lab-2`'s, never `lab`'s.
pub fn space_of_headset_session(session: &str) -> Option<&str> {
    let (space, member) = session.rsplit_once('-')?;
    let is_member = member.len() == MEMBER_ID_LEN
        && member
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    (is_member && !space.is_empty()).then_some(space)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub id: MemberId,
    pub role: Role,
    /// The device's name, as it chose it; also how a restarted device finds its spaces.
    pub device: String,
    pub status: MemberStatus,
    /// When the status last changed: timeouts count from here.
    pub since: Timestamp,
    /// Join order decides who is arbiter next.
    pub joined: u64,
    /// A headset's render session, once leased.
    pub render_session: Option<String>,
}

/// What changed, for the subscribers.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Members joined, left, were removed, or changed status.
    Roster,
    /// The arbiter is now this member (or nobody).
    Arbiter(Option<MemberId>),
    /// Selected model or transform.
    Selection,
    /// The custom property.
    Custom,
    /// The design review.
    Review,
    /// A member picked a part.
    Pick,
    /// The model's placement in the room.
    Room,
    /// This member was removed by a timeout (not by leaving).
    Removed(Member),
    /// The space is empty past its timeout: delete it.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpaceError {
    #[error("{0} is fixed by the template and cannot be chosen")]
    ConstantFixed(&'static str),
    #[error("{0}")]
    BadConstant(String),
    #[error("the space is full ({0} members)")]
    Full(u32),
    #[error("this space is private: the join code is missing or wrong")]
    WrongCode,
    #[error("there is no member {0} in this space")]
    NoMember(MemberId),
    #[error("the space changed (now at change {}), reload and try again", current.0)]
    Stale { current: ChangeNumber },
    #[error("only tablets change the selection")]
    NotATablet,
    #[error("only the arbiter ({arbiter}) may change the selection in this space")]
    NotArbiter { arbiter: String },
    #[error("custom properties are limited to {MAX_CUSTOM_BYTES} bytes, this is {0}")]
    CustomTooLarge(usize),
    #[error("{0}")]
    BadReview(String),
    #[error("{0}")]
    BadPick(String),
    #[error("{0}")]
    BadPlacement(String),
    #[error("{0}")]
    BadRoom(String),
}

/// One space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    pub name: String,
    pub constants: Constants,
    /// For private spaces.
    pub join_code: Option<String>,
    pub properties: Properties,
    pub members: BTreeMap<MemberId, Member>,
    pub arbiter: Option<MemberId>,
    pub change: ChangeNumber,
    pub created: Timestamp,
    /// Since when the space has had no members.
    pub empty_since: Option<Timestamp>,
    /// Counts joins, for join order.
    joins: u64,
}

impl Space {
    pub fn new(
        name: impl Into<String>,
        constants: Constants,
        join_code: Option<String>,
        now: Timestamp,
    ) -> Self {
        Self {
            name: name.into(),
            join_code,
            constants,
            properties: Properties::default(),
            members: BTreeMap::new(),
            arbiter: None,
            change: ChangeNumber(1),
            created: now,
            empty_since: Some(now),
            joins: 0,
        }
    }

    /// Adds a member as `reserved`. `id` is chosen by the caller (unique, unguessable).
    pub fn handle_join(
        &mut self,
        id: MemberId,
        role: Role,
        device: String,
        code: Option<&str>,
        now: Timestamp,
    ) -> Result<Vec<Change>, SpaceError> {
        // Every space has a code to share (a QR code on the tablet); only a private one asks.
        if self.constants.visibility == Visibility::Private
            && let Some(expected) = &self.join_code
            && code.map(normalize_join_code) != Some(normalize_join_code(expected))
        {
            return Err(SpaceError::WrongCode);
        }
        if self.members.len() as u32 >= self.constants.max_members {
            return Err(SpaceError::Full(self.constants.max_members));
        }
        self.joins += 1;
        self.members.insert(
            id.clone(),
            Member {
                id,
                role,
                device,
                status: MemberStatus::Reserved,
                since: now,
                joined: self.joins,
                render_session: None,
            },
        );
        self.empty_since = None;
        Ok(self.changed(vec![Change::Roster]))
    }

    /// The member leaves.
    pub fn handle_leave(&mut self, id: &str, now: Timestamp) -> Result<Vec<Change>, SpaceError> {
        self.members
            .remove(id)
            .ok_or_else(|| SpaceError::NoMember(id.to_string()))?;
        if self.members.is_empty() {
            self.empty_since = Some(now);
        }
        Ok(self.changed(vec![Change::Roster]))
    }

    /// The member's status changes: `active` when it connects, `ready` when its connection
    /// goes, `inactive`/`active` as it says.
    pub fn handle_status(
        &mut self,
        id: &str,
        status: MemberStatus,
        now: Timestamp,
    ) -> Result<Vec<Change>, SpaceError> {
        let member = self
            .members
            .get_mut(id)
            .ok_or_else(|| SpaceError::NoMember(id.to_string()))?;
        if member.status == status {
            return Ok(Vec::new());
        }
        member.status = status;
        member.since = now;
        Ok(self.changed(vec![Change::Roster]))
    }

    /// Records a headset's render session.
    pub fn handle_render_session(
        &mut self,
        id: &str,
        session: Option<String>,
    ) -> Result<Vec<Change>, SpaceError> {
        let member = self
            .members
            .get_mut(id)
            .ok_or_else(|| SpaceError::NoMember(id.to_string()))?;
        member.render_session = session;
        Ok(self.changed(vec![Change::Roster]))
    }

    /// A member writes the properties. `if_match` is the change number the writer saw.
    pub fn handle_write(
        &mut self,
        writer: &str,
        patch: PropertiesPatch,
        if_match: Option<ChangeNumber>,
    ) -> Result<Vec<Change>, SpaceError> {
        let member = self
            .members
            .get(writer)
            .ok_or_else(|| SpaceError::NoMember(writer.to_string()))?;
        // The review is what everyone looks at, as the selection is: the same rule decides. But
        // pointing is any member's (a wearer's ray), as moving the model in the room is: a
        // review that changes nothing but the pointer is a point, not a review.
        let points_only = patch.review.as_ref().is_some_and(|review| {
            let unpointed = |r: &crate::review::Review| crate::review::Review {
                pointer: None,
                ..r.clone()
            };
            unpointed(review) == unpointed(&self.properties.review)
        });
        let reviews = patch.review.is_some() && !points_only;
        let selects = patch.selected_model.is_some() || patch.transform.is_some() || reviews;
        if selects && member.role != Role::Tablet {
            return Err(SpaceError::NotATablet);
        }
        // Moving the model in the room is any member's (a wearer grabs it), but where only the
        // arbiter selects, only the arbiter moves it either.
        if (selects || patch.room.is_some() || patch.review.is_some())
            && self.constants.select_policy == SelectPolicy::ArbiterOnly
            && self.arbiter.as_deref() != Some(writer)
        {
            let arbiter = self
                .arbiter
                .as_ref()
                .and_then(|a| self.members.get(a))
                .map_or_else(|| "nobody".to_string(), |m| m.device.clone());
            return Err(SpaceError::NotArbiter { arbiter });
        }
        let device = member.device.clone();
        let mut patch = patch;
        // A pointer is signed by who set it; one written back unchanged keeps its signature.
        if let Some(pointer) = patch.review.as_mut().and_then(|r| r.pointer.as_mut()) {
            let current = self.properties.review.pointer.as_ref();
            let same = current.is_some_and(|c| {
                (c.target, c.origin, &c.part) == (pointer.target, pointer.origin, &pointer.part)
            });
            pointer.by = match current {
                Some(current) if same => current.by.clone(),
                _ => Some(device.clone()),
            };
        }
        if let Some(pick) = &mut patch.pick {
            pick.by = device;
        }
        self.handle_owner_write(patch, if_match)
    }

    /// A write by the space's owner (an operator's console, a show-control system), not a
    /// member: as MPSD lets a title's server write a session, the select policy binds members,
    /// not the owner.
    pub fn handle_owner_write(
        &mut self,
        patch: PropertiesPatch,
        if_match: Option<ChangeNumber>,
    ) -> Result<Vec<Change>, SpaceError> {
        if let Some(seen) = if_match
            && seen != self.change
        {
            return Err(SpaceError::Stale {
                current: self.change,
            });
        }
        // Every check before anything changes: a refused write changes nothing.
        patch.check()?;
        let mut patch = patch;
        // A turn is kept as the same turn within one revolution.
        if let Some(room) = &mut patch.room {
            room.yaw_degrees = room.yaw_degrees.rem_euclid(360.0);
        }
        let mut changes = Vec::new();
        let mut selection = false;
        let mut review = patch.review;
        if let Some(model) = patch.selected_model
            && model != self.properties.selected_model
        {
            self.properties.selected_model = model;
            selection = true;
            // Another model has other parts: its review starts afresh unless one came with it.
            review.get_or_insert_with(Review::default);
        }
        if let Some(transform) = patch.transform
            && transform != self.properties.transform
        {
            self.properties.transform = transform;
            selection = true;
        }
        if selection {
            changes.push(Change::Selection);
        }
        if let Some(custom) = patch.custom
            && custom != self.properties.custom
        {
            self.properties.custom = custom;
            changes.push(Change::Custom);
        }
        if let Some(review) = review
            && review != self.properties.review
        {
            self.properties.review = review;
            changes.push(Change::Review);
        }
        if let Some(room) = patch.room
            && room != self.properties.room
        {
            self.properties.room = room;
            changes.push(Change::Room);
        }
        // Every pick is news, even of the same part again.
        if let Some(pick) = patch.pick {
            self.properties.pick = Some(pick);
            changes.push(Change::Pick);
        }
        if changes.is_empty() {
            return Ok(changes);
        }
        Ok(self.changed(changes))
    }

    /// Applies timeouts due at `now`: at most one transition per member.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Vec<Change> {
        let due: Vec<MemberId> = self
            .members
            .values()
            .filter(|m| self.removal_at(m).is_some_and(|at| at <= now))
            .map(|m| m.id.clone())
            .collect();
        let mut changes = Vec::new();
        for id in due {
            if let Some(member) = self.members.remove(&id) {
                changes.push(Change::Removed(member));
            }
        }
        if !changes.is_empty() {
            changes.push(Change::Roster);
            if self.members.is_empty() {
                self.empty_since = Some(now);
            }
            changes = self.changed(changes);
        } else if self.expires_at().is_some_and(|at| at <= now) {
            // Emptied earlier and its time is up. Removed members are reported first, so the
            // caller releases their leases before it drops the space.
            changes.push(Change::Expired);
        }
        changes
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.members
            .values()
            .filter_map(|m| self.removal_at(m))
            .chain(self.expires_at())
            .min()
    }

    /// Whether the space is past its empty timeout.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at().is_some_and(|at| at <= now)
    }

    fn removal_at(&self, member: &Member) -> Option<Timestamp> {
        let timeouts = &self.constants.timeouts;
        let after = match member.status {
            MemberStatus::Reserved => timeouts.reserved_removal,
            MemberStatus::Ready => timeouts.ready_removal,
            MemberStatus::Inactive => timeouts.inactive_removal,
            MemberStatus::Active => None,
        }?;
        Some(member.since.after(Duration::from_millis(after)))
    }

    fn expires_at(&self) -> Option<Timestamp> {
        let since = self.empty_since?;
        let after = self.constants.timeouts.session_empty?;
        Some(since.after(Duration::from_millis(after)))
    }

    /// Bumps the change number, migrates the arbiter if it must, and returns `changes` with the
    /// arbiter change (if any) added.
    fn changed(&mut self, mut changes: Vec<Change>) -> Vec<Change> {
        self.change = self.change.next();
        let arbiter = self.elect();
        if arbiter != self.arbiter {
            self.arbiter = arbiter.clone();
            changes.push(Change::Arbiter(arbiter));
        }
        changes
    }

    /// The arbiter stays while it is a tablet that is not inactive; otherwise the earliest
    /// joined such tablet takes over.
    fn elect(&self) -> Option<MemberId> {
        let eligible = |m: &Member| m.role == Role::Tablet && m.status != MemberStatus::Inactive;
        if let Some(current) = self.arbiter.as_ref().and_then(|a| self.members.get(a))
            && eligible(current)
        {
            return Some(current.id.clone());
        }
        self.members
            .values()
            .filter(|m| eligible(m))
            .min_by_key(|m| m.joined)
            .map(|m| m.id.clone())
    }
}

/// The letters a join code is made of: Crockford's base 32, no I, L, O or U, so it is read
/// aloud and typed without doubt.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A join code of nine letters in three groups, `7KQ-M4T-X2P`: 45 bits, far too many to guess
/// (at the join limit of one address, longer than the universe is old), still easy to type and
/// to say. `random` gives the bits (its low 45 are used).
pub fn join_code(random: u64) -> String {
    let mut code = String::with_capacity(11);
    for i in 0..9 {
        if i == 3 || i == 6 {
            code.push('-');
        }
        let index = (random >> (5 * i)) & 31;
        code.push(char::from(CODE_ALPHABET[index as usize]));
    }
    code
}

/// A join code as typed, in the one form codes are compared in: upper case, no dashes or
/// spaces, and the letters people mistake for digits read as those digits (O as 0, I and L as 1).
pub fn normalize_join_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' ' | '\t'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp::from_millis(1_000_000);

    fn at(ms: u64) -> Timestamp {
        T0.after(Duration::from_millis(ms))
    }

    fn template(constants: ConstantChoices) -> Template {
        Template {
            name: "t".into(),
            constants,
        }
    }

    fn space(choices: ConstantChoices) -> Space {
        let constants =
            Constants::resolve(&template(ConstantChoices::default()), &choices).unwrap();
        Space::new("review", constants, Some("4711".into()), T0)
    }

    fn join(space: &mut Space, id: &str, role: Role, now: Timestamp) -> Vec<Change> {
        space
            .handle_join(id.into(), role, format!("{id}-device"), None, now)
            .unwrap()
    }

    #[test]
    fn join_order_decides_the_next_arbiter_whatever_the_members_ids() {
        let mut space = space(ConstantChoices::default());
        // Joined z, m, a: their ids sort the other way round.
        for id in ["z", "m", "a"] {
            join(&mut space, id, Role::Tablet, T0);
            space.handle_status(id, MemberStatus::Active, T0).unwrap();
        }
        assert_eq!(space.arbiter.as_deref(), Some("z"));
        let joined: Vec<u64> = ["z", "m", "a"]
            .iter()
            .map(|id| space.members[*id].joined)
            .collect();
        assert!(joined[0] < joined[1] && joined[1] < joined[2], "{joined:?}");
        space
            .handle_status("z", MemberStatus::Inactive, at(1))
            .unwrap();
        assert_eq!(
            space.arbiter.as_deref(),
            Some("m"),
            "the earliest joined of the others"
        );
    }

    #[test]
    fn recording_a_render_session_is_a_roster_change() {
        let mut space = space(ConstantChoices::default());
        join(&mut space, "h", Role::Headset, T0);
        let before = space.change;
        let changes = space
            .handle_render_session("h", Some("review-h".into()))
            .unwrap();
        assert_eq!(changes, vec![Change::Roster]);
        assert!(space.change > before);
        assert_eq!(
            space.members["h"].render_session.as_deref(),
            Some("review-h")
        );
    }

    #[test]
    fn custom_properties_may_take_exactly_their_limit() {
        let mut space = space(ConstantChoices::default());
        // A JSON string of n bytes in all: n − 2 letters between its quotes.
        let custom = |n: usize| PropertiesPatch {
            custom: Some(serde_json::Value::String("x".repeat(n - 2))),
            ..PropertiesPatch::default()
        };
        let at_limit = space.handle_owner_write(custom(MAX_CUSTOM_BYTES), None);
        assert_eq!(at_limit.unwrap(), vec![Change::Custom]);
        assert!(matches!(
            space.handle_owner_write(custom(MAX_CUSTOM_BYTES + 1), None),
            Err(SpaceError::CustomTooLarge(size)) if size == MAX_CUSTOM_BYTES + 1
        ));
        // If-Match: the change number seen now passes, the one before it does not.
        let now = space.change;
        space.handle_owner_write(custom(10), Some(now)).unwrap();
        assert!(matches!(
            space.handle_owner_write(custom(11), Some(now)),
            Err(SpaceError::Stale { .. })
        ));
    }

    #[test]
    fn the_same_placement_again_is_no_change_and_a_picked_part_has_a_name_of_1024_characters_at_most()
     {
        let mut space = space(ConstantChoices::default());
        let placed = |x: f32| PropertiesPatch {
            transform: Some(Placement {
                position: [x, 0.0, 0.0],
                ..Placement::default()
            }),
            ..PropertiesPatch::default()
        };
        assert_eq!(
            space.handle_owner_write(placed(1.0), None).unwrap(),
            vec![Change::Selection]
        );
        assert_eq!(space.handle_owner_write(placed(1.0), None).unwrap(), vec![]);
        assert_eq!(
            space.handle_owner_write(placed(2.0), None).unwrap(),
            vec![Change::Selection]
        );
        let picked = |length: usize| PropertiesPatch {
            pick: Some(Pick {
                part: Some("é".repeat(length)),
                position: None,
                by: String::new(),
            }),
            ..PropertiesPatch::default()
        };
        assert_eq!(
            space.handle_owner_write(picked(1024), None).unwrap(),
            vec![Change::Pick]
        );
        assert!(matches!(
            space.handle_owner_write(picked(1025), None),
            Err(SpaceError::BadPick(_))
        ));
        // What cannot be drawn is refused, and the placement before it stays.
        let unturned = PropertiesPatch {
            transform: Some(Placement {
                rotation: [0.0; 4],
                ..Placement::default()
            }),
            ..PropertiesPatch::default()
        };
        assert!(matches!(
            space.handle_owner_write(unturned, None),
            Err(SpaceError::BadPlacement(_))
        ));
        assert_eq!(space.properties.transform.position, [2.0, 0.0, 0.0]);
        let overflowing = PropertiesPatch {
            pick: Some(Pick {
                part: None,
                position: Some([f32::INFINITY, 0.0, 0.0]),
                by: String::new(),
            }),
            ..PropertiesPatch::default()
        };
        assert!(matches!(
            space.handle_owner_write(overflowing, None),
            Err(SpaceError::BadPick(_))
        ));
    }

    #[test]
    fn an_empty_space_expires_at_its_timeout_not_before() {
        let mut space = space(ConstantChoices::default());
        join(&mut space, "t", Role::Tablet, T0);
        assert!(!space.is_expired(at(1_000_000)), "not while it has members");
        space.handle_leave("t", at(10)).unwrap();
        let after = space.constants.timeouts.session_empty.unwrap();
        assert!(!space.is_expired(at(10 + after).before(Duration::from_millis(1))));
        assert!(space.is_expired(at(10 + after)));
        assert!(space.is_expired(at(20 + after)));
    }

    #[test]
    fn a_template_fixes_what_it_sets_and_defaults_fill_the_rest() {
        let fixed = template(ConstantChoices {
            visibility: Some(Visibility::Private),
            ..Default::default()
        });
        let refused = Constants::resolve(
            &fixed,
            &ConstantChoices {
                visibility: Some(Visibility::Open),
                ..Default::default()
            },
        );
        assert_eq!(refused, Err(SpaceError::ConstantFixed("visibility")));
        let chosen = Constants::resolve(
            &fixed,
            &ConstantChoices {
                max_members: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(chosen.visibility, Visibility::Private);
        assert_eq!(chosen.max_members, 8);
        assert_eq!(chosen.timeouts, Timeouts::default());
        assert_eq!(chosen.timeouts.reserved_removal, Some(30_000));
        assert_eq!(chosen.timeouts.ready_removal, Some(180_000));
    }

    #[test]
    fn member_limits_are_100_or_1000_for_large_spaces() {
        let none = template(ConstantChoices::default());
        let default = Constants::resolve(&none, &ConstantChoices::default()).unwrap();
        assert_eq!(default.max_members, 100);
        let too_many = ConstantChoices {
            max_members: Some(101),
            ..Default::default()
        };
        assert!(matches!(
            Constants::resolve(&none, &too_many),
            Err(SpaceError::BadConstant(_))
        ));
        let large = ConstantChoices {
            large: Some(true),
            ..Default::default()
        };
        assert_eq!(Constants::resolve(&none, &large).unwrap().max_members, 1000);
        let zero = ConstantChoices {
            max_members: Some(0),
            ..Default::default()
        };
        assert!(Constants::resolve(&none, &zero).is_err());
    }

    #[test]
    fn a_full_space_refuses_the_next_member() {
        let mut s = space(ConstantChoices {
            max_members: Some(2),
            ..Default::default()
        });
        join(&mut s, "a", Role::Tablet, T0);
        join(&mut s, "b", Role::Headset, T0);
        assert_eq!(
            s.handle_join("c".into(), Role::Headset, "c".into(), None, T0),
            Err(SpaceError::Full(2))
        );
        s.handle_leave("b", T0).unwrap();
        join(&mut s, "c", Role::Headset, T0);
    }

    #[test]
    fn a_private_space_needs_its_code() {
        let mut s = space(ConstantChoices {
            visibility: Some(Visibility::Private),
            ..Default::default()
        });
        assert_eq!(
            s.handle_join("a".into(), Role::Tablet, "a".into(), None, T0),
            Err(SpaceError::WrongCode)
        );
        assert_eq!(
            s.handle_join("a".into(), Role::Tablet, "a".into(), Some("0000"), T0),
            Err(SpaceError::WrongCode)
        );
        assert!(
            s.handle_join("a".into(), Role::Tablet, "a".into(), Some("4711"), T0)
                .is_ok()
        );
        // An open space has a code to share, but does not ask for it.
        let mut open = space(ConstantChoices::default());
        assert_eq!(open.join_code.as_deref(), Some("4711"));
        assert!(
            open.handle_join("b".into(), Role::Tablet, "b".into(), None, T0)
                .is_ok()
        );
    }

    #[test]
    fn join_codes_are_nine_letters_people_can_type_and_say() {
        let code = join_code(0x1234_5678_9abc);
        assert_eq!(code.len(), 11);
        assert_eq!(code.matches('-').count(), 2);
        assert!(
            code.chars()
                .all(|c| c == '-' || CODE_ALPHABET.contains(&(c as u8)))
        );
        assert_ne!(join_code(1), join_code(2));
        assert_eq!(join_code(0), "000-000-000");
        assert_eq!(join_code((1 << 45) - 1), "ZZZ-ZZZ-ZZZ");
        // Typed in lower case, without dashes, with O for 0 and l for 1: the same code.
        assert_eq!(
            normalize_join_code("7kq m4t-x2p"),
            normalize_join_code("7KQ-M4T-X2P")
        );
        assert_eq!(normalize_join_code("10o-lI0"), "100110");
        assert_eq!(
            normalize_join_code("123456"),
            "123456",
            "older codes still read"
        );
    }

    #[test]
    fn every_change_bumps_the_change_number_and_no_op_writes_do_not() {
        let mut s = space(ConstantChoices::default());
        let start = s.change;
        join(&mut s, "tab", Role::Tablet, T0);
        assert_eq!(s.change, start.next());
        let select = PropertiesPatch {
            selected_model: Some(Some(ModelId::new("gear"))),
            ..Default::default()
        };
        let changes = s.handle_write("tab", select.clone(), None).unwrap();
        assert_eq!(changes, [Change::Selection]);
        let after_select = s.change;
        assert_eq!(after_select, start.next().next());
        // The same selection again changes nothing, so nobody reloads.
        assert_eq!(s.handle_write("tab", select, None).unwrap(), []);
        assert_eq!(s.change, after_select);
        s.handle_status("tab", MemberStatus::Active, at(1)).unwrap();
        assert_eq!(s.change, after_select.next());
        assert_eq!(
            s.handle_status("tab", MemberStatus::Active, at(2)).unwrap(),
            []
        );
    }

    #[test]
    fn a_review_is_a_tablets_write_checked_versioned_and_reset_by_a_new_model() {
        use crate::review::{CutPlane, PartOverride};
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        join(&mut s, "hmd", Role::Headset, T0);
        let select = |model: &str| PropertiesPatch {
            selected_model: Some(Some(ModelId::new(model))),
            ..Default::default()
        };
        s.handle_write("tab", select("bracket"), None).unwrap();
        let mut review = Review::default();
        review.parts.insert(
            "Upright".into(),
            PartOverride {
                hidden: Some(true),
                ..PartOverride::default()
            },
        );
        review.cut_planes.push(CutPlane {
            point: [0.0; 3],
            normal: [1.0, 0.0, 0.0],
        });
        let write = |review: &Review| PropertiesPatch {
            review: Some(review.clone()),
            ..Default::default()
        };
        // A headset does not choose what everyone looks at.
        assert_eq!(
            s.handle_write("hmd", write(&review), None),
            Err(SpaceError::NotATablet)
        );
        let seen = s.change;
        assert_eq!(
            s.handle_write("tab", write(&review), Some(seen)).unwrap(),
            [Change::Review]
        );
        assert_eq!(s.properties.review, review);
        // Written against what it saw before: refused, nothing changes.
        let mut other = review.clone();
        other.explode = 0.5;
        assert_eq!(
            s.handle_write("tab", write(&other), Some(seen)),
            Err(SpaceError::Stale { current: s.change })
        );
        // A review the host could not render is refused with the reason.
        let mut bad = review.clone();
        bad.cut_planes = vec![bad.cut_planes[0]; 9];
        assert!(matches!(
            s.handle_write("tab", write(&bad), None),
            Err(SpaceError::BadReview(reason)) if reason.contains("8 cut planes")
        ));
        assert_eq!(s.properties.review, review);
        // A pointer is signed by the tablet that set it, whoever it claims; written back
        // unchanged with another change, it keeps its signature.
        join(&mut s, "tab2", Role::Tablet, T0);
        let mut pointed = review.clone();
        pointed.pointer = Some(crate::review::Pointer {
            target: [1.0, 2.0, 3.0],
            origin: None,
            part: Some("Upright".into()),
            by: Some("somebody".into()),
        });
        s.handle_write("tab", write(&pointed), None).unwrap();
        let by = |s: &Space| s.properties.review.pointer.as_ref().unwrap().by.clone();
        assert_eq!(by(&s).as_deref(), Some("tab-device"));
        pointed.explode = 0.25;
        s.handle_write("tab2", write(&pointed), None).unwrap();
        assert_eq!(by(&s).as_deref(), Some("tab-device"));
        pointed.pointer.as_mut().unwrap().target = [0.0; 3];
        s.handle_write("tab2", write(&pointed), None).unwrap();
        assert_eq!(by(&s).as_deref(), Some("tab2-device"));
        // A wearer points (its ray met a part): the review as it is, but for the pointer, which
        // it signs. Anything more is still a tablet's.
        let mut aimed = pointed.clone();
        aimed.pointer.as_mut().unwrap().target = [5.0; 3];
        s.handle_write("hmd", write(&aimed), None).unwrap();
        assert_eq!(by(&s).as_deref(), Some("hmd-device"));
        assert_eq!(
            s.properties.review,
            Review {
                pointer: s.properties.review.pointer.clone(),
                ..aimed.clone()
            }
        );
        aimed.explode = 0.75;
        assert_eq!(
            s.handle_write("hmd", write(&aimed), None),
            Err(SpaceError::NotATablet)
        );
        s.handle_write("tab", write(&review), None).unwrap();
        // Another model starts as modelled.
        assert_eq!(
            s.handle_write("tab", select("gear"), None).unwrap(),
            [Change::Selection, Change::Review]
        );
        assert_eq!(s.properties.review, Review::default());
        // Any member may say what it picked; the space says who it was, whatever it was told.
        let pick = PropertiesPatch {
            pick: Some(Pick {
                part: Some("Gear".into()),
                position: None,
                by: "someone else".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            s.handle_write("hmd", pick.clone(), None).unwrap(),
            [Change::Pick]
        );
        assert_eq!(s.properties.pick.as_ref().unwrap().by, "hmd-device");
        // The same pick again is news again.
        assert_eq!(s.handle_write("hmd", pick, None).unwrap(), [Change::Pick]);
    }

    #[test]
    fn a_stale_if_match_is_refused_and_changes_nothing() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        let seen = s.change;
        let custom = |v: i32| PropertiesPatch {
            custom: Some(serde_json::json!({ "v": v })),
            ..Default::default()
        };
        s.handle_write("tab", custom(1), Some(seen)).unwrap();
        assert_eq!(
            s.handle_write("tab", custom(2), Some(seen)),
            Err(SpaceError::Stale { current: s.change })
        );
        assert_eq!(s.properties.custom, serde_json::json!({ "v": 1 }));
    }

    #[test]
    fn custom_json_is_limited_to_4_kb() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        let big = PropertiesPatch {
            custom: Some(serde_json::json!("x".repeat(MAX_CUSTOM_BYTES))),
            ..Default::default()
        };
        assert!(matches!(
            s.handle_write("tab", big, None),
            Err(SpaceError::CustomTooLarge(_))
        ));
    }

    #[test]
    fn any_member_moves_the_model_in_the_room_where_anyone_selects_and_a_new_model_keeps_it() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        join(&mut s, "hmd", Role::Headset, T0);
        let room = |x: f32, size: f32| PropertiesPatch {
            room: Some(RoomPlacement {
                position: [x, 0.0, -0.2],
                yaw_degrees: 45.0,
                size,
            }),
            ..Default::default()
        };
        // A wearer grabs and moves it; the tablet moves it again against what it saw.
        assert_eq!(
            s.handle_write("hmd", room(0.5, 0.6), None).unwrap(),
            [Change::Room]
        );
        let seen = s.change;
        assert_eq!(
            s.handle_write("tab", room(1.0, 0.6), Some(seen)).unwrap(),
            [Change::Room]
        );
        assert_eq!(
            s.handle_write("hmd", room(2.0, 0.6), Some(seen)),
            Err(SpaceError::Stale { current: s.change })
        );
        // The same place again is no change; a place out of the room is refused with why.
        assert_eq!(s.handle_write("tab", room(1.0, 0.6), None).unwrap(), []);
        assert!(matches!(
            s.handle_write("tab", room(1.0, 0.0), None),
            Err(SpaceError::BadRoom(why)) if why.contains("size")
        ));
        assert_eq!(s.properties.room.position, [1.0, 0.0, -0.2]);
        // A write refused for any of its parts changes none of them.
        let mut refused = room(3.0, 0.6);
        refused.pick = Some(Pick {
            part: Some("x".repeat(2000)),
            position: None,
            by: String::new(),
        });
        assert!(s.handle_write("tab", refused, None).is_err());
        assert_eq!(s.properties.room.position, [1.0, 0.0, -0.2]);
        // Another model stands where the last one stood.
        let select = PropertiesPatch {
            selected_model: Some(Some(ModelId::new("gear"))),
            ..Default::default()
        };
        assert_eq!(
            s.handle_write("tab", select, None).unwrap(),
            [Change::Selection]
        );
        assert_eq!(s.properties.room.position, [1.0, 0.0, -0.2]);

        // Where only the arbiter selects, only the arbiter moves it.
        let mut strict = space(ConstantChoices {
            select_policy: Some(SelectPolicy::ArbiterOnly),
            ..Default::default()
        });
        join(&mut strict, "first", Role::Tablet, T0);
        join(&mut strict, "hmd", Role::Headset, T0);
        assert_eq!(
            strict.handle_write("hmd", room(0.5, 0.6), None),
            Err(SpaceError::NotArbiter {
                arbiter: "first-device".into()
            })
        );
        assert_eq!(
            strict.handle_write("first", room(0.5, 0.6), None).unwrap(),
            [Change::Room]
        );
    }

    #[test]
    fn only_tablets_select_and_with_arbiter_only_only_the_arbiter() {
        let mut s = space(ConstantChoices {
            select_policy: Some(SelectPolicy::ArbiterOnly),
            ..Default::default()
        });
        join(&mut s, "first", Role::Tablet, T0);
        join(&mut s, "second", Role::Tablet, T0);
        join(&mut s, "hmd", Role::Headset, T0);
        let select = PropertiesPatch {
            selected_model: Some(Some(ModelId::new("gear"))),
            ..Default::default()
        };
        assert_eq!(
            s.handle_write("hmd", select.clone(), None),
            Err(SpaceError::NotATablet)
        );
        assert_eq!(
            s.handle_write("second", select.clone(), None),
            Err(SpaceError::NotArbiter {
                arbiter: "first-device".into()
            })
        );
        assert!(s.handle_write("first", select, None).is_ok());
        // The space's owner is not bound by the policy, but by If-Match like anyone.
        let other = PropertiesPatch {
            selected_model: Some(Some(ModelId::new("shaft"))),
            ..Default::default()
        };
        let stale = s.change.0 - 1;
        assert!(matches!(
            s.handle_owner_write(other.clone(), Some(ChangeNumber(stale))),
            Err(SpaceError::Stale { .. })
        ));
        assert_eq!(
            s.handle_owner_write(other, None),
            Ok(vec![Change::Selection])
        );
        assert_eq!(s.properties.selected_model, Some(ModelId::new("shaft")));
    }

    #[test]
    fn the_arbiter_migrates_when_it_leaves_or_goes_inactive_and_stays_otherwise() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "hmd", Role::Headset, T0);
        assert_eq!(s.arbiter, None);
        let changes = join(&mut s, "first", Role::Tablet, T0);
        assert!(changes.contains(&Change::Arbiter(Some("first".into()))));
        join(&mut s, "second", Role::Tablet, T0);
        join(&mut s, "third", Role::Tablet, T0);
        assert_eq!(s.arbiter.as_deref(), Some("first"));
        let changes = s
            .handle_status("first", MemberStatus::Inactive, at(1))
            .unwrap();
        assert!(changes.contains(&Change::Arbiter(Some("second".into()))));
        // Coming back does not take the role back: the arbiter only changes when it must.
        s.handle_status("first", MemberStatus::Active, at(2))
            .unwrap();
        assert_eq!(s.arbiter.as_deref(), Some("second"));
        let changes = s.handle_leave("second", at(3)).unwrap();
        assert!(changes.contains(&Change::Arbiter(Some("first".into()))));
        s.handle_leave("first", at(4)).unwrap();
        s.handle_leave("third", at(5)).unwrap();
        assert_eq!(s.arbiter, None);
    }

    #[test]
    fn a_reserved_member_who_never_connects_is_removed_after_30_s() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        s.handle_status("tab", MemberStatus::Active, T0).unwrap();
        join(&mut s, "late", Role::Headset, T0);
        assert_eq!(s.poll_timeout(), Some(at(30_000)));
        assert_eq!(s.handle_timeout(at(29_999)), []);
        let changes = s.handle_timeout(at(30_000));
        assert!(matches!(&changes[0], Change::Removed(m) if m.id == "late"));
        assert!(changes.contains(&Change::Roster));
        assert!(!s.members.contains_key("late"));
        assert_eq!(s.poll_timeout(), None, "an active member never times out");
    }

    #[test]
    fn a_dropped_member_may_resume_for_180_s_and_an_inactive_one_goes_at_once() {
        let mut s = space(ConstantChoices::default());
        join(&mut s, "tab", Role::Tablet, T0);
        join(&mut s, "hmd", Role::Headset, T0);
        s.handle_status("tab", MemberStatus::Active, T0).unwrap();
        s.handle_status("hmd", MemberStatus::Active, T0).unwrap();
        s.handle_status("hmd", MemberStatus::Ready, at(1_000))
            .unwrap();
        assert_eq!(s.poll_timeout(), Some(at(181_000)));
        // It reconnects in time: nothing is removed.
        s.handle_status("hmd", MemberStatus::Active, at(100_000))
            .unwrap();
        assert_eq!(s.handle_timeout(at(181_000)), []);
        // inactiveRemoval 0: removed on the next evaluation.
        s.handle_status("tab", MemberStatus::Inactive, at(200_000))
            .unwrap();
        let changes = s.handle_timeout(at(200_000));
        assert!(matches!(&changes[0], Change::Removed(m) if m.id == "tab"));
    }

    #[test]
    fn one_transition_per_member_per_evaluation_and_null_is_infinite() {
        let mut s = space(ConstantChoices {
            timeouts: Some(Timeouts {
                reserved_removal: None,
                ready_removal: Some(10),
                inactive_removal: None,
                session_empty: None,
            }),
            ..Default::default()
        });
        join(&mut s, "tab", Role::Tablet, T0);
        join(&mut s, "idle", Role::Tablet, T0);
        assert_eq!(s.poll_timeout(), None, "reserved forever");
        s.handle_status("tab", MemberStatus::Ready, T0).unwrap();
        // Long past due: still only removed once, and the other member is untouched.
        let changes = s.handle_timeout(at(1_000_000));
        let removed: Vec<_> = changes
            .iter()
            .filter(|c| matches!(c, Change::Removed(_)))
            .collect();
        assert_eq!(removed.len(), 1);
        assert!(s.members.contains_key("idle"));
        // sessionEmpty null: an empty space stays.
        s.handle_leave("idle", at(1_000_001)).unwrap();
        assert_eq!(s.handle_timeout(at(u64::MAX / 2)), []);
    }

    #[test]
    fn an_empty_space_expires_after_its_timeout() {
        let mut s = space(ConstantChoices {
            timeouts: Some(Timeouts {
                session_empty: Some(5_000),
                ..Timeouts::default()
            }),
            ..Default::default()
        });
        join(&mut s, "tab", Role::Tablet, T0);
        s.handle_status("tab", MemberStatus::Active, T0).unwrap();
        assert!(!s.is_expired(at(10_000)));
        s.handle_leave("tab", at(10_000)).unwrap();
        assert_eq!(s.poll_timeout(), Some(at(15_000)));
        assert_eq!(s.handle_timeout(at(14_999)), []);
        assert_eq!(s.handle_timeout(at(15_000)), [Change::Expired]);
    }

    #[test]
    fn selected_model_tells_absent_from_null() {
        let absent: PropertiesPatch = serde_json::from_str(r#"{"custom":1}"#).unwrap();
        assert_eq!(absent.selected_model, None);
        let cleared: PropertiesPatch = serde_json::from_str(r#"{"selectedModel":null}"#).unwrap();
        assert_eq!(cleared.selected_model, Some(None));
        assert!(serde_json::from_str::<PropertiesPatch>(r#"{"colour":1}"#).is_err());
    }

    #[test]
    fn a_headsets_session_names_its_space_and_only_its_space() {
        let member = "0123456789ab";
        assert_eq!(headset_session("lab-2", member), "lab-2-0123456789ab");
        assert_eq!(
            space_of_headset_session("lab-2-0123456789ab"),
            Some("lab-2")
        );
        assert_eq!(space_of_headset_session("lab-0123456789ab"), Some("lab"));
        for not_a_headset in [
            "lab",
            "-0123456789ab",
            "lab-0123456789a",
            "lab-0123456789abc",
            "lab-0123456789aB",
            "lab-0123456789ag",
        ] {
            assert_eq!(
                space_of_headset_session(not_a_headset),
                None,
                "{not_a_headset}"
            );
        }
    }
}
