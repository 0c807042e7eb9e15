#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Many nodes in one process, in virtual time (`dht::testnet`): bootstrap from one node, announce, find the
//! peer from elsewhere, BEP 33 scrapes and BEP 43 read-only nodes among ordinary ones. The first test also
//! reports what a node costs (time per node-minute, bytes per node) for sizing the simulator.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::rng;
use dht::testnet::{addr_of, Network};
use dht::{Announce, Config, Dht, Event, Time};
use rand::rngs::SmallRng;

const SEC: Duration = Duration::from_secs(1);
const HASH: [u8; 20] = *b"bitswarm-dht-testnet";

fn network(n: usize, seed: u64) -> Network<SmallRng> {
    let mut net = Network::new(Duration::from_millis(20));
    for i in 0..n {
        net.add(Config::default(), rng(seed * 100_000 + i as u64));
    }
    // Everyone bootstraps from node 0, 50 ms apart.
    let boot = addr_of(0);
    for i in 1..n {
        net.run_for(Duration::from_millis(50));
        net.with(i, |d, now| d.bootstrap(now, &[boot]));
    }
    net
}

fn peers_found(net: &Network<SmallRng>, i: usize) -> Vec<SocketAddr> {
    net.events_of(i)
        .filter_map(|e| match e {
            Event::Peers { peers, .. } => Some(peers.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn done(net: &Network<SmallRng>, i: usize) -> Vec<Event> {
    net.events_of(i)
        .filter(|e| matches!(e, Event::LookupDone { .. }))
        .cloned()
        .collect()
}

#[test]
fn two_hundred_nodes_bootstrap_from_one_and_find_an_announced_peer() {
    let started = Instant::now();
    let n = 200;
    let mut net = network(n, 1);
    net.run_for(120 * SEC);
    let joined = Instant::now();

    // Everyone joined: each reported Bootstrapped and holds a table.
    for i in 1..n {
        assert!(
            net.events_of(i).any(|e| matches!(e, Event::Bootstrapped { .. })),
            "node {i} never bootstrapped"
        );
        assert!(
            net.nodes[i].table().len() >= 8,
            "node {i}: {}",
            net.nodes[i].table().len()
        );
    }
    let sizes: Vec<usize> = net.nodes.iter().map(|d| d.table().len()).collect();
    let avg_table = sizes.iter().sum::<usize>() as f64 / n as f64;

    // Node 17 announces; node 180 (far away in index, unrelated in id) looks the info-hash up.
    let announce = Announce {
        port: 5555,
        implied_port: false,
        seed: true,
    };
    let a = net
        .with(17, |d, now| d.get_peers(now, HASH, Some(announce)))
        .unwrap();
    net.run_for(30 * SEC);
    let Some(Event::LookupDone {
        lookup,
        announced,
        responded,
        ..
    }) = done(&net, 17).last().cloned()
    else {
        panic!("no LookupDone for the announce");
    };
    assert_eq!(lookup, a);
    assert!(announced >= 6, "announced to {announced}");
    assert!(responded >= 8, "{responded}");
    let stored: usize = net.nodes.iter().map(|d| d.stats().peers).sum();
    assert!(stored >= 6, "the announce was stored on {stored} nodes");

    let b = net.with(180, |d, now| d.get_peers(now, HASH, None)).unwrap();
    net.run_for(30 * SEC);
    let expected = SocketAddr::new(addr_of(17).ip(), 5555);
    assert_eq!(
        peers_found(&net, 180),
        vec![expected],
        "each peer reported once per lookup"
    );
    let Some(Event::LookupDone { lookup, queries, .. }) = done(&net, 180).last().cloned() else {
        panic!("no LookupDone for the search");
    };
    assert_eq!(lookup, b);
    assert!(queries < 60, "a lookup in 200 nodes takes {queries} queries");

    // Let it run a simulated hour: refreshes, token rotations, expiry. Tables stay full, the peer expires.
    net.run_for(3600 * SEC);
    let after: usize = net.nodes.iter().map(|d| d.table().len()).sum();
    assert!(
        after as f64 / n as f64 >= avg_table * 0.8,
        "tables shrank: {after}"
    );
    let stored: usize = net.nodes.iter().map(|d| d.stats().peers).sum();
    assert_eq!(
        stored, 0,
        "the peer expired after 30 minutes without re-announcing"
    );

    let elapsed = started.elapsed();
    let node_size = std::mem::size_of::<Dht<SmallRng>>();
    let mem: Vec<usize> = net.nodes.iter().map(Dht::memory_estimate).collect();
    let avg_mem = mem.iter().sum::<usize>() / n;
    let max_mem = mem.iter().max().copied().unwrap_or(0);
    let sim_minutes = net.now.0.as_secs_f64() / 60.0;
    println!(
        "200 nodes: joined in {:.2?} wall, whole test {:.2?} wall for {:.1} simulated minutes \
         ({:.1} us per node-minute); {} packets, {} bytes delivered",
        joined - started,
        elapsed,
        sim_minutes,
        elapsed.as_secs_f64() * 1e6 / (n as f64 * sim_minutes),
        net.delivered,
        net.bytes,
    );
    println!(
        "node size: size_of::<Dht<SmallRng>>() = {node_size} B; with tables: {avg_mem} B average, \
         {max_mem} B max; average table {avg_table:.1} nodes; 10,000 nodes ~ {:.1} MB",
        (avg_mem * 10_000) as f64 / 1e6
    );
    assert!(node_size < 4096, "{node_size}");
    assert!(avg_mem < 64 * 1024, "{avg_mem}");
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
}

#[test]
fn a_scrape_estimates_seeds_and_peers() {
    // BEP 33: "BFsd : Bloom Filter representing all stored seeds for that infohash", "BFpe : Bloom Filter
    // representing all stored peers for that infohash".
    let n = 60;
    let mut net = network(n, 2);
    net.run_for(60 * SEC);
    for i in 10..20 {
        let seed = i < 14;
        net.with(i, |d, now| {
            d.get_peers(
                now,
                HASH,
                Some(Announce {
                    port: 6000,
                    implied_port: false,
                    seed,
                }),
            )
        });
    }
    net.run_for(20 * SEC);
    let s = net.with(50, |d, now| d.scrape(now, HASH)).unwrap();
    net.run_for(20 * SEC);
    let scrape = net
        .events_of(50)
        .find_map(|e| match e {
            Event::Scrape {
                lookup, seeds, peers, ..
            } if *lookup == s => Some((*seeds, *peers)),
            _ => None,
        })
        .expect("a Scrape event");
    assert_eq!(scrape, (4, 6), "4 seeds and 6 leechers announced");
}

#[test]
fn read_only_nodes_are_not_added_to_tables_and_answer_nothing() {
    // BEP 43: a read-only node "no longer responds to 'query' messages", and other nodes "should not add the
    // message sender to its routing table".
    let mut net = network(40, 3);
    let ro = net.add(
        Config {
            read_only: true,
            ..Config::default()
        },
        rng(999),
    );
    let ro_addr = addr_of(ro);
    net.with(ro, |d, now| d.bootstrap(now, &[addr_of(0)]));
    net.run_for(120 * SEC);
    // It found its way in (it can query)...
    assert!(net.nodes[ro].table().len() >= 8);
    // ...but no one holds it, and it answered no query.
    for i in 0..ro {
        assert!(
            net.nodes[i].table().get_by_addr(&ro_addr).is_none(),
            "node {i} added the read-only node"
        );
    }
    let s = net.nodes[ro].stats();
    assert_eq!(s.queries_in.total(), s.dropped.read_only);
    // It can still find peers.
    net.with(5, |d, now| {
        d.get_peers(
            now,
            HASH,
            Some(Announce {
                port: 7,
                implied_port: false,
                seed: false,
            }),
        )
    });
    net.run_for(20 * SEC);
    net.with(ro, |d, now| d.get_peers(now, HASH, None));
    net.run_for(20 * SEC);
    assert_eq!(peers_found(&net, ro), vec![SocketAddr::new(addr_of(5).ip(), 7)]);
}

#[test]
fn runs_are_deterministic() {
    // Behaviour depends only on (inputs, time, rng): two runs with the same seeds are identical.
    let run = || {
        let mut net = network(30, 4);
        net.run_for(60 * SEC);
        net.with(3, |d, now| d.get_peers(now, HASH, None));
        net.run_for(20 * SEC);
        let ids: Vec<_> = net.nodes.iter().map(|d| d.id()).collect();
        let tables: Vec<_> = net.nodes.iter().map(|d| d.save()).collect();
        (ids, tables, net.delivered, net.bytes, format!("{:?}", net.events))
    };
    assert_eq!(run(), run());
    let _ = Time::ZERO;
}
