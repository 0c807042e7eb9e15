#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! bitswarm's own peer client (`bitswarm get`, `bitswarm seed`, `--json`) against real BitTorrent clients
//! (libtorrent 2.0 through `lt_tool.py`, Transmission 3.00, aria2 1.36, qBittorrent 4.5), through a
//! `bitswarm tracker`. Harness: `tests/support/clients.rs` for the real clients, `tests/support/bitswarm.rs`
//! for bitswarm.
//!
//! For each real client:
//! - (a) it seeds, `bitswarm get` downloads (and must exit 0, complete, then leave the tracker's list);
//! - (b) `bitswarm seed` seeds, it downloads (bitswarm must report the upload and exit 0 on SIGTERM);
//!
//! and two three-party swarms (c) in which bitswarm must both give and take: bitswarm and one real client
//! each hold a different half of the pieces (a copy of the content with the other half zeroed, re-checked
//! at start), a third client holds nothing. Every party must end complete, and bitswarm's final JSON
//! status must show it uploaded and downloaded (at least what it lacked):
//! - bitswarm (first half) + libtorrent (second half) + qBittorrent, on 127.0.0.1;
//! - bitswarm (second half) + aria2 (first half) + Transmission, in a network namespace.
//!
//! Torrents: `Tree` (multi-file, nested folders, a 0-byte file, odd sizes; `bitswarm create`), `Single`
//! (one file of about 4 MiB; `bitswarm create`) and `LtHybrid` (the tree as a v1+v2 hybrid torrent made by
//! libtorrent, `lt_tool.py create --version hybrid`, which has `.pad` files). Transmission 3.00 cannot parse
//! hybrid torrents, so it never gets one. Trackers: HTTP, and UDP for aria2 seeding to bitswarm and
//! bitswarm seeding to qBittorrent. Every result is compared byte for byte with the original (every file,
//! nothing more; Transmission is allowed to leave out the 0-byte file, which it never creates).
//!
//! Transmission never dials 127.0.0.0/8, so as a downloader it runs in a network namespace of the test's
//! own, with bitswarm (`ip netns exec`) and the others at their own 10.99.0.x addresses. bitswarm's
//! `--listen IP:PORT` binds only its listener: its tracker requests leave from the address the kernel
//! picks, so a tracker on the namespace's 127.0.0.1 would list it at 127.0.0.1, which Transmission never
//! dials. There the tracker listens on bitswarm's own address instead (see `support::bitswarm`).
//!
//! The tools are required: when one is missing the tests fail and say to run `bash scripts/install-deps.sh`.
//! Each test prints its timings (`--nocapture` shows them).

mod support;
use support::bitswarm::{start_tracker_at, BitswarmPeer, Mode, PeerOptions, PeerStatus};
use support::clients::{start, start_leecher, start_seeder, Client, Options, Placement, Role};
use support::netns::{Net, Netns};
use support::payload::{assert_same_tree, create_torrent, inspect, make_tree};
use support::tracker::{Scheme, Tracker};
use support::{lt_tool_path, pseudo_random, run_ok, PYTHON};

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// A transfer on loopback takes a second; Transmission waits for its 10-second unchoke cycle (12-17 s).
const COMPLETE_TIMEOUT: Duration = Duration::from_secs(45);
/// The tracker listing (or dropping) a peer; counters catching up.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(30);
/// bitswarm exiting after SIGTERM (it tells the tracker `stopped` first).
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);
/// The length of the `Single` payload: 4 MiB and an odd tail, so the last piece is short.
const SINGLE_LEN: usize = 4 * 1024 * 1024 + 12_345;

/// In a namespace: bitswarm (and the tracker), and the real clients.
const BITSWARM_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 11);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 12);
const PARTNER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 13);

/// What kind of torrent a test serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// `support::payload::make_tree` (nested folders, a 0-byte file), v1 by `bitswarm create`.
    Tree,
    /// One file of [`SINGLE_LEN`] bytes, v1 by `bitswarm create`.
    Single,
    /// The tree as a hybrid (v1 + v2) torrent made by libtorrent: pad files after every file.
    LtHybrid,
}

