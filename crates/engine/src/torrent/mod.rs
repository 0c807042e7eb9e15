//! One torrent as a state machine: the [`PiecePicker`], the [`Choker`], and a [`PeerSession`] with its
//! [`RequestWindow`] for every connected peer, glued together as the flow of one download in
//! `architecture.md` describes. Pure: no sockets, no disk, no clock.
//!
//! - **Inputs** (each with the time it happened): [`add_peer`](TorrentState::add_peer),
//!   [`handle_peer_bytes`](TorrentState::handle_peer_bytes),
//!   [`peer_disconnected`](TorrentState::peer_disconnected),
//!   [`handle_timeout`](TorrentState::handle_timeout), and the results of disk work it asked for:
//!   [`on_block_written`](TorrentState::on_block_written),
//!   [`on_piece_verified`](TorrentState::on_piece_verified) and
//!   [`on_block_read`](TorrentState::on_block_read).
//! - **Outputs**, drained after every input: [`poll_transmit`](TorrentState::poll_transmit) (bytes for a
//!   peer), [`poll_disk`](TorrentState::poll_disk) ([`DiskOp`]: write a block, verify a piece, read a
//!   block for a peer), [`poll_event`](TorrentState::poll_event) ([`TorrentEvent`]) and
//!   [`poll_timeout`](TorrentState::poll_timeout).
//!
//! Hashing is requested as an output ([`DiskOp::Verify`]) and its result fed back, so a driver can run it
//! on a pool and a simulator can charge it virtual time. Randomness (the picker's random first pieces and
//! tie-breaks, the choker's optimistic unchoke) comes from the RNG the owner seeded and handed over at
//! construction, so a run is reproducible.
//!
//! **What happens.** A peer's `bitfield`, `have all` or `have` feeds the picker's availability and decides
//! our interest ([`PiecePicker::interested_in`]). When the peer unchokes us (or a block, reject or timeout
//! frees a slot) its request window is filled with `target - in_flight` blocks from the picker. A block
//! that arrives is handed to the picker (in endgame its other copies are cancelled) and written
//! ([`DiskOp::Write`]); when the last block of a piece is written the piece is verified
//! ([`DiskOp::Verify`]). A good piece is announced with `have` to every peer; a bad one is picked again.
//!
//! **Smart-ban.** Every accepted block's sender is remembered until its piece is verified. When a piece
//! fails, the driver hands back a SHA-1 digest of every block of the failed copy, taken in the same disk
//! job that found the mismatch (so no new write can slip in between), and the senders become suspects with
//! the digest of what they sent. When the piece later passes, the driver is asked for the good copy's
//! block digests too ([`TorrentState::wants_block_digests`]), and a suspect whose block differs from the
//! block that passed sent bad data and is banned at once (closed, its peer id refused from then on). This
//! is libtorrent's smart-ban, with the hashing done only for pieces that failed instead of for every
//! block received. A failed piece that came entirely from one peer is a strike against it, and
//! [`TorrentConfig::ban_strikes`] strikes ban it too.
//! Peers that merely shared a failed piece with a bad one are never blamed. The choker's
//! decisions become `choke`/`unchoke`, and a request from an unchoked peer for a piece we have becomes a
//! [`DiskOp::Read`], whose data ([`on_block_read`](TorrentState::on_block_read)) is sent after the
//! `piece` header.

#[cfg(test)]
mod ext_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use metainfo::{Geometry, InfoHashV1, PieceIndex};
use rand::Rng;
use wire::{Bitfield, BlockRequest, ExtendedHandshake, MetadataMessage, PeerId, PexFlags, Reserved};

use crate::choker::{Choker, ChokerConfig, Decision};
use crate::metadata::{HandedPeer, MetadataConfig, OUR_UT_METADATA};
use crate::pex::{PexConfig, PexInbox, PexOutbox, OUR_UT_PEX};
use crate::picker::{BlockStatus, PickerConfig, PickerError, PiecePicker};
use crate::session::{
    allowed_fast_set, LocalInfo, OurPieces, PeerSession, PieceSizes, SessionConfig, SessionError,
    SessionEvent, Transmit,
};
use crate::window::{RequestWindow, WindowConfig};
use crate::{PeerKey, Time};

/// Settings of a [`TorrentState`]: those of its parts, the extensions we speak and the ban threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct TorrentConfig {
    /// Every peer session's settings.
    pub session: SessionConfig,
    /// The piece picker's settings.
    pub picker: PickerConfig,
    /// Every request window's settings.
    pub window: WindowConfig,
    /// The choker's settings.
    pub choker: ChokerConfig,
    /// The reserved bits we send (fast extension and extension protocol by default).
    pub reserved: Reserved,
    /// A peer that alone sent this many pieces that failed verification is closed and banned.
    pub ban_strikes: u32,
    /// Size of the BEP 6 allowed-fast set we grant each IPv4 peer (pieces of it that we have are sent as
    /// `allowed fast`); 0 grants none. BEP 6 suggests 10.
    pub allowed_fast: u32,
    /// Our client name and version, sent as `v` in the BEP 10 handshake.
    pub client_name: String,
    /// The port we accept connections on, sent as `p` in the BEP 10 handshake (so a peer that we
    /// dialled, or that dialled us, can reconnect or pass us on).
    pub listen_port: Option<u16>,
    /// Metadata exchange (BEP 9): fetching for magnet links, serving to peers.
    pub metadata: MetadataConfig,
    /// Peer exchange (BEP 11).
    pub pex: PexConfig,
    /// The UDP port of our DHT node (BEP 5), when we run one: sent in a `port` message to every peer that
    /// sets the DHT bit (the driver sets [`Reserved::DHT`] in [`TorrentConfig::reserved`] too). Private
    /// torrents never send it.
    pub dht_port: Option<u16>,
}

