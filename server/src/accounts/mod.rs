//! Who may call: accounts and their keys, render hosts' credentials, the access tokens a key is
//! traded for (signed with HS256), the render tickets that open one session's render
//! connection (Ed25519), and how often guests may try a join code.

pub mod guests;
pub mod hosts;
pub mod hs256;
pub mod keys;
pub mod quotas;
pub mod tickets;
pub mod tokens;
