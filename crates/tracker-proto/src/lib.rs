//! BitTorrent tracker messages as pure codecs on byte slices: the HTTP tracker protocol (BEP 3, 7, 23, 48) in
//! [`http`], the UDP tracker protocol (BEP 15, 41) in [`udp`], and UDP connection ids that need no table
//! ([`ConnectionIdKeys`]); and the client's announce state machine in [`client`].
//!
//! Nothing here does I/O, reads a clock or draws random numbers of its own: the tracker and the client hand
//! in bytes, the time, the secrets and an RNG, and get bytes or typed messages back. Every decoder bounds what
//! it accepts (query length, hashes per scrape, `numwant`, response size) and returns an error instead of
//! panicking on any input.
//!
//! ```
//! use tracker_proto::{http, udp, ConnectionIdKeys, Event};
//!
//! // A tracker reads the query string of `GET /announce?...` (here Transmission 3.00's, captured) ...
//! let query = "info_hash=%5e%f9%01%02%fd%e7%01%09pb%ee%92%88RY%06%22%3f%01%a8\
//!              &peer_id=-TR3000-u43jooybnzsh&port=46882&uploaded=0&downloaded=0&left=1000000\
//!              &numwant=80&key=739ffae2&compact=1&supportcrypto=1&event=started";
//! let request = http::AnnounceRequest::parse_query(query.as_bytes()).unwrap();
//! assert_eq!(request.event, Event::Started);
//! assert_eq!(request.port, 46882);
//!
//! // ... and answers with a compact peer list (BEP 23).
//! let response = http::AnnounceResponse {
//!     interval: 1800,
//!     peers: vec!["10.0.0.7:6881".parse().unwrap()],
//!     ..Default::default()
//! };
//! assert_eq!(response.encode_compact(), b"d8:intervali1800e5:peers6:\x0a\x00\x00\x07\x1a\xe1e");
//!
//! // Over UDP, a connect request (Transmission's, captured) gets a connection id that the tracker can check
//! // later without storing it.
//! let keys = ConnectionIdKeys::new([7; 32]);
//! let from = "192.0.2.1:51413".parse().unwrap();
//! let packet = [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 0xf1, 0xca, 0x31, 0xb6];
//! let udp::Request::Connect(connect) = udp::Request::parse(&packet).unwrap() else { unreachable!() };
//! let reply = udp::ConnectResponse { transaction_id: connect.transaction_id, connection_id: keys.make(1_000, from) };
//! assert!(keys.check(1_030, from, reply.connection_id));
//! let mut out = Vec::new();
//! reply.write(&mut out);
//! assert_eq!(out.len(), 16);
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod client;
mod common;
mod connection_id;
pub mod http;
pub mod udp;

pub use common::{Event, PeerId, ScrapeStats, DEFAULT_NUMWANT, MAX_NUMWANT};
pub use connection_id::ConnectionIdKeys;
pub use metainfo::InfoHashV1;
pub use udp::{ConnectionId, TransactionId};
