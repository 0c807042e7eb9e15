//! The DHT node: one [`Dht`] per address family, driven by packets and time (see the crate docs).
//!
//! Inputs: [`Dht::handle_packet`], [`Dht::handle_timeout`] and the commands ([`Dht::bootstrap`],
//! [`Dht::add_node`], [`Dht::get_peers`], [`Dht::find_node`], [`Dht::scrape`], [`Dht::set_external_ip`],
//! [`Dht::restore`]). Outputs, drained after every input: [`Dht::poll_transmit`], [`Dht::poll_event`],
//! and [`Dht::poll_timeout`] (when to call `handle_timeout` next).
//!
//! Defences: queries are rate limited per source IP (a bounded table of sources; when it is full of busy
//! sources new ones are refused, which caps the total too); replies are kept under both 1024 bytes
//! (BEP 32) and a multiple of the query's size (no amplification: peers, then bloom filters, then nodes are
//! trimmed to fit); the routing table, peer store, lookups, outstanding queries and output queues are all
//! bounded; malformed, oversized and unexpected packets are dropped and counted, a malformed query with a
//! readable `t` gets error 203.
//!
//! A node that is not in our table and queries us is pinged (once at a time per address) if its bucket
//! would have room; it enters the table when it answers (BEP 5: the table holds nodes that answered us).
//! BEP 43: queries with `ro = 1` are answered but their senders are never added; in read-only mode we
//! answer nothing and mark our queries `ro`.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use bencode::Encoder;

use crate::bep42;
use crate::krpc::{self, Body, KrpcError, Message, NodeInfo, Query, QueryKind, Response, Want};
pub use crate::lookup::{Announce, LookupId};
use crate::lookup::{Lookup, LookupKind, Purpose};
use crate::routing::{Insert, RoutingTable};
use crate::store::{Bloom, PeerStore};
use crate::token::Tokens;
use crate::{NodeId, Time};

/// Node settings. Plain data with defaults that follow BEP 5 and libtorrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Nodes per bucket, and nodes returned per reply (BEP 5: 8).
    pub k: usize,
    /// Queries in flight per lookup (3).
    pub alpha: usize,
    /// BEP 43 read-only mode: answer no queries, mark ours `ro = 1`.
    pub read_only: bool,
    /// Peers stored per info-hash (100).
    pub max_peers_per_hash: usize,
    /// Info-hashes stored (1000).
    pub max_info_hashes: usize,
    /// Queries accepted per second from one IP (20; 0 disables the limit). On loopback every node shares
    /// one IP: raise it for tests with many local nodes.
    pub max_queries_per_sec_per_ip: u32,
    /// Queries from loopback addresses (this machine: local tools, tests, other clients on the host) are
    /// not rate limited (true); a remote sender cannot use a loopback source address.
    pub rate_limit_exempt_loopback: bool,
    /// Pings sent per second, in all, to nodes that queried us and could join the table (16). Bounds what
    /// a flood of queries with spoofed source addresses can make us send to their victims.
    pub max_querier_pings_per_sec: u32,
    /// At most one routing-table entry per public IP address (true; loopback and private addresses are
    /// never restricted), so one machine on many ports cannot fill our table.
    pub one_node_per_ip: bool,
    /// Queries one IP may send in a burst above the rate (40).
    pub rate_limit_burst: u32,
    /// Source IPs the rate limiter tracks at once (512).
    pub rate_limit_sources: usize,
    /// How often the token secret changes (BEP 5: 5 minutes; the previous secret is still accepted).
    pub token_rotation: Duration,
    /// How long an announced peer is kept (30 minutes).
    pub peer_ttl: Duration,
    /// A bucket not changed for this long is refreshed, and a node not heard for this long becomes
    /// questionable (BEP 5: 15 minutes).
    pub bucket_refresh: Duration,
    /// How long to wait for an answer (4 s).
    pub query_timeout: Duration,
    /// Lookups running at once (16); more wait in a queue of up to [`MAX_QUEUED_LOOKUPS`].
    pub max_lookups: usize,
    /// Queries awaiting an answer at once (256).
    pub max_outstanding: usize,
    /// Our `v`: client id and version (`"BS"` + 2 bytes).
    pub client_version: [u8; 4],
    /// BEP 42 enforcement: nodes whose id does not match their IP are kept out of the table, do not count
    /// for a lookup's end and are not announced to (false: verified nodes are only preferred).
    pub bep42_enforce: bool,
    /// Largest packet accepted (1500).
    pub max_packet: usize,
    /// Largest reply sent (1024, BEP 32).
    pub max_reply_bytes: usize,
    /// A reply is at most this many times the size of its query (8), but may always reach 128 bytes.
    pub max_reply_ratio: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            k: 8,
            alpha: 3,
            read_only: false,
            max_peers_per_hash: 100,
            max_info_hashes: 1000,
            max_queries_per_sec_per_ip: 20,
            rate_limit_exempt_loopback: true,
            max_querier_pings_per_sec: 16,
            one_node_per_ip: true,
            rate_limit_burst: 40,
            rate_limit_sources: 512,
            token_rotation: Duration::from_secs(5 * 60),
            peer_ttl: Duration::from_secs(30 * 60),
            bucket_refresh: Duration::from_secs(15 * 60),
            query_timeout: Duration::from_secs(4),
            max_lookups: 16,
            max_outstanding: 256,
            client_version: *b"BS\x00\x01",
            bep42_enforce: false,
            max_packet: krpc::MAX_PACKET,
            max_reply_bytes: 1024,
            max_reply_ratio: 8,
        }
    }
}

