#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! The KRPC codec against real bytes: the BEP 5 examples verbatim, packets captured from libtorrent 2.0.8
//! and aria2 1.36 on loopback (`tests/fixtures/capture_*.py`), a round-trip property over every message
//! kind, and malformed input.

use std::net::SocketAddr;

use dht::krpc::{
    decode, Body, DecodeErrorKind, KrpcError, Message, NodeInfo, Query, QueryKind, Response, Want,
    BLOOM_BYTES, MAX_PACKET,
};
use dht::NodeId;
use proptest::prelude::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn id(s: &[u8; 20]) -> NodeId {
    NodeId(*s)
}

fn response(m: &Message) -> &Response {
    match &m.body {
        Body::Response(r) => r,
        other => panic!("not a response: {other:?}"),
    }
}

fn query(m: &Message) -> &Query {
    match &m.body {
        Body::Query(q) => q,
        other => panic!("not a query: {other:?}"),
    }
}

/// Decodes and re-encodes to exactly the same bytes (the examples are canonical bencode).
fn exact(bytes: &[u8]) -> Message {
    let m = decode(bytes).unwrap();
    assert_eq!(m.encode(), bytes, "{m:?}");
    m
}

#[test]
fn bep5_examples_decode_and_reencode_verbatim() {
    // ping
    let m = exact(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe");
    assert_eq!(query(&m).kind, QueryKind::Ping);
    let m = exact(b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re");
    assert_eq!(response(&m).id, id(b"mnopqrstuvwxyz123456"));
    // find_node
    let m = exact(
        b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
    );
    assert_eq!(
        query(&m).kind,
        QueryKind::FindNode {
            target: id(b"mnopqrstuvwxyz123456"),
            want: None
        }
    );
    // get_peers
    let m = exact(
        b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
    );
    assert!(
        matches!(query(&m).kind, QueryKind::GetPeers { info_hash, .. } if &info_hash == b"mnopqrstuvwxyz123456")
    );
    let m =
        exact(b"d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re");
    let r = response(&m);
    assert_eq!(r.token.as_deref(), Some(&b"aoeusnth"[..]));
    assert_eq!(r.values.len(), 2);
    assert_eq!(r.values[0], "97.120.106.101:11893".parse::<SocketAddr>().unwrap()); // "axje.u"
                                                                                    // announce_peer (the bencoded example, without the page's "<br />")
    let m = exact(b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe");
    assert_eq!(
        query(&m).kind,
        QueryKind::AnnouncePeer {
            info_hash: *b"mnopqrstuvwxyz123456",
            port: 6881,
            implied_port: false,
            token: b"aoeusnth".to_vec(),
            seed: false
        }
    );
    // error
    let m = exact(b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee");
    assert_eq!(
        m.body,
        Body::Error(KrpcError {
            code: 201,
            message: "A Generic Error Ocurred".into()
        })
    );
}

#[test]
fn bep5_placeholder_node_strings_are_bad_compact_lengths() {
    // The BEP's find_node and get_peers replies show `"nodes": "def456..."`, a 9-byte placeholder: compact
    // node info is "a 26-byte string" per node, so it is refused, naming the key.
    for bytes in [
        &b"d1:rd2:id20:0123456789abcdefghij5:nodes9:def456...e1:t2:aa1:y1:re"[..],
        &b"d1:rd2:id20:abcdefghij01234567895:nodes9:def456...5:token8:aoeusnthe1:t2:aa1:y1:re"[..],
    ] {
        assert_eq!(
            decode(bytes).unwrap_err().kind,
            DecodeErrorKind::BadLength {
                what: "r.nodes",
                len: 9,
                expected: "a multiple of 26"
            }
        );
    }
    // With one real 26-byte node in its place, the same reply decodes.
    let mut b = b"d1:rd2:id20:0123456789abcdefghij5:nodes26:".to_vec();
    b.extend_from_slice(b"NNNNNNNNNNNNNNNNNNNN\x7f\x00\x00\x01\x1a\xe1");
    b.extend_from_slice(b"e1:t2:aa1:y1:re");
    let m = exact(&b);
    assert_eq!(
        response(&m).nodes.as_deref(),
        Some(
            &[NodeInfo {
                id: id(b"NNNNNNNNNNNNNNNNNNNN"),
                addr: "127.0.0.1:6881".parse().unwrap()
            }][..]
        )
    );
}

#[test]
fn libtorrent_responses_decode_with_ip_and_version() {
    let first = decode(&fixture("libtorrent-ping-response.bin")).unwrap();
    let lt_id = response(&first).id;
    let ours = first.ip.expect("libtorrent sends `ip`");
    assert_eq!(ours.ip(), std::net::IpAddr::from([127, 0, 0, 1]));
    for name in [
        "libtorrent-ping-response.bin",
        "libtorrent-find_node-response.bin",
        "libtorrent-get_peers-response.bin",
        "libtorrent-get_peers-values-response.bin",
        "libtorrent-announce_peer-response.bin",
    ] {
        let m = decode(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.version.as_deref(), Some(&b"LT\x02\x08"[..]), "{name}");
        assert_eq!(m.ip, Some(ours), "{name}: BEP 42 `ip` is the querier's address");
        assert_eq!(response(&m).id, lt_id, "{name}");
        // libtorrent adds `r.p` (its port), which we do not model: re-encoding drops it and nothing else.
        let again = decode(&m.encode()).unwrap();
        assert_eq!(again, m);
    }
    // It had just heard from us: its find_node answer holds our node, at the address it reports in `ip`.
    let m = decode(&fixture("libtorrent-find_node-response.bin")).unwrap();
    let nodes = response(&m).nodes.clone().unwrap();
    assert_eq!(nodes[0].id, id(b"BSfixtureBSfixture01"));
    assert_eq!(nodes[0].addr, ours);
    let m = decode(&fixture("libtorrent-get_peers-values-response.bin")).unwrap();
    let r = response(&m);
    assert_eq!(
        r.token.as_ref().map(Vec::len),
        Some(4),
        "libtorrent's tokens are 4 bytes"
    );
    assert_eq!(r.values, vec!["127.0.0.1:6881".parse::<SocketAddr>().unwrap()]);
    assert_eq!(
        r.nodes.as_ref().map(Vec::len),
        Some(1),
        "values and nodes together (BEP 32)"
    );
    assert_eq!(m.transaction, b"ee");
}

#[test]
fn libtorrent_errors_carry_an_r_dict_we_ignore() {
    // libtorrent puts its id in an `r` dict even in errors; the error itself is what counts.
    let m = decode(&fixture("libtorrent-bad-token-error.bin")).unwrap();
    assert_eq!(
        m.body,
        Body::Error(KrpcError {
            code: 203,
            message: "invalid token".into()
        })
    );
    let m = decode(&fixture("libtorrent-unknown-method-error.bin")).unwrap();
    assert!(matches!(m.body, Body::Error(KrpcError { code: 203, .. })));
}

#[test]
fn libtorrent_and_aria2_queries_decode() {
    let m = decode(&fixture("libtorrent-get_peers-query.bin")).unwrap();
    assert!(matches!(query(&m).kind, QueryKind::GetPeers { .. }));
    assert_eq!(m.encode(), fixture("libtorrent-get_peers-query.bin"));
    let bytes = fixture("libtorrent-announce_peer-query.bin");
    let m = decode(&bytes).unwrap();
    // libtorrent writes `seed = 0`; we write `seed` only when it is 1: the same message, 9 bytes shorter.
    let mut without_seed = bytes.clone();
    let at = bytes
        .windows(9)
        .position(|w| w == b"4:seedi0e")
        .expect("seed = 0");
    without_seed.drain(at..at + 9);
    assert_eq!(m.encode(), without_seed);
    match &query(&m).kind {
        QueryKind::AnnouncePeer {
            info_hash,
            implied_port,
            token,
            seed,
            port,
        } => {
            assert_eq!(info_hash, &std::array::from_fn::<u8, 20, _>(|i| i as u8));
            assert!(*implied_port, "libtorrent announces with implied_port = 1");
            assert_eq!((token.as_slice(), *seed, *port), (&b"tk"[..], false, 47958));
        }
        other => panic!("{other:?}"),
    }
    for name in [
        "aria2-ping-query.bin",
        "aria2-get_peers-query.bin",
        "aria2-announce_peer-query.bin",
        "aria2-ping-response.bin",
    ] {
        let bytes = fixture(name);
        let m = decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            m.transaction.len(),
            if name.ends_with("response.bin") { 2 } else { 4 }
        );
        assert_eq!(m.version.as_deref(), Some(&b"A2\x00\x03"[..]));
        assert_eq!(m.encode(), bytes, "{name} re-encodes verbatim");
    }
    let m = decode(&fixture("aria2-announce_peer-query.bin")).unwrap();
    assert!(matches!(
        query(&m).kind,
        QueryKind::AnnouncePeer {
            port: 48519,
            implied_port: false,
            ..
        }
    ));
}

#[test]
fn every_prefix_of_every_fixture_is_an_error_not_a_panic() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(decode(&bytes).is_ok(), "{path:?}");
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "{path:?} cut at {cut}");
        }
        // Flip each byte: never a panic (some flips stay valid).
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            let _ = decode(&b);
        }
        n += 1;
    }
    assert!(n >= 10, "fixtures found: {n}");
}

