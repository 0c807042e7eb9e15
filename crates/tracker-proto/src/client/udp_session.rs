//! One UDP tracker as a client sees it (BEP 15): connect, then announce or scrape, with the connection id
//! reused while it is fresh, retransmission on BEP 15's doubling schedule and transaction ids checked on
//! every answer.
//!
//! [`UdpSession`] runs one operation (an announce or a scrape) at a time and keeps the connection id between
//! operations. It is driven like every bitswarm state machine: inputs carry the time, outputs are polled.

use std::time::Duration;

use metainfo::InfoHashV1;
use rand::Rng;

use super::Time;
use crate::udp::{self, AddressFamily, ConnectRequest, Response, ResponseParseError, ScrapeRequest};
use crate::{ConnectionId, TransactionId};

/// Timing of the UDP exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpConfig {
    /// The wait after the first send of a request; each retransmission doubles it. BEP 15: "If a response is
    /// not received after 15 * 2 ^ n seconds, the client should retransmit the request". Default 15 s.
    pub base_timeout: Duration,
    /// The largest `n` in `15 * 2 ^ n`: the operation fails when the wait after the send with this `n` runs
    /// out. BEP 15 goes "up to 8 (3840 seconds)", which would keep a dead tracker's tier waiting for hours; the
    /// default 2 sends at 0, 15 and 45 s and gives up at 105 s, so a client fails over within two minutes.
    pub max_n: u32,
    /// How long a connection id is used after it arrived. BEP 15: "A client can use a connection ID until
    /// one minute after it has received it." Default 60 s.
    pub connection_id_ttl: Duration,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            base_timeout: Duration::from_secs(15),
            max_n: 2,
            connection_id_ttl: Duration::from_secs(60),
        }
    }
}

/// What a [`UdpSession`] is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpOperation {
    /// Announce; the request's `connection_id` and `transaction_id` are filled in by the session.
    Announce(udp::AnnounceRequest),
    /// Scrape these swarms (1 to [`udp::MAX_SCRAPE_HASHES`]).
    Scrape(Vec<InfoHashV1>),
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpOutcome {
    /// The tracker answered the announce.
    Announced(udp::AnnounceResponse),
    /// The tracker answered the scrape.
    Scraped(udp::ScrapeResponse),
    /// The operation failed.
    Failed(UdpError),
}

/// Why a UDP operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdpError {
    /// No matching answer before the last wait ran out.
    #[error("no answer after {sends} sends over {waited:?}")]
    TimedOut {
        /// Packets sent for the operation (connects and requests).
        sends: u32,
        /// From the first send to giving up.
        waited: Duration,
    },
    /// An error packet (action 3).
    #[error("{}", if .0.is_empty() { "the tracker sent an error packet with no message" } else { .0.as_str() })]
    Tracker(String),
    /// An answer of the right action and transaction id but only the 8-byte header.
    #[error(
        "the tracker answered with a bare 8-byte header and no data, so it does not serve this torrent \
         (opentracker answers so for an info-hash that is not on its whitelist)"
    )]
    EmptyAnswer,
    /// An answer with our transaction id that could not be read.
    #[error("unreadable answer: {0}")]
    Malformed(ResponseParseError),
    /// A scrape with no info-hash or too many, which could not be sent at all.
    #[error("a UDP scrape carries 1 to {max} info-hashes, not {count}", max = udp::MAX_SCRAPE_HASHES)]
    BadScrape {
        /// Info-hashes asked for.
        count: usize,
    },
}

/// A connection id and when it arrived.
#[derive(Debug, Clone, Copy)]
struct Connection {
    id: ConnectionId,
    received: Time,
}

/// The packet an operation waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    Requesting(ConnectionId),
}

#[derive(Debug, Clone)]
struct Operation {
    what: UdpOperation,
    stage: Stage,
    transaction_id: TransactionId,
    /// The `n` of the packet last sent: sends since the last answer, minus one.
    n: u32,
    sends: u32,
    first_send: Time,
    deadline: Time,
}