/// Lookups waiting for a free slot at most; beyond that a new lookup ends at once with no answers.
pub const MAX_QUEUED_LOOKUPS: usize = 256;
/// Packets waiting in the output queue at most.
pub const MAX_TRANSMITS: usize = 4096;
/// Events waiting in the output queue at most.
pub const MAX_EVENTS: usize = 4096;
/// Bootstrap addresses kept.
pub const MAX_BOOTSTRAP: usize = 32;
/// Votes on our external IP kept (one per voter).
const MAX_VOTES: usize = 32;
/// Votes an address needs before it is believed.
const VOTES_NEEDED: usize = 3;
/// The smallest reply budget whatever the query's size (a ping reply or an error fits).
const MIN_REPLY_BUDGET: usize = 128;
/// Peers returned per get_peers reply at most (before the byte budget trims them).
const MAX_VALUES: usize = 100;
/// How often expired peers are swept out of the store.
const STORE_SWEEP: Duration = Duration::from_secs(60);
/// First and longest wait between bootstrap attempts while the table is empty.
const BOOTSTRAP_RETRY_MIN: Duration = Duration::from_secs(5);
const BOOTSTRAP_RETRY_MAX: Duration = Duration::from_secs(300);

/// A packet to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub to: SocketAddr,
    /// The UDP payload.
    pub data: Vec<u8>,
}

/// What the node reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Peers for a `get_peers` lookup, as they arrive (each peer once per lookup).
    Peers {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: [u8; 20],
        /// New peers.
        peers: Vec<SocketAddr>,
    },
    /// A BEP 33 scrape finished: estimated seeds and peers from the union of the bloom filters received.
    Scrape {
        /// The lookup.
        lookup: LookupId,
        /// Its info-hash.
        info_hash: [u8; 20],
        /// Estimated seeds.
        seeds: u32,
        /// Estimated non-seed peers.
        peers: u32,
    },
    /// A lookup ended.
    LookupDone {
        /// The lookup.
        lookup: LookupId,
        /// Its target.
        target: [u8; 20],
        /// Nodes that answered.
        responded: usize,
        /// `announce_peer` queries sent at its end.
        announced: usize,
        /// Queries sent by the lookup (not counting announces).
        queries: u32,
    },
    /// Our external IP, voted from the `ip` fields of responses (BEP 42), when it changes.
    ExternalIp(IpAddr),
    /// The first time the table holds `k` good nodes, or the first bootstrap lookup ended with nodes.
    Bootstrapped {
        /// Good nodes in the table.
        nodes: usize,
    },
}

/// Counts per query method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindCounts {
    /// `ping`.
    pub ping: u64,
    /// `find_node`.
    pub find_node: u64,
    /// `get_peers`.
    pub get_peers: u64,
    /// `announce_peer`.
    pub announce_peer: u64,
    /// Any other method.
    pub other: u64,
}

impl KindCounts {
    fn add(&mut self, kind: &QueryKind) {
        match kind {
            QueryKind::Ping => self.ping += 1,
            QueryKind::FindNode { .. } => self.find_node += 1,
            QueryKind::GetPeers { .. } => self.get_peers += 1,
            QueryKind::AnnouncePeer { .. } => self.announce_peer += 1,
            QueryKind::Unknown { .. } => self.other += 1,
        }
    }
    /// Sum over the methods.
    pub fn total(&self) -> u64 {
        self.ping + self.find_node + self.get_peers + self.announce_peer + self.other
    }
}

/// Packets dropped, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// Larger than `max_packet`.
    pub oversized: u64,
    /// Not a valid KRPC message.
    pub malformed: u64,
    /// A response or error matching no query of ours (unknown `t`, or from another address).
    pub unexpected: u64,
    /// Queries over the per-IP rate.
    pub rate_limited: u64,
    /// Queries not answered because we are read-only (BEP 43).
    pub read_only: u64,
    /// Announces refused for a bad token (answered with error 203).
    pub bad_token: u64,
    /// Outputs dropped because a queue or the outstanding-query table was full.
    pub queue_full: u64,
}

/// A snapshot of the node's counters and sizes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Good nodes in the table.
    pub nodes_good: usize,
    /// Questionable nodes in the table.
    pub nodes_questionable: usize,
    /// Bad nodes still in the table (awaiting replacement).
    pub nodes_bad: usize,
    /// Buckets.
    pub buckets: usize,
    /// Info-hashes in the peer store.
    pub info_hashes: usize,
    /// Peers in the peer store.
    pub peers: usize,
    /// Queries received, by method.
    pub queries_in: KindCounts,
    /// Queries sent, by method.
    pub queries_out: KindCounts,
    /// Responses received to our queries.
    pub responses_in: u64,
    /// Errors received to our queries.
    pub errors_in: u64,
    /// Errors sent.
    pub errors_out: u64,
    /// Our queries that timed out.
    pub timeouts: u64,
    /// Packets dropped, by reason.
    pub dropped: DropCounts,
    /// Peers stored from announces.
    pub announces_stored: u64,
    /// Replies trimmed to stay within the size budget.
    pub replies_trimmed: u64,
    /// Lookups running.
    pub lookups_active: usize,
    /// Lookups waiting for a slot.
    pub lookups_queued: usize,
    /// Lookups finished.
    pub lookups_done: u64,
    /// Queries awaiting an answer.
    pub outstanding: usize,
}