#[test]
fn wrong_types_and_sizes_are_named() {
    let cases: &[(&[u8], DecodeErrorKind)] = &[
        (
            b"d1:ad2:id20:abcdefghij01234567896:targeti1ee1:q9:find_node1:t2:aa1:y1:qe",
            DecodeErrorKind::WrongType {
                what: "a.target",
                found: "integer",
                expected: "string",
            },
        ),
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q9:get_peers1:t2:aa1:y1:qe",
            DecodeErrorKind::Missing { what: "a.info_hash" },
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567896:values3:abce1:t2:aa1:y1:re",
            DecodeErrorKind::WrongType {
                what: "r.values",
                found: "string",
                expected: "list",
            },
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567896:nodes65:xxxxxe1:t2:aa1:y1:re",
            DecodeErrorKind::BadLength {
                what: "r.nodes6",
                len: 5,
                expected: "a multiple of 38",
            },
        ),
        (
            b"d1:rd2:id20:abcdefghij01234567894:BFsd3:abce1:t2:aa1:y1:re",
            DecodeErrorKind::BadLength {
                what: "r.BFsd",
                len: 3,
                expected: "256",
            },
        ),
        (
            b"d1:e3:abc1:t2:aa1:y1:ee",
            DecodeErrorKind::WrongType {
                what: "e",
                found: "string",
                expected: "list",
            },
        ),
        (
            b"d1:ti1e1:y1:qe",
            DecodeErrorKind::WrongType {
                what: "t",
                found: "integer",
                expected: "string",
            },
        ),
        (
            b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t33:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1:y1:qe",
            DecodeErrorKind::BadLength {
                what: "t",
                len: 33,
                expected: "at most 32",
            },
        ),
    ];
    for (bytes, kind) in cases {
        let e = decode(bytes).unwrap_err();
        assert_eq!(&e.kind, kind, "{}", String::from_utf8_lossy(bytes));
        // Every message names where it failed.
        assert!(e.to_string().starts_with("krpc: "));
    }
    // Trailing garbage and non-bencode are bencode errors with an offset.
    assert!(matches!(
        decode(b"d1:t2:aa1:y1:qexx").unwrap_err().kind,
        DecodeErrorKind::Bencode(_)
    ));
    assert!(matches!(
        decode(b"").unwrap_err().kind,
        DecodeErrorKind::Bencode(_)
    ));
    // Oversized: refused before parsing, whatever it holds.
    let mut big = b"d1:rd2:id20:abcdefghij01234567895:nodes1560:".to_vec();
    big.extend(std::iter::repeat_n(b'x', 1560));
    big.extend_from_slice(b"e1:t2:aa1:y1:re");
    assert!(matches!(
        decode(&big).unwrap_err().kind,
        DecodeErrorKind::TooLarge {
            limit: MAX_PACKET,
            ..
        }
    ));
}

