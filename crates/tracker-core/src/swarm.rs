//! One torrent's swarm in a compact layout: IPv4 and IPv6 peers in two vectors of fixed-size records, each
//! ordered leechers first and seeders after, and (only for large swarms) a hash index from peer id to
//! position that stores nothing but 4-byte positions.
//!
//! Positions are "tags": the position in its vector, with bit 31 set for the IPv6 vector. Every operation
//! that moves peers reports the moves, and the index follows them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use hashbrown::HashTable;
use metainfo::InfoHashV1;
use rand::Rng;

use crate::hash::HashKey;
use crate::time::Secs;

/// Flag: the peer sent a `key`.
pub(crate) const HAS_KEY: u8 = 1;
/// Flag: this peer's `completed` event was counted.
pub(crate) const COUNTED: u8 = 2;
/// Flag: the peer's last announce was `paused` (BEP 21: it will download nothing more).
pub(crate) const PAUSED: u8 = 4;

/// Everything about a peer but its IP address: 72 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PeerCore {
    /// `uploaded` of its last announce.
    pub uploaded: u64,
    /// `downloaded` of its last announce.
    pub downloaded: u64,
    /// `left` of its last announce.
    pub left: u64,
    /// Its `key` (meaningful with [`HAS_KEY`]).
    pub key: u32,
    /// Its user (private mode), else 0.
    pub user: u32,
    /// When it first announced.
    pub first: Secs,
    /// When it last announced.
    pub last: Secs,
    /// Bytes per second uploaded between its last two announces.
    pub up_rate: f32,
    /// Bytes per second downloaded between its last two announces.
    pub down_rate: f32,
    /// Its peer id.
    pub peer_id: [u8; 20],
    /// Its port.
    pub port: u16,
    /// [`HAS_KEY`], [`COUNTED`], [`PAUSED`].
    pub flags: u8,
}

impl PeerCore {
    pub(crate) fn is_seed(&self) -> bool {
        self.left == 0
    }

    /// Seeders and paused partial seeds want no seeders in their peer lists.
    pub(crate) fn wants_no_seeds(&self) -> bool {
        self.left == 0 || self.flags & PAUSED != 0
    }
}

/// A peer: its core and its address bytes (80 bytes for IPv4, 88 for IPv6).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Peer<A> {
    pub core: PeerCore,
    pub ip: A,
}

/// An address family's address bytes.
pub(crate) trait Family: Copy + Eq {
    /// Tag bit for this family's vector.
    const TAG: u32;
    /// The socket address type handed out.
    type Sock;
    fn sock(self, port: u16) -> Self::Sock;
    fn ip(self) -> IpAddr;
}

impl Family for [u8; 4] {
    const TAG: u32 = 0;
    type Sock = SocketAddrV4;
    fn sock(self, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(self), port)
    }
    fn ip(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(self))
    }
}

impl Family for [u8; 16] {
    const TAG: u32 = V6_BIT;
    type Sock = SocketAddrV6;
    fn sock(self, port: u16) -> SocketAddrV6 {
        SocketAddrV6::new(Ipv6Addr::from(self), port, 0, 0)
    }
    fn ip(self) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(self))
    }
}

/// Bit 31 of a tag: the IPv6 vector.
const V6_BIT: u32 = 1 << 31;
/// Index values at and above this are temporary, while entries are being moved (tags stay below, as
/// positions are below 2^30).
const TEMP: u32 = 0xFFFF_FF00;

/// A peer's place in its torrent.
pub(crate) type Tag = u32;

fn tag_pos(tag: Tag) -> usize {
    (tag & !V6_BIT) as usize
}

fn pos_tag<A: Family>(pos: usize) -> Tag {
    // Positions stay below 2^30 (SwarmConfig::validate bounds max_peers_per_torrent).
    (pos as u32) | A::TAG
}

/// Up to two position moves `(from, to)` within one vector.
type Moves = [Option<(usize, usize)>; 2];

/// One family's peers: leechers in `[0, leechers)`, seeders in `[leechers, len)`.
#[derive(Debug, Clone)]
pub(crate) struct Peers<A> {
    pub list: Vec<Peer<A>>,
    pub leechers: u32,
}

impl<A> Default for Peers<A> {
    fn default() -> Self {
        Peers {
            list: Vec::new(),
            leechers: 0,
        }
    }
}

