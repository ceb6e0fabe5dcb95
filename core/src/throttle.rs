//! ARR asks clients to poll a session's properties no more than every few seconds and answers
//! 429 to faster ones. The rule is per caller and session: a second device polling the same
//! session, or the first poll after a create, is never punished.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use crate::time::Timestamp;

/// Entries older than the interval are forgotten once the table grows past this.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug)]
pub struct PollThrottle<K> {
    interval: Duration,
    last: HashMap<K, Timestamp>,
}

impl<K: Eq + Hash> PollThrottle<K> {
    /// Allows one poll per `interval` per key; a zero interval allows everything.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// Records a poll by `key` at `now`. `Err(wait)` says how long until the next is allowed;
    /// a refused poll does not restart the wait.
    pub fn handle_poll(&mut self, key: K, now: Timestamp) -> Result<(), Duration> {
        if self.interval.is_zero() {
            return Ok(());
        }
        if let Some(&previous) = self.last.get(&key) {
            let next_allowed = previous.after(self.interval);
            if now < next_allowed {
                return Err(next_allowed.since(now));
            }
        }
        if self.last.len() >= SWEEP_ABOVE {
            let interval = self.interval;
            self.last.retain(|_, at| at.after(interval) > now);
        }
        self.last.insert(key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_faster_than_the_interval_are_refused_with_the_wait() {
        let mut throttle = PollThrottle::new(Duration::from_secs(5));
        assert_eq!(
            throttle.handle_poll(("device-1", "s"), Timestamp(0)),
            Ok(())
        );
        assert_eq!(
            throttle.handle_poll(("device-1", "s"), Timestamp(1_000)),
            Err(Duration::from_secs(4))
        );
        // Refusals do not push the next allowed poll further out.
        assert_eq!(
            throttle.handle_poll(("device-1", "s"), Timestamp(4_500)),
            Err(Duration::from_millis(500))
        );
        assert_eq!(
            throttle.handle_poll(("device-1", "s"), Timestamp(5_000)),
            Ok(())
        );
    }

    #[test]
    fn callers_and_sessions_are_throttled_separately() {
        let mut throttle = PollThrottle::new(Duration::from_secs(5));
        throttle
            .handle_poll(("device-1", "s"), Timestamp(0))
            .unwrap();
        assert_eq!(
            throttle.handle_poll(("device-2", "s"), Timestamp(1)),
            Ok(())
        );
        assert_eq!(
            throttle.handle_poll(("device-1", "t"), Timestamp(2)),
            Ok(())
        );
    }

    #[test]
    fn a_zero_interval_turns_the_rule_off() {
        let mut throttle = PollThrottle::new(Duration::ZERO);
        for t in 0..10 {
            assert_eq!(throttle.handle_poll("k", Timestamp(t)), Ok(()));
        }
    }

    #[test]
    fn old_entries_are_swept_so_the_table_stays_bounded() {
        let mut throttle = PollThrottle::new(Duration::from_secs(1));
        for i in 0..(SWEEP_ABOVE as u64 * 3) {
            throttle.handle_poll(i, Timestamp(i * 10)).unwrap();
        }
        assert!(throttle.last.len() <= SWEEP_ABOVE);
    }

    #[test]
    fn callers_whose_wait_is_over_are_forgotten_once_many_have_polled() {
        let mut throttle = PollThrottle::new(Duration::from_secs(5));
        for n in 0..SWEEP_ABOVE - 1 {
            throttle.handle_poll(n, Timestamp(0)).unwrap();
        }
        // One more, whose wait ends exactly when the next caller comes.
        throttle.handle_poll(usize::MAX, Timestamp(5_000)).unwrap();
        assert_eq!(throttle.last.len(), SWEEP_ABOVE);
        throttle
            .handle_poll(usize::MAX - 1, Timestamp(10_000))
            .unwrap();
        assert_eq!(
            throttle.last.len(),
            1,
            "only the caller that just polled is kept"
        );
    }
}
