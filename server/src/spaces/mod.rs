//! Shared spaces: members, their states and timeouts, the arbiter, properties and change numbers
//! (MPSD's model), and the outlet that writes each event into every member's socket in order.

pub mod outlet;
pub mod presence;
pub mod space;
