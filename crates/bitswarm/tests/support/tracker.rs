//! `bitswarm tracker` as a background process for the interop tests (on loopback or inside a namespace),
//! with its admin `/stats/<info-hash>` JSON and `/scrape` decoded.
#![allow(dead_code)]

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::http_get;
use super::netns::Net;
use super::proc::Proc;
use super::{hex_decode, percent_encode};

/// Unlocks peer addresses in `/stats/<info-hash>`.
pub const ADMIN_TOKEN: &str = "interop-tracker-admin";
/// The tracker coming up and printing its URLs.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Udp,
}

pub struct Tracker {
    pub proc: Proc,
    pub net: Net,
    pub http_announce: String,
    pub udp_announce: String,
    /// `http://127.0.0.1:PORT`
    pub base: String,
}

/// What `/stats/<info-hash>` said at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub at: Duration,
    pub seeders: u64,
    pub leechers: u64,
    pub completed: u64,
    pub peers: Vec<PeerView>,
}

#[derive(Debug, Clone)]
pub struct PeerView {
    pub client: String,
    pub completion: f64,
    pub is_seed: bool,
    pub addr: String,
}

impl Snapshot {
    pub fn from_json(at: Duration, v: &Value) -> Snapshot {
        let count = |key: &str| {
            v[key]
                .as_u64()
                .unwrap_or_else(|| panic!("/stats: {key} is not a count in {v}"))
        };
        let peers = v["peers"]
            .as_array()
            .unwrap_or_else(|| panic!("/stats: no peers array in {v}"))
            .iter()
            .map(|p| PeerView {
                client: p["client"].as_str().unwrap_or_default().to_string(),
                completion: p["completion"]
                    .as_f64()
                    .unwrap_or_else(|| panic!("/stats: completion is not a number in {p}")),
                is_seed: p["is_seed"]
                    .as_bool()
                    .unwrap_or_else(|| panic!("/stats: is_seed is not a bool in {p}")),
                addr: p["addr"].as_str().unwrap_or_default().to_string(),
            })
            .collect();
        Snapshot {
            at,
            seeders: count("seeders"),
            leechers: count("leechers"),
            completed: count("completed"),
            peers,
        }
    }

    pub fn peer(&self, client_prefix: &str) -> Option<&PeerView> {
        self.peers.iter().find(|p| p.client.starts_with(client_prefix))
    }
}

/// Scrape counts for one torrent.
#[derive(Debug, PartialEq, Eq)]
pub struct Scrape {
    pub complete: i64,
    pub downloaded: i64,
    pub incomplete: i64,
}

impl Tracker {
    /// Starts `bitswarm tracker` on 127.0.0.1 (of `net`), HTTP and UDP on ports the system picks, and waits
    /// until it prints both announce URLs.
    /// Its working folder (and database) is `dir`; its stderr goes to `dir/bitswarm_tracker.stderr`.
    pub fn start(net: &Net, dir: &Path) -> Tracker {
        Tracker::start_with_env(net, dir, &[])
    }

    /// As [`Tracker::start`], with extra `BITSWARM_TRACKER__*` settings, e.g.
    /// `("BITSWARM_TRACKER__SWARM__INTERVAL", "5")`.
    pub fn start_with_env(net: &Net, dir: &Path, env: &[(&str, &str)]) -> Tracker {
        Tracker::start_at(net, std::net::Ipv4Addr::LOCALHOST, dir, env)
    }

    /// As [`Tracker::start_with_env`], listening on `ip` (an address of `net`, e.g. a peer's own address
    /// in a network namespace) instead of 127.0.0.1.
    pub fn start_at(net: &Net, ip: std::net::Ipv4Addr, dir: &Path, env: &[(&str, &str)]) -> Tracker {
        let mut cmd = net.command(true, env!("CARGO_BIN_EXE_bitswarm"));
        let any_port = format!("{ip}:0");
        cmd.args(["tracker", "--http", &any_port, "--udp", &any_port])
            .current_dir(dir)
            .env("BITSWARM_TRACKER__ADMIN__TOKEN", ADMIN_TOKEN)
            .env_remove("RUST_LOG");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut proc = Proc::spawn("bitswarm tracker", cmd, dir);
        let url = |scheme: &'static str| {
            move |line: &str| {
                line.strip_prefix("tracker: ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .filter(|url| url.starts_with(scheme))
                    .map(str::to_string)
            }
        };
        let http_announce = proc.wait_line("HTTP announce URL", STARTUP_TIMEOUT, url("http://"));
        let udp_announce = proc.wait_line("UDP announce URL", STARTUP_TIMEOUT, url("udp://"));
        let base = http_announce
            .strip_suffix("/announce")
            .unwrap_or_else(|| panic!("unexpected HTTP announce URL {http_announce}"))
            .to_string();
        Tracker {
            proc,
            net: net.clone(),
            http_announce,
            udp_announce,
            base,
        }
    }

