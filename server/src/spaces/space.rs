//! Shared spaces: the core's [`Space`] with its IO — SQLite rows, member tokens, render sessions
//! for headsets, and reliable delivery of every change to every connected member.
//!
//! One lock orders everything that happens to the spaces: a change is decided by the core,
//! numbered into each member's [`Outbox`], written to the members' sockets ([`Outlet`]: straight
//! into each socket, no task between) and to SQLite before the next change starts, so all members
//! see the same order and a restart finds what the last answer said. A selection in a space of a
//! thousand connected members holds the lock for its thousand writes and the SQLite write: its
//! `PATCH` is answered after p50 11–12 ms on a 2-core machine (docs/BENCHMARKS.md).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use anyhow::Context;
use axum_extra::headers::{ETag, IfMatch};
use parallax_core::reliable::{Outbox, RESUME_BUFFER, Resume};
use parallax_core::service::CreateSession;
use parallax_core::session::{SessionId, SessionKey, SessionSize};
use parallax_core::space::{
    Change, ConstantChoices, Constants, MEMBER_ID_LEN, Member, MemberId, MemberStatus,
    PropertiesPatch, Role, Space, SpaceError, Template, headset_session,
};
use parallax_core::space_protocol::{SpaceEvent, SpaceServerMessage};
use parallax_core::time::Timestamp;
use parallax_core::{ChangeNumber, ModelId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::base::clock::Clock;
use crate::base::error::AppError;
use crate::base::store::Store;
use crate::catalog::models::Catalog;
use crate::pool::sessions::Sessions;
use crate::spaces::outlet::Outlet;
use crate::telemetry::metrics::Census;

/// How often timeouts are swept when nobody reads or writes.
const SWEEP: Duration = Duration::from_millis(250);
/// Longest space name.
const MAX_NAME: usize = 64;
/// A headset's render session lease, the longest ARR allows; leaving releases it sooner.
const HEADSET_LEASE_MINUTES: u32 = 1440;

/// A member's connected socket.
struct Live {
    connection: u64,
    outlet: Arc<Outlet>,
}

/// A space as stored: the core's state plus who may act as each member.
#[derive(Serialize, Deserialize)]
struct Stored {
    space: Space,
    /// SHA-256 (hex) of each member's token.
    tokens: HashMap<MemberId, String>,
    /// The account each member joined with; a headset's render session is leased on it.
    accounts: HashMap<MemberId, String>,
    /// The account that created the space: it may write the properties without being a member.
    #[serde(default)]
    owner: Option<String>,
}

/// Who writes a space's properties.
#[derive(Debug, Clone, Copy)]
pub enum Writer<'a> {
    /// A member, by its token.
    Member(&'a str),
    /// The account that created the space, acting as its operator.
    Owner(&'a str),
}

/// A member's unacknowledged events. Its own lock, so acks never wait for the space.
type SharedOutbox = Arc<SyncMutex<Outbox<Arc<str>>>>;

fn new_outbox() -> SharedOutbox {
    Arc::new(SyncMutex::new(Outbox::new(RESUME_BUFFER)))
}

fn lock_outbox(outbox: &SharedOutbox) -> std::sync::MutexGuard<'_, Outbox<Arc<str>>> {
    outbox.lock().unwrap_or_else(|p| p.into_inner())
}

struct Entry {
    stored: Stored,
    outboxes: HashMap<MemberId, SharedOutbox>,
    live: HashMap<MemberId, Live>,
}

/// A new member's credentials.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Joined {
    pub id: MemberId,
    /// Shown once: acts as the member (`Parallax-Member` header, WebSocket `hello`).
    pub token: String,
    /// A headset's render session, leased when it joined.
    #[serde(skip)]
    pub render_session: Option<SessionKey>,
}

/// Who is joining.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Joiner {
    pub device: String,
    pub role: Role,
    #[serde(default)]
    pub code: Option<String>,
    /// A headset leases its own render session unless it says `"renderSession": false` (it
    /// renders by itself, or it only follows the space, e.g. a simulated device of a load test).
    #[serde(default = "leases")]
    pub render_session: bool,
}

