//! Requests (client to tracker): connect, announce (with BEP 41 options), scrape.

use std::net::Ipv4Addr;

use metainfo::InfoHashV1;

use super::{
    action, ConnectionId, ErrorResponse, Reader, TransactionId, ANNOUNCE_REQUEST_LEN, MAX_SCRAPE_HASHES,
    MAX_URL_DATA, PROTOCOL_ID,
};
use crate::common::clamp_numwant;
use crate::{Event, PeerId};

/// BEP 41 option types.
mod option {
    pub const END_OF_OPTIONS: u8 = 0;
    pub const NOP: u8 = 1;
    pub const URL_DATA: u8 = 2;
}

/// A request from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Action 0: ask for a connection id.
    Connect(ConnectRequest),
    /// Action 1: announce.
    Announce(AnnounceRequest),
    /// Action 2: scrape.
    Scrape(ScrapeRequest),
}

/// Connect request: `protocol_id (8) | action 0 (4) | transaction_id (4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectRequest {
    /// Chosen by the client, echoed in the response.
    pub transaction_id: TransactionId,
}

/// IPv4 announce request (98 bytes; IPv6 announces use it too, with `ip` unset), then BEP 41 options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnounceRequest {
    /// From the tracker's connect response.
    pub connection_id: ConnectionId,
    /// Chosen by the client, echoed in the response.
    pub transaction_id: TransactionId,
    /// The swarm.
    pub info_hash: InfoHashV1,
    /// The announcing peer.
    pub peer_id: PeerId,
    /// Bytes downloaded so far.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Bytes uploaded so far.
    pub uploaded: u64,
    /// Why the client announces.
    pub event: Event,
    /// The address the client claims (0 on the wire means none). BEP 15: "most trackers will only honor the
    /// IP address field under limited circumstances".
    pub ip: Option<Ipv4Addr>,
    /// A random number the client keeps per torrent, so a tracker can tell the same client on a new address.
    pub key: u32,
    /// Peers wanted (any negative number on the wire, normally -1, means the tracker's default); clamped to
    /// [`crate::MAX_NUMWANT`] when parsed.
    pub num_want: Option<u32>,
    /// The client's TCP port.
    pub port: u16,
    /// BEP 41 URLData: the path and query of the tracker URL, all URLData options concatenated; `None` when
    /// the packet has none. At most [`MAX_URL_DATA`] bytes are kept; malformed options end option parsing
    /// without failing the announce.
    pub url_data: Option<Vec<u8>>,
}

/// Scrape request: `connection_id | action 2 | transaction_id | info_hash * n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// From the tracker's connect response.
    pub connection_id: ConnectionId,
    /// Chosen by the client, echoed in the response.
    pub transaction_id: TransactionId,
    /// 1 to [`MAX_SCRAPE_HASHES`] swarms, answered in this order.
    pub info_hashes: Vec<InfoHashV1>,
}

/// Why a request could not be parsed, sorted by what the tracker can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestParseError {
    /// The header was readable: the tracker may answer with an error packet (see
    /// [`RequestParseError::error_response`]) once it has checked `connection_id`, so that it never answers a
    /// spoofed source.
    #[error("{message} (answerable)")]
    Sendable {
        /// The connection id the request carried (not yet checked).
        connection_id: ConnectionId,
        /// The transaction id to echo.
        transaction_id: TransactionId,
        /// What was wrong; its text is what the error packet says.
        message: SendableError,
    },
    /// Not a tracker request the tracker can answer: drop it silently.
    #[error("{0} (dropped)")]
    Unsendable(UnsendableError),
}

/// Problems worth telling the client about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendableError {
    /// An announce shorter than 98 bytes.
    #[error("announce request of {len} bytes is shorter than 98")]
    AnnounceTooShort {
        /// The packet's length.
        len: usize,
    },
    /// An event number other than 0 to 4.
    #[error("unknown announce event {0}")]
    UnknownEvent(u32),
    /// A scrape with no info-hash (a full scrape, which BEP 15 does not offer).
    #[error("scrape request names no info-hash (full scrapes are not offered)")]
    NoInfoHashes,
    /// A scrape with more than [`MAX_SCRAPE_HASHES`] info-hashes.
    #[error("scrape request names {count} info-hashes, more than {max}")]
    TooManyInfoHashes {
        /// Info-hashes in the request.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A scrape whose body is not whole 20-byte info-hashes.
    #[error("scrape request of {len} bytes is not 16 + 20 * n")]
    ScrapeLength {
        /// The packet's length.
        len: usize,
    },
}

