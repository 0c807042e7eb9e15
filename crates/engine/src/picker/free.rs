//! The index of *free* pieces: wanted (priority above zero), not verified, and with no block state yet.
//!
//! Picking a fresh piece must not cost a scan of the whole torrent, so free pieces are kept where the
//! current mode looks for them first:
//!
//! - rarest first: one bucket per (priority, availability), each an unordered `Vec`, with every free
//!   piece's position in its bucket stored on the piece. Insert, remove and "availability changed" are
//!   O(1) (`swap_remove` and `push`). A pick walks priorities from high to low and, within one, buckets
//!   from rare to common, starting each bucket at a random position and wrapping around: ties between
//!   equally rare pieces are broken at random without shuffling anything. Empty buckets cost one check
//!   each, and there are at most as many as peers.
//! - sequential: one ordered set of (priority descending, index ascending).
//!
//! Availability here counts the peers registered by bitfield (and `have`); peers that sent `have all`
//! are counted separately by the picker, since they raise every piece by one and so never change the
//! order.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use rand::Rng;
use wire::Bitfield;

use super::{PickMode, Piece, MAX_PRIORITY};
use metainfo::PieceIndex;

/// Free pieces, organised for the current mode.
#[derive(Debug, Clone)]
pub(super) enum FreeSet {
    /// Buckets by priority (index `priority - 1`) and then by availability.
    Rarest(Vec<Level>),
    /// Ordered by priority (highest first), then by index.
    Sequential(BTreeSet<(Reverse<u8>, u32)>),
}

/// The free pieces of one priority level, bucketed by availability.
#[derive(Debug, Clone, Default)]
pub(super) struct Level {
    /// `buckets[a]` holds the free pieces with availability `a`, in no particular order.
    pub(super) buckets: Vec<Vec<u32>>,
    /// Pieces in all buckets.
    pub(super) count: usize,
}

/// What a walk over free pieces may return: pieces in the order to start them, and how many pieces it
/// looked at (the work done, for the "does not scan the torrent" check).
pub(super) struct Walk {
    pub(super) pieces: Vec<u32>,
    pub(super) examined: usize,
}

impl FreeSet {
    /// An empty set for `mode`.
    pub(super) fn new(mode: PickMode) -> Self {
        match mode {
            PickMode::RarestFirst => FreeSet::Rarest(vec![Level::default(); usize::from(MAX_PRIORITY)]),
            PickMode::Sequential => FreeSet::Sequential(BTreeSet::new()),
        }
    }

    /// Number of free pieces.
    pub(super) fn len(&self) -> usize {
        match self {
            FreeSet::Rarest(levels) => levels.iter().map(|l| l.count).sum(),
            FreeSet::Sequential(set) => set.len(),
        }
    }

    /// Add piece `index` (its `level` and `avail` as stored in `pieces`). The caller guarantees it is
    /// not in the set yet.
    pub(super) fn insert(&mut self, pieces: &mut [Piece], index: u32) {
        let Some(piece) = pieces.get_mut(index as usize) else {
            return;
        };
        match self {
            FreeSet::Rarest(levels) => {
                let Some(level) = levels.get_mut(usize::from(piece.level).wrapping_sub(1)) else {
                    return;
                };
                let a = piece.avail as usize;
                if level.buckets.len() <= a {
                    level.buckets.resize_with(a + 1, Vec::new);
                }
                if let Some(bucket) = level.buckets.get_mut(a) {
                    piece.pos = bucket.len() as u32;
                    bucket.push(index);
                    level.count += 1;
                }
            }
            FreeSet::Sequential(set) => {
                set.insert((Reverse(piece.level), index));
            }
        }
    }

