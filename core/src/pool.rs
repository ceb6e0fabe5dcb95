//! The pool of render hosts: a capacity and a warm-standby target per size, exclusive leases,
//! and a FIFO queue per size for callers willing to wait when every host is taken.
//!
//! The pool only decides. Starting and stopping host processes is the caller's job: it drains
//! [`PoolEffect`]s with [`Pool::poll_effect`] and reports back with [`Pool::handle_host_ready`]
//! and [`Pool::handle_host_lost`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::session::HostId;
use crate::session::{SessionKey, SessionSize};

/// Limits for one size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Most hosts of this size that may exist at once.
    pub capacity: u32,
    /// Hosts kept booted and unleased, so a new session is Ready at once.
    pub standby: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    pub standard: SizeLimits,
    pub premium: SizeLimits,
}

impl PoolConfig {
    pub fn limits(&self, size: SessionSize) -> SizeLimits {
        match size {
            SessionSize::Standard => self.standard,
            SessionSize::Premium => self.premium,
        }
    }
}

/// What the pool needs done to the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolEffect {
    /// Boot a host of `size` named `host`; report it with `handle_host_ready`.
    StartHost { host: HostId, size: SessionSize },
    /// The host's session ended: drop its connection and scene, then it serves the next lease.
    ResetHost { host: HostId },
    /// The pool lets the host go: its session ended and the free hosts of its size are already
    /// at the standby target. Stop it; it is no longer the pool's.
    StopHost { host: HostId },
}

/// Where a new lease stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Allocation {
    /// A warm host was free: the session is Ready now.
    Ready(HostId),
    /// A host is booting for the session.
    Starting(HostId),
    /// Every host of the size is taken; the session waits at this 1-based position.
    Queued(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    #[error("all {capacity} {size} render hosts are in use; {}", exhausted_hint(*size))]
    Exhausted { size: SessionSize, capacity: u32 },
    /// A host offered itself under a name the pool already has.
    #[error("a render host named {0} is in the pool already")]
    NameTaken(HostId),
}

