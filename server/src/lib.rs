//! `parallax-server` is the coordinator: it serves the web app, the REST API and the space
//! WebSockets, manages the pool of render hosts (starting local ones as child processes) and the
//! render sessions leased on them, broadcasts what each space selects to its members, and keeps
//! its state in SQLite. Frames are rendered by the render hosts (`parallax-host`), never here:
//! the coordinator's own child processes draw catalog thumbnails (`catalog::convert`).
//!
//! The binary (`src/main.rs`) only parses the command line; everything else is here so tests can
//! build the same [`app`] and drive it with `oneshot`, or [`run`] it on a port they bound.
//!
//! # Layout
//! Folders depend on the ones listed after them, never on those before.
//! - `http/`: the edge — every route and WebSocket endpoint; decode, call the state, encode.
//! - [`state`]: [`AppState`], the parts below wired together, and how a coordinator is opened.
//! - `spaces/`: shared spaces — members, timeouts, change numbers — and the outlet that writes
//!   their events into each member's socket.
//! - `pool/`: render sessions and the pool — the core's session service driven with the clock and
//!   the store, and the launcher that starts and supervises local render hosts.
//! - [`replication`]: what replicas say to each other over NATS (space events, host commands)
//!   and how often they say they are alive.
//! - `catalog/`: the models — samples and uploads on disk, imported meshes, thumbnails.
//! - `accounts/`: accounts and their keys, render hosts' credentials, access tokens, render
//!   tickets, guests' join limits.
//! - `telemetry/`: what is measured — the Prometheus metrics and the pool's last hour.
//! - `base/`: what all of it stands on — the SQLite store, the clock and the error type.
//! - [`tls`]: HTTPS — the certificate authority in the data dir, or the operator's certificate.
//! - [`config`]: the command line and environment.
//! - `private`: the data dir and the TLS folder, readable by their owner only.

// Leptos' view types of the larger pages nest deeper than the default 128.
#![recursion_limit = "256"]

mod accounts;
mod base;
mod catalog;
pub mod config;
mod http;
mod pool;
mod private;
pub mod replication;
mod spaces;
pub mod state;
mod telemetry;
pub mod tls;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use parallax_host::tls::{CertFiles, TlsListener};
use tokio::net::TcpListener;

use crate::accounts::{hosts, keys};
use crate::base::clock::{Clock, SystemClock, rfc3339};
use crate::config::{AccountCommand, HostCommand, OnStop, ServeArgs, TlsMode};
use crate::state::open_store;
use crate::tls::TlsSetup;

pub use crate::accounts::keys::NewAccount;
pub use crate::accounts::quotas::QuotaArgs;
pub use crate::base::clock;
pub use crate::catalog::convert::{Source, convert_command};
pub use crate::http::{app, document as openapi_document};
/// The Kubernetes provisioner's pieces (issue 36, in progress: not yet used by the launcher).
#[cfg(feature = "kubernetes")]
pub use crate::pool::kubernetes;
pub use crate::pool::launcher::HostMode;
pub use crate::state::{AppState, Options};

/// `parallax account create NAME`: adds an account to the store of `data` (its SQLite file, or
/// its database URL).
pub async fn create_account(data: &config::DataDir, name: &str) -> anyhow::Result<NewAccount> {
    let store = open_store(&data.path, data.database_url.as_deref()).await?;
    let account = keys::create_account(&store, name).await;
    store.close().await;
    account
}

/// `parallax host add NAME`: a render host's credential, in the store of `data`.
pub async fn add_host(data: &config::DataDir, name: &str) -> anyhow::Result<String> {
    let store = open_store(&data.path, data.database_url.as_deref()).await?;
    let credential = hosts::add(&store, name, SystemClock.now()).await;
    store.close().await;
    credential
}

/// `parallax account …`: what an operator does to accounts, against the data dir's database
/// (a coordinator may be running on it). Returns what to print: text for people, or JSON.
pub async fn account_command(command: AccountCommand) -> anyhow::Result<String> {
    use serde_json::json;

    let output = match &command {
        AccountCommand::Create { output, .. }
        | AccountCommand::List { output }
        | AccountCommand::RotateKey { output, .. }
        | AccountCommand::Revoke { output, .. } => output.clone(),
    };
    let store = open_store(&output.data.path, output.data.database_url.as_deref()).await?;
    let now = SystemClock.now();
    let answer = async {
        Ok::<_, anyhow::Error>(match command {
            AccountCommand::Create { name, .. } => {
                let account = keys::create_account(&store, &name).await?;
                key_answer(&account, Some(&name), output.json)
            }
            AccountCommand::RotateKey { id, .. } => {
                let account = keys::rotate_key(&store, &id, now).await?;
                key_answer(&account, None, output.json)
            }
            AccountCommand::Revoke { id, .. } => {
                let newly = keys::revoke(&store, &id, now).await?;
                let revoked = Revoked {
                    what: "account",
                    field: "id",
                    id: &id,
                    newly,
                    effect: "its key and tokens no longer work",
                };
                revoked.answer(output.json)
            }
            AccountCommand::List { .. } => {
                let accounts = store.accounts().await.context("reading the accounts")?;
                if output.json {
                    let listed: Vec<_> = accounts
                        .iter()
                        .map(|a| {
                            json!({
                                "id": a.id,
                                "name": a.name,
                                "createdAt": a.created_at,
                                "keyRotatedAt": a.key_rotated_at.map(rfc3339),
                                "revokedAt": a.revoked_at.map(rfc3339),
                            })
                        })
                        .collect();
                    serde_json::Value::from(listed).to_string()
                } else {
                    let rows = accounts.iter().map(|a| {
                        [
                            a.id.clone(),
                            a.name.clone(),
                            a.created_at.clone(),
                            state(a.revoked_at),
                        ]
                    });
                    table(["id", "name", "created", "state"], rows)?
                }
            }
        })
    }
    .await;
    store.close().await;
    answer
}

