//! `parallax-host` is the render host: the process that owns a GPU device and renders a render
//! session's frames for the one device connected to it. It runs beside its coordinator or on a GPU
//! machine of its own, and never depends on the coordinator's code: everything it says to the
//! coordinator is in `parallax_core::host`, everything it says to a device in
//! `parallax_core::device`.
//!
//! The `parallax` binary runs it as `parallax render-host` ([`run`]) and `parallax render`
//! ([`render_file`]); the coordinator uses its render thread ([`RenderWorker`]) for thumbnails
//! and its socket settings ([`net`]) for its own connections.
//!
//! # Layout
//! - [`config`]: the command lines of `render-host` and `render`, and [`HostConfig`].
//! - `serve`: one host as a process — binds, serves render connections, holds the link.
//! - `link`: the WebSocket to the coordinator: register, heartbeat, admissions, resets.
//! - `connection`: a session's exclusive render connection (its `renderUrl`): hello, poses,
//!   models, picks, and a frame for each change, latest wins.
//! - `host`: what the connections and the link share: the device slot, admissions, meshes.
//! - `worker`: the render thread that owns the wgpu device and encodes JPEG and PNG.
//! - `still`: `parallax render`, one image of a model file.
//! - [`ticket`]: render tickets, which open a render connection (Ed25519; hosts only verify).
//! - [`net`]: what every accepted connection has in common (small messages, TCP_NODELAY).
//! - [`tls`]: serving TLS with reloadable certificates, and clients that trust only a given CA.

pub mod config;
mod connection;
mod host;
mod link;
pub mod net;
mod serve;
mod still;
pub mod ticket;
pub mod tls;
mod worker;

pub use config::{HostConfig, RenderArgs, RenderHostArgs, ViewSide};
pub use serve::run;
pub use still::render_file;
pub use worker::{RenderWorker, THUMBNAIL_HEIGHT, THUMBNAIL_WIDTH, release_freed_memory};
