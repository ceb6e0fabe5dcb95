//! `parallax render-host`: one render host as its own process.
//!
//! It opens its wgpu device, serves the exclusive render connection on its own port
//! (`render_ws`), and keeps a WebSocket to its coordinator (`/v1/hosts/ws`): it registers with
//! the host secret, heartbeats every [`HEARTBEAT_MS`], asks the coordinator whether a device's
//! token admits it, and drops the device when the coordinator says the session ended. Models
//! come from the coordinator's catalog over HTTP, already imported.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use parallax_core::ModelId;
use parallax_core::host::{Admission, HEARTBEAT_MS, HostCommand, HostReport};
use parallax_core::pool::HostId;
use parallax_core::session::SessionSize;
use parallax_render::Mesh;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::render_worker::RenderWorker;

/// How long a device waits for the coordinator's verdict on its token.
const ADMISSION_TIMEOUT: Duration = Duration::from_secs(5);
/// Meshes kept in memory; models are immutable (content-addressed), so a hit is always right.
const MESH_CACHE: usize = 8;
/// Pause before a host that lost its coordinator tries again.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// How to run one host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The coordinator's host endpoint, `ws://…/v1/hosts/ws`.
    pub coordinator: String,
    pub size: SessionSize,
    pub secret: String,
    /// The name the coordinator gave a host it started; `None` to offer ourselves.
    pub host: Option<HostId>,
    /// Where the render connection listens.
    pub listen: SocketAddr,
    /// Host name or IP devices use to reach us; defaults to the listen address.
    pub advertise: Option<String>,
    /// Started by a coordinator: exit when it goes away instead of trying again.
    pub local: bool,
    /// Most frames per second sent to a device.
    pub target_fps: u32,
}

