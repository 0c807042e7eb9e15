//! Metadata exchange in virtual time: a [`MetadataFetch`] against seeders ([`TorrentState`]s serving their
//! info dictionary) and scripted peers (a [`PeerSession`] answering `ut_metadata` requests as a test
//! says: lying, rejecting, silent, announcing a huge size), then the hand-over to a [`TorrentState`].

use std::collections::BTreeMap;
use std::time::Duration;

use metainfo::{BuildFile, PieceHashes, Torrent, TorrentBuilder, Version};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use wire::{decode, Bitfield, Message, Reserved, DEFAULT_MAX_MESSAGE_LEN};

use super::*;
use crate::session::SessionConfig;
use crate::torrent::{TorrentEvent, TorrentState};

const FETCHER: PeerKey = PeerKey(100);

fn t(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

fn pid(i: u8) -> PeerId {
    let mut id = *b"-BS0001-metatest0000";
    id[19] = i;
    PeerId(id)
}

/// A torrent whose info dictionary is about `pieces * 20` bytes (the piece hashes are made up: nothing is
/// downloaded here), so 3000 pieces make a 4-piece metadata and 6000 an 8-piece one.
fn torrent(pieces: u64) -> Torrent {
    let pl = 16 * 1024;
    let file = BuildFile {
        path: vec!["big.bin".into()],
        length: pieces * pl,
        executable: false,
    };
    let plan = TorrentBuilder::new("big.bin", vec![file], false, Version::V1, pl)
        .plan()
        .unwrap();
    let hashes: Vec<PieceHashes> = (0..pieces)
        .map(|i| PieceHashes {
            v1: Some(metainfo::sha1_of(&i.to_be_bytes())),
            v2: None,
        })
        .collect();
    Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap()
}

/// What a scripted peer does with a `ut_metadata` request.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Script {
    /// Answer with these bytes as the metadata (the real one, or a forgery of the same size).
    Serve(Vec<u8>),
    /// Reject every request.
    Reject,
    /// Never answer.
    Silent,
    /// Answer every request with a piece one byte short.
    ShortPiece(Vec<u8>),
}

/// A peer on the other end of the fetch.
#[allow(clippy::large_enum_variant)]
enum Remote {
    Seed(Box<TorrentState<SmallRng>>),
    Scripted {
        session: PeerSession,
        script: Script,
        /// Every event its session reported.
        seen: Vec<SessionEvent>,
    },
}

struct Net {
    fetch: MetadataFetch<SmallRng>,
    remotes: BTreeMap<PeerKey, Remote>,
    events: Vec<MetadataEvent>,
    /// `ut_metadata` `data` messages each remote sent.
    data_sent: BTreeMap<PeerKey, usize>,
    now: Time,
    closed: Vec<PeerKey>,
}

fn config() -> TorrentConfig {
    TorrentConfig::default()
}

impl Net {
    fn new(t: &Torrent, seed: u64) -> Net {
        Net::with_hashes(t.info_hashes, seed)
    }

    /// A fetch of the metadata with these hashes (the peers use its swarm hash in their handshakes).
    fn with_hashes(hashes: InfoHashes, seed: u64) -> Net {
        let fetch = MetadataFetch::new(config(), hashes, pid(0), SmallRng::seed_from_u64(seed)).unwrap();
        Net {
            fetch,
            remotes: BTreeMap::new(),
            events: Vec::new(),
            data_sent: BTreeMap::new(),
            now: t0(),
            closed: Vec::new(),
        }
    }

    /// A seeder of `t` (serving `info` as its metadata) that the fetcher dials.
    fn add_seed(&mut self, key: PeerKey, t: &Torrent, info: &[u8]) {
        let n = t.info.geometry.piece_count();
        let ih = self.fetch.info_hash();
        let mut s = TorrentState::new(
            config(),
            &t.info.geometry,
            ih,
            pid(key.0 as u8 + 1),
            Bitfield::full(n),
            SmallRng::seed_from_u64(key.0.into()),
        )
        .unwrap()
        .with_metadata(Arc::from(info));
        s.add_peer(self.now, FETCHER, false).unwrap();
        self.remotes.insert(key, Remote::Seed(Box::new(s)));
        self.fetch.add_peer(self.now, key, true, None).unwrap();
    }

