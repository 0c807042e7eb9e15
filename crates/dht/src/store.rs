//! The peer store: peers announced to us per info-hash, with expiry and caps, and the BEP 33 bloom filters
//! that summarise a swarm for DHT scrapes.
//!
//! Peers expire 30 minutes (the configured TTL) after their last announce; expired peers are never returned,
//! and [`PeerStore::expire`] frees them. A swarm holds at most `max_peers` peers (a full swarm forgets its
//! stalest peer for a new one), and the store at most `max_hashes` info-hashes (a new info-hash pushes out
//! the smallest swarm). Peers are keyed by address and port, not by IP alone as BEP 33 suggests: on
//! loopback and behind NATs several peers share an IP (libtorrent keys its store the same way); the
//! bloom filters count IPs, so their estimates are unaffected.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sha1::{Digest, Sha1};

use crate::krpc::BLOOM_BYTES;
use crate::Time;

/// A peer announced to us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPeer {
    /// Its address (announcer's IP, announced or implied port).
    pub addr: SocketAddr,
    /// It said it is a seed (BEP 33 `seed = 1`).
    pub seed: bool,
    /// When it last announced.
    pub announced: Time,
}

/// What [`PeerStore::announce`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// A new peer.
    Added,
    /// A known peer refreshed.
    Refreshed,
    /// A new peer that took the place of the swarm's stalest one.
    ReplacedOldest,
    /// A new info-hash that pushed out the smallest swarm.
    EvictedSwarm,
}

/// Peers per info-hash.
#[derive(Debug, Clone)]
pub struct PeerStore {
    swarms: BTreeMap<[u8; 20], Vec<StoredPeer>>,
    max_hashes: usize,
    max_peers: usize,
    ttl: Duration,
}

impl PeerStore {
    /// An empty store.
    pub fn new(max_hashes: usize, max_peers: usize, ttl: Duration) -> PeerStore {
        PeerStore {
            swarms: BTreeMap::new(),
            max_hashes: max_hashes.max(1),
            max_peers: max_peers.max(1),
            ttl,
        }
    }

    fn live(&self, p: &StoredPeer, now: Time) -> bool {
        now.since(p.announced) < self.ttl
    }

    /// Record an announce.
    pub fn announce(&mut self, now: Time, info_hash: [u8; 20], addr: SocketAddr, seed: bool) -> Stored {
        let ttl = self.ttl;
        let mut result = Stored::Added;
        if !self.swarms.contains_key(&info_hash) && self.swarms.len() >= self.max_hashes {
            self.expire(now);
            if self.swarms.len() >= self.max_hashes {
                // Push out the smallest swarm (ties: the one announced to least recently).
                let victim = self
                    .swarms
                    .iter()
                    .min_by_key(|(_, ps)| (ps.len(), ps.iter().map(|p| p.announced).max()))
                    .map(|(h, _)| *h);
                if let Some(v) = victim {
                    self.swarms.remove(&v);
                    result = Stored::EvictedSwarm;
                }
            }
        }
        let max_peers = self.max_peers;
        let peers = self.swarms.entry(info_hash).or_default();
        peers.retain(|p| now.since(p.announced) < ttl);
        if let Some(p) = peers.iter_mut().find(|p| p.addr == addr) {
            p.seed = seed;
            p.announced = now;
            return Stored::Refreshed;
        }
        let new = StoredPeer {
            addr,
            seed,
            announced: now,
        };
        if peers.len() >= max_peers {
            if let Some((i, _)) = peers.iter().enumerate().min_by_key(|(_, p)| p.announced) {
                if let Some(slot) = peers.get_mut(i) {
                    *slot = new;
                }
            }
            return Stored::ReplacedOldest;
        }
        peers.push(new);
        result
    }

    /// Up to `max` live peers of `info_hash` of one family (`v6`), chosen at random when there are more;
    /// with `noseed`, non-seeds first (BEP 33: "try to fill the values list with non-seed items on a
    /// best-effort basis").
    pub fn peers<R: rand::Rng + ?Sized>(
        &self,
        now: Time,
        info_hash: &[u8; 20],
        v6: bool,
        max: usize,
        noseed: bool,
        rng: &mut R,
    ) -> Vec<SocketAddr> {
        let Some(ps) = self.swarms.get(info_hash) else {
            return Vec::new();
        };
        let mut eligible: Vec<&StoredPeer> = ps
            .iter()
            .filter(|p| self.live(p, now) && p.addr.is_ipv6() == v6)
            .collect();
        // Partial Fisher-Yates: a random `max` in front.
        let n = eligible.len();
        for i in 0..n.min(max) {
            let j = rng.random_range(i..n);
            eligible.swap(i, j);
        }
        if noseed {
            eligible.sort_by_key(|p| p.seed); // stable: the shuffled order within each group stays
        }
        eligible.into_iter().take(max).map(|p| p.addr).collect()
    }

