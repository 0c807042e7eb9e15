//! The piece picker: which blocks to ask each peer for.
//!
//! One [`PiecePicker`] per torrent. The session tells it what peers have (bitfields, `have`, `have all`),
//! asks it for blocks to request from one peer ([`PiecePicker::pick`], as many as that peer's request
//! window allows, see [`crate::window`]), and reports what happened to each request: the block arrived
//! ([`PiecePicker::on_block_received`]), was rejected, timed out or was dropped by a choke
//! ([`PiecePicker::on_request_failed`], [`PiecePicker::release_peer`]), or the peer left
//! ([`PiecePicker::peer_gone`]). When every block of a piece has arrived the session verifies it and says
//! so ([`PiecePicker::on_piece_verified`]).
//!
//! # Order of picking
//!
//! Pieces are picked by priority first (0 = skip, 1 to 7, default 4, as in libtorrent; see
//! [`PiecePicker::set_file_priorities`]). Within one priority:
//!
//! 1. **Partial pieces first**: pieces already started that still have blocks nobody was asked for, those
//!    this peer already works on before the others, then the closest to complete. Finishing what is
//!    started keeps the number of half-done pieces (which we cannot share yet) small.
//! 2. **Random first pieces**: until [`PickerConfig::random_first_pieces`] pieces are verified, new pieces
//!    are drawn at random. BEP 3: "Downloaders generally download pieces in random order, which does a
//!    reasonably good job of keeping them from having a strict subset or superset of the pieces of any of
//!    their peers." A new peer needs whole pieces quickly to have something to trade, and the rarest pieces
//!    are, by definition, the ones few peers can send.
//! 3. **Rarest first**: then the pieces the fewest peers have, ties broken at random, so that rare pieces
//!    spread before their holders leave and peers do not all chase the same piece.
//!
//! In **sequential** mode (for streaming) the lowest index of a priority comes first, partial or not.
//!
//! **Endgame.** BEP 3: "once requests for all pieces a given downloader doesn't have yet are currently
//! pending, it sends requests for everything to everyone it's downloading from. To keep this from becoming
//! horribly inefficient, it sends cancels to everyone else every time a piece arrives." Here, once every
//! wanted block we lack is requested or received, a block already requested may be requested from other
//! peers too, at most [`PickerConfig::endgame_max_requests`] peers per block (the least-requested and
//! oldest requests first), and [`BlockOutcome::cancels`] names the other peers to send a `cancel` to when
//! one copy arrives.
//!
//! # Cost
//!
//! Free pieces sit in buckets by priority and availability (`free.rs`): a peer joining or a `have` moves
//! a piece between buckets in O(1), and a pick looks at the started pieces that still have missing blocks
//! plus, from the rarest bucket up, only as many free pieces as it takes to fill the request (and those
//! the peer lacks on the way: a peer holding few pieces, all common, costs more, as in any rarest-first
//! picker). It never sorts or scans all pieces; [`PiecePicker::last_pick_examined`] says how many pieces
//! the last pick looked at. Peers that sent `have all` are counted apart from the buckets
//! ([`PiecePicker::add_seed`]): they raise every piece by one, which changes no order. While any is
//! connected, a pick counts the bits of the peer's bitfield once (pieces / 8 bytes) to know whether
//! it may look at pieces only such peers have. Endgame looks at every started piece, which by then are
//! all that is left.
//!
//! # Invariants
//!
//! [`PiecePicker::check_invariants`] checks all of these (the tests call it after every step):
//!
//! 1. A piece is in exactly one of: **have** (verified), **partial** (has block states), **idle** (no
//!    block state, not verified). A piece is in `have` only after [`PiecePicker::on_piece_verified`] with
//!    `ok` (or [`PiecePicker::mark_have`] for data found on disk), and nothing of a `have` piece is ever
//!    requested again.
//! 2. The free index holds exactly the idle pieces with priority above zero, each once, under its current
//!    priority and availability.
//! 3. A block of a partial piece is in exactly one of: missing, requested (by 1 to
//!    `max(1, endgame_max_requests)` distinct peers), received, written; the piece's counts match its
//!    blocks, and at least one block is not missing (a piece whose blocks all fall back to missing becomes
//!    idle again).
//! 4. A peer's in-flight set holds block `b` of piece `i` exactly when that block is requested with the
//!    peer among its requesters.
//! 5. The open set holds exactly the partial pieces with a missing block.
//! 6. `have_count` and `wanted_left` (wanted pieces not yet had) match the pieces.
//!
//! ```
//! use engine::picker::{PiecePicker, PickerConfig};
//! use engine::{PeerKey, Time};
//! use rand::SeedableRng;
//! use wire::Bitfield;
//!
//! // 3 pieces of 32 KiB: 2 blocks each.
//! let mut picker = PiecePicker::uniform(32 * 1024, 3 * 32 * 1024, PickerConfig::default()).unwrap();
//! let seed = Bitfield::full(3);
//! picker.add_peer_bitfield(&seed).unwrap();
//! let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
//! let asks = picker.pick(PeerKey(1), &seed, 2, Time::default(), &mut rng);
//! assert_eq!(asks.len(), 2);
//! assert_eq!(asks[0].index, asks[1].index); // a whole piece rather than two halves
//! assert!(picker.check_invariants().is_ok());
//! for b in &asks {
//!     picker.on_block_received(PeerKey(1), *b);
//! }
//! picker.on_piece_verified(asks[0].index, true).unwrap();
//! assert_eq!(picker.have_count(), 1);
//! ```

mod free;
mod partial;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use metainfo::{Geometry, PieceIndex, Version};
use rand::Rng;
use wire::{Bitfield, BlockRequest};

use crate::{PeerKey, Time};
use free::FreeSet;
use partial::{Block, Partial};

