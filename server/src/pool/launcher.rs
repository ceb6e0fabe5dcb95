//! [`Launcher`]: starts the render hosts the pool asks for — `parallax render-host` child
//! processes in the embedded default, or tasks in this process for tests — and reports when one
//! ends. Hosts register over `/v1/hosts/ws` (`crate::http::hosts`), wherever they run.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use parallax_core::pool::HostId;
use parallax_core::session::SessionSize;
use parallax_host::HostConfig;
use parallax_host::config::{DEFAULT_GPU_CACHE_MB, DEFAULT_MESH_CACHE_MB};
use parallax_host::tls::CertFiles;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::accounts::hosts::HostCredentials;
use crate::tls::Tls;

/// How long a started host may take to register before it is given up.
pub const BOOT_LIMIT: Duration = Duration::from_secs(60);
/// How long a local host process gets to leave on its own before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Frames per second a local host sends a device at most.
pub const DEFAULT_TARGET_FPS: u32 = 60;

/// What the host launcher reports.
pub enum HostEvent {
    /// The host's process or task ended, or never got going.
    Lost(HostId, String),
    /// A started host has had its time to register; lost if it has not.
    BootDeadline(HostId),
}

/// How the coordinator starts the hosts its pool asks for.
#[derive(Debug, Clone)]
pub enum HostMode {
    /// `parallax render-host` child processes of this executable.
    Processes(PathBuf),
    /// Tasks in this process, each with its own render thread and port (tests).
    Tasks,
    /// Pods in a Kubernetes cluster (`--render-hosts kubernetes`).
    #[cfg(feature = "kubernetes")]
    Kubernetes(Arc<crate::pool::kubernetes::Provisioner>),
}

/// How the coordinator's own hosts reach it, and what they serve with.
#[derive(Debug, Clone)]
struct Address {
    /// Its host endpoint, `ws(s)://…/v1/hosts/ws`.
    coordinator: String,
    /// The IP hosts listen on: the coordinator's own.
    listen: IpAddr,
    /// The authority a `wss://` coordinator is verified with.
    ca: Option<PathBuf>,
    /// The certificate render connections are served with.
    serve: Option<CertFiles>,
}

/// Starts local render hosts and tells the session driver when one ends.
pub struct Launcher {
    mode: HostMode,
    /// Gives each host started here the credential of its name.
    credentials: HostCredentials,
    /// Set once the coordinator listens: how hosts reach it and where they listen.
    address: watch::Sender<Option<Address>>,
    /// Hosts started here and not yet given up.
    started: Mutex<HashMap<HostId, Started>>,
    /// How long a host started here keeps its device, and waits, while the coordinator is away.
    coordinator_wait: Duration,
    events: mpsc::UnboundedSender<HostEvent>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<HostEvent>>>,
}

impl Launcher {
    /// Hosts started by a launcher outlive a coordinator that dies: they wait for it (twice
    /// `return_grace`, at least a minute) and link again.
    pub fn new(mode: HostMode, credentials: HostCredentials, return_grace: Duration) -> Self {
        let (events, queue) = mpsc::unbounded_channel();
        Self {
            mode,
            credentials,
            coordinator_wait: (return_grace * 2).max(Duration::from_secs(60)),
            address: watch::Sender::new(None),
            started: Mutex::new(HashMap::new()),
            events,
            queue: Mutex::new(Some(queue)),
        }
    }

    /// What the launched hosts report; taken once, by the session driver.
    pub fn events(&self) -> mpsc::UnboundedReceiver<HostEvent> {
        lock(&self.queue).take().unwrap_or_else(|| {
            // A second taker gets a closed channel rather than a share of the events.
            mpsc::unbounded_channel().1
        })
    }

    pub fn set_address(&self, address: SocketAddr, tls: Option<&Tls>) {
        let url = match tls {
            // Over TLS at the name the authority's certificate always has.
            Some(_) => format!("wss://localhost:{}/v1/hosts/ws", address.port()),
            // On loopback if the coordinator listens everywhere.
            None => match address.ip() {
                ip if ip.is_unspecified() => format!(
                    "ws://{}/v1/hosts/ws",
                    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
                ),
                _ => format!("ws://{address}/v1/hosts/ws"),
            },
        };
        self.address.send_replace(Some(Address {
            coordinator: url,
            listen: address.ip(),
            ca: tls.map(|tls| tls.ca_file.clone()),
            serve: tls.map(|tls| tls.host_files.clone()),
        }));
    }

    /// Whether `host` was started here and not given up.
    pub fn started(&self, host: &HostId) -> bool {
        lock(&self.started).contains_key(host)
    }

