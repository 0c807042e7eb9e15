#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]
//! Property tests: every message and extension message survives encode then decode; every prefix of a
//! valid stream is "incomplete", never an error; a stream split anywhere decodes the same; arbitrary bytes
//! never panic any decoder.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use metainfo::{InfoHashV1, PieceIndex};
use proptest::prelude::*;
use wire::{
    decode, decode_with, message::id, needed, Bitfield, BlockRequest, ExtendedHandshake, Handshake,
    HashRequest, Limits, Message, MetadataMessage, PeerId, PexFlags, PexMessage, Reserved,
    DEFAULT_MAX_MESSAGE_LEN, DEFAULT_MAX_REQUEST_LEN, METADATA_PIECE_LEN,
};

/// An owned description of a message; [`Spec::message`] borrows it as a [`Message`].
#[derive(Debug, Clone)]
struct Spec {
    kind: u8,
    a: u32,
    b: u32,
    c: u32,
    port: u16,
    small: u8,
    root: [u8; 32],
    bytes: Vec<u8>,
}

const KNOWN: [u8; 19] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 20, 21, 22, 23];

impl Spec {
    fn message(&self) -> Message<'_> {
        let block = |length| BlockRequest {
            index: PieceIndex(self.a),
            begin: self.b,
            length,
        };
        let hr = HashRequest {
            pieces_root: self.root,
            base_layer: self.a,
            index: self.b,
            length: self.c,
            proof_layers: u32::from(self.port),
        };
        match self.kind % 21 {
            0 => Message::KeepAlive,
            1 => Message::Choke,
            2 => Message::Unchoke,
            3 => Message::Interested,
            4 => Message::NotInterested,
            5 => Message::Have(PieceIndex(self.a)),
            6 => Message::Bitfield(&self.bytes),
            7 => Message::Request(block(1 + self.c % DEFAULT_MAX_REQUEST_LEN)),
            8 => Message::Piece {
                index: PieceIndex(self.a),
                begin: self.b,
                block: &self.bytes,
            },
            9 => Message::Cancel(block(self.c)),
            10 => Message::Port(self.port),
            11 => Message::SuggestPiece(PieceIndex(self.a)),
            12 => Message::HaveAll,
            13 => Message::HaveNone,
            14 => Message::RejectRequest(block(self.c)),
            15 => Message::AllowedFast(PieceIndex(self.a)),
            16 => Message::Extended {
                id: self.small,
                payload: &self.bytes,
            },
            17 => Message::HashRequest(hr),
            18 => Message::Hashes {
                request: hr,
                hashes: &self.bytes[..self.bytes.len() / 32 * 32],
            },
            19 => Message::HashReject(hr),
            _ => {
                let mut id = self.small;
                while KNOWN.contains(&id) {
                    id = id.wrapping_add(1);
                }
                Message::Unknown {
                    id,
                    payload: &self.bytes,
                }
            }
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        any::<u8>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u16>(),
        any::<u8>(),
        any::<[u8; 32]>(),
        proptest::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(kind, a, b, c, port, small, root, bytes)| Spec {
            kind,
            a,
            b,
            c,
            port,
            small,
            root,
            bytes,
        })
}

fn encode_all(specs: &[Spec]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in specs {
        s.message().encode(&mut out).unwrap();
    }
    out
}

/// Decode everything `buf` holds; the bytes left over must be an incomplete message, never an error.
fn decode_stream(buf: &[u8]) -> (Vec<String>, usize) {
    let mut got = Vec::new();
    let mut at = 0;
    while let Some((m, used)) = decode(&buf[at..], DEFAULT_MAX_MESSAGE_LEN).unwrap() {
        got.push(format!("{m:?}"));
        at += used;
    }
    (got, at)
}

fn ext_handshake() -> impl Strategy<Value = ExtendedHandshake> {
    (
        proptest::collection::btree_map(".{0,12}", any::<u8>(), 0..8),
        proptest::option::of(".{0,40}"),
        proptest::option::of(1..=u16::MAX),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<IpAddr>()),
        proptest::option::of(any::<Ipv4Addr>()),
        proptest::option::of(any::<Ipv6Addr>()),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(m, v, p, reqq, yourip, ipv4, ipv6, metadata_size, upload_only, prefers_encryption)| {
                ExtendedHandshake {
                    m,
                    v,
                    p,
                    reqq,
                    yourip,
                    ipv4,
                    ipv6,
                    metadata_size,
                    upload_only,
                    prefers_encryption,
                }
            },
        )
}