/// The client side of one UDP tracker (BEP 15): one operation at a time, the connection id kept between
/// operations.
///
/// ```
/// use std::time::Duration;
/// use rand::SeedableRng;
/// use tracker_proto::client::{Time, UdpConfig, UdpOperation, UdpOutcome, UdpSession};
/// use tracker_proto::udp::{AddressFamily, ConnectResponse, Request, Response, ScrapeResponse};
/// use tracker_proto::{ConnectionId, InfoHashV1, ScrapeStats};
///
/// let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
/// let mut session = UdpSession::new(UdpConfig::default());
/// session.start(Time::ZERO, UdpOperation::Scrape(vec![InfoHashV1([7; 20])]), &mut rng);
///
/// // First a connect request; the tracker answers with a connection id.
/// let packet = session.poll_transmit().unwrap();
/// let Ok(Request::Connect(connect)) = Request::parse(&packet) else { panic!() };
/// let mut answer = Vec::new();
/// Response::Connect(ConnectResponse { transaction_id: connect.transaction_id, connection_id: ConnectionId(42) })
///     .write(&mut answer);
/// let now = Time::from_millis(30);
/// assert!(session.handle_datagram(now, &answer, AddressFamily::V4, &mut rng).is_none());
///
/// // Then the scrape itself, carrying that connection id.
/// let packet = session.poll_transmit().unwrap();
/// let Ok(Request::Scrape(scrape)) = Request::parse(&packet) else { panic!() };
/// assert_eq!(scrape.connection_id, ConnectionId(42));
/// let stats = vec![ScrapeStats { complete: 1, downloaded: 5, incomplete: 2 }];
/// let mut answer = Vec::new();
/// Response::Scrape(ScrapeResponse { transaction_id: scrape.transaction_id, stats: stats.clone() }).write(&mut answer);
/// let outcome = session.handle_datagram(now, &answer, AddressFamily::V4, &mut rng);
/// assert!(matches!(outcome, Some(UdpOutcome::Scraped(r)) if r.stats == stats));
/// // The connection id stays usable for a minute after it arrived.
/// assert_eq!(session.connection_id(now + Duration::from_secs(59)), Some(ConnectionId(42)));
/// assert_eq!(session.connection_id(now + Duration::from_secs(60)), None);
/// ```
#[derive(Debug, Clone)]
pub struct UdpSession {
    config: UdpConfig,
    connection: Option<Connection>,
    op: Option<Operation>,
    outbox: Option<Vec<u8>>,
}

impl UdpSession {
    /// A session with no connection id yet.
    pub fn new(config: UdpConfig) -> Self {
        UdpSession {
            config,
            connection: None,
            op: None,
            outbox: None,
        }
    }

    /// The connection id, if one arrived less than [`UdpConfig::connection_id_ttl`] before `now`.
    pub fn connection_id(&self, now: Time) -> Option<ConnectionId> {
        let c = self.connection?;
        (now.saturating_since(c.received) < self.config.connection_id_ttl).then_some(c.id)
    }

    /// True while an operation waits for its answer.
    pub fn is_busy(&self) -> bool {
        self.op.is_some()
    }

    /// Begin an operation, abandoning any in progress (answers to it are then ignored). The first packet is
    /// ready at once: the request itself if the connection id is fresh, a connect request otherwise.
    pub fn start<R: Rng + ?Sized>(&mut self, now: Time, what: UdpOperation, rng: &mut R) {
        self.outbox = None;
        if let UdpOperation::Scrape(h) = &what {
            if h.is_empty() || h.len() > udp::MAX_SCRAPE_HASHES {
                // Nothing to send; the failure is reported by the next `handle_timeout`.
                self.op = Some(Operation {
                    what,
                    stage: Stage::Connecting,
                    transaction_id: TransactionId(rng.random()),
                    n: 0,
                    sends: 0,
                    first_send: now,
                    deadline: now,
                });
                return;
            }
        }
        let stage = match self.connection_id(now) {
            Some(id) => Stage::Requesting(id),
            None => Stage::Connecting,
        };
        let mut op = Operation {
            what,
            stage,
            transaction_id: TransactionId(rng.random()),
            n: 0,
            sends: 0,
            first_send: now,
            deadline: now,
        };
        self.send(now, &mut op);
        self.op = Some(op);
    }