/// State the render connections share.
pub struct Host {
    pub(crate) worker: RenderWorker,
    pub(crate) frame_interval: Duration,
    /// The device holding the render connection, and how to end its conversation.
    device: Mutex<Option<CancellationToken>>,
    /// Reports to the coordinator, while a link is up.
    link: Mutex<Option<mpsc::UnboundedSender<HostReport>>>,
    admissions: Mutex<HashMap<u64, oneshot::Sender<Admission>>>,
    next_request: AtomicU64,
    meshes: Mutex<HashMap<ModelId, Arc<Mesh>>>,
    /// Frames sent since the last heartbeat, and the time spent rendering them.
    frames: Mutex<(u32, Duration)>,
    http: reqwest::Client,
    /// The coordinator's HTTP base, `http://host:port`.
    api: String,
    secret: String,
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
    /// Asks the coordinator whether `token` admits a device to `account`/`session`.
    pub async fn admit(&self, account: &str, session: &str, token: &str) -> Admission {
        let request = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (answer, verdict) = oneshot::channel();
        lock(&self.admissions).insert(request, answer);
        let sent = lock(&self.link).as_ref().is_some_and(|link| {
            link.send(HostReport::Admit {
                request,
                account: account.to_string(),
                session: session.to_string(),
                token: token.to_string(),
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

    /// The mesh of `model`, from memory or from the coordinator's catalog; refused if a session
    /// of `size` may not load it.
    pub async fn mesh(&self, model: &ModelId, size: SessionSize) -> Result<Arc<Mesh>, String> {
        if let Some(mesh) = lock(&self.meshes).get(model) {
            return Ok(mesh.clone());
        }
        let url = format!("{}/v1/hosts/models/{}/mesh?size={size}", self.api, model);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.secret)
            .send()
            .await
            .map_err(|e| format!("the model could not be fetched from the coordinator: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            return Err(body["error"]["message"].as_str().map_or_else(
                || format!("the coordinator answered {status}"),
                str::to_string,
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| format!("the model download broke off: {e}"))?;
        let mesh = tokio::task::spawn_blocking(move || Mesh::from_bytes(&bytes))
            .await
            .map_err(|e| format!("reading the model failed: {e}"))??;
        let mesh = Arc::new(mesh);
        let mut meshes = lock(&self.meshes);
        if meshes.len() >= MESH_CACHE {
            meshes.clear();
        }
        meshes.insert(model.clone(), mesh.clone());
        Ok(mesh)
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
    fn heartbeat(&self, window: Duration) -> HostReport {
        let (count, spent) = std::mem::take(&mut *lock(&self.frames));
        HostReport::Heartbeat {
            device: self.device_connected(),
            fps: count as f32 / window.as_secs_f32().max(0.001),
            frame_ms: (count > 0).then(|| spent.as_secs_f32() * 1000.0 / count as f32),
        }
    }

    /// Ends the device's conversation: its session is over, or nobody vouches for it any more.
    fn reset(&self) {
        if let Some(ended) = lock(&self.device).as_ref() {
            ended.cancel();
        }
    }
}

/// Runs a host until `shutdown`, or until its coordinator goes away if it is `local`.
pub async fn run(config: HostConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker = RenderWorker::start().await;
    let adapter = match worker
        .adapter()
        .unwrap_or(&Err("no device was opened".into()))
    {
        Ok(adapter) => adapter.clone(),
        Err(e) => anyhow::bail!("the render host has no GPU device: {e}"),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    let endpoint = format!(
        "ws://{}:{}",
        config
            .advertise
            .clone()
            .unwrap_or_else(|| bound.ip().to_string()),
        bound.port()
    );
    let api = api_base(&config.coordinator)?;
    let host = Arc::new(Host {
        worker,
        frame_interval: Duration::from_secs(1) / config.target_fps.max(1),
        device: Mutex::new(None),
        link: Mutex::new(None),
        admissions: Mutex::new(HashMap::new()),
        next_request: AtomicU64::new(0),
        meshes: Mutex::new(HashMap::new()),
        frames: Mutex::default(),
        http: reqwest::Client::new(),
        api,
        secret: config.secret.clone(),
    });
    tracing::info!(%endpoint, %adapter, size = %config.size, "render host listening");
    let serving = shutdown.child_token();
    let server = tokio::spawn({
        let serving = serving.clone();
        let router = crate::render_ws::router().with_state(host.clone());
        async move {
            axum::serve(crate::ws::no_delay(listener), router)
                .with_graceful_shutdown(serving.cancelled_owned())
                .await
        }
    });
    let mut name = config.host.clone();
    let result = loop {
        let linked = link(&config, &host, name.take(), &endpoint, &adapter, &shutdown).await;
        // Without a coordinator nobody vouches for the device: end its conversation.
        host.reset();
        match linked {
            Ok(()) if shutdown.is_cancelled() => break Ok(()),
            Ok(()) => tracing::warn!("the coordinator closed the link"),
            Err(e) if config.local => break Err(e),
            Err(e) => tracing::warn!("no link to the coordinator: {e:#}"),
        }
        if config.local {
            break Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_DELAY) => {}
            () = shutdown.cancelled() => break Ok(()),
        }
    };
    serving.cancel();
    let _ = server.await;
    result
}

/// `ws://host:port/…` → `http://host:port`.
fn api_base(coordinator: &str) -> anyhow::Result<String> {
    let (scheme, rest) = coordinator
        .split_once("://")
        .context("the coordinator URL needs a scheme, e.g. ws://127.0.0.1:3000/v1/hosts/ws")?;
    let scheme = match scheme {
        "ws" | "http" => "http",
        "wss" | "https" => "https",
        other => anyhow::bail!("the coordinator URL must be ws:// or wss://, not {other}://"),
    };
    let authority = rest.split('/').next().unwrap_or(rest);
    Ok(format!("{scheme}://{authority}"))
}

/// One registration with the coordinator, held until either side ends it.
async fn link(
    config: &HostConfig,
    host: &Arc<Host>,
    name: Option<HostId>,
    endpoint: &str,
    adapter: &str,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (mut socket, _) = tokio_tungstenite::connect_async(config.coordinator.as_str())
        .await
        .with_context(|| format!("connecting to {}", config.coordinator))?;
    let register = HostReport::Register {
        secret: config.secret.clone(),
        size: config.size,
        host: name,
        endpoint: endpoint.to_string(),
        adapter: adapter.to_string(),
        pid: std::process::id(),
    };
    socket.send(Message::text(register.to_json())).await?;
    let named = match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match HostCommand::parse(text.as_str())? {
            HostCommand::Registered { host } => host,
            other => anyhow::bail!("expected registered, got {other:?}"),
        },
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            anyhow::bail!("the coordinator refused the host: {}", frame.reason)
        }
        Ok(_) => anyhow::bail!("the coordinator closed the link during registration"),
        Err(_) => anyhow::bail!("the coordinator did not answer the registration"),
    };
    tracing::info!(host = %named, "registered with the coordinator");
    let (reports, mut outbox) = mpsc::unbounded_channel();
    *lock(&host.link) = Some(reports);
    let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
    let mut last_beat = tokio::time::Instant::now();
    let result = loop {
        tokio::select! {
            now = heartbeat.tick() => {
                let beat = host.heartbeat(now - last_beat);
                last_beat = now;
                if let Err(e) = socket.send(Message::text(beat.to_json())).await {
                    break Err(e.into());
                }
            }
            Some(report) = outbox.recv() => {
                if let Err(e) = socket.send(Message::text(report.to_json())).await {
                    break Err(e.into());
                }
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => match HostCommand::parse(text.as_str()) {
                    Ok(HostCommand::Admission { request, verdict }) => {
                        if let Some(answer) = lock(&host.admissions).remove(&request) {
                            let _ = answer.send(verdict);
                        }
                    }
                    Ok(HostCommand::Reset) => {
                        tracing::info!("session ended: dropping the device and its scene");
                        host.reset();
                    }
                    Ok(HostCommand::Registered { .. }) => {}
                    Err(e) => tracing::warn!("unreadable command from the coordinator: {e}"),
                },
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    tracing::info!("the coordinator closed the link: {reason}");
                    break Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            () = shutdown.cancelled() => {
                let _ = socket.close(None).await;
                break Ok(());
            }
        }
    };
    *lock(&host.link) = None;
    // Waiting devices are refused: their answer cannot come any more.
    lock(&host.admissions).clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_base_follows_the_coordinator_url() {
        assert_eq!(
            api_base("ws://127.0.0.1:3000/v1/hosts/ws").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert_eq!(
            api_base("wss://render.example/v1/hosts/ws").unwrap(),
            "https://render.example"
        );
        assert!(api_base("127.0.0.1:3000").is_err());
        assert!(api_base("ftp://x").is_err());
    }
}
