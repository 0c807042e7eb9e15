//! The peer engine's pure core: per-peer sessions, the piece picker, the choker and request windows.
//! No sockets, no clock, no global RNG: the driver feeds events with the time they happened and an RNG it
//! seeded, and drains what each state machine wants done (see `../shared/notes/architecture.md`).
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod bandwidth;
pub mod choker;
pub mod metadata;
pub mod pex;
pub mod picker;
pub mod session;
pub mod torrent;
pub mod window;

use std::time::Duration;

/// A point in time: the time since an epoch the driver chose (real or virtual).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub Duration);

impl Time {
    /// `d` later.
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// The driver's handle for one peer connection, unique while the connection lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PeerKey(pub u32);
