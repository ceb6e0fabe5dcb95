//! How often guests may try a space's join code, per network address: an IPv6 /64 counts as one
//! (a device is given a whole /64, and picks any address in it), and behind a proxy the operator
//! trusts (`--trusted-proxy`) the address it forwarded counts, not the proxy's.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::base::error::AppError;
use crate::tls::scope::Permit;

/// Guest joins each address may try: a burst of this many, then one per [`JOIN_PERIOD`].
const JOIN_BURST: NonZeroU32 = NonZeroU32::new(20).unwrap();
const JOIN_PERIOD: Duration = Duration::from_secs(6);
/// Addresses remembered before the ones whose allowance is full again are forgotten.
const JOIN_KEYS: usize = 4096;

/// How often each network address may try a join code (codes have 45 bits: the limit keeps
/// scripts from flooding the coordinator, not from guessing, which is hopeless either way).
pub struct JoinAttempts {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Proxies whose `X-Forwarded-For` is believed.
    trusted_proxies: Vec<Permit>,
}

impl Default for JoinAttempts {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

impl JoinAttempts {
    /// Believing the forwarded address of the proxies in `trusted_proxies`.
    pub fn new(trusted_proxies: Vec<Permit>) -> Self {
        let quota = Quota::with_period(JOIN_PERIOD)
            .expect("the period is not zero")
            .allow_burst(JOIN_BURST);
        Self {
            limiter: RateLimiter::keyed(quota),
            trusted_proxies,
        }
    }

    /// Who a request from `peer` with `forwarded_for` (its `X-Forwarded-For`, if any) counts as:
    /// behind trusted proxies, the nearest address that is not one of them; an IPv6 address as
    /// its /64.
    pub fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        let trusted = |ip: &IpAddr| self.trusted_proxies.iter().any(|proxy| proxy.contains(*ip));
        let mut client = canonical(peer);
        if trusted(&client) {
            // Each proxy appends whom it heard from: read from the right, past our own proxies.
            for hop in forwarded_for.unwrap_or("").rsplit(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        client = canonical(ip);
                        if !trusted(&client) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        match client {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
            v4 => v4,
        }
    }

    /// Counts one attempt from `client` ([`Self::client`]); 429 with `Retry-After` when it has
    /// none left.
    pub fn admit(&self, client: IpAddr) -> Result<(), AppError> {
        if self.limiter.len() > JOIN_KEYS {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&client)
            .map_err(|not_until| AppError::TooManyRequests {
                what: "too many join attempts from this address",
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            })
    }
}

/// An IPv4 address that arrived as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_ipv6_64_is_one_client_and_a_trusted_proxy_forwards_its_guests() {
        let direct = JoinAttempts::default();
        assert_eq!(
            direct.client(ip("2001:db8:1:2:aaaa::1"), None),
            direct.client(ip("2001:db8:1:2:ffff::9"), None)
        );
        assert_ne!(
            direct.client(ip("2001:db8:1:2::1"), None),
            direct.client(ip("2001:db8:1:3::1"), None)
        );
        assert_eq!(direct.client(ip("::ffff:10.0.0.7"), None), ip("10.0.0.7"));
        // Not trusted: what it says it forwards is not believed.
        assert_eq!(
            direct.client(ip("10.0.0.1"), Some("203.0.113.9")),
            ip("10.0.0.1")
        );
        let proxied = JoinAttempts::new(vec![Permit::parse("10.0.0.0/24").unwrap()]);
        assert_eq!(
            proxied.client(ip("10.0.0.1"), Some("198.51.100.4, 203.0.113.9, 10.0.0.2")),
            ip("203.0.113.9"),
            "the nearest address that is not ours"
        );
        assert_eq!(proxied.client(ip("10.0.0.1"), None), ip("10.0.0.1"));
        assert_eq!(
            proxied.client(ip("10.0.0.1"), Some("garbage")),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn each_client_has_its_own_allowance() {
        let attempts = JoinAttempts::default();
        let (one, other) = (ip("192.0.2.1"), ip("192.0.2.2"));
        for _ in 0..JOIN_BURST.get() {
            attempts.admit(one).unwrap();
        }
        assert!(attempts.admit(one).is_err());
        assert!(attempts.admit(other).is_ok());
    }
}