    /// Whether `host` was started here as process `pid` (or as a task of this process).
    /// A pod's host is taken at its name: its process id is the container's, and its
    /// credential is the pod's alone.
    pub fn started_as(&self, host: &HostId, pid: u32) -> bool {
        lock(&self.started)
            .get(host)
            .is_some_and(|started| started.any_pid || started.pid.get() == Some(&pid))
    }

    /// The hosts whose pods are there now, by name and size (none but with pods): a restarted
    /// pool names new hosts past them, even one made just before a crash whose name was not kept.
    pub fn existing_hosts(&self) -> Vec<(HostId, SessionSize)> {
        match &self.mode {
            #[cfg(feature = "kubernetes")]
            HostMode::Kubernetes(provisioner) => provisioner
                .existing()
                .into_iter()
                .map(|(host, size, _)| (host, size))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether a host it started that is not in the pool is refused when it registers: pods
    /// (credentials kept as Secrets in the cluster, of pods deleted once let go). A local
    /// process the pool let go has exited, and one from before a crash is taken back.
    pub fn refuses_unknown_hosts(&self) -> bool {
        match &self.mode {
            #[cfg(feature = "kubernetes")]
            HostMode::Kubernetes(_) => true,
            _ => false,
        }
    }

    /// Why hosts of `size` cannot be started now, if they cannot (pods that would not start).
    pub fn unavailable(&self, size: SessionSize) -> Option<String> {
        match &self.mode {
            #[cfg(feature = "kubernetes")]
            HostMode::Kubernetes(provisioner) => provisioner.unavailable(size),
            _ => {
                let _ = size;
                None
            }
        }
    }

    /// After a restart: takes up the hosts still running from before for which `keep` is true
    /// (their sessions go on), and stops the others. Only pods outlive a coordinator this way;
    /// local processes link again by themselves.
    pub fn adopt(&self, keep: impl Fn(&HostId) -> bool) {
        #[cfg(feature = "kubernetes")]
        if let HostMode::Kubernetes(provisioner) = &self.mode {
            for (host, size, pod) in provisioner.existing() {
                if !keep(&host) {
                    tracing::info!(%host, %pod, "render host pod from before the restart deleted");
                    provisioner.remove_soon(pod);
                    continue;
                }
                self.take_up(provisioner, host, size, pod);
            }
        }
        let _ = keep;
    }

    /// Watches `host`'s existing `pod` as if it had been started here.
    #[cfg(feature = "kubernetes")]
    fn take_up(
        &self,
        provisioner: &Arc<crate::pool::kubernetes::Provisioner>,
        host: HostId,
        size: SessionSize,
        pod: String,
    ) {
        let stop = CancellationToken::new();
        let events = self.events.clone();
        let id = host.clone();
        let deadline = boot_deadline(&events, &host);
        let watch = provisioner
            .clone()
            .adopt(host.clone(), size, pod, stop.clone(), deadline);
        let task = tokio::spawn(async move {
            if let Some(ended) = watch.await {
                let _ = events.send(HostEvent::Lost(id, ended));
            }
        });
        let started = Started {
            stop,
            task,
            pid: Arc::default(),
            any_pid: true,
            at: tokio::time::Instant::now(),
        };
        lock(&self.started).insert(host, started);
    }

    /// Replicas with pods, on the replica that provisions: makes the pods match `pool` (its
    /// hosts, their sizes, and whether each is booting): a pod for each booting host that has
    /// none, none for a host the pool does not have, and every pod there watched. On the others,
    /// forgets the pods (the provisioning replica watches them). `pool` was read at `read_at`:
    /// hosts started here since are newer than it, and left alone.
    pub fn reconcile(&self, pool: &[(HostId, SessionSize, bool)], read_at: tokio::time::Instant) {
        #[cfg(feature = "kubernetes")]
        if let HostMode::Kubernetes(provisioner) = &self.mode {
            if !provisioner.leading() {
                lock(&self.started).clear();
                return;
            }
            let newer = |host: &HostId| {
                lock(&self.started)
                    .get(host)
                    .is_some_and(|started| started.at > read_at)
            };
            let in_pool = |host: &HostId| pool.iter().any(|(h, _, _)| h == host) || newer(host);
            for pod in provisioner.duplicates() {
                tracing::warn!(%pod, "a second render host pod of a host: deleted");
                provisioner.remove_soon(pod);
            }
            let existing = provisioner.existing();
            for (host, size, pod) in existing.iter().cloned() {
                if !in_pool(&host) {
                    if !self.stop(&host) {
                        tracing::info!(%host, %pod, "render host pod of a host the pool has not: deleted");
                        provisioner.remove_soon(pod);
                    }
                } else if !self.started(&host) {
                    self.take_up(provisioner, host, size, pod);
                }
            }
            let gone: Vec<HostId> = lock(&self.started)
                .iter()
                .filter(|(host, started)| {
                    started.at <= read_at && !pool.iter().any(|(h, _, _)| h == *host)
                })
                .map(|(host, _)| host.clone())
                .collect();
            for host in gone {
                self.stop(&host);
            }
            for (host, size, booting) in pool {
                let has_pod = existing.iter().any(|(h, _, _)| h == host);
                if *booting && !has_pod && !self.started(host) {
                    self.launch(host.clone(), *size);
                }
            }
        }
        let _ = (pool, read_at);
    }

    /// How long a host started here may take to register.
    pub fn boot_limit(&self) -> Duration {
        match &self.mode {
            #[cfg(feature = "kubernetes")]
            HostMode::Kubernetes(provisioner) => provisioner.boot_limit(),
            _ => BOOT_LIMIT,
        }
    }

    /// Starts `host` once the coordinator's address is known. Among replicas with pods, only the
    /// one that provisions does ([`Launcher::reconcile`] on it makes the pods the others' pool
    /// changes ask for).
    pub fn launch(&self, host: HostId, size: SessionSize) {
        #[cfg(feature = "kubernetes")]
        if let HostMode::Kubernetes(provisioner) = &self.mode
            && (!provisioner.leading() || lock(&self.started).contains_key(&host))
        {
            return;
        }
        let stop = CancellationToken::new();
        let mode = self.mode.clone();
        let credential = self.credentials.local_credential(&host);
        let mut address = self.address.subscribe();
        let events = self.events.clone();
        let id = host.clone();
        let token = stop.clone();
        let pid = Arc::new(OnceLock::new());
        let child_pid = pid.clone();
        let coordinator_wait = self.coordinator_wait;
        let task = tokio::spawn(async move {
            let known = tokio::select! {
                known = address.wait_for(Option::is_some) => known.map(|a| a.clone()),
                () = token.cancelled() => return,
            };
            let Ok(Some(address)) = known else {
                return;
            };
            let config = HostConfig {
                coordinators: vec![address.coordinator],
                ca: address.ca,
                tls: address.serve,
                size,
                credential,
                host: Some(id.clone()),
                listen: SocketAddr::new(address.listen, 0),
                advertise: None,
                advertise_port: None,
                local: true,
                coordinator_wait,
                target_fps: DEFAULT_TARGET_FPS,
                // A host process reads these from the environment it inherits
                // (`PARALLAX_HOST_BITRATE`, `PARALLAX_HOST_MESH_CACHE_MB`,
                // `PARALLAX_HOST_GPU_CACHE_MB`).
                bitrate: None,
                mesh_cache_bytes: HostConfig::mib(DEFAULT_MESH_CACHE_MB),
                gpu_cache_bytes: HostConfig::mib(DEFAULT_GPU_CACHE_MB),
            };
            tracing::info!(host = %id, %size, "starting render host");
            // A pod's own deadline starts once it is made (`Provisioner::run`).
            let deadline = |events: &mpsc::UnboundedSender<HostEvent>| {
                let (events, id) = (events.clone(), id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(BOOT_LIMIT).await;
                    let _ = events.send(HostEvent::BootDeadline(id));
                })
            };
            let ended = match mode {
                HostMode::Processes(exe) => {
                    let deadline = deadline(&events);
                    let ended = supervise_process(exe, config, token, child_pid).await;
                    deadline.abort();
                    Some(ended)
                }
                HostMode::Tasks => {
                    let _ = child_pid.set(std::process::id());
                    let deadline = deadline(&events);
                    let ended = supervise_task(config, token).await;
                    deadline.abort();
                    Some(ended)
                }
                #[cfg(feature = "kubernetes")]
                HostMode::Kubernetes(provisioner) => {
                    let deadline = boot_deadline(&events, &id);
                    provisioner
                        .run(id.clone(), size, config.credential, token, deadline)
                        .await
                }
            };
            // `None`: another replica provisions now, and watches the pod.
            if let Some(ended) = ended {
                let _ = events.send(HostEvent::Lost(id, ended));
            }
        });
        let any_pid = self.pods();
        let started = Started {
            stop,
            task,
            pid,
            any_pid,
            at: tokio::time::Instant::now(),
        };
        lock(&self.started).insert(host, started);
    }

    fn pods(&self) -> bool {
        #[cfg(feature = "kubernetes")]
        if let HostMode::Kubernetes(_) = self.mode {
            return true;
        }
        false
    }

    /// Stops `host` if it was started here; true if it was.
    pub fn stop(&self, host: &HostId) -> bool {
        match lock(&self.started).remove(host) {
            Some(started) => {
                started.stop.cancel();
                true
            }
            None => false,
        }
    }

    /// `host`, started here, was told to leave: it is no longer this launcher's, and it is
    /// stopped if it has not left within a few seconds. True if it was started here.
    pub fn retire(&self, host: &HostId) -> bool {
        let Some(started) = lock(&self.started).remove(host) else {
            return false;
        };
        tokio::spawn(async move {
            tokio::time::sleep(EXIT_GRACE).await;
            started.stop.cancel();
        });
        true
    }

    /// Stops every host started here and waits until they are gone.
    pub async fn stop_all(&self) {
        let started: Vec<_> = lock(&self.started).drain().map(|(_, s)| s).collect();
        for host in &started {
            host.stop.cancel();
        }
        for host in started {
            let _ = host.task.await;
        }
    }
}

/// A host started here and not yet given up.
struct Started {
    /// Cancelled to stop it.
    stop: CancellationToken,
    /// Supervises it until it ends.
    task: JoinHandle<()>,
    /// Its process id, once it runs (this process's own, for a task).
    pid: Arc<OnceLock<u32>>,
    /// A pod: taken at its name, whatever process id it reports.
    any_pid: bool,
    /// When it was started or taken up here (pods: newer than the pool a reconcile reads).
    #[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
    at: tokio::time::Instant,
}

/// Reports `host`'s boot deadline.
#[cfg(feature = "kubernetes")]
fn boot_deadline(
    events: &mpsc::UnboundedSender<HostEvent>,
    host: &HostId,
) -> crate::pool::kubernetes::BootDeadline {
    let (events, host) = (events.clone(), host.clone());
    Box::new(move || {
        let _ = events.send(HostEvent::BootDeadline(host));
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `parallax render-host` (its pid in `pid`) until it exits or `stop`; returns why it ended.
async fn supervise_process(
    exe: PathBuf,
    config: HostConfig,
    stop: CancellationToken,
    pid: Arc<OnceLock<u32>>,
) -> String {
    let mut command = tokio::process::Command::new(&exe);
    command
        .arg("render-host")
        .args(["--coordinator", &config.coordinators.join(",")])
        .args(["--size", config.size.as_str()])
        .args(["--listen", &config.listen.to_string()])
        .args(["--target-fps", &config.target_fps.to_string()])
        .args([
            "--coordinator-wait",
            &config.coordinator_wait.as_secs().to_string(),
        ])
        .arg("--local")
        .env_remove("PARALLAX_CA")
        .env_remove("PARALLAX_HOST_TLS_CERT")
        .env_remove("PARALLAX_HOST_TLS_KEY")
        // In the environment, not on the command line (which `ps` shows everyone).
        .env("PARALLAX_HOST_CREDENTIAL", &config.credential)
        // Not killed when dropped: a host outlives a coordinator that dies or leaves it running
        // (`--on-stop keep-hosts`), and exits by itself when no coordinator takes it back.
        .stdin(std::process::Stdio::null());
    if let Some(host) = &config.host {
        command.args(["--host-id", host.as_str()]);
    }
    if let Some(ca) = &config.ca {
        command.arg("--ca").arg(ca);
    }
    if let Some(files) = &config.tls {
        command.arg("--tls-cert").arg(&files.cert);
        command.arg("--tls-key").arg(&files.key);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return format!("could not start {}: {e}", exe.display()),
    };
    if let Some(id) = child.id() {
        let _ = pid.set(id);
    }
    tokio::select! {
        status = child.wait() => match status {
            Ok(status) => format!("the render host process exited ({status})"),
            Err(e) => format!("the render host process could not be watched: {e}"),
        },
        () = stop.cancelled() => {
            // A local host leaves by itself when its link closes; one that does not is stuck.
            if tokio::time::timeout(EXIT_GRACE, child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
            "the render host was stopped".into()
        }
    }
}

/// Runs a host as a task in this process until it ends or `stop`.
async fn supervise_task(config: HostConfig, stop: CancellationToken) -> String {
    match parallax_host::run(config, stop.clone()).await {
        Ok(()) if stop.is_cancelled() => "the render host was stopped".into(),
        Ok(()) => "the render host left".into(),
        Err(e) => format!("the render host failed: {e:#}"),
    }
}
