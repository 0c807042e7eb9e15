#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Property tests: every message type, encoded then decoded, is itself again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use tracker_proto::http::{self, Reply};
use tracker_proto::udp::{self, AddressFamily, Request, Response, ResponsePeers};
use tracker_proto::{ConnectionId, Event, InfoHashV1, PeerId, ScrapeStats, TransactionId, MAX_NUMWANT};

fn info_hash() -> impl Strategy<Value = InfoHashV1> {
    any::<[u8; 20]>().prop_map(InfoHashV1)
}

fn peer_id() -> impl Strategy<Value = PeerId> {
    any::<[u8; 20]>().prop_map(PeerId)
}

fn event() -> impl Strategy<Value = Event> {
    prop::sample::select(Event::ALL.to_vec())
}

fn v4() -> impl Strategy<Value = SocketAddrV4> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(Ipv4Addr::from(ip), port))
}

/// IPv6 endpoints as the wire carries them: no flow info, no scope.
fn v6() -> impl Strategy<Value = SocketAddrV6> {
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0))
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn stats() -> impl Strategy<Value = ScrapeStats> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(complete, downloaded, incomplete)| ScrapeStats {
        complete,
        downloaded,
        incomplete,
    })
}

prop_compose! {
    fn http_announce()(
        info_hash in info_hash(),
        peer_id in peer_id(),
        port in any::<u16>(),
        (uploaded, downloaded, left) in any::<(u64, u64, u64)>(),
        event in event(),
        (compact, no_peer_id) in any::<(bool, bool)>(),
        numwant in option::of(0..=MAX_NUMWANT),
        key in option::of(vec(any::<u8>(), 0..=http::MAX_KEY_LEN)),
        trackerid in option::of(vec(any::<u8>(), 0..=http::MAX_TRACKER_ID_LEN)),
        ip in option::of(ip()),
        ipv4 in option::of(v4()),
        ipv6 in option::of(v6()),
    ) -> http::AnnounceRequest {
        http::AnnounceRequest {
            info_hash, peer_id, port, uploaded, downloaded, left, event, compact, no_peer_id, numwant, key,
            trackerid, ip, ipv4, ipv6,
        }
    }
}

prop_compose! {
    fn http_announce_response()(
        interval in any::<u32>(),
        min_interval in option::of(any::<u32>()),
        tracker_id in option::of(vec(any::<u8>(), 0..40)),
        complete in option::of(any::<u32>()),
        incomplete in option::of(any::<u32>()),
        peers in vec(v4(), 0..60),
        peers6 in vec(v6(), 0..30),
        warning in option::of(".{0,40}"),
    ) -> http::AnnounceResponse {
        http::AnnounceResponse { interval, min_interval, tracker_id, complete, incomplete, peers, peers6, warning }
    }
}

prop_compose! {
    fn udp_announce()(
        connection_id in any::<u64>(),
        transaction_id in any::<u32>(),
        info_hash in info_hash(),
        peer_id in peer_id(),
        (downloaded, left, uploaded) in any::<(u64, u64, u64)>(),
        event in event(),
        ip in option::of(any::<[u8; 4]>().prop_filter("0.0.0.0 means none", |b| *b != [0; 4])),
        key in any::<u32>(),
        num_want in option::of(0..=MAX_NUMWANT),
        port in any::<u16>(),
        url_data in option::of(vec(any::<u8>(), 0..=udp::MAX_URL_DATA)),
    ) -> udp::AnnounceRequest {
        udp::AnnounceRequest {
            connection_id: ConnectionId(connection_id),
            transaction_id: TransactionId(transaction_id),
            info_hash, peer_id, downloaded, left, uploaded, event,
            ip: ip.map(Ipv4Addr::from),
            key, num_want, port, url_data,
        }
    }
}

fn udp_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        any::<u32>().prop_map(|t| Request::Connect(udp::ConnectRequest {
            transaction_id: TransactionId(t)
        })),
        udp_announce().prop_map(Request::Announce),
        (
            any::<u64>(),
            any::<u32>(),
            vec(info_hash(), 1..=udp::MAX_SCRAPE_HASHES)
        )
            .prop_map(|(c, t, h)| {
                Request::Scrape(udp::ScrapeRequest {
                    connection_id: ConnectionId(c),
                    transaction_id: TransactionId(t),
                    info_hashes: h,
                })
            }),
    ]
}

