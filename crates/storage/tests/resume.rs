//! Resume data and re-checking: the pieces of files that keep their size and modification time are trusted
//! without hashing; only the pieces touching files that changed are verified (and those touching files now
//! missing are absent); unusable resume data means every piece is verified, and exactly the intact ones are
//! found.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use common::{fixture, Fixture, Rng, FILES, NAME};
use metainfo::Version;
use storage::{
    load_resume, plan_resume, resume_path, FileStore, FileStoreOptions, PieceStore, Progress, ResumeData,
    ResumeOutcome, ResumeSource,
};

fn open(fx: &Fixture, dir: &Path) -> FileStore {
    FileStore::open(fx.layout.clone(), dir, FileStoreOptions::default()).unwrap()
}

/// Download the even pieces that do not touch file `z` (so it never exists), flush, save resume data;
/// returns the have-set.
fn half_download(fx: &Fixture, dir: &Path, resume: &Path) -> Vec<bool> {
    let store = open(fx, dir);
    let z = fx.file_index("z");
    let skip = fx.pieces_touching(z, 0, fx.layout.files()[z].length);
    let blocks: Vec<_> = fx
        .blocks(16384, &mut Rng(21))
        .into_iter()
        .filter(|(p, _, _)| p % 2 == 0 && !skip.contains(p))
        .collect();
    common::write_all(&store, &blocks);
    store.flush().unwrap();
    let have: Vec<bool> = (0..fx.layout.piece_count())
        .map(|p| store.verify_piece(p).unwrap())
        .collect();
    assert!(have.iter().any(|&h| h) && have.iter().any(|&h| !h));
    ResumeData::capture(&store, fx.info_hash(), &have)
        .unwrap()
        .save(resume)
        .unwrap();
    have
}

/// Resume with 3 threads; checks that the progress counter saw exactly the bytes re-checked.
fn resume_at(store: &FileStore, fx: &Fixture, resume: &Path) -> ResumeOutcome {
    let progress = Progress::default();
    let out = store.resume(resume, &fx.info_hash(), 3, &progress).unwrap();
    assert_eq!(progress.bytes.load(Ordering::Relaxed), out.checked_bytes);
    assert_eq!(
        out.trusted_pieces + out.checked_pieces + out.missing_pieces,
        fx.layout.piece_count()
    );
    out
}

/// Total length of `pieces`.
fn bytes_of(fx: &Fixture, pieces: &[u32]) -> u64 {
    pieces.iter().map(|&p| fx.layout.piece_len(p).unwrap()).sum()
}

/// The files (layout indexes, pad files excluded) that do not exist under `dir`.
fn absent_files(fx: &Fixture, store: &FileStore) -> Vec<usize> {
    (0..fx.layout.files().len())
        .filter(|&i| !fx.layout.files()[i].pad && !store.file_path(i).unwrap().exists())
        .collect()
}

/// Of the pieces touching file `file`, those also touching a file in `absent` (lost without hashing) and
/// the others (re-checked).
fn split_touching(fx: &Fixture, file: usize, absent: &[usize]) -> (Vec<u32>, Vec<u32>) {
    let lost: Vec<u32> = absent
        .iter()
        .flat_map(|&a| fx.pieces_touching(a, 0, fx.layout.files()[a].length))
        .collect();
    fx.pieces_touching(file, 0, fx.layout.files()[file].length)
        .into_iter()
        .partition(|p| lost.contains(p))
}

/// A piece with data of file `file` only (pad zeros allowed), marked or not as asked.
fn piece_inside(fx: &Fixture, file: usize, have: &[bool], marked: bool) -> u32 {
    (0..fx.layout.piece_count())
        .find(|&p| {
            have[p as usize] == marked
                && fx
                    .layout
                    .geometry()
                    .piece(p)
                    .unwrap()
                    .segments
                    .iter()
                    .all(|s| !matches!(*s, metainfo::Segment::Data { file: f, .. } if f != file))
                && !fx
                    .pieces_touching(file, 0, fx.layout.files()[file].length)
                    .is_empty()
                && fx
                    .pieces_touching(file, 0, fx.layout.files()[file].length)
                    .contains(&p)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {} piece inside file {file}",
                if marked { "marked" } else { "unmarked" }
            )
        })
}

