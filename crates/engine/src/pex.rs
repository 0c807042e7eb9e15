//! Peer exchange (BEP 11, `ut_pex`): what we tell each peer about our other peers, and what we take from
//! what peers tell us. Pure: time is an argument.
//!
//! - **Sending** ([`PexOutbox`], one per peer that enabled `ut_pex`): the first message lists the peers we
//!   are connected to (capped at [`PexConfig::max_initial`]); every [`PexConfig::interval`] after that,
//!   the difference since the last message: peers connected since (`added`, `added6`, with their
//!   `added.f` flags) and peers gone since (`dropped`, `dropped6`), at most
//!   [`PexConfig::max_added`] and [`PexConfig::max_dropped`] of each (BEP 11: "Except for the initial PEX
//!   message the combined amount of added v4/v6 contacts should not exceed 50 entries. The same applies to
//!   dropped entries."). An empty difference sends nothing.
//! - **Receiving** ([`PexInbox`], one per torrent): each peer may send a message every
//!   [`PexConfig::min_receive_interval`] beyond a burst of [`PexConfig::receive_burst`] (BEP 11: "Clients
//!   must batch updates to send no more than 1 PEX message per minute"); faster ones are ignored. At most
//!   [`PexConfig::max_taken`] addresses are taken from one message, never two with the same IP (BEP 11:
//!   "Duplicate IP addresses (e.g. with different ports) should be ignored"), nor one already surfaced
//!   among the last [`PexConfig::max_known`].
//!
//! Private torrents (BEP 27) use none of this: the torrent neither offers `ut_pex` nor reads it.

use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use wire::{PexFlags, PexMessage};

use crate::{PeerKey, Time};

/// The extension id we ask peers to use for `ut_pex` messages to us (our `m` entry).
pub const OUR_UT_PEX: u8 = 1;

/// Settings of peer exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PexConfig {
    /// Offer and use `ut_pex` at all (private torrents never do, whatever this says).
    pub enabled: bool,
    /// Time between two messages to one peer (BEP 11: at most one a minute).
    pub interval: Duration,
    /// The first message to a peer goes this long after its extended handshake.
    pub first_delay: Duration,
    /// Peers listed in the first message at most.
    pub max_initial: usize,
    /// `added` + `added6` entries in later messages at most.
    pub max_added: usize,
    /// `dropped` + `dropped6` entries in later messages at most.
    pub max_dropped: usize,
    /// One message per this long from each peer is read, beyond the burst.
    pub min_receive_interval: Duration,
    /// Messages a peer may send back to back before the interval applies.
    pub receive_burst: u32,
    /// Addresses taken from one message at most.
    pub max_taken: usize,
    /// Addresses remembered as already surfaced (the oldest are forgotten first).
    pub max_known: usize,
}

impl Default for PexConfig {
    fn default() -> Self {
        PexConfig {
            enabled: true,
            interval: Duration::from_secs(60),
            first_delay: Duration::from_secs(5),
            max_initial: 100,
            max_added: 50,
            max_dropped: 50,
            min_receive_interval: Duration::from_secs(45),
            receive_burst: 2,
            max_taken: 50,
            max_known: 2000,
        }
    }
}

/// What we send one peer: who we told it about, and when the next message is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PexOutbox {
    /// Peers we listed as added and not yet as dropped.
    sent: BTreeSet<SocketAddr>,
    /// The first message has gone out.
    started: bool,
    /// When the next message is due.
    next: Time,
}

impl PexOutbox {
    /// A peer that enabled `ut_pex` at `now`: its first message is due after [`PexConfig::first_delay`].
    pub fn new(config: &PexConfig, now: Time) -> Self {
        PexOutbox {
            sent: BTreeSet::new(),
            started: false,
            next: now.plus(config.first_delay),
        }
    }

    /// When the next message is due.
    pub fn next_due(&self) -> Time {
        self.next
    }

