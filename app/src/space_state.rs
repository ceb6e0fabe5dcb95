//! What a page inside a space knows of it — the members, the arbiter, the selection and its
//! placement, the join code and the connection's state — and how it becomes a member: the tablet
//! page and the browser headset share both.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use parallax_core::api::{Joining, SpaceList, SpaceListing, SpaceView};
use parallax_core::device::Placement;
use parallax_core::space::{Member, SelectPolicy};
use serde_json::{Value, json};

use crate::rest::{self, ApiError};

/// What the page shows; the live connection (browser only) writes it.
#[derive(Clone, Copy)]
pub(crate) struct SpaceState {
    pub name: Signal<String>,
    /// This tablet's membership: (member id, member token).
    pub member: RwSignal<Option<(String, String)>>,
    pub members: RwSignal<Vec<Member>>,
    pub member_count: RwSignal<u64>,
    pub arbiter: RwSignal<Option<String>>,
    pub selected: RwSignal<Option<String>>,
    /// Where the selected model sits: every headset places it so.
    pub transform: RwSignal<Placement>,
    /// What everyone looks at in the model (parts, cut planes, explode): every headset renders it.
    pub review: RwSignal<parallax_core::review::Review>,
    /// The last part a member picked.
    pub pick: RwSignal<Option<parallax_core::space::Pick>>,
    /// Where the model stands in the room aligned headsets share.
    pub room: RwSignal<parallax_core::room::RoomPlacement>,
    /// Where each aligned headset's wearer is and points, by member (ephemeral).
    pub presence:
        RwSignal<std::collections::BTreeMap<String, parallax_core::space_protocol::MemberPresence>>,
    pub select_policy: RwSignal<SelectPolicy>,
    /// A `large` space (MPSD's large sessions): no roster, and the room map's wearers only when
    /// asked for.
    pub large: RwSignal<bool>,
    pub join_code: RwSignal<Option<String>>,
    /// "Connecting…", "Live", "Reconnecting…", or why the page stopped following.
    pub connection: RwSignal<String>,
    pub problem: RwSignal<Option<ApiError>>,
    /// Writes not yet sent, in the order they were made (see [`SpaceState::write`]).
    writes: StoredValue<Rc<RefCell<Writes>>, LocalStorage>,
}

/// Whether `patch` may take the place of `waiting`, a write not sent yet: it writes the same
/// fields, and no pick.
fn replaces(patch: &Value, waiting: &Value) -> bool {
    let fields = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    fields(patch) == fields(waiting) && patch.get("pick").is_none()
}

/// The writes a page has made and the coordinator not yet answered.
#[derive(Default)]
struct Writes {
    queue: VecDeque<Value>,
    /// A write is on its way; the queue follows it.
    sending: bool,
}

impl SpaceState {
    /// Takes in a full view of the space (GET, or a welcome's snapshot).
    pub fn apply_view(&self, view: &SpaceView) {
        if let Some(members) = &view.members {
            self.members.set(members.clone());
        }
        self.member_count.set(view.member_count as u64);
        self.arbiter.set(view.arbiter.clone());
        self.selected.set(
            view.properties
                .selected_model
                .as_ref()
                .map(|m| m.to_string()),
        );
        self.review.set(view.properties.review.clone());
        self.pick.set(view.properties.pick.clone());
        self.transform.set(view.properties.transform);
        self.room.set(view.properties.room);
        self.select_policy.set(view.constants.select_policy);
        self.large.set(view.constants.large);
        if let Some(code) = &view.join_code {
            self.join_code.set(Some(code.clone()));
        }
    }
}

/// Joins `space` as `role` under `device` (with the join code from the owner's list if it is
/// private); returns the member and the join's answer.
pub(crate) async fn join(
    space: &str,
    role: &str,
    device: &str,
) -> Result<((String, String), Joining), ApiError> {
    let owned: SpaceList = rest::get_as("/v1/spaces").await?;
    let code = owned.spaces.iter().find_map(|listed| match listed {
        SpaceListing::Space(view) if view.name == space => view.join_code.clone(),
        _ => None,
    });
    let body = json!({ "device": device, "role": role, "code": code });
    let joined: Joining = rest::call_as(
        "POST",
        &format!("/v1/spaces/{space}/members"),
        Some(&body),
        None,
    )
    .await?;
    let member = (joined.member.id.clone(), joined.member.token.clone());
    rest::remember_member(role, space, &member.0, &member.1);
    Ok((member, joined))
}

