//! An in-memory network of [`Dht`] nodes in virtual time, for tests (and a starting point for the
//! simulator): packets go from one node's `poll_transmit` to the target node's `handle_packet` after a
//! fixed latency plus a small deterministic jitter; timers fire when nodes ask. Nothing here reads a
//! clock; a run depends only on the nodes' RNGs and the commands given.
//!
//! Node `i` lives at `10.a.b.c:6881` where `a.b.c` is `i + 1` (local addresses, so BEP 42 exempts them).
//! Timers are kept in a heap with lazy deletion, so a step costs `O(log n)` plus the work of the node.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::{Config, Dht, Event, Time};

/// The address of node `i`.
pub fn addr_of(i: usize) -> SocketAddr {
    let n = u32::try_from(i + 1).unwrap_or(u32::MAX) & 0x00ff_ffff;
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)), 6881)
}

/// A packet on its way.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Time,
    seq: u64,
    to: SocketAddr,
    from: SocketAddr,
    data: Vec<u8>,
}

/// What a tap sees: every packet handed to the network, before delivery.
pub type Tap = Box<dyn FnMut(Time, SocketAddr, SocketAddr, &[u8]) -> bool>;

/// Nodes and the packets between them.
pub struct Network<R: rand::Rng> {
    /// The nodes, by index.
    pub nodes: Vec<Dht<R>>,
    /// Their addresses.
    pub addrs: Vec<SocketAddr>,
    by_addr: BTreeMap<SocketAddr, usize>,
    /// Virtual time now.
    pub now: Time,
    /// One-way latency.
    pub latency: Duration,
    packets: BinaryHeap<Reverse<InFlight>>,
    timers: BinaryHeap<Reverse<(Time, usize)>>,
    seq: u64,
    /// Events reported, with the index of the node that reported them.
    pub events: Vec<(usize, Event)>,
    /// Packets delivered.
    pub delivered: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Packets to addresses no node has (or dropped by the tap).
    pub lost: u64,
    /// Called with (time, from, to, data) for every packet sent; return false to drop it.
    pub tap: Option<Tap>,
    /// Steps (deliveries and timer firings) taken.
    pub steps: u64,
    /// A run stops after this many steps in all (a guard against a node that never lets time pass).
    pub max_steps: u64,
}

impl<R: rand::Rng> Network<R> {
    /// An empty network with this one-way latency.
    pub fn new(latency: Duration) -> Self {
        Network {
            nodes: Vec::new(),
            addrs: Vec::new(),
            by_addr: BTreeMap::new(),
            now: Time::ZERO,
            latency,
            packets: BinaryHeap::new(),
            timers: BinaryHeap::new(),
            seq: 0,
            events: Vec::new(),
            delivered: 0,
            bytes: 0,
            lost: 0,
            tap: None,
            steps: 0,
            max_steps: 50_000_000,
        }
    }

    /// Add a node at [`addr_of`] its index; returns the index.
    pub fn add(&mut self, config: Config, rng: R) -> usize {
        let i = self.nodes.len();
        let addr = addr_of(i);
        self.nodes.push(Dht::new(config, addr, rng, self.now));
        self.addrs.push(addr);
        self.by_addr.insert(addr, i);
        self.flush(i);
        i
    }

    /// Run a command on node `i` at the current time, then collect its outputs.
    pub fn with<T>(&mut self, i: usize, f: impl FnOnce(&mut Dht<R>, Time) -> T) -> Option<T> {
        let now = self.now;
        let out = f(self.nodes.get_mut(i)?, now);
        self.flush(i);
        Some(out)
    }

    /// Drain node `i`'s packets and events, and schedule its next timer.
    fn flush(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        let from = self.addrs.get(i).copied().unwrap_or_else(|| addr_of(i));
        let mut sent = Vec::new();
        while let Some(t) = node.poll_transmit() {
            sent.push(t);
        }
        while let Some(e) = node.poll_event() {
            self.events.push((i, e));
        }
        if let Some(t) = node.poll_timeout() {
            self.timers.push(Reverse((t.max(self.now), i)));
        }
        for t in sent {
            if let Some(tap) = self.tap.as_mut() {
                if !tap(self.now, from, t.to, &t.data) {
                    self.lost += 1;
                    continue;
                }
            }
            self.seq += 1;
            let jitter = Duration::from_micros((self.seq.wrapping_mul(0x9e37_79b9) >> 7) % 5000);
            self.packets.push(Reverse(InFlight {
                at: self.now.plus(self.latency + jitter),
                seq: self.seq,
                to: t.to,
                from,
                data: t.data,
            }));
        }
    }

    /// Process everything due up to `until`, then set the clock to `until`.
    pub fn run_until(&mut self, until: Time) {
        loop {
            let next_packet = self.packets.peek().map(|Reverse(p)| p.at);
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            let next = match (next_packet, next_timer) {
                (Some(p), Some(t)) => p.min(t),
                (Some(p), None) => p,
                (None, Some(t)) => t,
                (None, None) => break,
            };
            if next > until || self.steps >= self.max_steps {
                break;
            }
            self.steps += 1;
            self.now = self.now.max(next);
            if next_packet == Some(next) {
                if let Some(Reverse(p)) = self.packets.pop() {
                    match self.by_addr.get(&p.to).copied() {
                        Some(i) => {
                            self.delivered += 1;
                            self.bytes += p.data.len() as u64;
                            if let Some(n) = self.nodes.get_mut(i) {
                                n.handle_packet(self.now, p.from, &p.data);
                            }
                            self.flush(i);
                        }
                        None => self.lost += 1,
                    }
                }
            } else if let Some(Reverse((t, i))) = self.timers.pop() {
                // Lazy deletion: act only if the node still wants this time.
                let wanted = self.nodes.get(i).and_then(|n| n.poll_timeout());
                if wanted.is_some_and(|w| w <= t) {
                    if let Some(n) = self.nodes.get_mut(i) {
                        n.handle_timeout(self.now);
                    }
                    self.flush(i);
                }
            }
        }
        self.now = self.now.max(until);
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let until = self.now.plus(d);
        self.run_until(until);
    }

    /// Events of node `i` so far.
    pub fn events_of(&self, i: usize) -> impl Iterator<Item = &Event> + '_ {
        self.events.iter().filter(move |(j, _)| *j == i).map(|(_, e)| e)
    }
}
