//! A Mainline DHT node (BEP 5, with BEP 32 IPv6, BEP 33 scrapes, BEP 42 node ids and BEP 43 read-only
//! mode) as a pure state machine: it is fed packets and the time, and hands back packets to send.
//!
//! Nothing here owns a socket, reads a clock or draws from a global RNG. The driver gives every input the
//! time it happened ([`Time`]) and the node an RNG it seeded, then drains the outputs:
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use dht::{Config, Dht, Time};
//! use rand::{rngs::SmallRng, SeedableRng};
//!
//! let bind: SocketAddr = "10.0.0.1:6881".parse().unwrap();
//! let mut node = Dht::new(Config::default(), bind, SmallRng::seed_from_u64(1), Time::ZERO);
//! node.bootstrap(Time::ZERO, &["10.0.0.2:6881".parse().unwrap()]);
//! // A find_node for our own id goes to the bootstrap node.
//! let out = node.poll_transmit().unwrap();
//! assert_eq!(out.to, "10.0.0.2:6881".parse().unwrap());
//! assert!(dht::krpc::decode(&out.data).is_ok());
//! // Nothing answers: the driver calls handle_timeout when poll_timeout says.
//! let next = node.poll_timeout().unwrap();
//! assert!(next > Time::ZERO && next <= Time(Duration::from_secs(60)));
//! node.handle_timeout(next);
//! ```
//!
//! Modules: [`krpc`] (the message codec), [`routing`] (the k-bucket table), [`token`] (announce tokens),
//! [`store`] (the peer store and BEP 33 bloom filters), [`lookup`] (iterative lookups) and [`node`] (the
//! [`Dht`] that ties them together). `testnet` (hidden) is an in-memory network of nodes in virtual time
//! used by the tests and meant to be lifted by the simulator.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod bep42;
pub mod krpc;
pub mod lookup;
pub mod node;
pub mod routing;
pub mod store;
#[doc(hidden)]
pub mod testnet;
pub mod token;

use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

pub use lookup::{Announce, LookupId};
pub use node::{Config, Dht, DhtError, DropCounts, Event, KindCounts, Stats, Transmit};

/// A point in time: the time since an epoch the driver chose (real or virtual).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(pub Duration);

impl Time {
    /// The epoch.
    pub const ZERO: Time = Time(Duration::ZERO);
    /// `d` later.
    pub fn plus(self, d: Duration) -> Time {
        Time(self.0.saturating_add(d))
    }
    /// How long after `earlier` this is (zero if it is not later).
    pub fn since(self, earlier: Time) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

/// A 160-bit DHT node id (or info-hash, when used as a lookup target).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    /// The XOR distance to `other`, as a big-endian 160-bit number.
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (out, (a, b)) in d.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *out = a ^ b;
        }
        d
    }
    /// Compare how close `a` and `b` are to `self`: `Less` when `a` is closer.
    pub fn cmp_distance(&self, a: &NodeId, b: &NodeId) -> Ordering {
        for ((t, x), y) in self.0.iter().zip(a.0.iter()).zip(b.0.iter()) {
            let (dx, dy) = (t ^ x, t ^ y);
            if dx != dy {
                return dx.cmp(&dy);
            }
        }
        Ordering::Equal
    }
    /// Number of leading bits `self` and `other` share (160 when equal).
    pub fn common_prefix(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }
    /// Bit `i` (0 = most significant) of the id.
    pub fn bit(&self, i: usize) -> bool {
        self.0.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0)
    }
    /// A copy with bit `i` set to `v`.
    pub fn with_bit(mut self, i: usize, v: bool) -> NodeId {
        if let Some(b) = self.0.get_mut(i / 8) {
            let m = 0x80u8 >> (i % 8);
            if v {
                *b |= m;
            } else {
                *b &= !m;
            }
        }
        self
    }
    /// A random id.
    pub fn random<R: rand::Rng + ?Sized>(rng: &mut R) -> NodeId {
        let mut id = [0u8; 20];
        rng.fill_bytes(&mut id);
        NodeId(id)
    }
    /// A random id that shares exactly the first `prefix` bits with `self` and differs at bit `prefix`
    /// (for `prefix >= 160`, `self`): a random id in the bucket `prefix` of a table centred on `self`.
    pub fn random_at_prefix<R: rand::Rng + ?Sized>(&self, prefix: usize, rng: &mut R) -> NodeId {
        if prefix >= 160 {
            return *self;
        }
        let mut id = NodeId::random(rng);
        for i in 0..prefix {
            id = id.with_bit(i, self.bit(i));
        }
        id.with_bit(prefix, !self.bit(prefix))
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_orders_by_xor_metric() {
        // "In Kademlia, the distance metric is XOR and the result is interpreted as an unsigned integer."
        let t = NodeId([0; 20]);
        let mut a = [0; 20];
        a[19] = 1;
        let mut b = [0; 20];
        b[0] = 1;
        assert_eq!(t.cmp_distance(&NodeId(a), &NodeId(b)), Ordering::Less);
        assert_eq!(t.distance(&NodeId(b))[0], 1);
        assert_eq!(t.common_prefix(&NodeId(b)), 7);
        assert_eq!(t.common_prefix(&NodeId(a)), 159);
        assert_eq!(t.common_prefix(&t), 160);
    }

    #[test]
    fn random_at_prefix_lands_in_that_bucket() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let me = NodeId::random(&mut rng);
        for p in [0, 1, 7, 8, 33, 159] {
            let id = me.random_at_prefix(p, &mut rng);
            assert_eq!(me.common_prefix(&id), p);
        }
    }
}