/// This browser's membership of `space` as `role`: the one it holds, or a new one. Returns the
/// space as the member sees it.
pub(crate) async fn membership(
    state: SpaceState,
    space: &str,
    role: &str,
    device: &str,
) -> Result<SpaceView, ApiError> {
    let path = format!("/v1/spaces/{space}");
    if let Some(member) = rest::member(role, space) {
        match rest::call_as::<SpaceView>("GET", &path, None, Some(&member.1)).await {
            // Still a member if the answer says it is this member.
            Ok(view) if view.member.as_deref() == Some(member.0.as_str()) => {
                state.apply_view(&view);
                state.member.set(Some(member));
                return Ok(view);
            }
            Err(e) if e.status == 404 => return Err(e),
            Ok(_) | Err(_) => rest::forget_member(role, space),
        }
    }
    let (member, _) = join(space, role, device).await?;
    let view: SpaceView = rest::call_as("GET", &path, None, Some(&member.1)).await?;
    state.apply_view(&view);
    state.member.set(Some(member));
    Ok(view)
}

impl SpaceState {
    /// Writes the space's properties as this member; the answer (or why not) shows at once.
    /// `patch` is JSON, not a `PropertiesPatch`: a field it leaves out stays as it is, where
    /// the type would write every field (`null` clears the selection).
    ///
    /// Writes go one at a time, in the order they were made: two on their way at once could
    /// arrive the other way round, and a model carried across the room would end where an
    /// earlier step of the carry put it. A write of the same fields as the one waiting behind
    /// the write on its way replaces it (the later place of a carried model, the later angle of
    /// a slider): what is sent keeps up however slowly a busy page hears its answers. Picks are
    /// never replaced: each is news.
    pub(crate) fn write(&self, patch: Value) {
        let state = *self;
        if state.member.get_untracked().is_none() {
            return;
        }
        let Some(writes) = state.writes.try_get_value() else {
            return;
        };
        let start = {
            let mut pending = writes.borrow_mut();
            match pending.queue.back_mut() {
                Some(waiting) if replaces(&patch, waiting) => *waiting = patch,
                _ => pending.queue.push_back(patch),
            }
            !std::mem::replace(&mut pending.sending, true)
        };
        if start {
            spawn_local(state.send_writes(writes));
        }
    }

    /// Sends the queued writes, each once the one before it is answered.
    async fn send_writes(self, writes: Rc<RefCell<Writes>>) {
        loop {
            let next = {
                let mut pending = writes.borrow_mut();
                let next = pending.queue.pop_front();
                pending.sending = next.is_some();
                next
            };
            let Some(patch) = next else {
                return;
            };
            let (Some(space), Some(Some((_, member)))) = (
                self.name.try_get_untracked(),
                self.member.try_get_untracked(),
            ) else {
                // The page is gone.
                writes.borrow_mut().sending = false;
                return;
            };
            let path = format!("/v1/spaces/{space}/properties");
            match rest::call_as::<SpaceView>("PATCH", &path, Some(&patch), Some(&member)).await {
                Ok(view) => {
                    self.problem.set(None);
                    self.apply_view(&view);
                }
                Err(e) => self.problem.set(Some(e)),
            }
        }
    }

    pub(crate) fn new(name: Signal<String>) -> Self {
        Self {
            name,
            member: RwSignal::new(None),
            members: RwSignal::new(Vec::new()),
            member_count: RwSignal::new(0),
            arbiter: RwSignal::new(None),
            selected: RwSignal::new(None),
            transform: RwSignal::new(Placement::default()),
            review: RwSignal::new(Default::default()),
            pick: RwSignal::new(None),
            room: RwSignal::new(Default::default()),
            presence: RwSignal::new(Default::default()),
            select_policy: RwSignal::new(SelectPolicy::AnyTablet),
            large: RwSignal::new(false),
            join_code: RwSignal::new(None),
            connection: RwSignal::new("Connecting…".into()),
            problem: RwSignal::new(None),
            writes: StoredValue::new_local(Rc::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::replaces;

    #[test]
    fn a_later_write_of_the_same_fields_replaces_one_waiting_but_never_a_pick() {
        let room = |x: f64| json!({ "room": { "position": [x, 0.0, 0.0] } });
        assert!(replaces(&room(2.0), &room(1.0)));
        assert!(!replaces(&json!({ "review": {} }), &room(1.0)));
        assert!(!replaces(&json!({ "room": {}, "review": {} }), &room(1.0)));
        let pick = json!({ "pick": { "part": "Gear" } });
        assert!(!replaces(&pick, &pick));
    }
}
