//! Shared spaces: the core's [`Space`] with its IO — SQLite rows, member tokens, render sessions
//! for headsets, and reliable delivery of every change to every connected member.
//!
//! One lock orders everything that happens to the spaces: a change is decided by the core,
//! numbered into each member's [`Outbox`], written to the members' sockets ([`Outlet`]: straight
//! into each socket, no task between) and to SQLite before the next change starts, so all members
//! see the same order and a restart finds what the last answer said. A selection in a space of a
//! thousand connected members holds the lock for its thousand writes and the SQLite write: its
//! `PATCH` is answered after p50 11–12 ms on a 2-core machine (docs/BENCHMARKS.md).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex};
use std::time::Duration;

use anyhow::Context;
use axum_extra::headers::{ETag, IfMatch};
use parallax_core::api::{Membership, SpaceView};
use parallax_core::reliable::{Outbox, RESUME_BUFFER, Resume};
use parallax_core::service::CreateSession;
use parallax_core::session::{SessionId, SessionKey, SessionSize};
use parallax_core::space::{
    Change, ConstantChoices, Constants, MEMBER_ID_LEN, Member, MemberId, MemberStatus,
    PropertiesPatch, Role, Space, SpaceError, Template, headset_session, join_code,
    normalize_join_code,
};
use parallax_core::space_protocol::{SpaceEvent, SpaceServerMessage};
use parallax_core::time::Timestamp;
use parallax_core::{ChangeNumber, ModelId};
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, MutexGuard};
use tokio_util::sync::CancellationToken;

use crate::accounts::quotas::Quotas;
use crate::base::clock::Clock;
use crate::base::error::AppError;
use crate::base::store::{
    LockedSpace, LoggedEvent, SpaceHolder, SpaceWrite, Store, StoredSpace, Transaction,
};
use crate::catalog::models::Catalog;
use crate::pool::sessions::Sessions;
use crate::replication::{
    CATCH_UP, Close, HEARTBEAT, Holder, PresenceNews, Published, Replication, SILENCE,
};
use crate::spaces::outlet::Outlet;
use crate::spaces::presence::Presences;
use crate::telemetry::metrics::Census;

/// How often timeouts are swept when nobody reads or writes.
const SWEEP: Duration = Duration::from_millis(250);
/// Longest space name.
const MAX_NAME: usize = 64;
/// A headset's render session lease, renewed while the headset is a member: leaving releases
/// it at once, and were that missed (a crash, a lost connection to the pool), the lease runs
/// out this soon after the headset's membership ended, not a day later.
const HEADSET_LEASE_MINUTES: u32 = 10;
/// How often members' leases are looked at (coordinator time); one with less than half its
/// time left is renewed.
const RENEW: Duration = Duration::from_secs(60);

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
    /// Replicas: the rest is theirs ([`crate::spaces::replicas`]).
    log: Option<Log>,
}

/// A replicated space's place in its log.
#[derive(Default)]
struct Log {
    /// The sequence number of the last event in the database, as last read or written.
    seq: u64,
    /// The last event written to this replica's members.
    delivered: u64,
    /// The row's version the cached space is known to be; `None` while a change is being made
    /// (until it commits), or after one that did not: read again.
    version: Option<u64>,
    /// The row's version as of the current change's lock, then as written by it.
    locked: u64,
    /// Not in the database yet: inserted by the next write.
    new: bool,
    /// The events of the change being made, numbered when written.
    pending: Vec<Arc<str>>,
    /// Written, delivered once committed.
    unsent: Vec<LoggedEvent>,
    /// Sockets to close on every replica once committed.
    closes: Vec<Close>,
    /// Which replica holds each connected member's socket (rows of their own, so a member
    /// moving to another replica does not rewrite the space).
    holders: HashMap<MemberId, Holder>,
    /// Holders changed by the change being made, written with it.
    held: Vec<(MemberId, Option<Holder>)>,
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
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Joiner {
    /// The device's name, as it chose it: 1 to 128 characters, no control characters, no space
    /// at either end. A restarted device finds its spaces by it.
    #[schema(
        pattern = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
        max_length = 128,
        example = "Headset 1"
    )]
    pub device: String,
    pub role: Role,
    /// The space's join code: a private space asks for it (403 without it or with another).
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
    /// Its device's name and role.
    pub device: String,
    pub role: Role,
    /// Where this member's acks go.
    pub outbox: SharedOutbox,
    pub connection: u64,
}

pub struct Spaces {
    directory: Mutex<HashMap<String, Entry>>,
    /// Where members' wearers are and point: ephemeral, beside the spaces' state.
    pub presence: Arc<Presences>,
    templates: Vec<Template>,
    store: Store,
    clock: Arc<dyn Clock>,
    sessions: Arc<Sessions>,
    /// Selections must name a model that exists.
    catalog: Arc<Catalog>,
    connections: AtomicU64,
    /// Replicas: this one's name and its NATS connection; `None` for the one coordinator.
    replication: Option<Arc<Replication>>,
    /// How many spaces each account may have open.
    quotas: Arc<Quotas>,
    /// When members' leases were last looked at.
    renewed: std::sync::Mutex<Option<Timestamp>>,
}

/// Replicas: puts what space `stored`'s row holds (its last event `seq`) in the cache, and
/// returns its entry. A space new here starts delivering after `seq`; one whose sequence went
/// back was deleted and made again: the sockets here belonged to the old one.
fn cache(
    directory: &mut HashMap<String, Entry>,
    stored: Stored,
    seq: u64,
    version: u64,
) -> &mut Entry {
    use std::collections::hash_map::Entry as Slot;
    let entry = match directory.entry(stored.space.name.clone()) {
        Slot::Occupied(cached) => {
            let entry = cached.into_mut();
            entry.stored = stored;
            entry
        }
        Slot::Vacant(vacant) => vacant.insert(Entry::new(
            stored,
            Some(Log {
                delivered: seq,
                ..Log::default()
            }),
        )),
    };
    let log = entry.log.get_or_insert_with(Log::default);
    log.seq = seq;
    log.version = Some(version);
    if log.delivered > seq {
        log.delivered = seq;
        entry.close_all("the space is gone");
    }
    entry
}

