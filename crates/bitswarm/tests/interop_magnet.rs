#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! Magnet links between bitswarm and real clients on loopback, through a `bitswarm tracker` named in the
//! link (`tr=`): the metadata travels by BEP 9 `ut_metadata` in both directions.
//!
//! - libtorrent 2.0 seeds; `bitswarm get MAGNET` fetches the metadata from it and downloads;
//! - `bitswarm seed` seeds; libtorrent downloads by magnet (bitswarm serves the metadata);
//! - `bitswarm seed` seeds; aria2 1.36 downloads by magnet. aria2 announces a magnet with `left=0` until it
//!   has the metadata, so the tracker (which gives seeds no seeds) lists it nothing: bitswarm dials it
//!   (`--peer`) and serves the metadata; aria2 then announces its real `left`, finds bitswarm through the
//!   tracker and downloads.
//!
//! - PEX: libtorrent seeds to a second libtorrent (held slow so it stays connected); bitswarm, told only
//!   of the seeder, learns of the second one through the seeder's `ut_pex` message (BEP 11).
//!
//! Every result is compared byte for byte with the original. The tools are required (see
//! `scripts/install-deps.sh`).

mod support;
use support::bitswarm::{BitswarmPeer, Mode, PeerOptions};
use support::clients::{start, start_magnet_leecher, start_seeder, Client, Options, Placement, Role};
use support::netns::Net;
use support::payload::{assert_same_tree, compare_trees, create_torrent, inspect, make_tree};
use support::tracker::{Scheme, Tracker};

use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A transfer of the tree on loopback takes about a second; metadata a few round trips.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(60);

/// A tracker, a tree of files and its torrent (with the tracker) in a temporary folder.
struct Setup {
    dir: TempDir,
    _tracker: Tracker,
    /// The original content, `seed_dir/tree`.
    root: PathBuf,
    seed_dir: PathBuf,
    torrent: PathBuf,
    info_hash: String,
    /// The torrent's magnet link: `xt`, `dn` and the tracker's `tr`.
    magnet: String,
}

/// The torrent's payload bytes.
fn total_size(torrent: &Path) -> u64 {
    inspect(torrent)["total_size"].as_u64().unwrap()
}

