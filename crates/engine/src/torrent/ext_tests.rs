//! Extension behaviour of a [`TorrentState`] against scripted peers (plain [`PeerSession`]s driven by the
//! test): serving metadata (BEP 9) and peer exchange (BEP 11), in virtual time.

use std::time::Duration;

use metainfo::{BuildFile, PieceHashes, Torrent, TorrentBuilder, Version};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use wire::{MetadataMessage, PexMessage, METADATA_PIECE_LEN};

use super::*;

/// The ids the scripted peers ask us to use.
const THEIR_UT_METADATA: u8 = 3;
const THEIR_UT_PEX: u8 = 5;

fn t(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

fn pid(i: u32) -> PeerId {
    let mut id = *b"-BS0001-exttest00000";
    id[19] = b'a' + i as u8;
    PeerId(id)
}

fn torrent(pieces: u64) -> Torrent {
    let pl = 16 * 1024;
    let file = BuildFile {
        path: vec!["f.bin".into()],
        length: pieces * pl,
        executable: false,
    };
    let plan = TorrentBuilder::new("f.bin", vec![file], false, Version::V1, pl)
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

struct Remote {
    session: PeerSession,
    seen: Vec<SessionEvent>,
}

/// A torrent and scripted peers.
struct Hub {
    tor: Torrent,
    state: TorrentState<SmallRng>,
    remotes: BTreeMap<PeerKey, Remote>,
    events: Vec<TorrentEvent>,
    now: Time,
    /// The reserved bits the scripted peers send.
    remote_reserved: Reserved,
}

impl Hub {
    /// We hold nothing (so seeds among the peers stay connected).
    fn new(tor: Torrent, private: bool) -> Hub {
        Hub::with_config(tor, private, TorrentConfig::default())
    }

    fn with_config(tor: Torrent, private: bool, config: TorrentConfig) -> Hub {
        let n = tor.info.geometry.piece_count();
        let state = TorrentState::new(
            config,
            &tor.info.geometry,
            tor.info_hashes.swarm_hash().unwrap(),
            pid(0),
            Bitfield::new(n),
            SmallRng::seed_from_u64(1),
        )
        .unwrap()
        .with_metadata(Arc::from(tor.raw_info()))
        .with_private(private);
        Hub {
            tor,
            state,
            remotes: BTreeMap::new(),
            events: Vec::new(),
            now: t(0),
            remote_reserved: Reserved::FAST | Reserved::EXTENDED,
        }
    }

    /// A scripted peer we dialled at `addr` (or that dialled us, announcing `listen_port`), speaking
    /// `ut_metadata` and `ut_pex`, a seed if `seed`.
    fn add(&mut self, key: u32, addr: &str, outgoing: bool, seed: bool, listen_port: Option<u16>) {
        let mut ext = ExtendedHandshake {
            p: listen_port,
            ..Default::default()
        };
        ext.m.insert(wire::UT_METADATA.into(), THEIR_UT_METADATA);
        ext.m.insert(wire::UT_PEX.into(), THEIR_UT_PEX);
        let n = self.tor.info.geometry.piece_count();
        let local = LocalInfo {
            info_hash: self.tor.info_hashes.swarm_hash().unwrap(),
            peer_id: pid(key),
            reserved: self.remote_reserved,
            pieces: Arc::new(PieceSizes::from_geometry(&self.tor.info.geometry)),
            have: if seed {
                OurPieces::All
            } else {
                OurPieces::Some(Bitfield::new(n))
            },
            extended: ext,
        };
        let session = PeerSession::new(SessionConfig::default(), local, !outgoing, self.now).unwrap();
        self.remotes.insert(
            PeerKey(key),
            Remote {
                session,
                seen: Vec::new(),
            },
        );
        self.state
            .add_peer_addr(self.now, PeerKey(key), outgoing, addr.parse().unwrap())
            .unwrap();
        self.run();
    }

    fn run(&mut self) {
        let now = self.now;
        loop {
            let mut moved = false;
            while let Some((key, tx)) = self.state.poll_transmit() {
                moved = true;
                let bytes = match tx {
                    Transmit::Bytes(b) => b,
                    Transmit::Block { message, .. } => message,
                    Transmit::PieceHeader { .. } => continue,
                };
                if let Some(r) = self.remotes.get_mut(&key) {
                    let _ = r.session.handle_bytes(now, &bytes);
                }
            }
            for (key, r) in self.remotes.iter_mut() {
                r.seen.extend(std::iter::from_fn(|| r.session.poll_event()));
                while let Some(tx) = r.session.poll_transmit() {
                    if let Transmit::Bytes(b) = tx {
                        moved = true;
                        self.state.handle_peer_bytes(now, *key, &b);
                    }
                }
            }
            while let Some(ev) = self.state.poll_event() {
                moved = true;
                self.events.push(ev);
            }
            if !moved {
                return;
            }
        }
    }

    fn advance(&mut self, until: Time) {
        while let Some(at) = self.state.poll_timeout().filter(|at| *at <= until) {
            self.now = self.now.max(at);
            self.state.handle_timeout(self.now);
            for r in self.remotes.values_mut() {
                r.session.handle_timeout(self.now);
            }
            self.run();
        }
        self.now = until;
        self.run();
    }

    /// The peer `key` sends an extension message with our id `id`.
    fn send(&mut self, key: u32, id: u8, payload: &[u8]) {
        let now = self.now;
        let r = self.remotes.get_mut(&PeerKey(key)).unwrap();
        r.session.send_extended(now, id, payload).unwrap();
        self.run();
    }

    /// Extension messages peer `key` received on id `id` (taken out of its record).
    fn received(&mut self, key: u32, id: u8) -> Vec<Vec<u8>> {
        let r = self.remotes.get_mut(&PeerKey(key)).unwrap();
        let mut out = Vec::new();
        r.seen.retain(|e| match e {
            SessionEvent::Extended { id: i, payload } if *i == id => {
                out.push(payload.clone());
                false
            }
            _ => true,
        });
        out
    }

    fn pex_events(&mut self) -> Vec<Vec<(SocketAddr, PexFlags)>> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            TorrentEvent::PexPeers(p) => {
                out.push(p.clone());
                false
            }
            _ => true,
        });
        out
    }
}

