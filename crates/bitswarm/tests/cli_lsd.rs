//! Local service discovery (BEP 14) between two bitswarm processes: no tracker, no DHT, no peer address;
//! the leecher and the seeder find each other by multicast on the loopback of a network namespace of the
//! test's own (multicast turned on there), and the download completes byte-identical.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use support::bitswarm::{BitswarmPeer, Mode, PeerOptions};
use support::clients::Placement;
use support::netns::Netns;
use support::payload::{assert_same_tree, create_torrent, make_tree};
use support::{require_root, run_ok};

#[test]
fn peers_on_the_local_network_find_each_other_by_lsd() {
    require_root("network namespaces");
    let mut ns = Netns::create(&[]); // declared first: dropped (deleted) after the processes in it
    run_ok(ns.command("ip").args(["link", "set", "lo", "multicast", "on"]));
    let seeder_at = Placement::in_netns(&mut ns, Ipv4Addr::new(10, 77, 0, 1));
    let leecher_at = Placement::in_netns(&mut ns, Ipv4Addr::new(10, 77, 0, 2));
    let dir = tempfile::tempdir().unwrap();
    let root = make_tree(&dir.path().join("seed"), "lsd-tree", 14);
    let (torrent, _hash) = create_torrent(&root, &[], &dir.path().join("t.torrent"));
    let opts = PeerOptions {
        no_trackers: true,
        extra_args: vec!["--lsd".into(), "--no-dht".into()],
        ..PeerOptions::default()
    };
    let _seeder = BitswarmPeer::start(Mode::Seed, &torrent, &dir.path().join("seed"), &seeder_at, &opts);
    let out = dir.path().join("out");
    let mut leecher = BitswarmPeer::start(Mode::Get, &torrent, &out, &leecher_at, &opts);
    // The leecher announces at once; the seeder hears it and dials it (or hears it later the other way).
    let status = leecher
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", leecher.report()));
    assert!(status.success(), "{}", leecher.report());
    assert_same_tree(&root, &out.join("lsd-tree"), false, "download found by LSD");
}
