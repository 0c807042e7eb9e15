//! The session's one timer table (the shape of quinn-proto's `TimerTable`): a deadline per kind of timer,
//! recomputed from the session's state after every input, the earliest returned by `poll_timeout`.

use crate::Time;

/// The kinds of timer a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Close if the peer's handshake has not arrived.
    Handshake = 0,
    /// Close if nothing at all arrived for a while.
    Idle = 1,
    /// Send a keep-alive after a silence of ours.
    KeepAlive = 2,
    /// Give up on the oldest request in flight.
    Request = 3,
    /// Flag the peer as snubbing us.
    Snub = 4,
}

impl Timer {
    /// Every timer, in the order `handle_timeout` looks at them.
    pub(crate) const ALL: [Timer; 5] = [
        Timer::Handshake,
        Timer::Idle,
        Timer::Request,
        Timer::Snub,
        Timer::KeepAlive,
    ];
}

/// A deadline per timer kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimerTable {
    data: [Option<Time>; 5],
}

impl TimerTable {
    /// Arm `timer` for `at`, or stop it (`None`).
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Time>) {
        if let Some(slot) = self.data.get_mut(timer as usize) {
            *slot = at;
        }
    }

    /// The deadline of `timer`, if armed.
    pub(crate) fn get(&self, timer: Timer) -> Option<Time> {
        self.data.get(timer as usize).copied().flatten()
    }

    /// The earliest armed deadline.
    pub(crate) fn next_timeout(&self) -> Option<Time> {
        self.data.iter().flatten().min().copied()
    }

    /// True if `timer` is armed for `now` or earlier.
    pub(crate) fn is_expired(&self, timer: Timer, now: Time) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }
}
