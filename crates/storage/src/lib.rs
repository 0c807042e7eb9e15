//! Piece geometry on disk: positioned reads and writes across a torrent's files, piece verification, resume
//! data, and parallel piece hashing shared by torrent creation and verification.
//!
//! - [`PieceStore`] is the disk behind the peer engine: [`FileStore`] maps a torrent's pieces and blocks onto
//!   real files (lazily opened under a cap, sparse, pad files never stored, nothing written outside the
//!   download folder), [`MemoryStore`] keeps them in memory for tests and the simulator.
//! - [`ResumeData`] records which pieces are verified together with each file's size and modification time;
//!   [`FileStore::resume`] trusts it for the pieces of unchanged files and re-verifies, on all cores, only the
//!   pieces touching files that changed since ([`verify_pieces`]); without usable resume data,
//!   [`FileStore::check_existing`] re-verifies every piece.
//! - [`hash_pieces`] hashes the pieces of files for `bitswarm create`.
//!
//! Hashing streams each piece through a small per-thread buffer (128 KiB, which stays in the CPU cache), so
//! memory does not grow with the size of the data, and every core takes the next unhashed piece from a
//! shared counter, so reads stay close to sequential.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod file;
mod hash;
mod io;
mod layout;
mod memory;
mod resume;
mod store;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use metainfo::{Geometry, PieceHashes, PieceSpec};

pub use file::{AlignedBuf, FileStore, FileStoreOptions, DIRECT_ALIGN};
pub use layout::{Layout, LayoutFile};
pub use memory::MemoryStore;
pub use resume::{
    bitfield_from_bools, bools_from_bitfield, load_resume, plan_resume, resume_path, FileStamp, ResumeData,
    ResumeOutcome, ResumePlan, ResumeSource,
};
pub use store::{verify_all, verify_piece_data, verify_pieces, PieceStore};

use hash::{hash_piece, parallel_pieces, CHUNK};
use io::read_exact_at;

/// Open files kept per hashing thread.
const MAX_OPEN_PER_THREAD: usize = 64;

/// A disk problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Opening, creating or reading failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("{path}: write failed: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is shorter than the torrent says (it changed, or is incomplete).
    #[error("{path}: shorter than expected (needed bytes up to {needed})")]
    Short {
        /// The file.
        path: PathBuf,
        /// End offset that could not be read.
        needed: u64,
    },
    /// The geometry refers to a file that has no path.
    #[error("file {0} of the torrent has no path on disk")]
    NoPath(usize),
    /// Hashing was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A block outside its piece, or a piece past the end.
    #[error("block out of range: piece {piece}, offset {offset}, {len} bytes")]
    OutOfRange {
        /// The piece asked for.
        piece: u32,
        /// Offset within the piece.
        offset: u32,
        /// Length of the block.
        len: usize,
    },
    /// A path that leads outside the download folder through a symbolic link already on disk.
    #[error(
        "{path}: leads to {target}, outside the download folder {root}, through a symbolic link; \
         refusing to use it (remove the link or choose another download folder)"
    )]
    Escapes {
        /// The file's path.
        path: PathBuf,
        /// Where it really leads.
        target: PathBuf,
        /// The download folder.
        root: PathBuf,
    },
    /// A torrent file's own path is a symbolic link: never followed.
    #[error(
        "{path}: is a symbolic link; refusing to follow it (remove it or choose another download folder)"
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Something other than a regular file (a folder, a FIFO, a device) where a file of the torrent belongs.
    #[error("{path}: exists but is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A write to a store opened read-only (seeding an existing folder).
    #[error("{path}: the store is read-only; refusing to write")]
    ReadOnly {
        /// The file the write was for.
        path: PathBuf,
    },
    /// A v2 torrent without the piece layer of a file, so its pieces cannot be verified.
    #[error("{path}: the torrent has no piece layer for this file, so its pieces cannot be verified")]
    MissingPieceLayer {
        /// The file.
        path: PathBuf,
    },
}

impl StorageError {
    /// True when the error only means the data is not there (a missing or short file): a piece that reads
    /// like this is absent, not broken.
    pub fn is_absent(&self) -> bool {
        match self {
            StorageError::Short { .. } => true,
            StorageError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            _ => false,
        }
    }
}

/// Shared progress and cancellation for a hashing run.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes hashed so far.
    pub bytes: AtomicU64,
    /// Set to stop early.
    pub cancel: AtomicBool,
}

