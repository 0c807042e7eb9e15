#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Decoders against bytes captured from real programs on loopback (see `tests/fixtures/README.md`): announce
//! and scrape requests from libtorrent 2.0.8, Transmission 3.00 and aria2 1.36, responses from opentracker.

use std::net::SocketAddrV4;

use tracker_proto::http::{self, Reply};
use tracker_proto::udp::{self, AddressFamily, Request, RequestParseError, Response, ResponsePeers};
use tracker_proto::{ConnectionId, Event, InfoHashV1, PeerId, ScrapeStats, TransactionId};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/", $name)).as_slice()
    };
}

/// The fixture torrent's info-hash (`capture.json`).
fn info_hash() -> InfoHashV1 {
    InfoHashV1::from_text("5ef90102fde701097062ee9288525906223f01a8").unwrap()
}

/// What the recording UDP tracker handed out as connection id.
const RECORDER_CONNECTION_ID: ConnectionId = ConnectionId(0x1122_3344_5566_7788);
/// The fixture payload's size: every client was a fresh leecher.
const LEFT: u64 = 1_000_000;

fn announce(query: &[u8]) -> http::AnnounceRequest {
    let r = http::AnnounceRequest::parse_query(query).unwrap();
    // What we decode, we encode so that it decodes the same.
    assert_eq!(
        http::AnnounceRequest::parse_query(r.to_query().as_bytes()).unwrap(),
        r
    );
    r
}

#[test]
fn libtorrent_http_announces() {
    let started = announce(fixture!("libtorrent-http-announce-started.query"));
    assert_eq!(started.info_hash, info_hash());
    assert_eq!(started.peer_id.azureus_prefix(), Some("-LT2080-"));
    assert_eq!(started.port, 46881);
    assert_eq!((started.uploaded, started.downloaded, started.left), (0, 0, LEFT));
    assert_eq!(started.event, Event::Started);
    assert!(started.compact);
    assert!(started.no_peer_id);
    assert_eq!(started.numwant, Some(200));
    assert_eq!(started.key.as_deref(), Some(&b"61A17783"[..]));
    assert_eq!((started.trackerid.as_ref(), started.ip), (None, None));

    let stopped = announce(fixture!("libtorrent-http-announce-stopped.query"));
    assert_eq!(stopped.event, Event::Stopped);
    assert_eq!(stopped.numwant, Some(0));
    assert_eq!(stopped.peer_id, started.peer_id);
}

#[test]
fn transmission_http_announces_and_scrape() {
    let started = announce(fixture!("transmission-http-announce-started.query"));
    assert_eq!(started.info_hash, info_hash());
    assert_eq!(started.peer_id, PeerId(*b"-TR3000-u43jooybnzsh"));
    assert_eq!(started.port, 46882);
    assert_eq!(started.left, LEFT);
    assert_eq!(started.event, Event::Started);
    assert!(started.compact);
    assert!(!started.no_peer_id);
    assert_eq!(started.numwant, Some(80));
    assert_eq!(started.key.as_deref(), Some(&b"739ffae2"[..]));

    let stopped = announce(fixture!("transmission-http-announce-stopped.query"));
    assert_eq!((stopped.event, stopped.numwant), (Event::Stopped, Some(0)));

    let scrape = http::ScrapeRequest::parse_query(fixture!("transmission-http-scrape.query")).unwrap();
    assert_eq!(scrape.info_hashes, vec![info_hash()]);
}

#[test]
fn aria2_http_announces_with_binary_peer_id_and_key() {
    let started = announce(fixture!("aria2-http-announce-started.query"));
    assert_eq!(started.info_hash, info_hash());
    assert!(started.peer_id.0.starts_with(b"A2-1-36-0-"));
    assert_eq!(started.port, 46883);
    assert_eq!(started.left, LEFT);
    assert_eq!(started.event, Event::Started);
    assert_eq!(started.numwant, Some(50));
    assert!(started.no_peer_id);
    // aria2's key is the last 8 (binary) bytes of its peer id.
    assert_eq!(started.key.as_deref(), started.peer_id.0.get(12..));

    let stopped = announce(fixture!("aria2-http-announce-stopped.query"));
    assert_eq!((stopped.event, stopped.numwant), (Event::Stopped, Some(0)));
}

fn udp_announce(packet: &[u8]) -> udp::AnnounceRequest {
    let Ok(Request::Announce(a)) = Request::parse(packet) else {
        panic!("not an announce: {:?}", Request::parse(packet))
    };
    assert_eq!(a.connection_id, RECORDER_CONNECTION_ID);
    assert_eq!(a.info_hash, info_hash());
    assert_eq!((a.downloaded, a.left, a.uploaded), (0, LEFT, 0));
    assert_eq!(a.ip, None);
    // Writing it back gives the same bytes, except aria2's old-style 2-byte "extensions" field, which BEP 41
    // reads as EndOfOptions.
    let mut out = Vec::new();
    a.write(&mut out);
    if packet.len() == 100 {
        assert_eq!(packet.get(98..), Some(&[0u8, 0][..]));
        assert_eq!(out, packet.get(..98).unwrap());
    } else {
        assert_eq!(out, packet);
    }
    a
}

