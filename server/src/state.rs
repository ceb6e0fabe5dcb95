//! [`AppState`]: the coordinator's parts wired together — the store, the pool's render
//! sessions, the spaces, the catalog, the tokens and the metrics — as every route handler gets
//! them. Opening it restores what the database holds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use axum::extract::FromRef;
use leptos::config::LeptosOptions;
use parallax_host::RenderWorker;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::accounts::guests::JoinAttempts;
use crate::accounts::hosts::HostCredentials;
use crate::accounts::quotas::{QuotaArgs, Quotas};
use crate::accounts::tickets::RenderTickets;
use crate::accounts::tokens::Tokens;
use crate::base::clock::{Clock, SystemClock};
use crate::base::redacted;
use crate::base::store::Store;
use crate::catalog::conversions::{Conversions, Storage};
use crate::catalog::convert::Converter;
use crate::catalog::files::DEFAULT_MAX_UPLOAD_BYTES;
use crate::catalog::models::Catalog;
use crate::config::{ConversionArgs, NatsOptions, OnStop, PoolArgs};
use crate::pool::launcher::{HostMode, Launcher};
use crate::pool::sessions::Sessions;
use crate::replication::Replication;
use crate::spaces::space::Spaces;
use crate::telemetry::history::INTERVAL;
use crate::telemetry::metrics::Metrics;
use crate::tls::{Tls, TlsSetup};

/// Everything a request handler may need.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) conversions: Arc<Conversions>,
    pub(crate) max_upload_bytes: usize,
    /// Most triangles a Standard session may load.
    pub(crate) standard_polygon_budget: u64,
    pub(crate) sessions: Arc<Sessions>,
    pub(crate) spaces: Arc<Spaces>,
    pub(crate) tokens: Tokens,
    /// Mints the tickets that open render connections.
    pub(crate) tickets: RenderTickets,
    /// What render hosts present to register and to fetch models: each its own.
    pub(crate) host_credentials: HostCredentials,
    /// What a scraper of `/metrics` must present, if anything.
    pub(crate) metrics_token: Option<String>,
    pub(crate) metrics: Arc<Metrics>,
    /// How often each address may try a guest join code.
    pub(crate) join_attempts: Arc<JoinAttempts>,
    pub(crate) leptos: LeptosOptions,
    /// Cancelled when the server shuts down, so WebSocket conversations close with a reason.
    pub(crate) shutdown: CancellationToken,
    /// HTTPS, unless it is off.
    pub(crate) tls: Option<Arc<Tls>>,
    /// What stopping does to the local render hosts.
    pub(crate) on_stop: OnStop,
    /// What each account may hold at once.
    pub(crate) quotas: Arc<Quotas>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos.clone()
    }
}

/// Opens the store: the Postgres database at `database_url`, or (creating if needed) the SQLite
/// file in `data_dir`.
pub(crate) async fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Store> {
    crate::private::make_private_dir(data_dir)?;
    if let Some(url) = database_url {
        let url = postgres_url(url)?;
        let store = Store::connect(url)
            .await
            .with_context(|| format!("opening the database at {}", redacted(url)))?;
        tracing::debug!(backend = ?store.backend(), database = %redacted(url), "store opened");
        return Ok(store);
    }
    let db = data_dir.join("parallax.db");
    // Two processes opening a fresh data dir at once (`serve` and `account create`) would both
    // create the database and run its migrations; SQLite then fails one of them with "database is
    // locked" at once, as a write that would need to upgrade a read lock cannot wait. So one at a
    // time: whoever holds the data dir's lock file opens and migrates, the other waits for it.
    let lock_path = data_dir.join("parallax.lock");
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&lock_path)?;
        file.lock()?;
        std::io::Result::Ok(file)
    })
    .await
    .context("waiting for the data dir's lock")?
    .with_context(|| format!("locking the data dir {}", data_dir.display()))?;
    crate::private::make_private_file(&db)?;
    for journal in ["parallax.db-wal", "parallax.db-shm"] {
        if data_dir.join(journal).exists() {
            crate::private::make_private_file(&data_dir.join(journal))?;
        }
    }
    let store = Store::open(&db)
        .await
        .with_context(|| format!("opening the database {}", db.display()));
    drop(lock);
    store
}