fn v4() -> impl Strategy<Value = SocketAddrV4> {
    (any::<Ipv4Addr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV4::new(ip, port))
}

fn v6() -> impl Strategy<Value = SocketAddrV6> {
    (any::<Ipv6Addr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddrV6::new(ip, port, 0, 0))
}

fn pex() -> impl Strategy<Value = PexMessage> {
    let flags = any::<u8>().prop_map(PexFlags);
    (
        proptest::collection::vec((v4(), flags.clone()), 0..60),
        proptest::collection::vec(v4(), 0..60),
        proptest::collection::vec((v6(), flags), 0..60),
        proptest::collection::vec(v6(), 0..60),
    )
        .prop_map(|(added, dropped, added6, dropped6)| PexMessage {
            added,
            dropped,
            added6,
            dropped6,
        })
}

#[derive(Debug, Clone)]
enum MetaSpec {
    Request(u32),
    Data(u32, u32, Vec<u8>),
    Reject(u32),
    Unknown(i64),
}

fn metadata() -> impl Strategy<Value = MetaSpec> {
    prop_oneof![
        any::<u32>().prop_map(MetaSpec::Request),
        (
            any::<u32>(),
            any::<u32>(),
            proptest::collection::vec(any::<u8>(), 0..=METADATA_PIECE_LEN)
        )
            .prop_map(|(p, t, d)| MetaSpec::Data(p, t, d)),
        any::<u32>().prop_map(MetaSpec::Reject),
        any::<i64>()
            .prop_filter("a known msg_type", |t| !(0..=2).contains(t))
            .prop_map(MetaSpec::Unknown),
    ]
}

impl MetaSpec {
    fn message(&self) -> MetadataMessage<'_> {
        match self {
            MetaSpec::Request(piece) => MetadataMessage::Request { piece: *piece },
            MetaSpec::Data(piece, total_size, data) => MetadataMessage::Data {
                piece: *piece,
                total_size: *total_size,
                data,
            },
            MetaSpec::Reject(piece) => MetadataMessage::Reject { piece: *piece },
            MetaSpec::Unknown(msg_type) => MetadataMessage::Unknown { msg_type: *msg_type },
        }
    }
}

