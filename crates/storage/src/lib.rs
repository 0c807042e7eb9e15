//! Piece geometry on disk: positioned reads across a torrent's files and parallel piece hashing, shared by
//! torrent creation and verification.
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

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use metainfo::merkle::SubtreeHasher;
use metainfo::{Geometry, PieceHashes, PieceSpec, Segment};
use sha1::Digest;

/// Size of each thread's read buffer.
const CHUNK: usize = 128 * 1024;
/// Open files kept per hashing thread.
const MAX_OPEN_PER_THREAD: usize = 64;

/// A disk problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Opening or reading failed.
    #[error("{path}: {source}")]
    Io {
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
    let count = geometry.piece_count();
    let next = AtomicU32::new(0);
    let results: Mutex<Vec<PieceHashes>> = Mutex::new(vec![PieceHashes::default(); count as usize]);
    let failure: Mutex<Option<StorageError>> = Mutex::new(None);
    let threads = threads.clamp(1, 256).min(count.max(1) as usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut worker = Worker {
                    paths,
                    open: HashMap::new(),
                    buf: vec![0u8; CHUNK],
                };
                let mut local = Vec::new();
                loop {
                    if progress.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = geometry.piece(i) else { break };
                    match worker.hash(&spec, geometry, progress) {
                        Ok(h) => local.push((i, h)),
                        Err(e) => {
                            progress.cancel.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
                if let Ok(mut r) = results.lock() {
                    for (i, h) in local {
                        if let Some(slot) = r.get_mut(i as usize) {
                            *slot = h;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    if progress.cancel.load(Ordering::Relaxed) {
        return Err(StorageError::Cancelled);
    }
    results.into_inner().map_err(|_| StorageError::Cancelled)
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
        let mut v1 = geometry.version().has_v1().then(sha1::Sha1::new);
        let mut v2 = spec.v2.map(|p| SubtreeHasher::new(p.leaves));
        for seg in &spec.segments {
            match *seg {
                Segment::Zeros(mut n) => {
                    if let Some(h) = v1.as_mut() {
                        let zeros = [0u8; 4096];
                        while n > 0 {
                            let k = n.min(zeros.len() as u64) as usize;
                            h.update(zeros.get(..k).unwrap_or_default());
                            n -= k as u64;
                        }
                    }
                }
                Segment::Data { file, offset, len } => {
                    let mut done = 0u64;
                    while done < len {
                        let k = (len - done).min(CHUNK as u64) as usize;
                        let mut buf = std::mem::take(&mut self.buf);
                        let chunk = buf.get_mut(..k).unwrap_or_default();
                        let r = self
                            .file(file)
                            .and_then(|(f, path)| read_exact_at(f, path, chunk, offset + done));
                        if r.is_ok() {
                            if let Some(h) = v1.as_mut() {
                                h.update(&*chunk);
                            }
                            if let Some(h) = v2.as_mut() {
                                h.update(chunk);
                            }
                        }
                        self.buf = buf;
                        r?;
                        done += k as u64;
                        progress.bytes.fetch_add(k as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(PieceHashes {
            v1: v1.map(|h| h.finalize().into()),
            v2: v2.map(SubtreeHasher::finish),
        })
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<(), StorageError> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset).map_err(|source| {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            StorageError::Short {
                path: path.to_path_buf(),
                needed: offset + buf.len() as u64,
            }
        } else {
            StorageError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

#[cfg(windows)]
fn read_exact_at(f: &File, path: &Path, mut buf: &mut [u8], mut offset: u64) -> Result<(), StorageError> {
    use std::os::windows::fs::FileExt;
    let end = offset + buf.len() as u64;
    while !buf.is_empty() {
        match f.seek_read(buf, offset) {
            Ok(0) => {
                return Err(StorageError::Short {
                    path: path.to_path_buf(),
                    needed: end,
                })
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(source) => {
                return Err(StorageError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
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
