//! What a render host's connections share: its render thread, the one device slot, the
//! admissions waiting for the coordinator's verdict, the meshes it fetched and the frame counts
//! its heartbeats report.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use moka::future::Cache;
use parallax_core::ModelId;
use parallax_core::host::{Admission, HostReport};
use parallax_core::session::SessionSize;
use parallax_render::Mesh;
use parallax_render::pick::PickIndex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ticket::TicketVerifier;
use crate::worker::RenderWorker;

/// How long a device waits for the coordinator's verdict on its token.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);

/// State the render connections share.
pub struct Host {
    pub(crate) worker: RenderWorker,
    /// The shortest time between two frames to the device (the host's target fps).
    pub(crate) frame_interval: Duration,
    /// A fixed H.264 bitrate instead of one that follows the frame size.
    pub(crate) bitrate: Option<u32>,
    /// The device holding the render connection, and how to end its conversation.
    device: Mutex<Option<CancellationToken>>,
    /// Reports to the coordinator, while a link is up.
    link: Mutex<Option<mpsc::UnboundedSender<HostReport>>>,
    admissions: Mutex<HashMap<u64, oneshot::Sender<Admission>>>,
    next_request: AtomicU64,
    /// Models fetched, by the account whose session asked and the model (a host serves the
    /// sessions of many accounts over time, and each may load only what its account sees),
    /// bounded in bytes: each mesh with its pick index. Models never change under their id, so
    /// a hit is always right.
    meshes: Cache<(String, ModelId), Arc<Loaded>>,
    /// Frames sent since the last heartbeat, and the time spent rendering them.
    frames: Mutex<(u32, Duration)>,
    http: reqwest::Client,
    /// The HTTP base of the coordinator linked last, `http://host:port`.
    api: Mutex<String>,
    /// This host's credential, for fetching meshes.
    credential: String,
    /// What render tickets are checked with: the coordinator's public key, from the last
    /// registration.
    tickets: Mutex<Option<TicketVerifier>>,
}

/// A model a host has fetched: its mesh, and the index picks are cast through, built the first
/// time it is needed (a host starts building it once the model is on screen).
pub struct Loaded {
    pub mesh: Arc<Mesh>,
    picks: tokio::sync::OnceCell<Arc<PickIndex>>,
}

impl Loaded {
    /// The model's pick index, built on a blocking thread the first time it is asked for; whoever
    /// asks meanwhile waits for that one build.
    pub async fn picks(&self) -> Result<Arc<PickIndex>, String> {
        let build = || async {
            let mesh = self.mesh.clone();
            tokio::task::spawn_blocking(move || Arc::new(PickIndex::new(&mesh)))
                .await
                .map_err(|e| format!("the pick index could not be built: {e}"))
        };
        self.picks.get_or_try_init(build).await.cloned()
    }

    /// The model's pick index if it is built already.
    pub fn picks_now(&self) -> Option<Arc<PickIndex>> {
        self.picks.get().cloned()
    }

    /// What the model weighs in memory: the mesh, and its pick index as it will be once built.
    fn heap_bytes(&self) -> u64 {
        self.mesh.heap_bytes() + PickIndex::expected_bytes(&self.mesh)
    }
}

/// How long a model's coarse form may take to come before the mesh is fetched without it.
const COARSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which form of a model's mesh a host downloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// The mesh, with its levels of detail.
    Full,
    /// Each part at its coarsest level only: small, shown first.
    Coarse,
}

impl Detail {
    fn as_str(self) -> &'static str {
        match self {
            Detail::Full => "full",
            Detail::Coarse => "coarse",
        }
    }
}

/// Reads a downloaded mesh, off the async runtime.
async fn decode(bytes: Vec<u8>) -> Result<Arc<Loaded>, String> {
    let mesh = tokio::task::spawn_blocking(move || Mesh::from_bytes(&bytes))
        .await
        .map_err(|e| format!("reading the model failed: {e}"))??;
    Ok(Arc::new(Loaded {
        mesh: Arc::new(mesh),
        picks: tokio::sync::OnceCell::new(),
    }))
}

/// A device's hold on the host; dropping it lets the next device in.
pub struct DeviceSlot {
    host: Arc<Host>,
    /// Cancelled when the session ends or the coordinator is lost.
    pub ended: CancellationToken,
}