/// Bytes in a block: what one `request` asks for (the last block of a piece may be shorter).
pub const BLOCK_SIZE: u32 = wire::BLOCK_LEN;
/// Highest piece or file priority; larger values are taken as this.
pub const MAX_PRIORITY: u8 = 7;
/// The priority every piece and file starts with.
pub const DEFAULT_PRIORITY: u8 = 4;
/// Random draws per pick while picking random first pieces, before falling back to rarest first.
const RANDOM_TRIES: usize = 32;

/// How new pieces are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PickMode {
    /// Random first pieces, then rarest first with random tie-breaks.
    #[default]
    RarestFirst,
    /// Lowest index first (for streaming).
    Sequential,
}

/// Settings of a [`PiecePicker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickerConfig {
    /// Pieces picked at random until this many are verified (libtorrent's `initial_picker_threshold`).
    pub random_first_pieces: u32,
    /// In endgame, the most peers one block is requested from at once (1 turns endgame off).
    pub endgame_max_requests: usize,
    /// In endgame, a block is requested again from another peer only once its first request is this old,
    /// so blocks about to arrive are not fetched twice (with request windows sized to a second of data,
    /// "everything is requested" is true long before the last blocks are late). Default 1 s.
    pub endgame_min_age: std::time::Duration,
    /// Rarest first or sequential.
    pub mode: PickMode,
}

impl Default for PickerConfig {
    fn default() -> Self {
        PickerConfig {
            random_first_pieces: 4,
            endgame_max_requests: 2,
            endgame_min_age: std::time::Duration::from_secs(1),
            mode: PickMode::RarestFirst,
        }
    }
}

/// Why the picker refused an input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickerError {
    /// A piece length of zero (from the caller's length function, or a zero piece length).
    #[error("piece {index} would have no bytes")]
    EmptyPiece {
        /// The piece.
        index: u32,
    },
    /// More pieces than a `u32` counts, or a piece longer than a `u32`.
    #[error("the torrent does not fit the picker ({0})")]
    TooLarge(String),
    /// A piece index past the end.
    #[error("piece {index} is out of range (the torrent has {count} pieces)")]
    PieceOutOfRange {
        /// The index given.
        index: u32,
        /// Pieces in the torrent.
        count: u32,
    },
    /// A bitfield of another torrent's size.
    #[error("a bitfield of {got} pieces for a torrent of {count}")]
    BitfieldLength {
        /// Pieces in the bitfield.
        got: u32,
        /// Pieces in the torrent.
        count: u32,
    },
    /// A priority list of the wrong length.
    #[error("{got} {what} priorities for {expected} {what}s")]
    PriorityCount {
        /// "file" or "piece".
        what: &'static str,
        /// Priorities given.
        got: usize,
        /// Files or pieces in the torrent.
        expected: usize,
    },
    /// File priorities on a picker built without the torrent's geometry.
    #[error("file priorities need the torrent's file layout (build the picker with from_geometry)")]
    NoFiles,
    /// Verification reported for a piece whose blocks have not all arrived.
    #[error("piece {index} is not complete: blocks are missing or in flight")]
    NotComplete {
        /// The piece.
        index: u32,
    },
    /// [`PiecePicker::mark_have`] for a piece with requests in flight.
    #[error("piece {index} has requests in flight")]
    InFlight {
        /// The piece.
        index: u32,
    },
}

/// What happened to a block that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockStatus {
    /// New data: store it. (Also for a block nobody asked for, or no longer asked for, if we lack it:
    /// after a choke, blocks already on the wire still arrive.)
    Accepted,
    /// We already have this block (another peer's copy came first, or the piece is verified): drop it.
    Duplicate,
    /// Not a block of this torrent (index, offset or length wrong).
    Invalid,
}

/// The result of [`PiecePicker::on_block_received`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// Whether to keep the data.
    pub status: BlockStatus,
    /// Every block of this piece has now arrived: verify it, then call [`PiecePicker::on_piece_verified`].
    pub piece_complete: Option<PieceIndex>,
    /// Other peers this block was also requested from (endgame): send each a `cancel`. Their requests
    /// are already forgotten by the picker.
    pub cancels: Vec<(PeerKey, BlockRequest)>,
}

/// Who sent the blocks of a verified piece, from [`PiecePicker::on_piece_verified`]: on a failed piece,
/// the suspects (for smart-ban: remember each peer's block, and when the piece later passes, ban the
/// peers whose blocks differed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Contributors {
    /// Each block with the peer whose copy was used, in block order.
    pub blocks: Vec<(BlockRequest, PeerKey)>,
}

impl Contributors {
    /// The distinct peers, in ascending order.
    pub fn peers(&self) -> Vec<PeerKey> {
        let set: BTreeSet<PeerKey> = self.blocks.iter().map(|&(_, p)| p).collect();
        set.into_iter().collect()
    }
}

/// Where a piece is (invariant 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Partial,
    Have,
}

/// Per-piece facts, 16 bytes.
#[derive(Debug, Clone, Copy)]
struct Piece {
    /// Bytes in the piece.
    len: u32,
    /// Peers registered by bitfield or `have` that have it (seeds counted apart).
    avail: u32,
    /// Position in its free bucket (rarest-first mode, while free).
    pos: u32,
    /// Priority, 0 to [`MAX_PRIORITY`].
    level: u8,
    state: State,
}

impl Piece {
    fn blocks(&self) -> u32 {
        self.len.div_ceil(BLOCK_SIZE)
    }
    fn is_free(&self) -> bool {
        self.state == State::Idle && self.level > 0
    }
}

/// The pieces a file touches (for file priorities).
#[derive(Debug, Clone, Copy)]
struct FileRange {
    first: u32,
    count: u32,
    pad: bool,
}

