//! Iterative lookups (BEP 5, Kademlia): query the closest known nodes to a target, `alpha` at a time, learn
//! closer ones from their answers, and stop when the `k` closest nodes known have all answered.
//!
//! A [`Lookup`] is only the bookkeeping: the candidates sorted by distance with their state, the tokens
//! they gave, the peers seen. The [`crate::Dht`] sends the queries it picks and feeds back answers and
//! timeouts. Bounded: at most [`MAX_CANDIDATES`] candidates (the closest), [`MAX_QUERIES`] queries and
//! [`MAX_PEERS`] distinct peers reported per lookup.
//!
//! BEP 42 enforcement: "Non-compliant nodes also must not be considered to have sent a valid response when
//! checking the termination condition of a lookup", and announces go only to "the closest set of nodes
//! which return a token *and* whose IDs matches their IPs".

use std::collections::BTreeSet;
use std::net::SocketAddr;

use crate::store::Bloom;
use crate::{NodeId, Time};

/// Candidates kept per lookup (the closest ones).
pub const MAX_CANDIDATES: usize = 64;
/// Queries one lookup may send at most.
pub const MAX_QUERIES: u32 = 200;
/// Distinct peers one lookup reports at most.
pub const MAX_PEERS: usize = 2000;

/// Identifies a lookup started by [`crate::Dht::get_peers`], [`crate::Dht::find_node`] or
/// [`crate::Dht::scrape`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LookupId(pub u32);

/// Announce ourselves at the end of a `get_peers` lookup (`announce_peer` to the closest nodes that gave a
/// token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announce {
    /// Our peer port (ignored by the receiver when `implied_port` is set).
    pub port: u16,
    /// Ask the receiver to use the UDP source port of the announce instead (BEP 5 `implied_port`).
    pub implied_port: bool,
    /// We are a seed (BEP 33 `seed = 1`).
    pub seed: bool,
}

/// What a lookup asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node`.
    FindNode,
    /// `get_peers`, then optionally `announce_peer`; `scrape` asks for BEP 33 bloom filters.
    GetPeers {
        /// Announce at the end.
        announce: Option<Announce>,
        /// Ask for `BFsd` / `BFpe`.
        scrape: bool,
    },
}

/// Why the node runs a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Asked for by the owner: events are reported.
    User,
    /// Our own id, to fill the table (bootstrap).
    Bootstrap,
    /// A random id in a bucket not changed for 15 minutes.
    Refresh,
}

/// State of one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateState {
    /// Not queried yet.
    New,
    /// Queried, no answer yet.
    InFlight,
    /// Answered.
    Responded,
    /// Timed out or answered with an error.
    Failed,
}

/// A node the lookup knows of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its id (`None` for a bootstrap address whose id we do not know yet).
    pub id: Option<NodeId>,
    /// Its address.
    pub addr: SocketAddr,
    /// Where it stands.
    pub state: CandidateState,
    /// Its id passes BEP 42 verification.
    pub verified: bool,
    /// The token it gave (get_peers).
    pub token: Option<Vec<u8>>,
}

/// One iterative lookup.
#[derive(Debug, Clone)]
pub struct Lookup {
    /// Its id.
    pub id: LookupId,
    /// The target (node id or info-hash).
    pub target: NodeId,
    /// find_node or get_peers.
    pub kind: LookupKind,
    /// Why it runs.
    pub purpose: Purpose,
    /// When it started.
    pub started: Time,
    /// Queries sent.
    pub queries: u32,
    candidates: Vec<Candidate>,
    in_flight: usize,
    seen_peers: BTreeSet<SocketAddr>,
    /// Union of the BEP 33 filters received: (seeds, peers).
    pub blooms: Option<Box<(Bloom, Bloom)>>,
}

impl Lookup {
    /// A lookup with no candidates yet.
    pub fn new(id: LookupId, target: NodeId, kind: LookupKind, purpose: Purpose, now: Time) -> Lookup {
        Lookup {
            id,
            target,
            kind,
            purpose,
            started: now,
            queries: 0,
            candidates: Vec::new(),
            in_flight: 0,
            seen_peers: BTreeSet::new(),
            blooms: None,
        }
    }

    /// The candidates, closest first (those with unknown ids last).
    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    /// Queries awaiting an answer.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn order(&self, a: &Option<NodeId>, b: &Option<NodeId>) -> std::cmp::Ordering {
        match (a, b) {
            (Some(a), Some(b)) => self.target.cmp_distance(a, b),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    }

