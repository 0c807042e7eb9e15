//! Resume data: which pieces are verified, with each file's size and modification time when that was
//! recorded, so a restart can skip re-hashing while the files are unchanged.
//!
//! The file is `<resume_dir>/<info-hash-hex>.resume`, bencoded:
//! `{"version": 1, "info hash": 20 bytes, "pieces": count, "have": bitfield (BEP 3 order, high bit first),
//! "files": [{"size": n, "mtime_ns": t} or {} for a file that does not exist (and for pad files)]}`.
//! It is written atomically (a temporary file, `fsync`, `rename`, `fsync` of the folder), so a crash leaves
//! the old file or the new one, never a mix.
//!
//! Use: verify pieces, [`crate::PieceStore::flush`], then [`ResumeData::capture`] and [`ResumeData::save`]
//! (periodically and at shutdown), marking only pieces verified *and* flushed before the capture. On start,
//! [`load_resume`] returns the pieces only if every file still has the recorded size and modification time
//! (a write after the capture changes them, so a crash between saves leads to a re-check, never to trusting
//! stale data); otherwise [`crate::FileStore::check_existing`] verifies everything.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bencode::Encoder;
use metainfo::{InfoHashV1, Segment};

use crate::file::FileStore;
use crate::io::no_follow;
use crate::{Progress, StorageError};

/// Format version written to, and required in, resume files.
const FORMAT: i64 = 1;

/// A file's size and modification time, as recorded in resume data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// What a resume file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeData {
    /// The torrent's swarm info-hash (v1, or truncated v2 for a v2-only torrent): names the file.
    pub info_hash: InfoHashV1,
    /// Number of pieces.
    pub pieces: u32,
    /// The verified pieces as a bitfield (see [`bitfield_from_bools`]).
    pub have: Vec<u8>,
    /// Each file's stamp, in layout order; `None` for a file that did not exist, and for pad files.
    pub files: Vec<Option<FileStamp>>,
}

/// Pack piece flags into a BEP 3 bitfield (piece 0 is the high bit of byte 0; spare bits zero).
pub fn bitfield_from_bools(have: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; have.len().div_ceil(8)];
    for (i, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        if let Some(b) = out.get_mut(i / 8) {
            *b |= 0x80 >> (i % 8);
        }
    }
    out
}

/// Unpack a bitfield of `count` pieces; `None` if its length is wrong or a spare bit is set.
pub fn bools_from_bitfield(bits: &[u8], count: u32) -> Option<Vec<bool>> {
    let count = count as usize;
    if bits.len() != count.div_ceil(8) {
        return None;
    }
    let flags: Vec<bool> = (0..bits.len() * 8)
        .map(|i| bits.get(i / 8).is_some_and(|b| b & (0x80 >> (i % 8)) != 0))
        .collect();
    if flags.iter().skip(count).any(|&f| f) {
        return None;
    }
    Some(flags.into_iter().take(count).collect())
}

/// Where the resume data of `info_hash` lives.
pub fn resume_path(resume_dir: &Path, info_hash: &InfoHashV1) -> PathBuf {
    resume_dir.join(format!("{}.resume", info_hash.to_hex()))
}

impl ResumeData {
    /// Record `have` (one flag per piece) with the current stamps of the store's files. Call after
    /// [`crate::PieceStore::flush`], with only pieces verified and flushed marked.
    pub fn capture(store: &FileStore, info_hash: InfoHashV1, have: &[bool]) -> Result<Self, StorageError> {
        Ok(ResumeData {
            info_hash,
            pieces: u32::try_from(have.len()).unwrap_or(u32::MAX),
            have: bitfield_from_bools(have),
            files: store.stamps()?,
        })
    }

    /// The verified pieces, one flag per piece (`None` if the bitfield does not fit the piece count).
    pub fn have_flags(&self) -> Option<Vec<bool>> {
        bools_from_bitfield(&self.have, self.pieces)
    }