    /// At or after [`next_due`](Self::next_due): the message for our current peers `current` (address
    /// to flags; the receiving peer itself must not be among them), or `None` if nothing changed since the
    /// last one. The next message is due an interval later either way. Calling early returns `None`.
    pub fn poll(
        &mut self,
        config: &PexConfig,
        now: Time,
        current: &BTreeMap<SocketAddr, PexFlags>,
    ) -> Option<PexMessage> {
        if now < self.next {
            return None;
        }
        self.next = now.plus(config.interval);
        let (max_added, max_dropped) = if self.started {
            (config.max_added, config.max_dropped)
        } else {
            (config.max_initial, config.max_dropped)
        };
        self.started = true;
        let added: Vec<(SocketAddr, PexFlags)> = current
            .iter()
            .filter(|(a, _)| !self.sent.contains(a))
            .take(max_added)
            .map(|(a, f)| (*a, *f))
            .collect();
        let dropped: Vec<SocketAddr> = self
            .sent
            .iter()
            .filter(|a| !current.contains_key(a))
            .take(max_dropped)
            .copied()
            .collect();
        if added.is_empty() && dropped.is_empty() {
            return None;
        }
        let mut m = PexMessage::default();
        for (a, f) in added {
            self.sent.insert(a);
            match a {
                SocketAddr::V4(v4) => m.added.push((v4, f)),
                SocketAddr::V6(v6) => m.added6.push((SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0), f)),
            }
        }
        for a in dropped {
            self.sent.remove(&a);
            match a {
                SocketAddr::V4(v4) => m.dropped.push(v4),
                SocketAddr::V6(v6) => m.dropped6.push(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
            }
        }
        Some(m)
    }
}

/// Counters of what [`PexInbox`] ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PexStats {
    /// Messages read.
    pub received: u64,
    /// Messages ignored because the peer sent them too fast.
    pub rate_limited: u64,
    /// Messages that were not valid `ut_pex` payloads.
    pub malformed: u64,
    /// Addresses surfaced.
    pub taken: u64,
}

/// One peer's allowance of messages (a token bucket of [`PexConfig::receive_burst`] tokens, one back per
/// [`PexConfig::min_receive_interval`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Allowance {
    tokens: f64,
    last: Time,
}

/// What we take from the peers' `ut_pex` messages, for one torrent.
#[derive(Debug, Clone, Default)]
pub struct PexInbox {
    allowance: BTreeMap<PeerKey, Allowance>,
    known: HashSet<SocketAddr>,
    order: VecDeque<SocketAddr>,
    stats: PexStats,
}

impl PexInbox {
    /// An inbox that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counters.
    pub fn stats(&self) -> PexStats {
        self.stats
    }

    /// A `ut_pex` payload from peer `key`: the new addresses worth dialling, with their flags (empty when
    /// the message came too fast, is malformed, or names nothing new).
    pub fn receive(
        &mut self,
        config: &PexConfig,
        now: Time,
        key: PeerKey,
        payload: &[u8],
    ) -> Vec<(SocketAddr, PexFlags)> {
        let burst = f64::from(config.receive_burst.max(1));
        let a = self.allowance.entry(key).or_insert(Allowance {
            tokens: burst,
            last: now,
        });
        let per = config.min_receive_interval.as_secs_f64();
        if per > 0.0 {
            a.tokens = (a.tokens + now.since(a.last).as_secs_f64() / per).min(burst);
        } else {
            a.tokens = burst;
        }
        a.last = a.last.max(now);
        if a.tokens < 1.0 {
            self.stats.rate_limited = self.stats.rate_limited.saturating_add(1);
            return Vec::new();
        }
        a.tokens -= 1.0;
        let Ok(m) = PexMessage::parse(payload) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return Vec::new();
        };
        self.stats.received = self.stats.received.saturating_add(1);
        let candidates = m
            .added
            .iter()
            .map(|(a, f)| (SocketAddr::V4(*a), *f))
            .chain(m.added6.iter().map(|(a, f)| (SocketAddr::V6(*a), *f)));
        let mut ips: HashSet<IpAddr> = HashSet::new();
        let mut out = Vec::new();
        for (addr, flags) in candidates {
            if out.len() >= config.max_taken {
                break;
            }
            if !usable(&addr) || !ips.insert(addr.ip()) || self.known.contains(&addr) {
                continue;
            }
            self.remember(config, addr);
            out.push((addr, flags));
        }
        self.stats.taken = self.stats.taken.saturating_add(out.len() as u64);
        out
    }

    /// Peer `key` is gone: forget its allowance.
    pub fn peer_gone(&mut self, key: PeerKey) {
        self.allowance.remove(&key);
    }

    fn remember(&mut self, config: &PexConfig, addr: SocketAddr) {
        while self.order.len() >= config.max_known.max(1) {
            if let Some(old) = self.order.pop_front() {
                self.known.remove(&old);
            }
        }
        self.known.insert(addr);
        self.order.push_back(addr);
    }
}

/// An address a peer could be dialled at: a port, and an IP that is not unspecified, multicast or
/// broadcast.
fn usable(addr: &SocketAddr) -> bool {
    if addr.port() == 0 {
        return false;
    }
    match addr.ip() {
        IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_multicast() || ip.is_broadcast()),
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
    }
}