    /// A scripted peer announcing `size` as its metadata size.
    fn add_scripted(&mut self, key: PeerKey, t: &Torrent, size: u32, script: Script) {
        let mut ext = wire::ExtendedHandshake {
            metadata_size: Some(size),
            ..Default::default()
        };
        ext.m.insert(wire::UT_METADATA.into(), 3);
        let _ = t;
        let local = LocalInfo {
            info_hash: self.fetch.info_hash(),
            peer_id: pid(key.0 as u8 + 1),
            reserved: Reserved::FAST | Reserved::EXTENDED,
            pieces: Arc::new(crate::session::PieceSizes::empty()),
            have: OurPieces::All,
            extended: ext,
        };
        let session = PeerSession::new_awaiting_metadata(SessionConfig::default(), local, false, self.now);
        self.remotes.insert(
            key,
            Remote::Scripted {
                session,
                script,
                seen: Vec::new(),
            },
        );
        self.fetch.add_peer(self.now, key, true, None).unwrap();
    }

    /// Move bytes both ways until nothing moves.
    fn run(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            while let Some((key, tx)) = self.fetch.poll_transmit() {
                moved = true;
                let Transmit::Bytes(b) = tx else {
                    panic!("no blocks here")
                };
                match self.remotes.get_mut(&key) {
                    Some(Remote::Seed(s)) => s.handle_peer_bytes(now, FETCHER, &b),
                    Some(Remote::Scripted { session, .. }) => {
                        let _ = session.handle_bytes(now, &b);
                    }
                    None => {}
                }
            }
            for (key, r) in self.remotes.iter_mut() {
                let mut out: Vec<Vec<u8>> = Vec::new();
                match r {
                    Remote::Seed(s) => {
                        while let Some((_, tx)) = s.poll_transmit() {
                            if let Transmit::Bytes(b) = tx {
                                out.push(b);
                            }
                        }
                        while s.poll_event().is_some() {}
                    }
                    Remote::Scripted {
                        session,
                        script,
                        seen,
                    } => {
                        while let Some(ev) = session.poll_event() {
                            if let SessionEvent::Extended { id: 3, payload } = &ev {
                                answer(now, session, script, payload);
                            }
                            seen.push(ev);
                        }
                        while let Some(tx) = session.poll_transmit() {
                            if let Transmit::Bytes(b) = tx {
                                out.push(b);
                            }
                        }
                    }
                }
                for b in out {
                    moved = true;
                    *self.data_sent.entry(*key).or_default() += count_data(&b);
                    self.fetch.handle_peer_bytes(now, *key, &b);
                }
            }
            while let Some(ev) = self.fetch.poll_event() {
                moved = true;
                if let MetadataEvent::PeerClosed { key, .. } = &ev {
                    self.closed.push(*key);
                    self.remotes.remove(key);
                }
                self.events.push(ev);
            }
            if !moved {
                return;
            }
        }
    }

    /// Let virtual time pass to `until`, firing every timer on the way.
    fn advance(&mut self, until: Time) {
        while let Some(at) = self.fetch.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.fetch.handle_timeout(self.now);
            self.run();
        }
        self.now = until;
        self.run();
    }

    fn completed(&self) -> Option<Arc<[u8]>> {
        self.events.iter().find_map(|e| match e {
            MetadataEvent::Complete(raw) => Some(Arc::clone(raw)),
            _ => None,
        })
    }

    fn banned(&self) -> Vec<PeerKey> {
        self.events
            .iter()
            .filter_map(|e| match e {
                MetadataEvent::Banned { key } => Some(*key),
                _ => None,
            })
            .collect()
    }
}

fn t0() -> Time {
    t(0)
}

/// `ut_metadata` `data` messages in a stream of whole messages that starts after the handshake (the
/// handshake itself is skipped).
fn count_data(bytes: &[u8]) -> usize {
    let mut at = if bytes.first() == Some(&19) { 68 } else { 0 };
    let mut n = 0;
    while let Ok(Some((m, used))) = decode(bytes.get(at..).unwrap_or_default(), DEFAULT_MAX_MESSAGE_LEN) {
        if let Message::Extended { id, payload } = m {
            if id == OUR_UT_METADATA
                && matches!(MetadataMessage::parse(payload), Ok(MetadataMessage::Data { .. }))
            {
                n += 1;
            }
        }
        at += used;
    }
    n
}

