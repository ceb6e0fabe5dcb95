//! What one account may hold at once, so that no account (or a crowd of guests in its spaces)
//! takes what the others need: render sessions (its guests' headsets count against the space's
//! owner), spaces, uploads in flight, conversions not yet ended, and bytes of uploads stored.
//! Each has a default the operator can change (`--account-*`, 0 for no limit).
//!
//! Over a limit the caller gets ARR's error body with code `QuotaExceeded` and the flag that
//! sets it as `target`: 429 for what frees itself (a session ends, an upload or a conversion
//! finishes), 403 for what only the account can free (a space to close, models to delete).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use clap::Args;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::base::error::AppError;
use crate::base::store::Store;

/// Uploads the coordinator receives at once, from every account together: each holds a file
/// handle and a converter's turn, not its bytes, but a flood of them still costs disk and time.
const UPLOADS_AT_ONCE: usize = 8;

/// How soon a caller turned away because every upload slot is taken should try again.
const UPLOAD_RETRY: Duration = Duration::from_secs(5);

/// The quotas each account has (`0`: no limit).
#[derive(Debug, Clone, Args)]
pub struct QuotaArgs {
    /// Render sessions one account may hold at once, its guests' headsets included.
    #[arg(
        long = "account-sessions",
        env = "PARALLAX_ACCOUNT_SESSIONS",
        default_value_t = 8
    )]
    pub sessions: usize,
    /// Spaces one account may have open at once.
    #[arg(
        long = "account-spaces",
        env = "PARALLAX_ACCOUNT_SPACES",
        default_value_t = 20
    )]
    pub spaces: usize,
    /// Uploads one account may send at once.
    #[arg(
        long = "account-uploads",
        env = "PARALLAX_ACCOUNT_UPLOADS",
        default_value_t = 2
    )]
    pub uploads: usize,
    /// Conversions one account may have queued or running (ARR conversions and STEP uploads).
    #[arg(
        long = "account-conversions",
        env = "PARALLAX_ACCOUNT_CONVERSIONS",
        default_value_t = 8
    )]
    pub conversions: usize,
    /// MiB of uploaded files one account may keep.
    #[arg(
        long = "account-storage-mb",
        env = "PARALLAX_ACCOUNT_STORAGE_MB",
        default_value_t = 10_240
    )]
    pub storage_mb: u64,
}

impl Default for QuotaArgs {
    fn default() -> Self {
        Self {
            sessions: 8,
            spaces: 20,
            uploads: 2,
            conversions: 8,
            storage_mb: 10_240,
        }
    }
}

/// `limit`, unless it is 0 (no limit).
fn some(limit: usize) -> Option<usize> {
    (limit > 0).then_some(limit)
}

/// The limits, and the uploads each account has in flight.
pub struct Quotas {
    args: QuotaArgs,
    uploads: Mutex<HashMap<String, usize>>,
    upload_slots: Arc<Semaphore>,
    /// Per account, the bytes and conversions a check let through that are not in the database
    /// yet (an upload converting, a conversion being stored): later checks count them too.
    reserved: Arc<Mutex<HashMap<String, (u64, usize)>>>,
    /// One catalog check at a time, so two never pass on the same room.
    checking: tokio::sync::Mutex<()>,
}

impl Quotas {
    pub fn new(args: QuotaArgs) -> Arc<Self> {
        Arc::new(Self {
            args,
            uploads: Mutex::default(),
            upload_slots: Arc::new(Semaphore::new(UPLOADS_AT_ONCE)),
            reserved: Arc::default(),
            checking: tokio::sync::Mutex::new(()),
        })
    }

    /// Render sessions an account may hold at once.
    pub fn sessions(&self) -> Option<usize> {
        some(self.args.sessions)
    }

