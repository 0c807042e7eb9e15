#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! One node driven by hand: its answers to each query, tokens, defences (rate limits, amplification,
//! floods, malformed input), BEP 42 ids and BEP 43 read-only mode, persistence and bootstrap.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::*;
use dht::krpc::{self, code, decode, Body, KrpcError, NodeInfo, QueryKind, Response, Want};
use dht::{bep42, Announce, Config, Event, NodeId, Time};
use rand::Rng;

const SEC: Duration = Duration::from_secs(1);
const HASH: [u8; 20] = [0x42; 20];

fn get_token(n: &mut dht::Dht<rand::rngs::SmallRng>, now: Time, from: SocketAddr) -> Vec<u8> {
    let q = query(
        NodeId([1; 20]),
        QueryKind::GetPeers {
            info_hash: HASH,
            want: None,
            noseed: false,
            scrape: false,
        },
    );
    let (m, _) = ask(n, now, from, &q).unwrap();
    response(&m).token.clone().unwrap()
}

fn announce(token: Vec<u8>, port: u16, implied_port: bool) -> Vec<u8> {
    query(
        NodeId([1; 20]),
        QueryKind::AnnouncePeer {
            info_hash: HASH,
            port,
            implied_port,
            token,
            seed: false,
        },
    )
}

#[test]
fn replies_echo_t_and_carry_ip_and_version() {
    // BEP 5: the transaction id "is echoed in the response"; BEP 42: "all DHT responses SHOULD include a
    // top-level field called ip, containing a compact binary representation of the requestor's IP and port".
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4000");
    // aria2 uses 4-byte transaction ids.
    let ping = std::fs::read(format!(
        "{}/tests/fixtures/aria2-ping-query.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (m, _) = ask(&mut n, Time::ZERO, from, &ping).unwrap();
    assert_eq!(m.transaction, decode(&ping).unwrap().transaction);
    assert_eq!(m.ip, Some(from));
    assert_eq!(m.version.as_deref(), Some(&b"BS\x00\x01"[..]));
    assert_eq!(response(&m).id, n.id());
}

#[test]
fn announce_with_a_bad_token_is_refused_with_203() {
    // BEP 5: "The queried node must verify that the token was previously sent to the same IP address as the
    // querying node." Error 203 is "Protocol Error, such as a malformed packet, invalid arguments, or bad
    // token".
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4000");
    let (m, _) = ask(
        &mut n,
        Time::ZERO,
        from,
        &announce(b"forged".to_vec(), 7000, false),
    )
    .unwrap();
    assert!(
        matches!(
            m.body,
            Body::Error(KrpcError {
                code: code::PROTOCOL,
                ..
            })
        ),
        "{m:?}"
    );
    assert_eq!(n.stats().dropped.bad_token, 1);
    assert_eq!(n.stats().peers, 0);
    // A token handed to another IP is refused too.
    let other_token = get_token(&mut n, Time::ZERO, addr("10.9.9.10:4000"));
    let (m, _) = ask(&mut n, Time::ZERO, from, &announce(other_token, 7000, false)).unwrap();
    assert!(matches!(m.body, Body::Error(KrpcError { code: 203, .. })));
    // Our own token (from another port of the same IP) is accepted and the peer stored.
    let token = get_token(&mut n, Time::ZERO, addr("10.9.9.9:5000"));
    let (m, _) = ask(&mut n, Time::ZERO, from, &announce(token, 7000, false)).unwrap();
    assert!(matches!(m.body, Body::Response(_)), "{m:?}");
    assert_eq!(n.stats().peers, 1);
}

#[test]
fn tokens_expire_after_two_rotations() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4000");
    let token = get_token(&mut n, Time::ZERO, from);
    // Accepted 9 minutes later (previous secret), refused at 10.
    let (m, _) = ask(
        &mut n,
        Time(9 * 60 * SEC),
        from,
        &announce(token.clone(), 7000, false),
    )
    .unwrap();
    assert!(matches!(m.body, Body::Response(_)));
    let (m, _) = ask(&mut n, Time(10 * 60 * SEC), from, &announce(token, 7000, false)).unwrap();
    assert!(matches!(m.body, Body::Error(KrpcError { code: 203, .. })));
}

#[test]
fn implied_port_stores_the_udp_source_port() {
    // BEP 5: "If it is present and non-zero, the port argument should be ignored and the source port of the
    // UDP packet should be used as the peer's port instead."
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4321");
    let token = get_token(&mut n, Time::ZERO, from);
    ask(&mut n, Time::ZERO, from, &announce(token, 1, true)).unwrap();
    let (m, _) = ask(
        &mut n,
        Time::ZERO,
        addr("10.8.8.8:1"),
        &query(
            NodeId([2; 20]),
            QueryKind::GetPeers {
                info_hash: HASH,
                want: None,
                noseed: false,
                scrape: false,
            },
        ),
    )
    .unwrap();
    assert_eq!(response(&m).values, vec![from]);
}

#[test]
fn unknown_methods_get_204_and_malformed_queries_203() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4000");
    let q = query(
        NodeId([1; 20]),
        QueryKind::Unknown {
            method: b"vote".to_vec(),
        },
    );
    let (m, _) = ask(&mut n, Time::ZERO, from, &q).unwrap();
    assert!(matches!(
        m.body,
        Body::Error(KrpcError {
            code: code::METHOD_UNKNOWN,
            ..
        })
    ));
    // A query whose id is 3 bytes: its `t` is readable, so it gets a 203 naming the problem.
    let (m, _) = ask(
        &mut n,
        Time::ZERO,
        from,
        b"d1:ad2:id3:abce1:q4:ping1:t2:zz1:y1:qe",
    )
    .unwrap();
    assert_eq!(m.transaction, b"zz");
    match m.body {
        Body::Error(KrpcError { code: 203, message }) => assert!(message.contains("a.id"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(n.stats().dropped.malformed, 1);
}

#[test]
fn malformed_oversized_and_unexpected_packets_are_dropped_and_counted() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let from = addr("10.9.9.9:4000");
    let now = Time::ZERO;
    for junk in [&b""[..], b"garbage", b"d1:y1:re", b"li1ee", b"d1:t2:aa1:y1:re"] {
        n.handle_packet(now, from, junk);
    }
    n.handle_packet(now, from, &vec![b'd'; 2000]);
    // A response to a query we never sent.
    let unsolicited = answer(
        &decode(&query(NodeId([1; 20]), QueryKind::Ping)).unwrap(),
        Response {
            id: NodeId([9; 20]),
            ..Response::default()
        },
        None,
    );
    n.handle_packet(now, from, &unsolicited);
    let s = n.stats();
    assert_eq!(s.dropped.malformed, 5);
    assert_eq!(s.dropped.oversized, 1);
    assert_eq!(s.dropped.unexpected, 1);
    assert!(drain(&mut n).is_empty(), "none of these is answered");
    assert_eq!(n.table().len(), 0);
}

#[test]
fn a_response_from_another_address_does_not_match_our_query() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let peer = addr("10.2.2.2:6881");
    n.add_node(Time::ZERO, peer);
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    let q = decode(&out[0].data).unwrap();
    let r = answer(
        &q,
        Response {
            id: NodeId([7; 20]),
            ..Response::default()
        },
        None,
    );
    n.handle_packet(Time::ZERO, addr("10.2.2.3:6881"), &r);
    assert_eq!(n.stats().dropped.unexpected, 1);
    assert_eq!(n.table().len(), 0);
    n.handle_packet(Time::ZERO, peer, &r);
    assert_eq!(
        n.table().len(),
        1,
        "the right address is added (it answered our ping)"
    );
}

#[test]
fn per_ip_rate_limit_drops_a_flood() {
    let config = Config {
        max_queries_per_sec_per_ip: 20,
        rate_limit_burst: 40,
        ..Config::default()
    };
    let mut n = node(config, "10.0.0.1:6881", 1);
    let flooder = addr("10.6.6.6:1000");
    let ping = query(NodeId([1; 20]), QueryKind::Ping);
    let replies = |n: &mut dht::Dht<rand::rngs::SmallRng>| {
        drain(n)
            .iter()
            .filter(|t| t.to == flooder && !matches!(decode(&t.data).unwrap().body, Body::Query(_)))
            .count()
    };
    let mut answered = 0;
    for _ in 0..1000 {
        n.handle_packet(Time::ZERO, flooder, &ping);
        answered += replies(&mut n);
    }
    assert_eq!(answered, 40, "the burst, then nothing");
    assert_eq!(n.stats().dropped.rate_limited, 960);
    // Another address is unaffected.
    assert!(ask(&mut n, Time::ZERO, addr("10.6.6.7:1000"), &ping).is_some());
    // One second later the flooder has 20 more.
    let mut later = 0;
    for _ in 0..100 {
        n.handle_packet(Time(SEC), flooder, &ping);
        later += replies(&mut n);
    }
    assert_eq!(later, 20);
}

#[test]
fn loopback_sources_are_not_rate_limited() {
    let mut n = node(Config::default(), "127.0.0.1:6881", 1);
    let local = addr("127.0.0.1:7000");
    let ping = query(NodeId([1; 20]), QueryKind::Ping);
    for _ in 0..500 {
        n.handle_packet(Time::ZERO, local, &ping);
    }
    let answered = drain(&mut n).iter().filter(|t| t.to == local).count();
    assert!(answered >= 500, "{answered}");
    assert_eq!(n.stats().dropped.rate_limited, 0);
}

#[test]
fn the_rate_limiter_stays_bounded_under_spoofed_sources() {
    let config = Config {
        rate_limit_sources: 100,
        rate_limit_exempt_loopback: false, // random sources include 127/8
        ..Config::default()
    };
    let mut n = node(config, "10.0.0.1:6881", 1);
    let ping = query(NodeId([1; 20]), QueryKind::Ping);
    let mut rng = rng(5);
    let mut answered = 0;
    for i in 0..10_000u32 {
        let from = SocketAddr::new(IpAddr::from(rng.random::<[u8; 4]>()), 1 + (i % 60000) as u16);
        n.handle_packet(Time(Duration::from_micros(u64::from(i))), from, &ping);
        answered += drain(&mut n).len();
    }
    // Within 10 ms no tracked source refills: once 100 are tracked, new sources are refused.
    assert!(answered <= 200, "{answered}");
    assert!(n.stats().dropped.rate_limited >= 9_800);
    assert!(n.memory_estimate() < 200_000);
}

#[test]
fn replies_are_not_much_larger_than_queries() {
    // No amplification: each reply is held under 1024 bytes (BEP 32: "must not send UDP datagrams with a
    // payload larger than 1024 octets") and under a bound per method relative to the query.
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let now = Time::ZERO;
    // A full table: 200 nodes restored (questionable nodes are returned when there are no good ones).
    let mut rng = rng(9);
    let nodes: Vec<NodeInfo> = (0..200u32)
        .map(|i| NodeInfo {
            id: NodeId::random(&mut rng),
            addr: SocketAddr::new(IpAddr::from((0x0b00_0000u32 + i).to_be_bytes()), 6881),
        })
        .collect();
    let mut saved = bencode::Encoder::new();
    saved.dict(|d| {
        d.entry(b"id", |e| e.bytes(&n.id().0));
        d.entry(b"nodes", |e| e.bytes(&krpc::compact_nodes(&nodes, false)));
    });
    assert!(n.restore(now, &saved.finish()).unwrap() >= 16);
    drain(&mut n);
    // A big swarm: 100 peers from 100 IPs, a third of them seeds.
    for i in 0..100u32 {
        let from = SocketAddr::new(IpAddr::from((0x0c00_0000u32 + i).to_be_bytes()), 7000);
        let token = get_token(&mut n, now, from);
        let mut a = decode(&announce(token, 7000, false)).unwrap();
        if let Body::Query(q) = &mut a.body {
            if let QueryKind::AnnouncePeer { seed, .. } = &mut q.kind {
                *seed = i % 3 == 0;
            }
        }
        let (m, _) = ask(&mut n, now, from, &a.encode()).unwrap();
        assert!(matches!(m.body, Body::Response(_)));
    }
    assert_eq!(n.stats().peers, 100);
    let asker = addr("10.7.7.7:1");
    let id = NodeId([3; 20]);
    let kinds: Vec<(&str, QueryKind, f64)> = vec![
        ("ping", QueryKind::Ping, 1.5),
        (
            "find_node",
            QueryKind::FindNode {
                target: NodeId([0x42; 20]),
                want: None,
            },
            4.0,
        ),
        (
            "find_node want n4 n6",
            QueryKind::FindNode {
                target: NodeId([0x42; 20]),
                want: Some(Want { n4: true, n6: true }),
            },
            4.0,
        ),
        (
            "get_peers",
            QueryKind::GetPeers {
                info_hash: HASH,
                want: None,
                noseed: false,
                scrape: false,
            },
            8.0,
        ),
        (
            "get_peers scrape",
            QueryKind::GetPeers {
                info_hash: HASH,
                want: None,
                noseed: true,
                scrape: true,
            },
            8.0,
        ),
        (
            "announce_peer",
            QueryKind::AnnouncePeer {
                info_hash: HASH,
                port: 1,
                implied_port: false,
                token: b"nope".to_vec(),
                seed: false,
            },
            1.0,
        ),
        (
            "unknown",
            QueryKind::Unknown {
                method: b"x".to_vec(),
            },
            2.0,
        ),
    ];
    for (name, kind, bound) in kinds {
        let q = query(id, kind);
        let (m, len) = ask(&mut n, now, asker, &q).unwrap();
        let ratio = len as f64 / q.len() as f64;
        println!(
            "amplification {name}: query {} bytes, reply {len} bytes, ratio {ratio:.2}",
            q.len()
        );
        assert!(len <= 1024, "{name}: {len}");
        assert!(ratio <= bound, "{name}: {len} / {} = {ratio}", q.len());
        if name == "get_peers scrape" {
            let r = response(&m);
            assert!(
                r.seeds_bloom.is_some() && r.peers_bloom.is_some(),
                "blooms fit the budget"
            );
            assert_eq!(
                r.nodes.as_ref().map(Vec::len),
                Some(8),
                "nodes are never trimmed first"
            );
        }
        if name == "get_peers" {
            assert!(response(&m).values.len() >= 40, "as many peers as fit");
        }
    }
    assert!(n.stats().replies_trimmed >= 2);
}

#[test]
fn a_flood_of_find_node_replies_with_random_ids_keeps_the_table_bounded() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let mut rng = rng(77);
    let mut now = Time::ZERO;
    n.bootstrap(now, &[addr("11.0.0.1:6881")]);
    let mut answered = 0u32;
    // Every query gets an answer with a random id and 8 random nodes at fresh addresses; new lookups keep
    // the flood going.
    for round in 0..400u32 {
        for _ in 0..5 {
            n.find_node(now, NodeId::random(&mut rng));
        }
        for _ in 0..50 {
            let out = drain(&mut n);
            if out.is_empty() {
                break;
            }
            for t in out {
                let q = decode(&t.data).unwrap();
                if !matches!(q.body, Body::Query(_)) {
                    continue;
                }
                let nodes = (0..8)
                    .map(|_| NodeInfo {
                        id: NodeId::random(&mut rng),
                        addr: SocketAddr::new(
                            IpAddr::from(rng.random::<[u8; 4]>()),
                            1 + rng.random::<u16>() % 60000,
                        ),
                    })
                    .filter(|x| !x.addr.ip().is_unspecified() && !x.addr.ip().is_multicast())
                    .collect();
                let r = Response {
                    id: NodeId::random(&mut rng),
                    nodes: Some(nodes),
                    token: Some(b"tk".to_vec()),
                    ..Response::default()
                };
                n.handle_packet(now, t.to, &answer(&q, r, None));
                answered += 1;
            }
        }
        now = now.plus(Duration::from_millis(100 + u64::from(round % 7)));
        n.handle_timeout(now);
        drain(&mut n);
        while n.poll_event().is_some() {}
    }
    let s = n.stats();
    println!(
        "flood: {answered} replies, table {} nodes in {} buckets, {} B estimated",
        n.table().len(),
        s.buckets,
        n.memory_estimate()
    );
    assert!(answered > 10_000, "{answered}");
    assert!(s.buckets <= 160);
    assert!(n.table().len() <= 8 * s.buckets);
    // Random ids cannot make the table deep: about log2(replies / 8) buckets.
    assert!(s.buckets <= 24, "{}", s.buckets);
    assert!(s.outstanding <= 256);
    assert!(s.lookups_active <= 16);
    assert!(n.memory_estimate() < 400_000, "{}", n.memory_estimate());
}

