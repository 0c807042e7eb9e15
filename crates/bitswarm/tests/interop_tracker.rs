#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

//! Interop tests for `bitswarm tracker` with real BitTorrent clients: two clients find each other through
//! the tracker alone (no DHT node, local discovery or PEX) and complete a transfer, over HTTP and over UDP.
//!
//! - libtorrent 2.0 (`tests/interop/lt_tool.py seed` under `/usr/bin/python3`) seeds to aria2 1.36 on
//!   127.0.0.1.
//! - libtorrent seeds to Transmission 3.00 (`transmission-daemon`, driven by `transmission-remote` through
//!   the harness in `tests/support/clients.rs`) inside a private network namespace made for the test, because Transmission never dials 127.0.0.0/8: the seeder
//!   has 10.99.0.11 and Transmission 10.99.0.12 on the namespace's `lo`, the tracker 127.0.0.1 there. This
//!   needs root (CI runs as root); without it the tests fail and say so.
//!
//! Each test checks the downloaded file byte for byte, and checks what the tracker saw through its
//! `/stats/<info-hash>` JSON (with the admin token, which reveals peer addresses) and `/scrape`: both peers,
//! from the right addresses, with the right clients, the leecher first incomplete and then complete, and
//! the completed download counted.
//!
//! The tools are required: when one is missing the tests fail and say to run `bash scripts/install-deps.sh`.
//! Every process is started with a parent-death signal (`setpriv --pdeathsig KILL`) and killed by its PID
//! (and process group) when the test ends; every wait is bounded.
//!
//! Facts these tests rely on (checked by hand on Debian 12):
//! - aria2 sends the `completed` event only when it goes on seeding after the download: with
//!   `--seed-time=0` it announces `stopped` with `left=0` straight away, which (as BEP 3 says) is not a
//!   completed download. So aria2 seeds for a few seconds here (`--seed-time=0.1`, minutes).
//! - aria2 speaks UDP tracker only through its DHT socket: with `--enable-dht=false` a `udp://` announce
//!   fails with "udp is not supported yet". So the UDP test turns aria2's DHT on with no entry point (an empty
//!   routing table: it sends no DHT message at all).
//! - A 4 MiB transfer on loopback takes well under a second; aria2's `--max-download-limit` stretches it so
//!   that the tracker's view of aria2 as a leecher can be seen by polling.
//! - Transmission unchokes on its 10-second cycle: 10-17 s pass before its first byte.

mod support;
use support::clients::{start_leecher, Client, Placement};
use support::netns::{Net, Netns};
use support::proc::Proc;
use support::tracker::{Scheme, Scrape, Snapshot, Tracker};
use support::{
    free_port, free_udp_port, log_tail, lt_tool_path, pseudo_random, require_root, require_tools, run_ok,
    PYTHON,
};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A background process coming up: the tracker listening, libtorrent's hash check and first announce,
/// Transmission's RPC.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// aria2's whole run (download at about 2 MiB/s, then six seconds of seeding).
const ARIA2_TIMEOUT: Duration = Duration::from_secs(120);
/// Transmission's download, from adding the torrent to the tracker counting it complete.
const TRANSMISSION_TIMEOUT: Duration = Duration::from_secs(120);
/// A safety net for helpers that outlive a killed test run: the seeder exits by itself after this long.
const SEEDER_SELF_TIMEOUT_SECS: &str = "600";
const POLL: Duration = Duration::from_millis(100);

/// A few MiB and an odd size, so the last piece is short.
const PAYLOAD_LEN: usize = 4 * 1024 * 1024 + 12_345;
const PAYLOAD_NAME: &str = "payload.bin";

/// The addresses inside the Transmission tests' network namespace.
const NS_SEEDER_IP: &str = "10.99.0.11";
const NS_LEECHER_IP: &str = "10.99.0.12";

// ---------------------------------------------------------------------------------------------------------
// Payload and torrent

/// The seeder's copy of the payload in `dir/seed/`; returns (save dir, bytes).
fn make_payload(dir: &Path, seed: u64) -> (PathBuf, Vec<u8>) {
    let save_dir = dir.join("seed");
    fs::create_dir_all(&save_dir).unwrap();
    let bytes = pseudo_random(PAYLOAD_LEN, seed);
    fs::write(save_dir.join(PAYLOAD_NAME), &bytes).unwrap();
    (save_dir, bytes)
}

