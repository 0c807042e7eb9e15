//! Keyed hashing for every table an announce can grow: SipHash-1-3 under a key drawn from the owner's RNG,
//! so a client choosing info-hashes or peer ids cannot aim them at one bucket (hash flooding), and a seeded
//! store is deterministic (no hidden `RandomState`).

use std::hash::{BuildHasher, Hasher};

use rand::Rng;
use siphasher::sip::SipHasher13;

/// A SipHash key; also the `BuildHasher` of the store's `HashMap`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HashKey {
    k0: u64,
    k1: u64,
}

impl HashKey {
    /// A key drawn from `rng`.
    pub(crate) fn random(rng: &mut impl Rng) -> Self {
        HashKey {
            k0: rng.next_u64(),
            k1: rng.next_u64(),
        }
    }

    /// The hash of `bytes`.
    pub(crate) fn hash(&self, bytes: &[u8]) -> u64 {
        let mut h = self.build_hasher();
        h.write(bytes);
        h.finish()
    }
}

impl BuildHasher for HashKey {
    type Hasher = SipHasher13;

    fn build_hasher(&self) -> SipHasher13 {
        SipHasher13::new_with_keys(self.k0, self.k1)
    }
}
