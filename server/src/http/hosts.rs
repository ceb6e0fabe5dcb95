//! The coordinator's endpoints for render hosts.
//!
//! - `/v1/hosts/ws`: where every host (started here or on another machine) registers with its
//!   own credential, heartbeats, and asks whether a device may use its session. A host silent
//!   for [`HOST_SILENCE_MS`], whose link closes or whose credential is revoked is lost; its
//!   session ends in `Error`.
//! - `/v1/hosts/models/{id}/mesh`: a catalog model, imported, for a host to render: only for the
//!   account whose session the host renders.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
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
use utoipa::IntoParams;

use crate::accounts::hosts::HostIdentity;
use crate::base::error::{AppError, ErrorBody};
use crate::catalog::models::MeshBytes;
use crate::config::OnStop;
use crate::http::auth;
use crate::pool::sessions::{RegisterError, Registration};
use crate::state::AppState;
use crate::tls::HostCertificateError;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/hosts/ws", get(host_ws_handler))
        .route("/v1/hosts/models/{model_id}/mesh", get(mesh_handler))
}

/// How much of a mesh file is read at a time to stream it to a host.
const STREAM_CHUNK: usize = 1 << 20;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct MeshQuery {
    /// The size of the session that loads it (`Standard` or `Premium`, any casing; Premium
    /// without): a Standard session's polygon budget is checked.
    #[param(pattern = "^([Ss][Tt][Aa][Nn][Dd][Aa][Rr][Dd]|[Pp][Rr][Ee][Mm][Ii][Uu][Mm])$")]
    size: Option<String>,
    /// The account whose session loads it, as the host believes: it must be the account of the
    /// session the host renders now.
    account: Option<String>,
    /// `coarse` for the model's coarse form, shown while the mesh is fetched; `full` (the
    /// default) for the mesh.
    #[param(pattern = "^(full|coarse)$")]
    detail: Option<String>,
}

/// The model `{model_id}` a host loads.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the path; the handler takes the id as a string.
pub(crate) struct MeshPath {
    /// The catalog model's id, as the session's space selected it.
    model_id: String,
}

/// A catalog model, imported, in the transfer form hosts load directly: for a render host, with
/// its own credential, and only a model of the account whose session it renders now.
#[utoipa::path(get, path = "/v1/hosts/models/{model_id}/mesh", operation_id = "getHostMesh",
    tag = "hosts", params(MeshPath, MeshQuery), security(("host_credential" = [])),
    responses(
        (status = 200, description = "The mesh (or its coarse form) in the render hosts' transfer form, with its Content-Length", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "A size or detail not of the form above", body = ErrorBody),
        (status = 401, description = "Not a render host's credential", body = ErrorBody),
        (status = 403, description = "The host renders no session of that account now", body = ErrorBody),
        (status = 404, description = "No such model for that account, or no coarse form of it", body = ErrorBody),
        (status = 409, description = "Not converted (yet, or it failed)", body = ErrorBody),
        (status = 422, description = "Over a Standard session's polygon budget", body = ErrorBody)))]
