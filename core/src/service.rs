//! The render session service: every session of every account, and the pool they lease from.
//!
//! Inputs are `handle_*(…, now)`; what must happen outside (rows to store, hosts to start or
//! reset) comes out of [`SessionService::poll_effect`]; [`SessionService::poll_timeout`] says
//! when leases expire or records are due for purging, so the caller knows when to call
//! [`SessionService::handle_timeout`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use thiserror::Error;

use crate::pool::{
    Allocation, Granted, HostId, Pool, PoolConfig, PoolEffect, PoolError, PoolSnapshot,
};
use crate::session::{
    ExtendError, MAX_LEASE_MINUTES, RenderSession, SessionId, SessionKey, SessionSize,
    SessionStatus,
};
use crate::time::Timestamp;

/// Why a session ended in `Error` when the coordinator restarted under it.
pub const LOST_IN_RESTART: &str =
    "its render host did not register again after the coordinator restarted";

/// A request to lease a render host.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSession {
    pub key: SessionKey,
    pub size: SessionSize,
    pub max_lease_minutes: u32,
    /// Wait in the queue instead of failing when every host of the size is taken.
    pub queue: bool,
    /// The most sessions the key's account may have at once (queued, starting or ready), this
    /// one included: its quota. `None`: no limit.
    pub account_limit: Option<usize>,
}