    /// Abandon the operation in progress, if any.
    pub fn cancel(&mut self) {
        self.op = None;
        self.outbox = None;
    }

    /// The next datagram to send to the tracker.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.take()
    }

    /// When [`UdpSession::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.op.as_ref().map(|op| op.deadline)
    }

    /// Retransmit (connecting again first if the connection id has expired) or give up, if the wait is over.
    pub fn handle_timeout<R: Rng + ?Sized>(&mut self, now: Time, rng: &mut R) -> Option<UdpOutcome> {
        let mut op = self.op.take()?;
        if now < op.deadline {
            self.op = Some(op);
            return None;
        }
        if let UdpOperation::Scrape(h) = &op.what {
            if op.sends == 0 {
                return Some(UdpOutcome::Failed(UdpError::BadScrape { count: h.len() }));
            }
        }
        if op.n >= self.config.max_n {
            return Some(UdpOutcome::Failed(UdpError::TimedOut {
                sends: op.sends,
                waited: now.saturating_since(op.first_send),
            }));
        }
        op.n += 1;
        if let Stage::Requesting(_) = op.stage {
            match self.connection_id(now) {
                // The same request again, under the same transaction id, so a late answer still counts.
                Some(id) => op.stage = Stage::Requesting(id),
                // BEP 15: "it is necessary to rerequest a connection ID when it has expired."
                None => {
                    op.stage = Stage::Connecting;
                    op.transaction_id = TransactionId(rng.random());
                }
            }
        }
        self.send(now, &mut op);
        self.op = Some(op);
        None
    }

    /// A datagram from the tracker, read in the address family of the exchange. Datagrams that do not carry
    /// the transaction id of the packet last sent are ignored (stale retransmissions, or forgeries), as are
    /// answers of another action.
    pub fn handle_datagram<R: Rng + ?Sized>(
        &mut self,
        now: Time,
        bytes: &[u8],
        family: AddressFamily,
        rng: &mut R,
    ) -> Option<UdpOutcome> {
        let op = self.op.as_mut()?;
        let (action, tid) = header(bytes)?;
        if tid != op.transaction_id || op.sends == 0 {
            return None;
        }
        let expected = match (op.stage, &op.what) {
            (Stage::Connecting, _) => ACTION_CONNECT,
            (Stage::Requesting(_), UdpOperation::Announce(_)) => ACTION_ANNOUNCE,
            (Stage::Requesting(_), UdpOperation::Scrape(_)) => ACTION_SCRAPE,
        };
        let response = match Response::parse(bytes, family) {
            Ok(r) => r,
            Err(_) if action == expected && bytes.len() == 8 && expected != ACTION_CONNECT => {
                return self.finish(UdpOutcome::Failed(UdpError::EmptyAnswer));
            }
            Err(e) if action == expected || action == ACTION_ERROR => {
                return self.finish(UdpOutcome::Failed(UdpError::Malformed(e)));
            }
            Err(_) => return None,
        };
        match (op.stage, response) {
            (_, Response::Error(e)) => self.finish(UdpOutcome::Failed(UdpError::Tracker(e.message))),
            (Stage::Connecting, Response::Connect(c)) => {
                self.connection = Some(Connection {
                    id: c.connection_id,
                    received: now,
                });
                let mut op = self.op.take()?;
                // An answer resets the schedule: the request that follows waits 15 s again.
                op.n = 0;
                op.stage = Stage::Requesting(c.connection_id);
                op.transaction_id = TransactionId(rng.random());
                self.send(now, &mut op);
                self.op = Some(op);
                None
            }
            (Stage::Requesting(_), Response::Announce(a)) if expected == ACTION_ANNOUNCE => {
                self.finish(UdpOutcome::Announced(a))
            }
            (Stage::Requesting(_), Response::Scrape(s)) if expected == ACTION_SCRAPE => {
                self.finish(UdpOutcome::Scraped(s))
            }
            _ => None,
        }
    }

    fn finish(&mut self, outcome: UdpOutcome) -> Option<UdpOutcome> {
        self.op = None;
        self.outbox = None;
        Some(outcome)
    }

    /// Queue the packet for the operation's stage and arm the wait for its `n`.
    fn send(&mut self, now: Time, op: &mut Operation) {
        let mut packet = Vec::with_capacity(udp::ANNOUNCE_REQUEST_LEN);
        match (op.stage, &op.what) {
            (Stage::Connecting, _) => ConnectRequest {
                transaction_id: op.transaction_id,
            }
            .write(&mut packet),
            (Stage::Requesting(id), UdpOperation::Announce(a)) => {
                let mut a = a.clone();
                a.connection_id = id;
                a.transaction_id = op.transaction_id;
                a.write(&mut packet);
            }
            (Stage::Requesting(id), UdpOperation::Scrape(h)) => ScrapeRequest {
                connection_id: id,
                transaction_id: op.transaction_id,
                info_hashes: h.clone(),
            }
            .write(&mut packet),
        }
        self.outbox = Some(packet);
        if op.sends == 0 {
            op.first_send = now;
        }
        op.sends = op.sends.saturating_add(1);
        let factor = 1u32.checked_shl(op.n).unwrap_or(u32::MAX);
        op.deadline = now + self.config.base_timeout.saturating_mul(factor);
    }
}

