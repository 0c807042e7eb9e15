//! Fetching a torrent's info dictionary from peers (BEP 9 `ut_metadata` over BEP 10), for a torrent known
//! only by its info-hash (a magnet link). Pure: no sockets, no clock; time and the RNG are passed in.
//!
//! A [`MetadataFetch`] drives the peers' sessions without a piece count
//! ([`PeerSession::new_awaiting_metadata`]): handshakes, extended handshakes, and what the peers say
//! about their pieces, kept for later. From each peer's extended handshake it learns the peer's
//! `ut_metadata` id and `metadata_size`; sizes over [`MetadataConfig::max_size`] are not used, and when
//! peers disagree on the size the one most of them announce is fetched first. The 16 KiB pieces are
//! requested spread over the peers ([`MetadataConfig::max_requests_per_peer`] each,
//! [`MetadataConfig::max_in_flight`] in all); a request unanswered for
//! [`MetadataConfig::request_timeout`] goes to another peer, and a `reject` keeps that piece away from that
//! peer for [`MetadataConfig::reject_backoff`]. A `data` message must answer a request of ours, with the
//! `total_size` the peer announced and exactly the piece's length (BEP 9: "If it is not the last piece of
//! the metadata, it MUST be 16kiB"); a peer that breaks that is banned.
//!
//! **Verification.** The whole is hashed and compared with the info-hash (SHA-1 for `btih`, SHA-256 for
//! `btmh`; both when the link has both). When it does not match, some peer lied, and the pieces are
//! fetched again from **one peer at a time**: a copy that comes entirely from one peer and fails convicts
//! that peer (banned: closed, its peer id refused); a copy that passes is the truth, and every peer whose
//! piece of an earlier, failed copy differs from it is banned too. Each peer is tried alone at most once.
//!
//! Once verified, [`MetadataEvent::Complete`] hands out the raw bytes. The sessions stay open:
//! [`into_peers`](MetadataFetch::into_peers) hands them (with what the peers said about their pieces) to a
//! [`TorrentState`](crate::torrent::TorrentState) built from the metadata
//! ([`adopt_peer`](crate::torrent::TorrentState::adopt_peer)), so no connection is lost or re-dialled.
//!
//! Peers asking us for metadata meanwhile get a `reject` (BEP 9: "Peers that do not have the entire
//! metadata MUST respond with a reject message to any metadata request"). `ut_pex` messages are read as
//! in a running torrent ([`crate::pex`]): a magnet's privacy is unknown until its metadata arrives, and
//! other peers are most useful exactly now (libtorrent does the same).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHashV1, InfoHashV2, InfoHashes};
use rand::Rng;
use wire::{metadata_piece_count, metadata_piece_len, MetadataMessage, PeerId, PexFlags, METADATA_PIECE_LEN};

use crate::pex::{PexInbox, OUR_UT_PEX};
use crate::session::{LocalInfo, OurPieces, PeerSession, SessionError, SessionEvent, Transmit};
use crate::torrent::{TorrentConfig, TorrentError};
use crate::{PeerKey, Time};

/// The extension id we ask peers to use for `ut_metadata` messages to us (our `m` entry).
pub const OUR_UT_METADATA: u8 = 2;

/// The default cap on an info dictionary fetched from peers.
pub const DEFAULT_MAX_METADATA_SIZE: u32 = 8 << 20;

/// Settings of metadata exchange, fetching and serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataConfig {
    /// The largest `metadata_size` we fetch; peers announcing more are not asked.
    pub max_size: u32,
    /// A metadata request unanswered this long goes to another peer.
    pub request_timeout: Duration,
    /// Metadata requests in flight to one peer at most.
    pub max_requests_per_peer: usize,
    /// Metadata requests in flight in all.
    pub max_in_flight: usize,
    /// A peer that let this many requests time out is not asked again.
    pub max_timeouts: u32,
    /// A piece a peer rejected is not asked of it again for this long.
    pub reject_backoff: Duration,
    /// Serving: one peer gets at most this many pieces per piece of our metadata (BEP 9: "Clients MAY
    /// implement flood protection by rejecting request messages after a certain number of them have been
    /// served. Typically the number of pieces of metadata times a factor.").
    pub serve_factor: u32,
    /// Serving: a request is rejected while this many bytes are already queued for the peer.
    pub serve_max_queued: usize,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig {
            max_size: DEFAULT_MAX_METADATA_SIZE,
            request_timeout: Duration::from_secs(10),
            max_requests_per_peer: 4,
            max_in_flight: 32,
            max_timeouts: 3,
            reject_backoff: Duration::from_secs(10),
            serve_factor: 4,
            serve_max_queued: 1 << 20,
        }
    }
}

