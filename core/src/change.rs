//! The change number every space write bumps.

use serde::{Deserialize, Serialize};

/// Bumped on every change to a space; followers use it to drop duplicates and stale updates
/// (MPSD's shoulder taps carry it for the same reason).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeNumber(pub u64);

impl ChangeNumber {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}
