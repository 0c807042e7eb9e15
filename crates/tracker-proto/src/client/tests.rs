//! Behaviour tests of the announce client, in virtual time: every step at an exact second.

use std::net::SocketAddr;
use std::time::Duration;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;
use crate::http::{self, AnnounceResponse, FailureResponse, ScrapeResponse};
use crate::udp::{self, AddressFamily, ConnectResponse, ErrorResponse, Request, Response, ResponsePeers};
use crate::{ConnectionId, Event, InfoHashV1, PeerId, ScrapeStats};

const HASH: InfoHashV1 = InfoHashV1([0xab; 20]);

fn secs(s: u64) -> Time {
    Time::from_secs(s)
}

/// Exact timing: no jitter.
fn exact() -> ClientConfig {
    ClientConfig {
        backoff_jitter_percent: 0,
        ..ClientConfig::default()
    }
}

fn client_with(tiers: &[&[&str]], config: ClientConfig, seed: u64) -> AnnounceClient<SmallRng> {
    let tiers = tiers
        .iter()
        .map(|t| t.iter().map(|u| u.to_string()).collect())
        .collect();
    let mut params = AnnounceParams::new(HASH, PeerId(*b"-BS0100-0123456789ab"), 6881);
    params.config = config;
    AnnounceClient::new(tiers, params, SmallRng::seed_from_u64(seed))
}

fn client(tiers: &[&[&str]]) -> AnnounceClient<SmallRng> {
    client_with(tiers, exact(), 1)
}

fn url_of(c: &AnnounceClient<SmallRng>, t: &Transmit) -> String {
    c.tracker_url(t.tracker).unwrap().to_string()
}

/// The one transmit queued, with the URL of its tracker.
fn one(c: &mut AnnounceClient<SmallRng>) -> (Transmit, String) {
    let t = c.poll_transmit().expect("a transmit");
    assert_eq!(c.poll_transmit(), None, "only one transmit");
    let url = url_of(c, &t);
    (t, url)
}

/// The HTTP announce a transmit carries, parsed as a tracker would.
fn http_announce(t: &Transmit) -> http::AnnounceRequest {
    let ToSend::Http { url } = &t.request else {
        panic!("not HTTP: {t:?}")
    };
    let (_, query) = url.split_once('?').unwrap();
    http::AnnounceRequest::parse_query(query.as_bytes()).unwrap()
}

fn udp_request(t: &Transmit) -> Request {
    let ToSend::Udp { bytes, .. } = &t.request else {
        panic!("not UDP: {t:?}")
    };
    Request::parse(bytes).unwrap()
}

fn ok(interval: u32, min_interval: Option<u32>, peers: &[&str]) -> Result<HttpResponse, String> {
    let r = AnnounceResponse {
        interval,
        min_interval,
        complete: Some(3),
        incomplete: Some(4),
        peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
        ..Default::default()
    };
    Ok(HttpResponse {
        status: 200,
        body: r.encode_compact(),
    })
}

fn events(c: &mut AnnounceClient<SmallRng>) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn errors(c: &mut AnnounceClient<SmallRng>) -> Vec<TrackerFailure> {
    events(c)
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::TrackerError { error, .. } => Some(error),
            _ => None,
        })
        .collect()
}

fn udp_bytes(r: Response) -> Vec<u8> {
    let mut b = Vec::new();
    r.write(&mut b);
    b
}

const FROM: &str = "127.0.0.1:6969";

/// Answer a UDP connect request.
fn udp_connect(c: &mut AnnounceClient<SmallRng>, now: Time, t: &Transmit) {
    let Request::Connect(r) = udp_request(t) else {
        panic!("not a connect: {t:?}")
    };
    let answer = udp_bytes(Response::Connect(ConnectResponse {
        transaction_id: r.transaction_id,
        connection_id: ConnectionId(0x1234),
    }));
    c.handle_udp_datagram(now, t.tracker, FROM.parse().unwrap(), &answer);
}

