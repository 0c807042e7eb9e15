//! Bencoded tracker responses: announce (compact BEP 23 / BEP 7 peers, or BEP 3 dictionary peers), scrape
//! (BEP 48) and failure.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use bencode::{DecodeOptions, Dict, Encoder, Kind, Limits, Value};
use metainfo::InfoHashV1;

use crate::{PeerId, ScrapeStats};

/// The largest response body the decoders accept (8 MiB: far above any announce, room for big scrapes).
pub const MAX_RESPONSE_LEN: usize = 8 << 20;

/// A tracker's answer: what was asked for, or a `failure reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply<T> {
    /// The request succeeded.
    Success(T),
    /// The tracker refused the request.
    Failure(FailureResponse),
}

/// BEP 3: "If a tracker response has a key `failure reason`, then that maps to a human readable string which
/// explains why the query failed, and no other keys are required."
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailureResponse {
    /// The text (invalid UTF-8 is replaced when decoded).
    pub reason: String,
}

/// A successful announce response.
///
/// Peers travel either compact (BEP 23 `peers`: 6 bytes each; BEP 7 `peers6`: 18 bytes each) or as BEP 3
/// dictionaries (`peer id`, `ip`, `port`) in one `peers` list that holds both families.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// `interval`: seconds until the next regular announce.
    pub interval: u32,
    /// `min interval`: announce no more often than this.
    pub min_interval: Option<u32>,
    /// `tracker id`: for the client to send back as `trackerid`.
    pub tracker_id: Option<Vec<u8>>,
    /// `complete`: seeders.
    pub complete: Option<u32>,
    /// `incomplete`: leechers.
    pub incomplete: Option<u32>,
    /// IPv4 peers.
    pub peers: Vec<SocketAddrV4>,
    /// IPv6 peers.
    pub peers6: Vec<SocketAddrV6>,
    /// `warning message`: shown to the user; the request still succeeded.
    pub warning: Option<String>,
}

/// A successful scrape response (BEP 48): counts per swarm, keyed by raw info-hash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScrapeResponse {
    /// The swarms the tracker knows among those asked for.
    pub files: BTreeMap<InfoHashV1, ScrapeStats>,
}

/// Why a response body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// The body is larger than [`MAX_RESPONSE_LEN`].
    #[error("response of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// The body's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not bencode; [`ResponseError::is_incomplete`] tells a body that ended too soon from a malformed one.
    #[error("response is not bencode: {0}")]
    Bencode(bencode::Error),
    /// Bencode, but not a dictionary.
    #[error("response is a bencoded {0}, not a dictionary")]
    NotADict(&'static str),
    /// A required key is absent.
    #[error("response has no {0:?}")]
    Missing(&'static str),
    /// A key holds the wrong type.
    #[error("{key:?} must be {expected}")]
    WrongType {
        /// The key.
        key: &'static str,
        /// What it must hold.
        expected: &'static str,
    },
    /// An integer outside its range.
    #[error("{key:?} is out of range: {value}")]
    OutOfRange {
        /// The key.
        key: &'static str,
        /// The value.
        value: i64,
    },
    /// A compact peer string that is not whole entries.
    #[error("{key:?} of {len} bytes is not a multiple of {stride}")]
    PeersLength {
        /// `peers` or `peers6`.
        key: &'static str,
        /// The string's length.
        len: usize,
        /// Bytes per peer.
        stride: usize,
    },
    /// A `files` key that is not a 20-byte info-hash.
    #[error("\"files\" key of {len} bytes is not a 20-byte info-hash")]
    BadInfoHash {
        /// The key's length.
        len: usize,
    },
}

impl ResponseError {
    /// True if the body is a valid prefix that ended too soon (read more, then decode again).
    pub fn is_incomplete(&self) -> bool {
        matches!(self, ResponseError::Bencode(e) if e.is_incomplete())
    }
}

impl FailureResponse {
    /// A failure with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        FailureResponse {
            reason: reason.into(),
        }
    }

    /// `d14:failure reason<len>:<reason>e`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.dict(|d| d.entry(b"failure reason", |e| e.bytes(self.reason.as_bytes())));
        e.finish()
    }
}