    /// The BEP 33 filters of a swarm: (seeds, peers), or `None` if we hold nothing for it.
    pub fn blooms(&self, now: Time, info_hash: &[u8; 20]) -> Option<(Bloom, Bloom)> {
        let ps = self.swarms.get(info_hash)?;
        let mut seeds = Bloom::new();
        let mut peers = Bloom::new();
        let mut any = false;
        for p in ps.iter().filter(|p| self.live(p, now)) {
            any = true;
            if p.seed {
                seeds.insert_ip(p.addr.ip());
            } else {
                peers.insert_ip(p.addr.ip());
            }
        }
        any.then_some((seeds, peers))
    }

    /// Number of live peers stored for `info_hash`.
    pub fn count(&self, now: Time, info_hash: &[u8; 20]) -> usize {
        self.swarms
            .get(info_hash)
            .map_or(0, |ps| ps.iter().filter(|p| self.live(p, now)).count())
    }

    /// Forget expired peers and empty swarms.
    pub fn expire(&mut self, now: Time) {
        let ttl = self.ttl;
        self.swarms.retain(|_, ps| {
            ps.retain(|p| now.since(p.announced) < ttl);
            !ps.is_empty()
        });
    }

    /// Number of info-hashes held.
    pub fn hashes(&self) -> usize {
        self.swarms.len()
    }

    /// Number of peers held (live or not yet expired by [`PeerStore::expire`]).
    pub fn peers_held(&self) -> usize {
        self.swarms.values().map(Vec::len).sum()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.swarms
            .values()
            .map(|ps| 64 + ps.capacity() * std::mem::size_of::<StoredPeer>())
            .sum()
    }
}

/// A BEP 33 bloom filter: 256 bytes, k = 2, indices from the SHA-1 of the IP.
#[derive(Clone, PartialEq, Eq)]
pub struct Bloom(pub [u8; BLOOM_BYTES]);

impl std::fmt::Debug for Bloom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bloom(~{:.0})", self.estimate())
    }
}

impl Default for Bloom {
    fn default() -> Self {
        Bloom::new()
    }
}

impl Bloom {
    const M: usize = BLOOM_BYTES * 8;

    /// An empty filter.
    pub fn new() -> Bloom {
        Bloom([0; BLOOM_BYTES])
    }

    /// Insert an IP address ("Only IP addresses (v4 or v6) may be inserted into the bloom filters").
    pub fn insert_ip(&mut self, ip: IpAddr) {
        let hash: [u8; 20] = match ip {
            IpAddr::V4(a) => Sha1::digest(a.octets()).into(),
            IpAddr::V6(a) => Sha1::digest(a.octets()).into(),
        };
        let [h0, h1, h2, h3, ..] = hash;
        for index in [
            usize::from(h0) | usize::from(h1) << 8,
            usize::from(h2) | usize::from(h3) << 8,
        ] {
            let index = index % Self::M;
            if let Some(b) = self.0.get_mut(index / 8) {
                *b |= 1 << (index % 8);
            }
        }
    }

