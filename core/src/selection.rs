//! What a space shows, and how followers tell new updates from stale or repeated ones.

use serde::{Deserialize, Serialize};

use crate::catalog::ModelId;

/// Bumped on every change to a space; followers use it to drop duplicates and stale updates
/// (MPSD's shoulder taps carry it for the same reason).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ChangeNumber(pub u64);

impl ChangeNumber {
    pub fn next(self) -> Self {
        Self(self.0 + 1)
    }
}

/// The model a space shows. Only real changes bump the change number, so a tablet that taps
/// "Show" twice does not make every headset reload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    model: Option<ModelId>,
    change: ChangeNumber,
}

impl Selection {
    /// Restores a selection as it was stored.
    pub fn restore(model: Option<ModelId>, change: ChangeNumber) -> Self {
        Self { model, change }
    }

    pub fn model(&self) -> Option<&ModelId> {
        self.model.as_ref()
    }

    pub fn change(&self) -> ChangeNumber {
        self.change
    }

    /// Selects `model`. Returns the new change number, or `None` if it was already selected.
    pub fn handle_select(&mut self, model: ModelId) -> Option<ChangeNumber> {
        if self.model.as_ref() == Some(&model) {
            return None;
        }
        self.model = Some(model);
        self.change = self.change.next();
        Some(self.change)
    }
}

/// A follower's memory of the newest change it has applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Follower {
    seen: Option<ChangeNumber>,
}

impl Follower {
    /// True if an update carrying `change` is new and should be applied; duplicates and updates
    /// older than one already applied are dropped.
    pub fn handle_update(&mut self, change: ChangeNumber) -> bool {
        if self.seen.is_some_and(|seen| change <= seen) {
            return false;
        }
        self.seen = Some(change);
        true
    }

    pub fn seen(&self) -> Option<ChangeNumber> {
        self.seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_new_model_bumps_the_change_number() {
        let mut selection = Selection::default();
        assert_eq!(selection.model(), None);
        assert_eq!(
            selection.handle_select(ModelId::new("gear")),
            Some(ChangeNumber(1))
        );
        assert_eq!(
            selection.handle_select(ModelId::new("bracket")),
            Some(ChangeNumber(2))
        );
        assert_eq!(selection.model(), Some(&ModelId::new("bracket")));
    }

    #[test]
    fn selecting_the_shown_model_again_changes_nothing() {
        let mut selection = Selection::restore(Some(ModelId::new("gear")), ChangeNumber(5));
        assert_eq!(selection.handle_select(ModelId::new("gear")), None);
        assert_eq!(selection.change(), ChangeNumber(5));
    }

    #[test]
    fn followers_drop_duplicates_and_stale_updates() {
        let mut follower = Follower::default();
        assert!(follower.handle_update(ChangeNumber(0)));
        assert!(follower.handle_update(ChangeNumber(2)));
        assert!(!follower.handle_update(ChangeNumber(2)), "duplicate");
        assert!(
            !follower.handle_update(ChangeNumber(1)),
            "stale, arrived late"
        );
        assert!(follower.handle_update(ChangeNumber(3)));
        assert_eq!(follower.seen(), Some(ChangeNumber(3)));
    }
}