/// Problems that leave no one to answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsendableError {
    /// Shorter than the 16-byte header every request has.
    #[error("packet of {len} bytes is shorter than a 16-byte request header")]
    TooShort {
        /// The packet's length.
        len: usize,
    },
    /// Action 0 without the magic protocol id: not a BEP 15 packet.
    #[error("connect request with protocol id {0:#x} instead of 0x41727101980")]
    BadProtocolId(u64),
    /// An action other than connect, announce or scrape.
    #[error("unknown action {0}")]
    UnknownAction(u32),
}

impl RequestParseError {
    /// The error packet to send back, for a [`RequestParseError::Sendable`] error.
    pub fn error_response(&self) -> Option<ErrorResponse> {
        match self {
            RequestParseError::Sendable {
                transaction_id,
                message,
                ..
            } => Some(ErrorResponse {
                transaction_id: *transaction_id,
                message: message.to_string(),
            }),
            RequestParseError::Unsendable(_) => None,
        }
    }
}

impl Request {
    /// Parse one datagram from a client.
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestParseError> {
        let mut r = Reader::new(bytes);
        let (Some(first), Some(action), Some(tid)) = (r.u64(), r.u32(), r.u32()) else {
            return Err(RequestParseError::Unsendable(UnsendableError::TooShort {
                len: bytes.len(),
            }));
        };
        let transaction_id = TransactionId(tid);
        match action {
            action::CONNECT if first == PROTOCOL_ID => {
                Ok(Request::Connect(ConnectRequest { transaction_id }))
            }
            action::CONNECT => Err(RequestParseError::Unsendable(UnsendableError::BadProtocolId(
                first,
            ))),
            action::ANNOUNCE => {
                AnnounceRequest::parse_body(ConnectionId(first), transaction_id, r, bytes.len())
                    .map(Request::Announce)
            }
            action::SCRAPE => {
                ScrapeRequest::parse_body(ConnectionId(first), transaction_id, r.rest(), bytes.len())
                    .map(Request::Scrape)
            }
            other => Err(RequestParseError::Unsendable(UnsendableError::UnknownAction(
                other,
            ))),
        }
    }

    /// Append the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Request::Connect(r) => r.write(out),
            Request::Announce(r) => r.write(out),
            Request::Scrape(r) => r.write(out),
        }
    }

    /// The transaction id the response must echo.
    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Request::Connect(r) => r.transaction_id,
            Request::Announce(r) => r.transaction_id,
            Request::Scrape(r) => r.transaction_id,
        }
    }

    /// The connection id the request carries (none for a connect request).
    pub fn connection_id(&self) -> Option<ConnectionId> {
        match self {
            Request::Connect(_) => None,
            Request::Announce(r) => Some(r.connection_id),
            Request::Scrape(r) => Some(r.connection_id),
        }
    }
}

impl ConnectRequest {
    /// Append the 16-byte packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
        out.extend_from_slice(&action::CONNECT.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
    }
}

impl AnnounceRequest {
    fn parse_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        mut r: Reader<'_>,
        len: usize,
    ) -> Result<Self, RequestParseError> {
        let sendable = |message| RequestParseError::Sendable {
            connection_id,
            transaction_id,
            message,
        };
        let fields = (|| {
            Some((
                r.array::<20>()?,
                r.array::<20>()?,
                r.u64()?,
                r.u64()?,
                r.u64()?,
                r.u32()?,
                r.array::<4>()?,
                r.u32()?,
                r.u32()?,
                r.u16()?,
            ))
        })();
        let Some((info_hash, peer_id, downloaded, left, uploaded, event, ip, key, num_want, port)) = fields
        else {
            return Err(sendable(SendableError::AnnounceTooShort { len }));
        };
        let event = Event::from_udp(event).ok_or(sendable(SendableError::UnknownEvent(event)))?;
        // The wire field is a signed 32-bit number where -1 means "default".
        let num_want = i32::from_be_bytes(num_want.to_be_bytes());
        Ok(AnnounceRequest {
            connection_id,
            transaction_id,
            info_hash: InfoHashV1(info_hash),
            peer_id: PeerId(peer_id),
            downloaded,
            left,
            uploaded,
            event,
            ip: (ip != [0; 4]).then(|| Ipv4Addr::from(ip)),
            key,
            num_want: u64::try_from(num_want).ok().map(clamp_numwant),
            port,
            url_data: parse_options(r),
        })
    }

    /// Append the packet (98 bytes, then a URLData option per 255 bytes of `url_data`) to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(ANNOUNCE_REQUEST_LEN);
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
        out.extend_from_slice(&action::ANNOUNCE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        out.extend_from_slice(&self.info_hash.0);
        out.extend_from_slice(&self.peer_id.0);
        out.extend_from_slice(&self.downloaded.to_be_bytes());
        out.extend_from_slice(&self.left.to_be_bytes());
        out.extend_from_slice(&self.uploaded.to_be_bytes());
        out.extend_from_slice(&self.event.to_udp().to_be_bytes());
        out.extend_from_slice(&self.ip.map_or([0; 4], |ip| ip.octets()));
        out.extend_from_slice(&self.key.to_be_bytes());
        let num_want = self.num_want.map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX));
        out.extend_from_slice(&num_want.to_be_bytes());
        out.extend_from_slice(&self.port.to_be_bytes());
        if let Some(url) = &self.url_data {
            if url.is_empty() {
                out.extend_from_slice(&[option::URL_DATA, 0]);
            }
            for chunk in url.chunks(255) {
                out.push(option::URL_DATA);
                out.push(u8::try_from(chunk.len()).unwrap_or(u8::MAX));
                out.extend_from_slice(chunk);
            }
        }
    }
}

