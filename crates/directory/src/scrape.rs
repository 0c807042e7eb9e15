//! Periodic scrapes of the trackers torrents name, over HTTP (BEP 48, many info-hashes a request) and UDP
//! (BEP 15, driven by `tracker_proto::client::UdpSession`), and the embedded tracker's live figures copied
//! into the database for sorting. The codecs are `tracker-proto`'s; this module only moves bytes.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tracker_proto::client::{Time, UdpConfig, UdpOperation, UdpOutcome, UdpSession};
use tracker_proto::http::{self as thttp, Reply};
use tracker_proto::udp::AddressFamily;
use tracker_proto::InfoHashV1;

use crate::db::{Db, DbError, DueScrape, ScrapeResult};
use crate::metrics::Metrics;

/// Info-hashes per HTTP scrape request.
const HTTP_BATCH: usize = 50;
/// Largest scrape answer read.
const MAX_BODY: usize = 1 << 20;
/// Trackers scraped at once.
const PARALLEL: usize = 16;

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Scrape one tracker for some swarms; one result per hash, in order.
pub async fn scrape_tracker(
    http: &reqwest::Client,
    url: &str,
    hashes: &[[u8; 20]],
    timeout: Duration,
) -> Vec<ScrapeResult> {
    let r = if url.starts_with("udp://") {
        scrape_udp(url, hashes, timeout).await
    } else {
        scrape_http(http, url, hashes, timeout).await
    };
    match r {
        Ok(v) => v,
        Err(e) => hashes.iter().map(|_| ScrapeResult::Failed(e.clone())).collect(),
    }
}

async fn scrape_http(
    http: &reqwest::Client,
    url: &str,
    hashes: &[[u8; 20]],
    timeout: Duration,
) -> Result<Vec<ScrapeResult>, String> {
    let Some(scrape) = thttp::scrape_url(url) else {
        return Err("the tracker has no scrape URL".into());
    };
    let mut out = Vec::with_capacity(hashes.len());
    for chunk in hashes.chunks(HTTP_BATCH) {
        let req = thttp::ScrapeRequest {
            info_hashes: chunk.iter().map(|h| InfoHashV1(*h)).collect(),
        };
        let mut resp = http
            .get(req.url(&scrape))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("HTTP status {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(c) = resp.chunk().await.map_err(|e| format!("HTTP: {e}"))? {
            if body.len() + c.len() > MAX_BODY {
                return Err("answer too large".into());
            }
            body.extend_from_slice(&c);
        }
        match thttp::ScrapeResponse::decode(&body).map_err(|e| e.to_string())? {
            Reply::Failure(f) => return Err(format!("tracker: {}", f.reason)),
            Reply::Success(r) => {
                for h in chunk {
                    // A swarm the tracker does not list has nobody in it.
                    let s = r.files.get(&InfoHashV1(*h)).copied().unwrap_or_default();
                    out.push(ScrapeResult::Stats {
                        seeders: s.complete,
                        leechers: s.incomplete,
                        completed: s.downloaded,
                    });
                }
            }
        }
    }
    Ok(out)
}

fn udp_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("udp://")?;
    Some(rest.split(['/', '?']).next().unwrap_or(rest))
}

async fn scrape_udp(url: &str, hashes: &[[u8; 20]], timeout: Duration) -> Result<Vec<ScrapeResult>, String> {
    let host = udp_host(url).ok_or("bad UDP tracker URL")?;
    let addr: SocketAddr = tokio::time::timeout(timeout, tokio::net::lookup_host(host))
        .await
        .map_err(|_| "name lookup timed out".to_string())?
        .map_err(|e| format!("name lookup: {e}"))?
        .next()
        .ok_or("the tracker's name has no address")?;
    let bind: SocketAddr = if addr.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| format!("UDP: {e}"))?;
    sock.connect(addr).await.map_err(|e| format!("UDP: {e}"))?;
    let family = AddressFamily::of(&addr);
    let mut rng = StdRng::from_os_rng();
    // Three sends (at 0, t/3 and t) within about the whole timeout.
    let mut session = UdpSession::new(UdpConfig {
        base_timeout: timeout / 3,
        max_n: 1,
        connection_id_ttl: Duration::from_secs(60),
    });
    let epoch = Instant::now();
    let now = || Time::from_duration(epoch.elapsed());
    let mut out = Vec::with_capacity(hashes.len());
    let mut buf = vec![0u8; 2048];
    for chunk in hashes.chunks(tracker_proto::udp::MAX_SCRAPE_HASHES) {
        session.start(
            now(),
            UdpOperation::Scrape(chunk.iter().map(|h| InfoHashV1(*h)).collect()),
            &mut rng,
        );
        let outcome = loop {
            while let Some(p) = session.poll_transmit() {
                sock.send(&p).await.map_err(|e| format!("UDP: {e}"))?;
            }
            let deadline = session.poll_timeout().unwrap_or_else(now);
            let wait = deadline.saturating_since(now());
            match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
                Ok(Ok(n)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if let Some(o) = session.handle_datagram(now(), data, family, &mut rng) {
                        break o;
                    }
                }
                Ok(Err(e)) => return Err(format!("UDP: {e}")),
                Err(_) => {
                    if let Some(o) = session.handle_timeout(now(), &mut rng) {
                        break o;
                    }
                }
            }
        };
        match outcome {
            UdpOutcome::Scraped(r) => {
                for i in 0..chunk.len() {
                    let s = r.stats.get(i).copied().unwrap_or_default();
                    out.push(ScrapeResult::Stats {
                        seeders: s.complete,
                        leechers: s.incomplete,
                        completed: s.downloaded,
                    });
                }
            }
            UdpOutcome::Failed(e) => return Err(e.to_string()),
            UdpOutcome::Announced(_) => return Err("unexpected announce answer".into()),
        }
    }
    Ok(out)
}

