#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Real bytes captured from libtorrent 2.0.8 and Transmission 3.00 seeding on loopback (see
//! `tests/fixtures/README.md`), decoded exactly.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use metainfo::{InfoHashV1, InfoHashV2, PieceIndex};
use sha2::Digest;
use wire::{
    decode, Bitfield, ExtendedHandshake, Handshake, HashRequest, Message, MetadataMessage, PexFlags,
    PexMessage, Reserved, DEFAULT_MAX_MESSAGE_LEN,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn capture() -> serde_json::Value {
    serde_json::from_slice(&fixture("capture.json")).unwrap()
}

/// The raw `info` dictionary of a torrent file (the metadata ut_metadata transfers).
fn info_of(torrent: &str) -> Vec<u8> {
    let raw = fixture(torrent);
    let v = bencode::decode(&raw).unwrap();
    v.as_dict().unwrap().get(b"info").unwrap().raw().to_vec()
}

/// The captured payload: byte i is (7 i + 3) mod 256.
fn payload(range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| (i * 7 + 3) as u8).collect()
}

/// Every message of a stream, with its offset, checking that the stream ends on a message boundary.
fn messages(stream: &[u8]) -> Vec<(usize, Message<'_>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < stream.len() {
        let (m, used) = decode(&stream[at..], DEFAULT_MAX_MESSAGE_LEN)
            .unwrap_or_else(|e| panic!("at byte {at}: {e}"))
            .unwrap_or_else(|| panic!("stream ends inside a message at byte {at}"));
        out.push((at, m));
        at += used;
    }
    out
}

/// Our framing agrees with the capture script's own (offset, length, id, extension id per frame).
fn check_frames(stream: &[u8], frames: &serde_json::Value) {
    let ours: Vec<serde_json::Value> = messages(stream)
        .iter()
        .map(|(at, m)| {
            let mut f = serde_json::json!({
                "offset": at,
                "len": m.encoded_len() - 4,
                "id": m.id(),
            });
            if let Message::Extended { id, .. } = m {
                f["ext_id"] = (*id).into();
            }
            f
        })
        .collect();
    assert_eq!(&serde_json::Value::Array(ours), frames);
}

fn ext_handshake(m: &Message<'_>) -> ExtendedHandshake {
    match m {
        Message::Extended { id: 0, payload } => ExtendedHandshake::parse(payload).unwrap(),
        other => panic!("expected an extended handshake, got {other:?}"),
    }
}

fn extended<'a>(m: &Message<'a>, want_id: u8) -> &'a [u8] {
    match *m {
        Message::Extended { id, payload } if id == want_id => payload,
        other => panic!("expected extended message {want_id}, got {other:?}"),
    }
}

/// Re-encoding every decoded message gives back the stream, byte for byte.
fn reencode(stream: &[u8]) {
    let mut out = Vec::new();
    for (_, m) in messages(stream) {
        m.encode(&mut out).unwrap();
    }
    assert_eq!(out, stream);
}

#[test]
fn libtorrent_handshake() {
    let h = Handshake::parse(&fixture("libtorrent-handshake.bin")).unwrap();
    assert_eq!(h.reserved, Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x05]));
    assert!(h.reserved.extended() && h.reserved.fast() && h.reserved.dht() && !h.reserved.v2());
    assert_eq!(h.info_hash, InfoHashV1::of_info(&info_of("v1.torrent")));
    assert_eq!(
        h.info_hash.to_hex(),
        capture()["libtorrent"]["info_hash"].as_str().unwrap()
    );
    assert_eq!(h.peer_id.azureus_prefix(), Some("-LT2080-"));
    assert_eq!(Handshake::parse(&h.to_bytes()).unwrap(), h);
    assert_eq!(h.to_bytes().to_vec(), fixture("libtorrent-handshake.bin"));
}

