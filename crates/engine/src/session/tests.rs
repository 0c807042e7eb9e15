//! Behaviour tests of the peer session, each quoting the BEP sentence it checks. Sessions run against a raw
//! peer (bytes written by hand with the wire codec), against each other in a [`Pair`] in virtual time, and
//! against streams captured from libtorrent and Transmission.

use std::sync::Arc;
use std::time::Duration;

use metainfo::{InfoHashV1, PieceIndex};
use proptest::prelude::*;
use wire::{
    Bitfield, BlockRequest, ExtendedHandshake, Handshake, Message, PeerId, Reserved, WireError, UT_METADATA,
    UT_PEX,
};

use super::*;
use crate::Time;

// ----- fixtures -----

const IH: InfoHashV1 = InfoHashV1([0x11; 20]);
/// 5 pieces of 32 KiB, the last one 10768 bytes.
const PIECE_LEN: u32 = 32 * 1024;
const TOTAL: u64 = 5 * 32 * 1024 - 22000;

fn t(ms: u64) -> Time {
    Time(Duration::from_millis(ms))
}

fn secs(s: u64) -> Time {
    Time(Duration::from_secs(s))
}

fn pid(c: u8) -> PeerId {
    PeerId([c; 20])
}

fn sizes() -> Arc<PieceSizes> {
    Arc::new(PieceSizes::uniform(PIECE_LEN, TOTAL).unwrap())
}

fn reserved(fast: bool, ext: bool) -> Reserved {
    Reserved::NONE
        .with(Reserved::FAST, fast)
        .with(Reserved::EXTENDED, ext)
}

fn local(id: u8, r: Reserved, have: OurPieces) -> LocalInfo {
    LocalInfo {
        info_hash: IH,
        peer_id: pid(id),
        reserved: r,
        pieces: sizes(),
        have,
        extended: ExtendedHandshake {
            v: Some(format!("bitswarm-test-{id}")),
            ..Default::default()
        },
    }
}

fn none() -> OurPieces {
    OurPieces::Some(Bitfield::new(5))
}

fn req(index: u32, begin: u32, length: u32) -> BlockRequest {
    BlockRequest {
        index: PieceIndex(index),
        begin,
        length,
    }
}

fn bytes(msgs: &[Message<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        m.encode(&mut out).unwrap();
    }
    out
}

/// The torrent's bytes: byte i is (7 i + 3) mod 256.
fn payload(len: u64) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

fn events(s: &mut PeerSession) -> Vec<SessionEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

/// Everything queued to send; a piece is its header followed by zeros standing for the block.
fn sent(s: &mut PeerSession) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(t) = s.poll_transmit() {
        match t {
            Transmit::Bytes(b) => out.extend_from_slice(&b),
            Transmit::PieceHeader { header, req } => {
                out.extend_from_slice(&header);
                out.resize(out.len() + req.length as usize, 0);
            }
            Transmit::Block { .. } => panic!("a session never hands out whole blocks"),
        }
    }
    out
}

/// An outgoing session, with a raw peer's handshake (same extension bits as ours) already received and
/// everything it sent and reported so far drained.
fn raw(fast: bool, ext: bool, have: OurPieces) -> PeerSession {
    raw_with(SessionConfig::default(), fast, ext, have)
}

fn raw_with(config: SessionConfig, fast: bool, ext: bool, have: OurPieces) -> PeerSession {
    let mut s = PeerSession::new(config, local(1, reserved(fast, ext), have), true, t(0)).unwrap();
    let theirs = Handshake {
        reserved: reserved(fast, ext),
        info_hash: IH,
        peer_id: pid(2),
    };
    s.handle_bytes(t(0), &theirs.to_bytes()).unwrap();
    assert!(s.is_established());
    sent(&mut s);
    let ev = events(&mut s);
    assert_eq!(
        ev.first(),
        Some(&SessionEvent::HandshakeDone {
            peer_id: pid(2),
            reserved: reserved(fast, ext)
        })
    );
    s
}

fn closed_with(s: &PeerSession) -> SessionError {
    s.close_reason().cloned().expect("session should be closed")
}

// ----- Pair: two sessions connected in memory, in virtual time -----

/// One end of a [`Pair`].
struct Side {
    s: PeerSession,
    /// Events not yet looked at by the test.
    events: Vec<SessionEvent>,
    /// The torrent's bytes, to fill in blocks this side sends (the driver's disk).
    disk: Vec<u8>,
    /// Every write this side made, with its time.
    wire: Vec<(Time, Vec<u8>)>,
}

/// Two sessions connected back to back (`a` opened the connection), stepped until idle, like quinn-proto's
/// test `Pair`: bytes written by one are fed to the other at the same virtual time.
struct Pair {
    a: Side,
    b: Side,
    now: Time,
}

impl Pair {
    fn new(config: SessionConfig, a: LocalInfo, b: LocalInfo) -> Pair {
        let disk = payload(TOTAL);
        let side = |s| Side {
            s,
            events: Vec::new(),
            disk: disk.clone(),
            wire: Vec::new(),
        };
        let mut p = Pair {
            a: side(PeerSession::new(config.clone(), a, true, t(0)).unwrap()),
            b: side(PeerSession::new(config, b, false, t(0)).unwrap()),
            now: t(0),
        };
        p.drive();
        p
    }

    /// Move bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let moved = Self::transfer(self.now, &mut self.a, &mut self.b)
                | Self::transfer(self.now, &mut self.b, &mut self.a);
            for side in [&mut self.a, &mut self.b] {
                side.events.extend(std::iter::from_fn(|| side.s.poll_event()));
            }
            if !moved {
                return;
            }
        }
    }

    fn transfer(now: Time, from: &mut Side, to: &mut Side) -> bool {
        let mut moved = false;
        while let Some(t) = from.s.poll_transmit() {
            let bytes = match t {
                Transmit::Bytes(b) => b,
                Transmit::PieceHeader { header, req } => {
                    let at = u64::from(req.index.0) * u64::from(PIECE_LEN) + u64::from(req.begin);
                    let mut b = header.to_vec();
                    b.extend_from_slice(&from.disk[at as usize..at as usize + req.length as usize]);
                    b
                }
                Transmit::Block { .. } => panic!("a session never hands out whole blocks"),
            };
            from.wire.push((now, bytes.clone()));
            if !to.s.is_closed() {
                let _ = to.s.handle_bytes(now, &bytes);
            }
            moved = true;
        }
        moved
    }

    /// Let virtual time run for `d`, firing every timer on the way.
    fn advance(&mut self, d: Duration) {
        let end = self.now.plus(d);
        loop {
            let next = [self.a.s.poll_timeout(), self.b.s.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    self.a.s.handle_timeout(self.now);
                    self.b.s.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
        self.drive();
    }

    fn take_a(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.a.events)
    }

    fn take_b(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.b.events)
    }
}

fn pair(fast: bool, ext: bool, a_have: OurPieces, b_have: OurPieces) -> Pair {
    Pair::new(
        SessionConfig::default(),
        local(1, reserved(fast, ext), a_have),
        local(2, reserved(fast, ext), b_have),
    )
}

// ----- handshake and piece sets -----

