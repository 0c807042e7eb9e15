#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! Real BitTorrent clients trading with each other through a `bitswarm tracker`, driven by the harness in
//! `tests/support/clients.rs` (meant as well for the peer client's interop tests, with bitswarm on one
//! side); these tests prove the harness and the tracker with every client in each role.
//!
//! Each test serves a multi-file torrent (nested folders, a 0-byte file, odd sizes; made by `bitswarm
//! create` with the tracker's HTTP announce URL) and checks the download byte for byte against the
//! original, that the seeder reports having uploaded it, and that the tracker lists both peers at their
//! listening addresses; then the leecher, paused, must leave the tracker's list (`stopped`):
//! - on 127.0.0.1: libtorrent seeds to qBittorrent; qBittorrent, aria2, Transmission (it accepts incoming
//!   connections from loopback, it only never dials there) and libtorrent each seed to libtorrent
//!   (`lt_tool.py download`);
//! - in a network namespace (root only), where Transmission can download: libtorrent, qBittorrent and
//!   aria2 each seed to Transmission (which does not create the 0-byte file), and Transmission seeds to
//!   qBittorrent;
//! - a three-party swarm: libtorrent seeds at 1 MB/s while qBittorrent and aria2 download at once, and trade;
//! - peers given directly: libtorrent downloads from qBittorrent with no working tracker at all, through
//!   `add_peer`, and qBittorrent from libtorrent through `Options::peers`.
//!
//! The tools are required: when one is missing the tests fail and say to run `bash scripts/install-deps.sh`.
//! Each test prints its timings (`--nocapture` shows them).

mod support;
use support::clients::{start, start_leecher, start_seeder, Client, Options, Placement, Role};
use support::netns::{Net, Netns};
use support::payload::{assert_same_tree, create_torrent, make_tree};
use support::tracker::{Scheme, Tracker};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The torrent's name: the tree is `<save folder>/tree/...`.
const NAME: &str = "tree";
/// A download on loopback takes a second or two; Transmission waits for its 10-second unchoke cycle.
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(45);
/// Transmission seeding unchokes on its 10-second cycle: the first byte comes 10-13 s after the leecher
/// starts.
const NUDGE_AFTER: Duration = Duration::from_secs(25);
/// The tracker counting the seeder.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A tracker, a payload tree and its torrent in a temporary folder.
struct Setup {
    dir: TempDir,
    tracker: Tracker,
    /// The original tree, `seed_dir/NAME`.
    root: PathBuf,
    /// The seeders' save folder.
    seed_dir: PathBuf,
    torrent: PathBuf,
    info_hash: String,
    total: u64,
}

impl Setup {
    fn new(net: &Net, seed: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::start(net, dir.path());
        let seed_dir = dir.path().join("seed");
        let root = make_tree(&seed_dir, NAME, seed);
        let announce = tracker.announce_url(Scheme::Http).to_string();
        let (torrent, info_hash) = create_torrent(&root, &[&announce], &dir.path().join("tree.torrent"));
        let total = support::payload::TREE_FILES
            .iter()
            .map(|(_, len)| *len as u64)
            .sum();
        Setup {
            dir,
            tracker,
            root,
            seed_dir,
            torrent,
            info_hash,
            total,
        }
    }

    fn download_dir(&self, label: &str) -> PathBuf {
        self.dir.path().join(format!("download-{label}"))
    }

    /// Waits until the tracker lists `n` seeders.
    fn wait_seeders(&mut self, n: u64, what: &str) {
        self.tracker.wait_stats(
            &self.info_hash,
            &format!("{n} seeder(s) registered ({what})"),
            REGISTER_TIMEOUT,
            |s| s.seeders >= n,
        );
    }
}