impl AnnounceResponse {
    /// Encode with compact peers (BEP 23 `peers`, plus BEP 7 `peers6` when there are IPv6 peers).
    pub fn encode_compact(&self) -> Vec<u8> {
        let mut peers = Vec::with_capacity(self.peers.len() * 6);
        for p in &self.peers {
            peers.extend_from_slice(&p.ip().octets());
            peers.extend_from_slice(&p.port().to_be_bytes());
        }
        let mut peers6 = Vec::with_capacity(self.peers6.len() * 18);
        for p in &self.peers6 {
            peers6.extend_from_slice(&p.ip().octets());
            peers6.extend_from_slice(&p.port().to_be_bytes());
        }
        self.encode_with(|d| {
            d.entry(b"peers", |e| e.bytes(&peers));
            if !peers6.is_empty() {
                d.entry(b"peers6", |e| e.bytes(&peers6));
            }
        })
    }

    /// Encode with the BEP 3 dictionary model: one `peers` list of `{ip, port}` dictionaries holding IPv4
    /// then IPv6 peers (BEP 7: "the original peers response returns peer endpoints in their expanded string
    /// form, IPv6 addresses can be passed back this way"), each with the `peer id` that `peer_id` returns (give
    /// `|_| None` for a `no_peer_id` request).
    pub fn encode_dictionary(&self, peer_id: impl Fn(SocketAddr) -> Option<PeerId>) -> Vec<u8> {
        let all: Vec<SocketAddr> = self
            .peers
            .iter()
            .map(|&p| SocketAddr::V4(p))
            .chain(self.peers6.iter().map(|&p| SocketAddr::V6(p)))
            .collect();
        self.encode_with(|d| {
            d.entry(b"peers", |e| {
                e.list(|e| {
                    for &addr in &all {
                        e.dict(|d| {
                            d.entry(b"ip", |e| e.bytes(addr.ip().to_string().as_bytes()));
                            if let Some(id) = peer_id(addr) {
                                d.entry(b"peer id", |e| e.bytes(&id.0));
                            }
                            d.entry(b"port", |e| e.int(i64::from(addr.port())));
                        })
                    }
                })
            });
        })
    }

