//! Bandwidth limits shared by connections: each read or write takes tokens from every bucket that
//! applies (the process's and the torrent's) and waits when one is empty.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::bandwidth::TokenBucket;
use engine::Time;

/// The buckets one direction of one connection takes from, in order (global first).
#[derive(Debug, Clone)]
pub struct Limiter {
    epoch: Instant,
    buckets: Vec<Arc<Mutex<TokenBucket>>>,
}

impl Limiter {
    /// A limiter over `buckets`, whose times count from `epoch`.
    pub fn new(epoch: Instant, buckets: Vec<Arc<Mutex<TokenBucket>>>) -> Self {
        Limiter { epoch, buckets }
    }

    fn now(&self) -> Time {
        Time(self.epoch.elapsed())
    }

    /// True if any bucket has a rate.
    pub fn is_limited(&self) -> bool {
        self.buckets
            .iter()
            .any(|b| b.lock().unwrap_or_else(PoisonError::into_inner).rate().is_some())
    }

    /// Wait until at least one byte (at most `want`) may pass; returns how many.
    pub async fn acquire(&self, want: usize) -> usize {
        if want == 0 || !self.is_limited() {
            return want;
        }
        loop {
            let now = self.now();
            let mut granted = want as u64;
            let mut taken = Vec::with_capacity(self.buckets.len());
            for b in &self.buckets {
                let got = b
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(now, granted);
                taken.push(got);
                granted = got;
                if got == 0 {
                    break;
                }
            }
            for (b, t) in self.buckets.iter().zip(&taken) {
                b.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .give_back(t.saturating_sub(granted));
            }
            if granted > 0 {
                return usize::try_from(granted).unwrap_or(want);
            }
            let chunk = (want as u64).min(16 * 1024);
            let wait = self
                .buckets
                .iter()
                .map(|b| {
                    b.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .wait_for(now, chunk)
                })
                .max()
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_millis(1));
            tokio::time::sleep(wait).await;
        }
    }

    /// Return bytes acquired but not used.
    pub fn give_back(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        for b in &self.buckets {
            b.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .give_back(bytes as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_paces_transfers_and_unlimited_does_not() {
        let epoch = Instant::now();
        let free = Limiter::new(
            epoch,
            vec![Arc::new(Mutex::new(TokenBucket::with_rate(
                None,
                Time::default(),
            )))],
        );
        assert_eq!(free.acquire(1 << 20).await, 1 << 20);
        // 1 MB/s with a 64 KiB burst: 320 KiB take about a quarter second.
        let bucket = Arc::new(Mutex::new(TokenBucket::new(
            Some(1_000_000),
            65_536,
            Time::default(),
        )));
        let limited = Limiter::new(
            epoch,
            vec![
                Arc::new(Mutex::new(TokenBucket::with_rate(None, Time::default()))),
                bucket,
            ],
        );
        let start = Instant::now();
        let mut total = 0;
        while total < 320 * 1024 {
            total += limited.acquire(16 * 1024).await;
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200), "{took:?}");
    }
}
