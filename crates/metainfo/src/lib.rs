//! Torrent files (BEP 3 v1, BEP 52 v2 and hybrid), magnet links (BEP 9, BEP 53), piece and file geometry,
//! path sanitising and torrent building. Pure: no I/O, no clock, no global state.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod hash;

pub use hash::{HashParseError, InfoHashV1, InfoHashV2, InfoHashes, PieceIndex};
