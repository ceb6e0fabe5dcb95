//! The last hour of the pool, for the operator's charts (`GET /v1/pool/history`): every
//! [`INTERVAL`] a sample of the hosts per size (registered, leased, queued) and of what was measured
//! in between: space event delivery (write → member's socket) and frame time (render + encode, as
//! the hosts' heartbeats report it). Kept in memory: a restarted coordinator starts a new hour.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use parallax_core::time::Timestamp;
use serde::Serialize;
use serde_json::Value;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// Samples kept: one hour.
const KEPT: usize = 120;
/// Measurements kept between two samples; beyond this a sample is made of the first ones.
const WINDOW_CAP: usize = 100_000;

/// Percentiles of what was measured within one interval, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50: f32,
    pub p95: f32,
    pub max: f32,
}

impl Spread {
    /// Nearest-rank percentiles; `None` when nothing was measured.
    fn of(values: &mut [f32]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f32::total_cmp);
        let rank = |p: f32| {
            let n = values.len();
            values[((p * n as f32).ceil() as usize).clamp(1, n) - 1]
        };
        Some(Self {
            count: values.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            max: values[values.len() - 1],
        })
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Unix time in ms.
    pub at: u64,
    /// Per size: `size`, `hosts`, `idle`, `leased`, `queued`, `capacity` (as `/v1/health`).
    pub pool: Value,
    pub broadcast_ms: Option<Spread>,
    pub frame_ms: Option<Spread>,
}

#[derive(Default)]
struct Window {
    broadcast_ms: Vec<f32>,
    frame_ms: Vec<f32>,
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

fn record(values: &mut Vec<f32>, value: Duration) {
    if values.len() < WINDOW_CAP {
        values.push(value.as_secs_f32() * 1000.0);
    }
}

impl History {
    /// A space event reached its member's socket `took` after its write.
    pub fn delivered(&self, took: Duration) {
        record(&mut lock(&self.window).broadcast_ms, took);
    }

    /// A host rendered its frames in `took` each, on average, since its last heartbeat.
    pub fn frame(&self, took: Duration) {
        record(&mut lock(&self.window).frame_ms, took);
    }

    /// The sample for `at`: `pool` now, and what was measured since the last sample (which
    /// `close` ends, starting the next interval).
    fn sample(&self, at: Timestamp, pool: Value, close: bool) -> Sample {
        let mut window = lock(&self.window);
        let (mut broadcast, mut frame) = if close {
            let taken = std::mem::take(&mut *window);
            (taken.broadcast_ms, taken.frame_ms)
        } else {
            (window.broadcast_ms.clone(), window.frame_ms.clone())
        };
        drop(window);
        Sample {
            at: at.as_millis(),
            pool,
            broadcast_ms: Spread::of(&mut broadcast),
            frame_ms: Spread::of(&mut frame),
        }
    }

    /// Takes a sample and keeps the last hour of them.
    pub fn take_sample(&self, at: Timestamp, pool: Value) {
        let sample = self.sample(at, pool, true);
        let mut samples = lock(&self.samples);
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// The kept samples, and one of the interval still running.
    pub fn last_hour(&self, now: Timestamp, pool: Value) -> Vec<Sample> {
        let mut samples: Vec<Sample> = lock(&self.samples).iter().cloned().collect();
        samples.push(self.sample(now, pool, false));
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_nearest_rank_percentiles() {
        let mut values: Vec<f32> = (1..=100).rev().map(|v| v as f32).collect();
        let spread = Spread::of(&mut values).unwrap();
        assert_eq!(
            (spread.count, spread.p50, spread.p95, spread.max),
            (100, 50.0, 95.0, 100.0)
        );
        assert_eq!(Spread::of(&mut []), None);
    }

    #[test]
    fn an_hour_of_samples_is_kept_and_each_interval_measured_once() {
        let history = History::default();
        history.delivered(Duration::from_millis(4));
        history.frame(Duration::from_millis(6));
        history.take_sample(Timestamp::from_millis(0), Value::Null);
        let first = &history.last_hour(Timestamp::from_millis(1), Value::Null)[0];
        assert_eq!(first.broadcast_ms.map(|s| s.p50), Some(4.0));
        assert_eq!(first.frame_ms.map(|s| s.max), Some(6.0));
        for n in 1..=200 {
            history.take_sample(Timestamp::from_millis(n), Value::Null);
        }
        let hour = history.last_hour(Timestamp::from_millis(1_000), Value::Null);
        assert_eq!(hour.len(), KEPT + 1, "an hour, and the running interval");
        assert_eq!(hour[0].at, 81, "the oldest samples went first");
        assert!(
            hour.iter().skip(1).all(|s| s.broadcast_ms.is_none()),
            "measured once"
        );
    }
}