impl Default for TorrentConfig {
    fn default() -> Self {
        TorrentConfig {
            session: SessionConfig::default(),
            picker: PickerConfig::default(),
            window: WindowConfig::default(),
            choker: ChokerConfig::default(),
            reserved: Reserved::FAST | Reserved::EXTENDED,
            ban_strikes: 2,
            allowed_fast: 10,
            client_name: concat!("bitswarm ", env!("CARGO_PKG_VERSION")).to_string(),
            listen_port: None,
            metadata: MetadataConfig::default(),
            pex: PexConfig::default(),
            dht_port: None,
        }
    }
}

/// Disk work the torrent asks the driver to do; each result comes back as an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// Store a block we downloaded, then call [`TorrentState::on_block_written`].
    Write {
        /// Which block.
        req: BlockRequest,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// Hash this piece as stored, then call [`TorrentState::on_piece_verified`].
    Verify(PieceIndex),
    /// Read a block a peer asked for, then call [`TorrentState::on_block_read`].
    Read {
        /// The peer that asked.
        peer: PeerKey,
        /// The block.
        req: BlockRequest,
    },
}

/// What the torrent reports to its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TorrentEvent {
    /// A piece passed verification and is announced to every peer.
    PieceCompleted(PieceIndex),
    /// A piece failed verification; it will be downloaded again.
    PieceFailed(PieceIndex),
    /// Every wanted piece is verified.
    Complete,
    /// A peer session ended (by the peer, a protocol error, a timeout or a ban): close its connection.
    PeerClosed {
        /// The peer.
        key: PeerKey,
        /// Why.
        reason: SessionError,
    },
    /// A peer sent data for too many pieces that failed verification and was closed; its peer id is
    /// refused from now on.
    Banned {
        /// The peer.
        key: PeerKey,
    },
    /// Peers learned through `ut_pex` (BEP 11), worth dialling (never for a private torrent).
    PexPeers(Vec<(SocketAddr, PexFlags)>),
    /// A peer's DHT node, from its `port` message (BEP 5: "the node should be inserted into the local
    /// routing table"); never for a private torrent.
    DhtNode(SocketAddr),
}

/// Why a [`TorrentState`] cannot be built, or an input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TorrentError {
    /// The picker refused the torrent's layout or our pieces.
    #[error(transparent)]
    Picker(#[from] PickerError),
    /// Our have-bitfield is for another number of pieces.
    #[error("a have-bitfield of {got} pieces for a torrent of {expected}")]
    BitfieldSize {
        /// Pieces in the bitfield.
        got: u32,
        /// Pieces in the torrent.
        expected: u32,
    },
    /// A peer key already in use.
    #[error("peer {0:?} is already connected")]
    DuplicatePeer(PeerKey),
    /// The session could not be created.
    #[error("cannot start the peer session: {0}")]
    Session(String),
    /// A magnet link without a usable info-hash.
    #[error("no info-hash to fetch the metadata of")]
    NoInfoHash,
}

/// Payload counters of the torrent (block bytes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TorrentStats {
    /// Block bytes sent to peers.
    pub uploaded: u64,
    /// Block bytes received and accepted (not duplicates).
    pub downloaded: u64,
    /// Pieces that failed verification.
    pub failed_pieces: u64,
}

/// Suspects remembered per block of a failed piece.
const MAX_SUSPECTS_PER_BLOCK: usize = 8;

/// Who sent one block (for smart-ban).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sender {
    key: PeerKey,
    id: Option<PeerId>,
}

/// The sender of a block of a failed piece, and the digest of what it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Suspect {
    key: PeerKey,
    id: Option<PeerId>,
    digest: [u8; 20],
}

/// One connected peer.
#[derive(Debug)]
struct Peer {
    session: PeerSession,
    window: RequestWindow,
    /// The pieces counted for this peer in the picker's availability (unless `seed`).
    counted: Bitfield,
    /// Counted with [`PiecePicker::add_seed`] (it sent `have all`).
    seed: bool,
    /// Handshake done and known to the choker.
    connected: bool,
    /// The peer's address, when the driver gave it (only the IP, with [`TorrentState::add_peer_at`]).
    addr: Option<PeerAddr>,
    /// Metadata pieces served to it (BEP 9 flood protection).
    metadata_served: u32,
    /// What we tell it through `ut_pex`, once it enabled that.
    pex: Option<PexOutbox>,
    /// Blocks read from disk waiting for their `piece` header to come out of the session.
    /// Each with `true` when the buffer already has room for the header in front (framed).
    outgoing: VecDeque<(BlockRequest, Vec<u8>, bool)>,
}

/// How much of a peer's address we know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerAddr {
    Ip(IpAddr),
    Socket(SocketAddr),
}

impl PeerAddr {
    fn ip(self) -> IpAddr {
        match self {
            PeerAddr::Ip(ip) => ip,
            PeerAddr::Socket(a) => a.ip(),
        }
    }
}

/// Our BEP 10 handshake: `ut_metadata` (with `metadata_size`) when we have the metadata or are fetching it
/// (`fetching`), `ut_pex` unless PEX is off or the torrent is private (BEP 27), our client name and port,
/// and the peer's address as we see it.
pub(crate) fn our_extended(
    config: &TorrentConfig,
    yourip: Option<IpAddr>,
    metadata_size: Option<u32>,
    private: bool,
) -> ExtendedHandshake {
    let mut h = ExtendedHandshake {
        v: Some(config.client_name.clone()),
        p: config.listen_port,
        yourip,
        metadata_size,
        ..Default::default()
    };
    h.m.insert(wire::UT_METADATA.into(), OUR_UT_METADATA);
    if config.pex.enabled && !private {
        h.m.insert(wire::UT_PEX.into(), OUR_UT_PEX);
    }
    h
}

