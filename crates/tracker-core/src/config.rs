//! The store's configuration: a serde struct with defaults, meant to sit in the tracker's config tree.

use serde::{Deserialize, Serialize};

/// Which torrents the tracker serves, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Any info-hash is tracked on its first announce (a public tracker).
    #[default]
    Open,
    /// Only registered torrents ([`crate::SwarmStore::register`]) are tracked; others get "unregistered
    /// torrent". The directory registers what it lists.
    AllowList,
    /// A private tracker (BEP 27): registered torrents only, and every announce carries a user's passkey in
    /// its path. The store keeps each user's uploaded and downloaded totals from announce deltas and, with
    /// [`SwarmConfig::min_ratio`] above zero, refuses downloads to users below that ratio.
    Private,
}

/// How the swarm store behaves; every field has a default, so an empty table is a valid configuration.
///
/// Memory is bounded by `max_torrents` swarms and `max_peers` peers in all (80 bytes per IPv4 peer, 88 per
/// IPv6 peer and 112 per swarm, plus slack: see [`SwarmConfig::memory_bound`] and the crate docs);
/// `max_peers_per_torrent` keeps one swarm from taking all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Seconds a client should wait between announces, sent as `interval`. Default 1800 (30 minutes, what
    /// opentracker and most public trackers send).
    pub interval: u32,
    /// Seconds a client must wait before announcing again on its own (BEP 3 `min interval`); libtorrent
    /// honours it for manual re-announces. Default 900.
    pub min_interval: u32,
    /// Seconds past `interval` after which a peer that has not announced is removed. A peer announcing
    /// on time is never removed; one that vanished without `stopped` stays listed for `interval +
    /// peer_timeout` at most. Default 300.
    pub peer_timeout: u32,
    /// The most swarms kept at once. When full, a new info-hash replaces a swarm that has no peers left (its
    /// completed counter is then lost) or is refused with "tracker full": live swarms are never evicted.
    /// Default 1,000,000.
    pub max_torrents: u32,
    /// The most peers in one swarm. When full, a new peer replaces the peer whose last announce is the
    /// oldest (which is the most likely to be gone). Default 100,000.
    pub max_peers_per_torrent: u32,
    /// The most peers in all swarms together. When reached, a new peer that would need more is refused with
    /// "tracker full"; peers already known keep announcing. Default 10,000,000 (at most about 1.2 GB).
    pub max_peers: u32,
    /// The most peers returned by one announce, whatever `numwant` asks. Default 200 (opentracker's cap and
    /// libtorrent's default request).
    pub max_numwant: u32,
    /// Peers returned when the announce gives no `numwant`. Default 50 (BEP 3's suggestion).
    pub default_numwant: u32,
    /// Which torrents and clients are served. Default `open`.
    pub mode: Mode,
    /// Private mode: the lowest ratio (uploaded / downloaded over all of a user's announces) at which a user
    /// may still download; below it, announces with `left > 0` are refused with a message giving the
    /// ratio (seeding is always allowed, so a user can climb back). 0 turns the rule off. Default 0.
    pub min_ratio: f64,
    /// Private mode: bytes a user may download before `min_ratio` applies, so new users can start. Default
    /// 5 GiB.
    pub ratio_grace_bytes: u64,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            interval: 1800,
            min_interval: 900,
            peer_timeout: 300,
            max_torrents: 1_000_000,
            max_peers_per_torrent: 100_000,
            max_peers: 10_000_000,
            max_numwant: 200,
            default_numwant: 50,
            mode: Mode::Open,
            min_ratio: 0.0,
            ratio_grace_bytes: 5 << 30,
        }
    }
}

/// The largest `max_peers_per_torrent` accepted: peers are addressed by 30-bit positions.
pub const MAX_PEERS_PER_TORRENT_LIMIT: u32 = 1 << 30;

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// `interval` is 0.
    #[error("interval must be at least 1 second")]
    ZeroInterval,
    /// `min_interval` exceeds `interval`.
    #[error("min_interval ({min_interval}) must not exceed interval ({interval})")]
    MinIntervalAboveInterval {
        /// The configured `min_interval`.
        min_interval: u32,
        /// The configured `interval`.
        interval: u32,
    },
    /// A limit that must be at least 1 is 0.
    #[error("{0} must be at least 1")]
    ZeroLimit(&'static str),
    /// `max_peers_per_torrent` is above [`MAX_PEERS_PER_TORRENT_LIMIT`].
    #[error("max_peers_per_torrent must be at most {MAX_PEERS_PER_TORRENT_LIMIT}, got {0}")]
    TooManyPeersPerTorrent(u32),
    /// `default_numwant` exceeds `max_numwant`.
    #[error("default_numwant ({default_numwant}) must not exceed max_numwant ({max_numwant})")]
    DefaultNumwantAboveMax {
        /// The configured `default_numwant`.
        default_numwant: u32,
        /// The configured `max_numwant`.
        max_numwant: u32,
    },
    /// `min_ratio` is negative, infinite or NaN.
    #[error("min_ratio must be a finite number at least 0, got {0}")]
    BadMinRatio(f64),
}

impl SwarmConfig {
    /// Check that the limits make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.interval == 0 {
            return Err(ConfigError::ZeroInterval);
        }
        if self.min_interval > self.interval {
            return Err(ConfigError::MinIntervalAboveInterval {
                min_interval: self.min_interval,
                interval: self.interval,
            });
        }
        for (name, value) in [
            ("max_torrents", self.max_torrents),
            ("max_peers_per_torrent", self.max_peers_per_torrent),
            ("max_peers", self.max_peers),
        ] {
            if value == 0 {
                return Err(ConfigError::ZeroLimit(name));
            }
        }
        if self.max_peers_per_torrent > MAX_PEERS_PER_TORRENT_LIMIT {
            return Err(ConfigError::TooManyPeersPerTorrent(self.max_peers_per_torrent));
        }
        if self.default_numwant > self.max_numwant {
            return Err(ConfigError::DefaultNumwantAboveMax {
                default_numwant: self.default_numwant,
                max_numwant: self.max_numwant,
            });
        }
        if !self.min_ratio.is_finite() || self.min_ratio < 0.0 {
            return Err(ConfigError::BadMinRatio(self.min_ratio));
        }
        Ok(())
    }

    /// An upper estimate of the bytes the swarm table can hold in steady state: `max_torrents` swarm records
    /// and `max_peers` IPv6 peer records (the larger kind), each with the slack vectors and hash tables
    /// keep (a quarter after removals, an eighth while growing) and a 12-byte index slot. The allow-list,
    /// the users and the allocator's own overhead come on top; memory freed by stopped peers is given back
    /// by the next expiry pass.
    pub fn memory_bound(&self) -> u64 {
        let per_torrent = (crate::swarm::TORRENT_BYTES * 5 / 4 + 12) as u64;
        let per_peer = (crate::swarm::PEER_V6_BYTES * 5 / 4 + 12) as u64;
        u64::from(self.max_torrents) * per_torrent + u64::from(self.max_peers) * per_peer
    }

    /// Seconds after its last announce at which a peer expires: `interval + peer_timeout`.
    pub fn peer_lifetime(&self) -> u32 {
        self.interval.saturating_add(self.peer_timeout)
    }
}