/// Errors of [`Dht::restore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DhtError {
    /// The saved state is not bencode.
    #[error("saved DHT state: {0}")]
    Bencode(#[from] bencode::Error),
    /// The saved state is bencode of the wrong shape.
    #[error("saved DHT state: {0}")]
    Malformed(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Ping,
    Lookup(LookupId),
    Announce,
}

#[derive(Debug, Clone)]
struct Outstanding {
    addr: SocketAddr,
    sent: Time,
    what: Sent,
}

#[derive(Debug, Clone)]
struct QueuedLookup {
    id: LookupId,
    target: NodeId,
    kind: LookupKind,
    purpose: Purpose,
}

/// Per-source token buckets, in micro-queries. A source whose bucket has refilled is no different from one
/// never seen, so such entries are dropped every [`PRUNE_EVERY`] new sources (and whenever the table is
/// full): an idle node holds few.
#[derive(Debug, Clone)]
struct RateLimiter {
    per_sec: u64,
    burst: u64,
    cap: usize,
    sources: BTreeMap<IpAddr, (u64, Time)>,
    inserts: u32,
}

const PRUNE_EVERY: u32 = 32;

impl RateLimiter {
    fn allow(&mut self, now: Time, ip: IpAddr) -> bool {
        if self.per_sec == 0 {
            return true;
        }
        let (per_sec, full) = (self.per_sec, self.burst.max(1) * 1_000_000);
        let refill = |(level, at): (u64, Time)| -> u64 {
            let micros = u64::try_from(now.since(at).as_micros()).unwrap_or(u64::MAX);
            level.saturating_add(micros.saturating_mul(per_sec)).min(full)
        };
        if let Some(slot) = self.sources.get_mut(&ip) {
            let level = refill(*slot);
            if level < 1_000_000 {
                *slot = (level, now);
                return false;
            }
            *slot = (level - 1_000_000, now);
            return true;
        }
        self.inserts = self.inserts.wrapping_add(1);
        if self.sources.len() >= self.cap || self.inserts.is_multiple_of(PRUNE_EVERY) {
            self.sources.retain(|_, v| refill(*v) < full);
            if self.sources.len() >= self.cap {
                return false;
            }
        }
        self.sources.insert(ip, (full - 1_000_000, now));
        true
    }
}

/// A Mainline DHT node for one address family. See the [module docs](self).
#[derive(Debug)]
pub struct Dht<R: rand::Rng> {
    config: Config,
    bind: SocketAddr,
    v6: bool,
    rng: R,
    id: NodeId,
    external_ip: Option<IpAddr>,
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    outstanding: BTreeMap<u16, Outstanding>,
    next_tid: u16,
    lookups: Vec<Lookup>,
    queued: VecDeque<QueuedLookup>,
    next_lookup: u32,
    bootstrap_nodes: Vec<SocketAddr>,
    bootstrap_lookup: Option<LookupId>,
    bootstrap_retry: Duration,
    next_bootstrap: Option<Time>,
    bootstrapped: bool,
    next_sweep: Option<Time>,
    rate: RateLimiter,
    /// Pings to queriers in the current second: (the second, how many).
    querier_pings: (u64, u32),
    votes: VecDeque<(IpAddr, IpAddr)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    now: Time,
}

impl<R: rand::Rng> Dht<R> {
    /// A node bound to `bind` (its family decides IPv4 or IPv6 behaviour) with a random id; the id is
    /// derived per BEP 42 once the external address is known ([`Dht::set_external_ip`]).
    pub fn new(config: Config, bind: SocketAddr, mut rng: R, now: Time) -> Self {
        let id = NodeId::random(&mut rng);
        let tokens = Tokens::new(&mut rng, now, config.token_rotation);
        let next_tid = rng.random();
        let mut table = RoutingTable::new(id, config.k, config.bucket_refresh, now);
        table.set_one_per_ip(config.one_node_per_ip);
        let store = PeerStore::new(config.max_info_hashes, config.max_peers_per_hash, config.peer_ttl);
        let rate = RateLimiter {
            per_sec: u64::from(config.max_queries_per_sec_per_ip),
            burst: u64::from(config.rate_limit_burst.max(config.max_queries_per_sec_per_ip)),
            cap: config.rate_limit_sources.max(1),
            sources: BTreeMap::new(),
            inserts: 0,
        };
        let bind = canonical(bind);
        Dht {
            querier_pings: (0, 0),
            v6: bind.is_ipv6(),
            bind,
            config,
            rng,
            id,
            external_ip: None,
            table,
            tokens,
            store,
            outstanding: BTreeMap::new(),
            next_tid,
            lookups: Vec::new(),
            queued: VecDeque::new(),
            next_lookup: 1,
            bootstrap_nodes: Vec::new(),
            bootstrap_lookup: None,
            bootstrap_retry: BOOTSTRAP_RETRY_MIN,
            next_bootstrap: None,
            bootstrapped: false,
            next_sweep: None,
            rate,
            votes: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            now,
        }
    }

    /// Our node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Our external IP, if known.
    pub fn external_ip(&self) -> Option<IpAddr> {
        self.external_ip
    }

    /// The routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Our external address is `ip`: if our id is not a valid BEP 42 id for it (and it is not a local
    /// address), take a new one and rebuild the table around it. An address of the other family is ignored.
    pub fn set_external_ip(&mut self, now: Time, ip: IpAddr) {
        self.tick(now);
        let ip = canonical_ip(ip);
        if ip.is_ipv6() != self.v6 {
            return;
        }
        self.external_ip = Some(ip);
        if !bep42::is_local(ip) && !bep42::id_matches_ip(&self.id, ip) {
            let id = bep42::generate_id(ip, &mut self.rng);
            self.change_id(id, now);
        }
    }

    fn change_id(&mut self, id: NodeId, now: Time) {
        self.id = id;
        self.table = self.table.rebuilt(id, now);
    }

    fn tick(&mut self, now: Time) {
        self.now = self.now.max(now);
    }

    // ----- inputs -----

    /// A UDP packet arrived from `from`.
    pub fn handle_packet(&mut self, now: Time, from: SocketAddr, packet: &[u8]) {
        self.tick(now);
        let from = canonical(from);
        if packet.len() > self.config.max_packet {
            self.stats.dropped.oversized += 1;
            return;
        }
        let msg = match krpc::decode_with_limit(packet, self.config.max_packet) {
            Ok(m) => m,
            Err(e) => {
                self.stats.dropped.malformed += 1;
                if let Some(t) = e.query_transaction {
                    if !self.config.read_only && self.rate.allow(now, from.ip()) {
                        let text = format!("malformed query: {}", e.kind);
                        self.send_error(from, t, krpc::code::PROTOCOL, &text, packet.len());
                    }
                }
                return;
            }
        };
        let Message {
            transaction,
            ip,
            read_only,
            body,
            ..
        } = msg;
        match body {
            Body::Query(q) => self.handle_query(now, from, transaction, read_only, q, packet.len()),
            Body::Response(r) => self.handle_response(now, from, &transaction, ip, r),
            Body::Error(e) => self.handle_error(now, from, &transaction, e),
        }
    }

    fn handle_query(
        &mut self,
        now: Time,
        from: SocketAddr,
        transaction: Vec<u8>,
        sender_read_only: bool,
        q: Query,
        query_len: usize,
    ) {
        self.stats.queries_in.add(&q.kind);
        let exempt = self.config.rate_limit_exempt_loopback && from.ip().is_loopback();
        if !exempt && !self.rate.allow(now, from.ip()) {
            self.stats.dropped.rate_limited += 1;
            return;
        }
        if self.config.read_only {
            // BEP 43: "It no longer responds to 'query' messages that it receives".
            self.stats.dropped.read_only += 1;
            return;
        }
        let querier = q.id;
        let body = match q.kind {
            QueryKind::Ping => Body::Response(self.response()),
            QueryKind::FindNode { target, want } => {
                let mut r = self.response();
                self.fill_nodes(&mut r, &target, want, now);
                Body::Response(r)
            }
            QueryKind::GetPeers {
                info_hash,
                want,
                noseed,
                scrape,
            } => {
                self.tokens.rotate_if_due(now, &mut self.rng);
                let mut r = self.response();
                self.fill_nodes(&mut r, &NodeId(info_hash), want, now);
                r.token = Some(self.tokens.token(from.ip()).to_vec());
                r.values = self
                    .store
                    .peers(now, &info_hash, self.v6, MAX_VALUES, noseed, &mut self.rng);
                if scrape {
                    if let Some((seeds, peers)) = self.store.blooms(now, &info_hash) {
                        r.seeds_bloom = Some(Box::new(seeds.0));
                        r.peers_bloom = Some(Box::new(peers.0));
                    }
                }
                Body::Response(r)
            }
            QueryKind::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                seed,
            } => {
                self.tokens.rotate_if_due(now, &mut self.rng);
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.verify(from.ip(), &token) {
                    self.stats.dropped.bad_token += 1;
                    Body::Error(KrpcError {
                        code: krpc::code::PROTOCOL,
                        message: "bad token".into(),
                    })
                } else if port == 0 {
                    Body::Error(KrpcError {
                        code: krpc::code::PROTOCOL,
                        message: "invalid port".into(),
                    })
                } else {
                    self.store
                        .announce(now, info_hash, SocketAddr::new(from.ip(), port), seed);
                    self.stats.announces_stored += 1;
                    self.schedule_sweep(now);
                    Body::Response(self.response())
                }
            }
            QueryKind::Unknown { .. } => Body::Error(KrpcError {
                code: krpc::code::METHOD_UNKNOWN,
                message: "method unknown".into(),
            }),
        };
        if matches!(body, Body::Error(_)) {
            self.stats.errors_out += 1;
        }
        let mut reply = Message {
            transaction,
            version: Some(self.config.client_version.to_vec()),
            ip: Some(from),
            read_only: false,
            body,
        };
        let data = self.fit_reply(&mut reply, query_len);
        self.push_transmit(from, data);
        // BEP 43: "If it is found, the node should not add the message sender to its routing table."
        if !sender_read_only && querier != self.id && !self.table.heard_query(now, &querier, &from) {
            self.consider_querier(now, querier, from);
        }
    }

    fn response(&self) -> Response {
        Response {
            id: self.id,
            ..Response::default()
        }
    }

    /// BEP 32: with no `want`, the nodes of the family the query came over (ours); with a `want`, the lists
    /// it names that we have (a node of one family has no table of the other).
    fn fill_nodes(&self, r: &mut Response, target: &NodeId, want: Option<Want>, now: Time) {
        let want = want.unwrap_or(Want {
            n4: !self.v6,
            n6: self.v6,
        });
        let ours = if self.v6 { want.n6 } else { want.n4 };
        if !ours {
            return;
        }
        let nodes = self.table.closest(target, self.config.k, now);
        if self.v6 {
            r.nodes6 = Some(nodes);
        } else {
            r.nodes = Some(nodes);
        }
    }

    /// Encode a reply within the budget: `min(max_reply_bytes, ratio * query)` but at least 128 bytes.
    /// Trims values first, then the bloom filters, then nodes.
    fn fit_reply(&mut self, reply: &mut Message, query_len: usize) -> Vec<u8> {
        let budget = query_len
            .saturating_mul(self.config.max_reply_ratio)
            .min(self.config.max_reply_bytes)
            .max(MIN_REPLY_BUDGET);
        let mut data = reply.encode();
        if data.len() <= budget {
            return data;
        }
        self.stats.replies_trimmed += 1;
        let per_value = if self.v6 { 21 } else { 8 };
        loop {
            let Body::Response(r) = &mut reply.body else {
                return data;
            };
            if !r.values.is_empty() {
                let over = data.len().saturating_sub(budget);
                let drop = over.div_ceil(per_value).clamp(1, r.values.len());
                r.values.truncate(r.values.len() - drop);
            } else if r.seeds_bloom.is_some() || r.peers_bloom.is_some() {
                r.seeds_bloom = None;
                r.peers_bloom = None;
            } else if let Some(n) = r.nodes.as_mut().filter(|n| !n.is_empty()) {
                n.pop();
            } else if let Some(n) = r.nodes6.as_mut().filter(|n| !n.is_empty()) {
                n.pop();
            } else {
                return data;
            }
            data = reply.encode();
            if data.len() <= budget {
                return data;
            }
        }
    }

    /// A node that is not in the table queried us: ping it if it could join.
    fn consider_querier(&mut self, now: Time, id: NodeId, from: SocketAddr) {
        if from.is_ipv6() != self.v6 || !usable_addr(&from) {
            return;
        }
        if self.config.bep42_enforce && !bep42::verified(&id, from.ip()) {
            return;
        }
        if self.table.would_accept(&id, &from, now) && !self.pinging(&from) {
            let second = now.0.as_secs();
            if self.querier_pings.0 != second {
                self.querier_pings = (second, 0);
            }
            if self.querier_pings.1 >= self.config.max_querier_pings_per_sec {
                return;
            }
            self.querier_pings.1 += 1;
            self.send_ping(now, from);
        }
    }

    fn pinging(&self, addr: &SocketAddr) -> bool {
        self.outstanding
            .values()
            .any(|o| o.addr == *addr && o.what == Sent::Ping)
    }

    fn handle_response(
        &mut self,
        now: Time,
        from: SocketAddr,
        transaction: &[u8],
        ip: Option<SocketAddr>,
        r: Response,
    ) {
        let Some(out) = self.take_outstanding(transaction, &from) else {
            self.stats.dropped.unexpected += 1;
            return;
        };
        self.stats.responses_in += 1;
        if r.id == self.id {
            // Someone answering with our own id: not a node we can use.
            if let Sent::Lookup(lid) = out.what {
                self.lookup_failed(now, lid, &from);
            }
            return;
        }
        if let Some(ip) = ip {
            self.vote(now, from.ip(), ip.ip());
        }
        let verified = bep42::verified(&r.id, from.ip());
        self.heard_response(now, r.id, from, verified);
        match out.what {
            Sent::Ping | Sent::Announce => {}
            Sent::Lookup(lid) => self.lookup_response(now, lid, from, r, verified),
        }
        self.check_bootstrapped(now);
    }

    fn heard_response(&mut self, now: Time, id: NodeId, from: SocketAddr, verified: bool) {
        if from.is_ipv6() != self.v6 || !usable_addr(&from) {
            return;
        }
        if self.config.bep42_enforce && !verified {
            return;
        }
        if let Insert::PingFirst(q) = self.table.heard_from(now, id, from, verified) {
            if !self.pinging(&q.addr) {
                self.send_ping(now, q.addr);
            }
        }
    }

    fn handle_error(&mut self, now: Time, from: SocketAddr, transaction: &[u8], _e: KrpcError) {
        let Some(out) = self.take_outstanding(transaction, &from) else {
            self.stats.dropped.unexpected += 1;
            return;
        };
        self.stats.errors_in += 1;
        if let Sent::Lookup(lid) = out.what {
            self.lookup_failed(now, lid, &from);
        }
    }

    fn take_outstanding(&mut self, transaction: &[u8], from: &SocketAddr) -> Option<Outstanding> {
        let tid = u16::from_be_bytes(<[u8; 2]>::try_from(transaction).ok()?);
        if self.outstanding.get(&tid)?.addr != *from {
            return None;
        }
        self.outstanding.remove(&tid)
    }

    /// Time passed: expire queries, refresh buckets, retry bootstrap, sweep the store.
    pub fn handle_timeout(&mut self, now: Time) {
        self.tick(now);
        let timeout = self.config.query_timeout;
        let expired: Vec<u16> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.sent.plus(timeout) <= now)
            .map(|(t, _)| *t)
            .collect();
        for tid in expired {
            let Some(o) = self.outstanding.remove(&tid) else {
                continue;
            };
            self.stats.timeouts += 1;
            self.table.failed(now, &o.addr);
            if let Sent::Lookup(lid) = o.what {
                self.lookup_failed(now, lid, &o.addr);
            }
        }
        self.tokens.rotate_if_due(now, &mut self.rng);
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.store.expire(now);
            self.next_sweep = None;
            self.schedule_sweep(now);
        }
        // Refresh stale buckets: ping their least recently seen questionable node and look up a random id
        // in their range ("picking a random ID in the range of the bucket and performing a find_nodes
        // search on it").
        let stale: Vec<usize> = self
            .table
            .stale_buckets(now, self.config.bucket_refresh)
            .collect();
        for bi in stale {
            self.table.touch_bucket(bi, now);
            if let Some(q) = self.table.questionable_in(bi, now) {
                if !self.pinging(&q.addr) {
                    self.send_ping(now, q.addr);
                }
            }
            if self.table.is_empty() {
                continue; // the bootstrap retries take care of an empty table
            }
            let last = bi + 1 == self.table.buckets().len();
            let target = if last {
                self.id
            } else {
                self.id.random_at_prefix(bi, &mut self.rng)
            };
            let refreshing = self
                .lookups
                .iter()
                .any(|l| l.purpose == Purpose::Refresh && l.target == target);
            if !refreshing {
                self.start_lookup(now, target, LookupKind::FindNode, Purpose::Refresh);
            }
        }
        if self.next_bootstrap.is_some_and(|t| t <= now) {
            self.next_bootstrap = None;
            if self.table.counts(now).0 == 0 && self.bootstrap_lookup.is_none() {
                self.start_bootstrap(now);
            }
        }
        self.start_queued(now);
        // Lookups held back by a full outstanding table continue now that timeouts freed room.
        let ids: Vec<LookupId> = self.lookups.iter().map(|l| l.id).collect();
        for lid in ids {
            self.step_lookup(now, lid);
        }
    }

    // ----- commands -----

    /// Join the DHT through these nodes: a `find_node` for our own id through them, repeated (with
    /// back-off) while the table has no good node.
    pub fn bootstrap(&mut self, now: Time, nodes: &[SocketAddr]) {
        self.tick(now);
        for n in nodes.iter().map(|n| canonical(*n)) {
            if n.is_ipv6() == self.v6
                && usable_addr(&n)
                && !self.bootstrap_nodes.contains(&n)
                && self.bootstrap_nodes.len() < MAX_BOOTSTRAP
            {
                self.bootstrap_nodes.push(n);
            }
        }
        self.bootstrap_retry = BOOTSTRAP_RETRY_MIN;
        if self.bootstrap_lookup.is_none() {
            self.start_bootstrap(now);
        }
    }

    fn start_bootstrap(&mut self, now: Time) {
        let target = self.id;
        let id = self.start_lookup(now, target, LookupKind::FindNode, Purpose::Bootstrap);
        self.bootstrap_lookup = Some(id);
    }

    /// Ping a node we heard of (e.g. from a peer's PORT message); it joins the table if it answers.
    pub fn add_node(&mut self, now: Time, addr: SocketAddr) {
        self.tick(now);
        let addr = canonical(addr);
        if addr.is_ipv6() == self.v6
            && usable_addr(&addr)
            && self.table.get_by_addr(&addr).is_none()
            && !self.pinging(&addr)
        {
            self.send_ping(now, addr);
        }
    }

    /// Look up peers for `info_hash`; with `announce`, announce ourselves to the closest nodes that gave a
    /// token at the end. Peers arrive as [`Event::Peers`], the end as [`Event::LookupDone`].
    pub fn get_peers(&mut self, now: Time, info_hash: [u8; 20], announce: Option<Announce>) -> LookupId {
        self.tick(now);
        let kind = LookupKind::GetPeers {
            announce,
            scrape: false,
        };
        self.start_lookup(now, NodeId(info_hash), kind, Purpose::User)
    }

    /// A BEP 33 scrape: a `get_peers` lookup asking for bloom filters; reports [`Event::Scrape`] (and any
    /// peers) before [`Event::LookupDone`].
    pub fn scrape(&mut self, now: Time, info_hash: [u8; 20]) -> LookupId {
        self.tick(now);
        let kind = LookupKind::GetPeers {
            announce: None,
            scrape: true,
        };
        self.start_lookup(now, NodeId(info_hash), kind, Purpose::User)
    }

    /// Look up the nodes closest to `target`.
    pub fn find_node(&mut self, now: Time, target: NodeId) -> LookupId {
        self.tick(now);
        self.start_lookup(now, target, LookupKind::FindNode, Purpose::User)
    }

    fn start_lookup(&mut self, now: Time, target: NodeId, kind: LookupKind, purpose: Purpose) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup = self.next_lookup.wrapping_add(1).max(1);
        let q = QueuedLookup {
            id,
            target,
            kind,
            purpose,
        };
        if self.lookups.len() < self.config.max_lookups.max(1) {
            self.activate(now, q);
        } else if self.queued.len() < MAX_QUEUED_LOOKUPS {
            self.queued.push_back(q);
        } else {
            self.stats.lookups_done += 1;
            if purpose == Purpose::User {
                self.push_event(Event::LookupDone {
                    lookup: id,
                    target: target.0,
                    responded: 0,
                    announced: 0,
                    queries: 0,
                });
            }
        }
        id
    }

    fn start_queued(&mut self, now: Time) {
        while self.lookups.len() < self.config.max_lookups.max(1) {
            let Some(q) = self.queued.pop_front() else {
                break;
            };
            self.activate(now, q);
        }
    }

    fn activate(&mut self, now: Time, q: QueuedLookup) {
        let mut l = Lookup::new(q.id, q.target, q.kind, q.purpose, now);
        let enforce = self.config.bep42_enforce;
        for n in self.table.closest(&q.target, self.config.k * 2, now) {
            let verified = bep42::verified(&n.id, n.addr.ip());
            if !enforce || verified {
                l.add_candidate(Some(n.id), n.addr, verified);
            }
        }
        if l.candidates().len() < self.config.k {
            for b in &self.bootstrap_nodes {
                l.add_candidate(None, *b, false);
            }
        }
        self.lookups.push(l);
        self.step_lookup(now, q.id);
    }

    fn lookup_index(&self, lid: LookupId) -> Option<usize> {
        self.lookups.iter().position(|l| l.id == lid)
    }

    fn lookup_failed(&mut self, now: Time, lid: LookupId, addr: &SocketAddr) {
        if let Some(i) = self.lookup_index(lid) {
            if let Some(l) = self.lookups.get_mut(i) {
                l.on_failure(addr);
            }
            self.step_lookup(now, lid);
        }
    }

    fn lookup_response(&mut self, now: Time, lid: LookupId, from: SocketAddr, r: Response, verified: bool) {
        let Some(i) = self.lookup_index(lid) else {
            return;
        };
        let enforce = self.config.bep42_enforce;
        let own = self.id;
        let v6 = self.v6;
        let bind = self.bind;
        let mut peers_event = None;
        if let Some(l) = self.lookups.get_mut(i) {
            l.on_response(&from, r.id, r.token, verified);
            let nodes = if v6 { r.nodes6 } else { r.nodes };
            for n in nodes.unwrap_or_default() {
                if n.id == own || n.addr == bind || !usable_addr(&n.addr) || n.addr.is_ipv6() != v6 {
                    continue;
                }
                let nv = bep42::verified(&n.id, n.addr.ip());
                if enforce && !nv {
                    // Still worth asking for nodes, but never counted or announced to.
                    l.add_candidate(Some(n.id), n.addr, false);
                } else {
                    l.add_candidate(Some(n.id), n.addr, nv);
                }
            }
            if let LookupKind::GetPeers { scrape, .. } = l.kind {
                let peers: Vec<SocketAddr> = r.values.iter().copied().filter(usable_addr).collect();
                if scrape {
                    let blooms = l
                        .blooms
                        .get_or_insert_with(|| Box::new((Bloom::new(), Bloom::new())));
                    match (r.seeds_bloom, r.peers_bloom) {
                        (Some(s), Some(p)) => {
                            blooms.0.union(&Bloom(*s));
                            blooms.1.union(&Bloom(*p));
                        }
                        // BEP 33 "Handling legacy responses": values only, counted as peers.
                        _ => peers.iter().for_each(|p| blooms.1.insert_ip(p.ip())),
                    }
                }
                let fresh = l.new_peers(&peers);
                if !fresh.is_empty() && l.purpose == Purpose::User {
                    peers_event = Some(Event::Peers {
                        lookup: lid,
                        info_hash: l.target.0,
                        peers: fresh,
                    });
                }
            }
        }
        if let Some(e) = peers_event {
            self.push_event(e);
        }
        self.step_lookup(now, lid);
    }

    /// Send what the lookup wants to send; finish it when it is done.
    fn step_lookup(&mut self, now: Time, lid: LookupId) {
        let (k, alpha, enforce) = (self.config.k, self.config.alpha, self.config.bep42_enforce);
        loop {
            if self.outstanding.len() >= self.config.max_outstanding {
                break;
            }
            let Some(i) = self.lookup_index(lid) else {
                return;
            };
            let Some(l) = self.lookups.get_mut(i) else {
                return;
            };
            let Some((_, addr)) = l.next_query(k, alpha, enforce) else {
                break;
            };
            let kind = match l.kind {
                LookupKind::FindNode => QueryKind::FindNode {
                    target: l.target,
                    want: None,
                },
                LookupKind::GetPeers { scrape, .. } => QueryKind::GetPeers {
                    info_hash: l.target.0,
                    want: None,
                    noseed: false,
                    scrape,
                },
            };
            if !self.send_query(now, addr, kind, Sent::Lookup(lid)) {
                if let Some(l) = self.lookups.get_mut(i) {
                    l.on_failure(&addr);
                }
            }
        }
        let Some(i) = self.lookup_index(lid) else {
            return;
        };
        if self.lookups.get(i).is_some_and(|l| l.is_done(k, enforce)) {
            let l = self.lookups.remove(i);
            self.finish_lookup(now, l);
            self.start_queued(now);
        }
    }

    fn finish_lookup(&mut self, now: Time, l: Lookup) {
        self.stats.lookups_done += 1;
        let (k, enforce) = (self.config.k, self.config.bep42_enforce);
        let mut announced = 0;
        if let LookupKind::GetPeers {
            announce: Some(a), ..
        } = l.kind
        {
            for (_, addr, token) in l.announce_targets(k, enforce) {
                let kind = QueryKind::AnnouncePeer {
                    info_hash: l.target.0,
                    port: a.port,
                    implied_port: a.implied_port,
                    token,
                    seed: a.seed,
                };
                if self.send_query(now, addr, kind, Sent::Announce) {
                    announced += 1;
                }
            }
        }
        match l.purpose {
            Purpose::User => {
                if let (LookupKind::GetPeers { scrape: true, .. }, Some(b)) = (l.kind, l.blooms.as_ref()) {
                    self.push_event(Event::Scrape {
                        lookup: l.id,
                        info_hash: l.target.0,
                        seeds: b.0.estimate().round() as u32,
                        peers: b.1.estimate().round() as u32,
                    });
                }
                self.push_event(Event::LookupDone {
                    lookup: l.id,
                    target: l.target.0,
                    responded: l.responded(),
                    announced,
                    queries: l.queries,
                });
            }
            Purpose::Bootstrap => {
                if self.bootstrap_lookup == Some(l.id) {
                    self.bootstrap_lookup = None;
                }
                if self.table.is_empty() {
                    self.next_bootstrap = Some(now.plus(self.bootstrap_retry));
                    self.bootstrap_retry = (self.bootstrap_retry * 2).min(BOOTSTRAP_RETRY_MAX);
                }
            }
            Purpose::Refresh => {}
        }
        if l.purpose != Purpose::User && !self.bootstrapped && !self.table.is_empty() {
            self.bootstrapped = true;
            let nodes = self.table.counts(now).0;
            self.push_event(Event::Bootstrapped { nodes });
        }
    }

    fn check_bootstrapped(&mut self, now: Time) {
        if !self.bootstrapped {
            let good = self.table.counts(now).0;
            if good >= self.config.k {
                self.bootstrapped = true;
                self.push_event(Event::Bootstrapped { nodes: good });
            }
        }
    }

    fn vote(&mut self, now: Time, voter: IpAddr, voted: IpAddr) {
        let voted = canonical_ip(voted);
        if voted.is_ipv6() != self.v6 || voted.is_unspecified() {
            return;
        }
        self.votes.retain(|(v, _)| *v != voter);
        if self.votes.len() >= MAX_VOTES {
            self.votes.pop_front();
        }
        self.votes.push_back((voter, voted));
        let count = |ip: &IpAddr| self.votes.iter().filter(|(_, x)| x == ip).count();
        let Some((leader, n)) = self
            .votes
            .iter()
            .map(|(_, x)| (*x, count(x)))
            .max_by_key(|(_, n)| *n)
        else {
            return;
        };
        if n >= VOTES_NEEDED && Some(leader) != self.external_ip && 2 * n > self.votes.len() {
            self.set_external_ip(now, leader);
            self.push_event(Event::ExternalIp(leader));
        }
    }

    // ----- sending -----

    fn send_ping(&mut self, now: Time, to: SocketAddr) -> bool {
        self.send_query(now, to, QueryKind::Ping, Sent::Ping)
    }

    fn send_query(&mut self, now: Time, to: SocketAddr, kind: QueryKind, what: Sent) -> bool {
        if self.outstanding.len() >= self.config.max_outstanding || self.transmits.len() >= MAX_TRANSMITS {
            self.stats.dropped.queue_full += 1;
            return false;
        }
        let mut tid = self.next_tid;
        while self.outstanding.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        self.stats.queries_out.add(&kind);
        let msg = Message {
            transaction: tid.to_be_bytes().to_vec(),
            version: Some(self.config.client_version.to_vec()),
            ip: None,
            read_only: self.config.read_only,
            body: Body::Query(Query { id: self.id, kind }),
        };
        self.outstanding.insert(
            tid,
            Outstanding {
                addr: to,
                sent: now,
                what,
            },
        );
        self.push_transmit(to, msg.encode());
        true
    }

    fn send_error(&mut self, to: SocketAddr, transaction: Vec<u8>, code: i64, text: &str, query_len: usize) {
        self.stats.errors_out += 1;
        let mut text = text.to_string();
        text.truncate(text.char_indices().nth(48).map_or(text.len(), |(i, _)| i));
        let mut reply = Message {
            transaction,
            version: Some(self.config.client_version.to_vec()),
            ip: Some(to),
            read_only: false,
            body: Body::Error(KrpcError { code, message: text }),
        };
        let data = self.fit_reply(&mut reply, query_len);
        self.push_transmit(to, data);
    }

    fn push_transmit(&mut self, to: SocketAddr, data: Vec<u8>) {
        if self.transmits.len() >= MAX_TRANSMITS {
            self.stats.dropped.queue_full += 1;
            return;
        }
        self.transmits.push_back(Transmit { to, data });
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.stats.dropped.queue_full += 1;
            return;
        }
        self.events.push_back(e);
    }

    fn schedule_sweep(&mut self, now: Time) {
        if self.next_sweep.is_none() && self.store.hashes() > 0 {
            self.next_sweep = Some(now.plus(STORE_SWEEP));
        }
    }

    // ----- outputs -----

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Dht::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        let timeout = self.config.query_timeout;
        let mut next = self.outstanding.values().map(|o| o.sent.plus(timeout)).min();
        let mut consider = |t: Option<Time>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.next_sweep);
        consider(self.next_bootstrap);
        consider(self.table.next_stale(self.config.bucket_refresh));
        next
    }

    /// Counters and sizes.
    pub fn stats(&self) -> Stats {
        let (good, questionable, bad) = self.table.counts(self.now);
        Stats {
            nodes_good: good,
            nodes_questionable: questionable,
            nodes_bad: bad,
            buckets: self.table.buckets().len(),
            info_hashes: self.store.hashes(),
            peers: self.store.peers_held(),
            lookups_active: self.lookups.len(),
            lookups_queued: self.queued.len(),
            outstanding: self.outstanding.len(),
            ..self.stats.clone()
        }
    }

    /// Approximate bytes held by this node: the struct itself plus its tables, store, lookups and queues
    /// (by capacity). For sizing simulations.
    pub fn memory_estimate(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.table.heap_bytes()
            + self.store.heap_bytes()
            + self.lookups.iter().map(Lookup::heap_bytes).sum::<usize>()
            + self.lookups.capacity() * std::mem::size_of::<Lookup>()
            + self.outstanding.len() * (std::mem::size_of::<Outstanding>() + 16)
            + self.rate.sources.len() * 64
            + self
                .transmits
                .iter()
                .map(|t| t.data.capacity() + 48)
                .sum::<usize>()
            + self.events.capacity() * std::mem::size_of::<Event>()
    }

    // ----- persistence -----

    /// Our id and table nodes (bad ones left out), bencoded:
    /// `{"id": <20 bytes>, "nodes": <compact>, "nodes6": <compact>}`.
    pub fn save(&self) -> Vec<u8> {
        let nodes: Vec<NodeInfo> = self
            .table
            .entries()
            .filter(|e| self.table.state(e, self.now) != crate::routing::NodeState::Bad)
            .map(|e| e.info())
            .collect();
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"id", |e| e.bytes(&self.id.0));
            d.entry(b"nodes", |e| e.bytes(&krpc::compact_nodes(&nodes, false)));
            d.entry(b"nodes6", |e| e.bytes(&krpc::compact_nodes(&nodes, true)));
        });
        e.finish()
    }

    /// Restore what [`Dht::save`] wrote: the id (unless our known external IP calls for another) and the
    /// nodes, re-added as questionable and pinged. Returns the number of nodes added.
    pub fn restore(&mut self, now: Time, saved: &[u8]) -> Result<usize, DhtError> {
        self.tick(now);
        let v = bencode::decode_with(saved, bencode::DecodeOptions::lenient())?;
        let d = v.as_dict().ok_or(DhtError::Malformed("not a dictionary"))?;
        let id = d
            .get(b"id")
            .and_then(|x| x.as_bytes())
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .map(NodeId)
            .ok_or(DhtError::Malformed("id is not 20 bytes"))?;
        let (key, size): (&[u8], usize) = if self.v6 {
            (b"nodes6", krpc::COMPACT_NODE_V6)
        } else {
            (b"nodes", krpc::COMPACT_NODE_V4)
        };
        let raw = match d.get(key) {
            Some(x) => x.as_bytes().ok_or(DhtError::Malformed("nodes is not a string"))?,
            None => &[],
        };
        if !raw.len().is_multiple_of(size) {
            return Err(DhtError::Malformed(
                "nodes length is not a multiple of the node size",
            ));
        }
        let keep_id = match self.external_ip {
            None => true,
            Some(ip) => bep42::is_local(ip) || bep42::id_matches_ip(&id, ip),
        };
        if keep_id && id != self.id {
            self.change_id(id, now);
        }
        let mut added = 0;
        for n in raw.chunks_exact(size).filter_map(krpc::parse_compact_node) {
            if n.id == self.id || !usable_addr(&n.addr) || n.addr.is_ipv6() != self.v6 {
                continue;
            }
            let verified = bep42::verified(&n.id, n.addr.ip());
            if self.config.bep42_enforce && !verified {
                continue;
            }
            let entry = crate::routing::Entry {
                id: n.id,
                addr: n.addr,
                last_seen: None,
                fails: 0,
                verified,
            };
            match self.table.insert(entry, now) {
                Insert::Added | Insert::Replaced(_) => {
                    added += 1;
                    if !self.pinging(&n.addr) {
                        self.send_ping(now, n.addr);
                    }
                }
                Insert::PingFirst(q) => {
                    if !self.pinging(&q.addr) {
                        self.send_ping(now, q.addr);
                    }
                }
                Insert::Updated | Insert::Full | Insert::Rejected => {}
            }
        }
        Ok(added)
    }
}

/// IPv4-mapped IPv6 addresses as IPv4.
fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(canonical_ip(a.ip()), a.port())
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address a node or peer can have: a port, and not unspecified, multicast or broadcast.
fn usable_addr(a: &SocketAddr) -> bool {
    if a.port() == 0 || a.ip().is_unspecified() || a.ip().is_multicast() {
        return false;
    }
    match a.ip() {
        IpAddr::V4(v4) => !v4.is_broadcast(),
        IpAddr::V6(_) => true,
    }
}