pub(crate) async fn mesh_handler(
    State(state): State<AppState>,
    Path(model): Path<String>,
    query: std::result::Result<Query<MeshQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let Query(query) = query?;
    let given = auth::bearer(&headers).unwrap_or_default();
    let Some(host) = state.host_credentials.verify(given).await else {
        return Err(AppError::Unauthorized(
            "render hosts authenticate with their own credential".into(),
        ));
    };
    // Only what the account of the session this host renders may load: a host holds no lease
    // to anything else.
    let account = state
        .sessions
        .leased_account(host.name())
        .await
        .filter(|leased| query.account.as_ref().is_none_or(|asked| asked == leased))
        .ok_or_else(|| {
            AppError::forbidden(format!(
                "render host {} renders no session of that account now",
                host.name()
            ))
        })?;
    let record = state.catalog.get(&ModelId::new(model), &account).await?;
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
    let mesh = match query.detail.as_deref() {
        None | Some("full") => state.catalog.mesh(&record).await?,
        Some("coarse") => match state.catalog.preview(&record).await? {
            Some(path) => MeshBytes::File(path),
            None => {
                return Err(AppError::not_found(format!(
                    "{} has no coarse form: load its mesh",
                    record.summary.name
                )));
            }
        },
        Some(other) => {
            return Err(AppError::bad_request(
                format!("detail is full or coarse, not {other:?}"),
                Some("detail"),
            ));
        }
    };
    let (length, body) = match mesh {
        MeshBytes::Memory(bytes) => (bytes.len() as u64, Body::from(bytes)),
        // Streamed from disk: a large model never sits whole in the coordinator's memory.
        MeshBytes::File(path) => {
            let opened = async {
                let file = tokio::fs::File::open(&path).await?;
                let length = file.metadata().await?.len();
                Ok::<_, std::io::Error>((file, length))
            };
            let (file, length) = opened
                .await
                .map_err(|e| AppError::Internal(anyhow::anyhow!("opening {path:?}: {e}")))?;
            // In large reads: a big model is hundreds of MiB, and 4 KiB at a time took 3 s a
            // 533 MiB mesh over loopback.
            let body = Body::from_stream(tokio_util::io::ReaderStream::with_capacity(
                file,
                STREAM_CHUNK,
            ));
            (length, body)
        }
    };
    // The length, so a host can tell how far its download is.
    let headers = [
        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
        (header::CONTENT_LENGTH, length.to_string()),
    ];
    Ok((headers, body).into_response())
}

/// The host link: a render host registers with its credential (its first message), then
/// reports its heartbeats and sessions' devices and takes its leases. Its messages are this
/// document's schemas `HostReport` (sent) and `HostCommand` (received).
#[utoipa::path(get, path = "/v1/hosts/ws", operation_id = "openHostLink", tag = "sockets",
    security(()),
    responses(
        (status = 101, description = "A WebSocket: its first message, `register`, carries the host's credential"),
        (status = 400, description = "A WebSocket upgrade this server does not take", body = ErrorBody),
        (status = 405, description = "Not a GET", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody)))]