fn request(piece: u32) -> Vec<u8> {
    MetadataMessage::Request { piece }.encode()
}

/// BEP 9: "It also adds "metadata_size" to the handshake message", "The response MUST have the same piece
/// as the request did", "If the piece is the last piece of the metadata, it may be less than 16kiB", and
/// "Clients MAY implement flood protection by rejecting request messages after a certain number of them
/// have been served."
#[test]
fn metadata_is_served_and_bad_or_excess_requests_rejected() {
    let tor = torrent(3000);
    let info = tor.raw_info().to_vec();
    let total = info.len() as u32;
    let mut hub = Hub::new(tor, false);
    hub.add(1, "10.0.0.1:6881", true, false, None);
    let theirs = hub.remotes[&PeerKey(1)]
        .session
        .peer_extensions()
        .unwrap()
        .clone();
    assert_eq!(theirs.metadata_size, Some(total));
    assert_eq!(theirs.extension_id(wire::UT_METADATA), Some(OUR_UT_METADATA));
    for piece in [0, 3] {
        hub.send(1, OUR_UT_METADATA, &request(piece));
        let got = hub.received(1, THEIR_UT_METADATA);
        assert_eq!(got.len(), 1);
        let start = piece as usize * METADATA_PIECE_LEN;
        let end = (start + METADATA_PIECE_LEN).min(info.len());
        assert_eq!(
            MetadataMessage::parse(&got[0]).unwrap(),
            MetadataMessage::Data {
                piece,
                total_size: total,
                data: &info[start..end]
            }
        );
    }
    // Past the end: rejected.
    hub.send(1, OUR_UT_METADATA, &request(4));
    let got = hub.received(1, THEIR_UT_METADATA);
    assert_eq!(
        MetadataMessage::parse(&got[0]).unwrap(),
        MetadataMessage::Reject { piece: 4 }
    );
    // 4 pieces x 4 + 4 = 20 pieces per peer; 2 were served: 18 more, then rejects.
    for _ in 0..25 {
        hub.send(1, OUR_UT_METADATA, &request(0));
    }
    let got = hub.received(1, THEIR_UT_METADATA);
    let data = got
        .iter()
        .filter(|m| matches!(MetadataMessage::parse(m), Ok(MetadataMessage::Data { .. })))
        .count();
    assert_eq!(data, 18);
    assert_eq!(got.len(), 25);
}

