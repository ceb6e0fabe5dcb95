//! Drives the core's [`SessionService`]: reads the clock, stores every change in SQLite in the
//! order it happened, wakes for lease expiry and purges, and has the render hosts the pool asks
//! for started; hosts register over `/v1/hosts/ws` (`crate::http::hosts`) and are given up when they fall
//! silent.
//!
//! Requests lock the service only for the synchronous core call; the store write they caused is
//! queued while still holding the lock (so writes keep the order of the changes) and awaited
//! after it, so a `201` means the session is on disk.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use parallax_core::api::{HostStatus, MemberRender, SizeStatus};
use parallax_core::host::HostCommand;
use parallax_core::pool::{HostId, Pool, PoolConfig};
use parallax_core::service::{
    CreateError, CreateSession, Created, Effect, SessionError, SessionService,
};
use parallax_core::session::{
    ExtendError, RenderSession, SessionId, SessionKey, SessionSize, SessionStatus,
};
use parallax_core::space::MemberId;
use parallax_core::throttle::PollThrottle;
use parallax_core::time::Timestamp;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::base::clock::Clock;
use crate::base::error::AppError;
use crate::base::store::Store;
use crate::base::store::StoredHostLink;
use crate::pool::launcher::{HostEvent, Launcher};
use crate::pool::shared::{Committed, Lost, Shared};
use crate::replication::{HEARTBEAT, Replication};
use crate::tls::Tls;

/// Replicas: how often ended sessions past their retention are deleted, in heartbeats.
const PURGE_EVERY: u64 = 60;

/// A session as the API reports it: the core's record plus where it waits.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: RenderSession,
    pub queue_position: Option<usize>,
    /// Whole minutes spent Ready, as of the request.
    pub elapsed_minutes: u64,
    /// `ws://host:port` of the render host, while Ready.
    pub endpoint: Option<String>,
    /// A device holds the render connection (the host's last heartbeat says so).
    pub device_connected: bool,
}

struct Inner {
    service: SessionService,
    /// Keyed by (access token id, session): one device polling never throttles another.
    throttle: PollThrottle<(String, SessionKey)>,
}

/// A batch of store writes and who waits for them.
struct Write {
    effects: Vec<Effect>,
    done: Option<oneshot::Sender<bool>>,
}

/// A registered render host.
#[derive(Debug, Clone)]
pub struct HostLink {
    pub size: SessionSize,
    /// `ws://host:port` where devices reach its render connections.
    pub endpoint: String,
    pub adapter: String,
    pub pid: u32,
    /// A device holds its render connection (from the last heartbeat).
    pub device: bool,
    /// Frames a second to that device, and the mean time to render one (ms), from the last
    /// heartbeat.
    pub fps: f32,
    pub frame_ms: Option<f32>,
    commands: mpsc::UnboundedSender<HostCommand>,
}

pub struct Sessions {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    writes: mpsc::UnboundedSender<Write>,
    /// Wakes the driver when the next deadline may have moved.
    wake: Notify,
    /// Render hosts that registered here and are not lost, by id.
    hosts: Mutex<HashMap<HostId, HostLink>>,
    launcher: Launcher,
    /// Replicas: the pool they share (docs/SCALING.md); `None` for the embedded coordinator.
    shared: Option<Shared>,
    /// Replicas: hosts linked here that were free with a device at the last heartbeat.
    strays: Mutex<HashSet<HostId>>,
    /// Replicas: hosts of the pool no replica held the link of, since when (as seen here).
    unlinked: Mutex<HashMap<HostId, Timestamp>>,
    /// The most sessions one account may hold at once (`--account-sessions`).
    account_sessions: Option<usize>,
}

/// A render host asking to register: who its credential says it is, and where devices reach it.
#[derive(Debug)]
pub struct Registration {
    pub host: HostId,
    /// Its credential is one this coordinator makes for the hosts it starts.
    pub started_here: bool,
    pub size: SessionSize,
    pub endpoint: String,
    pub adapter: String,
    pub pid: u32,
}

/// Why a host's registration was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("no render host named {0} is expected")]
    Unexpected(HostId),
    #[error("render host {0} was let go, and its credential with it: it is no host of the pool's")]
    LetGo(HostId),
    #[error("{0}")]
    Full(String),
    #[error("the coordinator could not store the host: {0}")]
    Store(String),
}

