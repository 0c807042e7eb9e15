//! [`FileStore`]: a torrent's pieces on real files under a download folder.
//!
//! - File `i` lives at `download_dir/Info::disk_path(i)` (paths are sanitised by `metainfo`); pad files are
//!   never created, written or read, and read as zeros.
//! - Empty files are created when the store is opened; other files on their first write, extended with
//!   `set_len` to their full length (sparse: no zeros are written). Existing data is never truncated.
//! - Handles are opened lazily and kept in a least-recently-used cache capped at
//!   [`FileStoreOptions::max_open_files`]; I/O is positioned (`pread`/`pwrite`), so threads share handles.
//! - Nothing is read or written outside the download folder: every open checks that the file's deepest
//!   existing ancestor resolves (through any symbolic links) inside the canonical download folder, and the
//!   file itself is opened with `O_NOFOLLOW`, so a symbolic link in its place is refused, never followed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::hash::{hash_piece, CHUNK};
use crate::io::{open_file, read_exact_at, write_all_at};
use crate::layout::Layout;
use crate::store::{block_spec, hashes_match, runs, verify_all, PieceStore, Run};
use crate::{Progress, StorageError};

/// How a [`FileStore`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStoreOptions {
    /// Most file handles kept open at once (at least 1). Handles in use by a running operation stay open
    /// until it ends, so the process may briefly hold up to this plus one per disk thread.
    pub max_open_files: usize,
    /// Never create or write anything (seeding an existing folder): writes fail with
    /// [`StorageError::ReadOnly`] and empty files are not created.
    pub read_only: bool,
    /// Extend a file to its full length when first opened for writing (`set_len`: sparse where the file
    /// system allows, so no zeros are written). Off, files grow as blocks arrive.
    pub preallocate: bool,
    /// Write whole 4 KiB-aligned spans with `O_DIRECT` (Linux): straight from the caller's buffer to the
    /// disk, skipping the copy into the page cache. Only spans whose memory address, file offset and length
    /// are multiples of [`DIRECT_ALIGN`] go this way (the caller gives aligned buffers for whole pieces);
    /// the rest, and file systems that refuse `O_DIRECT` (tmpfs), are written through the page cache.
    pub direct_writes: bool,
}

/// The alignment `O_DIRECT` writes need (memory address, file offset and length).
pub const DIRECT_ALIGN: usize = 4096;

/// A zeroed byte buffer whose first byte sits on a [`DIRECT_ALIGN`] boundary, so a whole piece held in it
/// can be written with `O_DIRECT` (see [`FileStoreOptions::direct_writes`]). Safe code: a vector with
/// [`DIRECT_ALIGN`] bytes of slack, used from its first aligned byte (the vector never grows, so its
/// buffer never moves).
#[derive(Debug)]
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zero bytes.
    pub fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len.saturating_add(DIRECT_ALIGN)];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        AlignedBuf { raw, start, len }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.raw
            .get_mut(self.start..self.start + self.len)
            .unwrap_or_default()
    }
}

impl Default for FileStoreOptions {
    fn default() -> Self {
        FileStoreOptions {
            max_open_files: 128,
            read_only: false,
            preallocate: true,
            direct_writes: false,
        }
    }
}

/// A torrent's pieces on real files. See the module documentation.
#[derive(Debug)]
pub struct FileStore {
    layout: Layout,
    root: PathBuf,
    /// Absolute path of every file (pad files included, never used).
    paths: Vec<PathBuf>,
    options: FileStoreOptions,
    handles: Mutex<Handles>,
}

#[derive(Debug, Default)]
struct Handles {
    open: HashMap<usize, Handle>,
    /// Last-use tick -> file, oldest first.
    lru: BTreeMap<u64, usize>,
    tick: u64,
    /// Files written since the last flush.
    dirty: HashSet<usize>,
    /// `O_DIRECT` write handles (`None`: the file system refused `O_DIRECT` for that file).
    direct: HashMap<usize, Option<Arc<File>>>,
}

#[derive(Debug)]
struct Handle {
    file: Arc<File>,
    writable: bool,
    tick: u64,
}

impl Handles {
    fn touch(&mut self, i: usize) {
        self.tick += 1;
        let tick = self.tick;
        if let Some(h) = self.open.get_mut(&i) {
            self.lru.remove(&h.tick);
            h.tick = tick;
            self.lru.insert(tick, i);
        }
    }

    fn insert(&mut self, i: usize, file: Arc<File>, writable: bool, cap: usize) {
        if let Some(old) = self.open.remove(&i) {
            self.lru.remove(&old.tick);
        }
        self.tick += 1;
        self.open.insert(
            i,
            Handle {
                file,
                writable,
                tick: self.tick,
            },
        );
        self.lru.insert(self.tick, i);
        while self.open.len() > cap.max(1) {
            let Some((_, victim)) = self.lru.pop_first() else {
                break;
            };
            self.open.remove(&victim);
        }
    }
}