/// Hash every piece of `geometry`, reading file `i` of the geometry from `paths[i]` (`None` for pad files),
/// on `threads` threads. Returns the hashes in piece order.
pub fn hash_pieces(
    geometry: &Geometry,
    paths: &[Option<PathBuf>],
    threads: usize,
    progress: &Progress,
) -> Result<Vec<PieceHashes>, StorageError> {
    parallel_pieces(
        geometry.piece_count(),
        threads,
        progress,
        || Worker {
            paths,
            open: HashMap::new(),
            buf: vec![0u8; CHUNK],
        },
        |worker, i| {
            let spec = geometry.piece(i).ok_or(StorageError::OutOfRange {
                piece: i,
                offset: 0,
                len: 0,
            })?;
            worker.hash(&spec, geometry, progress)
        },
    )
}

struct Worker<'p> {
    paths: &'p [Option<PathBuf>],
    open: HashMap<usize, File>,
    buf: Vec<u8>,
}

impl Worker<'_> {
    fn file(&mut self, i: usize) -> Result<(&File, &Path), StorageError> {
        let path = self
            .paths
            .get(i)
            .and_then(|p| p.as_deref())
            .ok_or(StorageError::NoPath(i))?;
        if !self.open.contains_key(&i) {
            if self.open.len() >= MAX_OPEN_PER_THREAD {
                self.open.clear();
            }
            let f = File::open(path).map_err(|source| StorageError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            self.open.insert(i, f);
        }
        let f = self.open.get(&i).ok_or(StorageError::NoPath(i))?;
        Ok((f, path))
    }

    fn hash(
        &mut self,
        spec: &PieceSpec,
        geometry: &Geometry,
        progress: &Progress,
    ) -> Result<PieceHashes, StorageError> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = hash_piece(
            spec,
            geometry.version().has_v1(),
            &mut buf,
            |file, offset, chunk| {
                self.file(file)
                    .and_then(|(f, path)| read_exact_at(f, path, chunk, offset))
            },
            |n| {
                progress.bytes.fetch_add(n, Ordering::Relaxed);
            },
        );
        self.buf = buf;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metainfo::{BuildFile, Torrent, TorrentBuilder, Version};

    fn payload(dir: &Path, files: &[(&str, usize)]) -> Vec<BuildFile> {
        files
            .iter()
            .map(|(name, len)| {
                let p = dir.join(name);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let data: Vec<u8> = (0..*len).map(|i| (i * 31 + name.len()) as u8).collect();
                std::fs::write(&p, data).unwrap();
                BuildFile {
                    path: name.split('/').map(String::from).collect(),
                    length: *len as u64,
                    executable: false,
                }
            })
            .collect()
    }

    fn build(dir: &Path, files: Vec<BuildFile>, version: Version, pl: u64, threads: usize) -> Torrent {
        let plan = TorrentBuilder::new("payload", files, true, version, pl)
            .plan()
            .unwrap();
        let paths: Vec<Option<PathBuf>> = plan
            .entries()
            .iter()
            .map(|e| e.source.map(|s| dir.join(plan.files()[s].path.join("/"))))
            .collect();
        let hashes = hash_pieces(plan.geometry(), &paths, threads, &Progress::default()).unwrap();
        Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap()
    }

    #[test]
    fn v1_hashes_match_a_plain_concatenation() {
        let dir = tempfile::tempdir().unwrap();
        let files = payload(dir.path(), &[("a/x", 40_000), ("b", 0), ("c", 70_001)]);
        let t = build(dir.path(), files, Version::V1, 16384, 3);
        let mut all = std::fs::read(dir.path().join("a/x")).unwrap();
        all.extend(std::fs::read(dir.path().join("c")).unwrap());
        let expect: Vec<[u8; 20]> = all.chunks(16384).map(metainfo::sha1_of).collect();
        assert_eq!(t.info.pieces, expect);
    }

    #[test]
    fn thread_count_does_not_change_the_result() {
        let dir = tempfile::tempdir().unwrap();
        for v in [Version::V1, Version::V2, Version::Hybrid] {
            let files = payload(dir.path(), &[("a/x", 100_000), ("b", 5), ("c/d/e", 16384 * 3)]);
            let one = build(dir.path(), files.clone(), v, 32768, 1);
            let four = build(dir.path(), files, v, 32768, 4);
            assert_eq!(one, four);
        }
    }

    #[test]
    fn a_short_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = payload(dir.path(), &[("x", 1000)]);
        files[0].length = 2000;
        let plan = TorrentBuilder::new("p", files, true, Version::V1, 16384)
            .plan()
            .unwrap();
        let paths = vec![Some(dir.path().join("x"))];
        let err = hash_pieces(plan.geometry(), &paths, 2, &Progress::default()).unwrap_err();
        assert!(matches!(err, StorageError::Short { needed: 2000, .. }), "{err}");
    }
}