#[test]
fn handshake_exchange_and_bitfield() {
    // BEP 3: "'bitfield' is only ever sent as the first message. [...] Downloaders which don't have
    // anything yet may skip the 'bitfield' message. The first byte of the bitfield corresponds to indices
    // 0 - 7 from high bit to low bit, respectively."
    let mut have = Bitfield::new(5);
    have.set(PieceIndex(0), true).unwrap();
    have.set(PieceIndex(2), true).unwrap();
    let mut p = pair(false, false, OurPieces::Some(have.clone()), none());
    assert_eq!(
        p.take_a(),
        vec![SessionEvent::HandshakeDone {
            peer_id: pid(2),
            reserved: Reserved::NONE
        }]
    );
    assert_eq!(
        p.take_b(),
        vec![
            SessionEvent::HandshakeDone {
                peer_id: pid(1),
                reserved: Reserved::NONE
            },
            SessionEvent::Bitfield(have.clone()),
        ]
    );
    // The opener wrote its handshake first, then (once the answer came) its bitfield: 0b1010_0000.
    let a_wire: Vec<u8> = p.a.wire.iter().flat_map(|(_, b)| b.clone()).collect();
    let mut expected = Handshake {
        reserved: Reserved::NONE,
        info_hash: IH,
        peer_id: pid(1),
    }
    .to_bytes()
    .to_vec();
    expected.extend_from_slice(&[0, 0, 0, 2, 5, 0b1010_0000]);
    assert_eq!(a_wire, expected);
    // The answering side, having nothing, sent only its handshake.
    let b_wire: Vec<u8> = p.b.wire.iter().flat_map(|(_, b)| b.clone()).collect();
    assert_eq!(b_wire.len(), 68);
    assert!(p.a.s.is_established() && p.b.s.is_established());
    assert_eq!(p.b.s.peer_pieces(), &have);

    // BEP 6: "Exactly one of Have All, Have None, or Have Bitfield MUST appear and only immediately after
    // the handshake."
    let mut p = pair(true, false, OurPieces::All, none());
    assert!(p.a.s.fast_enabled() && p.b.s.fast_enabled());
    assert_eq!(p.take_a()[1..], [SessionEvent::HaveNone]);
    assert_eq!(p.take_b()[1..], [SessionEvent::HaveAll]);
    assert!(p.b.s.peer_pieces().is_full());
}

#[test]
fn info_hash_mismatch_closes() {
    // BEP 3: "Next comes the 20 byte truncated infohash. If both sides don't send the same value, they
    // sever the connection."
    let mut other = local(2, Reserved::NONE, none());
    other.info_hash = InfoHashV1([0x22; 20]);
    let mut p = Pair::new(SessionConfig::default(), local(1, Reserved::NONE, none()), other);
    assert_eq!(
        p.take_b(),
        vec![SessionEvent::Closed(SessionError::InfoHashMismatch {
            ours: InfoHashV1([0x22; 20]),
            theirs: IH
        })]
    );
    assert!(
        p.b.wire.is_empty(),
        "the accepting side does not answer a wrong info-hash"
    );
    // The opener gets no answer and gives up after the handshake timeout.
    p.advance(Duration::from_secs(19));
    assert!(p.take_a().is_empty());
    p.advance(Duration::from_secs(1));
    assert_eq!(
        p.take_a(),
        vec![SessionEvent::Closed(SessionError::HandshakeTimeout(
            Duration::from_secs(20)
        ))]
    );

    // The opener checks the answer's info-hash too, as soon as it arrives (before the peer id).
    let mut s = PeerSession::new(
        SessionConfig::default(),
        local(1, Reserved::NONE, none()),
        true,
        t(0),
    )
    .unwrap();
    let wrong = Handshake {
        reserved: Reserved::NONE,
        info_hash: InfoHashV1([0x33; 20]),
        peer_id: pid(2),
    };
    let e = s.handle_bytes(t(5), &wrong.to_bytes()[..48]).unwrap_err();
    assert!(matches!(e, SessionError::InfoHashMismatch { .. }), "{e}");
    assert_eq!(s.handle_bytes(t(6), b"more"), Err(SessionError::AlreadyClosed));

    // Something that is not BitTorrent at all is refused at its first byte.
    let mut s = PeerSession::new(
        SessionConfig::default(),
        local(1, Reserved::NONE, none()),
        false,
        t(0),
    )
    .unwrap();
    assert_eq!(
        s.handle_bytes(t(1), b"GET / HTTP/1.1\r\n"),
        Err(SessionError::Wire(WireError::BadProtocolLength(b'G')))
    );
    assert!(sent(&mut s).is_empty());

    // Our own handshake coming back means we dialled ourselves.
    let mut s = PeerSession::new(
        SessionConfig::default(),
        local(1, Reserved::NONE, none()),
        true,
        t(0),
    )
    .unwrap();
    let ours = sent(&mut s);
    assert_eq!(s.handle_bytes(t(1), &ours), Err(SessionError::ConnectedToSelf));
}

#[test]
fn bitfield_with_spare_bits_closes() {
    // BEP 3 (as the first version put it): "Clients should drop the connection if they receive bitfields
    // that are not of the correct size, or if the bitfield has any of the spare bits set."
    // 5 pieces: the bits of pieces 0-4 are 0xf8; 0x04 is a spare bit.
    let mut s = raw(false, false, none());
    let e = s
        .handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xfc])]))
        .unwrap_err();
    assert_eq!(
        e,
        SessionError::Wire(WireError::BitfieldSpareBits {
            num_pieces: 5,
            last_byte: 0xfc
        })
    );
    assert_eq!(events(&mut s), vec![SessionEvent::Closed(e)]);

    let mut s = raw(false, false, none());
    let e = s
        .handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8, 0])]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            SessionError::Wire(WireError::BitfieldLength {
                len: 2,
                expected: 1,
                ..
            })
        ),
        "{e}"
    );

    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8])]))
        .unwrap();
    assert!(s.peer_pieces().is_full());
}

#[test]
fn bitfield_after_first_message_closes() {
    // BEP 3: "'bitfield' is only ever sent as the first message." We are lenient where real clients
    // are not strict: a late bitfield that only adds pieces is taken as `have`s.
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Interested, Message::Bitfield(&[0x80])]))
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Interested, SessionEvent::Have(PieceIndex(0))]
    );

    // A later one that takes pieces away is refused; one that only adds pieces counts as `have`s
    // (aria2 sends `have none`, then bitfields instead of `have` messages).
    let mut s = raw(false, false, none());
    let e = s
        .handle_bytes(
            t(1),
            &bytes(&[Message::Bitfield(&[0xc0]), Message::Bitfield(&[0x80])]),
        )
        .unwrap_err();
    assert_eq!(e, SessionError::LatePieceSet { message: "bitfield" });
    let mut s = raw(true, false, none());
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::HaveNone,
            Message::Bitfield(&[0x80]),
            Message::Bitfield(&[0xc8]),
        ]),
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::HaveNone,
            SessionEvent::Have(PieceIndex(0)),
            SessionEvent::Have(PieceIndex(1)),
            SessionEvent::Have(PieceIndex(4)),
        ]
    );

    // After a have, the bitfield is late too (BEP 6: have all "only immediately after the handshake").
    let mut s = raw(true, false, none());
    let e = s
        .handle_bytes(t(1), &bytes(&[Message::Have(PieceIndex(1)), Message::HaveAll]))
        .unwrap_err();
    assert_eq!(e, SessionError::LatePieceSet { message: "have all" });

    // aria2's order: allowed fast (and the extended handshake) before the bitfield.
    let mut s = raw(true, false, none());
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::AllowedFast(PieceIndex(2)),
            Message::AllowedFast(PieceIndex(3)),
            Message::Bitfield(&[0xf8]),
        ]),
    )
    .unwrap();
    assert!(s.peer_pieces().is_full());

    // The extended handshake and keep-alives may come first (libtorrent and Transmission send the
    // extended handshake before have all).
    let mut s = raw(true, true, none());
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::KeepAlive,
            Message::Extended {
                id: 0,
                payload: b"de",
            },
            Message::HaveAll,
        ]),
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::ExtendedHandshake(Box::default()),
            SessionEvent::HaveAll
        ]
    );
}

