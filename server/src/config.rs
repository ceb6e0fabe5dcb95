//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use parallax_core::pool::{PoolConfig, SizeLimits};
use parallax_host::{RenderArgs, RenderHostArgs};

#[derive(Debug, Parser)]
#[command(
    name = "parallax",
    version,
    about = "Self-hosted coordinator for shared multi-device rendering"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the coordinator: web app, API, WebSockets and render hosts.
    Serve(Box<ServeArgs>),
    /// Manage the accounts that lease render sessions.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Render one image of a model file and exit (the code path of thumbnails and frames).
    Render(RenderArgs),
    /// Run one render host: register with a coordinator and serve render connections.
    RenderHost(RenderHostArgs),
    /// Manage the render hosts that run on other machines: each has a credential of its own.
    #[command(subcommand)]
    Host(HostCommand),
    /// Convert one model for the catalog, as `serve` does for each upload in a child process:
    /// write its mesh in the render hosts' form, its parts and its thumbnail into FOLDER, print
    /// what it found as JSON (exit 3: not a model it can read). Run by hand, only the address
    /// space backstop of --convert-memory-limit-mb applies; `serve` also watches time and memory.
    Convert(ConvertArgs),
    /// Print the HTTP API's OpenAPI 3.1 document (what `/openapi.json` serves), to generate a
    /// client from without a running coordinator.
    Openapi,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The model's folder: its files, and where the results go.
    #[arg(long)]
    pub folder: PathBuf,
    /// The model file in it.
    #[arg(long, conflicts_with = "sample", required_unless_present = "sample")]
    pub file: Option<String>,
    /// A sample's id instead (its thumbnail only).
    #[arg(long)]
    pub sample: Option<String>,
    #[command(flatten)]
    pub conversion: ConversionArgs,
}

/// How models are converted for the catalog: the limits a conversion runs under, and how finely
/// STEP files' curved faces become triangles.
#[derive(Debug, Clone, Args)]
pub struct ConversionArgs {
    /// Longest one conversion may take, in seconds; it is stopped and fails after that.
    #[arg(
        long = "convert-time-limit",
        env = "PARALLAX_CONVERT_TIME_LIMIT_S",
        default_value_t = 300,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub time_limit_s: u64,
    /// Most resident memory one conversion process may hold, in MiB; it is stopped, and the
    /// conversion fails, when it holds more.
    #[arg(
        long = "convert-memory-limit-mb",
        env = "PARALLAX_CONVERT_MEMORY_LIMIT_MB",
        default_value_t = 4096,
        value_parser = clap::value_parser!(u64).range(64..)
    )]
    pub memory_limit_mb: u64,
    /// STEP: the largest distance between a triangle and the surface it stands for, in
    /// millimetres (default: a thousandth of the model's largest side).
    #[arg(long = "step-chordal-deflection", env = "PARALLAX_STEP_CHORDAL_MM", value_parser = positive_mm)]
    pub chordal_mm: Option<f64>,
    /// STEP: the largest angle between neighbouring triangles along a curve, in degrees.
    #[arg(
        long = "step-angular-deflection",
        env = "PARALLAX_STEP_ANGULAR_DEGREES",
        default_value_t = 20.0,
        value_parser = angle_degrees
    )]
    pub angular_degrees: f64,
}

impl ConversionArgs {
    pub fn time_limit(&self) -> Duration {
        Duration::from_secs(self.time_limit_s)
    }

    pub fn tessellation(&self) -> parallax_render::import::Tessellation {
        parallax_render::import::Tessellation {
            chordal: self.chordal_mm,
            angular_degrees: self.angular_degrees,
        }
    }
}

impl Default for ConversionArgs {
    fn default() -> Self {
        Self {
            time_limit_s: 300,
            memory_limit_mb: 4096,
            chordal_mm: None,
            angular_degrees: 20.0,
        }
    }
}

fn positive_mm(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(mm) if mm.is_finite() && mm > 0.0 => Ok(mm),
        _ => Err(format!("{text:?} is not a positive length in millimetres")),
    }
}

fn angle_degrees(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(degrees) if (0.5..=90.0).contains(&degrees) => Ok(degrees),
        _ => Err(format!("{text:?} is not an angle from 0.5 to 90 degrees")),
    }
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its id and key (the key is shown only once).
    Create {
        /// A name for people, e.g. the team or the showroom.
        name: String,
        #[command(flatten)]
        output: AccountOutput,
    },
    /// List every account, revoked ones too.
    List {
        #[command(flatten)]
        output: AccountOutput,
    },
    /// Give an account a new key (shown only once); the old key stops working at once, tokens
    /// already issued with it run out as usual.
    RotateKey {
        /// The account's id.
        id: String,
        #[command(flatten)]
        output: AccountOutput,
    },
    /// Revoke an account: its key and all its tokens stop working, also on a running
    /// coordinator (within seconds). Its sessions, uploads and spaces stay on record.
    Revoke {
        /// The account's id.
        id: String,
        #[command(flatten)]
        output: AccountOutput,
    },
}

