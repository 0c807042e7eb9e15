//! The one place where the state machines' [`Time`] meets the real clock.

use std::time::{Duration, Instant};

use tracker_proto::client::Time;

/// Maps [`Instant`]s onto the state machines' [`Time`] (time since an epoch) and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// A clock with this epoch (to keep driving a state machine that an earlier clock drove).
    pub fn with_epoch(epoch: Instant) -> Self {
        Clock { epoch }
    }

    /// The epoch.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// The time now.
    pub fn now(&self) -> Time {
        Time::from_duration(self.epoch.elapsed())
    }

    /// The instant of a time; a time too far out to represent becomes a year from now.
    pub fn instant(&self, time: Time) -> Instant {
        self.epoch
            .checked_add(time.since_epoch())
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(365 * 24 * 3600))
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_instants_map_both_ways() {
        let epoch = Instant::now();
        let c = Clock::with_epoch(epoch);
        assert_eq!(c.instant(Time::from_secs(5)), epoch + Duration::from_secs(5));
        assert!(c.now() >= Time::ZERO);
        assert!(c.instant(Time::from_duration(Duration::MAX)) > epoch);
    }
}
