use super::*;
use proptest::prelude::*;

fn h(n: u8) -> InfoHashV1 {
    InfoHashV1([n; 20])
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn from() -> SocketAddr {
    "192.168.1.20:6771".parse().unwrap()
}

/// The announce as BEP 14 lays it out, byte for byte (as libtorrent sends it).
const LIBTORRENT_STYLE: &[u8] = b"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\n\
Infohash: 0123456789ABCDEF0123456789ABCDEF01234567\r\ncookie: 7f3a\r\n\r\n\r\n";

#[test]
fn parses_the_bep_layout() {
    let a = Announce::parse(LIBTORRENT_STYLE).unwrap();
    assert_eq!(a.host, "239.192.152.143:6771");
    assert_eq!(a.port, 6881);
    assert_eq!(
        a.info_hashes,
        vec![InfoHashV1::from_text("0123456789abcdef0123456789abcdef01234567").unwrap()]
    );
    assert_eq!(a.cookie.as_deref(), Some("7f3a"));
}

#[test]
fn unknown_headers_are_ignored_and_names_are_case_insensitive() {
    // "any additional headers that not understood by a client should be ignored"
    let msg = b"BT-SEARCH * HTTP/1.1\r\nhost: x\r\nX-Other: 1\r\nPORT: 7000\r\ninfohash: \
0101010101010101010101010101010101010101\r\n\r\n\r\n";
    let a = Announce::parse(msg).unwrap();
    assert_eq!((a.port, a.info_hashes.clone()), (7000, vec![h(1)]));
}

#[test]
fn malformed_announces_say_what_is_wrong() {
    let cases: &[(&[u8], LsdError)] = &[
        (
            b"GET / HTTP/1.1\r\n\r\n",
            LsdError::RequestLine("GET / HTTP/1.1".into()),
        ),
        (
            b"BT-SEARCH * HTTP/1.1\r\nPort 6881\r\n\r\n",
            LsdError::HeaderLine(2),
        ),
        (
            b"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n\r\n",
            LsdError::Port("0".into()),
        ),
        (
            b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: zz\r\n\r\n",
            LsdError::InfoHash("zz".into()),
        ),
        (
            b"BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\n\r\n",
            LsdError::NoInfoHash,
        ),
        (b"BT-SEARCH * HTTP/1.1\r\n\xff\r\n", LsdError::NotText),
    ];
    for (msg, want) in cases {
        assert_eq!(
            Announce::parse(msg).as_ref(),
            Err(want),
            "{}",
            String::from_utf8_lossy(msg)
        );
    }
    assert_eq!(
        Announce::parse(&vec![b'a'; MAX_INPUT + 1]),
        Err(LsdError::TooLong(MAX_INPUT + 1))
    );
}

proptest! {
    #[test]
    fn announce_round_trips(port in 1u16.., hashes in proptest::collection::vec(any::<[u8; 20]>(), 1..20),
                            cookie in proptest::option::of("[a-z0-9]{1,16}")) {
        let a = Announce {
            host: GROUP_V4.to_string(),
            port,
            info_hashes: hashes.into_iter().map(InfoHashV1).collect(),
            cookie,
        };
        prop_assert_eq!(Announce::parse(&a.encode()).unwrap(), a);
    }

    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Announce::parse(&data);
    }
}

fn lsd(now: Duration) -> Lsd {
    Lsd::new(Config::new(6881, "me".into()), now)
}

#[test]
fn announces_new_torrents_then_every_interval_and_at_most_once_per_gap() {
    let mut l = lsd(secs(0));
    assert_eq!(l.poll_timeout(), None, "nothing to announce");
    l.add_torrent(h(1));
    assert_eq!(l.poll_timeout(), Some(secs(0)));
    l.handle_timeout(secs(0));
    let a = Announce::parse(&l.poll_transmit().unwrap()).unwrap();
    assert_eq!(
        (a.port, a.info_hashes, a.host.as_str()),
        (6881, vec![h(1)], "239.192.152.143:6771")
    );
    // A torrent added right after waits for the 1-minute gap.
    l.add_torrent(h(2));
    assert_eq!(l.poll_timeout(), Some(secs(60)));
    l.handle_timeout(secs(30));
    assert!(l.poll_transmit().is_none());
    l.handle_timeout(secs(60));
    let a = Announce::parse(&l.poll_transmit().unwrap()).unwrap();
    assert_eq!(a.info_hashes, vec![h(2)], "only the due torrent");
    // "every 5 minutes": h(1) is due at 300 s.
    assert_eq!(l.poll_timeout(), Some(secs(300)));
    l.handle_timeout(secs(300));
    assert_eq!(
        Announce::parse(&l.poll_transmit().unwrap()).unwrap().info_hashes,
        vec![h(1)]
    );
}

#[test]
fn many_torrents_share_packets_under_1400_bytes_in_rotation() {
    let mut l = lsd(secs(0));
    for i in 0..60 {
        l.add_torrent(h(i));
    }
    let mut seen = BTreeSet::new();
    let mut t = secs(0);
    for _ in 0..3 {
        l.handle_timeout(t);
        let p = l.poll_transmit().unwrap();
        assert!(p.len() <= MAX_PACKET, "{} bytes", p.len());
        let a = Announce::parse(&p).unwrap();
        assert!(a.info_hashes.len() > 20 || seen.len() > 40, "several per packet");
        seen.extend(a.info_hashes);
        t += secs(60);
    }
    assert_eq!(seen.len(), 60, "every torrent announced within three packets");
}

#[test]
fn peers_heard_are_reported_for_our_torrents_only_and_our_own_ignored() {
    let mut l = lsd(secs(0));
    l.add_torrent(h(1));
    let other = Announce {
        host: "x".into(),
        port: 7000,
        info_hashes: vec![h(1), h(9)],
        cookie: None,
    };
    l.handle_packet(secs(1), from(), &other.encode());
    assert_eq!(
        l.poll_found(),
        Some(Found {
            info_hash: h(1),
            peer: "192.168.1.20:7000".parse().unwrap()
        }),
        "reachable at the UDP source address with the announced port"
    );
    assert_eq!(l.poll_found(), None);
    assert_eq!(l.counters().unknown, 1);
    let own = Announce {
        cookie: Some("me".into()),
        ..other
    };
    l.handle_packet(secs(1), from(), &own.encode());
    assert_eq!(l.poll_found(), None);
    assert_eq!(l.counters().own, 1);
    l.handle_packet(secs(1), from(), b"junk");
    assert_eq!(l.counters().malformed, 1);
}

#[test]
fn a_flooding_source_is_limited() {
    let mut l = lsd(secs(0));
    l.add_torrent(h(1));
    let a = Announce {
        host: "x".into(),
        port: 7000,
        info_hashes: vec![h(1)],
        cookie: None,
    };
    for _ in 0..1000 {
        l.handle_packet(secs(1), from(), &a.encode());
    }
    let mut n = 0;
    while l.poll_found().is_some() {
        n += 1;
    }
    assert_eq!(n, 64);
    assert_eq!(l.counters().rate_limited, 1000 - 64);
    // A new window lets it in again.
    l.handle_packet(secs(400), from(), &a.encode());
    assert!(l.poll_found().is_some());
}
