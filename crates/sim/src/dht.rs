//! The DHT scenario: thousands of real [`dht::Dht`] nodes on the simulated network.
//!
//! Every node gets its own public-looking address and a BEP 42 id for it, joins at a random moment of the
//! join phase by bootstrapping from a few nodes already in, and then lives on its own timers. Some nodes
//! announce a torrent each; then random nodes look up random announced torrents, and a lookup succeeds when
//! it finds the announcer's address. Then a share of the nodes (never the announcers) leave abruptly and
//! the lookups are run again.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use dht::{Announce, Config, Dht, Event, LookupId, Time};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::{LinkModel, NetStats, Node, NodeIdx, Sim};

/// A DHT node as a simulator node.
#[derive(Debug)]
pub struct DhtNode(pub Dht<SmallRng>);

impl Node for DhtNode {
    type Event = Event;
    fn handle_packet(&mut self, now: Duration, from: SocketAddr, data: &[u8]) {
        self.0.handle_packet(Time(now), from, data);
    }
    fn handle_timeout(&mut self, now: Duration) {
        self.0.handle_timeout(Time(now));
    }
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.0.poll_transmit().map(|t| (t.to, t.data))
    }
    fn poll_event(&mut self) -> Option<Event> {
        self.0.poll_event()
    }
    fn poll_timeout(&self) -> Option<Duration> {
        self.0.poll_timeout().map(|t| t.0)
    }
}

/// The scenario's knobs.
#[derive(Debug, Clone)]
pub struct DhtScenario {
    /// Nodes in the network.
    pub nodes: usize,
    /// Nodes each new node bootstraps from (drawn from those already in).
    pub bootstrap_from: usize,
    /// Nodes join at random moments over this long.
    pub join_over: Duration,
    /// Time after the last join before the announces (the network settles).
    pub settle: Duration,
    /// Nodes that announce one torrent each.
    pub announcers: usize,
    /// Lookups made by random nodes for random announced torrents, in each round.
    pub lookups: usize,
    /// Virtual time between two lookups' starts (they overlap).
    pub lookup_spacing: Duration,
    /// The share of nodes (never announcers) that leave abruptly before the second round.
    pub churn: f64,
    /// The network.
    pub link: LinkModel,
    /// Every random draw comes from this.
    pub seed: u64,
}

impl Default for DhtScenario {
    /// The scenario: 10,000 nodes, 5% loss, 10-150 ms between nodes, 20% leaving.
    fn default() -> Self {
        DhtScenario {
            nodes: 10_000,
            bootstrap_from: 3,
            join_over: Duration::from_secs(600),
            settle: Duration::from_secs(1200),
            announcers: 100,
            lookups: 1000,
            lookup_spacing: Duration::from_millis(20),
            churn: 0.2,
            link: LinkModel {
                loss: 0.05,
                ..LinkModel::default()
            },
            seed: 1,
        }
    }
}

/// What one round of lookups gave.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LookupRound {
    /// Lookups made.
    pub lookups: usize,
    /// Lookups that found the announcer's address.
    pub found: usize,
    /// Median queries a lookup sent.
    pub queries_p50: u32,
    /// 99th percentile of queries a lookup sent.
    pub queries_p99: u32,
    /// Median virtual time from the start of a lookup to the announcer's address.
    pub to_peer_p50: Duration,
    /// 99th percentile of the same.
    pub to_peer_p99: Duration,
    /// Median virtual time until the lookup finished.
    pub to_done_p50: Duration,
}

impl LookupRound {
    /// The share of lookups that found their peer.
    pub fn success(&self) -> f64 {
        if self.lookups == 0 {
            return 0.0;
        }
        self.found as f64 / self.lookups as f64
    }
}

/// What the scenario measured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DhtReport {
    /// Nodes that joined.
    pub nodes: usize,
    /// Routing-table size over all nodes after settling: mean, 1st percentile, median, max.
    pub table_mean: f64,
    /// 1st percentile of routing-table sizes.
    pub table_p1: usize,
    /// Median routing-table size.
    pub table_p50: usize,
    /// Largest routing table.
    pub table_max: usize,
    /// Announces whose lookup was accepted by at least one node.
    pub announced: usize,
    /// The lookups with every node in.
    pub before: LookupRound,
    /// Nodes that left.
    pub left: usize,
    /// The lookups after they left.
    pub after: LookupRound,
    /// Packets and bytes.
    pub net: NetStats,
    /// Virtual time simulated.
    pub virtual_time: Duration,
}