#[test]
fn have_all_only_with_fast_extension() {
    // BEP 6: "When the fast extension is disabled, if a peer receives Have All or Have None then the peer
    // MUST close the connection."
    for (m, name) in [(Message::HaveAll, "have all"), (Message::HaveNone, "have none")] {
        let mut s = raw(false, true, none());
        assert_eq!(
            s.handle_bytes(t(1), &bytes(&[m])),
            Err(SessionError::FastNotEnabled { message: name })
        );
    }
    // Nor the other BEP 6 messages: "if a peer receives a Suggest Piece message, the peer MUST close the
    // connection", the same for Reject Request and Allowed Fast.
    for m in [
        Message::SuggestPiece(PieceIndex(0)),
        Message::RejectRequest(req(0, 0, 16384)),
        Message::AllowedFast(PieceIndex(0)),
    ] {
        let mut s = raw(false, false, none());
        let e = s.handle_bytes(t(1), &bytes(&[m])).unwrap_err();
        assert!(matches!(e, SessionError::FastNotEnabled { .. }), "{e}");
    }
    // Only one side setting the bit is not enough: "The extension is enabled only if both ends of the
    // connection set this bit."
    let mut s = PeerSession::new(
        SessionConfig::default(),
        local(1, reserved(true, false), none()),
        true,
        t(0),
    )
    .unwrap();
    let theirs = Handshake {
        reserved: Reserved::NONE,
        info_hash: IH,
        peer_id: pid(2),
    };
    s.handle_bytes(t(0), &theirs.to_bytes()).unwrap();
    assert!(!s.fast_enabled());
    assert!(s.handle_bytes(t(1), &bytes(&[Message::HaveAll])).is_err());

    let mut s = raw(true, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::HaveAll])).unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::HaveAll]);
    assert!(s.peer_pieces().is_full());
    let mut s = raw(true, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::HaveNone, Message::Have(PieceIndex(3))]))
        .unwrap();
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::HaveNone, SessionEvent::Have(PieceIndex(3))]
    );
}

// ----- requests from the peer -----

#[test]
fn request_while_choked_is_ignored_without_fast_and_rejected_with_fast() {
    // BEP 3: "Choking is a notification that no data will be sent until unchoking happens." BEP 6: "If a
    // peer receives a request from a peer its choking, the peer receiving the request SHOULD send a reject
    // unless the piece is in the allowed fast set."
    let r = req(1, 0, 16384);
    let mut s = raw(false, false, OurPieces::All);
    s.handle_bytes(t(1), &bytes(&[Message::Request(r)])).unwrap();
    assert!(events(&mut s).is_empty());
    assert!(sent(&mut s).is_empty());
    assert!(!s.is_closed());

    let mut s = raw(true, false, OurPieces::All);
    s.handle_bytes(t(1), &bytes(&[Message::Request(r)])).unwrap();
    assert!(events(&mut s).is_empty());
    assert_eq!(sent(&mut s), bytes(&[Message::RejectRequest(r)]));

    // Unchoked, the request reaches the engine; choking again rejects it ("If a peer sends a choke, it
    // MUST reject all requests from the peer to whom the choke was sent [...] A peer SHOULD choke first
    // and then reject requests").
    s.set_choking(t(2), false).unwrap();
    s.handle_bytes(t(3), &bytes(&[Message::Request(r)])).unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Request(r)]);
    assert_eq!(s.peer_requests().collect::<Vec<_>>(), vec![r]);
    sent(&mut s);
    s.set_choking(t(4), true).unwrap();
    assert_eq!(sent(&mut s), bytes(&[Message::Choke, Message::RejectRequest(r)]));
    assert_eq!(s.send_block(t(5), r), Err(CommandError::NotRequested(r)));

    // Without the fast extension a choke drops the queue silently.
    let mut s = raw(false, false, OurPieces::All);
    s.set_choking(t(1), false).unwrap();
    s.handle_bytes(t(2), &bytes(&[Message::Request(r)])).unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Request(r)]);
    sent(&mut s);
    s.set_choking(t(3), true).unwrap();
    assert_eq!(sent(&mut s), bytes(&[Message::Choke]));
    assert_eq!(s.peer_requests().count(), 0);
}

#[test]
fn requests_over_the_queue_bound_are_rejected_and_cancel_is_answered() {
    // BEP 10 reqq: "the number of outstanding request messages this client supports without dropping
    // any". BEP 6: "the peer receiving the cancel should respond with either the corresponding reject or
    // the corresponding piece".
    let config = SessionConfig {
        max_incoming_requests: 2,
        ..SessionConfig::default()
    };
    let mut s = raw_with(config, true, false, OurPieces::All);
    s.set_choking(t(1), false).unwrap();
    sent(&mut s);
    let rs = [req(0, 0, 16384), req(0, 16384, 16384), req(1, 0, 16384)];
    s.handle_bytes(t(2), &bytes(&rs.map(Message::Request))).unwrap();
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Request(rs[0]), SessionEvent::Request(rs[1])]
    );
    assert_eq!(sent(&mut s), bytes(&[Message::RejectRequest(rs[2])]));
    s.handle_bytes(t(3), &bytes(&[Message::Cancel(rs[0])])).unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Cancel(rs[0])]);
    assert_eq!(sent(&mut s), bytes(&[Message::RejectRequest(rs[0])]));
    // A cancel for something already served is a harmless race.
    s.send_block(t(4), rs[1]).unwrap();
    s.handle_bytes(t(5), &bytes(&[Message::Cancel(rs[1])])).unwrap();
    assert!(events(&mut s).is_empty());
    // A request for a piece we lack is refused.
    let mut s = raw(true, false, none());
    s.set_choking(t(1), false).unwrap();
    sent(&mut s);
    s.handle_bytes(t(2), &bytes(&[Message::Request(rs[0])])).unwrap();
    assert!(events(&mut s).is_empty());
    assert_eq!(sent(&mut s), bytes(&[Message::RejectRequest(rs[0])]));
}

#[test]
fn allowed_fast_pieces_can_be_requested_while_choked() {
    // BEP 6: "Allowed Fast is an advisory message which means 'if you ask for this piece, I'll give it to
    // you even if you're choked.'"
    let mut p = pair(true, false, none(), OurPieces::All);
    p.take_a();
    p.take_b();
    p.b.s.allow_fast(p.now, PieceIndex(1)).unwrap();
    p.drive();
    assert_eq!(p.take_a(), vec![SessionEvent::AllowedFast(PieceIndex(1))]);
    assert!(p.a.s.peer_choking());
    let allowed = req(1, 0, 16384);
    let other = req(0, 0, 16384);
    assert_eq!(p.a.s.request(p.now, other), Err(CommandError::Choked(other)));
    p.a.s.request(p.now, allowed).unwrap();
    p.drive();
    assert_eq!(p.take_b(), vec![SessionEvent::Request(allowed)]);
    p.b.s.send_block(p.now, allowed).unwrap();
    p.drive();
    let data = payload(TOTAL)[32768..32768 + 16384].to_vec();
    assert_eq!(p.take_a(), vec![SessionEvent::Block { req: allowed, data }]);
    // "it SHOULD NOT reject requests for pieces that are in the allowed fast set" when choking.
    p.a.s.request(p.now, req(1, 16384, 16384)).unwrap();
    p.drive();
    p.b.s.set_choking(p.now, false).unwrap();
    p.b.s.set_choking(p.now, true).unwrap();
    p.drive();
    assert_eq!(
        p.b.s.peer_requests().collect::<Vec<_>>(),
        vec![req(1, 16384, 16384)]
    );
    assert!(!p.take_a().iter().any(|e| matches!(e, SessionEvent::Rejected(_))));
    // Without the fast extension there is nothing to allow.
    let mut p = pair(false, false, none(), OurPieces::All);
    assert_eq!(
        p.b.s.allow_fast(p.now, PieceIndex(1)),
        Err(CommandError::NoFastExtension)
    );
}

#[test]
fn choke_drops_inflight_requests_without_fast() {
    // BEP 3 (v1 semantics): requests "can all be thrown out when a choke happens". BEP 6: "Choke no longer
    // implicitly rejects all pending requests" — with it, each gets a reject instead.
    let rs = [req(0, 0, 16384), req(0, 16384, 16384)];
    for fast in [false, true] {
        let mut p = pair(fast, false, none(), OurPieces::All);
        p.b.s.set_choking(p.now, false).unwrap();
        p.drive();
        p.take_a();
        for r in rs {
            p.a.s.request(p.now, r).unwrap();
        }
        p.drive();
        p.b.s.set_choking(p.now, true).unwrap();
        p.drive();
        let expected = if fast {
            vec![
                SessionEvent::Choked,
                SessionEvent::Rejected(rs[0]),
                SessionEvent::Rejected(rs[1]),
            ]
        } else {
            vec![SessionEvent::Choked, SessionEvent::RequestsDropped(rs.to_vec())]
        };
        assert_eq!(p.take_a(), expected, "fast: {fast}");
        assert_eq!(p.a.s.in_flight().count(), 0);
        assert!(!p.a.s.is_closed() && !p.b.s.is_closed());
    }
}

