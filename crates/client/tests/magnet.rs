//! Magnet links on loopback: the metadata comes from peers (BEP 9), is verified against the info-hash,
//! and the download goes on over the same connections; a peer that lies about the metadata is banned.
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

use client::{AddMagnet, Phase};
use common::{config, make_torrent, pseudo_random, seed_on, start_client, wait};
use metainfo::{Magnet, Torrent, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wire::{ExtendedHandshake, Message, MetadataMessage};

fn magnet_of(t: &Torrent) -> Magnet {
    Magnet {
        v1: t.info_hashes.v1,
        display_name: Some(t.info.name.clone()),
        ..Magnet::default()
    }
}

async fn wait_phase(h: &client::TorrentHandle, what: &str, done: impl Fn(&client::TorrentStatus) -> bool) {
    let mut rx = h.watch();
    let r = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if done(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(r.is_ok(), "{what}: not reached in 30 s: {:?}", h.status());
}

/// BEP 9: "This extension ... allows clients to join a swarm and complete a download without the need of
/// downloading a .torrent file first." A leecher given only the magnet link and a seeder's address gets
/// the metadata, then the content, byte for byte; a second leecher gets the metadata from the first one,
/// which serves what it fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_magnet_link_downloads_from_a_seeder_and_the_metadata_is_served_on() {
    let seed_dir = tempfile::tempdir().unwrap();
    // Many files with long names: an info dictionary of 3 metadata pieces.
    let names: Vec<String> = (0..500)
        .map(|i| format!("extras/a-rather-long-file-name-for-a-bigger-info-dictionary-{i:04}.txt"))
        .collect();
    let mut files: Vec<(&str, Vec<u8>)> = vec![("movie.mkv", pseudo_random(2_500_000, 11))];
    for (i, n) in names.iter().enumerate() {
        files.push((n.as_str(), pseudo_random(700 + i, 100 + i as u64)));
    }
    let torrent = make_torrent(seed_dir.path(), "Show", &files, 16384, Version::V1);
    assert!(
        torrent.raw_info().len() > 2 * 16384,
        "{}",
        torrent.raw_info().len()
    );
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, seed_dir.path()).await;

    let a_dir = tempfile::tempdir().unwrap();
    let a = start_client(config()).await;
    let mut add = AddMagnet::new(magnet_of(&torrent), a_dir.path().to_path_buf());
    add.peers = vec![seeder.listen_addr()];
    let ha = a.add_magnet(add).await.unwrap();
    assert_eq!(ha.info_hash(), torrent.info_hashes.v1.unwrap());
    let fetched = tokio::time::timeout(Duration::from_secs(30), ha.wait_metadata())
        .await
        .expect("metadata in 30 s")
        .unwrap();
    assert_eq!(fetched.raw_info(), torrent.raw_info());
    assert_eq!(fetched.info_hashes, torrent.info_hashes);
    assert_eq!(ha.is_private(), Some(false));
    wait(&ha, "magnet leecher").await;
    for (path, data) in &files {
        let got = std::fs::read(a_dir.path().join("Show").join(path)).unwrap();
        assert!(got == *data, "{path} differs");
    }
    assert_eq!(ha.status().banned, 0);

    // A second magnet leecher that knows only the first one.
    let b_dir = tempfile::tempdir().unwrap();
    let b = start_client(config()).await;
    let mut add = AddMagnet::new(magnet_of(&torrent), b_dir.path().to_path_buf());
    add.peers = vec![a.listen_addr()];
    let hb = b.add_magnet(add).await.unwrap();
    wait(&hb, "second magnet leecher").await;
    for (path, data) in &files {
        let got = std::fs::read(b_dir.path().join("Show").join(path)).unwrap();
        assert!(got == *data, "{path} differs");
    }
    assert_eq!(hb.torrent().unwrap().raw_info(), torrent.raw_info());
    b.shutdown().await;
    a.shutdown().await;
    seeder.shutdown().await;
}

