//! Torrent files (BEP 3 v1, BEP 52 v2 and hybrid), magnet links (BEP 9, BEP 53), piece and file geometry,
//! path sanitising and torrent building. Pure: no I/O, no clock, no global state.
//!
//! ```
//! use metainfo::{BuildFile, PieceHashes, Torrent, TorrentBuilder, Version};
//! let file = BuildFile { path: vec!["hello.txt".into()], length: 5, executable: false };
//! let mut builder = TorrentBuilder::new("hello.txt", vec![file], false, Version::V1, 16384);
//! builder.trackers = vec![vec!["http://127.0.0.1:6969/announce".into()]];
//! let plan = builder.plan().unwrap();
//! let hashes = vec![PieceHashes { v1: Some(metainfo::sha1_of(b"hello")), v2: None }];
//! let torrent = Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap();
//! assert_eq!(torrent.info.name, "hello.txt");
//! assert_eq!(torrent.info_hashes.v1.unwrap(), metainfo::InfoHashV1::of_info(torrent.raw_info()));
//! ```
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod build;
pub mod error;
pub mod geometry;
pub mod hash;
pub mod magnet;
pub mod merkle;
pub mod path;
pub mod torrent;

pub use build::{auto_piece_length, BuildError, BuildFile, PieceHashes, Plan, PlanEntry, TorrentBuilder};
pub use error::MetainfoError;
pub use geometry::{Geometry, GeometryError, PieceSpec, Segment, Span, V2Piece, Version};
pub use hash::{HashParseError, InfoHashV1, InfoHashV2, InfoHashes, PeerId, PieceIndex};
pub use magnet::{Magnet, MagnetError};
pub use path::PathError;
pub use torrent::{FileAttr, FileEntry, Info, Torrent};

/// SHA-1 of a byte slice (a v1 piece hash).
pub fn sha1_of(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}
