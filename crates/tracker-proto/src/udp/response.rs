//! Responses (tracker to client): connect, announce (IPv4 or IPv6 peers), scrape, error.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::{action, AddressFamily, ConnectionId, Reader, TransactionId};
use crate::ScrapeStats;

/// A response from a tracker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Action 0: a connection id.
    Connect(ConnectResponse),
    /// Action 1: peers and counts.
    Announce(AnnounceResponse),
    /// Action 2: counts per requested swarm.
    Scrape(ScrapeResponse),
    /// Action 3: a human-readable error.
    Error(ErrorResponse),
}

/// Connect response: `action 0 | transaction_id | connection_id` (16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectResponse {
    /// Echoed from the request.
    pub transaction_id: TransactionId,
    /// For the client's next requests (from [`crate::ConnectionIdKeys::make`]).
    pub connection_id: ConnectionId,
}

/// Announce response: `action 1 | transaction_id | interval | leechers | seeders | peers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Echoed from the request.
    pub transaction_id: TransactionId,
    /// Seconds the client should wait before announcing again.
    pub interval: u32,
    /// Peers still downloading.
    pub leechers: u32,
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// The peers, in the format of the address family the exchange uses.
    pub peers: ResponsePeers,
}

/// The peers of an announce response: 6-byte entries over IPv4, 18-byte entries over IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponsePeers {
    /// Answer to a request that arrived over IPv4.
    V4(Vec<SocketAddrV4>),
    /// Answer to a request that arrived over IPv6.
    V6(Vec<SocketAddrV6>),
}

/// Scrape response: `action 2 | transaction_id | (seeders, completed, leechers) * n`, in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeResponse {
    /// Echoed from the request.
    pub transaction_id: TransactionId,
    /// One entry per info-hash of the request, in its order.
    pub stats: Vec<ScrapeStats>,
}

/// Error response: `action 3 | transaction_id | message` (the message runs to the end of the packet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    /// Echoed from the request.
    pub transaction_id: TransactionId,
    /// Human-readable text (invalid UTF-8 is replaced when parsed).
    pub message: String,
}

/// Why a response could not be parsed. UDP datagrams arrive whole, so a short one is malformed, not
/// incomplete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseParseError {
    /// Shorter than the fixed part of its action.
    #[error("{what} of {len} bytes is shorter than {min}")]
    TooShort {
        /// Which packet.
        what: &'static str,
        /// The packet's length.
        len: usize,
        /// Its fixed size.
        min: usize,
    },
    /// An action other than 0 to 3.
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// Peer bytes that are not whole entries.
    #[error("announce response has {len} bytes of peers, not a multiple of {stride}")]
    PeersLength {
        /// Bytes after the 20-byte header.
        len: usize,
        /// Bytes per peer for the address family.
        stride: usize,
    },
    /// Scrape bytes that are not whole 12-byte entries.
    #[error("scrape response has {len} bytes of counts, not a multiple of 12")]
    ScrapeLength {
        /// Bytes after the 8-byte header.
        len: usize,
    },
}

impl Response {
    /// Parse one datagram from a tracker; `family` is that of the socket exchange (see [`AddressFamily::of`]).
    pub fn parse(bytes: &[u8], family: AddressFamily) -> Result<Response, ResponseParseError> {
        let len = bytes.len();
        let short = |what, min| ResponseParseError::TooShort { what, len, min };
        let mut r = Reader::new(bytes);
        let (Some(action), Some(tid)) = (r.u32(), r.u32()) else {
            return Err(short("response", 8));
        };
        let transaction_id = TransactionId(tid);
        match action {
            action::CONNECT => {
                let connection_id = ConnectionId(r.u64().ok_or(short("connect response", 16))?);
                Ok(Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id,
                }))
            }
            action::ANNOUNCE => {
                let (Some(interval), Some(leechers), Some(seeders)) = (r.u32(), r.u32(), r.u32()) else {
                    return Err(short("announce response", 20));
                };
                let rest = r.rest();
                let stride = match family {
                    AddressFamily::V4 => 6,
                    AddressFamily::V6 => 18,
                };
                if !rest.len().is_multiple_of(stride) {
                    return Err(ResponseParseError::PeersLength {
                        len: rest.len(),
                        stride,
                    });
                }
                let peers = match family {
                    AddressFamily::V4 => ResponsePeers::V4(
                        rest.chunks_exact(6)
                            .filter_map(|c| {
                                let mut r = Reader::new(c);
                                Some(SocketAddrV4::new(Ipv4Addr::from(r.array::<4>()?), r.u16()?))
                            })
                            .collect(),
                    ),
                    AddressFamily::V6 => ResponsePeers::V6(
                        rest.chunks_exact(18)
                            .filter_map(|c| {
                                let mut r = Reader::new(c);
                                let ip = Ipv6Addr::from(r.array::<16>()?);
                                Some(SocketAddrV6::new(ip, r.u16()?, 0, 0))
                            })
                            .collect(),
                    ),
                };
                Ok(Response::Announce(AnnounceResponse {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }))
            }
            action::SCRAPE => {
                let rest = r.rest();
                if !rest.len().is_multiple_of(12) {
                    return Err(ResponseParseError::ScrapeLength { len: rest.len() });
                }
                let stats = rest
                    .chunks_exact(12)
                    .filter_map(|c| {
                        let mut r = Reader::new(c);
                        Some(ScrapeStats {
                            complete: r.u32()?,
                            downloaded: r.u32()?,
                            incomplete: r.u32()?,
                        })
                    })
                    .collect();
                Ok(Response::Scrape(ScrapeResponse {
                    transaction_id,
                    stats,
                }))
            }
            action::ERROR => Ok(Response::Error(ErrorResponse {
                transaction_id,
                message: String::from_utf8_lossy(r.rest()).into_owned(),
            })),
            other => Err(ResponseParseError::UnknownAction(other)),
        }
    }

    /// Append the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Response::Connect(r) => r.write(out),
            Response::Announce(r) => r.write(out),
            Response::Scrape(r) => r.write(out),
            Response::Error(r) => r.write(out),
        }
    }

    /// The transaction id, to match the response to its request.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Response::Connect(r) => r.transaction_id,
            Response::Announce(r) => r.transaction_id,
            Response::Scrape(r) => r.transaction_id,
            Response::Error(r) => r.transaction_id,
        }
    }
}