    fn encode_with(&self, peers: impl FnOnce(&mut bencode::DictEncoder<'_>)) -> Vec<u8> {
        let mut e = Encoder::new();
        e.dict(|d| {
            if let Some(n) = self.complete {
                d.entry(b"complete", |e| e.int(i64::from(n)));
            }
            if let Some(n) = self.incomplete {
                d.entry(b"incomplete", |e| e.int(i64::from(n)));
            }
            d.entry(b"interval", |e| e.int(i64::from(self.interval)));
            if let Some(n) = self.min_interval {
                d.entry(b"min interval", |e| e.int(i64::from(n)));
            }
            if let Some(t) = &self.tracker_id {
                d.entry(b"tracker id", |e| e.bytes(t));
            }
            if let Some(w) = &self.warning {
                d.entry(b"warning message", |e| e.bytes(w.as_bytes()));
            }
            peers(d);
        });
        e.finish()
    }

    /// Decode a response body (client side). Accepts compact and dictionary peers in `peers` and `peers6`,
    /// and dictionaries whose keys are out of order (some trackers write them so). Dictionary peers whose
    /// `ip` is a DNS name are skipped.
    pub fn decode(body: &[u8]) -> Result<Reply<AnnounceResponse>, ResponseError> {
        let value = decode_body(body)?;
        let d = as_dict(&value)?;
        if let Some(failure) = failure(d)? {
            return Ok(Reply::Failure(failure));
        }
        let mut r = AnnounceResponse {
            interval: uint(d, "interval")?.ok_or(ResponseError::Missing("interval"))?,
            min_interval: uint(d, "min interval")?,
            tracker_id: string(d, "tracker id")?.map(<[u8]>::to_vec),
            complete: uint(d, "complete")?,
            incomplete: uint(d, "incomplete")?,
            peers: Vec::new(),
            peers6: Vec::new(),
            warning: string(d, "warning message")?.map(lossy),
        };
        for key in ["peers", "peers6"] {
            let Some(v) = d.get(key.as_bytes()) else {
                continue;
            };
            match v.kind() {
                Kind::Bytes(b) if key == "peers" => r.peers.extend(compact_v4(b)?),
                Kind::Bytes(b) => r.peers6.extend(compact_v6(b)?),
                Kind::List(list) => {
                    for item in list {
                        match dictionary_peer(item)? {
                            Some(SocketAddr::V4(a)) => r.peers.push(a),
                            Some(SocketAddr::V6(a)) => r.peers6.push(a),
                            None => {}
                        }
                    }
                }
                _ => {
                    return Err(ResponseError::WrongType {
                        key,
                        expected: "a string or a list",
                    })
                }
            }
        }
        Ok(Reply::Success(r))
    }
}

impl ScrapeResponse {
    /// `d5:filesd<hash>d8:completei..e10:downloadedi..e10:incompletei..eeee`.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"files", |e| {
                e.dict(|d| {
                    for (hash, s) in &self.files {
                        d.entry(&hash.0, |e| {
                            e.dict(|d| {
                                d.entry(b"complete", |e| e.int(i64::from(s.complete)));
                                d.entry(b"downloaded", |e| e.int(i64::from(s.downloaded)));
                                d.entry(b"incomplete", |e| e.int(i64::from(s.incomplete)));
                            })
                        });
                    }
                })
            })
        });
        e.finish()
    }

    /// Decode a response body (client side). A count a tracker leaves out reads as 0.
    pub fn decode(body: &[u8]) -> Result<Reply<ScrapeResponse>, ResponseError> {
        let value = decode_body(body)?;
        let d = as_dict(&value)?;
        if let Some(failure) = failure(d)? {
            return Ok(Reply::Failure(failure));
        }
        let files = d
            .get(b"files")
            .ok_or(ResponseError::Missing("files"))?
            .as_dict()
            .ok_or(ResponseError::WrongType {
                key: "files",
                expected: "a dictionary",
            })?;
        let mut out = BTreeMap::new();
        for (hash, stats) in files.iter() {
            let hash =
                <[u8; 20]>::try_from(hash).map_err(|_| ResponseError::BadInfoHash { len: hash.len() })?;
            let s = stats.as_dict().ok_or(ResponseError::WrongType {
                key: "files",
                expected: "a dictionary of dictionaries",
            })?;
            out.insert(
                InfoHashV1(hash),
                ScrapeStats {
                    complete: uint(s, "complete")?.unwrap_or(0),
                    downloaded: uint(s, "downloaded")?.unwrap_or(0),
                    incomplete: uint(s, "incomplete")?.unwrap_or(0),
                },
            );
        }
        Ok(Reply::Success(ScrapeResponse { files: out }))
    }
}

fn decode_body(body: &[u8]) -> Result<Value<'_>, ResponseError> {
    if body.len() > MAX_RESPONSE_LEN {
        return Err(ResponseError::TooLong {
            len: body.len(),
            max: MAX_RESPONSE_LEN,
        });
    }
    let limits = Limits {
        max_depth: 8,
        max_input: MAX_RESPONSE_LEN,
        max_values: 1 << 20,
        max_string: MAX_RESPONSE_LEN,
    };
    bencode::decode_with(body, DecodeOptions::lenient().with_limits(limits)).map_err(ResponseError::Bencode)
}

fn as_dict<'v, 'a>(value: &'v Value<'a>) -> Result<&'v Dict<'a>, ResponseError> {
    value.as_dict().ok_or(ResponseError::NotADict(value.type_name()))
}

/// `failure reason` (BEP 3), or `failure_reason` as BEP 48's text spells it.
fn failure(d: &Dict<'_>) -> Result<Option<FailureResponse>, ResponseError> {
    let reason = match string(d, "failure reason")? {
        Some(r) => Some(r),
        None => string(d, "failure_reason")?,
    };
    Ok(reason.map(|r| FailureResponse { reason: lossy(r) }))
}

fn uint(d: &Dict<'_>, key: &'static str) -> Result<Option<u32>, ResponseError> {
    let Some(v) = d.get(key.as_bytes()) else {
        return Ok(None);
    };
    let i = v.as_int().ok_or(ResponseError::WrongType {
        key,
        expected: "an integer",
    })?;
    u32::try_from(i)
        .map(Some)
        .map_err(|_| ResponseError::OutOfRange { key, value: i })
}

