//! The render pool replicas share (docs/SCALING.md).
//!
//! The database holds the pool (one row: the core's [`PoolSnapshot`]), the sessions, and the
//! hosts' links: which replica holds each, where devices reach it, and when that replica last
//! vouched for it. Every change is made by whichever replica was asked, under the pool row's
//! lock: it takes the core's [`SessionService`] up from what the database holds, changes it and
//! stores it again in one transaction. So two replicas never lease the same host, the queue keeps
//! one order, and a lease expiry found by three replicas at once ends the session once. A host
//! command (a reset) for a host linked to another replica goes to that replica over NATS.
//!
//! A replica that dies takes no session with it: its hosts link again with another replica under
//! the names they had and go on serving. Hosts nobody vouches for within the return grace are
//! lost, and their sessions end in `Error`, decided once under the lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use parallax_core::pool::{HostId, Pool, PoolConfig, PoolSnapshot};
use parallax_core::service::{Effect, SessionService};
use parallax_core::session::{RETENTION, RenderSession, SessionKey};
use parallax_core::time::Timestamp;

use crate::base::error::AppError;
use crate::base::store::{Store, StoredHostLink, Transaction};
use crate::replication::{HEARTBEAT, Replication};

/// This replica's part in the shared pool.
pub(crate) struct Shared {
    store: Store,
    pub(super) replication: Arc<Replication>,
    config: PoolConfig,
    /// How long a host nobody vouches for has to link with another replica.
    pub(super) return_grace: Duration,
    /// Every replica's host links as last read, for views, rosters and the operator.
    links: Mutex<HashMap<HostId, StoredHostLink>>,
}

/// The pool taken up under its row's lock, until [`Shared::commit`] (or a drop, which rolls
/// back).
pub(super) struct Locked {
    transaction: Transaction,
    /// The pool with the Starting and Ready sessions (and any other asked for), as the database
    /// has them: change it, then commit.
    pub(super) service: SessionService,
}

/// Why a host may be lost; [`Shared::give_up`] decides under the lock whether it is.
#[derive(Debug, Clone, Copy)]
pub(super) enum Lost {
    /// Its link to this replica broke, or it never registered here: lost unless another replica
    /// holds it now.
    Here,
    /// No replica has vouched for it since this instant.
    Unheard(Timestamp),
    /// The pool has it, but no replica has held its link for longer than linking takes.
    Unlinked,
}

/// What a committed change leaves to the replica that made it.
pub(super) struct Committed {
    /// Hosts to boot and reset.
    pub(super) hosts: Vec<Effect>,
    /// The pool as committed, for the replica's copy.
    pub(super) service: SessionService,
}

impl Shared {
    pub(super) fn new(
        store: Store,
        replication: Arc<Replication>,
        config: PoolConfig,
        return_grace: Duration,
    ) -> Self {
        Self {
            store,
            replication,
            config,
            return_grace,
            links: Mutex::new(HashMap::new()),
        }
    }

    /// This replica's name.
    pub(super) fn me(&self) -> &str {
        &self.replication.id
    }

    fn links(&self) -> MutexGuard<'_, HashMap<HostId, StoredHostLink>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where devices reach `host` and whether one holds it, as last read.
    pub(super) fn cached_link(&self, host: &HostId) -> Option<(String, bool)> {
        self.links()
            .get(host)
            .map(|link| (link.endpoint.clone(), link.device))
    }

    /// Every replica's hosts, for the operator.
    pub(super) fn host_status(&self) -> Vec<parallax_core::api::HostStatus> {
        let links = self.links();
        let mut hosts: Vec<&StoredHostLink> = links.values().collect();
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        hosts
            .into_iter()
            .map(|link| parallax_core::api::HostStatus {
                id: link.id.clone(),
                size: link.size.as_str().into(),
                endpoint: link.endpoint.clone(),
                adapter: link.adapter.clone(),
                pid: link.pid,
                device: link.device,
                replica: Some(link.replica.clone()),
            })
            .collect()
    }

    /// The pool as last committed (not locked): for queue positions.
    pub(super) async fn read_pool(&self) -> Result<Pool, AppError> {
        let stored = self.store.render_pool().await?;
        Ok(Pool::resume(self.config, parse_pool(stored)?))
    }

    /// Where devices reach `host` and whether one holds it: as last read, else from the
    /// database.
    pub(super) async fn link_of(&self, host: &HostId) -> Option<(String, bool)> {
        if let Some(cached) = self.cached_link(host) {
            return Some(cached);
        }
        let stored = self.store.render_host(host.as_str()).await.ok()??;
        let found = (stored.endpoint.clone(), stored.device);
        self.links().insert(host.clone(), stored);
        Some(found)
    }

    /// Stores whether a device holds `host`, for the other replicas.
    pub(super) async fn set_device(&self, host: &HostId, device: bool) {
        if let Err(e) = self.store.set_host_device(host.as_str(), device).await {
            tracing::warn!(%host, "storing whether a device holds the host: {e}");
        }
    }

    /// A session as committed.
    pub(super) async fn session(
        &self,
        key: &SessionKey,
    ) -> Result<Option<RenderSession>, AppError> {
        Ok(self.store.render_session(key).await?)
    }

    /// `account`'s sessions as committed.
    pub(super) async fn account_sessions(
        &self,
        account: &str,
    ) -> Result<Vec<RenderSession>, AppError> {
        Ok(self.store.account_render_sessions(Some(account)).await?)
    }