fn set_mtime(path: &Path, t: SystemTime) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn resume_data_round_trips_and_skips_the_check() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let dir = tempfile::tempdir().unwrap();
        let resume = tempfile::tempdir().unwrap();
        let have = half_download(&fx, dir.path(), resume.path());
        // Some files were never written, so they do not exist: that is recorded and still matches.
        assert!(!dir.path().join(NAME).join("z").exists());

        let store = open(&fx, dir.path());
        assert_eq!(
            load_resume(resume.path(), &fx.info_hash(), &store),
            Some(have.clone()),
            "{v:?}"
        );
        let progress = Progress::default();
        let got = store
            .resume_or_check(resume.path(), &fx.info_hash(), 2, &progress)
            .unwrap();
        assert_eq!(got, have);
        assert_eq!(
            progress.bytes.load(Ordering::Relaxed),
            0,
            "resume data was trusted, nothing hashed"
        );
        // Nothing changed: every piece trusted, none hashed.
        let out = resume_at(&store, &fx, resume.path());
        assert_eq!(out.have, have, "{v:?}");
        assert_eq!(out.source, ResumeSource::Resumed);
        assert_eq!(out.checked_pieces, 0);
        assert_eq!(out.checked_bytes, 0);
        assert_eq!(out.missing_pieces, 0);
        assert_eq!(out.trusted_pieces, fx.layout.piece_count());
        // The file is where documented, written atomically (no temporary left behind).
        let path = resume_path(resume.path(), &fx.info_hash());
        assert!(path.ends_with(format!("{}.resume", fx.info_hash().to_hex())));
        assert_eq!(std::fs::read_dir(resume.path()).unwrap().count(), 1);
        let data = ResumeData::decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(data.have_flags(), Some(have));
    }
}

#[test]
fn a_file_that_changes_mtime_or_size_has_its_pieces_rechecked() {
    let fx = fixture(Version::Hybrid, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let resume = tempfile::tempdir().unwrap();
    let have = half_download(&fx, dir.path(), resume.path());
    let file = dir.path().join(NAME).join("a/b/c.bin");
    let store = open(&fx, dir.path());
    assert!(load_resume(resume.path(), &fx.info_hash(), &store).is_some());

    // Modification time moved: not trusted as a whole.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    set_mtime(&file, mtime + Duration::from_secs(10));
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    set_mtime(&file, mtime);
    assert!(load_resume(resume.path(), &fx.info_hash(), &store).is_some());

    // Size changed (modification time put back): not trusted as a whole.
    let len = std::fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    set_mtime(&file, mtime);
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    // ... so the pieces of that file are verified, and the truncated file's last piece is gone; the others
    // are trusted.
    let c = fx.file_index("a/b/c.bin");
    let out = resume_at(&store, &fx, resume.path());
    let (_, rechecked) = split_touching(&fx, c, &absent_files(&fx, &store));
    assert!(!rechecked.is_empty());
    assert_eq!(out.source, ResumeSource::PartlyRechecked);
    assert_eq!(out.checked_pieces as usize, rechecked.len());
    assert_eq!(out.checked_bytes, bytes_of(&fx, &rechecked));
    let got = out.have;
    let plan = plan_resume(resume.path(), &fx.info_hash(), &store).unwrap();
    assert_eq!(plan.changed_files, vec![c]);
    assert_eq!(plan.recheck, rechecked);
    assert!(plan.missing_files.is_empty());
    let lost = fx.pieces_touching(c, len - 1, len);
    for p in 0..fx.layout.piece_count() {
        assert_eq!(
            got[p as usize],
            have[p as usize] && !lost.contains(&p),
            "piece {p}"
        );
    }
}

#[test]
fn resume_data_is_dropped_when_an_absent_file_appears_or_it_is_for_another_torrent() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let resume = tempfile::tempdir().unwrap();
    half_download(&fx, dir.path(), resume.path());
    let store = open(&fx, dir.path());
    let absent = fx
        .layout
        .files()
        .iter()
        .enumerate()
        .find(|(i, f)| !f.pad && !store.file_path(*i).unwrap().exists())
        .map(|(i, _)| i)
        .expect("a file the half download never touched");
    std::fs::write(store.file_path(absent).unwrap(), b"appeared").unwrap();
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    // Its pieces are re-checked (or lost when they also touch a file still absent); nothing else is.
    let out = resume_at(&store, &fx, resume.path());
    let (lost, rechecked) = split_touching(&fx, absent, &absent_files(&fx, &store));
    assert_eq!(out.source, ResumeSource::PartlyRechecked);
    assert_eq!(out.checked_pieces as usize, rechecked.len());
    assert_eq!(out.missing_pieces as usize, lost.len());
    assert!(out.checked_pieces + out.missing_pieces > 0);
    std::fs::remove_file(store.file_path(absent).unwrap()).unwrap();
    assert!(load_resume(resume.path(), &fx.info_hash(), &store).is_some());

    // Another torrent's name for the file, a damaged file, no file: all ignored.
    let other = metainfo::InfoHashV1([7; 20]);
    std::fs::copy(
        resume_path(resume.path(), &fx.info_hash()),
        resume_path(resume.path(), &other),
    )
    .unwrap();
    assert_eq!(load_resume(resume.path(), &other, &store), None);
    std::fs::write(resume_path(resume.path(), &fx.info_hash()), b"d7:versioni1e").unwrap();
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    let full = |out: ResumeOutcome| {
        assert_eq!(out.source, ResumeSource::FullCheck);
        assert_eq!(out.checked_pieces, fx.layout.piece_count());
        assert_eq!(out.trusted_pieces, 0);
    };
    full(resume_at(&store, &fx, resume.path()));
    std::fs::remove_file(resume_path(resume.path(), &fx.info_hash())).unwrap();
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    full(resume_at(&store, &fx, resume.path()));
}