impl FileStore {
    /// Open the store for `layout` under `download_dir` (created if missing, unless read-only). Refuses a
    /// file whose path leads outside the folder through a symbolic link, is itself a symbolic link, or is
    /// not a regular file; creates the torrent's empty files.
    pub fn open(
        layout: Layout,
        download_dir: &Path,
        options: FileStoreOptions,
    ) -> Result<Self, StorageError> {
        let io = |source| StorageError::Io {
            path: download_dir.to_path_buf(),
            source,
        };
        if !options.read_only {
            std::fs::create_dir_all(download_dir).map_err(io)?;
        }
        let root = std::fs::canonicalize(download_dir).map_err(io)?;
        let paths: Vec<PathBuf> = layout
            .files()
            .iter()
            .map(|f| root.join(f.relative_path()))
            .collect();
        let store = FileStore {
            layout,
            root,
            paths,
            options,
            handles: Mutex::new(Handles::default()),
        };
        for (i, f) in store.layout.files().iter().enumerate() {
            if !f.stored() {
                continue;
            }
            let path = store.path_of(i)?;
            check_file(&store.root, path)?;
            if f.length == 0 && !store.options.read_only {
                store.open_write(i)?;
            }
        }
        Ok(store)
    }

    /// The canonical download folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where file `i` of the layout lives (pad files have a path too, but nothing is ever there).
    pub fn file_path(&self, i: usize) -> Option<&Path> {
        self.paths.get(i).map(PathBuf::as_path)
    }

    /// Handles open now (at most [`FileStoreOptions::max_open_files`]).
    pub fn open_files(&self) -> usize {
        self.lock().open.len()
    }

    /// Which pieces of the data already on disk are intact, verifying every piece on `threads` threads
    /// (missing or short files make their pieces absent). For a start without usable resume data, and for
    /// seeding an existing folder.
    pub fn check_existing(&self, threads: usize, progress: &Progress) -> Result<Vec<bool>, StorageError> {
        verify_all(self, threads, progress)
    }