const ACTION_CONNECT: u32 = 0;
const ACTION_ANNOUNCE: u32 = 1;
const ACTION_SCRAPE: u32 = 2;
const ACTION_ERROR: u32 = 3;

/// Action and transaction id of a tracker datagram.
fn header(bytes: &[u8]) -> Option<(u32, TransactionId)> {
    let (action, rest) = bytes.split_first_chunk::<4>()?;
    let (tid, _) = rest.split_first_chunk::<4>()?;
    Some((
        u32::from_be_bytes(*action),
        TransactionId(u32::from_be_bytes(*tid)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::{AnnounceResponse, ConnectResponse, ErrorResponse, Request, ResponsePeers};
    use crate::{Event, PeerId};
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    fn secs(s: u64) -> Time {
        Time::from_secs(s)
    }

    fn announce() -> UdpOperation {
        let mut a = udp::AnnounceRequest {
            connection_id: ConnectionId(0),
            transaction_id: TransactionId(0),
            info_hash: InfoHashV1([1; 20]),
            peer_id: PeerId(*b"-BS0100-0123456789ab"),
            downloaded: 0,
            left: 10,
            uploaded: 0,
            event: Event::Started,
            ip: None,
            key: 9,
            num_want: None,
            port: 6881,
            url_data: None,
        };
        a.event = Event::Started;
        UdpOperation::Announce(a)
    }

    /// What the session sent, parsed as the tracker would.
    fn sent(s: &mut UdpSession) -> Request {
        let bytes = s.poll_transmit().expect("a packet");
        assert!(s.poll_transmit().is_none());
        Request::parse(&bytes).unwrap()
    }

    fn bytes(r: Response) -> Vec<u8> {
        let mut b = Vec::new();
        r.write(&mut b);
        b
    }

    /// A session that has connected (connection id `id`) and sent its announce, which is returned.
    fn connected_announce(
        id: u64,
        family: AddressFamily,
        r: &mut SmallRng,
    ) -> (UdpSession, udp::AnnounceRequest) {
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(0), announce(), r);
        let Request::Connect(c) = sent(&mut s) else {
            panic!("expected a connect first")
        };
        s.handle_datagram(secs(0), &connected(c.transaction_id, id), family, r);
        let Request::Announce(a) = sent(&mut s) else {
            panic!("expected the announce after connecting")
        };
        (s, a)
    }

    fn connected(tid: TransactionId, id: u64) -> Vec<u8> {
        bytes(Response::Connect(ConnectResponse {
            transaction_id: tid,
            connection_id: ConnectionId(id),
        }))
    }

    fn announced(tid: TransactionId) -> Vec<u8> {
        bytes(Response::Announce(AnnounceResponse {
            transaction_id: tid,
            interval: 1800,
            leechers: 1,
            seeders: 2,
            peers: ResponsePeers::V4(vec!["10.0.0.1:6881".parse().unwrap()]),
        }))
    }

    /// Step to each deadline in turn and record what was sent then: (time in s, "connect" or "announce").
    fn schedule(s: &mut UdpSession, rng: &mut SmallRng, until: u64) -> Vec<(u64, &'static str)> {
        let mut out = Vec::new();
        while let Some(t) = s.poll_timeout() {
            if t > secs(until) {
                break;
            }
            if let Some(outcome) = s.handle_timeout(t, rng) {
                out.push((
                    t.since_epoch().as_secs(),
                    if matches!(outcome, UdpOutcome::Failed(_)) {
                        "fail"
                    } else {
                        "?"
                    },
                ));
                break;
            }
            let kind = match sent(s) {
                Request::Connect(_) => "connect",
                Request::Announce(_) => "announce",
                Request::Scrape(_) => "scrape",
            };
            out.push((t.since_epoch().as_secs(), kind));
        }
        out
    }

    #[test]
    fn connect_times_out_on_the_bep15_schedule() {
        // BEP 15 "Connect times out": t = 0, 15, 45, 105: connect request; etc.
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig {
            max_n: 8,
            ..UdpConfig::default()
        });
        s.start(secs(0), announce(), &mut r);
        assert!(matches!(sent(&mut s), Request::Connect(_)));
        assert_eq!(
            schedule(&mut s, &mut r, 300),
            vec![
                (15, "connect"),
                (45, "connect"),
                (105, "connect"),
                (225, "connect")
            ]
        );
    }

    #[test]
    fn announce_times_out_on_the_bep15_schedule_and_reconnects_when_the_id_expires() {
        // BEP 15 "Announce times out": t = 0: connect request; t = 1: connect response; t = 2: announce
        // request; t = 17, 47: announce request; t = 107: connect request (because connection ID expired);
        // t = 227: connect request. Here the connect response comes at t = 2 and the announce follows at once.
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig {
            max_n: 8,
            ..UdpConfig::default()
        });
        s.start(secs(0), announce(), &mut r);
        let Request::Connect(c) = sent(&mut s) else {
            panic!()
        };
        assert_eq!(
            s.handle_datagram(
                secs(2),
                &connected(c.transaction_id, 5),
                AddressFamily::V4,
                &mut r
            ),
            None
        );
        let Request::Announce(a) = sent(&mut s) else {
            panic!()
        };
        assert_eq!(a.connection_id, ConnectionId(5));
        assert_eq!(s.poll_timeout(), Some(secs(17)));
        assert_eq!(
            schedule(&mut s, &mut r, 400),
            vec![
                (17, "announce"),
                (47, "announce"),
                (107, "connect"),
                (227, "connect")
            ]
        );
    }

    #[test]
    fn gives_up_after_max_n_with_the_default_schedule() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(0), announce(), &mut r);
        sent(&mut s);
        let mut steps = schedule(&mut s, &mut r, 1000);
        assert_eq!(steps.pop(), Some((105, "fail")));
        assert_eq!(steps, vec![(15, "connect"), (45, "connect")]);
        assert!(!s.is_busy());
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn timed_out_failure_says_how_long() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig {
            base_timeout: Duration::from_secs(1),
            max_n: 1,
            ..UdpConfig::default()
        });
        s.start(secs(10), announce(), &mut r);
        assert_eq!(s.handle_timeout(secs(11), &mut r), None);
        assert_eq!(
            s.handle_timeout(secs(13), &mut r),
            Some(UdpOutcome::Failed(UdpError::TimedOut {
                sends: 2,
                waited: Duration::from_secs(3)
            }))
        );
    }

    #[test]
    fn connection_id_is_reused_for_a_minute_then_refreshed() {
        // BEP 15: "A client can use a connection ID until one minute after it has received it."
        let mut r = rng();
        let (mut s, a) = connected_announce(77, AddressFamily::V4, &mut r);
        assert!(matches!(
            s.handle_datagram(secs(1), &announced(a.transaction_id), AddressFamily::V4, &mut r),
            Some(UdpOutcome::Announced(_))
        ));
        // 59 s after it arrived: reused, no connect.
        s.start(secs(59), UdpOperation::Scrape(vec![InfoHashV1([1; 20])]), &mut r);
        let Request::Scrape(sc) = sent(&mut s) else {
            panic!()
        };
        assert_eq!(sc.connection_id, ConnectionId(77));
        // 60 s after: expired, connect first.
        s.start(secs(60), announce(), &mut r);
        assert!(matches!(sent(&mut s), Request::Connect(_)));
    }

    #[test]
    fn stale_and_unmatched_transaction_ids_are_ignored() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(0), announce(), &mut r);
        let Request::Connect(c) = sent(&mut s) else {
            panic!()
        };
        let wrong = TransactionId(c.transaction_id.0.wrapping_add(1));
        // A connect answer with another transaction id, and garbage shorter than a header: nothing happens.
        assert_eq!(
            s.handle_datagram(secs(1), &connected(wrong, 1), AddressFamily::V4, &mut r),
            None
        );
        assert_eq!(
            s.handle_datagram(secs(1), &[0, 0, 0], AddressFamily::V4, &mut r),
            None
        );
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.poll_timeout(), Some(secs(15)));
        // The right one moves on to the announce.
        s.handle_datagram(
            secs(1),
            &connected(c.transaction_id, 2),
            AddressFamily::V4,
            &mut r,
        );
        let Request::Announce(a) = sent(&mut s) else {
            panic!()
        };
        // A duplicate of the connect answer (the old transaction id) is now stale.
        assert_eq!(
            s.handle_datagram(
                secs(2),
                &connected(c.transaction_id, 3),
                AddressFamily::V4,
                &mut r
            ),
            None
        );
        assert!(s.poll_transmit().is_none());
        // So is an announce answer to another transaction, even an error packet.
        let err = bytes(Response::Error(ErrorResponse {
            transaction_id: wrong,
            message: "x".into(),
        }));
        assert_eq!(s.handle_datagram(secs(2), &err, AddressFamily::V4, &mut r), None);
        assert_eq!(
            s.handle_datagram(secs(2), &announced(wrong), AddressFamily::V4, &mut r),
            None
        );
        assert!(s.is_busy());
        assert!(matches!(
            s.handle_datagram(secs(3), &announced(a.transaction_id), AddressFamily::V4, &mut r),
            Some(UdpOutcome::Announced(resp)) if resp.seeders == 2
        ));
        // After the operation ended, even its own transaction id is stale.
        assert_eq!(
            s.handle_datagram(secs(3), &announced(a.transaction_id), AddressFamily::V4, &mut r),
            None
        );
    }

    #[test]
    fn retransmission_keeps_the_transaction_id_so_a_late_answer_counts() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(0), announce(), &mut r);
        let Request::Connect(c1) = sent(&mut s) else {
            panic!()
        };
        s.handle_timeout(secs(15), &mut r);
        let Request::Connect(c2) = sent(&mut s) else {
            panic!()
        };
        assert_eq!(c1.transaction_id, c2.transaction_id);
        s.handle_datagram(
            secs(16),
            &connected(c1.transaction_id, 4),
            AddressFamily::V4,
            &mut r,
        );
        let Request::Announce(a) = sent(&mut s) else {
            panic!()
        };
        assert_ne!(
            a.transaction_id, c1.transaction_id,
            "a new request gets a new transaction id"
        );
        assert_eq!(s.poll_timeout(), Some(secs(31)), "an answer resets n to 0");
    }

    #[test]
    fn error_packets_and_empty_answers_fail_the_operation() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(0), announce(), &mut r);
        let Request::Connect(c) = sent(&mut s) else {
            panic!()
        };
        let err = bytes(Response::Error(ErrorResponse {
            transaction_id: c.transaction_id,
            message: "go away".into(),
        }));
        let out = s.handle_datagram(secs(1), &err, AddressFamily::V4, &mut r);
        assert_eq!(out, Some(UdpOutcome::Failed(UdpError::Tracker("go away".into()))));
        assert_eq!(
            UdpError::Tracker(String::new()).to_string(),
            "the tracker sent an error packet with no message"
        );

        // opentracker's answer to an announce for a hash off its whitelist: action 1, transaction id, nothing.
        s.start(secs(2), announce(), &mut r);
        let Request::Connect(c) = sent(&mut s) else {
            panic!()
        };
        s.handle_datagram(
            secs(2),
            &connected(c.transaction_id, 4),
            AddressFamily::V4,
            &mut r,
        );
        let Request::Announce(a) = sent(&mut s) else {
            panic!()
        };
        let mut empty = vec![0, 0, 0, 1];
        empty.extend_from_slice(&a.transaction_id.0.to_be_bytes());
        let out = s.handle_datagram(secs(3), &empty, AddressFamily::V4, &mut r);
        assert_eq!(out, Some(UdpOutcome::Failed(UdpError::EmptyAnswer)));

        // A malformed answer with our transaction id.
        s.start(secs(4), announce(), &mut r);
        let Request::Announce(a) = sent(&mut s) else {
            panic!()
        };
        let mut bad = announced(a.transaction_id);
        bad.push(0);
        let out = s.handle_datagram(secs(4), &bad, AddressFamily::V4, &mut r);
        assert_eq!(
            out,
            Some(UdpOutcome::Failed(UdpError::Malformed(
                ResponseParseError::PeersLength { len: 7, stride: 6 }
            )))
        );
    }

    #[test]
    fn v6_answers_are_read_with_18_byte_peers() {
        let mut r = rng();
        let (mut s, a) = connected_announce(4, AddressFamily::V6, &mut r);
        let answer = bytes(Response::Announce(AnnounceResponse {
            transaction_id: a.transaction_id,
            interval: 60,
            leechers: 0,
            seeders: 1,
            peers: ResponsePeers::V6(vec!["[2001:db8::1]:6881".parse().unwrap()]),
        }));
        let Some(UdpOutcome::Announced(resp)) =
            s.handle_datagram(secs(0), &answer, AddressFamily::V6, &mut r)
        else {
            panic!()
        };
        assert_eq!(
            resp.peers,
            ResponsePeers::V6(vec!["[2001:db8::1]:6881".parse().unwrap()])
        );
    }

    #[test]
    fn a_scrape_of_no_hashes_fails_without_sending() {
        let mut r = rng();
        let mut s = UdpSession::new(UdpConfig::default());
        s.start(secs(5), UdpOperation::Scrape(vec![]), &mut r);
        assert!(s.poll_transmit().is_none());
        assert_eq!(s.poll_timeout(), Some(secs(5)));
        assert_eq!(
            s.handle_timeout(secs(5), &mut r),
            Some(UdpOutcome::Failed(UdpError::BadScrape { count: 0 }))
        );
    }
}