fn exhausted_hint(size: SessionSize) -> &'static str {
    match size {
        SessionSize::Standard => "try Premium, or ask to queue",
        SessionSize::Premium => "ask to queue, or try again when a session ends",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum HostState {
    /// Booting; `for_session` when a session is waiting for exactly this host.
    Booting {
        for_session: Option<SessionKey>,
    },
    Idle,
    Leased(SessionKey),
    /// Known from before a coordinator restart, not yet registered again: leased to the session
    /// it served (`Some`), or free if that session ended meanwhile.
    Returning(Option<SessionKey>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Host {
    size: SessionSize,
    state: HostState,
    /// It offered itself (another machine's host, started by someone else): the pool keeps it
    /// however many are free, as it never started it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    offered: bool,
}

/// A session that just got a host because another released one or a host finished booting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub session: SessionKey,
    pub host: HostId,
}

/// The pool's state without its limits or pending effects: what coordinator replicas sharing
/// one pool keep in their database and take up again for each change (docs/SCALING.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    hosts: BTreeMap<HostId, Host>,
    queues: [VecDeque<SessionKey>; 2],
    next_host: [u64; 2],
    lost: [u32; 2],
}

#[derive(Debug)]
pub struct Pool {
    config: PoolConfig,
    hosts: BTreeMap<HostId, Host>,
    queues: [VecDeque<SessionKey>; 2],
    /// Per size, so hosts are named `standard-1`, `premium-1`, … in boot order.
    next_host: [u64; 2],
    /// Per size, hosts lost since the pool started.
    lost: [u32; 2],
    effects: VecDeque<PoolEffect>,
}

impl Pool {
    /// A pool that starts booting its standby hosts right away (see [`Pool::poll_effect`]).
    pub fn new(config: PoolConfig) -> Self {
        Self::restore(config, [], [0, 0])
    }

    /// The pool of a restarted coordinator: `returning` are the hosts its Ready sessions were
    /// on, which outlive a coordinator and register again; they keep their leases (and names)
    /// until they do, or until [`Pool::handle_returns_overdue`]. Standby hosts boot beside
    /// them within capacity.
    /// New hosts are named past `named` too (per size, by [`SessionSize::index`]): the highest
    /// numbers a pool before this one gave, so no name (nor the credential made of it) comes
    /// back.
    pub fn restore(
        config: PoolConfig,
        returning: impl IntoIterator<Item = (HostId, SessionSize, SessionKey)>,
        named: [u64; 2],
    ) -> Self {
        let mut pool = Self {
            config,
            hosts: BTreeMap::new(),
            queues: [VecDeque::new(), VecDeque::new()],
            next_host: named,
            lost: [0, 0],
            effects: VecDeque::new(),
        };
        for (host, size, session) in returning {
            let number = host_number(&host, size);
            let named_by_pool = number.is_some();
            // New hosts are named after the returning ones, never reusing a name.
            if let Some(number) = number {
                let next = &mut pool.next_host[size.index()];
                *next = (*next).max(number);
            }
            pool.hosts.insert(
                host,
                Host {
                    size,
                    state: HostState::Returning(Some(session)),
                    // Named as the pool names the hosts it starts, or else another machine's.
                    offered: !named_by_pool,
                },
            );
        }
        for size in SessionSize::ALL {
            pool.refill(size);
        }
        pool
    }

    pub fn config(&self) -> PoolConfig {
        self.config
    }

    /// The state to store for the next replica to [`Pool::resume`].
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            hosts: self.hosts.clone(),
            queues: self.queues.clone(),
            next_host: self.next_host,
            lost: self.lost,
        }
    }

    /// Takes a stored pool up again under `config`, booting standby hosts if it now wants
    /// more.
    pub fn resume(config: PoolConfig, snapshot: PoolSnapshot) -> Self {
        let mut pool = Self {
            config,
            hosts: snapshot.hosts,
            queues: snapshot.queues,
            next_host: snapshot.next_host,
            lost: snapshot.lost,
            effects: VecDeque::new(),
        };
        for size in SessionSize::ALL {
            pool.refill(size);
        }
        pool
    }

    /// Every host the pool has, and whether it is still booting.
    pub fn hosts(&self) -> impl Iterator<Item = (&HostId, bool)> {
        self.hosts
            .iter()
            .map(|(id, h)| (id, matches!(h.state, HostState::Booting { .. })))
    }

    /// The size of `host`, if the pool has it (booting, free, leased or returning).
    pub fn size_of(&self, host: &HostId) -> Option<SessionSize> {
        self.hosts.get(host).map(|h| h.size)
    }

    /// Whether `host` is booting: started (or offered) and not registered yet.
    pub fn is_booting(&self, host: &HostId) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| matches!(h.state, HostState::Booting { .. }))
    }

    /// Whether `host` is one from before a restart that has not registered again.
    pub fn is_returning(&self, host: &HostId) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| matches!(h.state, HostState::Returning(_)))
    }

    /// The session `host` serves, if it is leased.
    pub fn lease_of(&self, host: &HostId) -> Option<&SessionKey> {
        match &self.hosts.get(host)?.state {
            HostState::Leased(session) => Some(session),
            _ => None,
        }
    }

    /// The hosts from before a restart that did not register again in time are lost; returns
    /// each with the session it was still serving.
    pub fn handle_returns_overdue(&mut self) -> Vec<(HostId, Option<SessionKey>)> {
        let overdue: Vec<HostId> = self
            .hosts
            .iter()
            .filter(|(_, h)| matches!(h.state, HostState::Returning(_)))
            .map(|(id, _)| id.clone())
            .collect();
        overdue
            .into_iter()
            .map(|host| {
                let session = self.handle_host_lost(&host);
                (host, session)
            })
            .collect()
    }

    /// Finds a host for `session`: a warm one, else a new one if capacity allows, else a place
    /// in the queue if `queue` is set.
    pub fn handle_allocate(
        &mut self,
        session: SessionKey,
        size: SessionSize,
        queue: bool,
    ) -> Result<Allocation, PoolError> {
        if let Some(host) = self.find(size, |state| *state == HostState::Idle) {
            self.set(&host, HostState::Leased(session));
            self.refill(size);
            return Ok(Allocation::Ready(host));
        }
        // A standby host that is still booting is as good as a new one, and sooner.
        if let Some(host) = self.find(size, |state| {
            *state == HostState::Booting { for_session: None }
        }) {
            self.set(
                &host,
                HostState::Booting {
                    for_session: Some(session),
                },
            );
            self.refill(size);
            return Ok(Allocation::Starting(host));
        }
        if self.count(size) < self.config.limits(size).capacity {
            let host = self.start_host(size, Some(session));
            self.refill(size);
            return Ok(Allocation::Starting(host));
        }
        if queue {
            let waiting = &mut self.queues[size.index()];
            waiting.push_back(session);
            return Ok(Allocation::Queued(waiting.len()));
        }
        Err(PoolError::Exhausted {
            size,
            capacity: self.config.limits(size).capacity,
        })
    }

    /// A host finished booting, or one from before a restart registered again. Returns the
    /// session it now serves, if one was waiting (a returning host's own session was Ready all
    /// along and is not granted again).
    pub fn handle_host_ready(&mut self, host: &HostId) -> Option<Granted> {
        let entry = self.hosts.get_mut(host)?;
        let size = entry.size;
        let for_session = match &entry.state {
            HostState::Booting { for_session } => for_session.clone(),
            HostState::Returning(Some(session)) => {
                entry.state = HostState::Leased(session.clone());
                return None;
            }
            HostState::Returning(None) => None,
            HostState::Idle | HostState::Leased(_) => return None,
        };
        match for_session {
            Some(session) => {
                entry.state = HostState::Leased(session.clone());
                Some(Granted {
                    session,
                    host: host.clone(),
                })
            }
            None => {
                entry.state = HostState::Idle;
                self.grant_next(size, host)
            }
        }
    }

    /// A host nobody asked for offers itself under its own name `host` (another machine, named
    /// by its credential, or a host that outlived a coordinator restart). It joins as a free
    /// host of `size` if capacity allows and the name is not the pool's already.
    pub fn handle_host_offered(
        &mut self,
        host: HostId,
        size: SessionSize,
    ) -> Result<(), PoolError> {
        if self.hosts.contains_key(&host) {
            return Err(PoolError::NameTaken(host));
        }
        let capacity = self.config.limits(size).capacity;
        if self.count(size) >= capacity {
            return Err(PoolError::Exhausted { size, capacity });
        }
        self.hosts.insert(
            host.clone(),
            Host {
                size,
                state: HostState::Booting { for_session: None },
                offered: true,
            },
        );
        Ok(())
    }

    /// `session` ended or gave up: its host is reset and serves the next in the queue, or
    /// becomes standby. A queued session simply leaves the queue.
    pub fn handle_release(&mut self, session: &SessionKey) -> Option<Granted> {
        for waiting in &mut self.queues {
            waiting.retain(|s| s != session);
        }
        let (host, size, leased) = self.hosts.iter().find_map(|(id, h)| match &h.state {
            HostState::Leased(s)
            | HostState::Returning(Some(s))
            | HostState::Booting {
                for_session: Some(s),
            } if s == session => Some((id.clone(), h.size, h.state.clone())),
            _ => None,
        })?;
        match leased {
            // Not back yet: it is reset when it registers again, and then serves the next.
            HostState::Returning(_) => {
                self.set(&host, HostState::Returning(None));
                return None;
            }
            // Still booting: it will become someone else's host, or standby, when it is up.
            HostState::Booting { .. } => {
                let next = self.queues[size.index()].pop_front();
                self.set(&host, HostState::Booting { for_session: next });
                return None;
            }
            HostState::Idle | HostState::Leased(_) => {}
        }
        let spare = self.queues[size.index()].is_empty()
            && self.standby(size) >= self.config.limits(size).standby
            && self.hosts.get(&host).is_some_and(|h| !h.offered);
        if spare {
            // One more free host than the standby target asks for: let it go.
            self.hosts.remove(&host);
            self.effects.push_back(PoolEffect::StopHost { host });
            return None;
        }
        self.effects
            .push_back(PoolEffect::ResetHost { host: host.clone() });
        self.set(&host, HostState::Idle);
        self.grant_next(size, &host)
    }

    /// A host died or stopped answering. Returns the session it served or was booting for;
    /// a replacement is started if the standby target needs one.
    pub fn handle_host_lost(&mut self, host: &HostId) -> Option<SessionKey> {
        let lost = self.hosts.remove(host)?;
        self.lost[lost.size.index()] += 1;
        let session = match lost.state {
            HostState::Leased(session)
            | HostState::Returning(Some(session))
            | HostState::Booting {
                for_session: Some(session),
            } => Some(session),
            _ => None,
        };
        self.refill(lost.size);
        session
    }

    /// 1-based place of `session` in its size's queue.
    pub fn queue_position(&self, session: &SessionKey) -> Option<usize> {
        self.queues
            .iter()
            .find_map(|waiting| waiting.iter().position(|s| s == session).map(|p| p + 1))
    }

    /// Sessions waiting for a host of `size`, first first.
    pub fn queued(&self, size: SessionSize) -> impl Iterator<Item = &SessionKey> {
        self.queues[size.index()].iter()
    }

    /// Hosts of `size` lost (died, fell silent, never registered) since the pool started.
    pub fn lost(&self, size: SessionSize) -> u32 {
        self.lost[size.index()]
    }

    /// Hosts of `size`: (total, idle, leased); the rest are still starting.
    pub fn utilization(&self, size: SessionSize) -> (u32, u32, u32) {
        let of_size = || self.hosts.values().filter(move |h| h.size == size);
        let idle = of_size().filter(|h| h.state == HostState::Idle).count() as u32;
        let leased = of_size()
            .filter(|h| {
                matches!(
                    h.state,
                    HostState::Leased(_) | HostState::Returning(Some(_))
                )
            })
            .count() as u32;
        (self.count(size), idle, leased)
    }

    pub fn poll_effect(&mut self) -> Option<PoolEffect> {
        self.effects.pop_front()
    }

    fn grant_next(&mut self, size: SessionSize, host: &HostId) -> Option<Granted> {
        let session = self.queues[size.index()].pop_front()?;
        self.set(host, HostState::Leased(session.clone()));
        Some(Granted {
            session,
            host: host.clone(),
        })
    }

    /// Boots hosts until the standby target is met, within capacity.
    fn refill(&mut self, size: SessionSize) {
        let limits = self.config.limits(size);
        while self.standby(size) < limits.standby && self.count(size) < limits.capacity {
            self.start_host(size, None);
        }
    }

    fn standby(&self, size: SessionSize) -> u32 {
        self.hosts
            .values()
            .filter(|h| {
                h.size == size
                    && matches!(
                        h.state,
                        HostState::Idle | HostState::Booting { for_session: None }
                    )
            })
            .count() as u32
    }

    fn count(&self, size: SessionSize) -> u32 {
        self.hosts.values().filter(|h| h.size == size).count() as u32
    }

    fn find(&self, size: SessionSize, wanted: impl Fn(&HostState) -> bool) -> Option<HostId> {
        self.hosts
            .iter()
            .find(|(_, h)| h.size == size && wanted(&h.state))
            .map(|(id, _)| id.clone())
    }

    fn set(&mut self, host: &HostId, state: HostState) {
        if let Some(entry) = self.hosts.get_mut(host) {
            entry.state = state;
        }
    }

    /// The next name of `size` (numbered past every host it has known, returning ones too, and
    /// past any that offered itself under such a name).
    fn name_host(&mut self, size: SessionSize) -> HostId {
        loop {
            let number = &mut self.next_host[size.index()];
            *number += 1;
            let host = HostId::new(format!("{}{number}", host_name_prefix(size)));
            if !self.hosts.contains_key(&host) {
                return host;
            }
        }
    }

    fn start_host(&mut self, size: SessionSize, for_session: Option<SessionKey>) -> HostId {
        let host = self.name_host(size);
        self.hosts.insert(
            host.clone(),
            Host {
                size,
                state: HostState::Booting { for_session },
                offered: false,
            },
        );
        self.effects.push_back(PoolEffect::StartHost {
            host: host.clone(),
            size,
        });
        host
    }
}

