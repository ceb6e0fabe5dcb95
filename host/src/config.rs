//! How a render host is told what to do: the command line of `parallax render-host` and of the
//! one-shot `parallax render`, and the settings one host runs with.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use parallax_core::pool::HostId;
use parallax_core::session::SessionSize;

use crate::tls::CertFiles;

const MIB: u64 = 1024 * 1024;
/// Memory a host keeps for meshes by default, in MiB.
pub const DEFAULT_MESH_CACHE_MB: u64 = 512;
/// GPU memory a render thread keeps for uploaded models by default, in MiB.
pub const DEFAULT_GPU_CACHE_MB: u64 = 1024;
/// Seconds a host keeps its device while its coordinator is away, by default.
pub const DEFAULT_COORDINATOR_WAIT_S: u64 = 60;

#[derive(Debug, Clone, Args)]
pub struct RenderHostArgs {
    /// The coordinator's host endpoint, e.g. wss://showroom.local:3000/v1/hosts/ws (a bare
    /// wss://host:port gets the path added). Replicas without a load balancer in front: each
    /// one's, comma-separated; a lost link is tried again with the next.
    #[arg(
        long,
        env = "PARALLAX_COORDINATOR",
        value_delimiter = ',',
        required = true
    )]
    pub coordinator: Vec<String>,
    /// The certificate authorities to trust for a wss:// coordinator, as PEM: its `/ca.crt`, or
    /// the system's bundle for a publicly issued certificate.
    #[arg(long, env = "PARALLAX_CA")]
    pub ca: Option<PathBuf>,
    /// The certificate chain (PEM) devices' render connections are served with, for
    /// --advertise; reloaded when the file changes. Without it, linked to a wss:// coordinator,
    /// the host serves one the coordinator issues when it registers; else plain ws://.
    #[arg(long, env = "PARALLAX_HOST_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PARALLAX_HOST_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Which sessions this host serves.
    #[arg(long, value_parser = parse_session_size)]
    pub size: SessionSize,
    /// A file holding this host's credential (`parallax host add NAME` prints it), readable by
    /// the host's user only. Or put the credential itself in PARALLAX_HOST_CREDENTIAL; never on
    /// the command line, which every user of the machine can read.
    #[arg(long, env = "PARALLAX_HOST_CREDENTIAL_FILE")]
    pub credential_file: Option<PathBuf>,
    /// Where devices' render connections are accepted.
    #[arg(long, env = "PARALLAX_HOST_LISTEN", default_value = "0.0.0.0:0")]
    pub listen: SocketAddr,
    /// Host name or IP devices reach this host at (default: the listen address).
    #[arg(long, env = "PARALLAX_HOST_ADVERTISE")]
    pub advertise: Option<String>,
    /// The port devices reach this host at, when it is not the listen port: a port a router or
    /// a Kubernetes `hostPort` forwards to it.
    #[arg(long, env = "PARALLAX_HOST_ADVERTISE_PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub advertise_port: Option<u16>,
    /// Most frames per second sent to the device.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub target_fps: u32,
    /// H.264 bitrate of each device's frames, in bits per second (e.g. 4000000). Default: it
    /// follows the frame size, about 0.1 bit per pixel per frame at the target fps.
    #[arg(
        long,
        env = "PARALLAX_HOST_BITRATE",
        value_parser = clap::value_parser!(u32).range(100_000..=100_000_000)
    )]
    pub bitrate: Option<u32>,
    /// Memory for meshes fetched from the coordinator, in MiB; the least recently used go first.
    #[arg(long, env = "PARALLAX_HOST_MESH_CACHE_MB", default_value_t = DEFAULT_MESH_CACHE_MB)]
    pub mesh_cache_mb: u64,
    /// GPU memory for uploaded models, in MiB; the least recently drawn go first.
    #[arg(long, env = "PARALLAX_HOST_GPU_CACHE_MB", default_value_t = DEFAULT_GPU_CACHE_MB)]
    pub gpu_cache_mb: u64,
    /// The name the coordinator gave a host it started.
    #[arg(long, hide = true)]
    pub host_id: Option<String>,
    /// Started by a coordinator: leave when it lets us go, or when it has been away longer than
    /// --coordinator-wait, rather than waiting for it for ever.
    #[arg(long, hide = true)]
    pub local: bool,
    /// Seconds the device keeps its render connection while the coordinator is away (a restart,
    /// a crash): the host links again as soon as it can, under the same name, and its session
    /// goes on. After that the device is let go (and a --local host exits).
    #[arg(long, env = "PARALLAX_HOST_COORDINATOR_WAIT", default_value_t = DEFAULT_COORDINATOR_WAIT_S)]
    pub coordinator_wait: u64,
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