#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Add a render host; prints its credential (shown only once) for the host's
    /// --credential-file or PARALLAX_HOST_CREDENTIAL. It registers under this name only.
    Add {
        /// The host's name in the pool: lower-case letters, digits and '-', e.g. gpu-box-1.
        name: String,
        #[command(flatten)]
        output: AccountOutput,
    },
    /// List every host added, revoked ones too.
    List {
        #[command(flatten)]
        output: AccountOutput,
    },
    /// Revoke a host: it can no longer register or fetch models, and a running coordinator
    /// drops its link within seconds (its session ends in Error). Its name stays taken.
    Revoke {
        /// The host's name.
        name: String,
        #[command(flatten)]
        output: AccountOutput,
    },
}

/// Where `parallax account` works, and how it answers.
#[derive(Debug, Clone, Args)]
pub struct AccountOutput {
    #[command(flatten)]
    pub data: DataDir,
    /// Answer in JSON, for scripts.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory for the SQLite database and stored models; created if missing.
    #[arg(long = "data-dir", env = "PARALLAX_DATA_DIR", default_value = "./data")]
    pub path: PathBuf,
    /// Keep the coordinator's state in Postgres instead of the data dir's SQLite file:
    /// postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE (over TLS, add
    /// ?sslmode=verify-full&sslrootcert=CA.pem). Models, TLS files and storage stay in the data dir.
    #[arg(long, env = "PARALLAX_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARALLAX_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    #[command(flatten)]
    pub data: DataDir,
    /// Directory holding the built web bundle (`pkg/` with the wasm, JS and CSS).
    #[arg(long, env = "PARALLAX_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    #[command(flatten)]
    pub pool: PoolArgs,
    #[command(flatten)]
    pub render_hosts: ProvisionArgs,
    #[command(flatten)]
    pub quotas: crate::accounts::quotas::QuotaArgs,
    /// Largest model upload accepted, in MiB.
    #[arg(long, env = "PARALLAX_MAX_UPLOAD_MB", default_value_t = 256)]
    pub max_upload_mb: usize,
    /// Reverse proxies (addresses or blocks, comma-separated) whose `X-Forwarded-For` is
    /// believed: behind them, guests' join attempts are limited per guest, not per proxy.
    #[arg(long = "trusted-proxy", env = "PARALLAX_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_permit)]
    pub trusted_proxies: Vec<crate::tls::scope::Permit>,
    /// A bearer token `/metrics` requires (default: none; it holds counts, no names); it also
    /// reads `/v1/health` in full.
    #[arg(long, env = "PARALLAX_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub conversion: ConversionArgs,
    /// The folder whose subfolders are the storage containers ARR's conversion API reads from
    /// and writes to, as `file:` URLs (default: `storage/` in the data dir).
    #[arg(long, env = "PARALLAX_STORAGE_ROOT")]
    pub storage_root: Option<PathBuf>,
    /// What stopping (SIGTERM, Ctrl-C) does to the local render hosts: `stop-hosts` ends their
    /// sessions; `keep-hosts` leaves them to the next coordinator, for a deploy that keeps every
    /// session (under systemd, with `KillMode=process`).
    #[arg(long, env = "PARALLAX_ON_STOP", value_enum, default_value_t = OnStop::StopHosts)]
    pub on_stop: OnStop,
    /// Serve as one of several replicas sharing the Postgres database of --database-url; they
    /// tell each other of space events through this NATS server (nats://HOST:PORT; a user and
    /// password or a token go in it, nats://USER:PASS@HOST:PORT or nats://TOKEN@HOST:PORT: set
    /// it through the environment to keep them out of `ps`).
    #[arg(long, env = "PARALLAX_NATS_URL", requires = "database_url")]
    pub nats: Option<String>,
    /// The certificate authority (PEM) the NATS server of --nats is verified against; with it,
    /// the connection must be TLS (`tls://HOST:PORT`).
    #[arg(long, env = "PARALLAX_NATS_CA", requires = "nats")]
    pub nats_ca: Option<PathBuf>,
    /// A NATS credentials file (a user's JWT and NKey seed, as `nsc` writes it) to connect with.
    #[arg(
        long,
        env = "PARALLAX_NATS_CREDS",
        requires = "nats",
        conflicts_with = "nats_nkey_file"
    )]
    pub nats_creds: Option<PathBuf>,
    /// A file holding the NKey seed (`SU…`) to connect with.
    #[arg(long, env = "PARALLAX_NATS_NKEY_FILE", requires = "nats")]
    pub nats_nkey_file: Option<PathBuf>,
    /// Connect to a NATS server that lets anyone in (without it, a replica refuses to start on
    /// one: any client could then read every space's events).
    #[arg(long, env = "PARALLAX_NATS_INSECURE", requires = "nats")]
    pub nats_insecure: bool,
}

