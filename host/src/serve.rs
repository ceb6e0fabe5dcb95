//! One render host as a process: it opens its wgpu device, serves the exclusive render
//! connection on its own port, and holds its link to the coordinator, linking again when it is
//! lost (or exiting with it, when the coordinator started it).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::HostConfig;
use crate::host::Host;
use crate::link::{Registration, api_base, link};
use crate::worker::RenderWorker;
use parallax_core::trust::Trust;

use crate::tls::{ServerCerts, TlsListener, http_client};
use crate::{connection, net};

/// Pause before a host that lost its coordinator tries again.
const RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Runs a host until `shutdown`, or until its coordinator goes away if it is `local`.
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
        None if config.coordinator.starts_with("wss://") => Some(ServerCerts::awaiting()),
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
        bound.port()
    );
    let api = api_base(&config.coordinator)?;
    let host = Arc::new(Host::new(
        worker,
        (config.target_fps, config.bitrate),
        config.mesh_cache_bytes,
        api,
        config.secret.clone(),
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
    let mut name = config.host.clone();
    let result = loop {
        let registration = Registration {
            name: name.take(),
            endpoint: &endpoint,
            adapter: &adapter,
            // Asked for at every registration: a coordinator that restarted may have a new one.
            awaiting_certificate: certs.as_deref().filter(|_| config.tls.is_none()),
        };
        let linked = link(&config, trust.as_ref(), &host, registration, &shutdown).await;
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
            // 1 to 2 s, so the hosts of a restarted coordinator do not all register at once.
            () = tokio::time::sleep(RECONNECT_DELAY / 2 + RECONNECT_DELAY.mul_f64(rand::random::<f64>() / 2.0)) => {}
            () = shutdown.cancelled() => break Ok(()),
        }
    };
    serving.cancel();
    let _ = server.await;
    result
}
