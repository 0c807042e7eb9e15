//! The [`PieceStore`] trait the peer engine's driver writes blocks into and serves blocks from, and the
//! mapping of a block (piece, offset, length) onto runs of file data and pad zeros.

use std::sync::atomic::Ordering;

use metainfo::{PieceHashes, PieceSpec, Segment};

use crate::hash::parallel_pieces;
use crate::layout::Layout;
use crate::{Progress, StorageError};

/// Disk behind a trait: [`crate::FileStore`] for real runs, [`crate::MemoryStore`] for tests and the
/// simulator.
///
/// Every method is synchronous and takes `&self`, so one store can be shared (`Arc<dyn PieceStore>`) by the
/// driver's disk thread pool: blocks of different pieces (or of the same piece) may be written, read and
/// verified concurrently. Offsets are within the piece; a block may span files and pad files.
pub trait PieceStore: Send + Sync {
    /// The torrent's layout and expected hashes.
    fn layout(&self) -> &Layout;

    /// Write `data` at `offset` within piece `piece`. Bytes that fall on pad files are dropped (pad files
    /// are zeros by definition and never stored).
    fn write_block(&self, piece: u32, offset: u32, data: &[u8]) -> Result<(), StorageError>;

    /// Fill `buf` with the bytes at `offset` within piece `piece`. Pad bytes read as zeros; bytes of a file
    /// that exists but was never written read as zeros (a sparse hole); a file that does not exist is an
    /// error ([`StorageError::is_absent`] is true for it).
    fn read_block(&self, piece: u32, offset: u32, buf: &mut [u8]) -> Result<(), StorageError>;

    /// Hash piece `piece` as stored and compare it with the torrent: SHA-1 for v1, the SHA-256 merkle
    /// subtree root against the piece layer (or the file's pieces root) for v2, both for a hybrid. Missing
    /// or short files make the piece not match (`Ok(false)`), not an error.
    fn verify_piece(&self, piece: u32) -> Result<bool, StorageError>;

    /// Make every write so far durable (before saving resume data that counts on it).
    fn flush(&self) -> Result<(), StorageError>;

    /// Read a block into a new buffer.
    fn read_vec(&self, piece: u32, offset: u32, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; len];
        self.read_block(piece, offset, &mut buf)?;
        Ok(buf)
    }

    /// SHA-1 of every 16 KiB block of piece `piece` as stored, in block order (the last may be shorter):
    /// what smart-ban compares between a failed copy of a piece and the copy that passed.
    fn block_digests(&self, piece: u32) -> Result<Vec<[u8; 20]>, StorageError> {
        use sha1::Digest;
        const BLOCK: u64 = 16 * 1024;
        let len = self.layout().piece_len(piece).ok_or(StorageError::OutOfRange {
            piece,
            offset: 0,
            len: 0,
        })?;
        let mut buf = vec![0u8; BLOCK as usize];
        let mut out = Vec::new();
        let mut begin = 0u64;
        while begin < len {
            let n = (len - begin).min(BLOCK) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.read_block(piece, u32::try_from(begin).unwrap_or(u32::MAX), chunk)?;
            out.push(sha1::Sha1::digest(&*chunk).into());
            begin += BLOCK;
        }
        Ok(out)
    }
}

/// Verify every piece of `store` on `threads` threads: which pieces are intact. Absent or short data makes
/// a piece absent, not an error; `progress.bytes` counts the bytes of pieces checked, and setting
/// `progress.cancel` stops early with [`StorageError::Cancelled`].
pub fn verify_all<S: PieceStore + ?Sized>(
    store: &S,
    threads: usize,
    progress: &Progress,
) -> Result<Vec<bool>, StorageError> {
    let layout = store.layout();
    parallel_pieces(
        layout.piece_count(),
        threads,
        progress,
        || (),
        |(), i| verify_counted(store, i, progress),
    )
}

/// Verify only the pieces listed in `pieces` on `threads` threads, like [`verify_all`] for a subset: one flag
/// per entry of `pieces`, in the same order. Threads take the entries in order from a shared counter, so an
/// ascending list keeps reads close to sequential. `progress.bytes` counts the bytes of these pieces only;
/// setting `progress.cancel` stops early with [`StorageError::Cancelled`]. A piece past the end is
/// [`StorageError::OutOfRange`].
pub fn verify_pieces<S: PieceStore + ?Sized>(
    store: &S,
    pieces: &[u32],
    threads: usize,
    progress: &Progress,
) -> Result<Vec<bool>, StorageError> {
    let out_of_range = |piece| StorageError::OutOfRange {
        piece,
        offset: 0,
        len: 0,
    };
    let count = u32::try_from(pieces.len()).map_err(|_| out_of_range(u32::MAX))?;
    parallel_pieces(
        count,
        threads,
        progress,
        || (),
        |(), k| {
            let piece = *pieces.get(k as usize).ok_or_else(|| out_of_range(k))?;
            verify_counted(store, piece, progress)
        },
    )
}

/// Verify one piece and add its length to `progress.bytes`.
fn verify_counted<S: PieceStore + ?Sized>(
    store: &S,
    piece: u32,
    progress: &Progress,
) -> Result<bool, StorageError> {
    let ok = store.verify_piece(piece)?;
    let len = store.layout().piece_len(piece).unwrap_or(0);
    progress.bytes.fetch_add(len, Ordering::Relaxed);
    Ok(ok)
}

