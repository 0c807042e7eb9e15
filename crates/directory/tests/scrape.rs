//! Periodic scrapes over HTTP and UDP: against a real bitswarm tracker started in the test, and against
//! opentracker (Debian's whitelist-only build; `bash scripts/install-deps.sh` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use tracker_proto::udp::ConnectRequest;
use tracker_proto::TransactionId;

/// Wait until the torrent's figures for `url` show `seeders`, and return that row.
async fn wait_for_row(
    s: &Server,
    c: &reqwest::Client,
    hash: &str,
    url: &str,
    seeders: u64,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = c
            .get(s.url(&format!("/api/torrents/{hash}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let row = v["tracker_figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["url"] == url)
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        if row["seeders"] == seeders {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape of {url} with {seeders} seeders: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_a_bitswarm_tracker_over_http_and_udp() {
    // A separate bitswarm tracker, as someone else's tracker would be.
    let mut tc = tracker::TrackerConfig::default();
    tc.http.listen = "127.0.0.1:0".parse().unwrap();
    tc.udp.listen = "127.0.0.1:0".parse().unwrap();
    tc.udp.workers = 1;
    let tl = tracker::Listeners::bind(&tc).unwrap();
    let http_url = format!("http://{}/announce", tl.http_addr().unwrap());
    let udp_url = format!("udp://{}/announce", tl.udp_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let tracker_task = tokio::spawn(tracker::run(tc, tl, async {
        let _ = stopped.await;
    }));

    let s = Server::start().await;
    let c = client();
    register(&s, &c, "scraper").await;
    let bytes = torrent("scraped", &["s.bin"], &[http_url.clone(), udp_url.clone()]);
    let hash = info_hash_hex(&bytes);
    // Two seeders and a leecher on the other tracker before the upload.
    announce(&http_url, &hash, 1, 40_001, 0).await;
    announce(&http_url, &hash, 2, 40_002, 0).await;
    announce(&http_url, &hash, 3, 40_003, 500).await;
    let (status, _) = upload(&s, &c, bytes, "other", "").await;
    assert_eq!(status, 303);

    let row = wait_for_row(&s, &c, &hash, &http_url, 2).await;
    assert_eq!(row["leechers"], 1);
    assert!(row["scraped_at"].as_i64().unwrap() > 0);
    assert!(row["error"].is_null());
    let row = wait_for_row(&s, &c, &hash, &udp_url, 2).await;
    assert_eq!(row["leechers"], 1);
    // The best figure becomes the torrent's, so popular lists and sorting use it.
    let v: serde_json::Value = c
        .get(s.url("/api/search?q=scraped"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["results"][0]["seeders"], 2);
    // The page says how fresh each figure is.
    let (_, page) = get_text(&c, &s.url(&format!("/t/{hash}"))).await;
    assert!(page.contains(" s ago"), "{page}");

    s.stop().await;
    let _ = stop.send(());
    tracker_task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_tracker_is_shown_as_failed() {
    // A UDP port nobody answers on, and an HTTP port that refuses connections.
    let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_url = format!("udp://{}/announce", quiet.local_addr().unwrap());
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let http_url = format!("http://{}/announce", closed.local_addr().unwrap());
    drop(closed);
    let s = Server::start_with(|c| c.scrape.timeout_secs = 1).await;
    let c = client();
    register(&s, &c, "dead").await;
    let bytes = torrent("dead trackers", &["d.bin"], &[udp_url.clone(), http_url.clone()]);
    let hash = info_hash_hex(&bytes);
    assert_eq!(upload(&s, &c, bytes, "other", "").await.0, 303);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v: serde_json::Value = c
            .get(s.url(&format!("/api/torrents/{hash}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let rows = v["tracker_figures"].as_array().unwrap();
        let failed = |u: &str| rows.iter().any(|r| r["url"] == u && r["error"].is_string());
        if failed(&udp_url) && failed(&http_url) {
            break;
        }
        assert!(Instant::now() < deadline, "failures not recorded: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, page) = get_text(&c, &s.url(&format!("/t/{hash}"))).await;
    assert!(page.contains("failed: "), "{page}");
    drop(quiet);
    s.stop().await;
}

struct OpenTracker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for OpenTracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

fn start_opentracker(whitelist: &[&str]) -> OpenTracker {
    let binary = ["/usr/bin/opentracker", "/usr/sbin/opentracker"]
        .into_iter()
        .find(|p| std::path::Path::new(p).is_file())
        .expect("opentracker is not installed: run `bash scripts/install-deps.sh`");
    let dir = tempfile::tempdir().unwrap();
    // It chroots into -d, drops to nobody, then reads -w relative to the new root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let file = dir.path().join("whitelist");
    std::fs::write(
        &file,
        whitelist.iter().map(|h| format!("{h}\n")).collect::<String>(),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let p = port.to_string();
    let mut child = Command::new(binary)
        .args(["-i", "127.0.0.1", "-p", &p, "-P", &p, "-w", "whitelist", "-d"])
        .arg(dir.path())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
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
            panic!("opentracker exited at start ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "opentracker did not listen within 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    OpenTracker {
        child,
        port,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrapes_opentracker_over_http_and_udp() {
    // The info-hash does not depend on the trackers (outside `info`), so it is known before the port.
    let hash = info_hash_hex(&torrent("opentracker swarm", &["o.bin"], &[]));
    let ot = start_opentracker(&[&hash]);
    let http_url = format!("http://127.0.0.1:{}/announce", ot.port);
    let udp_url = format!("udp://127.0.0.1:{}/announce", ot.port);
    announce(&http_url, &hash, 1, 41_001, 0).await;
    let s = Server::start().await;
    let c = client();
    register(&s, &c, "otuser").await;
    let bytes = torrent(
        "opentracker swarm",
        &["o.bin"],
        &[http_url.clone(), udp_url.clone()],
    );
    assert_eq!(info_hash_hex(&bytes), hash);
    assert_eq!(upload(&s, &c, bytes, "other", "").await.0, 303);
    wait_for_row(&s, &c, &hash, &http_url, 1).await;
    wait_for_row(&s, &c, &hash, &udp_url, 1).await;
    s.stop().await;
}
