//! The server's one source of time; the core only ever gets instants from here.

use std::time::{SystemTime, UNIX_EPOCH};

use parallax_core::time::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The machine's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_millis(since_epoch.as_millis() as u64)
    }
}

/// A clock that only moves when told to: for tests and simulations that need hours to pass in
/// milliseconds.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    pub fn starting_at(at: Timestamp) -> Self {
        Self {
            now: std::sync::atomic::AtomicU64::new(at.as_millis()),
        }
    }

    pub fn advance(&self, by: std::time::Duration) {
        self.now
            .fetch_add(by.as_millis() as u64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// RFC 3339 text for an instant, as ARR's `creationTime`.
pub fn rfc3339(at: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.as_millis()) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Parses RFC 3339 text into an instant.
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    // Before 1970 there is nothing to find: such a time reads as the epoch; after 9999 (which
    // an offset can reach from 9999-12-31) as the last instant an RFC 3339 time can name.
    const LAST: i128 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let millis = (parsed.unix_timestamp_nanos() / 1_000_000).clamp(0, LAST);
    u64::try_from(millis).ok().map(Timestamp::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip_through_rfc3339() {
        let at = Timestamp::from_millis(1_763_719_200_123);
        assert_eq!(rfc3339(at), "2025-11-21T10:00:00.123Z");
        assert_eq!(parse_rfc3339("2025-11-21T10:00:00.123Z"), Some(at));
        assert_eq!(parse_rfc3339("2025-11-21T11:00:00.123+01:00"), Some(at));
        assert_eq!(parse_rfc3339("yesterday"), None);
        assert_eq!(
            parse_rfc3339("1969-12-31t23:00:00z"),
            Some(Timestamp::from_millis(0)),
            "lower case, as RFC 3339 allows; before the epoch reads as it"
        );
        let last = parse_rfc3339("9999-12-31T23:59:59-01:00").expect("a time");
        assert_eq!(
            rfc3339(last),
            "9999-12-31T23:59:59.999Z",
            "past 9999 reads as its end"
        );
    }
}
