//! `parallax-core` is the part of Parallax that has no IO: the wire protocol that the server, the
//! browser and native headsets share, and the state machines that decide what a message means.
//!
//! Nothing here reads a clock, touches a socket or a database; the same code compiles to
//! `wasm32-unknown-unknown` so the browser speaks exactly the protocol the server does.
//!
//! # Layout
//! - [`api`]: the HTTP API's requests and answers, as the server sends them and the app reads
//!   them (and, with the feature `openapi`, as the OpenAPI document states them).
//! - [`protocol`]: close codes, the hello timeout and the binary frame header every socket shares.
//! - [`device`]: the exclusive render connection between one device and its session's host.
//! - [`host`]: a render host process and its coordinator: registration, heartbeats, admission.
//! - [`space`]: a shared space after Xbox MPSD: constants, properties, members, timeouts,
//!   the arbiter and the change number.
//! - [`space_protocol`]: the space WebSocket's messages.
//! - [`reproject`]: planar late-stage reprojection of a streamed frame to where an eye is now.
//! - [`room`]: one room for a space's headsets: the model's placement in it, and each headset's
//!   alignment to it from two touched marks and gravity.
//! - [`reliable`]: per-member sequence numbers, acks and resume (WCF reliable sessions).
//! - [`change`]: the change number every space write bumps.
//! - [`catalog`]: what a client is told about a model.
//! - [`session`]: one render session (ARR's lease of a render host) and its lifecycle.
//! - [`service`]: every session and the pool together; what the session REST API drives.
//! - [`pool`]: render hosts per size: capacity, warm standby, exclusive leases, FIFO queue.
//! - [`throttle`]: the per-caller, per-session polling limit (429).
//! - [`fair`]: a queue that serves its keys (accounts) in turn.
//! - [`time`]: wall-clock instants as the caller supplies them.
//! - `trust` (feature `tls`, native clients only): the certificate authorities a client trusts.

pub mod api;
pub mod catalog;
pub mod change;
pub mod device;
pub mod fair;
pub mod host;
pub mod pool;
pub mod protocol;
pub mod reliable;
pub mod reproject;
pub mod review;
pub mod room;
pub mod service;
pub mod session;
pub mod space;
pub mod space_protocol;
pub mod throttle;
pub mod time;
#[cfg(feature = "tls")]
pub mod trust;
pub mod whole;
pub mod yuv;

pub use catalog::{ModelId, ModelSummary};
pub use change::ChangeNumber;
pub use protocol::FrameHeader;
