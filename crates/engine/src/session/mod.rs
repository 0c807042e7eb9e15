//! One peer connection as a state machine: the handshake, choke and interest state, the peer's pieces,
//! requests in both directions with their timeouts, snub detection, keep-alives, rejects and cancels, the
//! BEP 6 allowed-fast sets and the BEP 10 extended handshake.
//!
//! A [`PeerSession`] owns no socket and reads no clock. The driver feeds it what happened, with the time
//! it happened, and drains what it wants done (the sans-IO contract of `architecture.md`):
//!
//! - inputs: [`handle_bytes`](PeerSession::handle_bytes) (bytes from the peer, split anywhere),
//!   [`handle_timeout`](PeerSession::handle_timeout), and commands from the engine
//!   ([`set_interested`](PeerSession::set_interested), [`set_choking`](PeerSession::set_choking),
//!   [`request`](PeerSession::request), [`cancel`](PeerSession::cancel), [`have`](PeerSession::have),
//!   [`allow_fast`](PeerSession::allow_fast), [`send_block`](PeerSession::send_block),
//!   [`reject`](PeerSession::reject), [`send_extended`](PeerSession::send_extended),
//!   [`send_port`](PeerSession::send_port), [`close`](PeerSession::close));
//! - outputs, drained after every input: [`poll_transmit`](PeerSession::poll_transmit) (bytes, or a piece
//!   header after which the driver writes the block from its disk buffer),
//!   [`poll_event`](PeerSession::poll_event) ([`SessionEvent`]) and
//!   [`poll_timeout`](PeerSession::poll_timeout) (when to call `handle_timeout` next).
//!
//! Commands take `now` too: a request starts its timeout, and anything sent postpones the keep-alive.
//! A refused command ([`CommandError`]) changes nothing and leaves the session open; a protocol error by the
//! peer closes it ([`SessionError`], reported once as [`SessionEvent::Closed`], always the last event).
//! A session normally knows the piece count up front ([`PieceSizes`]). For a magnet download it can start
//! without it ([`new_awaiting_metadata`](PeerSession::new_awaiting_metadata)): the handshake, the extended
//! handshake and extension messages (such as BEP 9's metadata exchange) work as usual, we tell the peer we
//! have nothing, and the peer's `bitfield`, `have all`, `have none`, `have` and `allowed fast` messages are
//! kept unchecked (bounded) until [`set_pieces`](PeerSession::set_pieces) gives the geometry; they are
//! then checked and reported as if they had just arrived, so the same connection goes on to exchange
//! pieces. Until then the peer's requests are refused and a `piece` closes the session (we asked for none).
//!
//! **Handshake.** An outgoing session sends its handshake at once; an incoming one answers as soon as the
//! peer's reserved bits and info-hash (the first 48 bytes) have arrived and match. Right after the
//! handshake each side sends what it has (`have all` / `have none` / `bitfield` with the fast extension;
//! a `bitfield` without it, or nothing when it has no piece) and then its extended handshake, if both set
//! the BEP 10 bit. A peer's `bitfield`, `have all` or `have none` is accepted only before any other
//! message except its extended handshake and keep-alives (libtorrent and Transmission send the extended
//! handshake first).
//!
//! **Timers** (one table, [`poll_timeout`](PeerSession::poll_timeout) gives the earliest): handshake
//! (20 s to receive the peer's handshake), idle (close after 240 s without a byte), keep-alive (sent
//! after 90 s of our silence), request (a request unanswered for 90 s is given up and cancelled) and
//! snub (no block data for 60 s while requests are outstanding). All are in [`SessionConfig`].
//!
//! **Bounds.** The receive buffer holds at most one message of up to `limits.max_message_len` bytes
//! (a larger length prefix closes the session as soon as its four bytes arrive); a block's body goes
//! straight into the `Vec` the [`SessionEvent::Block`] hands over, and only a block we requested (at
//! most [`SessionConfig::max_block_len`]) is ever buffered. The peer's queued requests are capped at
//! [`SessionConfig::max_incoming_requests`] (our `reqq`), ours at the smaller of
//! [`SessionConfig::max_outgoing_requests`] and the peer's `reqq`, the allowed-fast pieces we remember at
//! [`SessionConfig::max_allowed_fast`], and the cancelled requests whose late blocks we tolerate at twice
//! the request cap.

mod fast;
#[cfg(test)]
mod tests;
mod timer;
mod types;

use std::collections::{BTreeSet, VecDeque};
use std::mem;

use metainfo::PieceIndex;
use wire::{
    message::id, Bitfield, BlockRequest, ExtendedHandshake, Handshake, Message, PeerId, Reserved,
    HANDSHAKE_HEADER_LEN, HANDSHAKE_LEN, PIECE_HEADER_LEN,
};

use crate::Time;
use timer::{Timer, TimerTable};

pub use fast::allowed_fast_set;
pub use types::{
    CommandError, LocalInfo, OurPieces, PieceSizes, SessionConfig, SessionError, SessionEvent, Stats,
    Transmit, DEFAULT_PEER_REQQ,
};

/// Small messages queued back to back are written into one buffer up to this size.
const COALESCE_LIMIT: usize = 16 * 1024;

/// While the piece count is unknown, `have` indices up to this are remembered (a bitmap of at most
/// 64 KiB); a larger one closes the session. An info dictionary under the default 8 MiB metadata cap
/// holds at most 8 MiB / 20 bytes = 419,430 piece hashes.
pub const MAX_PENDING_PIECES: u32 = 1 << 19;

/// What the peer said about its pieces before we knew how many there are.
#[derive(Debug, Default)]
struct PendingPieces {
    /// Its first `bitfield` (raw), `have all` or `have none`.
    set: Option<PendingSet>,
    /// Pieces from `have` messages and late bitfields, as a bitmap (bit 7 of byte 0 is piece 0).
    bits: Vec<u8>,
    /// The length of the late bitfields (they must all be the same, and match the count later).
    late_len: Option<usize>,
    /// `allowed fast` pieces.
    allowed_fast: BTreeSet<u32>,
}

#[derive(Debug)]
enum PendingSet {
    Bitfield(Vec<u8>),
    HaveAll,
    HaveNone,
}

impl PendingPieces {
    fn mark(&mut self, index: u32) -> Result<(), SessionError> {
        if index >= MAX_PENDING_PIECES {
            return Err(SessionError::PieceOutOfRange {
                message: "have",
                index,
                num_pieces: MAX_PENDING_PIECES,
            });
        }
        let byte = (index / 8) as usize;
        if self.bits.len() <= byte {
            self.bits.resize(byte + 1, 0);
        }
        if let Some(b) = self.bits.get_mut(byte) {
            *b |= 0x80 >> (index % 8);
        }
        Ok(())
    }

    fn merge_late(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.late_len.is_some_and(|l| l != bytes.len()) || bytes.len() > (MAX_PENDING_PIECES / 8) as usize
        {
            return Err(SessionError::LatePieceSet { message: "bitfield" });
        }
        self.late_len = Some(bytes.len());
        if self.bits.len() < bytes.len() {
            self.bits.resize(bytes.len(), 0);
        }
        for (d, s) in self.bits.iter_mut().zip(bytes) {
            *d |= s;
        }
        Ok(())
    }

