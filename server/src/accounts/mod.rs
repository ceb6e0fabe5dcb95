//! Who may call: accounts and their keys, the host secret, the access tokens a key is traded for
//! (signed with HS256), and how often guests may try a join code.

pub mod guests;
pub mod hs256;
pub mod keys;
pub mod tokens;