impl Sessions {
    /// Restores every stored session and starts the writer and the driver; with `replication`,
    /// takes part in the pool the replicas share instead (docs/SCALING.md).
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        store: Store,
        replication: Option<Arc<Replication>>,
        pool: PoolConfig,
        poll_interval: Duration,
        return_grace: Duration,
        clock: Arc<dyn Clock>,
        launcher: Launcher,
        account_sessions: Option<usize>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let stored = match replication {
            None => {
                store.forget_render_pool().await?;
                store.render_sessions().await?
            }
            Some(_) => Vec::new(),
        };
        let commands = match &replication {
            Some(replication) => Some(replication.subscribe_host_commands().await?),
            None => None,
        };
        let shared = replication
            .map(|replication| Shared::new(store.clone(), replication, pool, return_grace));
        let restored = stored.len();
        let mut named = store.named_hosts().await?;
        for (host, size) in launcher.existing_hosts() {
            let number = parallax_core::pool::host_number(&host, size).unwrap_or(0);
            named[size.index()] = named[size.index()].max(number);
        }
        let service = SessionService::restore(pool, stored, clock.now(), return_grace, named);
        let (writes, write_queue) = mpsc::unbounded_channel();
        let host_queue = launcher.events();
        let sessions = Arc::new(Self {
            inner: Mutex::new(Inner {
                service,
                throttle: PollThrottle::new(poll_interval),
            }),
            clock,
            writes,
            wake: Notify::new(),
            hosts: Mutex::new(HashMap::new()),
            launcher,
            shared,
            strays: Mutex::default(),
            unlinked: Mutex::default(),
            account_sessions,
        });
        if let (Some(shared), Some(commands)) = (&sessions.shared, commands) {
            // The pool may want standby hosts booted: one change under the lock settles who.
            sessions.change_shared(shared, None, |_, _| ()).await?;
            tokio::spawn(sessions.clone().follow_commands(commands, shutdown.clone()));
            tokio::spawn(sessions.clone().tend_shared(shutdown.clone()));
            tokio::spawn(sessions.clone().drive_hosts(host_queue, shutdown));
            tracing::info!("render pool shared with the other replicas");
            return Ok(sessions);
        }
        tokio::spawn(write_loop(store, write_queue));
        // Pods from before a restart: those of the sessions that go on stay; the pool's free
        // hosts were forgotten, and new ones boot for its standby.
        {
            let inner = sessions.lock();
            sessions
                .launcher
                .adopt(|host| inner.service.pool().is_returning(host));
        }
        // Restoring may already have produced writes (sessions that lost their host) and hosts
        // to boot: carry them out before serving.
        let effects = drain(&mut sessions.lock().service);
        sessions.carry_out(effects).await?;
        tokio::spawn(sessions.clone().drive(host_queue, shutdown));
        tracing::info!(restored, "render sessions ready");
        Ok(sessions)
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Leases a session as `request` asks, within the account's quota of sessions unless the
    /// request names another.
    pub async fn create(&self, request: CreateSession) -> Result<(Created, SessionView), AppError> {
        let request = CreateSession {
            account_limit: request.account_limit.or(self.account_sessions),
            ..request
        };
        if let Some(shared) = &self.shared {
            let created = self
                .change_shared(shared, Some(&request.key), |service, now| {
                    service
                        .handle_create(request.clone(), now)
                        .map(|(created, session)| (created, session.clone()))
                })
                .await?;
            let (created, session) = created.map_err(create_error)?;
            let view = self
                .shared_view(shared, session, &mut None, self.now())
                .await?;
            return Ok((created, view));
        }
        let now = self.now();
        let (result, write) = {
            let mut inner = self.lock();
            let created = inner
                .service
                .handle_create(request.clone(), now)
                .map(|(created, _)| created);
            let result =
                created.map(|created| (created, self.view(&mut inner.service, &request.key, now)));
            (result, self.queue(&mut inner))
        };
        self.finish(write).await?;
        match result.map_err(create_error)? {
            (created, Some(view)) => Ok((created, view)),
            (_, None) => Err(not_found(&request.key)),
        }
    }

    /// A session's properties, not counted against any polling limit (for the server's own use).
    pub fn peek(&self, key: &SessionKey) -> Option<SessionView> {
        let now = self.now();
        let mut inner = self.lock();
        self.view(&mut inner.service, key, now)
    }

    /// Properties of a session, subject to the polling limit for `caller`.
    pub async fn poll(&self, caller: &str, key: &SessionKey) -> Result<SessionView, AppError> {
        if let Some(shared) = &self.shared {
            let session = self
                .read_session(shared, key)
                .await?
                .ok_or_else(|| not_found(key))?;
            let now = self.now();
            if let Err(retry_after) = self
                .lock()
                .throttle
                .handle_poll((caller.to_string(), key.clone()), now)
            {
                return Err(AppError::TooManyRequests {
                    what: "polling too often",
                    retry_after,
                });
            }
            return self.shared_view(shared, session, &mut None, now).await;
        }
        let now = self.now();
        let (result, write) = {
            let mut inner = self.lock();
            let found = inner.service.handle_get(key, now).is_some();
            let result = if !found {
                Err(not_found(key))
            } else if let Err(retry_after) = inner
                .throttle
                .handle_poll((caller.to_string(), key.clone()), now)
            {
                Err(AppError::TooManyRequests {
                    what: "polling too often",
                    retry_after,
                })
            } else {
                self.view(&mut inner.service, key, now)
                    .ok_or_else(|| not_found(key))
            };
            (result, self.queue(&mut inner))
        };
        self.finish(write).await?;
        result
    }