/// `url` if it names a Postgres database: what `--database-url` takes (the SQLite file is the data
/// dir's).
fn postgres_url(url: &str) -> anyhow::Result<&str> {
    match url.split_once("://") {
        Some(("postgres" | "postgresql", _)) => Ok(url),
        _ => anyhow::bail!(
            "--database-url takes a postgres://… URL, not {}; without it the state is in the \
             data dir's SQLite file",
            redacted(url)
        ),
    }
}

/// Held while a coordinator serves: the one coordinator a data dir's SQLite file, or a Postgres
/// database without `--nats`, may have (replicas share one, docs/SCALING.md). Released when
/// the process ends, however it ends.
pub struct CoordinatorClaim {
    _held: Claim,
    /// Cancelled if the claim is lost for good: another coordinator took the database while
    /// Postgres was away.
    lost: CancellationToken,
}

impl CoordinatorClaim {
    /// Completes if the claim is lost for good; this coordinator must then stop.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }
}

enum Claim {
    /// An exclusive lock on `serve.lock` in the data dir.
    File { _locked: std::fs::File },
    /// A session-level advisory lock, kept by this task's connection (taken again after
    /// Postgres restarts).
    Postgres { _keeper: AbortOnDrop },
    /// One of several replicas: they share the database.
    Replica,
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The advisory lock id a Postgres coordinator holds ("PRLX").
const COORDINATOR_LOCK: i64 = 0x5052_4c58;
/// How often the connection holding the claim is checked.
const CLAIM_CHECK: Duration = Duration::from_secs(2);

/// Claims the data dir's (or the database's) one coordinator, or says who has it. Replicas
/// (`--nats`) share a Postgres database and claim nothing; SQLite serves one process.
pub async fn claim_coordinator(
    data_dir: &Path,
    database_url: Option<&str>,
    nats_url: Option<&str>,
) -> anyhow::Result<CoordinatorClaim> {
    let lost = CancellationToken::new();
    let held = match (database_url, nats_url) {
        (Some(url), Some(_)) => {
            postgres_url(url)?;
            Claim::Replica
        }
        (None, Some(_)) => anyhow::bail!(
            "--nats is for replicas, which share a Postgres database (--database-url \
             postgres://…); the data dir's SQLite file serves one coordinator"
        ),
        (Some(url), None) => {
            let url = postgres_url(url)?;
            let connection = match claim_database(url).await? {
                Some(connection) => connection,
                None => anyhow::bail!(
                    "another coordinator is already serving from {}: to serve it with \
                     several, start each as a replica, with --nats (docs/SCALING.md)",
                    redacted(url)
                ),
            };
            let keeper = tokio::spawn(keep_claim(connection, url.to_string(), lost.clone()));
            Claim::Postgres {
                _keeper: AbortOnDrop(keeper),
            }
        }
        (None, None) => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating the data dir {}", data_dir.display()))?;
            let path = data_dir.join("serve.lock");
            let file = std::fs::File::create(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            if file.try_lock().is_err() {
                anyhow::bail!(
                    "another `parallax serve` is already using the data dir {}: its SQLite \
                     file serves one coordinator",
                    data_dir.display()
                );
            }
            Claim::File { _locked: file }
        }
    };
    Ok(CoordinatorClaim { _held: held, lost })
}

/// A connection holding the database's coordinator lock, or `None` if another one holds it.
async fn claim_database(url: &str) -> anyhow::Result<Option<sqlx::PgConnection>> {
    use sqlx::Connection;

    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .with_context(|| format!("connecting to {}", redacted(url)))?;
    let claimed: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(COORDINATOR_LOCK)
        .fetch_one(&mut connection)
        .await
        .context("claiming the database")?;
    Ok(claimed.then_some(connection))
}

/// Keeps the lock: a connection Postgres dropped (it restarted) took the lock with it, so it is
/// taken again as soon as Postgres answers; if another coordinator has it by then, `lost`.
async fn keep_claim(mut connection: sqlx::PgConnection, url: String, lost: CancellationToken) {
    loop {
        tokio::time::sleep(CLAIM_CHECK).await;
        if sqlx::query("SELECT 1")
            .execute(&mut connection)
            .await
            .is_ok()
        {
            continue;
        }
        tracing::warn!("the connection holding the database claim broke: taking it again");
        connection = loop {
            match claim_database(&url).await {
                Ok(Some(connection)) => break connection,
                Ok(None) => {
                    tracing::error!(
                        "another coordinator took the database while it was away: stopping"
                    );
                    lost.cancel();
                    return;
                }
                Err(_) => tokio::time::sleep(CLAIM_CHECK / 4).await,
            }
        };
        tracing::info!("the database claim is held again");
    }
}

/// GPU memory an in-process thumbnail renderer (tests') keeps for models besides the one it
/// draws: none, as each is drawn once (thumbnails are kept on disk).
const THUMBNAIL_GPU_CACHE_BYTES: u64 = 0;

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
    /// A bearer token `/metrics` requires; `None` serves it to anyone who reaches the address.
    pub metrics_token: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (`--trusted-proxy`).
    pub trusted_proxies: Vec<crate::tls::scope::Permit>,
    /// The limits and settings of model conversions.
    pub conversion: ConversionArgs,
    /// The storage containers' root; `None`: `storage/` in the data dir.
    pub storage_root: Option<PathBuf>,
    /// Postgres instead of the data dir's SQLite file (`--database-url`).
    pub database_url: Option<String>,
    /// Whether a stop leaves the local render hosts to the next coordinator (`--on-stop`).
    pub on_stop: OnStop,
    /// Serve as a replica, with the others reached through this NATS server (`--nats*`).
    pub nats: Option<NatsOptions>,
    /// HTTPS, and with which certificate.
    pub tls: TlsSetup,
    /// What each account may hold at once (`--account-*`).
    pub quotas: QuotaArgs,
}