// ----- blocks -----

#[test]
fn unrequested_block_closes() {
    // BEP 3: "If an unsolicited piece is received a peer MUST close the connection." It is caught at the
    // 13-byte header, before the block is buffered.
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    let whole = bytes(&[Message::Piece {
        index: PieceIndex(0),
        begin: 0,
        block: &[7; 16384],
    }]);
    let e = s.handle_bytes(t(2), &whole[..13]).unwrap_err();
    assert_eq!(
        e,
        SessionError::UnrequestedBlock {
            index: 0,
            begin: 0,
            length: 16384
        }
    );
    // A block of the right place but another length is not the one requested either.
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    s.request(t(1), req(0, 0, 16384)).unwrap();
    let short = bytes(&[Message::Piece {
        index: PieceIndex(0),
        begin: 0,
        block: &[7; 100],
    }]);
    assert!(matches!(
        s.handle_bytes(t(2), &short),
        Err(SessionError::UnrequestedBlock { length: 100, .. })
    ));
    assert_eq!(
        events(&mut s).last(),
        Some(&SessionEvent::Closed(closed_with(&s)))
    );
}

#[test]
fn late_block_after_cancel_is_tolerated() {
    // BEP 3 on endgame cancels, and BEP 6: "Even when a request is cancelled, the peer receiving the cancel
    // should respond with either the corresponding reject or the corresponding piece: requests that are
    // being processed are allowed to complete."
    let r = req(2, 16384, 16384);
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    events(&mut s);
    s.request(t(2), r).unwrap();
    assert_eq!(s.cancel(t(3), r), Ok(true));
    assert_eq!(s.cancel(t(3), r), Ok(false));
    assert_eq!(sent(&mut s), bytes(&[Message::Request(r), Message::Cancel(r)]));
    let block = vec![9u8; 16384];
    let piece = bytes(&[Message::Piece {
        index: r.index,
        begin: r.begin,
        block: &block,
    }]);
    s.handle_bytes(t(4), &piece).unwrap();
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::LateBlock { req: r, data: block }]
    );
    // Once is tolerated; the same block again was never asked for.
    assert!(matches!(
        s.handle_bytes(t(5), &piece),
        Err(SessionError::UnrequestedBlock { .. })
    ));

    // With the fast extension the peer answers the cancel with a reject, which is absorbed.
    let mut s = raw(true, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::HaveAll, Message::Unchoke]))
        .unwrap();
    events(&mut s);
    s.request(t(2), r).unwrap();
    s.cancel(t(3), r).unwrap();
    s.handle_bytes(t(4), &bytes(&[Message::RejectRequest(r)]))
        .unwrap();
    assert!(events(&mut s).is_empty());
    // BEP 6: "If a peer receives a reject for a request that was never sent then the peer SHOULD close
    // the connection."
    assert!(matches!(
        s.handle_bytes(t(5), &bytes(&[Message::RejectRequest(r)])),
        Err(SessionError::UnrequestedReject { .. })
    ));
}

#[test]
fn request_times_out() {
    // BEP 3: "Keepalives are generally sent once every two minutes, but note that timeouts can be done
    // much more quickly when data is expected." A request unanswered for `request_timeout` is given up
    // and cancelled; the block is still welcome if it comes.
    let r = req(0, 0, 16384);
    let mut s = raw(false, false, none());
    s.handle_bytes(t(0), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    events(&mut s);
    s.request(secs(10), r).unwrap();
    sent(&mut s);
    // The snub timer (60 s) comes first; the request times out at 10 + 90 s.
    assert_eq!(s.poll_timeout(), Some(secs(70)));
    s.handle_timeout(secs(70));
    assert_eq!(events(&mut s), vec![SessionEvent::Snubbed]);
    assert_eq!(s.poll_timeout(), Some(secs(100)));
    s.handle_timeout(t(99_999));
    assert!(events(&mut s).is_empty());
    s.handle_timeout(secs(100));
    assert_eq!(events(&mut s), vec![SessionEvent::RequestTimedOut(r)]);
    // The cancel counts as our traffic: no keep-alive is needed at 100 s.
    assert_eq!(sent(&mut s), bytes(&[Message::Cancel(r)]));
    assert_eq!(s.in_flight().count(), 0);
    let block = vec![1u8; 16384];
    s.handle_bytes(
        secs(101),
        &bytes(&[Message::Piece {
            index: r.index,
            begin: 0,
            block: &block,
        }]),
    )
    .unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::Unsnubbed,
            SessionEvent::LateBlock { req: r, data: block }
        ]
    );
}

#[test]
fn snub_detected_after_sixty_seconds() {
    // "Snubbed": no block data for snub_timeout (60 s) while requests are outstanding; the choker and
    // picker treat such a peer as not reciprocating until data flows again.
    let config = SessionConfig {
        request_timeout: Duration::from_secs(600),
        ..SessionConfig::default()
    };
    let rs = [req(0, 0, 16384), req(0, 16384, 16384), req(1, 0, 16384)];
    let mut s = raw_with(config, false, false, none());
    s.handle_bytes(t(0), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    events(&mut s);
    for r in rs {
        s.request(t(0), r).unwrap();
    }
    // A block at 30 s restarts the clock.
    let block = vec![0u8; 16384];
    let piece = |r: BlockRequest| {
        bytes(&[Message::Piece {
            index: r.index,
            begin: r.begin,
            block: &block,
        }])
    };
    s.handle_bytes(secs(30), &piece(rs[0])).unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(90)));
    s.handle_timeout(t(89_999));
    assert!(!s.is_snubbed());
    // Half a block at 80 s is data too.
    let half = piece(rs[1]);
    s.handle_bytes(secs(80), &half[..5000]).unwrap();
    s.handle_timeout(t(139_999));
    assert!(!s.is_snubbed());
    s.handle_timeout(secs(140));
    assert!(s.is_snubbed());
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::Block {
                req: rs[0],
                data: block.clone()
            },
            SessionEvent::Snubbed
        ]
    );
    s.handle_bytes(secs(150), &half[5000..]).unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::Unsnubbed,
            SessionEvent::Block {
                req: rs[1],
                data: block.clone()
            }
        ]
    );
    // Nothing outstanding, no snub.
    s.handle_bytes(secs(151), &piece(rs[2])).unwrap();
    events(&mut s);
    s.handle_timeout(secs(300));
    assert!(!s.is_snubbed() && events(&mut s).is_empty());
}

// ----- keep-alives and timeouts -----

#[test]
fn keepalive_sent_when_idle() {
    // BEP 3: "Messages of length zero are keepalives, and ignored. Keepalives are generally sent once every
    // two minutes". We send one after 90 s of silence, so a peer with a two-minute timeout never waits.
    let mut p = pair(true, true, none(), OurPieces::All);
    let writes = p.a.wire.len();
    p.advance(Duration::from_secs(89));
    assert_eq!(p.a.wire.len(), writes);
    p.advance(Duration::from_secs(1));
    assert_eq!(p.a.wire.last(), Some(&(secs(90), vec![0, 0, 0, 0])));
    assert_eq!(p.b.wire.last(), Some(&(secs(90), vec![0, 0, 0, 0])));
    // Keep-alives keep both sides open indefinitely; they are not reported as events.
    p.advance(Duration::from_secs(1000));
    assert!(!p.a.s.is_closed() && !p.b.s.is_closed());
    assert!(p.take_a().iter().all(|e| !matches!(e, SessionEvent::Closed(_))));
    let keepalives = p.a.wire.iter().filter(|(_, b)| b == &[0, 0, 0, 0]).count();
    assert_eq!(keepalives, 1090 / 90);
    // Our own traffic postpones the keep-alive.
    let before = p.a.wire.len();
    p.a.s.set_interested(p.now, true).unwrap();
    p.drive();
    p.advance(Duration::from_secs(89));
    assert_eq!(p.a.wire.len(), before + 1);
}