#[test]
fn connect_requests_from_every_client() {
    for packet in [
        fixture!("libtorrent-udp-connect.bin"),
        fixture!("transmission-udp-connect.bin"),
        fixture!("aria2-udp-connect.bin"),
    ] {
        let Ok(Request::Connect(c)) = Request::parse(packet) else {
            panic!("{packet:?}")
        };
        let mut out = Vec::new();
        c.write(&mut out);
        assert_eq!(out, packet);
    }
}

#[test]
fn libtorrent_udp_announce_carries_bep41_url_data() {
    let started = udp_announce(fixture!("libtorrent-udp-announce-started.bin"));
    assert_eq!(started.event, Event::Started);
    assert_eq!(started.peer_id.azureus_prefix(), Some("-LT2080-"));
    assert_eq!(started.port, 46881);
    assert_eq!(started.num_want, Some(200));
    assert_eq!(started.url_data.as_deref(), Some(&b"/announce"[..]));
    // BEP 7: "Clients that resolve hostnames to v4 and v6 ... should use the same key": libtorrent's UDP key is
    // its HTTP key.
    let http = announce(fixture!("libtorrent-http-announce-started.query"));
    assert_eq!(format!("{:08X}", started.key).as_bytes(), http.key.unwrap());

    let stopped = udp_announce(fixture!("libtorrent-udp-announce-stopped.bin"));
    assert_eq!((stopped.event, stopped.num_want), (Event::Stopped, Some(0)));
}

#[test]
fn transmission_udp_announce_is_exactly_98_bytes() {
    let packet = fixture!("transmission-udp-announce-started.bin");
    assert_eq!(packet.len(), udp::ANNOUNCE_REQUEST_LEN);
    let started = udp_announce(packet);
    assert_eq!(started.event, Event::Started);
    assert_eq!(started.peer_id, PeerId(*b"-TR3000-u43jooybnzsh"));
    assert_eq!(started.port, 46882);
    assert_eq!(started.num_want, Some(80));
    assert_eq!(started.key, 0x739f_fae2);
    assert_eq!(started.url_data, None);
    let stopped = udp_announce(fixture!("transmission-udp-announce-stopped.bin"));
    assert_eq!(stopped.event, Event::Stopped);
}

#[test]
fn aria2_udp_announce_with_trailing_extension_bytes() {
    let started = udp_announce(fixture!("aria2-udp-announce-started.bin"));
    assert_eq!(started.event, Event::Started);
    assert_eq!(started.port, 46883);
    assert_eq!(started.num_want, Some(50));
    assert_eq!(started.url_data, None);
    let stopped = udp_announce(fixture!("aria2-udp-announce-stopped.bin"));
    assert_eq!(stopped.event, Event::Stopped);
}

#[test]
fn udp_scrapes() {
    for packet in [
        fixture!("libtorrent-udp-scrape.bin"),
        fixture!("transmission-udp-scrape.bin"),
    ] {
        let Ok(Request::Scrape(s)) = Request::parse(packet) else {
            panic!("{packet:?}")
        };
        assert_eq!(s.connection_id, RECORDER_CONNECTION_ID);
        assert_eq!(s.info_hashes, vec![info_hash()]);
        let mut out = Vec::new();
        s.write(&mut out);
        assert_eq!(out, packet);
    }
}

fn peer(s: &str) -> SocketAddrV4 {
    s.parse().unwrap()
}

#[test]
fn opentracker_http_responses() {
    let Ok(Reply::Success(r)) =
        http::AnnounceResponse::decode(fixture!("opentracker-http-announce-compact.bencode"))
    else {
        panic!()
    };
    assert_eq!((r.interval, r.min_interval), (1759, Some(879)));
    assert_eq!((r.complete, r.incomplete), (Some(2), Some(1)));
    assert_eq!(
        r.peers,
        vec![
            peer("127.0.0.1:6003"),
            peer("127.0.0.1:6002"),
            peer("127.0.0.1:6001")
        ]
    );
    assert!(r.peers6.is_empty());
    // Our encoding differs only by opentracker's extra `downloaded` key.
    let theirs = fixture!("opentracker-http-announce-compact.bencode");
    let extra = theirs.windows(16).position(|w| w == b"10:downloadedi0e").unwrap();
    let mut expected = theirs.to_vec();
    expected.drain(extra..extra + 16);
    assert_eq!(r.encode_compact(), expected);

    let Ok(Reply::Success(s)) = http::ScrapeResponse::decode(fixture!("opentracker-http-scrape.bencode"))
    else {
        panic!()
    };
    assert_eq!(s.files.len(), 1);
    assert_eq!(
        s.files.get(&info_hash()),
        Some(&ScrapeStats {
            complete: 2,
            downloaded: 0,
            incomplete: 1
        })
    );
    assert_eq!(s.encode(), fixture!("opentracker-http-scrape.bencode"));

    let failure = fixture!("opentracker-http-announce-failure.bencode");
    let Ok(Reply::Failure(f)) = http::AnnounceResponse::decode(failure) else {
        panic!()
    };
    assert_eq!(
        f.reason,
        "Requested download is not authorized for use with this tracker."
    );
    assert_eq!(f.encode(), failure);

    // opentracker answers compact=0 with an HTML page: a clean error, not a panic.
    let html = http::AnnounceResponse::decode(fixture!("opentracker-http-announce-nocompact.html"));
    assert!(matches!(html, Err(e) if !e.is_incomplete()));
}