fn answer(now: Time, session: &mut PeerSession, script: &Script, payload: &[u8]) {
    let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(payload) else {
        return;
    };
    let reply = match script {
        Script::Serve(info) => data_message(info, piece),
        Script::Reject => Some(MetadataMessage::Reject { piece }.encode()),
        Script::Silent => None,
        Script::ShortPiece(info) => {
            let total = info.len() as u32;
            let len = metadata_piece_len(total, piece).unwrap();
            let start = piece as usize * METADATA_PIECE_LEN;
            Some(
                MetadataMessage::Data {
                    piece,
                    total_size: total,
                    data: &info[start..start + len - 1],
                }
                .encode(),
            )
        }
    };
    if let Some(r) = reply {
        session.send_extended(now, OUR_UT_METADATA, &r).unwrap();
    }
}

/// A copy of `info` with one byte of every metadata piece changed.
fn forged(info: &[u8]) -> Vec<u8> {
    let mut bad = info.to_vec();
    for i in (100..bad.len()).step_by(METADATA_PIECE_LEN) {
        bad[i] ^= 0x55;
    }
    bad
}

/// BEP 9: "The metadata is handled in blocks of 16KiB" and "This part can be validated by the
/// info-hash": the pieces are spread over two seeders, and the assembled whole hashes to the info-hash.
#[test]
fn metadata_fetched_from_two_peers() {
    let tor = torrent(6000);
    let info = tor.raw_info().to_vec();
    assert_eq!(metadata_piece_count(info.len() as u32), 8);
    let mut net = Net::new(&tor, 1);
    net.add_seed(PeerKey(1), &tor, &info);
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    let raw = net.completed().expect("metadata complete");
    assert_eq!(&raw[..], &info[..]);
    assert_eq!(net.fetch.metadata_size(), Some(info.len() as u32));
    assert_eq!(net.fetch.stats().pieces_received, 8);
    // Both seeders served some of it.
    assert!(
        net.data_sent[&PeerKey(1)] >= 1 && net.data_sent[&PeerKey(2)] >= 1,
        "{:?}",
        net.data_sent
    );
    assert_eq!(net.data_sent.values().sum::<usize>(), 8);
    assert!(net.banned().is_empty());
}

/// BEP 9: "A peer MUST verify that any piece it sends passes the info-hash verification": a peer that
/// sends wrong pieces is caught by the hash check and dropped, whichever peer is tried alone first, and the
/// honest peer completes the metadata.
#[test]
fn a_lying_peer_is_caught_by_the_hash_check_and_dropped() {
    let tor = torrent(6000);
    let info = tor.raw_info().to_vec();
    // Hash failures per run: 1 when the honest peer is tried alone first, 2 when the liar is.
    let mut failures = std::collections::BTreeSet::new();
    for seed in 0..8 {
        let mut net = Net::new(&tor, seed);
        net.add_seed(PeerKey(1), &tor, &info);
        net.add_scripted(PeerKey(2), &tor, info.len() as u32, Script::Serve(forged(&info)));
        net.run();
        let raw = net
            .completed()
            .unwrap_or_else(|| panic!("seed {seed}: not complete"));
        assert_eq!(&raw[..], &info[..]);
        assert_eq!(net.banned(), vec![PeerKey(2)], "seed {seed}");
        assert!(net.closed.contains(&PeerKey(2)));
        assert!(!net.closed.contains(&PeerKey(1)));
        failures.insert(net.fetch.stats().hash_failures);
        assert!(net.fetch.is_banned(&pid(3)));
    }
    assert_eq!(failures, [1, 2].into_iter().collect(), "both orders were tried");
}

/// A liar alone cannot complete anything: its copy fails, it is banned, and an honest peer that comes
/// later completes the metadata.
#[test]
fn a_lone_liar_is_banned_and_a_later_honest_peer_completes() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 3);
    net.add_scripted(PeerKey(1), &tor, info.len() as u32, Script::Serve(forged(&info)));
    net.run();
    assert!(net.completed().is_none());
    assert_eq!(net.banned(), vec![PeerKey(1)]);
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
}

/// BEP 9: "If it is not the last piece of the metadata, it MUST be 16kiB": a piece of another length
/// bans its sender at once, and the piece is fetched elsewhere.
#[test]
fn a_piece_of_the_wrong_length_bans_the_sender() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 5);
    net.add_scripted(
        PeerKey(1),
        &tor,
        info.len() as u32,
        Script::ShortPiece(info.clone()),
    );
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
    assert_eq!(net.banned(), vec![PeerKey(1)]);
}

