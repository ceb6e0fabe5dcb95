//! A render host's link to its coordinator (`/v1/hosts/ws`): it registers with its credential,
//! heartbeats every [`HEARTBEAT_MS`], learns the key render tickets are checked with, carries
//! the questions whether a device may use its session, and hears when a session ended.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use parallax_core::host::{HEARTBEAT_MS, HostCommand, HostReport};
use parallax_core::pool::HostId;
use parallax_core::protocol::CLOSE_SERVICE_RESTART;
use parallax_core::trust::Trust;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::config::HostConfig;
use crate::host::Host;
use crate::ticket::TicketVerifier;
use crate::tls::{ServerCerts, certified_key, connect_ws};

/// `ws://host:port/…` → `http://host:port`.
pub(crate) fn api_base(coordinator: &str) -> anyhow::Result<String> {
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

/// What a host registers as.
pub(crate) struct Registration<'a> {
    /// The name the coordinator gave a host it started; `None` to offer ourselves.
    pub name: Option<HostId>,
    /// Where devices reach us: `ws(s)://host:port`.
    pub endpoint: &'a str,
    pub adapter: &'a str,
    /// Serving `wss://` without a certificate of our own: the one the coordinator issues goes
    /// here.
    pub awaiting_certificate: Option<&'a ServerCerts>,
}

/// How a link ended.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    /// It never got as far as a registration: the coordinator is away, or did not answer.
    Unreachable(anyhow::Error),
    /// The coordinator refused the registration, with its reason.
    Refused(String),
    /// Registered under this name, the coordinator then closed the link: it let the host go
    /// (it is shutting down, or stopped the host).
    Closed(HostId),
    /// Registered under this name, the link then broke: the coordinator died or the network
    /// failed, or it stopped to start again (`CLOSE_SERVICE_RESTART`). It may well come back.
    Broken(HostId, anyhow::Error),
    /// The host itself is shutting down.
    Shutdown,
    /// The coordinator's pool let the host go: it stops.
    Retired,
}

/// One registration with the coordinator, held until either side ends it.
pub(crate) async fn link(
    config: &HostConfig,
    coordinator: &str,
    trust: Option<&Trust>,
    host: &Arc<Host>,
    registration: Registration<'_>,
    shutdown: &CancellationToken,
) -> LinkEnd {
    if coordinator.starts_with("wss://") && trust.is_none() {
        return LinkEnd::Refused(
            "a wss:// coordinator needs --ca: the certificate authority to trust".into(),
        );
    }
    let api = match api_base(coordinator) {
        Ok(api) => api,
        Err(e) => return LinkEnd::Refused(format!("{e:#}")),
    };
    let mut socket = match connect_ws(coordinator, trust).await {
        Ok(socket) => socket,
        Err(e) => {
            return LinkEnd::Unreachable(
                anyhow::Error::from(e).context(format!("connecting to {coordinator}")),
            );
        }
    };
    let register = HostReport::Register {
        credential: config.credential.clone(),
        size: config.size,
        host: registration.name.clone(),
        endpoint: registration.endpoint.to_string(),
        adapter: registration.adapter.to_string(),
        pid: std::process::id(),
        wants_certificate: registration.awaiting_certificate.is_some(),
    };
    if let Err(e) = socket.send(Message::text(register.to_json())).await {
        return LinkEnd::Unreachable(e.into());
    }
    let (named, tickets) = match registered(&mut socket, &registration).await {
        Ok(registered) => registered,
        Err(end) => return end,
    };
    tracing::info!(host = %named, coordinator, "registered with the coordinator");
    let (reports, mut outbox) = mpsc::unbounded_channel();
    host.linked(reports, api, tickets);
    let mut heartbeat = tokio::time::interval(Duration::from_millis(HEARTBEAT_MS));
    let mut last_beat = tokio::time::Instant::now();
    let broken = |e: anyhow::Error| LinkEnd::Broken(named.clone(), e);
    let end = loop {
        tokio::select! {
            now = heartbeat.tick() => {
                let beat = host.heartbeat(now - last_beat);
                last_beat = now;
                if let Err(e) = socket.send(Message::text(beat.to_json())).await {
                    break broken(e.into());
                }
            }
            Some(report) = outbox.recv() => {
                if let Err(e) = socket.send(Message::text(report.to_json())).await {
                    break broken(e.into());
                }
            }
            message = socket.next() => match message {
                Some(Ok(Message::Text(text))) => match HostCommand::parse(text.as_str()) {
                    Ok(HostCommand::Admission { request, verdict }) => host.answer(request, verdict),
                    Ok(HostCommand::Reset) => {
                        tracing::info!("session ended: dropping the device and its scene");
                        host.reset();
                    }
                    Ok(HostCommand::Retire) => {
                        tracing::info!("the pool let this host go: stopping");
                        // A device still connected hears its session ended.
                        host.reset();
                        let _ = socket.close(None).await;
                        break LinkEnd::Retired;
                    }
                    Ok(HostCommand::Registered { .. }) => {}
                    Err(e) => tracing::warn!("unreadable command from the coordinator: {e}"),
                },
                Some(Ok(Message::Close(Some(frame))))
                    if u16::from(frame.code) == CLOSE_SERVICE_RESTART =>
                {
                    break broken(anyhow::anyhow!("the coordinator is restarting: {}", frame.reason));
                }
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    tracing::info!("the coordinator closed the link: {reason}");
                    break LinkEnd::Closed(named.clone());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break broken(e.into()),
                None => break broken(anyhow::anyhow!("the link ended without a close")),
            },
            () = shutdown.cancelled() => {
                let _ = socket.close(None).await;
                break LinkEnd::Shutdown;
            }
        }
    };
    host.unlinked();
    end
}