impl Drop for DeviceSlot {
    fn drop(&mut self) {
        *lock(&self.host.device) = None;
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Host {
    /// A host rendering on `worker` that fetches meshes from the coordinator at `api`
    /// (`http(s)://host:port`) with its `credential`, over `http`.
    pub(crate) fn new(
        worker: RenderWorker,
        (target_fps, bitrate): (u32, Option<u32>),
        mesh_cache_bytes: u64,
        api: String,
        credential: String,
        http: reqwest::Client,
    ) -> Self {
        Self {
            worker,
            frame_interval: Duration::from_secs(1) / target_fps.max(1),
            bitrate,
            device: Mutex::new(None),
            link: Mutex::new(None),
            admissions: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            meshes: Cache::builder()
                .max_capacity(mesh_cache_bytes)
                .weigher(|_, loaded: &Arc<Loaded>| {
                    u32::try_from(loaded.heap_bytes()).unwrap_or(u32::MAX)
                })
                .build(),
            frames: Mutex::default(),
            http,
            api: Mutex::new(api),
            credential,
            tickets: Mutex::new(None),
        }
    }

    /// Sends reports through `link` from now on, and fetches meshes from `api`: the link to
    /// the coordinator there is up.
    /// Render tickets are checked with `tickets` from now on (the key the coordinator gave).
    pub(crate) fn linked(
        &self,
        link: mpsc::UnboundedSender<HostReport>,
        api: String,
        tickets: TicketVerifier,
    ) {
        *lock(&self.link) = Some(link);
        *lock(&self.api) = api;
        *lock(&self.tickets) = Some(tickets);
    }

    /// The link is down: waiting devices are refused, as their answer cannot come any more.
    pub(crate) fn unlinked(&self) {
        *lock(&self.link) = None;
        lock(&self.admissions).clear();
    }

    /// The coordinator's verdict on admission `request`.
    pub(crate) fn answer(&self, request: u64, verdict: Admission) {
        if let Some(answer) = lock(&self.admissions).remove(&request) {
            let _ = answer.send(verdict);
        }
    }

    /// Checks the render `ticket` a device opened `account`/`session` with, then asks the
    /// coordinator whether the session is this host's now.
    pub async fn admit(&self, account: &str, session: &str, ticket: &str) -> Admission {
        let checked = match lock(&self.tickets).as_ref() {
            Some(tickets) => tickets
                // Expiry is the coordinator's to judge, by its clock: this machine's may be off.
                .verify(ticket, account, session, None)
                .map_err(|e| e.to_string()),
            None => Err("the render host has not linked with its coordinator yet".to_string()),
        };
        if let Err(reason) = checked {
            return Admission::Refused { reason };
        }
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (answer, verdict) = oneshot::channel();
        lock(&self.admissions).insert(request, answer);
        let sent = lock(&self.link).as_ref().is_some_and(|link| {
            link.send(HostReport::Admit {
                request,
                account: account.to_string(),
                session: session.to_string(),
                ticket: ticket.to_string(),
            })
            .is_ok()
        });
        let refused = |reason: &str| Admission::Refused {
            reason: reason.into(),
        };
        if !sent {
            lock(&self.admissions).remove(&request);
            return refused("the render host has lost its coordinator");
        }
        match tokio::time::timeout(ADMISSION_TIMEOUT, verdict).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(_)) => refused("the render host has lost its coordinator"),
            Err(_) => {
                lock(&self.admissions).remove(&request);
                refused("the coordinator did not answer in time")
            }
        }
    }

    /// Takes the device slot; `None` if another device holds it.
    pub fn claim(self: &Arc<Self>) -> Option<DeviceSlot> {
        let mut device = lock(&self.device);
        if device.is_some() {
            return None;
        }
        let ended = CancellationToken::new();
        *device = Some(ended.clone());
        Some(DeviceSlot {
            host: self.clone(),
            ended,
        })
    }

    /// `model` if this host holds it for `account` already.
    pub async fn cached(&self, account: &str, model: &ModelId) -> Option<Arc<Loaded>> {
        self.meshes.get(&(account.to_string(), model.clone())).await
    }