/// `bitswarm create` with one tracker; returns (torrent path, v1 info-hash in hex).
fn create_torrent(save_dir: &Path, tracker: &str, out: &Path) -> (PathBuf, String) {
    let o = run_ok(
        Command::new(env!("CARGO_BIN_EXE_bitswarm"))
            .arg("create")
            .arg(save_dir.join(PAYLOAD_NAME))
            .arg("-o")
            .arg(out)
            .args(["--tracker", tracker, "--no-date", "--json"]),
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hash = v["info_hash_v1"]
        .as_str()
        .unwrap_or_else(|| panic!("bitswarm create --json: no info_hash_v1 in {v}"))
        .to_ascii_lowercase();
    (out.to_path_buf(), hash)
}

/// Fails unless `path` holds exactly `want`.
fn assert_same_bytes(path: &Path, want: &[u8], what: &str) {
    let got = fs::read(path).unwrap_or_else(|e| panic!("{what}: cannot read {}: {e}", path.display()));
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "{what}: {} differs from the payload: {} bytes against {}, first difference at {first:?}",
            path.display(),
            got.len(),
            want.len()
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent, the seeder

struct Seeder {
    proc: Proc,
    port: u16,
}

impl Seeder {
    /// Starts `lt_tool.py seed` on `ip` (port picked by libtorrent) and waits until it has verified every
    /// piece and the tracker has answered its first announce.
    fn start(net: &Net, torrent: &Path, save_dir: &Path, ip: &str, logs: &Path) -> Seeder {
        let mut cmd = net.command(true, PYTHON);
        cmd.arg(lt_tool_path())
            .arg("seed")
            .arg(torrent)
            .arg(save_dir)
            .args(["--listen", &format!("{ip}:0")])
            .args(["--timeout", SEEDER_SELF_TIMEOUT_SECS]);
        let mut proc = Proc::spawn("libtorrent seeder", cmd, logs);
        let port = proc.wait_line("seeding event", STARTUP_TIMEOUT, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] == "error" {
                panic!("libtorrent seeder: {v}");
            }
            (v["event"] == "seeding").then(|| v["port"].as_u64().unwrap())
        });
        proc.wait_line("reply from the tracker", STARTUP_TIMEOUT, |line| {
            let v: Value = serde_json::from_str(line).ok()?;
            if v["event"] == "tracker_error" {
                panic!("libtorrent seeder: the tracker failed: {v}");
            }
            (v["event"] == "announced").then_some(())
        });
        Seeder {
            proc,
            port: u16::try_from(port).unwrap(),
        }
    }

    /// The seeder's events so far, parsed.
    fn events(&mut self) -> Vec<Value> {
        self.proc.drain();
        self.proc
            .seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn uploaded(&mut self) -> u64 {
        self.events()
            .iter()
            .filter(|v| v["event"] == "uploaded")
            .filter_map(|v| v["bytes"].as_u64())
            .max()
            .unwrap_or(0)
    }

    fn peer_ips(&mut self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|v| v["event"] == "peer")
            .filter_map(|v| v["ip"].as_str().map(str::to_string))
            .collect()
    }

    fn tracker_errors(&mut self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|v| v["event"] == "tracker_error")
            .collect()
    }
}