#[test]
fn opentracker_udp_responses() {
    let parse = |b: &[u8]| {
        let r = Response::parse(b, AddressFamily::V4).unwrap();
        let mut out = Vec::new();
        r.write(&mut out);
        assert_eq!(out, b);
        r
    };
    let Response::Connect(c) = parse(fixture!("opentracker-udp-connect-response.bin")) else {
        panic!()
    };
    assert_eq!(c.transaction_id, TransactionId(0x0bad_cafe));

    let Response::Announce(a) = parse(fixture!("opentracker-udp-announce-response.bin")) else {
        panic!()
    };
    assert_eq!(a.transaction_id, TransactionId(0x0bad_caff));
    assert_eq!((a.interval, a.leechers, a.seeders), (0x6fc, 2, 2));
    assert_eq!(
        a.peers,
        ResponsePeers::V4(vec![
            peer("127.0.0.1:6003"),
            peer("127.0.0.1:6004"),
            peer("127.0.0.1:6002"),
            peer("127.0.0.1:6001"),
        ])
    );

    let Response::Scrape(s) = parse(fixture!("opentracker-udp-scrape-response.bin")) else {
        panic!()
    };
    assert_eq!(s.transaction_id, TransactionId(0x0bad_d00d));
    let one = ScrapeStats {
        complete: 2,
        downloaded: 0,
        incomplete: 2,
    };
    assert_eq!(s.stats, vec![one, one]);

    // opentracker answers an announce for a hash off its whitelist with a bare 8-byte announce header, which
    // BEP 15 clients must reject ("Check whether the packet is at least 20 bytes").
    assert_eq!(
        Response::parse(
            fixture!("opentracker-udp-announce-not-whitelisted.bin"),
            AddressFamily::V4
        ),
        Err(udp::ResponseParseError::TooShort {
            what: "announce response",
            len: 8,
            min: 20
        })
    );
}

#[test]
fn every_truncation_of_every_fixture_is_handled() {
    let requests: [&[u8]; 13] = [
        fixture!("libtorrent-udp-connect.bin"),
        fixture!("libtorrent-udp-announce-started.bin"),
        fixture!("libtorrent-udp-announce-stopped.bin"),
        fixture!("libtorrent-udp-scrape.bin"),
        fixture!("transmission-udp-connect.bin"),
        fixture!("transmission-udp-announce-started.bin"),
        fixture!("transmission-udp-announce-stopped.bin"),
        fixture!("transmission-udp-scrape.bin"),
        fixture!("aria2-udp-connect.bin"),
        fixture!("aria2-udp-announce-started.bin"),
        fixture!("aria2-udp-announce-stopped.bin"),
        fixture!("opentracker-udp-announce-response.bin"),
        fixture!("opentracker-udp-scrape-response.bin"),
    ];
    for packet in requests {
        for end in 0..packet.len() {
            let cut = packet.get(..end).unwrap();
            match Request::parse(cut) {
                Ok(_) => {}
                Err(RequestParseError::Sendable { .. }) => assert!(end >= 16),
                Err(RequestParseError::Unsendable(_)) => {}
            }
            let _ = Response::parse(cut, AddressFamily::V4);
            let _ = Response::parse(cut, AddressFamily::V6);
        }
    }
    let bodies: [&[u8]; 3] = [
        fixture!("opentracker-http-announce-compact.bencode"),
        fixture!("opentracker-http-scrape.bencode"),
        fixture!("opentracker-http-announce-failure.bencode"),
    ];
    for body in bodies {
        for end in 0..body.len() {
            let cut = body.get(..end).unwrap();
            let a = http::AnnounceResponse::decode(cut).unwrap_err();
            let s = http::ScrapeResponse::decode(cut).unwrap_err();
            // A prefix of a valid body is "incomplete", never "malformed" (the empty body included).
            assert!(a.is_incomplete() && s.is_incomplete(), "{end}: {a} / {s}");
        }
    }
    let queries: [&[u8]; 7] = [
        fixture!("libtorrent-http-announce-started.query"),
        fixture!("libtorrent-http-announce-stopped.query"),
        fixture!("transmission-http-announce-started.query"),
        fixture!("transmission-http-announce-stopped.query"),
        fixture!("transmission-http-scrape.query"),
        fixture!("aria2-http-announce-started.query"),
        fixture!("aria2-http-announce-stopped.query"),
    ];
    for query in queries {
        for end in 0..query.len() {
            let cut = query.get(..end).unwrap();
            let _ = http::AnnounceRequest::parse_query(cut);
            let _ = http::ScrapeRequest::parse_query(cut);
        }
    }
}
