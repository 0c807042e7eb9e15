//! Behaviour tests in virtual time, each named for the rule it checks, and a property test of the
//! invariants under random announce sequences.

use std::net::{IpAddr, SocketAddr};

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use tracker_proto::{http, udp, Event, InfoHashV1, PeerId, TransactionId};

use crate::*;

fn rng() -> SmallRng {
    SmallRng::seed_from_u64(42)
}

fn store_with(config: SwarmConfig) -> SwarmStore {
    SwarmStore::new(config, &mut rng()).unwrap()
}

fn store() -> SwarmStore {
    store_with(SwarmConfig::default())
}

fn ih(n: u8) -> InfoHashV1 {
    InfoHashV1([n; 20])
}

fn pid(n: u32) -> PeerId {
    let mut id = *b"-BS0100-000000000000";
    id[8..].copy_from_slice(format!("{n:012}").as_bytes());
    PeerId(id)
}

fn v4(n: u32) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n)), 6881)
}

fn v6(n: u16) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V6(std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n)),
        6881,
    )
}

/// A leecher's announce: peer `p` at `addr` in swarm `t`, 1000 bytes left.
fn leech(t: u8, p: u32, addr: SocketAddr) -> AnnounceInput {
    let mut a = AnnounceInput::new(ih(t), pid(p), addr);
    a.left = 1000;
    a
}

fn seed(t: u8, p: u32, addr: SocketAddr) -> AnnounceInput {
    AnnounceInput::new(ih(t), pid(p), addr)
}

fn with(mut a: AnnounceInput, f: impl FnOnce(&mut AnnounceInput)) -> AnnounceInput {
    f(&mut a);
    a
}

#[test]
fn stopped_removes_the_peer() {
    // BEP 3: "stopped" is sent "when the downloader ceases downloading".
    let (mut s, mut r) = (store(), rng());
    s.announce(Secs(0), seed(1, 1, v4(1)), &mut r).unwrap();
    s.announce(Secs(0), leech(1, 2, v4(2)), &mut r).unwrap();
    let out = s
        .announce(
            Secs(10),
            with(leech(1, 2, v4(2)), |a| a.event = Event::Stopped),
            &mut r,
        )
        .unwrap();
    assert_eq!((out.complete, out.incomplete), (1, 0));
    assert!(out.peers_v4.is_empty(), "a stopping peer gets no peers");
    assert_eq!(s.global_stats().peers, 1);
    // A stopped announce for an unknown swarm creates nothing.
    s.announce(
        Secs(10),
        with(leech(9, 3, v4(3)), |a| a.event = Event::Stopped),
        &mut r,
    )
    .unwrap();
    assert_eq!(s.global_stats().torrents, 1);
    s.check_invariants().unwrap();
}

#[test]
fn completed_counts_once_per_peer() {
    let (mut s, mut r) = (store(), rng());
    s.announce(Secs(0), leech(1, 1, v4(1)), &mut r).unwrap();
    let done = with(seed(1, 1, v4(1)), |a| a.event = Event::Completed);
    assert_eq!(s.announce(Secs(10), done, &mut r).unwrap().downloaded, 1);
    assert_eq!(
        s.announce(Secs(20), done, &mut r).unwrap().downloaded,
        1,
        "repeated completed"
    );
    s.announce(
        Secs(30),
        with(seed(1, 2, v4(2)), |a| a.event = Event::Completed),
        &mut r,
    )
    .unwrap();
    assert_eq!(s.scrape(&[ih(1)])[0].downloaded, 2);
    assert_eq!(s.torrent_stats(&ih(1), false).unwrap().completed, 2);
}

#[test]
fn seeders_get_no_seeders() {
    let (mut s, mut r) = (store(), rng());
    for p in 0..5 {
        s.announce(Secs(0), seed(1, p, v4(p)), &mut r).unwrap();
    }
    for p in 5..8 {
        s.announce(Secs(0), leech(1, p, v4(p)), &mut r).unwrap();
    }
    let out = s.announce(Secs(1), seed(1, 0, v4(0)), &mut r).unwrap();
    let mut got: Vec<_> = out.peers_v4.iter().map(|a| SocketAddr::V4(*a)).collect();
    got.sort();
    assert_eq!(got, vec![v4(5), v4(6), v4(7)]);
    // BEP 21: a paused partial seed downloads nothing more, so it gets no seeders either.
    let paused = with(leech(1, 5, v4(5)), |a| a.event = Event::Paused);
    let out = s.announce(Secs(2), paused, &mut r).unwrap();
    let mut got: Vec<_> = out.peers_v4.iter().map(|a| SocketAddr::V4(*a)).collect();
    got.sort();
    assert_eq!(got, vec![v4(6), v4(7)]);
    // A leecher gets everyone but itself.
    let out = s.announce(Secs(3), leech(1, 6, v4(6)), &mut r).unwrap();
    assert_eq!(out.peers_v4.len(), 7);
    assert!(!out.peers_v4.iter().any(|a| SocketAddr::V4(*a) == v4(6)));
}