fn leases() -> bool {
    true
}

/// A member's socket, attached: its welcome is on the way and every event follows.
pub struct Attached {
    pub member: MemberId,
    /// Where this member's acks go.
    pub outbox: SharedOutbox,
    pub connection: u64,
}

pub struct Spaces {
    directory: Mutex<HashMap<String, Entry>>,
    templates: Vec<Template>,
    store: Store,
    clock: Arc<dyn Clock>,
    sessions: Arc<Sessions>,
    /// Selections must name a model that exists.
    catalog: Arc<Catalog>,
    connections: AtomicU64,
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Each refusal has its own error code, so clients can act on it without reading the message.
/// A space's entity tag: its change number, quoted (`"12"`).
pub fn entity_tag(change: ChangeNumber) -> ETag {
    format!("\"{}\"", change.0)
        .parse()
        .expect("a quoted number is an entity tag")
}

fn space_error(error: SpaceError) -> AppError {
    use axum::http::StatusCode;
    let message = error.to_string();
    match error {
        SpaceError::ConstantFixed(field) => AppError::bad_request(message, Some(field)),
        SpaceError::BadConstant(_) => AppError::bad_request(message, Some("constants")),
        SpaceError::Full(_) => AppError::client(StatusCode::CONFLICT, "SpaceFull", message),
        SpaceError::WrongCode => AppError::client(StatusCode::FORBIDDEN, "WrongJoinCode", message),
        SpaceError::NoMember(_) => AppError::not_found(message),
        SpaceError::Stale { .. } => AppError::precondition_failed(message),
        SpaceError::NotATablet => AppError::client(StatusCode::FORBIDDEN, "NotATablet", message),
        SpaceError::NotArbiter { .. } => {
            AppError::client(StatusCode::FORBIDDEN, "NotArbiter", message)
        }
        SpaceError::CustomTooLarge(_) => AppError::bad_request(message, Some("custom")),
        SpaceError::BadReview(_) => AppError::bad_request(message, Some("review")),
        SpaceError::BadPick(_) => AppError::bad_request(message, Some("pick")),
    }
}

/// Space names: 1 to 64 letters, digits, `-` and `_` (they appear in URLs and session ids).
pub fn check_name(name: &str) -> Result<(), AppError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(
            format!("a space name is 1 to {MAX_NAME} letters, digits, '-' or '_'"),
            Some("name"),
        ))
    }
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Entry {
    fn space(&self) -> &Space {
        &self.stored.space
    }

    fn member_by_token(&self, token: &str) -> Option<MemberId> {
        let wanted = hash(token);
        self.stored
            .tokens
            .iter()
            .find(|(_, h)| **h == wanted)
            .map(|(id, _)| id.clone())
            .filter(|id| self.space().members.contains_key(id))
    }

    /// The space as members and operators see it; the join code only for members.
    fn view(&self, for_member: bool) -> Value {
        let space = self.space();
        let mut view = json!({
            "name": space.name,
            "constants": space.constants,
            "properties": space.properties,
            "arbiter": space.arbiter,
            "change": space.change,
            "memberCount": space.members.len(),
        });
        if !space.constants.large {
            let mut members: Vec<&Member> = space.members.values().collect();
            members.sort_by_key(|m| m.joined);
            view["members"] = json!(members);
        }
        if for_member && let Some(code) = &space.join_code {
            view["joinCode"] = json!(code);
        }
        view
    }

    /// Numbers `changes` into every member's outbox and writes them to connected sockets.
    fn publish(&mut self, changes: &[Change]) {
        let change = self.space().change.0;
        let large = self.space().constants.large;
        let mut events = Vec::new();
        for c in changes {
            let event = match c {
                // A large space has no member list (MPSD): who comes and goes is not broadcast,
                // which would cost members squared messages as a thousand connect.
                Change::Roster if large => continue,
                Change::Roster => {
                    let mut members: Vec<Member> = self.space().members.values().cloned().collect();
                    members.sort_by_key(|m| m.joined);
                    SpaceEvent::Roster { members }
                }
                Change::Arbiter(member) => SpaceEvent::Arbiter {
                    member: member.clone(),
                },
                Change::Selection => SpaceEvent::Selection {
                    model: self.space().properties.selected_model.clone(),
                    transform: self.space().properties.transform,
                },
                Change::Custom => SpaceEvent::Custom {
                    custom: self.space().properties.custom.clone(),
                },
                Change::Review => SpaceEvent::Review {
                    review: self.space().properties.review.clone(),
                },
                Change::Pick => match self.space().properties.pick.clone() {
                    Some(pick) => SpaceEvent::Pick { pick },
                    None => continue,
                },
                Change::Removed(member) => {
                    self.outboxes.remove(&member.id);
                    if let Some(live) = self.live.remove(&member.id) {
                        live.outlet
                            .close("you were removed from the space after a timeout".into());
                    }
                    continue;
                }
                Change::Expired => continue,
            };
            let json: Arc<str> = serde_json::to_string(&event)
                .expect("space events always serialize")
                .into();
            events.push(json);
        }
        if events.is_empty() {
            return;
        }
        let published = std::time::Instant::now();
        let Entry {
            stored,
            outboxes,
            live,
        } = self;
        let mut behind = Vec::new();
        for id in stored.space.members.keys() {
            if !outboxes.contains_key(id) {
                outboxes.insert(id.clone(), new_outbox());
            }
            let mut outbox = lock_outbox(&outboxes[id]);
            let mut socket = live.get(id).map(|l| &l.outlet);
            for event in &events {
                let seq = outbox.push(event.clone());
                if let Some(outlet) = socket
                    && !outlet.queue(&frame(seq, change, event), published)
                {
                    // Too slow, or gone: it resumes from its last ack.
                    behind.push(id.clone());
                    socket = None;
                }
            }
            // Written at once, each member's events in one write: a socket that has room takes
            // them now (the connection's task writes to one that has not).
            if let Some(outlet) = socket {
                outlet.flush();
            }
        }
        for id in behind {
            live.remove(&id);
        }
    }
}

