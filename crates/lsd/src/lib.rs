//! Local Service Discovery (BEP 14) as a pure state machine: announce messages, their parser, and the
//! announce schedule.
//!
//! BEP 14: "LSD uses the following multicast groups: A) `239.192.152.143:6771` (org-local) and B)
//! `[ff15::efc0:988f]:6771` (site-local)". An announce is an HTTP-like request:
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: 6881\r\n
//! Infohash: 0123456789abcdef0123456789abcdef01234567\r\n
//! cookie: bitswarm-1a2b\r\n
//! \r\n
//! \r\n
//! ```
//!
//! [`Lsd`] keeps the torrents to announce, sends each one every [`Config::interval`] (several info-hashes
//! per packet, at most [`MAX_PACKET`] bytes, and no more than one packet per [`Config::min_gap`]: "a client
//! should send no more than 1 announce per minute"), and turns announces heard from others into
//! [`Found`] events for the torrents it knows, ignoring its own (by cookie). The driver owns the multicast
//! socket: it feeds [`Lsd::handle_packet`] and [`Lsd::handle_timeout`], and sends what
//! [`Lsd::poll_transmit`] gives to the group.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use metainfo::InfoHashV1;

/// The IPv4 multicast group (org-local).
pub const GROUP_V4: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 192, 152, 143)), 6771);
/// The IPv6 multicast group (site-local).
pub const GROUP_V6: SocketAddr = SocketAddr::new(
    IpAddr::V6(Ipv6Addr::new(0xff15, 0, 0, 0, 0, 0, 0xefc0, 0x988f)),
    6771,
);
/// "When sending multiple infohashes the packet length should not exceed 1400 bytes."
pub const MAX_PACKET: usize = 1400;
/// Announces longer than this are not parsed at all.
pub const MAX_INPUT: usize = 4096;

/// Why an announce could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LsdError {
    /// Longer than [`MAX_INPUT`].
    #[error("announce of {0} bytes is over the {MAX_INPUT}-byte limit")]
    TooLong(usize),
    /// Not text.
    #[error("announce is not UTF-8 text")]
    NotText,
    /// The request line is not `BT-SEARCH * HTTP/1.1`.
    #[error("request line is {0:?}, not \"BT-SEARCH * HTTP/1.1\"")]
    RequestLine(String),
    /// A header line has no colon.
    #[error("header line {0} has no ':'")]
    HeaderLine(usize),
    /// No `Port` header, or not a port number.
    #[error("missing or bad Port header: {0:?}")]
    Port(String),
    /// An `Infohash` header that is not 40 hex digits.
    #[error("bad Infohash header: {0:?}")]
    InfoHash(String),
    /// No `Infohash` header at all.
    #[error("no Infohash header")]
    NoInfoHash,
}

/// One announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The `Host` header as sent (the group).
    pub host: String,
    /// The port the announcing client listens on.
    pub port: u16,
    /// The torrents it takes part in.
    pub info_hashes: Vec<InfoHashV1>,
    /// Its cookie, if it sent one.
    pub cookie: Option<String>,
}

impl Announce {
    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "BT-SEARCH * HTTP/1.1\r\nHost: {}\r\nPort: {}\r\n",
            self.host, self.port
        );
        for h in &self.info_hashes {
            s.push_str("Infohash: ");
            s.push_str(&h.to_hex());
            s.push_str("\r\n");
        }
        if let Some(c) = &self.cookie {
            s.push_str("cookie: ");
            s.push_str(c);
            s.push_str("\r\n");
        }
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }

    /// Reads an announce. Header names are case-insensitive; unknown headers are ignored ("any additional
    /// headers that not understood by a client should be ignored").
    pub fn parse(data: &[u8]) -> Result<Announce, LsdError> {
        if data.len() > MAX_INPUT {
            return Err(LsdError::TooLong(data.len()));
        }
        let text = std::str::from_utf8(data).map_err(|_| LsdError::NotText)?;
        let mut lines = text.split("\r\n");
        let first = lines.next().unwrap_or_default();
        if first.trim() != "BT-SEARCH * HTTP/1.1" {
            return Err(LsdError::RequestLine(first.chars().take(64).collect()));
        }
        let (mut host, mut port, mut cookie) = (String::new(), None, None);
        let mut info_hashes = Vec::new();
        for (n, line) in lines.enumerate() {
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(LsdError::HeaderLine(n + 2));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "host" => host = value.to_owned(),
                "port" => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|p| *p != 0)
                            .ok_or_else(|| LsdError::Port(value.chars().take(16).collect()))?,
                    )
                }
                "infohash" => {
                    let h = (value.len() == 40)
                        .then(|| InfoHashV1::from_text(value).ok())
                        .flatten()
                        .ok_or_else(|| LsdError::InfoHash(value.chars().take(64).collect()))?;
                    info_hashes.push(h);
                }
                "cookie" => cookie = Some(value.chars().take(64).collect()),
                _ => {}
            }
        }
        let port = port.ok_or_else(|| LsdError::Port(String::new()))?;
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        Ok(Announce {
            host,
            port,
            info_hashes,
            cookie,
        })
    }
}

/// Settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The port we accept peer connections on.
    pub port: u16,
    /// Our cookie, to recognise our own announces coming back through multicast loopback.
    pub cookie: String,
    /// The group we announce to (its text goes in `Host`).
    pub group: SocketAddr,
    /// How often each torrent is announced ("every 5 minutes").
    pub interval: Duration,
    /// The least time between two packets ("no more than 1 announce per minute").
    pub min_gap: Duration,
    /// Announces taken from one address per [`Config::interval`]; more are dropped.
    pub max_per_source: u32,
    /// The most torrents announced.
    pub max_torrents: usize,
}