/// The cache's holders from the store's rows.
fn held_by(holders: Vec<SpaceHolder>) -> HashMap<MemberId, Holder> {
    holders
        .into_iter()
        .map(|h| {
            let holder = Holder {
                replica: h.replica,
                connection: h.connection,
            };
            (h.member, holder)
        })
        .collect()
}

/// Holder changes as the store writes them.
fn stored_holders(held: Vec<(MemberId, Option<Holder>)>) -> Vec<(String, Option<SpaceHolder>)> {
    held.into_iter()
        .map(|(member, holder)| {
            let holder = holder.map(|h| SpaceHolder {
                member: member.clone(),
                replica: h.replica,
                connection: h.connection,
            });
            (member, holder)
        })
        .collect()
}

/// A stored space: its body, with its properties if they were written after it.
fn read_stored(row: &StoredSpace) -> anyhow::Result<Stored> {
    let mut stored: Stored = serde_json::from_str(&row.body).context("reading a stored space")?;
    if let Some(properties) = &row.properties {
        stored.space.properties =
            serde_json::from_str(properties).context("reading a space's properties")?;
        stored.space.change = stored.space.change.max(row.change);
    }
    Ok(stored)
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
    // 422: well-formed, as the API document states a request's form, but against a rule it
    // cannot state (a size in bytes, a vector's length, a field another one bounds).
    match error {
        SpaceError::ConstantFixed(field) => {
            AppError::client(StatusCode::CONFLICT, "ConstantFixed", message).with_target(field)
        }
        SpaceError::BadConstant(_) => AppError::unprocessable(message, Some("constants")),
        SpaceError::Full(_) => AppError::client(StatusCode::CONFLICT, "SpaceFull", message),
        SpaceError::WrongCode => AppError::client(StatusCode::FORBIDDEN, "WrongJoinCode", message),
        SpaceError::NoMember(_) => AppError::not_found(message),
        SpaceError::Stale { .. } => AppError::precondition_failed(message),
        SpaceError::NotATablet => AppError::client(StatusCode::FORBIDDEN, "NotATablet", message),
        SpaceError::NotArbiter { .. } => {
            AppError::client(StatusCode::FORBIDDEN, "NotArbiter", message)
        }
        SpaceError::CustomTooLarge(_) => AppError::unprocessable(message, Some("custom")),
        SpaceError::BadReview(_) => AppError::unprocessable(message, Some("review")),
        SpaceError::BadPick(_) => AppError::unprocessable(message, Some("pick")),
        SpaceError::BadRoom(_) => AppError::unprocessable(message, Some("room")),
        SpaceError::BadPlacement(_) => AppError::unprocessable(message, Some("transform")),
    }
}