    fn marked(&self) -> impl Iterator<Item = u32> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, &b)| {
            (0..8u32)
                .filter(move |bit| b & (0x80 >> bit) != 0)
                .map(move |bit| (i as u32).saturating_mul(8).saturating_add(bit))
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's reserved bits and info-hash.
    AwaitHeader,
    /// Header checked (and answered); waiting for the peer id.
    AwaitPeerId,
    /// Handshake done: messages flow.
    Established,
    /// Over.
    Closed,
}

/// A `piece` message whose header has been checked and whose body is arriving.
#[derive(Debug)]
struct IncomingBlock {
    req: BlockRequest,
    data: Vec<u8>,
}

/// What decoding the front of the received bytes did.
enum Step {
    /// Used this many bytes.
    Used(usize),
    /// The message there is incomplete.
    NeedMore,
    /// The session closed.
    Closed,
}

/// The state machine of one peer connection (see the [module documentation](self)).
#[derive(Debug)]
pub struct PeerSession {
    config: SessionConfig,
    local: LocalInfo,
    outgoing: bool,
    phase: Phase,
    closed: Option<SessionError>,
    started: Time,

    /// The piece count is known (false while a magnet's metadata is fetched).
    pieces_known: bool,
    /// The peer's piece messages kept while the piece count is unknown.
    pending: PendingPieces,

    peer_reserved: Reserved,
    peer_id: Option<PeerId>,
    fast: bool,
    extended: bool,
    peer_extensions: Option<ExtendedHandshake>,
    /// Our bitfield, extended handshake and deferred state messages have been queued.
    post_handshake_sent: bool,
    /// The peer may still send its bitfield / have all / have none.
    piece_set_window: bool,

    recv: Vec<u8>,
    incoming_block: Option<IncomingBlock>,

    our_pieces: Bitfield,
    peer_pieces: Bitfield,
    am_choking: bool,
    am_interested: bool,
    peer_choking: bool,
    peer_interested: bool,
    /// Pieces the peer lets us request while it chokes us.
    allowed_fast_for_us: BTreeSet<PieceIndex>,
    /// Pieces we let the peer request while we choke it.
    granted_fast: BTreeSet<PieceIndex>,

    /// Our requests, oldest first, with the time each was sent.
    in_flight: VecDeque<(BlockRequest, Time)>,
    /// The shortest request-to-block time since [`take_min_latency`](Self::take_min_latency) last asked.
    min_latency: Option<std::time::Duration>,
    /// Requests we cancelled, gave up on or lost to a choke: a block or reject for them is tolerated.
    cancelled: VecDeque<BlockRequest>,
    /// The peer's requests waiting for `send_block` or `reject`.
    peer_requests: VecDeque<BlockRequest>,
    /// The same requests, for the duplicate check on each new one (a burst of thousands stays linear).
    peer_request_set: std::collections::HashSet<BlockRequest>,

    last_received: Time,
    last_sent: Time,
    last_payload: Option<Time>,
    /// Since when requests have been continuously in flight.
    outstanding_since: Option<Time>,
    snubbed: bool,

    transmits: VecDeque<Transmit>,
    pending_transmit: usize,
    events: VecDeque<SessionEvent>,
    stats: Stats,
}

impl PeerSession {
    /// A session for one connection, `outgoing` if we opened it (then our handshake is queued at once).
    ///
    /// Fails only if `local.have` is a bitfield for another number of pieces than `local.pieces`.
    pub fn new(
        config: SessionConfig,
        local: LocalInfo,
        outgoing: bool,
        now: Time,
    ) -> Result<Self, CommandError> {
        let n = local.pieces.num_pieces();
        let our_pieces = match &local.have {
            OurPieces::All => Bitfield::full(n),
            OurPieces::Some(b) if b.len() == n => b.clone(),
            OurPieces::Some(b) => {
                return Err(CommandError::BitfieldSize {
                    got: b.len(),
                    expected: n,
                })
            }
        };
        Ok(PeerSession::build(config, local, our_pieces, outgoing, now))
    }

    fn build(
        config: SessionConfig,
        local: LocalInfo,
        our_pieces: Bitfield,
        outgoing: bool,
        now: Time,
    ) -> Self {
        let n = local.pieces.num_pieces();
        let mut local = local;
        if local.extended.reqq.is_none() {
            local.extended.reqq = Some(u32::try_from(config.max_incoming_requests).unwrap_or(u32::MAX));
        }
        let mut s = PeerSession {
            config,
            local,
            outgoing,
            phase: Phase::AwaitHeader,
            closed: None,
            started: now,
            pieces_known: true,
            pending: PendingPieces::default(),
            peer_reserved: Reserved::NONE,
            peer_id: None,
            fast: false,
            extended: false,
            peer_extensions: None,
            post_handshake_sent: false,
            piece_set_window: false,
            recv: Vec::new(),
            incoming_block: None,
            our_pieces,
            peer_pieces: Bitfield::new(n),
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            allowed_fast_for_us: BTreeSet::new(),
            granted_fast: BTreeSet::new(),
            in_flight: VecDeque::new(),
            min_latency: None,
            cancelled: VecDeque::new(),
            peer_requests: VecDeque::new(),
            peer_request_set: std::collections::HashSet::new(),
            last_received: now,
            last_sent: now,
            last_payload: None,
            outstanding_since: None,
            snubbed: false,
            transmits: VecDeque::new(),
            pending_transmit: 0,
            events: VecDeque::new(),
            stats: Stats::default(),
        };
        if outgoing {
            s.send_handshake(now);
        }
        s
    }

    /// A session for a torrent whose piece count is not known yet (a magnet link whose metadata is being
    /// fetched): `local.pieces` and `local.have` are replaced by "no pieces". We tell the peer we have
    /// nothing, refuse its requests, and keep what it says about its pieces for
    /// [`set_pieces`](Self::set_pieces).
    pub fn new_awaiting_metadata(config: SessionConfig, local: LocalInfo, outgoing: bool, now: Time) -> Self {
        let local = LocalInfo {
            pieces: std::sync::Arc::new(PieceSizes::empty()),
            have: OurPieces::Some(Bitfield::new(0)),
            ..local
        };
        let mut s = PeerSession::build(config, local, Bitfield::new(0), outgoing, now);
        s.pieces_known = false;
        s
    }

    /// The piece count is known now (the metadata arrived): our pieces are `have`, and what the peer said
    /// about its pieces meanwhile is checked and reported as [`SessionEvent::Bitfield`] / `HaveAll` /
    /// `HaveNone` / `Have` / `AllowedFast` events, as if it had just arrived. A peer whose messages do not
    /// fit the torrent (a bitfield of the wrong length, a `have` past the end) is closed. Pieces we have
    /// are announced with `have` (we told the peer `have none`, or nothing, before). Does nothing if the
    /// pieces were known already.
    pub fn set_pieces(
        &mut self,
        now: Time,
        pieces: std::sync::Arc<PieceSizes>,
        have: OurPieces,
    ) -> Result<(), CommandError> {
        if self.pieces_known {
            return Ok(());
        }
        let n = pieces.num_pieces();
        let ours = match have {
            OurPieces::All => Bitfield::full(n),
            OurPieces::Some(b) if b.len() == n => b,
            OurPieces::Some(b) => {
                return Err(CommandError::BitfieldSize {
                    got: b.len(),
                    expected: n,
                })
            }
        };
        self.pieces_known = true;
        self.local.pieces = pieces;
        self.local.have = OurPieces::Some(ours.clone());
        self.peer_pieces = Bitfield::new(n);
        self.our_pieces = Bitfield::new(n);
        if self.phase == Phase::Closed {
            self.our_pieces = ours;
            return Ok(());
        }
        if self.post_handshake_sent {
            for i in ours.iter_set() {
                let _ = self.have(now, i);
            }
        }
        self.our_pieces = ours;
        let pending = mem::take(&mut self.pending);
        if let Err(e) = self.apply_pending(pending) {
            self.close_with(e);
        }
        Ok(())
    }

