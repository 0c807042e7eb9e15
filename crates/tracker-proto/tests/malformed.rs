#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Hostile input: every decoder returns (never panics) on arbitrary, truncated, oversized or mutated bytes,
//! and whatever it accepts re-encodes to something it accepts as the same value.

use proptest::collection::vec;
use proptest::prelude::*;
use tracker_proto::http::{self, QueryError, ResponseError};
use tracker_proto::udp::{
    self, AddressFamily, Request, RequestParseError, Response, SendableError, UnsendableError,
};
use tracker_proto::{ConnectionId, TransactionId};

fn header(connection_id: u64, action: u32, transaction_id: u32) -> Vec<u8> {
    let mut b = connection_id.to_be_bytes().to_vec();
    b.extend_from_slice(&action.to_be_bytes());
    b.extend_from_slice(&transaction_id.to_be_bytes());
    b
}

#[test]
fn unknown_actions_are_dropped() {
    for action in [3u32, 4, 0x100, u32::MAX] {
        assert_eq!(
            Request::parse(&header(1, action, 2)),
            Err(RequestParseError::Unsendable(UnsendableError::UnknownAction(
                action
            )))
        );
    }
    assert_eq!(
        Response::parse(&[0, 0, 0, 9, 0, 0, 0, 0], AddressFamily::V4),
        Err(udp::ResponseParseError::UnknownAction(9))
    );
}

#[test]
fn oversized_scrapes_are_refused_with_an_answer() {
    let mut b = header(7, 2, 8);
    b.extend(std::iter::repeat_n(0xaa, 20 * (udp::MAX_SCRAPE_HASHES + 1)));
    let e = Request::parse(&b).unwrap_err();
    assert_eq!(
        e,
        RequestParseError::Sendable {
            connection_id: ConnectionId(7),
            transaction_id: TransactionId(8),
            message: SendableError::TooManyInfoHashes { count: 75, max: 74 },
        }
    );
    let reply = e.error_response().unwrap();
    assert_eq!(reply.transaction_id, TransactionId(8));

    let many = vec![format!("info_hash={}", "%00".repeat(20)); 120].join("&");
    assert_eq!(
        http::ScrapeRequest::parse_query(many.as_bytes()),
        Err(QueryError::TooLong {
            len: many.len(),
            max: http::MAX_QUERY_LEN
        })
    );
    let many = vec![format!("info_hash={}", "x".repeat(20)); http::MAX_SCRAPE_HASHES + 1].join("&");
    assert_eq!(
        http::ScrapeRequest::parse_query(many.as_bytes()),
        Err(QueryError::TooManyHashes {
            max: http::MAX_SCRAPE_HASHES
        })
    );
}

#[test]
fn bad_lengths() {
    // Announce: every length from the header to one short of 98 is answerable, never a panic.
    let full = {
        let mut b = header(1, 1, 2);
        b.resize(udp::ANNOUNCE_REQUEST_LEN, 0);
        b
    };
    assert!(Request::parse(&full).is_ok());
    for len in 16..udp::ANNOUNCE_REQUEST_LEN {
        assert!(matches!(
            Request::parse(&full[..len]),
            Err(RequestParseError::Sendable { message: SendableError::AnnounceTooShort { len: l }, .. }) if l == len
        ));
    }
    for len in 0..16 {
        assert_eq!(
            Request::parse(&full[..len]),
            Err(RequestParseError::Unsendable(UnsendableError::TooShort { len }))
        );
    }
    // Scrape bodies that are not whole hashes.
    for extra in [1, 19, 21, 39] {
        let mut b = header(1, 2, 2);
        b.resize(16 + extra, 0);
        assert!(matches!(
            Request::parse(&b),
            Err(RequestParseError::Sendable {
                message: SendableError::ScrapeLength { .. },
                ..
            })
        ));
    }
    // Responses whose peers or counts are not whole entries.
    let mut b = vec![0, 0, 0, 1, 0, 0, 0, 0];
    b.resize(20 + 18 + 6, 0);
    assert!(
        Response::parse(&b, AddressFamily::V4).is_ok(),
        "44 bytes = 4 IPv4 peers"
    );
    assert_eq!(
        Response::parse(&b, AddressFamily::V6),
        Err(udp::ResponseParseError::PeersLength { len: 24, stride: 18 })
    );
    // HTTP compact strings.
    assert_eq!(
        http::AnnounceResponse::decode(b"d8:intervali1e5:peers7:1234567e"),
        Err(ResponseError::PeersLength {
            key: "peers",
            len: 7,
            stride: 6
        })
    );
}