fn udp_response() -> impl Strategy<Value = Response> {
    let peers = prop_oneof![
        vec(v4(), 0..80).prop_map(ResponsePeers::V4),
        vec(v6(), 0..30).prop_map(ResponsePeers::V6)
    ];
    prop_oneof![
        (any::<u32>(), any::<u64>()).prop_map(|(t, c)| Response::Connect(udp::ConnectResponse {
            transaction_id: TransactionId(t),
            connection_id: ConnectionId(c),
        })),
        (any::<u32>(), any::<(u32, u32, u32)>(), peers).prop_map(
            |(t, (interval, leechers, seeders), peers)| {
                Response::Announce(udp::AnnounceResponse {
                    transaction_id: TransactionId(t),
                    interval,
                    leechers,
                    seeders,
                    peers,
                })
            }
        ),
        (any::<u32>(), vec(stats(), 0..=udp::MAX_SCRAPE_HASHES)).prop_map(|(t, stats)| Response::Scrape(
            udp::ScrapeResponse {
                transaction_id: TransactionId(t),
                stats
            }
        )),
        (any::<u32>(), ".{0,100}").prop_map(|(t, message)| Response::Error(udp::ErrorResponse {
            transaction_id: TransactionId(t),
            message,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn http_announce_request_round_trips(r in http_announce()) {
        let q = r.to_query();
        prop_assert!(q.len() <= http::MAX_QUERY_LEN);
        prop_assert!(q.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%&=".contains(&b)), "{}", q);
        prop_assert_eq!(http::AnnounceRequest::parse_query(q.as_bytes()), Ok(r.clone()));
        let url = r.url("http://tracker.example/announce?passkey=x");
        let (_, query) = url.split_once('?').unwrap();
        prop_assert_eq!(http::AnnounceRequest::parse_query(query.as_bytes()), Ok(r));
    }

    #[test]
    fn http_scrape_request_round_trips(info_hashes in vec(info_hash(), 0..=http::MAX_SCRAPE_HASHES)) {
        let r = http::ScrapeRequest { info_hashes };
        let q = r.to_query();
        prop_assert!(q.len() <= http::MAX_QUERY_LEN);
        prop_assert_eq!(http::ScrapeRequest::parse_query(q.as_bytes()), Ok(r));
    }

    #[test]
    fn http_announce_response_round_trips_compact(r in http_announce_response()) {
        let body = r.encode_compact();
        prop_assert!(bencode::decode(&body).is_ok(), "canonical bencode");
        prop_assert_eq!(http::AnnounceResponse::decode(&body), Ok(Reply::Success(r)));
    }

    #[test]
    fn http_announce_response_round_trips_dictionary(r in http_announce_response(), with_ids in any::<bool>()) {
        let id = PeerId(*b"-BS0100-abcdefghijkl");
        let body = r.encode_dictionary(|_| with_ids.then_some(id));
        prop_assert!(bencode::decode(&body).is_ok(), "canonical bencode");
        prop_assert_eq!(http::AnnounceResponse::decode(&body), Ok(Reply::Success(r)));
    }

    #[test]
    fn http_scrape_response_round_trips(files in btree_map(info_hash(), stats(), 0..50)) {
        let r = http::ScrapeResponse { files: files.into_iter().collect::<BTreeMap<_, _>>() };
        prop_assert_eq!(http::ScrapeResponse::decode(&r.encode()), Ok(Reply::Success(r)));
    }

    #[test]
    fn http_failure_round_trips(reason in ".{0,200}") {
        let f = http::FailureResponse::new(reason);
        prop_assert_eq!(http::AnnounceResponse::decode(&f.encode()), Ok(Reply::Failure(f.clone())));
        prop_assert_eq!(http::ScrapeResponse::decode(&f.encode()), Ok(Reply::Failure(f)));
    }

    #[test]
    fn udp_request_round_trips(r in udp_request()) {
        let mut out = Vec::new();
        r.write(&mut out);
        if let Request::Announce(a) = &r {
            prop_assert!(out.len() >= udp::ANNOUNCE_REQUEST_LEN);
            prop_assert_eq!(a.url_data.is_none(), out.len() == udp::ANNOUNCE_REQUEST_LEN);
        }
        prop_assert_eq!(Request::parse(&out), Ok(r));
    }

    #[test]
    fn udp_response_round_trips(r in udp_response()) {
        let mut out = Vec::new();
        r.write(&mut out);
        let family = match &r {
            Response::Announce(udp::AnnounceResponse { peers: ResponsePeers::V6(_), .. }) => AddressFamily::V6,
            _ => AddressFamily::V4,
        };
        prop_assert_eq!(Response::parse(&out, family), Ok(r));
    }
}