#[test]
fn idle_peer_times_out() {
    // Nothing at all from the peer for idle_timeout (240 s, two keep-alive periods of BEP 3's "once every
    // two minutes") closes the session; our own keep-alives do not count.
    let mut s = raw(false, false, none());
    s.handle_timeout(secs(90));
    s.handle_timeout(secs(180));
    assert_eq!(sent(&mut s), bytes(&[Message::KeepAlive, Message::KeepAlive]));
    assert_eq!(s.poll_timeout(), Some(secs(240)));
    s.handle_timeout(t(239_999));
    assert!(!s.is_closed());
    s.handle_timeout(secs(240));
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::Closed(SessionError::IdleTimeout(
            Duration::from_secs(240)
        ))]
    );
    assert_eq!(s.poll_timeout(), None);

    // A keep-alive from the peer is enough to stay open; requests in flight are handed back on close.
    let mut s = raw(false, false, none());
    s.handle_bytes(secs(200), &bytes(&[Message::KeepAlive])).unwrap();
    s.handle_timeout(secs(240));
    assert!(!s.is_closed());
    s.handle_bytes(secs(241), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    events(&mut s);
    s.request(secs(241), req(3, 0, 16384)).unwrap();
    // A driver that wakes late: the idle close wins over the request timeout and snub due earlier.
    s.handle_timeout(secs(481));
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::RequestsDropped(vec![req(3, 0, 16384)]),
            SessionEvent::Closed(SessionError::IdleTimeout(Duration::from_secs(240)))
        ]
    );
    // The handshake timer only runs until the handshake is done.
    let mut s = PeerSession::new(
        SessionConfig::default(),
        local(1, Reserved::NONE, none()),
        false,
        t(0),
    )
    .unwrap();
    assert_eq!(s.poll_timeout(), Some(secs(20)));
    s.handle_timeout(secs(20));
    assert_eq!(
        closed_with(&s),
        SessionError::HandshakeTimeout(Duration::from_secs(20))
    );
}

// ----- malformed input -----

#[test]
fn oversized_length_prefix_closes_before_body() {
    // A length prefix over the limit (1 MiB) is refused when its four bytes arrive: nothing is buffered.
    let mut s = raw(false, false, none());
    let e = s.handle_bytes(t(1), &[0x00, 0x10, 0x00, 0x01]).unwrap_err();
    assert_eq!(
        e,
        SessionError::Wire(WireError::MessageTooLong {
            id: None,
            len: (1 << 20) + 1,
            max: 1 << 20
        })
    );
    // Split across calls, the same.
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &[0x7f, 0xff]).unwrap();
    assert!(matches!(
        s.handle_bytes(t(1), &[0xff, 0xff]),
        Err(SessionError::Wire(WireError::MessageTooLong { .. }))
    ));
    // A fixed-size message with another length is refused at its id byte.
    let mut s = raw(false, false, none());
    assert!(matches!(
        s.handle_bytes(t(1), &[0, 0, 0, 200, 4]),
        Err(SessionError::Wire(WireError::BadLength { id: 4, .. }))
    ));
}

#[test]
fn out_of_range_piece_index_closes() {
    // A piece index is "the index [...] as described in the metainfo file, starting at zero" (BEP 3): the
    // torrent has 5 pieces, so 5 is out of range.
    for (m, name) in [
        (Message::Have(PieceIndex(5)), "have"),
        (Message::Request(req(5, 0, 16384)), "request"),
        (Message::Cancel(req(9, 0, 16384)), "cancel"),
        (Message::SuggestPiece(PieceIndex(5)), "suggest piece"),
        (Message::AllowedFast(PieceIndex(u32::MAX)), "allowed fast"),
    ] {
        let mut s = raw(true, false, OurPieces::All);
        s.set_choking(t(0), false).unwrap();
        let e = s.handle_bytes(t(1), &bytes(&[m])).unwrap_err();
        assert!(
            matches!(e, SessionError::PieceOutOfRange { message, num_pieces: 5, .. } if message == name),
            "{e}"
        );
    }
    let mut s = raw(false, false, none());
    assert_eq!(
        s.handle_bytes(
            t(1),
            &bytes(&[Message::Piece {
                index: PieceIndex(7),
                begin: 0,
                block: b"x"
            }])
        ),
        Err(SessionError::PieceOutOfRange {
            message: "piece",
            index: 7,
            num_pieces: 5
        })
    );
    // Our own commands are checked too, without closing.
    let mut s = raw(true, false, none());
    assert_eq!(
        s.have(t(2), PieceIndex(5)),
        Err(CommandError::Invalid(req(5, 0, 0)))
    );
    assert_eq!(
        s.allow_fast(t(2), PieceIndex(5)),
        Err(CommandError::Invalid(req(5, 0, 0)))
    );
    assert!(!s.is_closed());
}

#[test]
fn request_beyond_piece_end_closes() {
    // BEP 3: "'request' messages contain an index, begin, and length. The last two are byte offsets." The
    // last piece has 10768 bytes.
    let mut s = raw(false, false, OurPieces::All);
    s.set_choking(t(0), false).unwrap();
    s.handle_bytes(t(1), &bytes(&[Message::Request(req(4, 0, 10768))]))
        .unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Request(req(4, 0, 10768))]);
    let e = s
        .handle_bytes(t(2), &bytes(&[Message::Request(req(4, 0, 16384))]))
        .unwrap_err();
    assert_eq!(
        e,
        SessionError::BeyondPieceEnd {
            message: "request",
            index: 4,
            begin: 0,
            length: 16384,
            piece_len: 10768
        }
    );
    let mut s = raw(false, false, OurPieces::All);
    assert!(matches!(
        s.handle_bytes(t(1), &bytes(&[Message::Request(req(0, u32::MAX, 16384))])),
        Err(SessionError::BeyondPieceEnd { .. })
    ));
    // We never ask beyond a piece either.
    let mut s = raw(false, false, none());
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xf8]), Message::Unchoke]))
        .unwrap();
    assert_eq!(
        s.request(t(2), req(4, 0, 16384)),
        Err(CommandError::Invalid(req(4, 0, 16384)))
    );
    assert_eq!(
        s.request(t(2), req(0, 0, 32768)),
        Err(CommandError::Invalid(req(0, 0, 32768)))
    );
}

// ----- extension protocol -----

