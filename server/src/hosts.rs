//! The coordinator's side of its render hosts.
//!
//! - [`Launcher`]: starts the hosts the pool asks for — `parallax render-host` child processes in
//!   the embedded default, or tasks in this process for tests — and reports when one ends.
//! - `/v1/hosts/ws`: where every host (started here or on another machine) registers with the
//!   host secret, heartbeats, and asks whether a device's token admits it. A host silent for
//!   [`HOST_SILENCE_MS`] or whose link closes is lost; its session ends in `Error`.
//! - `/v1/hosts/models/{id}/mesh`: a catalog model, imported, for a host to render.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parallax_core::ModelId;
use parallax_core::host::{Admission, HOST_SILENCE_MS, HostCommand, HostReport};
use parallax_core::pool::HostId;
use parallax_core::protocol::{CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, HELLO_TIMEOUT};
use parallax_core::session::{SessionId, SessionKey, SessionSize};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use crate::error::AppError;
use crate::render_host::{self, HostConfig};
use crate::sessions::{HostEvent, RegisterError};

/// How long a started host may take to register before it is given up.
const BOOT_LIMIT: Duration = Duration::from_secs(60);
/// How long a local host process gets to leave on its own before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(3);
/// Frames per second a local host sends a device at most.
pub const DEFAULT_TARGET_FPS: u32 = 60;

/// How the coordinator starts the hosts its pool asks for.
#[derive(Debug, Clone)]
pub enum HostMode {
    /// `parallax render-host` child processes of this executable.
    Processes(PathBuf),
    /// Tasks in this process, each with its own render thread and port (tests).
    Tasks,
}

/// Starts local render hosts and tells the session driver when one ends.
pub struct Launcher {
    mode: HostMode,
    secret: String,
    /// Set once the coordinator listens: `(host endpoint URL, IP hosts listen on)`.
    address: watch::Sender<Option<(String, IpAddr)>>,
    /// Hosts started here and not yet given up: how to stop each, and its supervising task.
    started: Mutex<HashMap<HostId, (CancellationToken, JoinHandle<()>)>>,
    events: mpsc::UnboundedSender<HostEvent>,
    queue: Mutex<Option<mpsc::UnboundedReceiver<HostEvent>>>,
}

