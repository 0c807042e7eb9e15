//! A deterministic network simulator: a virtual clock, simulated links (latency, loss, upload capacity) and
//! many nodes running bitswarm's real sans-IO state machines in one process.
//!
//! Any state machine that follows the project's sans-IO contract can be a node: it implements [`Node`]
//! (packets and timers in; packets, events and its next timer out). [`Sim`] keeps a queue of future
//! deliveries and timers ordered by virtual time and runs them one by one; nothing depends on the wall clock,
//! so a scenario with a fixed seed runs the same every time, and an hour of a 10,000-node network takes
//! seconds.
//!
//! The link model: every node has a one-way latency to the network's core (drawn once per node between
//! [`LinkModel::latency_min`] and [`LinkModel::latency_max`]); a packet from `a` to `b` takes the sum of both,
//! plus the time to push it through `a`'s upload capacity when one is set. Each packet is lost with
//! probability [`LinkModel::loss`]. A node that [`Sim::kill`] removed drops everything sent to it, as a
//! machine that left abruptly would.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod dht;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// A state machine that can live in the simulator: the sans-IO contract, with time as a [`Duration`] since
/// the simulation's start.
pub trait Node {
    /// What the node reports to its owner (lookups done, pieces complete, ...).
    type Event;
    /// A datagram arrived from `from`.
    fn handle_packet(&mut self, now: Duration, from: SocketAddr, data: &[u8]);
    /// The timer the node asked for (or an earlier one) fired.
    fn handle_timeout(&mut self, now: Duration);
    /// The next datagram to send, if any.
    fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)>;
    /// The next event for the owner, if any.
    fn poll_event(&mut self) -> Option<Self::Event>;
    /// When the node next wants [`Node::handle_timeout`] called.
    fn poll_timeout(&self) -> Option<Duration>;
}

/// How packets travel.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkModel {
    /// The smallest one-way latency from a node to the core.
    pub latency_min: Duration,
    /// The largest one-way latency from a node to the core.
    pub latency_max: Duration,
    /// The probability that a packet is lost (0.0 to 1.0).
    pub loss: f64,
    /// Each node's upload capacity in bytes per second (`None`: unlimited).
    pub upload: Option<u64>,
}

impl Default for LinkModel {
    /// 5 to 75 ms to the core (so 10 to 150 ms between two nodes), no loss, no capacity limit.
    fn default() -> Self {
        LinkModel {
            latency_min: Duration::from_millis(5),
            latency_max: Duration::from_millis(75),
            loss: 0.0,
            upload: None,
        }
    }
}

/// What the network did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetStats {
    /// Packets nodes sent.
    pub sent: u64,
    /// Packets delivered to a live node.
    pub delivered: u64,
    /// Packets lost on the way (the loss model).
    pub lost: u64,
    /// Packets sent to an address no live node has.
    pub unroutable: u64,
    /// Bytes nodes sent.
    pub bytes: u64,
    /// Timer calls made.
    pub timeouts: u64,
}

/// An index of a node in the simulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeIdx(pub usize);

#[derive(Debug)]
struct Slot<N> {
    node: N,
    addr: SocketAddr,
    latency: Duration,
    alive: bool,
    /// The time of the timer entry in the queue that is current (older entries are stale).
    timer: Option<Duration>,
    /// When this node's upload link is next free.
    uplink_free: Duration,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Job {
    Timer(usize),
    Deliver {
        to: usize,
        from: SocketAddr,
        data: Vec<u8>,
    },
}

/// The simulation: nodes, the queue of what happens next, and the virtual clock.
#[derive(Debug)]
pub struct Sim<N: Node> {
    now: Duration,
    seq: u64,
    nodes: Vec<Slot<N>>,
    by_addr: HashMap<SocketAddr, usize>,
    queue: BinaryHeap<Reverse<(Duration, u64, Job)>>,
    events: Vec<(Duration, NodeIdx, N::Event)>,
    model: LinkModel,
    rng: SmallRng,
    stats: NetStats,
}

impl<N: Node> Sim<N> {
    /// An empty network with links as `model`, every random draw from `seed`.
    pub fn new(seed: u64, model: LinkModel) -> Self {
        Sim {
            now: Duration::ZERO,
            seq: 0,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            queue: BinaryHeap::new(),
            events: Vec::new(),
            model,
            rng: SmallRng::seed_from_u64(seed),
            stats: NetStats::default(),
        }
    }

    /// The virtual time now.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// How many nodes were added (alive or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// No node was added yet.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The random source of the simulation, for scenarios that want reproducible choices.
    pub fn rng(&mut self) -> &mut SmallRng {
        &mut self.rng
    }

    /// Adds `node` at `addr` (replacing nothing: an address already taken by a live node is refused and the
    /// node given back).
    pub fn add_node(&mut self, addr: SocketAddr, node: N) -> Result<NodeIdx, N> {
        if let Some(&i) = self.by_addr.get(&addr) {
            if self.nodes.get(i).is_some_and(|s| s.alive) {
                return Err(node);
            }
        }
        let (lo, hi) = (self.model.latency_min, self.model.latency_max);
        let latency = if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        };
        let i = self.nodes.len();
        self.nodes.push(Slot {
            node,
            addr,
            latency,
            alive: true,
            timer: None,
            uplink_free: self.now,
        });
        self.by_addr.insert(addr, i);
        self.flush(i);
        Ok(NodeIdx(i))
    }

