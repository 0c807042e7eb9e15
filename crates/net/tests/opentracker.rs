//! The announce client and its driver against a real tracker: opentracker (Debian's whitelist-only build) on
//! loopback, over HTTP and UDP. `bash scripts/install-deps.sh` installs it; without it these tests fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use net::announce::{self, Command};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tracker_proto::client::{AnnounceClient, ClientEvent, TrackerFailure, UdpConfig};
use tracker_proto::udp::ConnectRequest;
use tracker_proto::{Event, InfoHashV1, TransactionId};

mod common;
use common::*;

struct OpenTracker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

fn opentracker_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join("opentracker"))
        .find(|p| p.is_file());
    match found {
        Some(p) => p,
        None => panic!(
            "opentracker is not installed, and the tracker interop tests need it: run `bash scripts/install-deps.sh`"
        ),
    }
}

/// A port free for both TCP and UDP on 127.0.0.1 (bound, then released).
fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP on 127.0.0.1");
}

impl OpenTracker {
    fn start(whitelist: &[InfoHashV1]) -> OpenTracker {
        let binary = opentracker_binary();
        let dir = tempfile::tempdir().unwrap();
        // opentracker chroots into -d and drops to user nobody, then reads -w relative to the new root: both
        // must be readable by anyone.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let list: String = whitelist.iter().map(|h| format!("{}\n", h.to_hex())).collect();
        let file = dir.path().join("whitelist");
        std::fs::write(&file, list).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = free_port();
        let p = port.to_string();
        let mut child = Process::new(&binary)
            .args(["-i", "127.0.0.1", "-p", &p, "-P", &p, "-w", "whitelist", "-d"])
            .arg(dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        // Ready when it accepts TCP and answers a UDP connect (it binds them one after the other).
        let probe = UdpSocket::bind("127.0.0.1:0").unwrap();
        probe.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let mut connect = Vec::new();
        ConnectRequest {
            transaction_id: TransactionId(7),
        }
        .write(&mut connect);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let _ = probe.send_to(&connect, ("127.0.0.1", port));
                if probe.recv(&mut [0; 64]).is_ok() {
                    break;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("opentracker exited at start ({status}); run `bash scripts/install-deps.sh`?");
            }
            assert!(
                Instant::now() < deadline,
                "opentracker did not listen on port {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        OpenTracker {
            child,
            port,
            _dir: dir,
        }
    }

    fn http(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    fn udp(&self) -> String {
        format!("udp://127.0.0.1:{}/announce", self.port)
    }
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn over_http_the_second_peer_hears_of_the_first_and_a_scrape_counts_both() {
    let tracker = OpenTracker::start(&[HASH]);
    two_peers_meet(tracker.http()).await;
}

#[tokio::test]
async fn over_udp_the_second_peer_hears_of_the_first_and_a_scrape_counts_both() {
    let tracker = OpenTracker::start(&[HASH]);
    two_peers_meet(tracker.udp()).await;
}

#[tokio::test]
async fn a_hash_off_the_whitelist_gives_a_clear_error_over_http_and_udp() {
    let tracker = OpenTracker::start(&[HASH]);
    let other = InfoHashV1([0x77; 20]);

    let mut h = peer(vec![vec![tracker.http()]], other, 4, 6004, 1).await;
    let e = wait_for(&mut h, "an HTTP tracker error", |e| {
        matches!(e, ClientEvent::TrackerError { .. })
    })
    .await;
    let ClientEvent::TrackerError { error, .. } = &e else {
        unreachable!()
    };
    assert_eq!(
        error,
        &TrackerFailure::Refused("Requested download is not authorized for use with this tracker.".into())
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: the tracker refused: Requested download is not authorized for use with this tracker.",
            tracker.http()
        )
    );
    let rest = h.shutdown().await.unwrap();
    assert_eq!(
        rest,
        vec![ClientEvent::Finished],
        "no stopped to a tracker that never accepted us"
    );

    let mut u = peer(vec![vec![tracker.udp()]], other, 5, 6005, 1).await;
    let e = wait_for(&mut u, "a UDP tracker error", |e| {
        matches!(e, ClientEvent::TrackerError { .. })
    })
    .await;
    let ClientEvent::TrackerError { error, .. } = &e else {
        unreachable!()
    };
    assert_eq!(error, &TrackerFailure::EmptyUdpAnswer);
    assert!(e.to_string().contains("does not serve this torrent"), "{e}");
    u.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tier_with_dead_trackers_first_fails_over_to_the_live_one() {
    let tracker = OpenTracker::start(&[HASH]);
    let dead = free_port();
    let tier = vec![
        format!("udp://127.0.0.1:{dead}/announce"),
        format!("http://127.0.0.1:{dead}/announce"),
        tracker.udp(),
    ];
    let mut p = params(HASH, 6, 6006);
    p.config.udp = UdpConfig {
        base_timeout: Duration::from_millis(200),
        max_n: 1,
        ..UdpConfig::default()
    };
    // Find a seed whose shuffle puts the live tracker last, so both dead ones are tried first.
    let seed = (0..1000)
        .find(|&s| {
            let c = AnnounceClient::new(vec![tier.clone()], p.clone(), StdRng::seed_from_u64(s));
            c.tracker_url(c.tiers()[0][2]) == Some(tracker.udp().as_str())
        })
        .unwrap();
    let client = AnnounceClient::new(vec![tier], p, StdRng::seed_from_u64(seed));
    let started = Instant::now();
    let mut handle = announce::spawn(client, driver());
    handle.command(Command::Event(Event::Started)).await;

    let mut failed = Vec::new();
    let announced = wait_for(&mut handle, "an announce to the live tracker", |e| {
        if let ClientEvent::TrackerError { url, error, .. } = e {
            failed.push((url.clone(), error.clone()));
        }
        matches!(e, ClientEvent::Announced { .. })
    })
    .await;
    let ClientEvent::Announced { tracker: live, .. } = announced else {
        unreachable!()
    };
    assert_eq!(failed.len(), 2, "both dead trackers failed first: {failed:?}");
    for (url, error) in &failed {
        match error {
            // 200 ms then 400 ms: sends at 0 and 0.2 s, failure at 0.6 s (on the real clock, so roughly).
            TrackerFailure::UdpTimedOut { sends, waited } if url.starts_with("udp:") => {
                assert_eq!(*sends, 2);
                assert!(
                    *waited >= Duration::from_millis(600) && *waited < Duration::from_millis(1500),
                    "{waited:?}"
                );
            }
            TrackerFailure::Transport(m) if url.starts_with("http:") => {
                assert!(m.starts_with("cannot connect: Connection refused"), "{m}");
            }
            other => panic!("{url}: unexpected {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let rest = handle.shutdown().await.unwrap();
    assert!(rest.contains(&ClientEvent::Announced {
        tracker: live,
        event: Event::Stopped,
        interval: Duration::ZERO
    }));
}