/// `seeder` seeds the tree, `leecher` downloads it: on 127.0.0.1, or with `in_netns` inside a network
/// namespace of the test's own (tracker on its 127.0.0.1, seeder at 10.99.0.11, leecher at 10.99.0.12).
/// Byte-for-byte check; the seeder must report having uploaded (about) the whole payload, and the tracker
/// must have seen the leecher at its listening address.
fn transfer(seeder: Client, leecher: Client, seed: u64, in_netns: bool) {
    let where_ = if in_netns { " (network namespace)" } else { "" };
    let what = format!("{} -> {}{where_}", seeder.name(), leecher.name());
    let t0 = Instant::now();
    // Declared first, so dropped last: every process inside is killed before the namespace goes.
    let mut ns = in_netns.then(|| {
        support::require_root(&what);
        Netns::create(&[])
    });
    let (net, seeder_at, leecher_at) = match ns.as_mut() {
        Some(ns) => (
            ns.net(),
            Placement::in_netns(ns, Ipv4Addr::new(10, 99, 0, 11)),
            Placement::in_netns(ns, Ipv4Addr::new(10, 99, 0, 12)),
        ),
        None => (Net::Loopback, Placement::Loopback, Placement::Loopback),
    };
    let mut setup = Setup::new(&net, seed);
    let mut seed_client = start_seeder(seeder, &setup.torrent, &setup.seed_dir, &seeder_at);
    assert_eq!(seed_client.listen_addr().ip(), seeder_at.ip());
    let t_seeding = t0.elapsed();
    setup.wait_seeders(1, &what);
    let download = setup.download_dir(leecher.name());
    let t_leecher = Instant::now();
    let mut leech = start_leecher(leecher, &setup.torrent, &download, &leecher_at);
    let t_started = t_leecher.elapsed();
    // Once in about 30 runs (Transmission seeding, qBittorrent downloading, in a namespace) the leecher
    // sat with no byte for the whole wait. A leecher that can be given peers and has nothing after
    // NUDGE_AFTER is given the seeder directly, after printing both sides' view for diagnosis.
    let progressed = leech.wait_status("any progress", NUDGE_AFTER, |s| {
        s.complete || s.progress > 0.0 || s.downloaded > 0
    });
    if let Err(e) = progressed {
        let still_running = leech.status().is_ok_and(|s| s.error.is_none());
        if !(still_running && leecher.can_add_peers()) {
            panic!("{what}: {e}\n{}", seed_client.log_tail());
        }
        eprintln!(
            "{what}: WARNING: nothing downloaded within {NUDGE_AFTER:?}; giving the leecher the seeder's \
             address directly. Both sides then:\n{e}\n{}",
            seed_client.log_tail()
        );
        leech.add_peer(seed_client.listen_addr()).unwrap();
    }
    let left = COMPLETE_TIMEOUT.saturating_sub(t_leecher.elapsed());
    if let Err(e) = leech.wait_complete(left) {
        panic!("{what}: {e}\n{}", seed_client.log_tail());
    }
    let t_done = t_leecher.elapsed();
    assert_same_tree(
        &setup.root,
        &download.join(NAME),
        !leecher.creates_empty_files(),
        &what,
    );
    // The data came from the seeder (sizes Transmission reports are rounded to three digits).
    let want = setup.total * 95 / 100;
    if let Err(e) = seed_client.wait_status("uploaded the payload", REGISTER_TIMEOUT, |s| s.uploaded >= want)
    {
        panic!("{what}: {e}");
    }
    // The tracker saw each at its own listening address.
    let (seeder_addr, leecher_addr) = (
        seed_client.listen_addr().to_string(),
        leech.listen_addr().to_string(),
    );
    let snap = setup
        .tracker
        .wait_stats(&setup.info_hash, "both peers listed", REGISTER_TIMEOUT, |s| {
            s.peers.iter().any(|p| p.addr == seeder_addr) && s.peers.iter().any(|p| p.addr == leecher_addr)
        });
    assert_eq!(snap.peers.len(), 2, "{what}: {snap:?}");
    // Paused, the leecher tells the tracker `stopped`.
    if let Err(e) = leech.pause_and_wait(REGISTER_TIMEOUT) {
        panic!("{what}: {e}");
    }
    setup
        .tracker
        .wait_stats(&setup.info_hash, "the leecher gone", REGISTER_TIMEOUT, |s| {
            s.peers.len() == 1 && s.peers.iter().all(|p| p.addr == seeder_addr)
        });
    eprintln!(
        "{what}: seeder ready {:.1} s, leecher up {:.1} s, complete {:.1} s after start; test {:.1} s",
        t_seeding.as_secs_f64(),
        t_started.as_secs_f64(),
        t_done.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn libtorrent_seeds_qbittorrent_downloads() {
    transfer(Client::Libtorrent, Client::Qbittorrent, 0x11, false);
}

#[test]
fn qbittorrent_seeds_libtorrent_downloads() {
    transfer(Client::Qbittorrent, Client::Libtorrent, 0x22, false);
}

#[test]
fn aria2_seeds_libtorrent_downloads() {
    transfer(Client::Aria2, Client::Libtorrent, 0x33, false);
}

/// On 127.0.0.1: Transmission accepts incoming connections from loopback (it only never dials there).
#[test]
fn transmission_seeds_libtorrent_downloads() {
    transfer(Client::Transmission, Client::Libtorrent, 0x44, false);
}

#[test]
fn libtorrent_seeds_libtorrent_downloads() {
    transfer(Client::Libtorrent, Client::Libtorrent, 0x55, false);
}

/// Transmission never dials 127.0.0.0/8, so as a downloader it runs in a namespace, with the tracker and
/// the seeder there at their own addresses.
#[test]
fn libtorrent_seeds_transmission_downloads_in_netns() {
    transfer(Client::Libtorrent, Client::Transmission, 0x66, true);
}

#[test]
fn qbittorrent_seeds_transmission_downloads_in_netns() {
    transfer(Client::Qbittorrent, Client::Transmission, 0x67, true);
}

#[test]
fn aria2_seeds_transmission_downloads_in_netns() {
    transfer(Client::Aria2, Client::Transmission, 0x68, true);
}

#[test]
fn transmission_seeds_qbittorrent_downloads_in_netns() {
    transfer(Client::Transmission, Client::Qbittorrent, 0x69, true);
}

/// One seeder at a limited rate, two leechers at once: both complete, byte for byte, and they traded pieces
/// with each other; then aria2, paused, leaves the tracker's list.
#[test]
fn three_party_swarm_libtorrent_seeds_qbittorrent_and_aria2_download() {
    let what = "libtorrent -> qBittorrent + aria2";
    let t0 = Instant::now();
    let mut setup = Setup::new(&Net::Loopback, 0x77);
    // About 3.5 MB at 1 MB/s: long enough for the two leechers to trade.
    let seeder_opts = Options {
        upload_limit: Some(1_000_000),
        ..Options::default()
    };
    let mut seed_client = start(
        Client::Libtorrent,
        Role::Seeder,
        &setup.torrent,
        &setup.seed_dir,
        &Placement::Loopback,
        &seeder_opts,
    );
    setup.wait_seeders(1, what);
    let qbt_dir = setup.download_dir("qbittorrent");
    let aria2_dir = setup.download_dir("aria2");
    let mut qbt = start_leecher(
        Client::Qbittorrent,
        &setup.torrent,
        &qbt_dir,
        &Placement::Loopback,
    );
    let mut aria2 = start_leecher(Client::Aria2, &setup.torrent, &aria2_dir, &Placement::Loopback);
    let t_leechers = Instant::now();
    let mut done = [None, None];
    while done.iter().any(Option::is_none) {
        for (i, client) in [&mut qbt, &mut aria2].into_iter().enumerate() {
            if done[i].is_none() {
                let status = client
                    .status()
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{}", client.log_tail()));
                assert!(
                    status.error.is_none(),
                    "{what}: {status:?}\n{}",
                    client.log_tail()
                );
                if status.complete {
                    done[i] = Some(t_leechers.elapsed());
                }
            }
        }
        assert!(
            t_leechers.elapsed() < COMPLETE_TIMEOUT,
            "{what}: not both complete within {COMPLETE_TIMEOUT:?} ({done:?})\n{}\n{}\n{}",
            qbt.log_tail(),
            aria2.log_tail(),
            seed_client.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_same_tree(&setup.root, &qbt_dir.join(NAME), false, what);
    assert_same_tree(&setup.root, &aria2_dir.join(NAME), false, what);
    // Upload counters lag (libtorrent reports each second, qBittorrent refreshes every 1.5 s): wait until
    // they account for both downloads.
    let started = Instant::now();
    let (seeder_up, qbt_up, aria2_up) = loop {
        let ups = (
            seed_client.status().unwrap().uploaded,
            qbt.status().unwrap().uploaded,
            aria2.status().unwrap().uploaded,
        );
        if ups.0 + ups.1 + ups.2 >= 2 * setup.total * 95 / 100 || started.elapsed() > REGISTER_TIMEOUT {
            break ups;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    eprintln!(
        "{what}: qBittorrent complete {:.1} s, aria2 {:.1} s after start; uploaded: seeder {seeder_up}, \
         qBittorrent {qbt_up}, aria2 {aria2_up} (payload {}); test {:.1} s",
        done[0].unwrap().as_secs_f64(),
        done[1].unwrap().as_secs_f64(),
        setup.total,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        seeder_up + qbt_up + aria2_up >= 2 * setup.total * 95 / 100,
        "{what}: uploads do not account for two downloads"
    );
    // Which way they trade varies (aria2 sent qBittorrent from 0.1 to 0.9 MB in a run here).
    assert!(
        qbt_up + aria2_up > 0,
        "{what}: the leechers did not trade (seeder uploaded {seeder_up})"
    );
    // Paused, aria2 tells the tracker `stopped`.
    if let Err(e) = aria2.pause_and_wait(REGISTER_TIMEOUT) {
        panic!("{what}: {e}");
    }
    let aria2_addr = aria2.listen_addr().to_string();
    setup
        .tracker
        .wait_stats(&setup.info_hash, "aria2 gone", REGISTER_TIMEOUT, |s| {
            s.peers.len() == 2 && s.peers.iter().all(|p| p.addr != aria2_addr)
        });
}

/// A torrent whose only tracker is dead: peers are found only when given directly.
#[test]
fn peers_given_directly_without_tracker() {
    let what = "peers given directly";
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed");
    let root = make_tree(&seed_dir, NAME, 0x88);
    // Port 1 on loopback: connection refused at once.
    let (torrent, _) = create_torrent(
        &root,
        &["http://127.0.0.1:1/announce"],
        &dir.path().join("t.torrent"),
    );
    let no_announce = Options {
        wait_announced: false,
        ..Options::default()
    };
    let mut qbt_seed = start(
        Client::Qbittorrent,
        Role::Seeder,
        &torrent,
        &seed_dir,
        &Placement::Loopback,
        &no_announce,
    );
    // libtorrent downloads from qBittorrent, told of it by add_peer once running.
    let lt_dir = dir.path().join("download-lt");
    let mut lt = start_leecher(Client::Libtorrent, &torrent, &lt_dir, &Placement::Loopback);
    lt.add_peer(qbt_seed.listen_addr()).unwrap();
    if let Err(e) = lt.wait_complete(COMPLETE_TIMEOUT) {
        panic!(
            "{what}: libtorrent from qBittorrent: {e}\n{}",
            qbt_seed.log_tail()
        );
    }
    assert_same_tree(
        &root,
        &lt_dir.join(NAME),
        false,
        "qBittorrent -> libtorrent (add_peer)",
    );
    let t_first = t0.elapsed();
    drop(qbt_seed);

    // qBittorrent downloads from libtorrent (now a seed), given it in Options::peers.
    let lt_addr: SocketAddr = lt.listen_addr();
    let qbt_dir: &Path = &dir.path().join("download-qbt");
    let mut qbt = start(
        Client::Qbittorrent,
        Role::Leecher,
        &torrent,
        qbt_dir,
        &Placement::Loopback,
        &Options {
            peers: vec![lt_addr],
            ..Options::default()
        },
    );
    if let Err(e) = qbt.wait_complete(COMPLETE_TIMEOUT) {
        panic!("{what}: qBittorrent from libtorrent: {e}\n{}", lt.log_tail());
    }
    assert_same_tree(
        &root,
        &qbt_dir.join(NAME),
        false,
        "libtorrent -> qBittorrent (peers)",
    );
    eprintln!(
        "{what}: first transfer done at {:.1} s; test {:.1} s",
        t_first.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
