//! Time as the store sees it: whole seconds from an epoch the driver chooses.

use serde::{Deserialize, Serialize};

/// A point in time, in whole seconds since an epoch the driver chooses (the Unix epoch, or the process
/// start). The store never reads a clock: every call that depends on time takes a `Secs`.
///
/// `u32` seconds cover 136 years from the epoch, and keep each peer four bytes smaller than `u64` would.
/// Arithmetic saturates, so a clock that steps backwards makes durations zero, never negative or huge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secs(pub u32);

impl Secs {
    /// Seconds from `earlier` to `self`; zero if `earlier` is later.
    pub fn since(self, earlier: Secs) -> u32 {
        self.0.saturating_sub(earlier.0)
    }

    /// `self` plus `secs`, saturating at the end of time.
    pub fn plus(self, secs: u32) -> Secs {
        Secs(self.0.saturating_add(secs))
    }
}
