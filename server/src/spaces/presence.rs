//! Presence: where each aligned headset's wearer is and points, passed on to the headsets of its
//! space connected here, and to the tablets that show the room map. Unlike the space's events it
//! is ephemeral: the latest of each member only, in memory, never in the space's log, never
//! acknowledged or replayed after a resume.
//!
//! A space sends it at most [`PRESENCE_HZ`] times a second, batched: what changed since the last
//! batch, at most [`MAX_PRESENCE_BATCH`] members a message (the rest in the next), and who left.
//! One batch is written once and offered to every headset's socket; a socket still writing
//! anything skips it (the next batch supersedes it), so presence never puts a member behind.
//! A tablet gets presence only while it shows the room map (it says so: `watch`), and then the
//! whole room, at most [`MAP_PRESENCE_HZ`] times a second and only when it changed: in a space of
//! a thousand tablets, presence at the headsets' rate would be most of what the coordinator
//! writes, and to tablets that show no map it would be all waste.
//!
//! Replicas: each batch's news of the members connected here goes to the other replicas on NATS
//! ([`crate::replication::PresenceNews`]), which merge it into theirs. What another replica said
//! lapses after [`REMOTE_LAPSE`] without news (its replica may be gone).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use parallax_core::space::Role;
use parallax_core::space_protocol::{
    MAP_PRESENCE_HZ, MAX_PRESENCE_BATCH, MemberPresence, PRESENCE_HZ, Presence, SpaceServerMessage,
};
use tokio::time::Instant;

use crate::spaces::outlet::Outlet;

/// The time between two batches of a space.
const INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / PRESENCE_HZ as u64);

/// The time between two of a tablet's.
const MAP_INTERVAL: Duration = Duration::from_nanos(1_000_000_000 / MAP_PRESENCE_HZ as u64);

/// How long a presence from another replica lasts without news.
const REMOTE_LAPSE: Duration = Duration::from_secs(5);

/// How long who left is repeated to tablets: each of theirs names everyone who left this
/// recently, so one they skipped (a busy socket) never leaves a ghost on the map.
const GONE_REPEATED: Duration = Duration::from_secs(5);

/// News of one space's members connected here, for the other replicas: who is where, who left.
pub type News = (String, Vec<MemberPresence>, Vec<String>);

/// News waiting for NATS, at most: past it a batch is dropped (the next supersedes it).
pub const NEWS_BACKLOG: usize = 256;

/// Every space's presence on this coordinator.
#[derive(Default)]
pub struct Presences {
    spaces: Mutex<HashMap<String, Room>>,
    /// Replicas: where the news of each batch goes.
    news: Mutex<Option<tokio::sync::mpsc::Sender<News>>>,
}

/// A member connected here: its connection and socket, whether it is a headset (it gets the
/// batches), and for a tablet that shows the room map, what its map has.
struct Listener {
    connection: u64,
    outlet: Arc<Outlet>,
    headset: bool,
    map: Option<MapFeed>,
}

/// A tablet's presence: whether it shows the map now, the room's version it last got, and when
/// it may get the next (kept while the map is hidden: hiding and showing it again gets the room
/// no more often than watching it does).
#[derive(Clone, Copy)]
struct MapFeed {
    on: bool,
    seen: u64,
    next: Instant,
}

/// One space's.
#[derive(Default)]
struct Room {
    /// The members connected here.
    listeners: HashMap<String, Listener>,
    /// Counts changes to who is present where: a tablet behind it is due the room.
    version: u64,
    /// As of the last look at every tablet (asked on every update, which must not look at a
    /// thousand tablets each time): the soonest turn of those behind the room then, the soonest
    /// of those that were not (behind once the room changes since), and the room's version then.
    maps_next: Option<Instant>,
    maps_current_next: Option<Instant>,
    maps_version: u64,
    /// Who left lately, and when: repeated to tablets for [`GONE_REPEATED`].
    recently_gone: HashMap<String, Instant>,
    /// Each member's latest presence.
    latest: HashMap<String, MemberPresence>,
    /// Members whose presence changed since the last batch, oldest change first.
    changed: Vec<String>,
    /// Members whose presence ended since the last batch, and whether they were here (so the
    /// other replicas are told).
    gone: HashMap<String, bool>,
    /// When what another replica said of a member came.
    remote: HashMap<String, Instant>,
    /// When the last batch went out.
    sent: Option<Instant>,
    /// When a task wakes to send what is due next, if one waits.
    scheduled: Option<Instant>,
    /// Which room this is: a task of a room removed and made again since ends.
    id: u64,
    /// A task watches what other replicas said, to let it lapse when they stop saying it.
    watched: bool,
}

