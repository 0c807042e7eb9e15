//! One behaviour suite run against both stores, and a random sequence of operations run against both
//! side by side: the memory store must behave exactly as the file store does.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use common::{fixture, write_all, Fixture, Probe, Rng, FILES};
use metainfo::Version;
use storage::{verify_all, FileStore, FileStoreOptions, MemoryStore, PieceStore, Progress, StorageError};

/// The behaviour both stores share, checked on `store` for the torrent of `fx`.
fn suite<S: PieceStore + Probe>(fx: &Fixture, store: &S, seed: u64) {
    let layout = store.layout();
    let n = layout.piece_count();
    let empty = fx.file_index("a/empty");

    // Before any write: only the empty file exists; nothing verifies; reading absent data says so.
    for (i, f) in layout.files().iter().enumerate() {
        let c = store.contents(i);
        if i == empty {
            assert_eq!(c, Some(Vec::new()), "the empty file is created up front");
        } else {
            assert_eq!(c, None, "{:?} exists before any write", f.path);
        }
    }
    for p in 0..n {
        assert!(!store.verify_piece(p).unwrap(), "piece {p} verifies with no data");
    }
    let err = store.read_vec(0, 0, 10).unwrap_err();
    assert!(err.is_absent(), "{err}");

    // Write every block in random order, with a block size that straddles files and pad files.
    let mut rng = Rng(seed);
    for block in [16384, 5000] {
        write_all(store, &fx.blocks(block, &mut rng));
    }
    for p in 0..n {
        assert!(store.verify_piece(p).unwrap(), "piece {p} does not verify");
        let len = layout.piece_len(p).unwrap() as usize;
        assert_eq!(
            store.read_vec(p, 0, len).unwrap(),
            fx.piece(p),
            "piece {p} reads back wrong"
        );
        // An odd sub-range reads the same bytes.
        let (from, to) = (len / 3, len - len / 5);
        assert_eq!(
            store.read_vec(p, from as u32, to - from).unwrap(),
            fx.piece(p)[from..to]
        );
    }
    assert_eq!(
        verify_all(store, 3, &Progress::default()).unwrap(),
        vec![true; n as usize]
    );

    // Each file holds exactly its data; pad files never exist.
    for (i, f) in layout.files().iter().enumerate() {
        if f.pad {
            assert_eq!(store.contents(i), None, "pad file {:?} was stored", f.path);
        } else {
            assert_eq!(
                store.contents(i).as_deref(),
                Some(&fx.contents[i][..]),
                "{:?}",
                f.path
            );
        }
    }

    // A wrong byte fails the piece; rewriting it heals it.
    let last = n - 1;
    let good = store.read_vec(last, 0, 1).unwrap();
    store.write_block(last, 0, &[good[0] ^ 0xff]).unwrap();
    assert!(!store.verify_piece(last).unwrap());
    store.write_block(last, 0, &good).unwrap();
    assert!(store.verify_piece(last).unwrap());

    // Out of range: past the last piece, past a piece's end.
    let len = layout.piece_len(last).unwrap() as u32;
    assert!(matches!(
        store.write_block(n, 0, &[1]),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        store.write_block(last, len, &[1]),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        store.read_vec(last, len - 1, 2),
        Err(StorageError::OutOfRange { .. })
    ));
    assert!(matches!(
        store.verify_piece(n),
        Err(StorageError::OutOfRange { .. })
    ));
    store.flush().unwrap();
}

fn both(version: Version, piece_length: u64, files: &[(&str, usize)]) {
    let fx = fixture(version, piece_length, files);
    let mem = MemoryStore::new(fx.layout.clone());
    suite(&fx, &mem, 1);
    let dir = tempfile::tempdir().unwrap();
    let fs = FileStore::open(fx.layout.clone(), dir.path(), FileStoreOptions::default()).unwrap();
    suite(&fx, &fs, 1);
    // Pad files never appear on disk, not even their folder.
    let names = common::tree(dir.path());
    assert!(names.iter().all(|n| !n.contains(".pad")), "{names:?}");
    assert!(dir.path().join("payload/a/empty").is_file());
}

#[test]
fn v1_blocks_in_any_order_read_back_and_verify_on_both_stores() {
    both(Version::V1, 16384, FILES);
}