impl Launcher {
    pub fn new(mode: HostMode, secret: String) -> Self {
        let (events, queue) = mpsc::unbounded_channel();
        Self {
            mode,
            secret,
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

    pub fn set_address(&self, address: SocketAddr) {
        // Hosts on this machine reach the coordinator on loopback if it listens everywhere.
        let connect = match address.ip() {
            ip if ip.is_unspecified() => {
                SocketAddr::new(Ipv4Addr::LOCALHOST.into(), address.port())
            }
            _ => address,
        };
        let url = format!("ws://{connect}/v1/hosts/ws");
        self.address.send_replace(Some((url, address.ip())));
    }

    /// Whether `host` was started here and not given up.
    pub fn started(&self, host: &HostId) -> bool {
        lock(&self.started).contains_key(host)
    }

    /// Starts `host` once the coordinator's address is known.
    pub fn launch(&self, host: HostId, size: SessionSize) {
        let stop = CancellationToken::new();
        let mode = self.mode.clone();
        let secret = self.secret.clone();
        let mut address = self.address.subscribe();
        let events = self.events.clone();
        let id = host.clone();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let known = tokio::select! {
                known = address.wait_for(Option::is_some) => known.map(|a| a.clone()),
                () = token.cancelled() => return,
            };
            let Ok(Some((coordinator, listen_ip))) = known else {
                return;
            };
            let config = HostConfig {
                coordinator,
                size,
                secret,
                host: Some(id.clone()),
                listen: SocketAddr::new(listen_ip, 0),
                advertise: None,
                local: true,
                target_fps: DEFAULT_TARGET_FPS,
            };
            tracing::info!(host = %id, %size, "starting render host");
            let deadline = {
                let (events, id) = (events.clone(), id.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(BOOT_LIMIT).await;
                    let _ = events.send(HostEvent::BootDeadline(id));
                })
            };
            let ended = match mode {
                HostMode::Processes(exe) => supervise_process(exe, config, token).await,
                HostMode::Tasks => supervise_task(config, token).await,
            };
            deadline.abort();
            let _ = events.send(HostEvent::Lost(id, ended));
        });
        lock(&self.started).insert(host, (stop, task));
    }

    /// Stops `host` if it was started here; true if it was.
    pub fn stop(&self, host: &HostId) -> bool {
        match lock(&self.started).remove(host) {
            Some((stop, _task)) => {
                stop.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops every host started here and waits until they are gone.
    pub async fn stop_all(&self) {
        let started: Vec<_> = lock(&self.started).drain().collect();
        for (_, (stop, _)) in &started {
            stop.cancel();
        }
        for (_, (_, task)) in started {
            let _ = task.await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `parallax render-host` until it exits or `stop`; returns why it ended.
async fn supervise_process(exe: PathBuf, config: HostConfig, stop: CancellationToken) -> String {
    let mut command = tokio::process::Command::new(&exe);
    command
        .arg("render-host")
        .args(["--coordinator", &config.coordinator])
        .args(["--size", config.size.as_str()])
        .args(["--listen", &config.listen.to_string()])
        .args(["--target-fps", &config.target_fps.to_string()])
        .arg("--local")
        .env("PARALLAX_HOST_SECRET", &config.secret)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if let Some(host) = &config.host {
        command.args(["--host-id", host.as_str()]);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return format!("could not start {}: {e}", exe.display()),
    };
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
    match render_host::run(config, stop.clone()).await {
        Ok(()) if stop.is_cancelled() => "the render host was stopped".into(),
        Ok(()) => "the render host left".into(),
        Err(e) => format!("the render host failed: {e:#}"),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts/ws", get(host_ws_handler))
        .route("/v1/hosts/models/{model_id}/mesh", get(mesh_handler))
}

/// The secret compared in constant time (as hashes), so its bytes cannot be timed out of us.
fn secret_matches(given: &str, secret: &str) -> bool {
    Sha256::digest(given.as_bytes()) == Sha256::digest(secret.as_bytes())
}

#[derive(Debug, Deserialize)]
struct MeshQuery {
    size: Option<String>,
}

/// A catalog model, imported, in the transfer form hosts load directly.
async fn mesh_handler(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Query(query): Query<MeshQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if !secret_matches(given, &state.host_secret) {
        return Err(AppError::Unauthorized(
            "render hosts authenticate with the host secret".into(),
        ));
    }
    let model = ModelId::new(model);
    let record = state.catalog.get(&model).await?;
    let size = match query.size.as_deref() {
        Some(size) => size
            .parse::<SessionSize>()
            .map_err(|e| AppError::bad_request(e, Some("size")))?,
        None => SessionSize::Premium,
    };
    let budget = state.standard_polygon_budget;
    if size == SessionSize::Standard && record.summary.triangles > budget {
        return Err(AppError::unprocessable(
            format!(
                "{} has {} triangles, over the Standard polygon budget of {budget}; use a \
                 Premium session",
                record.summary.name, record.summary.triangles
            ),
            None,
        ));
    }
    let mesh = state.catalog.mesh(&model).await?;
    let bytes = tokio::task::spawn_blocking(move || mesh.to_bytes())
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("encoding a mesh failed: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

async fn host_ws_handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    crate::ws::small_messages(ws).on_upgrade(move |socket| host_link(socket, state))
}

async fn host_link(mut socket: WebSocket, state: AppState) {
    let (code, reason) = match serve_host(&mut socket, &state).await {
        Ok(reason) => (CLOSE_GOING_AWAY, reason),
        Err(reason) => (CLOSE_POLICY_VIOLATION, reason),
    };
    let frame = CloseFrame {
        code,
        reason: parallax_core::protocol::close_reason(&reason).into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// Registers the host and serves its link; `Ok` with why it ended normally, `Err` for a host
/// that broke the rules.
async fn serve_host(socket: &mut WebSocket, state: &AppState) -> Result<String, String> {
    let first = match tokio::time::timeout(HELLO_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(text)))) => HostReport::parse(text.as_str()),
        Ok(_) => return Err("the first message must be register".into()),
        Err(_) => return Err("no register within 10 seconds".into()),
    };
    let Ok(HostReport::Register {
        secret,
        size,
        host,
        endpoint,
        adapter,
        pid,
    }) = first
    else {
        return Err("the first message must be register".into());
    };
    if !secret_matches(&secret, &state.host_secret) {
        return Err("the host secret is wrong".into());
    }
    let (host, mut commands) = state
        .sessions
        .register(host, size, endpoint, adapter, pid)
        .map_err(|e: RegisterError| e.to_string())?;
    let registered = HostCommand::Registered { host: host.clone() };
    if socket
        .send(Message::Text(registered.to_json().into()))
        .await
        .is_err()
    {
        state
            .sessions
            .host_lost(&host, "the link closed during registration");
        return Ok("connection lost".into());
    }
    let silence = Duration::from_millis(HOST_SILENCE_MS);
    let ended = loop {
        tokio::select! {
            message = tokio::time::timeout(silence, socket.recv()) => {
                let message = match message {
                    Err(_) => break Err(format!("no heartbeat for {} ms", silence.as_millis())),
                    Ok(Some(Ok(message))) => message,
                    Ok(_) => break Err("the link to the render host broke".into()),
                };
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break Err("the render host closed its link".into()),
                    _ => continue,
                };
                match HostReport::parse(text.as_str()) {
                    Ok(HostReport::Heartbeat { device, fps, frame_ms }) => {
                        state.sessions.heartbeat(&host, device, fps, frame_ms);
                        if let Some(ms) = frame_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
                            state.metrics.frame(Duration::from_secs_f32(ms / 1000.0));
                        }
                    }
                    Ok(HostReport::Admit { request, account, session, token }) => {
                        let verdict = admit(state, &host, account, &session, &token);
                        let answer = HostCommand::Admission { request, verdict };
                        if socket.send(Message::Text(answer.to_json().into())).await.is_err() {
                            break Err("the link to the render host broke".into());
                        }
                    }
                    Ok(HostReport::Register { .. }) => break Err("register was already received".into()),
                    Err(e) => break Err(e.to_string()),
                }
            }
            Some(command) = commands.recv() => {
                if socket.send(Message::Text(command.to_json().into())).await.is_err() {
                    break Err("the link to the render host broke".into());
                }
            }
            () = state.shutdown.cancelled() => break Ok("the coordinator is shutting down".to_string()),
        }
    };
    // At shutdown the host is not lost: a restart settles its session.
    if let Err(reason) = &ended {
        state
            .sessions
            .host_lost(&host, &format!("render host {host} was lost: {reason}"));
    }
    ended
}

/// Whether `token` lets a device use `account`/`session` on `host`.
fn admit(
    state: &AppState,
    host: &HostId,
    account: String,
    session: &str,
    token: &str,
) -> Admission {
    let judged = (|| {
        let id = SessionId::parse(session).map_err(|e| e.to_string())?;
        let claims = state.tokens.verify(token).map_err(|e| e.to_string())?;
        if claims.sub != account {
            return Err("this access token is for another account".to_string());
        }
        if !claims.reaches_session(session) {
            return Err("a guest's sign-in reaches only its space's render sessions".to_string());
        }
        state.sessions.admit(host, &SessionKey::new(account, id))
    })();
    match judged {
        Ok(size) => Admission::Admitted { size },
        Err(reason) => Admission::Refused { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(secret_matches("s3cret", "s3cret"));
        assert!(!secret_matches("s3cre", "s3cret"));
        assert!(!secret_matches("", "s3cret"));
    }
}