/// What `parallax account revoke` and `parallax host revoke` print.
struct Revoked<'a> {
    /// "account", "host".
    what: &'static str,
    /// The JSON field that names it.
    field: &'static str,
    id: &'a str,
    /// Revoked just now, not before.
    newly: bool,
    /// What the revocation does, for people.
    effect: &'static str,
}

impl Revoked<'_> {
    fn answer(&self, json: bool) -> String {
        let Self {
            what,
            field,
            id,
            newly,
            effect,
        } = self;
        if json {
            serde_json::json!({ (*field): id, "revoked": true, "alreadyRevoked": !newly })
                .to_string()
        } else if *newly {
            format!("{what} {id} is revoked: {effect}")
        } else {
            format!("{what} {id} was already revoked")
        }
    }
}

/// "active", or "revoked" and since when: a listed account's or host's state.
fn state(revoked_at: Option<parallax_core::time::Timestamp>) -> String {
    match revoked_at {
        Some(at) => format!("revoked {}", rfc3339(at)),
        None => "active".to_string(),
    }
}

/// A tab-separated table for people: `header`, then `rows`.
fn table<const N: usize>(
    header: [&str; N],
    rows: impl Iterator<Item = [String; N]>,
) -> anyhow::Result<String> {
    let mut table = csv::WriterBuilder::new()
        .delimiter(b'\t')
        .from_writer(Vec::new());
    table.write_record(header)?;
    for row in rows {
        table.write_record(row)?;
    }
    Ok(String::from_utf8(table.into_inner()?)?
        .trim_end()
        .to_string())
}

/// A new key as `parallax account create` or `rotate-key` prints it.
fn key_answer(account: &NewAccount, name: Option<&str>, json: bool) -> String {
    if json {
        let mut answer = serde_json::json!({ "id": account.id, "key": account.key });
        if let Some(name) = name {
            answer["name"] = name.into();
        }
        return answer.to_string();
    }
    format!(
        "account id:  {}\naccount key: {}\nKeep the key: only its hash is stored, it cannot be \
         shown again.",
        account.id, account.key
    )
}

/// Serves `state` on `listener` until `shutdown` completes, then closes every conversation and
/// the database.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = state.shutdown.clone();
    state.start_sampling(token.clone());
    let store = state.store.clone();
    let sessions = state.sessions.clone();
    let on_stop = state.on_stop;
    let tls = state.tls.clone();
    sessions.set_address(listener.local_addr()?, tls.as_deref());
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stop = {
        let token = token.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        }
    };
    match tls {
        Some(tls) => {
            tls.keep_current(token.clone());
            let listener = TlsListener::new(listener, tls.certs.server_config())?;
            // The no-op tap is what gives a custom listener axum's `ConnectInfo<SocketAddr>`.
            axum::serve(listener.tap_io(|_| {}), service)
                .with_graceful_shutdown(stop)
                .await
        }
        None => {
            axum::serve(parallax_host::net::no_delay(listener), service)
                .with_graceful_shutdown(stop)
                .await
        }
    }
    .context("serving HTTP")?;
    match on_stop {
        OnStop::StopHosts => sessions.stop_hosts().await,
        // Their links closed with "service restart": they wait for the next coordinator.
        OnStop::KeepHosts => tracing::info!("local render hosts left running for the next start"),
    }
    store.close().await;
    Ok(())
}