/// How the names of `size`'s hosts begin: `standard-`, `premium-`.
fn host_name_prefix(size: SessionSize) -> String {
    format!("{}-", size.as_str().to_ascii_lowercase())
}

/// The number of `host` when the pool named it (`standard-7` of Standard: 7).
pub fn host_number(host: &HostId, size: SessionSize) -> Option<u64> {
    host.as_str()
        .strip_prefix(&host_name_prefix(size))
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> SessionKey {
        SessionKey::new("acct", crate::session::SessionId::parse(s).unwrap())
    }

    fn pool(capacity: u32, standby: u32) -> Pool {
        Pool::new(PoolConfig {
            standard: SizeLimits { capacity, standby },
            premium: SizeLimits {
                capacity: 1,
                standby: 0,
            },
        })
    }

    fn drain(pool: &mut Pool) -> Vec<PoolEffect> {
        std::iter::from_fn(|| pool.poll_effect()).collect()
    }

    fn start(host: &str) -> PoolEffect {
        PoolEffect::StartHost {
            host: HostId::new(host),
            size: SessionSize::Standard,
        }
    }

    /// A restarted pool of `standby` and room for three whose `standard-1` and `standard-2` were
    /// serving `a` and `b`.
    fn restored(standby: u32) -> (Pool, HostId, HostId) {
        let (one, two) = (HostId::new("standard-1"), HostId::new("standard-2"));
        let standard = SessionSize::Standard;
        let pool = Pool::restore(
            pool(3, standby).config(),
            [
                (one.clone(), standard, id("a")),
                (two.clone(), standard, id("b")),
            ],
            [0, 0],
        );
        (pool, one, two)
    }

    #[test]
    fn hosts_from_before_a_restart_keep_their_lease_and_name_until_they_return() {
        let standard = SessionSize::Standard;
        let (mut pool, one, two) = restored(1);
        // Standby boots beside them under a name neither holds.
        assert_eq!(drain(&mut pool), [start("standard-3")]);
        assert_eq!(pool.utilization(standard), (3, 0, 2));
        // `a` is back: leased as before, nobody is granted anything.
        assert_eq!(pool.handle_host_ready(&one), None);
        assert_eq!(pool.lease_of(&one), Some(&id("a")));
        assert!(!pool.is_returning(&one));
        assert!(!pool.is_returning(&HostId::new("standard-9")));
        // `b` ended before its host came back: the host serves the next in the queue once it
        // does (the coordinator resets it then).
        assert_eq!(
            pool.handle_allocate(id("c"), standard, true),
            Ok(Allocation::Starting(HostId::new("standard-3")))
        );
        assert_eq!(
            pool.handle_allocate(id("d"), standard, true),
            Ok(Allocation::Queued(1))
        );
        assert_eq!(pool.handle_release(&id("b")), None);
        assert!(pool.is_returning(&two));
        assert_eq!(
            pool.handle_host_ready(&two),
            Some(Granted {
                session: id("d"),
                host: two.clone()
            })
        );
        assert_eq!(pool.handle_returns_overdue(), []);
    }

    #[test]
    fn a_restarted_pool_names_its_hosts_past_every_name_given_before() {
        let (one, standard) = (HostId::new("standard-1"), SessionSize::Standard);
        // Hosts up to standard-7 were named before; standard-1 serves `a` still.
        let mut pool = Pool::restore(
            pool(3, 1).config(),
            [(one.clone(), standard, id("a"))],
            [7, 0],
        );
        assert_eq!(drain(&mut pool), [start("standard-8")]);
        assert_eq!(host_number(&HostId::new("standard-8"), standard), Some(8));
        assert_eq!(host_number(&HostId::new("gpu-box"), standard), None);
    }

    #[test]
    fn a_session_that_ends_before_its_host_returns_frees_only_that_host() {
        let (mut pool, one, two) = restored(0);
        assert_eq!(pool.handle_release(&id("b")), None);
        // `a`'s host, still away, keeps `a`'s lease; `b`'s comes back free.
        assert_eq!(pool.handle_host_ready(&one), None);
        assert_eq!(pool.lease_of(&one), Some(&id("a")));
        assert_eq!(pool.handle_host_ready(&two), None);
        assert_eq!(pool.lease_of(&two), None);
        assert_eq!(pool.utilization(SessionSize::Standard), (2, 1, 1));
    }

    #[test]
    fn a_host_that_does_not_return_is_lost_with_its_session() {
        let config = pool(1, 1).config();
        let host = HostId::new("standard-1");
        let mut pool = Pool::restore(
            config,
            [(host.clone(), SessionSize::Standard, id("a"))],
            [0, 0],
        );
        // At capacity: no standby until the returning host is given up.
        assert_eq!(drain(&mut pool), []);
        assert_eq!(pool.handle_returns_overdue(), [(host, Some(id("a")))]);
        assert_eq!(pool.lost(SessionSize::Standard), 1);
        assert_eq!(drain(&mut pool), [start("standard-2")]);
    }

    #[test]
    fn standby_hosts_boot_at_once_and_make_the_next_session_ready_immediately() {
        let mut pool = pool(3, 1);
        assert_eq!(drain(&mut pool), [start("standard-1")]);
        assert_eq!(pool.handle_host_ready(&HostId::new("standard-1")), None);

        let allocation = pool.handle_allocate(id("a"), SessionSize::Standard, false);
        assert_eq!(allocation, Ok(Allocation::Ready(HostId::new("standard-1"))));
        // The standby target is refilled right away.
        assert_eq!(drain(&mut pool), [start("standard-2")]);
        assert_eq!(pool.utilization(SessionSize::Standard), (2, 0, 1));
    }

    #[test]
    fn a_booting_standby_host_is_handed_to_the_first_session_that_asks() {
        let mut pool = pool(2, 1);
        drain(&mut pool);
        let allocation = pool.handle_allocate(id("a"), SessionSize::Standard, false);
        assert_eq!(
            allocation,
            Ok(Allocation::Starting(HostId::new("standard-1")))
        );
        assert_eq!(
            pool.handle_host_ready(&HostId::new("standard-1")),
            Some(Granted {
                session: id("a"),
                host: HostId::new("standard-1")
            })
        );
    }

    #[test]
    fn a_full_size_fails_clearly_unless_the_caller_queues() {
        let mut pool = pool(1, 0);
        assert_eq!(drain(&mut pool), []);
        assert!(matches!(
            pool.handle_allocate(id("a"), SessionSize::Standard, false),
            Ok(Allocation::Starting(_))
        ));
        assert_eq!(
            pool.handle_allocate(id("b"), SessionSize::Standard, false),
            Err(PoolError::Exhausted {
                size: SessionSize::Standard,
                capacity: 1
            })
        );
        // Premium has its own hosts.
        assert!(
            pool.handle_allocate(id("p"), SessionSize::Premium, false)
                .is_ok()
        );
        assert_eq!(
            pool.handle_allocate(id("b"), SessionSize::Standard, true),
            Ok(Allocation::Queued(1))
        );
        assert_eq!(
            pool.handle_allocate(id("c"), SessionSize::Standard, true),
            Ok(Allocation::Queued(2))
        );
        assert_eq!(pool.queue_position(&id("c")), Some(2));
    }

    #[test]
    fn the_queue_is_first_come_first_served_and_a_stopped_waiter_leaves_it() {
        let mut pool = pool(1, 0);
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        drain(&mut pool);
        pool.handle_host_ready(&HostId::new("standard-1"));
        for waiter in ["b", "c", "d"] {
            pool.handle_allocate(id(waiter), SessionSize::Standard, true)
                .unwrap();
        }
        assert_eq!(
            pool.handle_release(&id("c")),
            None,
            "a queued session just leaves"
        );
        assert_eq!(pool.queue_position(&id("d")), Some(2));

        let granted = pool.handle_release(&id("a"));
        assert_eq!(
            granted,
            Some(Granted {
                session: id("b"),
                host: HostId::new("standard-1")
            })
        );
        assert_eq!(
            drain(&mut pool),
            [PoolEffect::ResetHost {
                host: HostId::new("standard-1")
            }]
        );
        assert_eq!(pool.queue_position(&id("d")), Some(1));
        assert_eq!(
            pool.handle_release(&id("b")).map(|g| g.session),
            Some(id("d"))
        );
        assert_eq!(pool.handle_release(&id("d")), None);
        // Nobody waits and the standby target is none: the host is let go.
        assert_eq!(pool.utilization(SessionSize::Standard), (0, 0, 0));
    }

    #[test]
    fn a_session_that_ends_with_standby_met_lets_its_host_go() {
        let pool_of = pool;
        let mut pool = pool_of(3, 1);
        drain(&mut pool);
        pool.handle_host_ready(&HostId::new("standard-1"));
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        // standard-2 boots to keep one free; it is up before `a` ends.
        assert_eq!(drain(&mut pool), [start("standard-2")]);
        pool.handle_host_ready(&HostId::new("standard-2"));
        assert_eq!(pool.handle_release(&id("a")), None);
        assert_eq!(
            drain(&mut pool),
            [PoolEffect::StopHost {
                host: HostId::new("standard-1")
            }]
        );
        assert_eq!(pool.size_of(&HostId::new("standard-1")), None);
        assert_eq!(pool.utilization(SessionSize::Standard), (1, 1, 0));

        // Below the target, a freed host stays as the standby.
        let mut pool = pool_of(1, 1);
        drain(&mut pool);
        pool.handle_host_ready(&HostId::new("standard-1"));
        pool.handle_allocate(id("b"), SessionSize::Standard, false)
            .unwrap();
        let _ = pool.handle_release(&id("b"));
        assert_eq!(
            drain(&mut pool),
            [PoolEffect::ResetHost {
                host: HostId::new("standard-1")
            }]
        );
    }

    #[test]
    fn a_host_that_offered_itself_is_kept_however_many_are_free() {
        let mut pool = pool(3, 0);
        pool.handle_host_offered(HostId::new("lab-pc"), SessionSize::Standard)
            .unwrap();
        pool.handle_host_ready(&HostId::new("lab-pc"));
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        let _ = pool.handle_release(&id("a"));
        assert_eq!(
            drain(&mut pool),
            [PoolEffect::ResetHost {
                host: HostId::new("lab-pc")
            }]
        );

        // The same after a restart, when it comes back with its session: its name says it is
        // not one the pool started.
        let config = pool.config();
        let lab = HostId::new("lab-pc");
        let mut pool = Pool::restore(
            config,
            [(lab.clone(), SessionSize::Standard, id("b"))],
            [0, 0],
        );
        pool.handle_host_ready(&lab);
        let _ = pool.handle_release(&id("b"));
        assert_eq!(drain(&mut pool), [PoolEffect::ResetHost { host: lab }]);
    }

    #[test]
    fn releasing_a_session_whose_host_still_boots_passes_the_host_on() {
        let mut pool = pool(1, 0);
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        pool.handle_allocate(id("b"), SessionSize::Standard, true)
            .unwrap();
        assert_eq!(pool.handle_release(&id("a")), None);
        assert_eq!(
            pool.queue_position(&id("b")),
            None,
            "b now waits for that host, not in the queue"
        );
        assert_eq!(
            pool.handle_host_ready(&HostId::new("standard-1"))
                .map(|g| g.session),
            Some(id("b"))
        );
    }

    #[test]
    fn a_lost_host_gives_back_its_session_and_is_replaced_for_standby() {
        let mut pool = pool(2, 1);
        drain(&mut pool);
        pool.handle_host_ready(&HostId::new("standard-1"));
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        pool.handle_host_ready(&HostId::new("standard-2"));
        drain(&mut pool);
        assert_eq!(
            pool.handle_host_lost(&HostId::new("standard-1")),
            Some(id("a"))
        );
        assert_eq!(
            pool.handle_host_lost(&HostId::new("standard-1")),
            None,
            "reported twice"
        );
        // standard-2 is still a warm standby, so nothing new is needed...
        assert_eq!(drain(&mut pool), []);
        // ...until it is lost too.
        assert_eq!(pool.handle_host_lost(&HostId::new("standard-2")), None);
        assert_eq!(
            pool.lost(SessionSize::Standard),
            2,
            "each loss counted once"
        );
        assert_eq!(drain(&mut pool), [start("standard-3")]);
    }

    #[test]
    fn a_host_that_offers_itself_serves_the_queue_within_capacity() {
        let mut pool = pool(2, 0);
        pool.handle_allocate(id("a"), SessionSize::Standard, true)
            .unwrap();
        assert_eq!(drain(&mut pool), [start("standard-1")]);
        assert_eq!(
            pool.handle_allocate(id("b"), SessionSize::Standard, false),
            Ok(Allocation::Starting(HostId::new("standard-2")))
        );
        drain(&mut pool);
        assert_eq!(
            pool.handle_allocate(id("c"), SessionSize::Standard, true),
            Ok(Allocation::Queued(1))
        );
        // Two hosts exist (booting): a third would pass the capacity.
        let offered = HostId::new("gpu-box-1");
        assert_eq!(
            pool.handle_host_offered(offered.clone(), SessionSize::Standard),
            Err(PoolError::Exhausted {
                size: SessionSize::Standard,
                capacity: 2
            })
        );
        pool.handle_host_lost(&HostId::new("standard-2"));
        assert_eq!(
            pool.handle_host_offered(HostId::new("standard-1"), SessionSize::Standard),
            Err(PoolError::NameTaken(HostId::new("standard-1"))),
            "a host offers itself only under a name of its own"
        );
        pool.handle_host_offered(offered.clone(), SessionSize::Standard)
            .unwrap();
        // Offered hosts are not booted by the pool.
        assert_eq!(drain(&mut pool), []);
        assert_eq!(
            pool.handle_host_ready(&offered),
            Some(Granted {
                session: id("c"),
                host: offered
            })
        );
    }

    #[test]
    fn releasing_one_starting_session_leaves_the_host_booting_for_another() {
        let mut pool = pool(2, 0);
        pool.handle_allocate(id("a"), SessionSize::Standard, false)
            .unwrap();
        pool.handle_allocate(id("b"), SessionSize::Standard, false)
            .unwrap();
        drain(&mut pool);
        assert_eq!(pool.handle_release(&id("b")), None);
        assert_eq!(
            pool.handle_host_ready(&HostId::new("standard-1")),
            Some(Granted {
                session: id("a"),
                host: HostId::new("standard-1")
            })
        );
    }

    #[test]
    fn the_queue_lists_its_waiters_and_a_full_pool_says_what_to_do() {
        let mut pool = pool(1, 0);
        for (session, queue) in [("a", false), ("b", true), ("c", true)] {
            pool.handle_allocate(id(session), SessionSize::Standard, queue)
                .unwrap();
        }
        let waiting: Vec<SessionKey> = pool.queued(SessionSize::Standard).cloned().collect();
        assert_eq!(waiting, [id("b"), id("c")]);
        assert_eq!(pool.queued(SessionSize::Premium).count(), 0);
        let standard = PoolError::Exhausted {
            size: SessionSize::Standard,
            capacity: 1,
        }
        .to_string();
        assert!(
            standard.ends_with("; try Premium, or ask to queue"),
            "{standard}"
        );
        let premium = PoolError::Exhausted {
            size: SessionSize::Premium,
            capacity: 1,
        }
        .to_string();
        assert!(premium.contains("ask to queue, or try again"), "{premium}");
    }
}