/// After a crash during a download the files being written have moved on since the last save: only the
/// pieces touching them are hashed, marked or not, and a piece completed after the save is found.
#[test]
fn after_a_crash_only_the_pieces_of_files_written_since_the_save_are_hashed() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let dir = tempfile::tempdir().unwrap();
        let resume_dir = tempfile::tempdir().unwrap();
        let saved = half_download(&fx, dir.path(), resume_dir.path());
        let g = fx.file_index("d/e/f/g.dat");
        let gp = dir.path().join(NAME).join("d/e/f/g.dat");
        let mtime = std::fs::metadata(&gp).unwrap().modified().unwrap();

        // The download went on after the save: one more piece of g.dat written and flushed, then kill -9
        // (no new save). Its mtime is set explicitly, as a coarse clock could leave it unchanged.
        let late = piece_inside(&fx, g, &saved, false);
        {
            let store = open(&fx, dir.path());
            store.write_block(late, 0, &fx.piece(late)).unwrap();
            store.flush().unwrap();
        }
        set_mtime(&gp, mtime + Duration::from_secs(7));

        let store = open(&fx, dir.path());
        let (lost, rechecked) = split_touching(&fx, g, &absent_files(&fx, &store));
        assert!(
            rechecked.iter().any(|&p| saved[p as usize]),
            "{v:?}: marked pieces are re-hashed too"
        );
        let out = resume_at(&store, &fx, resume_dir.path());
        assert_eq!(out.source, ResumeSource::PartlyRechecked, "{v:?}");
        assert_eq!(out.checked_pieces as usize, rechecked.len(), "{v:?}");
        assert!((out.checked_pieces as usize) < saved.len(), "{v:?}");
        assert_eq!(out.checked_bytes, bytes_of(&fx, &rechecked), "{v:?}");
        assert_eq!(out.missing_pieces as usize, lost.len(), "{v:?}");
        assert!(
            out.have[late as usize],
            "{v:?}: the piece completed after the save is found"
        );
        for p in 0..fx.layout.piece_count() {
            let want = (saved[p as usize] || p == late) && !lost.contains(&p);
            assert_eq!(out.have[p as usize], want, "{v:?} piece {p}");
        }
        // The same through the compatible call.
        assert_eq!(
            store
                .resume_or_check(resume_dir.path(), &fx.info_hash(), 2, &Progress::default())
                .unwrap(),
            out.have
        );
    }
}

/// A marked piece whose bytes were modified, in a file that changed since the save, is not trusted.
#[test]
fn a_corrupted_marked_piece_in_a_changed_file_is_not_have() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let dir = tempfile::tempdir().unwrap();
        let resume_dir = tempfile::tempdir().unwrap();
        let saved = half_download(&fx, dir.path(), resume_dir.path());
        let g = fx.file_index("d/e/f/g.dat");
        let gp = dir.path().join(NAME).join("d/e/f/g.dat");
        let mtime = std::fs::metadata(&gp).unwrap().modified().unwrap();

        let bad = piece_inside(&fx, g, &saved, true);
        let metainfo::Segment::Data { offset, len, .. } =
            fx.layout.geometry().piece(bad).unwrap().segments[0]
        else {
            panic!("piece {bad} starts with data")
        };
        let mut bytes = std::fs::read(&gp).unwrap();
        bytes[(offset + len / 2) as usize] ^= 0x40;
        std::fs::write(&gp, &bytes).unwrap();
        set_mtime(&gp, mtime + Duration::from_secs(7));

        let store = open(&fx, dir.path());
        let (lost, rechecked) = split_touching(&fx, g, &absent_files(&fx, &store));
        let out = resume_at(&store, &fx, resume_dir.path());
        assert_eq!(out.source, ResumeSource::PartlyRechecked, "{v:?}");
        assert_eq!(out.checked_pieces as usize, rechecked.len(), "{v:?}");
        assert!(!out.have[bad as usize], "{v:?}: corrupted piece {bad}");
        for p in 0..fx.layout.piece_count() {
            let want = saved[p as usize] && p != bad && !lost.contains(&p);
            assert_eq!(out.have[p as usize], want, "{v:?} piece {p}");
        }
    }
}