fn string<'a>(d: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>, ResponseError> {
    let Some(v) = d.get(key.as_bytes()) else {
        return Ok(None);
    };
    v.as_bytes().map(Some).ok_or(ResponseError::WrongType {
        key,
        expected: "a string",
    })
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn compact_v4(b: &[u8]) -> Result<impl Iterator<Item = SocketAddrV4> + '_, ResponseError> {
    if !b.len().is_multiple_of(6) {
        return Err(ResponseError::PeersLength {
            key: "peers",
            len: b.len(),
            stride: 6,
        });
    }
    Ok(b.chunks_exact(6).filter_map(|c| {
        let (ip, port) = c.split_first_chunk::<4>()?;
        let port = <[u8; 2]>::try_from(port).ok()?;
        Some(SocketAddrV4::new(Ipv4Addr::from(*ip), u16::from_be_bytes(port)))
    }))
}

fn compact_v6(b: &[u8]) -> Result<impl Iterator<Item = SocketAddrV6> + '_, ResponseError> {
    if !b.len().is_multiple_of(18) {
        return Err(ResponseError::PeersLength {
            key: "peers6",
            len: b.len(),
            stride: 18,
        });
    }
    Ok(b.chunks_exact(18).filter_map(|c| {
        let (ip, port) = c.split_first_chunk::<16>()?;
        let port = <[u8; 2]>::try_from(port).ok()?;
        Some(SocketAddrV6::new(
            Ipv6Addr::from(*ip),
            u16::from_be_bytes(port),
            0,
            0,
        ))
    }))
}

