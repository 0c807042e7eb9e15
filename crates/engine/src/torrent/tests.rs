//! Swarm tests: several [`TorrentState`]s connected pairwise by simulated links in virtual time, each with a
//! [`MemoryStore`] that executes its disk work.

use std::collections::BTreeMap;
use std::time::Duration;

use metainfo::{BuildFile, PieceHashes, Torrent, TorrentBuilder, Version};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use storage::{Layout, MemoryStore, PieceStore};
use wire::{Bitfield, PeerId};

use super::*;

const PIECE_LEN: u64 = 64 * 1024;

fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

fn torrent_of(data: &[u8]) -> Torrent {
    let file = BuildFile {
        path: vec!["payload.bin".into()],
        length: data.len() as u64,
        executable: false,
    };
    let plan = TorrentBuilder::new("payload.bin", vec![file], false, Version::V1, PIECE_LEN)
        .plan()
        .unwrap();
    let hashes: Vec<PieceHashes> = data
        .chunks(PIECE_LEN as usize)
        .map(|c| PieceHashes {
            v1: Some(metainfo::sha1_of(c)),
            v2: None,
        })
        .collect();
    Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap()
}

/// One node of the swarm.
struct Node {
    state: TorrentState<SmallRng>,
    store: MemoryStore,
    /// Serve corrupted blocks (flip a byte of every block read).
    corrupt: bool,
    events: Vec<TorrentEvent>,
}

/// A link direction's state: when it is free to carry the next bytes.
#[derive(Default, Clone, Copy)]
struct Link {
    busy_until: Time,
}

struct Swarm {
    nodes: Vec<Node>,
    now: Time,
    /// Deliveries: (time, sequence) -> (from, to, bytes).
    queue: BTreeMap<(Time, u64), (usize, usize, Vec<u8>)>,
    seq: u64,
    links: BTreeMap<(usize, usize), Link>,
    latency: Duration,
    /// Bytes per second of every link direction.
    bandwidth: u64,
    /// Bytes per second of every link direction out of a seed (a seed on a slow uplink makes leechers
    /// trade).
    seed_bandwidth: u64,
    seeds: usize,
    /// Every delivery, for comparing runs: (time, from, to, length).
    trace: Vec<(Time, usize, usize, usize)>,
}

fn pid(i: usize) -> PeerId {
    let mut id = *b"-BS0001-swarmtest000";
    id[19] = b'0' + i as u8;
    PeerId(id)
}

impl Swarm {
    /// Node 0..seeds are seeds (those in `corrupt` serve bad data), the rest leechers; every pair is
    /// connected (the lower index dials).
    fn new(data: &[u8], seeds: usize, leechers: usize, corrupt: &[usize], seed: u64) -> Swarm {
        let torrent = torrent_of(data);
        let info_hash = torrent.info_hashes.swarm_hash().unwrap();
        let geometry = torrent.info.geometry.clone();
        let n = geometry.piece_count();
        let mut nodes = Vec::new();
        for i in 0..seeds + leechers {
            let store = MemoryStore::new(Layout::from_torrent(&torrent).unwrap());
            let have = if i < seeds {
                for (p, chunk) in data.chunks(PIECE_LEN as usize).enumerate() {
                    store.write_block(p as u32, 0, chunk).unwrap();
                }
                Bitfield::full(n)
            } else {
                Bitfield::new(n)
            };
            let state = TorrentState::new(
                TorrentConfig::default(),
                &geometry,
                info_hash,
                pid(i),
                have,
                SmallRng::seed_from_u64(seed.wrapping_add(i as u64)),
            )
            .unwrap();
            nodes.push(Node {
                state,
                store,
                corrupt: corrupt.contains(&i),
                events: Vec::new(),
            });
        }
        let mut swarm = Swarm {
            nodes,
            now: Time::default(),
            queue: BTreeMap::new(),
            seq: 0,
            links: BTreeMap::new(),
            latency: Duration::from_millis(20),
            bandwidth: 2 * 1024 * 1024,
            seed_bandwidth: 2 * 1024 * 1024,
            seeds,
            trace: Vec::new(),
        };
        let count = swarm.nodes.len();
        for a in 0..count {
            for b in a + 1..count {
                let now = swarm.now;
                swarm.nodes[a]
                    .state
                    .add_peer(now, PeerKey(b as u32), true)
                    .unwrap();
                swarm.nodes[b]
                    .state
                    .add_peer(now, PeerKey(a as u32), false)
                    .unwrap();
            }
        }
        swarm
    }