/// The piece picker of one torrent. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct PiecePicker {
    config: PickerConfig,
    pieces: Vec<Piece>,
    files: Option<Vec<FileRange>>,
    free: FreeSet,
    partials: BTreeMap<u32, Partial>,
    /// Partial pieces with at least one missing block.
    open: BTreeSet<u32>,
    /// Each peer's requested blocks, as (piece, block number).
    peers: BTreeMap<PeerKey, BTreeSet<(u32, u32)>>,
    seeds: u32,
    have_count: u32,
    wanted_left: u32,
    last_examined: usize,
}

/// The request for block `block` of a piece of `len` bytes.
fn block_request(index: u32, len: u32, block: u32) -> BlockRequest {
    let begin = block.saturating_mul(BLOCK_SIZE);
    BlockRequest {
        index: PieceIndex(index),
        begin,
        length: len.saturating_sub(begin).min(BLOCK_SIZE),
    }
}

impl PiecePicker {
    /// A picker for `piece_count` pieces whose lengths `piece_len` gives (all but the last are usually
    /// the piece length; in a v2 torrent each file's last piece may be shorter). Every piece starts
    /// wanted at [`DEFAULT_PRIORITY`].
    pub fn new(
        piece_count: u32,
        piece_len: impl Fn(u32) -> u32,
        config: PickerConfig,
    ) -> Result<Self, PickerError> {
        let mut pieces = Vec::with_capacity(piece_count as usize);
        for index in 0..piece_count {
            let len = piece_len(index);
            if len == 0 {
                return Err(PickerError::EmptyPiece { index });
            }
            pieces.push(Piece {
                len,
                avail: 0,
                pos: 0,
                level: DEFAULT_PRIORITY,
                state: State::Idle,
            });
        }
        let mut picker = PiecePicker {
            free: FreeSet::new(config.mode),
            config,
            pieces,
            files: None,
            partials: BTreeMap::new(),
            open: BTreeSet::new(),
            peers: BTreeMap::new(),
            seeds: 0,
            have_count: 0,
            wanted_left: piece_count,
            last_examined: 0,
        };
        for index in 0..piece_count {
            picker.free.insert(&mut picker.pieces, index);
        }
        Ok(picker)
    }

    /// A picker for `total` bytes cut into pieces of `piece_length` (the last one shorter): the v1 layout.
    pub fn uniform(piece_length: u32, total: u64, config: PickerConfig) -> Result<Self, PickerError> {
        if piece_length == 0 {
            return Err(PickerError::EmptyPiece { index: 0 });
        }
        let pl = u64::from(piece_length);
        let count = u32::try_from(total.div_ceil(pl))
            .map_err(|_| PickerError::TooLarge(format!("{} pieces", total.div_ceil(pl))))?;
        Self::new(
            count,
            |i| {
                let start = u64::from(i) * pl;
                // At most `piece_length`, so it fits.
                total.saturating_sub(start).min(pl) as u32
            },
            config,
        )
    }

    /// A picker for a torrent's layout: piece lengths (v1 and hybrid: the last piece shorter; v2: each
    /// file's last piece shorter) and the pieces each file touches, for
    /// [`set_file_priorities`](Self::set_file_priorities). Pieces that hold only pad files are not wanted.
    pub fn from_geometry(geometry: &Geometry, config: PickerConfig) -> Result<Self, PickerError> {
        let pl = geometry.piece_length();
        u32::try_from(pl).map_err(|_| PickerError::TooLarge(format!("piece length {pl}")))?;
        let count = geometry.piece_count();
        let lens: Vec<u32> = if geometry.version() == Version::V2 {
            // BEP 52: every file starts on a piece boundary; a piece never extends past its file.
            let mut lens = vec![0u32; count as usize];
            for span in geometry.spans().iter().filter(|s| s.length > 0) {
                let first = span.offset / pl;
                let mut left = span.length;
                let mut at = first;
                while left > 0 {
                    let len = left.min(pl);
                    if let Some(slot) = usize::try_from(at).ok().and_then(|a| lens.get_mut(a)) {
                        *slot = len as u32;
                    }
                    left -= len;
                    at += 1;
                }
            }
            lens
        } else {
            (0..count)
                .map(|i| geometry.end().saturating_sub(u64::from(i) * pl).min(pl) as u32)
                .collect()
        };
        let mut picker = Self::new(count, |i| lens.get(i as usize).copied().unwrap_or(0), config)?;
        let files: Vec<FileRange> = (0..geometry.spans().len())
            .map(|f| {
                let (first, count) = geometry.file_pieces(f).unwrap_or((0, 0));
                let pad = geometry.spans().get(f).is_some_and(|s| s.pad);
                FileRange { first, count, pad }
            })
            .collect();
        let n = files.len();
        picker.files = Some(files);
        picker.set_file_priorities(&vec![DEFAULT_PRIORITY; n])?;
        Ok(picker)
    }

    // ----- queries -----

    /// Pieces in the torrent.
    pub fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// Bytes in piece `index`.
    pub fn piece_len(&self, index: PieceIndex) -> Option<u32> {
        self.pieces.get(index.0 as usize).map(|p| p.len)
    }

    /// True if piece `index` is verified.
    pub fn has(&self, index: PieceIndex) -> bool {
        self.pieces
            .get(index.0 as usize)
            .is_some_and(|p| p.state == State::Have)
    }

    /// Verified pieces.
    pub fn have_count(&self) -> u32 {
        self.have_count
    }

    /// The verified pieces, as a bitfield to send (O(pieces)).
    pub fn have_bitfield(&self) -> Bitfield {
        let mut b = Bitfield::new(self.piece_count());
        for (i, p) in self.pieces.iter().enumerate() {
            if p.state == State::Have {
                // In range by construction.
                let _ = b.set(PieceIndex(i as u32), true);
            }
        }
        b
    }

