#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! The DHT (BEP 5) between bitswarm and real clients on loopback, with no tracker anywhere: torrents have
//! no `announce`, magnet links are bare (`magnet:?xt=urn:btih:HASH`), and every DHT node joins through a
//! `bitswarm dht` node on 127.0.0.1 (no default bootstrap routers: they are on the internet).
//!
//! - A `bitswarm dht` node answers libtorrent 2.0 and aria2 1.36, which keep it in their routing tables
//!   (libtorrent's `dht_live_nodes`; aria2's `dht.dat`, written when it exits gracefully); libtorrent
//!   learns other nodes from its replies; aria2 announces to it with the token it handed out.
//! - libtorrent seeds a trackerless torrent and announces it in the DHT; `bitswarm get BARE_MAGNET
//!   --bootstrap NODE` finds it there, fetches the metadata and downloads.
//! - `bitswarm seed --no-trackers --bootstrap NODE` announces in the DHT; libtorrent, then aria2 (given a
//!   third node: see `real-peers.md`), download by bare magnet link.
//!
//! Every result is compared byte for byte with the original; every wait is bounded. The tools are required
//! (see `scripts/install-deps.sh`).

mod support;
use support::bitswarm::{BitswarmPeer, Mode, PeerOptions};
use support::clients::{start, start_magnet_leecher, Client, Options, Placement, Role};
use support::dht::{dropped, queries_in_total, DhtNode, LtDhtNode};
use support::payload::{assert_same_tree, compare_trees, create_torrent, make_tree};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Joining the DHT, a lookup and an announce take a few round trips on loopback.
const DHT_TIMEOUT: Duration = Duration::from_secs(30);
/// Metadata and the tree's transfer on loopback take about a second once the peers know each other; aria2
/// repeats an empty lookup every 5 s.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(90);

/// A tree of files and its trackerless torrent in a temporary folder.
struct Setup {
    dir: TempDir,
    /// The original content, `seed_dir/tree`.
    root: PathBuf,
    seed_dir: PathBuf,
    torrent: PathBuf,
    info_hash: String,
    /// `magnet:?xt=urn:btih:HASH`, nothing else.
    magnet: String,
}

impl Setup {
    fn new(seed: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let seed_dir = dir.path().join("seed");
        let root = make_tree(&seed_dir, "tree", seed);
        let torrent = dir.path().join("tree.torrent");
        let (_, info_hash) = create_torrent(&root, &[], &torrent);
        let magnet = format!("magnet:?xt=urn:btih:{info_hash}");
        Setup {
            dir,
            root,
            seed_dir,
            torrent,
            info_hash,
            magnet,
        }
    }