    /// Remove piece `index`, which must be in the set under its current `level` and `avail`.
    pub(super) fn remove(&mut self, pieces: &mut [Piece], index: u32) {
        let Some(piece) = pieces.get(index as usize) else {
            return;
        };
        let (level_no, avail, pos) = (piece.level, piece.avail as usize, piece.pos as usize);
        match self {
            FreeSet::Rarest(levels) => {
                let Some(level) = levels.get_mut(usize::from(level_no).wrapping_sub(1)) else {
                    return;
                };
                let Some(bucket) = level.buckets.get_mut(avail) else {
                    return;
                };
                if bucket.get(pos) != Some(&index) {
                    return;
                }
                bucket.swap_remove(pos);
                level.count = level.count.saturating_sub(1);
                if let Some(&moved) = bucket.get(pos) {
                    if let Some(m) = pieces.get_mut(moved as usize) {
                        m.pos = pos as u32;
                    }
                }
            }
            FreeSet::Sequential(set) => {
                set.remove(&(Reverse(level_no), index));
            }
        }
    }

    /// Free pieces of priority `level` that the peer has, in the order to start them, until their blocks
    /// add up to `budget` blocks. `include_unseen` also looks at pieces no bitfield peer has (only a
    /// `have all` peer can have those). `skip` holds pieces already chosen.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn walk(
        &self,
        pieces: &[Piece],
        level: u8,
        peer_has: &Bitfield,
        include_unseen: bool,
        budget: usize,
        skip: &[u32],
        rng: &mut impl Rng,
    ) -> Walk {
        let mut walk = Walk {
            pieces: Vec::new(),
            examined: 0,
        };
        let mut blocks = 0usize;
        let mut take = |walk: &mut Walk, index: u32| -> bool {
            walk.examined += 1;
            if peer_has.get(PieceIndex(index)) && !skip.contains(&index) {
                walk.pieces.push(index);
                blocks += pieces.get(index as usize).map_or(0, |p| p.blocks() as usize);
            }
            blocks >= budget
        };
        match self {
            FreeSet::Rarest(levels) => {
                let Some(l) = levels.get(usize::from(level).wrapping_sub(1)) else {
                    return walk;
                };
                let first = usize::from(!include_unseen);
                for bucket in l.buckets.iter().skip(first) {
                    if bucket.is_empty() {
                        continue;
                    }
                    let start = rng.random_range(0..bucket.len());
                    let (tail, head) = (bucket.get(start..), bucket.get(..start));
                    for &index in tail.into_iter().flatten().chain(head.into_iter().flatten()) {
                        if take(&mut walk, index) {
                            return walk;
                        }
                    }
                }
            }
            FreeSet::Sequential(set) => {
                for &(_, index) in set.range((Reverse(level), 0)..=(Reverse(level), u32::MAX)) {
                    if take(&mut walk, index) {
                        return walk;
                    }
                }
            }
        }
        walk
    }

    /// Up to `tries` pieces of priority `level` drawn uniformly at random from the free ones (those no
    /// bitfield peer has are left out unless `include_unseen`), keeping those the peer has and that are
    /// not in `skip`, until their blocks add up to `budget`. Only meaningful in rarest-first mode; the
    /// sequential set returns nothing.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sample(
        &self,
        pieces: &[Piece],
        level: u8,
        peer_has: &Bitfield,
        include_unseen: bool,
        budget: usize,
        tries: usize,
        skip: &[u32],
        rng: &mut impl Rng,
    ) -> Walk {
        let mut walk = Walk {
            pieces: Vec::new(),
            examined: 0,
        };
        let FreeSet::Rarest(levels) = self else {
            return walk;
        };
        let Some(l) = levels.get(usize::from(level).wrapping_sub(1)) else {
            return walk;
        };
        let first = usize::from(!include_unseen);
        let unseen = if include_unseen {
            0
        } else {
            l.buckets.first().map_or(0, Vec::len)
        };
        let total = l.count.saturating_sub(unseen);
        let mut blocks = 0usize;
        for _ in 0..tries {
            if total == 0 || blocks >= budget {
                break;
            }
            let mut k = rng.random_range(0..total);
            let mut found = None;
            for bucket in l.buckets.iter().skip(first) {
                if k < bucket.len() {
                    found = bucket.get(k).copied();
                    break;
                }
                k -= bucket.len();
            }
            let Some(index) = found else { break };
            walk.examined += 1;
            if peer_has.get(PieceIndex(index)) && !skip.contains(&index) && !walk.pieces.contains(&index) {
                walk.pieces.push(index);
                blocks += pieces.get(index as usize).map_or(0, |p| p.blocks() as usize);
            }
        }
        walk
    }
}
