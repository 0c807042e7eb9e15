//! A directory server on 127.0.0.1 port 0 with a temporary database, and helpers to drive it over HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use directory::DirectoryConfig;
use metainfo::{BuildFile, PieceHashes, TorrentBuilder, Version};

pub struct Server {
    pub base: String,
    pub tracker_http: Option<SocketAddr>,
    pub tracker_udp: Option<SocketAddr>,
    pub announce_url: Option<String>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), directory::ServerError>>>,
    _dir: tempfile::TempDir,
}

/// A test configuration: loopback, port 0, plain-HTTP cookies, a cheap Argon2 cost, fast refreshes.
pub fn test_config(dir: &std::path::Path) -> DirectoryConfig {
    let mut c = DirectoryConfig::default();
    c.web.listen = "127.0.0.1:0".parse().unwrap();
    c.tracker.http.listen = "127.0.0.1:0".parse().unwrap();
    c.tracker.udp.listen = "127.0.0.1:0".parse().unwrap();
    c.tracker.udp.workers = 1;
    c.database.path = dir.join("directory.db");
    c.accounts.secure_cookies = false;
    c.accounts.argon2_memory_kib = 1024;
    c.accounts.argon2_iterations = 1;
    c.scrape.tick_secs = 1;
    c.scrape.embedded_refresh_secs = 1;
    c.scrape.timeout_secs = 3;
    c
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut DirectoryConfig)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        edit(&mut config);
        let listeners = directory::Listeners::bind(&config).unwrap();
        let web = listeners.web_addr().unwrap();
        let announce_url = directory::server::announce_url(&config, &listeners);
        let (tracker_http, tracker_udp) = (listeners.tracker_http_addr(), listeners.tracker_udp_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(directory::run(config, listeners, async {
            let _ = stopped.await;
        }));
        let s = Server {
            base: format!("http://{web}"),
            tracker_http,
            tracker_udp,
            announce_url,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        };
        // Ready when the home page answers.
        let c = client();
        for _ in 0..100 {
            if c.get(&s.base).send().await.is_ok() {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the directory did not answer within 5 s");
    }

    /// A handle on a server started elsewhere (for helpers that only need its address); stops nothing.
    pub fn at(base: &str) -> Server {
        Server {
            base: base.to_string(),
            tracker_http: None,
            tracker_udp: None,
            announce_url: None,
            stop: None,
            task: None,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), t)
                .await
                .expect("the directory stops within 15 s")
                .unwrap()
                .unwrap();
        }
    }
}

/// A client with a cookie jar that does not follow redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The CSRF token in a page's forms.
pub fn csrf_of(html: &str) -> String {
    let i = html
        .find("name=\"csrf\" value=\"")
        .expect("the page has a CSRF field")
        + 19;
    html[i..].split('"').next().unwrap().to_string()
}

pub async fn get_text(c: &reqwest::Client, url: &str) -> (u16, String) {
    let r = c.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Register `name` through the form; the client then holds the session cookie.
pub async fn register(s: &Server, c: &reqwest::Client, name: &str) {
    let (_, page) = get_text(c, &s.url("/register")).await;
    let csrf = csrf_of(&page);
    let r = c
        .post(s.url("/register"))
        .form(&[
            ("name", name),
            ("password", "correct horse battery"),
            ("csrf", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303, "{}", r.text().await.unwrap());
}

/// Upload through the form; returns the status and the Location (or the page).
pub async fn upload(
    s: &Server,
    c: &reqwest::Client,
    bytes: Vec<u8>,
    category: &str,
    description: &str,
) -> (u16, String) {
    let (_, page) = get_text(c, &s.url("/upload")).await;
    let csrf = csrf_of(&page);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf)
        .text("category", category.to_string())
        .text("description", description.to_string())
        .part(
            "torrent",
            reqwest::multipart::Part::bytes(bytes).file_name("x.torrent"),
        );
    let r = c.post(s.url("/upload")).multipart(form).send().await.unwrap();
    let status = r.status().as_u16();
    if status == 303 {
        let loc = r.headers()["location"].to_str().unwrap().to_string();
        (status, loc)
    } else {
        (status, r.text().await.unwrap())
    }
}

/// A small v1 torrent named `name` with the given files and announce URLs.
pub fn torrent(name: &str, files: &[&str], trackers: &[String]) -> Vec<u8> {
    let files: Vec<BuildFile> = files
        .iter()
        .map(|f| BuildFile {
            path: vec![f.to_string()],
            length: 1000,
            executable: false,
        })
        .collect();
    let n = files.len();
    let mut b = TorrentBuilder::new(name, files, n > 1, Version::V1, 16384);
    if !trackers.is_empty() {
        b.trackers = vec![trackers.to_vec()];
    }
    let plan = b.plan().unwrap();
    let pieces = (n * 1000).div_ceil(16384);
    let hashes = vec![
        PieceHashes {
            v1: Some([7u8; 20]),
            v2: None
        };
        pieces
    ];
    plan.finish(&hashes).unwrap()
}

pub fn info_hash_hex(bytes: &[u8]) -> String {
    metainfo::Torrent::from_bytes(bytes.to_vec())
        .unwrap()
        .info_hashes
        .swarm_hash()
        .unwrap()
        .to_hex()
}

/// Announce one peer over HTTP to `announce_url`.
pub async fn announce(announce_url: &str, info_hash_hex: &str, peer: u8, port: u16, left: u64) {
    let h = metainfo::InfoHashV1::from_text(info_hash_hex).unwrap();
    let mut id = *b"-XX0001-000000000000";
    id[19] = peer;
    let mut req = tracker_proto::http::AnnounceRequest::new(h, tracker_proto::PeerId(id), port);
    req.left = left;
    req.event = tracker_proto::Event::Started;
    let body = reqwest::get(req.url(announce_url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(
        !body.starts_with(b"d14:failure"),
        "{}",
        String::from_utf8_lossy(&body)
    );
}
