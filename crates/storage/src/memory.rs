//! [`MemoryStore`]: a torrent's pieces in memory, for tests and the simulator, behaving as a
//! [`crate::FileStore`] with default options does.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::hash::{hash_piece, CHUNK};
use crate::layout::Layout;
use crate::store::{block_spec, hashes_match, runs, PieceStore, Run};
use crate::StorageError;

/// Bytes per stored chunk: memory grows with the data written, not with the torrent's size.
const MEM_CHUNK: u64 = 16 * 1024;

/// A created file's written chunks, by index.
type Chunks = HashMap<u64, Box<[u8]>>;

/// A torrent's pieces in memory, with the same behaviour as a [`crate::FileStore`] opened with default
/// options: empty files exist from the start, other files from their first write (reading as zeros where
/// nothing was written), pad files never exist and read as zeros, reading a file that does not exist is an
/// error for which [`StorageError::is_absent`] is true, and verification treats it as an absent piece.
#[derive(Debug)]
pub struct MemoryStore {
    layout: Layout,
    /// Per file: `None` until created, then its written chunks by index.
    files: Vec<Mutex<Option<Chunks>>>,
}

impl MemoryStore {
    /// An empty store for `layout` (only the torrent's empty files exist).
    pub fn new(layout: Layout) -> Self {
        let files = layout
            .files()
            .iter()
            .map(|f| Mutex::new((f.stored() && f.length == 0).then(HashMap::new)))
            .collect();
        MemoryStore { layout, files }
    }

    /// The contents of file `i` (its full length, holes as zeros), or `None` if it does not exist.
    pub fn file_contents(&self, i: usize) -> Option<Vec<u8>> {
        let length = self.layout.files().get(i)?.length;
        let guard = self.file(i)?;
        let chunks = guard.as_ref()?;
        let mut out = vec![0u8; usize::try_from(length).ok()?];
        for (&c, data) in chunks {
            let at = (c * MEM_CHUNK) as usize;
            let n = data.len().min(out.len().saturating_sub(at));
            if let (Some(dst), Some(src)) = (out.get_mut(at..at + n), data.get(..n)) {
                dst.copy_from_slice(src);
            }
        }
        Some(out)
    }

    /// True if file `i` exists.
    pub fn file_exists(&self, i: usize) -> bool {
        self.file(i).is_some_and(|g| g.is_some())
    }

    fn file(&self, i: usize) -> Option<MutexGuard<'_, Option<Chunks>>> {
        self.files
            .get(i)
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn absent(&self, i: usize) -> StorageError {
        StorageError::Io {
            path: self
                .layout
                .files()
                .get(i)
                .map(|f| f.relative_path())
                .unwrap_or_default(),
            source: std::io::ErrorKind::NotFound.into(),
        }
    }

    fn write_file(&self, i: usize, mut offset: u64, mut data: &[u8]) -> Result<(), StorageError> {
        let mut guard = self.file(i).ok_or(StorageError::NoPath(i))?;
        let chunks = guard.get_or_insert_with(HashMap::new);
        while !data.is_empty() {
            let c = offset / MEM_CHUNK;
            let within = (offset % MEM_CHUNK) as usize;
            let n = data.len().min(MEM_CHUNK as usize - within);
            let chunk = chunks
                .entry(c)
                .or_insert_with(|| vec![0u8; MEM_CHUNK as usize].into_boxed_slice());
            let (now, rest) = data.split_at(n);
            if let Some(dst) = chunk.get_mut(within..within + n) {
                dst.copy_from_slice(now);
            }
            data = rest;
            offset += n as u64;
        }
        Ok(())
    }

    fn read_file(&self, i: usize, mut offset: u64, mut buf: &mut [u8]) -> Result<(), StorageError> {
        let guard = self.file(i).ok_or(StorageError::NoPath(i))?;
        let chunks = guard.as_ref().ok_or_else(|| self.absent(i))?;
        while !buf.is_empty() {
            let c = offset / MEM_CHUNK;
            let within = (offset % MEM_CHUNK) as usize;
            let n = buf.len().min(MEM_CHUNK as usize - within);
            let (now, rest) = std::mem::take(&mut buf).split_at_mut(n);
            match chunks.get(&c).and_then(|d| d.get(within..within + n)) {
                Some(src) => now.copy_from_slice(src),
                None => now.fill(0),
            }
            buf = rest;
            offset += n as u64;
        }
        Ok(())
    }
}

impl PieceStore for MemoryStore {
    fn layout(&self) -> &Layout {
        &self.layout
    }

    fn write_block(&self, piece: u32, offset: u32, data: &[u8]) -> Result<(), StorageError> {
        let spec = block_spec(&self.layout, piece, offset, data.len())?;
        for run in runs(&spec, offset, data.len()) {
            if let Run::Data {
                file,
                offset,
                at,
                len,
            } = run
            {
                self.write_file(file, offset, data.get(at..at + len).unwrap_or_default())?;
            }
        }
        Ok(())
    }

    fn read_block(&self, piece: u32, offset: u32, buf: &mut [u8]) -> Result<(), StorageError> {
        let spec = block_spec(&self.layout, piece, offset, buf.len())?;
        for run in runs(&spec, offset, buf.len()) {
            match run {
                Run::Zeros { at, len } => buf.get_mut(at..at + len).unwrap_or_default().fill(0),
                Run::Data {
                    file,
                    offset,
                    at,
                    len,
                } => self.read_file(file, offset, buf.get_mut(at..at + len).unwrap_or_default())?,
            }
        }
        Ok(())
    }

    fn verify_piece(&self, piece: u32) -> Result<bool, StorageError> {
        let spec = self
            .layout
            .geometry()
            .piece(piece)
            .ok_or(StorageError::OutOfRange {
                piece,
                offset: 0,
                len: 0,
            })?;
        let mut buf = vec![0u8; (CHUNK as u64).min(spec.len()) as usize];
        let hashed = hash_piece(
            &spec,
            self.layout.checks_v1(),
            &mut buf,
            |file, offset, chunk| self.read_file(file, offset, chunk),
            |_| {},
        );
        match hashed {
            Ok(h) => Ok(hashes_match(&self.layout, piece, &h)),
            Err(e) if e.is_absent() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