fn header(out: &mut Vec<u8>, action: u32, transaction_id: TransactionId) {
    out.extend_from_slice(&action.to_be_bytes());
    out.extend_from_slice(&transaction_id.0.to_be_bytes());
}

impl ConnectResponse {
    /// Append the 16-byte packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        header(out, action::CONNECT, self.transaction_id);
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
    }
}

impl AnnounceResponse {
    /// Append the packet to `out` (20 bytes plus 6 or 18 per peer: the caller bounds the peer count so the
    /// datagram fits its path MTU).
    pub fn write(&self, out: &mut Vec<u8>) {
        header(out, action::ANNOUNCE, self.transaction_id);
        out.extend_from_slice(&self.interval.to_be_bytes());
        out.extend_from_slice(&self.leechers.to_be_bytes());
        out.extend_from_slice(&self.seeders.to_be_bytes());
        match &self.peers {
            ResponsePeers::V4(peers) => {
                for p in peers {
                    out.extend_from_slice(&p.ip().octets());
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
            }
            ResponsePeers::V6(peers) => {
                for p in peers {
                    out.extend_from_slice(&p.ip().octets());
                    out.extend_from_slice(&p.port().to_be_bytes());
                }
            }
        }
    }
}

impl ScrapeResponse {
    /// Append the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        header(out, action::SCRAPE, self.transaction_id);
        for s in &self.stats {
            out.extend_from_slice(&s.complete.to_be_bytes());
            out.extend_from_slice(&s.downloaded.to_be_bytes());
            out.extend_from_slice(&s.incomplete.to_be_bytes());
        }
    }
}

impl ErrorResponse {
    /// Append the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        header(out, action::ERROR, self.transaction_id);
        out.extend_from_slice(self.message.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v6_peers_are_18_bytes() {
        let r = Response::Announce(AnnounceResponse {
            transaction_id: TransactionId(1),
            interval: 60,
            leechers: 2,
            seeders: 3,
            peers: ResponsePeers::V6(vec!["[2001:db8::1]:6881".parse().unwrap()]),
        });
        let mut b = Vec::new();
        r.write(&mut b);
        assert_eq!(b.len(), 20 + 18);
        assert_eq!(Response::parse(&b, AddressFamily::V6), Ok(r));
        // The same bytes read as IPv4 are 3 peers: the family must come from the socket.
        assert!(matches!(
            Response::parse(&b, AddressFamily::V4),
            Ok(Response::Announce(AnnounceResponse { peers: ResponsePeers::V4(p), .. })) if p.len() == 3
        ));
    }

    #[test]
    fn malformed_responses_are_errors() {
        assert_eq!(
            Response::parse(&[0, 0, 0, 1], AddressFamily::V4),
            Err(ResponseParseError::TooShort {
                what: "response",
                len: 4,
                min: 8
            })
        );
        assert_eq!(
            Response::parse(&[0, 0, 0, 0, 0, 0, 0, 1, 9], AddressFamily::V4),
            Err(ResponseParseError::TooShort {
                what: "connect response",
                len: 9,
                min: 16
            })
        );
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 1];
        b.extend_from_slice(&[0; 12 + 7]);
        assert_eq!(
            Response::parse(&b, AddressFamily::V4),
            Err(ResponseParseError::PeersLength { len: 7, stride: 6 })
        );
        assert_eq!(
            Response::parse(&[0, 0, 0, 2, 0, 0, 0, 1, 0], AddressFamily::V4),
            Err(ResponseParseError::ScrapeLength { len: 1 })
        );
        assert_eq!(
            Response::parse(&[0, 0, 0, 4, 0, 0, 0, 1], AddressFamily::V4),
            Err(ResponseParseError::UnknownAction(4))
        );
    }

    #[test]
    fn error_text_may_be_binary() {
        let b = [0, 0, 0, 3, 0, 0, 0, 9, b'n', b'o', 0xff];
        let Ok(Response::Error(e)) = Response::parse(&b, AddressFamily::V4) else {
            panic!()
        };
        assert_eq!(e.message, "no\u{fffd}");
        assert_eq!(e.transaction_id, TransactionId(9));
    }
}