    fn lock(&self) -> MutexGuard<'_, Handles> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn path_of(&self, i: usize) -> Result<&Path, StorageError> {
        self.paths
            .get(i)
            .map(PathBuf::as_path)
            .ok_or(StorageError::NoPath(i))
    }

    /// A handle to file `i`, writable if `write`, from the cache or freshly opened.
    fn handle(&self, i: usize, write: bool) -> Result<Arc<File>, StorageError> {
        {
            let mut h = self.lock();
            if let Some(e) = h.open.get(&i) {
                if e.writable || !write {
                    let f = Arc::clone(&e.file);
                    h.touch(i);
                    return Ok(f);
                }
            }
        }
        // Open outside the lock, so a slow open does not hold up I/O on other files.
        let f = Arc::new(if write {
            self.open_write(i)?
        } else {
            self.open_read(i)?
        });
        let mut h = self.lock();
        match h.open.get(&i) {
            Some(e) if e.writable && !write => {
                let f = Arc::clone(&e.file);
                h.touch(i);
                Ok(f)
            }
            _ => {
                h.insert(i, Arc::clone(&f), write, self.options.max_open_files);
                Ok(f)
            }
        }
    }

    /// Writes the longest aligned prefix of `chunk` at `offset` with `O_DIRECT`, when enabled and possible;
    /// returns how many bytes it wrote (the caller writes the rest through the page cache).
    fn write_direct(&self, file: usize, chunk: &[u8], offset: u64) -> Result<usize, StorageError> {
        let align = DIRECT_ALIGN;
        let n = chunk.len() - chunk.len() % align;
        if !self.options.direct_writes
            || n == 0
            || !offset.is_multiple_of(align as u64)
            || !(chunk.as_ptr() as usize).is_multiple_of(align)
        {
            return Ok(0);
        }
        let Some(f) = self.direct_handle(file)? else {
            return Ok(0);
        };
        let path = self.path_of(file)?;
        match write_all_at(&f, path, chunk.get(..n).unwrap_or_default(), offset) {
            Ok(()) => Ok(n),
            Err(StorageError::Write { source, .. }) if source.raw_os_error() == Some(libc::EINVAL) => {
                // The file system takes O_DIRECT opens but not these writes: page cache from now on.
                self.lock().direct.insert(file, None);
                Ok(0)
            }
            Err(e) => Err(e),
        }
    }

    /// The `O_DIRECT` handle of file `i`, opened (after the normal handle, which creates and sizes the
    /// file) on first use; `None` where the file system refuses it.
    #[cfg(target_os = "linux")]
    fn direct_handle(&self, i: usize) -> Result<Option<Arc<File>>, StorageError> {
        if let Some(h) = self.lock().direct.get(&i) {
            return Ok(h.clone());
        }
        self.handle(i, true)?;
        let path = self.path_of(i)?;
        let opened = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_DIRECT)
                .open(path)
                .ok()
                .map(Arc::new)
        };
        let mut h = self.lock();
        if h.direct.len() >= self.options.max_open_files.max(1) {
            h.direct.clear();
        }
        h.direct.insert(i, opened.clone());
        Ok(opened)
    }

    #[cfg(not(target_os = "linux"))]
    fn direct_handle(&self, _i: usize) -> Result<Option<Arc<File>>, StorageError> {
        Ok(None)
    }

    fn open_read(&self, i: usize) -> Result<File, StorageError> {
        let path = self.path_of(i)?;
        check_ancestors(&self.root, path)?;
        open_file(path, false)
    }

    /// Open file `i` for writing, creating it and its folders (inside the download folder only) and
    /// extending it to its length.
    fn open_write(&self, i: usize) -> Result<File, StorageError> {
        let path = self.path_of(i)?;
        if self.options.read_only {
            return Err(StorageError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        check_ancestors(&self.root, path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
            // Re-check after creating: the folders must still resolve inside the download folder.
            check_ancestors(&self.root, path)?;
        }
        let f = open_file(path, true)?;
        let length = self.layout.files().get(i).map_or(0, |f| f.length);
        if self.options.preallocate {
            let have = f.metadata().map_err(|source| StorageError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            if have.len() < length {
                f.set_len(length).map_err(|source| StorageError::Write {
                    path: path.to_path_buf(),
                    source,
                })?;
            }
        }
        Ok(f)
    }
}

impl PieceStore for FileStore {
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
                let chunk = data.get(at..at + len).unwrap_or_default();
                let direct = self.write_direct(file, chunk, offset)?;
                if direct < chunk.len() {
                    let f = self.handle(file, true)?;
                    let rest = chunk.get(direct..).unwrap_or_default();
                    write_all_at(&f, self.path_of(file)?, rest, offset + direct as u64)?;
                }
                self.lock().dirty.insert(file);
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
                } => {
                    let f = self.handle(file, false)?;
                    let chunk = buf.get_mut(at..at + len).unwrap_or_default();
                    read_exact_at(&f, self.path_of(file)?, chunk, offset)?;
                }
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
        let mut current: Option<(usize, Arc<File>)> = None;
        let hashed = hash_piece(
            &spec,
            self.layout.checks_v1(),
            &mut buf,
            |file, offset, chunk| {
                let f = match &current {
                    Some((i, f)) if *i == file => Arc::clone(f),
                    _ => {
                        let f = self.handle(file, false)?;
                        current = Some((file, Arc::clone(&f)));
                        f
                    }
                };
                read_exact_at(&f, self.path_of(file)?, chunk, offset)
            },
            |_| {},
        );
        match hashed {
            Ok(h) => Ok(hashes_match(&self.layout, piece, &h)),
            Err(e) if e.is_absent() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Take the set first: a write that lands after this marks its file again for the next flush.
        let dirty: Vec<usize> = std::mem::take(&mut self.lock().dirty).into_iter().collect();
        let mut first = None;
        for i in dirty {
            let synced = self.handle(i, false).and_then(|f| {
                f.sync_data().map_err(|source| StorageError::Write {
                    path: self.paths.get(i).cloned().unwrap_or_default(),
                    source,
                })
            });
            if let Err(e) = synced {
                self.lock().dirty.insert(i);
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Check a torrent file's path before use: not a symbolic link itself, a regular file if it exists, and
/// inside `root` through whatever links its folders are.
fn check_file(root: &Path, path: &Path) -> Result<(), StorageError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(StorageError::Symlink {
                path: path.to_path_buf(),
            })
        }
        Ok(m) if !m.is_file() => {
            return Err(StorageError::NotAFile {
                path: path.to_path_buf(),
            })
        }
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    check_ancestors(root, path)
}

/// The deepest existing ancestor of `path` (below `root`) must resolve inside `root` (canonical). A dangling
/// link there is refused too (creating folders through it could create them elsewhere).
fn check_ancestors(root: &Path, path: &Path) -> Result<(), StorageError> {
    for a in path.ancestors().skip(1) {
        if a == root || !a.starts_with(root) {
            return Ok(());
        }
        match std::fs::symlink_metadata(a) {
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(StorageError::Io {
                    path: a.to_path_buf(),
                    source,
                })
            }
            Ok(meta) => {
                let real = match std::fs::canonicalize(a) {
                    Ok(r) => r,
                    Err(_) if meta.file_type().is_symlink() => {
                        return Err(StorageError::Symlink {
                            path: a.to_path_buf(),
                        })
                    }
                    Err(source) => {
                        return Err(StorageError::Io {
                            path: a.to_path_buf(),
                            source,
                        })
                    }
                };
                if !real.starts_with(root) {
                    let rest = path.strip_prefix(a).unwrap_or(path);
                    return Err(StorageError::Escapes {
                        path: path.to_path_buf(),
                        target: real.join(rest),
                        root: root.to_path_buf(),
                    });
                }
                return Ok(());
            }
        }
    }
    Ok(())
}