/// Check a whole piece held in memory (`data`, the piece's bytes as received) against the torrent's
/// hashes, exactly as [`PieceStore::verify_piece`] would once it is stored: bytes on pad files count as
/// the zeros they will read as. Lets a driver verify a piece before writing it, without reading it back.
pub fn verify_piece_data(layout: &Layout, piece: u32, data: &[u8]) -> Result<bool, StorageError> {
    let out = || StorageError::OutOfRange {
        piece,
        offset: 0,
        len: data.len(),
    };
    let spec = layout.geometry().piece(piece).ok_or_else(out)?;
    if spec.len() != data.len() as u64 {
        return Err(out());
    }
    // Hashed straight from `data`, segment by segment: pad zeros count as zeros for SHA-1 whatever was
    // received there, and the v2 subtree covers file data only.
    let v1 = layout.checks_v1();
    let mut h1 = v1.then(<sha1::Sha1 as sha1::Digest>::new);
    let mut h2 = spec.v2.map(|p| metainfo::merkle::SubtreeHasher::new(p.leaves));
    let mut pos = 0usize;
    for seg in &spec.segments {
        match *seg {
            Segment::Data { len, .. } => {
                let len = usize::try_from(len).map_err(|_| out())?;
                let bytes = data.get(pos..pos.saturating_add(len)).ok_or_else(out)?;
                if let Some(h) = h1.as_mut() {
                    sha1::Digest::update(h, bytes);
                }
                if let Some(h) = h2.as_mut() {
                    h.update(bytes);
                }
                pos = pos.saturating_add(len);
            }
            Segment::Zeros(n) => {
                let n = usize::try_from(n).map_err(|_| out())?;
                if let Some(h) = h1.as_mut() {
                    let zeros = [0u8; 4096];
                    let mut left = n;
                    while left > 0 {
                        let k = left.min(zeros.len());
                        sha1::Digest::update(h, zeros.get(..k).unwrap_or_default());
                        left -= k;
                    }
                }
                pos = pos.saturating_add(n);
            }
        }
    }
    let hashes = PieceHashes {
        v1: h1.map(|h| sha1::Digest::finalize(h).into()),
        v2: h2.map(metainfo::merkle::SubtreeHasher::finish),
    };
    Ok(hashes_match(layout, piece, &hashes))
}

/// A piece of a block: file data or pad zeros, at `at..at + len` of the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Run {
    /// Bytes of file `file` from `offset`.
    Data {
        file: usize,
        offset: u64,
        at: usize,
        len: usize,
    },
    /// Pad zeros.
    Zeros { at: usize, len: usize },
}

/// The piece's spec, after checking that `offset..offset + len` lies within it.
pub(crate) fn block_spec(
    layout: &Layout,
    piece: u32,
    offset: u32,
    len: usize,
) -> Result<PieceSpec, StorageError> {
    let out = || StorageError::OutOfRange { piece, offset, len };
    let spec = layout.geometry().piece(piece).ok_or_else(out)?;
    let end = u64::from(offset).checked_add(len as u64).ok_or_else(out)?;
    if end > spec.len() {
        return Err(out());
    }
    Ok(spec)
}

/// The runs covering `offset..offset + len` of a piece (bounds already checked by [`block_spec`]).
pub(crate) fn runs(spec: &PieceSpec, offset: u32, len: usize) -> Vec<Run> {
    let start = u64::from(offset);
    let end = start + len as u64;
    let mut pos = 0u64;
    let mut out = Vec::new();
    for seg in &spec.segments {
        let seg_len = match *seg {
            Segment::Data { len, .. } => len,
            Segment::Zeros(n) => n,
        };
        let (from, to) = (start.max(pos), end.min(pos + seg_len));
        if from < to {
            let at = (from - start) as usize;
            let n = (to - from) as usize;
            out.push(match *seg {
                Segment::Data { file, offset, .. } => Run::Data {
                    file,
                    offset: offset + (from - pos),
                    at,
                    len: n,
                },
                Segment::Zeros(_) => Run::Zeros { at, len: n },
            });
        }
        pos += seg_len;
        if pos >= end {
            break;
        }
    }
    out
}

/// True when `got` matches every hash the layout has for `piece`.
pub(crate) fn hashes_match(layout: &Layout, piece: u32, got: &PieceHashes) -> bool {
    let v1_ok = match layout.v1_hash(piece) {
        Some(want) => got.v1.as_ref() == Some(want),
        None => !layout.checks_v1(),
    };
    let v2_ok = match layout.v2_hash(piece) {
        Some(want) => got.v2.as_ref() == Some(want),
        None => true,
    };
    v1_ok && v2_ok && (layout.v1_hash(piece).is_some() || layout.v2_hash(piece).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{PieceSpec, Segment};

    #[test]
    fn a_block_maps_onto_files_and_pad_zeros() {
        let spec = PieceSpec {
            index: 0,
            segments: vec![
                Segment::Data {
                    file: 0,
                    offset: 100,
                    len: 10,
                },
                Segment::Zeros(5),
                Segment::Data {
                    file: 2,
                    offset: 0,
                    len: 20,
                },
            ],
            v2: None,
        };
        assert_eq!(
            runs(&spec, 8, 10),
            vec![
                Run::Data {
                    file: 0,
                    offset: 108,
                    at: 0,
                    len: 2
                },
                Run::Zeros { at: 2, len: 5 },
                Run::Data {
                    file: 2,
                    offset: 0,
                    at: 7,
                    len: 3
                },
            ]
        );
        assert_eq!(
            runs(&spec, 15, 20),
            vec![Run::Data {
                file: 2,
                offset: 0,
                at: 0,
                len: 20
            }]
        );
        assert_eq!(runs(&spec, 3, 0), vec![]);
    }
}
