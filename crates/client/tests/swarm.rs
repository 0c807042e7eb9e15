//! Real clients on loopback, in one process: seeders and leechers over TCP with files on disk.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{AddTorrent, Client, ClientConfig, Phase};
use metainfo::{BuildFile, Torrent, TorrentBuilder, Version};
use storage::{hash_pieces, Progress};
use tokio::net::TcpListener;

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Write `files` (relative paths under a folder `name` when several) into `dir` and make a torrent.
fn make_torrent(
    dir: &Path,
    name: &str,
    files: &[(&str, Vec<u8>)],
    piece_length: u64,
    version: Version,
) -> Torrent {
    let multi = files.len() > 1 || files[0].0.contains('/');
    let mut build = Vec::new();
    for (path, data) in files {
        let full = if multi {
            dir.join(name).join(path)
        } else {
            dir.join(path)
        };
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, data).unwrap();
        build.push(BuildFile {
            path: path.split('/').map(String::from).collect(),
            length: data.len() as u64,
            executable: false,
        });
    }
    let builder = TorrentBuilder::new(name, build, multi, version, piece_length);
    let plan = builder.plan().unwrap();
    let base = if multi { dir.join(name) } else { dir.to_path_buf() };
    let paths: Vec<Option<PathBuf>> = plan
        .entries()
        .iter()
        .map(|e| {
            e.source
                .and_then(|s| plan.files().get(s))
                .map(|f| base.join(f.path.iter().collect::<PathBuf>()))
        })
        .collect();
    let hashes = hash_pieces(plan.geometry(), &paths, 2, &Progress::default()).unwrap();
    Torrent::from_bytes(plan.finish(&hashes).unwrap()).unwrap()
}

async fn start_client(config: ClientConfig) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Client::start(config, Some(listener)).await.unwrap()
}

fn config() -> ClientConfig {
    ClientConfig {
        use_trackers: false,
        ..ClientConfig::default()
    }
}

async fn wait(handle: &client::TorrentHandle, what: &str) {
    match tokio::time::timeout(Duration::from_secs(60), handle.wait_complete()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: not complete after 60 s: {:?}", handle.status()),
    }
}

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