#[test]
fn read_only_nodes_answer_nothing_and_mark_their_queries() {
    // BEP 43: "It no longer responds to 'query' messages that it receives" and "In each outgoing query
    // message the read-only DHT node places a 'ro' key in the top-level message dictionary and sets its
    // value to 1."
    let config = Config {
        read_only: true,
        ..Config::default()
    };
    let mut ro = node(config, "10.0.0.1:6881", 1);
    assert!(ask(
        &mut ro,
        Time::ZERO,
        addr("10.2.2.2:1"),
        &query(NodeId([1; 20]), QueryKind::Ping)
    )
    .is_none());
    assert_eq!(ro.stats().dropped.read_only, 1);
    ro.add_node(Time::ZERO, addr("10.2.2.2:1"));
    let out = drain(&mut ro);
    let m = decode(&out[0].data).unwrap();
    assert!(m.read_only);
    assert!(
        out[0].data.windows(7).any(|w| w == b"2:roi1e"),
        "appears as '2:roi1e'"
    );
}

#[test]
fn queries_marked_read_only_are_served_but_never_add_the_sender() {
    // BEP 43: "If it is found, the node should not add the message sender to its routing table. Instead it
    // should merely service the query as usual."
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let mut m = decode(&query(NodeId([1; 20]), QueryKind::Ping)).unwrap();
    m.read_only = true;
    let from = addr("10.2.2.2:1");
    n.handle_packet(Time::ZERO, from, &m.encode());
    let out = drain(&mut n);
    assert_eq!(out.len(), 1, "answered, and not pinged back");
    assert!(matches!(decode(&out[0].data).unwrap().body, Body::Response(_)));
    // The same query without `ro`: answered and pinged (it may join once it answers).
    n.handle_packet(
        Time::ZERO,
        addr("10.2.2.3:1"),
        &query(NodeId([1; 20]), QueryKind::Ping),
    );
    let out = drain(&mut n);
    assert_eq!(out.len(), 2);
    assert!(
        matches!(decode(&out[0].data).unwrap().body, Body::Response(_)),
        "the answer goes first"
    );
    assert!(matches!(decode(&out[1].data).unwrap().body, Body::Query(_)));
}