#[test]
fn failover_within_a_tier_tries_the_next_tracker_at_once() {
    // BEP 12: "all URLs in each tier must be checked before the client goes on to the next tier."
    let mut c = client(&[&["http://a/announce", "http://b/announce", "http://c/announce"]]);
    let order = c.tiers()[0].clone();
    c.set_progress(0, 0, 100);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, order[0]);
    assert_eq!(http_announce(&t).event, Event::Started);

    c.handle_failure(secs(1), t.id, "connection refused".into());
    let (t2, _) = one(&mut c);
    assert_eq!(t2.tracker, order[1]);
    assert_eq!(http_announce(&t2).event, Event::Started);
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::TrackerError {
            tracker: order[0],
            url: c.tracker_url(order[0]).unwrap().into(),
            error: TrackerFailure::Transport("connection refused".into()),
        }]
    );

    c.handle_http_response(secs(2), t2.id, Err("connection reset".into()));
    let (t3, _) = one(&mut c);
    assert_eq!(t3.tracker, order[2]);
}

#[test]
fn a_tracker_that_answers_moves_to_the_front_of_its_tier() {
    // BEP 12: "if tracker1 cannot be reached, try tracker2. If tracker2 can be reached, the list is now:
    // tracker2,tracker1,tracker3. [...] If later neither tracker2 nor tracker1 can be reached, but tracker3
    // responds, then the list will be changed to: tracker3,tracker2,tracker1".
    let mut c = client(&[&["http://a/announce", "http://b/announce", "http://c/announce"]]);
    let [t1, t2, t3] = <[TrackerId; 3]>::try_from(c.tiers()[0].clone()).unwrap();
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_failure(secs(0), t.id, "unreachable".into());
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, t2);
    c.handle_http_response(secs(1), t.id, ok(1800, None, &[]));
    assert_eq!(c.tiers()[0], vec![t2, t1, t3]);

    // The next round starts with tracker2.
    c.handle_timeout(secs(1801));
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, t2);
    assert_eq!(http_announce(&t).event, Event::None);
    c.handle_failure(secs(1801), t.id, "unreachable".into());
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, t1, "tracker1's backoff from t=0 is long over");
    assert_eq!(
        http_announce(&t).event,
        Event::Started,
        "tracker1 never heard started"
    );
    c.handle_failure(secs(1801), t.id, "unreachable".into());
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, t3);
    c.handle_http_response(secs(1802), t.id, ok(1800, None, &[]));
    assert_eq!(c.tiers()[0], vec![t3, t2, t1]);
}

#[test]
fn tiers_are_shuffled_once_per_client() {
    let urls: Vec<String> = (0..8).map(|i| format!("http://t{i}/announce")).collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let orders: std::collections::BTreeSet<Vec<TrackerId>> = (0..20)
        .map(|seed| client_with(&[&refs], exact(), seed).tiers()[0].clone())
        .collect();
    assert!(orders.len() > 10, "20 seeds give varied orders: {}", orders.len());
    // Tiers stay apart: the second tier's trackers never mix into the first.
    let c = client_with(&[&refs[..4], &refs[4..]], exact(), 3);
    assert!(c.tiers()[0].iter().all(|t| t.index() < 4));
    assert!(c.tiers()[1].iter().all(|t| t.index() >= 4));
}

#[test]
fn the_next_tier_is_tried_only_when_a_whole_tier_failed_and_the_first_tier_comes_first_again() {
    // BEP 12: "On each announce, first try tracker1, then if that cannot be reached, try backup1 and backup2
    // respectively. On the next announce, repeat in the same order."
    let mut c = client(&[
        &["http://tracker1/announce"],
        &["http://backup1/announce"],
        &["http://backup2/announce"],
    ]);
    c.announce_event(secs(0), Event::Started);
    let (t, url) = one(&mut c);
    assert_eq!(url, "http://tracker1/announce");
    c.handle_failure(secs(0), t.id, "down".into());
    let (t, url) = one(&mut c);
    assert_eq!(url, "http://backup1/announce");
    c.handle_failure(secs(0), t.id, "down".into());
    let (t, url) = one(&mut c);
    assert_eq!(url, "http://backup2/announce");
    c.handle_http_response(secs(2), t.id, ok(1800, None, &[]));
    assert_eq!(c.poll_transmit(), None);

    c.handle_timeout(secs(1802));
    let (_, url) = one(&mut c);
    assert_eq!(url, "http://tracker1/announce");
}

