//! The routing table (BEP 5): k-buckets over the 160-bit id space, where only the bucket holding our own
//! id is ever split, node states good/questionable/bad, a small replacement cache per bucket, and at most
//! one entry per UDP address.
//!
//! Bucket `i` (for `i` below the last) holds the nodes whose ids share exactly `i` leading bits with ours;
//! the last bucket holds every node sharing at least as many, and is the one containing our id. Splitting it
//! appends a bucket: this is BEP 5's "the bucket is replaced by two new buckets each with half the range"
//! with the half not holding our id kept in place. The table holds at most `160 * k` nodes whatever it is
//! fed.

use std::net::SocketAddr;
use std::time::Duration;

use crate::krpc::NodeInfo;
use crate::{NodeId, Time};

/// Nodes kept per bucket as replacements for nodes that go bad.
pub const REPLACEMENTS: usize = 3;
/// Failed queries in a row after which a node is bad ("Nodes become bad when they fail to respond to
/// multiple queries in a row").
pub const BAD_AFTER_FAILS: u8 = 2;
/// Most buckets a table can have (one per bit of the id space).
pub const MAX_BUCKETS: usize = 160;

/// A node in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its id.
    pub id: NodeId,
    /// Its address.
    pub addr: SocketAddr,
    /// When it last answered one of our queries, or queried us (it has answered before: only nodes that
    /// answered enter the table). `None` for a node restored from a saved table and not heard from since.
    pub last_seen: Option<Time>,
    /// Queries in a row it failed to answer.
    pub fails: u8,
    /// Its id passes BEP 42 verification for its address.
    pub verified: bool,
}

/// BEP 5 node states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    /// "A good node is a node has responded to one of our queries within the last 15 minutes", or has
    /// responded before and queried us within the last 15 minutes.
    Good,
    /// "After 15 minutes of inactivity, a node becomes questionable."
    Questionable,
    /// "Nodes become bad when they fail to respond to multiple queries in a row."
    Bad,
}

impl Entry {
    /// A node that just answered us.
    pub fn new(id: NodeId, addr: SocketAddr, now: Time, verified: bool) -> Entry {
        Entry {
            id,
            addr,
            last_seen: Some(now),
            fails: 0,
            verified,
        }
    }
    /// Its state at `now`, where `good_for` is how long a node stays good without being heard (15 min).
    pub fn state(&self, now: Time, good_for: Duration) -> NodeState {
        if self.fails >= BAD_AFTER_FAILS {
            NodeState::Bad
        } else if self.fails == 0 && self.last_seen.is_some_and(|t| now.since(t) < good_for) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }
    /// Its contact info.
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// One k-bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    /// When a node in it last answered a ping, was added or was replaced (BEP 5's "last changed").
    pub last_changed: Time,
}

impl Bucket {
    fn new(now: Time) -> Bucket {
        Bucket {
            nodes: Vec::new(),
            replacements: Vec::new(),
            last_changed: now,
        }
    }
    /// The nodes.
    pub fn nodes(&self) -> &[Entry] {
        &self.nodes
    }
    /// The replacement cache.
    pub fn replacements(&self) -> &[Entry] {
        &self.replacements
    }
}

/// What happened to a node offered to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insert {
    /// It is new in the table.
    Added,
    /// It was there: refreshed.
    Updated,
    /// It took the place of a bad (or, being BEP 42 verified, an unverified) node.
    Replaced(Entry),
    /// The bucket is full but holds questionable nodes: the newcomer waits in the replacement cache and the
    /// caller should ping this node (the least recently seen questionable one); if it fails, the newcomer
    /// takes its place.
    PingFirst(NodeInfo),
    /// The bucket is full of good nodes: dropped.
    Full,
    /// Not accepted: our own id, or the id is already in the table at another, good address.
    Rejected,
}

/// The routing table of one node.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    own: NodeId,
    k: usize,
    good_for: Duration,
    buckets: Vec<Bucket>,
    /// At most one entry per public IP address (any number for loopback and private addresses).
    one_per_ip: bool,
}