// ----- round-trip property -----

fn arb_id() -> impl Strategy<Value = NodeId> {
    any::<[u8; 20]>().prop_map(NodeId)
}

fn arb_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn arb_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port)))
}

fn arb_addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![arb_v4(), arb_v6()]
}

fn arb_want() -> impl Strategy<Value = Option<Want>> {
    proptest::option::of((any::<bool>(), any::<bool>()).prop_map(|(n4, n6)| Want { n4, n6 }))
}

fn arb_query_kind() -> impl Strategy<Value = QueryKind> {
    prop_oneof![
        Just(QueryKind::Ping),
        (arb_id(), arb_want()).prop_map(|(target, want)| QueryKind::FindNode { target, want }),
        (any::<[u8; 20]>(), arb_want(), any::<bool>(), any::<bool>()).prop_map(
            |(info_hash, want, noseed, scrape)| QueryKind::GetPeers {
                info_hash,
                want,
                noseed,
                scrape
            }
        ),
        (
            any::<[u8; 20]>(),
            any::<u16>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..=64),
            any::<bool>()
        )
            .prop_map(
                |(info_hash, port, implied_port, token, seed)| QueryKind::AnnouncePeer {
                    info_hash,
                    port,
                    implied_port,
                    token,
                    seed
                }
            ),
        "[a-z_]{1,32}"
            .prop_filter("not a known method", |m| {
                !["ping", "find_node", "get_peers", "announce_peer"].contains(&m.as_str())
            })
            .prop_map(|m| QueryKind::Unknown {
                method: m.into_bytes()
            }),
    ]
}

