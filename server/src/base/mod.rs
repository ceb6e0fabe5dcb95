//! What the rest of the coordinator stands on, depending on nothing of it: the SQLite store, the
//! clock, and the error every request path returns.

pub mod clock;
pub mod error;
pub mod store;
