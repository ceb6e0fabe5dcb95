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
//! - `stage`: what the space shows; publishes each change to every headset (latest wins).
//! - `api`: JSON API under `/v1`; `ws`: the headset WebSocket; `web`: Leptos pages and assets.
//! - `error`: the HTTP error type.

mod api;
pub mod config;
mod error;
mod render_worker;
mod stage;
mod store;
mod web;
mod ws;

use std::future::Future;
use std::path::Path;
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

use crate::config::ServeArgs;
use crate::render_worker::RenderWorker;
use crate::stage::Stage;
use crate::store::Store;

pub use crate::ws::HELLO_TIMEOUT;

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    stage: Arc<Stage>,
    renderer: RenderWorker,
    leptos: LeptosOptions,
    /// Cancelled when the server shuts down, so WebSocket conversations close with a reason.
    shutdown: CancellationToken,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

impl AppState {
    /// Opens the data dir's database, starts the render thread and restores what was showing.
    pub async fn open(data_dir: &Path, site_root: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
        let db = data_dir.join("parallax.db");
        let store = Store::open(&db)
            .await
            .with_context(|| format!("opening the database {}", db.display()))?;
        let renderer = RenderWorker::start().await;
        let stage = Stage::open(store, renderer.clone())
            .await
            .context("restoring the stage")?;
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
            stage: Arc::new(stage),
            renderer,
            leptos,
            shutdown: CancellationToken::new(),
        })
    }
}

/// The whole HTTP surface: API, WebSockets, pages and static files.
pub fn app(state: AppState) -> Router {
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());
    let http = api::router().layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    Router::new()
        .merge(http)
        .merge(ws::router())
        .merge(web::router(&state, &site_root))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` completes, then closes every conversation and
/// the database.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let token = state.shutdown.clone();
    let stage = state.stage.clone();
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            token.cancel();
        })
        .await
        .context("serving HTTP")?;
    stage.store().close().await;
    Ok(())
}

/// `parallax serve`: binds the address and runs until `shutdown`.
pub async fn serve(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = AppState::open(&args.data_dir, &args.site_root).await?;
    let listener = TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    tracing::info!(
        data_dir = %args.data_dir.display(),
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