/// Whether a create made something new (201) or found the same session (200, a safe retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CreateError {
    #[error("maxLeaseTimeMinutes must be between 0 and {MAX_LEASE_MINUTES}, not {0}")]
    BadLease(u32),
    #[error(
        "a session named {id} already exists with other settings ({size}, {minutes} minutes)",
        id = existing.id, size = existing.size, minutes = existing.max_lease_minutes
    )]
    Conflict { existing: Box<RenderSession> },
    #[error(transparent)]
    Exhausted(#[from] PoolError),
    #[error(
        "account {account} has {limit} render sessions already, the most it may have at once; \
         stop one (or leave a space with a headset) first"
    )]
    AccountLimit { account: String, limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionError {
    #[error("there is no session named {0}")]
    NotFound(SessionId),
    #[error(transparent)]
    Extend(#[from] ExtendError),
}

/// What the caller must carry out.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Store this session as it now is.
    Persist(RenderSession),
    /// Delete this ended session's record: its retention is over.
    Purge(SessionKey),
    /// Boot a render host.
    StartHost { host: HostId, size: SessionSize },
    /// Drop the host's device connection and scene: its session is over.
    ResetHost { host: HostId },
    /// Stop the host: the pool let it go (more free hosts than the standby target).
    StopHost { host: HostId },
}

#[derive(Debug)]
pub struct SessionService {
    sessions: BTreeMap<SessionKey, RenderSession>,
    /// Each session's next deadline (lease end, else purge time), ordered, so timeouts cost
    /// O(log n) however many ended sessions are kept for their 30 days.
    deadlines: BTreeSet<(Timestamp, SessionKey)>,
    deadline_of: HashMap<SessionKey, Timestamp>,
    pool: Pool,
    effects: VecDeque<Effect>,
    /// After a restart: when the hosts that have not registered again are given up.
    returns_due: Option<Timestamp>,
}

impl SessionService {
    pub fn new(config: PoolConfig) -> Self {
        let mut service = Self {
            sessions: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            pool: Pool::new(config),
            effects: VecDeque::new(),
            returns_due: None,
        };
        service.collect_pool_effects();
        service
    }

    /// Rebuilds the service from stored sessions after a restart. Render hosts outlive the
    /// coordinator: a Ready session keeps its host, which has `return_grace` to register again
    /// (see [`Pool::restore`]); after that its session ends in `Error` (never silently dropped).
    /// A Starting one asks the pool again, waiting in the queue if it must.
    /// New hosts are named past `named` ([`Pool::restore`]).
    pub fn restore(
        config: PoolConfig,
        stored: Vec<RenderSession>,
        now: Timestamp,
        return_grace: std::time::Duration,
        named: [u64; 2],
    ) -> Self {
        let mut waiting = Vec::new();
        let mut returning = Vec::new();
        let mut sessions = BTreeMap::new();
        let mut effects = VecDeque::new();
        for mut session in stored {
            match (session.status, &session.host) {
                (SessionStatus::Ready, Some(host)) => {
                    returning.push((host.clone(), session.size, session.key()));
                }
                (SessionStatus::Ready, None) => {
                    session.handle_end(SessionStatus::Error, now, Some(LOST_IN_RESTART.into()));
                    effects.push_back(Effect::Persist(session.clone()));
                }
                (SessionStatus::Starting, _) => waiting.push(session.key()),
                _ => {}
            }
            sessions.insert(session.key(), session);
        }
        let mut service = Self {
            returns_due: (!returning.is_empty()).then(|| now.after(return_grace)),
            pool: Pool::restore(config, returning, named),
            sessions,
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            effects,
        };
        let keys: Vec<SessionKey> = service.sessions.keys().cloned().collect();
        for key in &keys {
            service.reindex(key);
        }
        waiting.sort_by_key(|key| service.sessions[key].created_at);
        for key in waiting {
            let size = service.sessions[&key].size;
            let allocation = service.pool.handle_allocate(key.clone(), size, true);
            service.apply_allocation(&key, allocation, now);
        }
        service.collect_pool_effects();
        service
    }

    /// Takes up a pool shared by coordinator replicas, as one of them stored it, with the
    /// sessions it concerns: every Starting and Ready one (and any other the caller is about to
    /// read). Unlike [`Self::restore`] nothing is assumed lost: the hosts were linked to some
    /// replica all along.
    pub fn resume(config: PoolConfig, pool: PoolSnapshot, sessions: Vec<RenderSession>) -> Self {
        let mut service = Self {
            sessions: sessions.into_iter().map(|s| (s.key(), s)).collect(),
            deadlines: BTreeSet::new(),
            deadline_of: HashMap::new(),
            pool: Pool::resume(config, pool),
            effects: VecDeque::new(),
            returns_due: None,
        };
        let keys: Vec<SessionKey> = service.sessions.keys().cloned().collect();
        for key in &keys {
            service.reindex(key);
        }
        service.collect_pool_effects();
        service
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Leases a host for a new session, or returns the existing one for a safe retry.
    pub fn handle_create(
        &mut self,
        request: CreateSession,
        now: Timestamp,
    ) -> Result<(Created, &RenderSession), CreateError> {
        if request.max_lease_minutes > MAX_LEASE_MINUTES {
            return Err(CreateError::BadLease(request.max_lease_minutes));
        }
        self.handle_timeout(now);
        if let Some(existing) = self.sessions.get(&request.key) {
            // A retry of the same PUT: same size, and the lease it was created with or raised to.
            return if existing.size == request.size
                && existing.max_lease_minutes == request.max_lease_minutes
            {
                Ok((Created::Existing, &self.sessions[&request.key]))
            } else {
                Err(CreateError::Conflict {
                    existing: Box::new(existing.clone()),
                })
            };
        }
        if let Some(limit) = request.account_limit {
            let account = &request.key.account;
            let held = self
                .sessions
                .values()
                .filter(|s| &s.account == account && s.is_active())
                .count();
            if held >= limit {
                return Err(CreateError::AccountLimit {
                    account: account.clone(),
                    limit,
                });
            }
        }
        let allocation =
            self.pool
                .handle_allocate(request.key.clone(), request.size, request.queue)?;
        let session = RenderSession::new(
            request.key.id.clone(),
            request.key.account.clone(),
            request.size,
            request.max_lease_minutes,
            now,
        );
        self.sessions.insert(request.key.clone(), session);
        self.apply_allocation(&request.key, Ok(allocation), now);
        self.collect_pool_effects();
        Ok((Created::New, &self.sessions[&request.key]))
    }

    /// The session as of `now` (expiry applied first).
    pub fn handle_get(&mut self, key: &SessionKey, now: Timestamp) -> Option<&RenderSession> {
        self.handle_timeout(now);
        self.sessions.get(key)
    }

    /// Raises a session's lease.
    pub fn handle_extend(
        &mut self,
        key: &SessionKey,
        minutes: u32,
        now: Timestamp,
    ) -> Result<&RenderSession, SessionError> {
        self.handle_timeout(now);
        let session = self
            .sessions
            .get_mut(key)
            .ok_or_else(|| SessionError::NotFound(key.id.clone()))?;
        session.handle_extend(minutes)?;
        self.effects.push_back(Effect::Persist(session.clone()));
        self.reindex(key);
        Ok(&self.sessions[key])
    }

    /// Stops a session. Stopping one that already ended changes nothing.
    pub fn handle_stop(&mut self, key: &SessionKey, now: Timestamp) -> Result<(), SessionError> {
        self.handle_timeout(now);
        if !self.sessions.contains_key(key) {
            return Err(SessionError::NotFound(key.id.clone()));
        }
        self.end(key, SessionStatus::Stopped, now, None);
        Ok(())
    }

    /// A host finished booting.
    pub fn handle_host_ready(&mut self, host: &HostId, now: Timestamp) {
        if let Some(granted) = self.pool.handle_host_ready(host) {
            self.grant(granted, now);
        }
        self.collect_pool_effects();
    }

    /// A host offers itself unasked under its own name; once [`Self::handle_host_ready`] is
    /// called for it, it serves the next session of its size.
    pub fn handle_host_offered(
        &mut self,
        host: HostId,
        size: SessionSize,
    ) -> Result<(), PoolError> {
        self.pool.handle_host_offered(host, size)
    }

    /// A host died or stopped heartbeating; its session ends in `Error` with `reason`.
    pub fn handle_host_lost(&mut self, host: &HostId, reason: &str, now: Timestamp) {
        if let Some(key) = self.pool.handle_host_lost(host) {
            self.end(&key, SessionStatus::Error, now, Some(reason.to_string()));
        }
        self.collect_pool_effects();
    }

    /// Expires sessions whose lease ran out, purges records past their retention, and gives
    /// up the hosts that did not come back after a restart.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if let Some(due) = self.returns_due
            && due <= now
        {
            self.returns_due = None;
            for (_, session) in self.pool.handle_returns_overdue() {
                if let Some(key) = session {
                    self.end(
                        &key,
                        SessionStatus::Error,
                        now,
                        Some(LOST_IN_RESTART.into()),
                    );
                }
            }
            self.collect_pool_effects();
        }
        while let Some((at, key)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            let Some(session) = self.sessions.get(&key) else {
                self.deadlines.remove(&(at, key));
                continue;
            };
            if let Some(end) = session.lease_end() {
                // Billing stops when the lease ran out, not when somebody next looked.
                self.end(&key, SessionStatus::Expired, end, None);
            } else {
                self.sessions.remove(&key);
                self.reindex(&key);
                self.effects.push_back(Effect::Purge(key));
            }
        }
    }

    /// The next instant at which [`Self::handle_timeout`] has work.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        match (deadline, self.returns_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// `account`'s sessions that are Starting or Ready, oldest first.
    pub fn active(&self, account: &str) -> Vec<&RenderSession> {
        let mut active: Vec<_> = self
            .sessions
            .values()
            .filter(|s| s.account == account && s.is_active())
            .collect();
        active.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        active
    }

    /// How many sessions on record are in each state (every account).
    pub fn count_by_status(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for session in self.sessions.values() {
            *counts.entry(session.status.as_str()).or_insert(0) += 1;
        }
        counts
    }

    /// Every session of `account` still on record.
    pub fn all(&self, account: &str) -> impl Iterator<Item = &RenderSession> {
        self.sessions.values().filter(move |s| s.account == account)
    }

    /// 1-based place in the queue of a session waiting for a host.
    pub fn queue_position(&self, key: &SessionKey) -> Option<usize> {
        self.pool.queue_position(key)
    }

    fn apply_allocation(
        &mut self,
        key: &SessionKey,
        allocation: Result<Allocation, PoolError>,
        now: Timestamp,
    ) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        match allocation {
            Ok(Allocation::Ready(host)) => session.handle_ready(host, now),
            Ok(Allocation::Starting(host)) => session.handle_waiting_for(Some(host)),
            Ok(Allocation::Queued(_)) => session.handle_waiting_for(None),
            Err(error) => session.handle_end(SessionStatus::Error, now, Some(error.to_string())),
        }
        self.effects.push_back(Effect::Persist(session.clone()));
        self.reindex(key);
    }

    fn grant(&mut self, granted: Granted, now: Timestamp) {
        if let Some(session) = self.sessions.get_mut(&granted.session) {
            session.handle_ready(granted.host, now);
            self.effects.push_back(Effect::Persist(session.clone()));
            self.reindex(&granted.session);
        }
    }

    /// Files `key` under its current deadline (or none, if it has gone).
    fn reindex(&mut self, key: &SessionKey) {
        if let Some(old) = self.deadline_of.remove(key) {
            self.deadlines.remove(&(old, key.clone()));
        }
        let next = self
            .sessions
            .get(key)
            .and_then(|s| s.lease_end().or_else(|| s.purge_at()));
        if let Some(at) = next {
            self.deadlines.insert((at, key.clone()));
            self.deadline_of.insert(key.clone(), at);
        }
    }

    fn end(
        &mut self,
        key: &SessionKey,
        status: SessionStatus,
        at: Timestamp,
        error: Option<String>,
    ) {
        let Some(session) = self.sessions.get_mut(key) else {
            return;
        };
        if session.status.is_terminal() {
            return;
        }
        session.handle_end(status, at, error);
        self.effects.push_back(Effect::Persist(session.clone()));
        self.reindex(key);
        if let Some(granted) = self.pool.handle_release(key) {
            self.grant(granted, at);
        }
        self.collect_pool_effects();
    }

    fn collect_pool_effects(&mut self) {
        while let Some(effect) = self.pool.poll_effect() {
            self.effects.push_back(match effect {
                PoolEffect::StartHost { host, size } => Effect::StartHost { host, size },
                PoolEffect::ResetHost { host } => Effect::ResetHost { host },
                PoolEffect::StopHost { host } => Effect::StopHost { host },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pool::SizeLimits;
    use crate::session::RETENTION;

    const MINUTE: u64 = 60_000;

    fn key(id: &str) -> SessionKey {
        SessionKey::new("contoso", SessionId::parse(id).unwrap())
    }

    fn create(id: &str, size: SessionSize, minutes: u32, queue: bool) -> CreateSession {
        CreateSession {
            key: key(id),
            size,
            max_lease_minutes: minutes,
            queue,
            account_limit: None,
        }
    }

    /// One standard host (warm), one premium host (cold).
    fn service() -> SessionService {
        let mut service = SessionService::new(PoolConfig {
            standard: SizeLimits {
                capacity: 1,
                standby: 1,
            },
            premium: SizeLimits {
                capacity: 1,
                standby: 0,
            },
        });
        let started: Vec<_> = std::iter::from_fn(|| service.poll_effect()).collect();
        assert_eq!(
            started,
            [Effect::StartHost {
                host: HostId::new("standard-1"),
                size: SessionSize::Standard
            }]
        );
        service.handle_host_ready(&HostId::new("standard-1"), Timestamp(0));
        service
    }

    fn status(service: &mut SessionService, id: &str, at: u64) -> SessionStatus {
        service.handle_get(&key(id), Timestamp(at)).unwrap().status
    }

    #[test]
    fn a_warm_host_makes_a_new_session_ready_in_the_create_call() {
        let mut service = service();
        let (created, session) = service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(5))
            .unwrap();
        assert_eq!(created, Created::New);
        assert_eq!(
            (session.status, session.ready_at),
            (SessionStatus::Ready, Some(Timestamp(5)))
        );
        assert_eq!(session.host, Some(HostId::new("standard-1")));
    }

    #[test]
    fn a_cold_host_keeps_the_session_starting_until_it_boots() {
        let mut service = service();
        service
            .handle_create(create("p", SessionSize::Premium, 30, false), Timestamp(0))
            .unwrap();
        assert_eq!(status(&mut service, "p", 1), SessionStatus::Starting);
        assert!(std::iter::from_fn(|| service.poll_effect()).any(|e| e
            == Effect::StartHost {
                host: HostId::new("premium-1"),
                size: SessionSize::Premium
            }));
        service.handle_host_ready(&HostId::new("premium-1"), Timestamp(4_000));
        let session = service.handle_get(&key("p"), Timestamp(4_000)).unwrap();
        assert_eq!(
            (session.status, session.ready_at),
            (SessionStatus::Ready, Some(Timestamp(4_000)))
        );
    }

    #[test]
    fn the_same_put_twice_is_a_safe_retry_but_other_settings_conflict() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        let (created, _) = service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(1))
            .unwrap();
        assert_eq!(created, Created::Existing);
        assert!(matches!(
            service.handle_create(create("a", SessionSize::Premium, 30, false), Timestamp(2)),
            Err(CreateError::Conflict { .. })
        ));
        assert!(matches!(
            service.handle_create(create("a", SessionSize::Standard, 60, false), Timestamp(2)),
            Err(CreateError::Conflict { .. })
        ));
        // The same id in another account is another session.
        let other = CreateSession {
            key: SessionKey::new("fabrikam", SessionId::parse("a").unwrap()),
            ..create("a", SessionSize::Premium, 30, false)
        };
        assert_eq!(
            service.handle_create(other, Timestamp(3)).unwrap().0,
            Created::New
        );
    }

    #[test]
    fn an_account_holds_no_more_sessions_than_its_quota() {
        let mut service = service();
        let limited = |id| CreateSession {
            account_limit: Some(1),
            ..create(id, SessionSize::Standard, 60, true)
        };
        service.handle_create(limited("a"), Timestamp(1)).unwrap();
        // A retry of the one it holds is no new session.
        assert_eq!(
            service.handle_create(limited("a"), Timestamp(2)).unwrap().0,
            Created::Existing
        );
        assert_eq!(
            service
                .handle_create(limited("b"), Timestamp(3))
                .unwrap_err(),
            CreateError::AccountLimit {
                account: "contoso".into(),
                limit: 1
            }
        );
        // Another account has a quota of its own.
        let other = CreateSession {
            key: SessionKey::new("fabrikam", SessionId::parse("b").unwrap()),
            ..limited("b")
        };
        service.handle_create(other, Timestamp(4)).unwrap();
        // Once the first one ends, the account may lease again.
        service.handle_stop(&key("a"), Timestamp(5)).unwrap();
        service.handle_create(limited("b"), Timestamp(6)).unwrap();
    }

    #[test]
    fn leases_out_of_range_are_refused() {
        let mut service = service();
        assert_eq!(
            service
                .handle_create(
                    create("a", SessionSize::Standard, 1441, false),
                    Timestamp(0)
                )
                .unwrap_err(),
            CreateError::BadLease(1441)
        );
    }

    #[test]
    fn a_lease_expires_on_time_and_billing_stops_there() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 10, false), Timestamp(0))
            .unwrap();
        assert_eq!(service.poll_timeout(), Some(Timestamp(10 * MINUTE)));
        assert_eq!(
            status(&mut service, "a", 10 * MINUTE - 1),
            SessionStatus::Ready
        );
        // Nobody looked until much later: it still expired at the end of its lease.
        let session = service
            .handle_get(&key("a"), Timestamp(25 * MINUTE))
            .unwrap();
        assert_eq!(session.status, SessionStatus::Expired);
        assert_eq!(session.ended_at, Some(Timestamp(10 * MINUTE)));
        assert_eq!(session.elapsed_minutes(Timestamp(25 * MINUTE)), 10);
        // Its host went back to the pool, reset.
        assert!(std::iter::from_fn(|| service.poll_effect()).any(|e| e
            == Effect::ResetHost {
                host: HostId::new("standard-1")
            }));
    }

    #[test]
    fn extending_moves_the_expiry() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 10, false), Timestamp(0))
            .unwrap();
        service
            .handle_extend(&key("a"), 20, Timestamp(5 * MINUTE))
            .unwrap();
        assert_eq!(service.poll_timeout(), Some(Timestamp(20 * MINUTE)));
        assert_eq!(status(&mut service, "a", 15 * MINUTE), SessionStatus::Ready);
        assert_eq!(
            service.handle_extend(&key("a"), 20, Timestamp(16 * MINUTE)),
            Err(SessionError::Extend(ExtendError::NotLarger {
                current: 20,
                requested: 20
            }))
        );
        assert_eq!(
            status(&mut service, "a", 20 * MINUTE),
            SessionStatus::Expired
        );
        assert!(matches!(
            service.handle_extend(&key("a"), 30, Timestamp(21 * MINUTE)),
            Err(SessionError::Extend(ExtendError::Ended { .. }))
        ));
        assert!(matches!(
            service.handle_extend(&key("zz"), 30, Timestamp(0)),
            Err(SessionError::NotFound(_))
        ));
    }

    #[test]
    fn a_full_pool_fails_or_queues_and_a_stop_hands_the_host_on() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        assert!(matches!(
            service.handle_create(create("b", SessionSize::Standard, 30, false), Timestamp(1)),
            Err(CreateError::Exhausted(PoolError::Exhausted {
                size: SessionSize::Standard,
                ..
            }))
        ));
        assert!(
            service.handle_get(&key("b"), Timestamp(1)).is_none(),
            "a refused create leaves nothing"
        );

        service
            .handle_create(create("b", SessionSize::Standard, 30, true), Timestamp(2))
            .unwrap();
        service
            .handle_create(create("c", SessionSize::Standard, 30, true), Timestamp(3))
            .unwrap();
        assert_eq!(
            (
                service.queue_position(&key("b")),
                service.queue_position(&key("c"))
            ),
            (Some(1), Some(2))
        );
        assert_eq!(status(&mut service, "b", 4), SessionStatus::Starting);

        service.handle_stop(&key("a"), Timestamp(MINUTE)).unwrap();
        assert_eq!(status(&mut service, "a", MINUTE), SessionStatus::Stopped);
        let b = service.handle_get(&key("b"), Timestamp(MINUTE)).unwrap();
        assert_eq!(
            (b.status, b.ready_at),
            (SessionStatus::Ready, Some(Timestamp(MINUTE)))
        );
        assert_eq!(service.queue_position(&key("c")), Some(1));

        // A queued session that is stopped leaves the queue and never gets a host.
        service
            .handle_stop(&key("c"), Timestamp(MINUTE + 1))
            .unwrap();
        service
            .handle_stop(&key("b"), Timestamp(2 * MINUTE))
            .unwrap();
        assert_eq!(
            status(&mut service, "c", 2 * MINUTE),
            SessionStatus::Stopped
        );
        assert_eq!(service.pool().utilization(SessionSize::Standard), (1, 1, 0));
    }

    /// Stores the service's pool through JSON, as a replica does, and takes it up again with
    /// its active sessions only.
    fn stored_and_resumed(service: &SessionService) -> SessionService {
        let json = serde_json::to_string(&service.pool().snapshot()).unwrap();
        let active = service
            .sessions
            .values()
            .filter(|s| s.is_active())
            .cloned()
            .collect();
        let config = service.pool().config();
        SessionService::resume(config, serde_json::from_str(&json).unwrap(), active)
    }

    #[test]
    fn a_resumed_pool_keeps_leases_queue_order_and_expiry() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        for (id, at) in [("b", 1), ("c", 2)] {
            service
                .handle_create(create(id, SessionSize::Standard, 30, true), Timestamp(at))
                .unwrap();
        }
        let mut resumed = stored_and_resumed(&service);
        assert_eq!(resumed.poll_effect(), None, "nothing is booted again");
        assert!(
            resumed
                .handle_create(create("d", SessionSize::Standard, 30, false), Timestamp(3))
                .is_err(),
            "the one host is still leased"
        );
        assert_eq!(resumed.queue_position(&key("c")), Some(2));

        // The next replica finds a's lease running out and hands the host to b, not c.
        let mut resumed = stored_and_resumed(&resumed);
        resumed.handle_timeout(Timestamp(30 * MINUTE));
        assert_eq!(
            status(&mut resumed, "a", 30 * MINUTE),
            SessionStatus::Expired
        );
        assert_eq!(status(&mut resumed, "b", 30 * MINUTE), SessionStatus::Ready);
        assert_eq!(resumed.queue_position(&key("c")), Some(1));
        let effects: Vec<_> = std::iter::from_fn(|| resumed.poll_effect()).collect();
        assert!(effects.contains(&Effect::ResetHost {
            host: HostId::new("standard-1")
        }));
    }

    #[test]
    fn stopping_twice_is_harmless_and_unknown_sessions_are_not_found() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        service.handle_stop(&key("a"), Timestamp(10)).unwrap();
        service.handle_stop(&key("a"), Timestamp(20)).unwrap();
        assert_eq!(
            service
                .handle_get(&key("a"), Timestamp(30))
                .unwrap()
                .ended_at,
            Some(Timestamp(10))
        );
        assert_eq!(
            service.handle_stop(&key("nope"), Timestamp(0)),
            Err(SessionError::NotFound(SessionId::parse("nope").unwrap()))
        );
    }

    #[test]
    fn a_lost_host_puts_its_session_in_error_with_the_reason() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        service.handle_host_lost(
            &HostId::new("standard-1"),
            "render host stopped heartbeating",
            Timestamp(7),
        );
        let session = service.handle_get(&key("a"), Timestamp(8)).unwrap();
        assert_eq!(session.status, SessionStatus::Error);
        assert_eq!(
            session.error.as_deref(),
            Some("render host stopped heartbeating")
        );
    }

    #[test]
    fn ended_sessions_are_kept_thirty_days_then_purged() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        service.handle_stop(&key("a"), Timestamp(MINUTE)).unwrap();
        let purge_at = Timestamp(MINUTE).after(RETENTION);
        assert_eq!(service.poll_timeout(), Some(purge_at));
        assert!(
            service
                .handle_get(&key("a"), Timestamp(purge_at.0 - 1))
                .is_some()
        );
        service.handle_timeout(purge_at);
        assert!(service.handle_get(&key("a"), purge_at).is_none());
        assert!(std::iter::from_fn(|| service.poll_effect()).any(|e| e == Effect::Purge(key("a"))));
        assert_eq!(service.poll_timeout(), None);
    }

    #[test]
    fn only_starting_and_ready_sessions_are_listed() {
        let mut service = service();
        service
            .handle_create(create("a", SessionSize::Standard, 30, false), Timestamp(0))
            .unwrap();
        service
            .handle_create(create("p", SessionSize::Premium, 30, false), Timestamp(1))
            .unwrap();
        service
            .handle_create(create("q", SessionSize::Premium, 30, true), Timestamp(2))
            .unwrap();
        service.handle_stop(&key("a"), Timestamp(3)).unwrap();
        let listed: Vec<_> = service
            .active("contoso")
            .iter()
            .map(|s| s.id.to_string())
            .collect();
        assert_eq!(listed, ["p", "q"]);
        assert!(service.active("fabrikam").is_empty());
    }

    #[test]
    fn a_restart_never_loses_a_session_silently() {
        let mut before = service();
        before
            .handle_create(
                create("ready", SessionSize::Standard, 30, false),
                Timestamp(0),
            )
            .unwrap();
        before
            .handle_create(
                create("waiting", SessionSize::Premium, 30, false),
                Timestamp(1),
            )
            .unwrap();
        before
            .handle_create(
                create("done", SessionSize::Standard, 30, true),
                Timestamp(2),
            )
            .unwrap();
        before.handle_stop(&key("done"), Timestamp(3)).unwrap();
        let mut stored: Vec<_> = ["ready", "waiting", "done"]
            .iter()
            .map(|id| before.handle_get(&key(id), Timestamp(4)).unwrap().clone())
            .collect();
        // A Ready session stored without its host (never written so): nothing can come back for it.
        let mut hostless = stored[0].clone();
        hostless.id = SessionId::parse("hostless").unwrap();
        hostless.host = None;
        stored.push(hostless);

        let now = Timestamp(10 * MINUTE);
        let grace = Duration::from_secs(30);
        let config = before.pool().config();
        let host = before
            .handle_get(&key("ready"), now)
            .unwrap()
            .host
            .clone()
            .unwrap();

        // Its host never registers again: the session ends in Error when the grace is over.
        let mut forsaken = SessionService::restore(config, stored.clone(), now, grace, [0, 0]);
        assert_eq!(status(&mut forsaken, "ready", now.0), SessionStatus::Ready);
        assert_eq!(forsaken.poll_timeout(), Some(now.after(grace)));
        let over = now.after(grace);
        forsaken.handle_timeout(over);
        let ready = forsaken.handle_get(&key("ready"), over).unwrap();
        assert_eq!(
            (ready.status, ready.error.as_deref()),
            (SessionStatus::Error, Some(LOST_IN_RESTART))
        );
        assert_eq!(ready.ended_at, Some(over));

        let hostless = forsaken.handle_get(&key("hostless"), now).unwrap();
        assert_eq!(
            (
                hostless.status,
                hostless.error.as_deref(),
                hostless.ended_at
            ),
            (SessionStatus::Error, Some(LOST_IN_RESTART), Some(now))
        );

        // Its host registers again within the grace: the session stays Ready throughout.
        let mut after = SessionService::restore(config, stored, now, grace, [0, 0]);
        assert!(after.pool().is_returning(&host));
        after.handle_host_ready(&host, now.after(Duration::from_secs(2)));
        assert_eq!(after.pool().lease_of(&host), Some(&key("ready")));
        after.handle_timeout(over);
        assert_eq!(status(&mut after, "ready", over.0), SessionStatus::Ready);
        assert_eq!(status(&mut after, "done", now.0), SessionStatus::Stopped);
        // The Starting session asked for a host again and gets it when it boots.
        assert_eq!(
            status(&mut after, "waiting", now.0),
            SessionStatus::Starting
        );
        let effects: Vec<_> = std::iter::from_fn(|| after.poll_effect()).collect();
        assert!(
            !effects.contains(&Effect::StartHost {
                host: host.clone(),
                size: SessionSize::Standard
            }),
            "a new host never takes a returning host's name: {effects:?}"
        );
        let premium = effects.iter().find_map(|e| match e {
            Effect::StartHost {
                host,
                size: SessionSize::Premium,
            } => Some(host.clone()),
            _ => None,
        });
        after.handle_host_ready(
            &premium.expect("a premium host is started"),
            now.after(Duration::from_secs(2)),
        );
        assert_eq!(
            status(&mut after, "waiting", now.0 + 2_000),
            SessionStatus::Ready
        );
    }

    #[test]
    fn sessions_are_counted_by_state_and_listed_per_account() {
        let mut service = service();
        // The longest lease allowed is allowed.
        service
            .handle_create(
                create("a", SessionSize::Standard, MAX_LEASE_MINUTES, false),
                Timestamp(0),
            )
            .unwrap();
        service
            .handle_create(create("b", SessionSize::Premium, 10, false), Timestamp(0))
            .unwrap();
        let counts = service.count_by_status();
        assert_eq!(counts.values().sum::<usize>(), 2, "{counts:?}");
        assert_eq!(
            counts.get("Starting").copied().unwrap_or(0)
                + counts.get("Ready").copied().unwrap_or(0),
            2
        );
        assert_eq!(service.all("contoso").count(), 2);
        assert_eq!(service.all("fabrikam").count(), 0);
    }
}