#[test]
fn v2_blocks_in_any_order_read_back_and_verify_on_both_stores() {
    both(Version::V2, 16384, FILES);
    both(Version::V2, 32768, FILES);
}

#[test]
fn hybrid_blocks_with_pad_files_read_back_and_verify_on_both_stores() {
    let fx = fixture(Version::Hybrid, 16384, FILES);
    assert!(!fx.pads().is_empty(), "the hybrid fixture should have pad files");
    both(Version::Hybrid, 16384, FILES);
    both(Version::Hybrid, 65536, FILES);
}

#[test]
fn single_file_torrents_work_on_both_stores() {
    for v in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(v, 16384, &[(common::NAME, 100_000)]);
        let dir = tempfile::tempdir().unwrap();
        let fs = FileStore::open(fx.layout.clone(), dir.path(), FileStoreOptions::default()).unwrap();
        let mem = MemoryStore::new(fx.layout.clone());
        let mut rng = Rng(9);
        let blocks = fx.blocks(16384, &mut rng);
        write_all(&fs, &blocks);
        write_all(&mem, &blocks);
        for p in 0..fx.layout.piece_count() {
            assert!(fs.verify_piece(p).unwrap() && mem.verify_piece(p).unwrap());
        }
        assert_eq!(
            std::fs::read(dir.path().join(common::NAME)).unwrap(),
            fx.contents[0]
        );
    }
}

/// What an operation did, comparable across stores (errors by kind).
fn outcome<T>(r: Result<T, StorageError>) -> Result<T, String> {
    r.map_err(|e| {
        let kind = match e {
            StorageError::Io { ref source, .. } => format!("io {:?}", source.kind()),
            StorageError::Short { .. } => "short".into(),
            StorageError::OutOfRange { .. } => "range".into(),
            ref other => format!("other {other}"),
        };
        format!("{kind} absent={}", e.is_absent())
    })
}

#[test]
fn memory_store_matches_file_store_on_random_operations() {
    for (v, pl) in [
        (Version::V1, 16384),
        (Version::V2, 16384),
        (Version::Hybrid, 32768),
    ] {
        let fx = fixture(v, pl, FILES);
        let dir = tempfile::tempdir().unwrap();
        let options = FileStoreOptions {
            max_open_files: 2,
            ..FileStoreOptions::default()
        };
        let fs = FileStore::open(fx.layout.clone(), dir.path(), options).unwrap();
        let mem = MemoryStore::new(fx.layout.clone());
        let n = fx.layout.piece_count();
        let mut rng = Rng(0x5eed ^ pl);
        // How often each outcome came up, so the comparison is known to cover them.
        let (mut verified, mut failed, mut errors) = (0, 0, 0);
        for step in 0..600 {
            let p = rng.below(n as usize + 1) as u32; // sometimes one past the end
            let plen = fx.layout.piece_len(p).unwrap_or(16384) as usize;
            let off = rng.below(plen + 2);
            let len = rng.below(20_000);
            match rng.below(5) {
                0 if p < n => {
                    let a = outcome(fs.write_block(p, 0, &fx.piece(p)));
                    let b = outcome(mem.write_block(p, 0, &fx.piece(p)));
                    assert_eq!(a, b, "step {step}: write all of piece {p}");
                }
                0..=2 => {
                    // Mostly correct data, sometimes garbage.
                    let data: Vec<u8> = if p < n && rng.below(4) != 0 {
                        let piece = fx.piece(p);
                        piece[off.min(piece.len())..(off + len).min(piece.len())].to_vec()
                    } else {
                        (0..len).map(|_| rng.next() as u8).collect()
                    };
                    let a = outcome(fs.write_block(p, off as u32, &data));
                    let b = outcome(mem.write_block(p, off as u32, &data));
                    assert_eq!(
                        a,
                        b,
                        "step {step}: write piece {p} at {off}, {} bytes",
                        data.len()
                    );
                    errors += usize::from(a.is_err());
                }
                3 => {
                    let a = outcome(fs.read_vec(p, off as u32, len));
                    let b = outcome(mem.read_vec(p, off as u32, len));
                    assert_eq!(a, b, "step {step}: read piece {p} at {off}, {len} bytes");
                    errors += usize::from(a.is_err());
                }
                _ => {
                    let a = outcome(fs.verify_piece(p));
                    let b = outcome(mem.verify_piece(p));
                    assert_eq!(a, b, "step {step}: verify piece {p}");
                    verified += usize::from(a == Ok(true));
                    failed += usize::from(a == Ok(false));
                }
            }
            assert!(fs.open_files() <= 2);
        }
        eprintln!("{v:?}: {verified} verified, {failed} failed verification, {errors} errors");
        assert!(verified > 0 && failed > 0 && errors > 0);
        for i in 0..fx.layout.files().len() {
            assert_eq!(fs.contents(i), mem.contents(i), "file {i} differs");
        }
    }
}