    pub async fn extend(&self, key: &SessionKey, minutes: u32) -> Result<SessionView, AppError> {
        if let Some(shared) = &self.shared {
            let session = self
                .change_shared(shared, Some(key), |service, now| {
                    service
                        .handle_extend(key, minutes, now)
                        .cloned()
                        .map_err(session_error)
                })
                .await??;
            return self
                .shared_view(shared, session, &mut None, self.now())
                .await;
        }
        let now = self.now();
        let (result, write) = {
            let mut inner = self.lock();
            let result = inner
                .service
                .handle_extend(key, minutes, now)
                .map(|_| ())
                .map_err(session_error)
                .and_then(|()| {
                    self.view(&mut inner.service, key, now)
                        .ok_or_else(|| not_found(key))
                });
            (result, self.queue(&mut inner))
        };
        self.finish(write).await?;
        self.wake.notify_one();
        result
    }

    pub async fn stop(&self, key: &SessionKey) -> Result<(), AppError> {
        if let Some(shared) = &self.shared {
            return self
                .change_shared(shared, Some(key), |service, now| {
                    service.handle_stop(key, now).map_err(session_error)
                })
                .await?;
        }
        let now = self.now();
        let (result, write) = {
            let mut inner = self.lock();
            let result = inner.service.handle_stop(key, now).map_err(session_error);
            (result, self.queue(&mut inner))
        };
        self.finish(write).await?;
        result
    }

