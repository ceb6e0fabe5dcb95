//! One render host as a process: it opens its wgpu device, serves the exclusive render
//! connection on its own port, and holds its link to the coordinator, linking again under the
//! same name when it is lost. A device keeps its render connection while the coordinator is
//! away for a restart; a host the coordinator started leaves when the coordinator lets it go,
//! or has been away too long.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::HostConfig;
use crate::host::Host;
use crate::link::{LinkEnd, Registration, api_base, link};
use crate::worker::RenderWorker;
use parallax_core::trust::Trust;

use crate::tls::{ServerCerts, TlsListener, http_client};
use crate::{connection, net};

/// Longest pause before a host that lost its coordinator tries again.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);
/// The first pause: each failed try doubles it, up to [`RECONNECT_DELAY`].
const FIRST_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// The pause before try `attempt` (0 = the first after the link was lost): doubling from
/// [`FIRST_RECONNECT_DELAY`] to [`RECONNECT_DELAY`], each a random 50–100 % of that, so the hosts of
/// a restarted coordinator are back within moments of it and do not all register at once.
fn reconnect_delay(attempt: u32) -> Duration {
    let full = FIRST_RECONNECT_DELAY
        .saturating_mul(1 << attempt.min(16))
        .min(RECONNECT_DELAY);
    full.mul_f64(0.5 + rand::random::<f64>() / 2.0)
}

/// Runs a host until `shutdown`, or (if it is `local`) until its coordinator lets it go or has
/// been away longer than `coordinator_wait`.
pub async fn run(config: HostConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker = RenderWorker::start(config.gpu_cache_bytes).await;
    let adapter = match worker
        .adapter()
        .unwrap_or(&Err("no device was opened".into()))
    {
        Ok(adapter) => adapter.clone(),
        Err(e) => anyhow::bail!("the render host has no GPU device: {e}"),
    };
    let trust = config.ca.as_deref().map(Trust::from_file).transpose()?;
    // A certificate of its own, or (linked to a wss:// coordinator) one the coordinator issues
    // for the advertised name when the host registers.
    let certs = match &config.tls {
        Some(files) => Some(ServerCerts::new(files.load()?, None)),
        None if config.coordinators.iter().any(|c| c.starts_with("wss://")) => {
            Some(ServerCerts::awaiting())
        }
        None => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bound = listener.local_addr()?;
    let endpoint = format!(
        "{}://{}:{}",
        if certs.is_some() { "wss" } else { "ws" },
        config
            .advertise
            .clone()
            .unwrap_or_else(|| bound.ip().to_string()),
        config.advertise_port.unwrap_or(bound.port())
    );
    // Every URL is checked now; meshes come from the first until a link says otherwise.
    let bases = config
        .coordinators
        .iter()
        .map(|coordinator| api_base(coordinator))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let api = bases
        .into_iter()
        .next()
        .context("no coordinator to link with")?;
    let host = Arc::new(Host::new(
        worker,
        (config.target_fps, config.bitrate),
        config.mesh_cache_bytes,
        api,
        config.credential.clone(),
        http_client(trust.as_ref())?,
    ));
    tracing::info!(%endpoint, %adapter, size = %config.size, "render host listening");
    let serving = shutdown.child_token();
    let router = connection::router().with_state(host.clone());
    let server = match &certs {
        Some(certs) => {
            if let Some(files) = &config.tls {
                certs
                    .clone()
                    .reload_on_change(files.clone(), serving.clone());
            }
            let listener = TlsListener::new(listener, certs.server_config())?;
            tokio::spawn(
                axum::serve(listener, router)
                    .with_graceful_shutdown(serving.clone().cancelled_owned())
                    .into_future(),
            )
        }
        None => tokio::spawn(
            axum::serve(net::no_delay(listener), router)
                .with_graceful_shutdown(serving.clone().cancelled_owned())
                .into_future(),
        ),
    };
    let result = stay_linked(
        &config,
        trust.as_ref(),
        &host,
        &endpoint,
        &adapter,
        &certs,
        &shutdown,
    )
    .await;
    serving.cancel();
    let _ = server.await;
    result
}

/// Holds the link to the coordinator until the host is shut down or, if it is local, let go.
async fn stay_linked(
    config: &HostConfig,
    trust: Option<&Trust>,
    host: &Arc<Host>,
    endpoint: &str,
    adapter: &str,
    certs: &Option<Arc<ServerCerts>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // The name it was started with, then the one it was registered under: a host that links
    // again after a coordinator restart is the same host, with the same session.
    let mut name = config.host.clone();
    // Since when no coordinator has vouched for the device.
    let mut away_since: Option<Instant> = None;
    // Tries since the last registration.
    let mut attempt = 0;
    // Which coordinator (replica) to link with next.
    let mut at = 0;
    loop {
        let registration = Registration {
            name: name.clone(),
            endpoint,
            adapter,
            // Asked for at every registration: a coordinator that restarted may have a new one.
            awaiting_certificate: certs.as_deref().filter(|_| config.tls.is_none()),
        };
        let coordinator = &config.coordinators[at % config.coordinators.len()];
        let end = link(config, coordinator, trust, host, registration, shutdown).await;
        if matches!(end, LinkEnd::Unreachable(_) | LinkEnd::Broken(..)) {
            // Another replica may be up where this one is not.
            at += 1;
        }
        attempt = match end {
            LinkEnd::Closed(_) | LinkEnd::Broken(..) => 0,
            _ => attempt + 1,
        };
        match end {
            LinkEnd::Shutdown | LinkEnd::Retired => return Ok(()),
            LinkEnd::Closed(named) => {
                name = Some(named);
                // Let go: the device's session is over with it.
                host.reset();
                if config.local {
                    return Ok(());
                }
                tracing::warn!("the coordinator closed the link");
                away_since = None;
            }
            LinkEnd::Refused(reason) => {
                host.reset();
                if config.local {
                    anyhow::bail!("the coordinator refused the host: {reason}");
                }
                tracing::warn!("the coordinator refused the host: {reason}");
                away_since = None;
            }
            LinkEnd::Broken(named, e) => {
                name = Some(named);
                tracing::warn!(
                    "lost the coordinator ({e:#}); the device keeps its connection for {} s \
                     while the host links again",
                    config.coordinator_wait.as_secs()
                );
                away_since = Some(Instant::now());
            }
            LinkEnd::Unreachable(e) => {
                let since = *away_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= config.coordinator_wait {
                    // Nobody has vouched for the device for too long: its conversation ends.
                    host.reset();
                    if config.local {
                        anyhow::bail!(
                            "no coordinator for {} s: {e:#}",
                            config.coordinator_wait.as_secs()
                        );
                    }
                    away_since = None;
                }
                tracing::warn!("no link to the coordinator: {e:#}");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(reconnect_delay(attempt)) => {}
            () = shutdown.cancelled() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_coordinator_is_tried_again_soon_then_every_one_to_two_seconds() {
        for _ in 0..100 {
            let first = reconnect_delay(0);
            assert!(first >= Duration::from_millis(50) && first <= FIRST_RECONNECT_DELAY);
            let later = reconnect_delay(40);
            assert!(later >= RECONNECT_DELAY / 2 && later <= RECONNECT_DELAY);
        }
        assert!(reconnect_delay(3) <= Duration::from_millis(800));
    }
}