#[test]
fn numwant_is_capped() {
    let config = SwarmConfig {
        max_numwant: 30,
        default_numwant: 10,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    for p in 0..100 {
        s.announce(Secs(0), seed(1, p, v4(p)), &mut r).unwrap();
    }
    let ask = |n: Option<u32>| with(leech(1, 1000, v4(1000)), |a| a.numwant = n);
    assert_eq!(s.announce(Secs(1), ask(None), &mut r).unwrap().peers_v4.len(), 10);
    assert_eq!(
        s.announce(Secs(2), ask(Some(25)), &mut r).unwrap().peers_v4.len(),
        25
    );
    assert_eq!(
        s.announce(Secs(3), ask(Some(5000)), &mut r)
            .unwrap()
            .peers_v4
            .len(),
        30
    );
    assert_eq!(
        s.announce(Secs(4), ask(Some(0)), &mut r).unwrap().peers_v4.len(),
        0
    );
    // The subset is random: two draws differ.
    let a = s.announce(Secs(5), ask(Some(20)), &mut r).unwrap().peers_v4;
    let b = s.announce(Secs(6), ask(Some(20)), &mut r).unwrap().peers_v4;
    assert_ne!(a, b);
    let mut unique = a.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 20, "no peer twice");
}

#[test]
fn peers_expire_after_timeout() {
    let config = SwarmConfig {
        interval: 100,
        min_interval: 50,
        peer_timeout: 30,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    s.announce(Secs(1000), seed(1, 1, v4(1)), &mut r).unwrap();
    s.announce(Secs(1050), seed(1, 2, v4(2)), &mut r).unwrap();
    // 130 s after its last announce a peer is still there; at 131 it is gone.
    assert_eq!(s.expire(Secs(1130), usize::MAX).peers_expired, 0);
    let report = s.expire(Secs(1131), usize::MAX);
    assert_eq!(report.peers_expired, 1);
    assert_eq!(s.global_stats().peers, 1);
    // Announcing on time keeps a peer forever.
    for t in (1100..3000).step_by(100) {
        s.announce(Secs(t), seed(1, 2, v4(2)), &mut r).unwrap();
        s.expire(Secs(t + 99), usize::MAX);
    }
    assert_eq!(s.global_stats().peers, 1);
    assert_eq!(s.global_stats().peers_expired, 1);
    s.check_invariants().unwrap();
}

#[test]
fn expiry_is_incremental_and_removes_swarms_without_record() {
    let config = SwarmConfig {
        interval: 10,
        min_interval: 5,
        peer_timeout: 0,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    for t in 0..10u8 {
        for p in 0..10 {
            s.announce(Secs(0), leech(t, p, v4(p)), &mut r).unwrap();
        }
    }
    // One swarm has a completed count of record: it stays, peerless.
    s.announce(
        Secs(0),
        with(seed(3, 99, v4(99)), |a| a.event = Event::Completed),
        &mut r,
    )
    .unwrap();
    let mut calls = 0;
    let mut expired = 0;
    loop {
        let report = s.expire(Secs(100), 7);
        assert!(report.work <= 7);
        expired += report.peers_expired;
        calls += 1;
        s.check_invariants().unwrap();
        if report.wrapped {
            break;
        }
    }
    assert_eq!(expired, 101);
    assert!(calls >= 101 / 7, "work was spread over {calls} calls");
    let g = s.global_stats();
    assert_eq!((g.peers, g.torrents, g.torrents_removed), (0, 1, 9));
    assert_eq!(s.scrape(&[ih(3)])[0].downloaded, 1);
}

#[test]
fn rates_come_from_announce_deltas() {
    let (mut s, mut r) = (store(), rng());
    let at = |up: u64, down: u64| {
        with(leech(1, 1, v4(1)), |a| {
            a.uploaded = up;
            a.downloaded = down;
        })
    };
    s.announce(Secs(100), at(1000, 5000), &mut r).unwrap();
    let view = |s: &SwarmStore| s.torrent_stats(&ih(1), false).unwrap().peers[0].clone();
    assert_eq!((view(&s).upload_rate, view(&s).download_rate), (0.0, 0.0));
    s.announce(Secs(110), at(3000, 25_000), &mut r).unwrap();
    assert_eq!((view(&s).upload_rate, view(&s).download_rate), (200.0, 2000.0));
    // The client restarted its counters: the delta is 0, not negative.
    s.announce(Secs(130), at(500, 100), &mut r).unwrap();
    assert_eq!((view(&s).upload_rate, view(&s).download_rate), (0.0, 0.0));
    s.announce(Secs(140), at(1500, 100), &mut r).unwrap();
    assert_eq!(view(&s).upload_rate, 100.0);
    assert_eq!(
        (view(&s).first_announce, view(&s).last_announce),
        (Secs(100), Secs(140))
    );
}

#[test]
fn completion_uses_known_size_else_largest_left_plus_downloaded() {
    let (mut s, mut r) = (store(), rng());
    // Unknown size: the largest left + downloaded seen (here 1000 + 0, then 400 + 800 = 1200).
    s.announce(Secs(0), leech(1, 1, v4(1)), &mut r).unwrap();
    let completion = |s: &SwarmStore, t: u8| -> Vec<f32> {
        s.torrent_stats(&ih(t), false)
            .unwrap()
            .peers
            .iter()
            .map(|p| p.completion)
            .collect()
    };
    assert_eq!(completion(&s, 1), vec![0.0]);
    s.announce(
        Secs(0),
        with(leech(1, 2, v4(2)), |a| {
            a.left = 400;
            a.downloaded = 800;
        }),
        &mut r,
    )
    .unwrap();
    assert_eq!(s.torrent_stats(&ih(1), false).unwrap().size_for_completion, 1200);
    let exact = |x: f64| x as f32;
    assert_eq!(
        completion(&s, 1),
        vec![exact(1.0 - 400.0 / 1200.0), exact(1.0 - 1000.0 / 1200.0)]
    );
    s.announce(Secs(0), seed(1, 3, v4(3)), &mut r).unwrap();
    assert_eq!(completion(&s, 1)[0], 1.0);
    // Known size: registered with 4000 bytes.
    s.register(ih(2), Some(4000), "two".into());
    s.announce(Secs(0), with(leech(2, 1, v4(1)), |a| a.downloaded = 9000), &mut r)
        .unwrap();
    assert_eq!(completion(&s, 2), vec![0.75]);
    // A size learned later replaces the estimate.
    s.register(ih(1), Some(2000), "one".into());
    assert_eq!(completion(&s, 1), vec![1.0, 0.8, 0.5]);
}

fn private_config() -> SwarmConfig {
    SwarmConfig {
        mode: Mode::Private,
        min_ratio: 0.5,
        ratio_grace_bytes: 1000,
        ..SwarmConfig::default()
    }
}

#[test]
fn ratio_below_minimum_is_refused_after_grace() {
    let (mut s, mut r) = (store_with(private_config()), rng());
    s.register(ih(1), None, "one".into());
    let pk = Passkey([1; 16]);
    let user = s.add_user(pk).unwrap();
    let at = |down: u64, up: u64| {
        with(leech(1, 1, v4(1)), |a| {
            a.passkey = Some(pk);
            a.downloaded = down;
            a.uploaded = up;
        })
    };
    s.announce(Secs(0), at(0, 0), &mut r).unwrap();
    // 900 downloaded, nothing uploaded: ratio 0, but within the grace amount.
    s.announce(Secs(10), at(900, 0), &mut r).unwrap();
    // Past it: refused, with the numbers. The deltas were still credited.
    let err = s.announce(Secs(20), at(2000, 420), &mut r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ratio 0.21 is below the minimum 0.50 for this tracker (uploaded 420 B, downloaded 1.95 KiB)"
    );
    assert_eq!(
        s.user(user),
        Some(UserStats {
            id: user,
            uploaded: 420,
            downloaded: 2000
        })
    );
    // Seeding is always allowed, so the user can climb back.
    let seeding = with(at(2000, 900), |a| a.left = 0);
    s.announce(Secs(30), seeding, &mut r).unwrap();
    let ok = with(at(2000, 1000), |a| a.left = 10);
    s.announce(Secs(40), ok, &mut r).unwrap();
    assert_eq!(s.user(user).unwrap().uploaded, 1000);
    assert_eq!(s.global_stats().refused, 1);
}

#[test]
fn user_totals_come_from_per_peer_deltas_clamped_at_zero() {
    let (mut s, mut r) = (
        store_with(SwarmConfig {
            min_ratio: 0.0,
            ..private_config()
        }),
        rng(),
    );
    s.register(ih(1), None, "one".into());
    s.register(ih(2), None, "two".into());
    let pk = Passkey([1; 16]);
    let user = s.add_user(pk).unwrap();
    let at = |t: u8, p: u32, up: u64, down: u64| {
        with(leech(t, p, v4(p)), |a| {
            a.passkey = Some(pk);
            a.uploaded = up;
            a.downloaded = down;
        })
    };
    // First announces set baselines (a client whose entry was lost is not credited twice).
    s.announce(Secs(0), at(1, 1, 500, 500), &mut r).unwrap();
    s.announce(Secs(0), at(2, 2, 0, 0), &mut r).unwrap();
    s.announce(Secs(10), at(1, 1, 700, 900), &mut r).unwrap();
    s.announce(Secs(10), at(2, 2, 50, 60), &mut r).unwrap();
    assert_eq!(s.user(user).map(|u| (u.uploaded, u.downloaded)), Some((250, 460)));
    // Counters restarted: nothing credited, the new values become the baseline.
    s.announce(Secs(20), at(1, 1, 10, 10), &mut r).unwrap();
    s.announce(Secs(30), at(1, 1, 30, 15), &mut r).unwrap();
    assert_eq!(s.user(user).map(|u| (u.uploaded, u.downloaded)), Some((270, 465)));
    // A stopped announce is credited too.
    s.announce(
        Secs(40),
        with(at(2, 2, 150, 60), |a| a.event = Event::Stopped),
        &mut r,
    )
    .unwrap();
    assert_eq!(s.user(user).map(|u| u.uploaded), Some(370));
}

#[test]
fn private_mode_needs_a_known_passkey_and_a_registered_torrent() {
    let (mut s, mut r) = (store_with(private_config()), rng());
    s.register(ih(1), None, "one".into());
    let pk = Passkey([1; 16]);
    let user = s.add_user(pk).unwrap();
    assert_eq!(s.add_user(pk), Err(UserError::PasskeyInUse(user)));
    let a = leech(1, 1, v4(1));
    assert_eq!(
        s.announce(Secs(0), a, &mut r).unwrap_err().to_string(),
        "missing passkey: this tracker is private, use the announce URL with your passkey"
    );
    let wrong = with(a, |a| a.passkey = Some(Passkey([2; 16])));
    assert_eq!(
        s.announce(Secs(0), wrong, &mut r).unwrap_err().to_string(),
        "unknown passkey"
    );
    let other = with(leech(2, 1, v4(1)), |a| a.passkey = Some(pk));
    assert_eq!(
        s.announce(Secs(0), other, &mut r).unwrap_err().to_string(),
        "unregistered torrent"
    );
    s.announce(Secs(0), with(a, |a| a.passkey = Some(pk)), &mut r)
        .unwrap();
    // Another user cannot take over the entry, even from the same address.
    let pk2 = Passkey([3; 16]);
    s.add_user(pk2).unwrap();
    let theft = with(a, |a| a.passkey = Some(pk2));
    assert_eq!(s.announce(Secs(1), theft, &mut r), Err(Refusal::PeerIdInUse));
    // A removed user's passkey stops working at once.
    assert!(s.remove_user(user));
    let a = with(a, |a| a.passkey = Some(pk));
    assert_eq!(s.announce(Secs(2), a, &mut r), Err(Refusal::UnknownPasskey));
}

#[test]
fn allow_list_mode_refuses_unregistered_torrents() {
    let config = SwarmConfig {
        mode: Mode::AllowList,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    assert_eq!(
        s.announce(Secs(0), leech(1, 1, v4(1)), &mut r),
        Err(Refusal::UnregisteredTorrent)
    );
    assert!(s.register(ih(1), Some(1000), "one".into()));
    assert!(!s.register(ih(1), Some(1000), "one, renamed".into()));
    s.announce(Secs(0), leech(1, 1, v4(1)), &mut r).unwrap();
    assert_eq!(
        s.torrent_stats(&ih(1), false).unwrap().name.as_deref(),
        Some("one, renamed")
    );
    // Unregistering ends the swarm.
    assert!(s.unregister(&ih(1)));
    assert_eq!(s.global_stats().peers, 0);
    assert_eq!(
        s.announce(Secs(1), leech(1, 1, v4(1)), &mut r),
        Err(Refusal::UnregisteredTorrent)
    );
    assert!(!s.unregister(&ih(1)));
    s.check_invariants().unwrap();
}

#[test]
fn key_protects_against_hijack() {
    // BEP 7: the key "allows a client to prove its identity should its IP address change".
    let (mut s, mut r) = (store(), rng());
    let owner = with(leech(1, 1, v4(1)), |a| a.key = Some(0xdead_beef));
    s.announce(Secs(0), owner, &mut r).unwrap();
    // Same peer id from another address, no key or a wrong one: refused, and the entry is untouched.
    for key in [None, Some(1)] {
        let thief = with(leech(1, 1, v4(66)), |a| a.key = key);
        assert_eq!(s.announce(Secs(1), thief, &mut r), Err(Refusal::PeerIdInUse));
        let stop = with(thief, |a| a.event = Event::Stopped);
        assert_eq!(s.announce(Secs(1), stop, &mut r), Err(Refusal::PeerIdInUse));
    }
    let stats = s.torrent_stats(&ih(1), true).unwrap();
    assert_eq!(stats.peers.len(), 1);
    assert_eq!(stats.peers[0].addr, Some(v4(1)));
    // The owner moves to a new address (even another family) with its key.
    let moved = with(owner, |a| a.addr = v6(7));
    s.announce(Secs(2), moved, &mut r).unwrap();
    assert_eq!(s.torrent_stats(&ih(1), true).unwrap().peers[0].addr, Some(v6(7)));
    // From the same IP, a restarted client (new key, new port) is the same peer.
    let restarted = with(owner, |a| {
        a.addr = SocketAddr::new(v6(7).ip(), 7000);
        a.key = Some(5);
    });
    s.announce(Secs(3), restarted, &mut r).unwrap();
    let stats = s.torrent_stats(&ih(1), true).unwrap();
    assert_eq!(stats.peers.len(), 1);
    assert_eq!(stats.peers[0].addr, Some(SocketAddr::new(v6(7).ip(), 7000)));
    // A peer that never sent a key can only be updated from its own IP address.
    s.announce(Secs(4), leech(1, 2, v4(2)), &mut r).unwrap();
    let thief = with(leech(1, 2, v4(67)), |a| a.key = Some(9));
    assert_eq!(s.announce(Secs(5), thief, &mut r), Err(Refusal::PeerIdInUse));
    s.check_invariants().unwrap();
}

#[test]
fn full_swarm_replaces_the_peer_with_the_oldest_last_announce() {
    let config = SwarmConfig {
        max_peers_per_torrent: 3,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    s.announce(Secs(10), leech(1, 1, v4(1)), &mut r).unwrap();
    s.announce(Secs(5), leech(1, 2, v4(2)), &mut r).unwrap();
    s.announce(Secs(20), seed(1, 3, v4(3)), &mut r).unwrap();
    s.announce(Secs(30), leech(1, 4, v4(4)), &mut r).unwrap();
    let mut addrs: Vec<_> = s
        .torrent_stats(&ih(1), true)
        .unwrap()
        .peers
        .iter()
        .filter_map(|p| p.addr)
        .collect();
    addrs.sort();
    assert_eq!(addrs, vec![v4(1), v4(3), v4(4)]);
    assert_eq!(s.global_stats().peers_evicted, 1);
    s.check_invariants().unwrap();
}

#[test]
fn full_store_replaces_peerless_swarms_but_never_live_ones() {
    let config = SwarmConfig {
        max_torrents: 2,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    s.announce(Secs(0), leech(1, 1, v4(1)), &mut r).unwrap();
    s.announce(
        Secs(0),
        with(seed(2, 1, v4(1)), |a| a.event = Event::Completed),
        &mut r,
    )
    .unwrap();
    let refused = s.announce(Secs(0), leech(3, 1, v4(1)), &mut r).unwrap_err();
    assert_eq!(refused.to_string(), "tracker full");
    // Swarm 2 loses its only peer but keeps its completed count: it is not removed by expiry, but it is
    // the one replaced when a new swarm needs room.
    s.announce(
        Secs(1),
        with(seed(2, 1, v4(1)), |a| a.event = Event::Stopped),
        &mut r,
    )
    .unwrap();
    s.expire(Secs(1), usize::MAX);
    assert_eq!(s.global_stats().torrents, 2);
    s.announce(Secs(2), leech(3, 1, v4(1)), &mut r).unwrap();
    let g = s.global_stats();
    assert_eq!((g.torrents, g.torrents_evicted), (2, 1));
    assert_eq!(
        s.scrape(&[ih(1), ih(2), ih(3)])
            .iter()
            .map(|x| x.incomplete)
            .collect::<Vec<_>>(),
        vec![1, 0, 1]
    );
    s.check_invariants().unwrap();
}

#[test]
fn max_peers_refuses_new_peers_but_not_known_ones() {
    let config = SwarmConfig {
        max_peers: 2,
        ..SwarmConfig::default()
    };
    let (mut s, mut r) = (store_with(config), rng());
    s.announce(Secs(0), leech(1, 1, v4(1)), &mut r).unwrap();
    s.announce(Secs(0), leech(2, 2, v4(2)), &mut r).unwrap();
    assert_eq!(
        s.announce(Secs(0), leech(1, 3, v4(3)), &mut r),
        Err(Refusal::TrackerFull)
    );
    assert_eq!(
        s.announce(Secs(0), leech(3, 3, v4(3)), &mut r),
        Err(Refusal::TrackerFull)
    );
    s.announce(Secs(1), leech(1, 1, v4(1)), &mut r).unwrap();
    assert_eq!(
        s.global_stats().torrents,
        2,
        "no empty swarm was made for the refused peer"
    );
    s.check_invariants().unwrap();
}

#[test]
fn peer_lists_put_the_requesters_family_first_and_both_are_returned() {
    let (mut s, mut r) = (store(), rng());
    for p in 0..3 {
        s.announce(Secs(0), seed(1, p, v4(p)), &mut r).unwrap();
    }
    for p in 3..6u16 {
        s.announce(Secs(0), seed(1, u32::from(p), v6(p)), &mut r).unwrap();
    }
    let ask = |addr, n| with(leech(1, 100, addr), |a| a.numwant = Some(n));
    let out = s.announce(Secs(1), ask(v6(100), 4), &mut r).unwrap();
    assert_eq!((out.peers_v6.len(), out.peers_v4.len()), (3, 1));
    let out = s.announce(Secs(1), ask(v4(100), 4), &mut r).unwrap_err();
    assert_eq!(
        out,
        Refusal::PeerIdInUse,
        "same peer id from another IP without a key"
    );
    let out = s
        .announce(Secs(1), with(ask(v4(101), 50), |a| a.peer_id = pid(101)), &mut r)
        .unwrap();
    assert_eq!((out.peers_v4.len(), out.peers_v6.len()), (3, 4));
    // An IPv4-mapped IPv6 address (a dual-stack socket's view) is IPv4.
    let mapped: SocketAddr = "[::ffff:10.1.2.3]:6881".parse().unwrap();
    s.announce(Secs(1), seed(1, 200, mapped), &mut r).unwrap();
    assert_eq!(s.global_stats().ipv4_peers, 5);
    s.check_invariants().unwrap();
}

#[test]
fn port_zero_is_refused() {
    let (mut s, mut r) = (store(), rng());
    let a = leech(1, 1, SocketAddr::new(v4(1).ip(), 0));
    assert_eq!(
        s.announce(Secs(0), a, &mut r).unwrap_err().to_string(),
        "invalid port 0"
    );
}

#[test]
fn stats_hide_addresses_unless_revealed_and_name_clients() {
    let (mut s, mut r) = (store(), rng());
    let mut a = seed(1, 1, v4(1));
    a.peer_id = PeerId(*b"-qB4630-abcdefghijkl");
    s.announce(Secs(0), a, &mut r).unwrap();
    let hidden = s.torrent_stats(&ih(1), false).unwrap();
    assert_eq!(hidden.peers[0].addr, None);
    assert_eq!(hidden.peers[0].client, "qBittorrent 4.6.3");
    assert!(hidden.peers[0].is_seed);
    assert_eq!(s.torrent_stats(&ih(1), true).unwrap().peers[0].addr, Some(v4(1)));
    assert_eq!(s.torrent_stats(&ih(2), true), None);
    let json = serde_json::to_value(&hidden).unwrap();
    assert_eq!(json["info_hash"], "01".repeat(20));
    assert!(json["peers"][0]["addr"].is_null());
}

#[test]
fn scrape_reports_counts_in_order() {
    let (mut s, mut r) = (store(), rng());
    s.announce(Secs(0), seed(1, 1, v4(1)), &mut r).unwrap();
    s.announce(Secs(0), leech(1, 2, v4(2)), &mut r).unwrap();
    s.announce(Secs(0), leech(1, 3, v4(3)), &mut r).unwrap();
    let got = s.scrape(&[ih(9), ih(1)]);
    assert_eq!(
        got,
        vec![
            tracker_proto::ScrapeStats::default(),
            tracker_proto::ScrapeStats {
                complete: 1,
                downloaded: 0,
                incomplete: 2
            }
        ]
    );
}

#[test]
fn records_round_trip() {
    let (mut s, mut r) = (store_with(private_config()), rng());
    s.register(ih(1), Some(4096), "one".into());
    s.register(ih(2), None, "two".into());
    let pk = Passkey([7; 16]);
    let user = s.add_user(pk).unwrap();
    s.add_user(Passkey([8; 16])).unwrap();
    let a = with(leech(1, 1, v4(1)), |a| a.passkey = Some(pk));
    s.announce(Secs(0), a, &mut r).unwrap();
    let done = with(a, |a| {
        a.left = 0;
        a.uploaded = 77;
        a.downloaded = 4096;
        a.event = Event::Completed;
    });
    s.announce(Secs(10), done, &mut r).unwrap();
    let records = s.records();
    assert_eq!(
        records.completed,
        vec![CompletedRecord {
            info_hash: ih(1),
            completed: 1
        }]
    );
    assert_eq!(records.users.len(), 2);
    let json = serde_json::to_string(&records).unwrap();
    let back: Records = serde_json::from_str(&json).unwrap();
    assert_eq!(back, records);

    let mut restarted = store_with(private_config());
    assert_eq!(restarted.restore(back).unwrap(), RestoreReport::default());
    assert_eq!(restarted.records(), records);
    assert_eq!(restarted.scrape(&[ih(1)])[0].downloaded, 1);
    assert_eq!(
        restarted.user(user).map(|u| (u.uploaded, u.downloaded)),
        Some((77, 4096))
    );
    assert_eq!(restarted.user_id(&pk), Some(user));
    // New users do not reuse ids.
    assert_eq!(restarted.add_user(Passkey([9; 16])), Ok(UserId(3)));
    // The counter survives the swarm's removal and comes back with it.
    let a = with(seed(1, 5, v4(5)), |a| a.passkey = Some(pk));
    assert_eq!(restarted.announce(Secs(0), a, &mut r).unwrap().downloaded, 1);
    restarted.expire(Secs(100_000), usize::MAX);
    assert_eq!(restarted.global_stats().torrents, 0);
    assert_eq!(restarted.records().completed, records.completed);

    // Open mode: counters of unregistered torrents come back as peerless swarms.
    let mut open = store_with(SwarmConfig {
        max_torrents: 1,
        ..SwarmConfig::default()
    });
    let counters = Records {
        completed: vec![
            CompletedRecord {
                info_hash: ih(5),
                completed: 3,
            },
            CompletedRecord {
                info_hash: ih(6),
                completed: 4,
            },
        ],
        ..Records::default()
    };
    assert_eq!(open.restore(counters).unwrap().completed_dropped, 1);
    assert_eq!(open.scrape(&[ih(5)])[0].downloaded, 3);

    let dup = Records {
        users: vec![
            UserRecord {
                id: UserId(1),
                passkey: pk,
                uploaded: 0,
                downloaded: 0,
            },
            UserRecord {
                id: UserId(2),
                passkey: pk,
                uploaded: 0,
                downloaded: 0,
            },
        ],
        ..Records::default()
    };
    assert_eq!(open.restore(dup), Err(RestoreError::DuplicatePasskey(UserId(2))));
}

#[test]
fn large_swarms_use_an_index_that_stays_right() {
    let (mut s, mut r) = (store(), rng());
    let keyed = |a: AnnounceInput, p: u32| with(a, |a| a.key = Some(p));
    for p in 0..500u32 {
        let a = if p % 3 == 0 {
            seed(1, p, v4(p))
        } else {
            leech(1, p, v4(p))
        };
        s.announce(Secs(p), keyed(a, p), &mut r).unwrap();
    }
    s.check_invariants().unwrap();
    // Peers leave, leechers complete, some move to IPv6 with their keys: all are found again by id.
    for p in (0..500u32).step_by(7) {
        let stop = with(leech(1, p, v4(p)), |a| a.event = Event::Stopped);
        s.announce(Secs(600), stop, &mut r).unwrap();
    }
    for p in (1..500u32).step_by(5).filter(|p| p % 7 != 0) {
        s.announce(Secs(601), seed(1, p, v4(p)), &mut r).unwrap();
    }
    for p in (2..500u32).step_by(11).filter(|p| p % 7 != 0) {
        s.announce(Secs(602), keyed(leech(1, p, v6(p as u16)), p), &mut r)
            .unwrap();
    }
    s.check_invariants().unwrap();
    let g = s.global_stats();
    assert!(g.ipv6_peers > 30 && g.peers < 500, "{g:?}");
    for p in 0..500u32 {
        let a = keyed(with(seed(1, p, v4(p)), |a| a.numwant = Some(0)), p);
        s.announce(Secs(700), a, &mut r).unwrap();
    }
    let g = s.global_stats();
    assert_eq!((g.peers, g.seeders, g.ipv6_peers), (500, 500, 0));
    s.check_invariants().unwrap();
    s.expire(Secs(700 + 2101), usize::MAX);
    assert_eq!(s.global_stats().peers, 0);
    s.check_invariants().unwrap();
}

#[test]
fn inputs_come_from_http_and_udp_requests() {
    let query = "info_hash=%5e%f9%01%02%fd%e7%01%09pb%ee%92%88RY%06%22%3f%01%a8\
                 &peer_id=-TR3000-u43jooybnzsh&port=46882&uploaded=1&downloaded=2&left=1000000\
                 &numwant=80&key=739ffae2&compact=1&event=started";
    let req = http::AnnounceRequest::parse_query(query.as_bytes()).unwrap();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let a = AnnounceInput::from_http(&req, ip, None);
    assert_eq!(a.addr, "192.0.2.1:46882".parse().unwrap());
    assert_eq!(
        (a.key, a.numwant, a.uploaded, a.downloaded, a.left),
        (Some(0x739f_fae2), Some(80), 1, 2, 1_000_000)
    );
    assert_eq!(a.event, Event::Started);
    let udp_req = udp::AnnounceRequest {
        connection_id: udp::ConnectionId(1),
        transaction_id: TransactionId(2),
        info_hash: req.info_hash,
        peer_id: req.peer_id,
        downloaded: 2,
        left: 1_000_000,
        uploaded: 1,
        event: Event::Started,
        ip: None,
        key: 0x739f_fae2,
        num_want: Some(80),
        port: 46882,
        url_data: None,
    };
    assert_eq!(AnnounceInput::from_udp(&udp_req, ip, None), a);

    let (mut s, mut r) = (store(), rng());
    let out = s.announce(Secs(0), a, &mut r).unwrap();
    let http = out.to_http();
    assert_eq!(
        (http.interval, http.min_interval, http.incomplete),
        (1800, Some(900), Some(1))
    );
    let udp = out.to_udp(TransactionId(2), udp::AddressFamily::V4);
    assert_eq!((udp.interval, udp.leechers, udp.seeders), (1800, 1, 0));
}

#[test]
fn config_reads_with_defaults_and_rejects_nonsense() {
    let c: SwarmConfig = serde_json::from_str(r#"{"mode": "private", "min_ratio": 0.5}"#).unwrap();
    assert_eq!(c.mode, Mode::Private);
    assert_eq!(c.interval, SwarmConfig::default().interval);
    assert!(serde_json::from_str::<SwarmConfig>(r#"{"intervall": 5}"#).is_err());
    let c: SwarmConfig = serde_json::from_str(r#"{"mode": "allow_list"}"#).unwrap();
    assert_eq!(c.mode, Mode::AllowList);
    let bad = SwarmConfig {
        min_interval: 5000,
        ..SwarmConfig::default()
    };
    assert!(SwarmStore::new(bad, &mut rng()).is_err());
    let bad = SwarmConfig {
        min_ratio: f64::NAN,
        ..SwarmConfig::default()
    };
    assert!(matches!(bad.validate(), Err(ConfigError::BadMinRatio(_))));
}

// ----- property test ---------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Announce {
        torrent: u8,
        peer: u8,
        ip: u8,
        port: u16,
        key: Option<u32>,
        left: u64,
        uploaded: u64,
        downloaded: u64,
        event: Event,
        numwant: Option<u32>,
        user: u8,
    },
    Tick(u32),
    Expire(usize),
    Register(u8, Option<u64>),
    Unregister(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let announce = (
        (0u8..5, 0u8..12, 0u8..6, Just(0u16), proptest::option::of(0u32..3)),
        (
            prop_oneof![Just(0u64), Just(100), Just(1000)],
            0u64..5000,
            0u64..5000,
            proptest::sample::select(Event::ALL.to_vec()),
            proptest::option::of(0u32..8),
            0u8..3,
        ),
    )
        .prop_map(
            |((torrent, peer, ip, port, key), (left, uploaded, downloaded, event, numwant, user))| {
                Op::Announce {
                    torrent,
                    peer,
                    ip,
                    port,
                    key,
                    left,
                    uploaded,
                    downloaded,
                    event,
                    numwant,
                    user,
                }
            },
        );
    prop_oneof![
        8 => announce,
        2 => (0u32..400).prop_map(Op::Tick),
        1 => (0usize..12).prop_map(Op::Expire),
        1 => (0u8..5, proptest::option::of(0u64..5000)).prop_map(|(t, s)| Op::Register(t, s)),
        1 => (0u8..5).prop_map(Op::Unregister),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Open), Just(Mode::AllowList), Just(Mode::Private)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_announce_sequences_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..120),
        mode in mode(),
        max_torrents in 1u32..4,
        max_peers_per_torrent in 1u32..6,
        max_peers in 1u32..14,
        threshold in 0usize..4,
        seed in any::<u64>(),
    ) {
        let config = SwarmConfig {
            interval: 100,
            min_interval: 10,
            peer_timeout: 50,
            max_torrents,
            max_peers_per_torrent,
            max_peers,
            max_numwant: 5,
            default_numwant: 3,
            mode,
            min_ratio: 0.5,
            ratio_grace_bytes: 2000,
        };
        let mut r = SmallRng::seed_from_u64(seed);
        let mut s = SwarmStore::new(config, &mut r).unwrap();
        s.set_index_threshold(threshold);
        let passkeys = [Passkey([1; 16]), Passkey([2; 16])];
        for pk in passkeys {
            s.add_user(pk).unwrap();
        }
        let mut now = Secs(1000);
        for op in ops {
            match op {
                Op::Announce { torrent, peer, ip, port, key, left, uploaded, downloaded, event, numwant, user } => {
                    // One port per peer id, so an address names one peer.
                    let port = port + 1 + u16::from(peer);
                    let addr = if ip < 4 {
                        SocketAddr::new(v4(u32::from(ip)).ip(), port)
                    } else {
                        SocketAddr::new(v6(u16::from(ip)).ip(), port)
                    };
                    let req = AnnounceInput {
                        info_hash: ih(torrent),
                        peer_id: pid(u32::from(peer)),
                        addr,
                        key,
                        uploaded,
                        downloaded,
                        left,
                        event,
                        numwant,
                        passkey: passkeys.get(usize::from(user)).copied(),
                    };
                    if let Ok(out) = s.announce(now, req, &mut r) {
                        let n = out.peers_v4.len() + out.peers_v6.len();
                        prop_assert!(n <= numwant.unwrap_or(3).min(5) as usize);
                        prop_assert!(!out.peers_v4.iter().any(|a| SocketAddr::V4(*a) == addr));
                        prop_assert!(!out.peers_v6.iter().any(|a| SocketAddr::V6(*a) == addr));
                        if event == Event::Stopped {
                            prop_assert_eq!(n, 0);
                        }
                        if n > 0 && (left == 0 || event == Event::Paused) {
                            // Seeders get no seeders: every peer handed out is a leecher.
                            let stats = s.torrent_stats(&ih(torrent), true).unwrap();
                            for a in out.peers_v4.iter().map(|a| SocketAddr::V4(*a)).chain(out.peers_v6.iter().map(|a| SocketAddr::V6(*a))) {
                                prop_assert!(stats.peers.iter().any(|p| p.addr == Some(a) && !p.is_seed));
                            }
                        }
                        prop_assert_eq!(out.complete + out.incomplete, s.torrent_stats(&ih(torrent), false).map_or(0, |t| t.peers.len() as u32));
                    }
                }
                Op::Tick(secs) => now = now.plus(secs),
                Op::Expire(budget) => {
                    let report = s.expire(now, budget);
                    prop_assert!(report.work <= budget);
                }
                Op::Register(t, size) => {
                    s.register(ih(t), size, format!("t{t}"));
                }
                Op::Unregister(t) => {
                    s.unregister(&ih(t));
                }
            }
            if let Err(e) = s.check_invariants() {
                return Err(TestCaseError::fail(e));
            }
        }
        // Everything expires in the end.
        s.expire(now.plus(1000), usize::MAX);
        prop_assert_eq!(s.global_stats().peers, 0);
        let records = s.records();
        let mut again = SwarmStore::new(s.config().clone(), &mut r).unwrap();
        again.restore(records.clone()).unwrap();
        prop_assert_eq!(again.records(), records);
    }
}
