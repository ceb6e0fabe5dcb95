//! Command line and environment configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Run the coordinator: web app, API, WebSockets and render workers.
    Serve(ServeArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARALLAX_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Directory for the SQLite database and stored models; created if missing.
    #[arg(long, env = "PARALLAX_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Directory holding the built web bundle (`pkg/` with the wasm, JS and CSS).
    #[arg(long, env = "PARALLAX_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
}