#[test]
fn a_v2_torrent_without_its_piece_layers_cannot_be_verified_but_a_hybrid_falls_back_to_sha1() {
    let empty = std::collections::BTreeMap::new();
    let fx = fixture(Version::V2, 16384, FILES);
    let err = storage::Layout::new(&fx.torrent.info, &empty).unwrap_err();
    assert!(matches!(err, StorageError::MissingPieceLayer { .. }), "{err}");
    assert!(err.to_string().contains("payload/"), "{err}");

    let fx = fixture(Version::Hybrid, 16384, FILES);
    let layout = storage::Layout::new(&fx.torrent.info, &empty).unwrap();
    let mem = MemoryStore::new(layout);
    write_all(&mem, &fx.blocks(16384, &mut Rng(4)));
    assert!(verify_all(&mem, 2, &Progress::default())
        .unwrap()
        .iter()
        .all(|&h| h));
}

#[test]
fn verify_pieces_checks_only_the_pieces_listed_and_counts_only_their_bytes() {
    let fx = fixture(Version::V1, 16384, FILES);
    let mem = MemoryStore::new(fx.layout.clone());
    let n = fx.layout.piece_count();
    // Only the odd pieces are stored.
    let blocks: Vec<_> = fx
        .blocks(16384, &mut Rng(9))
        .into_iter()
        .filter(|(p, _, _)| p % 2 == 1)
        .collect();
    write_all(&mem, &blocks);
    let pieces = [n - 1, 1, 2, 3];
    for threads in [1, 3] {
        let progress = Progress::default();
        let got = storage::verify_pieces(&mem, &pieces, threads, &progress).unwrap();
        let want: Vec<bool> = pieces.iter().map(|p| p % 2 == 1).collect();
        assert_eq!(got, want, "one flag per entry, in the order given");
        let bytes: u64 = pieces.iter().map(|&p| fx.layout.piece_len(p).unwrap()).sum();
        assert_eq!(progress.bytes.load(std::sync::atomic::Ordering::Relaxed), bytes);
    }
    let progress = Progress::default();
    assert_eq!(
        storage::verify_pieces(&mem, &[], 2, &progress).unwrap(),
        Vec::<bool>::new()
    );
    assert!(matches!(
        storage::verify_pieces(&mem, &[n], 2, &progress),
        Err(StorageError::OutOfRange { .. })
    ));
}

/// `verify_piece_data` on the bytes of a piece gives what `verify_piece` gives once they are stored,
/// for v1, v2 and hybrid (pad files) alike; one wrong byte fails it; a wrong length is an error.
#[test]
fn verifying_a_piece_in_memory_agrees_with_verifying_it_on_disk() {
    for version in [Version::V1, Version::V2, Version::Hybrid] {
        let fx = fixture(version, 32768, FILES);
        let layout = &fx.layout;
        for p in 0..layout.piece_count() {
            let mut data = fx.piece(p);
            assert!(
                storage::verify_piece_data(layout, p, &data).unwrap(),
                "{version:?} piece {p}"
            );
            let k = data.len() / 2;
            data[k] ^= 1;
            // A flipped byte on a pad file still reads as zero once stored; anywhere else it fails.
            let mem = MemoryStore::new(layout.clone());
            mem.write_block(p, 0, &data).unwrap();
            assert_eq!(
                storage::verify_piece_data(layout, p, &data).unwrap(),
                mem.verify_piece(p).unwrap(),
                "{version:?} piece {p}"
            );
            assert!(storage::verify_piece_data(layout, p, &data[1..]).is_err());
        }
    }
}
