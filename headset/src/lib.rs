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
//! - [`load`]: many simulated headsets in one space, measured (`parallax-headset load`).
//! - `main.rs`: the `parallax-headset` command line.

pub mod load;
pub mod render;
pub mod space;

pub use render::{RenderConnection, RenderEvent};
pub use space::{ClientError, Coordinator, Join, Membership, SpaceConnection, SpaceUpdate};

/// `http://host:port` → `ws://host:port{path}` (and `https` → `wss`).
pub fn socket_url(server: &str, path: &str) -> String {
    let server = server.trim_end_matches('/');
    let base = if let Some(rest) = server.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = server.strip_prefix("http://") {
        format!("ws://{rest}")
    } else if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_string()
    } else {
        format!("ws://{server}")
    };
    format!("{base}{path}")
}

#[cfg(test)]
mod tests {
    use super::socket_url;

    #[test]
    fn server_addresses_become_socket_urls() {
        assert_eq!(
            socket_url("http://127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
        assert_eq!(
            socket_url("https://p.example/", "/v1/x"),
            "wss://p.example/v1/x"
        );
        assert_eq!(
            socket_url("127.0.0.1:3000", "/v1/x"),
            "ws://127.0.0.1:3000/v1/x"
        );
    }
}