/// Bytes of one swarm's record, without its peers.
pub(crate) const TORRENT_BYTES: usize = std::mem::size_of::<Torrent>();
/// Bytes of an IPv4 peer's record.
#[cfg(test)]
pub(crate) const PEER_V4_BYTES: usize = std::mem::size_of::<Peer<[u8; 4]>>();
/// Bytes of an IPv6 peer's record.
pub(crate) const PEER_V6_BYTES: usize = std::mem::size_of::<Peer<[u8; 16]>>();

/// Room for one more element, growing by an eighth (at least one) instead of doubling: small swarms are the
/// common case, and doubling would waste up to half of their memory.
pub(crate) fn reserve_one<T>(v: &mut Vec<T>, min_step: usize) {
    if v.len() == v.capacity() {
        v.reserve_exact((v.len() / 8).max(min_step));
    }
}

/// Give back memory after removals: shrink when more than a quarter is unused.
pub(crate) fn trim<T>(v: &mut Vec<T>) {
    if v.capacity() > v.len() + v.len() / 4 {
        v.shrink_to(v.len() + v.len() / 8);
    }
}

impl<A: Family> Peers<A> {
    fn leechers(&self) -> usize {
        self.leechers as usize
    }

    /// Add a peer to its part; returns its position and the seeder it displaced, if any.
    fn push(&mut self, peer: Peer<A>) -> (usize, Moves) {
        reserve_one(&mut self.list, 1);
        let len = self.list.len();
        let seed = peer.core.is_seed();
        self.list.push(peer);
        if seed {
            return (len, [None, None]);
        }
        let l = self.leechers();
        self.leechers += 1;
        if l < len {
            self.list.swap(l, len);
            (l, [Some((l, len)), None])
        } else {
            (l, [None, None])
        }
    }

    /// Remove the peer at `pos`, keeping the partition; returns it and the moves of the others.
    fn remove(&mut self, pos: usize) -> Option<(Peer<A>, Moves)> {
        let len = self.list.len();
        if pos >= len {
            return None;
        }
        let l = self.leechers();
        if pos < l {
            let last_leecher = l - 1;
            self.list.swap(pos, last_leecher);
            self.list.swap(last_leecher, len - 1);
            let peer = self.list.pop()?;
            self.leechers -= 1;
            let first = (last_leecher != pos).then_some((last_leecher, pos));
            let second = (len - 1 != last_leecher).then_some((len - 1, last_leecher));
            Some((peer, [first, second]))
        } else {
            let peer = self.list.swap_remove(pos);
            Some((peer, [(len - 1 != pos).then_some((len - 1, pos)), None]))
        }
    }

    /// Move the peer at `pos` to the seeder or leecher part; returns its new position and the moves.
    fn repartition(&mut self, pos: usize, seed: bool) -> (usize, Moves) {
        let l = self.leechers();
        let target = if seed && pos < l {
            self.leechers -= 1;
            l - 1
        } else if !seed && pos >= l && pos < self.list.len() {
            self.leechers += 1;
            l
        } else {
            return (pos, [None, None]);
        };
        if target == pos {
            return (pos, [None, None]);
        }
        self.list.swap(pos, target);
        (target, [Some((target, pos)), Some((pos, target))])
    }

    /// A random run of up to `n` peers from the leechers (or everyone), skipping position `skip`.
    fn sample(
        &self,
        skip: Option<usize>,
        leechers_only: bool,
        n: usize,
        rng: &mut impl Rng,
        out: &mut Vec<A::Sock>,
    ) {
        let range = if leechers_only {
            self.leechers()
        } else {
            self.list.len()
        };
        if n == 0 || range == 0 {
            return;
        }
        let start = rng.random_range(0..range);
        for k in 0..range {
            let pos = if start + k >= range {
                start + k - range
            } else {
                start + k
            };
            if Some(pos) == skip {
                continue;
            }
            if let Some(p) = self.list.get(pos) {
                out.push(p.ip.sock(p.core.port));
            }
            if out.len() >= n {
                break;
            }
        }
    }
}

/// A swarm and its counters.
#[derive(Debug, Clone)]
pub(crate) struct Torrent {
    pub info_hash: InfoHashV1,
    pub v4: Peers<[u8; 4]>,
    pub v6: Peers<[u8; 16]>,
    /// Peer id -> tag, only while the swarm is large (a linear scan of a few dozen records is as fast).
    index: Option<Box<HashTable<Tag>>>,
    /// Completed downloads counted.
    pub completed: u32,
    /// The torrent's size if known (registered with a size), else the largest `left + downloaded` seen.
    pub size: u64,
    /// Whether `size` is the known size.
    pub size_known: bool,
}