/// A tracker, a payload and its torrent in a temporary folder.
struct Setup {
    dir: TempDir,
    tracker: Tracker,
    /// The torrent's name: the content is `<save folder>/<name>`.
    name: String,
    /// The original content, `seed_dir/name` (a folder, or a file for `Single`).
    root: PathBuf,
    /// The seeders' save folder.
    seed_dir: PathBuf,
    torrent: PathBuf,
    info_hash: String,
    /// `bitswarm inspect --json` of the torrent.
    info: Value,
    /// Payload bytes, pad files left out.
    total: u64,
}

impl Setup {
    /// With `tracker_ip`, the tracker listens there (inside `net`); else on `net`'s 127.0.0.1.
    fn new(net: &Net, tracker_ip: Option<Ipv4Addr>, kind: Kind, scheme: Scheme, seed: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let tracker = match tracker_ip {
            Some(ip) => start_tracker_at(net, ip, dir.path()),
            None => Tracker::start(net, dir.path()),
        };
        let announce = tracker.announce_url(scheme).to_string();
        let seed_dir = dir.path().join("seed");
        let torrent = dir.path().join("payload.torrent");
        let root = match kind {
            Kind::Tree => {
                let root = make_tree(&seed_dir, "tree", seed);
                create_torrent(&root, &[&announce], &torrent);
                root
            }
            Kind::Single => {
                fs::create_dir_all(&seed_dir).unwrap();
                let root = seed_dir.join("single.bin");
                fs::write(&root, pseudo_random(SINGLE_LEN, seed)).unwrap();
                create_torrent(&root, &[&announce], &torrent);
                root
            }
            Kind::LtHybrid => {
                let root = make_tree(&seed_dir, "hybrid", seed);
                run_ok(
                    Command::new(PYTHON)
                        .arg(lt_tool_path())
                        .args(["create", "--version", "hybrid", "--piece-length", "32768"])
                        .args(["--tracker", &announce])
                        .arg(&root)
                        .arg(&torrent),
                );
                root
            }
        };
        let info = inspect(&torrent);
        let info_hash = info["info_hash_v1"]
            .as_str()
            .unwrap_or_else(|| panic!("no v1 info-hash: {info}"))
            .to_ascii_lowercase();
        let files = info["files"].as_array().unwrap();
        let pads = files.iter().filter(|f| f["pad"] == true).count();
        if kind == Kind::LtHybrid {
            assert_eq!(info["version"], "hybrid", "{info}");
            assert!(pads > 0, "libtorrent's hybrid torrent has no pad files: {info}");
        } else {
            assert_eq!(pads, 0, "{info}");
        }
        let total = files
            .iter()
            .filter(|f| f["pad"] != true)
            .map(|f| f["length"].as_u64().unwrap())
            .sum();
        let name = info["name"].as_str().unwrap().to_string();
        Setup {
            dir,
            tracker,
            name,
            root,
            seed_dir,
            torrent,
            info_hash,
            info,
            total,
        }
    }

    fn path(&self, label: &str) -> PathBuf {
        self.dir.path().join(label)
    }

    fn pieces(&self) -> u64 {
        self.info["piece_count"].as_u64().unwrap()
    }

    /// Waits until the tracker lists every one of `addrs` (at that address and port).
    fn wait_listed(&mut self, addrs: &[SocketAddr], what: &str) {
        let want: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
        self.tracker.wait_stats(
            &self.info_hash,
            &format!("{want:?} listed ({what})"),
            REGISTER_TIMEOUT,
            |s| want.iter().all(|a| s.peers.iter().any(|p| &p.addr == a)),
        );
    }

    /// Waits until the tracker no longer lists `addr` (it announced `stopped`).
    fn wait_gone(&mut self, addr: SocketAddr, what: &str) {
        let addr = addr.to_string();
        self.tracker.wait_stats(
            &self.info_hash,
            &format!("{addr} gone ({what})"),
            REGISTER_TIMEOUT,
            |s| s.peers.iter().all(|p| p.addr != addr),
        );
    }

    /// A copy of the original content in `save_dir`, with every piece outside `keep` zeroed (pieces whole:
    /// each piece is then good in exactly one of two complementary copies).
    fn partial_copy(&self, save_dir: &Path, keep: Range<u64>) {
        fs::create_dir_all(save_dir).unwrap();
        copy_all(&self.root, &save_dir.join(&self.name));
        let n = self.pieces();
        self.zero_pieces(save_dir, 0..keep.start);
        self.zero_pieces(save_dir, keep.end..n);
    }