/// Whether `ip` is on this machine or a private network (where many nodes sharing an address is normal).
fn local_ip(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v) => v.is_loopback() || v.is_private() || v.is_link_local(),
        std::net::IpAddr::V6(v) => {
            v.is_loopback() || (v.segments()[0] & 0xfe00) == 0xfc00 || (v.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

impl RoutingTable {
    /// An empty table around `own` with buckets of `k` nodes; nodes stay good for `good_for` unheard.
    pub fn new(own: NodeId, k: usize, good_for: Duration, now: Time) -> RoutingTable {
        RoutingTable {
            own,
            k: k.max(1),
            good_for,
            buckets: vec![Bucket::new(now)],
            one_per_ip: true,
        }
    }

    /// Whether a public IP address may hold only one entry (true by default; Sybil defence: one machine
    /// cannot fill a table by using many ports). Loopback and private addresses are never restricted.
    pub fn set_one_per_ip(&mut self, on: bool) {
        self.one_per_ip = on;
    }

    /// True if another entry (node or replacement) already uses `addr`'s IP and that IP is restricted.
    fn ip_taken(&self, addr: &SocketAddr) -> bool {
        self.one_per_ip
            && !local_ip(addr.ip())
            && self
                .buckets
                .iter()
                .flat_map(|b| b.nodes.iter().chain(b.replacements.iter()))
                .any(|e| e.addr.ip() == addr.ip() && e.addr != *addr)
    }

    /// Our id.
    pub fn own_id(&self) -> NodeId {
        self.own
    }
    /// Nodes per bucket.
    pub fn k(&self) -> usize {
        self.k
    }
    /// The buckets, farthest first; the last holds our id.
    pub fn buckets(&self) -> &[Bucket] {
        &self.buckets
    }
    /// Number of nodes (not counting replacements).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }
    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.buckets.iter().all(|b| b.nodes.is_empty())
    }
    /// All nodes.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }
    /// Counts of (good, questionable, bad) nodes at `now`.
    pub fn counts(&self, now: Time) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for e in self.entries() {
            match e.state(now, self.good_for) {
                NodeState::Good => c.0 += 1,
                NodeState::Questionable => c.1 += 1,
                NodeState::Bad => c.2 += 1,
            }
        }
        c
    }
    /// The state of an entry at `now`.
    pub fn state(&self, e: &Entry, now: Time) -> NodeState {
        e.state(now, self.good_for)
    }

    /// Index of the bucket `id` belongs in.
    pub fn bucket_index(&self, id: &NodeId) -> usize {
        self.own
            .common_prefix(id)
            .min(self.buckets.len().saturating_sub(1))
    }

    /// The entry with this address.
    pub fn get_by_addr(&self, addr: &SocketAddr) -> Option<&Entry> {
        self.entries().find(|e| e.addr == *addr)
    }

    /// The entry with this id.
    pub fn get(&self, id: &NodeId) -> Option<&Entry> {
        let b = self.buckets.get(self.bucket_index(id))?;
        b.nodes.iter().find(|e| e.id == *id)
    }

    fn locate_addr(&self, addr: &SocketAddr) -> Option<(usize, usize)> {
        self.buckets
            .iter()
            .enumerate()
            .find_map(|(bi, b)| b.nodes.iter().position(|e| e.addr == *addr).map(|i| (bi, i)))
    }

    /// Remove the node at `addr` (and any replacement there); returns it.
    pub fn remove_addr(&mut self, addr: &SocketAddr) -> Option<Entry> {
        for b in &mut self.buckets {
            b.replacements.retain(|e| e.addr != *addr);
        }
        let (bi, i) = self.locate_addr(addr)?;
        let b = self.buckets.get_mut(bi)?;
        if i < b.nodes.len() {
            Some(b.nodes.remove(i))
        } else {
            None
        }
    }

    /// True if a node with `id` at `addr`, were it to answer, would find room: not in the table, and its
    /// bucket has room, is splittable, or holds a node that is not good.
    pub fn would_accept(&self, id: &NodeId, addr: &SocketAddr, now: Time) -> bool {
        if *id == self.own
            || self.get_by_addr(addr).is_some()
            || self.get(id).is_some()
            || self.ip_taken(addr)
        {
            return false;
        }
        let bi = self.bucket_index(id);
        let Some(b) = self.buckets.get(bi) else {
            return false;
        };
        b.nodes.len() < self.k
            || self.can_split(bi)
            || b.nodes
                .iter()
                .any(|e| e.state(now, self.good_for) != NodeState::Good)
    }

    fn can_split(&self, bi: usize) -> bool {
        bi + 1 == self.buckets.len() && self.buckets.len() < MAX_BUCKETS
    }

    fn split_last(&mut self, now: Time) {
        let depth = self.buckets.len() - 1;
        let own = self.own;
        let mut fresh = Bucket::new(now);
        if let Some(last) = self.buckets.last_mut() {
            let (stay, go): (Vec<Entry>, Vec<Entry>) = last
                .nodes
                .drain(..)
                .partition(|e| own.common_prefix(&e.id) == depth);
            last.nodes = stay;
            fresh.nodes = go;
            let (stay, go): (Vec<Entry>, Vec<Entry>) = last
                .replacements
                .drain(..)
                .partition(|e| own.common_prefix(&e.id) == depth);
            last.replacements = stay;
            fresh.replacements = go;
            fresh.last_changed = last.last_changed;
        }
        self.buckets.push(fresh);
        // Refill the bucket that lost nodes from its own replacements.
        let k = self.k;
        if let Some(b) = self.buckets.get_mut(depth) {
            while b.nodes.len() < k && !b.replacements.is_empty() {
                let r = b.replacements.remove(0);
                b.nodes.push(r);
            }
        }
    }

    /// A node answered one of our queries (or is being restored): add or refresh it following BEP 5's
    /// rules, preferring BEP 42 verified nodes over unverified ones when a bucket is full.
    pub fn heard_from(&mut self, now: Time, id: NodeId, addr: SocketAddr, verified: bool) -> Insert {
        self.insert(Entry::new(id, addr, now, verified), now)
    }

    /// Offer an entry (as [`RoutingTable::heard_from`], keeping the entry's `last_seen`).
    pub fn insert(&mut self, entry: Entry, now: Time) -> Insert {
        if entry.id == self.own {
            return Insert::Rejected;
        }
        // One entry per address: the same node refreshed, or a node that changed its id.
        if let Some((bi, i)) = self.locate_addr(&entry.addr) {
            let same = self
                .buckets
                .get(bi)
                .and_then(|b| b.nodes.get(i))
                .is_some_and(|e| e.id == entry.id);
            if same {
                if let Some(b) = self.buckets.get_mut(bi) {
                    if let Some(e) = b.nodes.get_mut(i) {
                        e.last_seen = e.last_seen.max(entry.last_seen);
                        e.fails = 0;
                        e.verified = entry.verified;
                    }
                    b.last_changed = now;
                }
                return Insert::Updated;
            }
            self.remove_addr(&entry.addr);
        }
        if self.ip_taken(&entry.addr) {
            return Insert::Rejected;
        }
        // One address per id: a good node keeps its address; a node that is not good moves.
        if let Some(existing) = self.get(&entry.id) {
            if existing.state(now, self.good_for) == NodeState::Good {
                return Insert::Rejected;
            }
            let old = existing.addr;
            self.remove_addr(&old);
        }
        loop {
            let bi = self.bucket_index(&entry.id);
            let splittable = self.can_split(bi);
            let (k, good_for) = (self.k, self.good_for);
            let Some(b) = self.buckets.get_mut(bi) else {
                return Insert::Rejected;
            };
            if b.nodes.len() < k {
                b.replacements
                    .retain(|e| e.addr != entry.addr && e.id != entry.id);
                b.nodes.push(entry);
                b.last_changed = now;
                return Insert::Added;
            }
            if splittable {
                self.split_last(now);
                continue;
            }
            // Replace a bad node first (the one that failed most, then the least recently seen).
            let bad = b
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, e)| e.state(now, good_for) == NodeState::Bad)
                .max_by_key(|(_, e)| (e.fails, std::cmp::Reverse(e.last_seen)))
                .map(|(i, _)| i);
            if let Some(i) = bad {
                b.replacements
                    .retain(|e| e.addr != entry.addr && e.id != entry.id);
                if let Some(slot) = b.nodes.get_mut(i) {
                    let old = std::mem::replace(slot, entry);
                    b.last_changed = now;
                    return Insert::Replaced(old);
                }
            }
            // A verified newcomer takes the place of an unverified node (questionable ones first).
            if entry.verified {
                let unverified = b
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| !e.verified)
                    .min_by_key(|(_, e)| (e.state(now, good_for) == NodeState::Good, e.last_seen))
                    .map(|(i, _)| i);
                if let Some(i) = unverified {
                    b.replacements
                        .retain(|e| e.addr != entry.addr && e.id != entry.id);
                    if let Some(slot) = b.nodes.get_mut(i) {
                        let old = std::mem::replace(slot, entry);
                        b.last_changed = now;
                        return Insert::Replaced(old);
                    }
                }
            }
            // Questionable nodes: keep the newcomer as a replacement and ping the least recently seen.
            let questionable = b
                .nodes
                .iter()
                .filter(|e| e.state(now, good_for) == NodeState::Questionable)
                .min_by_key(|e| e.last_seen)
                .map(Entry::info);
            return match questionable {
                Some(q) => {
                    b.replacements
                        .retain(|e| e.addr != entry.addr && e.id != entry.id);
                    if b.replacements.len() >= REPLACEMENTS {
                        // Drop the stalest replacement.
                        if let Some(i) = b
                            .replacements
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, e)| e.last_seen)
                            .map(|(i, _)| i)
                        {
                            b.replacements.remove(i);
                        }
                    }
                    b.replacements.push(entry);
                    Insert::PingFirst(q)
                }
                None => Insert::Full,
            };
        }
    }

    /// A node we know queried us: it stays good ("has ever responded to one of our queries and has sent us
    /// a query within the last 15 minutes"). Only the same id at the same address counts.
    pub fn heard_query(&mut self, now: Time, id: &NodeId, addr: &SocketAddr) -> bool {
        let Some((bi, i)) = self.locate_addr(addr) else {
            return false;
        };
        match self.buckets.get_mut(bi).and_then(|b| b.nodes.get_mut(i)) {
            Some(e) if e.id == *id => {
                e.last_seen = Some(now);
                true
            }
            _ => false,
        }
    }

    /// A query to the node at `addr` timed out. When that makes it bad and its bucket has a replacement,
    /// the freshest replacement takes its place (returned).
    pub fn failed(&mut self, now: Time, addr: &SocketAddr) -> Option<Entry> {
        let (bi, i) = self.locate_addr(addr)?;
        let good_for = self.good_for;
        let b = self.buckets.get_mut(bi)?;
        let e = b.nodes.get_mut(i)?;
        e.fails = e.fails.saturating_add(1);
        if e.state(now, good_for) != NodeState::Bad || b.replacements.is_empty() {
            return None;
        }
        let best = b
            .replacements
            .iter()
            .enumerate()
            .max_by_key(|(_, r)| (r.verified, r.last_seen))
            .map(|(j, _)| j)?;
        let r = b.replacements.remove(best);
        let slot = b.nodes.get_mut(i)?;
        *slot = r;
        b.last_changed = now;
        Some(slot.clone())
    }

    /// Up to `count` nodes closest to `target` that are not bad, good ones first (BEP 5: "the K (8) closest
    /// good nodes"; questionable ones fill in when there are too few good ones).
    pub fn closest(&self, target: &NodeId, count: usize, now: Time) -> Vec<NodeInfo> {
        let mut all: Vec<(bool, &Entry)> = self
            .entries()
            .filter_map(|e| match e.state(now, self.good_for) {
                NodeState::Good => Some((true, e)),
                NodeState::Questionable => Some((false, e)),
                NodeState::Bad => None,
            })
            .collect();
        all.sort_unstable_by(|(ga, a), (gb, b)| gb.cmp(ga).then_with(|| target.cmp_distance(&a.id, &b.id)));
        all.truncate(count);
        let mut out: Vec<NodeInfo> = all.into_iter().map(|(_, e)| e.info()).collect();
        out.sort_unstable_by(|a, b| target.cmp_distance(&a.id, &b.id));
        out
    }

    /// Indices of buckets not changed for `idle` (BEP 5: "Buckets that have not been changed in 15 minutes
    /// should be refreshed").
    pub fn stale_buckets(&self, now: Time, idle: Duration) -> impl Iterator<Item = usize> + '_ {
        self.buckets
            .iter()
            .enumerate()
            .filter(move |(_, b)| now.since(b.last_changed) >= idle)
            .map(|(i, _)| i)
    }

    /// The earliest time a bucket becomes stale.
    pub fn next_stale(&self, idle: Duration) -> Option<Time> {
        self.buckets.iter().map(|b| b.last_changed.plus(idle)).min()
    }

    /// Mark a bucket as refreshed now.
    pub fn touch_bucket(&mut self, bi: usize, now: Time) {
        if let Some(b) = self.buckets.get_mut(bi) {
            b.last_changed = now;
        }
    }

    /// The least recently seen questionable node of bucket `bi`, to ping.
    pub fn questionable_in(&self, bi: usize, now: Time) -> Option<NodeInfo> {
        self.buckets
            .get(bi)?
            .nodes
            .iter()
            .filter(|e| e.state(now, self.good_for) == NodeState::Questionable)
            .min_by_key(|e| e.last_seen)
            .map(Entry::info)
    }

    /// A table around a new id holding the nodes of this one (for a BEP 42 id change).
    pub fn rebuilt(&self, own: NodeId, now: Time) -> RoutingTable {
        let mut t = RoutingTable::new(own, self.k, self.good_for, now);
        t.one_per_ip = self.one_per_ip;
        for b in &self.buckets {
            for e in b.nodes.iter().chain(b.replacements.iter()) {
                t.insert(e.clone(), now);
            }
        }
        t
    }

    /// Approximate heap bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self
                .buckets
                .iter()
                .map(|b| (b.nodes.capacity() + b.replacements.capacity()) * std::mem::size_of::<Entry>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    const MIN: Duration = Duration::from_secs(60);

    fn addr(i: u32) -> SocketAddr {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
        SocketAddr::new(ip.into(), 6881)
    }

    fn table(own: NodeId) -> RoutingTable {
        RoutingTable::new(own, 8, 15 * MIN, Time::ZERO)
    }

    #[test]
    fn only_the_bucket_holding_our_id_splits() {
        // "When a bucket is full of known good nodes, no more nodes may be added unless our own node ID
        // falls within the range of the bucket. In that case, the bucket is replaced by two new buckets".
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let now = Time::ZERO;
        // 8 far nodes (first bit 1) and then more far nodes: the far half never splits.
        for i in 0..8u32 {
            let mut id = [0xffu8; 20];
            id[19] = i as u8;
            assert_eq!(t.heard_from(now, NodeId(id), addr(i), false), Insert::Added);
        }
        assert_eq!(t.buckets().len(), 1);
        let mut id = [0xffu8; 20];
        id[19] = 100;
        // Full of good nodes: the bucket (which holds our id) splits, all 8 move to the far half (bucket 0).
        assert_eq!(t.heard_from(now, NodeId(id), addr(100), false), Insert::Full);
        assert_eq!(t.buckets().len(), 2);
        assert_eq!(t.buckets()[0].nodes().len(), 8);
        let mut id2 = [0xffu8; 20];
        id2[19] = 101;
        assert_eq!(t.heard_from(now, NodeId(id2), addr(101), false), Insert::Full);
        assert_eq!(t.buckets().len(), 2, "a bucket not holding our id is never split");
        // Near nodes go to the last bucket, which keeps splitting as it fills.
        let mut rng = SmallRng::seed_from_u64(1);
        for i in 0..200u32 {
            let id = own.random_at_prefix(1 + (i as usize % 20), &mut rng);
            t.heard_from(now, id, addr(1000 + i), false);
        }
        assert!(t.buckets().len() > 10);
        for (bi, b) in t.buckets().iter().enumerate() {
            assert!(b.nodes().len() <= 8);
            for e in b.nodes() {
                let cp = own.common_prefix(&e.id);
                if bi + 1 < t.buckets().len() {
                    assert_eq!(cp, bi);
                } else {
                    assert!(cp >= bi);
                }
            }
        }
    }

    #[test]
    fn bad_nodes_are_replaced_first() {
        // "If any nodes in the bucket are known to have become bad, then one is replaced by the new node."
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, 8, 15 * MIN, Time::ZERO);
        let now = Time::ZERO;
        let far = |i: u8| {
            let mut id = [0xf0u8; 20];
            id[19] = i;
            NodeId(id)
        };
        for i in 0..8u8 {
            t.heard_from(now, far(i), addr(u32::from(i)), false);
        }
        // Split once so bucket 0 (far) is not splittable.
        t.heard_from(now, far(50), addr(50), false);
        assert_eq!(t.buckets()[0].nodes().len(), 8);
        // Node 3 fails twice: bad.
        assert_eq!(t.failed(now, &addr(3)), None);
        assert_eq!(t.failed(now, &addr(3)), None);
        assert_eq!(t.state(t.get(&far(3)).unwrap(), now), NodeState::Bad);
        match t.heard_from(now, far(60), addr(60), false) {
            Insert::Replaced(old) => assert_eq!(old.addr, addr(3)),
            other => panic!("{other:?}"),
        }
        assert!(t.get_by_addr(&addr(3)).is_none());
        assert!(t.get_by_addr(&addr(60)).is_some());
    }

    #[test]
    fn questionable_nodes_are_pinged_before_replacement() {
        // "If there are any questionable nodes in the bucket have not been seen in the last 15 minutes, the
        // least recently seen node is pinged. [...] try once more before discarding the node and replacing
        // it with a new good node."
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let far = |i: u8| {
            let mut id = [0xf0u8; 20];
            id[19] = i;
            NodeId(id)
        };
        for i in 0..8u8 {
            t.heard_from(Time(MIN * u32::from(i)), far(i), addr(u32::from(i)), false);
        }
        t.heard_from(Time::ZERO, far(50), addr(50), false); // split off our half
        let later = Time(20 * MIN);
        // Node 0 was seen at minute 0, node 1 at minute 1...: at minute 20 nodes 0..=5 are questionable.
        match t.heard_from(later, far(70), addr(70), false) {
            Insert::PingFirst(q) => assert_eq!(q.addr, addr(0)),
            other => panic!("{other:?}"),
        }
        assert!(t.get_by_addr(&addr(70)).is_none());
        assert_eq!(t.failed(later, &addr(0)), None);
        let replaced = t
            .failed(later, &addr(0))
            .expect("replacement takes the bad node's place");
        assert_eq!(replaced.addr, addr(70));
        assert!(t.get_by_addr(&addr(0)).is_none());
    }

    #[test]
    fn buckets_full_of_good_nodes_drop_newcomers() {
        // "When the bucket is full of good nodes, the new node is simply discarded."
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let far = |i: u8| {
            let mut id = [0xf0u8; 20];
            id[19] = i;
            NodeId(id)
        };
        for i in 0..9u8 {
            t.heard_from(Time::ZERO, far(i), addr(u32::from(i)), false);
        }
        assert_eq!(t.heard_from(Time::ZERO, far(99), addr(99), false), Insert::Full);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn one_entry_per_address() {
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let now = Time::ZERO;
        assert_eq!(t.heard_from(now, NodeId([1; 20]), addr(1), false), Insert::Added);
        assert_eq!(
            t.heard_from(now, NodeId([1; 20]), addr(1), false),
            Insert::Updated
        );
        // The same address answers with another id: the old entry goes.
        assert_eq!(t.heard_from(now, NodeId([2; 20]), addr(1), false), Insert::Added);
        assert_eq!(t.len(), 1);
        assert_eq!(t.get_by_addr(&addr(1)).unwrap().id, NodeId([2; 20]));
        // Another address claiming a good node's id is refused.
        assert_eq!(
            t.heard_from(now, NodeId([2; 20]), addr(2), false),
            Insert::Rejected
        );
        assert_eq!(t.len(), 1);
        // Our own id is never added.
        assert_eq!(t.heard_from(now, own, addr(3), false), Insert::Rejected);
    }

    #[test]
    fn verified_nodes_are_preferred_in_full_buckets() {
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let far = |i: u8| {
            let mut id = [0xf0u8; 20];
            id[19] = i;
            NodeId(id)
        };
        // The ninth node splits off our half of the space and finds the far bucket full.
        for i in 0..9u8 {
            t.heard_from(Time::ZERO, far(i), addr(u32::from(i)), i != 4 && i != 8);
        }
        assert_eq!(t.heard_from(Time::ZERO, far(80), addr(80), false), Insert::Full);
        match t.heard_from(Time::ZERO, far(81), addr(81), true) {
            Insert::Replaced(old) => assert_eq!(old.addr, addr(4)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_flood_of_random_ids_stays_within_bounds() {
        let mut rng = SmallRng::seed_from_u64(9);
        let own = NodeId::random(&mut rng);
        let mut t = table(own);
        for i in 0..50_000u32 {
            t.heard_from(Time::ZERO, NodeId::random(&mut rng), addr(i), false);
        }
        assert!(t.buckets().len() <= MAX_BUCKETS);
        assert!(t.len() <= 8 * t.buckets().len());
        // log2(50000 / 8) is about 12.6: a random flood cannot make many more buckets.
        assert!(t.buckets().len() <= 20, "{}", t.buckets().len());
        for b in t.buckets() {
            assert!(b.replacements().len() <= REPLACEMENTS);
        }
    }

    #[test]
    fn closest_prefers_good_nodes_and_sorts_by_distance() {
        let own = NodeId([0; 20]);
        let mut t = table(own);
        for i in 1..=20u8 {
            let mut id = [0u8; 20];
            id[0] = i;
            t.heard_from(Time::ZERO, NodeId(id), addr(u32::from(i)), false);
        }
        let target = NodeId([0; 20]);
        let c = t.closest(&target, 4, Time::ZERO);
        assert_eq!(c.len(), 4);
        for w in c.windows(2) {
            assert_eq!(target.cmp_distance(&w[0].id, &w[1].id), std::cmp::Ordering::Less);
        }
        // The closest node fails twice (bad): no longer offered.
        let first = c[0].addr;
        t.failed(Time::ZERO, &first);
        t.failed(Time::ZERO, &first);
        assert!(t.closest(&target, 8, Time::ZERO).iter().all(|n| n.addr != first));
    }

    #[test]
    fn one_entry_per_public_ip_but_any_number_on_loopback() {
        let own = NodeId([0; 20]);
        let mut t = table(own);
        let public = |port: u16| SocketAddr::new(std::net::Ipv4Addr::new(1, 2, 3, 4).into(), port);
        let id = |b: u8| {
            let mut x = [0xffu8; 20];
            x[19] = b;
            NodeId(x)
        };
        assert_eq!(t.heard_from(Time::ZERO, id(1), public(1000), true), Insert::Added);
        assert!(!t.would_accept(&id(2), &public(1001), Time::ZERO));
        assert_eq!(
            t.heard_from(Time::ZERO, id(2), public(1001), true),
            Insert::Rejected
        );
        // The same node again is an update, not a second entry.
        assert_eq!(
            t.heard_from(Time::ZERO, id(1), public(1000), true),
            Insert::Updated
        );
        let local = |port: u16| SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), port);
        assert_eq!(t.heard_from(Time::ZERO, id(3), local(1000), true), Insert::Added);
        assert_eq!(t.heard_from(Time::ZERO, id(4), local(1001), true), Insert::Added);
        // Turned off, a public IP may hold several.
        t.set_one_per_ip(false);
        assert_eq!(t.heard_from(Time::ZERO, id(2), public(1001), true), Insert::Added);
    }
}