/// `parallax serve`: binds the address and runs until `shutdown`.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let options = Options {
        site_root: args.site_root.clone(),
        pool: args.pool.clone(),
        clock: Arc::new(SystemClock),
        max_upload_bytes: args.max_upload_mb.saturating_mul(1024 * 1024),
        hosts: host_mode(&args).await?,
        metrics_token: args.metrics_token.clone(),
        trusted_proxies: args.trusted_proxies.clone(),
        conversion: args.conversion.clone(),
        storage_root: args.storage_root.clone(),
        database_url: args.data.database_url.clone(),
        on_stop: args.on_stop,
        nats: args.nats(),
        quotas: args.quotas.clone(),
        tls: match (&args.tls.mode, &args.tls.tls_cert, &args.tls.tls_key) {
            (TlsMode::Off, _, _) => TlsSetup::Off,
            (TlsMode::On, Some(cert), Some(key)) => TlsSetup::Files(CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            (TlsMode::On, _, _) => TlsSetup::Local {
                names: tls::machine_names(args.addr.ip(), &args.tls.names),
                host_domains: args.tls.host_domains.iter().cloned().collect(),
            },
        },
    };
    let claim = state::claim_coordinator(
        &args.data.path,
        args.data.database_url.as_deref(),
        args.nats.as_deref(),
    )
    .await?;
    let state = AppState::open(&args.data.path, &options).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let database = match &args.data.database_url {
        Some(url) => crate::base::redacted(url),
        None => args.data.path.join("parallax.db").display().to_string(),
    };
    tracing::info!(
        data_dir = %args.data.path.display(),
        %database,
        "Parallax listening on {}://{}",
        if state.tls.is_some() { "https" } else { "http" },
        listener.local_addr()?
    );
    let lost = claim.lost();
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            () = lost.cancelled() => {}
        }
    };
    run(listener, state, stop).await?;
    if claim.lost().is_cancelled() {
        anyhow::bail!("another coordinator took the database while Postgres was away");
    }
    Ok(())
}

/// How `serve` starts render hosts (`--render-hosts`).
async fn host_mode(args: &ServeArgs) -> anyhow::Result<HostMode> {
    let hosts = &args.render_hosts;
    match hosts.render_hosts {
        config::RenderHosts::Local => Ok(HostMode::Processes(
            std::env::current_exe().context("finding this executable to start render hosts")?,
        )),
        #[cfg(feature = "kubernetes")]
        config::RenderHosts::Kubernetes => {
            // Replicas take turns under a Lease, each by its pod's name.
            let replica = args.nats.as_ref().map(|_| {
                std::env::var("POD_NAME").unwrap_or_else(|_| uuid::Uuid::new_v4().to_string())
            });
            let settings = kubernetes::KubeSettings {
                namespace: hosts.kube_namespace.clone(),
                template: hosts.kube_pod_template.clone(),
                owner: hosts.kube_owner.clone(),
                start_limit: std::time::Duration::from_secs(hosts.kube_start_limit_s),
                boot_limit: std::time::Duration::from_secs(hosts.kube_boot_limit_s),
                poll: std::time::Duration::from_millis(hosts.kube_poll_ms.max(100)),
                replica,
                node_ports: hosts.kube_node_ports.clone(),
            };
            Ok(HostMode::Kubernetes(
                kubernetes::Provisioner::connect(settings).await?,
            ))
        }
        #[cfg(not(feature = "kubernetes"))]
        config::RenderHosts::Kubernetes => anyhow::bail!(
            "this parallax was built without Kubernetes: build it with \
             `cargo build --release -p parallax-server --features kubernetes` (deploy/Dockerfile does)"
        ),
    }
}

/// Completes on Ctrl-C or SIGTERM. The handlers are installed when this is called, not when the
/// future is first polled, so a signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).expect("the OS lets us handle SIGINT");
        let mut terminate = signal(SignalKind::terminate()).expect("the OS lets us handle SIGTERM");
        async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `parallax host add|list|revoke`.
pub async fn host_command(command: HostCommand) -> anyhow::Result<String> {
    use serde_json::json;

    let output = match &command {
        HostCommand::Add { output, .. }
        | HostCommand::List { output }
        | HostCommand::Revoke { output, .. } => output.clone(),
    };
    let store = open_store(&output.data.path, output.data.database_url.as_deref()).await?;
    let now = SystemClock.now();
    let answer = async {
        Ok::<_, anyhow::Error>(match command {
            HostCommand::Add { name, .. } => {
                let credential = hosts::add(&store, &name, now).await?;
                if output.json {
                    json!({ "name": name, "credential": credential }).to_string()
                } else {
                    format!(
                        "host credential: {credential}\nGive it to the host in a file only its \
                         user reads (--credential-file) or in PARALLAX_HOST_CREDENTIAL: only its \
                         hash is stored, it cannot be shown again."
                    )
                }
            }
            HostCommand::Revoke { name, .. } => {
                let newly = hosts::revoke(&store, &name, now).await?;
                let revoked = Revoked {
                    what: "host",
                    field: "name",
                    id: &name,
                    newly,
                    effect: "it can no longer register or fetch models",
                };
                revoked.answer(output.json)
            }
            HostCommand::List { .. } => {
                let listed = hosts::list(&store).await?;
                if output.json {
                    let listed: Vec<_> = listed
                        .iter()
                        .map(|h| {
                            json!({
                                "name": h.name,
                                "createdAt": rfc3339(h.created_at),
                                "revokedAt": h.revoked_at.map(rfc3339),
                            })
                        })
                        .collect();
                    serde_json::Value::from(listed).to_string()
                } else {
                    let rows = listed
                        .iter()
                        .map(|h| [h.name.clone(), rfc3339(h.created_at), state(h.revoked_at)]);
                    table(["name", "created", "state"], rows)?
                }
            }
        })
    }
    .await;
    store.close().await;
    answer
}
