//! The values a [`PeerSession`](super::PeerSession) is built from, and the ones it hands back: configuration,
//! what we are, piece sizes, events, transmit items, counters and errors.

use std::sync::Arc;
use std::time::Duration;

use metainfo::{Geometry, InfoHashV1, PieceIndex, Version};
use wire::{Bitfield, BlockRequest, ExtendedHandshake, HashRequest, Limits, PeerId, Reserved, WireError};

/// Tunables of one peer session. `Default` gives the values the module documentation explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Decoding limits: the largest message (id byte plus payload) accepted before its body is buffered,
    /// and the largest `request` length we serve.
    pub limits: Limits,
    /// Close if the peer's 68-byte handshake has not fully arrived this long after the session started.
    pub handshake_timeout: Duration,
    /// Send a keep-alive after this long without sending anything (BEP 3: "Keepalives are generally sent
    /// once every two minutes"; we send sooner so a peer with a two-minute timeout never sees a gap).
    pub keepalive_interval: Duration,
    /// Close if nothing at all (not even a keep-alive) arrived for this long.
    pub idle_timeout: Duration,
    /// A request of ours unanswered for this long is given up: [`SessionEvent::RequestTimedOut`], and a
    /// `cancel` is sent so the peer can drop it (a block arriving later is still accepted as late).
    pub request_timeout: Duration,
    /// The peer is snubbing us if no block data arrived for this long while requests were outstanding.
    pub snub_timeout: Duration,
    /// How many of the peer's requests we queue (the `reqq` we announce). More are rejected with the fast
    /// extension and dropped without it.
    pub max_incoming_requests: usize,
    /// Upper bound on our requests in flight, whatever the engine's window asks for. The bound used is the
    /// smaller of this and the peer's `reqq` ([`DEFAULT_PEER_REQQ`] if it announced none).
    pub max_outgoing_requests: usize,
    /// The longest block we request (16 KiB is what every client serves: BEP 3 "All current
    /// implementations use 2^14 (16 kiB), and close connections which request an amount greater than
    /// that").
    pub max_block_len: u32,
    /// How many `allowed fast` pieces from one peer we remember (BEP 6 suggests sets of 10).
    pub max_allowed_fast: usize,
    /// Skip the `have` for a piece the peer already has (BEP 3 announces to all peers; off by default).
    pub suppress_redundant_have: bool,
}

/// The `reqq` assumed for a peer that did not announce one: BEP 10 "The default in libtorrent is 250".
pub const DEFAULT_PEER_REQQ: usize = 250;

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            limits: Limits::default(),
            handshake_timeout: Duration::from_secs(20),
            keepalive_interval: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(240),
            request_timeout: Duration::from_secs(90),
            snub_timeout: Duration::from_secs(60),
            max_incoming_requests: 500,
            max_outgoing_requests: 500,
            max_block_len: wire::BLOCK_LEN,
            max_allowed_fast: 32,
            suppress_redundant_have: false,
        }
    }
}

/// The length of every piece of a torrent, to check requests and blocks against piece ends.
///
/// A v1 or hybrid torrent's pieces all have the same length but the last; a v2 torrent's files start on
/// piece boundaries, so the last piece of every file may be short. Build it once per torrent and share it
/// between sessions (it is held in an [`Arc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceSizes {
    piece_length: u32,
    num_pieces: u32,
    /// Pieces shorter than `piece_length`, by index (sorted, no duplicates).
    short: Vec<(u32, u32)>,
}

impl PieceSizes {
    /// Pieces of `piece_length` bytes covering `total_length` bytes, the last one possibly shorter (v1 and
    /// hybrid torrents). `None` for a zero piece length or more than `u32::MAX` pieces.
    pub fn uniform(piece_length: u32, total_length: u64) -> Option<PieceSizes> {
        if piece_length == 0 {
            return None;
        }
        let num_pieces = u32::try_from(total_length.div_ceil(u64::from(piece_length))).ok()?;
        let rem = total_length % u64::from(piece_length);
        let short = match (num_pieces.checked_sub(1), u32::try_from(rem)) {
            (Some(last), Ok(rem)) if rem != 0 => vec![(last, rem)],
            _ => Vec::new(),
        };
        Some(PieceSizes {
            piece_length,
            num_pieces,
            short,
        })
    }

    /// No pieces at all (the placeholder of a session waiting for a magnet's metadata).
    pub fn empty() -> PieceSizes {
        PieceSizes {
            piece_length: 0,
            num_pieces: 0,
            short: Vec::new(),
        }
    }