/// What the fetch reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataEvent {
    /// The info dictionary, verified against the info-hash: build the torrent and hand the peers over.
    Complete(Arc<[u8]>),
    /// A peer session ended: close its connection.
    PeerClosed {
        /// The peer.
        key: PeerKey,
        /// Why.
        reason: SessionError,
    },
    /// A peer sent metadata that failed verification (or broke BEP 9) and was closed; its peer id is
    /// refused from now on.
    Banned {
        /// The peer.
        key: PeerKey,
    },
    /// Peers learned through `ut_pex`, worth dialling.
    PexPeers(Vec<(SocketAddr, PexFlags)>),
}

/// Counters of the fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetadataStats {
    /// Pieces received and accepted.
    pub pieces_received: u64,
    /// Rejects received.
    pub rejects: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Assembled copies that failed verification.
    pub hash_failures: u64,
    /// Peers that announced a `metadata_size` over the cap, 0 or not matching the others.
    pub oversize_peers: u64,
    /// `ut_metadata` messages that were malformed or answered nothing we asked.
    pub ignored_messages: u64,
}

/// A peer handed from a [`MetadataFetch`] to a [`TorrentState`](crate::torrent::TorrentState).
#[derive(Debug)]
pub struct HandedPeer {
    /// The driver's key.
    pub key: PeerKey,
    /// The session, awaiting its piece count.
    pub session: PeerSession,
    /// The peer's address, when the driver gave it.
    pub addr: Option<SocketAddr>,
}

/// A piece of a copy that failed verification: its bytes, who sent them, and that peer's id.
type FailedPiece = (Vec<u8>, PeerKey, Option<PeerId>);

#[derive(Debug)]
enum Slot {
    Missing,
    Requested(PeerKey),
    Have { data: Vec<u8>, from: PeerKey },
}

#[derive(Debug)]
struct MPeer {
    session: PeerSession,
    addr: Option<SocketAddr>,
    /// The peer's id for `ut_metadata` messages.
    ut_metadata: Option<u8>,
    /// Its `metadata_size`, when usable.
    size: Option<u32>,
    in_flight: Vec<(u32, Time)>,
    /// Pieces it rejected, with when.
    rejected: BTreeMap<u32, Time>,
    timeouts: u32,
    /// Not asked anymore (too many timeouts, or a size that is not the one fetched).
    useless: bool,
}

/// How pieces are assigned to peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Spread over every usable peer.
    Spread,
    /// From this one peer only (after a copy failed), or waiting for an untested peer (`None`).
    Single(Option<PeerKey>),
}

/// A fetch of one torrent's metadata. See the [module documentation](self).
#[derive(Debug)]
pub struct MetadataFetch<R: Rng> {
    config: TorrentConfig,
    hashes: InfoHashes,
    info_hash: InfoHashV1,
    peer_id: PeerId,
    peers: BTreeMap<PeerKey, MPeer>,
    size: Option<u32>,
    slots: Vec<Slot>,
    mode: Mode,
    /// The pieces of the first copy that failed and their senders, to blame once a good copy arrives.
    failed_copy: Option<Vec<FailedPiece>>,
    /// Peers already tried alone.
    tested: BTreeSet<PeerKey>,
    banned_ids: BTreeSet<PeerId>,
    pex: PexInbox,
    transmits: VecDeque<(PeerKey, Transmit)>,
    events: VecDeque<MetadataEvent>,
    done: Option<Arc<[u8]>>,
    stats: MetadataStats,
    rng: R,
}