#[test]
fn a_tracker_backing_off_is_skipped_and_when_all_are_the_round_waits_for_the_first() {
    let mut c = client(&[&["http://a/announce"], &["http://b/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_failure(secs(0), t.id, "down".into());
    let (t, _) = one(&mut c);
    c.handle_failure(secs(3), t.id, "down".into());
    // a may be retried at 15, b at 18: the next round waits for a.
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), Some(secs(15)));
    c.handle_timeout(secs(15));
    let (t, url) = one(&mut c);
    assert_eq!(url, "http://a/announce");
    c.handle_failure(secs(15), t.id, "down".into());
    // b is still backing off (until 18) and a now until 45: the round ends and waits for b.
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), Some(secs(18)));
    c.handle_timeout(secs(18));
    let (_, url) = one(&mut c);
    assert_eq!(url, "http://b/announce");
}

#[test]
fn backoff_doubles_from_15_seconds_to_30_minutes() {
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let mut now = secs(0);
    let mut waits = Vec::new();
    for _ in 0..10 {
        let (t, _) = one(&mut c);
        c.handle_failure(now, t.id, "down".into());
        let next = c.poll_timeout().unwrap();
        waits.push(next.saturating_since(now).as_secs());
        assert_eq!(c.poll_transmit(), None);
        c.handle_timeout(next);
        now = next;
    }
    assert_eq!(waits, vec![15, 30, 60, 120, 240, 480, 960, 1800, 1800, 1800]);

    // A success resets it.
    let (t, _) = one(&mut c);
    c.handle_http_response(now, t.id, ok(1800, None, &[]));
    let now = now + Duration::from_secs(1800);
    c.handle_timeout(now);
    let (t, _) = one(&mut c);
    c.handle_failure(now, t.id, "down".into());
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_secs(15)));
}

#[test]
fn backoff_jitter_stays_within_its_percentage() {
    for seed in 0..50 {
        let mut c = client_with(&[&["http://a/announce"]], ClientConfig::default(), seed);
        c.announce_event(secs(100), Event::Started);
        let (t, _) = one(&mut c);
        c.handle_failure(secs(100), t.id, "down".into());
        let wait = c.poll_timeout().unwrap().saturating_since(secs(100));
        assert!(
            wait >= Duration::from_secs(15) && wait <= Duration::from_secs(18),
            "{wait:?}"
        );
    }
}

#[test]
fn the_interval_is_honoured_within_bounds() {
    // BEP 15: "Do not announce again until interval seconds have passed or an event has occurred."
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(5), t.id, ok(1800, None, &[]));
    assert_eq!(c.poll_timeout(), Some(secs(1805)));
    c.handle_timeout(secs(1804));
    assert_eq!(c.poll_transmit(), None);
    c.handle_timeout(secs(1805));
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::None, "a regular announce");

    // An interval of 0 is raised to the floor, a huge one lowered to the cap.
    c.handle_http_response(secs(1806), t.id, ok(0, None, &[]));
    assert_eq!(c.poll_timeout(), Some(secs(1806 + 60)));
    c.handle_timeout(secs(1866));
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(1866), t.id, ok(u32::MAX, None, &[]));
    assert_eq!(c.poll_timeout(), Some(secs(1866 + 7200)));
    let e = events(&mut c);
    assert!(e.contains(&ClientEvent::Announced {
        tracker: t.tracker,
        event: Event::None,
        interval: Duration::from_secs(7200)
    }));
}

#[test]
fn min_interval_delays_announces_asked_for_by_events() {
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(0), t.id, ok(1800, Some(900), &[]));

    // A re-announce asked for at t=50 waits for min interval.
    c.announce_event(secs(50), Event::None);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), Some(secs(900)));
    c.handle_timeout(secs(899));
    assert_eq!(c.poll_transmit(), None);

    // The download completes at t=100: `completed` is counted by trackers and goes out at once.
    c.set_progress(0, 100, 0);
    c.announce_event(secs(100), Event::Completed);
    let (t, _) = one(&mut c);
    let r = http_announce(&t);
    assert_eq!((r.event, r.left, r.downloaded), (Event::Completed, 0, 100));

    // Without a min interval, an event goes out at once; completed is said only once.
    c.handle_http_response(secs(101), t.id, ok(1800, None, &[]));
    c.announce_event(secs(102), Event::None);
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::None);
}

#[test]
fn an_event_asked_for_during_a_round_goes_out_when_it_ends() {
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.announce_event(secs(1), Event::Completed);
    assert_eq!(c.poll_transmit(), None, "one request per tracker at a time");
    c.handle_http_response(secs(2), t.id, ok(1800, Some(30), &[]));
    assert_eq!(c.poll_timeout(), Some(secs(32)));
    c.handle_timeout(secs(32));
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::Completed);
}

