//! `bitswarm seed PATH` and `bitswarm get URL` end to end, with real processes on loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::pseudo_random;

const BIN: &str = env!("CARGO_BIN_EXE_bitswarm");

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a program with stdout and stderr read line by line into one channel.
fn spawn(program: &str, args: &[&str]) -> (Proc, mpsc::Receiver<String>) {
    let mut child = Command::new(program)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().unwrap();
    let err = child.stderr.take().unwrap();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx2.send(l);
        }
    });
    (Proc(child), rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, pred: impl Fn(&str) -> bool, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        if pred(&l) {
            return l;
        }
        seen.push(l);
    }
    panic!("no {what} within 30 s; saw:\n{}", seen.join("\n"));
}

/// `seed PATH` hashes a folder into a torrent, prints its magnet link, writes the torrent where asked and
/// serves it; `get URL` fetches that torrent over HTTP and downloads the folder from the seeder.
#[test]
fn seed_a_folder_then_get_its_torrent_by_url() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("share").join("Movie-xyz");
    std::fs::create_dir_all(folder.join("extras")).unwrap();
    let movie = pseudo_random(3_000_000, 1);
    let trailer = pseudo_random(123_457, 2);
    std::fs::write(folder.join("movie.mkv"), &movie).unwrap();
    std::fs::write(folder.join("extras/trailer.mp4"), &trailer).unwrap();
    let web = dir.path().join("web");
    std::fs::create_dir_all(&web).unwrap();
    let torrent = web.join("movie.torrent");

    let (_seed, rx) = spawn(
        BIN,
        &[
            "seed",
            folder.to_str().unwrap(),
            "--save-torrent",
            torrent.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--no-trackers",
            "--resume-dir",
            dir.path().join("seed-resume").to_str().unwrap(),
        ],
    );
    // Lines come from two pipes, so their order is not fixed: gather them until seeding starts.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.contains("seeding 1 torrent")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("seed did not start within 30 s; saw:\n{}", seen.join("\n")),
        }
    }
    let magnet = seen
        .iter()
        .find(|l| l.starts_with("magnet:?"))
        .expect("a magnet link")
        .clone();
    assert!(magnet.contains("xt=urn:btih:"), "{magnet}");
    assert!(magnet.contains("dn=Movie-xyz"), "{magnet}");
    let listening = seen
        .iter()
        .find(|l| l.starts_with("listening on "))
        .expect("the listen address");
    let addr = listening.trim_start_matches("listening on ").to_string();
    assert!(torrent.is_file(), "--save-torrent wrote nothing");
    // The magnet names the same info-hash as the torrent written.
    let out = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args(["inspect", torrent.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hash = v["info_hash_v1"].as_str().unwrap();
    assert!(magnet.to_lowercase().contains(hash), "{magnet} vs {hash}");

    // A plain HTTP server for the .torrent (as a directory web site would serve it).
    let (_http, hrx) = spawn(
        "python3",
        &[
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            web.to_str().unwrap(),
        ],
    );
    let line = wait_line(&hrx, |l| l.contains("Serving HTTP on"), "http.server");
    let port = line
        .split(" port ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let url = format!("http://127.0.0.1:{port}/movie.torrent");

    let dl = dir.path().join("dl");
    let status = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args([
            "get",
            &url,
            "-o",
            dl.to_str().unwrap(),
            "--peer",
            &addr,
            "--no-trackers",
            "--listen",
            "127.0.0.1:0",
            "--resume-dir",
            dir.path().join("resume").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(dl.join("Movie-xyz/movie.mkv")).unwrap() == movie);
    assert!(std::fs::read(dl.join("Movie-xyz/extras/trailer.mp4")).unwrap() == trailer);

    // A URL that is not there: a clear error naming it, exit 1.
    let out = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args([
            "get",
            &format!("http://127.0.0.1:{port}/missing.torrent"),
            "-o",
            dl.to_str().unwrap(),
            "--no-trackers",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.torrent") && err.contains("404"), "{err}");
}

/// `seed PATH` prints a magnet link; `get MAGNET --peer ADDR` fetches the metadata from that peer (BEP 9)
/// and downloads the folder byte for byte, reporting "fetching metadata" first, and saves the fetched
/// torrent next to its resume data; run again with no peer at all, it finds the torrent and the data there
/// and completes at once.
#[test]
fn seed_a_folder_then_get_it_by_magnet_link() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("share").join("Album");
    std::fs::create_dir_all(folder.join("cd2")).unwrap();
    let one = pseudo_random(1_234_567, 3);
    let two = pseudo_random(654_321, 4);
    std::fs::write(folder.join("one.flac"), &one).unwrap();
    std::fs::write(folder.join("cd2/two.flac"), &two).unwrap();
    let (_seed, rx) = spawn(
        BIN,
        &[
            "seed",
            folder.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--no-trackers",
            "--resume-dir",
            dir.path().join("seed-resume").to_str().unwrap(),
        ],
    );
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|l: &String| l.contains("seeding 1 torrent")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("seed did not start within 30 s; saw:\n{}", seen.join("\n")),
        }
    }
    let magnet = seen
        .iter()
        .find(|l| l.starts_with("magnet:?"))
        .expect("a magnet link")
        .clone();
    let addr = seen
        .iter()
        .find(|l| l.starts_with("listening on "))
        .expect("the listen address")
        .trim_start_matches("listening on ")
        .to_string();

    let dl = dir.path().join("dl");
    let resume = dir.path().join("resume");
    let get = |peer: Option<&str>| {
        let mut args = vec![
            "get".to_string(),
            magnet.clone(),
            "-o".into(),
            dl.to_str().unwrap().into(),
            "--no-trackers".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--resume-dir".into(),
            resume.to_str().unwrap().into(),
        ];
        if let Some(p) = peer {
            args.push("--peer".into());
            args.push(p.into());
        }
        support::run_with_timeout(
            Command::new(BIN).env("BITSWARM_DHT_BOOTSTRAP", "").args(&args),
            Duration::from_secs(60),
        )
    };
    let out = get(Some(&addr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "get by magnet failed:\n{err}");
    assert!(err.contains("fetching metadata"), "{err}");
    assert!(err.contains("complete and verified"), "{err}");
    assert!(std::fs::read(dl.join("Album/one.flac")).unwrap() == one);
    assert!(std::fs::read(dl.join("Album/cd2/two.flac")).unwrap() == two);
    // The fetched torrent was saved; it hashes to the link's info-hash.
    let hash = magnet.split("btih:").nth(1).unwrap()[..40].to_lowercase();
    let saved = resume.join(format!("{hash}.torrent"));
    let t = metainfo::Torrent::from_bytes(std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(t.info_hashes.v1.unwrap().to_hex(), hash);
    assert_eq!(t.info.name, "Album");

    // Again, with no peer at all: the saved torrent and the resume data are enough.
    let out = get(None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "second run failed:\n{err}");
    assert!(!err.contains("fetching metadata"), "{err}");
    assert!(err.contains("complete and verified"), "{err}");

    // `seed` cannot serve a magnet link (it needs the content's torrent) and says what to use.
    let out = Command::new(BIN)
        .env("BITSWARM_DHT_BOOTSTRAP", "")
        .args(["seed", &magnet, "--no-trackers"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bitswarm get") && err.contains(".torrent"), "{err}");
}

/// Issue 5: "`bitswarm get 'magnet:?xt=urn:btih:...' --bootstrap HOST:PORT` works with no tracker at all".
/// A standalone `bitswarm dht` node is the only contact: `seed PATH --bootstrap` announces there, and `get`
/// of the bare magnet link (no tracker, no peer address) finds the seeder through the DHT.
#[test]
fn a_bare_magnet_link_downloads_through_the_dht_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (_node, node_rx) = spawn(BIN, &["dht", "--listen", "127.0.0.1:0"]);
    let node_line = node_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the dht node prints its address");
    let node = node_line.trim_start_matches("dht: udp ").trim().to_string();
    assert!(node.parse::<std::net::SocketAddr>().is_ok(), "{node_line}");

    let file = dir.path().join("share").join("video.mkv");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let data = pseudo_random(3_000_001, 21);
    std::fs::write(&file, &data).unwrap();
    let (_seed, rx) = spawn(
        BIN,
        &[
            "seed",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--bootstrap",
            &node,
            "--resume-dir",
            dir.path().join("seed-resume").to_str().unwrap(),
        ],
    );
    let mut magnet = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while magnet.is_empty() {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.starts_with("magnet:?") => magnet = l,
            Ok(_) => {}
            Err(_) => panic!("seed printed no magnet link within 30 s"),
        }
    }
    // The bare link: the info-hash only.
    let bare = magnet.split('&').next().unwrap().to_string();
    assert!(
        bare.starts_with("magnet:?xt=urn:btih:") && !bare.contains("tr="),
        "{bare}"
    );
    let dl = dir.path().join("dl");
    let out = support::run_with_timeout(
        Command::new(BIN).env("BITSWARM_DHT_BOOTSTRAP", "").args([
            "get",
            &bare,
            "-o",
            dl.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--bootstrap",
            &node,
            "--resume-dir",
            dir.path().join("resume").to_str().unwrap(),
        ]),
        Duration::from_secs(90),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "get of a bare magnet through the DHT failed:\n{err}"
    );
    assert!(
        std::fs::read(dl.join("video.mkv")).unwrap() == data,
        "downloaded bytes differ"
    );
}