impl fmt::Display for DhtReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "nodes: {}, virtual time {:.0} s",
            self.nodes,
            self.virtual_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "routing tables: mean {:.1} nodes, p1 {}, median {}, max {}",
            self.table_mean, self.table_p1, self.table_p50, self.table_max
        )?;
        writeln!(f, "announces accepted: {}", self.announced)?;
        for (name, r) in [("all nodes", &self.before), ("after churn", &self.after)] {
            writeln!(
                f,
                "lookups ({name}): {}/{} found ({:.2}%), queries p50 {} p99 {}, time to peer p50 {} ms p99 {} ms, done p50 {} ms",
                r.found,
                r.lookups,
                r.success() * 100.0,
                r.queries_p50,
                r.queries_p99,
                r.to_peer_p50.as_millis(),
                r.to_peer_p99.as_millis(),
                r.to_done_p50.as_millis()
            )?;
        }
        writeln!(f, "nodes left before the second round: {}", self.left)?;
        write!(
            f,
            "packets: {} sent, {} lost, {} to departed nodes, {} MB",
            self.net.sent,
            self.net.lost,
            self.net.unroutable,
            self.net.bytes / 1_000_000
        )
    }
}

fn addr_of(i: usize) -> SocketAddr {
    // Public-looking (BEP 42 treats private ranges as unverifiable): 1.0.0.0 upward.
    let n = 0x0100_0000u32.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX));
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(n)), 6881)
}

fn percentile<T: Copy + Ord + Default>(v: &mut [T], p: f64) -> T {
    if v.is_empty() {
        return T::default();
    }
    v.sort_unstable();
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    v.get(i).copied().unwrap_or_default()
}

/// Runs the scenario and reports.
pub fn run(s: &DhtScenario) -> DhtReport {
    let mut sim: Sim<DhtNode> = Sim::new(s.seed, s.link.clone());
    let mut rng = SmallRng::seed_from_u64(s.seed ^ 0x05ee_dd47);
    let mut joins: Vec<Duration> = (0..s.nodes)
        .map(|_| s.join_over.mul_f64(rng.random::<f64>()))
        .collect();
    joins.sort_unstable();
    let mut idxs: Vec<NodeIdx> = Vec::with_capacity(s.nodes);
    for (i, at) in joins.iter().enumerate() {
        sim.run_until(*at);
        let addr = addr_of(i);
        let now = Time(sim.now());
        let mut node = Dht::new(
            Config::default(),
            addr,
            SmallRng::seed_from_u64(rng.random()),
            now,
        );
        node.set_external_ip(now, addr.ip());
        let Ok(idx) = sim.add_node(addr, DhtNode(node)) else {
            continue;
        };
        let mut boot = Vec::new();
        for _ in 0..s.bootstrap_from.min(idxs.len()) {
            if let Some(b) = idxs
                .get(rng.random_range(0..idxs.len()))
                .and_then(|j| sim.addr(*j))
            {
                boot.push(b);
            }
        }
        if !boot.is_empty() {
            sim.with_node(idx, |n, now| n.0.bootstrap(Time(now), &boot));
        }
        idxs.push(idx);
    }
    let settled = sim.now() + s.settle;
    sim.run_until(settled);
    let mut tables: Vec<usize> = idxs
        .iter()
        .filter_map(|i| sim.node(*i))
        .map(|n| {
            let st = n.0.stats();
            st.nodes_good + st.nodes_questionable + st.nodes_bad
        })
        .collect();
    let table_mean = tables.iter().sum::<usize>() as f64 / tables.len().max(1) as f64;
    let table_p1 = percentile(&mut tables, 0.01);
    let table_p50 = percentile(&mut tables, 0.5);
    let table_max = tables.iter().copied().max().unwrap_or(0);
    sim.take_events();

    // Announces.
    let mut announcers: Vec<(NodeIdx, [u8; 20])> = Vec::new();
    let mut chosen = HashSet::new();
    while announcers.len() < s.announcers.min(idxs.len()) {
        let Some(&idx) = idxs.get(rng.random_range(0..idxs.len())) else {
            break;
        };
        if chosen.insert(idx) {
            announcers.push((idx, rng.random()));
        }
    }
    let mut pending: HashMap<(NodeIdx, LookupId), ()> = HashMap::new();
    for (idx, hash) in &announcers {
        let ann = Announce {
            port: 6881,
            implied_port: true,
            seed: true,
        };
        if let Some(id) = sim.with_node(*idx, |n, now| n.0.get_peers(Time(now), *hash, Some(ann))) {
            pending.insert((*idx, id), ());
        }
    }
    let mut announced = 0;
    let deadline = sim.now() + Duration::from_secs(300);
    while !pending.is_empty() && sim.now() < deadline {
        let step = sim.now() + Duration::from_secs(1);
        sim.run_until(step);
        for (_, idx, ev) in sim.take_events() {
            if let Event::LookupDone {
                lookup, announced: a, ..
            } = ev
            {
                if pending.remove(&(idx, lookup)).is_some() && a > 0 {
                    announced += 1;
                }
            }
        }
    }

    let before = lookup_round(&mut sim, &mut rng, s, &idxs, &announcers);
    // Churn: nodes leave abruptly (never the announcers, whose address the lookups look for).
    let mut left = 0;
    let target = (s.nodes as f64 * s.churn).round() as usize;
    let mut tries = 0;
    while left < target && tries < target * 20 {
        tries += 1;
        let Some(&idx) = idxs.get(rng.random_range(0..idxs.len())) else {
            break;
        };
        if chosen.contains(&idx) || !sim.is_alive(idx) {
            continue;
        }
        sim.kill(idx);
        left += 1;
    }
    let later = sim.now() + Duration::from_secs(60);
    sim.run_until(later);
    let after = lookup_round(&mut sim, &mut rng, s, &idxs, &announcers);
    DhtReport {
        nodes: idxs.len(),
        table_mean,
        table_p1,
        table_p50,
        table_max,
        announced,
        before,
        left,
        after,
        net: sim.stats(),
        virtual_time: sim.now(),
    }
}