pub(crate) async fn host_ws_handler(
    ws: std::result::Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<AppState>,
) -> Response {
    match ws {
        Ok(ws) => parallax_host::net::small_messages(ws)
            .on_upgrade(move |socket| host_link(socket, state)),
        Err(rejection) => {
            let status = rejection.status();
            let code = if status == axum::http::StatusCode::UPGRADE_REQUIRED {
                "UpgradeRequired"
            } else {
                "BadRequest"
            };
            let message = format!(
                "this is a render host's WebSocket: {}",
                rejection.body_text()
            );
            let mut response = AppError::client(status, code, message).into_response();
            if status == axum::http::StatusCode::UPGRADE_REQUIRED {
                response.headers_mut().insert(
                    header::UPGRADE,
                    axum::http::HeaderValue::from_static("websocket"),
                );
            }
            response
        }
    }
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
/// own authority; `Ok(None)` (logged) when it has none devices trust, `Err` with the reason when
/// the name is not one it may sign for this host: the registration is refused rather than
/// answered with anything else. A host's first certificate binds its name to the host: no other
/// host ever gets one for it, and this one gets none for another name.
async fn certificate_for(
    state: &AppState,
    host: &HostIdentity,
    endpoint: &str,
) -> Result<Option<IssuedCertificate>, String> {
    let HostIdentity::Remote(host) = host else {
        return Err(
            "the coordinator's own hosts get no certificate from it: a local process serves \
             the coordinator's, a pod the one its template mounts (PARALLAX_HOST_TLS_CERT)"
                .into(),
        );
    };
    let name = url::Url::parse(endpoint)
        .ok()
        .and_then(|url| {
            url.host_str()
                .map(|h| h.trim_matches(['[', ']']).to_string())
        })
        .ok_or_else(|| format!("{endpoint:?} has no host name to issue a certificate for"))?;
    if name
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified())
    {
        return Err(
            "a certificate needs the name devices reach this host by: start it with --advertise"
                .into(),
        );
    }
    let Some(tls) = state.tls.as_ref() else {
        tracing::warn!(%name, "{}", HostCertificateError::NoAuthority);
        return Ok(None);
    };
    if let Err(e) = tls.may_issue_for_host(&name) {
        tracing::warn!(%name, "refused a render host's certificate: {e}");
        return Err(e.to_string());
    }
    match state
        .store()
        .bind_certificate_name(host.as_str(), &name.to_ascii_lowercase())
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "no certificate for {name}: render host {host} has one for another name, or \
                 another host has one for this name (each name belongs to one host; `parallax \
                 host add` a new host to move it)"
            ));
        }
        Err(e) => {
            tracing::error!("binding a host's certificate name: {e}");
            return Err("the coordinator could not issue a certificate now".into());
        }
    }
    match tls.issue_for_host(&name) {
        Ok(issued) => {
            tracing::info!(%name, "issued a certificate to a render host");
            Ok(Some(issued))
        }
        Err(e @ HostCertificateError::NoAuthority) => {
            tracing::warn!(%name, "{e}");
            Ok(None)
        }
        Err(e) => {
            tracing::warn!(%name, "refused a render host's certificate: {e}");
            Err(e.to_string())
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
        credential,
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
    // Revocations from now on: one read between the check below and the link would be missed.
    let mut revocations = state.host_credentials.revocations();
    let Some(identity) = state.host_credentials.verify(&credential).await else {
        return Err(
            "the host credential is wrong or revoked (`parallax host add NAME` makes one)".into(),
        );
    };
    // A host registers as its credential's name and nothing else.
    let name = identity.name().clone();
    if host.as_ref().is_some_and(|asked| *asked != name) {
        return Err(format!(
            "this credential is render host {name}'s: it cannot register as another"
        ));
    }
    let certificate = if wants_certificate {
        certificate_for(state, &identity, &endpoint).await?
    } else {
        None
    };
    let (host, mut commands) = state
        .sessions
        .register(Registration {
            host: name,
            started_here: matches!(identity, HostIdentity::Local(_)),
            size,
            endpoint,
            adapter,
            pid,
        })
        .await
        .map_err(|e: RegisterError| e.to_string())?;
    if state.host_credentials.is_revoked(host.as_str()) {
        state
            .sessions
            .host_lost(&host, "its credential was revoked")
            .await;
        return Err(format!("render host {host}'s credential was revoked"));
    }
    let registered = HostCommand::Registered {
        host: host.clone(),
        certificate,
        ticket_key: state.tickets.public_key(),
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
                        // Whatever a host says (1e30 ms included) is no reason to panic.
                        if let Some(spent) = frame_ms.and_then(|ms| Duration::try_from_secs_f32(ms / 1000.0).ok()) {
                            state.metrics.frame(spent);
                        }
                    }
                    Ok(HostReport::Admit { request, account, session, ticket }) => {
                        let verdict = admit(state, &host, account, &session, &ticket).await;
                        let answer = HostCommand::Admission { request, verdict };
                        if socket.send(Message::Text(answer.to_json().into())).await.is_err() {
                            break Err("the link to the render host broke".into());
                        }
                    }
                    Ok(HostReport::Register { .. }) => break Err("register was already received".into()),
                    Err(e) => break Err(e.to_string()),
                }
            }
            Ok(()) = revocations.changed() => {
                if state.host_credentials.is_revoked(host.as_str()) {
                    break Err(format!("render host {host}'s credential was revoked"));
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

/// Whether `ticket` lets a device use `account`/`session` on `host`: a ticket for that session,
/// which must be Ready on that very host.
async fn admit(
    state: &AppState,
    host: &HostId,
    account: String,
    session: &str,
    ticket: &str,
) -> Admission {
    let judged = async {
        let id = SessionId::parse(session).map_err(|e| e.to_string())?;
        let key = SessionKey::new(account, id);
        let created = state
            .tickets
            .check(ticket, &key)
            .map_err(|e| e.to_string())?;
        state.sessions.admit(host, &key, created).await
    }
    .await;
    match judged {
        Ok(size) => Admission::Admitted { size },
        Err(reason) => Admission::Refused { reason },
    }
}
