//! `parallax-headset` is the client a native headset app embeds: it joins a space, follows what
//! the space's tablets select (in order, exactly once, across dropped connections) and renders
//! it on the headset's own render session.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parallax_headset::ClientError> {
//! use parallax_core::space::Role;
//! use parallax_headset::{Coordinator, SpaceUpdate};
//!
//! let coordinator = Coordinator::sign_in("http://127.0.0.1:3000", "ACCOUNT", "KEY").await?;
//! let membership = coordinator.join_space("showroom", "quest-3", Role::Headset, None).await?;
//! let mut space = membership.connect().await?;
//! while let SpaceUpdate::Event { seq, event, .. } = space.next().await? {
//!     println!("{seq}: {event:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`space`]: [`Coordinator`], [`Membership`], [`SpaceConnection`]: spaces with acks and resume.
//! - [`render`]: [`RenderConnection`]: the exclusive render connection (poses, frames, picks).
//! - [`video`]: [`FrameDecoder`]: frames into pictures (H.264 decoded, JPEG as it is).
//! - [`load`]: many simulated headsets in one space, measured (`parallax-headset load`).
//! - `url`: the coordinator's address as a WebSocket URL.
//! - `main.rs`: the `parallax-headset` command line.

pub mod load;
pub mod render;
pub mod space;
mod url;
pub mod video;

pub use parallax_core::trust::Trust;
pub use render::{RenderConnection, RenderEvent};
pub use space::{
    ClientError, Coordinator, Join, Membership, SpaceConnection, SpaceUpdate, connect_socket,
    http_client,
};
pub use url::socket_url;
pub use video::{FrameDecoder, Picture};