struct Pending {
    started: Duration,
    want: SocketAddr,
    found_at: Option<Duration>,
}

fn lookup_round(
    sim: &mut Sim<DhtNode>,
    rng: &mut SmallRng,
    s: &DhtScenario,
    idxs: &[NodeIdx],
    announcers: &[(NodeIdx, [u8; 20])],
) -> LookupRound {
    sim.take_events();
    let mut pending: HashMap<(NodeIdx, LookupId), Pending> = HashMap::new();
    let mut round = LookupRound::default();
    let (mut queries, mut to_peer, mut to_done) = (Vec::new(), Vec::new(), Vec::new());
    let mut handle = |sim: &mut Sim<DhtNode>,
                      pending: &mut HashMap<(NodeIdx, LookupId), Pending>,
                      round: &mut LookupRound| {
        for (at, idx, ev) in sim.take_events() {
            match ev {
                Event::Peers { lookup, peers, .. } => {
                    if let Some(p) = pending.get_mut(&(idx, lookup)) {
                        if p.found_at.is_none() && peers.contains(&p.want) {
                            p.found_at = Some(at);
                        }
                    }
                }
                Event::LookupDone {
                    lookup, queries: q, ..
                } => {
                    if let Some(p) = pending.remove(&(idx, lookup)) {
                        queries.push(q);
                        to_done.push(at.saturating_sub(p.started));
                        if let Some(f) = p.found_at {
                            round.found += 1;
                            to_peer.push(f.saturating_sub(p.started));
                        }
                    }
                }
                _ => {}
            }
        }
    };
    let mut made = 0;
    while made < s.lookups && !announcers.is_empty() {
        let Some(&idx) = idxs.get(rng.random_range(0..idxs.len())) else {
            break;
        };
        if !sim.is_alive(idx) {
            continue;
        }
        let Some(&(owner, hash)) = announcers.get(rng.random_range(0..announcers.len())) else {
            break;
        };
        if owner == idx {
            continue;
        }
        let Some(want) = sim.addr(owner) else { continue };
        let started = sim.now();
        if let Some(id) = sim.with_node(idx, |n, now| n.0.get_peers(Time(now), hash, None)) {
            pending.insert(
                (idx, id),
                Pending {
                    started,
                    want,
                    found_at: None,
                },
            );
            made += 1;
        }
        let next = sim.now() + s.lookup_spacing;
        sim.run_until(next);
        handle(sim, &mut pending, &mut round);
    }
    let deadline = sim.now() + Duration::from_secs(300);
    while !pending.is_empty() && sim.now() < deadline {
        let next = sim.now() + Duration::from_millis(500);
        sim.run_until(next);
        handle(sim, &mut pending, &mut round);
    }
    // Lookups that never finished count as failures.
    round.lookups = made;
    round.queries_p50 = percentile(&mut queries, 0.5);
    round.queries_p99 = percentile(&mut queries, 0.99);
    round.to_peer_p50 = percentile(&mut to_peer, 0.5);
    round.to_peer_p99 = percentile(&mut to_peer, 0.99);
    round.to_done_p50 = percentile(&mut to_done, 0.5);
    round
}