impl Options {
    /// Defaults, with the web bundle looked for in `site_root`.
    pub fn new(site_root: impl Into<PathBuf>) -> Self {
        Self {
            site_root: site_root.into(),
            pool: PoolArgs::default(),
            clock: Arc::new(SystemClock),
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            hosts: HostMode::Tasks,
            metrics_token: None,
            trusted_proxies: Vec::new(),
            tls: TlsSetup::Off,
            conversion: ConversionArgs::default(),
            storage_root: None,
            database_url: None,
            on_stop: OnStop::StopHosts,
            nats: None,
            quotas: QuotaArgs::default(),
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
            metrics_token,
            trusted_proxies,
            tls,
            conversion,
            storage_root,
            database_url: _,
            on_stop,
            nats,
            quotas,
        } = options;
        let quotas = Quotas::new(quotas.clone());
        let tls = Tls::open(data_dir, tls).context("setting up TLS")?;
        let store = open_store(data_dir, options.database_url.as_deref()).await?;
        let shutdown = CancellationToken::new();
        let tokens = Tokens::load(&store, clock.clone()).await?;
        tokio::spawn(
            tokens
                .clone()
                .follow_revocations(store.clone(), shutdown.clone()),
        );
        let host_credentials = HostCredentials::load(&store).await?;
        let tickets = RenderTickets::load(&store).await?;
        tokio::spawn(
            host_credentials
                .clone()
                .follow_revocations(shutdown.clone()),
        );
        let metrics = Arc::new(Metrics::default());
        let replication = match nats {
            Some(nats) => Some(Arc::new(
                Replication::connect(nats, &store, metrics.nats_rejected()).await?,
            )),
            None => None,
        };
        let sessions = Sessions::start(
            store.clone(),
            replication.clone(),
            pool.pool(),
            pool.poll_interval(),
            pool.host_return_grace(),
            clock.clone(),
            Launcher::new(
                hosts.clone(),
                host_credentials.clone(),
                pool.host_return_grace(),
            ),
            quotas.sessions(),
            shutdown.clone(),
        )
        .await
        .context("restoring render sessions")?;
        // Where the coordinator's own binary is, uploads are converted by it in a child process;
        // tests' coordinators convert them on a render thread of their own.
        let converter = match hosts {
            HostMode::Processes(exe) => Converter::child(exe.clone(), conversion.clone()),
            HostMode::Tasks => Converter::InProcess(
                RenderWorker::start_lazy(THUMBNAIL_GPU_CACHE_BYTES),
                conversion.tessellation(),
            ),
            #[cfg(feature = "kubernetes")]
            HostMode::Kubernetes(_) => Converter::child(
                std::env::current_exe().context("finding this executable to convert models")?,
                conversion.clone(),
            ),
        };
        let catalog = Arc::new(
            Catalog::open(
                data_dir,
                store.clone(),
                converter,
                quotas.clone(),
                replication.is_some(),
            )
            .await
            .context("opening the model catalog")?,
        );
        catalog
            .resume_conversions()
            .await
            .context("resuming model conversions")?;
        catalog.sweep_conversions();
        let storage_root = storage_root
            .clone()
            .unwrap_or_else(|| data_dir.join("storage"));
        let storage = Storage::open(&storage_root)
            .with_context(|| format!("opening the storage root {}", storage_root.display()))?;
        let conversions = Conversions::new(
            store.clone(),
            catalog.clone(),
            storage,
            clock.clone(),
            *max_upload_bytes,
        );
        conversions
            .resume()
            .await
            .context("resuming ARR conversions")?;
        let spaces = Spaces::open(
            store.clone(),
            clock.clone(),
            sessions.clone(),
            catalog.clone(),
            replication,
            quotas.clone(),
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
            conversions,
            max_upload_bytes: *max_upload_bytes,
            standard_polygon_budget: pool.standard_polygon_budget,
            sessions,
            spaces,
            tokens,
            tickets,
            on_stop: *on_stop,
            host_credentials,
            metrics_token: metrics_token.clone(),
            metrics,
            join_attempts: Arc::new(JoinAttempts::new(trusted_proxies.clone())),
            leptos,
            shutdown,
            tls,
            quotas,
        })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Samples the pool for its last hour every [`INTERVAL`] until `shutdown`.
    pub(crate) fn start_sampling(&self, shutdown: CancellationToken) {
        let (metrics, sessions) = (self.metrics.clone(), self.sessions.clone());
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(INTERVAL);
            ticks.tick().await; // The first tick is now; the first sample ends the first interval.
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        metrics.history.take_sample(sessions.now(), sessions.pool_status());
                    }
                    () = shutdown.cancelled() => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let shown =
            redacted("postgres://parallax:s3cret@db.local:5432/parallax?sslmode=verify-full");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.starts_with("postgres://parallax:"), "{shown}");
        assert!(
            shown.ends_with("@db.local:5432/parallax?sslmode=verify-full"),
            "{shown}"
        );
        assert_eq!(
            redacted("postgres://parallax@db.local/parallax"),
            "postgres://parallax@db.local/parallax"
        );
        assert!(!redacted("not a url with s3cret").contains("s3cret"));
    }

    #[test]
    fn only_a_postgres_url_is_taken_for_the_database() {
        assert!(postgres_url("postgres://parallax@db/parallax").is_ok());
        assert!(postgres_url("postgresql://parallax@db/parallax").is_ok());
        let refused = postgres_url("sqlite:///tmp/x.db").unwrap_err().to_string();
        assert!(refused.contains("takes a postgres://"), "{refused}");
        assert!(postgres_url("mysql://root:pw@db/x").is_err());
    }
}
