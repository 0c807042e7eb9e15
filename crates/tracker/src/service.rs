//! The tracker's request handling, independent of sockets: bytes and the sender's address in, bytes out.
//! The HTTP and UDP front ends (and tests) call these; the swarm store does the rest.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tracker_core::{
    AnnounceInput, GlobalStats, Passkey, Records, RestoreReport, Secs, SwarmStore, TorrentStats, UserId,
};
use tracker_proto::http::{self, FailureResponse};
use tracker_proto::udp::{self, AddressFamily, ConnectResponse, ErrorResponse, Request, RequestParseError};
use tracker_proto::{ConnectionIdKeys, InfoHashV1};

use crate::config::TrackerConfig;
use crate::metrics::{Failure, Kind, Metrics, Proto};

/// The store with the RNG it draws from: one lock for both.
struct Inner {
    store: SwarmStore,
    rng: SmallRng,
}

/// Shared tracker state: the store, the connection-id keys, the counters and the clock's epoch.
pub struct Service {
    inner: Mutex<Inner>,
    keys: ConnectionIdKeys,
    /// Request and error counters.
    pub metrics: Metrics,
    epoch: Instant,
    config: TrackerConfig,
    udp_seq: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The swarm settings are invalid.
    #[error("swarm configuration: {0}")]
    Config(#[from] tracker_core::ConfigError),
    /// Saved records could not be restored.
    #[error("restoring saved records: {0}")]
    Restore(#[from] tracker_core::RestoreError),
}

impl Service {
    /// A service with a fresh store, seeded from the operating system's randomness.
    pub fn new(config: TrackerConfig) -> Result<Self, ServiceError> {
        let mut rng = SmallRng::from_os_rng();
        let store = SwarmStore::new(config.swarm.clone(), &mut rng)?;
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        Ok(Service {
            inner: Mutex::new(Inner { store, rng }),
            keys: ConnectionIdKeys::new(secret),
            metrics: Metrics::default(),
            epoch: Instant::now(),
            config,
            udp_seq: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// The configuration the service runs with.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-updated in a way later calls trip
        // over (every store method checks its own input), so a poisoned lock is simply taken back.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seconds since the service started: the store's clock.
    pub fn now(&self) -> Secs {
        Secs(u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX))
    }

    /// Handle one UDP datagram from `src`; the reply (if any) is written to `out`. Returns whether to send.
    pub fn handle_udp(&self, src: SocketAddr, packet: &[u8], out: &mut Vec<u8>) -> bool {
        // One clock read per request: the store's time comes from it, and latency is sampled on one
        // request in 64 (a second read per request was measurable under load).
        let started = Instant::now();
        out.clear();
        let now = Secs(u32::try_from(started.duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX));
        let sample = self
            .udp_seq
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(64);
        let now_secs = u64::from(now.0);
        match Request::parse(packet) {
            Ok(Request::Connect(c)) => {
                self.metrics.request(Proto::Udp, Kind::Connect);
                let r = ConnectResponse {
                    transaction_id: c.transaction_id,
                    connection_id: self.keys.make(now_secs, src),
                };
                r.write(out);
            }
            Ok(Request::Announce(a)) => {
                self.metrics.request(Proto::Udp, Kind::Announce);
                if !self.keys.check(now_secs, src, a.connection_id) {
                    self.metrics.failure(Proto::Udp, Failure::BadConnectionId);
                    ErrorResponse {
                        transaction_id: a.transaction_id,
                        message: "connection id expired or invalid".into(),
                    }
                    .write(out);
                } else {
                    let passkey = a.url_data.as_deref().and_then(Passkey::find_in_path);
                    let input = AnnounceInput::from_udp(&a, src.ip(), passkey);
                    let result = {
                        let mut g = self.lock();
                        let Inner { store, rng } = &mut *g;
                        store.announce(now, input, rng)
                    };
                    match result {
                        Ok(outcome) => outcome
                            .to_udp(a.transaction_id, AddressFamily::of(&src))
                            .write(out),
                        Err(refusal) => {
                            self.metrics.failure(Proto::Udp, Failure::Refused);
                            ErrorResponse {
                                transaction_id: a.transaction_id,
                                message: refusal.to_string(),
                            }
                            .write(out)
                        }
                    }
                }
            }
            Ok(Request::Scrape(s)) => {
                self.metrics.request(Proto::Udp, Kind::Scrape);
                if !self.keys.check(now_secs, src, s.connection_id) {
                    self.metrics.failure(Proto::Udp, Failure::BadConnectionId);
                    ErrorResponse {
                        transaction_id: s.transaction_id,
                        message: "connection id expired or invalid".into(),
                    }
                    .write(out);
                } else {
                    let stats = self.lock().store.scrape(&s.info_hashes);
                    udp::ScrapeResponse {
                        transaction_id: s.transaction_id,
                        stats,
                    }
                    .write(out);
                }
            }
            Err(e @ RequestParseError::Sendable { .. }) => {
                self.metrics.failure(Proto::Udp, Failure::Malformed);
                match e.error_response() {
                    Some(r) => r.write(out),
                    None => return false,
                }
            }
            Err(RequestParseError::Unsendable(_)) => {
                self.metrics.failure(Proto::Udp, Failure::Dropped);
                return false;
            }
        }
        if sample {
            self.metrics.latency(Proto::Udp, started.elapsed());
        }
        true
    }

    /// Handle an HTTP announce: the request path (for a passkey), its raw query, the connection's source
    /// address and the address a trusted proxy header gave, if any. Returns the bencoded body.
    pub fn http_announce(&self, path: &str, query: &[u8], src: IpAddr, forwarded: Option<IpAddr>) -> Vec<u8> {
        let started = Instant::now();
        self.metrics.request(Proto::Http, Kind::Announce);
        let req = match http::AnnounceRequest::parse_query(query) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.failure(Proto::Http, Failure::Malformed);
                return FailureResponse::new(e.to_string()).encode();
            }
        };
        let mut ip = forwarded.unwrap_or(src);
        if self.config.http.trust_ip_param {
            if let Some(claimed) = req.ip {
                ip = claimed;
            }
        }
        let passkey = Passkey::find_in_path(path.as_bytes());
        let input = AnnounceInput::from_http(&req, ip, passkey);
        let now = self.now();
        let result = {
            let mut g = self.lock();
            let Inner { store, rng } = &mut *g;
            store.announce(now, input, rng)
        };
        let body = match result {
            Ok(outcome) => {
                let resp = outcome.to_http();
                if req.compact {
                    resp.encode_compact()
                } else {
                    resp.encode_dictionary(|_| None)
                }
            }
            Err(refusal) => {
                self.metrics.failure(Proto::Http, Failure::Refused);
                FailureResponse::new(refusal.to_string()).encode()
            }
        };
        self.metrics.latency(Proto::Http, started.elapsed());
        body
    }

    /// Handle an HTTP scrape (BEP 48, many `info_hash` parameters). Returns the bencoded body.
    pub fn http_scrape(&self, query: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        self.metrics.request(Proto::Http, Kind::Scrape);
        let req = match http::ScrapeRequest::parse_query(query) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.failure(Proto::Http, Failure::Malformed);
                return FailureResponse::new(e.to_string()).encode();
            }
        };
        let stats = self.lock().store.scrape(&req.info_hashes);
        let files = req.info_hashes.iter().copied().zip(stats).collect();
        let body = http::ScrapeResponse { files }.encode();
        self.metrics.latency(Proto::Http, started.elapsed());
        body
    }