/// How to run one host.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The coordinators' host endpoints, `ws(s)://…/v1/hosts/ws`: one, or each replica's.
    pub coordinators: Vec<String>,
    /// The CA file a `wss://` coordinator is verified with.
    pub ca: Option<PathBuf>,
    /// The certificate render connections are served with (`wss://`); plain `ws://` without.
    pub tls: Option<CertFiles>,
    pub size: SessionSize,
    /// What the host registers and fetches meshes with: `NAME.SECRET`, its own.
    pub credential: String,
    /// The name the coordinator gave a host it started; `None` to offer ourselves.
    pub host: Option<HostId>,
    /// Where the render connection listens.
    pub listen: SocketAddr,
    /// Host name or IP devices use to reach us; defaults to the listen address.
    pub advertise: Option<String>,
    /// The port devices use to reach us; defaults to the listen port.
    pub advertise_port: Option<u16>,
    /// Started by a coordinator: exit when it lets us go, or after `coordinator_wait` without it.
    pub local: bool,
    /// How long the device keeps its render connection while the coordinator is away.
    pub coordinator_wait: std::time::Duration,
    /// Most frames per second sent to a device.
    pub target_fps: u32,
    /// A fixed H.264 bitrate (bits/s) instead of one that follows the frame size.
    pub bitrate: Option<u32>,
    /// Bytes of meshes kept in memory.
    pub mesh_cache_bytes: u64,
    /// Bytes of GPU buffers kept for uploaded models.
    pub gpu_cache_bytes: u64,
}

impl HostConfig {
    /// The bytes of `mib` MiB.
    pub fn mib(mib: u64) -> u64 {
        mib.saturating_mul(MIB)
    }
}

/// The environment variable a host's credential may be given in.
pub const CREDENTIAL_ENV: &str = "PARALLAX_HOST_CREDENTIAL";

impl TryFrom<RenderHostArgs> for HostConfig {
    type Error = anyhow::Error;

    /// Reads the credential from `--credential-file` or [`CREDENTIAL_ENV`].
    fn try_from(args: RenderHostArgs) -> anyhow::Result<Self> {
        use anyhow::Context;
        let credential = match (&args.credential_file, std::env::var(CREDENTIAL_ENV)) {
            (Some(file), _) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the host credential in {}", file.display()))?,
            (None, Ok(credential)) => credential,
            (None, Err(_)) => anyhow::bail!(
                "a render host needs its credential: --credential-file FILE or {CREDENTIAL_ENV} \
                 (the coordinator's `parallax host add NAME` prints one)"
            ),
        };
        let credential = credential.trim().to_string();
        let coordinators = args
            .coordinator
            .iter()
            .map(|url| {
                let base = url.trim().trim_end_matches('/');
                if base.ends_with("/v1/hosts/ws") {
                    base.to_string()
                } else {
                    format!("{base}/v1/hosts/ws")
                }
            })
            .collect();
        Ok(Self {
            coordinators,
            ca: args.ca,
            tls: args
                .tls_cert
                .zip(args.tls_key)
                .map(|(cert, key)| CertFiles { cert, key }),
            size: args.size,
            credential,
            host: args.host_id.map(HostId::new),
            listen: args.listen,
            advertise: args.advertise,
            advertise_port: args.advertise_port,
            local: args.local,
            coordinator_wait: std::time::Duration::from_secs(args.coordinator_wait),
            target_fps: args.target_fps,
            bitrate: args.bitrate,
            mesh_cache_bytes: Self::mib(args.mesh_cache_mb),
            gpu_cache_bytes: Self::mib(args.gpu_cache_mb),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: RenderHostArgs,
    }

    fn parse(more: &[&str]) -> Result<RenderHostArgs, clap::Error> {
        let base = [
            "render-host",
            "--coordinator",
            "wss://c:3000",
            "--size",
            "standard",
        ];
        Cli::try_parse_from(base.iter().chain(more)).map(|cli| cli.args)
    }

    #[test]
    fn a_host_sends_at_most_60_frames_a_second_unless_told_otherwise() {
        assert_eq!(parse(&[]).unwrap().target_fps, 60);
        assert_eq!(parse(&["--target-fps", "90"]).unwrap().target_fps, 90);
        assert!(parse(&["--target-fps", "0"]).is_err());
        assert!(parse(&["--target-fps", "241"]).is_err());
    }
}