    /// How many sessions on record are in each state (replicas: of the Starting and Ready ones,
    /// as last read).
    pub fn count_by_status(&self) -> std::collections::BTreeMap<&'static str, usize> {
        self.lock().service.count_by_status()
    }

    /// `account`'s Starting and Ready sessions, oldest first.
    pub async fn active(&self, account: &str) -> Result<Vec<SessionView>, AppError> {
        if let Some(shared) = &self.shared {
            let now = self.now();
            // A lease that ran out is over, whether or not a replica has swept it yet.
            let mut active: Vec<RenderSession> = shared
                .account_sessions(account)
                .await?
                .into_iter()
                .filter(|s| s.is_active() && s.lease_end().is_none_or(|end| end > now))
                .collect();
            active.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            let mut views = Vec::with_capacity(active.len());
            let mut pool = None;
            for session in active {
                views.push(self.shared_view(shared, session, &mut pool, now).await?);
            }
            return Ok(views);
        }
        let now = self.now();
        let mut inner = self.lock();
        inner.service.handle_timeout(now);
        let keys: Vec<SessionKey> = inner
            .service
            .active(account)
            .iter()
            .map(|s| s.key())
            .collect();
        let views = keys
            .iter()
            .filter_map(|key| self.view(&mut inner.service, key, now))
            .collect();
        // Expiries found here are written by the driver, which this wakes.
        drop(inner);
        self.wake.notify_one();
        Ok(views)
    }

    /// Whether the device behind `host`'s render connection may use session `key`, created at
    /// `created` (the one its ticket was made for, not a later one of the same id): the session
    /// must be Ready on that very host. Answers the session's size.
    pub async fn admit(
        &self,
        host: &HostId,
        key: &SessionKey,
        created: Timestamp,
    ) -> Result<SessionSize, String> {
        let session = match &self.shared {
            Some(shared) => self
                .read_session(shared, key)
                .await
                .map_err(|e| e.to_string())?,
            None => {
                let now = self.now();
                self.lock().service.handle_get(key, now).cloned()
            }
        };
        let session = session.ok_or_else(|| format!("there is no session named {}", key.id))?;
        if session.created_at != created {
            return Err(format!(
                "the render ticket is for an earlier session named {}",
                key.id
            ));
        }
        if session.status != SessionStatus::Ready {
            return Err(format!(
                "the session is {}, not Ready",
                session.status.as_str()
            ));
        }
        if session.host.as_ref() != Some(host) {
            return Err("this session renders on another host".into());
        }
        Ok(session.size)
    }

    /// The account whose session `host` renders now, if it renders one: a host may fetch only
    /// the models that account may load.
    pub async fn leased_account(&self, host: &HostId) -> Option<String> {
        match &self.shared {
            Some(shared) => shared
                .read_pool()
                .await
                .ok()?
                .lease_of(host)
                .map(|key| key.account.clone()),
            None => self
                .lock()
                .service
                .pool()
                .lease_of(host)
                .map(|key| key.account.clone()),
        }
    }

    /// A host registered under `host`, the name its credential proves: the name it was started
    /// with, the name it had before this coordinator restarted (its session goes on), or a name
    /// of its own the pool does not have yet (it offers itself). Returns its name and the
    /// commands to send it.
    pub async fn register(
        &self,
        registration: Registration,
    ) -> Result<(HostId, mpsc::UnboundedReceiver<HostCommand>), RegisterError> {
        if let Some(shared) = &self.shared {
            return self.register_shared(shared, registration).await;
        }
        let Registration {
            host,
            started_here,
            size,
            endpoint,
            adapter,
            pid,
        } = registration;
        let now = self.now();
        let mut inner = self.lock();
        if self.hosts_lock().contains_key(&host) {
            return Err(RegisterError::Unexpected(host));
        }
        // A process started here reports its own pid: an older host of the same name (from
        // before a restart) is not taken for it.
        if !self.launcher.started_as(&host, pid) {
            if inner.service.pool().is_returning(&host) {
                tracing::info!(%host, "render host is back after the coordinator restarted");
            } else if started_here && self.launcher.refuses_unknown_hosts() {
                return Err(RegisterError::LetGo(host));
            } else {
                inner
                    .service
                    .handle_host_offered(host.clone(), size)
                    .map_err(|e| RegisterError::Full(e.to_string()))?;
            }
        }
        let queue = self.link(&host, size, endpoint, adapter, pid);
        inner.service.handle_host_ready(&host, now);
        if inner.service.pool().lease_of(&host).is_none() {
            // Free: a device it still holds from before a restart has no session any more.
            self.send_here(&host, HostCommand::Reset);
        }
        let _ = self.queue(&mut inner);
        drop(inner);
        self.wake.notify_one();
        Ok((host, queue))
    }

    /// Replicas: a host registered here, under a name the shared pool knows (it links again:
    /// its replica died or restarted, and its session goes on), the one this replica started
    /// it with, or a name of its own it offers itself under.
    async fn register_shared(
        &self,
        shared: &Shared,
        registration: Registration,
    ) -> Result<(HostId, mpsc::UnboundedReceiver<HostCommand>), RegisterError> {
        let Registration {
            host,
            started_here,
            size,
            endpoint,
            adapter,
            pid,
        } = registration;
        let store_error = |e: AppError| RegisterError::Store(e.to_string());
        let now = self.now();
        if self.hosts_lock().contains_key(&host) {
            return Err(RegisterError::Unexpected(host));
        }
        let mut locked = shared.lock(None, now).await.map_err(store_error)?;
        let service = &mut locked.service;
        if !self.launcher.started_as(&host, pid) {
            if service.pool().size_of(&host) == Some(size) {
                tracing::info!(%host, "render host linked again, here");
            } else if started_here && self.launcher.refuses_unknown_hosts() {
                return Err(RegisterError::LetGo(host));
            } else {
                service
                    .handle_host_offered(host.clone(), size)
                    .map_err(|e| RegisterError::Full(e.to_string()))?;
            }
        }
        service.handle_host_ready(&host, now);
        let leased = service.pool().lease_of(&host).is_some();
        let link = StoredHostLink {
            id: host.to_string(),
            replica: shared.me().to_string(),
            size,
            endpoint: endpoint.clone(),
            adapter: adapter.clone(),
            pid,
            device: false,
            seen: now,
        };
        shared
            .link_host(&mut locked, &link)
            .await
            .map_err(store_error)?;
        let committed = shared.commit(locked).await.map_err(store_error)?;
        let queue = self.link(&host, size, endpoint, adapter, pid);
        self.carry_out_shared(committed).await;
        if !leased {
            // Free: a device it still holds from before has no session any more.
            self.command(&host, HostCommand::Reset).await;
        }
        Ok((host, queue))
    }

    /// Holds `host`'s link here; returns the queue of commands to send it.
    fn link(
        &self,
        host: &HostId,
        size: SessionSize,
        endpoint: String,
        adapter: String,
        pid: u32,
    ) -> mpsc::UnboundedReceiver<HostCommand> {
        let (commands, queue) = mpsc::unbounded_channel();
        tracing::info!(%host, %endpoint, %adapter, pid, "render host registered");
        self.hosts_lock().insert(
            host.clone(),
            HostLink {
                size,
                endpoint,
                adapter,
                pid,
                device: false,
                fps: 0.0,
                frame_ms: None,
                commands,
            },
        );
        queue
    }

    /// A heartbeat from `host`.
    pub async fn heartbeat(&self, host: &HostId, device: bool, fps: f32, frame_ms: Option<f32>) {
        let changed = match self.hosts_lock().get_mut(host) {
            Some(link) => {
                let changed = link.device != device;
                link.device = device;
                link.fps = fps;
                link.frame_ms = frame_ms;
                changed
            }
            None => false,
        };
        // The other replicas learn whether a device holds it (not its frame rate).
        if let (true, Some(shared)) = (changed, &self.shared) {
            shared.set_device(host, device).await;
        }
    }

    /// How `key`'s render session is doing, as a space's roster shows it: its state, whether
    /// a device holds its render connection, frames a second and mean frame time.
    pub fn render_state(&self, member: MemberId, key: &SessionKey) -> Option<MemberRender> {
        let (status, host) = {
            let inner = self.lock();
            let session = inner.service.all(&key.account).find(|s| s.id == key.id)?;
            (session.status, session.host.clone())
        };
        let hosts = self.hosts_lock();
        let ready = host.as_ref().filter(|_| status == SessionStatus::Ready);
        let link = ready.and_then(|host| hosts.get(host));
        // Linked to another replica: whether a device holds it, as last read.
        let elsewhere = match (&self.shared, ready) {
            (Some(shared), Some(host)) if link.is_none() => shared.cached_link(host),
            _ => None,
        };
        Some(MemberRender {
            member,
            session: key.id.as_str().to_string(),
            status: status.as_str().to_string(),
            device: link
                .map(|l| l.device)
                .or(elsewhere.map(|(_, device)| device))
                .unwrap_or(false),
            fps: link.map_or(0.0, |l| l.fps),
            frame_ms: link.and_then(|l| l.frame_ms),
        })
    }

    /// `host` died, fell silent or closed its link: its session ends in `Error` and the pool
    /// replaces it. Harmless for a host already given up.
    pub async fn host_lost(&self, host: &HostId, reason: &str) {
        if let Some(shared) = &self.shared {
            let was_linked = self.hosts_lock().remove(host).is_some();
            // Linked with another replica meanwhile, it is not lost, and its pod stays.
            match shared.give_up(host, reason, Lost::Here, self.now()).await {
                Ok(Some(committed)) => {
                    let was_started = self.launcher.stop(host);
                    if was_linked || was_started {
                        tracing::warn!(%host, "render host lost: {reason}");
                    }
                    self.carry_out_shared(committed).await;
                }
                Ok(None) => {
                    if self.lock().service.pool().size_of(host).is_none() {
                        self.launcher.stop(host);
                    }
                }
                Err(e) => tracing::error!(%host, "giving up a render host: {e}"),
            }
            return;
        }
        let now = self.now();
        let mut inner = self.lock();
        let was_linked = self.hosts_lock().remove(host).is_some();
        let was_started = self.launcher.stop(host);
        if was_linked || was_started {
            tracing::warn!(%host, "render host lost: {reason}");
        }
        inner.service.handle_host_lost(host, reason, now);
        let _ = self.queue(&mut inner);
        drop(inner);
        self.wake.notify_one();
    }

    /// Where the launcher's hosts find this coordinator; hosts start once it is known.
    pub fn set_address(&self, address: std::net::SocketAddr, tls: Option<&Tls>) {
        self.launcher.set_address(address, tls);
    }

    /// Stops the hosts this coordinator started and waits for them.
    pub async fn stop_hosts(&self) {
        self.launcher.stop_all().await;
    }

    fn hosts_lock(&self) -> MutexGuard<'_, HashMap<HostId, HostLink>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The render pool per size: hosts in all, booted and free, leased, and sessions queued.
    pub fn pool_status(&self) -> Vec<SizeStatus> {
        let inner = self.lock();
        let pool = inner.service.pool();
        SessionSize::ALL
            .map(|size| {
                let (hosts, idle, leased) = pool.utilization(size);
                let limits = pool.config().limits(size);
                SizeStatus {
                    size: size.as_str().to_string(),
                    capacity: limits.capacity,
                    standby: limits.standby,
                    hosts,
                    idle,
                    leased,
                    starting: hosts.saturating_sub(idle + leased),
                    lost: pool.lost(size),
                    queued: u32::try_from(pool.queued(size).count()).unwrap_or(u32::MAX),
                    unavailable: self.launcher.unavailable(size),
                }
            })
            .to_vec()
    }

    /// The registered render hosts, for the operator (replicas: every replica's).
    pub fn host_status(&self) -> Vec<HostStatus> {
        if let Some(shared) = &self.shared {
            return shared.host_status();
        }
        self.hosts_lock()
            .iter()
            .map(|(id, link)| HostStatus {
                id: id.to_string(),
                size: link.size.as_str().into(),
                endpoint: link.endpoint.clone(),
                adapter: link.adapter.clone(),
                pid: link.pid,
                device: link.device,
                replica: None,
            })
            .collect()
    }

    /// Time each of `account`'s sessions was Ready within `[from, to)`, by session id; sessions
    /// never Ready then are left out.
    pub async fn usage(
        &self,
        account: &str,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<(SessionId, SessionSize, Duration)>, AppError> {
        let now = self.now();
        let sessions = match &self.shared {
            Some(shared) => shared.account_sessions(account).await?,
            None => self.lock().service.all(account).cloned().collect(),
        };
        let mut usage: Vec<_> = sessions
            .iter()
            .map(|s| (s.id.clone(), s.size, s.ready_time_within(from, to, now)))
            .filter(|(_, _, ready)| !ready.is_zero())
            .collect();
        usage.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
        Ok(usage)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the pure core; keep serving.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues the store writes the last core call produced (still under the lock, so in order)
    /// and boots hosts; returns what to await for the writes.
    fn queue(&self, inner: &mut Inner) -> Option<oneshot::Receiver<bool>> {
        let effects = drain(&mut inner.service);
        self.dispatch(effects)
    }

    fn dispatch(&self, effects: Vec<Effect>) -> Option<oneshot::Receiver<bool>> {
        let mut stored = Vec::new();
        for effect in effects {
            match effect {
                Effect::StartHost { host, size } => {
                    // Its name is kept: a restart names new hosts past it.
                    stored.push(Effect::StartHost {
                        host: host.clone(),
                        size,
                    });
                    self.launcher.launch(host, size);
                }
                Effect::ResetHost { host } => {
                    // The session ended: the host disconnects its device, which drops the
                    // scene; it is clean for its next lease.
                    if let Some(link) = self.hosts_lock().get(&host) {
                        let _ = link.commands.send(HostCommand::Reset);
                    }
                    tracing::debug!(%host, "render host reset for its next lease");
                }
                Effect::StopHost { host } => {
                    self.send_here(&host, HostCommand::Retire);
                    self.let_go(&host);
                }
                write => stored.push(write),
            }
        }
        if stored.is_empty() {
            return None;
        }
        let (done, written) = oneshot::channel();
        // The writer lives as long as the process; if it is gone, `finish` reports the failure.
        let _ = self.writes.send(Write {
            effects: stored,
            done: Some(done),
        });
        Some(written)
    }

    async fn carry_out(&self, effects: Vec<Effect>) -> anyhow::Result<()> {
        if !written(self.dispatch(effects)).await {
            anyhow::bail!("storing render sessions failed; see the log");
        }
        Ok(())
    }

    async fn finish(&self, write: Option<oneshot::Receiver<bool>>) -> Result<(), AppError> {
        self.wake.notify_one();
        if !written(write).await {
            return Err(AppError::Internal(anyhow::anyhow!(
                "storing a render session change failed"
            )));
        }
        Ok(())
    }

    /// Applies timeouts and host reports until shutdown.
    async fn drive(
        self: Arc<Self>,
        mut host_queue: mpsc::UnboundedReceiver<HostEvent>,
        shutdown: CancellationToken,
    ) {
        loop {
            let next = self.lock().service.poll_timeout();
            let wait = next.map_or(Duration::from_secs(3600), |at| at.since(self.now()));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.wake.notified() => {}
                Some(event) = host_queue.recv() => self.handle_host_event(event).await,
                () = shutdown.cancelled() => return,
            }
            let now = self.now();
            let write = {
                let mut inner = self.lock();
                inner.service.handle_timeout(now);
                self.queue(&mut inner)
            };
            if !written(write).await {
                tracing::error!("storing expired or purged sessions failed");
            }
        }
    }

    /// Replicas: the launcher's reports on the hosts this one started (timeouts are the
    /// shared pool's, `tend_shared`).
    async fn drive_hosts(
        self: Arc<Self>,
        mut host_queue: mpsc::UnboundedReceiver<HostEvent>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                Some(event) = host_queue.recv() => self.handle_host_event(event).await,
                () = shutdown.cancelled() => return,
            }
        }
    }

    async fn handle_host_event(&self, event: HostEvent) {
        match event {
            HostEvent::Lost(host, reason) => self.host_lost(&host, &reason).await,
            HostEvent::BootDeadline(host) => {
                // Still booting in the pool: it never registered, here or with another replica.
                let booting = self.lock().service.pool().is_booting(&host);
                if booting && !self.hosts_lock().contains_key(&host) && self.launcher.started(&host)
                {
                    self.host_lost(&host, "the render host did not register in time")
                        .await;
                }
            }
        }
    }

    /// Replicas: runs one change of the shared pool, with session `also` read too, commits
    /// it, and boots and resets the hosts it asked for.
    async fn change_shared<T>(
        &self,
        shared: &Shared,
        also: Option<&SessionKey>,
        change: impl FnOnce(&mut SessionService, Timestamp) -> T,
    ) -> Result<T, AppError> {
        let now = self.now();
        let mut locked = shared.lock(also, now).await?;
        let result = change(&mut locked.service, now);
        let committed = shared.commit(locked).await?;
        self.carry_out_shared(committed).await;
        Ok(result)
    }

    /// Keeps the committed pool as this replica's copy and carries out its host effects.
    async fn carry_out_shared(&self, committed: Committed) {
        self.lock().service = committed.service;
        for effect in committed.hosts {
            match effect {
                Effect::StartHost { host, size } => self.launcher.launch(host, size),
                Effect::ResetHost { host } => self.command(&host, HostCommand::Reset).await,
                Effect::StopHost { host } => {
                    // Wherever it is linked, the host leaves on its own.
                    self.command(&host, HostCommand::Retire).await;
                    self.let_go(&host);
                }
                Effect::Persist(_) | Effect::Purge(_) => {}
            }
        }
    }

    /// The pool let `host` go (it was told to leave, and its device that its session ended):
    /// it is no longer linked here, and if it was started here, it is stopped if it does not
    /// leave by itself.
    fn let_go(&self, host: &HostId) {
        self.hosts_lock().remove(host);
        if self.launcher.retire(host) {
            tracing::info!(%host, "render host let go: more are free than the standby target");
        }
    }

    /// Sends `command` to `host`: over its link if it is here, else over NATS to the replica
    /// holding it.
    async fn command(&self, host: &HostId, command: HostCommand) {
        if self.send_here(host, command.clone()) {
            return;
        }
        if let Some(shared) = &self.shared {
            shared.replication.host_command(host, &command).await;
        }
    }

    /// Sends `command` to `host` over its link, if it is linked here; whether it is.
    fn send_here(&self, host: &HostId, command: HostCommand) -> bool {
        match self.hosts_lock().get(host) {
            Some(link) => {
                let _ = link.commands.send(command);
                true
            }
            None => false,
        }
    }

    /// Where devices reach `host` and whether one holds it, if it is linked here.
    fn link_here(&self, host: &HostId) -> Option<(String, bool)> {
        self.hosts_lock()
            .get(host)
            .map(|l| (l.endpoint.clone(), l.device))
    }

    /// Replicas: a session as committed, its lease expiry carried out first if it is due.
    async fn read_session(
        &self,
        shared: &Shared,
        key: &SessionKey,
    ) -> Result<Option<RenderSession>, AppError> {
        let now = self.now();
        match shared.session(key).await? {
            Some(s) if s.is_active() && s.lease_end().is_some_and(|end| end <= now) => {
                self.change_shared(shared, Some(key), |service, now| {
                    service.handle_timeout(now)
                })
                .await?;
                shared.session(key).await
            }
            other => Ok(other),
        }
    }

    /// Replicas: a session as committed, as the API reports it.
    /// `pool` is the committed pool for queue positions, read here the first time one is needed.
    async fn shared_view(
        &self,
        shared: &Shared,
        session: RenderSession,
        pool: &mut Option<Pool>,
        now: Timestamp,
    ) -> Result<SessionView, AppError> {
        let queue_position = match (session.status, &session.host) {
            (SessionStatus::Starting, None) => {
                if pool.is_none() {
                    *pool = Some(shared.read_pool().await?);
                }
                pool.as_ref()
                    .and_then(|pool| pool.queue_position(&session.key()))
            }
            _ => None,
        };
        let link = match (&session.host, session.status) {
            (Some(host), SessionStatus::Ready) => match self.link_here(host) {
                Some(here) => Some(here),
                None => shared.link_of(host).await,
            },
            _ => None,
        };
        Ok(Self::view_of(session, queue_position, link, now))
    }

    /// Replicas, every heartbeat: vouches for the hosts linked here, refreshes the copies,
    /// carries out lease expiries that are due, gives up hosts nobody vouched for within the
    /// grace, and now and then deletes sessions past their retention. Any replica may do each;
    /// the lock makes it happen once.
    async fn tend_shared(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(shared) = &self.shared else { return };
        let mut tick = tokio::time::interval(HEARTBEAT);
        for beat in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if let Err(e) = self.tend_once(shared, beat).await {
                tracing::warn!("tending the shared render pool: {e}");
            }
        }
    }

    async fn tend_once(&self, shared: &Shared, beat: u64) -> Result<(), AppError> {
        let now = self.now();
        let (unheard, since) = shared.heartbeat(now).await?;
        let read_at = tokio::time::Instant::now();
        let copy = shared.refresh().await?;
        let due = copy.poll_timeout().is_some_and(|at| at <= now);
        self.reset_strays(&copy).await;
        let copy_hosts: Vec<(HostId, SessionSize, bool)> = copy
            .pool()
            .hosts()
            .filter_map(|(host, booting)| Some((host.clone(), copy.pool().size_of(host)?, booting)))
            .collect();
        self.lock().service = copy;
        self.launcher.reconcile(&copy_hosts, read_at);
        if due {
            self.change_shared(shared, None, |service, now| service.handle_timeout(now))
                .await?;
        }
        let grace = shared.return_grace.as_secs();
        let unheard = unheard.into_iter().map(|host| {
            let reason = format!(
                "its coordinator replica stopped and it did not link with another within {grace} s"
            );
            (host, reason, Lost::Unheard(since))
        });
        let unlinked = self
            .unlinked(shared, &copy_hosts, now)
            .into_iter()
            .map(|host| {
                let reason = format!("no coordinator replica has held its link for {grace} s");
                (host, reason, Lost::Unlinked)
            });
        for (host, why, lost) in unheard.chain(unlinked) {
            let reason = format!("render host {host} was lost: {why}");
            if let Some(committed) = shared.give_up(&host, &reason, lost, now).await? {
                tracing::warn!(%host, "{reason}");
                self.carry_out_shared(committed).await;
            }
        }
        if beat.is_multiple_of(PURGE_EVERY) {
            shared.purge(now).await?;
        }
        Ok(())
    }

    /// Replicas: a host linked here that is free with a device at two heartbeats running missed
    /// its reset (NATS lost it): it gets it again. One heartbeat is not enough, as `copy` may
    /// predate the lease a device just connected under.
    async fn reset_strays(&self, copy: &SessionService) {
        let strays: HashSet<HostId> = self
            .hosts_lock()
            .iter()
            .filter(|(host, link)| link.device && copy.pool().lease_of(host).is_none())
            .map(|(host, _)| host.clone())
            .collect();
        let again: Vec<HostId> = {
            let mut seen = self.strays.lock().unwrap_or_else(|p| p.into_inner());
            let again = strays.intersection(&seen).cloned().collect();
            *seen = strays;
            again
        };
        for host in again {
            tracing::warn!(%host, "a device stayed on a free render host: resetting it again");
            self.command(&host, HostCommand::Reset).await;
        }
    }

    /// Replicas: the hosts of the pool whose link no replica has held for longer than linking
    /// takes: the grace (and a host's boot, while it boots). They were booted by a replica that
    /// died before they registered, or served a single coordinator before the replicas and did
    /// not come back. `hosts` is the pool as just read, with whether each host still boots.
    fn unlinked(
        &self,
        shared: &Shared,
        hosts: &[(HostId, SessionSize, bool)],
        now: Timestamp,
    ) -> Vec<HostId> {
        let mut since = self.unlinked.lock().unwrap_or_else(|p| p.into_inner());
        // A host booting while its size cannot start waits for it, not for a link.
        let unavailable = SessionSize::ALL.map(|size| self.launcher.unavailable(size).is_some());
        let linked: HashSet<HostId> = self.hosts_lock().keys().cloned().collect();
        let unlinked: Vec<&(HostId, SessionSize, bool)> = hosts
            .iter()
            .filter(|(host, size, booting)| {
                shared.cached_link(host).is_none()
                    && !linked.contains(host)
                    && !(*booting && unavailable[size.index()])
            })
            .collect();
        since.retain(|host, _| unlinked.iter().any(|(h, _, _)| h == host));
        unlinked
            .into_iter()
            .filter(|(host, _, booting)| {
                let first = *since.entry(host.clone()).or_insert(now);
                let limit = HEARTBEAT
                    + shared.return_grace
                    + if *booting {
                        self.launcher.boot_limit()
                    } else {
                        Duration::ZERO
                    };
                now.since(first) > limit
            })
            .map(|(host, _, _)| host.clone())
            .collect()
    }

    /// Replicas: carries out the host commands other replicas send to the hosts linked here.
    async fn follow_commands(
        self: Arc<Self>,
        mut subscriber: async_nats::Subscriber,
        shutdown: CancellationToken,
    ) {
        let Some(replication) = self.shared.as_ref().map(|s| s.replication.clone()) else {
            return;
        };
        while let Some(message) = replication
            .next_message::<(HostId, HostCommand)>(&mut subscriber, &shutdown)
            .await
        {
            match message {
                Ok((host, command)) => {
                    self.send_here(&host, command);
                }
                Err(e) => tracing::warn!("a host command on NATS that is not one: {e}"),
            }
        }
    }

    fn view(
        &self,
        service: &mut SessionService,
        key: &SessionKey,
        now: Timestamp,
    ) -> Option<SessionView> {
        let queue_position = service.queue_position(key);
        let session = service.handle_get(key, now)?.clone();
        let link = match (&session.host, session.status) {
            (Some(host), SessionStatus::Ready) => self
                .link_here(host)
                .or_else(|| self.shared.as_ref()?.cached_link(host)),
            _ => None,
        };
        Some(Self::view_of(session, queue_position, link, now))
    }

    /// `session` as the API reports it; `link` is where devices reach its host and whether
    /// one holds it.
    fn view_of(
        session: RenderSession,
        queue_position: Option<usize>,
        link: Option<(String, bool)>,
        now: Timestamp,
    ) -> SessionView {
        let (endpoint, device_connected) = link.map_or((None, false), |(e, d)| (Some(e), d));
        SessionView {
            elapsed_minutes: session.elapsed_minutes(now),
            session,
            queue_position,
            endpoint,
            device_connected,
        }
    }
}

