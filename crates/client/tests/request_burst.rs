//! A peer that refills its requests on a timer, as Transmission 3.00 does (at most the `reqq` we
//! announce, about once a second), is served a whole burst of `reqq` requests: none rejected, every
//! block right.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::time::Duration;

use common::{config, make_torrent, pseudo_random, seed_on, start_client};
use metainfo::Version;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{ExtendedHandshake, Reserved, BLOCK_LEN};

fn msg(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

/// One message's id and payload (`None` for a keep-alive).
async fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return None;
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).await.unwrap();
    let id = body.remove(0);
    Some((id, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_reqq_requests_is_served_whole() {
    const PIECE: u32 = 1 << 20;
    let src = tempfile::tempdir().unwrap();
    let data = pseudo_random(64 << 20, 5);
    let torrent = make_torrent(
        src.path(),
        "burst.bin",
        &[("burst.bin", data.clone())],
        u64::from(PIECE),
        Version::V1,
    );
    let info_hash = torrent.info_hashes.v1.unwrap().0;
    let seeder = start_client(config()).await;
    seed_on(&seeder, &torrent, src.path()).await;

    let mut s = TcpStream::connect(seeder.listen_addr()).await.unwrap();
    let mut hs = vec![19u8];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&Reserved::EXTENDED.with(Reserved::FAST, true).0);
    hs.extend_from_slice(&info_hash);
    hs.extend_from_slice(b"-TR3000-burst0000000");
    s.write_all(&hs).await.unwrap();
    let mut reply = [0u8; 68];
    s.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply[28..48], &info_hash[..]);

    let run = async {
        // The seeder's extended handshake gives its reqq.
        let reqq = loop {
            if let Some((20, body)) = read_msg(&mut s).await {
                if body.first() == Some(&0) {
                    break ExtendedHandshake::parse(&body[1..]).unwrap().reqq.unwrap();
                }
            }
        };
        // Transmission 3.00 sends at most reqq requests a second (it refills on its 500 ms bandwidth
        // pulses and flushes on the next one): reqq blocks a second is its rate from us.
        assert!(
            reqq >= 2000,
            "reqq {reqq}: Transmission could take at most {} KiB/s",
            reqq * 16
        );
        let reqq = reqq.min(data.len() as u32 / BLOCK_LEN);
        let mut out = msg(15, &[]); // have none
        out.extend(msg(2, &[])); // interested
        s.write_all(&out).await.unwrap();
        loop {
            if let Some((1, _)) = read_msg(&mut s).await {
                break;
            }
        }
        let mut burst = Vec::new();
        for b in 0..reqq {
            let at = u64::from(b) * u64::from(BLOCK_LEN);
            let mut p = ((at / u64::from(PIECE)) as u32).to_be_bytes().to_vec();
            p.extend_from_slice(&((at % u64::from(PIECE)) as u32).to_be_bytes());
            p.extend_from_slice(&BLOCK_LEN.to_be_bytes());
            burst.extend(msg(6, &p));
        }
        s.write_all(&burst).await.unwrap();
        let mut got = 0u32;
        while got < reqq {
            match read_msg(&mut s).await {
                Some((7, body)) => {
                    let piece = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
                    let begin = u32::from_be_bytes(body[4..8].try_into().unwrap()) as usize;
                    let at = piece * PIECE as usize + begin;
                    assert!(
                        body[8..] == data[at..at + BLOCK_LEN as usize],
                        "block at {at} differs"
                    );
                    got += 1;
                }
                Some((16, _)) => panic!("request rejected after {got} of a burst of {reqq}"),
                Some((0, _)) => panic!("choked after {got} of a burst of {reqq}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the burst was not served within 60 s");
    seeder.shutdown().await;
}