/// The sooner of two times, either of which may be none.
fn sooner(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The id of the next room made.
static NEXT_ROOM: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Room {
    fn numbered() -> Self {
        Self {
            id: NEXT_ROOM.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Self::default()
        }
    }

    /// When something is next due: the headsets' batch (15 a second at most) if anything
    /// changed, or the soonest tablet's turn.
    /// `now` if the batch could go at once.
    fn next_turn(&self, now: Instant) -> Option<Instant> {
        let batch = (!self.changed.is_empty() || !self.gone.is_empty())
            .then(|| self.sent.map_or(now, |sent| (sent + INTERVAL).max(now)));
        sooner(batch, self.map_due())
    }

    /// What another replica said and has not said again for [`REMOTE_LAPSE`] ends (unless the
    /// member connected here since); whether anything did.
    fn lapse(&mut self, now: Instant) -> bool {
        let lapsed: Vec<String> = self
            .remote
            .iter()
            .filter(|(m, at)| {
                now.duration_since(**at) > REMOTE_LAPSE && !self.listeners.contains_key(*m)
            })
            .map(|(m, _)| m.clone())
            .collect();
        for member in &lapsed {
            self.remote.remove(member);
            self.end(member, false);
        }
        !lapsed.is_empty()
    }

    /// `member`'s presence ends (if it had one): the next batch says it is gone, and tells the
    /// other replicas if it was `here`.
    fn end(&mut self, member: &str, here: bool) {
        if self.latest.remove(member).is_some() {
            self.changed.retain(|m| m != member);
            self.gone.insert(member.to_string(), here);
            self.recently_gone
                .insert(member.to_string(), Instant::now());
            self.version += 1;
        }
    }

    /// When a tablet behind the room's version may next get it, the earliest (or sooner: a
    /// look that finds none due only costs the look).
    fn map_due(&self) -> Option<Instant> {
        let current = self
            .maps_current_next
            .filter(|_| self.version > self.maps_version);
        sooner(self.maps_next, current)
    }

    /// The whole room, for tablets whose turn it is (behind, and their interval passed).
    fn send_maps(&mut self, now: Instant) {
        if self.map_due().is_none_or(|due| due > now) {
            return;
        }
        let version = self.version;
        let mut text = None;
        let (mut behind, mut current) = (None, None);
        for listener in self.listeners.values_mut() {
            let Some(feed) = listener.map.as_mut().filter(|feed| feed.on) else {
                continue;
            };
            if feed.seen < version && feed.next <= now {
                let text = text.get_or_insert_with(|| {
                    self.recently_gone
                        .retain(|_, at| now.duration_since(*at) <= GONE_REPEATED);
                    SpaceServerMessage::Presence {
                        members: self
                            .latest
                            .values()
                            .take(MAX_PRESENCE_BATCH)
                            .cloned()
                            .collect(),
                        gone: self.recently_gone.keys().cloned().collect(),
                    }
                    .to_json()
                });
                // Skipped by a busy socket: it stays behind, and is due again after the
                // interval.
                if listener.outlet.offer(text) {
                    feed.seen = version;
                }
                feed.next = now + MAP_INTERVAL;
            }
            if feed.seen < version {
                behind = sooner(behind, Some(feed.next));
            } else {
                current = sooner(current, Some(feed.next));
            }
        }
        self.maps_next = behind;
        self.maps_current_next = current;
        self.maps_version = version;
    }
}

impl Presences {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Room>> {
        self.spaces.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replicas: each batch's news of the members here goes to `news` from now on.
    pub fn tell(&self, news: tokio::sync::mpsc::Sender<News>) {
        *self.news.lock().unwrap_or_else(|p| p.into_inner()) = Some(news);
    }

    /// Replicas: another replica's news of `space`: where its members are, who left. Nothing
    /// is kept for a space with no member here.
    pub fn merge(self: &Arc<Self>, space: &str, members: Vec<MemberPresence>, gone: Vec<String>) {
        {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            let now = Instant::now();
            for member in gone {
                if room.listeners.contains_key(&member) {
                    continue; // Connected here since: this replica speaks for it.
                }
                room.remote.remove(&member);
                room.end(&member, false);
            }
            for presence in members {
                let member = presence.member.clone();
                if room.listeners.contains_key(&member) {
                    continue;
                }
                room.remote.insert(member.clone(), now);
                room.gone.remove(&member);
                room.recently_gone.remove(&member);
                room.version += 1;
                room.latest.insert(member.clone(), presence);
                if !room.changed.contains(&member) {
                    room.changed.push(member);
                }
            }
        }
        self.watch(space);
        self.due(space);
    }

    /// Lets what other replicas said of `space` lapse when they stop saying it, even if nothing
    /// here changes meanwhile (a replica that died says nothing more): checked every half
    /// [`REMOTE_LAPSE`] while there is any.
    fn watch(self: &Arc<Self>, space: &str) {
        let room_id = {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            if room.watched || room.remote.is_empty() {
                return;
            }
            room.watched = true;
            room.id
        };
        let presences = Arc::clone(self);
        let space = space.to_string();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REMOTE_LAPSE / 2).await;
                let (lapsed, more) = {
                    let mut spaces = presences.lock();
                    let Some(room) = spaces.get_mut(&space).filter(|r| r.id == room_id) else {
                        return;
                    };
                    let lapsed = room.lapse(Instant::now());
                    room.watched = !room.remote.is_empty();
                    (lapsed, room.watched)
                };
                if lapsed {
                    presences.due(&space);
                }
                if !more {
                    return;
                }
            }
        });
    }

    /// Member `member` of `space` connected here on `connection` as `role`. A headset receives
    /// the space's presence from now on, first where everyone present is now (it may have missed
    /// who left while away); a tablet, once it shows the room map ([`Presences::watch_map`]).
    pub fn listen(
        &self,
        space: &str,
        (member, role): (&str, Role),
        connection: u64,
        outlet: Arc<Outlet>,
    ) {
        let mut spaces = self.lock();
        let room = spaces
            .entry(space.to_string())
            .or_insert_with(Room::numbered);
        // This replica speaks for it now, whatever another said before.
        room.remote.remove(member);
        let headset = role == Role::Headset;
        let present: Vec<MemberPresence> = room
            .latest
            .values()
            .take(MAX_PRESENCE_BATCH)
            .cloned()
            .collect();
        if headset && !present.is_empty() {
            let text = SpaceServerMessage::Presence {
                members: present,
                gone: Vec::new(),
            }
            .to_json();
            outlet.offer(&text);
        }
        room.listeners.insert(
            member.to_string(),
            Listener {
                connection,
                outlet,
                headset,
                map: None,
            },
        );
    }

    /// Tablet `member`'s socket `connection` shows the room map (`on`) or no longer does. One
    /// that starts gets the whole room at its next turn — at once, unless it got it less than
    /// [`MAP_INTERVAL`] ago — whatever it had before (it starts its map from that); a headset
    /// has everyone's presence already, and its watch changes nothing.
    pub fn watch_map(self: &Arc<Self>, space: &str, member: &str, connection: u64, on: bool) {
        {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            let Some(listener) = room
                .listeners
                .get_mut(member)
                .filter(|l| l.connection == connection && !l.headset)
            else {
                return;
            };
            let feed = listener.map.get_or_insert(MapFeed {
                on: false,
                seen: 0,
                next: Instant::now(),
            });
            if feed.on == on {
                return;
            }
            feed.on = on;
            if !on {
                return;
            }
            // Behind the room (unless nobody was ever here), whatever it saw before: due at its
            // next turn.
            feed.seen = 0;
            let next = Some(feed.next);
            if room.version > 0 {
                room.maps_next = sooner(room.maps_next, next);
            } else {
                room.maps_current_next = sooner(room.maps_current_next, next);
            }
        }
        self.due(space);
    }

    /// Member `member`'s socket `connection` closed: it receives nothing more, and its presence
    /// ends for the others (unless it connected again since).
    pub fn leave(self: &Arc<Self>, space: &str, member: &str, connection: u64) {
        {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            if room
                .listeners
                .get(member)
                .is_none_or(|l| l.connection != connection)
            {
                return;
            }
            room.listeners.remove(member);
            room.end(member, true);
            if room.listeners.is_empty() {
                // Nobody here to tell; the other replicas still hear that it left.
                self.send(space, room, true);
                spaces.remove(space);
                return;
            }
        }
        self.due(space);
    }

    /// Member `member` (device `device`) of `space` is where `presence` says.
    pub fn update(self: &Arc<Self>, space: &str, member: &str, device: &str, presence: Presence) {
        {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            room.gone.remove(member);
            room.remote.remove(member);
            room.recently_gone.remove(member);
            room.version += 1;
            room.latest.insert(
                member.to_string(),
                MemberPresence {
                    member: member.to_string(),
                    device: device.to_string(),
                    presence,
                },
            );
            if !room.changed.iter().any(|m| m == member) {
                room.changed.push(member.to_string());
            }
        }
        self.due(space);
    }

    /// Sends what is due of `space` now — the headsets' batch if the last went out long enough
    /// ago, the tablets whose turn it is — and has a task wake for the next turn, unless one
    /// already wakes sooner (it looks again when it has sent).
    fn due(self: &Arc<Self>, space: &str) {
        let (wait, room_id) = {
            let mut spaces = self.lock();
            let Some(room) = spaces.get_mut(space) else {
                return;
            };
            let now = Instant::now();
            let mut next = room.next_turn(now);
            if next.is_some_and(|next| next <= now) {
                self.send(space, room, false);
                next = room.next_turn(now).filter(|next| *next > now);
            }
            let Some(next) = next else {
                return;
            };
            if room.scheduled.is_some_and(|woken| woken <= next) {
                return;
            }
            room.scheduled = Some(next);
            (next, room.id)
        };
        let presences = Arc::clone(self);
        let space = space.to_string();
        tokio::spawn(async move {
            tokio::time::sleep_until(wait).await;
            {
                let mut spaces = presences.lock();
                let Some(room) = spaces.get_mut(&space) else {
                    return;
                };
                // The room was made again since, or a sooner wake-up took over: theirs.
                if room.id != room_id || room.scheduled != Some(wait) {
                    return;
                }
                room.scheduled = None;
            }
            presences.due(&space);
        });
    }

    /// Writes one batch of `space`'s `room` to its listeners, and its news to the other
    /// replicas.
    /// The headsets' batch goes only when the last is [`INTERVAL`] back, unless `now_anyway`
    /// (the last listener here left: the other replicas hear it at once).
    fn send(&self, space: &str, room: &mut Room, now_anyway: bool) {
        let now = Instant::now();
        // What another replica said and has not said again for a while: gone.
        room.lapse(now);
        if !now_anyway && room.sent.is_some_and(|sent| now < sent + INTERVAL) {
            room.send_maps(now);
            return;
        }
        let take = room.changed.len().min(MAX_PRESENCE_BATCH);
        let members: Vec<MemberPresence> = room
            .changed
            .drain(..take)
            .filter_map(|m| room.latest.get(&m).cloned())
            .collect();
        let gone: Vec<(String, bool)> = room.gone.drain().collect();
        if let Some(news) = self.news.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            let members_here: Vec<MemberPresence> = members
                .iter()
                .filter(|p| !room.remote.contains_key(&p.member))
                .cloned()
                .collect();
            let gone_here: Vec<String> = gone
                .iter()
                .filter(|(_, here)| *here)
                .map(|(m, _)| m.clone())
                .collect();
            if !members_here.is_empty() || !gone_here.is_empty() {
                let _ = news.try_send((space.to_string(), members_here, gone_here));
            }
        }
        let gone: Vec<String> = gone.into_iter().map(|(m, _)| m).collect();
        if !members.is_empty() || !gone.is_empty() {
            let text = SpaceServerMessage::Presence { members, gone }.to_json();
            for listener in room.listeners.values().filter(|l| l.headset) {
                listener.outlet.offer(&text);
            }
            room.sent = Some(now);
        }
        room.send_maps(now);
    }
}

#[cfg(test)]
mod tests {
    use parallax_core::room::Presence;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn what_a_silent_replica_said_lapses_though_nothing_here_changes() {
        let presences = Arc::new(Presences::default());
        presences.lock().insert("room".to_string(), Room::default());
        let there = MemberPresence {
            member: "m-b".into(),
            device: "Quest 3 B".into(),
            presence: Presence {
                head: [0.0, 1.6, 0.0],
                orientation: [0.0, 0.0, 0.0, 1.0],
                ray: None,
            },
        };
        presences.merge("room", vec![there], Vec::new());
        let present = |p: &Presences| p.lock()["room"].latest.contains_key("m-b");
        assert!(present(&presences));
        // Its replica says nothing more, and nobody here moves: it is gone within the lapse
        // and a half, and the watch ends with it.
        tokio::time::sleep(REMOTE_LAPSE + REMOTE_LAPSE / 2 + Duration::from_millis(10)).await;
        assert!(!present(&presences), "lapsed");
        assert!(!presences.lock()["room"].watched);
    }
}