/// BEP 41: options start right after the 98-byte announce and run to the end of the packet or an
/// EndOfOptions. Types 0 and 1 are one byte; every other type has a length byte and that many data bytes, so
/// unknown types are skipped. A truncated option ends parsing: what came before it stands.
fn parse_options(mut r: Reader<'_>) -> Option<Vec<u8>> {
    let mut url: Option<Vec<u8>> = None;
    while let Some(kind) = r.u8() {
        match kind {
            option::END_OF_OPTIONS => break,
            option::NOP => {}
            _ => {
                let Some(data) = r.u8().and_then(|len| r.take(usize::from(len))) else {
                    break;
                };
                if kind == option::URL_DATA {
                    let url = url.get_or_insert_with(Vec::new);
                    let room = MAX_URL_DATA.saturating_sub(url.len());
                    url.extend_from_slice(data.get(..room.min(data.len())).unwrap_or_default());
                }
            }
        }
    }
    url
}

impl ScrapeRequest {
    fn parse_body(
        connection_id: ConnectionId,
        transaction_id: TransactionId,
        body: &[u8],
        len: usize,
    ) -> Result<Self, RequestParseError> {
        let sendable = |message| RequestParseError::Sendable {
            connection_id,
            transaction_id,
            message,
        };
        if !body.len().is_multiple_of(20) {
            return Err(sendable(SendableError::ScrapeLength { len }));
        }
        let count = body.len() / 20;
        if count == 0 {
            return Err(sendable(SendableError::NoInfoHashes));
        }
        if count > MAX_SCRAPE_HASHES {
            return Err(sendable(SendableError::TooManyInfoHashes {
                count,
                max: MAX_SCRAPE_HASHES,
            }));
        }
        let info_hashes = body
            .chunks_exact(20)
            .filter_map(|c| <[u8; 20]>::try_from(c).ok().map(InfoHashV1))
            .collect();
        Ok(ScrapeRequest {
            connection_id,
            transaction_id,
            info_hashes,
        })
    }

    /// Append the packet to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.connection_id.0.to_be_bytes());
        out.extend_from_slice(&action::SCRAPE.to_be_bytes());
        out.extend_from_slice(&self.transaction_id.0.to_be_bytes());
        for h in &self.info_hashes {
            out.extend_from_slice(&h.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn announce() -> AnnounceRequest {
        AnnounceRequest {
            connection_id: ConnectionId(0x1122_3344_5566_7788),
            transaction_id: TransactionId(7),
            info_hash: InfoHashV1([0xab; 20]),
            peer_id: PeerId(*b"-BS0001-abcdefghijkl"),
            downloaded: 1,
            left: 2,
            uploaded: 3,
            event: Event::Started,
            ip: None,
            key: 0xdead_beef,
            num_want: None,
            port: 6881,
            url_data: None,
        }
    }

    fn bytes(r: &AnnounceRequest) -> Vec<u8> {
        let mut out = Vec::new();
        r.write(&mut out);
        out
    }

    #[test]
    fn announce_is_98_bytes_with_minus_one_for_default_numwant() {
        let b = bytes(&announce());
        assert_eq!(b.len(), ANNOUNCE_REQUEST_LEN);
        assert_eq!(&b[92..96], &[0xff; 4]);
        assert_eq!(&b[84..88], &[0; 4]);
    }

    #[test]
    fn bep41_example_options_are_read() {
        // BEP 41: "0x2, 0xC, '/', 'd', 'i', 'r', '?', 'a', '=', 'b', '&', 'c', '=', 'd', 0x1, 0x1, 0x0"
        let mut b = bytes(&announce());
        b.extend_from_slice(b"\x02\x0c/dir?a=b&c=d\x01\x01\x00\x02\x03xyz");
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.url_data.as_deref(), Some(&b"/dir?a=b&c=d"[..]));
    }

    #[test]
    fn bep41_urldata_chunks_concatenate_and_unknown_options_are_skipped() {
        let mut b = bytes(&announce());
        b.extend_from_slice(b"\x02\x02/a\x09\x03zzz\x01\x02\x02?b");
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.url_data.as_deref(), Some(&b"/a?b"[..]));
    }

