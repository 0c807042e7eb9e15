//! Helpers shared by the client's integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use client::{Client, ClientConfig};
use metainfo::{BuildFile, Torrent, TorrentBuilder, Version};
use storage::{hash_pieces, Progress};
use tokio::net::TcpListener;

pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
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
pub fn make_torrent(
    dir: &Path,
    name: &str,
    files: &[(&str, Vec<u8>)],
    piece_length: u64,
    version: Version,
) -> Torrent {
    build_torrent(dir, name, files, piece_length, version, false)
}

/// [`make_torrent`], v1, with the BEP 27 private flag.
#[allow(dead_code)]
pub fn make_private_torrent(dir: &Path, name: &str, files: &[(&str, Vec<u8>)], piece_length: u64) -> Torrent {
    build_torrent(dir, name, files, piece_length, Version::V1, true)
}

fn build_torrent(
    dir: &Path,
    name: &str,
    files: &[(&str, Vec<u8>)],
    piece_length: u64,
    version: Version,
    private: bool,
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
    let mut builder = TorrentBuilder::new(name, build, multi, version, piece_length);
    builder.private = private;
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

pub async fn start_client(config: ClientConfig) -> Client {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    Client::start(config, Some(listener)).await.unwrap()
}

pub fn config() -> ClientConfig {
    ClientConfig {
        use_trackers: false,
        ..ClientConfig::default()
    }
}

pub async fn wait(handle: &client::TorrentHandle, what: &str) {
    match tokio::time::timeout(Duration::from_secs(60), handle.wait_complete()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: not complete after 60 s: {:?}", handle.status()),
    }
}

/// Add `torrent` to `client` as a seed of the content in `dir` and wait until its check is done.
pub async fn seed_on(client: &Client, torrent: &Torrent, dir: &Path) -> client::TorrentHandle {
    let mut add = client::AddTorrent::new(torrent.clone(), dir.to_path_buf());
    add.seed_only = true;
    let h = client.add_torrent(add).await.unwrap();
    wait(&h, "seeder check").await;
    h
}