#[test]
fn libtorrent_stream_with_fast_extension() {
    let stream = fixture("libtorrent-stream.bin");
    let info = info_of("v1.torrent");
    let cap = capture();
    check_frames(&stream, &cap["libtorrent"]["main"]["frames"]);
    reencode(&stream);
    let msgs: Vec<Message<'_>> = messages(&stream).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs.len(), 13);

    let hs = ext_handshake(&msgs[0]);
    let m: Vec<(&str, u8)> = hs.m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(
        m,
        [
            ("lt_donthave", 7),
            ("share_mode", 8),
            ("upload_only", 3),
            ("ut_holepunch", 4),
            ("ut_metadata", 2),
            ("ut_pex", 1)
        ]
    );
    assert_eq!(hs.v.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(hs.reqq, Some(2000));
    assert_eq!(hs.metadata_size, Some(info.len() as u32));
    assert_eq!(hs.metadata_size, Some(1314));
    assert_eq!(hs.yourip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(hs.upload_only);
    assert_eq!(hs.p, None, "the accepting side does not send its port");

    // A seed answering a fast-extension peer: have all, its DHT port (BEP 5), unchoke, allowed fast set.
    assert_eq!(msgs[1], Message::HaveAll);
    assert_eq!(msgs[2], Message::Port(47881));
    assert_eq!(msgs[3], Message::Unchoke);
    let allowed: Vec<u32> = msgs[4..9]
        .iter()
        .map(|m| match m {
            Message::AllowedFast(PieceIndex(i)) => *i,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(allowed, [55, 47, 5, 37, 32]);
    assert_eq!(msgs[9], Message::Unchoke);

    // ut_metadata: our id for it was 3; the data message carries the whole info dict.
    let data = MetadataMessage::parse(extended(&msgs[10], 3)).unwrap();
    assert_eq!(
        data,
        MetadataMessage::Data {
            piece: 0,
            total_size: 1314,
            data: &info
        }
    );
    assert_eq!(data.encode(), extended(&msgs[10], 3));
    // libtorrent's reject of an out-of-range piece carries total_size too.
    let reject = extended(&msgs[11], 3);
    assert_eq!(reject, b"d8:msg_typei2e5:piecei1000e10:total_sizei1314ee");
    assert_eq!(
        MetadataMessage::parse(reject).unwrap(),
        MetadataMessage::Reject { piece: 1000 }
    );

    // The block we asked for: piece 1, offset 0, 16 KiB, borrowed from the stream.
    match msgs[12] {
        Message::Piece { index, begin, block } => {
            assert_eq!((index, begin, block.len()), (PieceIndex(1), 0, 16384));
            assert_eq!(block, &payload(16384..32768)[..]);
            let start = block.as_ptr() as usize - stream.as_ptr() as usize;
            assert_eq!(start, 1701 + 13, "the block is a slice of the input, not a copy");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn libtorrent_stream_without_fast_extension_sends_bitfield_and_pex() {
    let stream = fixture("libtorrent-nofast-stream.bin");
    check_frames(&stream, &capture()["libtorrent"]["nofast"]["frames"]);
    reencode(&stream);
    let msgs: Vec<Message<'_>> = messages(&stream).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs.len(), 4);
    assert_eq!(ext_handshake(&msgs[0]).v.as_deref(), Some("libtorrent/2.0.8.0"));
    let Message::Bitfield(bits) = msgs[1] else {
        panic!("{:?}", msgs[1])
    };
    let bf = Bitfield::from_bytes(bits, 62).unwrap();
    assert!(bf.is_full());
    assert_eq!(bf, Bitfield::full(62));
    // 62 pieces in 8 bytes: the two spare bits are zero, so 63 or 64 pieces would be refused.
    assert!(Bitfield::from_bytes(bits, 61).is_err());
    assert!(Bitfield::from_bytes(bits, 64).unwrap().count() == 62);
    assert_eq!(msgs[2], Message::Unchoke);
    // PEX (our ut_pex id 1): both capture connections, each known by the port its handshake sent.
    let pex_bytes = extended(&msgs[3], 1);
    let pex = PexMessage::parse(pex_bytes).unwrap();
    assert_eq!(
        pex.added,
        [
            (SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40001), PexFlags(0)),
            (SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40002), PexFlags(0)),
        ]
    );
    assert!(pex.dropped.is_empty() && pex.added6.is_empty() && pex.dropped6.is_empty());
    // Our encoder writes the same keys libtorrent does, so the bytes come back exactly.
    assert_eq!(pex.encode(), pex_bytes);
}

#[test]
fn libtorrent_hybrid_handshakes_and_bep52_hashes() {
    let info = info_of("hybrid.torrent");
    let v1 = InfoHashV1::of_info(&info);
    let v2 = InfoHashV2::of_info(&info);
    let cap = capture();
    assert_eq!(
        v2.to_hex(),
        cap["libtorrent_hybrid"]["info_hash_v2"].as_str().unwrap()
    );

    // Over the v1 hash of a hybrid torrent libtorrent sets the BEP 52 upgrade bit.
    let h1 = Handshake::parse(&fixture("libtorrent-hybrid-v1-handshake.bin")).unwrap();
    assert_eq!(h1.reserved, Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x15]));
    assert!(h1.reserved.v2() && h1.reserved.fast() && h1.reserved.extended());
    assert_eq!(h1.info_hash, v1);
    assert_eq!(h1.peer_id.azureus_prefix(), Some("-LT2080-"));
    // Over the truncated v2 hash the connection is v2 already: no upgrade bit.
    let h2 = Handshake::parse(&fixture("libtorrent-hybrid-v2-handshake.bin")).unwrap();
    assert_eq!(h2.info_hash, v2.truncated());
    assert!(!h2.reserved.v2());

    let stream = fixture("libtorrent-hybrid-v2-stream.bin");
    check_frames(&stream, &cap["libtorrent_hybrid"]["frames"]);
    reencode(&stream);
    let msgs: Vec<Message<'_>> = messages(&stream).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs.len(), 7);
    assert_eq!(ext_handshake(&msgs[0]).metadata_size, Some(info.len() as u32));
    assert_eq!((msgs[1], msgs[2]), (Message::HaveAll, Message::Unchoke));

    let root: [u8; 32] = data_encoding_hex(cap["libtorrent_hybrid"]["pieces_root"].as_str().unwrap());
    let req = |index, length, proof_layers| HashRequest {
        pieces_root: root,
        base_layer: 0,
        index,
        length,
        proof_layers,
    };
    let leaf = |i: usize| -> [u8; 32] { sha2::Sha256::digest(payload(i * 16384..(i + 1) * 16384)).into() };
    // (0, 0, 8, 0): the first 8 leaf hashes, no proof.
    let Message::Hashes { request, hashes } = msgs[3] else {
        panic!("{:?}", msgs[3])
    };
    assert_eq!(request, req(0, 8, 0));
    assert_eq!(hashes.len(), 8 * 32);
    for (i, h) in hashes.chunks(32).enumerate() {
        assert_eq!(h, leaf(i), "leaf {i}");
    }
    // (0, 0, 4, 2): 4 leaves and one uncle (BEP 52 omits the first log2(length) - 1 proof layers).
    let Message::Hashes { request, hashes } = msgs[4] else {
        panic!("{:?}", msgs[4])
    };
    assert_eq!(request, req(0, 4, 2));
    assert_eq!(hashes.len(), 5 * 32);
    // (0, 3, 2, 0): index not a multiple of length, served all the same by libtorrent 2.0.8.
    assert!(
        matches!(msgs[5], Message::Hashes { request, hashes } if request == req(3, 2, 0) && hashes.len() == 64)
    );
    // (0, 0, 8, 6): more proof layers than the tree has: rejected.
    assert_eq!(msgs[6], Message::HashReject(req(0, 8, 6)));
}

fn data_encoding_hex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn transmission_handshake() {
    let h = Handshake::parse(&fixture("transmission-handshake.bin")).unwrap();
    // Fast and extended; no DHT bit (its DHT was off for the capture).
    assert_eq!(h.reserved, Reserved([0, 0, 0, 0, 0, 0x10, 0, 0x04]));
    assert!(!h.reserved.dht());
    assert_eq!(h.info_hash, InfoHashV1::of_info(&info_of("v1.torrent")));
    assert_eq!(h.peer_id.azureus_prefix(), Some("-TR3000-"));
}

#[test]
fn transmission_stream_with_fast_extension() {
    let stream = fixture("transmission-stream.bin");
    let info = info_of("v1.torrent");
    check_frames(&stream, &capture()["transmission"]["main"]["frames"]);
    reencode(&stream);
    let msgs: Vec<Message<'_>> = messages(&stream).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs.len(), 7);

    let hs = ext_handshake(&msgs[0]);
    let m: Vec<(&str, u8)> = hs.m.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    assert_eq!(m, [("ut_metadata", 3), ("ut_pex", 1)]);
    assert_eq!(hs.v.as_deref(), Some("Transmission 3.00"));
    assert_eq!(hs.reqq, Some(512));
    assert_eq!(hs.p, Some(47883));
    assert_eq!(hs.metadata_size, Some(info.len() as u32));
    assert!(hs.upload_only);
    assert_eq!(hs.yourip, None);

    assert_eq!(msgs[1], Message::HaveAll);
    // Transmission lists the receiving peer itself in its first PEX message.
    let pex = PexMessage::parse(extended(&msgs[2], 1)).unwrap();
    assert_eq!(
        pex.added,
        [(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40001), PexFlags(0))]
    );
    assert_eq!(
        MetadataMessage::parse(extended(&msgs[3], 3)).unwrap(),
        MetadataMessage::Data {
            piece: 0,
            total_size: 1314,
            data: &info
        }
    );
    assert_eq!(extended(&msgs[4], 3), b"d8:msg_typei2e5:piecei1000ee");
    assert_eq!(
        MetadataMessage::parse(extended(&msgs[4], 3)).unwrap(),
        MetadataMessage::Reject { piece: 1000 }
    );
    assert_eq!(msgs[5], Message::Unchoke);
    assert_eq!(
        msgs[6],
        Message::Piece {
            index: PieceIndex(1),
            begin: 0,
            block: &payload(16384..32768)
        }
    );
}

#[test]
fn transmission_stream_without_fast_extension() {
    let stream = fixture("transmission-nofast-stream.bin");
    check_frames(&stream, &capture()["transmission"]["nofast"]["frames"]);
    reencode(&stream);
    let msgs: Vec<Message<'_>> = messages(&stream).into_iter().map(|(_, m)| m).collect();
    assert_eq!(msgs.len(), 3);
    let Message::Bitfield(bits) = msgs[1] else {
        panic!("{:?}", msgs[1])
    };
    assert!(Bitfield::from_bytes(bits, 62).unwrap().is_full());
    let pex = PexMessage::parse(extended(&msgs[2], 1)).unwrap();
    assert_eq!(
        pex.added,
        [
            (SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40001), PexFlags(0)),
            (SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 40005), PexFlags(0)),
        ]
    );
}

#[test]
fn every_captured_stream_survives_every_split() {
    // Receiving a real stream in two parts, split anywhere, gives the same messages as receiving it whole.
    for name in [
        "libtorrent-stream.bin",
        "libtorrent-nofast-stream.bin",
        "libtorrent-hybrid-v2-stream.bin",
        "transmission-stream.bin",
        "transmission-nofast-stream.bin",
    ] {
        let stream = fixture(name);
        let whole: Vec<String> = messages(&stream).iter().map(|(_, m)| format!("{m:?}")).collect();
        for split in (0..=stream.len()).step_by(if stream.len() > 4096 { 7 } else { 1 }) {
            let mut got = Vec::new();
            let mut buf: Vec<u8> = stream[..split].to_vec();
            let mut at = 0;
            for part in [&stream[split..], &[][..]] {
                while let Some((m, used)) = decode(&buf[at..], DEFAULT_MAX_MESSAGE_LEN).unwrap() {
                    got.push(format!("{m:?}"));
                    at += used;
                }
                buf.extend_from_slice(part);
            }
            assert_eq!(got, whole, "{name} split at {split}");
        }
    }
}