/// The seeder as the tracker sees it: one seed, complete, from its own address and port, named libtorrent.
fn assert_seeder_view(snap: &Snapshot, seeder_addr: &str, what: &str) {
    let lt = snap
        .peer("libtorrent")
        .unwrap_or_else(|| panic!("{what}: the tracker lists no libtorrent peer: {snap:?}"));
    assert!(
        lt.is_seed && lt.completion == 1.0,
        "{what}: libtorrent is not a complete seed: {snap:?}"
    );
    assert_eq!(lt.addr, seeder_addr, "{what}: libtorrent's address: {snap:?}");
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent seeds to aria2, on 127.0.0.1

fn aria2_downloads_from_libtorrent(scheme: Scheme) {
    require_tools(&["aria2c"]);
    let what = format!("libtorrent -> aria2 over {scheme:?}");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let net = Net::Loopback;
    let mut tracker = Tracker::start(&net, dir.path());
    let (seed_dir, payload) = make_payload(dir.path(), 0xA21A);
    let announce = tracker.announce_url(scheme).to_string();
    let (torrent, info_hash) = create_torrent(&seed_dir, &announce, &dir.path().join("a.torrent"));

    let mut seeder = Seeder::start(&net, &torrent, &seed_dir, "127.0.0.1", dir.path());
    let seeder_addr = format!("127.0.0.1:{}", seeder.port);
    let before = tracker.wait_stats(&info_hash, "the seeder registered", STARTUP_TIMEOUT, |s| {
        s.seeders == 1 && s.peer("libtorrent").is_some()
    });
    assert_eq!(
        (before.leechers, before.completed, before.peers.len()),
        (0, 0, 1),
        "{what}: before aria2: {before:?}"
    );
    assert_seeder_view(&before, &seeder_addr, &what);

    let download_dir = dir.path().join("aria2");
    fs::create_dir_all(&download_dir).unwrap();
    let aria2_port = free_port();
    let mut cmd = net.command(true, "aria2c");
    cmd.arg("--no-conf=true")
        .arg(format!("--dir={}", download_dir.display()))
        .arg(format!("--log={}", dir.path().join("aria2.log").display()))
        .args([
            "--log-level=info",
            "--console-log-level=warn",
            "--summary-interval=0",
        ])
        .args(["--enable-color=false", "--show-console-readout=false"])
        .args(["--bt-enable-lpd=false", "--enable-dht6=false"])
        .args(["--enable-peer-exchange=false", "--disable-ipv6=true"])
        .arg(format!("--listen-port={aria2_port}"))
        .args(["--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=10"])
        .args(["--bt-tracker-interval=1"])
        // About two seconds of download, so that the tracker's view of aria2 as a leecher can be seen.
        .arg("--max-download-limit=2M")
        // Six seconds of seeding: aria2 sends `completed` only when it goes on seeding.
        .arg("--seed-time=0.1")
        .arg(format!("--stop={}", ARIA2_TIMEOUT.as_secs()))
        .arg("--file-allocation=none")
        .arg(&torrent);
    match scheme {
        Scheme::Http => {
            cmd.arg("--enable-dht=false");
        }
        Scheme::Udp => {
            // aria2 speaks UDP tracker only through its DHT socket ("udp is not supported yet" otherwise).
            // With no entry point and an empty routing table its DHT knows nobody and sends nothing.
            cmd.arg("--enable-dht=true")
                .arg(format!("--dht-listen-port={}", free_udp_port()))
                .arg(format!(
                    "--dht-file-path={}",
                    dir.path().join("aria2-dht.dat").display()
                ));
        }
    }
    let t_aria2 = Instant::now();
    let mut aria2 = Proc::spawn("aria2c", cmd, dir.path());

    // Watch the swarm through the tracker while aria2 runs.
    let mut snaps = Vec::new();
    let status = loop {
        if let Some(status) = aria2.try_wait() {
            break status;
        }
        assert!(
            t_aria2.elapsed() < ARIA2_TIMEOUT,
            "{what}: aria2 did not finish within {ARIA2_TIMEOUT:?}; /stats seen: {snaps:#?}\n{}\naria2 log \
             (end):\n{}",
            aria2.report(),
            log_tail(&dir.path().join("aria2.log"))
        );
        if let Some(snap) = tracker.stats(&info_hash, t_aria2) {
            snaps.push(snap);
        }
        thread::sleep(POLL);
    };
    let aria2_secs = t_aria2.elapsed().as_secs_f64();
    assert!(
        status.success(),
        "{what}: aria2c exited with {status}\n{}\naria2 log (end):\n{}",
        aria2.report(),
        log_tail(&dir.path().join("aria2.log"))
    );
    assert_same_bytes(&download_dir.join(PAYLOAD_NAME), &payload, &what);
    assert!(
        seeder.uploaded() >= PAYLOAD_LEN as u64,
        "{what}: libtorrent reports {} bytes uploaded, less than the payload: {:?}",
        seeder.uploaded(),
        seeder.events()
    );
    assert!(
        seeder.tracker_errors().is_empty(),
        "{what}: libtorrent saw tracker errors: {:?}",
        seeder.tracker_errors()
    );

    // aria2 as a leecher, then as a seed, each next to the libtorrent seed.
    let aria2_addr = format!("127.0.0.1:{aria2_port}");
    let leeching = snaps
        .iter()
        .find(|s| s.peer("aria2").is_some_and(|a| !a.is_seed && a.completion < 1.0));
    let leeching = leeching.unwrap_or_else(|| {
        panic!("{what}: the tracker never showed aria2 as a leecher; /stats seen: {snaps:#?}")
    });
    assert_eq!(
        (leeching.seeders, leeching.leechers),
        (1, 1),
        "{what}: while aria2 downloads: {leeching:?}"
    );
    assert_seeder_view(leeching, &seeder_addr, &what);
    let a = leeching.peer("aria2").unwrap();
    assert_eq!(a.addr, aria2_addr, "{what}: aria2's address: {leeching:?}");
    assert!(
        (0.0..1.0).contains(&a.completion),
        "{what}: aria2's completion: {leeching:?}"
    );

    let seeding = snaps
        .iter()
        .find(|s| s.peer("aria2").is_some_and(|a| a.is_seed))
        .unwrap_or_else(|| {
            panic!("{what}: the tracker never showed aria2 as a seed; /stats seen: {snaps:#?}")
        });
    assert_eq!(
        (seeding.seeders, seeding.leechers, seeding.completed),
        (2, 0, 1),
        "{what}: after aria2 completed: {seeding:?}"
    );
    let a = seeding.peer("aria2").unwrap();
    assert_eq!(
        (a.completion, a.addr.as_str()),
        (1.0, aria2_addr.as_str()),
        "{what}: aria2 after completing: {seeding:?}"
    );
    assert!(
        seeding.at >= leeching.at,
        "{what}: aria2 seen seeding before leeching"
    );

    // aria2 announced `stopped` on exit: gone, and its download counted.
    let after = tracker.wait_stats(&info_hash, "rid of aria2", STARTUP_TIMEOUT, |s| {
        s.peer("aria2").is_none()
    });
    assert_eq!(
        (after.seeders, after.leechers, after.completed),
        (1, 0, 1),
        "{what}: after aria2 stopped: {after:?}"
    );
    assert_seeder_view(&after, &seeder_addr, &what);
    let scrape = tracker.scrape(&info_hash);
    assert_eq!(
        scrape,
        Scrape {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        },
        "{what}: /scrape after aria2 finished"
    );
    eprintln!(
        "{what}: aria2 ran {aria2_secs:.1} s (leecher seen at {:.1} s, seed at {:.1} s); test {:.1} s",
        leeching.at.as_secs_f64(),
        seeding.at.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

#[test]
fn aria2_downloads_from_libtorrent_via_http_tracker() {
    aria2_downloads_from_libtorrent(Scheme::Http);
}

#[test]
fn aria2_downloads_from_libtorrent_via_udp_tracker() {
    aria2_downloads_from_libtorrent(Scheme::Udp);
}

// ---------------------------------------------------------------------------------------------------------
// libtorrent seeds to Transmission, in a network namespace

fn transmission_downloads_from_libtorrent(scheme: Scheme) {
    require_root("the Transmission interop tests");
    require_tools(&["transmission-daemon", "transmission-remote", "ip"]);
    let what = format!("libtorrent -> Transmission over {scheme:?} (network namespace)");
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    // Dropped last: every process inside is killed before the namespace goes.
    let ns = Netns::create(&[NS_SEEDER_IP.parse().unwrap(), NS_LEECHER_IP.parse().unwrap()]);
    let net = ns.net();
    let mut tracker = Tracker::start(&net, dir.path());
    let (seed_dir, payload) = make_payload(dir.path(), 0x7E5);
    let announce = tracker.announce_url(scheme).to_string();
    let (torrent, info_hash) = create_torrent(&seed_dir, &announce, &dir.path().join("t.torrent"));

    let mut seeder = Seeder::start(&net, &torrent, &seed_dir, NS_SEEDER_IP, dir.path());
    let seeder_addr = format!("{NS_SEEDER_IP}:{}", seeder.port);
    let before = tracker.wait_stats(&info_hash, "the seeder registered", STARTUP_TIMEOUT, |s| {
        s.seeders == 1 && s.peer("libtorrent").is_some()
    });
    assert_eq!(
        (before.leechers, before.completed, before.peers.len()),
        (0, 0, 1),
        "{what}: before Transmission: {before:?}"
    );
    assert_seeder_view(&before, &seeder_addr, &what);

    let download_dir = dir.path().join("transmission-download");
    let leecher_at = Placement::Netns {
        name: ns.name().to_string(),
        ip: NS_LEECHER_IP.parse().unwrap(),
    };
    // Started with the torrent added (support/clients.rs).
    let mut tr = start_leecher(Client::Transmission, &torrent, &download_dir, &leecher_at);
    let t_added = Instant::now();

    // Poll Transmission and the tracker until Transmission has everything and the tracker counted it.
    let transmission_addr = tr.listen_addr().to_string();
    let mut snaps = Vec::new();
    let mut done_at = None;
    loop {
        let status = tr
            .status()
            .unwrap_or_else(|e| panic!("{what}: {e}\n{}", tr.log_tail()));
        assert!(
            status.error.is_none(),
            "{what}: Transmission reports an error: {status:?}\n{}",
            tr.log_tail()
        );
        if status.complete && done_at.is_none() {
            done_at = Some(t_added.elapsed());
        }
        if let Some(snap) = tracker.stats(&info_hash, t_added) {
            let counted = snap.completed >= 1;
            snaps.push(snap);
            if done_at.is_some() && counted {
                break;
            }
        }
        assert!(
            t_added.elapsed() < TRANSMISSION_TIMEOUT,
            "{what}: Transmission did not complete (and the tracker count it) within {TRANSMISSION_TIMEOUT:?}\n\
             last status: {status:?}\n/stats seen (last 5): {:#?}\n{}\n{}",
            &snaps[snaps.len().saturating_sub(5)..],
            tr.log_tail(),
            seeder.proc.report()
        );
        thread::sleep(Duration::from_millis(250));
    }
    let done_at = done_at.unwrap();

    // Stopping the torrent sends `stopped`.
    if let Err(e) = tr.pause_and_wait(STARTUP_TIMEOUT) {
        panic!("{what}: the torrent did not stop: {e}");
    }
    assert_same_bytes(&download_dir.join(PAYLOAD_NAME), &payload, &what);
    assert!(
        seeder.uploaded() >= PAYLOAD_LEN as u64,
        "{what}: libtorrent reports {} bytes uploaded, less than the payload: {:?}",
        seeder.uploaded(),
        seeder.events()
    );
    let ips = seeder.peer_ips();
    assert!(
        !ips.is_empty() && ips.iter().all(|ip| ip == NS_LEECHER_IP),
        "{what}: libtorrent's peers should all be Transmission at {NS_LEECHER_IP}: {ips:?}"
    );
    assert!(
        seeder.tracker_errors().is_empty(),
        "{what}: libtorrent saw tracker errors: {:?}",
        seeder.tracker_errors()
    );

    // Transmission as a leecher (it waits for its 10-second cycle before the first byte), then as a seed.
    let leeching = snaps
        .iter()
        .find(|s| s.peer("Transmission").is_some_and(|p| !p.is_seed))
        .unwrap_or_else(|| {
            panic!("{what}: the tracker never showed Transmission as a leecher; /stats seen: {snaps:#?}")
        });
    assert_eq!(
        (leeching.seeders, leeching.leechers),
        (1, 1),
        "{what}: while Transmission downloads: {leeching:?}"
    );
    assert_seeder_view(leeching, &seeder_addr, &what);
    let p = leeching.peer("Transmission").unwrap();
    assert_eq!(p.client, "Transmission 3.00", "{what}: {leeching:?}");
    assert_eq!(
        p.addr, transmission_addr,
        "{what}: Transmission's address: {leeching:?}"
    );
    assert!(
        (0.0..1.0).contains(&p.completion),
        "{what}: Transmission's completion: {leeching:?}"
    );
    let seeding = snaps.last().unwrap();
    assert_eq!(
        (seeding.seeders, seeding.leechers, seeding.completed),
        (2, 0, 1),
        "{what}: after Transmission completed: {seeding:?}"
    );
    let p = seeding
        .peer("Transmission")
        .unwrap_or_else(|| panic!("{what}: Transmission missing after completing: {seeding:?}"));
    assert!(
        p.is_seed && p.completion == 1.0 && p.addr == transmission_addr,
        "{what}: Transmission after completing: {seeding:?}"
    );
    assert_seeder_view(seeding, &seeder_addr, &what);

    // Transmission announced `stopped`: gone, its download still counted.
    let after = tracker.wait_stats(&info_hash, "rid of Transmission", STARTUP_TIMEOUT, |s| {
        s.peer("Transmission").is_none()
    });
    assert_eq!(
        (after.seeders, after.leechers, after.completed),
        (1, 0, 1),
        "{what}: after Transmission stopped: {after:?}"
    );
    let scrape = tracker.scrape(&info_hash);
    assert_eq!(
        scrape,
        Scrape {
            complete: 1,
            downloaded: 1,
            incomplete: 0
        },
        "{what}: /scrape after Transmission finished"
    );
    eprintln!(
        "{what}: Transmission complete {:.1} s after adding (leecher seen at {:.1} s); test {:.1} s \
         (transmission-daemon pid {})",
        done_at.as_secs_f64(),
        leeching.at.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        tr.pid()
    );
}

#[test]
fn transmission_downloads_from_libtorrent_via_http_tracker_in_netns() {
    transmission_downloads_from_libtorrent(Scheme::Http);
}

#[test]
fn transmission_downloads_from_libtorrent_via_udp_tracker_in_netns() {
    transmission_downloads_from_libtorrent(Scheme::Udp);
}