#[test]
fn extended_handshake_exchanged() {
    // BEP 10: "This message should be sent immediately after the standard bittorrent handshake to any peer
    // that supports this extension protocol." and "The extension message IDs are the IDs used to send the
    // extension messages to the peer sending this handshake."
    let mut a = local(1, reserved(true, true), none());
    a.extended.m.insert(UT_METADATA.into(), 3);
    a.extended.metadata_size = Some(1314);
    let mut b = local(2, reserved(true, true), OurPieces::All);
    b.extended.m.insert(UT_PEX.into(), 1);
    b.extended.reqq = Some(3);
    let mut p = Pair::new(SessionConfig::default(), a, b);
    // Each side sends its piece set first, then its extended handshake.
    let ev_a = p.take_a();
    let ev_b = p.take_b();
    assert_eq!(ev_a[1], SessionEvent::HaveAll);
    assert_eq!(ev_b[1], SessionEvent::HaveNone);
    let SessionEvent::ExtendedHandshake(from_b) = &ev_a[2] else {
        panic!("{ev_a:?}")
    };
    assert_eq!(from_b.extension_id(UT_PEX), Some(1));
    assert_eq!(from_b.v.as_deref(), Some("bitswarm-test-2"));
    assert_eq!(from_b.reqq, Some(3));
    let SessionEvent::ExtendedHandshake(from_a) = &ev_b[2] else {
        panic!("{ev_b:?}")
    };
    assert_eq!(from_a.extension_id(UT_METADATA), Some(3));
    assert_eq!(from_a.metadata_size, Some(1314));
    // Our reqq is announced when none was set; the peer's caps our requests.
    assert_eq!(from_a.reqq, Some(500));
    assert_eq!(p.a.s.max_requests(), 3);
    assert_eq!(p.b.s.max_requests(), 500);

    p.a.s.send_extended(p.now, 1, b"d5:addede").unwrap();
    p.b.s
        .send_extended(p.now, 3, b"d8:msg_typei0e5:piecei0ee")
        .unwrap();
    p.drive();
    assert_eq!(
        p.take_b(),
        vec![SessionEvent::Extended {
            id: 1,
            payload: b"d5:addede".to_vec()
        }]
    );
    assert_eq!(
        p.take_a(),
        vec![SessionEvent::Extended {
            id: 3,
            payload: b"d8:msg_typei0e5:piecei0ee".to_vec()
        }]
    );
    // "It is valid to send the handshake message more than once": m is additive.
    p.b.s
        .send_extended(p.now, 0, b"d1:md12:ut_holepunchi4e6:ut_pexi0eee")
        .unwrap();
    p.drive();
    let ev = p.take_a();
    assert!(matches!(&ev[..], [SessionEvent::ExtendedHandshake(_)]), "{ev:?}");
    let merged = p.a.s.peer_extensions().unwrap();
    assert_eq!(merged.extension_id(UT_PEX), None);
    assert_eq!(merged.extension_id("ut_holepunch"), Some(4));
    assert_eq!(merged.reqq, Some(3));

    // Without the bit on both sides: no extended handshake, and extended messages are refused.
    let mut p = pair(false, false, none(), OurPieces::All);
    assert!(!p
        .take_a()
        .iter()
        .any(|e| matches!(e, SessionEvent::ExtendedHandshake(_))));
    assert_eq!(
        p.a.s.send_extended(p.now, 1, b"de"),
        Err(CommandError::NoExtensionProtocol)
    );
    let mut s = raw(false, false, none());
    assert_eq!(
        s.handle_bytes(
            t(1),
            &bytes(&[Message::Extended {
                id: 0,
                payload: b"de"
            }])
        ),
        Err(SessionError::ExtendedNotEnabled)
    );
    let mut s = raw(false, true, none());
    assert!(matches!(
        s.handle_bytes(
            t(1),
            &bytes(&[Message::Extended {
                id: 0,
                payload: b"li1ee"
            }])
        ),
        Err(SessionError::BadExtendedHandshake(_))
    ));
}

// ----- a whole transfer -----

#[test]
fn full_transfer_of_a_small_torrent() {
    // BEP 3: "Data transfer takes place whenever one side is interested and the other side is not
    // choking." A downloader fetches all 5 pieces (9 blocks) from a seed, pipelining 4 requests, and
    // announces each verified piece with `have`.
    let mut p = pair(true, true, none(), OurPieces::All);
    let sz = sizes();
    let blocks: Vec<BlockRequest> = (0..sz.num_pieces())
        .flat_map(|i| {
            let len = sz.len(PieceIndex(i)).unwrap();
            (0..len.div_ceil(16384)).map(move |b| req(i, b * 16384, (len - b * 16384).min(16384)))
        })
        .collect();
    assert_eq!(blocks.len(), 9);
    let mut todo: std::collections::VecDeque<BlockRequest> = blocks.iter().copied().collect();
    let mut got = vec![0u8; TOTAL as usize];
    let mut received = std::collections::BTreeMap::<u32, u32>::new();
    let mut haves = Vec::new();
    p.a.s.set_interested(p.now, true).unwrap();
    p.drive();
    for _round in 0..100 {
        for ev in p.take_b() {
            match ev {
                SessionEvent::Interested => p.b.s.set_choking(p.now, false).unwrap(),
                SessionEvent::Request(r) => p.b.s.send_block(p.now, r).unwrap(),
                SessionEvent::Have(i) => haves.push(i),
                _ => {}
            }
        }
        for ev in p.take_a() {
            if let SessionEvent::Block { req: r, data } = ev {
                let at = (r.index.0 * PIECE_LEN + r.begin) as usize;
                got[at..at + data.len()].copy_from_slice(&data);
                let n = received.entry(r.index.0).or_default();
                *n += r.length;
                if *n == sz.len(r.index).unwrap() {
                    p.a.s.have(p.now, r.index).unwrap();
                }
            }
        }
        while !p.a.s.peer_choking() && p.a.s.in_flight().count() < 4 {
            let Some(r) = todo.pop_front() else { break };
            p.a.s.request(p.now, r).unwrap();
        }
        p.advance(Duration::from_millis(10));
        if todo.is_empty() && p.a.s.in_flight().count() == 0 && p.a.events.is_empty() {
            break;
        }
    }
    assert_eq!(got, payload(TOTAL));
    assert!(p.a.s.our_pieces().is_full());
    assert_eq!(p.a.s.stats().payload_received, TOTAL);
    assert_eq!(p.b.s.stats().payload_sent, TOTAL);
    assert_eq!(p.a.s.stats().payload_sent, 0);
    // Protocol bytes agree on both ends.
    assert_eq!(p.a.s.stats().protocol_sent, p.b.s.stats().protocol_received);
    assert_eq!(p.b.s.stats().protocol_sent, p.a.s.stats().protocol_received);
    haves.extend(p.take_b().into_iter().filter_map(|e| match e {
        SessionEvent::Have(i) => Some(i),
        _ => None,
    }));
    assert_eq!(haves, (0..5).map(PieceIndex).collect::<Vec<_>>());
    p.a.s.set_interested(p.now, false).unwrap();
    p.drive();
    assert_eq!(p.take_b(), vec![SessionEvent::NotInterested]);
    p.a.s.close();
    assert_eq!(p.take_a(), vec![]);
    assert_eq!(
        p.a.s.poll_event(),
        Some(SessionEvent::Closed(SessionError::ClosedLocally))
    );
}

#[test]
fn piece_sizes_follow_the_geometry() {
    use metainfo::{Geometry, Version};
    let u = PieceSizes::uniform(16384, 1_000_000).unwrap();
    assert_eq!(u.num_pieces(), 62);
    assert_eq!(u.len(PieceIndex(61)), Some(1_000_000 - 61 * 16384));
    assert_eq!(u.len(PieceIndex(62)), None);
    assert_eq!(
        PieceSizes::uniform(16384, 16384 * 3).unwrap().len(PieceIndex(2)),
        Some(16384)
    );
    assert!(PieceSizes::uniform(0, 10).is_none());
    // v2: every file starts a piece, so each file's last piece may be short.
    let files = [(40_000, false), (16_384, false), (0, false), (5, false)];
    let g = Geometry::new(Version::V2, 32768, &files).unwrap();
    let v2 = PieceSizes::from_geometry(&g);
    let lens: Vec<_> = (0..v2.num_pieces())
        .map(|i| v2.len(PieceIndex(i)).unwrap())
        .collect();
    assert_eq!(lens, vec![32768, 40_000 - 32768, 16384, 5]);
    let g = Geometry::new(Version::V1, 32768, &files).unwrap();
    let v1 = PieceSizes::from_geometry(&g);
    assert_eq!(v1, PieceSizes::uniform(32768, 56_389).unwrap());
}

// ----- real peers -----

fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../wire/tests/fixtures/");
    std::fs::read(format!("{path}{name}")).unwrap()
}

/// Our side of the captured connection: an outgoing session for the captured 62-piece torrent.
fn capture_session(handshake: &[u8], fast: bool) -> PeerSession {
    let h = Handshake::parse(handshake).unwrap();
    let info = LocalInfo {
        info_hash: h.info_hash,
        peer_id: PeerId(*b"-BS0001-capturetest0"),
        reserved: Reserved::EXTENDED | Reserved::DHT | Reserved::NONE.with(Reserved::FAST, fast),
        pieces: Arc::new(PieceSizes::uniform(16384, 1_000_000).unwrap()),
        have: OurPieces::Some(Bitfield::new(62)),
        extended: ExtendedHandshake::default(),
    };
    let mut s = PeerSession::new(SessionConfig::default(), info, true, t(0)).unwrap();
    s.handle_bytes(t(1), handshake).unwrap();
    s
}