#[test]
fn every_new_tracker_hears_started_and_completed_goes_to_the_one_that_knows_us() {
    let mut c = client(&[&["http://a/announce"], &["http://b/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(0), t.id, ok(1800, None, &[]));
    c.announce_event(secs(10), Event::Completed);
    let (t, url) = one(&mut c);
    assert_eq!(
        (url.as_str(), http_announce(&t).event),
        ("http://a/announce", Event::Completed)
    );
    // a fails: b is asked, and as it has never heard of us it hears started (with left = 0, as a seeder).
    c.handle_failure(secs(10), t.id, "down".into());
    let (t, url) = one(&mut c);
    assert_eq!(
        (url.as_str(), http_announce(&t).event),
        ("http://b/announce", Event::Started)
    );
    c.handle_http_response(secs(11), t.id, ok(1800, None, &[]));
    // The owed completed to a is not sent to b: b first heard of us complete.
    assert_eq!(c.poll_timeout(), Some(secs(1811)));
}

#[test]
fn stopped_goes_to_every_tracker_that_knows_us_at_shutdown() {
    let mut c = client(&[
        &["http://a/announce"],
        &["http://b/announce"],
        &["udp://127.0.0.1:6969"],
    ]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(0), t.id, ok(1800, None, &[]));
    events(&mut c);

    c.shutdown(secs(10));
    let (t, url) = one(&mut c);
    assert_eq!(
        url, "http://a/announce",
        "b and the UDP tracker never heard of us"
    );
    let r = http_announce(&t);
    assert_eq!((r.event, r.numwant), (Event::Stopped, Some(0)));
    assert!(!c.is_finished());
    assert_eq!(c.poll_timeout(), Some(secs(15)));
    c.handle_http_response(secs(11), t.id, ok(1800, None, &[]));
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Announced {
                tracker: t.tracker,
                event: Event::Stopped,
                interval: Duration::ZERO
            },
            ClientEvent::Finished
        ]
    );
    assert!(c.is_finished());
    assert_eq!(c.poll_timeout(), None);
    // Nothing more happens.
    c.announce_event(secs(12), Event::Started);
    assert_eq!(c.poll_transmit(), None);
}

#[test]
fn shutdown_waits_at_most_the_stop_timeout() {
    let mut c = client(&[&["udp://127.0.0.1:6969/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    udp_connect(&mut c, secs(0), &t);
    let (t, _) = one(&mut c);
    let Request::Announce(a) = udp_request(&t) else {
        panic!()
    };
    let answer = udp_bytes(Response::Announce(udp::AnnounceResponse {
        transaction_id: a.transaction_id,
        interval: 1800,
        leechers: 0,
        seeders: 0,
        peers: ResponsePeers::V4(vec![]),
    }));
    c.handle_udp_datagram(secs(1), t.tracker, FROM.parse().unwrap(), &answer);
    events(&mut c);

    c.shutdown(secs(100));
    // The connection id from t=0 has expired: connect first.
    let (t, _) = one(&mut c);
    assert!(matches!(udp_request(&t), Request::Connect(_)));
    udp_connect(&mut c, secs(101), &t);
    let (t, _) = one(&mut c);
    let Request::Announce(a) = udp_request(&t) else {
        panic!()
    };
    assert_eq!((a.event, a.num_want), (Event::Stopped, Some(0)));
    assert_eq!(c.poll_timeout(), Some(secs(105)));
    c.handle_timeout(secs(105));
    assert_eq!(events(&mut c), vec![ClientEvent::Finished]);
    assert_eq!(c.poll_transmit(), None);
}

#[test]
fn shutdown_before_anything_was_announced_finishes_at_once() {
    let mut c = client(&[&["http://a/announce"]]);
    c.shutdown(secs(0));
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(events(&mut c), vec![ClientEvent::Finished]);
    // Stopped is shutdown.
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    // The started announce is abandoned, and a tracker that never answered is not told we stop.
    c.announce_event(secs(1), Event::Stopped);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(events(&mut c), vec![ClientEvent::Finished]);
    c.handle_http_response(secs(1), t.id, ok(1800, None, &[]));
    assert_eq!(events(&mut c), vec![]);
}

#[test]
fn a_failure_reason_is_surfaced_as_an_event() {
    // BEP 3: "If a tracker response has a key failure reason, then that maps to a human readable string which
    // explains why the query failed".
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    let body =
        FailureResponse::new("Requested download is not authorized for use with this tracker.").encode();
    c.handle_http_response(secs(0), t.id, Ok(HttpResponse { status: 200, body }));
    let e = events(&mut c);
    assert_eq!(
        e,
        vec![ClientEvent::TrackerError {
            tracker: t.tracker,
            url: "http://a/announce".into(),
            error: TrackerFailure::Refused(
                "Requested download is not authorized for use with this tracker.".into()
            ),
        }]
    );
    assert_eq!(
        e[0].to_string(),
        "http://a/announce: the tracker refused: Requested download is not authorized for use with this tracker."
    );
}

#[test]
fn udp_error_packets_and_empty_answers_are_surfaced_as_events() {
    let mut c = client(&[&["udp://t.example:80"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    assert_eq!(
        t.request,
        ToSend::Udp {
            host: "t.example".into(),
            port: 80,
            bytes: match &t.request {
                ToSend::Udp { bytes, .. } => bytes.clone(),
                _ => unreachable!(),
            }
        }
    );
    let Request::Connect(r) = udp_request(&t) else {
        panic!()
    };
    let err = udp_bytes(Response::Error(ErrorResponse {
        transaction_id: r.transaction_id,
        message: "banned".into(),
    }));
    c.handle_udp_datagram(secs(1), t.tracker, FROM.parse().unwrap(), &err);
    assert_eq!(errors(&mut c), vec![TrackerFailure::Refused("banned".into())]);

    // Backoff over, the next round: opentracker's bare header for a hash off its whitelist.
    c.handle_timeout(secs(16));
    let (t, _) = one(&mut c);
    udp_connect(&mut c, secs(16), &t);
    let (t, _) = one(&mut c);
    let Request::Announce(a) = udp_request(&t) else {
        panic!()
    };
    let mut empty = vec![0, 0, 0, 1];
    empty.extend_from_slice(&a.transaction_id.0.to_be_bytes());
    c.handle_udp_datagram(secs(16), t.tracker, FROM.parse().unwrap(), &empty);
    let e = errors(&mut c);
    assert_eq!(e, vec![TrackerFailure::EmptyUdpAnswer]);
    assert!(
        e[0].to_string().contains("does not serve this torrent"),
        "{}",
        e[0]
    );
}

#[test]
fn a_udp_announce_through_the_client_carries_everything() {
    let mut c = client(&[&["udp://[::1]:6969/announce?pk=7"]]);
    c.set_progress(10, 20, 30);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    let ToSend::Udp { host, port, .. } = &t.request else {
        panic!()
    };
    assert_eq!((host.as_str(), *port), ("::1", 6969));
    udp_connect(&mut c, secs(0), &t);
    let (t, _) = one(&mut c);
    let Request::Announce(a) = udp_request(&t) else {
        panic!()
    };
    assert_eq!(a.connection_id, ConnectionId(0x1234));
    assert_eq!(
        (a.uploaded, a.downloaded, a.left, a.event),
        (10, 20, 30, Event::Started)
    );
    assert_eq!((a.info_hash, a.port, a.key), (HASH, 6881, c.key()));
    assert_eq!(
        a.url_data.as_deref(),
        Some(&b"/announce?pk=7"[..]),
        "BEP 41 URLData"
    );
    let answer = udp_bytes(Response::Announce(udp::AnnounceResponse {
        transaction_id: a.transaction_id,
        interval: 900,
        leechers: 2,
        seeders: 5,
        peers: ResponsePeers::V6(vec!["[2001:db8::1]:6881".parse().unwrap()]),
    }));
    c.handle_udp_datagram(secs(1), t.tracker, "[::1]:6969".parse().unwrap(), &answer);
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Announced {
                tracker: t.tracker,
                event: Event::Started,
                interval: Duration::from_secs(900)
            },
            ClientEvent::Peers {
                tracker: t.tracker,
                peers: vec!["[2001:db8::1]:6881".parse().unwrap()]
            },
            ClientEvent::Stats {
                tracker: t.tracker,
                complete: 5,
                incomplete: 2,
                downloaded: None
            },
        ]
    );
    assert_eq!(c.poll_timeout(), Some(secs(901)));
}

#[test]
fn udp_retransmissions_come_out_as_transmits_and_then_the_tracker_fails_over() {
    let config = ClientConfig {
        udp: UdpConfig {
            base_timeout: Duration::from_secs(1),
            max_n: 2,
            ..UdpConfig::default()
        },
        ..exact()
    };
    let mut c = client_with(&[&["udp://dead:1"], &["http://live/announce"]], config, 1);
    c.announce_event(secs(0), Event::Started);
    let mut sent = Vec::new();
    let (t, _) = one(&mut c);
    sent.push((0, t.id));
    while let Some(at) = c.poll_timeout() {
        c.handle_timeout(at);
        let t = c.poll_transmit().unwrap();
        let s = at.since_epoch().as_secs();
        if let ToSend::Http { .. } = t.request {
            sent.push((s, t.id));
            break;
        }
        assert!(matches!(udp_request(&t), Request::Connect(_)));
        sent.push((s, t.id));
    }
    // Sends at 0, 1 and 3 s (1 * 2^n), failure at 7 s, then the next tier at once.
    let times: Vec<u64> = sent.iter().map(|(s, _)| *s).collect();
    assert_eq!(times, vec![0, 1, 3, 7]);
    assert_eq!(sent[0].1, sent[2].1, "retransmissions belong to one request");
    assert_eq!(
        errors(&mut c),
        vec![TrackerFailure::UdpTimedOut {
            sends: 3,
            waited: Duration::from_secs(7)
        }]
    );
}

#[test]
fn an_http_request_times_out_and_its_late_response_is_ignored() {
    let mut c = client(&[&["http://slow/announce", "http://fast/announce"]]);
    let order = c.tiers()[0].clone();
    c.announce_event(secs(0), Event::Started);
    let (slow, _) = one(&mut c);
    assert_eq!(c.poll_timeout(), Some(secs(30)));
    c.handle_timeout(secs(30));
    assert_eq!(
        errors(&mut c),
        vec![TrackerFailure::HttpTimedOut(Duration::from_secs(30))]
    );
    let (fast, _) = one(&mut c);
    assert_eq!(fast.tracker, order[1]);
    c.handle_http_response(secs(31), slow.id, ok(1800, None, &["10.0.0.1:1"]));
    assert_eq!(events(&mut c), vec![], "a stale response changes nothing");
    assert_eq!(c.tiers()[0], order);
    c.handle_failure(secs(31), slow.id, "late".into());
    assert_eq!(events(&mut c), vec![]);
}

#[test]
fn http_statuses_other_than_200_are_failures_unless_they_carry_a_reason() {
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(
        secs(0),
        t.id,
        Ok(HttpResponse {
            status: 404,
            body: b"<html>Not Found</html>".to_vec(),
        }),
    );
    assert_eq!(errors(&mut c), vec![TrackerFailure::HttpStatus(404)]);
    c.handle_timeout(secs(15));
    let (t, _) = one(&mut c);
    c.handle_http_response(
        secs(15),
        t.id,
        Ok(HttpResponse {
            status: 403,
            body: FailureResponse::new("bad passkey").encode(),
        }),
    );
    assert_eq!(
        errors(&mut c),
        vec![TrackerFailure::Refused("bad passkey".into())]
    );
    c.handle_timeout(secs(45));
    let (t, _) = one(&mut c);
    c.handle_http_response(
        secs(45),
        t.id,
        Ok(HttpResponse {
            status: 200,
            body: b"<html>".to_vec(),
        }),
    );
    let e = errors(&mut c);
    assert!(
        matches!(&e[..], [TrackerFailure::Malformed(m)] if m.starts_with("response is not bencode")),
        "{e:?}"
    );
}

#[test]
fn peers_warnings_and_tracker_ids_from_http_responses() {
    let mut c = client(&[&["http://a/announce?passkey=1"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    let ToSend::Http { url } = &t.request else {
        panic!()
    };
    assert!(
        url.starts_with("http://a/announce?passkey=1&info_hash=%AB%AB"),
        "{url}"
    );
    assert!(url.contains(&format!("&key={:08X}", c.key())), "{url}");
    let body = AnnounceResponse {
        interval: 600,
        tracker_id: Some(b"xyz".to_vec()),
        peers: vec!["10.0.0.1:6881".parse().unwrap(), "10.0.0.2:0".parse().unwrap()],
        peers6: vec!["[2001:db8::7]:51413".parse().unwrap()],
        warning: Some("slow down".into()),
        ..Default::default()
    };
    c.handle_http_response(
        secs(0),
        t.id,
        Ok(HttpResponse {
            status: 200,
            body: body.encode_compact(),
        }),
    );
    let peers: Vec<SocketAddr> = vec![
        "10.0.0.1:6881".parse().unwrap(),
        "[2001:db8::7]:51413".parse().unwrap(),
    ];
    assert_eq!(
        events(&mut c),
        vec![
            ClientEvent::Announced {
                tracker: t.tracker,
                event: Event::Started,
                interval: Duration::from_secs(600)
            },
            ClientEvent::Warning {
                tracker: Some(t.tracker),
                message: "slow down".into()
            },
            ClientEvent::Peers {
                tracker: t.tracker,
                peers
            },
        ],
        "peers on port 0 are left out; no counts, no Stats"
    );
    c.handle_timeout(secs(600));
    let (t, _) = one(&mut c);
    assert_eq!(
        http_announce(&t).trackerid.as_deref(),
        Some(&b"xyz"[..]),
        "tracker id echoed"
    );
}

#[test]
fn scrape_uses_the_bep48_url_and_reports_counts() {
    let mut c = client(&[&["http://a/x/announce.php?pk=1"]]);
    let target = c.scrape(secs(0)).unwrap();
    let (t, _) = one(&mut c);
    assert_eq!(t.tracker, target);
    let ToSend::Http { url } = &t.request else {
        panic!()
    };
    assert_eq!(
        url,
        &format!("http://a/x/scrape.php?pk=1&info_hash={}", "%AB".repeat(20))
    );
    let mut files = std::collections::BTreeMap::new();
    files.insert(
        HASH,
        ScrapeStats {
            complete: 1,
            downloaded: 9,
            incomplete: 2,
        },
    );
    let body = ScrapeResponse { files }.encode();
    c.handle_http_response(secs(1), t.id, Ok(HttpResponse { status: 200, body }));
    assert_eq!(
        events(&mut c),
        vec![ClientEvent::Stats {
            tracker: target,
            complete: 1,
            incomplete: 2,
            downloaded: Some(9)
        }]
    );
    // A scrape does not start announcing.
    assert_eq!(c.poll_timeout(), None);

    // A response without this torrent.
    c.scrape(secs(2));
    let (t, _) = one(&mut c);
    let body = ScrapeResponse::default().encode();
    c.handle_http_response(secs(2), t.id, Ok(HttpResponse { status: 200, body }));
    assert_eq!(errors(&mut c), vec![TrackerFailure::NotInScrape]);

    // No scrape URL: nothing to ask.
    let mut c = client(&[&["http://a/tracker"]]);
    assert_eq!(c.scrape(secs(0)), None);
    assert_eq!(c.poll_transmit(), None);
    let e = events(&mut c);
    assert!(
        matches!(&e[..], [ClientEvent::Warning { tracker: None, message }] if message.starts_with("no tracker of this torrent can be scraped")),
        "{e:?}"
    );
}

#[test]
fn a_udp_scrape_and_an_announce_share_the_tracker() {
    let mut c = client(&[&["udp://t:1"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    // A scrape asked for while the announce is in flight waits for it.
    assert!(c.scrape(secs(0)).is_some());
    assert_eq!(c.poll_transmit(), None);
    udp_connect(&mut c, secs(0), &t);
    let (t, _) = one(&mut c);
    let Request::Announce(a) = udp_request(&t) else {
        panic!()
    };
    let answer = udp_bytes(Response::Announce(udp::AnnounceResponse {
        transaction_id: a.transaction_id,
        interval: 1800,
        leechers: 0,
        seeders: 0,
        peers: ResponsePeers::V4(vec![]),
    }));
    c.handle_udp_datagram(secs(1), t.tracker, FROM.parse().unwrap(), &answer);
    // Now the scrape, on the same connection id.
    let (t, _) = one(&mut c);
    let Request::Scrape(s) = udp_request(&t) else {
        panic!()
    };
    assert_eq!(
        (s.connection_id, s.info_hashes.clone()),
        (ConnectionId(0x1234), vec![HASH])
    );
    let answer = udp_bytes(Response::Scrape(udp::ScrapeResponse {
        transaction_id: s.transaction_id,
        stats: vec![ScrapeStats {
            complete: 4,
            downloaded: 5,
            incomplete: 6,
        }],
    }));
    c.handle_udp_datagram(secs(1), t.tracker, FROM.parse().unwrap(), &answer);
    assert!(events(&mut c).contains(&ClientEvent::Stats {
        tracker: t.tracker,
        complete: 4,
        incomplete: 6,
        downloaded: Some(5)
    }));
}

#[test]
fn unusable_and_repeated_urls_are_left_out_with_a_warning() {
    let mut c = client(&[
        &[
            "wss://tracker.example",
            "udp://noport.example/announce",
            "http://a/announce",
        ],
        &["http://a/announce", "udp://t:0", "not a url", "udp://[::1:1"],
    ]);
    assert_eq!(c.tiers().len(), 1, "the second tier has nothing usable");
    assert_eq!(c.tracker_url(c.tiers()[0][0]), Some("http://a/announce"));
    let messages: Vec<String> = events(&mut c).iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "warning: ignoring tracker \"wss://tracker.example\": unsupported scheme \"wss\" (http, https and udp are supported)",
            "warning: ignoring tracker \"udp://noport.example/announce\": a UDP tracker URL needs a port (udp://host:port)",
            "warning: ignoring tracker \"udp://t:0\": bad port \"0\"",
            "warning: ignoring tracker \"not a url\": not a URL (no scheme://)",
            "warning: ignoring tracker \"udp://[::1:1\": a UDP tracker URL needs a port (udp://host:port)",
        ]
    );
}

#[test]
fn no_trackers_means_nothing_to_do() {
    let mut c = client(&[]);
    c.announce_event(secs(0), Event::Started);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), None);
    assert_eq!(c.scrape(secs(0)), None);
}

#[test]
fn too_many_trackers_are_capped() {
    let urls: Vec<String> = (0..MAX_TRACKERS + 3)
        .map(|i| format!("http://t{i}/announce"))
        .collect();
    let refs: Vec<&str> = urls.iter().map(String::as_str).collect();
    let mut c = client(&[&refs]);
    assert_eq!(c.tiers()[0].len(), MAX_TRACKERS);
    assert_eq!(events(&mut c).len(), 3);
}

#[test]
fn paused_announces_say_paused_and_started_clears_it() {
    let mut c = client(&[&["http://a/announce"]]);
    c.announce_event(secs(0), Event::Started);
    let (t, _) = one(&mut c);
    c.handle_http_response(secs(0), t.id, ok(1800, None, &[]));
    c.announce_event(secs(5), Event::Paused);
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::Paused);
    c.handle_http_response(secs(5), t.id, ok(1800, None, &[]));
    c.handle_timeout(secs(1805));
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::Paused);
    c.handle_http_response(secs(1805), t.id, ok(1800, None, &[]));
    c.announce_event(secs(1806), Event::Started);
    let (t, _) = one(&mut c);
    assert_eq!(http_announce(&t).event, Event::Started);
}

proptest! {
    #[test]
    fn no_input_makes_the_client_panic(
        datagrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..128),
        status in any::<u16>(),
    ) {
        let mut c = client(&[&["udp://t:1"], &["http://a/announce"]]);
        c.announce_event(secs(0), Event::Started);
        let t = c.poll_transmit().unwrap();
        let mut datagrams = datagrams;
        // Also try each datagram with the real transaction id.
        if let Request::Connect(r) = udp_request(&t) {
            for d in datagrams.clone() {
                let mut d2 = d.clone();
                if d2.len() >= 8 {
                    d2[4..8].copy_from_slice(&r.transaction_id.0.to_be_bytes());
                    datagrams.push(d2);
                }
            }
        }
        for (i, d) in datagrams.iter().enumerate() {
            c.handle_udp_datagram(secs(i as u64), t.tracker, FROM.parse().unwrap(), d);
        }
        c.handle_timeout(secs(1000));
        while let Some(t) = c.poll_transmit() {
            if let ToSend::Http { .. } = t.request {
                c.handle_http_response(secs(1000), t.id, Ok(HttpResponse { status, body: body.clone() }));
            }
        }
        let _ = events(&mut c);
        c.shutdown(secs(1001));
        c.handle_timeout(secs(2000));
        prop_assert!(c.is_finished());
    }
}

#[test]
fn address_family_follows_the_sender() {
    // Sanity for the helper the client relies on: a v4-mapped sender reads v4 peers.
    assert_eq!(
        AddressFamily::of(&"[::ffff:127.0.0.1]:1".parse().unwrap()),
        AddressFamily::V4
    );
}
