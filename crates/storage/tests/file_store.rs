//! The file store on disk: the handle cap, lazy sparse files, read-only seeding, write errors, and never
//! writing outside the download folder.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::path::Path;

use common::{fixture, tree, write_all, Rng, FILES, NAME};
use metainfo::Version;
use storage::{FileStore, FileStoreOptions, PieceStore, Progress, StorageError};

fn open(fx: &common::Fixture, dir: &Path) -> Result<FileStore, StorageError> {
    FileStore::open(fx.layout.clone(), dir, FileStoreOptions::default())
}

#[test]
fn ten_files_work_with_a_cap_of_two_open_handles_from_several_threads() {
    let files: Vec<(String, usize)> = (0..10)
        .map(|i| (format!("dir{}/f{i}", i % 3), 7_000 + i * 3_001))
        .collect();
    let files: Vec<(&str, usize)> = files.iter().map(|(n, l)| (n.as_str(), *l)).collect();
    for v in [Version::V1, Version::Hybrid] {
        let fx = fixture(v, 16384, &files);
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions {
            max_open_files: 2,
            ..FileStoreOptions::default()
        };
        let store = FileStore::open(fx.layout.clone(), dir.path(), options).unwrap();
        let blocks = fx.blocks(4096, &mut Rng(77));
        std::thread::scope(|s| {
            for part in blocks.chunks(blocks.len().div_ceil(4)) {
                let store = &store;
                s.spawn(move || {
                    for (p, o, b) in part {
                        store.write_block(*p, *o, b).unwrap();
                        assert!(store.open_files() <= 2, "{} handles open", store.open_files());
                    }
                });
            }
        });
        store.flush().unwrap();
        let have = store.check_existing(2, &Progress::default()).unwrap();
        assert!(have.iter().all(|&h| h), "{have:?}");
        assert!(store.open_files() <= 2);
        for (i, f) in fx.layout.files().iter().enumerate().filter(|(_, f)| !f.pad) {
            let on_disk = std::fs::read(dir.path().join(f.relative_path())).unwrap();
            assert_eq!(on_disk, fx.contents[i], "{:?}", f.path);
        }
    }
}

#[test]
fn files_are_created_on_first_write_at_full_length_without_writing_zeros() {
    let fx = fixture(Version::V1, 16384, &[("big", 4 << 20), ("small", 100)]);
    let dir = tempfile::tempdir().unwrap();
    let store = open(&fx, dir.path()).unwrap();
    let big = dir.path().join(NAME).join("big");
    assert!(!big.exists(), "created before any write");
    store.write_block(3, 0, &fx.piece(3)[..16384]).unwrap();
    let meta = std::fs::metadata(&big).unwrap();
    assert_eq!(meta.len(), 4 << 20, "extended to its full length");
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        assert!(
            meta.blocks() * 512 < 1 << 20,
            "{} bytes allocated: zeros were written",
            meta.blocks() * 512
        );
    }
    assert!(!dir.path().join(NAME).join("small").exists());
}

#[test]
fn existing_data_is_never_truncated() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let z = dir.path().join(NAME).join("z");
    std::fs::create_dir_all(z.parent().unwrap()).unwrap();
    // Longer than the torrent says: left as it is.
    let mut long = fx.contents[fx.file_index("z")].clone();
    long.extend_from_slice(b"trailing bytes that belong to the user");
    std::fs::write(&z, &long).unwrap();
    let store = open(&fx, dir.path()).unwrap();
    write_all(&store, &fx.blocks(16384, &mut Rng(3)));
    store.flush().unwrap();
    assert_eq!(std::fs::read(&z).unwrap(), long);
}

#[test]
fn seeding_a_complete_folder_read_only_verifies_it_and_writes_nothing() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, FILES);
        let before = tree(fx.src.path());
        let options = FileStoreOptions {
            read_only: true,
            ..FileStoreOptions::default()
        };
        let store = FileStore::open(fx.layout.clone(), fx.src.path(), options).unwrap();
        let progress = Progress::default();
        let have = store.check_existing(4, &progress).unwrap();
        assert!(have.iter().all(|&h| h), "{v:?}: {have:?}");
        // Progress counts every piece's bytes (for v2, alignment gaps between files are in no piece).
        let total: u64 = (0..fx.layout.piece_count())
            .map(|p| fx.layout.piece_len(p).unwrap())
            .sum();
        assert_eq!(progress.bytes.load(std::sync::atomic::Ordering::Relaxed), total);
        // Serving: every piece reads back.
        for p in 0..fx.layout.piece_count() {
            let len = fx.layout.piece_len(p).unwrap() as usize;
            assert_eq!(store.read_vec(p, 0, len).unwrap(), fx.piece(p));
        }
        let err = store.write_block(0, 0, &[1]).unwrap_err();
        assert!(matches!(err, StorageError::ReadOnly { .. }), "{err}");
        assert!(
            err.to_string().contains("c.bin"),
            "the error names the file: {err}"
        );
        assert_eq!(
            tree(fx.src.path()),
            before,
            "a read-only store changed the folder"
        );
    }
}