/// Feed `stream` (whole, or one byte at a time), requesting piece 1's first block just before the frame
/// at `piece_at` (the capture client asked for it once unchoked), and return the events.
fn replay(
    handshake: &[u8],
    stream: &[u8],
    fast: bool,
    piece_at: Option<usize>,
    bytewise: bool,
) -> Vec<SessionEvent> {
    let mut s = capture_session(handshake, fast);
    let cut = piece_at.unwrap_or(stream.len());
    let feed = |s: &mut PeerSession, part: &[u8]| {
        if bytewise {
            for b in part.chunks(1) {
                s.handle_bytes(t(2), b).unwrap();
            }
        } else {
            s.handle_bytes(t(2), part).unwrap();
        }
    };
    feed(&mut s, &stream[..cut]);
    if piece_at.is_some() {
        s.request(t(2), req(1, 0, 16384)).unwrap();
    }
    feed(&mut s, &stream[cut..]);
    assert!(!s.is_closed());
    events(&mut s)
}

#[test]
fn captured_libtorrent_stream_as_the_remote_peer() {
    // libtorrent 2.0.8 seeding, fast extension on: extended handshake, have all, port, unchoke, 5 allowed
    // fast, unchoke, ut_metadata data and reject, then the requested block of piece 1.
    let hs = fixture("libtorrent-handshake.bin");
    let stream = fixture("libtorrent-stream.bin");
    let ev = replay(&hs, &stream, true, Some(1701), false);
    assert_eq!(
        ev,
        replay(&hs, &stream, true, Some(1701), true),
        "split anywhere, same events"
    );
    assert!(
        matches!(&ev[0], SessionEvent::HandshakeDone { reserved, .. } if reserved.fast() && reserved.dht())
    );
    let SessionEvent::ExtendedHandshake(h) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert_eq!(h.v.as_deref(), Some("libtorrent/2.0.8.0"));
    assert_eq!(h.reqq, Some(2000));
    assert_eq!(h.extension_id(UT_METADATA), Some(2));
    assert_eq!(ev[2], SessionEvent::HaveAll);
    assert_eq!(ev[3], SessionEvent::Port(47881));
    assert_eq!(ev[4], SessionEvent::Unchoked);
    assert_eq!(
        ev[5..10]
            .iter()
            .filter(|e| matches!(e, SessionEvent::AllowedFast(_)))
            .count(),
        5
    );
    // The second unchoke changes nothing and is not reported again.
    assert!(matches!(&ev[10], SessionEvent::Extended { id: 3, payload } if payload.len() == 1358));
    assert!(matches!(&ev[11], SessionEvent::Extended { id: 3, .. }));
    let data: Vec<u8> = (16384..32768u64).map(|i| (i * 7 + 3) as u8).collect();
    assert_eq!(
        ev[12],
        SessionEvent::Block {
            req: req(1, 0, 16384),
            data
        }
    );
    assert_eq!(ev.len(), 13);
}

#[test]
fn captured_transmission_and_nofast_streams_as_the_remote_peer() {
    // Transmission 3.00: extended handshake, have all, ut_pex, ut_metadata data and reject, unchoke, block.
    let hs = fixture("transmission-handshake.bin");
    let stream = fixture("transmission-stream.bin");
    let ev = replay(&hs, &stream, true, Some(1573), false);
    assert_eq!(ev, replay(&hs, &stream, true, Some(1573), true));
    assert!(matches!(&ev[1], SessionEvent::ExtendedHandshake(h) if h.reqq == Some(512)));
    assert_eq!(ev[2], SessionEvent::HaveAll);
    assert!(matches!(ev.last(), Some(SessionEvent::Block { req: r, .. }) if *r == req(1, 0, 16384)));
    // Without the fast extension both send a bitfield of 62 pieces (after their extended handshake).
    for (hs, stream) in [
        ("libtorrent-handshake.bin", "libtorrent-nofast-stream.bin"),
        ("transmission-handshake.bin", "transmission-nofast-stream.bin"),
    ] {
        let ev = replay(&fixture(hs), &fixture(stream), false, None, false);
        assert!(
            matches!(&ev[1], SessionEvent::ExtendedHandshake(_)),
            "{stream}: {ev:?}"
        );
        assert_eq!(ev[2], SessionEvent::Bitfield(Bitfield::full(62)), "{stream}");
        assert!(
            ev.iter()
                .any(|e| matches!(e, SessionEvent::Extended { id: 1, .. })),
            "{stream}: ut_pex"
        );
    }
}

// ----- properties -----

/// The blocks the session under test has in flight when the random part of the stream starts.
fn small_blocks() -> Vec<BlockRequest> {
    (0..2).flat_map(|i| [0, 64, 128].map(|b| req(i, b, 64))).collect()
}

