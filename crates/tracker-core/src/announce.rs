//! What goes into an announce and what comes out: the protocol-neutral [`AnnounceInput`] (built from an HTTP
//! or UDP request), [`AnnounceOutcome`] and [`Refusal`], whose text is the `failure reason` sent back.

use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

use metainfo::InfoHashV1;
use tracker_proto::{http, udp, Event, PeerId, TransactionId};

use crate::passkey::Passkey;

/// One announce, whichever protocol carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnnounceInput {
    /// The swarm.
    pub info_hash: InfoHashV1,
    /// The announcing peer's id.
    pub peer_id: PeerId,
    /// Where other peers should connect: the address the driver decided to trust (normally the packet's
    /// source address with the announced port). IPv4-mapped IPv6 addresses are treated as IPv4.
    pub addr: SocketAddr,
    /// The client's `key` (BEP 7 / BEP 15), which proves it is the same client on a new address; see
    /// [`key_from_http`] for HTTP's textual keys.
    pub key: Option<u32>,
    /// Bytes uploaded since the client's `started` announce.
    pub uploaded: u64,
    /// Bytes downloaded since the client's `started` announce.
    pub downloaded: u64,
    /// Bytes the client still misses; 0 makes it a seeder.
    pub left: u64,
    /// Why the client announces.
    pub event: Event,
    /// Peers wanted; `None` for the tracker's default. Capped by [`crate::SwarmConfig::max_numwant`].
    pub numwant: Option<u32>,
    /// The user's passkey, which the driver finds in the announce path (see [`Passkey::find_in_path`]);
    /// required in private mode, ignored otherwise.
    pub passkey: Option<Passkey>,
}

impl AnnounceInput {
    /// A regular announce with nothing transferred and nothing left (a seeder), for tests and examples.
    pub fn new(info_hash: InfoHashV1, peer_id: PeerId, addr: SocketAddr) -> Self {
        AnnounceInput {
            info_hash,
            peer_id,
            addr,
            key: None,
            uploaded: 0,
            downloaded: 0,
            left: 0,
            event: Event::None,
            numwant: None,
            passkey: None,
        }
    }

    /// From an HTTP announce that arrived from `ip`. The peer's address is `ip` with the announced `port`;
    /// the request's own `ip`, `ipv4` and `ipv6` claims are not trusted here (a driver that chooses to honour
    /// them sets [`AnnounceInput::addr`] itself).
    pub fn from_http(req: &http::AnnounceRequest, ip: IpAddr, passkey: Option<Passkey>) -> Self {
        AnnounceInput {
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            addr: SocketAddr::new(ip, req.port),
            key: req.key.as_deref().map(key_from_http),
            uploaded: req.uploaded,
            downloaded: req.downloaded,
            left: req.left,
            event: req.event,
            numwant: req.numwant,
            passkey,
        }
    }

    /// From a UDP announce that arrived from `ip` (the packet's `ip` field is not trusted here), with the
    /// passkey the driver found in its BEP 41 URLData, if any.
    pub fn from_udp(req: &udp::AnnounceRequest, ip: IpAddr, passkey: Option<Passkey>) -> Self {
        AnnounceInput {
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            addr: SocketAddr::new(ip, req.port),
            key: Some(req.key),
            uploaded: req.uploaded,
            downloaded: req.downloaded,
            left: req.left,
            event: req.event,
            numwant: req.num_want,
            passkey,
        }
    }
}

