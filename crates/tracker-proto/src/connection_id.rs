//! UDP connection ids (BEP 15) that the tracker can check without remembering them, like SYN cookies.
//!
//! BEP 15: "Connection IDs should not be guessable by the client ... a syn cookie like approach can be used
//! ... A client can use a connection ID until one minute after it has received it. Trackers should accept the
//! connection ID until two minutes after it has been send."
//!
//! The id is a keyed MAC of (source IP, source port, one-minute time bucket). Only the holder of the secret can
//! make one, and it is bound to the address it was sent to, so a client that spoofed its source address never
//! sees a valid id for it. The MAC is SipHash-2-4 (the `siphasher` crate, a small, dependency-free and widely
//! used implementation): SipHash is a pseudo-random function built for exactly this job (short inputs, a
//! 128-bit key, a 64-bit tag; Linux uses it for its SYN cookies) and costs tens of nanoseconds, where HMAC-SHA256
//! costs about a microsecond per packet for no gain at a 64-bit tag. The 32-byte secret is reduced to the
//! 128-bit SipHash key with SHA-256 (already a workspace dependency), so every byte of it counts.
//!
//! An id is accepted in the bucket it was made in and the two after it: every id lives at least 120 seconds
//! (BEP 15's two minutes, even for an id made at the very end of a bucket) and never 180 seconds or more.

use std::fmt;
use std::hash::Hasher;
use std::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher24;

use crate::udp::ConnectionId;

/// Length of a time bucket in seconds.
const BUCKET_SECS: u64 = 60;
/// Buckets before the current one whose ids are still accepted.
const PAST_BUCKETS_ACCEPTED: u64 = 2;
/// Separates this use of the secret from any other use the tracker makes of it.
const DOMAIN: &[u8] = b"bitswarm tracker-proto udp connection id v1\0";

/// Makes and checks UDP connection ids from a secret; holds no per-client state.
///
/// `Debug` does not show the key.
#[derive(Clone)]
pub struct ConnectionIdKeys {
    k0: u64,
    k1: u64,
}

impl ConnectionIdKeys {
    /// Keys derived from a 32-byte secret. The tracker draws the secret from its seeded RNG at start (ids
    /// from before a restart then stop being valid, and clients simply connect again) or loads it.
    pub fn new(secret: [u8; 32]) -> Self {
        let digest = Sha256::new().chain_update(DOMAIN).chain_update(secret).finalize();
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        if let Some((a, rest)) = digest.split_first_chunk::<8>() {
            k0 = *a;
            if let Some((b, _)) = rest.split_first_chunk::<8>() {
                k1 = *b;
            }
        }
        ConnectionIdKeys {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }

    /// The connection id to send to `addr` at `now_secs` (seconds on any clock that does not go backwards,
    /// the same clock as for [`ConnectionIdKeys::check`]).
    pub fn make(&self, now_secs: u64, addr: SocketAddr) -> ConnectionId {
        ConnectionId(self.mac(now_secs / BUCKET_SECS, addr))
    }

    /// True if `id` was made by these keys for `addr` within the accepted window before `now_secs`.
    pub fn check(&self, now_secs: u64, addr: SocketAddr, id: ConnectionId) -> bool {
        let bucket = now_secs / BUCKET_SECS;
        let mut ok = false;
        for age in 0..=PAST_BUCKETS_ACCEPTED {
            if let Some(b) = bucket.checked_sub(age) {
                // A whole-word comparison: no early exit that would leak how many bytes matched.
                ok |= self.mac(b, addr) == id.0;
            }
        }
        ok
    }

    fn mac(&self, bucket: u64, addr: SocketAddr) -> u64 {
        // A dual-stack socket may report an IPv4 client as ::ffff:a.b.c.d: treat both forms alike.
        let (tag, ip) = match addr.ip().to_canonical() {
            IpAddr::V4(v4) => (4u8, v4.to_ipv6_mapped().octets()),
            IpAddr::V6(v6) => (6u8, v6.octets()),
        };
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        h.write(&[tag]);
        h.write(&ip);
        h.write(&addr.port().to_be_bytes());
        h.write(&bucket.to_be_bytes());
        h.finish()
    }
}

impl fmt::Debug for ConnectionIdKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionIdKeys { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_id_lives_at_least_two_minutes_and_less_than_three() {
        // BEP 15: "Trackers should accept the connection ID until two minutes after it has been send."
        let keys = ConnectionIdKeys::new([1; 32]);
        let a = addr("203.0.113.5:6881");
        for made in [0u64, 1, 59, 60, 119, 1_000_000, 1_000_059] {
            let id = keys.make(made, a);
            for later in made..=made + 120 {
                assert!(keys.check(later, a, id), "made {made}, checked {later}");
            }
            assert!(!keys.check(made + 180, a, id), "made {made}");
        }
    }

    #[test]
    fn an_id_is_bound_to_address_port_and_secret() {
        let keys = ConnectionIdKeys::new([1; 32]);
        let a = addr("203.0.113.5:6881");
        let id = keys.make(100, a);
        assert_eq!(id, keys.make(100, a), "deterministic");
        assert!(!keys.check(100, addr("203.0.113.6:6881"), id));
        assert!(!keys.check(100, addr("203.0.113.5:6882"), id));
        assert!(!keys.check(100, addr("[2001:db8::1]:6881"), id));
        assert!(!ConnectionIdKeys::new([2; 32]).check(100, a, id));
        let mut last_byte = [1; 32];
        last_byte[31] = 0;
        assert!(!ConnectionIdKeys::new(last_byte).check(100, a, id));
    }

    #[test]
    fn ipv4_mapped_addresses_are_the_same_client() {
        let keys = ConnectionIdKeys::new([3; 32]);
        let id = keys.make(500, addr("198.51.100.9:4000"));
        assert!(keys.check(500, addr("[::ffff:198.51.100.9]:4000"), id));
    }

    #[test]
    fn ids_from_the_future_are_refused_and_time_zero_works() {
        let keys = ConnectionIdKeys::new([4; 32]);
        let a = addr("192.0.2.1:1");
        let id = keys.make(600, a);
        assert!(!keys.check(599, a, id));
        assert!(keys.check(0, a, keys.make(0, a)));
        assert!(keys.check(u64::MAX, a, keys.make(u64::MAX, a)));
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", ConnectionIdKeys::new([9; 32])),
            "ConnectionIdKeys { .. }"
        );
    }

    proptest! {
        #[test]
        fn random_ids_are_refused(id in any::<u64>(), now in any::<u64>(), port in any::<u16>()) {
            let keys = ConnectionIdKeys::new([5; 32]);
            let a = SocketAddr::from(([10, 0, 0, 1], port));
            prop_assume!(id != keys.make(now, a).0);
            let stale = [1, 2].map(|age| now.checked_sub(age * BUCKET_SECS).map(|t| keys.make(t, a).0));
            prop_assume!(!stale.contains(&Some(id)));
            prop_assert!(!keys.check(now, a, ConnectionId(id)));
        }
    }
}