impl<R: Rng> MetadataFetch<R> {
    /// A fetch of the metadata whose hashes are `hashes` (a magnet's `btih` and/or `btmh`), as peer
    /// `peer_id`, with `config` (the same a [`TorrentState`](crate::torrent::TorrentState) gets: session
    /// settings, extensions, limits).
    pub fn new(
        config: TorrentConfig,
        hashes: InfoHashes,
        peer_id: PeerId,
        rng: R,
    ) -> Result<Self, TorrentError> {
        let info_hash = hashes.swarm_hash().ok_or(TorrentError::NoInfoHash)?;
        Ok(MetadataFetch {
            config,
            hashes,
            info_hash,
            peer_id,
            peers: BTreeMap::new(),
            size: None,
            slots: Vec::new(),
            mode: Mode::Spread,
            failed_copy: None,
            tested: BTreeSet::new(),
            banned_ids: BTreeSet::new(),
            pex: PexInbox::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            done: None,
            stats: MetadataStats::default(),
            rng,
        })
    }

    // ----- state -----

    /// The verified metadata, once fetched.
    pub fn metadata(&self) -> Option<&Arc<[u8]>> {
        self.done.as_ref()
    }

    /// The size being fetched, once a peer told it.
    pub fn metadata_size(&self) -> Option<u32> {
        self.size
    }

    /// Pieces of the metadata received (of the copy being assembled) and in all.
    pub fn progress(&self) -> (u32, u32) {
        let have = self
            .slots
            .iter()
            .filter(|s| matches!(s, Slot::Have { .. }))
            .count();
        (
            u32::try_from(have).unwrap_or(u32::MAX),
            u32::try_from(self.slots.len()).unwrap_or(u32::MAX),
        )
    }