#[test]
fn external_ip_is_voted_and_a_bep42_id_generated() {
    // BEP 42: "A DHT node which receives an ip result in a request SHOULD consider restarting its DHT node
    // with a new node ID, taking this IP into account. [...] This could be done by voting".
    let mut n = node(Config::default(), "0.0.0.0:6881", 1);
    let external: IpAddr = "8.8.4.4".parse().unwrap();
    assert!(!bep42::id_matches_ip(&n.id(), external));
    for i in 1..=3u8 {
        let peer = SocketAddr::from(([93, 0, 0, i], 6881));
        n.add_node(Time::ZERO, peer);
        let out = drain(&mut n);
        let q = decode(&out[0].data).unwrap();
        let mut rng = rng(u64::from(i));
        let id = bep42::generate_id(peer.ip(), &mut rng);
        let r = Response {
            id,
            ..Response::default()
        };
        n.handle_packet(
            Time::ZERO,
            peer,
            &answer(&q, r, Some(SocketAddr::new(external, 6881))),
        );
    }
    let events: Vec<Event> = std::iter::from_fn(|| n.poll_event()).collect();
    assert!(events.contains(&Event::ExternalIp(external)), "{events:?}");
    assert!(
        bep42::id_matches_ip(&n.id(), external),
        "our id now matches the voted address"
    );
    assert_eq!(n.external_ip(), Some(external));
    assert_eq!(n.table().len(), 3, "the table was rebuilt around the new id");
    // Setting it again with a matching id changes nothing.
    let id = n.id();
    n.set_external_ip(Time::ZERO, external);
    assert_eq!(n.id(), id);
}

