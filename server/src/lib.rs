//! `parallax-server` is the coordinator: it serves the web app and the API, holds each headset's
//! WebSocket, renders frames on a render thread and keeps its state in SQLite.
//!
//! The binary (`src/main.rs`) only parses the command line; everything else is here so tests can
//! build the same [`app`] and drive it with `oneshot`, or [`run`] it on a port they bound.
//!
//! # Layout
//! - [`config`]: command line and environment.
//! - `store`: SQLite through sqlx, schema in `migrations/`.
//! - `render_worker`: the thread that owns the GPU device and encodes frames.
//! - `sessions`: drives the core's render session service (store writes, timers, hosts).
//! - `hosts`: the coordinator's side of render hosts: starting local ones, `/v1/hosts/ws`.
//! - `render_host`: `parallax render-host`, one render host process; `render_ws`: its exclusive
//!   render connection, served on the host's own port.
//! - `arr`: the ARR-shaped session REST API and token service; `accounts`: keys and tokens.
//! - `spaces`: shared spaces (members, timeouts, reliable delivery); `space_routes`: their REST
//!   API and WebSocket.
//! - `api`: health and ping; `ws`: what every WebSocket shares; `web`: Leptos pages and assets.
//! - `metrics`: `/metrics`; `history`: its last hour, for the operator's charts.
//! - `clock`: the one source of time; `error`: the HTTP error type.

// Leptos' view types of the larger pages nest deeper than the default 128.
#![recursion_limit = "256"]

mod accounts;
mod api;
mod arr;
mod browser;
mod catalog;
pub mod clock;
pub mod config;
mod error;
mod history;
mod hosts;
mod metrics;
mod models;
mod openapi;
mod outlet;
mod render_cli;
pub mod render_host;
mod render_worker;
mod render_ws;
mod sessions;
mod space_routes;
mod spaces;
mod store;
mod web;
mod ws;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::accounts::Tokens;
use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::config::{PoolArgs, ServeArgs};
use crate::render_worker::RenderWorker;
use crate::sessions::Sessions;
use crate::spaces::Spaces;
use crate::store::Store;

pub use crate::accounts::NewAccount;
pub use crate::hosts::HostMode;
pub use crate::render_cli::render_file;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    catalog: Arc<Catalog>,
    max_upload_bytes: usize,
    /// Most triangles a Standard session may load.
    standard_polygon_budget: u64,
    sessions: Arc<Sessions>,
    spaces: Arc<Spaces>,
    tokens: Tokens,
    /// What render hosts must present to register and to fetch models.
    host_secret: String,
    renderer: RenderWorker,
    metrics: Arc<metrics::Metrics>,
    /// How often each address may try a guest join code.
    join_attempts: Arc<browser::JoinAttempts>,
    leptos: LeptosOptions,
    /// Cancelled when the server shuts down, so WebSocket conversations close with a reason.
    shutdown: CancellationToken,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Opens (creating if needed) the database in `data_dir`.
async fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
    let db = data_dir.join("parallax.db");
    Store::open(&db)
        .await
        .with_context(|| format!("opening the database {}", db.display()))
}

/// `parallax account create NAME`: adds an account to the data dir's database.
pub async fn create_account(data_dir: &Path, name: &str) -> anyhow::Result<NewAccount> {
    let store = open_store(data_dir).await?;
    let account = accounts::create_account(&store, name).await;
    store.close().await;
    account
}

/// How a coordinator is set up, beyond its data dir.
#[derive(Clone)]
pub struct Options {
    /// The built web bundle (`pkg/…`); pages still render without it.
    pub site_root: PathBuf,
    pub pool: PoolArgs,
    pub clock: Arc<dyn Clock>,
    /// Largest model upload accepted, in bytes.
    pub max_upload_bytes: usize,
    /// How the hosts the pool asks for are started.
    pub hosts: HostMode,
    /// The secret render hosts register with; `None` keeps (or makes) the one in the database.
    pub host_secret: Option<String>,
}

impl Options {
    /// Defaults, with the web bundle looked for in `site_root`.
    pub fn new(site_root: impl Into<PathBuf>) -> Self {
        Self {
            site_root: site_root.into(),
            pool: PoolArgs::default(),
            clock: Arc::new(SystemClock),
            max_upload_bytes: models::DEFAULT_MAX_UPLOAD_BYTES,
            hosts: HostMode::Tasks,
            host_secret: None,
        }
    }
}