    #[test]
    fn bep41_empty_urldata_and_truncated_options_are_safe() {
        let mut b = bytes(&announce());
        b.extend_from_slice(b"\x02\x00");
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.url_data, Some(vec![]));
        for tail in [&b"\x02"[..], b"\x02\x05ab", b"\x07", b"\x07\xff"] {
            let mut b = bytes(&announce());
            b.extend_from_slice(tail);
            let Request::Announce(a) = Request::parse(&b).unwrap() else {
                panic!()
            };
            assert_eq!(a.url_data, None, "{tail:?}");
        }
    }

    #[test]
    fn urldata_is_capped() {
        let mut b = bytes(&announce());
        for _ in 0..10 {
            b.push(2);
            b.push(255);
            b.extend_from_slice(&[b'x'; 255]);
        }
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.url_data.unwrap().len(), MAX_URL_DATA);
    }

    #[test]
    fn numwant_and_ip_are_decoded() {
        let mut r = announce();
        r.num_want = Some(40);
        r.ip = Some(Ipv4Addr::new(192, 0, 2, 1));
        let mut b = bytes(&r);
        assert_eq!(Request::parse(&b).unwrap(), Request::Announce(r.clone()));
        b[92..96].copy_from_slice(&100_000i32.to_be_bytes());
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.num_want, Some(crate::MAX_NUMWANT));
        b[92..96].copy_from_slice(&(-7i32).to_be_bytes());
        let Request::Announce(a) = Request::parse(&b).unwrap() else {
            panic!()
        };
        assert_eq!(a.num_want, None);
    }

    #[test]
    fn errors_say_whether_to_answer() {
        let header = |action: u32| {
            let mut b = 0x99u64.to_be_bytes().to_vec();
            b.extend_from_slice(&action.to_be_bytes());
            b.extend_from_slice(&5u32.to_be_bytes());
            b
        };
        let sendable = |b: &[u8]| match Request::parse(b) {
            Err(
                e @ RequestParseError::Sendable {
                    connection_id,
                    transaction_id,
                    ..
                },
            ) => {
                assert_eq!(connection_id, ConnectionId(0x99));
                assert_eq!(transaction_id, TransactionId(5));
                e.error_response().unwrap().message
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(
            sendable(&header(1)),
            "announce request of 16 bytes is shorter than 98"
        );
        let mut b = bytes(&announce());
        b[80..84].copy_from_slice(&9u32.to_be_bytes());
        b[0..8].copy_from_slice(&0x99u64.to_be_bytes());
        b[12..16].copy_from_slice(&5u32.to_be_bytes());
        assert_eq!(sendable(&b), "unknown announce event 9");
        assert!(sendable(&header(2)).contains("full scrapes"));
        let mut b = header(2);
        b.extend_from_slice(&[0; 19]);
        assert!(sendable(&b).contains("16 + 20 * n"));
        let mut b = header(2);
        b.extend_from_slice(&[0; 20 * 75]);
        assert_eq!(sendable(&b), "scrape request names 75 info-hashes, more than 74");

        let unsendable = |b: &[u8]| match Request::parse(b) {
            Err(e @ RequestParseError::Unsendable(_)) => {
                assert_eq!(e.error_response(), None);
                e
            }
            other => panic!("{other:?}"),
        };
        unsendable(&[]);
        unsendable(&header(0)[..15]);
        assert_eq!(
            unsendable(&header(0)),
            RequestParseError::Unsendable(UnsendableError::BadProtocolId(0x99))
        );
        assert_eq!(
            unsendable(&header(3)),
            RequestParseError::Unsendable(UnsendableError::UnknownAction(3))
        );
    }

    #[test]
    fn scrape_of_74_hashes_is_accepted() {
        let r = ScrapeRequest {
            connection_id: ConnectionId(1),
            transaction_id: TransactionId(2),
            info_hashes: (0..74u8).map(|i| InfoHashV1([i; 20])).collect(),
        };
        let mut b = Vec::new();
        r.write(&mut b);
        assert_eq!(b.len(), 16 + 74 * 20);
        assert_eq!(Request::parse(&b), Ok(Request::Scrape(r)));
    }
}