/// A file deleted since the save: its pieces are absent, without hashing; the other files are trusted.
#[test]
fn a_deleted_file_loses_its_pieces_and_the_others_stay_trusted() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let dir = tempfile::tempdir().unwrap();
        let resume_dir = tempfile::tempdir().unwrap();
        let saved = half_download(&fx, dir.path(), resume_dir.path());
        let c = fx.file_index("a/b/c.bin");
        let gone = fx.pieces_touching(c, 0, fx.layout.files()[c].length);
        assert!(gone.iter().any(|&p| saved[p as usize]), "{v:?}");
        std::fs::remove_file(dir.path().join(NAME).join("a/b/c.bin")).unwrap();

        let store = open(&fx, dir.path());
        assert_eq!(load_resume(resume_dir.path(), &fx.info_hash(), &store), None);
        let plan = plan_resume(resume_dir.path(), &fx.info_hash(), &store).unwrap();
        assert_eq!(plan.missing_files, vec![c], "{v:?}");
        assert!(plan.changed_files.is_empty(), "{v:?}");
        let out = resume_at(&store, &fx, resume_dir.path());
        assert_eq!(out.source, ResumeSource::PartlyRechecked, "{v:?}");
        assert_eq!(out.checked_pieces, 0, "{v:?}: nothing hashed");
        assert_eq!(out.missing_pieces as usize, gone.len(), "{v:?}");
        assert_eq!(out.trusted_pieces as usize, saved.len() - gone.len(), "{v:?}");
        for p in 0..fx.layout.piece_count() {
            let want = saved[p as usize] && !gone.contains(&p);
            assert_eq!(out.have[p as usize], want, "{v:?} piece {p}");
        }
    }
}

/// Resume data that contradicts itself (a marked piece in a file recorded as absent, or recorded as too
/// short for it) is not used at all.
#[test]
fn resume_data_contradicting_itself_leads_to_a_full_check() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let resume_dir = tempfile::tempdir().unwrap();
    let saved = half_download(&fx, dir.path(), resume_dir.path());
    let store = open(&fx, dir.path());
    let path = resume_path(resume_dir.path(), &fx.info_hash());
    let good = ResumeData::decode(&std::fs::read(&path).unwrap()).unwrap();
    let c = fx.file_index("a/b/c.bin");
    for bad in [
        None,
        Some(storage::FileStamp {
            size: 10,
            ..good.files[c].unwrap()
        }),
    ] {
        let mut data = good.clone();
        data.files[c] = bad;
        data.save(resume_dir.path()).unwrap();
        // c.bin now differs from the record anyway; the point is that nothing at all is trusted.
        assert_eq!(plan_resume(resume_dir.path(), &fx.info_hash(), &store), None);
        let out = resume_at(&store, &fx, resume_dir.path());
        assert_eq!(out.source, ResumeSource::FullCheck);
        assert_eq!(out.checked_pieces, fx.layout.piece_count());
        assert_eq!(out.have, saved);
    }
}

#[test]
fn check_existing_finds_exactly_the_intact_pieces() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let root = fx.src.path().join(NAME);
        // One byte corrupted in the middle of g.dat, z truncated, top.txt deleted.
        let g = fx.file_index("d/e/f/g.dat");
        let gp = root.join("d/e/f/g.dat");
        let mut bytes = std::fs::read(&gp).unwrap();
        bytes[50_000] ^= 1;
        std::fs::write(&gp, &bytes).unwrap();
        let z = fx.file_index("z");
        let zlen = fx.layout.files()[z].length;
        OpenOptions::new()
            .write(true)
            .open(root.join("z"))
            .unwrap()
            .set_len(20_000)
            .unwrap();
        let top = fx.file_index("top.txt");
        std::fs::remove_file(root.join("top.txt")).unwrap();

        let store = FileStore::open(fx.layout.clone(), fx.src.path(), FileStoreOptions::default()).unwrap();
        let have = store.check_existing(4, &Progress::default()).unwrap();
        let mut bad = fx.pieces_touching(g, 50_000, 50_001);
        bad.extend(fx.pieces_touching(z, 20_000, zlen));
        bad.extend(fx.pieces_touching(top, 0, 5));
        assert!(bad.len() >= 3);
        for p in 0..fx.layout.piece_count() {
            assert_eq!(have[p as usize], !bad.contains(&p), "{v:?} piece {p}");
        }
        // Checking created nothing and changed nothing.
        assert!(!root.join("top.txt").exists());
        assert_eq!(std::fs::metadata(root.join("z")).unwrap().len(), 20_000);
    }
}

#[test]
fn cancelling_a_check_stops_it() {
    let fx = fixture(Version::V1, 16384, FILES);
    let store = FileStore::open(fx.layout.clone(), fx.src.path(), FileStoreOptions::default()).unwrap();
    let progress = Progress::default();
    progress.cancel.store(true, Ordering::Relaxed);
    assert!(matches!(
        store.check_existing(2, &progress),
        Err(storage::StorageError::Cancelled)
    ));
}
