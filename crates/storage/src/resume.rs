//! Resume data: which pieces are verified, with each file's size and modification time when that was
//! recorded, so a restart re-hashes only the pieces of files that changed since.
//!
//! The file is `<resume_dir>/<info-hash-hex>.resume`, bencoded:
//! `{"version": 1, "info hash": 20 bytes, "pieces": count, "have": bitfield (BEP 3 order, high bit first),
//! "files": [{"size": n, "mtime_ns": t} or {} for a file that does not exist (and for pad files)]}`.
//! It is written atomically (a temporary file, `fsync`, `rename`, `fsync` of the folder), so a crash leaves
//! the old file or the new one, never a mix.
//!
//! Use: verify pieces, [`crate::PieceStore::flush`], then [`ResumeData::capture`] and [`ResumeData::save`]
//! (periodically and at shutdown), marking only pieces verified *and* flushed before the capture. On start,
//! [`FileStore::resume`] applies the data file by file ([`plan_resume`] decides, without reading any data):
//!
//! - A file whose size and modification time are those recorded (or that was recorded as absent and still
//!   is) is *unchanged*. Pad files are always unchanged. A piece lying entirely in unchanged files is
//!   *trusted*: it keeps its recorded flag, without hashing. This is sound because a piece is marked only
//!   once verified and flushed before the capture, and the client writes only to unmarked pieces afterwards.
//! - A file whose size or modification time differs, or that was recorded as absent but exists now, is
//!   *changed*: every piece touching it is re-checked by hashing, marked or not (an unmarked piece may have
//!   been completed after the last save, which is the normal case after a crash during a download; a marked
//!   one may have been modified by someone else). Only those pieces are hashed, on all the threads given
//!   ([`crate::verify_pieces`]).
//! - A file recorded as present that no longer exists is *missing*: its pieces are absent (nothing to hash).
//!   More generally, a piece that is not trusted and touches a file that does not exist now is absent without
//!   hashing. The other files are still trusted or re-checked as above.
//!
//! The whole resume file is ignored, and every piece verified ([`FileStore::check_existing`]), when it does
//! not exist or cannot be read, is not a resume file of this format, is for another torrent, has another
//! piece or file count, has a malformed bitfield, or contradicts itself (a marked piece touching a file
//! recorded as absent, or recorded as shorter than the piece needs). What was trusted, re-checked and lost
//! is logged at info level.
//!
//! A write in the same timestamp tick as the capture could leave a file's stamp unchanged; this only makes
//! a piece completed after the save look unmarked (it is downloaded again), never a stale piece trusted.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use bencode::Encoder;
use metainfo::{InfoHashV1, Segment};

use crate::file::FileStore;
use crate::io::no_follow;
use crate::store::verify_pieces;
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

/// How resume data applies to the files on disk now (see the module documentation); from [`plan_resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// One flag per piece: the recorded flag for trusted pieces, `false` for the pieces in
    /// [`ResumePlan::recheck`] and [`ResumePlan::missing`].
    pub have: Vec<bool>,
    /// The pieces to verify by hashing, ascending: every piece touching a changed file (and no file that is
    /// absent now), whatever its recorded flag.
    pub recheck: Vec<u32>,
    /// The pieces absent without hashing: not trusted, and touching a file that does not exist now.
    pub missing: Vec<u32>,
    /// Files (layout indexes) whose size or modification time differs from the record, or that were recorded
    /// as absent but exist now.
    pub changed_files: Vec<usize>,
    /// Files recorded as present that no longer exist.
    pub missing_files: Vec<usize>,
}

impl ResumePlan {
    /// Pieces whose flag comes from the resume data, unhashed (marked or not).
    pub fn trusted_pieces(&self) -> u32 {
        let n = self
            .have
            .len()
            .saturating_sub(self.recheck.len())
            .saturating_sub(self.missing.len());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// True when every piece is trusted: nothing to hash, nothing lost.
    pub fn all_trusted(&self) -> bool {
        self.recheck.is_empty() && self.missing.is_empty()
    }
}

/// Where the pieces found at start came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeSource {
    /// Every piece trusted from the resume data: nothing hashed.
    Resumed,
    /// Resume data used for the unchanged files; the pieces touching changed files were hashed, those
    /// touching missing files are absent.
    PartlyRechecked,
    /// No usable resume data: every piece hashed.
    FullCheck,
}