    /// Wanted pieces (priority above zero) not verified yet.
    pub fn wanted_left(&self) -> u32 {
        self.wanted_left
    }

    /// True when every wanted piece is verified (skipped files may still be missing).
    pub fn is_complete(&self) -> bool {
        self.wanted_left == 0
    }

    /// True if we want piece `index` and lack it: a `have` for it makes its sender interesting.
    pub fn wants(&self, index: PieceIndex) -> bool {
        self.pieces
            .get(index.0 as usize)
            .is_some_and(|p| p.level > 0 && p.state != State::Have)
    }

    /// True if the peer has a piece we want and lack (whether to be `interested`). O(pieces).
    pub fn interested_in(&self, peer_has: &Bitfield) -> bool {
        peer_has.iter_set().any(|i| self.wants(i))
    }

    /// Peers that have piece `index` (those counted by bitfield and `have`, plus `have all` peers).
    pub fn availability(&self, index: PieceIndex) -> Option<u32> {
        self.pieces
            .get(index.0 as usize)
            .map(|p| p.avail.saturating_add(self.seeds))
    }

    /// The priority of piece `index` (0 = not wanted).
    pub fn piece_priority(&self, index: PieceIndex) -> Option<u8> {
        self.pieces.get(index.0 as usize).map(|p| p.level)
    }

    /// Requests in flight to `peer` (what its request window counts).
    pub fn in_flight(&self, peer: PeerKey) -> usize {
        self.peers.get(&peer).map_or(0, BTreeSet::len)
    }

    /// The requests in flight to `peer`, by piece and offset.
    pub fn requests_of(&self, peer: PeerKey) -> Vec<BlockRequest> {
        self.peers.get(&peer).map_or_else(Vec::new, |set| {
            set.iter()
                .map(|&(i, b)| block_request(i, self.pieces.get(i as usize).map_or(0, |p| p.len), b))
                .collect()
        })
    }

    /// True once every wanted block we lack is requested or received (BEP 3's endgame), while some
    /// wanted piece is still missing.
    pub fn is_endgame(&self) -> bool {
        self.wanted_left > 0
            && self.free.len() == 0
            && !self
                .open
                .iter()
                .any(|&i| self.pieces.get(i as usize).is_some_and(|p| p.level > 0))
    }

    /// The current mode.
    pub fn mode(&self) -> PickMode {
        self.config.mode
    }

    /// How many pieces the last [`pick`](Self::pick) looked at: partial pieces with missing blocks, plus
    /// free pieces drawn or walked. For tests and diagnostics; it does not grow with the torrent's size.
    pub fn last_pick_examined(&self) -> usize {
        self.last_examined
    }

    // ----- what peers have -----

    fn check_bitfield(&self, bitfield: &Bitfield) -> Result<(), PickerError> {
        if bitfield.len() == self.piece_count() {
            Ok(())
        } else {
            Err(PickerError::BitfieldLength {
                got: bitfield.len(),
                count: self.piece_count(),
            })
        }
    }

    fn check_index(&self, index: PieceIndex) -> Result<u32, PickerError> {
        if index.0 < self.piece_count() {
            Ok(index.0)
        } else {
            Err(PickerError::PieceOutOfRange {
                index: index.0,
                count: self.piece_count(),
            })
        }
    }

    /// Change one piece's availability, moving it between free buckets if it is free.
    fn change_avail(&mut self, i: u32, up: bool) {
        let Some(free) = self.pieces.get(i as usize).map(Piece::is_free) else {
            return;
        };
        if free {
            self.free.remove(&mut self.pieces, i);
        }
        if let Some(p) = self.pieces.get_mut(i as usize) {
            p.avail = if up {
                p.avail.saturating_add(1)
            } else {
                p.avail.saturating_sub(1)
            };
        }
        if free {
            self.free.insert(&mut self.pieces, i);
        }
    }

    /// A peer's `bitfield` (on connect): each piece it has becomes one more available.
    pub fn add_peer_bitfield(&mut self, bitfield: &Bitfield) -> Result<(), PickerError> {
        self.check_bitfield(bitfield)?;
        for i in bitfield.iter_set() {
            self.change_avail(i.0, true);
        }
        Ok(())
    }

    /// A peer leaves: give everything added for it (its bitfield with the `have`s since) back.
    pub fn remove_peer_bitfield(&mut self, bitfield: &Bitfield) -> Result<(), PickerError> {
        self.check_bitfield(bitfield)?;
        for i in bitfield.iter_set() {
            self.change_avail(i.0, false);
        }
        Ok(())
    }

    /// A peer's `have` message.
    pub fn peer_has(&mut self, index: PieceIndex) -> Result<(), PickerError> {
        let i = self.check_index(index)?;
        self.change_avail(i, true);
        Ok(())
    }

    /// A peer that sent `have all` (BEP 6) joins: every piece one more available, in O(1). Such a peer
    /// passes a full bitfield to [`pick`](Self::pick). (`have none` adds nothing.)
    pub fn add_seed(&mut self) {
        self.seeds = self.seeds.saturating_add(1);
    }

    /// A peer counted by [`add_seed`](Self::add_seed) leaves.
    pub fn remove_seed(&mut self) {
        self.seeds = self.seeds.saturating_sub(1);
    }

    // ----- priorities and mode -----

    fn apply_priority(&mut self, i: u32, level: u8) {
        let level = level.min(MAX_PRIORITY);
        let Some(&p) = self.pieces.get(i as usize) else {
            return;
        };
        if p.level == level {
            return;
        }
        if p.is_free() {
            self.free.remove(&mut self.pieces, i);
        }
        if p.state != State::Have {
            if p.level > 0 && level == 0 {
                self.wanted_left = self.wanted_left.saturating_sub(1);
            } else if p.level == 0 && level > 0 {
                self.wanted_left = self.wanted_left.saturating_add(1);
            }
        }
        let now_free = match self.pieces.get_mut(i as usize) {
            Some(piece) => {
                piece.level = level;
                piece.is_free()
            }
            None => false,
        };
        if now_free {
            self.free.insert(&mut self.pieces, i);
        }
    }