#[test]
fn bep42_enforcement_keeps_unverified_nodes_out_of_the_table() {
    let config = Config {
        bep42_enforce: true,
        ..Config::default()
    };
    let mut n = node(config, "0.0.0.0:6881", 1);
    let mut rng = rng(3);
    for (i, good) in [(1u8, true), (2, false)] {
        let peer = SocketAddr::from(([93, 0, 0, i], 6881));
        n.add_node(Time::ZERO, peer);
        let q = decode(&drain(&mut n)[0].data).unwrap();
        let id = if good {
            bep42::generate_id(peer.ip(), &mut rng)
        } else {
            NodeId::random(&mut rng)
        };
        let r = Response {
            id,
            ..Response::default()
        };
        n.handle_packet(Time::ZERO, peer, &answer(&q, r, None));
    }
    assert_eq!(n.table().len(), 1);
    assert!(n
        .table()
        .get_by_addr(&SocketAddr::from(([93, 0, 0, 1], 6881)))
        .is_some());
}

#[test]
fn the_table_survives_a_restart() {
    // BEP 5: "The routing table should be saved between invocations of the client software."
    let mut a = node(Config::default(), "10.0.0.1:6881", 1);
    let mut rng = rng(4);
    for i in 0..30u32 {
        let peer = SocketAddr::new(IpAddr::from((0x0a01_0000u32 + i).to_be_bytes()), 6881);
        a.add_node(Time::ZERO, peer);
        let q = decode(&drain(&mut a)[0].data).unwrap();
        let r = Response {
            id: NodeId::random(&mut rng),
            ..Response::default()
        };
        a.handle_packet(Time::ZERO, peer, &answer(&q, r, None));
    }
    let held = a.table().len();
    assert!(held >= 16, "{held}");
    let saved = a.save();
    let mut b = node(Config::default(), "10.0.0.1:6881", 99);
    assert_ne!(b.id(), a.id());
    let restored = b.restore(Time(3600 * SEC), &saved).unwrap();
    assert_eq!(restored, held);
    assert_eq!(b.id(), a.id(), "the id is restored");
    let s = b.stats();
    assert_eq!(
        (s.nodes_good, s.nodes_questionable),
        (0, held),
        "re-added as questionable"
    );
    let pings = drain(&mut b);
    assert_eq!(pings.len(), held, "and pinged");
    assert!(pings.iter().all(|t| matches!(
        decode(&t.data).unwrap().body,
        Body::Query(dht::krpc::Query {
            kind: QueryKind::Ping,
            ..
        })
    )));
    // Garbage is an error, not a panic.
    assert!(b.restore(Time::ZERO, b"not bencode").is_err());
    assert!(b.restore(Time::ZERO, b"d2:id3:abce").is_err());
    assert!(b
        .restore(Time::ZERO, b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes5:abcdee")
        .is_err());
}

#[test]
fn bootstrap_keeps_trying_while_the_table_is_empty() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let boot = addr("10.5.5.5:6881");
    n.bootstrap(Time::ZERO, &[boot]);
    let mut sent = drain(&mut n).len();
    assert_eq!(sent, 1);
    let mut now = Time::ZERO;
    let mut wakeups = 0;
    while now < Time(600 * SEC) {
        now = n.poll_timeout().unwrap();
        n.handle_timeout(now);
        wakeups += 1;
        sent += drain(&mut n).iter().filter(|t| t.to == boot).count();
        assert!(wakeups < 1000);
    }
    // Tries at 0, then after 5, 10, 20, 40, 80, 160 s of back-off (plus the 4 s timeouts)...
    assert!((6..=12).contains(&sent), "{sent}");
    assert_eq!(n.poll_event(), None, "never bootstrapped");
    // ...and once a node answers, it is in.
    now = now.plus(SEC);
    n.handle_timeout(now);
    let mut saw_query = None;
    for _ in 0..400 {
        now = n.poll_timeout().unwrap();
        n.handle_timeout(now);
        if let Some(t) = drain(&mut n).into_iter().find(|t| t.to == boot) {
            saw_query = Some(decode(&t.data).unwrap());
            break;
        }
    }
    let q = saw_query.expect("another attempt");
    let r = Response {
        id: NodeId([5; 20]),
        nodes: Some(vec![]),
        ..Response::default()
    };
    n.handle_packet(now, boot, &answer(&q, r, None));
    assert_eq!(n.table().len(), 1);
    assert_eq!(n.poll_event(), Some(Event::Bootstrapped { nodes: 1 }));
}