impl Config {
    /// Defaults from BEP 14 for a client listening on `port`, with `cookie`.
    pub fn new(port: u16, cookie: String) -> Self {
        Config {
            port,
            cookie,
            group: GROUP_V4,
            interval: Duration::from_secs(300),
            min_gap: Duration::from_secs(60),
            max_per_source: 64,
            max_torrents: 10_000,
        }
    }
}

/// A peer heard on the local network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    /// The torrent.
    pub info_hash: InfoHashV1,
    /// Where to reach the peer: the packet's source address with the announced port.
    pub peer: SocketAddr,
}

/// What was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Packets that did not parse.
    pub malformed: u64,
    /// Our own announces heard back.
    pub own: u64,
    /// Packets dropped by the per-source limit.
    pub rate_limited: u64,
    /// Announces for torrents we do not have.
    pub unknown: u64,
    /// Packets sent.
    pub sent: u64,
}

/// The LSD state machine. Time is a [`Duration`] since an epoch the driver chose.
#[derive(Debug)]
pub struct Lsd {
    config: Config,
    /// Torrents, with when each was last announced (`None`: never).
    torrents: HashMap<InfoHashV1, Option<Duration>>,
    /// When the last packet went out.
    last_sent: Option<Duration>,
    /// Announces per source address in the current window, and when the window began.
    sources: HashMap<IpAddr, u32>,
    window_start: Duration,
    out: VecDeque<Vec<u8>>,
    found: VecDeque<Found>,
    counters: Counters,
}

impl Lsd {
    /// A state machine with no torrents.
    pub fn new(config: Config, now: Duration) -> Self {
        Lsd {
            config,
            torrents: HashMap::new(),
            last_sent: None,
            sources: HashMap::new(),
            window_start: now,
            out: VecDeque::new(),
            found: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// Starts announcing a torrent (from the next packet on). False if the torrent cap is reached.
    pub fn add_torrent(&mut self, info_hash: InfoHashV1) -> bool {
        if self.torrents.len() >= self.config.max_torrents && !self.torrents.contains_key(&info_hash) {
            return false;
        }
        self.torrents.entry(info_hash).or_insert(None);
        true
    }

    /// Stops announcing a torrent (and reporting peers for it).
    pub fn remove_torrent(&mut self, info_hash: &InfoHashV1) {
        self.torrents.remove(info_hash);
    }

    /// What was dropped and sent.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// A packet from `from` arrived on the group.
    pub fn handle_packet(&mut self, now: Duration, from: SocketAddr, data: &[u8]) {
        self.roll_window(now);
        let crowded = self.sources.len() >= 4096 && !self.sources.contains_key(&from.ip());
        let n = self.sources.entry(from.ip()).or_insert(0);
        if *n >= self.config.max_per_source || crowded {
            self.counters.rate_limited += 1;
            return;
        }
        *n += 1;
        let a = match Announce::parse(data) {
            Ok(a) => a,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        if a.cookie.as_deref() == Some(self.config.cookie.as_str()) {
            self.counters.own += 1;
            return;
        }
        let peer = SocketAddr::new(from.ip(), a.port);
        for h in a.info_hashes.into_iter().take(64) {
            if self.torrents.contains_key(&h) {
                self.found.push_back(Found { info_hash: h, peer });
            } else {
                self.counters.unknown += 1;
            }
        }
    }

    fn roll_window(&mut self, now: Duration) {
        if now.saturating_sub(self.window_start) >= self.config.interval {
            self.sources.clear();
            self.window_start = now;
        }
    }

    /// Time passed: send the torrents that are due, as many per packet as fit.
    pub fn handle_timeout(&mut self, now: Duration) {
        self.roll_window(now);
        if self
            .last_sent
            .is_some_and(|t| now.saturating_sub(t) < self.config.min_gap)
        {
            return;
        }
        let due =
            |last: &Option<Duration>| last.is_none_or(|t| now.saturating_sub(t) >= self.config.interval);
        // Oldest first; never-announced before all.
        let mut due_list: Vec<(Option<Duration>, InfoHashV1)> = self
            .torrents
            .iter()
            .filter(|(_, l)| due(l))
            .map(|(h, l)| (*l, *h))
            .collect();
        if due_list.is_empty() {
            return;
        }
        due_list.sort();
        let mut msg = Announce {
            host: self.config.group.to_string(),
            port: self.config.port,
            info_hashes: Vec::new(),
            cookie: Some(self.config.cookie.clone()),
        };
        let base = msg.encode().len();
        let per_hash = "Infohash: \r\n".len() + 40;
        let fit = MAX_PACKET.saturating_sub(base) / per_hash;
        let chosen: BTreeSet<InfoHashV1> = due_list.into_iter().take(fit.max(1)).map(|(_, h)| h).collect();
        for h in &chosen {
            self.torrents.insert(*h, Some(now));
        }
        msg.info_hashes = chosen.into_iter().collect();
        self.out.push_back(msg.encode());
        self.last_sent = Some(now);
        self.counters.sent += 1;
    }

    /// The next packet for the group.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next peer heard.
    pub fn poll_found(&mut self) -> Option<Found> {
        self.found.pop_front()
    }

    /// When [`Lsd::handle_timeout`] should next be called (`None`: no torrents).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let next_due = self
            .torrents
            .values()
            .map(|l| l.map_or(Duration::ZERO, |t| t.saturating_add(self.config.interval)))
            .min()?;
        let gap_ok = self
            .last_sent
            .map_or(Duration::ZERO, |t| t.saturating_add(self.config.min_gap));
        Some(next_due.max(gap_ok))
    }
}

#[cfg(test)]
mod tests;