fn pex_of(payloads: &[Vec<u8>]) -> Vec<PexMessage> {
    payloads.iter().map(|p| PexMessage::parse(p).unwrap()).collect()
}

/// BEP 11: "A peer must only be included in an added field once a connection is successfully established
/// and included in the dropped field once it is disconnected", "Clients must batch updates to send no more
/// than 1 PEX message per minute", with the flags "0x02 seed/upload_only" and "0x10 outgoing connection,
/// peer is reachable"; a peer that dialled us is listed at its listen port (`p`), and nobody is told about
/// itself.
#[test]
fn pex_messages_go_out_at_the_interval_with_diffs_and_flags() {
    let mut hub = Hub::new(torrent(40), false);
    hub.add(1, "10.0.0.1:6881", true, false, None);
    hub.add(2, "10.0.0.2:6882", true, true, None);
    hub.add(3, "10.0.0.3:50123", false, false, Some(7000));
    hub.add(4, "10.0.0.4:50999", false, false, None);
    // Our handshake offered ut_pex.
    let theirs = hub.remotes[&PeerKey(1)]
        .session
        .peer_extensions()
        .unwrap()
        .clone();
    assert_eq!(theirs.extension_id(wire::UT_PEX), Some(OUR_UT_PEX));
    hub.advance(t(4_000));
    assert!(hub.received(1, THEIR_UT_PEX).is_empty());
    hub.advance(t(5_000));
    let m = pex_of(&hub.received(1, THEIR_UT_PEX));
    assert_eq!(m.len(), 1);
    let added: Vec<(String, u8)> = m[0].added.iter().map(|(a, f)| (a.to_string(), f.0)).collect();
    assert_eq!(
        added,
        vec![
            ("10.0.0.2:6882".to_string(), PexFlags::SEED | PexFlags::REACHABLE),
            ("10.0.0.3:7000".to_string(), 0),
        ]
    );
    assert!(m[0].dropped.is_empty());
    // Peer 3 hears of 1 and 2 but not of itself; peer 4 (no listen port) is nobody's news.
    let m3 = pex_of(&hub.received(3, THEIR_UT_PEX));
    let listed: Vec<String> = m3[0].added.iter().map(|(a, _)| a.to_string()).collect();
    assert_eq!(listed, vec!["10.0.0.1:6881", "10.0.0.2:6882"]);
    // Peer 2 leaves; nothing is sent before the minute is up, then the drop.
    hub.state.peer_disconnected(hub.now, PeerKey(2));
    hub.remotes.remove(&PeerKey(2));
    hub.advance(t(64_000));
    assert!(hub.received(1, THEIR_UT_PEX).is_empty());
    hub.advance(t(65_000));
    let m = pex_of(&hub.received(1, THEIR_UT_PEX));
    assert_eq!(m.len(), 1);
    assert!(m[0].added.is_empty());
    assert_eq!(m[0].dropped, vec!["10.0.0.2:6882".parse().unwrap()]);
    // Nothing changes: nothing more is sent.
    hub.advance(t(200_000));
    assert!(hub.received(1, THEIR_UT_PEX).is_empty());
}

fn pex_payload(addrs: &[&str]) -> Vec<u8> {
    PexMessage {
        added: addrs
            .iter()
            .map(|a| (a.parse().unwrap(), PexFlags(PexFlags::SEED)))
            .collect(),
        ..Default::default()
    }
    .encode()
}

