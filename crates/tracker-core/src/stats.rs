//! What the store reports: per-swarm stats with a view of each peer, totals, expiry reports, and the serde
//! helpers for info-hashes.

use std::net::SocketAddr;

use metainfo::InfoHashV1;
use serde::{Deserialize, Serialize};

use crate::time::Secs;

/// A swarm as an admin or a stats page sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorrentStats {
    /// The swarm.
    #[serde(with = "crate::stats::hex_info_hash")]
    pub info_hash: InfoHashV1,
    /// Its registered name, if registered.
    pub name: Option<String>,
    /// Its registered size, if registered with one.
    pub size: Option<u64>,
    /// The size peers' completion is measured against: the registered size, else the largest `left +
    /// downloaded` any peer announced (0 when nothing is known).
    pub size_for_completion: u64,
    /// Peers with `left == 0`.
    pub seeders: u32,
    /// Peers with `left > 0`.
    pub leechers: u32,
    /// Completed downloads counted (one per peer that announced `completed`).
    pub completed: u32,
    /// The peers, most complete first.
    pub peers: Vec<PeerView>,
}

/// One peer in [`TorrentStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerView {
    /// Fraction of the torrent the peer has, 0 to 1: `1 - left / size` (size as in
    /// [`TorrentStats::size_for_completion`]); 1 for seeders, 0 when the size is unknown and `left > 0`.
    pub completion: f32,
    /// Bytes per second uploaded between its last two announces (0 after one announce).
    pub upload_rate: f32,
    /// Bytes per second downloaded between its last two announces (0 after one announce).
    pub download_rate: f32,
    /// `left == 0`.
    pub is_seed: bool,
    /// Its last announce was `paused` (BEP 21 partial seed).
    pub is_paused: bool,
    /// Its address, only when asked for by an admin (`reveal_addresses`).
    pub addr: Option<SocketAddr>,
    /// Its client, read from its peer id ("Transmission 3.00").
    pub client: String,
    /// When it first announced.
    pub first_announce: Secs,
    /// When it last announced.
    pub last_announce: Secs,
}

/// Totals over the whole store; O(1) to get.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GlobalStats {
    /// Swarms held (live, or peerless but with a completed count of record).
    pub torrents: u64,
    /// Peers in all swarms.
    pub peers: u64,
    /// Peers with `left == 0`.
    pub seeders: u64,
    /// Peers with `left > 0`.
    pub leechers: u64,
    /// Peers with an IPv4 address.
    pub ipv4_peers: u64,
    /// Peers with an IPv6 address.
    pub ipv6_peers: u64,
    /// Torrents on the allow-list.
    pub registered_torrents: u64,
    /// Private-mode users.
    pub users: u64,
    /// Announces handled since the store was made (refused ones included).
    pub announces: u64,
    /// Announces refused.
    pub refused: u64,
    /// Peers removed because they stopped announcing.
    pub peers_expired: u64,
    /// Peers replaced because their swarm was full.
    pub peers_evicted: u64,
    /// Peerless swarms removed by expiry.
    pub torrents_removed: u64,
    /// Peerless swarms replaced because the store was full.
    pub torrents_evicted: u64,
}

/// What one [`crate::SwarmStore::expire`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireReport {
    /// Peers removed.
    pub peers_expired: u64,
    /// Swarms removed (no peers left, nothing of record).
    pub torrents_removed: u64,
    /// Units of budget spent: one per peer examined, one per swarm finished.
    pub work: usize,
    /// The cursor passed the end of the store (a full sweep has ended).
    pub wrapped: bool,
}

/// Serde for info-hashes as 40 lower-case hex digits.
pub(crate) mod hex_info_hash {
    use metainfo::InfoHashV1;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(h: &InfoHashV1, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<InfoHashV1, D::Error> {
        let text = String::deserialize(d)?;
        if text.len() != 40 {
            return Err(serde::de::Error::custom("an info-hash is 40 hex digits"));
        }
        InfoHashV1::from_text(&text).map_err(serde::de::Error::custom)
    }
}
