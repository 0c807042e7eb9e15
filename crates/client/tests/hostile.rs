//! Hostile peers against a real client on loopback: each misbehaving peer is disconnected (and one that
//! sends wrong data is banned), and the download still completes, byte-identical, from a good seeder.
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

use client::{AddTorrent, Client};
use common::{config, make_torrent, pseudo_random, start_client, wait};
use metainfo::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What a hostile peer does after (or instead of) a correct handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Misbehaviour {
    /// Bytes that are not a handshake.
    Garbage,
    /// A length prefix of almost 4 GiB.
    OversizedLength,
    /// `have` for a piece far past the end.
    HaveOutOfRange,
    /// A bitfield one byte too long.
    WrongBitfieldSize,
    /// A `piece` message for a block nobody requested.
    UnrequestedBlock,
    /// Claims every piece and answers every request with wrong bytes.
    WrongData,
}

fn msg(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

/// Run one hostile peer on `listener`, serving any number of connections. Reports on `closed` each time
/// the client closes a connection to it (EOF or reset).
async fn hostile_peer(
    listener: TcpListener,
    how: Misbehaviour,
    info_hash: [u8; 20],
    pieces: u32,
    closed: mpsc::UnboundedSender<Misbehaviour>,
) {
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let closed = closed.clone();
        tokio::spawn(async move {
            // The client dials us: it sends its handshake first.
            let mut hs = [0u8; 68];
            if s.read_exact(&mut hs).await.is_err() {
                return;
            }
            if how == Misbehaviour::Garbage {
                let _ = s.write_all(&pseudo_random(200, 7)).await;
            } else {
                let mut reply = vec![19u8];
                reply.extend_from_slice(b"BitTorrent protocol");
                reply.extend_from_slice(&[0u8; 8]);
                reply.extend_from_slice(&info_hash);
                reply.extend_from_slice(b"-XX0001-hostile00000");
                let bitfield_len = pieces.div_ceil(8) as usize;
                let mut full = vec![0xFFu8; bitfield_len];
                if !pieces.is_multiple_of(8) {
                    *full.last_mut().unwrap() = 0xFFu8 << (8 - pieces % 8);
                }
                match how {
                    Misbehaviour::OversizedLength => reply.extend_from_slice(&0xFFFF_FFF0u32.to_be_bytes()),
                    Misbehaviour::HaveOutOfRange => reply.extend(msg(4, &(pieces + 1000).to_be_bytes())),
                    Misbehaviour::WrongBitfieldSize => reply.extend(msg(5, &vec![0xFF; bitfield_len + 1])),
                    Misbehaviour::UnrequestedBlock => {
                        reply.extend(msg(5, &full));
                        reply.extend(msg(1, &[]));
                        let mut p = 0u32.to_be_bytes().to_vec();
                        p.extend_from_slice(&0u32.to_be_bytes());
                        p.extend_from_slice(&[0u8; 16384]);
                        reply.extend(msg(7, &p));
                    }
                    Misbehaviour::WrongData => {
                        reply.extend(msg(5, &full));
                        reply.extend(msg(1, &[]));
                    }
                    Misbehaviour::Garbage => {}
                }
                if s.write_all(&reply).await.is_err() {
                    let _ = closed.send(how);
                    return;
                }
            }
            // Read what the client sends; answer requests with wrong data.
            let mut n = 0u64;
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
                if how == Misbehaviour::WrongData && body.first() == Some(&6) && body.len() == 13 {
                    let length = u32::from_be_bytes(body[9..13].try_into().unwrap()) as usize;
                    let mut p = body[1..9].to_vec();
                    n += 1;
                    p.extend(pseudo_random(length, n));
                    if s.write_all(&msg(7, &p)).await.is_err() {
                        break;
                    }
                }
            }
            let _ = closed.send(how);
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_peers_are_disconnected_and_the_download_completes() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data = pseudo_random(6 << 20, 42);
    let torrent = make_torrent(
        src.path(),
        "payload.bin",
        &[("payload.bin", data.clone())],
        262_144,
        Version::V1,
    );
    let info_hash = torrent.info_hashes.v1.unwrap().0;
    let pieces = torrent.info.geometry.piece_count();

    let (closed_tx, mut closed_rx) = mpsc::unbounded_channel();
    let all = [
        Misbehaviour::Garbage,
        Misbehaviour::OversizedLength,
        Misbehaviour::HaveOutOfRange,
        Misbehaviour::WrongBitfieldSize,
        Misbehaviour::UnrequestedBlock,
        Misbehaviour::WrongData,
    ];
    let mut hostile: Vec<SocketAddr> = Vec::new();
    for how in all {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        hostile.push(l.local_addr().unwrap());
        tokio::spawn(hostile_peer(l, how, info_hash, pieces, closed_tx.clone()));
    }

    // The leecher meets the hostile peers first; the good seeder, limited to 4 MiB/s, joins later,
    // so the wrong-data peer gets the chance to send whole pieces.
    let leecher = start_client(config()).await;
    let mut add = AddTorrent::new(torrent.clone(), dst.path().to_path_buf());
    add.peers = hostile.clone();
    let l = leecher.add_torrent(add).await.unwrap();

    let mut closed = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while closed.len() < all.len() - 1 {
        match tokio::time::timeout_at(deadline, closed_rx.recv()).await {
            Ok(Some(how)) => closed.push(how),
            _ => panic!("only {closed:?} were disconnected; status {:?}", l.status()),
        }
    }
    for how in &all[..5] {
        assert!(closed.contains(how), "{how:?} was not disconnected: {closed:?}");
    }

    let seeder = start_client(client::ClientConfig {
        upload_limit: Some(4 << 20),
        ..config()
    })
    .await;
    let mut add = AddTorrent::new(torrent, src.path().to_path_buf());
    add.seed_only = true;
    seeder.add_torrent(add).await.unwrap();
    l.add_peers(vec![seeder.listen_addr()]).await;

    wait(&l, "leecher").await;
    let got = std::fs::read(dst.path().join("payload.bin")).unwrap();
    assert!(got == data, "the download differs from the original");
    let st = l.status();
    assert!(st.banned >= 1, "the wrong-data peer was not banned: {st:?}");
    assert!(st.failed_pieces >= 1, "{st:?}");
    // The banned peer's connection was closed too.
    let gone = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(how) = closed_rx.recv().await {
            if how == Misbehaviour::WrongData {
                return;
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "the wrong-data peer is still connected");
    leecher.shutdown().await;
    seeder.shutdown().await;
}

/// A peer that sends nothing at all after connecting is dropped by the handshake timeout, and does not
/// hold up the download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_incoming_connection_is_dropped() {
    let c = start_client(config()).await;
    let mut s = TcpStream::connect(c.listen_addr()).await.unwrap();
    // Not a BitTorrent handshake: the listener drops it once it has 48 bytes.
    s.write_all(&[0u8; 48]).await.unwrap();
    let mut buf = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "the connection stayed open: {r:?}"
    );
    let _ = Client::listen_addr(&c);
    c.shutdown().await;
}
