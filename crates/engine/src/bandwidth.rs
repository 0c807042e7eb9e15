//! Token buckets for bandwidth limits: a rate in bytes per second and a burst, refilled from the time
//! passed in. The driver shares one bucket per direction for the whole process and one per torrent, and
//! every connection takes from both before it reads or writes, so all peers share the limit.
//!
//! Pure: time is an argument, so a limit behaves the same under the simulator's virtual clock.

use std::time::Duration;

use crate::Time;

/// A token bucket. A rate of `None` is unlimited: every request is granted in full.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: Option<u64>,
    burst: u64,
    tokens: f64,
    last: Time,
}

impl TokenBucket {
    /// A bucket of `rate` bytes per second (`None`: unlimited), holding at most `burst` bytes (at least one
    /// byte), full at `now`.
    pub fn new(rate: Option<u64>, burst: u64, now: Time) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate,
            burst,
            tokens: burst as f64,
            last: now,
        }
    }

    /// A bucket of `rate` bytes per second with a burst of a quarter second of it, at least 64 KiB (so
    /// one read of a socket buffer is never split into crumbs).
    pub fn with_rate(rate: Option<u64>, now: Time) -> Self {
        let burst = rate.map_or(1 << 20, |r| (r / 4).max(64 * 1024));
        TokenBucket::new(rate, burst, now)
    }

    /// The rate (`None`: unlimited).
    pub fn rate(&self) -> Option<u64> {
        self.rate
    }

    /// Change the rate (the burst follows as in [`with_rate`](Self::with_rate)); tokens held stay, up to
    /// the new burst.
    pub fn set_rate(&mut self, now: Time, rate: Option<u64>) {
        self.refill(now);
        self.rate = rate;
        self.burst = rate.map_or(1 << 20, |r| (r / 4).max(64 * 1024));
        self.tokens = self.tokens.min(self.burst as f64);
    }

    fn refill(&mut self, now: Time) {
        if let Some(rate) = self.rate {
            let dt = now.since(self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * rate as f64).min(self.burst as f64);
        }
        if now > self.last {
            self.last = now;
        }
    }

    /// Take up to `want` bytes at `now`: how many were granted (0 when the bucket is empty).
    pub fn take(&mut self, now: Time, want: u64) -> u64 {
        if self.rate.is_none() {
            return want;
        }
        self.refill(now);
        let granted = (self.tokens.max(0.0).floor() as u64).min(want);
        self.tokens -= granted as f64;
        granted
    }

    /// Return `bytes` taken but not used (up to the burst).
    pub fn give_back(&mut self, bytes: u64) {
        if self.rate.is_some() {
            self.tokens = (self.tokens + bytes as f64).min(self.burst as f64);
        }
    }

    /// How long from `now` until `want` bytes (at most the burst) can be taken; zero if they can now.
    pub fn wait_for(&mut self, now: Time, want: u64) -> Duration {
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        self.refill(now);
        let want = want.min(self.burst) as f64;
        if self.tokens >= want || rate == 0 {
            // A rate of zero never refills: callers treat it as "wait a while and ask again".
            return if self.tokens >= want {
                Duration::ZERO
            } else {
                Duration::from_millis(100)
            };
        }
        Duration::from_secs_f64((want - self.tokens) / rate as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Time {
        Time(Duration::from_millis(ms))
    }

    #[test]
    fn unlimited_grants_everything() {
        let mut b = TokenBucket::with_rate(None, at(0));
        assert_eq!(b.take(at(0), u64::MAX), u64::MAX);
        assert_eq!(b.wait_for(at(0), 1 << 30), Duration::ZERO);
    }

    #[test]
    fn a_limit_holds_over_time_and_the_burst_caps_savings() {
        let rate = 1_000_000;
        let mut b = TokenBucket::new(Some(rate), 100_000, at(0));
        // The initial burst, then nothing until time passes.
        assert_eq!(b.take(at(0), 1 << 20), 100_000);
        assert_eq!(b.take(at(0), 1), 0);
        // 50 ms later: 50,000 bytes.
        assert_eq!(b.take(at(50), 1 << 20), 50_000);
        // A long idle time saves at most the burst.
        assert_eq!(b.take(at(10_000), 1 << 20), 100_000);
        // Over a simulated second of greedy takers, the total is the rate plus the starting burst.
        let mut b = TokenBucket::new(Some(rate), 100_000, at(0));
        let total: u64 = (0..=1000).map(|ms| b.take(at(ms), 16_384)).sum();
        assert!((1_000_000..=1_100_000).contains(&total), "{total}");
    }

    #[test]
    fn wait_for_says_when_tokens_will_be_there() {
        let mut b = TokenBucket::new(Some(1000), 1000, at(0));
        assert_eq!(b.take(at(0), 1000), 1000);
        let w = b.wait_for(at(0), 500);
        assert_eq!(w, Duration::from_millis(500));
        assert_eq!(b.take(at(500), 500), 500);
        b.give_back(200);
        assert_eq!(b.take(at(500), 1000), 200);
    }

    #[test]
    fn changing_the_rate_keeps_tokens_within_the_new_burst() {
        let mut b = TokenBucket::with_rate(Some(10_000_000), at(0));
        b.set_rate(at(0), Some(100_000));
        assert!(b.take(at(0), u64::MAX) <= 65_536);
        b.set_rate(at(0), None);
        assert_eq!(b.take(at(0), 7), 7);
    }
}