#[test]
fn write_errors_name_the_file() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let store = open(&fx, dir.path()).unwrap();
    // A plain file where the folder `d` of `d/e/f/g.dat` must go.
    std::fs::write(dir.path().join(NAME).join("d"), b"in the way").unwrap();
    let g = fx.file_index("d/e/f/g.dat");
    let (first, _) = fx.layout.geometry().file_pieces(g).unwrap();
    let p = first + 1; // entirely inside g.dat
    let err = store.write_block(p, 0, &fx.piece(p)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("{NAME}/d/e/f")), "{msg}");
}

#[test]
fn a_symlinked_folder_leading_outside_is_refused_and_nothing_is_written_there() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path().join(NAME);
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("d/e")).unwrap();
    let err = open(&fx, dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Escapes { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("g.dat") && msg.contains("outside the download folder"),
        "{msg}"
    );
    assert!(tree(outside.path()).is_empty(), "{:?}", tree(outside.path()));
}

#[test]
fn a_symlink_in_place_of_a_file_is_never_followed() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let root = dir.path().join(NAME);
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("top.txt")).unwrap();
    let err = open(&fx, dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("top.txt"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
}

#[test]
fn links_planted_after_open_are_refused_at_write_time() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let store = open(&fx, dir.path()).unwrap();
    let root = dir.path().join(NAME);
    // A folder link to outside, and a file link to outside, both planted after the store was opened.
    std::fs::create_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("d/e")).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("z")).unwrap();
    let mut refused = 0;
    for (p, o, b) in fx.blocks(16384, &mut Rng(5)) {
        match store.write_block(p, o, &b) {
            Ok(()) => {}
            Err(e @ (StorageError::Escapes { .. } | StorageError::Symlink { .. })) => {
                refused += 1;
                let msg = e.to_string();
                assert!(msg.contains("g.dat") || msg.contains("/z"), "{msg}");
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert!(refused > 0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(tree(outside.path()), vec!["victim".to_string()]);
    // Reads do not follow them either.
    let z = fx.file_index("z");
    let (first, _) = fx.layout.geometry().file_pieces(z).unwrap();
    let last = fx.layout.piece_count() - 1;
    assert!(first < last);
    let err = store.read_vec(last, 0, 1).unwrap_err();
    assert!(matches!(err, StorageError::Symlink { .. }), "{err}");
}

#[test]
fn a_symlink_that_stays_inside_the_download_folder_is_allowed() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("real")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join(NAME)).unwrap();
    let store = open(&fx, dir.path()).unwrap();
    write_all(&store, &fx.blocks(16384, &mut Rng(11)));
    assert!(store
        .check_existing(2, &Progress::default())
        .unwrap()
        .iter()
        .all(|&h| h));
    assert!(dir.path().join("real/d/e/f/g.dat").is_file());
}

#[test]
fn a_folder_where_a_file_belongs_is_refused() {
    let fx = fixture(Version::V1, 16384, FILES);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(NAME).join("top.txt")).unwrap();
    let err = open(&fx, dir.path()).unwrap_err();
    assert!(matches!(err, StorageError::NotAFile { .. }), "{err}");
}

/// Whole pieces written from aligned buffers with `O_DIRECT` (where the file system takes it: the test
/// folder on disk; tmpfs refuses and the store falls back to the page cache) give the same files as
/// ordinary writes, across file boundaries at unaligned offsets and unaligned tails.
#[test]
fn direct_writes_of_whole_pieces_give_the_same_files() {
    let fx = fixture(
        Version::V1,
        65536,
        &[("a", 200_000), ("dir/b", 4096 * 37), ("c", 1), ("d", 300_001)],
    );
    let shm = std::path::Path::new("/dev/shm");
    let mut dirs = vec![tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()];
    if shm.is_dir() {
        dirs.push(tempfile::tempdir_in(shm).unwrap());
    }
    for dir in &dirs {
        let options = FileStoreOptions {
            direct_writes: true,
            ..FileStoreOptions::default()
        };
        let store = FileStore::open(fx.layout.clone(), dir.path(), options).unwrap();
        for i in (0..fx.layout.piece_count()).rev() {
            let piece = fx.piece(i);
            let mut buf = storage::AlignedBuf::zeroed(piece.len());
            assert_eq!(buf.as_ptr() as usize % storage::DIRECT_ALIGN, 0);
            buf.copy_from_slice(&piece);
            store.write_block(i, 0, &buf).unwrap();
        }
        store.flush().unwrap();
        for (i, f) in fx.layout.files().iter().enumerate() {
            let path = dir.path().join(f.relative_path());
            assert_eq!(
                std::fs::read(&path).unwrap(),
                fx.contents[i],
                "{}",
                path.display()
            );
        }
    }
}