/// A `metadata_size` over the cap is never fetched (a peer could otherwise make us hold gigabytes).
#[test]
fn oversize_metadata_size_is_refused() {
    let tor = torrent(30);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 1);
    net.add_scripted(
        PeerKey(1),
        &tor,
        DEFAULT_MAX_METADATA_SIZE + 1,
        Script::Serve(info.clone()),
    );
    net.run();
    net.advance(t(60_000));
    assert!(net.completed().is_none());
    assert_eq!(net.fetch.metadata_size(), None);
    assert_eq!(net.fetch.stats().oversize_peers, 1);
    assert_eq!(net.data_sent.get(&PeerKey(1)).copied().unwrap_or(0), 0);
    // The peer is not closed for it: it may still be useful once the metadata comes from elsewhere.
    assert!(net.closed.is_empty());
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
}

/// BEP 9: a reject "SHOULD be interpreted as the peer does not have the piece of metadata that was
/// requested": the piece is asked of another peer, and the rejecting peer is not asked for it again for a
/// while (nor banned).
#[test]
fn rejects_are_handled_by_asking_someone_else() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 2);
    net.add_scripted(PeerKey(1), &tor, info.len() as u32, Script::Reject);
    net.run();
    assert!(net.fetch.stats().rejects >= 1);
    assert!(net.completed().is_none());
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
    assert!(net.banned().is_empty());
}

/// A peer that never answers holds its pieces only for the request timeout; then another peer gets them.
#[test]
fn unanswered_requests_time_out_and_go_elsewhere() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 4);
    net.add_scripted(PeerKey(1), &tor, info.len() as u32, Script::Silent);
    net.run();
    // The seeder comes once the silent peer holds every piece.
    let before = net.fetch.peers[&PeerKey(1)].in_flight.len();
    assert_eq!(before, 4);
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert!(net.completed().is_none());
    net.advance(t(11_000));
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
    assert!(net.fetch.stats().timeouts >= 4);
}

/// When peers disagree on the size, the size most of them announce is fetched, and the others are not
/// asked.
#[test]
fn peers_disagreeing_on_the_size_do_not_stop_the_fetch() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 6);
    net.add_scripted(PeerKey(1), &tor, 777, Script::Serve(vec![b'x'; 777]));
    net.add_seed(PeerKey(2), &tor, &info);
    net.add_seed(PeerKey(3), &tor, &info);
    net.run();
    net.advance(t(30_000));
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
}

/// BEP 9: "Peers that do not have the entire metadata MUST respond with a reject message to any metadata
/// request."
#[test]
fn requests_during_the_fetch_are_rejected() {
    let tor = torrent(30);
    let mut net = Net::new(&tor, 1);
    net.add_scripted(PeerKey(1), &tor, 1_000_000, Script::Silent);
    net.run();
    let Some(Remote::Scripted { session, .. }) = net.remotes.get_mut(&PeerKey(1)) else {
        panic!()
    };
    session
        .send_extended(
            net.now,
            OUR_UT_METADATA,
            &MetadataMessage::Request { piece: 0 }.encode(),
        )
        .unwrap();
    net.run();
    let Some(Remote::Scripted { seen, .. }) = net.remotes.get(&PeerKey(1)) else {
        panic!()
    };
    assert!(seen.iter().any(|e| matches!(e,
        SessionEvent::Extended { id: 3, payload } if MetadataMessage::parse(payload) == Ok(MetadataMessage::Reject { piece: 0 }))));
}