/// An event as sent: the member's sequence, the change number, the event.
fn frame(seq: u64, change: u64, event: &str) -> String {
    format!(r#"{{"type":"event","seq":{seq},"change":{change},"event":{event}}}"#)
}

impl Spaces {
    /// Loads templates and stored spaces, and starts the timeout sweeper.
    pub async fn open(
        store: Store,
        clock: Arc<dyn Clock>,
        sessions: Arc<Sessions>,
        catalog: Arc<Catalog>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let mut templates = Vec::new();
        for (name, constants) in store.space_templates().await? {
            let constants: ConstantChoices = serde_json::from_str(&constants)
                .with_context(|| format!("reading the space template {name}"))?;
            templates.push(Template { name, constants });
        }
        let now = clock.now();
        let mut directory = HashMap::new();
        for row in store.spaces().await? {
            let mut stored: Stored =
                serde_json::from_str(&row.body).context("reading a stored space")?;
            if let Some(properties) = &row.properties {
                stored.space.properties =
                    serde_json::from_str(properties).context("reading a space's properties")?;
                stored.space.change = stored.space.change.max(row.change);
            }
            // Nobody is connected after a restart: connected members may resume within their
            // ready timeout.
            let connected: Vec<MemberId> = stored
                .space
                .members
                .values()
                .filter(|m| matches!(m.status, MemberStatus::Active | MemberStatus::Inactive))
                .map(|m| m.id.clone())
                .collect();
            for id in connected {
                let _ = stored.space.handle_status(&id, MemberStatus::Ready, now);
            }
            directory.insert(
                stored.space.name.clone(),
                Entry {
                    stored,
                    outboxes: HashMap::new(),
                    live: HashMap::new(),
                },
            );
        }
        tracing::info!(spaces = directory.len(), "spaces restored");
        let spaces = Arc::new(Self {
            directory: Mutex::new(directory),
            templates,
            store,
            clock,
            sessions,
            catalog,
            connections: AtomicU64::new(0),
        });
        tokio::spawn(spaces.clone().sweep(shutdown));
        Ok(spaces)
    }

    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Locks the directory after applying the timeouts due in space `name`.
    async fn locked(&self, name: &str) -> (MutexGuard<'_, HashMap<String, Entry>>, Timestamp) {
        let now = self.clock.now();
        let mut directory = self.directory.lock().await;
        self.apply_timeouts(&mut directory, name, now).await;
        (directory, now)
    }

    /// Timeouts of one space: removed members lose their render sessions; an expired space is
    /// deleted.
    async fn apply_timeouts(
        &self,
        directory: &mut HashMap<String, Entry>,
        name: &str,
        now: Timestamp,
    ) {
        let Some(entry) = directory.get_mut(name) else {
            return;
        };
        if entry.space().poll_timeout().is_none_or(|at| at > now) {
            return;
        }
        let changes = entry.stored.space.handle_timeout(now);
        if changes.is_empty() {
            return;
        }
        entry.publish(&changes);
        let mut released = Vec::new();
        for change in &changes {
            if let Change::Removed(member) = change {
                tracing::info!(space = name, member = %member.id, "member removed by timeout");
                entry.stored.tokens.remove(&member.id);
                if let Some(account) = entry.stored.accounts.remove(&member.id) {
                    released.push((account, member.render_session.clone()));
                }
            }
        }
        if changes.contains(&Change::Expired) {
            tracing::info!(space = name, "empty space expired");
            directory.remove(name);
            if let Err(e) = self.store.delete_space(name).await {
                tracing::error!("deleting the expired space {name} failed: {e}");
            }
        } else if let Err(e) = self.persist(entry).await {
            tracing::error!("storing space {name} failed: {e:#}");
        }
        for (account, session) in released {
            self.release(&account, session.as_deref()).await;
        }
    }

    async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(SWEEP) => {}
                () = shutdown.cancelled() => return,
            }
            let now = self.clock.now();
            let mut directory = self.directory.lock().await;
            let due: Vec<String> = directory
                .iter()
                .filter(|(_, e)| e.space().poll_timeout().is_some_and(|at| at <= now))
                .map(|(name, _)| name.clone())
                .collect();
            for name in due {
                self.apply_timeouts(&mut directory, &name, now).await;
            }
        }
    }

    async fn persist(&self, entry: &Entry) -> anyhow::Result<()> {
        let body = serde_json::to_string(&entry.stored)?;
        self.store
            .upsert_space(&entry.space().name, &body, entry.space().change)
            .await?;
        Ok(())
    }

    /// Stores only the properties: a write that changed nothing else.
    async fn persist_properties(&self, entry: &Entry) -> anyhow::Result<()> {
        let space = entry.space();
        let properties = serde_json::to_string(&space.properties)?;
        self.store
            .update_space_properties(&space.name, &properties, space.change)
            .await?;
        Ok(())
    }

    async fn release(&self, account: &str, session: Option<&str>) {
        let Some(session) = session.and_then(|s| SessionId::parse(s).ok()) else {
            return;
        };
        let key = SessionKey::new(account, session);
        if let Err(e) = self.sessions.stop(&key).await {
            tracing::warn!(session = %key.id, "releasing a member's render session: {e}");
        }
    }

    /// A headset's own render session: the space's size, or Premium when Standard is full.
    async fn lease(
        &self,
        account: &str,
        space: &str,
        member: &str,
        size: SessionSize,
    ) -> Result<SessionKey, AppError> {
        let id = SessionId::parse(&headset_session(space, member))
            .map_err(|e| AppError::Internal(anyhow::anyhow!("naming a render session: {e}")))?;
        let key = SessionKey::new(account, id);
        let mut sizes = vec![size];
        if size == SessionSize::Standard {
            sizes.push(SessionSize::Premium);
        }
        let mut last = None;
        for size in sizes {
            let request = CreateSession {
                key: key.clone(),
                size,
                max_lease_minutes: HEADSET_LEASE_MINUTES,
                queue: false,
            };
            match self.sessions.create(request).await {
                Ok(_) => return Ok(key),
                Err(e) => last = Some(e),
            }
        }
        // The space's size and the fallback are both full: say so in a headset's terms.
        Err(match last {
            Some(AppError::Client {
                code: "PoolExhausted",
                ..
            })
            | None => AppError::unavailable(
                "PoolExhausted",
                "every render host is in use, so this headset cannot get a render session now; \
                 try again when another headset leaves",
            ),
            Some(other) => other,
        })
    }

    /// Creates space `name` from `template` and makes the creator its first member.
    pub async fn create(
        &self,
        account: &str,
        name: &str,
        template: &str,
        choices: &ConstantChoices,
        creator: Joiner,
    ) -> Result<(Value, Joined), AppError> {
        check_name(name)?;
        let template = self
            .templates
            .iter()
            .find(|t| t.name == template)
            .ok_or_else(|| {
                AppError::bad_request(
                    format!("there is no template named {template}"),
                    Some("template"),
                )
            })?;
        let constants = Constants::resolve(template, choices).map_err(space_error)?;
        let (mut directory, now) = self.locked(name).await;
        if directory.contains_key(name) {
            return Err(AppError::conflict(format!(
                "space {name} exists already; join it with POST /v1/spaces/{name}/members"
            )));
        }
        // Unique among the spaces, so a code alone finds its space.
        let code = loop {
            let code = format!("{:06}", rand::random_range(0..1_000_000u32));
            if !directory
                .values()
                .any(|e| e.space().join_code.as_deref() == Some(code.as_str()))
            {
                break code;
            }
        };
        let space = Space::new(name, constants, Some(code.clone()), now);
        let mut entry = Entry {
            stored: Stored {
                space,
                tokens: HashMap::new(),
                accounts: HashMap::new(),
                owner: Some(account.to_string()),
            },
            outboxes: HashMap::new(),
            live: HashMap::new(),
        };
        let creator = Joiner {
            code: Some(code),
            ..creator
        };
        let joined = self.join_entry(&mut entry, account, creator, now).await?;
        directory.insert(name.to_string(), entry);
        Ok((directory[name].view(true), joined))
    }

    /// Joins space `name`.
    pub async fn join(
        &self,
        account: &str,
        name: &str,
        joiner: Joiner,
    ) -> Result<(Value, Joined), AppError> {
        let (mut directory, now) = self.locked(name).await;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let joined = self.join_entry(entry, account, joiner, now).await?;
        Ok((entry.view(true), joined))
    }

    async fn join_entry(
        &self,
        entry: &mut Entry,
        account: &str,
        joiner: Joiner,
        now: Timestamp,
    ) -> Result<Joined, AppError> {
        if joiner.device.trim().is_empty() || joiner.device.len() > 128 {
            return Err(AppError::bad_request(
                "device is the device's name, 1 to 128 characters",
                Some("device"),
            ));
        }
        let id: MemberId = uuid::Uuid::new_v4().simple().to_string()[..MEMBER_ID_LEN].to_string();
        // Try on a copy first: a headset's lease is only taken if the join will succeed.
        let mut trial = entry.stored.space.clone();
        trial
            .handle_join(
                id.clone(),
                joiner.role,
                joiner.device.clone(),
                joiner.code.as_deref(),
                now,
            )
            .map_err(space_error)?;
        let render_session = match joiner.role {
            Role::Headset if joiner.render_session => Some(
                self.lease(
                    account,
                    &entry.space().name,
                    &id,
                    entry.space().constants.render_size,
                )
                .await?,
            ),
            Role::Headset | Role::Tablet => None,
        };
        let mut changes = entry
            .stored
            .space
            .handle_join(
                id.clone(),
                joiner.role,
                joiner.device,
                joiner.code.as_deref(),
                now,
            )
            .map_err(space_error)?;
        if let Some(key) = &render_session {
            changes.extend(
                entry
                    .stored
                    .space
                    .handle_render_session(&id, Some(key.id.to_string()))
                    .map_err(space_error)?,
            );
        }
        let token = random_token();
        entry.stored.tokens.insert(id.clone(), hash(&token));
        entry
            .stored
            .accounts
            .insert(id.clone(), account.to_string());
        entry.publish(&changes);
        self.persist(entry).await?;
        Ok(Joined {
            id,
            token,
            render_session,
        })
    }

    /// The space, as a member (with its token) or an operator sees it.
    pub async fn get(&self, name: &str, member_token: Option<&str>) -> Result<Value, AppError> {
        let (directory, _) = self.locked(name).await;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let member = member_token.and_then(|t| entry.member_by_token(t));
        let mut view = entry.view(member.is_some());
        if let Some(id) = member {
            // Which member the caller is: a client can tell its membership still holds.
            view["member"] = json!(id);
        }
        Ok(view)
    }

    /// Each member's render session, in join order.
    pub async fn render_sessions(
        &self,
        name: &str,
    ) -> Result<Vec<(MemberId, SessionKey)>, AppError> {
        let (directory, _) = self.locked(name).await;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let mut members: Vec<&Member> = entry.space().members.values().collect();
        members.sort_by_key(|m| m.joined);
        Ok(members
            .into_iter()
            .filter_map(|m| {
                let session = SessionId::parse(m.render_session.as_deref()?).ok()?;
                let account = entry.stored.accounts.get(&m.id)?;
                Some((m.id.clone(), SessionKey::new(account, session)))
            })
            .collect())
    }

    /// A member writes the properties, if the space's entity tag passes `if_match`.
    pub async fn write(
        &self,
        name: &str,
        writer: Writer<'_>,
        patch: PropertiesPatch,
        if_match: Option<IfMatch>,
    ) -> Result<Value, AppError> {
        if let Some(Some(model)) = &patch.selected_model {
            // Its headsets load the model on the owner's account: only what that account sees.
            let owner = self.owner(name).await?;
            self.catalog
                .get_ready(model, owner.as_deref().unwrap_or_default())
                .await?;
        }
        let (mut directory, _) = self.locked(name).await;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        // Entity tags are opaque (RFC 9110 §8.8.3): any tag but the current one fails, whatever it
        // looks like. Passed, the write is based on the current change number.
        let current = entry.stored.space.change;
        let if_match = match if_match {
            Some(tags) if !tags.precondition_passes(&entity_tag(current)) => {
                return Err(space_error(SpaceError::Stale { current }));
            }
            Some(_) => Some(current),
            None => None,
        };
        let changes = match writer {
            Writer::Member(token) => {
                let member = entry.member_by_token(token).ok_or_else(not_a_member)?;
                entry.stored.space.handle_write(&member, patch, if_match)
            }
            Writer::Owner(account) if entry.stored.owner.as_deref() == Some(account) => {
                entry.stored.space.handle_owner_write(patch, if_match)
            }
            Writer::Owner(_) => {
                return Err(AppError::forbidden(
                    "only a member (Parallax-Member header) or the space's owner may write it",
                ));
            }
        }
        .map_err(space_error)?;
        if !changes.is_empty() {
            entry.publish(&changes);
            if changes.iter().all(|c| {
                matches!(
                    c,
                    Change::Selection | Change::Custom | Change::Review | Change::Pick
                )
            }) {
                self.persist_properties(entry).await?;
            } else {
                self.persist(entry).await?;
            }
        }
        Ok(entry.view(true))
    }

    /// The member with `member_token` leaves; its render session is released.
    pub async fn leave(&self, name: &str, member_token: &str) -> Result<(), AppError> {
        let (mut directory, now) = self.locked(name).await;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let id = entry
            .member_by_token(member_token)
            .ok_or_else(not_a_member)?;
        let session = entry.space().members[&id].render_session.clone();
        let changes = entry
            .stored
            .space
            .handle_leave(&id, now)
            .map_err(space_error)?;
        entry.stored.tokens.remove(&id);
        let account = entry.stored.accounts.remove(&id);
        entry.outboxes.remove(&id);
        if let Some(live) = entry.live.remove(&id) {
            live.outlet.close("you left the space".into());
        }
        entry.publish(&changes);
        self.persist(entry).await?;
        drop(directory);
        if let Some(account) = account {
            self.release(&account, session.as_deref()).await;
        }
        Ok(())
    }

    /// The spaces where a member of `account` is the device `device`.
    pub async fn of_device(&self, account: &str, device: &str) -> Vec<Value> {
        let directory = self.directory.lock().await;
        let mut found: Vec<Value> = directory
            .values()
            .flat_map(|entry| {
                entry
                    .space()
                    .members
                    .values()
                    // Only members that joined with the caller's account: a device name is no
                    // secret, and other accounts' rooms are none of its business.
                    .filter(|m| {
                        m.device == device
                            && entry.stored.accounts.get(&m.id).map(String::as_str) == Some(account)
                    })
                    .map(|m| {
                        json!({
                            "name": entry.space().name,
                            "memberId": m.id,
                            "role": m.role,
                            "status": m.status,
                            "change": entry.space().change,
                        })
                    })
            })
            .collect();
        found.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        found
    }

    /// How many spaces, members (by status) and connected sockets there are.
    pub async fn census(&self) -> Census {
        let directory = self.directory.lock().await;
        let mut census = Census {
            spaces: directory.len(),
            ..Census::default()
        };
        for entry in directory.values() {
            census.sockets += entry.live.len();
            for member in entry.space().members.values() {
                let status = serde_json::to_value(member.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *census.members.entry(status).or_insert(0) += 1;
            }
        }
        census
    }

    /// A space that shows `model` now, if any.
    /// The account that owns space `name`, if anyone does.
    pub async fn owner(&self, name: &str) -> Result<Option<String>, AppError> {
        let directory = self.directory.lock().await;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        Ok(entry.stored.owner.clone())
    }

    pub async fn showing(&self, model: &ModelId) -> Option<String> {
        let directory = self.directory.lock().await;
        directory.values().find_map(|entry| {
            let space = entry.space();
            (space.properties.selected_model.as_ref() == Some(model)).then(|| space.name.clone())
        })
    }

    /// The space whose join code is `code`, and the account that owns it.
    pub async fn by_code(&self, code: &str) -> Option<(String, String)> {
        let directory = self.directory.lock().await;
        directory.values().find_map(|entry| {
            let space = entry.space();
            (space.join_code.as_deref() == Some(code))
                .then(|| Some((space.name.clone(), entry.stored.owner.clone()?)))
                .flatten()
        })
    }

    /// The spaces `account` created, as its console lists them (with their join codes).
    pub async fn owned_by(&self, account: &str) -> Vec<Value> {
        let directory = self.directory.lock().await;
        let mut owned: Vec<Value> = directory
            .values()
            .filter(|entry| entry.stored.owner.as_deref() == Some(account))
            .map(|entry| {
                let mut view = entry.view(true);
                // The list shows counts; the space's own page shows who.
                if let Some(fields) = view.as_object_mut() {
                    fields.remove("members");
                }
                view
            })
            .collect();
        owned.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
        owned
    }

    /// Connects a member's socket: it gets the welcome (a snapshot, or the missed events when
    /// resuming from `last_seq`) and every event after it. The member becomes active.
    pub async fn attach(
        &self,
        name: &str,
        member_token: &str,
        last_seq: Option<u64>,
        outlet: Arc<Outlet>,
    ) -> Result<Attached, String> {
        let (mut directory, now) = self.locked(name).await;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| format!("there is no space named {name}"))?;
        let member = entry
            .member_by_token(member_token)
            .ok_or("this member token is not in the space (left, or removed after a timeout)")?;
        let change = entry.space().change.0;
        let snapshot = entry.view(true);
        let shared = entry
            .outboxes
            .entry(member.clone())
            .or_insert_with(new_outbox)
            .clone();
        let first = {
            let mut outbox = lock_outbox(&shared);
            let resumed = match last_seq {
                Some(seen) => outbox.resume(seen),
                None => Resume::Snapshot,
            };
            let mut first = Vec::new();
            match resumed {
                Resume::Replay(missed) => {
                    first.push(
                        SpaceServerMessage::Welcome {
                            member: member.clone(),
                            seq: last_seq.unwrap_or_default(),
                            change,
                            space: None,
                        }
                        .to_json(),
                    );
                    // Replayed events carry the current change number (the outbox keeps only the
                    // event); followers use it only to drop stale updates.
                    first.extend(missed.iter().map(|(seq, event)| frame(*seq, change, event)));
                }
                Resume::Snapshot => {
                    outbox.snapshot_sent();
                    first.push(
                        SpaceServerMessage::Welcome {
                            member: member.clone(),
                            seq: outbox.last(),
                            change,
                            space: Some(snapshot),
                        }
                        .to_json(),
                    );
                }
            }
            first
        };
        // Queued under the space's lock: the welcome goes before any event published next.
        for text in &first {
            outlet.send(text);
        }
        let connection = self.connections.fetch_add(1, Ordering::Relaxed);
        if let Some(old) = entry
            .live
            .insert(member.clone(), Live { connection, outlet })
        {
            old.outlet
                .close("the member connected again elsewhere".into());
        }
        let changes = entry
            .stored
            .space
            .handle_status(&member, MemberStatus::Active, now)
            .map_err(|e| e.to_string())?;
        if !changes.is_empty() {
            entry.publish(&changes);
            if let Err(e) = self.persist(entry).await {
                tracing::error!("storing space {name} failed: {e:#}");
            }
        }
        Ok(Attached {
            member,
            outbox: shared,
            connection,
        })
    }

    /// The member says it is active or inactive.
    pub async fn set_status(
        &self,
        name: &str,
        member: &str,
        status: MemberStatus,
    ) -> Result<(), String> {
        if !matches!(status, MemberStatus::Active | MemberStatus::Inactive) {
            return Err("a member may only say it is active or inactive".into());
        }
        let (mut directory, now) = self.locked(name).await;
        let entry = directory.get_mut(name).ok_or("the space is gone")?;
        let changes = entry
            .stored
            .space
            .handle_status(member, status, now)
            .map_err(|e| e.to_string())?;
        if !changes.is_empty() {
            entry.publish(&changes);
            if let Err(e) = self.persist(entry).await {
                tracing::error!("storing space {name} failed: {e:#}");
            }
        }
        Ok(())
    }

    /// The member's socket closed: it is `ready` (may resume) unless a newer socket took over.
    pub async fn detach(&self, name: &str, member: &str, connection: u64) {
        let (mut directory, now) = self.locked(name).await;
        let Some(entry) = directory.get_mut(name) else {
            return;
        };
        if entry
            .live
            .get(member)
            .is_some_and(|l| l.connection == connection)
        {
            entry.live.remove(member);
        } else if entry.live.contains_key(member) {
            return;
        }
        if let Ok(changes) = entry
            .stored
            .space
            .handle_status(member, MemberStatus::Ready, now)
            && !changes.is_empty()
        {
            entry.publish(&changes);
            if let Err(e) = self.persist(entry).await {
                tracing::error!("storing space {name} failed: {e:#}");
            }
        }
    }
}

fn not_a_member() -> AppError {
    AppError::forbidden(
        "send your member token (from the join) in the Parallax-Member header; this one is not a \
         member of the space",
    )
}
