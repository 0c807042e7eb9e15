//! Per-peer transfer rates over a sliding window of time buckets.
//!
//! A window of length `W` is split into [`BUCKETS`] buckets of `W / BUCKETS` each (1 s for the default 20 s).
//! Bytes are added to the bucket their time falls in. The amount "over the window" at `now` is the sum of the
//! [`BUCKETS`] buckets ending with the one that holds `now`, and the rate is that sum divided by `W`. The
//! current bucket counts in full, so the window covers between `W - W/BUCKETS` and `W` of real time: 19 to 20 s
//! by default. That makes the figure exact and reproducible in virtual time, unlike an EWMA whose value
//! depends on when it was last updated.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Time;

/// How many buckets a window is split into.
pub(super) const BUCKETS: u64 = 20;

/// Bytes moved in each of the last [`BUCKETS`] buckets (at most that many entries are kept).
#[derive(Debug, Clone)]
pub(super) struct RateWindow {
    /// Width of one bucket in nanoseconds (at least 1).
    bucket_nanos: u128,
    /// `(bucket index, bytes)`, ascending by index, only buckets with bytes.
    buckets: VecDeque<(u64, u64)>,
}

impl RateWindow {
    /// An empty window of length `window` (a zero window is treated as `BUCKETS` nanoseconds).
    pub(super) fn new(window: Duration) -> Self {
        let bucket_nanos = (window.as_nanos() / u128::from(BUCKETS)).max(1);
        RateWindow {
            bucket_nanos,
            buckets: VecDeque::new(),
        }
    }

    /// The index of the bucket holding `t`.
    fn index(&self, t: Time) -> u64 {
        u64::try_from(t.0.as_nanos() / self.bucket_nanos).unwrap_or(u64::MAX)
    }

    /// Counts `bytes` moved at `now`. Events may arrive slightly out of order: one older than the window
    /// (relative to the newest event seen) is dropped.
    pub(super) fn record(&mut self, now: Time, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let idx = self.index(now);
        let newest = self.buckets.back().map_or(idx, |&(b, _)| b.max(idx));
        if newest - idx >= BUCKETS {
            return;
        }
        let pos = self.buckets.partition_point(|&(b, _)| b < idx);
        match self.buckets.get_mut(pos) {
            Some((b, n)) if *b == idx => *n = n.saturating_add(bytes),
            _ => self.buckets.insert(pos, (idx, bytes)),
        }
        while self.buckets.front().is_some_and(|&(b, _)| newest - b >= BUCKETS) {
            self.buckets.pop_front();
        }
    }

    /// Bytes moved in the window ending at `now` (the bucket holding `now` and the `BUCKETS - 1` before it).
    pub(super) fn sum(&self, now: Time) -> u64 {
        let idx = self.index(now);
        self.buckets
            .iter()
            .filter(|&&(b, _)| b <= idx && idx - b < BUCKETS)
            .fold(0u64, |acc, &(_, n)| acc.saturating_add(n))
    }

    /// The rate over the window ending at `now`, in bytes per second.
    pub(super) fn per_second(&self, now: Time) -> u64 {
        let window_nanos = self.bucket_nanos.saturating_mul(u128::from(BUCKETS));
        let rate = u128::from(self.sum(now)).saturating_mul(1_000_000_000) / window_nanos;
        u64::try_from(rate).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Time {
        Time(Duration::from_secs(s))
    }

    fn millis(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    #[test]
    fn the_window_is_the_last_twenty_one_second_buckets() {
        let mut w = RateWindow::new(Duration::from_secs(20));
        for s in 0..30 {
            w.record(secs(s), 1000);
        }
        // Buckets 10..=29: 20 seconds at 1000 B/s.
        assert_eq!(w.sum(secs(29)), 20_000);
        assert_eq!(w.per_second(secs(29)), 1000);
        // Late in second 29 it is still the same bucket: the current bucket counts in full.
        assert_eq!(w.sum(millis(29_999)), 20_000);
        // Nothing since: half the window has drained at 39 s, all of it at 49 s.
        assert_eq!(w.per_second(secs(39)), 500);
        assert_eq!(w.per_second(secs(48)), 50);
        assert_eq!(w.per_second(secs(49)), 0);
        assert!(w.buckets.len() <= BUCKETS as usize);
    }

    #[test]
    fn late_events_count_if_still_inside_the_window() {
        let mut w = RateWindow::new(Duration::from_secs(20));
        w.record(secs(30), 100);
        w.record(secs(25), 10); // out of order, inside the window
        w.record(secs(30), 1); // same bucket again
        w.record(secs(5), 1000); // older than the window: dropped
        assert_eq!(w.sum(secs(30)), 111);
        assert_eq!(w.buckets.len(), 2);
        // Seen from an earlier `now`, later buckets do not count.
        assert_eq!(w.sum(secs(26)), 10);
    }

    #[test]
    fn extreme_values_saturate_instead_of_panicking() {
        let mut w = RateWindow::new(Duration::ZERO);
        w.record(Time(Duration::MAX), u64::MAX);
        w.record(Time(Duration::MAX), u64::MAX);
        assert_eq!(w.sum(Time(Duration::MAX)), u64::MAX);
        assert_eq!(w.per_second(Time(Duration::MAX)), u64::MAX);
        let mut w = RateWindow::new(Duration::MAX);
        w.record(secs(1), 5);
        assert_eq!(w.sum(secs(2)), 5);
    }
}