    /// Connected peers (handshake done or not).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The connected peers, in key order.
    pub fn peer_keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers.keys().copied()
    }

    /// True if peers with this id are refused (they sent bad metadata).
    pub fn is_banned(&self, id: &PeerId) -> bool {
        self.banned_ids.contains(id)
    }

    /// Peer ids banned so far (for the torrent that follows).
    pub fn banned_ids(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.banned_ids.iter().copied()
    }

    /// Counters.
    pub fn stats(&self) -> MetadataStats {
        self.stats
    }

    /// The swarm's 20-byte info-hash (handshakes use it).
    pub fn info_hash(&self) -> InfoHashV1 {
        self.info_hash
    }

    // ----- inputs -----

    /// A connection to a peer is open (`outgoing` if we opened it), at `addr` if known.
    pub fn add_peer(
        &mut self,
        now: Time,
        key: PeerKey,
        outgoing: bool,
        addr: Option<SocketAddr>,
    ) -> Result<(), TorrentError> {
        if self.peers.contains_key(&key) {
            return Err(TorrentError::DuplicatePeer(key));
        }
        let mut extended = crate::torrent::our_extended(&self.config, addr.map(|a| a.ip()), None, false);
        extended.upload_only = false;
        let local = LocalInfo {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            reserved: self.config.reserved,
            pieces: Arc::new(crate::session::PieceSizes::empty()),
            have: OurPieces::All,
            extended,
        };
        let session = PeerSession::new_awaiting_metadata(self.config.session.clone(), local, outgoing, now);
        self.peers.insert(
            key,
            MPeer {
                session,
                addr,
                ut_metadata: None,
                size: None,
                in_flight: Vec::new(),
                rejected: BTreeMap::new(),
                timeouts: 0,
                useless: false,
            },
        );
        self.pump(now);
        Ok(())
    }

    /// Bytes from peer `key`, in order, split anywhere.
    pub fn handle_peer_bytes(&mut self, now: Time, key: PeerKey, bytes: &[u8]) {
        if let Some(p) = self.peers.get_mut(&key) {
            let _ = p.session.handle_bytes(now, bytes);
        }
        self.pump(now);
    }

    /// The driver lost the connection to `key`.
    pub fn peer_disconnected(&mut self, now: Time, key: PeerKey) {
        self.remove_peer(key);
        self.fill(now);
        self.pump(now);
    }

    /// A timer fired (call at or after [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now: Time) {
        for p in self.peers.values_mut() {
            p.session.handle_timeout(now);
        }
        let timeout = self.config.metadata.request_timeout;
        let max_timeouts = self.config.metadata.max_timeouts;
        let backoff = self.config.metadata.reject_backoff;
        let mut freed = Vec::new();
        for (key, p) in self.peers.iter_mut() {
            let before = p.in_flight.len();
            p.in_flight.retain(|(piece, at)| {
                let expired = at.plus(timeout) <= now;
                if expired {
                    freed.push((*key, *piece));
                }
                !expired
            });
            let expired = before.saturating_sub(p.in_flight.len());
            if expired > 0 {
                p.timeouts = p
                    .timeouts
                    .saturating_add(u32::try_from(expired).unwrap_or(u32::MAX));
                if p.timeouts >= max_timeouts {
                    p.useless = true;
                }
            }
            p.rejected.retain(|_, at| at.plus(backoff) > now);
        }
        for (key, piece) in freed {
            self.stats.timeouts = self.stats.timeouts.saturating_add(1);
            self.release(key, piece);
        }
        self.pump(now);
        self.fill(now);
        self.pump(now);
    }

    // ----- outputs -----

    /// The next bytes to write to a peer.
    pub fn poll_transmit(&mut self) -> Option<(PeerKey, Transmit)> {
        self.transmits.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<MetadataEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        let m = &self.config.metadata;
        self.peers
            .values()
            .flat_map(|p| {
                p.session
                    .poll_timeout()
                    .into_iter()
                    .chain(p.in_flight.iter().map(|(_, at)| at.plus(m.request_timeout)))
                    .chain(p.rejected.values().map(|at| at.plus(m.reject_backoff)))
            })
            .min()
    }

    /// Hand every open session over (once [`MetadataEvent::Complete`] came): each goes to
    /// [`TorrentState::adopt_peer`](crate::torrent::TorrentState::adopt_peer). Closed ones are left out.
    pub fn into_peers(self) -> Vec<HandedPeer> {
        self.peers
            .into_iter()
            .filter(|(_, p)| !p.session.is_closed())
            .map(|(key, p)| HandedPeer {
                key,
                session: p.session,
                addr: p.addr,
            })
            .collect()
    }

    // ----- internals -----

    fn pump(&mut self, now: Time) {
        loop {
            let mut progressed = false;
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in keys {
                self.drain_transmits(key);
                while let Some(ev) = self.peers.get_mut(&key).and_then(|p| p.session.poll_event()) {
                    progressed = true;
                    self.on_session_event(now, key, ev);
                }
            }
            if !progressed {
                break;
            }
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.drain_transmits(key);
        }
    }

    fn drain_transmits(&mut self, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        while let Some(t) = p.session.poll_transmit() {
            self.transmits.push_back((key, t));
        }
    }

    fn on_session_event(&mut self, now: Time, key: PeerKey, ev: SessionEvent) {
        match ev {
            SessionEvent::HandshakeDone { peer_id, .. } if self.banned_ids.contains(&peer_id) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.session.close();
                }
            }
            SessionEvent::ExtendedHandshake(_) => {
                let max = self.config.metadata.max_size;
                let Some(p) = self.peers.get_mut(&key) else {
                    return;
                };
                // The session merges later handshakes into the first: read the merged view.
                let h = p.session.peer_extensions();
                p.ut_metadata = h.and_then(|h| h.extension_id(wire::UT_METADATA));
                match h.and_then(|h| h.metadata_size) {
                    Some(s) if s > 0 && s <= max => p.size = Some(s),
                    Some(_) => {
                        p.size = None;
                        self.stats.oversize_peers = self.stats.oversize_peers.saturating_add(1);
                    }
                    None => {}
                }
                self.fill(now);
            }
            SessionEvent::Extended { id, payload } => match id {
                OUR_UT_METADATA => self.on_metadata_message(now, key, &payload),
                OUR_UT_PEX => {
                    let peers = self.pex.receive(&self.config.pex, now, key, &payload);
                    if !peers.is_empty() && self.config.pex.enabled {
                        self.events.push_back(MetadataEvent::PexPeers(peers));
                    }
                }
                _ => {}
            },
            SessionEvent::Closed(reason) => {
                self.drain_transmits(key);
                self.remove_peer(key);
                self.events.push_back(MetadataEvent::PeerClosed { key, reason });
                self.fill(now);
            }
            // Kept by the session (its state) for the torrent that follows.
            _ => {}
        }
    }

    fn on_metadata_message(&mut self, now: Time, key: PeerKey, payload: &[u8]) {
        let Ok(m) = MetadataMessage::parse(payload) else {
            self.stats.ignored_messages = self.stats.ignored_messages.saturating_add(1);
            return;
        };
        match m {
            MetadataMessage::Request { piece } => {
                // BEP 9: "Peers that do not have the entire metadata MUST respond with a reject".
                let Some(p) = self.peers.get_mut(&key) else {
                    return;
                };
                if let Some(id) = p.ut_metadata {
                    let reply = MetadataMessage::Reject { piece }.encode();
                    let _ = p.session.send_extended(now, id, &reply);
                }
                self.drain_transmits(key);
            }
            MetadataMessage::Reject { piece } => {
                let Some(p) = self.peers.get_mut(&key) else {
                    return;
                };
                let Some(pos) = p.in_flight.iter().position(|(i, _)| *i == piece) else {
                    self.stats.ignored_messages = self.stats.ignored_messages.saturating_add(1);
                    return;
                };
                p.in_flight.swap_remove(pos);
                p.rejected.insert(piece, now);
                self.stats.rejects = self.stats.rejects.saturating_add(1);
                self.release(key, piece);
                if self.mode == Mode::Single(Some(key)) {
                    // The peer tried alone will not give a whole copy: try the next one.
                    self.next_single();
                }
                self.fill(now);
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => self.on_data(now, key, piece, total_size, data),
            MetadataMessage::Unknown { .. } => {}
        }
    }

    fn on_data(&mut self, now: Time, key: PeerKey, piece: u32, total_size: u32, data: &[u8]) {
        let Some(size) = self.size else {
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(pos) = p.in_flight.iter().position(|(i, _)| *i == piece) else {
            // Not asked of this peer (or given up on): ignored.
            self.stats.ignored_messages = self.stats.ignored_messages.saturating_add(1);
            return;
        };
        p.in_flight.swap_remove(pos);
        if total_size != size || metadata_piece_len(size, piece) != Some(data.len()) {
            // BEP 9: "If it is not the last piece of the metadata, it MUST be 16kiB", and total_size
            // "has the same semantics as the metadata_size in the extension header".
            self.release(key, piece);
            self.ban(key);
            self.fill(now);
            return;
        }
        match self.slots.get_mut(piece as usize) {
            Some(slot @ (Slot::Missing | Slot::Requested(_))) => {
                *slot = Slot::Have {
                    data: data.to_vec(),
                    from: key,
                };
                self.stats.pieces_received = self.stats.pieces_received.saturating_add(1);
            }
            _ => return self.fill(now),
        }
        if self.slots.iter().all(|s| matches!(s, Slot::Have { .. })) {
            self.assemble();
        }
        self.fill(now);
    }

    /// Every piece is here: hash the whole and either finish or find the liars.
    fn assemble(&mut self) {
        let pieces: Vec<(Vec<u8>, PeerKey)> = std::mem::take(&mut self.slots)
            .into_iter()
            .filter_map(|s| match s {
                Slot::Have { data, from } => Some((data, from)),
                _ => None,
            })
            .collect();
        let whole: Vec<u8> = pieces.iter().flat_map(|(d, _)| d.iter().copied()).collect();
        let n = pieces.len();
        if self.verify(&whole) {
            if let Some(failed) = self.failed_copy.take() {
                // Smart-ban: whoever sent a piece of the failed copy that differs from the good one lied.
                let liars: BTreeSet<(PeerKey, Option<PeerId>)> = failed
                    .iter()
                    .zip(&pieces)
                    .filter(|((bad, _, _), (good, _))| bad != good)
                    .map(|((_, key, id), _)| (*key, *id))
                    .collect();
                for (key, id) in liars {
                    self.ban_id(key, id);
                }
            }
            self.done = Some(Arc::from(whole));
            for p in self.peers.values_mut() {
                p.in_flight.clear();
            }
            if let Some(raw) = self.done.clone() {
                self.events.push_back(MetadataEvent::Complete(raw));
            }
            return;
        }
        self.stats.hash_failures = self.stats.hash_failures.saturating_add(1);
        let senders: BTreeSet<PeerKey> = pieces.iter().map(|(_, k)| *k).collect();
        let sole = match (self.mode, senders.len()) {
            (Mode::Single(Some(k)), _) => Some(k),
            (_, 1) => senders.first().copied(),
            _ => None,
        };
        if let Some(k) = sole {
            // The whole copy came from one peer and is wrong: that peer lied.
            self.tested.insert(k);
            self.ban(k);
        } else if self.failed_copy.is_none() {
            let ids: Vec<FailedPiece> = pieces
                .into_iter()
                .map(|(d, k)| {
                    let id = self.peers.get(&k).and_then(|p| p.session.peer_id());
                    (d, k, id)
                })
                .collect();
            self.failed_copy = Some(ids);
        }
        self.slots = (0..n).map(|_| Slot::Missing).collect();
        for p in self.peers.values_mut() {
            p.in_flight.clear();
        }
        self.mode = Mode::Single(None);
    }

    /// Drop the partial copy of the peer tried alone and move on to the next one.
    fn next_single(&mut self) {
        for s in &mut self.slots {
            *s = Slot::Missing;
        }
        for p in self.peers.values_mut() {
            p.in_flight.clear();
        }
        self.mode = Mode::Single(None);
    }

    fn verify(&self, whole: &[u8]) -> bool {
        let v1_ok = self.hashes.v1.is_none_or(|h| InfoHashV1::of_info(whole) == h);
        let v2_ok = self.hashes.v2.is_none_or(|h| InfoHashV2::of_info(whole) == h);
        v1_ok && v2_ok && (self.hashes.v1.is_some() || self.hashes.v2.is_some())
    }

    /// A request of `key` for `piece` is over without data: the piece may go to another peer.
    fn release(&mut self, key: PeerKey, piece: u32) {
        if let Some(slot) = self.slots.get_mut(piece as usize) {
            if matches!(slot, Slot::Requested(k) if *k == key) {
                *slot = Slot::Missing;
            }
        }
    }

    fn remove_peer(&mut self, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.pex.peer_gone(key);
        for (piece, _) in p.in_flight {
            self.release(key, piece);
        }
        if self.mode == Mode::Single(Some(key)) {
            // Its partial copy proves nothing: start over with the next peer.
            self.next_single();
        }
    }

    fn ban(&mut self, key: PeerKey) {
        let id = self.peers.get(&key).and_then(|p| p.session.peer_id());
        self.ban_id(key, id);
    }

    fn ban_id(&mut self, key: PeerKey, id: Option<PeerId>) {
        if let Some(id) = id {
            self.banned_ids.insert(id);
        }
        if let Some(p) = self.peers.get_mut(&key) {
            if p.session.peer_id() == id && !p.session.is_closed() {
                p.session.close();
                self.events.push_back(MetadataEvent::Banned { key });
            }
        }
    }

    /// A peer we may ask for metadata of `size` bytes.
    fn usable(p: &MPeer, size: u32) -> bool {
        p.session.is_established()
            && !p.session.is_closed()
            && !p.useless
            && p.ut_metadata.is_some()
            && p.size == Some(size)
    }

    /// Pick the size to fetch: the one most usable peers announce (the smallest on a tie), kept while any
    /// usable peer still offers it (when none does, what was fetched of it is dropped for another size).
    fn choose_size(&mut self) {
        let offered =
            |size: u32, peers: &BTreeMap<PeerKey, MPeer>| peers.values().any(|p| Self::usable(p, size));
        if self.size.is_some_and(|size| offered(size, &self.peers)) {
            return;
        }
        let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
        for p in self.peers.values() {
            if let Some(s) = p.size {
                if Self::usable(p, s) {
                    *counts.entry(s).or_insert(0) += 1;
                }
            }
        }
        let best = counts
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
            .map(|(s, _)| *s);
        if best != self.size {
            if let Some(size) = best {
                self.size = Some(size);
                let n = metadata_piece_count(size) as usize;
                self.slots = (0..n).map(|_| Slot::Missing).collect();
                self.failed_copy = None;
                self.mode = Mode::Spread;
                self.tested.clear();
            }
        }
    }

    /// Send requests for missing pieces within the bounds.
    fn fill(&mut self, now: Time) {
        if self.done.is_some() {
            return;
        }
        self.choose_size();
        let Some(size) = self.size else {
            return;
        };
        let m = self.config.metadata.clone();
        if let Mode::Single(Some(k)) = self.mode {
            if !self.peers.get(&k).is_some_and(|p| Self::usable(p, size)) {
                self.next_single();
            }
        }
        if let Mode::Single(None) = self.mode {
            let candidates: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(k, p)| Self::usable(p, size) && !self.tested.contains(k))
                .map(|(k, _)| *k)
                .collect();
            if candidates.is_empty() {
                return;
            }
            let pick = candidates
                .get(self.rng.random_range(0..candidates.len()))
                .copied();
            if let Some(k) = pick {
                self.tested.insert(k);
                self.mode = Mode::Single(Some(k));
            }
        }
        let mut in_flight: usize = self.peers.values().map(|p| p.in_flight.len()).sum();
        let keys: Vec<PeerKey> = match self.mode {
            Mode::Single(Some(k)) => vec![k],
            _ => {
                let mut keys: Vec<(usize, PeerKey)> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| Self::usable(p, size))
                    .map(|(k, p)| (p.in_flight.len(), *k))
                    .collect();
                keys.sort();
                keys.into_iter().map(|(_, k)| k).collect()
            }
        };
        let n = self.slots.len();
        let start = if n > 0 { self.rng.random_range(0..n) } else { 0 };
        // Round robin: one request per peer per round, so the pieces are spread over the peers.
        let mut cursor = start;
        loop {
            let mut assigned = false;
            for &key in &keys {
                if in_flight >= m.max_in_flight {
                    break;
                }
                let Some(p) = self.peers.get(&key) else {
                    continue;
                };
                if !Self::usable(p, size) || p.in_flight.len() >= m.max_requests_per_peer {
                    continue;
                }
                let pick = (0..n).map(|i| (cursor + i) % n).find(|&i| {
                    matches!(self.slots.get(i), Some(Slot::Missing)) && !p.rejected.contains_key(&(i as u32))
                });
                let Some(piece) = pick else {
                    continue;
                };
                let Some(id) = p.ut_metadata else {
                    continue;
                };
                let Some(p) = self.peers.get_mut(&key) else {
                    continue;
                };
                let piece = u32::try_from(piece).unwrap_or(u32::MAX);
                let msg = MetadataMessage::Request { piece }.encode();
                if p.session.send_extended(now, id, &msg).is_err() {
                    continue;
                }
                p.in_flight.push((piece, now));
                if let Some(slot) = self.slots.get_mut(piece as usize) {
                    *slot = Slot::Requested(key);
                }
                cursor = (piece as usize).saturating_add(1);
                in_flight = in_flight.saturating_add(1);
                assigned = true;
            }
            if !assigned {
                break;
            }
        }
        for key in keys {
            self.drain_transmits(key);
        }
    }
}

/// The `data` messages answering requests for our metadata `info` (BEP 9): piece `piece`, or `None` for a
/// piece past the end.
pub fn data_message(info: &[u8], piece: u32) -> Option<Vec<u8>> {
    let total = u32::try_from(info.len()).ok()?;
    let len = metadata_piece_len(total, piece)?;
    let start = (piece as usize).checked_mul(METADATA_PIECE_LEN)?;
    let data = info.get(start..start.checked_add(len)?)?;
    Some(
        MetadataMessage::Data {
            piece,
            total_size: total,
            data,
        }
        .encode(),
    )
}

#[cfg(test)]
mod tests;
