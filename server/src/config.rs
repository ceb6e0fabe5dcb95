//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use parallax_core::pool::{PoolConfig, SizeLimits};
use parallax_core::session::SessionSize;

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
    Serve(ServeArgs),
    /// Manage the accounts that lease render sessions.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Render one image of a model file and exit (the code path of thumbnails and frames).
    Render(RenderArgs),
    /// Run one render host: register with a coordinator and serve render connections.
    RenderHost(RenderHostArgs),
    /// Print the secret render hosts on other machines register with.
    HostSecret(DataDir),
}

#[derive(Debug, Clone, Args)]
pub struct RenderHostArgs {
    /// The coordinator's host endpoint, e.g. ws://10.0.0.2:3000/v1/hosts/ws (a bare
    /// ws://host:port gets the path added).
    #[arg(long, env = "PARALLAX_COORDINATOR")]
    pub coordinator: String,
    /// Which sessions this host serves.
    #[arg(long, value_parser = parse_session_size)]
    pub size: SessionSize,
    /// The coordinator's host secret (`parallax host-secret` prints it).
    #[arg(long, env = "PARALLAX_HOST_SECRET", hide_env_values = true)]
    pub secret: String,
    /// Where devices' render connections are accepted.
    #[arg(long, env = "PARALLAX_HOST_LISTEN", default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// Host name or IP devices reach this host at (default: the listen address).
    #[arg(long, env = "PARALLAX_HOST_ADVERTISE")]
    pub advertise: Option<String>,
    /// Most frames per second sent to the device.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub target_fps: u32,
    /// The name the coordinator gave a host it started.
    #[arg(long, hide = true)]
    pub host_id: Option<String>,
    /// Started by a coordinator: exit with it rather than waiting for it to come back.
    #[arg(long, hide = true)]
    pub local: bool,
}

fn parse_session_size(text: &str) -> Result<SessionSize, String> {
    text.parse()
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// A .gltf, .glb, .stl or .obj file.
    pub model: PathBuf,
    /// Where to write the image: .png, or .jpg/.jpeg.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Image size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Which side to look from.
    #[arg(long, value_enum, default_value_t = ViewSide::Iso)]
    pub view: ViewSide,
}

/// Where the camera of `parallax render` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ViewSide {
    /// Three-quarter view from above, as a CAD viewer opens a part.
    Iso,
    Front,
    Top,
}

fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size must be WIDTHxHEIGHT, e.g. 1280x720, not {text:?}"))?;
    let side = |s: &str| -> Result<u32, String> {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=parallax_render::renderer::MAX_VIEWPORT_SIDE).contains(n))
            .ok_or_else(|| {
                format!(
                    "each side must be 1 to {} pixels, not {s:?}",
                    parallax_render::renderer::MAX_VIEWPORT_SIDE
                )
            })
    };
    Ok((side(w)?, side(h)?))
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its id and key (the key is shown only once).
    Create {
        /// A name for people, e.g. the team or the showroom.
        name: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Debug, Clone, Args)]
pub struct DataDir {
    /// Directory for the SQLite database and stored models; created if missing.
    #[arg(long = "data-dir", env = "PARALLAX_DATA_DIR", default_value = "./data")]
    pub path: PathBuf,
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
    /// Largest model upload accepted, in MiB.
    #[arg(long, env = "PARALLAX_MAX_UPLOAD_MB", default_value_t = 256)]
    pub max_upload_mb: usize,
    /// The secret render hosts register with (default: one made and kept in the database).
    #[arg(long, env = "PARALLAX_HOST_SECRET", hide_env_values = true)]
    pub host_secret: Option<String>,
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
        }
    }
}