    /// Refuses a new space to an account that has `open` already (403).
    pub fn check_spaces(&self, account: &str, open: usize) -> Result<(), AppError> {
        match some(self.args.spaces) {
            Some(limit) if open >= limit => Err(exceeded(
                StatusCode::FORBIDDEN,
                "account-spaces",
                format!(
                    "account {account} has {open} spaces open, the most it may have; close one \
                     (its members leave) before opening another"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A turn to upload for `account`: 429 when it sends as many as it may already, or when the
    /// coordinator receives as many as it can. The turn ends when it is dropped.
    pub fn upload(self: &Arc<Self>, account: &str) -> Result<UploadTurn, AppError> {
        let slot = self.upload_slots.clone().try_acquire_owned().map_err(|_| {
            AppError::TooManyRequests {
                what: "the coordinator is receiving as many uploads as it can",
                retry_after: UPLOAD_RETRY,
            }
        })?;
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let sending = uploads.entry(account.to_string()).or_default();
        if some(self.args.uploads).is_some_and(|limit| *sending >= limit) {
            return Err(exceeded(
                StatusCode::TOO_MANY_REQUESTS,
                "account-uploads",
                format!(
                    "account {account} is sending {sending} uploads already, the most it may at \
                     once; send this one when one of them is done"
                ),
            ));
        }
        *sending += 1;
        Ok(UploadTurn {
            quotas: self.clone(),
            account: account.to_string(),
            _slot: slot,
        })
    }

    /// Reserves `adding` bytes and, if it `converts`, a conversion for `account` until the
    /// reservation is dropped (by then they are in the database); refused when it has as many
    /// conversions not yet ended as it may (429), or when the bytes would take it past its
    /// storage (403). Replicas each keep their own reservations: across replicas, two checks at
    /// one moment can still both pass.
    pub async fn reserve(
        &self,
        store: &Store,
        account: &str,
        adding: u64,
        converts: bool,
    ) -> Result<Reservation, AppError> {
        let _one_at_a_time = self.checking.lock().await;
        let (stored, converting) = store.account_usage(account).await?;
        let (held_bytes, held_conversions) = self
            .reserved
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(account)
            .copied()
            .unwrap_or_default();
        let (stored, converting) = (
            stored.saturating_add(held_bytes),
            converting.saturating_add(held_conversions),
        );
        if converts
            && let Some(limit) = some(self.args.conversions)
            && converting >= limit
        {
            return Err(exceeded(
                StatusCode::TOO_MANY_REQUESTS,
                "account-conversions",
                format!(
                    "account {account} has {converting} conversions queued or running, the most \
                     it may; start this one when one of them has ended"
                ),
            ));
        }
        let limit = self.args.storage_mb.saturating_mul(1024 * 1024);
        if limit > 0 && stored.saturating_add(adding) > limit {
            return Err(exceeded(
                StatusCode::FORBIDDEN,
                "account-storage-mb",
                format!(
                    "account {account} keeps {} MiB of uploads; {} MiB more would pass its {} MiB: \
                     delete models it no longer needs first",
                    stored.div_ceil(1024 * 1024),
                    adding.div_ceil(1024 * 1024),
                    self.args.storage_mb
                ),
            ));
        }
        let conversions = usize::from(converts);
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        let held = reserved.entry(account.to_string()).or_default();
        held.0 += adding;
        held.1 += conversions;
        Ok(Reservation {
            reserved: self.reserved.clone(),
            account: account.to_string(),
            bytes: adding,
            conversions,
        })
    }
}

/// Bytes and a conversion counted against an account before they are in the database.
pub struct Reservation {
    reserved: Arc<Mutex<HashMap<String, (u64, usize)>>>,
    account: String,
    bytes: u64,
    conversions: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut reserved = self.reserved.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = reserved.get_mut(&self.account) {
            held.0 = held.0.saturating_sub(self.bytes);
            held.1 = held.1.saturating_sub(self.conversions);
            if *held == (0, 0) {
                reserved.remove(&self.account);
            }
        }
    }
}

/// An upload under way; dropping it ends it.
pub struct UploadTurn {
    quotas: Arc<Quotas>,
    account: String,
    _slot: OwnedSemaphorePermit,
}

impl Drop for UploadTurn {
    fn drop(&mut self) {
        let mut uploads = self
            .quotas
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(sending) = uploads.get_mut(&self.account) {
            *sending -= 1;
            if *sending == 0 {
                uploads.remove(&self.account);
            }
        }
    }
}

/// An account is over its `limit` (the flag that sets it).
pub fn exceeded(status: StatusCode, limit: &'static str, message: String) -> AppError {
    AppError::Client {
        status,
        code: "QuotaExceeded",
        message,
        target: Some(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_sends_no_more_uploads_at_once_than_it_may() {
        let quotas = Quotas::new(QuotaArgs {
            uploads: 1,
            ..QuotaArgs::default()
        });
        let first = quotas.upload("contoso").unwrap();
        let refused = quotas.upload("contoso").err().unwrap();
        assert_eq!(refused.status_code(), StatusCode::TOO_MANY_REQUESTS);
        assert!(
            refused.to_string().contains("sending 1 uploads"),
            "{refused}"
        );
        // Another account is not held up, and the account may send again once it is done.
        let _other = quotas.upload("fabrikam").unwrap();
        drop(first);
        quotas.upload("contoso").unwrap();
    }

    #[test]
    fn the_coordinator_receives_a_bounded_number_of_uploads() {
        let quotas = Quotas::new(QuotaArgs {
            uploads: 0,
            ..QuotaArgs::default()
        });
        let turns: Vec<_> = (0..UPLOADS_AT_ONCE)
            .map(|_| quotas.upload("contoso").unwrap())
            .collect();
        assert!(matches!(
            quotas.upload("fabrikam"),
            Err(AppError::TooManyRequests { .. })
        ));
        drop(turns);
        quotas.upload("fabrikam").unwrap();
    }

    #[tokio::test]
    async fn what_a_check_let_through_counts_until_it_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("parallax.db")).await.unwrap();
        let quotas = Quotas::new(QuotaArgs {
            storage_mb: 1,
            conversions: 1,
            ..QuotaArgs::default()
        });
        let half = 600 * 1024;
        // Two uploads at once, neither stored yet: the second does not fit beside the first.
        let first = quotas.reserve(&store, "contoso", half, true).await.unwrap();
        let refused = quotas.reserve(&store, "contoso", half, false).await.err();
        assert_eq!(
            refused.map(|e| e.status_code()),
            Some(StatusCode::FORBIDDEN)
        );
        let refused = quotas.reserve(&store, "contoso", 0, true).await.err();
        assert_eq!(
            refused.map(|e| e.status_code()),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        // Another account has its own room.
        quotas
            .reserve(&store, "fabrikam", half, true)
            .await
            .unwrap();
        // Given up (or stored, when the database counts it instead): room again.
        drop(first);
        quotas.reserve(&store, "contoso", half, true).await.unwrap();
    }

    #[test]
    fn a_limit_of_zero_is_no_limit() {
        let quotas = Quotas::new(QuotaArgs {
            spaces: 0,
            ..QuotaArgs::default()
        });
        quotas.check_spaces("contoso", 10_000).unwrap();
        let limited = Quotas::new(QuotaArgs::default());
        let refused = limited.check_spaces("contoso", 20).unwrap_err();
        assert_eq!(refused.status_code(), StatusCode::FORBIDDEN);
    }
}
