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

use client::{AddTorrent, Client, Phase};
use common::{config, make_torrent, pseudo_random, start_client, wait};
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
    let mut add = AddTorrent::new(torrent.clone(), seed_dir.path().to_path_buf());
    add.seed_only = true;
    let s = seeder.add_torrent(add).await.unwrap();
    wait(&s, "seeder check").await;
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
