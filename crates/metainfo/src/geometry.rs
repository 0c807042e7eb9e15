//! Piece and file geometry: where each file lies in the torrent's piece space, and what bytes make up each
//! piece. Shared by creation, verification and (later) the storage layer.
//!
//! In a v1 torrent the files are concatenated in order and cut into pieces, so a piece may span files; BEP 47
//! pad files are zeros that are never stored. In a v2 torrent every file starts on a piece boundary (BEP 52:
//! pieces are "aligned to files"), as if padded; a hybrid torrent has explicit pad files so both views agree.

use crate::merkle::{file_leaves, BLOCK_SIZE};

/// Which BEP the torrent follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// BEP 3 only (SHA-1 pieces).
    V1,
    /// BEP 52 only (SHA-256 merkle trees).
    V2,
    /// Both, describing the same data.
    Hybrid,
}

impl Version {
    /// True if the torrent has v1 piece hashes.
    pub fn has_v1(self) -> bool {
        matches!(self, Version::V1 | Version::Hybrid)
    }
    /// True if the torrent has v2 merkle trees.
    pub fn has_v2(self) -> bool {
        matches!(self, Version::V2 | Version::Hybrid)
    }
    /// "v1", "v2" or "hybrid".
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::Hybrid => "hybrid",
        }
    }
}

/// One file's place in the piece space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Offset of the file's first byte in the piece space.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
    /// A BEP 47 pad file: zeros, never stored.
    pub pad: bool,
}

/// A run of bytes within a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// `len` bytes of file `file` starting at byte `offset` of that file.
    Data {
        /// Index into the torrent's file list.
        file: usize,
        /// Offset within the file.
        offset: u64,
        /// Length of the run.
        len: u64,
    },
    /// `len` zero bytes (a pad file's share of the piece): hashed by v1, not stored.
    Zeros(u64),
}

/// Everything needed to hash (or verify) one piece.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PieceSpec {
    /// The piece's index.
    pub index: u32,
    /// Its bytes, in order.
    pub segments: Vec<Segment>,
    /// For v2 and hybrid: the width in leaves of this piece's merkle subtree, and the file it belongs to.
    pub v2: Option<V2Piece>,
}

/// The v2 side of a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Piece {
    /// The file the piece belongs to.
    pub file: usize,
    /// The piece's index within that file.
    pub index_in_file: u32,
    /// Leaves to pad the piece's subtree to (a power of two).
    pub leaves: u64,
}

impl PieceSpec {
    /// Bytes in the piece (data and zeros).
    pub fn len(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Data { len, .. } => *len,
                Segment::Zeros(n) => *n,
            })
            .sum()
    }
    /// True for an empty piece (never produced by [`Geometry`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Files laid out in piece space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    version: Version,
    piece_length: u64,
    spans: Vec<Span>,
    /// End of the piece space.
    end: u64,
    piece_count: u32,
}

/// Why a geometry cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// Piece length zero, or not a power of two >= 16 KiB where v2 requires it, or above the cap.
    #[error("piece length {0} is not allowed")]
    PieceLength(u64),
    /// Too many bytes or pieces.
    #[error("the torrent is too large ({0} pieces)")]
    TooLarge(u64),
}

/// Largest piece length accepted (libtorrent's cap is 128 MiB; we allow a little more).
pub const MAX_PIECE_LENGTH: u64 = 256 << 20;
/// Largest total size accepted: 2^53 bytes (8 PiB).
pub const MAX_TOTAL: u64 = 1 << 53;

impl Geometry {
    /// Lay out files with the given lengths (and pad flags). For [`Version::V2`] each file starts on a piece
    /// boundary; otherwise files are concatenated as listed.
    pub fn new(version: Version, piece_length: u64, files: &[(u64, bool)]) -> Result<Self, GeometryError> {
        let pow2_ok = piece_length >= BLOCK_SIZE && piece_length.is_power_of_two();
        if piece_length == 0 || piece_length > MAX_PIECE_LENGTH || (version.has_v2() && !pow2_ok) {
            return Err(GeometryError::PieceLength(piece_length));
        }
        let mut spans = Vec::with_capacity(files.len());
        let mut at: u64 = 0;
        for &(length, pad) in files {
            if version == Version::V2 && !at.is_multiple_of(piece_length) {
                at = at.div_ceil(piece_length).saturating_mul(piece_length);
            }
            spans.push(Span {
                offset: at,
                length,
                pad,
            });
            at = at
                .checked_add(length)
                .filter(|&t| t <= MAX_TOTAL)
                .ok_or(GeometryError::TooLarge(u64::MAX))?;
        }
        let pieces = at.div_ceil(piece_length);
        let piece_count = u32::try_from(pieces).map_err(|_| GeometryError::TooLarge(pieces))?;
        Ok(Geometry {
            version,
            piece_length,
            spans,
            end: at,
            piece_count,
        })
    }

