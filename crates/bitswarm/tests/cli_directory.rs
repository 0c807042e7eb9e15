//! `bitswarm directory`: the site and its embedded tracker start on the addresses given, serve pages and
//! metrics, print their effective configuration, and stop cleanly on SIGTERM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn directory_serves_pages_and_metrics_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "directory",
            "--listen",
            "127.0.0.1:0",
            "--tracker-http",
            "127.0.0.1:0",
            "--tracker-udp",
            "127.0.0.1:0",
            "--insecure-cookies",
            "--database",
        ])
        .arg(dir.path().join("d.db"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("directory: http://")
        .and_then(|s| s.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let second = lines.next().unwrap().unwrap();
    assert!(
        second.starts_with("directory: embedded tracker http://127.0.0.1:"),
        "{second}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let home = loop {
        if TcpStream::connect(&addr).is_ok() {
            break http_get(&addr, "/");
        }
        assert!(Instant::now() < deadline, "the site did not answer");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(home.starts_with("HTTP/1.1 200"), "{home}");
    assert!(home.contains("id=\"search-form\""));
    let metrics = http_get(&addr, "/metrics");
    assert!(metrics.contains("directory_torrents 0"), "{metrics}");
    let api = http_get(&addr, "/api/openapi.json");
    assert!(api.contains("\"openapi\""));
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bitswarm directory did not stop within 15 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn directory_print_config_shows_file_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("d.toml");
    std::fs::write(&f, "[web]\npage_size = 25\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "directory",
            "--print-config",
            "--listen",
            "127.0.0.1:9999",
            "--config",
        ])
        .arg(&f)
        .env("BITSWARM_DIRECTORY__WEB__SITE_NAME", "Example Directory")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("page_size = 25"), "{text}");
    assert!(text.contains("site_name = \"Example Directory\""));
    assert!(text.contains("listen = \"127.0.0.1:9999\""));
    assert!(text.contains("[tracker.swarm]"));
    let out = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args(["directory", "--print-config"])
        .env("BITSWARM_DIRECTORY__WEB__PAGE_SISE", "3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("page_sise"));
}

mod support;

/// Step 1 of the seed's design from the command line: `bitswarm get --directory URL "Movie-xyz"` searches
/// the directory, lists the matches with size and seeders, fetches the best one's torrent (which names the
/// tracker) and downloads it from the seeder the tracker knows; `--pick N` past the matches is refused.
#[test]
fn get_by_name_from_a_directory() {
    use support::bitswarm::{BitswarmPeer, Mode, PeerOptions};
    use support::clients::Placement;
    use support::netns::Net;
    use support::payload::{assert_same_tree, create_torrent, make_tree};
    use support::tracker::{Scheme, Tracker};

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("tracker")).unwrap();
    let tracker = Tracker::start(&Net::Loopback, &dir.path().join("tracker"));
    let url = tracker.announce_url(Scheme::Http).to_string();
    let seed_dir = dir.path().join("seed");
    let wanted = make_tree(&seed_dir, "Movie-xyz", 31);
    let (wanted_t, _) = create_torrent(&wanted, &[&url], &dir.path().join("xyz.torrent"));
    let decoy = make_tree(&seed_dir, "Movie-abc", 32);
    let (decoy_t, _) = create_torrent(&decoy, &[&url], &dir.path().join("abc.torrent"));
    // The directory's database, filled as uploads would fill it.
    let db_path = dir.path().join("d.db");
    {
        let db = directory::Db::open(&db_path, 1).unwrap();
        for (t, what) in [(&wanted_t, "the film"), (&decoy_t, "another film")] {
            let v = directory::upload::validate(std::fs::read(t).unwrap(), 1 << 20).unwrap();
            db.insert_torrent(&v, "video", what, None, 1_700_000_000, 10)
                .unwrap();
        }
    }
    let mut site = Command::new(env!("CARGO_BIN_EXE_bitswarm"))
        .args([
            "directory",
            "--listen",
            "127.0.0.1:0",
            "--no-tracker",
            "--insecure-cookies",
            "--database",
        ])
        .arg(&db_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut lines = BufReader::new(site.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("directory: ")
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let _site = Kill(site);
    let _seeder = BitswarmPeer::start(
        Mode::Seed,
        &wanted_t,
        &seed_dir,
        &Placement::Loopback,
        &PeerOptions::default(),
    );

    let out = dir.path().join("out");
    let get = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_bitswarm"));
        c.env("BITSWARM_DHT_BOOTSTRAP", "")
            .args(["get", "--directory", &base, "Movie-xyz", "-o"])
            .arg(&out)
            .args(["--listen", "127.0.0.1:0", "--resume-dir"])
            .arg(dir.path().join("resume"))
            .args(extra);
        support::run_with_timeout(&mut c, Duration::from_secs(90))
    };
    let o = get(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "get --directory failed:\n{err}");
    assert!(
        err.contains("1 match(es) for \"Movie-xyz\"") && err.contains("1. Movie-xyz"),
        "{err}"
    );
    assert!(err.contains("seeders"), "{err}");
    assert_same_tree(&wanted, &out.join("Movie-xyz"), false, "downloaded by name");
    let o = get(&["--pick", "5"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--pick 5: only 1 match(es)"), "{err}");
}
