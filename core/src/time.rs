//! Wall-clock instants as the core sees them: given by the caller, never read here.
//!
//! Leases and the 30-day retention must survive a coordinator restart, so the core counts in
//! wall-clock milliseconds since the Unix epoch rather than in a process-local monotonic clock.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, saturating at the end of time.
    pub fn after(self, duration: Duration) -> Self {
        Self(
            self.0
                .saturating_add(duration.as_millis().min(u128::from(u64::MAX)) as u64),
        )
    }

    /// `self - duration`, saturating at the epoch.
    pub fn before(self, duration: Duration) -> Self {
        Self(
            self.0
                .saturating_sub(duration.as_millis().min(u128::from(u64::MAX)) as u64),
        )
    }

    /// Time from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_instead_of_wrapping() {
        let t = Timestamp(1_000);
        assert_eq!(t.after(Duration::from_secs(2)), Timestamp(3_000));
        assert_eq!(Timestamp(500).since(t), Duration::ZERO);
        assert_eq!(
            Timestamp(u64::MAX).after(Duration::from_secs(1)),
            Timestamp(u64::MAX)
        );
    }

    #[test]
    fn a_timestamp_is_its_milliseconds() {
        assert_eq!(Timestamp::from_millis(42).as_millis(), 42);
    }
}