    /// Overwrites with zeros the bytes of `pieces` in the content under `save_dir` (pad files skipped: they
    /// are not on disk).
    fn zero_pieces(&self, save_dir: &Path, pieces: Range<u64>) {
        if pieces.is_empty() {
            return;
        }
        let piece_len = self.info["piece_length"].as_u64().unwrap();
        let (start, end) = (pieces.start * piece_len, pieces.end * piece_len);
        let multi = self.info["multi_file"].as_bool().unwrap();
        let mut offset = 0u64;
        for f in self.info["files"].as_array().unwrap() {
            let len = f["length"].as_u64().unwrap();
            let (from, to) = (offset, offset + len);
            offset = to;
            let (lo, hi) = (start.max(from), end.min(to));
            if f["pad"] == true || lo >= hi {
                continue;
            }
            let path = if multi {
                save_dir.join(&self.name).join(f["path"].as_str().unwrap())
            } else {
                save_dir.join(&self.name)
            };
            let mut file = fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.seek(SeekFrom::Start(lo - from)).unwrap();
            file.write_all(&vec![0u8; usize::try_from(hi - lo).unwrap()])
                .unwrap();
        }
    }
}

/// Copies a file, or a folder recursively.
fn copy_all(from: &Path, to: &Path) {
    if from.is_dir() {
        fs::create_dir_all(to).unwrap();
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            copy_all(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        fs::copy(from, to).unwrap();
    }
}

fn what_of(kind: Kind, scheme: Scheme) -> String {
    let tracker = match scheme {
        Scheme::Http => "HTTP",
        Scheme::Udp => "UDP",
    };
    format!("{kind:?} torrent, {tracker} tracker")
}

// ---------------------------------------------------------------------------------------------------------
// (a) A real client seeds, bitswarm downloads.

fn client_seeds_bitswarm_gets(client: Client, kind: Kind, scheme: Scheme, seed: u64) {
    let what = format!("{} -> bitswarm ({})", client.name(), what_of(kind, scheme));
    let t0 = Instant::now();
    let mut setup = Setup::new(&Net::Loopback, None, kind, scheme, seed);
    let mut seeder = start_seeder(client, &setup.torrent, &setup.seed_dir, &Placement::Loopback);
    setup.wait_listed(&[seeder.listen_addr()], &what);
    let t_seeding = t0.elapsed();

    let download = setup.path("download-bitswarm");
    let t_get = Instant::now();
    let mut get = BitswarmPeer::start(
        Mode::Get,
        &setup.torrent,
        &download,
        &Placement::Loopback,
        &PeerOptions::default(),
    );
    let get_addr = get.listen_addr();
    let exit = match get.wait_exit(COMPLETE_TIMEOUT) {
        Ok(exit) => exit,
        Err(e) => panic!("{what}: {e}\n{}", seeder.log_tail()),
    };
    let t_done = t_get.elapsed();
    assert!(
        exit.success(),
        "{what}: bitswarm get exited with {exit}\n{}\n{}",
        get.report(),
        seeder.log_tail()
    );
    let last = get.last_status().unwrap();
    assert!(
        last.complete() && last.phase == "seeding" && last.error.is_none(),
        "{what}: bitswarm get exited 0 but its last status is not complete: {:?}",
        last.raw
    );
    assert_eq!(last.total_bytes, setup.total, "{what}: {:?}", last.raw);
    // Everything came from the seeder: nothing was on disk.
    assert!(
        last.downloaded >= setup.total,
        "{what}: bitswarm says it downloaded {} of {} bytes: {:?}",
        last.downloaded,
        setup.total,
        last.raw
    );
    assert_same_tree(&setup.root, &download.join(&setup.name), false, &what);
    // The seeder reports having sent it (Transmission's sizes are rounded to three digits).
    if let Err(e) = seeder.wait_status("uploaded the payload", REGISTER_TIMEOUT, |s| {
        s.uploaded >= setup.total * 95 / 100
    }) {
        panic!("{what}: {e}");
    }
    // Having exited, bitswarm told the tracker `stopped`.
    setup.wait_gone(get_addr, &what);
    eprintln!(
        "{what}: seeder ready {:.1} s; bitswarm complete and exited {:.1} s after start ({} bytes \
         downloaded); test {:.1} s",
        t_seeding.as_secs_f64(),
        t_done.as_secs_f64(),
        last.downloaded,
        t0.elapsed().as_secs_f64()
    );
}

/// libtorrent's own hybrid torrent, pad files and all.
#[test]
fn libtorrent_seeds_bitswarm_gets_lt_hybrid() {
    client_seeds_bitswarm_gets(Client::Libtorrent, Kind::LtHybrid, Scheme::Http, 0xa1);
}

/// On 127.0.0.1: Transmission accepts connections from loopback (it only never dials there).
#[test]
fn transmission_seeds_bitswarm_gets_tree() {
    client_seeds_bitswarm_gets(Client::Transmission, Kind::Tree, Scheme::Http, 0xa2);
}

#[test]
fn aria2_seeds_bitswarm_gets_single_udp() {
    client_seeds_bitswarm_gets(Client::Aria2, Kind::Single, Scheme::Udp, 0xa3);
}

#[test]
fn qbittorrent_seeds_bitswarm_gets_tree() {
    client_seeds_bitswarm_gets(Client::Qbittorrent, Kind::Tree, Scheme::Http, 0xa4);
}

// ---------------------------------------------------------------------------------------------------------
// (b) bitswarm seeds, a real client downloads.

fn bitswarm_seeds_client_gets(client: Client, kind: Kind, scheme: Scheme, seed: u64, in_netns: bool) {
    let where_ = if in_netns { ", network namespace" } else { "" };
    let what = format!(
        "bitswarm -> {} ({}{where_})",
        client.name(),
        what_of(kind, scheme)
    );
    let t0 = Instant::now();
    // Declared first, so dropped last: every process inside is killed before the namespace goes.
    let mut ns = in_netns.then(|| {
        support::require_root(&what);
        Netns::create(&[])
    });
    let (net, bitswarm_at, client_at, tracker_ip) = match ns.as_mut() {
        Some(ns) => (
            ns.net(),
            Placement::in_netns(ns, BITSWARM_IP),
            Placement::in_netns(ns, CLIENT_IP),
            Some(BITSWARM_IP),
        ),
        None => (Net::Loopback, Placement::Loopback, Placement::Loopback, None),
    };
    let mut setup = Setup::new(&net, tracker_ip, kind, scheme, seed);
    let mut seeder = BitswarmPeer::start(
        Mode::Seed,
        &setup.torrent,
        &setup.seed_dir,
        &bitswarm_at,
        &PeerOptions::default(),
    );
    let seeder_addr = seeder.listen_addr();
    let checked = seeder.last_status().unwrap();
    assert!(
        checked.complete() && checked.total_bytes == setup.total,
        "{what}: bitswarm seed's check: {:?}",
        checked.raw
    );
    // The tracker lists bitswarm at its listening address.
    setup.wait_listed(&[seeder_addr], &what);
    let t_seeding = t0.elapsed();

    let download = setup.path(&format!("download-{}", client.name()));
    let t_leecher = Instant::now();
    let mut leech = start_leecher(client, &setup.torrent, &download, &client_at);
    if let Err(e) = leech.wait_complete(COMPLETE_TIMEOUT) {
        panic!("{what}: {e}\n{}", seeder.report());
    }
    let t_done = t_leecher.elapsed();
    assert_same_tree(
        &setup.root,
        &download.join(&setup.name),
        !client.creates_empty_files(),
        &what,
    );
    // bitswarm's own account: it sent the payload (a status comes every second).
    let want = setup.total * 95 / 100;
    if let Err(e) = seeder.wait_status("uploaded the payload", REGISTER_TIMEOUT, |s| s.uploaded >= want) {
        panic!("{what}: {e}\n{}", leech.log_tail());
    }
    let last = seeder
        .terminate(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        last.uploaded >= want && last.downloaded == 0 && last.error.is_none(),
        "{what}: bitswarm seed's final status: {:?}",
        last.raw
    );
    setup.wait_gone(seeder_addr, &what);
    eprintln!(
        "{what}: bitswarm seeding {:.1} s; leecher complete {:.1} s after start; bitswarm uploaded {} \
         (payload {}); test {:.1} s",
        t_seeding.as_secs_f64(),
        t_done.as_secs_f64(),
        last.uploaded,
        setup.total,
        t0.elapsed().as_secs_f64()
    );
}

/// libtorrent's own hybrid torrent, pad files and all, served by bitswarm from a folder without them.
#[test]
fn bitswarm_seeds_libtorrent_gets_lt_hybrid() {
    bitswarm_seeds_client_gets(Client::Libtorrent, Kind::LtHybrid, Scheme::Http, 0xb1, false);
}

/// Transmission never dials 127.0.0.0/8: both in a namespace, at their own addresses.
#[test]
fn bitswarm_seeds_transmission_gets_tree_in_netns() {
    bitswarm_seeds_client_gets(Client::Transmission, Kind::Tree, Scheme::Http, 0xb2, true);
}

/// Ignored: a bitswarm bug. aria2 1.36 starts with `have none` and then announces the pieces it got in one
/// `bitfield` message whenever that is shorter than the `have` messages it replaces (at once here: the
/// first allowed-fast pieces arrive together, even with bitswarm at `--max-up 256K`). bitswarm closes the
/// connection ("peer closed: bitfield received after other messages: it may only be the first message"),
/// aria2 bans it ("Peer ... banned"), and the download stalls at 6 of 217 pieces.
#[test]
fn bitswarm_seeds_aria2_gets_tree() {
    bitswarm_seeds_client_gets(Client::Aria2, Kind::Tree, Scheme::Http, 0xb3, false);
}

#[test]
fn bitswarm_seeds_qbittorrent_gets_single_udp() {
    bitswarm_seeds_client_gets(Client::Qbittorrent, Kind::Single, Scheme::Udp, 0xb4, false);
}

// ---------------------------------------------------------------------------------------------------------
// (c) Three parties; bitswarm gives and takes.

/// Which half of the pieces bitswarm starts with (the partner has the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    First,
    Second,
}