    fn apply_pending(&mut self, pending: PendingPieces) -> Result<(), SessionError> {
        let n = self.local.pieces.num_pieces();
        let mut pending = pending;
        match pending.set.take() {
            Some(PendingSet::Bitfield(bytes)) => {
                let b = Bitfield::from_bytes(&bytes, n)?;
                self.peer_pieces = b.clone();
                self.events.push_back(SessionEvent::Bitfield(b));
            }
            Some(PendingSet::HaveAll) => {
                self.peer_pieces = Bitfield::full(n);
                self.events.push_back(SessionEvent::HaveAll);
            }
            Some(PendingSet::HaveNone) => self.events.push_back(SessionEvent::HaveNone),
            None => {}
        }
        if let Some(len) = pending.late_len {
            if len != wire::bitfield_len(n) {
                return Err(SessionError::Wire(wire::WireError::BadLength {
                    name: "bitfield",
                    id: id::BITFIELD,
                    len: u32::try_from(len.saturating_add(1)).unwrap_or(u32::MAX),
                    expected: u32::try_from(wire::bitfield_len(n).saturating_add(1)).unwrap_or(u32::MAX),
                }));
            }
        }
        for i in pending.marked() {
            let index = PieceIndex(i);
            self.check_index("have", index)?;
            if !self.peer_pieces.get(index) {
                self.peer_pieces.set(index, true)?;
                self.events.push_back(SessionEvent::Have(index));
            }
        }
        for i in pending.allowed_fast {
            let index = PieceIndex(i);
            if i < n && self.allowed_fast_for_us.insert(index) {
                self.events.push_back(SessionEvent::AllowedFast(index));
            }
        }
        Ok(())
    }

    /// True once the piece count is known (always, unless made by
    /// [`new_awaiting_metadata`](Self::new_awaiting_metadata) and not yet given [`set_pieces`](Self::set_pieces)).
    pub fn pieces_known(&self) -> bool {
        self.pieces_known
    }

    // ----- inputs -----

    /// Bytes received from the peer, in order, split anywhere.
    ///
    /// Decodes every complete message, keeps an incomplete one (at most one message) for the next call,
    /// and queues events and answers. On a protocol error the session closes: the error is returned and
    /// also queued as [`SessionEvent::Closed`]. Bytes for a closed session are refused with
    /// [`SessionError::AlreadyClosed`].
    pub fn handle_bytes(&mut self, now: Time, bytes: &[u8]) -> Result<(), SessionError> {
        if self.phase == Phase::Closed {
            return Err(SessionError::AlreadyClosed);
        }
        if !bytes.is_empty() {
            self.last_received = self.last_received.max(now);
        }
        self.feed(now, bytes);
        match &self.closed {
            Some(reason) => Err(reason.clone()),
            None => Ok(()),
        }
    }

    /// A timer fired (call at or after [`poll_timeout`](Self::poll_timeout); calling early does nothing).
    pub fn handle_timeout(&mut self, now: Time) {
        if self.phase == Phase::Closed {
            return;
        }
        for timer in Timer::ALL {
            // Recomputed for each kind: a timer handled earlier may have moved another (a cancel sent for
            // a timed-out request postpones the keep-alive).
            if self.phase == Phase::Closed || !self.timers().is_expired(timer, now) {
                continue;
            }
            match timer {
                Timer::Handshake => {
                    self.close_with(SessionError::HandshakeTimeout(self.config.handshake_timeout))
                }
                Timer::Idle => self.close_with(SessionError::IdleTimeout(self.config.idle_timeout)),
                Timer::KeepAlive => self.push(now, &Message::KeepAlive),
                Timer::Snub => {
                    self.snubbed = true;
                    self.events.push_back(SessionEvent::Snubbed);
                }
                Timer::Request => self.expire_requests(now),
            }
        }
    }

    // ----- outputs -----