#[test]
fn get_peers_without_any_node_ends_at_once() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let id = n.get_peers(
        Time::ZERO,
        HASH,
        Some(Announce {
            port: 1,
            implied_port: false,
            seed: false,
        }),
    );
    assert_eq!(
        n.poll_event(),
        Some(Event::LookupDone {
            lookup: id,
            target: HASH,
            responded: 0,
            announced: 0,
            queries: 0
        })
    );
}

#[test]
fn ipv6_nodes_answer_with_nodes6_and_18_byte_peers() {
    // BEP 32: "In the absence of a want parameter, the reply should include nodes if the request was sent
    // over IPv4, and should include nodes6 if the request was sent over IPv6."
    let mut n = node(Config::default(), "[fd00::1]:6881", 1);
    let peer = addr("[fd00::2]:6881");
    n.add_node(Time::ZERO, peer);
    let q = decode(&drain(&mut n)[0].data).unwrap();
    n.handle_packet(
        Time::ZERO,
        peer,
        &answer(
            &q,
            Response {
                id: NodeId([2; 20]),
                ..Response::default()
            },
            None,
        ),
    );
    assert_eq!(n.table().len(), 1);
    let asker = addr("[fd00::3]:7000");
    let token = get_token(&mut n, Time::ZERO, asker);
    ask(&mut n, Time::ZERO, asker, &announce(token, 7000, false)).unwrap();
    let gp = query(
        NodeId([3; 20]),
        QueryKind::GetPeers {
            info_hash: HASH,
            want: None,
            noseed: false,
            scrape: false,
        },
    );
    let (m, len) = ask(&mut n, Time::ZERO, addr("[fd00::4]:1"), &gp).unwrap();
    let r = response(&m);
    assert_eq!(r.nodes, None);
    assert_eq!(r.nodes6.as_ref().unwrap()[0].addr, peer);
    assert_eq!(r.values, vec![asker]);
    assert!(len > 38 + 18);
    // want n4 from an IPv6-only node: it has no IPv4 table, so no `nodes` key at all.
    let fnq = query(
        NodeId([3; 20]),
        QueryKind::FindNode {
            target: NodeId([0; 20]),
            want: Some(Want { n4: true, n6: false }),
        },
    );
    let (m, _) = ask(&mut n, Time::ZERO, addr("[fd00::4]:1"), &fnq).unwrap();
    assert_eq!(
        (response(&m).nodes.as_ref(), response(&m).nodes6.as_ref()),
        (None, None)
    );
    // An IPv4 node ignores an IPv6 bootstrap address.
    let mut v4 = node(Config::default(), "10.0.0.1:6881", 1);
    v4.add_node(Time::ZERO, peer);
    assert!(drain(&mut v4).is_empty());
}