/// One BEP 3 peer dictionary; `None` when `ip` is not an IP address (a DNS name, which this pure crate cannot
/// resolve).
fn dictionary_peer(item: &Value<'_>) -> Result<Option<SocketAddr>, ResponseError> {
    let d = item.as_dict().ok_or(ResponseError::WrongType {
        key: "peers",
        expected: "a list of dictionaries",
    })?;
    let ip = string(d, "ip")?.ok_or(ResponseError::Missing("ip"))?;
    let port = d
        .get(b"port")
        .ok_or(ResponseError::Missing("port"))?
        .as_int()
        .ok_or(ResponseError::WrongType {
            key: "port",
            expected: "an integer",
        })?;
    let port = u16::try_from(port).map_err(|_| ResponseError::OutOfRange {
        key: "port",
        value: port,
    })?;
    let ip = std::str::from_utf8(ip).ok().and_then(|s| {
        let bare = s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s);
        bare.parse::<IpAddr>().ok()
    });
    Ok(ip.map(|ip| SocketAddr::new(ip, port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn success<T: std::fmt::Debug>(r: Result<Reply<T>, ResponseError>) -> T {
        match r {
            Ok(Reply::Success(t)) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bep7_example_response() {
        // BEP 7: "d8:intervali1800e5:peers6:iiiipp6:peers618:iiiiiiiiiiiiiiiippe"
        let r = success(AnnounceResponse::decode(
            b"d8:intervali1800e5:peers6:iiiipp6:peers618:iiiiiiiiiiiiiiiippe",
        ));
        assert_eq!(r.interval, 1800);
        assert_eq!(
            r.peers,
            vec![SocketAddrV4::new(Ipv4Addr::new(105, 105, 105, 105), 0x7070)]
        );
        assert_eq!(r.peers6.len(), 1);
        assert_eq!(r.peers6[0].port(), 0x7070);
    }

    #[test]
    fn bep3_dictionary_peers_with_both_families_and_dns_names() {
        let body = b"d8:intervali60e5:peersld2:ip9:192.0.2.17:peer id20:-XX0000-aaaaaaaaaaaa4:porti6881eed2:ip11:2001:db8::24:porti80eed2:ip12:peer.example4:porti1eeee";
        let r = success(AnnounceResponse::decode(body));
        assert_eq!(r.peers, vec!["192.0.2.1:6881".parse().unwrap()]);
        assert_eq!(r.peers6, vec!["[2001:db8::2]:80".parse().unwrap()]);
    }

    #[test]
    fn dictionary_encoding_round_trips_with_peer_ids() {
        let r = AnnounceResponse {
            interval: 900,
            peers: vec!["192.0.2.1:6881".parse().unwrap()],
            peers6: vec!["[2001:db8::2]:80".parse().unwrap()],
            ..Default::default()
        };
        let b = r.encode_dictionary(|a| (a.port() == 6881).then_some(PeerId(*b"-XX0000-aaaaaaaaaaaa")));
        assert_eq!(
            b,
            b"d8:intervali900e5:peersld2:ip9:192.0.2.17:peer id20:-XX0000-aaaaaaaaaaaa4:porti6881eed2:ip11:2001:db8::24:porti80eeee"
        );
        assert_eq!(success(AnnounceResponse::decode(&b)), r);
    }

    #[test]
    fn bep48_example_scrape() {
        let body = b"d5:filesd20:xxxxxxxxxxxxxxxxxxxxd8:completei11e10:downloadedi13772e10:incompletei19ee\
20:yyyyyyyyyyyyyyyyyyyyd8:completei21e10:downloadedi206e10:incompletei20eeee";
        let r = success(ScrapeResponse::decode(body));
        assert_eq!(
            r.files[&InfoHashV1([b'x'; 20])],
            ScrapeStats {
                complete: 11,
                downloaded: 13772,
                incomplete: 19
            }
        );
        assert_eq!(r.encode(), body);
    }

    #[test]
    fn failures_in_both_spellings() {
        for body in [&b"d14:failure reason3:no!e"[..], b"d14:failure_reason3:no!e"] {
            assert_eq!(
                AnnounceResponse::decode(body),
                Ok(Reply::Failure(FailureResponse::new("no!")))
            );
            assert_eq!(
                ScrapeResponse::decode(body),
                Ok(Reply::Failure(FailureResponse::new("no!")))
            );
        }
        assert_eq!(FailureResponse::new("no!").encode(), b"d14:failure reason3:no!e");
    }

    #[test]
    fn malformed_bodies() {
        let err = |b: &[u8]| AnnounceResponse::decode(b).unwrap_err();
        assert!(err(b"d8:intervali1800e5:peers6:iiii").is_incomplete());
        assert!(!err(b"d8:intervali1800e5:peers6:iiiippee").is_incomplete());
        assert_eq!(err(b"le"), ResponseError::NotADict("list"));
        assert_eq!(err(b"de"), ResponseError::Missing("interval"));
        assert_eq!(
            err(b"d8:intervali-1ee"),
            ResponseError::OutOfRange {
                key: "interval",
                value: -1
            }
        );
        assert_eq!(
            err(b"d8:interval1:xe"),
            ResponseError::WrongType {
                key: "interval",
                expected: "an integer"
            }
        );
        assert_eq!(
            err(b"d8:intervali1e5:peers5:iiiipe"),
            ResponseError::PeersLength {
                key: "peers",
                len: 5,
                stride: 6
            }
        );
        assert_eq!(
            err(b"d8:intervali1e6:peers66:iiiippe"),
            ResponseError::PeersLength {
                key: "peers6",
                len: 6,
                stride: 18
            }
        );
        assert_eq!(
            err(b"d8:intervali1e5:peersi3ee"),
            ResponseError::WrongType {
                key: "peers",
                expected: "a string or a list"
            }
        );
        assert_eq!(
            err(b"d8:intervali1e5:peersli1eee"),
            ResponseError::WrongType {
                key: "peers",
                expected: "a list of dictionaries"
            }
        );
        assert_eq!(
            err(b"d8:intervali1e5:peersld2:ip1:xeee"),
            ResponseError::Missing("port")
        );
        assert_eq!(
            err(b"d8:intervali1e5:peersld2:ip1:x4:porti70000eeee"),
            ResponseError::OutOfRange {
                key: "port",
                value: 70000
            }
        );
        let s = |b: &[u8]| ScrapeResponse::decode(b).unwrap_err();
        assert_eq!(s(b"de"), ResponseError::Missing("files"));
        assert_eq!(s(b"d5:filesd3:abcdeee"), ResponseError::BadInfoHash { len: 3 });
        let big = vec![b'x'; MAX_RESPONSE_LEN + 1];
        assert_eq!(
            s(&big),
            ResponseError::TooLong {
                len: MAX_RESPONSE_LEN + 1,
                max: MAX_RESPONSE_LEN
            }
        );
    }

    #[test]
    fn unsorted_keys_from_sloppy_trackers_are_read() {
        let r = success(AnnounceResponse::decode(b"d8:intervali5e8:completei1ee"));
        assert_eq!((r.interval, r.complete), (5, Some(1)));
    }
}
