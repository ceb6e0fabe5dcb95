//! The coordinator's endpoints for render hosts.
//!
//! - `/v1/hosts/ws`: where every host (started here or on another machine) registers with the
//!   host secret, heartbeats, and asks whether a device's token admits it. A host silent for
//!   [`HOST_SILENCE_MS`] or whose link closes is lost; its session ends in `Error`.
//! - `/v1/hosts/models/{id}/mesh`: a catalog model, imported, for a host to render.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use parallax_core::ModelId;
use parallax_core::host::{Admission, HOST_SILENCE_MS, HostCommand, HostReport, IssuedCertificate};
use parallax_core::pool::HostId;
use parallax_core::protocol::{
    CLOSE_GOING_AWAY, CLOSE_POLICY_VIOLATION, CLOSE_SERVICE_RESTART, HELLO_TIMEOUT,
};
use parallax_core::session::{SessionId, SessionKey, SessionSize};
use serde::Deserialize;

use crate::accounts::keys::secret_matches;
use crate::base::error::AppError;
use crate::catalog::models::MeshBytes;
use crate::config::OnStop;
use crate::http::auth;
use crate::pool::sessions::RegisterError;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts/ws", get(host_ws_handler))
        .route("/v1/hosts/models/{model_id}/mesh", get(mesh_handler))
}

#[derive(Debug, Deserialize)]
struct MeshQuery {
    size: Option<String>,
    /// The account whose session loads it: a session loads only what its account may see.
    account: Option<String>,
}

/// A catalog model, imported, in the transfer form hosts load directly.
async fn mesh_handler(
    State(state): State<AppState>,
    Path(model): Path<String>,
    Query(query): Query<MeshQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let given = auth::bearer(&headers).unwrap_or_default();
    if !secret_matches(given, &state.host_secret) {
        return Err(AppError::Unauthorized(
            "render hosts authenticate with the host secret".into(),
        ));
    }
    let account = query.account.as_deref().ok_or_else(|| {
        AppError::bad_request(
            "say whose session loads the model (account)",
            Some("account"),
        )
    })?;
    let record = state.catalog.get(&ModelId::new(model), account).await?;
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
    let body = match state.catalog.mesh(&record).await? {
        MeshBytes::Memory(bytes) => Body::from(bytes),
        // Streamed from disk: a large model never sits whole in the coordinator's memory.
        MeshBytes::File(path) => {
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("opening {path:?}: {e}")))?;
            Body::from_stream(tokio_util::io::ReaderStream::new(file))
        }
    };
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

async fn host_ws_handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    parallax_host::net::small_messages(ws).on_upgrade(move |socket| host_link(socket, state))
}

async fn host_link(mut socket: WebSocket, state: AppState) {
    let (code, reason) = match serve_host(&mut socket, &state).await {
        // A stop that leaves the hosts to the next coordinator: they keep their devices.
        Ok(reason) if state.shutdown.is_cancelled() && state.on_stop == OnStop::KeepHosts => {
            (CLOSE_SERVICE_RESTART, reason)
        }
        Ok(reason) => (CLOSE_GOING_AWAY, reason),
        Err(reason) => (CLOSE_POLICY_VIOLATION, reason),
    };
    let frame = CloseFrame {
        code,
        reason: parallax_core::protocol::close_reason(&reason).into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// A certificate for the name in a host's `endpoint` (`wss://NAME:PORT`), from the coordinator's
/// own authority; `None` (logged) when there is none to give.
fn certificate_for(state: &AppState, endpoint: &str) -> Option<IssuedCertificate> {
    let name = url::Url::parse(endpoint)
        .ok()?
        .host_str()?
        .trim_matches(['[', ']'])
        .to_string();
    if name
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        tracing::warn!(%endpoint, "a host asked for a certificate without --advertise: none issued");
        return None;
    }
    match state.tls.as_ref().map(|tls| tls.issue_for_host(&name)) {
        Some(Ok(Some(issued))) => {
            tracing::info!(%name, "issued a certificate to a render host");
            Some(issued)
        }
        Some(Err(e)) => {
            tracing::error!(%name, "could not issue a host certificate: {e:#}");
            None
        }
        _ => {
            tracing::warn!(
                %name,
                "a host asked for a certificate, but this coordinator has no authority devices \
                 trust (--tls-cert or --tls off): give the host --tls-cert/--tls-key"
            );
            None
        }
    }
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
        wants_certificate,
    }) = first
    else {
        return Err("the first message must be register".into());
    };
    if !secret_matches(&secret, &state.host_secret) {
        return Err("the host secret is wrong".into());
    }
    let certificate = if wants_certificate {
        certificate_for(state, &endpoint)
    } else {
        None
    };
    let (host, mut commands) = state
        .sessions
        .register(host, size, endpoint, adapter, pid)
        .await
        .map_err(|e: RegisterError| e.to_string())?;
    let registered = HostCommand::Registered {
        host: host.clone(),
        certificate,
    };
    if socket
        .send(Message::Text(registered.to_json().into()))
        .await
        .is_err()
    {
        state
            .sessions
            .host_lost(&host, "the link closed during registration")
            .await;
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
                        state.sessions.heartbeat(&host, device, fps, frame_ms).await;
                        if let Some(ms) = frame_ms.filter(|ms| ms.is_finite() && *ms >= 0.0) {
                            state.metrics.frame(Duration::from_secs_f32(ms / 1000.0));
                        }
                    }
                    Ok(HostReport::Admit { request, account, session, token }) => {
                        let verdict = admit(state, &host, account, &session, &token).await;
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
            .host_lost(&host, &format!("render host {host} was lost: {reason}"))
            .await;
    }
    ended
}

/// Whether `token` lets a device use `account`/`session` on `host`.
async fn admit(
    state: &AppState,
    host: &HostId,
    account: String,
    session: &str,
    token: &str,
) -> Admission {
    let judged = async {
        let id = SessionId::parse(session).map_err(|e| e.to_string())?;
        let claims = state.tokens.verify(token).map_err(|e| e.to_string())?;
        if claims.sub != account {
            return Err("this access token is for another account".to_string());
        }
        if !claims.reaches_session(session) {
            return Err("a guest's sign-in reaches only its space's render sessions".to_string());
        }
        state
            .sessions
            .admit(host, &SessionKey::new(account, id))
            .await
    }
    .await;
    match judged {
        Ok(size) => Admission::Admitted { size },
        Err(reason) => Admission::Refused { reason },
    }
}
