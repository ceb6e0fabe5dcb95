//! What the rest of the coordinator stands on, depending on nothing of it: the store (SQLite or Postgres), the
//! clock, and the error every request path returns.

pub mod clock;
pub mod error;
pub mod store;
#[cfg(test)]
mod store_tests;