/// A peer that claims the metadata and answers every request with forged bytes of the right size.
/// Reports on `closed` when its connection is closed.
async fn lying_metadata_peer(
    listener: TcpListener,
    info_hash: [u8; 20],
    info: Vec<u8>,
    closed: mpsc::UnboundedSender<()>,
) {
    let mut forged = info.clone();
    for b in forged.iter_mut().step_by(1000) {
        *b ^= 0x5a;
    }
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let closed = closed.clone();
        let forged = forged.clone();
        tokio::spawn(async move {
            let mut hs = [0u8; 68];
            if s.read_exact(&mut hs).await.is_err() {
                let _ = closed.send(());
                return;
            }
            let mut reply = vec![19u8];
            reply.extend_from_slice(b"BitTorrent protocol");
            reply.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0]);
            reply.extend_from_slice(&info_hash);
            reply.extend_from_slice(b"-XX0001-liar00000000");
            let mut h = ExtendedHandshake {
                metadata_size: Some(forged.len() as u32),
                ..Default::default()
            };
            h.m.insert("ut_metadata".into(), 3);
            Message::Extended {
                id: 0,
                payload: &h.encode(),
            }
            .encode(&mut reply)
            .unwrap();
            if s.write_all(&reply).await.is_err() {
                let _ = closed.send(());
                return;
            }
            let mut their_id = None;
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).await.is_err() {
                    break;
                }
                let len = u32::from_be_bytes(len) as usize;
                let mut body = vec![0u8; len];
                if s.read_exact(&mut body).await.is_err() {
                    break;
                }
                if body.first() != Some(&20) || body.len() < 2 {
                    continue;
                }
                if body[1] == 0 {
                    their_id = ExtendedHandshake::parse(&body[2..])
                        .ok()
                        .and_then(|h| h.extension_id("ut_metadata"));
                    continue;
                }
                let (Some(id), Ok(MetadataMessage::Request { piece })) =
                    (their_id, MetadataMessage::parse(&body[2..]))
                else {
                    continue;
                };
                let data = engine::metadata::data_message(&forged, piece).unwrap();
                let mut out = Vec::new();
                Message::Extended { id, payload: &data }.encode(&mut out).unwrap();
                if s.write_all(&out).await.is_err() {
                    break;
                }
            }
            let _ = closed.send(());
        });
    }
}

/// BEP 9: "the info-hash ... can be validated": a peer that sends forged metadata is caught by the hash
/// check, banned and disconnected; an honest seeder then completes the metadata and the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_metadata_peer_is_banned_and_an_honest_one_completes() {
    let seed_dir = tempfile::tempdir().unwrap();
    let data = pseudo_random(1_500_000, 21);
    let torrent = make_torrent(
        seed_dir.path(),
        "data.bin",
        &[("data.bin", data.clone())],
        16384,
        Version::V1,
    );
    let info_hash = torrent.info_hashes.v1.unwrap().0;
    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let liar = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let liar_addr: SocketAddr = liar.local_addr().unwrap();
    tokio::spawn(lying_metadata_peer(
        liar,
        info_hash,
        torrent.raw_info().to_vec(),
        closed_tx,
    ));

    let dir = tempfile::tempdir().unwrap();
    let leecher = start_client(config()).await;
    let mut add = AddMagnet::new(magnet_of(&torrent), dir.path().to_path_buf());
    add.peers = vec![liar_addr];
    let h = leecher.add_magnet(add).await.unwrap();
    // The liar alone: its copy fails the hash check; it is banned and disconnected.
    wait_phase(&h, "liar banned", |s| s.banned >= 1).await;
    assert_eq!(h.status().phase, Phase::FetchingMetadata);
    assert!(h.torrent().is_none());
    tokio::time::timeout(Duration::from_secs(10), closed_rx.recv())
        .await
        .expect("the liar's connection was closed")
        .unwrap();

    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, seed_dir.path()).await;
    h.add_peers(vec![seeder.listen_addr(), liar_addr]).await;
    wait(&h, "leecher").await;
    let got = std::fs::read(dir.path().join("data.bin")).unwrap();
    assert!(got == data, "the download differs");
    assert_eq!(h.torrent().unwrap().raw_info(), torrent.raw_info());
    assert!(h.status().banned >= 1);
    leecher.shutdown().await;
    seeder.shutdown().await;
}

/// `Client::fetch_metadata`: the torrent of a magnet link from a peer named in `x.pe`, nothing downloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_metadata_gets_the_torrent_and_downloads_nothing() {
    let seed_dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(
        seed_dir.path(),
        "fm.bin",
        &[("fm.bin", pseudo_random(200_000, 3))],
        16384,
        Version::V1,
    );
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, seed_dir.path()).await;
    let c = start_client(config()).await;
    let uri = format!(
        "magnet:?xt=urn:btih:{}&x.pe={}",
        torrent.info_hashes.v1.unwrap().to_hex(),
        seeder.listen_addr()
    );
    let m = Magnet::parse(&uri).unwrap();
    let got = c.fetch_metadata(m, Duration::from_secs(20)).await.unwrap();
    assert_eq!(got.raw_info(), torrent.raw_info());
    let missing = Magnet {
        v1: Some(metainfo::InfoHashV1([0xab; 20])),
        ..Magnet::default()
    };
    let e = c
        .fetch_metadata(missing, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("within 1 s"), "{e}");
}
