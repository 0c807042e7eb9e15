//! Real clients on loopback, in one process: seeders and leechers over TCP with files on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::net::SocketAddr;

use std::time::Duration;

use client::{AddTorrent, Client, Phase};
use common::{config, make_torrent, pseudo_random, seed_on, start_client, wait};
use metainfo::Version;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leecher_downloads_a_multi_file_torrent_from_a_seeder() {
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let files = vec![
        ("a/big.bin", pseudo_random(3_000_000, 1)),
        ("a/b/small.txt", pseudo_random(1000, 2)),
        ("empty", Vec::new()),
        ("z.bin", pseudo_random(700_001, 3)),
    ];
    let torrent = make_torrent(seed_dir.path(), "content", &files, 65536, Version::V1);

    let seeder = start_client(config()).await;
    let s = seed_on(&seeder, &torrent, seed_dir.path()).await;
    assert_eq!(s.status().pieces_have, s.status().pieces_total);

    let leecher = start_client(config()).await;
    let mut add = AddTorrent::new(torrent, leech_dir.path().to_path_buf());
    add.peers = vec![seeder.listen_addr()];
    let l = leecher.add_torrent(add).await.unwrap();
    wait(&l, "leecher").await;
    for (path, data) in &files {
        let got = std::fs::read(leech_dir.path().join("content").join(path)).unwrap();
        assert!(got == *data, "{path} differs");
    }
    let st = l.status();
    assert_eq!(st.phase, Phase::Seeding);
    assert!(st.downloaded >= 3_701_001, "{st:?}");
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_half_seeders_and_a_leecher_complete_each_other() {
    // Three clients: A has the first half of the pieces, B the second, C nothing; all end complete,
    // so A and B each both gave and took.
    let src = tempfile::tempdir().unwrap();
    let data = pseudo_random(4 << 20, 9);
    let torrent = make_torrent(
        src.path(),
        "file.bin",
        &[("file.bin", data.clone())],
        65536,
        Version::V1,
    );
    let pieces = torrent.info.geometry.piece_count() as usize;
    let half = pieces / 2 * 65536;
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    // A: first half, rest zeros (fails verification); B: second half.
    let mut a = data.clone();
    a[half..].fill(0);
    std::fs::write(dirs[0].path().join("file.bin"), &a).unwrap();
    let mut b = data.clone();
    b[..half].fill(0);
    std::fs::write(dirs[1].path().join("file.bin"), &b).unwrap();

    let clients: Vec<Client> = futures_join(3).await;
    let addrs: Vec<SocketAddr> = clients.iter().map(Client::listen_addr).collect();
    let mut handles = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let mut add = AddTorrent::new(torrent.clone(), dirs[i].path().to_path_buf());
        add.peers = addrs.iter().copied().filter(|a| *a != addrs[i]).collect();
        handles.push(c.add_torrent(add).await.unwrap());
    }
    for (i, h) in handles.iter().enumerate() {
        wait(h, &format!("client {i}")).await;
        let got = std::fs::read(dirs[i].path().join("file.bin")).unwrap();
        assert!(got == data, "client {i}: content differs");
    }
    assert!(
        handles[0].status().uploaded > 0 && handles[0].status().downloaded > 0,
        "{:?}",
        handles[0].status()
    );
    assert!(
        handles[1].status().uploaded > 0 && handles[1].status().downloaded > 0,
        "{:?}",
        handles[1].status()
    );
    for c in clients {
        c.shutdown().await;
    }
}

async fn futures_join(n: usize) -> Vec<Client> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(start_client(config()).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_serves_two_torrents_on_one_port_routed_by_info_hash() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let a_data = pseudo_random(1_500_000, 11);
    let b_data = pseudo_random(900_000, 12);
    let a = make_torrent(
        src.path(),
        "a.bin",
        &[("a.bin", a_data.clone())],
        32768,
        Version::V1,
    );
    let b = make_torrent(
        src.path(),
        "b.bin",
        &[("b.bin", b_data.clone())],
        65536,
        Version::V1,
    );
    let seeder = start_client(config()).await;
    for t in [&a, &b] {
        seed_on(&seeder, t, src.path()).await;
    }
    // The leecher dials the seeder once per torrent; the seeder's listener routes each connection.
    let leecher = start_client(config()).await;
    let mut handles = Vec::new();
    for t in [a, b] {
        let mut add = AddTorrent::new(t, dst.path().to_path_buf());
        add.peers = vec![seeder.listen_addr()];
        handles.push(leecher.add_torrent(add).await.unwrap());
    }
    for h in &handles {
        wait(h, "leecher").await;
    }
    assert!(std::fs::read(dst.path().join("a.bin")).unwrap() == a_data);
    assert!(std::fs::read(dst.path().join("b.bin")).unwrap() == b_data);
    // Adding the same torrent twice is refused.
    let again = AddTorrent::new(
        make_torrent(src.path(), "a.bin", &[("a.bin", a_data)], 32768, Version::V1),
        dst.path().to_path_buf(),
    );
    assert!(matches!(
        leecher.add_torrent(again).await,
        Err(client::ClientError::Duplicate(_))
    ));
    leecher.shutdown().await;
    seeder.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_selected_files_are_downloaded() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = vec![
        ("big/one.bin", pseudo_random(2_000_000, 21)),
        ("docs/readme.txt", pseudo_random(40_000, 22)),
        ("zzz/two.bin", pseudo_random(2_000_000, 23)),
    ];
    let torrent = make_torrent(src.path(), "set", &files, 65536, Version::V1);
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, src.path()).await;

    let leecher = start_client(config()).await;
    let mut add = AddTorrent::new(torrent, dst.path().to_path_buf());
    add.peers = vec![seeder.listen_addr()];
    add.only = vec!["readme".into()];
    let h = leecher.add_torrent(add).await.unwrap();
    wait(&h, "leecher").await;
    let got = std::fs::read(dst.path().join("set/docs/readme.txt")).unwrap();
    assert!(got == files[1].1, "the selected file differs");
    let st = h.status();
    // Only the pieces touching the selected file (at most 2 of 64 KiB, plus neighbours' bytes) came.
    assert!(st.downloaded <= 3 * 65536, "{st:?}");
    assert!(st.pieces_have < st.pieces_total, "{st:?}");
    // A pattern that matches nothing is refused.
    let mut add = AddTorrent::new(
        make_torrent(src.path(), "set", &files, 65536, Version::V1),
        tempfile::tempdir().unwrap().path().to_path_buf(),
    );
    add.only = vec!["nothing-matches".into()];
    let other = start_client(config()).await;
    let h = other.add_torrent(add).await.unwrap();
    let r = tokio::time::timeout(Duration::from_secs(20), h.wait_complete())
        .await
        .unwrap();
    assert!(
        matches!(r, Err(client::ClientError::Failed(ref e)) if e.contains("nothing-matches")),
        "{r:?}"
    );
    other.shutdown().await;
    leecher.shutdown().await;
    seeder.shutdown().await;
}