/// Send an extension payload as an `extended` message and read it back out of the stream.
fn through_the_wire(ext_id: u8, payload: &[u8]) -> Vec<u8> {
    let bytes = Message::Extended { id: ext_id, payload }.to_vec().unwrap();
    match decode(&bytes, DEFAULT_MAX_MESSAGE_LEN).unwrap() {
        Some((Message::Extended { id, payload }, used)) if id == ext_id && used == bytes.len() => {
            payload.to_vec()
        }
        other => panic!("{other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_message_round_trips(s in spec()) {
        let m = s.message();
        let bytes = m.to_vec().unwrap();
        prop_assert_eq!(bytes.len(), m.encoded_len());
        let (back, used) = decode(&bytes, DEFAULT_MAX_MESSAGE_LEN).unwrap().unwrap();
        prop_assert_eq!(back, m);
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(needed(&bytes), 0);
    }

    #[test]
    fn every_strict_prefix_is_incomplete(s in spec()) {
        let bytes = s.message().to_vec().unwrap();
        for n in 0..bytes.len() {
            prop_assert_eq!(decode(&bytes[..n], DEFAULT_MAX_MESSAGE_LEN), Ok(None), "prefix {}", n);
            prop_assert!(needed(&bytes[..n]) > 0);
            if n >= 4 {
                prop_assert_eq!(needed(&bytes[..n]), bytes.len() - n);
            }
        }
    }

    #[test]
    fn every_prefix_of_a_stream_decodes_a_prefix_of_its_messages(
        specs in proptest::collection::vec(spec(), 1..8)
    ) {
        let stream = encode_all(&specs);
        let (all, used) = decode_stream(&stream);
        prop_assert_eq!(used, stream.len());
        prop_assert_eq!(all.len(), specs.len());
        for n in 0..=stream.len() {
            let (got, _) = decode_stream(&stream[..n]);
            prop_assert_eq!(&got[..], &all[..got.len()]);
        }
    }

    #[test]
    fn a_stream_split_anywhere_decodes_identically(
        specs in proptest::collection::vec(spec(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let stream = encode_all(&specs);
        let (whole, _) = decode_stream(&stream);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        // A receiver buffer: append each chunk, decode what is complete, drop what was used.
        let mut buf = Vec::new();
        let mut got = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buf.extend_from_slice(&stream[from..cut]);
            from = cut;
            let (msgs, used) = decode_stream(&buf);
            got.extend(msgs);
            buf.drain(..used);
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(got, whole);
    }

    #[test]
    fn extended_handshake_round_trips(h in ext_handshake(), ext_id in any::<u8>()) {
        let payload = through_the_wire(ext_id, &h.encode());
        prop_assert_eq!(ExtendedHandshake::parse(&payload).unwrap(), h);
    }

    #[test]
    fn metadata_messages_round_trip(s in metadata(), ext_id in any::<u8>()) {
        let m = s.message();
        let payload = through_the_wire(ext_id, &m.encode());
        prop_assert_eq!(MetadataMessage::parse(&payload).unwrap(), m);
    }

    #[test]
    fn pex_messages_round_trip(p in pex(), ext_id in any::<u8>()) {
        let payload = through_the_wire(ext_id, &p.encode());
        prop_assert_eq!(PexMessage::parse(&payload).unwrap(), p);
    }

    #[test]
    fn handshakes_round_trip(
        reserved in any::<[u8; 8]>(), hash in any::<[u8; 20]>(), peer in any::<[u8; 20]>()
    ) {
        let h = Handshake { reserved: Reserved(reserved), info_hash: InfoHashV1(hash), peer_id: PeerId(peer) };
        let bytes = h.to_bytes();
        prop_assert_eq!(Handshake::parse(&bytes).unwrap(), h);
        for n in 0..bytes.len() {
            let e = Handshake::parse(&bytes[..n]).unwrap_err();
            prop_assert!(e.is_incomplete(), "{}", e);
        }
    }

    #[test]
    fn bitfields_round_trip(bits in proptest::collection::vec(any::<bool>(), 0..200)) {
        let n = bits.len() as u32;
        let mut bf = Bitfield::new(n);
        for (i, &b) in bits.iter().enumerate() {
            bf.set(PieceIndex(i as u32), b).unwrap();
        }
        let back = Bitfield::from_bytes(bf.as_bytes(), n).unwrap();
        prop_assert_eq!(&back, &bf);
        prop_assert_eq!(back.count() as usize, bits.iter().filter(|b| **b).count());
        let set: Vec<u32> = back.iter_set().map(|p| p.0).collect();
        let expected: Vec<u32> = (0..n).filter(|&i| bits[i as usize]).collect();
        prop_assert_eq!(set, expected);
        for (i, &b) in bits.iter().enumerate() {
            prop_assert_eq!(back.get(PieceIndex(i as u32)), b);
        }
        prop_assert!(bf.set(PieceIndex(n), true).is_err());
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), max in any::<u32>()) {
        let limits = Limits { max_message_len: max, max_request_len: max };
        let mut at = 0;
        while at < data.len() {
            match decode_with(&data[at..], &limits) {
                Ok(Some((m, used))) => {
                    prop_assert!(used > 0 && at + used <= data.len());
                    prop_assert_eq!(m.encoded_len(), used);
                    at += used;
                }
                Ok(None) | Err(_) => break,
            }
        }
        let _ = Handshake::parse(&data);
        let _ = ExtendedHandshake::parse(&data);
        let _ = MetadataMessage::parse(&data);
        let _ = PexMessage::parse(&data);
        let _ = Bitfield::from_bytes(&data, (data.len() * 8) as u32);
        let _ = needed(&data);
    }

    #[test]
    fn random_bytes_behind_a_valid_header_never_panic(
        msg_id in prop::sample::select(KNOWN.to_vec()),
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        bytes.push(msg_id);
        bytes.extend_from_slice(&body);
        if let Ok(Some((m, used))) = decode(&bytes, DEFAULT_MAX_MESSAGE_LEN) {
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(m.to_vec().unwrap(), bytes.clone());
        }
        if msg_id == id::EXTENDED {
            let _ = ExtendedHandshake::parse(&body);
            let _ = MetadataMessage::parse(&body);
            let _ = PexMessage::parse(&body);
        }
    }
}