/// The 32-bit key of an HTTP `key` parameter. Clients send the hex form of a 32-bit random number
/// (libtorrent `key=3a8f01c2`, Transmission `key=739ffae2`), which is read as that number, so a client seen
/// over UDP and HTTP has one key; any other value is hashed (FNV-1a), which only has to be stable.
pub fn key_from_http(key: &[u8]) -> u32 {
    let hex = !key.is_empty() && key.len() <= 8 && key.iter().all(u8::is_ascii_hexdigit);
    if hex {
        if let Some(n) = std::str::from_utf8(key)
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
        {
            return n;
        }
    }
    key.iter().fold(0x811c_9dc5_u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A successful announce: the counts, the intervals and a random subset of the other peers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceOutcome {
    /// IPv4 peers.
    pub peers_v4: Vec<SocketAddrV4>,
    /// IPv6 peers.
    pub peers_v6: Vec<SocketAddrV6>,
    /// Seeders in the swarm (the announcing peer included).
    pub complete: u32,
    /// Leechers in the swarm (the announcing peer included).
    pub incomplete: u32,
    /// Completed downloads ever counted for the swarm.
    pub downloaded: u32,
    /// Seconds until the next regular announce.
    pub interval: u32,
    /// Seconds before which the client must not announce again.
    pub min_interval: u32,
}

impl AnnounceOutcome {
    /// The HTTP response (BEP 3/23/7): both peer lists, the counts and the intervals.
    pub fn to_http(&self) -> http::AnnounceResponse {
        http::AnnounceResponse {
            interval: self.interval,
            min_interval: Some(self.min_interval),
            complete: Some(self.complete),
            incomplete: Some(self.incomplete),
            peers: self.peers_v4.clone(),
            peers6: self.peers_v6.clone(),
            ..Default::default()
        }
    }

    /// The UDP response (BEP 15): only the peers of the exchange's address family.
    pub fn to_udp(&self, transaction_id: TransactionId, family: udp::AddressFamily) -> udp::AnnounceResponse {
        udp::AnnounceResponse {
            transaction_id,
            interval: self.interval,
            leechers: self.incomplete,
            seeders: self.complete,
            peers: match family {
                udp::AddressFamily::V4 => udp::ResponsePeers::V4(self.peers_v4.clone()),
                udp::AddressFamily::V6 => udp::ResponsePeers::V6(self.peers_v6.clone()),
            },
        }
    }
}

/// Why an announce was refused. `Display` is the exact `failure reason` (HTTP) or error message (UDP) to
/// send to the client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    /// Allow-list or private mode, and the info-hash is not registered.
    #[error("unregistered torrent")]
    UnregisteredTorrent,
    /// Private mode, and the announce carries no passkey.
    #[error("missing passkey: this tracker is private, use the announce URL with your passkey")]
    MissingPasskey,
    /// Private mode, and the passkey names no user.
    #[error("unknown passkey")]
    UnknownPasskey,
    /// Private mode: the user's ratio is below [`crate::SwarmConfig::min_ratio`] and their downloads are past
    /// the grace amount. The announce was still accounted (its deltas credited, the peer kept in the swarm
    /// so that its uploads keep counting), but no peers are given.
    #[error("ratio {ratio} is below the minimum {min} for this tracker (uploaded {uploaded}, downloaded {downloaded})")]
    RatioTooLow {
        /// The user's ratio.
        ratio: Ratio,
        /// The configured minimum.
        min: Ratio,
        /// The user's total uploaded bytes.
        uploaded: Bytes,
        /// The user's total downloaded bytes.
        downloaded: Bytes,
    },
    /// A limit on swarms or peers is reached (see [`crate::SwarmConfig`]).
    #[error("tracker full")]
    TrackerFull,
    /// Another client announced this peer id in this swarm from another address, and this announce does not
    /// carry its key: the entry is not handed over (it would let anyone stop or redirect another's peer).
    #[error("peer id in use from another address (announce with the same key to move it)")]
    PeerIdInUse,
    /// The announced port is 0: no peer could connect.
    #[error("invalid port 0")]
    InvalidPort,
}

/// A ratio, shown rounded down to two decimals (so 0.499 shows as 0.49, never as the 0.50 it is below).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Ratio(pub f64);

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hundredths = (self.0 * 100.0).floor() / 100.0;
        write!(f, "{hundredths:.2}")
    }
}

/// A byte count, shown with binary units ("1.50 GiB", "512 B").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        if self.0 < 1024 {
            return write!(f, "{} B", self.0);
        }
        let mut value = self.0 as f64 / 1024.0;
        let mut unit = "KiB";
        for u in UNITS.iter().skip(1) {
            if value < 1024.0 {
                break;
            }
            value /= 1024.0;
            unit = u;
        }
        write!(f, "{value:.2} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_keys_read_as_hex_numbers_else_hashed() {
        assert_eq!(key_from_http(b"739ffae2"), 0x739f_fae2);
        assert_eq!(key_from_http(b"3A8F01C2"), 0x3a8f_01c2);
        assert_eq!(key_from_http(b"1"), 1);
        let odd = key_from_http(b"not-hex-key");
        assert_eq!(odd, key_from_http(b"not-hex-key"));
        assert_ne!(odd, key_from_http(b"not-hex-kez"));
        assert_ne!(key_from_http(b""), key_from_http(b"x"));
    }

    #[test]
    fn ratio_and_bytes_read_well() {
        assert_eq!(Ratio(0.499).to_string(), "0.49");
        assert_eq!(Ratio(0.5).to_string(), "0.50");
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(1536).to_string(), "1.50 KiB");
        assert_eq!(Bytes(6 << 30).to_string(), "6.00 GiB");
        assert_eq!(Bytes(u64::MAX).to_string(), "16.00 EiB");
    }
}
