//! Peer-wire bytes from a stranger: the message stream, the handshake and the extension payloads.
//!
//! Properties: no panic; every decoded message re-encodes to exactly the bytes it was decoded from, and
//! the stream decoder never reports more bytes used than it was given; a stream cut short is "incomplete"
//! with a positive `needed` hint; the same holds with tight limits; a parsed handshake is its input's first
//! 68 bytes; an "incomplete" handshake is shorter than 68 bytes; a parsed extended handshake, ut_metadata
//! or ut_pex message survives encode + parse; an accepted bitfield keeps its bytes and spare bits clear.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wire::{
    decode_with, needed, Bitfield, ExtendedHandshake, Handshake, Limits, MetadataMessage, PexMessage,
    HANDSHAKE_LEN,
};

fn stream(data: &[u8], limits: &Limits) {
    let mut at = 0;
    while let Some(rest) = data.get(at..).filter(|r| !r.is_empty()) {
        match decode_with(rest, limits) {
            Ok(Some((m, used))) => {
                assert!(used >= 4 && used <= rest.len(), "used {used} of {}", rest.len());
                let mut out = Vec::new();
                m.encode(&mut out).expect("a decoded message encodes");
                assert_eq!(out, rest.get(..used).expect("used is within the input"), "{m:?}");
                assert_eq!(m.encoded_len(), used);
                at += used;
            }
            Ok(None) => {
                assert!(needed(rest) > 0, "incomplete but nothing needed");
                break;
            }
            Err(_) => break,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    stream(data, &Limits::default());
    stream(
        data,
        &Limits {
            max_message_len: 64,
            max_request_len: 16 * 1024,
        },
    );

    match Handshake::parse(data) {
        Ok(h) => assert_eq!(&h.to_bytes()[..], data.get(..HANDSHAKE_LEN).expect("68 bytes")),
        Err(e) if e.is_incomplete() => assert!(data.len() < HANDSHAKE_LEN),
        Err(_) => {}
    }

    if let Ok(h) = ExtendedHandshake::parse(data) {
        assert_eq!(ExtendedHandshake::parse(&h.encode()), Ok(h));
    }
    if let Ok(m) = MetadataMessage::parse(data) {
        let bytes = m.encode();
        assert_eq!(MetadataMessage::parse(&bytes), Ok(m));
    }
    if let Ok(p) = PexMessage::parse(data) {
        assert_eq!(PexMessage::parse(&p.encode()), Ok(p));
    }

    let spare = data.first().map_or(0, |b| u32::from(b % 8));
    let pieces = u32::try_from(data.len() * 8)
        .unwrap_or(u32::MAX)
        .saturating_sub(spare);
    if let Ok(bf) = Bitfield::from_bytes(data, pieces) {
        assert_eq!(bf.as_bytes(), data);
        assert!(bf.count() <= pieces);
        assert_eq!(bf.iter_set().count() as u32, bf.count());
    }
});