    fn send(&mut self, from: usize, to: usize, bytes: Vec<u8>) {
        let link = self.links.entry((from, to)).or_default();
        let start = link.busy_until.max(self.now);
        let bandwidth = if from < self.seeds {
            self.seed_bandwidth
        } else {
            self.bandwidth
        };
        let nanos = (bytes.len() as u128 * 1_000_000_000 / u128::from(bandwidth)) as u64;
        link.busy_until = start.plus(Duration::from_nanos(nanos));
        let at = link.busy_until.plus(self.latency);
        self.seq += 1;
        self.queue.insert((at, self.seq), (from, to, bytes));
    }

    /// Drain every node's outputs (running its disk work at once) until all are quiet.
    fn drain(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some((key, t)) = self.nodes[i].state.poll_transmit() {
                    moved = true;
                    let b = match t {
                        Transmit::Bytes(b) | Transmit::Block { message: b, .. } => b,
                        Transmit::PieceHeader { .. } => panic!("the torrent hands out whole piece messages"),
                    };
                    self.send(i, key.0 as usize, b);
                }
                let now = self.now;
                let node = &mut self.nodes[i];
                while let Some(op) = node.state.poll_disk() {
                    moved = true;
                    match op {
                        DiskOp::Write { req, data } => {
                            node.store.write_block(req.index.0, req.begin, &data).unwrap();
                            node.state.on_block_written(req);
                        }
                        DiskOp::Verify(piece) => {
                            let ok = node.store.verify_piece(piece.0).unwrap();
                            let digests = (!ok || node.state.wants_block_digests(piece))
                                .then(|| node.store.block_digests(piece.0).unwrap());
                            node.state
                                .on_piece_verified_with_digests(now, piece, ok, digests.as_deref());
                        }
                        DiskOp::Read { peer, req } => {
                            let mut data = node
                                .store
                                .read_vec(req.index.0, req.begin, req.length as usize)
                                .unwrap();
                            if node.corrupt {
                                data[0] ^= 0xff;
                            }
                            node.state.on_block_read(now, peer, req, data);
                        }
                    }
                }
                let mut events = Vec::new();
                while let Some(ev) = node.state.poll_event() {
                    events.push(ev);
                }
                for ev in events {
                    moved = true;
                    if let TorrentEvent::PeerClosed { key, .. } = &ev {
                        // The driver closes the connection: the other side sees it go.
                        let other = key.0 as usize;
                        let me = PeerKey(i as u32);
                        self.nodes[other].state.peer_disconnected(now, me);
                        self.queue.retain(|_, (f, t, _)| !(*f == i && *t == other));
                    }
                    self.nodes[i].events.push(ev);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Run until every node in `leechers` completes (or `limit` of virtual time passes).
    fn run(&mut self, leechers: std::ops::Range<usize>, limit: Duration) {
        loop {
            self.drain();
            if leechers.clone().all(|i| self.nodes[i].state.is_complete()) {
                return;
            }
            let next_delivery = self.queue.keys().next().map(|&(t, _)| t);
            let next_timer = self.nodes.iter().filter_map(|n| n.state.poll_timeout()).min();
            let next = [next_delivery, next_timer].into_iter().flatten().min().unwrap();
            if next.0 > limit {
                for (i, n) in self.nodes.iter().enumerate() {
                    eprintln!(
                        "node {i}: have {} peers {:?} events {:?}",
                        n.state.have().count(),
                        n.state.peer_keys().collect::<Vec<_>>(),
                        n.events
                            .iter()
                            .filter(|e| !matches!(e, TorrentEvent::PieceCompleted(_)))
                            .collect::<Vec<_>>()
                    );
                }
            }
            assert!(next.0 <= limit, "swarm did not finish within {limit:?}");
            self.now = self.now.max(next);
            while let Some(entry) = self.queue.first_entry() {
                if entry.key().0 > self.now {
                    break;
                }
                let (from, to, bytes) = entry.remove();
                self.trace.push((self.now, from, to, bytes.len()));
                let now = self.now;
                self.nodes[to]
                    .state
                    .handle_peer_bytes(now, PeerKey(from as u32), &bytes);
            }
            for node in &mut self.nodes {
                if node.state.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.state.handle_timeout(self.now);
                }
            }
        }
    }

    fn contents(&self, i: usize) -> Vec<u8> {
        self.nodes[i].store.file_contents(0).unwrap()
    }
}

/// BEP 3: "Downloaders generally download pieces in random order ... keeping them from having a strict
/// subset or superset of the pieces of any of their peers" — so leechers trade with each other.
#[test]
fn swarm_of_leechers_completes_and_trades() {
    let data = payload(3 * 1024 * 1024 + 12345, 7);
    let mut swarm = Swarm::new(&data, 1, 4, &[], 42);
    swarm.seed_bandwidth = 256 * 1024;
    swarm.run(1..5, Duration::from_secs(600));
    for i in 1..5 {
        assert!(swarm.nodes[i].state.is_complete(), "leecher {i}");
        assert!(swarm.contents(i) == data, "leecher {i} has other bytes");
        assert!(
            swarm.nodes[i].events.contains(&TorrentEvent::Complete),
            "leecher {i} reported completion"
        );
    }
    let uploaded: Vec<u64> = (1..5).map(|i| swarm.nodes[i].state.stats().uploaded).collect();
    eprintln!(
        "seeder uploaded {}, leechers uploaded {uploaded:?}, downloaded {:?}, finished at {:?}",
        swarm.nodes[0].state.stats().uploaded,
        (1..5)
            .map(|i| swarm.nodes[i].state.stats().downloaded)
            .collect::<Vec<_>>(),
        swarm.now
    );
    assert!(uploaded.iter().any(|&u| u > 0), "leechers uploaded {uploaded:?}");
    // The seed's uplinks are an eighth as fast as the leechers': most of the data must move between
    // leechers.
    assert!(
        uploaded.iter().sum::<u64>() > data.len() as u64,
        "the seeder did nearly all the work: {uploaded:?}"
    );
    assert_eq!(swarm.nodes[0].state.stats().failed_pieces, 0);

    // Same seed, same run.
    let mut again = Swarm::new(&data, 1, 4, &[], 42);
    again.seed_bandwidth = 256 * 1024;
    again.run(1..5, Duration::from_secs(600));
    assert_eq!(swarm.trace, again.trace);
    assert_eq!(swarm.now, again.now);
}

/// A peer serving corrupted blocks is banned once it has sent data for `ban_strikes` failed pieces, and
/// the download still completes from the honest peers.
#[test]
fn swarm_bans_a_peer_sending_corrupt_blocks() {
    let data = payload(2 * 1024 * 1024, 9);
    // Node 0 is an honest seed, node 1 a seed that corrupts every block, 2..5 leechers.
    let mut swarm = Swarm::new(&data, 2, 3, &[1], 5);
    swarm.run(2..5, Duration::from_secs(600));
    for i in 2..5 {
        assert!(swarm.contents(i) == data, "leecher {i} has other bytes");
        assert!(
            !swarm.nodes[i].state.peer_keys().any(|k| k == PeerKey(1)),
            "leecher {i} still talks to the corrupt peer"
        );
        assert!(swarm.nodes[i].state.is_banned(&pid(1)));
        assert!(
            !swarm.nodes[i].state.is_banned(&pid(0)),
            "leecher {i} banned the honest seed"
        );
    }
    let failed: u64 = (2..5).map(|i| swarm.nodes[i].state.stats().failed_pieces).sum();
    assert!(failed > 0);
}

/// BEP 6: "Allowed Fast is an advisory message which means 'if you ask for this piece, I'll give it to
/// you even if you're choked.'" A seed grants each IPv4 peer the pieces of its canonical set (computed
/// from the peer's address and the info-hash) right after the handshake.
#[test]
fn a_seed_grants_the_canonical_allowed_fast_set() {
    let data = payload(40 * PIECE_LEN as usize, 3);
    let torrent = torrent_of(&data);
    let geometry = torrent.info.geometry.clone();
    let info_hash = torrent.info_hashes.v1.unwrap();
    let n = geometry.piece_count();
    let mut seed = TorrentState::new(
        TorrentConfig::default(),
        &geometry,
        info_hash,
        pid(0),
        Bitfield::full(n),
        SmallRng::seed_from_u64(1),
    )
    .unwrap();
    let ip = std::net::Ipv4Addr::new(80, 4, 4, 200);
    seed.add_peer_at(Time::default(), PeerKey(1), false, Some(ip.into()))
        .unwrap();
    let hs = wire::Handshake {
        reserved: Reserved::FAST | Reserved::EXTENDED,
        info_hash,
        peer_id: pid(1),
    };
    seed.handle_peer_bytes(Time::default(), PeerKey(1), &hs.to_bytes());
    let mut out = Vec::new();
    while let Some((_, t)) = seed.poll_transmit() {
        if let Transmit::Bytes(b) = t {
            out.extend(b);
        }
    }
    let mut rest = &out[wire::HANDSHAKE_LEN..];
    let mut granted = Vec::new();
    while let Some((msg, used)) = wire::message::decode(rest, 1 << 20).unwrap() {
        if let wire::Message::AllowedFast(i) = msg {
            granted.push(i);
        }
        rest = &rest[used..];
    }
    let want = crate::session::allowed_fast_set(ip, &info_hash, n, 10);
    assert_eq!(want.len(), 10);
    assert_eq!(granted, want);
}