    /// OR another filter into this one (the union of the two sets).
    pub fn union(&mut self, other: &Bloom) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= b;
        }
    }

    /// The estimated number of items: `log(c / m) / (k * log(1 - 1/m))` with `c = min(m - 1, zero bits)`;
    /// zero for an empty filter.
    pub fn estimate(&self) -> f64 {
        let zeros: u32 = self.0.iter().map(|b| b.count_zeros()).sum();
        let m = Self::M as f64;
        if zeros as usize == Self::M {
            return 0.0;
        }
        let c = f64::from(zeros).min(m - 1.0);
        (c / m).ln() / (2.0 * (1.0 - 1.0 / m).ln())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    const MIN: Duration = Duration::from_secs(60);

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 6881)
    }

    #[test]
    fn peers_expire_after_thirty_minutes() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = PeerStore::new(10, 10, 30 * MIN);
        let h = [1u8; 20];
        assert_eq!(s.announce(Time::ZERO, h, addr(1), false), Stored::Added);
        assert_eq!(s.announce(Time(10 * MIN), h, addr(2), false), Stored::Added);
        assert_eq!(s.peers(Time(29 * MIN), &h, false, 50, false, &mut rng).len(), 2);
        let left = s.peers(Time(30 * MIN), &h, false, 50, false, &mut rng);
        assert_eq!(
            left,
            vec![addr(2)],
            "the peer announced at 0 expires at 30 minutes"
        );
        // A re-announce refreshes the expiry.
        assert_eq!(s.announce(Time(35 * MIN), h, addr(2), true), Stored::Refreshed);
        assert_eq!(s.count(Time(64 * MIN), &h), 1);
        s.expire(Time(65 * MIN));
        assert_eq!((s.hashes(), s.peers_held()), (0, 0));
    }

    #[test]
    fn swarms_and_the_store_are_capped() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut s = PeerStore::new(3, 4, 30 * MIN);
        let h = [1u8; 20];
        for i in 0..4 {
            s.announce(Time(MIN * i), h, addr(i), false);
        }
        assert_eq!(
            s.announce(Time(5 * MIN), h, addr(99), false),
            Stored::ReplacedOldest
        );
        let mut got = s.peers(Time(5 * MIN), &h, false, 50, false, &mut rng);
        got.sort();
        assert_eq!(got, vec![addr(1), addr(2), addr(3), addr(99)]);
        // Three info-hashes max: a fourth pushes out the smallest.
        s.announce(Time::ZERO, [2; 20], addr(1), false);
        s.announce(Time::ZERO, [3; 20], addr(1), false);
        s.announce(Time::ZERO, [3; 20], addr(2), false);
        assert_eq!(
            s.announce(Time::ZERO, [4; 20], addr(1), false),
            Stored::EvictedSwarm
        );
        assert_eq!(s.hashes(), 3);
        assert_eq!(s.count(Time::ZERO, &[2; 20]), 0);
        // A flood of announces for fresh hashes never grows past the caps.
        for i in 0..1000u32 {
            let mut h = [0u8; 20];
            h[..4].copy_from_slice(&i.to_be_bytes());
            s.announce(Time::ZERO, h, addr(i), false);
        }
        assert!(s.hashes() <= 3 && s.peers_held() <= 12);
    }

    #[test]
    fn peers_are_sampled_per_family_and_noseed_prefers_leechers() {
        let mut rng = SmallRng::seed_from_u64(5);
        let mut s = PeerStore::new(10, 100, 30 * MIN);
        let h = [1u8; 20];
        for i in 0..40 {
            s.announce(Time::ZERO, h, addr(i), i < 30);
        }
        let v6: SocketAddr = "[2001:db8::1]:1".parse().unwrap();
        s.announce(Time::ZERO, h, v6, false);
        let got = s.peers(Time::ZERO, &h, false, 10, true, &mut rng);
        assert_eq!(got.len(), 10);
        // The 10 non-seeds are addr(30..40).
        assert!(got.iter().all(|a| *a >= addr(30) && a.is_ipv4()));
        assert_eq!(s.peers(Time::ZERO, &h, true, 10, false, &mut rng), vec![v6]);
    }

    #[test]
    fn bloom_filter_matches_the_bep33_test_vector() {
        // "Inserting the addresses 192.0.2.0 - 192.0.2.255 and 2001:DB8:: - 2001:DB8::3E7 (ranges are
        // inclusive) into a bloom filter must result in the following array of bytes"
        let expected = "F6C3F5EAA07FFD91BDE89F777F26FB2BFF37BDB8FB2BBAA2FD3DDDE7BACFFF75EE7CCBAE\
FE5EEDB1FBFAFF67F6ABFF5E43DDBCA3FD9B9FFDF4FFD3E9DFF12D1BDF59DB53DBE9FA5B\
7FF3B8FDFCDE1AFB8BEDD7BE2F3EE71EBBBFE93BCDEEFE148246C2BC5DBFF7E7EFDCF24F\
D8DC7ADFFD8FFFDFDDFFF7A4BBEEDF5CB95CE81FC7FCFF1FF4FFFFDFE5F7FDCBB7FD79B3\
FA1FC77BFE07FFF905B7B7FFC7FEFEFFE0B8370BB0CD3F5B7F2BD93FEB4386CFDD6F7FD5\
BFAF2E9EBFFFFEECD67ADBF7C67F17EFD5D75EBA6FFEBA7FFF47A91EB1BFBB53E8ABFB57\
62ABE8FF237279BFEFBFEEF5FFC5FEBFDFE5ADFFADFEE1FB737FFFFBFD9F6AEFFEEE76B6\
FD8F72EF";
        let mut b = Bloom::new();
        for i in 0..=255u8 {
            b.insert_ip(IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, i)));
        }
        for i in 0..=0x3e7u16 {
            b.insert_ip(IpAddr::V6(std::net::Ipv6Addr::new(
                0x2001, 0xdb8, 0, 0, 0, 0, 0, i,
            )));
        }
        let hex: String = b.0.iter().map(|x| format!("{x:02X}")).collect();
        assert_eq!(hex, expected);
        // "For the 1256 inserted values the calculated estimate should be 1224.9308"
        assert!((b.estimate() - 1224.9308).abs() < 0.001, "{}", b.estimate());
        assert_eq!(Bloom::new().estimate(), 0.0);
    }

    #[test]
    fn blooms_split_seeds_from_peers() {
        let mut s = PeerStore::new(10, 100, 30 * MIN);
        let h = [1u8; 20];
        for i in 0..20 {
            s.announce(Time::ZERO, h, addr(i), i < 5);
        }
        let (seeds, peers) = s.blooms(Time::ZERO, &h).unwrap();
        assert_eq!(seeds.estimate().round(), 5.0);
        assert_eq!(peers.estimate().round(), 15.0);
        assert!(s.blooms(Time::ZERO, &[9; 20]).is_none());
    }
}