#[test]
fn a_connect_request_with_extra_bytes_is_still_a_connect() {
    // BEP 15: "Do not expect packets to be exactly of a certain size."
    let mut b = header(udp::PROTOCOL_ID, 0, 5);
    b.extend_from_slice(b"future");
    assert!(matches!(Request::parse(&b), Ok(Request::Connect(_))));
}

#[test]
fn deeply_nested_or_huge_bodies_are_refused_cleanly() {
    let deep = [vec![b'l'; 10_000], vec![b'e'; 10_000]].concat();
    assert!(http::AnnounceResponse::decode(&deep).is_err());
    let mut nested = b"d8:intervali1e5:peers".to_vec();
    nested.extend([b'l'; 20]);
    nested.extend([b'e'; 21]);
    assert!(http::AnnounceResponse::decode(&nested).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn udp_requests_never_panic_and_reparse(bytes in vec(any::<u8>(), 0..1600)) {
        match Request::parse(&bytes) {
            Ok(r) => {
                let mut out = Vec::new();
                r.write(&mut out);
                prop_assert_eq!(Request::parse(&out), Ok(r));
            }
            Err(e @ RequestParseError::Sendable { .. }) => {
                prop_assert!(bytes.len() >= 16);
                let reply = e.error_response().unwrap();
                let mut out = Vec::new();
                reply.write(&mut out);
                prop_assert_eq!(Response::parse(&out, AddressFamily::V4), Ok(Response::Error(reply)));
            }
            Err(RequestParseError::Unsendable(_)) => {}
        }
    }

    #[test]
    fn udp_requests_with_a_valid_header_never_panic(action in 0u32..4, body in vec(any::<u8>(), 0..1600)) {
        let mut b = header(udp::PROTOCOL_ID, action, 1);
        b.extend_from_slice(&body);
        let _ = Request::parse(&b);
    }

    #[test]
    fn udp_responses_never_panic_and_reparse(bytes in vec(any::<u8>(), 0..1600), v6 in any::<bool>()) {
        let family = if v6 { AddressFamily::V6 } else { AddressFamily::V4 };
        if let Ok(r) = Response::parse(&bytes, family) {
            let mut out = Vec::new();
            r.write(&mut out);
            let again = Response::parse(&out, family);
            // Error text that was not UTF-8 comes back as its replacement characters, so compare once more.
            prop_assert_eq!(again, Ok(r));
        }
    }

    #[test]
    fn http_queries_never_panic_and_reparse(query in "[a-z_%0-9A-F=&.:\\[\\]-]{0,400}") {
        if let Ok(r) = http::AnnounceRequest::parse_query(query.as_bytes()) {
            prop_assert_eq!(http::AnnounceRequest::parse_query(r.to_query().as_bytes()), Ok(r));
        }
        if let Ok(r) = http::ScrapeRequest::parse_query(query.as_bytes()) {
            prop_assert_eq!(http::ScrapeRequest::parse_query(r.to_query().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn http_queries_of_arbitrary_bytes_never_panic(query in vec(any::<u8>(), 0..600)) {
        let _ = http::AnnounceRequest::parse_query(&query);
        let _ = http::ScrapeRequest::parse_query(&query);
    }

    #[test]
    fn mutated_announce_queries_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let mut q = b"info_hash=%5e%f9%01%02%fd%e7%01%09pb%ee%92%88RY%06%22%3f%01%a8&peer_id=-TR3000-u43jooybnzsh\
&port=46882&uploaded=0&downloaded=0&left=1000000&numwant=80&key=739ffae2&compact=1&event=started&ip=1.2.3.4\
&ipv6=%5B%3A%3A1%5D%3A9".to_vec();
        let i = pos.index(q.len());
        if cut { q.truncate(i) } else { q[i] = byte }
        if let Ok(r) = http::AnnounceRequest::parse_query(&q) {
            prop_assert_eq!(http::AnnounceRequest::parse_query(r.to_query().as_bytes()), Ok(r));
        }
    }

    #[test]
    fn http_bodies_never_panic(body in vec(any::<u8>(), 0..600)) {
        let _ = http::AnnounceResponse::decode(&body);
        let _ = http::ScrapeResponse::decode(&body);
    }

    #[test]
    fn mutated_http_bodies_never_panic(pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut body = b"d8:completei2e10:incompletei1e8:intervali1759e12:min intervali879e5:peersld2:ip9:192.0.2.1\
4:porti6881eee6:peers618:aaaaaaaaaaaaaaaappe".to_vec();
        let i = pos.index(body.len());
        body[i] = byte;
        if let Ok(http::Reply::Success(r)) = http::AnnounceResponse::decode(&body) {
            prop_assert_eq!(
                http::AnnounceResponse::decode(&r.encode_compact()),
                Ok(http::Reply::Success(r))
            );
        }
    }
}