/// BEP 11: "Data exchanged via PEX messages should be considered untrusted": received peers are
/// surfaced for the driver to dial, and a peer sending faster than the minute interval (beyond a small
/// burst) is ignored.
#[test]
fn pex_peers_received_are_surfaced_and_rate_limited() {
    let mut hub = Hub::new(torrent(40), false);
    hub.add(1, "10.0.0.1:6881", true, false, None);
    hub.send(1, OUR_UT_PEX, &pex_payload(&["192.0.2.1:6881", "192.0.2.2:6881"]));
    let ev = hub.pex_events();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].len(), 2);
    assert!(ev[0][0].1.seed());
    hub.send(1, OUR_UT_PEX, &pex_payload(&["192.0.2.3:6881"]));
    hub.send(1, OUR_UT_PEX, &pex_payload(&["192.0.2.4:6881"]));
    let ev = hub.pex_events();
    assert_eq!(
        ev,
        vec![vec![(
            "192.0.2.3:6881".parse().unwrap(),
            PexFlags(PexFlags::SEED)
        )]]
    );
    assert_eq!(hub.state.pex_stats().rate_limited, 1);
    hub.advance(t(50_000));
    hub.send(1, OUR_UT_PEX, &pex_payload(&["192.0.2.4:6881"]));
    assert_eq!(hub.pex_events().len(), 1);
}

/// BEP 27: a private torrent uses no peer exchange: `ut_pex` is not offered, nothing is sent, and what
/// peers send anyway is ignored.
#[test]
fn private_torrents_use_no_pex() {
    let mut hub = Hub::new(torrent(40), true);
    hub.add(1, "10.0.0.1:6881", true, false, None);
    hub.add(2, "10.0.0.2:6881", true, false, None);
    let theirs = hub.remotes[&PeerKey(1)]
        .session
        .peer_extensions()
        .unwrap()
        .clone();
    assert_eq!(theirs.extension_id(wire::UT_PEX), None);
    hub.advance(t(130_000));
    assert!(hub.received(1, THEIR_UT_PEX).is_empty());
    assert!(hub.received(2, THEIR_UT_PEX).is_empty());
    hub.send(1, OUR_UT_PEX, &pex_payload(&["192.0.2.1:6881"]));
    assert!(hub.pex_events().is_empty());
    assert!(hub.state.is_private());
}

fn dht_config() -> TorrentConfig {
    TorrentConfig {
        reserved: Reserved::FAST | Reserved::EXTENDED | Reserved::DHT,
        dht_port: Some(7001),
        ..TorrentConfig::default()
    }
}

/// BEP 5: "Upon receiving a handshake indicating the remote peer supports the DHT, the local peer SHOULD
/// send a PORT message"; a peer's PORT message names a node for our routing table.
#[test]
fn port_messages_go_to_dht_peers_and_theirs_become_nodes() {
    let mut hub = Hub::with_config(torrent(4), false, dht_config());
    hub.remote_reserved = Reserved::FAST | Reserved::EXTENDED | Reserved::DHT;
    hub.add(1, "10.0.0.1:6881", true, false, None);
    let ports: Vec<u16> = hub.remotes[&PeerKey(1)]
        .seen
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Port(p) => Some(*p),
            _ => None,
        })
        .collect();
    assert_eq!(ports, vec![7001]);
    let now = hub.now;
    hub.remotes
        .get_mut(&PeerKey(1))
        .unwrap()
        .session
        .send_port(now, 6999)
        .unwrap();
    hub.run();
    assert!(
        hub.events
            .contains(&TorrentEvent::DhtNode("10.0.0.1:6999".parse().unwrap())),
        "{:?}",
        hub.events
    );
    // A peer without the DHT bit gets no PORT message.
    hub.remote_reserved = Reserved::FAST | Reserved::EXTENDED;
    hub.add(2, "10.0.0.2:6881", true, false, None);
    assert!(!hub.remotes[&PeerKey(2)]
        .seen
        .iter()
        .any(|e| matches!(e, SessionEvent::Port(_))));
}

/// BEP 27: a private torrent must not use the DHT: no PORT out, none taken in.
#[test]
fn private_torrents_neither_send_nor_take_port_messages() {
    let mut hub = Hub::with_config(torrent(4), true, dht_config());
    hub.remote_reserved = Reserved::FAST | Reserved::EXTENDED | Reserved::DHT;
    hub.add(1, "10.0.0.1:6881", true, false, None);
    assert!(!hub.remotes[&PeerKey(1)]
        .seen
        .iter()
        .any(|e| matches!(e, SessionEvent::Port(_))));
    let now = hub.now;
    hub.remotes
        .get_mut(&PeerKey(1))
        .unwrap()
        .session
        .send_port(now, 6999)
        .unwrap();
    hub.run();
    assert!(!hub.events.iter().any(|e| matches!(e, TorrentEvent::DhtNode(_))));
}