/// Once the metadata is verified the same connections go on: the sessions are handed to a torrent that
/// learns from them that the seeders have every piece, and asks them for blocks without a new handshake.
#[test]
fn connections_are_handed_over_to_the_torrent() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let mut net = Net::new(&tor, 9);
    net.add_seed(PeerKey(1), &tor, &info);
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    let raw = net.completed().unwrap();
    let fetched = Torrent::from_info(&raw, &[], &[]).unwrap();
    let n = fetched.info.geometry.piece_count();
    let mut leecher = TorrentState::new(
        config(),
        &fetched.info.geometry,
        net.fetch.info_hash(),
        pid(0),
        Bitfield::new(n),
        SmallRng::seed_from_u64(1),
    )
    .unwrap()
    .with_metadata(raw);
    let fetch = std::mem::replace(
        &mut net.fetch,
        MetadataFetch::new(config(), tor.info_hashes, pid(0), SmallRng::seed_from_u64(0)).unwrap(),
    );
    let handed = fetch.into_peers();
    assert_eq!(handed.len(), 2);
    for h in handed {
        leecher.adopt_peer(net.now, h).unwrap();
    }
    assert_eq!(leecher.peer_count(), 2);
    // Both seeders are counted: every piece is available twice.
    assert_eq!(leecher.picker().availability(metainfo::PieceIndex(0)), Some(2));
    // The leecher's next bytes: an updated extended handshake with the size, `interested`, and (once the
    // seeders unchoke) requests.
    let mut to_seed: BTreeMap<PeerKey, Vec<u8>> = BTreeMap::new();
    for _ in 0..20 {
        while let Some((k, tx)) = leecher.poll_transmit() {
            if let Transmit::Bytes(b) = tx {
                to_seed.entry(k).or_default().extend_from_slice(&b);
                if let Some(Remote::Seed(s)) = net.remotes.get_mut(&k) {
                    s.handle_peer_bytes(net.now, FETCHER, &b);
                }
            }
        }
        for (k, r) in net.remotes.iter_mut() {
            if let Remote::Seed(s) = r {
                while let Some((_, tx)) = s.poll_transmit() {
                    if let Transmit::Bytes(b) = tx {
                        leecher.handle_peer_bytes(net.now, *k, &b);
                    }
                }
                while s.poll_event().is_some() {}
            }
        }
        while let Some(ev) = leecher.poll_event() {
            assert!(!matches!(ev, TorrentEvent::PeerClosed { .. }), "{ev:?}");
        }
    }
    let requests: usize = to_seed
        .values()
        .map(|b| {
            let mut at = 0;
            let mut n = 0;
            while let Ok(Some((m, used))) = decode(&b[at..], DEFAULT_MAX_MESSAGE_LEN) {
                n += usize::from(matches!(m, Message::Request(_)));
                at += used;
            }
            n
        })
        .sum();
    assert!(requests > 0, "the leecher asked the seeders for nothing");
}

/// BEP 52 magnet links name the v2 info-hash (`urn:btmh:`): the metadata is then checked with SHA-256, and a
/// link with both hashes needs both to match.
#[test]
fn a_v2_magnet_is_verified_with_sha256() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let v2 = InfoHashes {
        v1: None,
        v2: Some(InfoHashV2::of_info(&info)),
    };
    let mut net = Net::with_hashes(v2, 1);
    net.add_scripted(PeerKey(1), &tor, info.len() as u32, Script::Serve(forged(&info)));
    net.add_seed(PeerKey(2), &tor, &info);
    net.run();
    assert_eq!(&net.completed().unwrap()[..], &info[..]);
    assert_eq!(net.banned(), vec![PeerKey(1)]);

    // Right SHA-1, wrong SHA-256: never accepted.
    let both = InfoHashes {
        v1: tor.info_hashes.v1,
        v2: Some(InfoHashV2([9; 32])),
    };
    let mut net = Net::with_hashes(both, 1);
    net.add_seed(PeerKey(1), &tor, &info);
    net.run();
    assert!(net.completed().is_none());
    assert_eq!(net.fetch.stats().hash_failures, 1);
}

proptest::proptest! {
    /// Whatever a peer sends (any ut_metadata message, any piece, any size, any bytes), the fetch neither
    /// panics nor asks for more than its bounds allow.
    #[test]
    fn hostile_metadata_messages_never_panic(
        msgs in proptest::collection::vec(
            (0i64..4, 0u32..12, proptest::prop_oneof![proptest::strategy::Just(60_000u32), 0u32..200_000], 0usize..17_000),
            0..30,
        ),
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
    ) {
        let tor = torrent(3000);
        let info = tor.raw_info().to_vec();
        let mut net = Net::new(&tor, 7);
        net.add_scripted(PeerKey(1), &tor, info.len() as u32, Script::Silent);
        net.run();
        let now = net.now;
        for (msg_type, piece, total_size, len) in msgs {
            let payload = match msg_type {
                0 => MetadataMessage::Request { piece }.encode(),
                1 => MetadataMessage::Data { piece, total_size, data: &vec![7u8; len.min(METADATA_PIECE_LEN)] }.encode(),
                2 => MetadataMessage::Reject { piece }.encode(),
                _ => garbage.clone(),
            };
            if let Some(Remote::Scripted { session, .. }) = net.remotes.get_mut(&PeerKey(1)) {
                let _ = session.send_extended(now, OUR_UT_METADATA, &payload);
            }
            net.run();
        }
        let in_flight: usize = net.fetch.peers.values().map(|p| p.in_flight.len()).sum();
        proptest::prop_assert!(in_flight <= config().metadata.max_requests_per_peer);
        proptest::prop_assert!(net.completed().is_none());
    }
}