    /// The piece sizes of a torrent's geometry (every file's short last piece, for v2).
    pub fn from_geometry(g: &Geometry) -> PieceSizes {
        // Geometry caps piece lengths at 256 MiB, so this never saturates.
        let piece_length = u32::try_from(g.piece_length()).unwrap_or(u32::MAX);
        let pl = g.piece_length().max(1);
        let mut short = Vec::new();
        let mut note = |end: u64| {
            if !end.is_multiple_of(pl) {
                let index = (end - 1) / pl;
                if let (Ok(index), Ok(len)) = (u32::try_from(index), u32::try_from(end % pl)) {
                    if short.last().is_none_or(|&(i, _)| i < index) {
                        short.push((index, len));
                    }
                }
            }
        };
        if g.version() == Version::V2 {
            for s in g.spans().iter().filter(|s| s.length > 0) {
                note(s.offset.saturating_add(s.length));
            }
        } else {
            note(g.end());
        }
        PieceSizes {
            piece_length,
            num_pieces: g.piece_count(),
            short,
        }
    }

    /// Pieces in the torrent.
    pub fn num_pieces(&self) -> u32 {
        self.num_pieces
    }

    /// The nominal piece length.
    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    /// Bytes in piece `index`, or `None` past the end.
    pub fn len(&self, index: PieceIndex) -> Option<u32> {
        if index.0 >= self.num_pieces {
            return None;
        }
        match self.short.binary_search_by_key(&index.0, |&(i, _)| i) {
            Ok(at) => self.short.get(at).map(|&(_, len)| len),
            Err(_) => Some(self.piece_length),
        }
    }

    /// True if the torrent has no pieces.
    pub fn is_empty(&self) -> bool {
        self.num_pieces == 0
    }

    /// True if `req` lies inside its piece (and is not empty).
    pub fn contains(&self, req: &BlockRequest) -> bool {
        self.len(req.index).is_some_and(|len| {
            req.length > 0 && u64::from(req.begin) + u64::from(req.length) <= u64::from(len)
        })
    }
}

/// Which pieces we have when the session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OurPieces {
    /// Every piece (a seed): sent as `have all` with the fast extension, a full bitfield without.
    All,
    /// These pieces (an empty set is sent as `have none` with the fast extension, and not at all without:
    /// BEP 3 "Downloaders which don't have anything yet may skip the 'bitfield' message").
    Some(Bitfield),
}

/// Who we are on this connection and what we have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalInfo {
    /// The torrent (its v1 info-hash, or a v2 info-hash truncated to 20 bytes).
    pub info_hash: InfoHashV1,
    /// Our peer id.
    pub peer_id: PeerId,
    /// The reserved bits we send: the extensions we speak ([`Reserved::FAST`], [`Reserved::EXTENDED`],
    /// [`Reserved::DHT`], ...). An extension is used only if the peer sets its bit too.
    pub reserved: Reserved,
    /// The torrent's piece count and lengths.
    pub pieces: Arc<PieceSizes>,
    /// What we have now; [`PeerSession::have`](super::PeerSession::have) adds to it later.
    pub have: OurPieces,
    /// Our BEP 10 extended handshake (`m` ids, `v`, `p`, `metadata_size`, ...), sent when both sides set
    /// the extension bit. A `reqq` of `None` is filled in with [`SessionConfig::max_incoming_requests`].
    pub extended: ExtendedHandshake,
}

/// Something to write to the peer, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// These bytes.
    Bytes(Vec<u8>),
    /// A `piece` message: write `header`, then the `req.length` bytes of piece `req.index` starting at
    /// `req.begin`, straight from the disk buffer (the block is never copied into a message buffer).
    PieceHeader {
        /// The 13-byte header (length prefix, id, index, begin).
        header: [u8; wire::PIECE_HEADER_LEN],
        /// The block to write after it.
        req: BlockRequest,
    },
    /// A whole `piece` message (header and block), as [`TorrentState`](crate::torrent::TorrentState)
    /// hands it out once the block has been read from disk (a session itself never produces this).
    Block {
        /// The block.
        req: BlockRequest,
        /// The message: header then data.
        message: Vec<u8>,
    },
}

impl Transmit {
    /// Bytes this item puts on the wire (for a piece: header plus block).
    pub fn wire_len(&self) -> usize {
        match self {
            Transmit::Bytes(b) => b.len(),
            Transmit::PieceHeader { req, .. } => wire::PIECE_HEADER_LEN.saturating_add(req.length as usize),
            Transmit::Block { message, .. } => message.len(),
        }
    }
}

