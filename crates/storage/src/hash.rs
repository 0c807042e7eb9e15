//! The hashing core shared by torrent creation ([`crate::hash_pieces`]) and verification
//! ([`crate::PieceStore::verify_piece`], [`crate::verify_all`]): one piece streamed through a small buffer,
//! and a scheduler that hands pieces to threads from a shared counter.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use metainfo::merkle::SubtreeHasher;
use metainfo::{PieceHashes, PieceSpec, Segment};
use sha1::Digest;

use crate::{Progress, StorageError};

/// Size of each thread's read buffer.
pub(crate) const CHUNK: usize = 128 * 1024;

/// Hash one piece: SHA-1 over all its bytes (pad zeros included) when `v1`, and the v2 merkle subtree over
/// its file data when the piece has a v2 side. `read(file, offset, buf)` fills `buf` from a file;
/// `advance(n)` is told of every `n` bytes read.
pub(crate) fn hash_piece(
    spec: &PieceSpec,
    v1: bool,
    buf: &mut [u8],
    mut read: impl FnMut(usize, u64, &mut [u8]) -> Result<(), StorageError>,
    mut advance: impl FnMut(u64),
) -> Result<PieceHashes, StorageError> {
    let mut h1 = v1.then(sha1::Sha1::new);
    let mut h2 = spec.v2.map(|p| SubtreeHasher::new(p.leaves));
    let step = buf.len().max(1) as u64;
    for seg in &spec.segments {
        match *seg {
            Segment::Zeros(mut n) => {
                if let Some(h) = h1.as_mut() {
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
                    let k = (len - done).min(step) as usize;
                    let chunk = buf.get_mut(..k).unwrap_or_default();
                    read(file, offset + done, chunk)?;
                    if let Some(h) = h1.as_mut() {
                        h.update(&*chunk);
                    }
                    if let Some(h) = h2.as_mut() {
                        h.update(chunk);
                    }
                    done += k as u64;
                    advance(k as u64);
                }
            }
        }
    }
    Ok(PieceHashes {
        v1: h1.map(|h| h.finalize().into()),
        v2: h2.map(SubtreeHasher::finish),
    })
}

/// Run `work(state, piece)` for every piece `0..count` on up to `threads` threads, each with its own
/// `state` from `make`, taking pieces in order from a shared counter (so reads stay close to sequential).
/// Stops at the first error (returned) or when `progress.cancel` is set ([`StorageError::Cancelled`]).
pub(crate) fn parallel_pieces<S, T, M, W>(
    count: u32,
    threads: usize,
    progress: &Progress,
    make: M,
    work: W,
) -> Result<Vec<T>, StorageError>
where
    T: Send + Clone + Default,
    M: Fn() -> S + Sync,
    W: Fn(&mut S, u32) -> Result<T, StorageError> + Sync,
{
    let next = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let results: Mutex<Vec<T>> = Mutex::new(vec![T::default(); count as usize]);
    let failure: Mutex<Option<StorageError>> = Mutex::new(None);
    let threads = threads.clamp(1, 256).min(count.max(1) as usize);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut state = make();
                let mut local = Vec::new();
                loop {
                    if stop.load(Ordering::Relaxed) || progress.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    match work(&mut state, i) {
                        Ok(t) => local.push((i, t)),
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                }
                if let Ok(mut r) = results.lock() {
                    for (i, t) in local {
                        if let Some(slot) = r.get_mut(i as usize) {
                            *slot = t;
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