    /// The bencoded file.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::new();
        e.dict(|d| {
            d.entry(b"version", |e| e.int(FORMAT));
            d.entry(b"info hash", |e| e.bytes(&self.info_hash.0));
            d.entry(b"pieces", |e| e.int(i64::from(self.pieces)));
            d.entry(b"have", |e| e.bytes(&self.have));
            d.entry(b"files", |e| {
                e.list(|l| {
                    for f in &self.files {
                        l.dict(|fd| {
                            if let Some(s) = f {
                                fd.entry(b"size", |e| e.int(i64::try_from(s.size).unwrap_or(i64::MAX)));
                                fd.entry(b"mtime_ns", |e| e.int(s.mtime_ns));
                            }
                        });
                    }
                });
            });
        });
        e.finish()
    }

    /// Parse a resume file; `None` if it is not one (of this format version).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let v = bencode::decode(bytes).ok()?;
        let d = v.as_dict()?;
        if d.get(b"version")?.as_int()? != FORMAT {
            return None;
        }
        let info_hash = InfoHashV1(d.get(b"info hash")?.as_bytes()?.try_into().ok()?);
        let pieces = u32::try_from(d.get(b"pieces")?.as_int()?).ok()?;
        let have = d.get(b"have")?.as_bytes()?.to_vec();
        let files = d
            .get(b"files")?
            .as_list()?
            .iter()
            .map(|f| {
                let fd = f.as_dict()?;
                if fd.is_empty() {
                    return Some(None);
                }
                Some(Some(FileStamp {
                    size: u64::try_from(fd.get(b"size")?.as_int()?).ok()?,
                    mtime_ns: fd.get(b"mtime_ns")?.as_int()?,
                }))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ResumeData {
            info_hash,
            pieces,
            have,
            files,
        })
    }

    /// Write the file atomically to [`resume_path`] under `resume_dir` (created if missing); returns its
    /// path.
    pub fn save(&self, resume_dir: &Path) -> Result<PathBuf, StorageError> {
        std::fs::create_dir_all(resume_dir).map_err(|source| StorageError::Io {
            path: resume_dir.to_path_buf(),
            source,
        })?;
        let path = resume_path(resume_dir, &self.info_hash);
        let tmp = resume_dir.join(format!("{}.resume.tmp", self.info_hash.to_hex()));
        let write_err = |source| StorageError::Write {
            path: tmp.clone(),
            source,
        };
        {
            let mut f = no_follow(true).truncate(true).open(&tmp).map_err(write_err)?;
            f.write_all(&self.encode()).map_err(write_err)?;
            f.sync_all().map_err(write_err)?;
        }
        std::fs::rename(&tmp, &path).map_err(|source| StorageError::Write {
            path: path.clone(),
            source,
        })?;
        // Make the rename itself durable (best effort: not every platform can sync a folder).
        if let Ok(dir) = std::fs::File::open(resume_dir) {
            if let Err(e) = dir.sync_all() {
                tracing::debug!("{}: folder sync failed: {e}", resume_dir.display());
            }
        }
        Ok(path)
    }
}

