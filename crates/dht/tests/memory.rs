#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Memory: bytes per stored peer and per routing-table entry, measured with a counting global allocator
//! (`cap`, wrapping the system allocator: the bytes the node asks for, not the allocator's own per-block
//! overhead), and the configured caps holding under floods.
//!
//! The peer store is filled the way peers fill it, through the node's public API: `get_peers` from each of
//! 100 addresses for a token, then `announce_peer` packets with that token, 100 peers on each of 1,000
//! info-hashes (the default caps: `max_info_hashes` 1000, `max_peers_per_hash` 100). The routing table is
//! filled directly (`dht::routing::RoutingTable`, public) to its largest shape: 8 nodes in every bucket
//! (158 of the 160 possible: the deepest have too few ids to fill), and 3 replacements in each once the
//! nodes turn questionable.
//!
//! Run with the figures shown: `cargo test -p dht --test memory -- --nocapture`.

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use cap::Cap;
use dht::krpc::{decode, Body, Message, Query, QueryKind};
use dht::routing::{RoutingTable, MAX_BUCKETS, REPLACEMENTS};
use dht::{Config, Dht, NodeId, Time};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// The tests share the allocator's count, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// A stored peer is a `StoredPeer` (address 32 bytes, seed flag, announce time: 56 bytes with padding) in
/// a swarm's `Vec`, whose capacity runs ahead of its length by up to 2x while it grows; 100 peers sit in a
/// capacity of 128 (72 bytes each), plus each swarm's share of its map node. 128 leaves room for that
/// rounding but not for a second copy of the peer or a per-peer heap allocation.
const MAX_BYTES_PER_PEER: f64 = 128.0;
/// A routing entry is an `Entry` (id 20, address 32, last seen 16, fails and verified flags: 72 bytes) in
/// a bucket's node or replacement `Vec` (capacities 8 and 4 for 8 and 3 entries), plus each bucket's own
/// 56 bytes shared by its 11 entries: about 85. 128 allows for the vectors' rounding; a table that kept a
/// per-entry heap allocation or an index beside the buckets would go past it.
const MAX_BYTES_PER_ENTRY: f64 = 128.0;

fn query(id: NodeId, kind: QueryKind) -> Vec<u8> {
    Message {
        transaction: b"aa".to_vec(),
        version: None,
        ip: None,
        read_only: false,
        body: Body::Query(Query { id, kind }),
    }
    .encode()
}

fn hash(i: u32) -> [u8; 20] {
    let mut h = [0x5a; 20];
    h[..4].copy_from_slice(&i.to_be_bytes());
    h
}

fn peer_addr(i: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + i)), 6881)
}

/// Drain the node's outputs; return the reply to `to`, if any.
fn drain(node: &mut Dht<SmallRng>, to: SocketAddr) -> Option<Message> {
    let mut reply = None;
    while let Some(t) = node.poll_transmit() {
        if t.to == to {
            if let Ok(m) = decode(&t.data) {
                if !matches!(m.body, Body::Query(_)) {
                    reply = Some(m);
                }
            }
        }
    }
    reply
}

fn token_for(node: &mut Dht<SmallRng>, now: Time, from: SocketAddr, id: NodeId) -> Vec<u8> {
    let q = query(
        id,
        QueryKind::GetPeers {
            info_hash: hash(0),
            want: None,
            noseed: false,
            scrape: false,
        },
    );
    node.handle_packet(now, from, &q);
    match drain(node, from).map(|m| m.body) {
        Some(Body::Response(r)) => r.token.expect("a get_peers reply carries a token"),
        other => panic!("no get_peers reply: {other:?}"),
    }
}

/// Announce `info_hash` from `from` (with its token); true if the node answered with a response.
fn announce(
    node: &mut Dht<SmallRng>,
    now: Time,
    from: SocketAddr,
    id: NodeId,
    token: &[u8],
    h: [u8; 20],
) -> bool {
    let q = query(
        id,
        QueryKind::AnnouncePeer {
            info_hash: h,
            port: from.port(),
            implied_port: false,
            token: token.to_vec(),
            seed: false,
        },
    );
    node.handle_packet(now, from, &q);
    matches!(drain(node, from).map(|m| m.body), Some(Body::Response(_)))
}

