//! Who may call: accounts and their keys, the host secret, the access tokens a key is traded for,
//! and how often guests may try a join code.

pub mod guests;
pub mod keys;
pub mod tokens;