/// The state of one torrent. See the [module documentation](self).
#[derive(Debug)]
pub struct TorrentState<R: Rng> {
    config: TorrentConfig,
    info_hash: InfoHashV1,
    peer_id: PeerId,
    sizes: Arc<PieceSizes>,
    picker: PiecePicker,
    choker: Choker,
    have: Bitfield,
    peers: BTreeMap<PeerKey, Peer>,
    strikes: BTreeMap<PeerKey, u32>,
    /// The sender of every accepted block of pieces not yet verified, by (piece, begin).
    senders: BTreeMap<(u32, u32), Sender>,
    /// The senders of blocks of pieces that failed, until the piece passes.
    suspects: BTreeMap<(u32, u32), Vec<Suspect>>,
    banned_ids: BTreeSet<PeerId>,
    /// Byte ranges of pad files within each piece that has some (start, end), for skipping pad blocks.
    pad_ranges: BTreeMap<u32, Vec<(u32, u32)>>,
    transmits: VecDeque<(PeerKey, Transmit)>,
    disk: VecDeque<DiskOp>,
    events: VecDeque<TorrentEvent>,
    stats: TorrentStats,
    complete_reported: bool,
    /// The raw info dictionary, served to peers that ask (BEP 9).
    info: Option<Arc<[u8]>>,
    /// A private torrent (BEP 27): no peer exchange.
    private: bool,
    pex_in: PexInbox,
    rng: R,
}

impl<R: Rng> TorrentState<R> {
    /// A torrent laid out as `geometry`, with swarm hash `info_hash`, our `peer_id`, the pieces we already
    /// have (verified), and the RNG every random choice is drawn from.
    pub fn new(
        config: TorrentConfig,
        geometry: &Geometry,
        info_hash: InfoHashV1,
        peer_id: PeerId,
        have: Bitfield,
        rng: R,
    ) -> Result<Self, TorrentError> {
        let sizes = Arc::new(PieceSizes::from_geometry(geometry));
        if have.len() != sizes.num_pieces() {
            return Err(TorrentError::BitfieldSize {
                got: have.len(),
                expected: sizes.num_pieces(),
            });
        }
        let mut picker = PiecePicker::from_geometry(geometry, config.picker.clone())?;
        for i in have.iter_set() {
            picker.mark_have(i)?;
        }
        let mut pad_ranges: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
        for i in 0..geometry.piece_count() {
            let Some(spec) = geometry.piece(i) else {
                continue;
            };
            let mut pos = 0u64;
            for seg in &spec.segments {
                let len = match *seg {
                    metainfo::Segment::Data { len, .. } => len,
                    metainfo::Segment::Zeros(n) => {
                        let end = pos.saturating_add(n);
                        if let (Ok(a), Ok(b)) = (u32::try_from(pos), u32::try_from(end)) {
                            pad_ranges.entry(i).or_default().push((a, b));
                        }
                        n
                    }
                };
                pos = pos.saturating_add(len);
            }
        }
        let mut choker = Choker::new(config.choker.clone());
        let complete = picker.is_complete();
        choker.set_seeding(complete);
        Ok(TorrentState {
            config,
            info_hash,
            peer_id,
            sizes,
            picker,
            choker,
            have,
            peers: BTreeMap::new(),
            strikes: BTreeMap::new(),
            senders: BTreeMap::new(),
            suspects: BTreeMap::new(),
            banned_ids: BTreeSet::new(),
            pad_ranges,
            transmits: VecDeque::new(),
            disk: VecDeque::new(),
            events: VecDeque::new(),
            stats: TorrentStats::default(),
            complete_reported: complete,
            info: None,
            private: false,
            pex_in: PexInbox::new(),
            rng,
        })
    }

    /// Serve `info` (the raw info dictionary, as hashed) to peers that ask for it (BEP 9), and announce
    /// its size in our extended handshake. Call before adding peers.
    pub fn with_metadata(mut self, info: Arc<[u8]>) -> Self {
        self.info = Some(info);
        self
    }

    /// Mark the torrent private (BEP 27: its `info` has `private` set): no `ut_pex` in our extended
    /// handshake, and peers' `ut_pex` messages are ignored. Call before adding peers.
    pub fn with_private(mut self, private: bool) -> Self {
        self.private = private;
        self
    }

    /// True if the torrent is private (BEP 27).
    pub fn is_private(&self) -> bool {
        self.private
    }

    /// Peer exchange counters (what was ignored of what peers sent).
    pub fn pex_stats(&self) -> crate::pex::PexStats {
        self.pex_in.stats()
    }

    fn pex_allowed(&self) -> bool {
        self.config.pex.enabled && !self.private
    }

    fn metadata_size(&self) -> Option<u32> {
        self.info.as_ref().and_then(|i| u32::try_from(i.len()).ok())
    }

    // ----- state -----

    /// The pieces we have (verified).
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// True once every wanted piece is verified.
    pub fn is_complete(&self) -> bool {
        self.picker.is_complete()
    }

    /// Payload counters.
    pub fn stats(&self) -> TorrentStats {
        self.stats
    }

