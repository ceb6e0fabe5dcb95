//! Render sessions and the pool of render hosts that serve them: the core's session service driven
//! with the clock and the store, and the launcher that starts and supervises local hosts.

#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod launcher;
pub mod sessions;
mod shared;
