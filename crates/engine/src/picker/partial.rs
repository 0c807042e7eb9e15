//! Block states of a piece that has been started and is not verified yet.

use crate::{PeerKey, Time};

/// Where one block of a started piece is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// Nobody is asked for it and we do not have it.
    Missing,
    /// Asked of these peers (1 and, in endgame, up to the configured bound; no peer twice), first at
    /// `since`.
    Requested {
        /// The peers asked, in the order they were asked.
        peers: Vec<PeerKey>,
        /// When the first of them was asked.
        since: Time,
    },
    /// Its data arrived from `from` and went to storage.
    Received {
        /// The peer that sent the copy we kept.
        from: PeerKey,
    },
    /// Storage reports it written.
    Written {
        /// The peer that sent the copy we kept.
        from: PeerKey,
    },
}

/// A started piece: one state per block, with counts kept in step.
#[derive(Debug, Clone)]
pub(super) struct Partial {
    pub(super) blocks: Vec<Block>,
    pub(super) missing: u32,
    pub(super) requested: u32,
    pub(super) received: u32,
    pub(super) written: u32,
}

impl Partial {
    /// A piece of `blocks` blocks, all missing.
    pub(super) fn new(blocks: u32) -> Self {
        Partial {
            blocks: vec![Block::Missing; blocks as usize],
            missing: blocks,
            requested: 0,
            received: 0,
            written: 0,
        }
    }

    /// Every block has arrived (received or written): the piece can be verified.
    pub(super) fn is_complete(&self) -> bool {
        self.missing == 0 && self.requested == 0
    }

    /// No block has left the missing state: the piece is as good as unstarted.
    pub(super) fn is_untouched(&self) -> bool {
        self.missing as usize == self.blocks.len()
    }

    /// Counts recomputed from the blocks (missing, requested, received, written), for the invariant check.
    pub(super) fn recount(&self) -> (u32, u32, u32, u32) {
        let mut c = (0, 0, 0, 0);
        for b in &self.blocks {
            match b {
                Block::Missing => c.0 += 1,
                Block::Requested { .. } => c.1 += 1,
                Block::Received { .. } => c.2 += 1,
                Block::Written { .. } => c.3 += 1,
            }
        }
        c
    }
}
