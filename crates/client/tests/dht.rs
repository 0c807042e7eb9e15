//! Trackerless swarms on loopback: a seeder announces in the DHT, a leecher given only a bare magnet link
//! finds it there, fetches the metadata and downloads; peers' PORT messages feed the routing table; a
//! private torrent stays out of the DHT.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use client::{AddMagnet, Client, Discovery};
use common::{config, make_torrent, pseudo_random, seed_on, wait};
use metainfo::{Magnet, Version};
use net::dht::{DhtDriverConfig, DhtHandle, LookupEvent};
use tokio::net::{TcpListener, UdpSocket};

async fn dht_node(bootstrap: &[SocketAddr]) -> DhtHandle {
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = DhtDriverConfig {
        bootstrap: bootstrap.iter().map(|a| a.to_string()).collect(),
        ..DhtDriverConfig::default()
    };
    net::dht::spawn(udp, config).await.unwrap().0
}

async fn client_with_dht(hub: SocketAddr) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dht = dht_node(&[hub]).await;
    let discovery = Discovery {
        dht: Some(dht),
        lsd: None,
    };
    Client::start_with(config(), Some(listener), discovery)
        .await
        .unwrap()
}

/// Peers the hub's DHT knows for `hash` (a lookup from a fresh node).
async fn dht_peers(hub: SocketAddr, hash: [u8; 20]) -> Vec<SocketAddr> {
    let probe = dht_node(&[hub]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut rx = probe.get_peers(hash, None).await;
    let mut peers = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            LookupEvent::Peers(p) => peers.extend(p),
            LookupEvent::Done { .. } => break,
            LookupEvent::Scrape { .. } => {}
        }
    }
    probe.shutdown().await;
    peers
}

/// BEP 5: "each peer becomes a tracker". No tracker and no peer address: the leecher finds the seeder
/// through the DHT, by the bare magnet link's info-hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_magnet_link_downloads_through_the_dht_alone() {
    let hub = dht_node(&[]).await;
    let seed_dir = tempfile::tempdir().unwrap();
    let files = vec![("data.bin", pseudo_random(3_000_000, 5))];
    let torrent = make_torrent(seed_dir.path(), "data.bin", &files, 32768, Version::V1);
    let hash = torrent.info_hashes.v1.unwrap();

    let seeder = client_with_dht(hub.local_addr()).await;
    seed_on(&seeder, &torrent, seed_dir.path()).await;
    // The seeder announces itself (its TCP port) in the DHT.
    let mut announced = Vec::new();
    for _ in 0..50 {
        announced = dht_peers(hub.local_addr(), hash.0).await;
        if announced.contains(&seeder.listen_addr()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        announced.contains(&seeder.listen_addr()),
        "seeder not in the DHT: {announced:?}"
    );

    let leech_dir = tempfile::tempdir().unwrap();
    let leecher = client_with_dht(hub.local_addr()).await;
    let magnet = Magnet {
        v1: Some(hash),
        ..Magnet::default()
    };
    let h = leecher
        .add_magnet(AddMagnet::new(magnet, leech_dir.path().to_path_buf()))
        .await
        .unwrap();
    wait(&h, "magnet download through the DHT").await;
    let got = std::fs::read(leech_dir.path().join("data.bin")).unwrap();
    assert!(got == files[0].1, "downloaded bytes differ");
    // BEP 5 PORT: the seeder's node learned the leecher's node from its port message (or its queries).
    let st = seeder.dht().unwrap().stats().await.unwrap();
    assert!(st.nodes_good + st.nodes_questionable >= 2, "{st:?}");
    leecher.shutdown().await;
    seeder.shutdown().await;
    hub.shutdown().await;
}

/// BEP 27: "the client MUST NOT use the DHT" for a private torrent: its seeder never announces there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_torrent_is_never_announced_in_the_dht() {
    let hub = dht_node(&[]).await;
    let seed_dir = tempfile::tempdir().unwrap();
    let public = make_torrent(
        seed_dir.path(),
        "public.bin",
        &[("public.bin", pseudo_random(100_000, 9))],
        16384,
        Version::V1,
    );
    let private = common::make_private_torrent(
        seed_dir.path(),
        "secret.bin",
        &[("secret.bin", pseudo_random(100_000, 8))],
        16384,
    );
    let seeder = client_with_dht(hub.local_addr()).await;
    seed_on(&seeder, &private, seed_dir.path()).await;
    seed_on(&seeder, &public, seed_dir.path()).await;
    // The public one shows up; by then the private one would have too.
    let mut seen_public = false;
    for _ in 0..50 {
        if dht_peers(hub.local_addr(), public.info_hashes.v1.unwrap().0)
            .await
            .contains(&seeder.listen_addr())
        {
            seen_public = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(seen_public, "the public torrent was announced");
    let private_peers = dht_peers(hub.local_addr(), private.info_hashes.v1.unwrap().0).await;
    assert!(
        private_peers.is_empty(),
        "private torrent in the DHT: {private_peers:?}"
    );
    seeder.shutdown().await;
    hub.shutdown().await;
}