/// A download limit holds: 3 MiB at 1 MiB/s cannot take less than about two seconds (the bucket starts
/// with a quarter second of burst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_limit_paces_the_transfer() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data = pseudo_random(3 << 20, 31);
    let torrent = make_torrent(
        src.path(),
        "slow.bin",
        &[("slow.bin", data.clone())],
        65536,
        Version::V1,
    );
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, src.path()).await;
    let leecher = start_client(config()).await;
    let mut add = AddTorrent::new(torrent, dst.path().to_path_buf());
    add.peers = vec![seeder.listen_addr()];
    add.download_limit = Some(1 << 20);
    let started = std::time::Instant::now();
    let h = leecher.add_torrent(add).await.unwrap();
    wait(&h, "leecher").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2500),
        "3 MiB at 1 MiB/s took only {took:?}"
    );
    assert!(std::fs::read(dst.path().join("slow.bin")).unwrap() == data);
    leecher.shutdown().await;
    seeder.shutdown().await;
}

/// Two seeds that meet close the connection (neither can want anything from the other) and do not dial
/// each other again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_seeds_that_meet_part_ways() {
    let src = tempfile::tempdir().unwrap();
    let data = pseudo_random(500_000, 41);
    let torrent = make_torrent(src.path(), "s.bin", &[("s.bin", data)], 32768, Version::V1);
    let a = start_client(config()).await;
    let b = start_client(config()).await;
    let mut add = AddTorrent::new(torrent.clone(), src.path().to_path_buf());
    add.seed_only = true;
    let ha = a.add_torrent(add.clone()).await.unwrap();
    add.peers = vec![a.listen_addr()];
    let hb = b.add_torrent(add).await.unwrap();
    wait(&ha, "a").await;
    wait(&hb, "b").await;
    // b dials a; within a few seconds both have closed the connection and b no longer knows a.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (sa, sb) = (ha.status(), hb.status());
        if sa.peers == 0 && sb.peers == 0 && sb.known_peers == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "seeds still connected: {sa:?} {sb:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.shutdown().await;
    b.shutdown().await;
}

/// A hybrid torrent's pad files (BEP 47) are never requested: the leecher downloads exactly the files'
/// bytes, and every file arrives intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pad_blocks_of_a_hybrid_torrent_are_never_requested() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files = vec![
        ("a.bin", pseudo_random(100_000, 51)),
        ("b.bin", pseudo_random(70_000, 52)),
        ("c.bin", pseudo_random(33_333, 53)),
    ];
    let torrent = make_torrent(src.path(), "hyb", &files, 65536, Version::Hybrid);
    assert!(
        torrent.info.files.iter().any(|f| f.attr.pad),
        "the hybrid torrent has pad files"
    );
    let torrent_files = torrent.info.files.clone();
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, src.path()).await;
    let leecher = start_client(config()).await;
    let mut add = AddTorrent::new(torrent, dst.path().to_path_buf());
    add.peers = vec![seeder.listen_addr()];
    let h = leecher.add_torrent(add).await.unwrap();
    wait(&h, "leecher").await;
    for (name, data) in &files {
        assert!(
            std::fs::read(dst.path().join("hyb").join(name)).unwrap() == *data,
            "{name}"
        );
    }
    // What must come over the wire: the files' bytes, plus the pad bytes that share a 16 KiB block with
    // file data (a block is requested whole); blocks wholly on pad files are not requested.
    let mut offset = 0u64;
    let mut expected = 0u64;
    let mut pad_total = 0u64;
    for f in &torrent_files {
        if f.attr.pad {
            let end = offset + f.length;
            let block_end = (offset / 16384 + 1) * 16384;
            if !offset.is_multiple_of(16384) {
                expected += end.min(block_end) - offset;
            }
            pad_total += f.length;
        } else {
            expected += f.length;
        }
        offset += f.length;
    }
    let got = h.status().downloaded;
    assert_eq!(
        got, expected,
        "downloaded {got}; files and straddling pad {expected}; all pad {pad_total}"
    );
    assert!(expected < offset, "the test torrent has whole pad blocks");
    leecher.shutdown().await;
    seeder.shutdown().await;
}