    /// Remove expired peers, doing at most `budget` units of work.
    pub fn expire(&self, budget: usize) {
        let now = self.now();
        self.lock().store.expire(now, budget);
    }

    /// What is of record, for saving.
    pub fn records(&self) -> Records {
        self.lock().store.records()
    }

    /// Put saved records back.
    pub fn restore(&self, records: Records) -> Result<RestoreReport, ServiceError> {
        Ok(self.lock().store.restore(records)?)
    }

    /// One torrent's stats; addresses only when `reveal_addresses`.
    pub fn torrent_stats(&self, info_hash: &InfoHashV1, reveal_addresses: bool) -> Option<TorrentStats> {
        self.lock().store.torrent_stats(info_hash, reveal_addresses)
    }

    /// The swarms with peers now and their counts, at most `max` (see `SwarmStore::live_swarms`).
    pub fn live_swarms(&self, max: usize) -> Vec<(InfoHashV1, tracker_proto::ScrapeStats)> {
        self.lock().store.live_swarms(max)
    }

    /// Totals over every swarm.
    pub fn global_stats(&self) -> GlobalStats {
        self.lock().store.global_stats()
    }

    /// Add a torrent to the allow-list (for allow-list and private modes).
    pub fn register(&self, info_hash: InfoHashV1, size: Option<u64>, name: String) -> bool {
        self.lock().store.register(info_hash, size, name)
    }

    /// Add a user with a new random passkey (private mode).
    pub fn add_user(&self) -> Result<(UserId, Passkey), tracker_core::UserError> {
        let mut g = self.lock();
        let Inner { store, rng } = &mut *g;
        let passkey = Passkey::random(rng);
        let id = store.add_user(passkey)?;
        Ok((id, passkey))
    }

    /// A user's totals.
    pub fn user(&self, id: UserId) -> Option<tracker_core::UserStats> {
        self.lock().store.user(id)
    }

    /// The Prometheus exposition.
    pub fn render_metrics(&self) -> String {
        let g = self.global_stats();
        self.metrics.render(&[
            ("torrents", "Swarms held.", g.torrents),
            ("peers", "Peers in all swarms.", g.peers),
            ("seeders", "Seeders in all swarms.", g.seeders),
            ("leechers", "Leechers in all swarms.", g.leechers),
        ])
    }
}
