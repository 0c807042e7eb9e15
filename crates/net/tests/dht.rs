//! The DHT driver on real UDP sockets over loopback: three nodes, an announce, a lookup that finds it, and
//! the routing table kept across a restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::SocketAddr;
use std::time::Duration;

use dht::Announce;
use net::dht::{spawn, DhtDriverConfig, DhtHandle, LookupEvent};
use tokio::net::UdpSocket;

async fn node(bootstrap: &[SocketAddr], state: Option<std::path::PathBuf>) -> DhtHandle {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = DhtDriverConfig {
        bootstrap: bootstrap.iter().map(|a| a.to_string()).collect(),
        state_file: state,
        ..DhtDriverConfig::default()
    };
    spawn(socket, config).await.unwrap().0
}

/// Collects a lookup's peers until it is done.
async fn lookup(
    h: &DhtHandle,
    hash: [u8; 20],
    announce: Option<Announce>,
) -> (Vec<SocketAddr>, usize, usize) {
    let mut rx = h.get_peers(hash, announce).await;
    let mut peers = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("lookup finishes")
        {
            Some(LookupEvent::Peers(p)) => peers.extend(p),
            Some(LookupEvent::Done {
                responded, announced, ..
            }) => return (peers, responded, announced),
            Some(LookupEvent::Scrape { .. }) => {}
            None => panic!("lookup channel closed before Done"),
        }
    }
}

async fn wait_table(h: &DhtHandle, at_least: usize) {
    for _ in 0..100 {
        let s = h.stats().await.unwrap();
        if s.nodes_good + s.nodes_questionable >= at_least {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "routing table never reached {at_least} nodes: {:?}",
        h.stats().await
    );
}

#[tokio::test]
async fn a_peer_announced_through_one_node_is_found_from_another() {
    let hub = node(&[], None).await;
    let a = node(&[hub.local_addr()], None).await;
    let c = node(&[hub.local_addr()], None).await;
    wait_table(&a, 1).await;
    wait_table(&c, 1).await;
    let hash = [0x42; 20];
    let (_, responded, announced) = lookup(
        &a,
        hash,
        Some(Announce {
            port: 6881,
            implied_port: false,
            seed: true,
        }),
    )
    .await;
    assert!(
        responded >= 1 && announced >= 1,
        "responded {responded}, announced {announced}"
    );
    let (peers, _, _) = lookup(&c, hash, None).await;
    assert!(
        peers.contains(&"127.0.0.1:6881".parse().unwrap()),
        "the announced port on a's address: {peers:?}"
    );
    let s = hub.stats().await.unwrap();
    assert!(s.peers >= 1 && s.queries_in.announce_peer >= 1, "{s:?}");
    for h in [hub, a, c] {
        h.shutdown().await;
    }
}

#[tokio::test]
async fn the_routing_table_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("dht.dat");
    let hub = node(&[], None).await;
    let a = node(&[hub.local_addr()], Some(state.clone())).await;
    wait_table(&a, 1).await;
    a.shutdown().await;
    assert!(state.exists(), "saved at shutdown");
    // No bootstrap this time: the saved table is enough to find the hub again.
    let again = node(&[], Some(state)).await;
    wait_table(&again, 1).await;
    hub.shutdown().await;
    again.shutdown().await;
}