/// What a caller needs about a peer found by id.
fn id_of(v4: &Peers<[u8; 4]>, v6: &Peers<[u8; 16]>, tag: Tag) -> Option<[u8; 20]> {
    if tag & V6_BIT == 0 {
        v4.list.get(tag_pos(tag)).map(|p| p.core.peer_id)
    } else {
        v6.list.get(tag_pos(tag)).map(|p| p.core.peer_id)
    }
}

impl Torrent {
    pub(crate) fn new(info_hash: InfoHashV1, size: Option<u64>, completed: u32) -> Self {
        Torrent {
            info_hash,
            v4: Peers::default(),
            v6: Peers::default(),
            index: None,
            completed,
            size: size.unwrap_or(0),
            size_known: size.is_some(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.v4.list.len() + self.v6.list.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn leechers(&self) -> u32 {
        self.v4.leechers + self.v6.leechers
    }

    pub(crate) fn seeders(&self) -> u32 {
        (self.len() as u32).saturating_sub(self.leechers())
    }

    #[cfg(test)]
    pub(crate) fn has_index(&self) -> bool {
        self.index.is_some()
    }

    /// The peer with this id.
    pub(crate) fn find(&self, key: &HashKey, id: &[u8; 20]) -> Option<Tag> {
        if let Some(index) = &self.index {
            return index
                .find(key.hash(id), |&t| {
                    id_of(&self.v4, &self.v6, t).as_ref() == Some(id)
                })
                .copied();
        }
        if let Some(pos) = self.v4.list.iter().position(|p| &p.core.peer_id == id) {
            return Some(pos_tag::<[u8; 4]>(pos));
        }
        self.v6
            .list
            .iter()
            .position(|p| &p.core.peer_id == id)
            .map(pos_tag::<[u8; 16]>)
    }

    pub(crate) fn core(&self, tag: Tag) -> Option<&PeerCore> {
        if tag & V6_BIT == 0 {
            self.v4.list.get(tag_pos(tag)).map(|p| &p.core)
        } else {
            self.v6.list.get(tag_pos(tag)).map(|p| &p.core)
        }
    }

    pub(crate) fn core_mut(&mut self, tag: Tag) -> Option<&mut PeerCore> {
        if tag & V6_BIT == 0 {
            self.v4.list.get_mut(tag_pos(tag)).map(|p| &mut p.core)
        } else {
            self.v6.list.get_mut(tag_pos(tag)).map(|p| &mut p.core)
        }
    }

    pub(crate) fn ip(&self, tag: Tag) -> Option<IpAddr> {
        if tag & V6_BIT == 0 {
            self.v4.list.get(tag_pos(tag)).map(|p| p.ip.ip())
        } else {
            self.v6.list.get(tag_pos(tag)).map(|p| p.ip.ip())
        }
    }

    /// The tag of the `flat`-th peer, counting IPv4 peers first.
    pub(crate) fn tag_at(&self, flat: usize) -> Option<Tag> {
        let n4 = self.v4.list.len();
        if flat < n4 {
            Some(pos_tag::<[u8; 4]>(flat))
        } else if flat - n4 < self.v6.list.len() {
            Some(pos_tag::<[u8; 16]>(flat - n4))
        } else {
            None
        }
    }

    /// Update the index after moves within the family of `tag_bit`.
    fn relocate(&mut self, key: &HashKey, tag_bit: u32, moves: Moves) {
        let Some(index) = self.index.as_deref_mut() else {
            return;
        };
        let moves = moves.iter().flatten().map(|&(from, to)| {
            let (from, to) = ((from as u32) | tag_bit, (to as u32) | tag_bit);
            (id_of(&self.v4, &self.v6, to).map(|id| key.hash(&id)), from, to)
        });
        let moves: [Option<(Option<u64>, u32, u32)>; 2] = {
            let mut it = moves;
            [it.next(), it.next()]
        };
        // Two phases through unique temporary values, so that a swap never leaves two entries with one value.
        for (k, m) in moves.iter().enumerate() {
            if let Some((Some(hash), from, _)) = m {
                if let Some(v) = index.find_mut(*hash, |&v| v == *from) {
                    *v = TEMP + k as u32;
                }
            }
        }
        for (k, m) in moves.iter().enumerate() {
            if let Some((Some(hash), _, to)) = m {
                if let Some(v) = index.find_mut(*hash, |&v| v == TEMP + k as u32) {
                    *v = *to;
                }
            }
        }
    }

    fn index_insert(&mut self, key: &HashKey, tag: Tag) {
        let Some(index) = self.index.as_deref_mut() else {
            return;
        };
        let (v4, v6) = (&self.v4, &self.v6);
        if let Some(id) = id_of(v4, v6, tag) {
            index.insert_unique(key.hash(&id), tag, |&t| {
                id_of(v4, v6, t).map_or(0, |id| key.hash(&id))
            });
        }
    }

    /// Add a peer (its id must not be in the swarm); returns its tag.
    pub(crate) fn insert(&mut self, key: &HashKey, core: PeerCore, ip: IpAddr) -> Tag {
        let tag = match ip {
            IpAddr::V4(ip) => {
                let (pos, moves) = self.v4.push(Peer {
                    core,
                    ip: ip.octets(),
                });
                self.relocate(key, 0, moves);
                pos_tag::<[u8; 4]>(pos)
            }
            IpAddr::V6(ip) => {
                let (pos, moves) = self.v6.push(Peer {
                    core,
                    ip: ip.octets(),
                });
                self.relocate(key, V6_BIT, moves);
                pos_tag::<[u8; 16]>(pos)
            }
        };
        self.index_insert(key, tag);
        tag
    }

    /// Remove a peer; returns it.
    pub(crate) fn remove(&mut self, key: &HashKey, tag: Tag) -> Option<PeerCore> {
        let id = id_of(&self.v4, &self.v6, tag)?;
        if let Some(index) = self.index.as_deref_mut() {
            if let Ok(entry) = index.find_entry(key.hash(&id), |&v| v == tag) {
                entry.remove();
            }
        }
        let core = if tag & V6_BIT == 0 {
            let (peer, moves) = self.v4.remove(tag_pos(tag))?;
            self.relocate(key, 0, moves);
            peer.core
        } else {
            let (peer, moves) = self.v6.remove(tag_pos(tag))?;
            self.relocate(key, V6_BIT, moves);
            peer.core
        };
        Some(core)
    }

    /// Put a peer whose `left` changed into the right part; returns its new tag.
    pub(crate) fn repartition(&mut self, key: &HashKey, tag: Tag) -> Tag {
        let Some(seed) = self.core(tag).map(PeerCore::is_seed) else {
            return tag;
        };
        if tag & V6_BIT == 0 {
            let (pos, moves) = self.v4.repartition(tag_pos(tag), seed);
            self.relocate(key, 0, moves);
            pos_tag::<[u8; 4]>(pos)
        } else {
            let (pos, moves) = self.v6.repartition(tag_pos(tag), seed);
            self.relocate(key, V6_BIT, moves);
            pos_tag::<[u8; 16]>(pos)
        }
    }

    /// Give a peer a new address; returns its tag (new if it changed family).
    pub(crate) fn set_addr(&mut self, key: &HashKey, tag: Tag, addr: SocketAddr) -> Tag {
        match (addr.ip(), tag & V6_BIT == 0) {
            (IpAddr::V4(ip), true) => {
                if let Some(p) = self.v4.list.get_mut(tag_pos(tag)) {
                    p.ip = ip.octets();
                    p.core.port = addr.port();
                }
                tag
            }
            (IpAddr::V6(ip), false) => {
                if let Some(p) = self.v6.list.get_mut(tag_pos(tag)) {
                    p.ip = ip.octets();
                    p.core.port = addr.port();
                }
                tag
            }
            (ip, _) => match self.remove(key, tag) {
                Some(mut core) => {
                    core.port = addr.port();
                    self.insert(key, core, ip)
                }
                None => tag,
            },
        }
    }

    /// The peer whose last announce is the oldest.
    pub(crate) fn oldest(&self) -> Option<Tag> {
        let v4 = self
            .v4
            .list
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.core.last)
            .map(|(i, p)| (p.core.last, pos_tag::<[u8; 4]>(i)));
        let v6 = self
            .v6
            .list
            .iter()
            .enumerate()
            .min_by_key(|(_, p)| p.core.last)
            .map(|(i, p)| (p.core.last, pos_tag::<[u8; 16]>(i)));
        match (v4, v6) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b.1 } else { a.1 }),
            (a, b) => a.or(b).map(|x| x.1),
        }
    }

    /// Up to `n` other peers, at random, from the requester's family first and then the other one; only
    /// leechers when `no_seeds`.
    pub(crate) fn select(
        &self,
        requester: Option<Tag>,
        prefer_v6: bool,
        no_seeds: bool,
        n: usize,
        rng: &mut impl Rng,
    ) -> (Vec<SocketAddrV4>, Vec<SocketAddrV6>) {
        let skip4 = requester.filter(|t| t & V6_BIT == 0).map(tag_pos);
        let skip6 = requester.filter(|t| t & V6_BIT != 0).map(tag_pos);
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        if prefer_v6 {
            self.v6.sample(skip6, no_seeds, n, rng, &mut v6);
            self.v4.sample(skip4, no_seeds, n - v6.len(), rng, &mut v4);
        } else {
            self.v4.sample(skip4, no_seeds, n, rng, &mut v4);
            self.v6.sample(skip6, no_seeds, n - v4.len(), rng, &mut v6);
        }
        (v4, v6)
    }

    /// Build the index when the swarm has grown past `threshold` peers; drop it below half of that; give
    /// back unused memory.
    pub(crate) fn maintain(&mut self, key: &HashKey, threshold: usize) {
        let len = self.len();
        if self.index.is_none() && len > threshold {
            let mut index = HashTable::with_capacity(len);
            let (v4, v6) = (&self.v4, &self.v6);
            let hasher = |t: &Tag| id_of(v4, v6, *t).map_or(0, |id| key.hash(&id));
            for tag in (0..v4.list.len())
                .map(pos_tag::<[u8; 4]>)
                .chain((0..v6.list.len()).map(pos_tag::<[u8; 16]>))
            {
                index.insert_unique(hasher(&tag), tag, hasher);
            }
            self.index = Some(Box::new(index));
        } else if self.index.is_some() && len <= threshold / 2 {
            self.index = None;
        }
    }

    /// Give back memory after removals.
    pub(crate) fn trim(&mut self, key: &HashKey) {
        trim(&mut self.v4.list);
        trim(&mut self.v6.list);
        let (v4, v6) = (&self.v4, &self.v6);
        if let Some(index) = self.index.as_deref_mut() {
            if index.capacity() > 2 * index.len() + 16 {
                index.shrink_to(index.len(), |t| id_of(v4, v6, *t).map_or(0, |id| key.hash(&id)));
            }
        }
    }

    /// Every peer, IPv4 first, with its socket address.
    pub(crate) fn peers(&self) -> impl Iterator<Item = (&PeerCore, SocketAddr)> {
        let v4 = self
            .v4
            .list
            .iter()
            .map(|p| (&p.core, SocketAddr::V4(p.ip.sock(p.core.port))));
        let v6 = self
            .v6
            .list
            .iter()
            .map(|p| (&p.core, SocketAddr::V6(p.ip.sock(p.core.port))));
        v4.chain(v6)
    }

    /// Check this swarm's invariants (for tests): partitions, unique ids, index agreement.
    #[cfg(test)]
    pub(crate) fn check(&self, key: &HashKey) -> Result<(), String> {
        fn part<A: Family>(p: &Peers<A>) -> Result<(), String> {
            let l = p.leechers as usize;
            if l > p.list.len() {
                return Err(format!("leechers {l} > len {}", p.list.len()));
            }
            for (i, peer) in p.list.iter().enumerate() {
                if (i < l) == peer.core.is_seed() {
                    return Err(format!(
                        "peer at {i} (left {}) on the wrong side of {l}",
                        peer.core.left
                    ));
                }
            }
            Ok(())
        }
        part(&self.v4)?;
        part(&self.v6)?;
        let mut ids: Vec<[u8; 20]> = self.peers().map(|(c, _)| c.peer_id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        if ids.len() != n {
            return Err("duplicate peer id".into());
        }
        if let Some(index) = &self.index {
            if index.len() != n {
                return Err(format!("index has {} entries for {n} peers", index.len()));
            }
            for (flat, (core, _)) in self.peers().enumerate() {
                let found = index.find(key.hash(&core.peer_id), |&t| {
                    id_of(&self.v4, &self.v6, t) == Some(core.peer_id)
                });
                if found.copied() != self.tag_at(flat) {
                    return Err(format!("index points elsewhere for peer {flat}"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_compact() {
        assert_eq!(std::mem::size_of::<PeerCore>(), 72);
        assert_eq!(PEER_V4_BYTES, 80);
        assert_eq!(PEER_V6_BYTES, 88);
        assert_eq!(TORRENT_BYTES, 112);
    }
}