    /// Set one piece's priority (0 = do not download; above [`MAX_PRIORITY`] counts as it). A started
    /// piece set to 0 keeps what it has but gets no new requests.
    pub fn set_piece_priority(&mut self, index: PieceIndex, priority: u8) -> Result<(), PickerError> {
        let i = self.check_index(index)?;
        self.apply_priority(i, priority);
        Ok(())
    }

    /// Set every piece's priority at once.
    pub fn set_piece_priorities(&mut self, priorities: &[u8]) -> Result<(), PickerError> {
        if priorities.len() != self.pieces.len() {
            return Err(PickerError::PriorityCount {
                what: "piece",
                got: priorities.len(),
                expected: self.pieces.len(),
            });
        }
        for (i, &p) in priorities.iter().enumerate() {
            self.apply_priority(i as u32, p);
        }
        Ok(())
    }

    /// Set file priorities (one per file of the torrent, pad files included and ignored; 0 = skip the
    /// file). A piece gets the highest priority of the files it touches, so a piece shared by a skipped
    /// and a wanted file is still downloaded. Needs [`from_geometry`](Self::from_geometry).
    pub fn set_file_priorities(&mut self, priorities: &[u8]) -> Result<(), PickerError> {
        let files = self.files.as_ref().ok_or(PickerError::NoFiles)?;
        if priorities.len() != files.len() {
            return Err(PickerError::PriorityCount {
                what: "file",
                got: priorities.len(),
                expected: files.len(),
            });
        }
        let mut levels = vec![0u8; self.pieces.len()];
        for (file, &prio) in files.iter().zip(priorities) {
            if file.pad {
                continue;
            }
            let range = file.first as usize..(file.first as usize).saturating_add(file.count as usize);
            for slot in levels.get_mut(range).into_iter().flatten() {
                *slot = (*slot).max(prio.min(MAX_PRIORITY));
            }
        }
        self.set_piece_priorities(&levels)
    }

    /// Switch between rarest first and sequential (rebuilds the free index: O(pieces)).
    pub fn set_mode(&mut self, mode: PickMode) {
        if mode == self.config.mode {
            return;
        }
        self.config.mode = mode;
        self.free = FreeSet::new(mode);
        for i in 0..self.piece_count() {
            if self.pieces.get(i as usize).is_some_and(Piece::is_free) {
                self.free.insert(&mut self.pieces, i);
            }
        }
    }

    // ----- picking -----