/// The verified pieces from the resume data of `info_hash`, if it exists, is valid for this torrent, and
/// every file still has the recorded size and modification time (a file recorded as absent must still be
/// absent, and no piece touching it may be marked). `None` means: verify the data
/// ([`FileStore::check_existing`]). The reason is logged.
pub fn load_resume(resume_dir: &Path, info_hash: &InfoHashV1, store: &FileStore) -> Option<Vec<bool>> {
    let path = resume_path(resume_dir, info_hash);
    let stale = |why: &str| {
        tracing::info!(
            "{}: not used ({why}); the data will be re-checked",
            path.display()
        );
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            tracing::debug!("{}: no resume data", path.display());
            return None;
        }
        Err(e) => {
            stale(&e.to_string());
            return None;
        }
    };
    let Some(data) = ResumeData::decode(&bytes) else {
        stale("not a resume file of this version");
        return None;
    };
    let layout = crate::PieceStore::layout(store);
    if data.info_hash != *info_hash {
        stale("it is for another torrent");
        return None;
    }
    if data.pieces != layout.piece_count() || data.files.len() != layout.files().len() {
        stale("the piece or file count differs");
        return None;
    }
    let Some(have) = data.have_flags() else {
        stale("the bitfield is malformed");
        return None;
    };
    let now = match store.stamps() {
        Ok(s) => s,
        Err(e) => {
            stale(&e.to_string());
            return None;
        }
    };
    for (i, (was, is)) in data.files.iter().zip(&now).enumerate() {
        if was != is {
            let name = store
                .file_path(i)
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            stale(&format!("{name} changed size or modification time"));
            return None;
        }
    }
    for (p, _) in have.iter().enumerate().filter(|(_, h)| **h) {
        let spec = layout.geometry().piece(u32::try_from(p).ok()?)?;
        let missing = spec.segments.iter().any(|s| match *s {
            Segment::Data { file, .. } => data.files.get(file).is_none_or(Option::is_none),
            Segment::Zeros(_) => false,
        });
        if missing {
            stale(&format!(
                "piece {p} is marked but one of its files does not exist"
            ));
            return None;
        }
    }
    Some(have)
}

impl FileStore {
    /// The current size and modification time of each file (`None` for a file that does not exist, and for
    /// pad files).
    pub fn stamps(&self) -> Result<Vec<Option<FileStamp>>, StorageError> {
        let layout = crate::PieceStore::layout(self);
        layout
            .files()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if !f.stored() {
                    return Ok(None);
                }
                let path = self.file_path(i).ok_or(StorageError::NoPath(i))?;
                stamp(path)
            })
            .collect()
    }

    /// The verified pieces at start: from the resume data if it still matches the files
    /// ([`load_resume`]), else by verifying every piece on `threads` threads
    /// ([`FileStore::check_existing`]).
    pub fn resume_or_check(
        &self,
        resume_dir: &Path,
        info_hash: &InfoHashV1,
        threads: usize,
        progress: &Progress,
    ) -> Result<Vec<bool>, StorageError> {
        match load_resume(resume_dir, info_hash, self) {
            Some(have) => Ok(have),
            None => self.check_existing(threads, progress),
        }
    }
}

fn stamp(path: &Path) -> Result<Option<FileStamp>, StorageError> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StorageError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if !meta.is_file() {
        return Err(StorageError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mtime = meta.modified().map_err(|source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mtime_ns = match mtime.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    };
    Ok(Some(FileStamp {
        size: meta.len(),
        mtime_ns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_are_high_bit_first_with_spare_bits_zero() {
        let have = [true, false, false, false, false, false, false, true, true];
        let bits = bitfield_from_bools(&have);
        assert_eq!(bits, vec![0b1000_0001, 0b1000_0000]);
        assert_eq!(bools_from_bitfield(&bits, 9).unwrap(), have);
        assert_eq!(bools_from_bitfield(&bits, 17), None, "wrong length");
        assert_eq!(
            bools_from_bitfield(&[0b1100_0000, 0b1100_0000], 9),
            None,
            "spare bit set"
        );
        assert_eq!(bools_from_bitfield(&[], 0), Some(Vec::new()));
    }

    #[test]
    fn resume_data_encodes_and_decodes() {
        let data = ResumeData {
            info_hash: InfoHashV1([3; 20]),
            pieces: 3,
            have: bitfield_from_bools(&[true, false, true]),
            files: vec![
                Some(FileStamp {
                    size: 10,
                    mtime_ns: 1_700_000_000_123_456_789,
                }),
                None,
                Some(FileStamp {
                    size: 0,
                    mtime_ns: -5,
                }),
            ],
        };
        let bytes = data.encode();
        assert_eq!(ResumeData::decode(&bytes), Some(data.clone()));
        assert_eq!(data.have_flags(), Some(vec![true, false, true]));
        assert_eq!(ResumeData::decode(b"de"), None);
        assert_eq!(ResumeData::decode(&bytes[..bytes.len() - 1]), None);
    }
}