/// What [`FileStore::resume`] found, and how much it hashed to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumeOutcome {
    /// The verified pieces, one flag per piece.
    pub have: Vec<bool>,
    /// Pieces hashed.
    pub checked_pieces: u32,
    /// Bytes of the pieces hashed (what `progress.bytes` reaches when not cancelled).
    pub checked_bytes: u64,
    /// Pieces whose flag came from the resume data without hashing (marked or not).
    pub trusted_pieces: u32,
    /// Pieces absent without hashing: not trusted (a file they touch changed or is gone), and touching a file
    /// that does not exist now.
    pub missing_pieces: u32,
    /// Where the flags came from.
    pub source: ResumeSource,
}

/// Apply the resume data of `info_hash` to the files as they are now, file by file, without reading any
/// data: which pieces are trusted, which must be re-checked, which are lost (see the module
/// documentation). `None` means the resume data is missing or unusable, so every piece must be verified
/// ([`FileStore::check_existing`]); the reason is logged, as is every changed or missing file.
pub fn plan_resume(resume_dir: &Path, info_hash: &InfoHashV1, store: &FileStore) -> Option<ResumePlan> {
    let path = resume_path(resume_dir, info_hash);
    let stale = |why: &str| {
        tracing::info!(
            "{}: not used ({why}); every piece will be checked",
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
    let Some(recorded) = data.have_flags() else {
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
    let name = |i: usize| {
        store
            .file_path(i)
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };

    let mut plan = ResumePlan {
        have: vec![false; recorded.len()],
        recheck: Vec::new(),
        missing: Vec::new(),
        changed_files: Vec::new(),
        missing_files: Vec::new(),
    };
    let mut unchanged = vec![true; now.len()];
    for (i, ((was, is), same)) in data.files.iter().zip(&now).zip(&mut unchanged).enumerate() {
        match (was, is) {
            _ if was == is => continue,
            (Some(_), None) => plan.missing_files.push(i),
            _ => plan.changed_files.push(i),
        }
        *same = false;
    }

    for (p, (&marked, flag)) in recorded.iter().zip(&mut plan.have).enumerate() {
        let index = u32::try_from(p).ok()?;
        let spec = layout.geometry().piece(index)?;
        let files = || {
            spec.segments.iter().filter_map(|s| match *s {
                Segment::Data { file, offset, len } => Some((file, offset.saturating_add(len))),
                Segment::Zeros(_) => None,
            })
        };
        // A marked piece was verified and flushed before the capture: its files existed, long enough.
        let contradicts = marked
            && files().any(|(f, end)| {
                data.files
                    .get(f)
                    .and_then(|s| s.as_ref())
                    .is_none_or(|s| s.size < end)
            });
        if contradicts {
            stale(&format!(
                "piece {p} is marked but one of its files was recorded as absent or too short"
            ));
            return None;
        }
        if files().all(|(f, _)| unchanged.get(f).copied().unwrap_or(false)) {
            *flag = marked;
        } else if files().any(|(f, _)| now.get(f).is_none_or(Option::is_none)) {
            plan.missing.push(index);
        } else {
            plan.recheck.push(index);
        }
    }

    const NAMED: usize = 8;
    for &i in plan.changed_files.iter().take(NAMED) {
        let why = match (
            data.files.get(i).copied().flatten(),
            now.get(i).copied().flatten(),
        ) {
            (None, _) => "recorded as absent, exists now".to_string(),
            (Some(a), Some(b)) if a.size != b.size => format!("size {} -> {}", a.size, b.size),
            _ => "modification time changed".to_string(),
        };
        tracing::info!(
            "{}: changed since the resume data was saved ({why}); its pieces will be re-checked",
            name(i)
        );
    }
    for &i in plan.missing_files.iter().take(NAMED) {
        tracing::info!(
            "{}: gone since the resume data was saved; its pieces are absent",
            name(i)
        );
    }
    let more =
        plan.changed_files.len().saturating_sub(NAMED) + plan.missing_files.len().saturating_sub(NAMED);
    if more > 0 {
        tracing::info!("... and {more} more changed or missing files");
    }
    Some(plan)
}

/// The verified pieces from the resume data of `info_hash`, only if every piece can be trusted without
/// hashing (every file a piece touches still has the recorded size and modification time, see
/// [`plan_resume`]). `None` means some or all pieces must be verified: use [`FileStore::resume`], which
/// re-checks only those.
pub fn load_resume(resume_dir: &Path, info_hash: &InfoHashV1, store: &FileStore) -> Option<Vec<bool>> {
    plan_resume(resume_dir, info_hash, store)
        .filter(ResumePlan::all_trusted)
        .map(|p| p.have)
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

    /// The verified pieces at start, and how they were found: the resume data applied file by file
    /// ([`plan_resume`]), hashing on `threads` threads only the pieces touching files that changed since it
    /// was saved; or, without usable resume data, every piece verified ([`FileStore::check_existing`]).
    /// `progress.bytes` counts the bytes of the pieces hashed; setting `progress.cancel` stops early with
    /// [`StorageError::Cancelled`]. The result is logged at info level.
    pub fn resume(
        &self,
        resume_dir: &Path,
        info_hash: &InfoHashV1,
        threads: usize,
        progress: &Progress,
    ) -> Result<ResumeOutcome, StorageError> {
        let layout = crate::PieceStore::layout(self);
        let bytes_of = |pieces: &mut dyn Iterator<Item = u32>| -> u64 {
            pieces.filter_map(|p| layout.piece_len(p)).sum()
        };
        let Some(plan) = plan_resume(resume_dir, info_hash, self) else {
            let have = self.check_existing(threads, progress)?;
            let count = layout.piece_count();
            let checked_bytes = bytes_of(&mut (0..count));
            tracing::info!(
                "checked all {count} pieces ({checked_bytes} bytes): {} intact",
                have.iter().filter(|&&h| h).count()
            );
            return Ok(ResumeOutcome {
                have,
                checked_pieces: count,
                checked_bytes,
                trusted_pieces: 0,
                missing_pieces: 0,
                source: ResumeSource::FullCheck,
            });
        };
        let trusted_pieces = plan.trusted_pieces();
        let checked_pieces = u32::try_from(plan.recheck.len()).unwrap_or(u32::MAX);
        let missing_pieces = u32::try_from(plan.missing.len()).unwrap_or(u32::MAX);
        let checked_bytes = bytes_of(&mut plan.recheck.iter().copied());
        let trusted_have = plan.have.iter().filter(|&&h| h).count();
        let source = if plan.all_trusted() {
            ResumeSource::Resumed
        } else {
            ResumeSource::PartlyRechecked
        };
        let mut have = plan.have;
        let mut found = 0usize;
        if !plan.recheck.is_empty() {
            tracing::info!(
                "resume data: trusting {trusted_pieces} pieces ({trusted_have} verified); re-checking \
                 {checked_pieces} pieces ({checked_bytes} bytes) touching {} changed files; \
                 {missing_pieces} pieces absent (a file they touch does not exist; {} files gone since)",
                plan.changed_files.len(),
                plan.missing_files.len()
            );
            let ok = verify_pieces(self, &plan.recheck, threads, progress)?;
            for (&p, &ok) in plan.recheck.iter().zip(&ok) {
                if let Some(h) = have.get_mut(p as usize) {
                    *h = ok;
                    found += usize::from(ok);
                }
            }
        }
        tracing::info!(
            "resume data: {trusted_pieces} pieces trusted ({trusted_have} verified), {checked_pieces} \
             re-checked ({found} intact), {missing_pieces} absent with their files"
        );
        Ok(ResumeOutcome {
            have,
            checked_pieces,
            checked_bytes,
            trusted_pieces,
            missing_pieces,
            source,
        })
    }

    /// The verified pieces at start: [`FileStore::resume`] without the account of how they were found.
    pub fn resume_or_check(
        &self,
        resume_dir: &Path,
        info_hash: &InfoHashV1,
        threads: usize,
        progress: &Progress,
    ) -> Result<Vec<bool>, StorageError> {
        Ok(self.resume(resume_dir, info_hash, threads, progress)?.have)
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