/// bitswarm (`get --seed`) and `partner` each start with one half of the pieces, `third` with nothing; all
/// three must end complete and byte-identical, and bitswarm's final status must show it uploaded (only it
/// had its half) and downloaded at least what it lacked.
fn three_party(partner: Client, third: Client, kind: Kind, bitswarm_half: Half, seed: u64, in_netns: bool) {
    let where_ = if in_netns { ", network namespace" } else { "" };
    let what = format!(
        "bitswarm ({bitswarm_half:?} half) + {} (other half) + {} (nothing) ({}{where_})",
        partner.name(),
        third.name(),
        what_of(kind, Scheme::Http)
    );
    let t0 = Instant::now();
    let mut ns = in_netns.then(|| {
        support::require_root(&what);
        Netns::create(&[])
    });
    let (net, bitswarm_at, third_at, partner_at, tracker_ip) = match ns.as_mut() {
        Some(ns) => (
            ns.net(),
            Placement::in_netns(ns, BITSWARM_IP),
            Placement::in_netns(ns, CLIENT_IP),
            Placement::in_netns(ns, PARTNER_IP),
            Some(BITSWARM_IP),
        ),
        None => (
            Net::Loopback,
            Placement::Loopback,
            Placement::Loopback,
            Placement::Loopback,
            None,
        ),
    };
    let mut setup = Setup::new(&net, tracker_ip, kind, Scheme::Http, seed);
    let n = setup.pieces();
    let split = n / 2;
    let (bitswarm_keep, partner_keep) = match bitswarm_half {
        Half::First => (0..split, split..n),
        Half::Second => (split..n, 0..split),
    };
    let bitswarm_dir = setup.path("bitswarm");
    let partner_dir = setup.path(&format!("partner-{}", partner.name()));
    let third_dir = setup.path(&format!("third-{}", third.name()));
    setup.partial_copy(&bitswarm_dir, bitswarm_keep.clone());
    setup.partial_copy(&partner_dir, partner_keep);

    // bitswarm first: it checks what it has, keeps its half, announces.
    let mut bw = BitswarmPeer::start(
        Mode::GetAndSeed,
        &setup.torrent,
        &bitswarm_dir,
        &bitswarm_at,
        &PeerOptions::default(),
    );
    let bw_addr = bw.listen_addr();
    let checked = bw
        .wait_status("the check done", REGISTER_TIMEOUT, |s| {
            s.phase != "checking" && s.pieces_total > 0
        })
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        (checked.pieces_have, checked.pieces_total),
        (bitswarm_keep.end - bitswarm_keep.start, n),
        "{what}: bitswarm kept the wrong pieces: {:?}",
        checked.raw
    );
    let lacked = checked.bytes_left;
    assert!(lacked > 0, "{what}: {:?}", checked.raw);
    setup.wait_listed(&[bw_addr], &what);

    // The partner: checks its half, finds bitswarm through the tracker.
    let mut partner_client = start(
        partner,
        Role::Leecher,
        &setup.torrent,
        &partner_dir,
        &partner_at,
        &Options::default(),
    );
    setup.wait_listed(&[bw_addr, partner_client.listen_addr()], &what);
    // The third, with nothing.
    let mut third_client = start_leecher(third, &setup.torrent, &third_dir, &third_at);
    let t_all = Instant::now();

    // All three complete.
    let mut done: [Option<Duration>; 3] = [None, None, None];
    loop {
        if done[0].is_none() {
            if let Some(exit) = bw.try_wait() {
                panic!("{what}: bitswarm get --seed exited ({exit})\n{}", bw.report());
            }
            let s = bw.last_status().unwrap_or_default();
            assert!(
                s.phase != "failed",
                "{what}: bitswarm failed: {:?}\n{}",
                s.raw,
                bw.report()
            );
            if s.complete() {
                done[0] = Some(t_all.elapsed());
            }
        }
        for (i, client) in [(1, &mut partner_client), (2, &mut third_client)] {
            if done[i].is_none() {
                let s = client
                    .status()
                    .unwrap_or_else(|e| panic!("{what}: {e}\n{}", client.log_tail()));
                assert!(s.error.is_none(), "{what}: {s:?}\n{}", client.log_tail());
                if s.complete {
                    done[i] = Some(t_all.elapsed());
                }
            }
        }
        if done.iter().all(Option::is_some) {
            break;
        }
        if t_all.elapsed() > COMPLETE_TIMEOUT {
            panic!(
                "{what}: not all complete within {COMPLETE_TIMEOUT:?} (bitswarm, {}, {}: {done:?})\n{}\n{}\n{}",
                partner.name(),
                third.name(),
                bw.report(),
                partner_client.log_tail(),
                third_client.log_tail()
            );
        }
        thread::sleep(Duration::from_millis(200));
    }
    assert_same_tree(&setup.root, &bitswarm_dir.join(&setup.name), false, &what);
    assert_same_tree(
        &setup.root,
        &partner_dir.join(&setup.name),
        !partner.creates_empty_files(),
        &what,
    );
    assert_same_tree(
        &setup.root,
        &third_dir.join(&setup.name),
        !third.creates_empty_files(),
        &what,
    );

    // Counters lag by up to a second or two: wait until bitswarm's status shows an upload, then stop it
    // and read its final status.
    let _ = bw.wait_status("an upload", Duration::from_secs(5), |s| s.uploaded > 0);
    let last: PeerStatus = bw
        .terminate(EXIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    eprintln!(
        "{what}: bitswarm complete {:.1} s, {} {:.1} s, {} {:.1} s after the third started; bitswarm \
         downloaded {} (lacked {lacked}), uploaded {} (payload {}); test {:.1} s",
        done[0].unwrap().as_secs_f64(),
        partner.name(),
        done[1].unwrap().as_secs_f64(),
        third.name(),
        done[2].unwrap().as_secs_f64(),
        last.downloaded,
        last.uploaded,
        setup.total,
        t0.elapsed().as_secs_f64()
    );
    assert!(
        last.uploaded > 0,
        "{what}: bitswarm's final status shows no upload, though only it had its half: {:?}",
        last.raw
    );
    assert!(
        last.downloaded > 0 && last.downloaded >= lacked,
        "{what}: bitswarm's final status shows {} bytes downloaded, it lacked {lacked}: {:?}",
        last.downloaded,
        last.raw
    );
    assert!(
        last.complete() && last.error.is_none(),
        "{what}: bitswarm's final status: {:?}",
        last.raw
    );
    setup.wait_gone(bw_addr, &what);
}

/// On 127.0.0.1: bitswarm and libtorrent each hold half of a multi-file torrent, qBittorrent nothing.
#[test]
fn three_party_bitswarm_libtorrent_qbittorrent_tree() {
    three_party(
        Client::Libtorrent,
        Client::Qbittorrent,
        Kind::Tree,
        Half::First,
        0xc1,
        false,
    );
}

/// In a namespace (Transmission downloads): bitswarm and aria2 each hold half of a single file,
/// Transmission nothing.
#[test]
fn three_party_bitswarm_aria2_transmission_single_in_netns() {
    three_party(
        Client::Aria2,
        Client::Transmission,
        Kind::Single,
        Half::Second,
        0xc2,
        true,
    );
}