/// Waits for the coordinator's answer to a registration: the name it registered us under, and
/// what render tickets are checked with.
async fn registered<S>(
    socket: &mut S,
    registration: &Registration<'_>,
) -> Result<(HostId, TicketVerifier), LinkEnd>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let unreachable = |e: anyhow::Error| LinkEnd::Unreachable(e);
    match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match HostCommand::parse(text.as_str()) {
            Ok(HostCommand::Registered {
                host,
                certificate,
                ticket_key,
            }) => {
                let tickets = TicketVerifier::from_public_key(&ticket_key).map_err(|_| {
                    LinkEnd::Refused(
                        "the coordinator sent no render ticket key: it is older than this host"
                            .into(),
                    )
                })?;
                match (registration.awaiting_certificate, certificate) {
                    (Some(certs), Some(issued)) => {
                        let certified =
                            certified_key(issued.cert.as_bytes(), issued.key.as_bytes())
                                .context("the certificate the coordinator issued")
                                .map_err(|e| LinkEnd::Refused(format!("{e:#}")))?;
                        certs.replace(certified);
                        tracing::info!("serving wss:// with a certificate the coordinator issued");
                    }
                    (Some(_), None) => tracing::warn!(
                        "the coordinator issued no certificate: devices cannot connect over \
                         wss:// (give this host --tls-cert/--tls-key)"
                    ),
                    _ => {}
                }
                Ok((host, tickets))
            }
            Ok(other) => Err(LinkEnd::Refused(format!(
                "expected registered, got {other:?}"
            ))),
            Err(e) => Err(LinkEnd::Refused(e.to_string())),
        },
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            Err(LinkEnd::Refused(frame.reason.to_string()))
        }
        Ok(Some(Err(e))) => Err(unreachable(e.into())),
        Ok(_) => Err(unreachable(anyhow::anyhow!(
            "the coordinator closed the link during registration"
        ))),
        Err(_) => Err(unreachable(anyhow::anyhow!(
            "the coordinator did not answer the registration"
        ))),
    }
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