/// Why `device` is not a device's name, if it is not: 1 to 128 characters, none a control
/// character, no white space at either end (the pattern the API document states).
pub fn device_problem(device: &str) -> Option<&'static str> {
    let control = |c: char| c <= '\u{1f}' || c == '\u{7f}';
    let chars = device.chars().count();
    let ends_blank =
        device.starts_with(char::is_whitespace) || device.ends_with(char::is_whitespace);
    (chars == 0 || chars > 128 || device.chars().any(control) || ends_blank).then_some(
        "device is the device's name: 1 to 128 characters, no control characters, no space at \
         either end",
    )
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
    fn new(stored: Stored, log: Option<Log>) -> Self {
        Self {
            stored,
            outboxes: HashMap::new(),
            live: HashMap::new(),
            log,
        }
    }

    fn space(&self) -> &Space {
        &self.stored.space
    }

    /// Replicas: who holds member `id`'s socket.
    fn holder(&self, id: &str) -> Option<&Holder> {
        self.log.as_ref()?.holders.get(id)
    }

    /// Replicas: `holder` holds member `id`'s socket now (`None`: nobody); written with the
    /// change.
    fn hold(&mut self, id: &str, holder: Option<Holder>) {
        let Some(log) = &mut self.log else {
            return;
        };
        let changed = match &holder {
            Some(holder) => {
                log.holders.insert(id.to_string(), holder.clone()).as_ref() != Some(holder)
            }
            None => log.holders.remove(id).is_some(),
        };
        if changed {
            log.held.push((id.to_string(), holder));
        }
    }

    /// Closes every member's socket here, for `reason`.
    fn close_all(&mut self, reason: &str) {
        for (_, live) in self.live.drain() {
            live.outlet.close(reason.into());
        }
    }

    /// Replicas: writes the logged `events` that follow the last delivered one to the members
    /// connected here. False if they do not follow on: something between is missing.
    fn deliver(&mut self, events: &[LoggedEvent]) -> bool {
        let Some(log) = &mut self.log else {
            return true;
        };
        let published = std::time::Instant::now();
        for event in events {
            if event.seq <= log.delivered {
                continue; // Delivered already: a duplicate.
            }
            if event.seq != log.delivered + 1 {
                return false;
            }
            log.delivered = event.seq;
            let text = frame(event.seq, event.change, &event.event);
            // One too slow, or gone, resumes from its last sequence.
            self.live
                .retain(|_, live| live.outlet.queue(&text, published));
        }
        for live in self.live.values() {
            live.outlet.flush();
        }
        true
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
    fn view(&self, for_member: bool) -> SpaceView {
        let space = self.space();
        let members = (!space.constants.large).then(|| {
            let mut members: Vec<Member> = space.members.values().cloned().collect();
            members.sort_by_key(|m| m.joined);
            members
        });
        SpaceView {
            name: space.name.clone(),
            constants: space.constants.clone(),
            properties: space.properties.clone(),
            arbiter: space.arbiter.clone(),
            change: space.change,
            member_count: space.members.len(),
            members,
            join_code: space.join_code.clone().filter(|_| for_member),
            member: None,
        }
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
                Change::Room => SpaceEvent::Room {
                    room: self.space().properties.room,
                },
                Change::Removed(member) => {
                    let reason = "you were removed from the space after a timeout";
                    self.outboxes.remove(&member.id);
                    self.hold(&member.id, None);
                    if let Some(live) = self.live.remove(&member.id) {
                        live.outlet.close(reason.into());
                    }
                    if let Some(log) = &mut self.log {
                        log.closes.push(Close {
                            member: member.id.clone(),
                            reason: reason.into(),
                            keep: None,
                        });
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
        if let Some(log) = &mut self.log {
            // Numbered and delivered once committed.
            log.pending.extend(events);
            return;
        }
        let published = std::time::Instant::now();
        let Entry {
            stored,
            outboxes,
            live,
            ..
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
    /// Loads templates and stored spaces, and starts the timeout sweeper. With `replication`,
    /// spaces are read from the database as they are used and shared with the other replicas.
    pub async fn open(
        store: Store,
        clock: Arc<dyn Clock>,
        sessions: Arc<Sessions>,
        catalog: Arc<Catalog>,
        replication: Option<Arc<Replication>>,
        quotas: Arc<Quotas>,
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
        if replication.is_none() {
            for row in store.spaces().await? {
                let mut stored = read_stored(&row)?;
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
                directory.insert(stored.space.name.clone(), Entry::new(stored, None));
            }
            tracing::info!(spaces = directory.len(), "spaces restored");
        }
        let subscriber = match &replication {
            Some(replication) => Some(replication.subscribe().await?),
            None => None,
        };
        let spaces = Arc::new(Self {
            directory: Mutex::new(directory),
            templates,
            store,
            clock,
            sessions,
            catalog,
            connections: AtomicU64::new(0),
            replication,
            quotas,
            renewed: std::sync::Mutex::new(None),
            presence: Arc::default(),
        });
        match subscriber {
            Some(events) => {
                if let Some(replication) = &spaces.replication {
                    let heard = replication.subscribe_presence().await?;
                    spaces.share_presence(replication.clone(), heard, shutdown.clone());
                }
                tokio::spawn(spaces.clone().listen(events, shutdown.clone()));
                tokio::spawn(spaces.clone().tend(shutdown));
            }
            None => {
                tokio::spawn(spaces.clone().sweep(shutdown));
            }
        }
        Ok(spaces)
    }

    pub fn templates(&self) -> &[Template] {
        &self.templates
    }

    /// Locks the directory after applying the timeouts due in space `name`. A replica also locks
    /// the space's row, reads it and delivers what its members missed; what the caller changes
    /// is written in the transaction returned, and [`Spaces::commit`] commits and publishes it.
    async fn locked(
        &self,
        name: &str,
    ) -> Result<
        (
            MutexGuard<'_, HashMap<String, Entry>>,
            Timestamp,
            Option<Transaction>,
        ),
        AppError,
    > {
        let now = self.clock.now();
        let mut directory = self.directory.lock().await;
        let mut transaction = None;
        if self.replication.is_some() {
            let mut begun = self.store.begin().await?;
            let known = directory
                .get(name)
                .and_then(|entry| entry.log.as_ref())
                .and_then(|log| log.version);
            let row = self.store.lock_space(&mut begun, name, known).await?;
            self.refresh(&mut directory, name, row, &mut begun).await?;
            transaction = Some(begun);
        }
        self.apply_timeouts(&mut directory, name, now, &mut transaction)
            .await;
        Ok((directory, now, transaction))
    }

    /// Replicas: makes the cached space `name` what its locked row says, and delivers to the
    /// members here what they have not had yet.
    async fn refresh(
        &self,
        directory: &mut HashMap<String, Entry>,
        name: &str,
        row: LockedSpace,
        transaction: &mut Transaction,
    ) -> anyhow::Result<()> {
        let entry = match row {
            LockedSpace::Gone => {
                if let Some(mut gone) = directory.remove(name) {
                    gone.close_all("the space is gone");
                }
                return Ok(());
            }
            LockedSpace::Unchanged { seq } => {
                let entry = directory
                    .get_mut(name)
                    .context("a space unchanged since it was cached is in the cache")?;
                if let Some(log) = &mut entry.log {
                    log.seq = seq;
                }
                entry
            }
            LockedSpace::Read(row) => {
                let holders = self.store.space_holders(transaction, name).await?;
                let entry = cache(directory, read_stored(&row)?, row.seq, row.version);
                if let Some(log) = &mut entry.log {
                    log.holders = held_by(holders);
                }
                entry
            }
        };
        let Some(log) = &mut entry.log else {
            return Ok(());
        };
        // Until this change commits, the cache is not known to be the row.
        log.locked = log.version.take().unwrap_or_default();
        // Nothing of a change that did not commit is left.
        log.new = false;
        log.pending.clear();
        log.unsent.clear();
        log.closes.clear();
        log.held.clear();
        let seq = log.seq;
        self.catch_up(entry, seq).await;
        Ok(())
    }

    /// Replicas: delivers the logged events up to `through` that the members here have not had.
    async fn catch_up(&self, entry: &mut Entry, through: u64) {
        let Some(log) = &mut entry.log else {
            return;
        };
        if log.delivered >= through {
            return;
        }
        if entry.live.is_empty() {
            log.delivered = through;
            return;
        }
        let after = log.delivered;
        let name = entry.space().name.clone();
        let events = match self.store.space_events(&name, after, through).await {
            Ok(events) => events,
            Err(e) => {
                // Tried again at the next catch-up.
                tracing::warn!(space = name, "reading the space's log: {e}");
                return;
            }
        };
        let complete = events.last().is_some_and(|e| e.seq == through);
        if !(entry.deliver(&events) && complete) {
            // The log no longer keeps them: the members resume and get a snapshot.
            tracing::warn!(
                space = name,
                after,
                through,
                "events missed are no longer logged"
            );
            entry.close_all("this server missed events the log no longer keeps: resume");
            if let Some(log) = &mut entry.log {
                log.delivered = through;
            }
        }
    }

    /// Replicas: commits what the caller changed in space `name`, then delivers its events here
    /// and publishes them to the other replicas.
    async fn commit(
        &self,
        directory: &mut HashMap<String, Entry>,
        name: &str,
        transaction: Option<Transaction>,
    ) -> Result<(), AppError> {
        let (Some(transaction), Some(replication)) = (transaction, &self.replication) else {
            return Ok(());
        };
        transaction.commit().await?;
        let Some(entry) = directory.get_mut(name) else {
            return Ok(());
        };
        let Some(log) = &mut entry.log else {
            return Ok(());
        };
        log.version = Some(log.locked);
        let events = std::mem::take(&mut log.unsent);
        let closes = std::mem::take(&mut log.closes);
        entry.deliver(&events);
        if !events.is_empty() || !closes.is_empty() {
            replication.publish(name, &events, closes).await;
        }
        Ok(())
    }

    /// Replicas: what another replica committed, delivered to the members here in order.
    async fn on_published(&self, published: Published) {
        let Some(replication) = &self.replication else {
            return;
        };
        if published.replica == replication.id {
            return;
        }
        let mut directory = self.directory.lock().await;
        let Some(entry) = directory.get_mut(&published.space) else {
            return;
        };
        for close in &published.closes {
            let kept = close.keep.as_ref().is_some_and(|holder| {
                holder.replica == replication.id
                    && entry
                        .live
                        .get(&close.member)
                        .is_some_and(|live| live.connection == holder.connection)
            });
            if !kept && let Some(live) = entry.live.remove(&close.member) {
                live.outlet.close(close.reason.clone());
            }
        }
        let events = published.logged();
        let delivered = entry.log.as_ref().map_or(0, |log| log.delivered);
        if let Some(first) = events.first()
            && first.seq > delivered + 1
        {
            self.catch_up(entry, first.seq - 1).await;
        }
        entry.deliver(&events);
    }

    /// Replicas: tells the other replicas where this one's members are, and merges what they
    /// say (`heard`) about theirs, until `shutdown`.
    fn share_presence(
        &self,
        replication: Arc<Replication>,
        mut heard: async_nats::Subscriber,
        shutdown: CancellationToken,
    ) {
        let (news, mut outbound) =
            tokio::sync::mpsc::channel(crate::spaces::presence::NEWS_BACKLOG);
        self.presence.tell(news);
        let publisher = replication.clone();
        tokio::spawn(async move {
            while let Some((space, members, gone)) = outbound.recv().await {
                let news = PresenceNews {
                    space,
                    replica: publisher.id.clone(),
                    members,
                    gone,
                };
                publisher.publish_presence(&news).await;
            }
        });
        let presence = self.presence.clone();
        tokio::spawn(async move {
            while let Some(message) = replication
                .next_message::<PresenceNews>(&mut heard, &shutdown)
                .await
            {
                match message {
                    Ok(news) if news.replica != replication.id => {
                        presence.merge(&news.space, news.members, news.gone);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("presence on NATS that is not: {e}"),
                }
            }
        });
    }

    /// Replicas: the other replicas' events, as NATS brings them.
    async fn listen(
        self: Arc<Self>,
        mut subscriber: async_nats::Subscriber,
        shutdown: CancellationToken,
    ) {
        let Some(replication) = self.replication.clone() else {
            return;
        };
        while let Some(message) = replication
            .next_message::<Published>(&mut subscriber, &shutdown)
            .await
        {
            match message {
                Ok(published) => self.on_published(published).await,
                Err(e) => tracing::warn!("a space message on NATS that is not one: {e}"),
            }
        }
        if !shutdown.is_cancelled() {
            tracing::error!("the NATS subscription ended: spaces follow the log only");
        }
    }

    /// Replicas: timeouts due, the heartbeat, what NATS lost, and the members of replicas gone
    /// silent.
    async fn tend(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(replication) = self.replication.clone() else {
            return;
        };
        let mut sweep = tokio::time::interval(SWEEP);
        let mut beat = tokio::time::interval(HEARTBEAT.min(CATCH_UP));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = sweep.tick() => {
                    self.sweep_due().await;
                    self.renew_leases(self.clock.now()).await;
                }
                _ = beat.tick() => {
                    let now = self.clock.now();
                    match self.store.replica_seen(&replication.id, now).await {
                        Ok(true) => {}
                        // The first heartbeat; or this replica was cut off so long that the
                        // others made its members ready: they are here, active.
                        Ok(false) => self.reclaim(&replication).await,
                        Err(e) => tracing::warn!("saying this replica is alive: {e}"),
                    }
                    self.catch_up_all().await;
                    self.adopt_silent(&replication, now).await;
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Replicas: applies the timeouts due in any space; under the row's lock, each is applied
    /// by one replica, however many sweep.
    async fn sweep_due(&self) {
        let due = match self.store.spaces_due(self.clock.now()).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!("reading the spaces with timeouts due: {e}");
                return;
            }
        };
        for name in due {
            let result = match self.locked(&name).await {
                Ok((mut directory, _, transaction)) => {
                    self.commit(&mut directory, &name, transaction).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                tracing::warn!(space = name, "applying timeouts: {e}");
            }
        }
    }

    /// Replicas: delivers what NATS did not bring, from the log; closes the sockets of spaces
    /// deleted elsewhere.
    async fn catch_up_all(&self) {
        let seqs: HashMap<String, u64> = match self.store.space_seqs().await {
            Ok(seqs) => seqs.into_iter().collect(),
            Err(e) => {
                tracing::warn!("reading the spaces' sequence numbers: {e}");
                return;
            }
        };
        let mut directory = self.directory.lock().await;
        let mut gone = Vec::new();
        for (name, entry) in directory.iter_mut() {
            match seqs.get(name) {
                Some(seq) => self.catch_up(entry, *seq).await,
                None => gone.push(name.clone()),
            }
        }
        for name in gone {
            if let Some(mut entry) = directory.remove(&name) {
                entry.close_all("the space is gone");
            }
        }
    }

    /// Replicas: the members whose sockets a silent replica held become `ready`, so they time
    /// out unless they resume (on any replica).
    async fn adopt_silent(&self, replication: &Replication, now: Timestamp) {
        let silent = match self.store.silent_replicas(now.before(SILENCE)).await {
            Ok(silent) => silent,
            Err(e) => {
                tracing::warn!("reading the replicas: {e}");
                return;
            }
        };
        for replica in silent.into_iter().filter(|r| *r != replication.id) {
            let held = match self.store.spaces_held_by(&replica).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::warn!("reading the silent replica's members: {e}");
                    return;
                }
            };
            tracing::info!(
                replica,
                spaces = held.len(),
                "a replica went silent: its members are ready"
            );
            let mut done = true;
            for name in held {
                if let Err(e) = self.orphaned(&name, &replica).await {
                    tracing::warn!(space = name, "taking over a silent replica's members: {e}");
                    done = false;
                }
            }
            if done && let Err(e) = self.store.forget_replica(&replica).await {
                tracing::warn!("forgetting a silent replica: {e}");
            }
        }
    }

    /// Replicas: the members connected here, that others made `ready` while this replica was
    /// silent, are held here and `active` again.
    async fn reclaim(&self, replication: &Replication) {
        let names: Vec<String> = {
            let directory = self.directory.lock().await;
            directory
                .iter()
                .filter(|(_, entry)| !entry.live.is_empty())
                .map(|(name, _)| name.clone())
                .collect()
        };
        for name in names {
            if let Err(e) = self.hold_live(&name, replication).await {
                tracing::warn!(space = name, "taking back this replica's members: {e}");
            }
        }
    }

    async fn hold_live(&self, name: &str, replication: &Replication) -> Result<(), AppError> {
        self.rehold(name, MemberStatus::Active, |entry| {
            entry
                .live
                .iter()
                .filter(|(id, _)| {
                    let ready = entry
                        .space()
                        .members
                        .get(*id)
                        .is_some_and(|m| m.status == MemberStatus::Ready);
                    ready && entry.holder(id).is_none()
                })
                .map(|(id, live)| {
                    let holder = Holder {
                        replica: replication.id.clone(),
                        connection: live.connection,
                    };
                    (id.clone(), Some(holder))
                })
                .collect()
        })
        .await
    }

    /// Replicas: the members of space `name` held by `replica` become `ready`.
    async fn orphaned(&self, name: &str, replica: &str) -> Result<(), AppError> {
        self.rehold(name, MemberStatus::Ready, |entry| {
            entry
                .log
                .iter()
                .flat_map(|log| &log.holders)
                .filter(|(_, h)| h.replica == replica)
                .map(|(id, _)| (id.clone(), None))
                .collect()
        })
        .await
    }

    /// Replicas: the members of space `name` that `pick` names get the holder it gives (`None`:
    /// nobody) and `status`.
    async fn rehold(
        &self,
        name: &str,
        status: MemberStatus,
        pick: impl FnOnce(&Entry) -> Vec<(MemberId, Option<Holder>)>,
    ) -> Result<(), AppError> {
        let (mut directory, now, mut transaction) = self.locked(name).await?;
        if let Some(entry) = directory.get_mut(name) {
            let mut changes = Vec::new();
            for (id, holder) in pick(entry) {
                entry.hold(&id, holder);
                if let Ok(more) = entry.stored.space.handle_status(&id, status, now) {
                    changes.extend(more);
                }
            }
            entry.publish(&changes);
            self.persist_changes(entry, &changes, &mut transaction)
                .await?;
        }
        self.commit(&mut directory, name, transaction).await
    }

    /// Replicas: makes the whole cache what the database holds, for the calls that look at
    /// every space.
    async fn refresh_all(&self, directory: &mut HashMap<String, Entry>) -> Result<(), AppError> {
        if self.replication.is_none() {
            return Ok(());
        }
        let mut rows = HashMap::new();
        for row in self.store.spaces().await? {
            let stored = read_stored(&row)?;
            rows.insert(stored.space.name.clone(), (stored, row.seq, row.version));
        }
        directory.retain(|name, entry| {
            let kept = rows.contains_key(name);
            if !kept {
                entry.close_all("the space is gone");
            }
            kept
        });
        let mut holders: HashMap<String, Vec<SpaceHolder>> = HashMap::new();
        for (space, holder) in self.store.all_space_holders().await? {
            holders.entry(space).or_default().push(holder);
        }
        // What the members here missed is theirs at the next catch-up.
        for (stored, seq, version) in rows.into_values() {
            let held = holders.remove(&stored.space.name).unwrap_or_default();
            if let Some(log) = &mut cache(directory, stored, seq, version).log {
                log.holders = held_by(held);
            }
        }
        Ok(())
    }

    /// Timeouts of one space: removed members lose their render sessions; an expired space is
    /// deleted.
    async fn apply_timeouts(
        &self,
        directory: &mut HashMap<String, Entry>,
        name: &str,
        now: Timestamp,
        transaction: &mut Option<Transaction>,
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
            let deleted = match transaction {
                Some(transaction) => self.store.delete_space_in(transaction, name).await,
                None => self.store.delete_space(name).await,
            };
            if let Err(e) = deleted {
                tracing::error!("deleting the expired space {name} failed: {e}");
            }
        } else if let Err(e) = self.persist(entry, transaction).await {
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
                self.apply_timeouts(&mut directory, &name, now, &mut None)
                    .await;
            }
            drop(directory);
            self.renew_leases(now).await;
        }
    }

    /// Every [`RENEW`]: renews the render session lease of each headset still a member, when it
    /// has less than half of [`HEADSET_LEASE_MINUTES`] left.
    async fn renew_leases(&self, now: Timestamp) {
        {
            let mut renewed = self.renewed.lock().unwrap_or_else(|e| e.into_inner());
            if renewed.is_some_and(|at| now < at.after(RENEW)) {
                return;
            }
            *renewed = Some(now);
        }
        let mut members: HashMap<String, HashSet<String>> = HashMap::new();
        for entry in self.everything().await.values() {
            for (id, member) in &entry.space().members {
                if let (Some(session), Some(account)) =
                    (&member.render_session, entry.stored.accounts.get(id))
                {
                    members
                        .entry(account.clone())
                        .or_default()
                        .insert(session.clone());
                }
            }
        }
        for (account, sessions) in members {
            let active = match self.sessions.active(&account).await {
                Ok(active) => active,
                Err(e) => {
                    tracing::warn!(account, "reading render sessions to renew: {e}");
                    continue;
                }
            };
            for view in active {
                let elapsed = u32::try_from(view.elapsed_minutes).unwrap_or(u32::MAX);
                let session = &view.session;
                if !sessions.contains(session.id.as_str())
                    || session.max_lease_minutes
                        >= elapsed.saturating_add(HEADSET_LEASE_MINUTES / 2)
                {
                    continue;
                }
                let minutes = elapsed.saturating_add(HEADSET_LEASE_MINUTES);
                if let Err(e) = self.sessions.extend(&session.key(), minutes).await {
                    tracing::warn!(session = %session.id, "renewing a headset's lease: {e}");
                }
            }
        }
    }

    /// Stores the space whole. A replica writes it in `transaction` with the change's events,
    /// numbered in the space's sequence; they are delivered when it commits.
    async fn persist(
        &self,
        entry: &mut Entry,
        transaction: &mut Option<Transaction>,
    ) -> anyhow::Result<()> {
        let body = serde_json::to_string(&entry.stored)?;
        let space = &entry.stored.space;
        let (Some(transaction), Some(log)) = (transaction, &mut entry.log) else {
            self.store
                .upsert_space(&space.name, &body, space.change)
                .await?;
            return Ok(());
        };
        let change = space.change.0;
        let events: Vec<LoggedEvent> = log
            .pending
            .drain(..)
            .enumerate()
            .map(|(i, event)| LoggedEvent {
                seq: log.seq + 1 + i as u64,
                change,
                event: event.to_string(),
            })
            .collect();
        let seq = log.seq + events.len() as u64;
        let version = log.locked + 1;
        self.store
            .write_space(
                transaction,
                &SpaceWrite {
                    name: &space.name,
                    body: &body,
                    change: space.change,
                    seq,
                    poll_at: space.poll_timeout(),
                    version,
                    new: log.new,
                    events: &events,
                },
            )
            .await?;
        let held = std::mem::take(&mut log.held);
        self.store
            .write_holders(transaction, &space.name, None, &stored_holders(held))
            .await?;
        log.seq = seq;
        log.locked = version;
        log.new = false;
        log.unsent.extend(events);
        Ok(())
    }

    /// After a change of `changes`: the space whole if there are any; a replica's holders alone
    /// if not (a member moved to another replica: the row's version, not its body).
    async fn persist_changes(
        &self,
        entry: &mut Entry,
        changes: &[Change],
        transaction: &mut Option<Transaction>,
    ) -> anyhow::Result<()> {
        if !changes.is_empty() {
            return self.persist(entry, transaction).await;
        }
        let (Some(transaction), Some(log)) = (transaction, &mut entry.log) else {
            return Ok(());
        };
        if log.held.is_empty() {
            return Ok(());
        }
        let version = log.locked + 1;
        let held = std::mem::take(&mut log.held);
        self.store
            .write_holders(
                transaction,
                &entry.stored.space.name,
                Some(version),
                &stored_holders(held),
            )
            .await?;
        log.locked = version;
        Ok(())
    }

    /// Stores only the properties: a write that changed nothing else (a replica writes it whole).
    async fn persist_properties(
        &self,
        entry: &mut Entry,
        transaction: &mut Option<Transaction>,
    ) -> anyhow::Result<()> {
        if transaction.is_some() {
            return self.persist(entry, transaction).await;
        }
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
        // Replicas share the pool: whichever replica leased it, this one can release it.
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
                // The space owner's quota: a guest's headset counts against it.
                account_limit: None,
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
    ) -> Result<(SpaceView, Joined), AppError> {
        check_name(name)?;
        let template = self
            .templates
            .iter()
            .find(|t| t.name == template)
            .ok_or_else(|| {
                AppError::unprocessable(
                    format!("there is no template named {template}"),
                    Some("template"),
                )
            })?;
        let constants = Constants::resolve(template, choices).map_err(space_error)?;
        let (mut directory, now, mut transaction) = self.locked(name).await?;
        let exists = || {
            AppError::conflict(format!(
                "space {name} exists already; join it with POST /v1/spaces/{name}/members"
            ))
        };
        if directory.contains_key(name) {
            return Err(exists());
        }
        // Unique among the spaces, so a code alone finds its space.
        self.refresh_all(&mut directory).await?;
        let open = directory
            .values()
            .filter(|e| e.stored.owner.as_deref() == Some(account))
            .count();
        self.quotas.check_spaces(account, open)?;
        let code = loop {
            let code = join_code(rand::random());
            let normal = normalize_join_code(&code);
            if !directory.values().any(|e| {
                e.space().join_code.as_deref().map(normalize_join_code) == Some(normal.clone())
            }) {
                break code;
            }
        };
        let space = Space::new(name, constants, Some(code.clone()), now);
        let stored = Stored {
            space,
            tokens: HashMap::new(),
            accounts: HashMap::new(),
            owner: Some(account.to_string()),
        };
        let log = self.replication.as_ref().map(|_| Log {
            new: true,
            ..Log::default()
        });
        let mut entry = Entry::new(stored, log);
        let creator = Joiner {
            code: Some(code),
            ..creator
        };
        let joined = self
            .join_entry(&mut entry, account, creator, now, &mut transaction)
            .await
            .map_err(|e| if name_taken(&e) { exists() } else { e })?;
        let view = entry.view(true);
        directory.insert(name.to_string(), entry);
        self.commit(&mut directory, name, transaction)
            .await
            .map_err(|e| if name_taken(&e) { exists() } else { e })?;
        Ok((view, joined))
    }

    /// Joins space `name`.
    pub async fn join(
        &self,
        account: &str,
        name: &str,
        joiner: Joiner,
    ) -> Result<(SpaceView, Joined), AppError> {
        let (mut directory, now, mut transaction) = self.locked(name).await?;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let joined = self
            .join_entry(entry, account, joiner, now, &mut transaction)
            .await?;
        let view = entry.view(true);
        self.commit(&mut directory, name, transaction).await?;
        Ok((view, joined))
    }

    async fn join_entry(
        &self,
        entry: &mut Entry,
        account: &str,
        joiner: Joiner,
        now: Timestamp,
        transaction: &mut Option<Transaction>,
    ) -> Result<Joined, AppError> {
        if let Some(problem) = device_problem(&joiner.device) {
            return Err(AppError::bad_request(problem, Some("device")));
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
        self.persist(entry, transaction).await?;
        Ok(Joined {
            id,
            token,
            render_session,
        })
    }

    /// The space, as a member (with its token) or an operator sees it.
    pub async fn get(&self, name: &str, member_token: Option<&str>) -> Result<SpaceView, AppError> {
        let (mut directory, _, transaction) = self.locked(name).await?;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let member = member_token.and_then(|t| entry.member_by_token(t));
        let view = SpaceView {
            // Which member the caller is: a client can tell its membership still holds.
            member: member.clone(),
            ..entry.view(member.is_some())
        };
        self.commit(&mut directory, name, transaction).await?;
        Ok(view)
    }

    /// Each member's render session, in join order.
    pub async fn render_sessions(
        &self,
        name: &str,
    ) -> Result<Vec<(MemberId, SessionKey)>, AppError> {
        let (mut directory, _, transaction) = self.locked(name).await?;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let mut members: Vec<&Member> = entry.space().members.values().collect();
        members.sort_by_key(|m| m.joined);
        let sessions = members
            .into_iter()
            .filter_map(|m| {
                let session = SessionId::parse(m.render_session.as_deref()?).ok()?;
                let account = entry.stored.accounts.get(&m.id)?;
                Some((m.id.clone(), SessionKey::new(account, session)))
            })
            .collect();
        self.commit(&mut directory, name, transaction).await?;
        Ok(sessions)
    }

    /// A member writes the properties, if the space's entity tag passes `if_match`.
    pub async fn write(
        &self,
        name: &str,
        writer: Writer<'_>,
        patch: PropertiesPatch,
        if_match: Option<IfMatch>,
    ) -> Result<SpaceView, AppError> {
        patch.check().map_err(space_error)?;
        if let Some(Some(model)) = &patch.selected_model {
            // Its headsets load the model on the owner's account: only what that account sees.
            let owner = self.owner(name).await?;
            self.catalog
                .get_ready(model, owner.as_deref().unwrap_or_default())
                .await?;
        }
        let (mut directory, _, mut transaction) = self.locked(name).await?;
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
                    Change::Selection
                        | Change::Custom
                        | Change::Review
                        | Change::Pick
                        | Change::Room
                )
            }) {
                self.persist_properties(entry, &mut transaction).await?;
            } else {
                self.persist(entry, &mut transaction).await?;
            }
        }
        let view = entry.view(true);
        self.commit(&mut directory, name, transaction).await?;
        Ok(view)
    }

    /// The member with `member_token` leaves; its render session is released.
    pub async fn leave(&self, name: &str, member_token: &str) -> Result<(), AppError> {
        let (mut directory, now, mut transaction) = self.locked(name).await?;
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
        let reason = "you left the space";
        if let Some(live) = entry.live.remove(&id) {
            live.outlet.close(reason.into());
        }
        entry.hold(&id, None);
        if let Some(log) = &mut entry.log {
            log.closes.push(Close {
                member: id.clone(),
                reason: reason.into(),
                keep: None,
            });
        }
        entry.publish(&changes);
        self.persist(entry, &mut transaction).await?;
        self.commit(&mut directory, name, transaction).await?;
        drop(directory);
        if let Some(account) = account {
            self.release(&account, session.as_deref()).await;
        }
        Ok(())
    }

    /// The directory, for a look at every space: a replica reads them all from the database.
    async fn everything(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        let mut directory = self.directory.lock().await;
        if let Err(e) = self.refresh_all(&mut directory).await {
            tracing::warn!("reading the spaces: {e}");
        }
        directory
    }

    /// The spaces where a member of `account` is the device `device`.
    pub async fn of_device(&self, account: &str, device: &str) -> Vec<Membership> {
        let directory = self.everything().await;
        let mut found: Vec<Membership> = directory
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
                    .map(|m| Membership {
                        name: entry.space().name.clone(),
                        member_id: m.id.clone(),
                        role: m.role,
                        status: m.status,
                        change: entry.space().change,
                    })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        found
    }

    /// How many spaces, members (by status) and connected sockets there are.
    pub async fn census(&self) -> Census {
        let directory = self.everything().await;
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

    /// The account that owns space `name`, if anyone does.
    pub async fn owner(&self, name: &str) -> Result<Option<String>, AppError> {
        // A space's owner never changes: a copy here answers without a trip to the database (it
        // is asked before every selection).
        if let Some(entry) = self.directory.lock().await.get(name) {
            return Ok(entry.stored.owner.clone());
        }
        if self.replication.is_none() {
            return Err(AppError::not_found(format!(
                "there is no space named {name}"
            )));
        }
        let (mut directory, _, transaction) = self.locked(name).await?;
        let entry = directory
            .get(name)
            .ok_or_else(|| AppError::not_found(format!("there is no space named {name}")))?;
        let owner = entry.stored.owner.clone();
        self.commit(&mut directory, name, transaction).await?;
        Ok(owner)
    }

    /// A space that shows `model` now, if any.
    pub async fn showing(&self, model: &ModelId) -> Option<String> {
        let directory = self.everything().await;
        directory.values().find_map(|entry| {
            let space = entry.space();
            (space.properties.selected_model.as_ref() == Some(model)).then(|| space.name.clone())
        })
    }

    /// The space whose join code is `code` (as typed: any case, dashes or none), and the account
    /// that owns it.
    pub async fn by_code(&self, code: &str) -> Option<(String, String)> {
        let typed = normalize_join_code(code);
        if typed.is_empty() {
            return None;
        }
        let directory = self.everything().await;
        directory.values().find_map(|entry| {
            let space = entry.space();
            (space.join_code.as_deref().map(normalize_join_code) == Some(typed.clone()))
                .then(|| Some((space.name.clone(), entry.stored.owner.clone()?)))
                .flatten()
        })
    }

    /// The spaces `account` created, as its console lists them (with their join codes).
    pub async fn owned_by(&self, account: &str) -> Vec<SpaceView> {
        let directory = self.everything().await;
        let mut owned: Vec<SpaceView> = directory
            .values()
            .filter(|entry| entry.stored.owner.as_deref() == Some(account))
            // The list shows counts; the space's own page shows who.
            .map(|entry| SpaceView {
                members: None,
                ..entry.view(true)
            })
            .collect();
        owned.sort_by(|a, b| a.name.cmp(&b.name));
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
        let (mut directory, now, transaction) =
            self.locked(name).await.map_err(|e| e.to_string())?;
        let entry = directory
            .get_mut(name)
            .ok_or_else(|| format!("there is no space named {name}"))?;
        let member = entry
            .member_by_token(member_token)
            .ok_or("this member token is not in the space (left, or removed after a timeout)")?;
        let change = entry.space().change.0;
        let snapshot = entry.view(true);
        let replicated = entry.log.as_ref().map(|log| log.seq);
        // A replica's members resume from the log: their acks keep nothing.
        let shared = match replicated {
            Some(_) => new_outbox(),
            None => entry
                .outboxes
                .entry(member.clone())
                .or_insert_with(new_outbox)
                .clone(),
        };
        let first = if let Some(seq) = replicated {
            let missed = match last_seq {
                Some(seen) if seen <= seq => {
                    let missed = self
                        .store
                        .space_events(name, seen, seq)
                        .await
                        .map_err(|e| format!("reading the space's log: {e}"))?;
                    // All of them, or the log no longer keeps them: a snapshot.
                    (missed.len() as u64 == seq - seen).then_some((seen, missed))
                }
                _ => None,
            };
            let (at, space, missed) = match missed {
                Some((seen, missed)) => (seen, None, missed),
                None => (seq, Some(Box::new(snapshot)), Vec::new()),
            };
            let welcome = SpaceServerMessage::Welcome {
                member: member.clone(),
                seq: at,
                change,
                space,
            };
            std::iter::once(welcome.to_json())
                .chain(missed.iter().map(|e| frame(e.seq, e.change, &e.event)))
                .collect()
        } else {
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
                            space: Some(Box::new(snapshot)),
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
        let elsewhere = "the member connected again elsewhere";
        let (device, role) = entry
            .space()
            .members
            .get(&member)
            .map(|m| (m.device.clone(), m.role))
            .ok_or("this member is not in the space")?;
        // Listening only once nothing can refuse the attach: a refused one never detaches.
        self.presence
            .listen(name, (&member, role), connection, outlet.clone());
        if let Some(old) = entry
            .live
            .insert(member.clone(), Live { connection, outlet })
        {
            old.outlet.close(elsewhere.into());
        }
        if let Some(replication) = &self.replication {
            // Held here now; its socket on any other replica closes.
            let holder = Holder {
                replica: replication.id.clone(),
                connection,
            };
            entry.hold(&member, Some(holder.clone()));
            if let Some(log) = &mut entry.log {
                log.closes.push(Close {
                    member: member.clone(),
                    reason: elsewhere.into(),
                    keep: Some(holder),
                });
            }
        }
        let changes = entry
            .stored
            .space
            .handle_status(&member, MemberStatus::Active, now)
            .map_err(|e| e.to_string())?;
        self.record(&mut directory, name, &changes, transaction)
            .await;
        Ok(Attached {
            member,
            device,
            role,
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
        let (mut directory, now, mut transaction) =
            self.locked(name).await.map_err(|e| e.to_string())?;
        let entry = directory.get_mut(name).ok_or("the space is gone")?;
        let changes = entry
            .stored
            .space
            .handle_status(member, status, now)
            .map_err(|e| e.to_string())?;
        if !changes.is_empty() {
            entry.publish(&changes);
            if let Err(e) = self.persist(entry, &mut transaction).await {
                tracing::error!("storing space {name} failed: {e:#}");
            }
        }
        self.commit(&mut directory, name, transaction)
            .await
            .map_err(|e| e.to_string())
    }

    /// The member's socket closed: it is `ready` (may resume) unless a newer socket took over.
    pub async fn detach(&self, name: &str, member: &str, connection: u64) {
        let (mut directory, now, transaction) = match self.locked(name).await {
            Ok(locked) => locked,
            // Stopping: the other replicas make its members ready once it is silent.
            Err(_) if self.store.is_closed() => return,
            Err(e) => {
                // Its replica's silence will make it ready, if this one is cut off.
                tracing::warn!(space = name, "a member's socket closed: {e}");
                return;
            }
        };
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
        if let Some(replication) = &self.replication {
            // Connected again on another replica (or here) since: that socket holds it now.
            let holder = Holder {
                replica: replication.id.clone(),
                connection,
            };
            if entry.holder(member) != Some(&holder) {
                return;
            }
            entry.hold(member, None);
        }
        let changes = entry
            .stored
            .space
            .handle_status(member, MemberStatus::Ready, now)
            .unwrap_or_default();
        self.record(&mut directory, name, &changes, transaction)
            .await;
    }

    /// Publishes and stores a member's status `changes` in space `name` (a replica commits
    /// them), for a socket's own calls: a failure has nobody to answer, so it is logged.
    async fn record(
        &self,
        directory: &mut HashMap<String, Entry>,
        name: &str,
        changes: &[Change],
        mut transaction: Option<Transaction>,
    ) {
        if let Some(entry) = directory.get_mut(name) {
            entry.publish(changes);
            if let Err(e) = self.persist_changes(entry, changes, &mut transaction).await {
                tracing::error!("storing space {name} failed: {e:#}");
            }
        }
        if let Err(e) = self.commit(directory, name, transaction).await {
            tracing::error!("storing space {name} failed: {e:#}");
        }
    }
}

/// Whether `error` is the database refusing a second space of one name (two replicas created it
/// at once).
fn name_taken(error: &AppError) -> bool {
    match error {
        AppError::Internal(e) => e.chain().any(|cause| {
            cause
                .downcast_ref::<sqlx::Error>()
                .and_then(|e| e.as_database_error())
                .is_some_and(|e| e.is_unique_violation())
        }),
        _ => false,
    }
}

fn not_a_member() -> AppError {
    AppError::forbidden(
        "send your member token (from the join) in the Parallax-Member header; this one is not a \
         member of the space",
    )
}