impl AppState {
    /// Opens the data dir's database, restores render sessions and spaces, and starts
    /// the render threads.
    pub async fn open(data_dir: &Path, options: &Options) -> anyhow::Result<Self> {
        let Options {
            site_root,
            pool,
            clock,
            max_upload_bytes,
            hosts,
            host_secret,
        } = options;
        let store = open_store(data_dir).await?;
        let shutdown = CancellationToken::new();
        let tokens = Tokens::load(&store, clock.clone()).await?;
        let host_secret = match host_secret {
            Some(secret) => secret.clone(),
            None => accounts::stored_host_secret(&store).await?,
        };
        let sessions = Sessions::start(
            store.clone(),
            pool.pool(),
            pool.poll_interval(),
            clock.clone(),
            hosts::Launcher::new(hosts.clone(), host_secret.clone()),
            shutdown.clone(),
        )
        .await
        .context("restoring render sessions")?;
        let renderer = RenderWorker::start_lazy();
        let catalog = Arc::new(
            Catalog::open(data_dir, store.clone(), renderer.clone())
                .await
                .context("opening the model catalog")?,
        );
        let spaces = Spaces::open(
            store.clone(),
            clock.clone(),
            sessions.clone(),
            catalog.clone(),
            shutdown.clone(),
        )
        .await
        .context("restoring spaces")?;
        let site_root_text = site_root.to_string_lossy().into_owned();
        if !site_root.join("pkg").is_dir() {
            tracing::warn!(
                "no web bundle in {}/pkg: pages render but will not become interactive \
                 (build it with scripts/build-web.sh)",
                site_root.display()
            );
        }
        let leptos = LeptosOptions::builder()
            .output_name("parallax")
            .site_root(site_root_text)
            .site_pkg_dir("pkg")
            .build();
        Ok(Self {
            store,
            catalog,
            max_upload_bytes: *max_upload_bytes,
            standard_polygon_budget: pool.standard_polygon_budget,
            sessions,
            spaces,
            tokens,
            host_secret,
            renderer,
            metrics: Arc::default(),
            join_attempts: Arc::default(),
            leptos,
            shutdown,
        })
    }

    fn store(&self) -> &Store {
        &self.store
    }
}

/// The whole HTTP surface: API, WebSockets, pages and static files.
pub fn app(state: AppState) -> Router {
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());
    let http = api::router().layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    let http = http.merge(arr::router().layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    )));
    Router::new()
        .merge(http)
        .merge(models::router(state.max_upload_bytes))
        .merge(hosts::router())
        .merge(space_routes::router())
        .merge(browser::router())
        .merge(metrics::router())
        .merge(history::router())
        .merge(openapi::router())
        .merge(web::router(&state, &site_root))
        .layer(axum::middleware::from_fn(correlation_vector))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Every response carries an `MS-CV` correlation header, as ARR's did: the client's own if it
/// sent a sane one, else a fresh one, so one request can be followed through client and server
/// logs.
async fn correlation_vector(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    const HEADER: &str = "ms-cv";
    let given = request
        .headers()
        .get(HEADER)
        .filter(|v| {
            v.len() <= 128
                && v.to_str()
                    .is_ok_and(|s| s.chars().all(|c| c.is_ascii_graphic()))
        })
        .cloned();
    let value = given.or_else(|| {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        axum::http::HeaderValue::from_str(&fresh[..22]).ok()
    });
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Serves `state` on `listener` until `shutdown` completes, then closes every conversation and
/// the database.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = state.shutdown.clone();
    history::start_sampling(&state, token.clone());
    let store = state.store.clone();
    let sessions = state.sessions.clone();
    sessions.set_address(listener.local_addr()?);
    let service = app(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(ws::no_delay(listener), service)
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        })
        .await
        .context("serving HTTP")?;
    sessions.stop_hosts().await;
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
        hosts: HostMode::Processes(
            std::env::current_exe().context("finding this executable to start render hosts")?,
        ),
        host_secret: args.host_secret.clone(),
    };
    let state = AppState::open(&args.data.path, &options).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    tracing::info!(
        data_dir = %args.data.path.display(),
        "Parallax listening on http://{}",
        listener.local_addr()?
    );
    run(listener, state, shutdown).await
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

/// `parallax host-secret`: the secret render hosts on other machines register with.
pub async fn host_secret(data_dir: &Path) -> anyhow::Result<String> {
    let store = open_store(data_dir).await?;
    let secret = accounts::stored_host_secret(&store).await;
    store.close().await;
    secret
}

/// `parallax render-host`: runs one render host until `shutdown`.
pub async fn run_render_host(
    args: config::RenderHostArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let coordinator = if args
        .coordinator
        .trim_end_matches('/')
        .ends_with("/v1/hosts/ws")
    {
        args.coordinator.clone()
    } else {
        format!("{}/v1/hosts/ws", args.coordinator.trim_end_matches('/'))
    };
    let config = render_host::HostConfig {
        coordinator,
        size: args.size,
        secret: args.secret,
        host: args.host_id.map(parallax_core::pool::HostId::new),
        listen: args.listen,
        advertise: args.advertise,
        local: args.local,
        target_fps: args.target_fps,
    };
    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    });
    render_host::run(config, stop).await
}