    /// The address of a node.
    pub fn addr(&self, idx: NodeIdx) -> Option<SocketAddr> {
        self.nodes.get(idx.0).map(|s| s.addr)
    }

    /// Whether a node is still in the network.
    pub fn is_alive(&self, idx: NodeIdx) -> bool {
        self.nodes.get(idx.0).is_some_and(|s| s.alive)
    }

    /// A node, to look at.
    pub fn node(&self, idx: NodeIdx) -> Option<&N> {
        self.nodes.get(idx.0).map(|s| &s.node)
    }

    /// Runs `f` on a node at the current time (a command from its owner), then sends what it queued.
    /// `None` if there is no such live node.
    pub fn with_node<T>(&mut self, idx: NodeIdx, f: impl FnOnce(&mut N, Duration) -> T) -> Option<T> {
        let now = self.now;
        let slot = self.nodes.get_mut(idx.0).filter(|s| s.alive)?;
        let out = f(&mut slot.node, now);
        self.flush(idx.0);
        Some(out)
    }

    /// Removes a node abruptly: it sends nothing more, and packets to it are dropped.
    pub fn kill(&mut self, idx: NodeIdx) {
        if let Some(slot) = self.nodes.get_mut(idx.0) {
            slot.alive = false;
            slot.timer = None;
        }
    }

    /// The events nodes reported since the last call, with when and by whom.
    pub fn take_events(&mut self) -> Vec<(Duration, NodeIdx, N::Event)> {
        std::mem::take(&mut self.events)
    }

    /// Runs everything due up to `until`, then sets the clock to `until`.
    pub fn run_until(&mut self, until: Duration) {
        while self.step(until) {}
        self.now = self.now.max(until);
    }

    /// Runs until `done` says so (checked after every step) or the clock reaches `until`. Returns whether
    /// `done` was met.
    pub fn run_until_or(&mut self, until: Duration, mut done: impl FnMut(&mut Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if !self.step(until) {
                self.now = self.now.max(until);
                return done(self);
            }
        }
    }

    /// Runs the next thing due at or before `until`; false if there is none.
    fn step(&mut self, until: Duration) -> bool {
        let due = matches!(self.queue.peek(), Some(Reverse((t, _, _))) if *t <= until);
        if !due {
            return false;
        }
        let Some(Reverse((t, _, job))) = self.queue.pop() else {
            return false;
        };
        self.now = self.now.max(t);
        let now = self.now;
        match job {
            Job::Timer(i) => {
                let Some(slot) = self.nodes.get_mut(i) else {
                    return true;
                };
                if !slot.alive || slot.timer != Some(t) {
                    return true; // stale: the node asked for another time since
                }
                slot.timer = None;
                self.stats.timeouts += 1;
                slot.node.handle_timeout(now);
                self.flush(i);
            }
            Job::Deliver { to, from, data } => {
                let Some(slot) = self.nodes.get_mut(to) else {
                    return true;
                };
                if !slot.alive {
                    self.stats.unroutable += 1;
                    return true;
                }
                self.stats.delivered += 1;
                slot.node.handle_packet(now, from, &data);
                self.flush(to);
            }
        }
        true
    }

    fn push(&mut self, at: Duration, job: Job) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, job)));
    }

    /// Sends what node `i` queued, collects its events and schedules its timer.
    fn flush(&mut self, i: usize) {
        let now = self.now;
        loop {
            let Some(slot) = self.nodes.get_mut(i) else {
                return;
            };
            let Some((to, data)) = slot.node.poll_transmit() else {
                break;
            };
            let from = slot.addr;
            let mut depart = now;
            if let Some(rate) = self.model.upload.filter(|r| *r > 0) {
                let start = slot.uplink_free.max(now);
                let nanos = (data.len() as u128).saturating_mul(1_000_000_000) / u128::from(rate);
                depart = start.saturating_add(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)));
                slot.uplink_free = depart;
            }
            let from_latency = slot.latency;
            self.stats.sent += 1;
            self.stats.bytes += data.len() as u64;
            let Some(&j) = self.by_addr.get(&to) else {
                self.stats.unroutable += 1;
                continue;
            };
            if self.model.loss > 0.0 && self.rng.random_bool(self.model.loss.clamp(0.0, 1.0)) {
                self.stats.lost += 1;
                continue;
            }
            let to_latency = self.nodes.get(j).map_or(Duration::ZERO, |s| s.latency);
            let at = depart.saturating_add(from_latency).saturating_add(to_latency);
            self.push(at, Job::Deliver { to: j, from, data });
        }
        while let Some(ev) = self.nodes.get_mut(i).and_then(|s| s.node.poll_event()) {
            self.events.push((now, NodeIdx(i), ev));
        }
        let Some(slot) = self.nodes.get_mut(i) else {
            return;
        };
        if !slot.alive {
            return;
        }
        let want = slot.node.poll_timeout().map(|t| t.max(now));
        if want != slot.timer {
            slot.timer = want;
            if let Some(t) = want {
                self.push(t, Job::Timer(i));
            }
        }
    }
}

#[cfg(test)]
mod tests;
