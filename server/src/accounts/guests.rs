//! How often guests may try a space's join code, per network address.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::base::error::AppError;

/// Guest joins each address may try: a burst of this many, then one per [`JOIN_PERIOD`].
const JOIN_BURST: NonZeroU32 = NonZeroU32::new(20).unwrap();
const JOIN_PERIOD: Duration = Duration::from_secs(6);
/// Addresses remembered before the ones whose allowance is full again are forgotten.
const JOIN_KEYS: usize = 4096;

/// How often each network address may try a join code. A code has six digits: unlimited, a
/// script finds a room's code in minutes; at 10 a minute, one address needs weeks on average.
/// Behind a reverse proxy every guest shares the proxy's address (and this allowance).
pub struct JoinAttempts(DefaultKeyedRateLimiter<IpAddr>);

impl Default for JoinAttempts {
    fn default() -> Self {
        let quota = Quota::with_period(JOIN_PERIOD)
            .expect("the period is not zero")
            .allow_burst(JOIN_BURST);
        Self(RateLimiter::keyed(quota))
    }
}

impl JoinAttempts {
    /// Counts one attempt from `address`; 429 with `Retry-After` when it has none left.
    pub fn admit(&self, address: IpAddr) -> Result<(), AppError> {
        if self.0.len() > JOIN_KEYS {
            self.0.retain_recent();
        }
        self.0
            .check_key(&address)
            .map_err(|not_until| AppError::TooManyRequests {
                what: "too many join attempts from this address",
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}
