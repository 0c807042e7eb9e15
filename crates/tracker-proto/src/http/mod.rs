//! The HTTP tracker protocol: announce and scrape query strings (BEP 3, 7, 23, 48) and their bencoded
//! responses, for both sides.
//!
//! A tracker parses the raw query string (the part of the request target after `?`, still percent-encoded,
//! since `info_hash` and `peer_id` are binary) with [`AnnounceRequest::parse_query`] or
//! [`ScrapeRequest::parse_query`], and answers with [`AnnounceResponse::encode_compact`] (or
//! [`AnnounceResponse::encode_dictionary`] when the client sent `compact=0`), [`ScrapeResponse::encode`] or
//! [`FailureResponse::encode`]. A client builds the query with [`AnnounceRequest::to_query`] and reads the
//! body with [`AnnounceResponse::decode`] / [`ScrapeResponse::decode`], which accept compact and dictionary
//! peer lists alike.
//!
//! ```
//! use tracker_proto::http::{AnnounceRequest, AnnounceResponse, Reply};
//! use tracker_proto::{Event, InfoHashV1, PeerId};
//!
//! let mut request = AnnounceRequest::new(InfoHashV1([0x5e; 20]), PeerId(*b"-BS0100-0123456789ab"), 6881);
//! request.left = 1 << 20;
//! request.event = Event::Started;
//! let url = request.url("http://tracker.example/announce?passkey=abc");
//! assert!(url.starts_with("http://tracker.example/announce?passkey=abc&info_hash=%5E%5E"));
//! let query = url.split_once('?').unwrap().1;
//! assert_eq!(AnnounceRequest::parse_query(query.as_bytes()).unwrap(), request);
//!
//! // opentracker's answer, captured on loopback: three peers, compact.
//! let body = b"d8:completei2e10:downloadedi0e10:incompletei1e8:intervali1759e\
//!              12:min intervali879e5:peers18:\x7f\0\0\x01\x17\x73\x7f\0\0\x01\x17\x72\x7f\0\0\x01\x17\x71e";
//! let Ok(Reply::Success(response)) = AnnounceResponse::decode(body) else { panic!() };
//! assert_eq!(response.interval, 1759);
//! assert_eq!(response.peers[0].to_string(), "127.0.0.1:6003");
//! ```

mod query;
mod response;

pub use query::{
    scrape_url, AnnounceRequest, QueryError, ScrapeRequest, MAX_KEY_LEN, MAX_QUERY_LEN, MAX_SCRAPE_HASHES,
    MAX_TRACKER_ID_LEN,
};
pub use response::{
    AnnounceResponse, FailureResponse, Reply, ResponseError, ScrapeResponse, MAX_RESPONSE_LEN,
};
