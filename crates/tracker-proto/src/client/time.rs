//! Time as the announce client sees it: a point on a clock that the owner runs.

use std::fmt;
use std::ops::Add;
use std::time::Duration;

/// A point in time: the time elapsed since an epoch the driver chooses (its start, say).
///
/// The client never reads a clock; every input carries a `Time`. A socket driver maps `Instant`s onto it
/// (`Time::from_duration(instant - epoch)`), a test or the simulator counts virtual time from
/// [`Time::ZERO`]. Arithmetic saturates, so no input can make it panic.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(Duration);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(Duration::ZERO);

    /// The time `since_epoch` after the epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Time(since_epoch)
    }

    /// Whole seconds after the epoch.
    pub const fn from_secs(secs: u64) -> Self {
        Time(Duration::from_secs(secs))
    }

    /// Milliseconds after the epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Time(Duration::from_millis(millis))
    }

    /// The time elapsed since the epoch.
    pub const fn since_epoch(self) -> Duration {
        self.0
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Time {
    type Output = Time;

    /// Saturates at the end of time.
    fn add(self, rhs: Duration) -> Time {
        Time(self.0.saturating_add(rhs))
    }
}

impl fmt::Debug for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Time({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Time::from_secs(10);
        assert_eq!(t + Duration::from_millis(500), Time::from_millis(10_500));
        assert_eq!(t.saturating_since(Time::from_secs(4)), Duration::from_secs(6));
        assert_eq!(Time::ZERO.saturating_since(t), Duration::ZERO);
        let end = Time::from_duration(Duration::MAX);
        assert_eq!(end + Duration::from_secs(1), end);
        assert_eq!(format!("{:?}", Time::from_secs(3)), "Time(3s)");
    }
}