/// The BEP 11 flags we give a peer we are connected to.
pub fn flags_of(seed: bool, outgoing: bool, handshake: Option<&wire::ExtendedHandshake>) -> PexFlags {
    let mut f = 0u8;
    if handshake.is_some_and(|h| h.prefers_encryption) {
        f |= PexFlags::PREFERS_ENCRYPTION;
    }
    if seed || handshake.is_some_and(|h| h.upload_only) {
        f |= PexFlags::SEED;
    }
    if handshake.is_some_and(|h| h.extension_id("ut_holepunch").is_some()) {
        f |= PexFlags::HOLEPUNCH;
    }
    if outgoing {
        f |= PexFlags::REACHABLE;
    }
    PexFlags(f)
}

/// The address other peers can reach a peer at: the one we dialled, or for a peer that dialled us its IP
/// with the listen port of its extended handshake (`p`); `None` if it gave none.
pub fn reachable_addr(
    addr: SocketAddr,
    outgoing: bool,
    handshake: Option<&wire::ExtendedHandshake>,
) -> Option<SocketAddr> {
    if outgoing {
        return Some(addr);
    }
    let port = handshake.and_then(|h| h.p)?;
    Some(SocketAddr::new(addr.ip(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Time {
        Time(Duration::from_secs(s))
    }

    fn addr(i: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 6881))
    }

    fn peers(range: std::ops::Range<u16>) -> BTreeMap<SocketAddr, PexFlags> {
        range.map(|i| (addr(i), PexFlags(PexFlags::REACHABLE))).collect()
    }

    /// BEP 11: "Clients must batch updates to send no more than 1 PEX message per minute." and "Except for
    /// the initial PEX message the combined amount of added v4/v6 contacts should not exceed 50 entries.
    /// The same applies to dropped entries."
    #[test]
    fn outbox_sends_the_full_list_first_then_capped_diffs_once_a_minute() {
        let c = PexConfig::default();
        let mut o = PexOutbox::new(&c, at(0));
        assert_eq!(o.next_due(), at(5));
        assert_eq!(o.poll(&c, at(4), &peers(0..3)), None);
        let first = o.poll(&c, at(5), &peers(0..130)).unwrap();
        assert_eq!(first.added.len(), c.max_initial);
        assert!(first.dropped.is_empty());
        assert!(first.added.iter().all(|(_, f)| f.reachable()));
        assert_eq!(o.next_due(), at(65));
        // Not before the minute is up.
        assert_eq!(o.poll(&c, at(30), &peers(0..130)), None);
        // 30 remaining + 0..20 gone: 30 added, 20 dropped.
        let second = o.poll(&c, at(65), &peers(20..130)).unwrap();
        assert_eq!(second.added.len(), 30);
        assert_eq!(second.dropped.len(), 20);
        // A big change is spread over several messages, 50 at a time.
        let third = o.poll(&c, at(125), &peers(500..700)).unwrap();
        assert_eq!((third.added.len(), third.dropped.len()), (50, 50));
        // "An added contact must not be dropped in the same message."
        let added: BTreeSet<_> = third.added.iter().map(|(a, _)| SocketAddr::V4(*a)).collect();
        assert!(third.dropped.iter().all(|d| !added.contains(&SocketAddr::V4(*d))));
        // Nothing changed: nothing sent.
        let mut q = PexOutbox::new(&c, at(0));
        q.poll(&c, at(5), &peers(0..3)).unwrap();
        assert_eq!(q.poll(&c, at(65), &peers(0..3)), None);
        assert_eq!(q.next_due(), at(125));
    }

    /// BEP 11: "a peer must only be included in an added field once a connection is successfully
    /// established and included in the dropped field once it is disconnected": a peer listed once is
    /// dropped once it leaves, IPv6 peers go in `added6` / `dropped6`.
    #[test]
    fn outbox_drops_what_it_added_in_both_families() {
        let c = PexConfig::default();
        let mut o = PexOutbox::new(&c, at(0));
        let v6: SocketAddr = "[2001:db8::1]:51413".parse().unwrap();
        let mut now = BTreeMap::new();
        now.insert(v6, PexFlags(PexFlags::SEED));
        now.insert(addr(1), PexFlags(0));
        let m = o.poll(&c, at(5), &now).unwrap();
        assert_eq!(m.added6.len(), 1);
        assert!(m.added6[0].1.seed());
        assert_eq!(m.added.len(), 1);
        let m = o.poll(&c, at(65), &BTreeMap::new()).unwrap();
        assert_eq!(m.dropped6.len(), 1);
        assert_eq!(m.dropped.len(), 1);
        assert!(m.added.is_empty() && m.added6.is_empty());
    }

    fn message(addrs: &[(SocketAddr, u8)]) -> Vec<u8> {
        let mut m = PexMessage::default();
        for (a, f) in addrs {
            match a {
                SocketAddr::V4(v) => m.added.push((*v, PexFlags(*f))),
                SocketAddr::V6(v) => m.added6.push((*v, PexFlags(*f))),
            }
        }
        m.encode()
    }

    /// BEP 11: "Duplicate IP addresses (e.g. with different ports) should be ignored" and "a client should
    /// avoid taking all its connection candidates from a single PEX source": unusable, repeated and
    /// already known addresses are skipped, and one message yields at most `max_taken`.
    #[test]
    fn inbox_takes_new_distinct_addresses_up_to_a_cap() {
        let c = PexConfig {
            max_taken: 3,
            ..PexConfig::default()
        };
        let mut i = PexInbox::new();
        let same_ip = SocketAddr::from(([10, 0, 0, 1], 7000));
        let payload = message(&[
            (addr(1), PexFlags::SEED),
            (same_ip, 0),
            (SocketAddr::from(([0, 0, 0, 0], 6881)), 0),
            (SocketAddr::from(([10, 0, 0, 9], 0)), 0),
            (SocketAddr::from(([224, 0, 0, 1], 6881)), 0),
            (addr(2), 0),
            (addr(3), 0),
            (addr(4), 0),
        ]);
        let got = i.receive(&c, at(0), PeerKey(1), &payload);
        assert_eq!(
            got,
            vec![
                (addr(1), PexFlags(PexFlags::SEED)),
                (addr(2), PexFlags(0)),
                (addr(3), PexFlags(0))
            ]
        );
        // The same addresses from another peer are not surfaced again; the new one is.
        let got = i.receive(&c, at(0), PeerKey(2), &message(&[(addr(1), 0), (addr(4), 0)]));
        assert_eq!(got, vec![(addr(4), PexFlags(0))]);
        assert_eq!(i.stats().taken, 4);
    }

    /// BEP 11: "Clients must batch updates to send no more than 1 PEX message per minute": beyond a small
    /// burst, a peer's messages that come faster than once per 45 s are ignored.
    #[test]
    fn inbox_ignores_messages_that_come_too_fast() {
        let c = PexConfig::default();
        let mut i = PexInbox::new();
        let k = PeerKey(7);
        assert_eq!(i.receive(&c, at(0), k, &message(&[(addr(1), 0)])).len(), 1);
        assert_eq!(i.receive(&c, at(1), k, &message(&[(addr(2), 0)])).len(), 1);
        assert!(i.receive(&c, at(2), k, &message(&[(addr(3), 0)])).is_empty());
        assert!(i.receive(&c, at(30), k, &message(&[(addr(3), 0)])).is_empty());
        assert_eq!(i.stats().rate_limited, 2);
        // 45 s after the burst one message is allowed again.
        assert_eq!(i.receive(&c, at(47), k, &message(&[(addr(3), 0)])).len(), 1);
        // Another peer has its own allowance; garbage is counted, not fatal.
        assert!(i.receive(&c, at(47), PeerKey(8), b"not bencode").is_empty());
        assert_eq!(i.stats().malformed, 1);
    }

    /// The remembered addresses are bounded: the oldest are forgotten (and may be surfaced again).
    #[test]
    fn inbox_memory_is_bounded() {
        let c = PexConfig {
            max_known: 2,
            receive_burst: 100,
            ..PexConfig::default()
        };
        let mut i = PexInbox::new();
        for n in 1..=3 {
            assert_eq!(
                i.receive(&c, at(0), PeerKey(1), &message(&[(addr(n), 0)])).len(),
                1
            );
        }
        assert_eq!(i.known.len(), 2);
        assert_eq!(
            i.receive(&c, at(0), PeerKey(1), &message(&[(addr(1), 0)])).len(),
            1
        );
    }

    #[test]
    fn flags_and_addresses_of_connected_peers() {
        let mut h = wire::ExtendedHandshake {
            p: Some(6000),
            prefers_encryption: true,
            ..Default::default()
        };
        h.m.insert("ut_holepunch".into(), 4);
        let f = flags_of(true, false, Some(&h));
        assert!(f.prefers_encryption() && f.seed() && f.holepunch() && !f.reachable() && !f.utp());
        assert!(flags_of(false, true, None).reachable());
        let remote = addr(9);
        assert_eq!(reachable_addr(remote, true, None), Some(remote));
        assert_eq!(reachable_addr(remote, false, None), None);
        assert_eq!(
            reachable_addr(remote, false, Some(&h)),
            Some(SocketAddr::new(remote.ip(), 6000))
        );
    }
}