/// Byte counters for the choker and rate displays. Payload is block data; protocol is everything else
/// (handshake, message headers, bitfields, extension messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Block bytes received (counted as they arrive, so rates move smoothly during a block).
    pub payload_received: u64,
    /// Block bytes handed to the driver to send.
    pub payload_sent: u64,
    /// Other bytes received.
    pub protocol_received: u64,
    /// Other bytes queued to send.
    pub protocol_sent: u64,
}

/// What the peer said or did, and what the engine must know about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The peer's handshake arrived and matches: its peer id and reserved bits.
    HandshakeDone {
        /// The peer's id.
        peer_id: PeerId,
        /// The peer's reserved bits (the extensions used are those both sides set).
        reserved: Reserved,
    },
    /// The peer's BEP 10 extended handshake (the first, or a later update: `m` is additive).
    ExtendedHandshake(Box<ExtendedHandshake>),
    /// The peer's pieces, from its `bitfield`.
    Bitfield(Bitfield),
    /// The peer has every piece (BEP 6).
    HaveAll,
    /// The peer has no piece (BEP 6).
    HaveNone,
    /// The peer has a piece it did not have before (repeated `have`s are not reported again).
    Have(PieceIndex),
    /// The peer choked us.
    Choked,
    /// The peer unchoked us.
    Unchoked,
    /// Our requests that will not be answered: the peer choked us without the fast extension (BEP 3
    /// semantics: a choke discards pending requests), or the session closed. Re-request them elsewhere.
    RequestsDropped(Vec<BlockRequest>),
    /// The peer is interested in our pieces.
    Interested,
    /// The peer is no longer interested.
    NotInterested,
    /// The peer asks for a block we may serve: answer with
    /// [`send_block`](super::PeerSession::send_block) or [`reject`](super::PeerSession::reject).
    Request(BlockRequest),
    /// The peer withdrew a queued request (with the fast extension a `reject` was sent for it).
    Cancel(BlockRequest),
    /// A block we requested.
    Block {
        /// Which block.
        req: BlockRequest,
        /// Its bytes (`req.length` of them).
        data: Vec<u8>,
    },
    /// A block we had cancelled (or given up on after a timeout or choke) arrived anyway: tolerated,
    /// valid data the engine may still use.
    LateBlock {
        /// Which block.
        req: BlockRequest,
        /// Its bytes.
        data: Vec<u8>,
    },
    /// The peer will not serve this request of ours (BEP 6).
    Rejected(BlockRequest),
    /// We may request this piece even while choked (BEP 6); it does not mean the peer has it.
    AllowedFast(PieceIndex),
    /// The peer suggests this piece (BEP 6).
    Suggest(PieceIndex),
    /// A BEP 10 extension message other than the handshake, with the id we assigned to it in our `m`.
    Extended {
        /// Our extension message id.
        id: u8,
        /// The rest of the message.
        payload: Vec<u8>,
    },
    /// The peer's DHT node listens on this UDP port (BEP 5).
    Port(u16),
    /// The peer asks for merkle hashes (BEP 52).
    HashRequest(HashRequest),
    /// Merkle hashes from the peer (BEP 52).
    Hashes {
        /// The request answered.
        request: HashRequest,
        /// The hashes, 32 bytes each.
        hashes: Vec<u8>,
    },
    /// The peer will not serve a hash request (BEP 52).
    HashReject(HashRequest),
    /// A request of ours went unanswered for [`SessionConfig::request_timeout`]; it is no longer in flight
    /// (a `cancel` was sent) and may be requested elsewhere.
    RequestTimedOut(BlockRequest),
    /// No block data for [`SessionConfig::snub_timeout`] while requests were outstanding.
    Snubbed,
    /// Block data arrived again after [`SessionEvent::Snubbed`].
    Unsnubbed,
    /// The session is over (always the last event): the connection should be closed.
    Closed(SessionError),
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Bytes that are not peer-wire protocol: a bad handshake, an oversized or malformed message, a
    /// bitfield of the wrong size or with spare bits set.
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    /// BEP 3: "If both sides don't send the same value, they sever the connection."
    #[error("info-hash mismatch: we want {ours:?}, the peer sent {theirs:?}")]
    InfoHashMismatch {
        /// Ours.
        ours: InfoHashV1,
        /// The peer's.
        theirs: InfoHashV1,
    },
    /// The peer's id is our own: we connected to ourselves.
    #[error("connected to ourselves (the peer's id is ours)")]
    ConnectedToSelf,
    /// A `bitfield`, `have all` or `have none` after other messages, or a second one (BEP 3: "'bitfield'
    /// is only ever sent as the first message").
    #[error("{message} received after other messages: it may only be the first message")]
    LatePieceSet {
        /// Which message.
        message: &'static str,
    },
    /// A BEP 6 message though the fast extension is not enabled on both sides (BEP 6: "the peer MUST
    /// close the connection").
    #[error("{message} received but the fast extension is not enabled")]
    FastNotEnabled {
        /// Which message.
        message: &'static str,
    },
    /// A BEP 10 message though the extension protocol is not enabled on both sides.
    #[error("extended message received but the extension protocol is not enabled")]
    ExtendedNotEnabled,
    /// An extended handshake that is not a bencoded dictionary.
    #[error("bad extended handshake: {0}")]
    BadExtendedHandshake(WireError),
    /// A message naming a piece past the end of the torrent.
    #[error("{message} for piece {index}: the torrent has {num_pieces} pieces")]
    PieceOutOfRange {
        /// Which message.
        message: &'static str,
        /// The index.
        index: u32,
        /// Pieces in the torrent.
        num_pieces: u32,
    },
    /// A `request` or `cancel` for bytes past the end of the piece.
    #[error("{message} for {length} bytes at offset {begin} of piece {index}, which has {piece_len} bytes")]
    BeyondPieceEnd {
        /// Which message.
        message: &'static str,
        /// Piece index.
        index: u32,
        /// Offset.
        begin: u32,
        /// Length.
        length: u32,
        /// Bytes in the piece.
        piece_len: u32,
    },
    /// BEP 3: "If an unsolicited piece is received a peer MUST close the connection."
    #[error("unrequested block: piece {index} offset {begin}, {length} bytes")]
    UnrequestedBlock {
        /// Piece index.
        index: u32,
        /// Offset.
        begin: u32,
        /// Length.
        length: u32,
    },
    /// BEP 6: "If a peer receives a reject for a request that was never sent then the peer SHOULD close
    /// the connection."
    #[error("reject for a request never sent: piece {index} offset {begin}, {length} bytes")]
    UnrequestedReject {
        /// Piece index.
        index: u32,
        /// Offset.
        begin: u32,
        /// Length.
        length: u32,
    },
    /// The peer's handshake did not arrive in time.
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(Duration),
    /// Nothing arrived for too long.
    #[error("nothing received for {0:?}")]
    IdleTimeout(Duration),
    /// The engine closed the session.
    #[error("closed by us")]
    ClosedLocally,
    /// Bytes were fed to a session that had already closed.
    #[error("the session is closed")]
    AlreadyClosed,
}