    fn download_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Waits until the node stores at least one peer (someone announced to it), failing after [`DHT_TIMEOUT`].
fn wait_peer_stored(node: &mut DhtNode, who: &str) {
    if let Err(e) = node.wait_stats(&format!("a peer announced by {who}"), DHT_TIMEOUT, |s| {
        s["store"]["peers"].as_u64().unwrap_or(0) >= 1
    }) {
        panic!("{e}");
    }
}

/// The node turned down nothing it got from the real clients.
fn assert_nothing_dropped(stats: &serde_json::Value, what: &str) {
    for key in ["malformed", "bad_token", "rate_limited", "unexpected"] {
        assert_eq!(dropped(stats, key), Some(0), "{what}: dropped {key}: {stats}");
    }
    assert_eq!(stats["errors_out"], 0, "{what}: errors sent: {stats}");
}

/// BEP 5: "Every node maintains a routing table of known good nodes. [...] Nodes from the routing table
/// are returned in response to queries from other nodes." Two libtorrent nodes join through a bitswarm
/// node: each keeps it (with the same id) in its routing table, and the second learns the first from the
/// bitswarm node's replies.
#[test]
fn libtorrent_keeps_a_bitswarm_dht_node_and_learns_nodes_from_it() {
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    let mut first = LtDhtNode::start(&[node.addr()]);
    let table = first
        .wait_table("holding the bitswarm node", DHT_TIMEOUT, |t| {
            t.iter().any(|n| n.addr == node.addr())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", node.report()));
    let id = table.iter().find(|n| n.addr == node.addr()).unwrap().id.clone();
    // The bitswarm node has pinged it back and keeps it too (a good node: it answered).
    let stats = node
        .wait_stats("libtorrent in its table", DHT_TIMEOUT, |s| {
            s["table"]["good"].as_u64().unwrap_or(0) >= 1
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", first.report()));
    assert!(queries_in_total(&stats) >= 1, "{stats}");

    let mut second = LtDhtNode::start(&[node.addr()]);
    let first_addr = first.addr();
    let table = second
        .wait_table(
            "holding the bitswarm node and the first libtorrent node",
            DHT_TIMEOUT,
            |t| t.iter().any(|n| n.addr == node.addr()) && t.iter().any(|n| n.addr == first_addr),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", first.report(), node.report()));
    let seen_as = table.iter().find(|n| n.addr == node.addr()).unwrap();
    assert_eq!(seen_as.id, id, "the bitswarm node answers with one id");
    let first_seen_as = table.iter().find(|n| n.addr == first_addr).unwrap();
    assert_eq!(
        first_seen_as.id,
        first.node_id(),
        "the bitswarm node hands out true node ids"
    );
    let stats = node
        .wait_stats("both libtorrent nodes in its table", DHT_TIMEOUT, |s| {
            s["table"]["good"].as_u64().unwrap_or(0) >= 2
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(queries_in_total(&stats) >= 2, "{stats}");
    assert_nothing_dropped(&stats, "bitswarm dht with two libtorrent nodes");
    println!(
        "libtorrent x2 <-> bitswarm dht: {:.1} s; bitswarm node's queries_in {}",
        started.elapsed().as_secs_f64(),
        stats["queries_in"]
    );
}

/// BEP 5: "For a node to announce that its controlling peer is downloading a torrent, it must present the
/// token received from the same queried node in a recent query for peers." aria2 joins through a bitswarm
/// node, looks up a torrent and announces itself with the bitswarm node's token (stored, none refused),
/// and keeps the node in the routing table it saves on exit.
#[test]
fn aria2_keeps_a_bitswarm_dht_node_and_announces_to_it() {
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    // A torrent nobody has: aria2 looks it up, finds no peer, and announces itself for it.
    let hash = "5a1f0e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3";
    let dir = tempfile::tempdir().unwrap();
    let mut aria2 = start_magnet_leecher(
        Client::Aria2,
        &format!("magnet:?xt=urn:btih:{hash}"),
        hash,
        &dir.path().join("aria2"),
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            ..Options::default()
        },
    );
    let dht_addr = aria2.dht_addr().unwrap();
    let stats = node
        .wait_stats(
            "aria2 announced (a stored peer) and in its table",
            DHT_TIMEOUT,
            |s| {
                s["store"]["peers"].as_u64().unwrap_or(0) >= 1
                    && s["table"]["good"].as_u64().unwrap_or(0) >= 1
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", aria2.log_tail()));
    assert!(stats["queries_in"]["get_peers"].as_u64().unwrap() >= 1, "{stats}");
    assert!(
        stats["queries_in"]["announce_peer"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert_nothing_dropped(&stats, "bitswarm dht with aria2");
    // aria2 writes its routing table when it exits gracefully.
    aria2
        .shutdown(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let saved = aria2.aria2_saved_dht_nodes().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        saved.iter().any(|n| n.addr == node.addr()),
        "aria2 (DHT at {dht_addr}) did not keep the bitswarm node {} in its saved table: {saved:?}",
        node.addr()
    );
    println!(
        "aria2 <-> bitswarm dht: {:.1} s; bitswarm node's queries_in {}; aria2 saved {} node(s)",
        started.elapsed().as_secs_f64(),
        stats["queries_in"],
        saved.len()
    );
}

/// BEP 5: "In effect, each peer becomes a tracker." libtorrent seeds a trackerless torrent and announces it
/// in the DHT; `bitswarm get` of the bare magnet link, bootstrapping from one bitswarm node, finds the
/// seeder there, fetches the metadata from it and downloads.
#[test]
fn libtorrent_seeds_in_the_dht_bitswarm_gets_a_bare_magnet() {
    let s = Setup::new(41);
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    let _seeder = start(
        Client::Libtorrent,
        Role::Seeder,
        &s.torrent,
        &s.seed_dir,
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            no_trackers: true,
            ..Options::default()
        },
    );
    wait_peer_stored(&mut node, "libtorrent");
    let dl = s.download_dir("bitswarm");
    let mut get = BitswarmPeer::start(
        Mode::Get,
        Path::new(&s.magnet),
        &dl,
        &Placement::Loopback,
        &PeerOptions {
            dht_bootstrap: vec![node.addr()],
            ..PeerOptions::default()
        },
    );
    let exit = get
        .wait_exit(COMPLETE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", node.report()));
    assert!(
        exit.success(),
        "bitswarm get by bare magnet failed: {}\n{}",
        get.report(),
        node.report()
    );
    assert_same_tree(&s.root, &dl.join("tree"), false, "libtorrent -> bitswarm by DHT");
    println!(
        "libtorrent -> bitswarm by DHT and bare magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Starts `bitswarm seed` of the setup's torrent with no tracker, joining the DHT through `bootstrap`, and
/// waits until `node` stores it (its announce).
fn seed_in_the_dht(s: &Setup, bootstrap: SocketAddr, node: &mut DhtNode) -> BitswarmPeer {
    let seeder = BitswarmPeer::start(
        Mode::Seed,
        &s.torrent,
        &s.seed_dir,
        &Placement::Loopback,
        &PeerOptions {
            no_trackers: true,
            dht_bootstrap: vec![bootstrap],
            ..PeerOptions::default()
        },
    );
    let started = Instant::now();
    wait_peer_stored(node, "bitswarm seed");
    println!(
        "bitswarm seed announced in the DHT {:.1} s after it started seeding",
        started.elapsed().as_secs_f64()
    );
    seeder
}

/// BEP 5: "After the search is exhausted, the client then inserts the peer contact information for itself
/// onto the responding nodes with IDs closest to the infohash of the torrent." `bitswarm seed` announces a
/// trackerless torrent in the DHT; libtorrent, joining through the same node, downloads the bare magnet.
#[test]
fn bitswarm_seeds_in_the_dht_libtorrent_gets_a_bare_magnet() {
    let s = Setup::new(42);
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    let mut seeder = seed_in_the_dht(&s, node.addr(), &mut node);
    let dl = s.download_dir("libtorrent");
    let mut lt = start_magnet_leecher(
        Client::Libtorrent,
        &s.magnet,
        &s.info_hash,
        &dl,
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            ..Options::default()
        },
    );
    lt.wait_complete(COMPLETE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", seeder.report(), node.report()));
    assert_same_tree(&s.root, &dl.join("tree"), false, "bitswarm -> libtorrent by DHT");
    // The seeder's own DHT node (on its listen address) answers libtorrent too, which keeps it.
    let seeder_node = seeder.dht_addr();
    let deadline = Instant::now() + DHT_TIMEOUT;
    loop {
        let table = lt.dht_table();
        if table
            .as_ref()
            .is_some_and(|(_, nodes)| nodes.iter().any(|n| n.addr == seeder_node))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "libtorrent's routing table never held bitswarm seed's DHT node {seeder_node}: {table:?}\n{}",
            lt.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
    seeder.terminate(Duration::from_secs(15)).unwrap();
    println!(
        "bitswarm -> libtorrent by DHT and bare magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// As above with aria2 downloading; a second bitswarm node makes the DHT three nodes besides aria2 (with
/// two, aria2 may never find a peer announced before it joined).
#[test]
fn bitswarm_seeds_in_the_dht_aria2_gets_a_bare_magnet() {
    let s = Setup::new(43);
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    let _third = DhtNode::start(&[node.addr()]);
    let mut seeder = seed_in_the_dht(&s, node.addr(), &mut node);
    let dl = s.download_dir("aria2");
    let mut aria2 = start_magnet_leecher(
        Client::Aria2,
        &s.magnet,
        &s.info_hash,
        &dl,
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            ..Options::default()
        },
    );
    // aria2's own word ("complete") and the bytes on disk must both say done.
    let others = format!("{}\n{}", seeder.report(), node.report());
    wait_aria2_tree(&mut aria2, &s, &dl, &others);
    assert_same_tree(&s.root, &dl.join("tree"), false, "bitswarm -> aria2 by DHT");
    // aria2 kept the standalone node and the seeder's own DHT node (on its listen address).
    aria2
        .shutdown(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let saved = aria2.aria2_saved_dht_nodes().unwrap_or_else(|e| panic!("{e}"));
    for (what, addr) in [
        ("bitswarm dht", node.addr()),
        ("bitswarm seed", seeder.dht_addr()),
    ] {
        assert!(
            saved.iter().any(|n| n.addr == addr),
            "aria2 did not keep the {what} node {addr} in its saved table: {saved:?}"
        );
    }
    seeder.terminate(Duration::from_secs(15)).unwrap();
    println!(
        "bitswarm -> aria2 by DHT and bare magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Waits (at most [`COMPLETE_TIMEOUT`]) until aria2 says its download is complete and the tree on disk is
/// the original.
fn wait_aria2_tree(aria2: &mut support::clients::RunningClient, s: &Setup, dl: &Path, others: &str) {
    let deadline = Instant::now() + COMPLETE_TIMEOUT;
    loop {
        let done = aria2.status().map(|st| st.complete).unwrap_or(false)
            && compare_trees(&s.root, &dl.join("tree"), false).is_ok();
        if done {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "aria2 did not complete by DHT in {COMPLETE_TIMEOUT:?}: {:?}\n{}\n{others}",
                aria2.status(),
                aria2.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// BEP 5: "If the queried node has peers for the infohash, they are returned in a key "values" as a list
/// of strings." The DHT is bitswarm nodes only: libtorrent announces a trackerless torrent to them, and
/// aria2 finds it there (the peer libtorrent stored, handed out by a bitswarm node) and downloads the bare
/// magnet.
#[test]
fn aria2_finds_a_libtorrent_seeder_through_bitswarm_dht_nodes() {
    let s = Setup::new(44);
    let started = Instant::now();
    let mut node = DhtNode::start(&[]);
    let mut third = DhtNode::start(&[node.addr()]);
    let mut seeder = start(
        Client::Libtorrent,
        Role::Seeder,
        &s.torrent,
        &s.seed_dir,
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            no_trackers: true,
            ..Options::default()
        },
    );
    wait_peer_stored(&mut node, "libtorrent");
    let dl = s.download_dir("aria2");
    let mut aria2 = start_magnet_leecher(
        Client::Aria2,
        &s.magnet,
        &s.info_hash,
        &dl,
        &Placement::Loopback,
        &Options {
            dht_bootstrap: vec![node.addr()],
            ..Options::default()
        },
    );
    let others = format!("{}\n{}\n{}", seeder.log_tail(), node.report(), third.report());
    wait_aria2_tree(&mut aria2, &s, &dl, &others);
    assert_same_tree(
        &s.root,
        &dl.join("tree"),
        false,
        "libtorrent -> aria2 by bitswarm's DHT",
    );
    let stats = node.stats().unwrap();
    assert!(stats["queries_in"]["get_peers"].as_u64().unwrap() >= 1, "{stats}");
    assert_nothing_dropped(&stats, "bitswarm dht between libtorrent and aria2");
    println!(
        "libtorrent -> aria2 through bitswarm DHT nodes: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The reader of aria2's `dht.dat` (what the aria2 tests rest on) takes the layout aria2's
/// DHTRoutingTableSerializer writes: a 56-byte header with the node count, then 56 bytes a node with its
/// compact address at byte 8 and its id at byte 32; a count that disagrees with the length is refused.
#[test]
fn aria2_dht_dat_reader_follows_the_saved_layout() {
    let mut file = vec![0xa1, 0xa2, 0x02, 0, 0, 0, 0, 0x03];
    file.extend_from_slice(&[0; 8]); // save time
    file.extend_from_slice(&[0; 8]);
    file.extend_from_slice(&[0x11; 20]); // local id
    file.extend_from_slice(&[0; 4]);
    file.extend_from_slice(&2u32.to_be_bytes());
    file.extend_from_slice(&[0; 4]);
    for (port, id) in [(6881u16, 0xaa), (51413, 0xbb)] {
        file.push(6);
        file.extend_from_slice(&[0; 7]);
        file.extend_from_slice(&[127, 0, 0, 1]);
        file.extend_from_slice(&port.to_be_bytes());
        file.extend_from_slice(&[0; 18]);
        file.extend_from_slice(&[id; 20]);
        file.extend_from_slice(&[0; 4]);
    }
    let nodes = support::dht::parse_aria2_dht_dat(&file).unwrap();
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    assert_eq!(
        addrs,
        [
            "127.0.0.1:6881".parse().unwrap(),
            "127.0.0.1:51413".parse().unwrap()
        ]
    );
    assert_eq!(nodes[1].id, "bb".repeat(20));
    // One node short of the count.
    assert!(support::dht::parse_aria2_dht_dat(&file[..file.len() - 56]).is_err());
    assert!(support::dht::parse_aria2_dht_dat(&file[..40]).is_err());
}