    /// Locks the pool and takes it up with the Starting and Ready sessions, and `also`.
    ///
    /// No replica has stored the pool yet on a database a single coordinator used before: its
    /// sessions are taken up as that coordinator's restart would (a Ready session keeps its host,
    /// which links again under its name, or is given up as unlinked).
    pub(super) async fn lock(
        &self,
        also: Option<&SessionKey>,
        now: Timestamp,
    ) -> Result<Locked, AppError> {
        let mut transaction = self.store.begin().await?;
        let stored = self.store.lock_render_pool(&mut transaction).await?;
        let mut sessions = self.store.active_render_sessions(&mut transaction).await?;
        if let Some(key) = also
            && !sessions.iter().any(|s| s.key() == *key)
        {
            sessions.extend(self.store.render_session_in(&mut transaction, key).await?);
        }
        let service = match stored {
            Some(_) => SessionService::resume(self.config, parse_pool(stored)?, sessions),
            None => {
                // Named past the hosts of a single coordinator before (its names kept).
                let named = self.store.named_hosts().await?;
                SessionService::restore(self.config, sessions, now, self.return_grace, named)
            }
        };
        Ok(Locked {
            transaction,
            service,
        })
    }

    /// Stores the sessions the change touched and the pool, and commits.
    pub(super) async fn commit(&self, mut locked: Locked) -> Result<Committed, AppError> {
        let mut hosts = Vec::new();
        while let Some(effect) = locked.service.poll_effect() {
            match effect {
                Effect::Persist(session) => {
                    self.store
                        .upsert_render_session_in(&mut locked.transaction, &session)
                        .await?
                }
                Effect::Purge(key) => {
                    self.store
                        .delete_render_session_in(&mut locked.transaction, &key)
                        .await?
                }
                host => hosts.push(host),
            }
        }
        let pool = serde_json::to_string(&locked.service.pool().snapshot())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding the render pool: {e}")))?;
        self.store
            .write_render_pool(&mut locked.transaction, &pool)
            .await?;
        locked.transaction.commit().await?;
        Ok(Committed {
            hosts,
            service: locked.service,
        })
    }

    /// Links `link` to its replica, with the locked change.
    pub(super) async fn link_host(
        &self,
        locked: &mut Locked,
        link: &StoredHostLink,
    ) -> Result<(), AppError> {
        self.store
            .link_render_host(&mut locked.transaction, link)
            .await?;
        self.links()
            .insert(HostId::new(link.id.clone()), link.clone());
        Ok(())
    }

    /// `host` is lost, unless its link says otherwise now (see [`Lost`]): its session ends in
    /// `Error` with `reason` and the pool replaces it. Decided under the lock; `None` if it was
    /// not lost.
    pub(super) async fn give_up(
        &self,
        host: &HostId,
        reason: &str,
        why: Lost,
        now: Timestamp,
    ) -> Result<Option<Committed>, AppError> {
        let mut locked = self.lock(None, now).await?;
        let link = self
            .store
            .render_host_in(&mut locked.transaction, host.as_str())
            .await?;
        let gone = match (&link, why) {
            (Some(link), Lost::Here) => link.replica == self.me(),
            (Some(link), Lost::Unheard(since)) => link.seen < since,
            (Some(_), Lost::Unlinked) | (None, Lost::Unheard(_)) => false,
            (None, Lost::Here | Lost::Unlinked) => true,
        };
        if !gone {
            return Ok(None);
        }
        self.store
            .unlink_render_host(&mut locked.transaction, host.as_str(), None)
            .await?;
        locked.service.handle_host_lost(host, reason, now);
        let committed = self.commit(locked).await?;
        self.links().remove(host);
        Ok(Some(committed))
    }

    /// Reads the pool, the active sessions and the links, for this replica's copies.
    pub(super) async fn refresh(&self) -> Result<SessionService, AppError> {
        let links = self.store.render_hosts().await?;
        let pool = parse_pool(self.store.render_pool().await?)?;
        let mut transaction = self.store.begin().await?;
        let sessions = self.store.active_render_sessions(&mut transaction).await?;
        drop(transaction);
        *self.links() = links
            .into_iter()
            .map(|link| (HostId::new(link.id.clone()), link))
            .collect();
        let mut service = SessionService::resume(self.config, pool, sessions);
        // Only a copy: what resuming it would do is done under the lock, by a change.
        while service.poll_effect().is_some() {}
        Ok(service)
    }

    /// Vouches for the hosts linked to this replica; returns those nobody vouched for within
    /// the grace, and since when.
    pub(super) async fn heartbeat(
        &self,
        now: Timestamp,
    ) -> Result<(Vec<HostId>, Timestamp), AppError> {
        self.store.touch_render_hosts(self.me(), now).await?;
        let since = now.before(HEARTBEAT + self.return_grace);
        let unheard = self.store.unheard_render_hosts(since).await?;
        Ok((unheard.into_iter().map(HostId::new).collect(), since))
    }

    /// Deletes the sessions past their retention.
    pub(super) async fn purge(&self, now: Timestamp) -> Result<(), AppError> {
        let purged = self
            .store
            .purge_render_sessions(now.before(RETENTION))
            .await?;
        if purged > 0 {
            tracing::info!(purged, "render sessions past their retention deleted");
        }
        Ok(())
    }
}

fn parse_pool(stored: Option<String>) -> Result<PoolSnapshot, AppError> {
    match stored {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("the stored render pool: {e}"))),
        None => Ok(PoolSnapshot::default()),
    }
}