    pub fn announce_url(&self, scheme: Scheme) -> &str {
        match scheme {
            Scheme::Http => &self.http_announce,
            Scheme::Udp => &self.udp_announce,
        }
    }

    pub fn get(&mut self, path: &str, bearer: Option<&str>) -> (u16, Vec<u8>) {
        let url = format!("{}{path}", self.base);
        match http_get(&self.net, &url, bearer) {
            Ok(r) => r,
            Err(e) => panic!("tracker: {e}\n{}", self.proc.report()),
        }
    }

    /// `/stats/<info-hash>` as the admin sees it; None while the tracker does not know the torrent (404).
    pub fn stats(&mut self, info_hash: &str, started: Instant) -> Option<Snapshot> {
        let (status, body) = self.get(&format!("/stats/{info_hash}"), Some(ADMIN_TOKEN));
        let at = started.elapsed();
        match status {
            200 => {
                let v: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
                    panic!(
                        "/stats/{info_hash}: not JSON ({e}): {:?}",
                        String::from_utf8_lossy(&body)
                    )
                });
                assert_eq!(v["info_hash"], info_hash, "/stats/{info_hash}: {v}");
                Some(Snapshot::from_json(at, &v))
            }
            404 => None,
            other => panic!(
                "/stats/{info_hash}: status {other}: {:?}",
                String::from_utf8_lossy(&body)
            ),
        }
    }

    /// Polls `/stats` until `done` holds; fails after `timeout`.
    pub fn wait_stats(
        &mut self,
        info_hash: &str,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Snapshot) -> bool,
    ) -> Snapshot {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < timeout {
            if let Some(snap) = self.stats(info_hash, started) {
                if done(&snap) {
                    return snap;
                }
                last = Some(snap);
            }
            thread::sleep(POLL);
        }
        panic!("tracker: not {what} within {timeout:?}; last /stats: {last:?}")
    }

    /// `/scrape?info_hash=...` decoded; fails on a failure reason or a malformed answer (with the bytes).
    pub fn scrape(&mut self, info_hash: &str) -> Scrape {
        let raw = hex_decode(info_hash);
        let (status, body) = self.get(&format!("/scrape?info_hash={}", percent_encode(&raw)), None);
        let shown = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "/scrape: status {status}: {shown:?}");
        let value = bencode::decode(&body)
            .unwrap_or_else(|e| panic!("/scrape: not bencode ({e}): {shown:?} (bytes {body:?})"));
        let dict = value
            .as_dict()
            .unwrap_or_else(|| panic!("/scrape: not a dictionary: {shown:?}"));
        if let Some(reason) = dict.get(b"failure reason") {
            panic!("/scrape failed: {:?}", reason.as_str());
        }
        let files = dict
            .get(b"files")
            .and_then(|f| f.as_dict())
            .unwrap_or_else(|| panic!("/scrape: no files dictionary: {shown:?}"));
        let entry = files
            .get(&raw)
            .and_then(|e| e.as_dict())
            .unwrap_or_else(|| panic!("/scrape: no entry for {info_hash}: {shown:?}"));
        let int = |key: &str| {
            entry
                .get(key.as_bytes())
                .and_then(|v| v.as_int())
                .unwrap_or_else(|| panic!("/scrape: no integer {key}: {shown:?}"))
        };
        Scrape {
            complete: int("complete"),
            downloaded: int("downloaded"),
            incomplete: int("incomplete"),
        }
    }
}
