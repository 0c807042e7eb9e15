//! KRPC packets from a stranger: decoded alone, and fed to a DHT node (as they are, and as an answer to a
//! query the node really sent).
//!
//! Properties: no panic; a decoded message re-encodes to bytes that decode to the same message (the encoding
//! is canonical: encoding again gives the same bytes); a tighter size limit only ever refuses more; a node
//! fed the packet sends only well-formed packets no larger than 1500 bytes (replies no larger than 1024),
//! counts every packet it drops, and never holds more than its bounds.
#![no_main]

use std::net::SocketAddr;

use dht::krpc::{decode, decode_with_limit, Body, DecodeErrorKind};
use dht::{Config, Dht, Time};
use libfuzzer_sys::fuzz_target;
use rand::{rngs::SmallRng, SeedableRng};

fn check_outputs(node: &mut Dht<SmallRng>) {
    while let Some(t) = node.poll_transmit() {
        assert!(t.data.len() <= 1500, "sent {} bytes", t.data.len());
        let m = decode(&t.data).expect("the node sends only valid KRPC");
        if !matches!(m.body, Body::Query(_)) {
            assert!(t.data.len() <= 1024, "reply of {} bytes", t.data.len());
        }
    }
    while node.poll_event().is_some() {}
    let s = node.stats();
    assert!(s.outstanding <= 256 && s.buckets <= 160 && s.lookups_active <= 16);
}

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data);
    if let Ok(m) = &decoded {
        let bytes = m.encode();
        let again = decode(&bytes).expect("an encoded message decodes");
        assert_eq!(&again, m);
        assert_eq!(again.encode(), bytes);
    }
    if let Err(e) = &decoded {
        if let DecodeErrorKind::Bencode(b) = &e.kind {
            assert!(b.offset <= data.len());
        }
    }
    if decode_with_limit(data, 64).is_ok() {
        assert!(decoded.is_ok());
    }

    let peer: SocketAddr = "10.0.0.2:6881".parse().expect("address");
    let mut node = Dht::new(
        Config::default(),
        "10.0.0.1:6881".parse().expect("address"),
        SmallRng::seed_from_u64(1),
        Time::ZERO,
    );
    node.handle_packet(Time::ZERO, peer, data);
    let dropped = node.stats().dropped;
    if decoded.is_err() {
        assert!(dropped.malformed + dropped.oversized == 1);
    }
    check_outputs(&mut node);

    // The same message as an answer to our own query (so that the response paths run too).
    if let Ok(mut m) = decoded {
        if matches!(m.body, Body::Query(_)) {
            return;
        }
        node.get_peers(Time::ZERO, [7; 20], None);
        let Some(q) = node.poll_transmit() else {
            return;
        };
        let q = decode(&q.data).expect("our query");
        m.transaction = q.transaction;
        node.handle_packet(Time::ZERO, peer, &m.encode());
        check_outputs(&mut node);
        node.handle_timeout(Time(std::time::Duration::from_secs(5)));
        check_outputs(&mut node);
    }
});
