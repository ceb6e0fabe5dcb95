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

use parallax_core::host::HostCommand;
use parallax_core::pool::{HostId, Pool, PoolConfig, PoolSnapshot};
use parallax_core::service::{Effect, SessionService};
use parallax_core::session::{RETENTION, RenderSession, SessionKey, SessionStatus};
use parallax_core::time::Timestamp;
use tokio_util::sync::CancellationToken;

use super::sessions::{Inner, SessionView, Sessions, drain};
use crate::base::error::AppError;
use crate::base::store::{Store, StoredHostLink, Transaction};
use crate::spaces::replicas::{HEARTBEAT, Replication, next_message};

/// How often ended sessions past their retention are deleted, in heartbeats.
const PURGE_EVERY: u64 = 60;

/// This replica's part in the shared pool.
pub(crate) struct Shared {
    store: Store,
    replication: Arc<Replication>,
    config: PoolConfig,
    /// How long a host nobody vouches for has to link with another replica.
    return_grace: Duration,
    /// Every replica's host links as last read, for views, rosters and the operator.
    links: Mutex<HashMap<HostId, StoredHostLink>>,
}

/// The pool taken up under its row's lock, until [`Sessions::commit_shared`] (or a drop, which
/// rolls back).
pub(super) struct Locked {
    transaction: Transaction,
    pool: PoolSnapshot,
    sessions: Vec<RenderSession>,
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

    fn me(&self) -> &str {
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
    pub(super) fn host_status(&self) -> serde_json::Value {
        let links = self.links();
        let mut hosts: Vec<&StoredHostLink> = links.values().collect();
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        serde_json::Value::from(
            hosts
                .into_iter()
                .map(|link| {
                    serde_json::json!({
                        "id": link.id,
                        "size": link.size.as_str(),
                        "endpoint": link.endpoint,
                        "adapter": link.adapter,
                        "pid": link.pid,
                        "device": link.device,
                        "replica": link.replica,
                    })
                })
                .collect::<Vec<_>>(),
        )
    }

    /// The pool as last committed (not locked): for queue positions.
    async fn read_pool(&self) -> Result<Pool, AppError> {
        let stored = self.store.render_pool().await?;
        Ok(Pool::resume(self.config, parse_pool(stored)?))
    }

    pub(super) async fn set_device(&self, host: &HostId, device: bool) {
        if let Err(e) = self.store.set_host_device(host.as_str(), device).await {
            tracing::warn!(%host, "storing whether a device holds the host: {e}");
        }
    }
}

fn parse_pool(stored: Option<String>) -> Result<PoolSnapshot, AppError> {
    match stored {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("the stored render pool: {e}"))),
        None => Ok(PoolSnapshot::default()),
    }
}

impl Sessions {
    /// Locks the shared pool and reads it with the Starting and Ready sessions, and `also`.
    pub(super) async fn lock_pool(
        &self,
        shared: &Shared,
        also: Option<&SessionKey>,
    ) -> Result<Locked, AppError> {
        let mut transaction = shared.store.begin().await?;
        let pool = parse_pool(shared.store.lock_render_pool(&mut transaction).await?)?;
        let mut sessions = shared
            .store
            .active_render_sessions(&mut transaction)
            .await?;
        if let Some(key) = also
            && !sessions.iter().any(|s| s.key() == *key)
        {
            sessions.extend(
                shared
                    .store
                    .render_session_in(&mut transaction, key)
                    .await?,
            );
        }
        Ok(Locked {
            transaction,
            pool,
            sessions,
        })
    }

    /// Takes the locked pool up as this replica's service, runs `change` on it, and keeps the
    /// pool it leaves for [`Self::commit_shared`]; returns what `change` returned and the
    /// effects.
    pub(super) fn take_up<T>(
        &self,
        shared: &Shared,
        locked: &mut Locked,
        change: impl FnOnce(&mut Inner, Timestamp) -> T,
    ) -> (T, Vec<Effect>) {
        let now = self.now();
        let mut inner = self.lock();
        inner.service = SessionService::resume(
            shared.config,
            std::mem::take(&mut locked.pool),
            std::mem::take(&mut locked.sessions),
        );
        let result = change(&mut inner, now);
        let effects = drain(&mut inner.service);
        locked.pool = inner.service.pool().snapshot();
        (result, effects)
    }