    /// The connected peers, in key order.
    pub fn peer_keys(&self) -> impl Iterator<Item = PeerKey> + '_ {
        self.peers.keys().copied()
    }

    /// True if peers with this id are refused (it was banned).
    pub fn is_banned(&self, id: &PeerId) -> bool {
        self.banned_ids.contains(id)
    }

    /// Refuse peers with this id from now on (banned elsewhere, such as while fetching the metadata).
    pub fn refuse_peer_id(&mut self, id: PeerId) {
        self.banned_ids.insert(id);
    }

    /// The piece picker (read only).
    pub fn picker(&self) -> &PiecePicker {
        &self.picker
    }

    /// Connected peers (handshake done or not).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Bytes of the pieces we have (verified).
    pub fn bytes_have(&self) -> u64 {
        self.have
            .iter_set()
            .filter_map(|i| self.sizes.len(i))
            .map(u64::from)
            .sum()
    }

    /// Bytes of the wanted pieces we do not have yet (what trackers call `left`).
    pub fn bytes_left(&self) -> u64 {
        (0..self.sizes.num_pieces())
            .map(PieceIndex)
            .filter(|i| !self.have.get(*i) && self.picker.wants(*i))
            .filter_map(|i| self.sizes.len(i))
            .map(u64::from)
            .sum()
    }

    /// Set each file's priority (0 skips the file), in the order of the torrent's files; interest in
    /// every peer is re-decided. Completing the wanted pieces reports [`TorrentEvent::Complete`].
    pub fn set_file_priorities(&mut self, now: Time, priorities: &[u8]) -> Result<(), TorrentError> {
        self.picker.set_file_priorities(priorities)?;
        self.after_priority_change(now);
        Ok(())
    }

    /// Set each piece's priority (0 skips it); see [`set_file_priorities`](Self::set_file_priorities).
    pub fn set_piece_priorities(&mut self, now: Time, priorities: &[u8]) -> Result<(), TorrentError> {
        self.picker.set_piece_priorities(priorities)?;
        self.after_priority_change(now);
        Ok(())
    }

    fn after_priority_change(&mut self, now: Time) {
        let complete = self.picker.is_complete();
        self.choker.set_seeding(complete);
        if complete && !self.complete_reported {
            self.complete_reported = true;
            self.events.push_back(TorrentEvent::Complete);
        } else if !complete {
            self.complete_reported = false;
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.update_interest(now, key);
        }
        self.pump(now);
    }

    // ----- inputs -----

    /// A connection to a peer is open (`outgoing` if we opened it): its session starts, and an outgoing
    /// one queues our handshake.
    pub fn add_peer(&mut self, now: Time, key: PeerKey, outgoing: bool) -> Result<(), TorrentError> {
        self.add_peer_at(now, key, outgoing, None)
    }

    /// As [`add_peer`](Self::add_peer), knowing the peer's address: our BEP 10 handshake tells it
    /// (`yourip`), which helps a peer behind NAT learn its external address.
    pub fn add_peer_at(
        &mut self,
        now: Time,
        key: PeerKey,
        outgoing: bool,
        addr: Option<IpAddr>,
    ) -> Result<(), TorrentError> {
        self.add_peer_inner(now, key, outgoing, addr.map(PeerAddr::Ip))
    }

    /// As [`add_peer`](Self::add_peer), knowing the peer's address and port: besides `yourip`, peer
    /// exchange (BEP 11) can then pass the peer on to others (one we dialled at this address, one that
    /// dialled us at its IP and the listen port of its extended handshake).
    pub fn add_peer_addr(
        &mut self,
        now: Time,
        key: PeerKey,
        outgoing: bool,
        addr: SocketAddr,
    ) -> Result<(), TorrentError> {
        self.add_peer_inner(now, key, outgoing, Some(PeerAddr::Socket(addr)))
    }

    /// Take over a connection that a [`MetadataFetch`](crate::metadata::MetadataFetch) started: its
    /// session learns the piece count and our pieces, reports what the peer said about its pieces so far,
    /// and goes on as if it had been added here (our extended handshake is sent again with the metadata
    /// size, and without `ut_pex` for a private torrent).
    pub fn adopt_peer(&mut self, now: Time, handed: HandedPeer) -> Result<(), TorrentError> {
        let HandedPeer { key, session, addr } = handed;
        if self.peers.contains_key(&key) {
            return Err(TorrentError::DuplicatePeer(key));
        }
        let mut session = session;
        session
            .set_pieces(now, Arc::clone(&self.sizes), self.our_pieces())
            .map_err(|e| TorrentError::Session(e.to_string()))?;
        let ext = our_extended(
            &self.config,
            addr.map(|a| a.ip()),
            self.metadata_size(),
            self.private,
        );
        let mut ext = ext;
        ext.upload_only = self.picker.is_complete();
        if self.private {
            // BEP 10: "the extension can be disabled by sending only that entry with id 0".
            ext.m.insert(wire::UT_PEX.into(), 0);
        }
        let _ = session.set_extended_handshake(now, ext);
        let established = session.is_established();
        let peer_reserved = session.peer_reserved();
        let peer_id = session.peer_id();
        let interested = session.peer_interested();
        let reqq = session.peer_extensions().and_then(|h| h.reqq);
        let mut window = RequestWindow::new(self.config.window.clone());
        window.set_reqq(reqq.map(|r| r as usize));
        self.peers.insert(
            key,
            Peer {
                session,
                window,
                counted: Bitfield::new(self.sizes.num_pieces()),
                seed: false,
                connected: false,
                addr: addr.map(PeerAddr::Socket),
                outgoing: VecDeque::new(),
                metadata_served: 0,
                pex: None,
            },
        );
        if let (true, Some(id)) = (established, peer_id) {
            self.on_handshake_done(now, key, id, peer_reserved);
            self.on_extended_handshake(now, key);
            if interested {
                self.choker.set_interested(now, key, true);
            }
        }
        self.pump(now);
        Ok(())
    }

    fn our_pieces(&self) -> OurPieces {
        if self.have.is_full() {
            OurPieces::All
        } else {
            OurPieces::Some(self.have.clone())
        }
    }

    fn add_peer_inner(
        &mut self,
        now: Time,
        key: PeerKey,
        outgoing: bool,
        addr: Option<PeerAddr>,
    ) -> Result<(), TorrentError> {
        if self.peers.contains_key(&key) {
            return Err(TorrentError::DuplicatePeer(key));
        }
        let have = self.our_pieces();
        let mut extended = our_extended(
            &self.config,
            addr.map(PeerAddr::ip),
            self.metadata_size(),
            self.private,
        );
        extended.upload_only = self.picker.is_complete();
        if self.info.is_none() {
            extended.m.remove(wire::UT_METADATA);
        }
        let local = LocalInfo {
            info_hash: self.info_hash,
            peer_id: self.peer_id,
            reserved: self.config.reserved,
            pieces: Arc::clone(&self.sizes),
            have,
            extended,
        };
        let session = PeerSession::new(self.config.session.clone(), local, outgoing, now)
            .map_err(|e| TorrentError::Session(e.to_string()))?;
        self.peers.insert(
            key,
            Peer {
                session,
                window: RequestWindow::new(self.config.window.clone()),
                counted: Bitfield::new(self.sizes.num_pieces()),
                seed: false,
                connected: false,
                addr,
                outgoing: VecDeque::new(),
                metadata_served: 0,
                pex: None,
            },
        );
        self.pump(now);
        Ok(())
    }

    /// Bytes from peer `key`, in order, split anywhere. Bytes for an unknown peer are ignored; a protocol
    /// error closes the session ([`TorrentEvent::PeerClosed`]).
    pub fn handle_peer_bytes(&mut self, now: Time, key: PeerKey, bytes: &[u8]) {
        if let Some(p) = self.peers.get_mut(&key) {
            // An error is reported as the session's Closed event, handled by pump.
            let _ = p.session.handle_bytes(now, bytes);
        }
        self.pump(now);
    }

    /// The driver lost the connection to `key`: its requests go to other peers. No event is reported.
    pub fn peer_disconnected(&mut self, now: Time, key: PeerKey) {
        self.remove_peer(key);
        self.fill_all(now);
        self.pump(now);
    }

    /// A timer fired (call at or after [`poll_timeout`](Self::poll_timeout)).
    pub fn handle_timeout(&mut self, now: Time) {
        for p in self.peers.values_mut() {
            p.session.handle_timeout(now);
        }
        self.send_pex(now);
        self.choker.handle_timeout(now, &mut self.rng);
        self.pump(now);
        self.fill_all(now);
        self.pump(now);
    }

    /// A [`DiskOp::Write`] finished: when it was the last block of its piece, the piece is to be verified.
    pub fn on_block_written(&mut self, req: BlockRequest) {
        if let Some(piece) = self.picker.on_block_written(req) {
            self.disk.push_back(DiskOp::Verify(piece));
        }
    }

    /// True if, when piece `piece` passes verification, its block digests are wanted (blocks of an
    /// earlier copy that failed are waiting to be compared with it). A driver passes them to
    /// [`on_piece_verified_with_digests`](Self::on_piece_verified_with_digests).
    pub fn wants_block_digests(&self, piece: PieceIndex) -> bool {
        self.suspects
            .range((piece.0, 0)..=(piece.0, u32::MAX))
            .next()
            .is_some()
    }

    /// A [`DiskOp::Verify`] finished: `ok` if the piece matches its hash. Without block digests
    /// smart-ban can only count strikes; see
    /// [`on_piece_verified_with_digests`](Self::on_piece_verified_with_digests).
    pub fn on_piece_verified(&mut self, now: Time, piece: PieceIndex, ok: bool) {
        self.on_piece_verified_with_digests(now, piece, ok, None);
    }

    /// A [`DiskOp::Verify`] finished, with the SHA-1 digest of each block of the piece as stored (in
    /// block order), read in the same disk job as the verification: always useful when `ok` is false,
    /// and wanted when `ok` is true if [`wants_block_digests`](Self::wants_block_digests) said so.
    pub fn on_piece_verified_with_digests(
        &mut self,
        now: Time,
        piece: PieceIndex,
        ok: bool,
        digests: Option<&[[u8; 20]]>,
    ) {
        let Ok(contributors) = self.picker.on_piece_verified(piece, ok) else {
            return;
        };
        let range = (piece.0, 0)..=(piece.0, u32::MAX);
        let senders: Vec<((u32, u32), Sender)> =
            self.senders.range(range.clone()).map(|(k, v)| (*k, *v)).collect();
        for (k, _) in &senders {
            self.senders.remove(k);
        }
        let digest_of = |begin: u32| -> Option<[u8; 20]> {
            let i = (begin / wire::BLOCK_LEN) as usize;
            digests.and_then(|d| d.get(i)).copied()
        };
        if ok {
            // Smart-ban: whoever sent a block of an earlier, failed copy of this piece that differs from
            // the block that passed sent bad data.
            let suspects: Vec<((u32, u32), Vec<Suspect>)> =
                self.suspects.range(range).map(|(k, v)| (*k, v.clone())).collect();
            for (k, list) in suspects {
                self.suspects.remove(&k);
                let good = digest_of(k.1);
                for bad in list {
                    if good.is_some_and(|g| g != bad.digest) {
                        self.ban(bad.key, bad.id);
                    }
                }
            }
            if self.have.set(piece, true).is_err() {
                return;
            }
            self.events.push_back(TorrentEvent::PieceCompleted(piece));
            let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
            for key in &keys {
                if let Some(p) = self.peers.get_mut(key) {
                    let _ = p.session.have(now, piece);
                }
                self.update_interest(now, *key);
            }
            if self.picker.is_complete() && !self.complete_reported {
                self.complete_reported = true;
                self.choker.set_seeding(true);
                self.events.push_back(TorrentEvent::Complete);
            }
        } else {
            self.stats.failed_pieces = self.stats.failed_pieces.saturating_add(1);
            self.events.push_back(TorrentEvent::PieceFailed(piece));
            for (k, sender) in &senders {
                if let Some(digest) = digest_of(k.1) {
                    let list = self.suspects.entry(*k).or_default();
                    // Bounded: a block keeps at most a few suspects (each failure adds one per block).
                    if list.len() < MAX_SUSPECTS_PER_BLOCK {
                        list.push(Suspect {
                            key: sender.key,
                            id: sender.id,
                            digest,
                        });
                    }
                }
            }
            // A piece all from one peer convicts that peer; a mixed one waits for the good copy.
            if let [key] = contributors.peers().as_slice() {
                let key = *key;
                let strikes = self.strikes.entry(key).or_insert(0);
                *strikes = strikes.saturating_add(1);
                if *strikes >= self.config.ban_strikes {
                    let id = self.peers.get(&key).and_then(|p| p.session.peer_id());
                    self.ban(key, id);
                }
            }
        }
        self.pump(now);
        self.fill_all(now);
        self.pump(now);
    }

    /// A [`DiskOp::Read`] finished: send the block to the peer (dropped if the peer left, cancelled it or
    /// was choked meanwhile).
    pub fn on_block_read(&mut self, now: Time, peer: PeerKey, req: BlockRequest, data: Vec<u8>) {
        if data.len() != req.length as usize {
            return;
        }
        self.queue_block(now, peer, req, data, false);
    }

    /// As [`on_block_read`](Self::on_block_read), with the block already behind
    /// [`wire::PIECE_HEADER_LEN`] spare bytes (`message.len()` is the header plus the block): the header
    /// is written into them, so the block is never copied into a message buffer.
    pub fn on_block_read_framed(&mut self, now: Time, peer: PeerKey, req: BlockRequest, message: Vec<u8>) {
        if message.len() != wire::PIECE_HEADER_LEN.saturating_add(req.length as usize) {
            return;
        }
        self.queue_block(now, peer, req, message, true);
    }

    fn queue_block(&mut self, now: Time, peer: PeerKey, req: BlockRequest, data: Vec<u8>, framed: bool) {
        if let Some(p) = self.peers.get_mut(&peer) {
            if p.session.send_block(now, req).is_ok() {
                p.outgoing.push_back((req, data, framed));
                self.stats.uploaded = self.stats.uploaded.saturating_add(u64::from(req.length));
                self.choker.on_uploaded_to(now, peer, u64::from(req.length));
            }
        }
        self.pump(now);
    }

    // ----- outputs -----

    /// The next bytes to write to a peer: [`Transmit::Bytes`] for protocol messages, and a block's `piece`
    /// message as one [`Transmit::Block`] (header and data), so a driver can account for its upload queue.
    pub fn poll_transmit(&mut self) -> Option<(PeerKey, Transmit)> {
        self.transmits.pop_front()
    }

    /// The next disk work to do.
    pub fn poll_disk(&mut self) -> Option<DiskOp> {
        self.disk.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<TorrentEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.peers
            .values()
            .filter_map(|p| p.session.poll_timeout())
            .chain(
                self.peers
                    .values()
                    .filter_map(|p| p.pex.as_ref().map(PexOutbox::next_due)),
            )
            .chain(self.choker.poll_timeout())
            .min()
    }

    // ----- internals -----

    /// Drain every session's transmits and events and the choker's decisions until nothing moves.
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
            while let Some((key, decision)) = self.choker.poll_decision() {
                progressed = true;
                if let Some(p) = self.peers.get_mut(&key) {
                    let _ = p.session.set_choking(now, decision == Decision::Choke);
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
            match t {
                Transmit::Bytes(b) => self.transmits.push_back((key, Transmit::Bytes(b))),
                t @ Transmit::Block { .. } => self.transmits.push_back((key, t)),
                Transmit::PieceHeader { header, req } => {
                    let Some(pos) = p.outgoing.iter().position(|(r, _, _)| *r == req) else {
                        continue;
                    };
                    let Some((_, data, framed)) = p.outgoing.remove(pos) else {
                        continue;
                    };
                    let bytes = if framed {
                        let mut m = data;
                        if let Some(h) = m.get_mut(..header.len()) {
                            h.copy_from_slice(&header);
                        }
                        m
                    } else {
                        let mut m = Vec::with_capacity(header.len().saturating_add(data.len()));
                        m.extend_from_slice(&header);
                        m.extend_from_slice(&data);
                        m
                    };
                    self.transmits
                        .push_back((key, Transmit::Block { req, message: bytes }));
                }
            }
        }
    }

    fn on_session_event(&mut self, now: Time, key: PeerKey, ev: SessionEvent) {
        match ev {
            SessionEvent::HandshakeDone { peer_id, reserved } => {
                self.on_handshake_done(now, key, peer_id, reserved)
            }
            SessionEvent::Port(port) => {
                let ip = self.peers.get(&key).and_then(|p| p.addr).map(PeerAddr::ip);
                if let (Some(ip), false, true) = (ip, self.is_private(), port != 0) {
                    self.events
                        .push_back(TorrentEvent::DhtNode(SocketAddr::new(ip, port)));
                }
            }
            SessionEvent::ExtendedHandshake(h) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.window.set_reqq(h.reqq.map(|r| r as usize));
                }
                self.on_extended_handshake(now, key);
            }
            SessionEvent::Extended { id, payload } => self.on_extension_message(now, key, id, &payload),
            SessionEvent::Bitfield(bf) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if !p.seed && self.picker.add_peer_bitfield(&bf).is_ok() {
                        p.counted = bf;
                    }
                }
                self.update_interest(now, key);
            }
            SessionEvent::HaveAll => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if !p.seed && p.counted.count() == 0 {
                        p.seed = true;
                        self.picker.add_seed();
                    }
                }
                self.update_interest(now, key);
            }
            SessionEvent::Have(i) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    if !p.seed && !p.counted.get(i) && p.counted.set(i, true).is_ok() {
                        let _ = self.picker.peer_has(i);
                    }
                }
                self.update_interest(now, key);
            }
            SessionEvent::Unchoked | SessionEvent::AllowedFast(_) => self.fill(now, key),
            SessionEvent::RequestsDropped(reqs) => {
                for r in reqs {
                    self.picker.on_request_failed(key, r);
                }
                self.fill_all(now);
            }
            SessionEvent::Interested => self.choker.set_interested(now, key, true),
            SessionEvent::NotInterested => self.choker.set_interested(now, key, false),
            SessionEvent::Request(req) => {
                if self.have.get(req.index) {
                    self.disk.push_back(DiskOp::Read { peer: key, req });
                } else if let Some(p) = self.peers.get_mut(&key) {
                    let _ = p.session.reject(now, req);
                }
            }
            SessionEvent::Block { req, data } | SessionEvent::LateBlock { req, data } => {
                self.on_block(now, key, req, data);
            }
            SessionEvent::Rejected(req) => {
                self.picker.on_request_failed(key, req);
                self.fill_all(now);
            }
            SessionEvent::RequestTimedOut(req) => {
                self.picker.on_request_failed(key, req);
                if let Some(p) = self.peers.get_mut(&key) {
                    p.window.on_timeout(now);
                }
                self.fill_all(now);
            }
            SessionEvent::Snubbed => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.window.on_snubbed(now);
                }
            }
            SessionEvent::Closed(reason) => {
                self.drain_transmits(key);
                self.remove_peer(key);
                self.events.push_back(TorrentEvent::PeerClosed { key, reason });
                self.fill_all(now);
            }
            SessionEvent::Choked
            | SessionEvent::HaveNone
            | SessionEvent::Cancel(_)
            | SessionEvent::Suggest(_)
            | SessionEvent::HashRequest(_)
            | SessionEvent::Hashes { .. }
            | SessionEvent::HashReject(_)
            | SessionEvent::Unsnubbed => {}
        }
    }

    fn on_handshake_done(&mut self, now: Time, key: PeerKey, peer_id: PeerId, reserved: Reserved) {
        if self.banned_ids.contains(&peer_id) {
            if let Some(p) = self.peers.get_mut(&key) {
                p.session.close();
            }
            return;
        }
        let dht_port = self.config.dht_port.filter(|_| !self.is_private());
        if let Some(p) = self.peers.get_mut(&key) {
            p.connected = true;
            // BEP 5: "Upon receiving a handshake indicating the remote peer supports the DHT, the local
            // peer SHOULD send a PORT message."
            if let Some(port) = dht_port.filter(|_| reserved.contains(Reserved::DHT)) {
                let _ = p.session.send_port(now, port);
            }
            // BEP 6: the pieces of the peer's canonical allowed-fast set that we have, so a new peer can
            // start before it is unchoked (an error just means no fast extension).
            if let Some(IpAddr::V4(ip)) = p.addr.map(PeerAddr::ip) {
                let n = self.sizes.num_pieces();
                for piece in allowed_fast_set(ip, &self.info_hash, n, self.config.allowed_fast) {
                    if self.have.get(piece) {
                        let _ = p.session.allow_fast(now, piece);
                    }
                }
            }
        }
        self.choker.peer_connected(now, key);
    }

    /// The peer's extended handshake (merged with earlier ones): start peer exchange with it if it speaks
    /// `ut_pex` and we may.
    fn on_extended_handshake(&mut self, now: Time, key: PeerKey) {
        let allowed = self.pex_allowed();
        let config = self.config.pex.clone();
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let speaks = p
            .session
            .peer_extensions()
            .and_then(|h| h.extension_id(wire::UT_PEX))
            .is_some();
        if allowed && speaks {
            if p.pex.is_none() {
                p.pex = Some(PexOutbox::new(&config, now));
            }
        } else {
            p.pex = None;
        }
    }

    /// A BEP 10 extension message with one of our ids.
    fn on_extension_message(&mut self, now: Time, key: PeerKey, id: u8, payload: &[u8]) {
        match id {
            OUR_UT_METADATA => self.serve_metadata(now, key, payload),
            OUR_UT_PEX if self.pex_allowed() => {
                let peers = self.pex_in.receive(&self.config.pex, now, key, payload);
                if !peers.is_empty() {
                    self.events.push_back(TorrentEvent::PexPeers(peers));
                }
            }
            _ => {}
        }
    }

    /// A `ut_metadata` message: a request is answered with the piece (`data`) or, past the end, over the
    /// peer's allowance or while much is queued for it, with a `reject`; other types are ignored.
    fn serve_metadata(&mut self, now: Time, key: PeerKey, payload: &[u8]) {
        let Ok(MetadataMessage::Request { piece }) = MetadataMessage::parse(payload) else {
            return;
        };
        let m = &self.config.metadata;
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let Some(their_id) = p
            .session
            .peer_extensions()
            .and_then(|h| h.extension_id(wire::UT_METADATA))
        else {
            return;
        };
        let pieces = self.info.as_ref().map_or(0, |i| {
            wire::metadata_piece_count(u32::try_from(i.len()).unwrap_or(u32::MAX))
        });
        let allowance = pieces
            .saturating_mul(m.serve_factor)
            .saturating_add(m.serve_factor);
        let data = if p.metadata_served < allowance && p.session.pending_transmit_bytes() < m.serve_max_queued
        {
            self.info
                .as_ref()
                .and_then(|info| crate::metadata::data_message(info, piece))
        } else {
            None
        };
        let reply = match data {
            Some(d) => {
                p.metadata_served = p.metadata_served.saturating_add(1);
                d
            }
            None => MetadataMessage::Reject { piece }.encode(),
        };
        let _ = p.session.send_extended(now, their_id, &reply);
    }

    /// Send the `ut_pex` messages that are due.
    fn send_pex(&mut self, now: Time) {
        if !self.pex_allowed() {
            return;
        }
        let due = self
            .peers
            .values()
            .any(|p| p.pex.as_ref().is_some_and(|o| o.next_due() <= now));
        if !due {
            return;
        }
        // Our connected peers, each at an address others can dial, with its flags.
        let current: BTreeMap<SocketAddr, (PeerKey, PexFlags)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.session.is_established() && !p.session.is_closed())
            .filter_map(|(k, p)| {
                let PeerAddr::Socket(addr) = p.addr? else {
                    return None;
                };
                let ext = p.session.peer_extensions();
                let outgoing = p.session.is_outgoing();
                let at = crate::pex::reachable_addr(addr, outgoing, ext)?;
                let seed = p.session.peer_pieces().is_full();
                Some((at, (*k, crate::pex::flags_of(seed, outgoing, ext))))
            })
            .collect();
        let config = self.config.pex.clone();
        for (key, p) in self.peers.iter_mut() {
            let Some(out) = p.pex.as_mut() else {
                continue;
            };
            if out.next_due() > now {
                continue;
            }
            let others: BTreeMap<SocketAddr, PexFlags> = current
                .iter()
                .filter(|(_, (k, _))| k != key)
                .map(|(a, (_, f))| (*a, *f))
                .collect();
            let Some(msg) = out.poll(&config, now, &others) else {
                continue;
            };
            let Some(id) = p
                .session
                .peer_extensions()
                .and_then(|h| h.extension_id(wire::UT_PEX))
            else {
                continue;
            };
            let _ = p.session.send_extended(now, id, &msg.encode());
        }
    }

    fn on_block(&mut self, now: Time, key: PeerKey, req: BlockRequest, data: Vec<u8>) {
        let len = u64::from(req.length);
        if let Some(p) = self.peers.get_mut(&key) {
            if let Some(latency) = p.session.take_min_latency() {
                p.window.on_rtt_sample(now, latency);
            }
            p.window.on_block(now, req.length);
        }
        self.choker.on_downloaded_from(now, key, len);
        let outcome = self.picker.on_block_received(key, req);
        for (other, r) in outcome.cancels {
            if let Some(p) = self.peers.get_mut(&other) {
                let _ = p.session.cancel(now, r);
            }
        }
        if outcome.status == BlockStatus::Accepted {
            let sender = Sender {
                key,
                id: self.peers.get(&key).and_then(|p| p.session.peer_id()),
            };
            self.senders.insert((req.index.0, req.begin), sender);
            self.stats.downloaded = self.stats.downloaded.saturating_add(len);
            self.disk.push_back(DiskOp::Write { req, data });
        }
        self.fill(now, key);
    }

    /// Re-decide whether we want anything from `key`, and tell the peer and the choker on a change.
    fn update_interest(&mut self, now: Time, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let want = self.picker.interested_in(p.session.peer_pieces());
        if !want && p.connected && p.session.peer_pieces().is_full() {
            // Neither side can want anything from the other (it has every piece, we want none of
            // them): the connection only takes a slot. Close it, as other clients do between seeds.
            p.session.close();
            return;
        }
        if want != p.session.am_interested() && p.session.set_interested(now, want).is_ok() {
            self.choker.set_we_are_interested(now, key, want);
        }
        if want {
            self.fill(now, key);
        }
    }

    /// Keep `key`'s request window full.
    fn fill(&mut self, now: Time, key: PeerKey) {
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        let s = &mut p.session;
        if !s.is_established() || s.is_closed() || !s.am_interested() {
            return;
        }
        if s.peer_choking() && s.allowed_fast_for_us().next().is_none() {
            return;
        }
        let in_flight = s.in_flight().count();
        let want = p
            .window
            .target(now)
            .min(s.max_requests())
            .saturating_sub(in_flight);
        if want == 0 {
            return;
        }
        let picks = self.picker.pick(key, s.peer_pieces(), want, now, &mut self.rng);
        let mut pad = Vec::new();
        for r in picks {
            if is_pad_block(&self.pad_ranges, &r) {
                pad.push(r);
            } else if s.request(now, r).is_err() {
                self.picker.on_request_failed(key, r);
            }
        }
        // A block that lies wholly on BEP 47 pad files is zeros by definition: never asked of a peer,
        // it counts as received at once (its zeros are never stored either).
        for r in pad {
            let outcome = self.picker.on_block_received(key, r);
            if outcome.status == BlockStatus::Accepted {
                self.disk.push_back(DiskOp::Write {
                    req: r,
                    data: vec![0u8; r.length as usize],
                });
            }
        }
    }

    fn fill_all(&mut self, now: Time) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill(now, key);
        }
    }

    /// Forget `key` everywhere: its requests go back to the picker, its pieces off the availability.
    fn remove_peer(&mut self, key: PeerKey) {
        let Some(p) = self.peers.remove(&key) else {
            return;
        };
        self.pex_in.peer_gone(key);
        self.picker.peer_gone(key);
        if p.seed {
            self.picker.remove_seed();
        } else {
            let _ = self.picker.remove_peer_bitfield(&p.counted);
        }
        if p.connected {
            self.choker.peer_disconnected(key);
        }
    }

    /// Close `key` for sending bad data and refuse its peer id (`id`) from now on.
    fn ban(&mut self, key: PeerKey, id: Option<PeerId>) {
        if let Some(id) = id {
            self.banned_ids.insert(id);
        }
        if let Some(p) = self.peers.get_mut(&key) {
            if p.session.peer_id() != id {
                return;
            }
            if !p.session.is_closed() {
                p.session.close();
                self.events.push_back(TorrentEvent::Banned { key });
            }
        }
    }
}

/// True if `req` lies wholly within the pad ranges of its piece.
fn is_pad_block(pad_ranges: &BTreeMap<u32, Vec<(u32, u32)>>, req: &BlockRequest) -> bool {
    let Some(ranges) = pad_ranges.get(&req.index.0) else {
        return false;
    };
    let (from, to) = (req.begin, req.begin.saturating_add(req.length));
    ranges.iter().any(|&(a, b)| a <= from && to <= b)
}
