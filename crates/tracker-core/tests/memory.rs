//! Memory: bytes per peer with 1,000,000 peers over 100,000 swarms (the target: at most 128 bytes per
//! peer beyond the empty store), and a flood of announces for random info-hashes held to the configured
//! bound. A counting global allocator (`cap`, wrapping the system allocator) measures the bytes the store
//! asks for; the allocator's own per-block overhead is not included.
//!
//! Run with the figures shown: `cargo test --release -p tracker-core --test memory -- --nocapture`
//! (it also runs, more slowly, in debug as part of `cargo test`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::Instant;

use cap::Cap;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tracker_core::{AnnounceInput, Refusal, Secs, SwarmConfig, SwarmStore};
use tracker_proto::{Event, InfoHashV1, PeerId};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// The tests share the allocator's count, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn random_announce(rng: &mut SmallRng, info_hash: InfoHashV1) -> AnnounceInput {
    let mut id = *b"-TR3000-000000000000";
    rng.fill(&mut id[8..]);
    let ip = Ipv4Addr::from(rng.random::<u32>());
    let addr = SocketAddr::new(IpAddr::V4(ip), rng.random_range(1024..65535));
    let mut a = AnnounceInput::new(info_hash, PeerId(id), addr);
    a.left = if rng.random_bool(0.3) {
        0
    } else {
        rng.random_range(1..1 << 30)
    };
    a.key = Some(rng.random());
    a.event = Event::Started;
    a.numwant = Some(50);
    a
}

#[test]
fn a_million_peers_over_100k_torrents_take_at_most_128_bytes_each() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const PEERS: usize = 1_000_000;
    const TORRENTS: usize = 100_000;
    let mut rng = SmallRng::seed_from_u64(1);
    let hashes: Vec<InfoHashV1> = (0..TORRENTS).map(|_| InfoHashV1(rng.random())).collect();
    let mut store = SwarmStore::new(SwarmConfig::default(), &mut rng).unwrap();
    let empty = ALLOC.allocated();
    let started = Instant::now();
    for i in 0..PEERS {
        // Every swarm gets peers, at random sizes around 10 (like a real tracker's long tail).
        let h = if i < TORRENTS {
            hashes[i]
        } else {
            hashes[rng.random_range(0..TORRENTS)]
        };
        let a = random_announce(&mut rng, h);
        store.announce(Secs(i as u32 / 1000), a, &mut rng).unwrap();
    }
    let elapsed = started.elapsed();
    let bytes = ALLOC.allocated() - empty;
    let g = store.global_stats();
    assert_eq!((g.peers, g.torrents), (PEERS as u64, TORRENTS as u64));
    let per_peer = bytes as f64 / PEERS as f64;
    println!(
        "memory: {bytes} bytes for {PEERS} peers over {TORRENTS} swarms = {per_peer:.1} bytes per peer \
         ({:.2} s, {:.0} announces/s)",
        elapsed.as_secs_f64(),
        PEERS as f64 / elapsed.as_secs_f64()
    );
    assert!(per_peer <= 128.0, "{per_peer:.1} bytes per peer");

    // Expiry gives it all back (but the table's own small allocations).
    store.expire(Secs(1_000_000), usize::MAX);
    assert_eq!(store.global_stats().peers, 0);
    let left = ALLOC.allocated().saturating_sub(empty);
    assert!(left < 1 << 20, "{left} bytes still held after expiry");
}

#[test]
fn a_flood_of_random_info_hashes_stays_within_the_configured_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const ANNOUNCES: usize = 1_000_000;
    let config = SwarmConfig {
        max_torrents: 10_000,
        max_peers: 50_000,
        ..SwarmConfig::default()
    };
    let bound = config.memory_bound();
    let mut rng = SmallRng::seed_from_u64(2);
    let mut store = SwarmStore::new(config, &mut rng).unwrap();
    let empty = ALLOC.allocated();
    let mut full = 0;
    for i in 0..ANNOUNCES {
        let h = InfoHashV1(rng.random());
        let a = random_announce(&mut rng, h);
        match store.announce(Secs(i as u32 / 10_000), a, &mut rng) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, Refusal::TrackerFull);
                assert_eq!(e.to_string(), "tracker full");
                full += 1;
            }
        }
    }
    let bytes = ALLOC.allocated() - empty;
    let g = store.global_stats();
    println!(
        "flood: {ANNOUNCES} announces for random info-hashes: {} swarms, {full} refused, {bytes} bytes \
         (bound {bound})",
        g.torrents
    );
    assert_eq!(g.torrents, 10_000);
    assert_eq!(full, ANNOUNCES - 10_000);
    assert!(bytes as u64 <= bound, "{bytes} > {bound}");
}