#[test]
fn a_full_peer_store_takes_at_most_128_bytes_per_peer_and_floods_stay_within_its_caps() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const IPS: u32 = 100;
    let config = Config {
        max_queries_per_sec_per_ip: 0,
        ..Config::default()
    };
    let (hashes, per_hash) = (config.max_info_hashes as u32, config.max_peers_per_hash);
    assert_eq!(
        (hashes, per_hash),
        (1000, 100),
        "the defaults this test is sized for"
    );
    let mut rng = SmallRng::seed_from_u64(1);
    let mut node = Dht::new(
        config,
        "10.0.0.1:6881".parse().unwrap(),
        SmallRng::seed_from_u64(2),
        Time::ZERO,
    );
    let mut now = Time::ZERO;
    // BEP 5: "the queried node must respond with a token ... The token must be included in announce_peer".
    let sources: Vec<(SocketAddr, NodeId, Vec<u8>)> = (0..IPS)
        .map(|i| {
            let (a, id) = (peer_addr(i), NodeId::random(&mut rng));
            (a, id, token_for(&mut node, now, a, id))
        })
        .collect();

    let empty = ALLOC.allocated();
    for h in 0..hashes {
        now = Time(Duration::from_millis(u64::from(h)));
        for (a, id, token) in &sources {
            assert!(announce(&mut node, now, *a, *id, token, hash(h)));
        }
    }
    let full = ALLOC.allocated() - empty;
    let s = node.stats();
    assert_eq!((s.info_hashes, s.peers), (1000, 100_000));
    let per_peer = full as f64 / s.peers as f64;
    println!(
        "peer store: {full} bytes for {} peers over {} info-hashes = {per_peer:.1} bytes per peer \
         (the node's own memory_estimate: {} bytes in all)",
        s.peers,
        s.info_hashes,
        node.memory_estimate()
    );
    assert!(per_peer <= MAX_BYTES_PER_PEER, "{per_peer:.1} bytes per peer");

    // A swarm at its cap: 300 more peers (new ports) take the place of the stalest, never add to it.
    let (a0, id0, token0) = sources[0].clone();
    for port in 0..300u16 {
        let a = SocketAddr::new(a0.ip(), 10_000 + port);
        assert!(announce(&mut node, now, a, id0, &token0, hash(7)));
    }
    assert_eq!(node.stats().peers, 100_000, "max_peers_per_hash holds");

    // A flood of announces for fresh info-hashes: the store keeps 1,000 (a new one pushes out the smallest
    // swarm) and its memory stays within 1% of the full store's.
    for i in 0..20_000u32 {
        let (a, id, token) = &sources[(i % IPS) as usize];
        let h: [u8; 20] = rng.random();
        assert!(announce(&mut node, now, *a, *id, token, h));
    }
    let s = node.stats();
    let flooded = ALLOC.allocated().saturating_sub(empty);
    println!(
        "after 20,000 announces for random info-hashes: {} info-hashes, {} peers, {flooded} bytes",
        s.info_hashes, s.peers
    );
    assert_eq!(s.info_hashes, 1000, "max_info_hashes holds");
    assert!(s.peers <= 100_000);
    assert!(
        flooded <= full + full / 100,
        "{flooded} bytes after the flood, {full} when full"
    );

    // Expired peers give their memory back (BEP 5 leaves the lifetime to the node; ours is 30 minutes).
    let later = now.plus(Duration::from_secs(31 * 60));
    node.handle_timeout(later);
    while node.poll_transmit().is_some() {}
    assert_eq!(node.stats().peers, 0);
    let left = ALLOC.allocated().saturating_sub(empty);
    assert!(left < 64 << 10, "{left} bytes still held after expiry");
}

#[test]
fn a_full_routing_table_takes_at_most_128_bytes_per_entry_and_holds_160_times_k_nodes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = SmallRng::seed_from_u64(3);
    let own = NodeId::random(&mut rng);
    let k = 8;
    let fifteen_minutes = Duration::from_secs(15 * 60);
    let mut port = 0u32;
    let mut next_addr = || {
        port += 1;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a02_0000 + port)), 6881)
    };
    let before = ALLOC.allocated();
    let mut table = RoutingTable::new(own, k, fifteen_minutes, Time::ZERO);
    // Twice as many good nodes as fit at every distance from our id: the extra ones find full buckets.
    for prefix in 0..160 {
        for _ in 0..2 * k {
            table.heard_from(
                Time::ZERO,
                own.random_at_prefix(prefix, &mut rng),
                next_addr(),
                false,
            );
        }
    }
    // BEP 5: "After 15 minutes of inactivity, a node becomes questionable": newcomers now wait as
    // replacements (a few per bucket) instead of being dropped.
    let later = Time(fifteen_minutes + Duration::from_secs(1));
    for prefix in 0..160 {
        for _ in 0..2 * REPLACEMENTS {
            table.heard_from(later, own.random_at_prefix(prefix, &mut rng), next_addr(), false);
        }
    }
    let bytes = ALLOC.allocated() - before;
    let buckets = table.buckets();
    let nodes = table.len();
    let replacements: usize = buckets.iter().map(|b| b.replacements().len()).sum();
    assert!(buckets
        .iter()
        .all(|b| b.nodes().len() <= k && b.replacements().len() <= REPLACEMENTS));
    assert!(
        buckets.len() <= MAX_BUCKETS && nodes <= MAX_BUCKETS * k,
        "at most 160 buckets of k nodes"
    );
    // Only 2^(159 - p) ids share exactly p bits with ours, so the last few buckets cannot fill (and the
    // table never needs to split that deep); all the others do.
    assert!(buckets.len() >= MAX_BUCKETS - 4, "{} buckets", buckets.len());
    assert!(nodes >= (MAX_BUCKETS - 4) * k, "{nodes} nodes");
    let entries = nodes + replacements;
    let per_entry = bytes as f64 / entries as f64;
    println!(
        "routing table: {bytes} bytes for {nodes} nodes + {replacements} replacements in {} buckets = \
         {per_entry:.1} bytes per entry (heap_bytes estimate {})",
        buckets.len(),
        table.heap_bytes()
    );
    assert!(per_entry <= MAX_BYTES_PER_ENTRY, "{per_entry:.1} bytes per entry");
}
