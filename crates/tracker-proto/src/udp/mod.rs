//! The UDP tracker protocol (BEP 15), with BEP 41 announce options: every packet, parsed from and written to
//! bytes.
//!
//! All integers are big-endian. Requests are parsed by the tracker with [`Request::parse`], whose error tells
//! whether the sender may be answered with an [`ErrorResponse`] ([`RequestParseError::Sendable`]) or the
//! packet must be dropped ([`RequestParseError::Unsendable`]). Responses are parsed by the client with
//! [`Response::parse`], which must be told the address family of the socket: BEP 15 "packets from a v4
//! address use the v4 format, those from a v6 address use the v6 format" (6- or 18-byte peers).
//!
//! ```
//! use tracker_proto::udp::{AddressFamily, Request, Response, ScrapeResponse};
//! use tracker_proto::{ScrapeStats, TransactionId};
//!
//! // transmission-cli 3.00's scrape request, captured on loopback.
//! let packet = b"\x11\x22\x33\x44\x55\x66\x77\x88\0\0\0\x02\x4d\x79\x3e\x58\
//!                \x5e\xf9\x01\x02\xfd\xe7\x01\x09pb\xee\x92\x88RY\x06\x22\x3f\x01\xa8";
//! let Ok(Request::Scrape(scrape)) = Request::parse(packet) else { panic!() };
//! assert_eq!(scrape.info_hashes.len(), 1);
//!
//! let reply = Response::Scrape(ScrapeResponse {
//!     transaction_id: scrape.transaction_id,
//!     stats: vec![ScrapeStats { complete: 2, downloaded: 9, incomplete: 1 }],
//! });
//! let mut out = Vec::new();
//! reply.write(&mut out);
//! assert_eq!(Response::parse(&out, AddressFamily::V4), Ok(reply));
//! ```

mod request;
mod response;

use std::fmt;
use std::net::SocketAddr;

pub use request::{
    AnnounceRequest, ConnectRequest, Request, RequestParseError, ScrapeRequest, SendableError,
    UnsendableError,
};
pub use response::{
    AnnounceResponse, ConnectResponse, ErrorResponse, Response, ResponseParseError, ResponsePeers,
    ScrapeResponse,
};

/// The magic number that opens every connect request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// Size of an IPv4 announce request without BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

/// The most info-hashes one scrape request may carry. BEP 15: "Up to about 74 torrents can be scraped at
/// once"; 16 + 74 * 20 = 1496 bytes is about what fits in one Ethernet frame.
pub const MAX_SCRAPE_HASHES: usize = 74;

/// The most BEP 41 URLData bytes kept from one announce; the rest is skipped.
pub const MAX_URL_DATA: usize = 1024;

/// The four BEP 15 actions.
pub(crate) mod action {
    pub const CONNECT: u32 = 0;
    pub const ANNOUNCE: u32 = 1;
    pub const SCRAPE: u32 = 2;
    pub const ERROR: u32 = 3;
}

/// A BEP 15 connection id: issued by the tracker in a connect response, echoed by the client in every later
/// request (see [`crate::ConnectionIdKeys`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectionId(pub u64);

/// A BEP 15 transaction id: chosen by the client, echoed by the tracker.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TransactionId(pub u32);

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionId({:#018x})", self.0)
    }
}

impl fmt::Debug for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TransactionId({:#010x})", self.0)
    }
}

/// The address family of the UDP exchange, which fixes the size of peers in an announce response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddressFamily {
    /// 6-byte peers (4-byte address, 2-byte port).
    V4,
    /// 18-byte peers (16-byte address, 2-byte port).
    V6,
}

impl AddressFamily {
    /// The family a packet from `addr` travelled in; an IPv4-mapped IPv6 address (a dual-stack socket's view
    /// of an IPv4 client) counts as IPv4.
    pub fn of(addr: &SocketAddr) -> Self {
        if addr.ip().to_canonical().is_ipv4() {
            AddressFamily::V4
        } else {
            AddressFamily::V6
        }
    }
}

/// Reads big-endian fields off the front of a slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.buf.split_first_chunk::<N>()?;
        self.buf = rest;
        Some(*head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (first, rest) = self.buf.split_first()?;
        self.buf = rest;
        Some(*first)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_be_bytes)
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.buf.split_at_checked(n)?;
        self.buf = rest;
        Some(head)
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }
}