impl ServeArgs {
    /// How replicas reach their NATS server, if they are replicas.
    pub fn nats(&self) -> Option<NatsOptions> {
        Some(NatsOptions {
            url: self.nats.clone()?,
            ca: self.nats_ca.clone(),
            creds: self.nats_creds.clone(),
            nkey_file: self.nats_nkey_file.clone(),
            insecure: self.nats_insecure,
        })
    }
}

/// How a replica reaches its NATS server (`--nats*`).
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    pub url: String,
    /// The authority its certificate is verified against; TLS is then required.
    pub ca: Option<PathBuf>,
    /// A credentials file (JWT and NKey seed).
    pub creds: Option<PathBuf>,
    /// A file holding an NKey seed.
    pub nkey_file: Option<PathBuf>,
    /// A server that lets anyone in is accepted.
    pub insecure: bool,
}

/// HTTPS: on by default, as headsets' browsers offer WebXR only in a secure context.
#[derive(Debug, Clone, Args)]
pub struct TlsArgs {
    /// `on`: HTTPS (plain http on the port is redirected); `off`: plain HTTP, for a deployment
    /// behind a proxy that terminates TLS.
    #[arg(long = "tls", env = "PARALLAX_TLS", value_enum, default_value_t = TlsMode::On)]
    pub mode: TlsMode,
    /// Your certificate chain (PEM) instead of one from Parallax's own authority; reloaded when
    /// the file changes.
    #[arg(long, env = "PARALLAX_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PARALLAX_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// More names devices reach this machine by (a DNS alias), for the certificate Parallax
    /// issues itself; its host name, localhost and its addresses are always in it.
    #[arg(long = "tls-name", env = "PARALLAX_TLS_NAMES", value_delimiter = ',')]
    pub names: Vec<String>,
    /// Where render hosts on other machines live, for the certificates Parallax's authority
    /// issues them: DNS domains (`hosts.showroom.lan` covers `gpu-1.hosts.showroom.lan`),
    /// addresses or address blocks (`10.0.5.0/24`), comma-separated. The authority may sign
    /// only these and the coordinator's own names; a host asking for any other name gets none.
    #[arg(long = "host-domain", env = "PARALLAX_HOST_DOMAINS", value_delimiter = ',', value_parser = parse_permit)]
    pub host_domains: Vec<crate::tls::scope::Permit>,
}

fn parse_permit(text: &str) -> Result<crate::tls::scope::Permit, String> {
    crate::tls::scope::Permit::parse(text).map_err(|e| e.to_string())
}

/// Where the render hosts the pool asks for run.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// `local`: child processes of this coordinator; `kubernetes`: a pod each, made from
    /// --kube-pod-template (a build with the feature `kubernetes`; docs/SCALING.md).
    #[arg(long, env = "PARALLAX_RENDER_HOSTS", value_enum, default_value_t = RenderHosts::Local)]
    pub render_hosts: RenderHosts,
    /// The namespace of the render host pods (default: the coordinator's own in a cluster, else
    /// the kubeconfig's).
    #[arg(long, env = "PARALLAX_KUBE_NAMESPACE")]
    pub kube_namespace: Option<String>,
    /// The PodTemplate each render host pod is made from.
    #[arg(
        long,
        env = "PARALLAX_KUBE_POD_TEMPLATE",
        default_value = "parallax-render-host"
    )]
    pub kube_pod_template: String,
    /// The `parallax.dev/owner` label of this coordinator's pods (another coordinator in the
    /// namespace needs another).
    #[arg(long, env = "PARALLAX_KUBE_OWNER", default_value = "parallax")]
    pub kube_owner: String,
    /// Seconds a pod may fail to start (unschedulable, image not pulled, crashing) before its
    /// host is given up and its size is reported unavailable.
    #[arg(
        long = "kube-start-limit",
        env = "PARALLAX_KUBE_START_LIMIT",
        default_value_t = 120
    )]
    pub kube_start_limit_s: u64,
    /// Seconds from making a pod to its host registering, at most.
    #[arg(
        long = "kube-boot-limit",
        env = "PARALLAX_KUBE_BOOT_LIMIT",
        default_value_t = 600
    )]
    pub kube_boot_limit_s: u64,
    /// How often the render host pods are listed, in milliseconds.
    #[arg(long, env = "PARALLAX_KUBE_POLL_MS", default_value_t = 2000)]
    pub kube_poll_ms: u64,
    /// Node ports for render connections, `FIRST-LAST` within the cluster's NodePort range
    /// (e.g. 30700-30799): each pod gets one of its own, through a NodePort Service of its own,
    /// and advertises it, so devices outside the cluster reach the host at its node. Without
    /// it, at what the template advertises.
    #[arg(long, env = "PARALLAX_KUBE_NODE_PORTS", value_parser = parse_port_range)]
    pub kube_node_ports: Option<std::ops::RangeInclusive<u16>>,
}