fn message() -> impl Strategy<Value = Vec<u8>> {
    let block = || (0u32..6, 0u32..40_000, 1u32..20_000).prop_map(|(i, b, l)| req(i, b, l));
    let small = || {
        (0u32..3, prop_oneof![Just(0u32), Just(64), Just(128), Just(100)]).prop_map(|(i, b)| req(i, b, 64))
    };
    let good_piece = move || {
        (small(), any::<u8>()).prop_map(|(r, fill)| {
            bytes(&[Message::Piece {
                index: r.index,
                begin: r.begin,
                block: &[fill; 64],
            }])
        })
    };
    prop_oneof![
        Just(bytes(&[Message::KeepAlive])),
        Just(bytes(&[Message::Choke])),
        Just(bytes(&[Message::Unchoke])),
        Just(bytes(&[Message::Interested])),
        Just(bytes(&[Message::NotInterested])),
        Just(bytes(&[Message::HaveAll])),
        Just(bytes(&[Message::HaveNone])),
        (0u32..6).prop_map(|i| bytes(&[Message::Have(PieceIndex(i))])),
        (0u32..6).prop_map(|i| bytes(&[Message::AllowedFast(PieceIndex(i))])),
        (0u32..6).prop_map(|i| bytes(&[Message::SuggestPiece(PieceIndex(i))])),
        proptest::collection::vec(any::<u8>(), 0..3).prop_map(|b| bytes(&[Message::Bitfield(&b)])),
        block().prop_map(|r| bytes(&[Message::Request(r)])),
        block().prop_map(|r| bytes(&[Message::Cancel(r)])),
        small().prop_map(|r| bytes(&[Message::RejectRequest(r)])),
        (
            0u32..6,
            0u32..40_000,
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(i, b, d)| bytes(&[Message::Piece {
                index: PieceIndex(i),
                begin: b,
                block: &d
            }])),
        good_piece(),
        good_piece(),
        good_piece(),
        any::<u16>().prop_map(|p| bytes(&[Message::Port(p)])),
        (0u8..3, proptest::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(id, p)| bytes(&[Message::Extended { id, payload: &p }])),
        Just(bytes(&[Message::Extended {
            id: 0,
            payload: b"d1:md6:ut_pexi1eee"
        }])),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

/// An accepting session (fast and extended, every piece, unchoking) fed `head` whole, then (if still
/// open) asked for [`small_blocks`], then fed `body` cut at `cuts`; returns its events and everything it
/// wrote.
fn run_split(head: &[u8], body: &[u8], cuts: &[usize]) -> (Vec<SessionEvent>, Vec<u8>) {
    let config = SessionConfig {
        max_block_len: 64,
        ..SessionConfig::default()
    };
    let mut s = PeerSession::new(
        config,
        local(1, reserved(true, true), OurPieces::All),
        false,
        t(0),
    )
    .unwrap();
    s.set_choking(t(0), false).unwrap();
    let _ = s.handle_bytes(t(1), head);
    if s.is_established() && !s.peer_choking() {
        for r in small_blocks() {
            s.request(t(1), r).unwrap();
        }
    }
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c % (body.len() + 1)).collect();
    cuts.push(0);
    cuts.push(body.len());
    cuts.sort_unstable();
    for w in cuts.windows(2) {
        if s.is_closed() {
            break;
        }
        let r = s.handle_bytes(t(2), &body[w[0]..w[1]]);
        assert_eq!(r.is_err(), s.is_closed());
    }
    (events(&mut s), sent(&mut s))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_and_split_points_do_not_matter(
        msgs in proptest::collection::vec(message(), 0..24),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
        valid_handshake in any::<bool>(),
    ) {
        // A valid handshake, have all and unchoke (so requests can be in flight), or garbage.
        let head = if valid_handshake {
            let mut h = Handshake { reserved: reserved(true, true), info_hash: IH, peer_id: pid(9) }.to_bytes().to_vec();
            h.extend_from_slice(&bytes(&[Message::HaveAll, Message::Unchoke]));
            h
        } else {
            garbage.clone()
        };
        let mut body: Vec<u8> = msgs.concat();
        body.extend_from_slice(&garbage);
        let whole = run_split(&head, &body, &[]);
        let split = run_split(&head, &body, &cuts);
        prop_assert_eq!(&whole, &split);
        let bytewise = run_split(&head, &body, &(0..body.len()).collect::<Vec<_>>());
        prop_assert_eq!(&whole, &bytewise);
        // Random bytes straight into a fresh session, split the same ways.
        let raw_whole = run_split(&[], &body, &[]);
        prop_assert_eq!(&raw_whole, &run_split(&[], &body, &cuts));
        // Closed, if at all, exactly once and last.
        for (events, _) in [&whole, &raw_whole] {
            let closes = events.iter().filter(|e| matches!(e, SessionEvent::Closed(_))).count();
            prop_assert!(closes <= 1);
            if closes == 1 {
                prop_assert!(matches!(events.last(), Some(SessionEvent::Closed(_))));
            }
        }
    }
}

// ----- sessions that start before the metadata (magnet links) -----

/// An outgoing session without a piece count, with the raw peer's handshake received and drained.
fn raw_awaiting(fast: bool) -> PeerSession {
    let mut s = PeerSession::new_awaiting_metadata(
        SessionConfig::default(),
        local(1, reserved(fast, true), none()),
        true,
        t(0),
    );
    let theirs = Handshake {
        reserved: reserved(fast, true),
        info_hash: IH,
        peer_id: pid(2),
    };
    s.handle_bytes(t(0), &theirs.to_bytes()).unwrap();
    assert!(s.is_established() && !s.pieces_known());
    s
}

/// BEP 6: "Have None ... the sender has none of the pieces" is what a session without the metadata says;
/// the peer's `have all` and `have`s are kept and reported once the piece count is known, and the
/// pieces we have by then are announced with `have`.
#[test]
fn awaiting_metadata_keeps_the_peers_pieces_until_the_count_is_known() {
    let mut s = raw_awaiting(true);
    let out = sent(&mut s);
    // Handshake, then `have none` and our extended handshake.
    let after = &out[68..];
    assert_eq!(&after[..5], &[0, 0, 0, 1, wire::message::id::HAVE_NONE]);
    events(&mut s);
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::HaveAll,
            Message::Interested,
            Message::AllowedFast(PieceIndex(3)),
        ]),
    )
    .unwrap();
    assert_eq!(events(&mut s), vec![SessionEvent::Interested]);
    // A request while we have nothing is refused.
    s.handle_bytes(t(1), &bytes(&[Message::Request(req(0, 0, 16384))]))
        .unwrap();
    assert_eq!(sent(&mut s), bytes(&[Message::RejectRequest(req(0, 0, 16384))]));
    let mut have = Bitfield::new(5);
    have.set(PieceIndex(1), true).unwrap();
    s.set_pieces(t(2), sizes(), OurPieces::Some(have)).unwrap();
    assert!(s.pieces_known());
    assert_eq!(
        events(&mut s),
        vec![SessionEvent::HaveAll, SessionEvent::AllowedFast(PieceIndex(3))]
    );
    assert_eq!(sent(&mut s), bytes(&[Message::Have(PieceIndex(1))]));
    assert!(s.peer_pieces().is_full());
    // From now on it is an ordinary session.
    s.handle_bytes(t(3), &bytes(&[Message::Unchoke])).unwrap();
    s.request(t(3), req(0, 0, 16384)).unwrap();
}

/// BEP 3: "'bitfield' is only ever sent as the first message" and a `have` names a piece that exists: both
/// are checked against the piece count once it is known, and a wrong one closes the session then.
#[test]
fn awaiting_metadata_checks_kept_messages_against_the_count() {
    let mut s = raw_awaiting(false);
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::Bitfield(&[0b1010_0000]),
            Message::Have(PieceIndex(4)),
            Message::Have(PieceIndex(4)),
        ]),
    )
    .unwrap();
    events(&mut s);
    s.set_pieces(t(2), sizes(), none()).unwrap();
    let mut expected = Bitfield::new(5);
    expected.set(PieceIndex(0), true).unwrap();
    expected.set(PieceIndex(2), true).unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            SessionEvent::Bitfield(expected),
            SessionEvent::Have(PieceIndex(4))
        ]
    );

    // A `have` past the end of the torrent closes the session once the count is known.
    let mut s = raw_awaiting(true);
    s.handle_bytes(t(1), &bytes(&[Message::Have(PieceIndex(9))]))
        .unwrap();
    s.set_pieces(t(2), sizes(), none()).unwrap();
    assert!(matches!(
        closed_with(&s),
        SessionError::PieceOutOfRange { index: 9, .. }
    ));

    // A bitfield of the wrong length too.
    let mut s = raw_awaiting(false);
    s.handle_bytes(t(1), &bytes(&[Message::Bitfield(&[0xff, 0xff])]))
        .unwrap();
    s.set_pieces(t(2), sizes(), none()).unwrap();
    assert!(matches!(closed_with(&s), SessionError::Wire(_)));

    // A `have` index no torrent under the metadata cap can have closes at once.
    let mut s = raw_awaiting(false);
    let err = s
        .handle_bytes(t(1), &bytes(&[Message::Have(PieceIndex(u32::MAX))]))
        .unwrap_err();
    assert!(matches!(err, SessionError::PieceOutOfRange { .. }));
}

/// BEP 3: "If an unsolicited piece is received a peer MUST close the connection" (we request nothing
/// before the metadata); extension messages flow as usual.
#[test]
fn awaiting_metadata_passes_extension_messages_and_refuses_blocks() {
    let mut s = raw_awaiting(true);
    events(&mut s);
    let mut h = ExtendedHandshake::default();
    h.m.insert(UT_METADATA.into(), 3);
    h.metadata_size = Some(1000);
    let payload = h.encode();
    s.handle_bytes(
        t(1),
        &bytes(&[
            Message::Extended {
                id: 0,
                payload: &payload,
            },
            Message::Extended {
                id: 2,
                payload: b"d8:msg_typei2e5:piecei0ee",
            },
        ]),
    )
    .unwrap();
    let ev = events(&mut s);
    assert!(matches!(&ev[0], SessionEvent::ExtendedHandshake(h) if h.metadata_size == Some(1000)));
    assert!(matches!(&ev[1], SessionEvent::Extended { id: 2, .. }));
    s.send_extended(t(1), 3, b"d8:msg_typei0e5:piecei0ee").unwrap();
    let err = s
        .handle_bytes(
            t(2),
            &bytes(&[Message::Piece {
                index: PieceIndex(0),
                begin: 0,
                block: b"abc",
            }]),
        )
        .unwrap_err();
    assert!(matches!(err, SessionError::UnrequestedBlock { .. }));
}

/// A handshake that completes after the count became known sends our bitfield as usual.
#[test]
fn awaiting_metadata_before_the_handshake_sends_the_real_bitfield() {
    let mut s = PeerSession::new_awaiting_metadata(
        SessionConfig::default(),
        local(1, reserved(false, false), none()),
        false,
        t(0),
    );
    s.set_pieces(t(0), sizes(), OurPieces::All).unwrap();
    let theirs = Handshake {
        reserved: reserved(false, false),
        info_hash: IH,
        peer_id: pid(2),
    };
    s.handle_bytes(t(0), &theirs.to_bytes()).unwrap();
    let out = sent(&mut s);
    assert_eq!(&out[68..], &bytes(&[Message::Bitfield(&[0xf8])])[..]);
}