    /// `model`, from memory or from the coordinator's catalog; refused if a session of `account`
    /// and `size` may not load it (another account's upload is unknown to it). `progress` hears
    /// how much of a download has come, in percent below 100.
    pub async fn model(
        &self,
        account: &str,
        model: &ModelId,
        size: SessionSize,
        progress: impl Fn(u8) + Send,
    ) -> Result<Arc<Loaded>, String> {
        // One download for everyone asking for the same model at once.
        let fetch = async {
            let started = std::time::Instant::now();
            let bytes = self
                .download(account, model, size, Detail::Full, progress)
                .await?
                .ok_or("the coordinator sent no mesh")?;
            let (length, fetched) = (bytes.len(), started.elapsed());
            let loaded = decode(bytes).await?;
            tracing::info!(
                %model,
                mib = length / (1 << 20),
                download_ms = fetched.as_millis(),
                decode_ms = (started.elapsed() - fetched).as_millis(),
                "fetched a model"
            );
            Ok::<_, String>(loaded)
        };
        self.meshes
            .try_get_with((account.to_string(), model.clone()), fetch)
            .await
            .map_err(|e| e.to_string())
    }

    /// `model`'s coarse form, to show while its mesh comes, if it has one; not kept.
    pub async fn coarse(
        &self,
        account: &str,
        model: &ModelId,
        size: SessionSize,
    ) -> Result<Option<Arc<Loaded>>, String> {
        match self
            .download(account, model, size, Detail::Coarse, |_| {})
            .await?
        {
            Some(bytes) => decode(bytes).await.map(Some),
            None => Ok(None),
        }
    }

    /// Downloads `model` at `detail` for a session of `account` and `size`, telling `progress`
    /// how far it is; `None` when the coordinator has no coarse form of it (asked for one).
    async fn download(
        &self,
        account: &str,
        model: &ModelId,
        size: SessionSize,
        detail: Detail,
        progress: impl Fn(u8),
    ) -> Result<Option<Vec<u8>>, String> {
        let url = format!("{}/v1/hosts/models/{}/mesh", lock(&self.api), model);
        let mut request = self.http.get(&url);
        if detail == Detail::Coarse {
            // Small, and only a head start: not worth waiting long for.
            request = request.timeout(COARSE_TIMEOUT);
        }
        let mut response = request
            .query(&[
                ("size", size.as_str()),
                ("account", account),
                ("detail", detail.as_str()),
            ])
            .bearer_auth(&self.credential)
            .send()
            .await
            .map_err(|e| format!("the model could not be fetched from the coordinator: {e}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND && detail == Detail::Coarse {
            return Ok(None);
        }
        if !status.is_success() {
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(body["error"]["message"].as_str().map_or_else(
                || format!("the coordinator answered {status}"),
                str::to_string,
            ));
        }
        let total = response.content_length().unwrap_or(0);
        // Room for what the coordinator says is coming, up to a bound a lie cannot pass.
        let mut bytes = Vec::with_capacity(total.min(1 << 30) as usize);
        let mut told = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("the model download broke off: {e}"))?
        {
            bytes.extend_from_slice(&chunk);
            // In tens, and only while it is under way: the load's end is told by its caller.
            let percent = (bytes.len() as u64 * 100)
                .checked_div(total)
                .map_or(0, |p| p / 10 * 10) as u8;
            if percent > told && percent < 100 {
                told = percent;
                progress(percent);
            }
        }
        Ok(Some(bytes))
    }

    fn device_connected(&self) -> bool {
        lock(&self.device).is_some()
    }

    /// Counts a frame sent to the device, which took `spent` to render and encode.
    pub(crate) fn frame_sent(&self, spent: Duration) {
        let mut frames = lock(&self.frames);
        frames.0 += 1;
        frames.1 += spent;
    }

    /// The heartbeat for the `window` since the last one: frame rate and mean frame time.
    pub(crate) fn heartbeat(&self, window: Duration) -> HostReport {
        let (count, spent) = std::mem::take(&mut *lock(&self.frames));
        HostReport::Heartbeat {
            device: self.device_connected(),
            fps: count as f32 / window.as_secs_f32().max(0.001),
            frame_ms: (count > 0).then(|| spent.as_secs_f32() * 1000.0 / count as f32),
        }
    }

    /// Ends the device's conversation: its session is over, or nobody vouches for it any more.
    pub(crate) fn reset(&self) {
        if let Some(ended) = lock(&self.device).as_ref() {
            ended.cancel();
        }
    }
}
