//! The last hour of the pool, for the operator's charts (`GET /v1/pool/history`): every
//! [`INTERVAL`] a sample of the hosts per size (registered, leased, queued) and of what was measured
//! in between: space event delivery (write → member's socket) and frame time (render + encode, as
//! the hosts' heartbeats report it). Kept in memory: a restarted coordinator starts a new hour.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;

use parallax_core::api::{PoolSample as Sample, SizeStatus, Spread};
use parallax_core::time::Timestamp;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Samples kept: one hour.
const KEPT: usize = 120;
/// Longest measurement told apart, in µs (an hour); longer ones count as this.
const LONGEST_US: u64 = 3_600_000_000;

/// Percentiles of what `measured` holds (µs, to three significant digits), in ms; `None` when
/// nothing was measured.
fn spread(measured: &Histogram<u64>) -> Option<Spread> {
    if measured.is_empty() {
        return None;
    }
    let ms = |us: u64| us as f32 / 1000.0;
    Some(Spread {
        count: usize::try_from(measured.len()).unwrap_or(usize::MAX),
        p50: ms(measured.value_at_quantile(0.50)),
        p95: ms(measured.value_at_quantile(0.95)),
        max: ms(measured.max()),
    })
}

/// What was measured since the last sample: every measurement counts, in a fixed amount of
/// memory (a histogram, not a list), however many members and hosts report.
struct Window {
    broadcast: Histogram<u64>,
    frame: Histogram<u64>,
}

impl Default for Window {
    fn default() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, LONGEST_US, 3)
                .expect("the bounds and precision are valid")
        };
        Self {
            broadcast: histogram(),
            frame: histogram(),
        }
    }
}

#[derive(Default)]
pub struct History {
    samples: Mutex<VecDeque<Sample>>,
    window: Mutex<Window>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record(measured: &mut Histogram<u64>, value: Duration) {
    let us = u64::try_from(value.as_micros()).unwrap_or(u64::MAX);
    measured.saturating_record(us.clamp(1, LONGEST_US));
}

impl History {
    /// A space event reached its member's socket `took` after its write.
    pub fn delivered(&self, took: Duration) {
        record(&mut lock(&self.window).broadcast, took);
    }

    /// A host rendered its frames in `took` each, on average, since its last heartbeat.
    pub fn frame(&self, took: Duration) {
        record(&mut lock(&self.window).frame, took);
    }

    /// The sample for `at`: `pool` now, and what was measured since the last sample (which
    /// `close` ends, starting the next interval).
    fn sample(&self, at: Timestamp, pool: Vec<SizeStatus>, close: bool) -> Sample {
        let mut window = lock(&self.window);
        let (broadcast_ms, frame_ms) = (spread(&window.broadcast), spread(&window.frame));
        if close {
            window.broadcast.reset();
            window.frame.reset();
        }
        drop(window);
        Sample {
            at: at.as_millis(),
            pool,
            broadcast_ms,
            frame_ms,
        }
    }

    /// Takes a sample and keeps the last hour of them.
    pub fn take_sample(&self, at: Timestamp, pool: Vec<SizeStatus>) {
        let sample = self.sample(at, pool, true);
        let mut samples = lock(&self.samples);
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The kept samples, and one of the interval still running.
    pub fn last_hour(&self, now: Timestamp, pool: Vec<SizeStatus>) -> Vec<Sample> {
        let mut samples: Vec<Sample> = lock(&self.samples).iter().cloned().collect();
        samples.push(self.sample(now, pool, false));
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_percentiles_of_every_measurement_to_three_digits() {
        let mut window = Window::default();
        // Far more than a list would have kept; every one counts.
        for _ in 0..3 {
            for ms in (1..=100_000).rev() {
                record(&mut window.broadcast, Duration::from_micros(ms * 10));
            }
        }
        let measured = spread(&window.broadcast).unwrap();
        assert_eq!(measured.count, 300_000);
        let near = |got: f32, want: f32| (got - want).abs() <= want * 0.001;
        assert!(near(measured.p50, 500.0), "{measured:?}");
        assert!(near(measured.p95, 950.0), "{measured:?}");
        assert!(near(measured.max, 1000.0), "{measured:?}");
        assert_eq!(spread(&Window::default().frame), None);
    }

    #[test]
    fn an_hour_of_samples_is_kept_and_each_interval_measured_once() {
        let history = History::default();
        history.delivered(Duration::from_millis(4));
        history.frame(Duration::from_millis(6));
        history.take_sample(Timestamp::from_millis(0), Vec::new());
        let first = &history.last_hour(Timestamp::from_millis(1), Vec::new())[0];
        let near = |got: Option<f32>, want: f32| got.is_some_and(|g| (g - want).abs() < 0.01);
        assert!(near(first.broadcast_ms.map(|s| s.p50), 4.0), "{first:?}");
        assert!(near(first.frame_ms.map(|s| s.max), 6.0), "{first:?}");
        for n in 1..=200 {
            history.take_sample(Timestamp::from_millis(n), Vec::new());
        }
        let hour = history.last_hour(Timestamp::from_millis(1_000), Vec::new());
        assert_eq!(hour.len(), KEPT + 1, "an hour, and the running interval");
        assert_eq!(hour[0].at, 81, "the oldest samples went first");
        assert!(
            hour.iter().skip(1).all(|s| s.broadcast_ms.is_none()),
            "measured once"
        );
    }
}