fn arb_nodes(v6: bool) -> impl Strategy<Value = Option<Vec<NodeInfo>>> {
    let addr = if v6 { arb_v6().boxed() } else { arb_v4().boxed() };
    proptest::option::of(proptest::collection::vec(
        (arb_id(), addr).prop_map(|(id, addr)| NodeInfo { id, addr }),
        0..8,
    ))
}

fn arb_bloom() -> impl Strategy<Value = Option<Box<[u8; BLOOM_BYTES]>>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), BLOOM_BYTES).prop_map(|v| {
        let mut b = [0u8; BLOOM_BYTES];
        b.copy_from_slice(&v);
        Box::new(b)
    }))
}

fn arb_response() -> impl Strategy<Value = Response> {
    (
        arb_id(),
        arb_nodes(false),
        arb_nodes(true),
        proptest::collection::vec(arb_addr(), 0..10),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=64)),
        arb_bloom(),
        arb_bloom(),
    )
        .prop_map(
            |(id, nodes, nodes6, values, token, seeds_bloom, peers_bloom)| Response {
                id,
                nodes,
                nodes6,
                values,
                token,
                seeds_bloom,
                peers_bloom,
            },
        )
}

fn arb_message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        (arb_id(), arb_query_kind()).prop_map(|(id, kind)| Body::Query(Query { id, kind })),
        arb_response().prop_map(Body::Response),
        (any::<i64>(), ".{0,40}").prop_map(|(code, message)| Body::Error(KrpcError { code, message })),
    ];
    (
        proptest::collection::vec(any::<u8>(), 0..=32),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..=16)),
        proptest::option::of(arb_addr()),
        any::<bool>(),
        body,
    )
        .prop_map(|(transaction, version, ip, read_only, body)| Message {
            transaction,
            version,
            ip,
            read_only,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_kind_round_trips(m in arb_message()) {
        let bytes = m.encode();
        if bytes.len() <= MAX_PACKET {
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.encode(), bytes);
        } else {
            let too_large = matches!(decode(&bytes).unwrap_err().kind, DecodeErrorKind::TooLarge { .. });
            prop_assert!(too_large);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn mutated_messages_never_panic(m in arb_message(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = m.encode();
        if !bytes.is_empty() {
            let i = pos % bytes.len();
            bytes[i] = byte;
        }
        if let Ok(d) = decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(decode(&d.encode()).unwrap(), d);
        }
    }
}
