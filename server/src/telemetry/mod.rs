//! What the coordinator measures as it runs: the Prometheus metrics and the last hour of the pool
//! for the operator's charts.

pub mod history;
pub mod metrics;