/// Waits for a queued write; true if there was none or it succeeded.
async fn written(write: Option<oneshot::Receiver<bool>>) -> bool {
    match write {
        Some(done) => done.await.unwrap_or(false),
        None => true,
    }
}

fn drain(service: &mut SessionService) -> Vec<Effect> {
    std::iter::from_fn(|| service.poll_effect()).collect()
}

async fn write_loop(store: Store, mut queue: mpsc::UnboundedReceiver<Write>) {
    while let Some(write) = queue.recv().await {
        let mut ok = true;
        for effect in &write.effects {
            let result = match effect {
                Effect::Persist(session) => store.upsert_render_session(session).await,
                Effect::Purge(key) => store.delete_render_session(key).await,
                Effect::StartHost { host, size } => {
                    match parallax_core::pool::host_number(host, *size) {
                        Some(number) => store.named_host(*size, number).await,
                        None => Ok(()),
                    }
                }
                Effect::ResetHost { .. } | Effect::StopHost { .. } => Ok(()),
            };
            if let Err(e) = result {
                tracing::error!("storing a render session change failed: {e}");
                ok = false;
            }
        }
        if let Some(done) = write.done {
            let _ = done.send(ok);
        }
    }
}

fn not_found(key: &SessionKey) -> AppError {
    AppError::not_found(format!("there is no session named {}", key.id))
}

fn session_error(error: SessionError) -> AppError {
    match error {
        SessionError::NotFound(id) => {
            AppError::not_found(format!("there is no session named {id}"))
        }
        // What the request asks is allowed but not of this session now: a conflict with its
        // state. Above the bound the request itself is wrong.
        SessionError::Extend(e @ ExtendError::TooLong { .. }) => {
            AppError::bad_request(e.to_string(), Some("maxLeaseTimeMinutes"))
        }
        SessionError::Extend(e) => AppError::conflict(e.to_string()),
    }
}

fn create_error(error: CreateError) -> AppError {
    match error {
        CreateError::BadLease(_) => {
            AppError::bad_request(error.to_string(), Some("maxLeaseTimeMinutes"))
        }
        CreateError::Conflict { .. } => AppError::conflict(error.to_string()),
        CreateError::Exhausted(e) => AppError::unavailable("PoolExhausted", e.to_string()),
        CreateError::AccountLimit { .. } => crate::accounts::quotas::exceeded(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "account-sessions",
            error.to_string(),
        ),
    }
}