/// `FIRST-LAST` (or one port), ports above 0.
fn parse_port_range(text: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (first, last) = text.split_once('-').unwrap_or((text, text));
    let port = |p: &str| p.trim().parse::<u16>().ok().filter(|&p| p > 0);
    match (port(first), port(last)) {
        (Some(first), Some(last)) if first <= last => Ok(first..=last),
        _ => Err(format!(
            "{text:?} is not a range of ports such as 30700-30799"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RenderHosts {
    #[default]
    Local,
    Kubernetes,
}

/// What a coordinator that stops (SIGTERM, Ctrl-C) does with its local render hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnStop {
    /// Stop them: their sessions end.
    #[default]
    StopHosts,
    /// Leave them running for the next coordinator on the same address and data dir (a deploy):
    /// devices keep their render connections, sessions stay Ready. A host no coordinator
    /// takes back within its wait exits by itself.
    KeepHosts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    On,
    Off,
}

/// Render hosts and the session API's limits.
#[derive(Debug, Clone, Args)]
pub struct PoolArgs {
    /// Most Standard render hosts at once.
    #[arg(
        long = "standard",
        env = "PARALLAX_STANDARD_HOSTS",
        default_value_t = 2
    )]
    pub standard: u32,
    /// Most Premium render hosts at once.
    #[arg(long = "premium", env = "PARALLAX_PREMIUM_HOSTS", default_value_t = 1)]
    pub premium: u32,
    /// Standard hosts kept booted and free, so new sessions are Ready at once.
    #[arg(long, env = "PARALLAX_STANDARD_STANDBY", default_value_t = 1)]
    pub standard_standby: u32,
    /// Premium hosts kept booted and free.
    #[arg(long, env = "PARALLAX_PREMIUM_STANDBY", default_value_t = 0)]
    pub premium_standby: u32,
    /// Shortest interval between two property polls of one session by one caller (0 = no limit).
    #[arg(long, env = "PARALLAX_POLL_INTERVAL_MS", default_value_t = 2000)]
    pub poll_interval_ms: u64,
    /// Most triangles a Standard session may load (Premium has no budget).
    #[arg(
        long,
        env = "PARALLAX_STANDARD_POLYGON_BUDGET",
        default_value_t = 20_000_000
    )]
    pub standard_polygon_budget: u64,
    /// Seconds a restarted coordinator keeps a Ready session whose render host has not linked
    /// again (hosts outlive a coordinator and link again within seconds); then it ends in Error.
    #[arg(
        long = "host-return-grace",
        env = "PARALLAX_HOST_RETURN_GRACE",
        default_value_t = 30
    )]
    pub host_return_grace_s: u64,
}

impl PoolArgs {
    pub fn pool(&self) -> PoolConfig {
        PoolConfig {
            standard: SizeLimits {
                capacity: self.standard,
                standby: self.standard_standby.min(self.standard),
            },
            premium: SizeLimits {
                capacity: self.premium,
                standby: self.premium_standby.min(self.premium),
            },
        }
    }

    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms)
    }

    pub fn host_return_grace(&self) -> Duration {
        Duration::from_secs(self.host_return_grace_s)
    }
}

impl Default for PoolArgs {
    fn default() -> Self {
        Self {
            standard: 2,
            premium: 1,
            standard_standby: 1,
            premium_standby: 0,
            poll_interval_ms: 2000,
            standard_polygon_budget: 20_000_000,
            host_return_grace_s: 30,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port_range;

    #[test]
    fn port_ranges_are_first_to_last_or_refused_with_an_example() {
        assert_eq!(parse_port_range("30700-30799"), Ok(30700..=30799));
        assert_eq!(parse_port_range("7000"), Ok(7000..=7000));
        for wrong in ["7099-7000", "0-10", "7000-70000", "seven", ""] {
            assert!(parse_port_range(wrong).unwrap_err().contains("30700-30799"));
        }
    }
}