/// One pass: scrape what is due, grouped by tracker, and record the results. Returns pairs scraped.
pub async fn scrape_due(
    db: &Arc<Db>,
    http: &reqwest::Client,
    metrics: &Metrics,
    batch: usize,
    interval: Duration,
    timeout: Duration,
    skip_url: Option<&str>,
) -> Result<usize, DbError> {
    let now = now_unix();
    let d = db.clone();
    let due = tokio::task::spawn_blocking(move || d.due_scrapes(now, batch))
        .await
        .unwrap_or_else(|_| Ok(Vec::new()))?;
    if due.is_empty() {
        return Ok(0);
    }
    let mut by_url: BTreeMap<String, Vec<DueScrape>> = BTreeMap::new();
    for d in due {
        by_url.entry(d.url.clone()).or_default().push(d);
    }
    let mut results: Vec<(i64, String, ScrapeResult)> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut pending = by_url.into_iter();
    loop {
        while tasks.len() < PARALLEL {
            let Some((url, items)) = pending.next() else { break };
            if Some(url.as_str()) == skip_url {
                // The embedded tracker's rows are kept fresh from memory.
                continue;
            }
            let http = http.clone();
            tasks.spawn(async move {
                let hashes: Vec<[u8; 20]> = items.iter().map(|d| d.info_hash).collect();
                let r = scrape_tracker(&http, &url, &hashes, timeout).await;
                items
                    .into_iter()
                    .zip(r)
                    .map(|(d, r)| (d.torrent_id, url.clone(), r))
                    .collect::<Vec<_>>()
            });
        }
        let Some(done) = tasks.join_next().await else {
            break;
        };
        if let Ok(rows) = done {
            results.extend(rows);
        }
    }
    let n = results.len();
    for (_, _, r) in &results {
        match r {
            ScrapeResult::Stats { .. } => metrics
                .scrapes_ok
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ScrapeResult::Failed(_) => metrics
                .scrapes_failed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        };
    }
    let next = now.saturating_add(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX / 2));
    let d = db.clone();
    tokio::task::spawn_blocking(move || d.record_scrapes(&results, now, next))
        .await
        .unwrap_or(Ok(()))?;
    Ok(n)
}

/// Copies the embedded tracker's live swarms into the database; remembers which were live so a swarm that
/// empties is recorded at zero.
#[derive(Debug, Default)]
pub struct EmbeddedRefresh {
    live: HashSet<[u8; 20]>,
}

impl EmbeddedRefresh {
    /// One refresh.
    pub async fn tick(
        &mut self,
        db: &Arc<Db>,
        service: &tracker::Service,
        url: &str,
    ) -> Result<usize, DbError> {
        let swarms = service.live_swarms(100_000);
        let mut figures: Vec<([u8; 20], u32, u32, u32)> = swarms
            .iter()
            .map(|(h, s)| (h.0, s.complete, s.incomplete, s.downloaded))
            .collect();
        let now_live: HashSet<[u8; 20]> = figures.iter().map(|f| f.0).collect();
        for gone in self.live.difference(&now_live) {
            let completed = service
                .torrent_stats(&InfoHashV1(*gone), false)
                .map_or(0, |s| s.completed);
            figures.push((*gone, 0, 0, completed));
        }
        self.live = now_live;
        if figures.is_empty() {
            return Ok(0);
        }
        let (d, url) = (db.clone(), url.to_string());
        tokio::task::spawn_blocking(move || d.record_embedded(&url, &figures, now_unix()))
            .await
            .unwrap_or(Ok(0))
    }
}