    /// The next thing to write to the peer.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        self.pending_transmit = self.pending_transmit.saturating_sub(t.wire_len());
        Some(t)
    }

    /// The next event for the engine.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers().next_timeout()
    }

    // ----- commands -----

    /// Tell the peer whether we want data from it (sent only on a change; before the handshake the state
    /// is remembered and sent right after our bitfield).
    pub fn set_interested(&mut self, now: Time, interested: bool) -> Result<(), CommandError> {
        self.check_open()?;
        if self.am_interested != interested {
            self.am_interested = interested;
            if self.post_handshake_sent {
                self.push(
                    now,
                    if interested {
                        &Message::Interested
                    } else {
                        &Message::NotInterested
                    },
                );
            }
        }
        Ok(())
    }

    /// Choke or unchoke the peer (sent only on a change).
    ///
    /// Choking discards the peer's queued requests (a later [`send_block`](Self::send_block) for one of
    /// them is refused): with the fast extension each gets a `reject request` after the `choke`, except
    /// requests for pieces we allowed fast (BEP 6: "If a peer sends a choke, it MUST reject all requests
    /// from the peer to whom the choke was sent except it SHOULD NOT reject requests for pieces that are in
    /// the allowed fast set. A peer SHOULD choke first and then reject requests"); without it they are
    /// dropped silently, as BEP 3 peers expect.
    pub fn set_choking(&mut self, now: Time, choking: bool) -> Result<(), CommandError> {
        self.check_open()?;
        if self.am_choking == choking {
            return Ok(());
        }
        self.am_choking = choking;
        if self.post_handshake_sent {
            self.push(
                now,
                if choking {
                    &Message::Choke
                } else {
                    &Message::Unchoke
                },
            );
        }
        if choking {
            let (keep, dropped): (VecDeque<_>, VecDeque<_>) = mem::take(&mut self.peer_requests)
                .into_iter()
                .partition(|r| self.granted_fast.contains(&r.index));
            self.peer_request_set = keep.iter().copied().collect();
            self.peer_requests = keep;
            if self.fast {
                for r in dropped {
                    self.push(now, &Message::RejectRequest(r));
                }
            }
        }
        Ok(())
    }

    /// Ask the peer for a block: only while it does not choke us, or for a piece in its allowed-fast set
    /// (BEP 6), for a piece it has, within the piece, at most [`SessionConfig::max_block_len`] long, and
    /// within the request cap ([`max_requests`](Self::max_requests)).
    pub fn request(&mut self, now: Time, req: BlockRequest) -> Result<(), CommandError> {
        self.check_established()?;
        if !self.local.pieces.contains(&req) || req.length > self.config.max_block_len {
            return Err(CommandError::Invalid(req));
        }
        if !self.peer_pieces.get(req.index) {
            return Err(CommandError::PeerLacksPiece(req));
        }
        if self.peer_choking && !(self.fast && self.allowed_fast_for_us.contains(&req.index)) {
            return Err(CommandError::Choked(req));
        }
        if self.in_flight.iter().any(|(r, _)| *r == req) {
            return Err(CommandError::AlreadyRequested(req));
        }
        let cap = self.max_requests();
        if self.in_flight.len() >= cap {
            return Err(CommandError::TooManyRequests(cap));
        }
        self.cancelled.retain(|r| *r != req);
        self.push(now, &Message::Request(req));
        self.in_flight.push_back((req, now));
        self.in_flight_changed(now);
        Ok(())
    }

    /// Withdraw a request in flight: a `cancel` is sent and a block arriving later is reported as
    /// [`SessionEvent::LateBlock`] (with the fast extension the peer answers a cancel with the block or a
    /// reject; both are absorbed). Returns false if the request was not in flight (nothing is sent).
    pub fn cancel(&mut self, now: Time, req: BlockRequest) -> Result<bool, CommandError> {
        self.check_established()?;
        let Some(pos) = self.in_flight.iter().position(|(r, _)| *r == req) else {
            return Ok(false);
        };
        self.in_flight.remove(pos);
        self.remember_cancelled(req);
        self.push(now, &Message::Cancel(req));
        self.in_flight_changed(now);
        Ok(true)
    }

    /// We verified a piece: announce it with `have` (BEP 3: "When a peer finishes downloading a piece and
    /// checks that the hash matches, it announces that it has that piece to all of its peers"), unless
    /// [`SessionConfig::suppress_redundant_have`] is set and the peer has it. Before the handshake it only
    /// joins the bitfield we will send.
    pub fn have(&mut self, now: Time, index: PieceIndex) -> Result<(), CommandError> {
        self.check_open()?;
        if self.our_pieces.get(index) {
            return Ok(());
        }
        self.our_pieces
            .set(index, true)
            .map_err(|_| CommandError::Invalid(piece_only(index)))?;
        let redundant = self.config.suppress_redundant_have && self.peer_pieces.get(index);
        if self.post_handshake_sent && !redundant {
            self.push(now, &Message::Have(index));
        }
        Ok(())
    }

    /// Let the peer request `index` while we choke it (BEP 6 `allowed fast`; see [`allowed_fast_set`] for
    /// the canonical set). Sent once per piece.
    pub fn allow_fast(&mut self, now: Time, index: PieceIndex) -> Result<(), CommandError> {
        self.check_established()?;
        if !self.fast {
            return Err(CommandError::NoFastExtension);
        }
        if index.0 >= self.local.pieces.num_pieces() {
            return Err(CommandError::Invalid(piece_only(index)));
        }
        if self.granted_fast.insert(index) {
            self.push(now, &Message::AllowedFast(index));
        }
        Ok(())
    }

    /// Serve a pending request of the peer: queues [`Transmit::PieceHeader`], after which the driver
    /// writes the `req.length` bytes of the block itself. Refused if the request is no longer pending
    /// (the peer cancelled it, or we choked it).
    pub fn send_block(&mut self, now: Time, req: BlockRequest) -> Result<(), CommandError> {
        self.check_established()?;
        let Some(pos) = self.peer_requests.iter().position(|r| *r == req) else {
            return Err(CommandError::NotRequested(req));
        };
        let header = wire::piece_header(req.index, req.begin, req.length as usize)?;
        self.peer_requests.remove(pos);
        self.peer_request_set.remove(&req);
        let t = Transmit::PieceHeader { header, req };
        self.pending_transmit = self.pending_transmit.saturating_add(t.wire_len());
        self.transmits.push_back(t);
        self.stats.protocol_sent = self.stats.protocol_sent.saturating_add(PIECE_HEADER_LEN as u64);
        self.stats.payload_sent = self.stats.payload_sent.saturating_add(u64::from(req.length));
        self.last_sent = self.last_sent.max(now);
        Ok(())
    }

    /// Refuse a pending request of the peer (a `reject request` with the fast extension; without it the
    /// request is just dropped).
    pub fn reject(&mut self, now: Time, req: BlockRequest) -> Result<(), CommandError> {
        self.check_established()?;
        let Some(pos) = self.peer_requests.iter().position(|r| *r == req) else {
            return Err(CommandError::NotRequested(req));
        };
        self.peer_requests.remove(pos);
        self.peer_request_set.remove(&req);
        if self.fast {
            self.push(now, &Message::RejectRequest(req));
        }
        Ok(())
    }

    /// Send a BEP 10 extension message with the id the peer assigned in its `m` (0 sends an updated
    /// extended handshake).
    pub fn send_extended(&mut self, now: Time, ext_id: u8, payload: &[u8]) -> Result<(), CommandError> {
        self.check_established()?;
        if !self.extended {
            return Err(CommandError::NoExtensionProtocol);
        }
        let m = Message::Extended { id: ext_id, payload };
        if m.encoded_len() > self.config.limits.max_message_len as usize {
            return Err(CommandError::Wire(wire::WireError::Unencodable {
                name: "extended",
                problem: format!("{} bytes is over the message limit", m.encoded_len()),
            }));
        }
        self.try_push(now, &m)?;
        Ok(())
    }

    /// Replace our extended handshake (a `reqq` of `None` is filled in as at the start): sent at once if
    /// the first one has gone out already (BEP 10: "Subsequent handshake messages can be used to enable
    /// or disable extensions without restarting the connection"), otherwise it is the one sent after the
    /// handshake.
    pub fn set_extended_handshake(&mut self, now: Time, h: ExtendedHandshake) -> Result<(), CommandError> {
        self.check_open()?;
        let mut h = h;
        if h.reqq.is_none() {
            h.reqq = Some(u32::try_from(self.config.max_incoming_requests).unwrap_or(u32::MAX));
        }
        let payload = h.encode();
        self.local.extended = h;
        if self.post_handshake_sent && self.extended {
            self.push(
                now,
                &Message::Extended {
                    id: wire::HANDSHAKE_ID,
                    payload: &payload,
                },
            );
        }
        Ok(())
    }

    /// Tell the peer our DHT node's UDP port (BEP 5 `port`).
    pub fn send_port(&mut self, now: Time, port: u16) -> Result<(), CommandError> {
        self.check_established()?;
        self.push(now, &Message::Port(port));
        Ok(())
    }

    /// End the session: [`SessionEvent::RequestsDropped`] for our requests in flight, then
    /// [`SessionEvent::Closed`] with [`SessionError::ClosedLocally`]. What is queued to send stays queued.
    pub fn close(&mut self) {
        self.close_with(SessionError::ClosedLocally);
    }

    // ----- state -----

    /// True once the session has closed.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Why the session closed.
    pub fn close_reason(&self) -> Option<&SessionError> {
        self.closed.as_ref()
    }

    /// True once the peer's handshake has fully arrived (and the session is open).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    /// True if we opened the connection.
    pub fn is_outgoing(&self) -> bool {
        self.outgoing
    }

    /// The peer's id, once its handshake arrived.
    pub fn peer_id(&self) -> Option<PeerId> {
        self.peer_id
    }

    /// The peer's reserved bits (all zero before its handshake).
    pub fn peer_reserved(&self) -> Reserved {
        self.peer_reserved
    }

    /// Both sides set the BEP 6 fast extension bit.
    pub fn fast_enabled(&self) -> bool {
        self.fast
    }

    /// Both sides set the BEP 10 extension protocol bit.
    pub fn extension_protocol_enabled(&self) -> bool {
        self.extended
    }

    /// The peer's extended handshake, later ones merged in (`m` is additive, BEP 10).
    pub fn peer_extensions(&self) -> Option<&ExtendedHandshake> {
        self.peer_extensions.as_ref()
    }

    /// We choke the peer.
    pub fn am_choking(&self) -> bool {
        self.am_choking
    }

    /// We are interested in the peer.
    pub fn am_interested(&self) -> bool {
        self.am_interested
    }

    /// The peer chokes us.
    pub fn peer_choking(&self) -> bool {
        self.peer_choking
    }

    /// The peer is interested in us.
    pub fn peer_interested(&self) -> bool {
        self.peer_interested
    }

    /// The pieces the peer has announced.
    pub fn peer_pieces(&self) -> &Bitfield {
        &self.peer_pieces
    }

    /// Our pieces as this session knows them.
    pub fn our_pieces(&self) -> &Bitfield {
        &self.our_pieces
    }

    /// Pieces the peer lets us request while it chokes us.
    pub fn allowed_fast_for_us(&self) -> impl Iterator<Item = PieceIndex> + '_ {
        self.allowed_fast_for_us.iter().copied()
    }

    /// The peer is snubbing us (see [`SessionEvent::Snubbed`]).
    pub fn is_snubbed(&self) -> bool {
        self.snubbed
    }

    /// The shortest time from one of our requests to its block, among the blocks that arrived since the
    /// last call: a request-latency sample for the request window's base round trip.
    pub fn take_min_latency(&mut self) -> Option<std::time::Duration> {
        self.min_latency.take()
    }

    /// Our requests in flight, oldest first.
    pub fn in_flight(&self) -> impl Iterator<Item = BlockRequest> + '_ {
        self.in_flight.iter().map(|(r, _)| *r)
    }

    /// How many requests we may have in flight: the smaller of [`SessionConfig::max_outgoing_requests`]
    /// and the peer's `reqq` ([`DEFAULT_PEER_REQQ`] if it announced none), at least 1.
    pub fn max_requests(&self) -> usize {
        let reqq = self
            .peer_extensions
            .as_ref()
            .and_then(|h| h.reqq)
            .map_or(DEFAULT_PEER_REQQ, |r| usize::try_from(r).unwrap_or(usize::MAX));
        self.config.max_outgoing_requests.min(reqq).max(1)
    }

    /// The peer's requests waiting for [`send_block`](Self::send_block) or [`reject`](Self::reject).
    pub fn peer_requests(&self) -> impl Iterator<Item = BlockRequest> + '_ {
        self.peer_requests.iter().copied()
    }

    /// Byte counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Bytes queued for [`poll_transmit`](Self::poll_transmit), blocks included (for backpressure).
    pub fn pending_transmit_bytes(&self) -> usize {
        self.pending_transmit
    }

    // ----- internals: receiving -----

    fn feed(&mut self, now: Time, mut input: &[u8]) {
        loop {
            match self.phase {
                Phase::Closed => return,
                Phase::AwaitHeader | Phase::AwaitPeerId => {
                    if input.is_empty() {
                        return;
                    }
                    // The length byte and protocol string go in one byte at a time, so a wrong one is
                    // reported with the same bytes (up to the first wrong one) however the input was split.
                    let step = if self.recv.len() < 1 + wire::PROTOCOL.len() {
                        1
                    } else {
                        HANDSHAKE_LEN.saturating_sub(self.recv.len())
                    };
                    let take = step.min(input.len());
                    let (head, rest) = split(input, take);
                    self.recv.extend_from_slice(head);
                    input = rest;
                    self.stats.protocol_received = self.stats.protocol_received.saturating_add(take as u64);
                    self.on_handshake_bytes(now);
                }
                Phase::Established => {
                    if let Some(block) = self.incoming_block.as_mut() {
                        if input.is_empty() {
                            return;
                        }
                        let want = (block.req.length as usize).saturating_sub(block.data.len());
                        let (body, rest) = split(input, want.min(input.len()));
                        block.data.extend_from_slice(body);
                        input = rest;
                        let done = block.data.len() >= block.req.length as usize;
                        self.on_payload(now, body.len());
                        if done {
                            self.finish_block(now);
                        }
                        continue;
                    }
                    if !self.recv.is_empty() {
                        // Complete the buffered message (or piece header) with just the bytes it needs.
                        let want = frame_want(&self.recv).max(1);
                        let (head, rest) = split(input, want.min(input.len()));
                        self.recv.extend_from_slice(head);
                        input = rest;
                        let buf = mem::take(&mut self.recv);
                        let step = self.process(now, &buf);
                        self.recv = buf;
                        match step {
                            Step::Used(n) => {
                                self.recv.drain(..n.min(self.recv.len()));
                            }
                            Step::NeedMore if input.is_empty() => return,
                            Step::NeedMore => {}
                            Step::Closed => return,
                        }
                        continue;
                    }
                    if input.is_empty() {
                        return;
                    }
                    match self.process(now, input) {
                        Step::Used(n) => input = input.get(n..).unwrap_or_default(),
                        Step::NeedMore => {
                            self.recv.extend_from_slice(input);
                            return;
                        }
                        Step::Closed => return,
                    }
                }
            }
        }
    }

    fn on_handshake_bytes(&mut self, now: Time) {
        let (reserved, info_hash) = match Handshake::parse_header(&self.recv) {
            Ok(h) => h,
            Err(e) if e.is_incomplete() => return,
            Err(e) => return self.close_with(SessionError::Wire(e)),
        };
        if self.phase == Phase::AwaitHeader {
            if info_hash != self.local.info_hash {
                return self.close_with(SessionError::InfoHashMismatch {
                    ours: self.local.info_hash,
                    theirs: info_hash,
                });
            }
            self.peer_reserved = reserved;
            self.fast = self.local.reserved.fast() && reserved.fast();
            self.extended = self.local.reserved.extended() && reserved.extended();
            if !self.outgoing {
                self.send_handshake(now);
            }
            self.send_post_handshake(now);
            self.phase = Phase::AwaitPeerId;
        }
        debug_assert!(self.recv.len() >= HANDSHAKE_HEADER_LEN);
        let handshake = match Handshake::parse(&self.recv) {
            Ok(h) => h,
            Err(e) if e.is_incomplete() => return,
            Err(e) => return self.close_with(SessionError::Wire(e)),
        };
        self.recv.clear();
        if handshake.peer_id == self.local.peer_id {
            return self.close_with(SessionError::ConnectedToSelf);
        }
        self.peer_id = Some(handshake.peer_id);
        self.phase = Phase::Established;
        self.piece_set_window = true;
        self.events.push_back(SessionEvent::HandshakeDone {
            peer_id: handshake.peer_id,
            reserved: handshake.reserved,
        });
    }

    /// Decode the message at the front of `view`.
    fn process(&mut self, now: Time, view: &[u8]) -> Step {
        match wire::decode_with(view, &self.config.limits) {
            Err(e) => {
                // An oversized prefix is refused as soon as its four bytes are in; whether the id byte
                // happened to arrive with them depends on how the stream was split, so it is left out and
                // the reason is the same however the bytes came.
                let e = match e {
                    wire::WireError::MessageTooLong { len, max, .. } => {
                        wire::WireError::MessageTooLong { id: None, len, max }
                    }
                    e => e,
                };
                self.close_with(SessionError::Wire(e));
                Step::Closed
            }
            Ok(Some((Message::Piece { index, begin, block }, _))) => {
                self.start_block(index, begin, u32::try_from(block.len()).unwrap_or(u32::MAX))
            }
            Ok(Some((msg, used))) => {
                self.stats.protocol_received = self.stats.protocol_received.saturating_add(used as u64);
                self.on_message(now, msg);
                if self.phase == Phase::Closed {
                    Step::Closed
                } else {
                    Step::Used(used)
                }
            }
            Ok(None) => {
                // A piece whose header is in: check it now and take the body as it arrives, so the block
                // is copied once, into the buffer the event hands over.
                if view.get(4) == Some(&id::PIECE) && view.len() >= PIECE_HEADER_LEN {
                    let len = read_u32(view, 0).saturating_sub(9);
                    let index = PieceIndex(read_u32(view, 5));
                    self.start_block(index, read_u32(view, 9), len)
                } else {
                    Step::NeedMore
                }
            }
        }
    }

    /// A `piece` header: the block must be one we requested (or cancelled).
    fn start_block(&mut self, index: PieceIndex, begin: u32, length: u32) -> Step {
        self.stats.protocol_received = self
            .stats
            .protocol_received
            .saturating_add(PIECE_HEADER_LEN as u64);
        self.piece_set_window = false;
        let req = BlockRequest { index, begin, length };
        if !self.pieces_known {
            self.close_with(SessionError::UnrequestedBlock {
                index: index.0,
                begin,
                length,
            });
            return Step::Closed;
        }
        if let Err(e) = self.check_index("piece", index) {
            self.close_with(e);
            return Step::Closed;
        }
        let known = self.in_flight.iter().any(|(r, _)| *r == req) || self.cancelled.contains(&req);
        if !known {
            self.close_with(SessionError::UnrequestedBlock {
                index: index.0,
                begin,
                length,
            });
            return Step::Closed;
        }
        self.incoming_block = Some(IncomingBlock {
            req,
            data: Vec::with_capacity(length as usize),
        });
        Step::Used(PIECE_HEADER_LEN)
    }

    fn on_payload(&mut self, now: Time, n: usize) {
        self.stats.payload_received = self.stats.payload_received.saturating_add(n as u64);
        if n > 0 {
            self.last_payload = Some(now);
            if self.snubbed {
                self.snubbed = false;
                self.events.push_back(SessionEvent::Unsnubbed);
            }
        }
    }

    fn finish_block(&mut self, now: Time) {
        let Some(IncomingBlock { req, data }) = self.incoming_block.take() else {
            return;
        };
        if let Some(pos) = self.in_flight.iter().position(|(r, _)| *r == req) {
            if let Some((_, sent)) = self.in_flight.remove(pos) {
                let latency = now.since(sent);
                self.min_latency = Some(self.min_latency.map_or(latency, |m| m.min(latency)));
            }
            self.in_flight_changed(now);
            self.events.push_back(SessionEvent::Block { req, data });
        } else {
            self.cancelled.retain(|r| *r != req);
            self.events.push_back(SessionEvent::LateBlock { req, data });
        }
    }

    fn on_message(&mut self, now: Time, msg: Message<'_>) {
        // Messages that say nothing about pieces held may come before the piece set: aria2 sends its
        // extended handshake and `allowed fast` messages before its bitfield, libtorrent and Transmission
        // the extended handshake before `have all`.
        let keeps_window = matches!(
            msg,
            Message::KeepAlive
                | Message::Bitfield(_)
                | Message::HaveAll
                | Message::HaveNone
                | Message::Extended { .. }
                | Message::AllowedFast(_)
                | Message::SuggestPiece(_)
                | Message::Port(_)
        );
        if !keeps_window {
            self.piece_set_window = false;
        }
        if let Err(e) = self.apply(now, msg) {
            self.close_with(e);
        }
    }

    fn apply(&mut self, now: Time, msg: Message<'_>) -> Result<(), SessionError> {
        match msg {
            Message::KeepAlive | Message::Unknown { .. } => {}
            // Taken apart by `process` before it gets here.
            Message::Piece { .. } => {}
            Message::Choke => {
                if !self.peer_choking {
                    self.peer_choking = true;
                    self.events.push_back(SessionEvent::Choked);
                    if !self.fast {
                        // BEP 3: a choke discards every pending request; with BEP 6 "Choke no longer
                        // implicitly rejects all pending requests" and rejects follow.
                        let dropped: Vec<BlockRequest> = self.in_flight.drain(..).map(|(r, _)| r).collect();
                        for r in &dropped {
                            self.remember_cancelled(*r);
                        }
                        self.in_flight_changed(now);
                        if !dropped.is_empty() {
                            self.events.push_back(SessionEvent::RequestsDropped(dropped));
                        }
                    }
                }
            }
            Message::Unchoke => {
                if self.peer_choking {
                    self.peer_choking = false;
                    self.events.push_back(SessionEvent::Unchoked);
                }
            }
            Message::Interested => {
                if !self.peer_interested {
                    self.peer_interested = true;
                    self.events.push_back(SessionEvent::Interested);
                }
            }
            Message::NotInterested => {
                if self.peer_interested {
                    self.peer_interested = false;
                    self.events.push_back(SessionEvent::NotInterested);
                }
            }
            Message::Have(index) if !self.pieces_known => self.pending.mark(index.0)?,
            Message::Bitfield(bytes) if !self.pieces_known => {
                if self.piece_set_window {
                    self.piece_set_window = false;
                    self.pending.set = Some(PendingSet::Bitfield(bytes.to_vec()));
                } else {
                    self.pending.merge_late(bytes)?;
                }
            }
            Message::HaveAll if !self.pieces_known => {
                self.require_fast("have all")?;
                self.take_piece_set_window("have all")?;
                self.pending.set = Some(PendingSet::HaveAll);
            }
            Message::HaveNone if !self.pieces_known => {
                self.require_fast("have none")?;
                self.take_piece_set_window("have none")?;
                self.pending.set = Some(PendingSet::HaveNone);
            }
            Message::Request(r) if !self.pieces_known => {
                // We have nothing yet: BEP 6 "If a peer receives a request from a peer its choking, the
                // peer receiving the request SHOULD send a reject".
                if self.fast {
                    self.push(now, &Message::RejectRequest(r));
                }
            }
            Message::Cancel(_) if !self.pieces_known => {}
            Message::SuggestPiece(_) if !self.pieces_known => self.require_fast("suggest piece")?,
            Message::AllowedFast(index) if !self.pieces_known => {
                self.require_fast("allowed fast")?;
                if self.pending.allowed_fast.len() < self.config.max_allowed_fast {
                    self.pending.allowed_fast.insert(index.0);
                }
            }
            Message::Have(index) => {
                self.check_index("have", index)?;
                if !self.peer_pieces.get(index) {
                    self.peer_pieces.set(index, true)?;
                    self.events.push_back(SessionEvent::Have(index));
                }
            }
            Message::Bitfield(bytes) => {
                let b = Bitfield::from_bytes(bytes, self.local.pieces.num_pieces())?;
                if self.piece_set_window {
                    self.piece_set_window = false;
                    self.peer_pieces = b.clone();
                    self.events.push_back(SessionEvent::Bitfield(b));
                } else {
                    // Late: aria2 follows `have none` with bitfields instead of `have` messages. One that
                    // only adds pieces is taken as those `have`s; one that takes pieces away is nonsense.
                    let lost = self.peer_pieces.iter_set().any(|i| !b.get(i));
                    if lost {
                        return Err(SessionError::LatePieceSet { message: "bitfield" });
                    }
                    for i in b.iter_set() {
                        if !self.peer_pieces.get(i) {
                            self.peer_pieces.set(i, true)?;
                            self.events.push_back(SessionEvent::Have(i));
                        }
                    }
                }
            }
            Message::HaveAll => {
                self.require_fast("have all")?;
                self.take_piece_set_window("have all")?;
                self.peer_pieces = Bitfield::full(self.local.pieces.num_pieces());
                self.events.push_back(SessionEvent::HaveAll);
            }
            Message::HaveNone => {
                self.require_fast("have none")?;
                self.take_piece_set_window("have none")?;
                self.peer_pieces = Bitfield::new(self.local.pieces.num_pieces());
                self.events.push_back(SessionEvent::HaveNone);
            }
            Message::Request(r) => self.on_request(now, r)?,
            Message::Cancel(r) => {
                self.check_block("cancel", &r)?;
                if self.peer_request_set.remove(&r) {
                    if let Some(pos) = self.peer_requests.iter().position(|p| *p == r) {
                        self.peer_requests.remove(pos);
                    }
                    self.events.push_back(SessionEvent::Cancel(r));
                    if self.fast {
                        // BEP 6: "the peer receiving the cancel should respond with either the
                        // corresponding reject or the corresponding piece".
                        self.push(now, &Message::RejectRequest(r));
                    }
                }
            }
            Message::Port(port) => self.events.push_back(SessionEvent::Port(port)),
            Message::SuggestPiece(index) => {
                self.require_fast("suggest piece")?;
                self.check_index("suggest piece", index)?;
                self.events.push_back(SessionEvent::Suggest(index));
            }
            Message::RejectRequest(r) => {
                self.require_fast("reject request")?;
                if let Some(pos) = self.in_flight.iter().position(|(p, _)| *p == r) {
                    self.in_flight.remove(pos);
                    self.in_flight_changed(now);
                    self.events.push_back(SessionEvent::Rejected(r));
                } else if let Some(pos) = self.cancelled.iter().position(|p| *p == r) {
                    self.cancelled.remove(pos);
                } else {
                    return Err(SessionError::UnrequestedReject {
                        index: r.index.0,
                        begin: r.begin,
                        length: r.length,
                    });
                }
            }
            Message::AllowedFast(index) => {
                self.require_fast("allowed fast")?;
                self.check_index("allowed fast", index)?;
                if self.allowed_fast_for_us.len() < self.config.max_allowed_fast
                    && self.allowed_fast_for_us.insert(index)
                {
                    self.events.push_back(SessionEvent::AllowedFast(index));
                }
            }
            Message::Extended { id: ext_id, payload } => {
                if !self.extended {
                    return Err(SessionError::ExtendedNotEnabled);
                }
                if ext_id == wire::HANDSHAKE_ID {
                    let h = ExtendedHandshake::parse(payload).map_err(SessionError::BadExtendedHandshake)?;
                    self.merge_extensions(&h);
                    self.events
                        .push_back(SessionEvent::ExtendedHandshake(Box::new(h)));
                } else {
                    self.events.push_back(SessionEvent::Extended {
                        id: ext_id,
                        payload: payload.to_vec(),
                    });
                }
            }
            Message::HashRequest(r) => self.events.push_back(SessionEvent::HashRequest(r)),
            Message::Hashes { request, hashes } => self.events.push_back(SessionEvent::Hashes {
                request,
                hashes: hashes.to_vec(),
            }),
            Message::HashReject(r) => self.events.push_back(SessionEvent::HashReject(r)),
        }
        Ok(())
    }

    fn on_request(&mut self, now: Time, r: BlockRequest) -> Result<(), SessionError> {
        self.check_block("request", &r)?;
        // Refused: we choke the peer and the piece is not allowed fast, we lack the piece, or the queue
        // is full. BEP 6: "If a peer receives a request from a peer its choking, the peer receiving the
        // request SHOULD send a reject unless the piece is in the allowed fast set." Without the extension
        // there is no way to refuse but silence.
        let refused = (self.am_choking && !self.granted_fast.contains(&r.index))
            || !self.our_pieces.get(r.index)
            || self.peer_requests.len() >= self.config.max_incoming_requests;
        if refused {
            if self.fast {
                self.push(now, &Message::RejectRequest(r));
            }
        } else if self.peer_request_set.insert(r) {
            self.peer_requests.push_back(r);
            self.events.push_back(SessionEvent::Request(r));
        }
        Ok(())
    }

    fn merge_extensions(&mut self, h: &ExtendedHandshake) {
        let Some(old) = self.peer_extensions.as_mut() else {
            self.peer_extensions = Some(h.clone());
            return;
        };
        old.m.extend(h.m.iter().map(|(k, v)| (k.clone(), *v)));
        old.v = h.v.clone().or(old.v.take());
        old.p = h.p.or(old.p);
        old.reqq = h.reqq.or(old.reqq);
        old.yourip = h.yourip.or(old.yourip);
        old.ipv4 = h.ipv4.or(old.ipv4);
        old.ipv6 = h.ipv6.or(old.ipv6);
        old.metadata_size = h.metadata_size.or(old.metadata_size);
        old.upload_only = h.upload_only;
    }

    fn take_piece_set_window(&mut self, message: &'static str) -> Result<(), SessionError> {
        if !mem::replace(&mut self.piece_set_window, false) {
            return Err(SessionError::LatePieceSet { message });
        }
        Ok(())
    }

    fn require_fast(&self, message: &'static str) -> Result<(), SessionError> {
        if self.fast {
            Ok(())
        } else {
            Err(SessionError::FastNotEnabled { message })
        }
    }

    fn check_index(&self, message: &'static str, index: PieceIndex) -> Result<u32, SessionError> {
        self.local.pieces.len(index).ok_or(SessionError::PieceOutOfRange {
            message,
            index: index.0,
            num_pieces: self.local.pieces.num_pieces(),
        })
    }

    fn check_block(&self, message: &'static str, r: &BlockRequest) -> Result<(), SessionError> {
        let piece_len = self.check_index(message, r.index)?;
        if u64::from(r.begin) + u64::from(r.length) > u64::from(piece_len) {
            return Err(SessionError::BeyondPieceEnd {
                message,
                index: r.index.0,
                begin: r.begin,
                length: r.length,
                piece_len,
            });
        }
        Ok(())
    }

    // ----- internals: timers -----

    /// The timer table, computed from the state (so no input can leave a stale deadline behind).
    fn timers(&self) -> TimerTable {
        let mut t = TimerTable::default();
        if self.phase == Phase::Closed {
            return t;
        }
        let c = &self.config;
        if self.phase != Phase::Established {
            t.set(Timer::Handshake, Some(self.started.plus(c.handshake_timeout)));
        }
        t.set(Timer::Idle, Some(self.last_received.plus(c.idle_timeout)));
        if self.post_handshake_sent {
            t.set(Timer::KeepAlive, Some(self.last_sent.plus(c.keepalive_interval)));
        }
        let receiving = self.incoming_block.as_ref().map(|b| b.req);
        let oldest = self.in_flight.iter().find(|(r, _)| Some(*r) != receiving);
        t.set(
            Timer::Request,
            oldest.map(|(_, sent)| sent.plus(c.request_timeout)),
        );
        if let (false, Some(since)) = (self.snubbed, self.outstanding_since) {
            let from = self.last_payload.map_or(since, |p| p.max(since));
            t.set(Timer::Snub, Some(from.plus(c.snub_timeout)));
        }
        t
    }

    fn expire_requests(&mut self, now: Time) {
        let receiving = self.incoming_block.as_ref().map(|b| b.req);
        let timeout = self.config.request_timeout;
        let (expired, kept): (VecDeque<_>, VecDeque<_>) = mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|(r, sent)| Some(*r) != receiving && sent.plus(timeout) <= now);
        self.in_flight = kept;
        for (r, _) in expired {
            self.remember_cancelled(r);
            self.push(now, &Message::Cancel(r));
            self.events.push_back(SessionEvent::RequestTimedOut(r));
        }
        self.in_flight_changed(now);
    }

    fn in_flight_changed(&mut self, now: Time) {
        if self.in_flight.is_empty() {
            self.outstanding_since = None;
        } else if self.outstanding_since.is_none() {
            self.outstanding_since = Some(now);
        }
    }

    fn remember_cancelled(&mut self, req: BlockRequest) {
        let cap = self.max_requests().saturating_mul(2);
        while self.cancelled.len() >= cap {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(req);
    }

    // ----- internals: sending -----

    fn send_handshake(&mut self, now: Time) {
        let h = Handshake {
            reserved: self.local.reserved,
            info_hash: self.local.info_hash,
            peer_id: self.local.peer_id,
        };
        self.push_bytes(now, &h.to_bytes());
    }

    /// Right after the handshake: what we have, our extended handshake, then any state set early.
    fn send_post_handshake(&mut self, now: Time) {
        let count = self.our_pieces.count();
        if self.fast && count == 0 {
            self.push(now, &Message::HaveNone);
        } else if self.fast && self.our_pieces.is_full() {
            self.push(now, &Message::HaveAll);
        } else if count > 0 {
            let bits = self.our_pieces.as_bytes().to_vec();
            self.push(now, &Message::Bitfield(&bits));
        }
        if self.extended {
            let payload = self.local.extended.encode();
            self.push(
                now,
                &Message::Extended {
                    id: wire::HANDSHAKE_ID,
                    payload: &payload,
                },
            );
        }
        if !self.am_choking {
            self.push(now, &Message::Unchoke);
        }
        if self.am_interested {
            self.push(now, &Message::Interested);
        }
        self.post_handshake_sent = true;
    }

    /// Queue a message we built ourselves (it always encodes).
    fn push(&mut self, now: Time, m: &Message<'_>) {
        // Only a payload over 4 GiB fails to encode, and nothing queued here has one.
        let _ = self.try_push(now, m);
    }

    fn try_push(&mut self, now: Time, m: &Message<'_>) -> Result<(), wire::WireError> {
        let len = m.encoded_len();
        match self.transmits.back_mut() {
            Some(Transmit::Bytes(b)) if b.len().saturating_add(len) <= COALESCE_LIMIT => m.encode(b)?,
            _ => {
                let mut b = Vec::with_capacity(len.max(256));
                m.encode(&mut b)?;
                self.transmits.push_back(Transmit::Bytes(b));
            }
        }
        self.sent(now, len);
        Ok(())
    }

    fn push_bytes(&mut self, now: Time, bytes: &[u8]) {
        match self.transmits.back_mut() {
            Some(Transmit::Bytes(b)) if b.len().saturating_add(bytes.len()) <= COALESCE_LIMIT => {
                b.extend_from_slice(bytes)
            }
            _ => self.transmits.push_back(Transmit::Bytes(bytes.to_vec())),
        }
        self.sent(now, bytes.len());
    }

    fn sent(&mut self, now: Time, len: usize) {
        self.pending_transmit = self.pending_transmit.saturating_add(len);
        self.stats.protocol_sent = self.stats.protocol_sent.saturating_add(len as u64);
        self.last_sent = self.last_sent.max(now);
    }

    // ----- internals: lifecycle -----

    fn check_open(&self) -> Result<(), CommandError> {
        if self.phase == Phase::Closed {
            Err(CommandError::Closed)
        } else {
            Ok(())
        }
    }

    fn check_established(&self) -> Result<(), CommandError> {
        match self.phase {
            Phase::Closed => Err(CommandError::Closed),
            Phase::Established => Ok(()),
            Phase::AwaitHeader | Phase::AwaitPeerId => Err(CommandError::NotReady),
        }
    }

    fn close_with(&mut self, reason: SessionError) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let dropped: Vec<BlockRequest> = self.in_flight.drain(..).map(|(r, _)| r).collect();
        if !dropped.is_empty() {
            self.events.push_back(SessionEvent::RequestsDropped(dropped));
        }
        self.events.push_back(SessionEvent::Closed(reason.clone()));
        self.closed = Some(reason);
        self.outstanding_since = None;
        self.incoming_block = None;
        self.recv = Vec::new();
        self.peer_requests.clear();
        self.peer_request_set.clear();
        self.cancelled.clear();
    }
}

/// The bytes the message at the front of `buf` still needs before it can be decoded, or (for a piece)
/// before its header is complete.
fn frame_want(buf: &[u8]) -> usize {
    if buf.len() < 4 {
        return 4 - buf.len();
    }
    let len = read_u32(buf, 0) as usize;
    if len == 0 {
        return 0;
    }
    let total = len.saturating_add(4);
    match buf.get(4) {
        None => 1,
        Some(&id::PIECE) => total.min(PIECE_HEADER_LEN).saturating_sub(buf.len()),
        Some(_) => total.saturating_sub(buf.len()),
    }
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at.saturating_add(4))
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_be_bytes)
}

/// `input` cut after `at` bytes (at most its length).
fn split(input: &[u8], at: usize) -> (&[u8], &[u8]) {
    input.split_at_checked(at).unwrap_or((input, &[]))
}

/// A whole piece, as a request value for errors about a piece index.
fn piece_only(index: PieceIndex) -> BlockRequest {
    BlockRequest {
        index,
        begin: 0,
        length: 0,
    }
}