impl Setup {
    fn new(seed: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::start(&Net::Loopback, dir.path());
        let announce = tracker.announce_url(Scheme::Http).to_string();
        let seed_dir = dir.path().join("seed");
        let root = make_tree(&seed_dir, "tree", seed);
        let torrent = dir.path().join("tree.torrent");
        create_torrent(&root, &[&announce], &torrent);
        let info = inspect(&torrent);
        let info_hash = info["info_hash_v1"].as_str().unwrap().to_ascii_lowercase();
        let magnet = info["magnet"].as_str().unwrap().to_string();
        assert!(magnet.contains("tr="), "{magnet}");
        Setup {
            dir,
            _tracker: tracker,
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

/// BEP 9: "allow clients to join a swarm and complete a download without the need of downloading a
/// .torrent file first": libtorrent seeds, `bitswarm get MAGNET` gets the metadata from it, then the data.
#[test]
fn libtorrent_seeds_bitswarm_gets_by_magnet() {
    let s = Setup::new(31);
    let started = Instant::now();
    let _seeder = start_seeder(Client::Libtorrent, &s.torrent, &s.seed_dir, &Placement::Loopback);
    let dl = s.download_dir("bitswarm");
    let mut get = BitswarmPeer::start(
        Mode::Get,
        Path::new(&s.magnet),
        &dl,
        &Placement::Loopback,
        &PeerOptions::default(),
    );
    let first = get
        .wait_status("a status line", COMPLETE_TIMEOUT, |_| true)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        ["fetching_metadata", "checking", "downloading", "seeding"].contains(&first.phase.as_str()),
        "{first:?}"
    );
    let exit = get.wait_exit(COMPLETE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "bitswarm get by magnet failed: {}", get.report());
    let statuses = get.statuses();
    assert!(
        statuses
            .iter()
            .all(|st| !st.raw["metadata_pieces_total"].is_null()),
        "every --json status carries the metadata progress"
    );
    let last = statuses.last().cloned().unwrap();
    assert!(last.complete(), "{last:?}");
    assert_same_tree(
        &s.root,
        &dl.join("tree"),
        false,
        "libtorrent -> bitswarm by magnet",
    );
    println!(
        "libtorrent -> bitswarm by magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// BEP 9: a peer that has the metadata answers `request` with `data` ("The response MUST have the same
/// piece as the request did"): bitswarm seeds, libtorrent downloads by magnet link.
#[test]
fn bitswarm_seeds_libtorrent_gets_by_magnet() {
    let s = Setup::new(32);
    let started = Instant::now();
    let mut seeder = BitswarmPeer::start(
        Mode::Seed,
        &s.torrent,
        &s.seed_dir,
        &Placement::Loopback,
        &PeerOptions::default(),
    );
    let dl = s.download_dir("libtorrent");
    let mut lt = start_magnet_leecher(
        Client::Libtorrent,
        &s.magnet,
        &s.info_hash,
        &dl,
        &Placement::Loopback,
        &Options::default(),
    );
    lt.wait_complete(COMPLETE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}\n{}", seeder.report()));
    assert_same_tree(
        &s.root,
        &dl.join("tree"),
        false,
        "bitswarm -> libtorrent by magnet",
    );
    // Its status comes once a second: wait for the one that counts the upload.
    let payload = total_size(&s.torrent);
    if let Err(e) = seeder.wait_status("uploaded the payload", Duration::from_secs(10), |st| {
        st.uploaded >= payload
    }) {
        panic!("{e}");
    }
    seeder.terminate(Duration::from_secs(15)).unwrap();
    println!(
        "bitswarm -> libtorrent by magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// bitswarm seeds, aria2 downloads by magnet link (bitswarm dials it for the metadata; see the module
/// documentation).
#[test]
fn bitswarm_seeds_aria2_gets_by_magnet() {
    let s = Setup::new(33);
    let started = Instant::now();
    let dl = s.download_dir("aria2");
    let mut aria2 = start_magnet_leecher(
        Client::Aria2,
        &s.magnet,
        &s.info_hash,
        &dl,
        &Placement::Loopback,
        &Options::default(),
    );
    let mut seeder = BitswarmPeer::start(
        Mode::Seed,
        &s.torrent,
        &s.seed_dir,
        &Placement::Loopback,
        &PeerOptions {
            peers: vec![aria2.listen_addr()],
            ..PeerOptions::default()
        },
    );
    // aria2's own word ("complete") and the bytes on disk must both say done.
    let deadline = Instant::now() + COMPLETE_TIMEOUT;
    loop {
        let done = aria2.status().map(|st| st.complete).unwrap_or(false)
            && compare_trees(&s.root, &dl.join("tree"), false).is_ok();
        if done {
            break;
        }
        if Instant::now() >= deadline {
            panic!(
                "aria2 did not complete by magnet in {COMPLETE_TIMEOUT:?}: {:?}\n{}\n{}",
                aria2.status(),
                aria2.log_tail(),
                seeder.report()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_same_tree(&s.root, &dl.join("tree"), false, "bitswarm -> aria2 by magnet");
    // Its status comes once a second: wait for the one that counts the upload.
    let payload = total_size(&s.torrent);
    if let Err(e) = seeder.wait_status("uploaded the payload", Duration::from_secs(10), |st| {
        st.uploaded >= payload
    }) {
        panic!("{e}");
    }
    seeder.terminate(Duration::from_secs(15)).unwrap();
    println!(
        "bitswarm -> aria2 by magnet: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// BEP 11: "Peer Exchange (PEX) provides an alternative peer discovery mechanism for swarms once peers have
/// bootstrapped via other mechanisms": bitswarm, given only libtorrent's seeder (no tracker), learns of a
/// second libtorrent through the seeder's `ut_pex` message and connects to it.
#[test]
fn libtorrent_tells_bitswarm_of_another_peer_by_pex() {
    let s = Setup::new(34);
    let started = Instant::now();
    let seeder = start_seeder(Client::Libtorrent, &s.torrent, &s.seed_dir, &Placement::Loopback);
    // The other peer downloads slowly from the seeder, so it stays connected to it (two seeds part).
    let other_dir = s.download_dir("other");
    let _other = start(
        Client::Libtorrent,
        Role::Leecher,
        &s.torrent,
        &other_dir,
        &Placement::Loopback,
        &Options {
            peers: vec![seeder.listen_addr()],
            download_limit: Some(100_000),
            ..Options::default()
        },
    );
    let dl = s.download_dir("bitswarm");
    let mut get = BitswarmPeer::start(
        Mode::Get,
        Path::new(&s.magnet),
        &dl,
        &Placement::Loopback,
        &PeerOptions {
            peers: vec![seeder.listen_addr()],
            no_trackers: true,
            // Slow enough to be still running when the seeder's PEX message comes.
            max_down: Some("300K".into()),
            ..PeerOptions::default()
        },
    );
    let stderr = get.stderr_path();
    let deadline = Instant::now() + COMPLETE_TIMEOUT;
    let learned = loop {
        let log = std::fs::read_to_string(&stderr).unwrap_or_default();
        if log.contains("peers from peer exchange") {
            break true;
        }
        if Instant::now() >= deadline || get.try_wait().is_some() {
            break false;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(learned, "no peer came by PEX: {}", get.report());
    let with_two = get.wait_status("two peers known", COMPLETE_TIMEOUT, |st| {
        st.raw["known_peers"].as_u64().unwrap_or(0) >= 2
    });
    assert!(with_two.is_ok(), "{with_two:?}");
    let exit = get.wait_exit(COMPLETE_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(exit.success(), "{}", get.report());
    assert_same_tree(&s.root, &dl.join("tree"), false, "libtorrent -> bitswarm (PEX)");
    println!("PEX from libtorrent: {:.1} s", started.elapsed().as_secs_f64());
}