#[test]
fn our_queries_are_well_formed_and_small() {
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    n.bootstrap(Time::ZERO, &[addr("10.1.1.1:1")]);
    n.get_peers(Time::ZERO, HASH, None);
    for t in drain(&mut n) {
        assert!(t.data.len() < 150, "{}", t.data.len());
        let m = decode(&t.data).unwrap();
        assert_eq!(m.transaction.len(), 2);
        assert_eq!(m.version.as_deref(), Some(&b"BS\x00\x01"[..]));
        assert!(!m.read_only);
        assert!(matches!(m.body, Body::Query(_)));
    }
}

#[test]
fn idle_buckets_are_refreshed_after_fifteen_minutes_and_silent_nodes_go_bad() {
    // BEP 5: "Buckets that have not been changed in 15 minutes should be "refreshed." This is done by
    // picking a random ID in the range of the bucket and performing a find_nodes search on it." and
    // "After 15 minutes of inactivity, a node becomes questionable. Nodes become bad when they fail to
    // respond to multiple queries in a row."
    let mut n = node(Config::default(), "10.0.0.1:6881", 1);
    let mut rng = rng(8);
    for i in 0..12u32 {
        let peer = SocketAddr::new(IpAddr::from((0x0a01_0000u32 + i).to_be_bytes()), 6881);
        n.add_node(Time::ZERO, peer);
        let q = decode(&drain(&mut n)[0].data).unwrap();
        let r = Response {
            id: NodeId::random(&mut rng),
            ..Response::default()
        };
        n.handle_packet(Time::ZERO, peer, &answer(&q, r, None));
    }
    let s = n.stats();
    assert_eq!((s.nodes_good, s.nodes_questionable), (12, 0));
    // Nothing to do before 15 minutes.
    let next = n.poll_timeout().unwrap();
    assert_eq!(next, Time(15 * 60 * SEC));
    n.handle_timeout(next);
    let s = n.stats();
    assert_eq!(
        (s.nodes_good, s.nodes_questionable),
        (0, 12),
        "questionable after 15 minutes"
    );
    let out = drain(&mut n);
    let kinds: Vec<QueryKind> = out
        .iter()
        .map(|t| match decode(&t.data).unwrap().body {
            Body::Query(q) => q.kind,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(
        kinds.iter().any(|k| matches!(k, QueryKind::FindNode { .. })),
        "a refresh lookup"
    );
    assert!(
        kinds.iter().any(|k| matches!(k, QueryKind::Ping)),
        "questionable nodes are pinged"
    );
    // Nobody answers: every node queried twice without answer goes bad.
    for _ in 0..200 {
        let now = n.poll_timeout().unwrap();
        if now > Time(40 * 60 * SEC) {
            break;
        }
        n.handle_timeout(now);
        drain(&mut n);
    }
    let s = n.stats();
    assert!(s.nodes_bad >= 6, "{s:?}");
    assert!(s.timeouts >= 12);
}

/// A flood of queries from many (spoofed) sources draws replies, but the pings we send to new queriers
/// (to add them to the table) stay within `max_querier_pings_per_sec` in all.
#[test]
fn pings_to_new_queriers_are_bounded_under_a_spoofed_flood() {
    let config = Config {
        rate_limit_exempt_loopback: false,
        ..Config::default()
    };
    let mut n = node(config, "10.0.0.1:6881", 1);
    let mut rng = rng(9);
    let mut pings = 0;
    for i in 0..5_000u32 {
        let from = SocketAddr::new(
            IpAddr::from([11, rng.random(), rng.random(), rng.random()]),
            1000 + (i % 50_000) as u16,
        );
        let ping = query(NodeId(rng.random()), QueryKind::Ping);
        // All within one second.
        n.handle_packet(Time(Duration::from_micros(u64::from(i) * 100)), from, &ping);
        pings += drain(&mut n)
            .iter()
            .filter(|t| matches!(decode(&t.data).unwrap().body, Body::Query(_)))
            .count();
    }
    assert!(pings <= 16, "{pings} pings sent in one second");
    assert!(pings > 0, "some queriers are still pinged");
}