    /// Learn of a node. Ignored if its address or id is already a candidate, or it would be farther than
    /// all [`MAX_CANDIDATES`] kept.
    pub fn add_candidate(&mut self, id: Option<NodeId>, addr: SocketAddr, verified: bool) -> bool {
        if self
            .candidates
            .iter()
            .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return false;
        }
        let pos = self
            .candidates
            .partition_point(|c| self.order(&c.id, &id) != std::cmp::Ordering::Greater);
        if pos >= MAX_CANDIDATES {
            return false;
        }
        self.candidates.insert(
            pos,
            Candidate {
                id,
                addr,
                state: CandidateState::New,
                verified,
                token: None,
            },
        );
        if self.candidates.len() > MAX_CANDIDATES {
            // Never forget one we wait on: drop the farthest that is not in flight.
            if let Some(i) = self
                .candidates
                .iter()
                .rposition(|c| c.state != CandidateState::InFlight)
            {
                self.candidates.remove(i);
            }
        }
        true
    }

    fn pick(&self, k: usize, enforce: bool) -> Option<usize> {
        let mut counted = 0;
        for (i, c) in self.candidates.iter().enumerate() {
            if counted >= k {
                break;
            }
            match c.state {
                CandidateState::Failed => {}
                CandidateState::New => return Some(i),
                CandidateState::InFlight | CandidateState::Responded => {
                    if !enforce || c.verified {
                        counted += 1;
                    }
                }
            }
        }
        None
    }

    /// The next candidate to query, if fewer than `alpha` are in flight and one of the `k` closest live
    /// candidates has not been queried; marks it in flight.
    pub fn next_query(
        &mut self,
        k: usize,
        alpha: usize,
        enforce: bool,
    ) -> Option<(Option<NodeId>, SocketAddr)> {
        if self.in_flight >= alpha || self.queries >= MAX_QUERIES {
            return None;
        }
        let i = self.pick(k, enforce)?;
        let c = self.candidates.get_mut(i)?;
        c.state = CandidateState::InFlight;
        self.in_flight += 1;
        self.queries += 1;
        Some((c.id, c.addr))
    }

    /// Done: nothing in flight and nothing left to ask among the `k` closest (or the query budget is
    /// spent).
    pub fn is_done(&self, k: usize, enforce: bool) -> bool {
        self.in_flight == 0 && (self.queries >= MAX_QUERIES || self.pick(k, enforce).is_none())
    }

    fn settle(&mut self, addr: &SocketAddr, state: CandidateState) -> Option<usize> {
        let i = self
            .candidates
            .iter()
            .position(|c| c.addr == *addr && c.state == CandidateState::InFlight)?;
        if let Some(c) = self.candidates.get_mut(i) {
            c.state = state;
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        Some(i)
    }

    /// The candidate at `addr` answered as `id` (which may differ from the id we were told: it moves).
    pub fn on_response(&mut self, addr: &SocketAddr, id: NodeId, token: Option<Vec<u8>>, verified: bool) {
        let Some(i) = self.settle(addr, CandidateState::Responded) else {
            return;
        };
        if i >= self.candidates.len() {
            return;
        }
        let mut c = self.candidates.remove(i);
        if self.candidates.iter().any(|o| o.id == Some(id)) {
            // Another candidate already holds that id: this answer counts for nothing.
            c.state = CandidateState::Failed;
        }
        c.id = Some(id);
        c.verified = verified;
        c.token = token;
        let pos = self
            .candidates
            .partition_point(|o| self.order(&o.id, &c.id) != std::cmp::Ordering::Greater);
        self.candidates.insert(pos, c);
    }

    /// The candidate at `addr` timed out or answered with an error.
    pub fn on_failure(&mut self, addr: &SocketAddr) {
        self.settle(addr, CandidateState::Failed);
    }

    /// Peers not reported before by this lookup (at most [`MAX_PEERS`] in all).
    pub fn new_peers(&mut self, peers: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut out = Vec::new();
        for p in peers {
            if self.seen_peers.len() >= MAX_PEERS {
                break;
            }
            if self.seen_peers.insert(*p) {
                out.push(*p);
            }
        }
        out
    }

    /// Number of candidates that answered.
    pub fn responded(&self) -> usize {
        self.candidates
            .iter()
            .filter(|c| c.state == CandidateState::Responded)
            .count()
    }

    /// The `k` closest candidates that answered with a token (and, when enforcing BEP 42, are verified):
    /// where to announce.
    pub fn announce_targets(&self, k: usize, enforce: bool) -> Vec<(NodeId, SocketAddr, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == CandidateState::Responded && (!enforce || c.verified))
            .filter_map(|c| Some((c.id?, c.addr, c.token.clone()?)))
            .take(k)
            .collect()
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + self.seen_peers.len() * (std::mem::size_of::<SocketAddr>() + 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::new(std::net::Ipv4Addr::from(0x0a00_0000 + i).into(), 1)
    }
    fn id(b: u8) -> NodeId {
        let mut x = [0u8; 20];
        x[0] = b;
        NodeId(x)
    }

    #[test]
    fn three_in_flight_and_done_when_the_k_closest_answered() {
        let mut l = Lookup::new(
            LookupId(1),
            NodeId([0; 20]),
            LookupKind::FindNode,
            Purpose::User,
            Time::ZERO,
        );
        for i in 1..=20u8 {
            l.add_candidate(Some(id(i)), addr(u32::from(i)), true);
        }
        let k = 8;
        let mut asked = Vec::new();
        while let Some((_, a)) = l.next_query(k, 3, false) {
            asked.push(a);
        }
        assert_eq!(
            asked,
            vec![addr(1), addr(2), addr(3)],
            "closest first, alpha = 3 at a time"
        );
        l.on_failure(&addr(2));
        l.on_response(&addr(1), id(1), None, true);
        l.on_response(&addr(3), id(3), None, true);
        // Keep answering until done: the window of 8 slides past the failed node 2.
        while !l.is_done(k, false) {
            while let Some((Some(i), a)) = l.next_query(k, 3, false) {
                l.on_response(&a, i, Some(b"tk".to_vec()), true);
            }
        }
        assert_eq!(l.responded(), 8);
        let last = l
            .candidates()
            .iter()
            .rfind(|c| c.state == CandidateState::Responded)
            .unwrap();
        assert_eq!(last.addr, addr(9), "nodes 1 and 3..=9 answered");
        let targets = l.announce_targets(k, false);
        assert_eq!(targets.len(), 6, "nodes 4..=9 gave a token, 1 and 3 did not");
        assert_eq!(targets[0].1, addr(4));
    }

    #[test]
    fn unverified_nodes_do_not_count_when_enforcing() {
        let mut l = Lookup::new(
            LookupId(1),
            NodeId([0; 20]),
            LookupKind::FindNode,
            Purpose::User,
            Time::ZERO,
        );
        for i in 1..=12u8 {
            l.add_candidate(Some(id(i)), addr(u32::from(i)), i > 4);
        }
        while !l.is_done(8, true) {
            while let Some((Some(i), a)) = l.next_query(8, 3, true) {
                let verified = i.0[0] > 4;
                l.on_response(&a, i, Some(vec![1]), verified);
            }
        }
        // 4 unverified + 8 verified answered.
        assert_eq!(l.responded(), 12);
        let t = l.announce_targets(8, true);
        assert_eq!(t.len(), 8);
        assert!(t.iter().all(|(i, _, _)| i.0[0] > 4));
    }

    #[test]
    fn candidates_and_peers_are_bounded() {
        let mut l = Lookup::new(
            LookupId(1),
            NodeId([0; 20]),
            LookupKind::FindNode,
            Purpose::User,
            Time::ZERO,
        );
        for i in 0..1000u32 {
            let mut x = [0u8; 20];
            x[..4].copy_from_slice(&i.to_be_bytes());
            l.add_candidate(Some(NodeId(x)), addr(i), true);
        }
        assert_eq!(l.candidates().len(), MAX_CANDIDATES);
        assert_eq!(l.candidates()[0].addr, addr(0));
        let peers: Vec<SocketAddr> = (0..3000).map(addr).collect();
        assert_eq!(l.new_peers(&peers).len(), MAX_PEERS);
        assert!(l.new_peers(&peers).is_empty());
        // Same address or id twice: ignored.
        let mut l2 = Lookup::new(
            LookupId(2),
            NodeId([0; 20]),
            LookupKind::FindNode,
            Purpose::User,
            Time::ZERO,
        );
        assert!(l2.add_candidate(Some(id(1)), addr(1), true));
        assert!(!l2.add_candidate(Some(id(2)), addr(1), true));
        assert!(!l2.add_candidate(Some(id(1)), addr(2), true));
        assert!(l2.add_candidate(None, addr(3), true));
    }
}