/// Why a command from the engine was refused (the session is unchanged and stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The session has closed.
    #[error("the session is closed")]
    Closed,
    /// The peer's handshake has not arrived yet.
    #[error("the handshake is not complete")]
    NotReady,
    /// The bitfield given at the start has the wrong number of pieces.
    #[error("our bitfield has {got} pieces, the torrent {expected}")]
    BitfieldSize {
        /// Pieces in the bitfield.
        got: u32,
        /// Pieces in the torrent.
        expected: u32,
    },
    /// A piece index past the end, or a block outside its piece, empty or longer than
    /// [`SessionConfig::max_block_len`].
    #[error("invalid block or piece: {0:?}")]
    Invalid(BlockRequest),
    /// The peer is choking us and the piece is not in its allowed-fast set.
    #[error("the peer is choking us and piece {} is not allowed fast", .0.index.0)]
    Choked(BlockRequest),
    /// The peer has not announced the piece.
    #[error("the peer does not have piece {}", .0.index.0)]
    PeerLacksPiece(BlockRequest),
    /// The block is already requested.
    #[error("already requested: {0:?}")]
    AlreadyRequested(BlockRequest),
    /// As many requests as allowed are in flight.
    #[error("{0} requests in flight, the most allowed")]
    TooManyRequests(usize),
    /// The peer has no such pending request (it was cancelled, or dropped when we choked).
    #[error("no such pending request from the peer: {0:?}")]
    NotRequested(BlockRequest),
    /// The fast extension is not enabled on both sides.
    #[error("the fast extension is not enabled")]
    NoFastExtension,
    /// The extension protocol is not enabled on both sides.
    #[error("the extension protocol is not enabled")]
    NoExtensionProtocol,
    /// The message could not be encoded.
    #[error("cannot encode: {0}")]
    Wire(#[from] WireError),
}