    /// The torrent's version.
    pub fn version(&self) -> Version {
        self.version
    }
    /// Piece length in bytes.
    pub fn piece_length(&self) -> u64 {
        self.piece_length
    }
    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        self.piece_count
    }
    /// Each file's span, in file order.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }
    /// Size of the piece space (data, pad files and, for v2, alignment gaps).
    pub fn end(&self) -> u64 {
        self.end
    }
    /// Bytes of real file data (pad files excluded).
    pub fn data_size(&self) -> u64 {
        self.spans.iter().filter(|s| !s.pad).map(|s| s.length).sum()
    }

    /// The index of the first piece of file `file` and its piece count (0 for an empty file).
    pub fn file_pieces(&self, file: usize) -> Option<(u32, u32)> {
        let s = self.spans.get(file)?;
        if s.length == 0 {
            return Some(((s.offset / self.piece_length) as u32, 0));
        }
        let first = s.offset / self.piece_length;
        let last = (s.offset + s.length - 1) / self.piece_length;
        Some((first as u32, (last - first + 1) as u32))
    }

    /// The bytes of piece `index`, or `None` past the end.
    pub fn piece(&self, index: u32) -> Option<PieceSpec> {
        if index >= self.piece_count {
            return None;
        }
        let start = u64::from(index) * self.piece_length;
        let mut end = (start + self.piece_length).min(self.end);
        // First file whose span ends after `start`.
        let first = self.spans.partition_point(|s| s.offset + s.length <= start);
        let mut segments = Vec::new();
        let mut v2 = None;
        for (i, s) in self.spans.iter().enumerate().skip(first) {
            if s.offset >= end {
                break;
            }
            if s.length == 0 {
                continue;
            }
            let from = start.max(s.offset);
            let to = end.min(s.offset + s.length);
            if from >= to {
                continue;
            }
            if s.pad {
                segments.push(Segment::Zeros(to - from));
            } else {
                if self.version.has_v2() && v2.is_none() {
                    let leaves = if s.length <= self.piece_length {
                        file_leaves(s.length)
                    } else {
                        self.piece_length / BLOCK_SIZE
                    };
                    let index_in_file = ((from - s.offset) / self.piece_length) as u32;
                    v2 = Some(V2Piece {
                        file: i,
                        index_in_file,
                        leaves,
                    });
                    if self.version == Version::V2 {
                        // A v2 piece never extends past its file.
                        end = to;
                    }
                }
                segments.push(Segment::Data {
                    file: i,
                    offset: from - s.offset,
                    len: to - from,
                });
            }
        }
        Some(PieceSpec { index, segments, v2 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_pieces_span_files() {
        let g = Geometry::new(Version::V1, 10, &[(4, false), (0, false), (13, false)]).unwrap();
        assert_eq!(g.piece_count(), 2);
        let p0 = g.piece(0).unwrap();
        assert_eq!(
            p0.segments,
            vec![
                Segment::Data {
                    file: 0,
                    offset: 0,
                    len: 4
                },
                Segment::Data {
                    file: 2,
                    offset: 0,
                    len: 6
                }
            ]
        );
        assert_eq!(
            g.piece(1).unwrap().segments,
            vec![Segment::Data {
                file: 2,
                offset: 6,
                len: 7
            }]
        );
        assert!(g.piece(2).is_none());
        assert_eq!(g.file_pieces(2), Some((0, 2)));
    }

    #[test]
    fn v2_files_are_aligned() {
        let pl = 32 * 1024;
        let g = Geometry::new(Version::V2, pl, &[(100, false), (0, false), (pl + 1, false)]).unwrap();
        assert_eq!(g.piece_count(), 3);
        assert_eq!(g.spans()[2].offset, pl);
        let p0 = g.piece(0).unwrap();
        assert_eq!(p0.len(), 100);
        assert_eq!(
            p0.v2,
            Some(V2Piece {
                file: 0,
                index_in_file: 0,
                leaves: 1
            })
        );
        let p2 = g.piece(2).unwrap();
        assert_eq!(
            p2.v2,
            Some(V2Piece {
                file: 2,
                index_in_file: 1,
                leaves: 2
            })
        );
        assert_eq!(p2.len(), 1);
    }

    #[test]
    fn hybrid_pads_are_zeros() {
        let pl = 16 * 1024;
        let g = Geometry::new(Version::Hybrid, pl, &[(10, false), (pl - 10, true), (5, false)]).unwrap();
        let p0 = g.piece(0).unwrap();
        assert_eq!(
            p0.segments,
            vec![
                Segment::Data {
                    file: 0,
                    offset: 0,
                    len: 10
                },
                Segment::Zeros(pl - 10)
            ]
        );
        assert_eq!(p0.v2.unwrap().file, 0);
        assert_eq!(g.data_size(), 15);
    }

    #[test]
    fn bad_piece_lengths() {
        assert!(Geometry::new(Version::V1, 0, &[]).is_err());
        assert!(Geometry::new(Version::V1, 1000, &[(1, false)]).is_ok());
        assert!(Geometry::new(Version::V2, 1000, &[(1, false)]).is_err());
        assert!(Geometry::new(Version::Hybrid, 8192, &[(1, false)]).is_err());
        assert!(Geometry::new(Version::V1, 1 << 30, &[(1, false)]).is_err());
    }
}
