//! Resume data and re-checking: trusted only while every file keeps its size and modification time;
//! otherwise every piece is verified, and exactly the intact ones are found.
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
use storage::{load_resume, resume_path, FileStore, FileStoreOptions, PieceStore, Progress, ResumeData};

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
        // The file is where documented, written atomically (no temporary left behind).
        let path = resume_path(resume.path(), &fx.info_hash());
        assert!(path.ends_with(format!("{}.resume", fx.info_hash().to_hex())));
        assert_eq!(std::fs::read_dir(resume.path()).unwrap().count(), 1);
        let data = ResumeData::decode(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(data.have_flags(), Some(have));
    }
}

#[test]
fn resume_data_is_dropped_when_a_file_changes_mtime_or_size() {
    let fx = fixture(Version::Hybrid, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let resume = tempfile::tempdir().unwrap();
    let have = half_download(&fx, dir.path(), resume.path());
    let file = dir.path().join(NAME).join("a/b/c.bin");
    let store = open(&fx, dir.path());
    assert!(load_resume(resume.path(), &fx.info_hash(), &store).is_some());

    // Modification time moved: not trusted.
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    set_mtime(&file, mtime + Duration::from_secs(10));
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    set_mtime(&file, mtime);
    assert!(load_resume(resume.path(), &fx.info_hash(), &store).is_some());

    // Size changed (modification time put back): not trusted.
    let len = std::fs::metadata(&file).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    set_mtime(&file, mtime);
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
    // ... so the pieces are verified instead, and the truncated file's last piece is gone.
    let progress = Progress::default();
    let got = store
        .resume_or_check(resume.path(), &fx.info_hash(), 2, &progress)
        .unwrap();
    assert!(progress.bytes.load(Ordering::Relaxed) > 0);
    let c = fx.file_index("a/b/c.bin");
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
    std::fs::remove_file(resume_path(resume.path(), &fx.info_hash())).unwrap();
    assert_eq!(load_resume(resume.path(), &fx.info_hash(), &store), None);
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