    /// Stores the sessions `effects` changed and the pool, commits, then boots and resets the
    /// hosts the change asked for.
    pub(super) async fn commit_shared(
        &self,
        shared: &Shared,
        mut locked: Locked,
        effects: Vec<Effect>,
    ) -> Result<(), AppError> {
        let mut hosts = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(session) => {
                    shared
                        .store
                        .upsert_render_session_in(&mut locked.transaction, &session)
                        .await?
                }
                Effect::Purge(key) => {
                    shared
                        .store
                        .delete_render_session_in(&mut locked.transaction, &key)
                        .await?
                }
                host => hosts.push(host),
            }
        }
        let pool = serde_json::to_string(&locked.pool)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding the render pool: {e}")))?;
        shared
            .store
            .write_render_pool(&mut locked.transaction, &pool)
            .await?;
        locked.transaction.commit().await?;
        for effect in hosts {
            match effect {
                Effect::StartHost { host, size } => self.launcher.launch(host, size),
                Effect::ResetHost { host } => self.command(&host, HostCommand::Reset).await,
                Effect::Persist(_) | Effect::Purge(_) => {}
            }
        }
        Ok(())
    }

    /// Sends `command` to `host`: over its link if this replica holds it, else over NATS to the
    /// replica that does.
    pub(super) async fn command(&self, host: &HostId, command: HostCommand) {
        if let Some(link) = self.hosts_lock().get(host) {
            let _ = link.commands.send(command);
            return;
        }
        if let Some(shared) = &self.shared {
            shared.replication.host_command(host, &command).await;
        }
    }

    /// Runs one change of the shared pool, with session `also` read too, and commits it.
    pub(super) async fn change_shared<T>(
        &self,
        shared: &Shared,
        also: Option<&SessionKey>,
        change: impl FnOnce(&mut Inner, Timestamp) -> T,
    ) -> Result<T, AppError> {
        let mut locked = self.lock_pool(shared, also).await?;
        let (result, effects) = self.take_up(shared, &mut locked, change);
        self.commit_shared(shared, locked, effects).await?;
        Ok(result)
    }

    /// A session as the database has it, as the API reports it.
    pub(super) async fn shared_view(
        &self,
        shared: &Shared,
        session: RenderSession,
        now: Timestamp,
    ) -> Result<SessionView, AppError> {
        let queue_position = match (session.status, &session.host) {
            (SessionStatus::Starting, None) => {
                shared.read_pool().await?.queue_position(&session.key())
            }
            _ => None,
        };
        let link = match (&session.host, session.status) {
            (Some(host), SessionStatus::Ready) => self.link_of(shared, host).await,
            _ => None,
        };
        Ok(Self::view_of(session, queue_position, link, now))
    }

    /// Where devices reach `host`, and whether one holds it: from its link here, or the last
    /// read of the others', or the database.
    async fn link_of(&self, shared: &Shared, host: &HostId) -> Option<(String, bool)> {
        if let Some(link) = self.hosts_lock().get(host) {
            return Some((link.endpoint.clone(), link.device));
        }
        if let Some(cached) = shared.cached_link(host) {
            return Some(cached);
        }
        let stored = shared.store.render_host(host.as_str()).await.ok()??;
        let found = (stored.endpoint.clone(), stored.device);
        shared.links().insert(host.clone(), stored);
        Some(found)
    }

    /// A session read from the database, its lease expiry carried out first if it is due.
    pub(super) async fn read_session(
        &self,
        shared: &Shared,
        key: &SessionKey,
    ) -> Result<Option<RenderSession>, AppError> {
        let now = self.now();
        let session = shared.store.render_session(key).await?;
        match session {
            Some(s) if s.is_active() && s.lease_end().is_some_and(|end| end <= now) => {
                self.change_shared(shared, Some(key), |inner, now| {
                    inner.service.handle_timeout(now)
                })
                .await?;
                Ok(shared.store.render_session(key).await?)
            }
            other => Ok(other),
        }
    }

    /// `account`'s sessions as the database has them.
    pub(super) async fn account_sessions(
        &self,
        shared: &Shared,
        account: &str,
    ) -> Result<Vec<RenderSession>, AppError> {
        Ok(shared.store.account_render_sessions(Some(account)).await?)
    }

    /// `host` is lost, unless it is linked elsewhere now or (`unheard_since`) has been vouched
    /// for since: its session ends in `Error` and the pool replaces it. Decided under the lock.
    pub(super) async fn give_up_shared(
        &self,
        shared: &Shared,
        host: &HostId,
        reason: &str,
        unheard_since: Option<Timestamp>,
    ) -> Result<bool, AppError> {
        let mut locked = self.lock_pool(shared, None).await?;
        let link = shared
            .store
            .render_host_in(&mut locked.transaction, host.as_str())
            .await?;
        let gone = match (&link, unheard_since) {
            (Some(link), Some(since)) => link.seen < since,
            (Some(link), None) => link.replica == shared.me(),
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if !gone {
            return Ok(false);
        }
        shared
            .store
            .unlink_render_host(&mut locked.transaction, host.as_str(), None)
            .await?;
        let ((), effects) = self.take_up(shared, &mut locked, |inner, now| {
            inner.service.handle_host_lost(host, reason, now)
        });
        self.commit_shared(shared, locked, effects).await?;
        shared.links().remove(host);
        Ok(true)
    }

    /// Links `link` to this replica in the locked transaction.
    pub(super) async fn store_link(
        shared: &Shared,
        locked: &mut Locked,
        link: &StoredHostLink,
    ) -> Result<(), AppError> {
        shared
            .store
            .link_render_host(&mut locked.transaction, link)
            .await?;
        shared
            .links()
            .insert(HostId::new(link.id.clone()), link.clone());
        Ok(())
    }

    pub(super) fn replica_id(shared: &Shared) -> String {
        shared.me().to_string()
    }

    /// Reads the pool, the active sessions and the links into this replica's copies, for the
    /// answers that do not go to the database (rosters, metrics, the operator's view).
    async fn refresh(&self, shared: &Shared) -> Result<(), AppError> {
        let links = shared.store.render_hosts().await?;
        let mut transaction = shared.store.begin().await?;
        let pool = parse_pool(shared.store.render_pool().await?)?;
        let sessions = shared
            .store
            .active_render_sessions(&mut transaction)
            .await?;
        drop(transaction);
        *shared.links() = links
            .into_iter()
            .map(|link| (HostId::new(link.id.clone()), link))
            .collect();
        let mut inner = self.lock();
        inner.service = SessionService::resume(shared.config, pool, sessions);
        // Only a copy: what resuming it would do is done under the lock, by a change.
        drop(drain(&mut inner.service));
        Ok(())
    }

    /// Every heartbeat: vouches for this replica's hosts, refreshes the copies, carries out
    /// lease expiries that are due, gives up hosts nobody vouched for within the grace, and
    /// now and then deletes sessions past their retention. Any replica may do each; the lock
    /// makes it happen once.
    pub(super) async fn tend_shared(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(shared) = &self.shared else { return };
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut beats: u64 = 0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.wake.notified() => {}
                () = shutdown.cancelled() => return,
            }
            beats += 1;
            if let Err(e) = self.tend_once(shared, beats).await {
                tracing::warn!("tending the shared render pool: {e}");
            }
        }
    }

    async fn tend_once(&self, shared: &Shared, beats: u64) -> Result<(), AppError> {
        let now = self.now();
        shared.store.touch_render_hosts(shared.me(), now).await?;
        self.refresh(shared).await?;
        let due = self
            .lock()
            .service
            .poll_timeout()
            .is_some_and(|at| at <= now);
        if due {
            self.change_shared(shared, None, |inner, now| inner.service.handle_timeout(now))
                .await?;
        }
        let since = now.before(HEARTBEAT + shared.return_grace);
        for host in shared.store.unheard_render_hosts(since).await? {
            let host = HostId::new(host);
            let reason = format!(
                "render host {host} was lost: its coordinator replica stopped and it did not \
                 link with another within {} s",
                shared.return_grace.as_secs()
            );
            if self
                .give_up_shared(shared, &host, &reason, Some(since))
                .await?
            {
                tracing::warn!(%host, "{reason}");
            }
        }
        if beats % PURGE_EVERY == 1 {
            let purged = shared
                .store
                .purge_render_sessions(now.before(RETENTION))
                .await?;
            if purged > 0 {
                tracing::info!(purged, "render sessions past their retention deleted");
            }
        }
        Ok(())
    }

    /// Carries out the host commands other replicas send to the hosts linked here.
    pub(super) async fn follow_commands(
        self: Arc<Self>,
        mut subscriber: async_nats::Subscriber,
        shutdown: CancellationToken,
    ) {
        while let Some(message) =
            next_message::<(HostId, HostCommand)>(&mut subscriber, &shutdown).await
        {
            match message {
                Ok((host, command)) => {
                    if let Some(link) = self.hosts_lock().get(&host) {
                        let _ = link.commands.send(command);
                    }
                }
                Err(e) => tracing::warn!("a host command on NATS that is not one: {e}"),
            }
        }
    }
}