    /// Up to `want` blocks to request from `peer`, whose pieces are `peer_has` (a full bitfield for a
    /// `have all` peer), in the order to send them; they are recorded as requested from `peer` at `now`.
    /// Never a block of a piece the peer lacks, a piece we have, a skipped piece, or a block already
    /// requested from this peer; a block already requested from another peer only in endgame.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        want: usize,
        now: Time,
        rng: &mut impl Rng,
    ) -> Vec<BlockRequest> {
        let mut out = Vec::new();
        self.last_examined = 0;
        if want == 0 || peer_has.len() != self.piece_count() {
            return out;
        }
        let mut examined = 0usize;
        let sequential = self.config.mode == PickMode::Sequential;
        let random_phase = !sequential && self.have_count < self.config.random_first_pieces;
        // Pieces no bitfield peer has can only come from a `have all` peer.
        let include_unseen = self.seeds > 0 && peer_has.is_full();

        // Started pieces with missing blocks that the peer has, best first.
        let mine: BTreeSet<u32> = self
            .peers
            .get(&peer)
            .map(|s| s.iter().map(|&(i, _)| i).collect())
            .unwrap_or_default();
        let mut partial: Vec<(Reverse<u8>, bool, u32, u32)> = Vec::new();
        for &i in &self.open {
            examined += 1;
            let Some(p) = self.pieces.get(i as usize) else {
                continue;
            };
            if p.level == 0 || !peer_has.get(PieceIndex(i)) {
                continue;
            }
            let missing = self.partials.get(&i).map_or(0, |x| x.missing);
            if sequential {
                partial.push((Reverse(p.level), false, 0, i));
            } else {
                partial.push((Reverse(p.level), !mine.contains(&i), missing, i));
            }
        }
        partial.sort_unstable();

        let mut remaining = want;
        for level in (1..=MAX_PRIORITY).rev() {
            if remaining == 0 {
                break;
            }
            let started: Vec<(u32, u32)> = partial
                .iter()
                .filter(|c| c.0 .0 == level)
                .map(|c| (c.3, self.partials.get(&c.3).map_or(0, |x| x.missing)))
                .collect();
            let started_blocks: usize = started.iter().map(|&(_, m)| m as usize).sum();
            let budget = if sequential {
                remaining
            } else {
                remaining.saturating_sub(started_blocks)
            };
            let mut fresh: Vec<u32> = Vec::new();
            if budget > 0 {
                if random_phase {
                    let w = self.free.sample(
                        &self.pieces,
                        level,
                        peer_has,
                        include_unseen,
                        budget,
                        RANDOM_TRIES,
                        &[],
                        rng,
                    );
                    examined += w.examined;
                    fresh = w.pieces;
                }
                let got: usize = fresh.iter().map(|&i| self.blocks_of(i) as usize).sum();
                if got < budget {
                    let w = self.free.walk(
                        &self.pieces,
                        level,
                        peer_has,
                        include_unseen,
                        budget - got,
                        &fresh,
                        rng,
                    );
                    examined += w.examined;
                    fresh.extend(w.pieces);
                }
            }
            // The order to take them in: started pieces first, or (sequential) by index.
            let mut order: Vec<(u32, bool)> = started.iter().map(|&(i, _)| (i, true)).collect();
            order.extend(fresh.iter().map(|&i| (i, false)));
            if sequential {
                order.sort_unstable();
            }
            for (i, is_started) in order {
                if remaining == 0 {
                    break;
                }
                if !is_started {
                    self.start_piece(i);
                }
                remaining -= self.request_missing(peer, i, remaining, now, &mut out);
            }
        }
        if remaining > 0 && self.is_endgame() {
            self.endgame_pick(peer, peer_has, remaining, now, &mut out, &mut examined);
        }
        self.last_examined = examined;
        out
    }

    fn blocks_of(&self, i: u32) -> u32 {
        self.pieces.get(i as usize).map_or(0, Piece::blocks)
    }

    /// Idle and free -> partial with every block missing.
    fn start_piece(&mut self, i: u32) {
        if !self.pieces.get(i as usize).is_some_and(Piece::is_free) {
            return;
        }
        self.free.remove(&mut self.pieces, i);
        let blocks = self.blocks_of(i);
        if let Some(p) = self.pieces.get_mut(i as usize) {
            p.state = State::Partial;
        }
        self.partials.insert(i, Partial::new(blocks));
        self.open.insert(i);
    }

    /// Request up to `limit` missing blocks of partial piece `i` from `peer`, in block order.
    fn request_missing(
        &mut self,
        peer: PeerKey,
        i: u32,
        limit: usize,
        now: Time,
        out: &mut Vec<BlockRequest>,
    ) -> usize {
        let len = self.pieces.get(i as usize).map_or(0, |p| p.len);
        let Some(part) = self.partials.get_mut(&i) else {
            return 0;
        };
        let inflight = self.peers.entry(peer).or_default();
        let mut n = 0;
        for (b, block) in part.blocks.iter_mut().enumerate() {
            if n == limit {
                break;
            }
            if *block == Block::Missing {
                *block = Block::Requested {
                    peers: vec![peer],
                    since: now,
                };
                part.missing -= 1;
                part.requested += 1;
                inflight.insert((i, b as u32));
                out.push(block_request(i, len, b as u32));
                n += 1;
            }
        }
        if part.missing == 0 {
            self.open.remove(&i);
        }
        n
    }

    /// Endgame: duplicate requests of blocks in flight to others, least-requested and oldest first.
    fn endgame_pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        want: usize,
        now: Time,
        out: &mut Vec<BlockRequest>,
        examined: &mut usize,
    ) {
        let max = self.config.endgame_max_requests.max(1);
        let min_age = self.config.endgame_min_age;
        let mut candidates: Vec<(usize, Time, u32, u32)> = Vec::new();
        for (&i, part) in &self.partials {
            if part.requested == 0
                || !peer_has.get(PieceIndex(i))
                || self.pieces.get(i as usize).is_none_or(|p| p.level == 0)
            {
                continue;
            }
            *examined += 1;
            for (b, block) in part.blocks.iter().enumerate() {
                if let Block::Requested { peers, since } = block {
                    if peers.len() < max && !peers.contains(&peer) && now.since(*since) >= min_age {
                        candidates.push((peers.len(), *since, i, b as u32));
                    }
                }
            }
        }
        candidates.sort_unstable();
        candidates.truncate(want);
        for (_, _, i, b) in candidates {
            let len = self.pieces.get(i as usize).map_or(0, |p| p.len);
            if let Some(Block::Requested { peers, .. }) = self
                .partials
                .get_mut(&i)
                .and_then(|p| p.blocks.get_mut(b as usize))
            {
                peers.push(peer);
                self.peers.entry(peer).or_default().insert((i, b));
                out.push(block_request(i, len, b));
            }
        }
    }

    // ----- what happened to requests -----

    /// The (piece, block number) a block names, if it is exactly one of this torrent's blocks.
    fn locate(&self, block: BlockRequest) -> Option<(u32, u32)> {
        let i = block.index.0;
        let piece = self.pieces.get(i as usize)?;
        if !block.begin.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let b = block.begin / BLOCK_SIZE;
        (b < piece.blocks() && block_request(i, piece.len, b) == block).then_some((i, b))
    }

    /// A block arrived from `peer`. Says whether to keep it, whether its piece is now complete (verify
    /// it), and which other peers to send a `cancel` for it (endgame).
    pub fn on_block_received(&mut self, peer: PeerKey, block: BlockRequest) -> BlockOutcome {
        let mut outcome = BlockOutcome {
            status: BlockStatus::Invalid,
            piece_complete: None,
            cancels: Vec::new(),
        };
        let Some((i, b)) = self.locate(block) else {
            return outcome;
        };
        if let Some(set) = self.peers.get_mut(&peer) {
            set.remove(&(i, b));
        }
        let state = self.pieces.get(i as usize).map(|p| p.state);
        match state {
            Some(State::Have) | None => {
                outcome.status = BlockStatus::Duplicate;
                return outcome;
            }
            Some(State::Idle) => {
                // Nobody asked (a request dropped by a choke, still on the wire): keep it anyway.
                let blocks = self.blocks_of(i);
                if let Some(p) = self.pieces.get(i as usize) {
                    if p.is_free() {
                        self.free.remove(&mut self.pieces, i);
                    }
                }
                if let Some(p) = self.pieces.get_mut(i as usize) {
                    p.state = State::Partial;
                }
                self.partials.insert(i, Partial::new(blocks));
                self.open.insert(i);
            }
            Some(State::Partial) => {}
        }
        let Some(part) = self.partials.get_mut(&i) else {
            return outcome;
        };
        let Some(slot) = part.blocks.get_mut(b as usize) else {
            return outcome;
        };
        match std::mem::replace(slot, Block::Received { from: peer }) {
            Block::Missing => {
                part.missing -= 1;
                part.received += 1;
            }
            Block::Requested { peers, .. } => {
                part.requested -= 1;
                part.received += 1;
                for other in peers.into_iter().filter(|&p| p != peer) {
                    if let Some(set) = self.peers.get_mut(&other) {
                        set.remove(&(i, b));
                    }
                    outcome.cancels.push((other, block));
                }
            }
            old @ (Block::Received { .. } | Block::Written { .. }) => {
                *slot = old;
                outcome.status = BlockStatus::Duplicate;
                return outcome;
            }
        }
        outcome.status = BlockStatus::Accepted;
        if part.missing == 0 {
            self.open.remove(&i);
        }
        if part.is_complete() {
            outcome.piece_complete = Some(PieceIndex(i));
        }
        outcome
    }

    /// Storage wrote a received block. Returns the piece when this was its last block to be written (for
    /// a driver that verifies from disk); `None` for anything else, including a repeated call.
    pub fn on_block_written(&mut self, block: BlockRequest) -> Option<PieceIndex> {
        let (i, b) = self.locate(block)?;
        let part = self.partials.get_mut(&i)?;
        let slot = part.blocks.get_mut(b as usize)?;
        let Block::Received { from } = *slot else {
            return None;
        };
        *slot = Block::Written { from };
        part.received -= 1;
        part.written += 1;
        (part.written as usize == part.blocks.len()).then_some(PieceIndex(i))
    }

    /// Remove `peer` from the requesters of block `b` of piece `i` (its in-flight set already updated);
    /// a block nobody is asked for any more is missing again, and a piece with only missing blocks idle.
    fn drop_request(&mut self, peer: PeerKey, i: u32, b: u32) {
        let Some(part) = self.partials.get_mut(&i) else {
            return;
        };
        let Some(slot) = part.blocks.get_mut(b as usize) else {
            return;
        };
        if let Block::Requested { peers, .. } = slot {
            peers.retain(|&p| p != peer);
            if peers.is_empty() {
                *slot = Block::Missing;
                part.requested -= 1;
                part.missing += 1;
                self.open.insert(i);
            }
        }
        if part.is_untouched() {
            self.make_idle(i);
        }
    }

    /// Partial -> idle (dropping its block states), free again if wanted.
    fn make_idle(&mut self, i: u32) {
        self.partials.remove(&i);
        self.open.remove(&i);
        let free = match self.pieces.get_mut(i as usize) {
            Some(p) => {
                p.state = State::Idle;
                p.is_free()
            }
            None => false,
        };
        if free {
            self.free.insert(&mut self.pieces, i);
        }
    }

    /// A request to `peer` will not be answered (rejected, timed out): the block can be picked again.
    /// Returns false if `peer` had no such request.
    pub fn on_request_failed(&mut self, peer: PeerKey, block: BlockRequest) -> bool {
        let Some((i, b)) = self.locate(block) else {
            return false;
        };
        if !self.peers.get_mut(&peer).is_some_and(|s| s.remove(&(i, b))) {
            return false;
        }
        self.drop_request(peer, i, b);
        true
    }

    /// Every request to `peer` is void (it choked us without the fast extension, or we gave up on it):
    /// its blocks can be picked again. Returns the requests dropped.
    pub fn release_peer(&mut self, peer: PeerKey) -> Vec<BlockRequest> {
        let taken = self.peers.get_mut(&peer).map(std::mem::take).unwrap_or_default();
        let mut dropped = Vec::with_capacity(taken.len());
        for (i, b) in taken {
            dropped.push(block_request(
                i,
                self.pieces.get(i as usize).map_or(0, |p| p.len),
                b,
            ));
            self.drop_request(peer, i, b);
        }
        dropped
    }

    /// `peer` disconnected: like [`release_peer`](Self::release_peer), and the picker forgets it. (Its
    /// pieces are taken off the availability by [`remove_peer_bitfield`](Self::remove_peer_bitfield) or
    /// [`remove_seed`](Self::remove_seed).)
    pub fn peer_gone(&mut self, peer: PeerKey) -> Vec<BlockRequest> {
        let dropped = self.release_peer(peer);
        self.peers.remove(&peer);
        dropped
    }

    /// The result of hashing a complete piece. `ok`: the piece is had for good. Not `ok`: every block
    /// goes back to missing and the piece will be picked again. Either way, returns who sent each block.
    pub fn on_piece_verified(&mut self, index: PieceIndex, ok: bool) -> Result<Contributors, PickerError> {
        let i = self.check_index(index)?;
        if !self.partials.get(&i).is_some_and(Partial::is_complete) {
            return Err(PickerError::NotComplete { index: i });
        }
        let len = self.pieces.get(i as usize).map_or(0, |p| p.len);
        let mut contributors = Contributors::default();
        if let Some(part) = self.partials.get(&i) {
            for (b, block) in part.blocks.iter().enumerate() {
                if let Block::Received { from } | Block::Written { from } = block {
                    contributors.blocks.push((block_request(i, len, b as u32), *from));
                }
            }
        }
        if ok {
            self.partials.remove(&i);
            self.open.remove(&i);
            self.set_have(i);
        } else {
            self.make_idle(i);
        }
        Ok(contributors)
    }

    fn set_have(&mut self, i: u32) {
        if let Some(p) = self.pieces.get_mut(i as usize) {
            p.state = State::Have;
            self.have_count += 1;
            if p.level > 0 {
                self.wanted_left = self.wanted_left.saturating_sub(1);
            }
        }
    }

    /// Piece `index` is had without downloading it (found valid on disk at start or by a recheck). Refused
    /// while any of its blocks is requested.
    pub fn mark_have(&mut self, index: PieceIndex) -> Result<(), PickerError> {
        let i = self.check_index(index)?;
        let Some(&p) = self.pieces.get(i as usize) else {
            return Ok(());
        };
        match p.state {
            State::Have => return Ok(()),
            State::Partial => {
                if self.partials.get(&i).is_some_and(|x| x.requested > 0) {
                    return Err(PickerError::InFlight { index: i });
                }
                self.partials.remove(&i);
                self.open.remove(&i);
            }
            State::Idle => {
                if p.is_free() {
                    self.free.remove(&mut self.pieces, i);
                }
            }
        }
        self.set_have(i);
        Ok(())
    }

    // ----- invariants -----

    /// Check every invariant of the module documentation, in O(pieces + blocks in flight). For tests and
    /// debugging; returns the first violation found.
    pub fn check_invariants(&self) -> Result<(), String> {
        let max_requests = self.config.endgame_max_requests.max(1);
        let mut have = 0u32;
        let mut wanted_left = 0u32;
        let mut free_expected = 0usize;
        for (i, p) in self.pieces.iter().enumerate() {
            let i = i as u32;
            if p.state == State::Have {
                have += 1;
            } else if p.level > 0 {
                wanted_left += 1;
            }
            if p.is_free() {
                free_expected += 1;
            }
            if p.level > MAX_PRIORITY {
                return Err(format!("piece {i} has priority {}", p.level));
            }
            if (p.state == State::Partial) != self.partials.contains_key(&i) {
                return Err(format!(
                    "piece {i} is {:?} but partial entry is {}",
                    p.state,
                    self.partials.contains_key(&i)
                ));
            }
        }
        if have != self.have_count {
            return Err(format!("have_count {} but {have} pieces had", self.have_count));
        }
        if wanted_left != self.wanted_left {
            return Err(format!(
                "wanted_left {} but {wanted_left} counted",
                self.wanted_left
            ));
        }
        // Invariant 2: the free index.
        let mut free_seen = 0usize;
        match &self.free {
            FreeSet::Rarest(levels) => {
                for (l, level) in levels.iter().enumerate() {
                    let mut count = 0;
                    for (a, bucket) in level.buckets.iter().enumerate() {
                        for (pos, &i) in bucket.iter().enumerate() {
                            let p = self
                                .pieces
                                .get(i as usize)
                                .ok_or(format!("bucket holds bad piece {i}"))?;
                            if !p.is_free()
                                || usize::from(p.level) != l + 1
                                || p.avail as usize != a
                                || p.pos as usize != pos
                            {
                                return Err(format!(
                                    "piece {i} misplaced in bucket (level {}, avail {a}, pos {pos}): {p:?}",
                                    l + 1
                                ));
                            }
                            count += 1;
                        }
                    }
                    if count != level.count {
                        return Err(format!(
                            "level {} counts {} but holds {count}",
                            l + 1,
                            level.count
                        ));
                    }
                    free_seen += count;
                }
            }
            FreeSet::Sequential(set) => {
                for &(Reverse(level), i) in set {
                    let p = self
                        .pieces
                        .get(i as usize)
                        .ok_or(format!("set holds bad piece {i}"))?;
                    if !p.is_free() || p.level != level {
                        return Err(format!("piece {i} misplaced in sequential set: {p:?}"));
                    }
                }
                free_seen = set.len();
            }
        }
        if free_seen != free_expected {
            return Err(format!(
                "{free_seen} pieces indexed as free, {free_expected} are free"
            ));
        }
        // Invariants 3 and 5, and requesters for 4.
        let mut requested_pairs: BTreeSet<(PeerKey, u32, u32)> = BTreeSet::new();
        for (&i, part) in &self.partials {
            let blocks = self.blocks_of(i);
            if part.blocks.len() != blocks as usize {
                return Err(format!(
                    "piece {i} has {} block states for {blocks} blocks",
                    part.blocks.len()
                ));
            }
            if part.recount() != (part.missing, part.requested, part.received, part.written) {
                return Err(format!(
                    "piece {i} counts {:?} but blocks say {:?}",
                    (part.missing, part.requested, part.received, part.written),
                    part.recount()
                ));
            }
            if part.is_untouched() {
                return Err(format!("partial piece {i} has only missing blocks"));
            }
            if (part.missing > 0) != self.open.contains(&i) {
                return Err(format!(
                    "piece {i} has {} missing blocks, open: {}",
                    part.missing,
                    self.open.contains(&i)
                ));
            }
            for (b, block) in part.blocks.iter().enumerate() {
                if let Block::Requested { peers, .. } = block {
                    if peers.is_empty() || peers.len() > max_requests {
                        return Err(format!(
                            "block {b} of piece {i} requested by {} peers",
                            peers.len()
                        ));
                    }
                    for &p in peers {
                        if !requested_pairs.insert((p, i, b as u32)) {
                            return Err(format!("block {b} of piece {i} requested twice from {p:?}"));
                        }
                    }
                }
            }
        }
        if let Some(i) = self.open.iter().find(|i| !self.partials.contains_key(i)) {
            return Err(format!("open piece {i} is not partial"));
        }
        // Invariant 4.
        let inflight: BTreeSet<(PeerKey, u32, u32)> = self
            .peers
            .iter()
            .flat_map(|(&p, set)| set.iter().map(move |&(i, b)| (p, i, b)))
            .collect();
        if inflight != requested_pairs {
            let extra = inflight.difference(&requested_pairs).next();
            let lost = requested_pairs.difference(&inflight).next();
            return Err(format!("in-flight sets and requested blocks differ: only in flight {extra:?}, only requested {lost:?}"));
        }
        Ok(())
    }
}
